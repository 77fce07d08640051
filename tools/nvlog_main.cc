// hafs-nvlog: operate an NV log ring file directly. For the single-node demo, for the crash
// tests (a child that appends and reports every acknowledged LSN, killed at random), and for an
// operator who wants to look into a ring or a mirror copy.
//
//   hafs-nvlog format --store PATH --size BYTES [--mode pmem|file] [--node N]
//   hafs-nvlog append --store PATH [--mode ...] [--count N] [--payload BYTES] [--threads T]
//                     [--seed S] [--fault SITE=ACTION]... [--fault-after N]
//       prints "ack LSN OBJECT OFFSET CRC" after each acknowledged write (flushed at once);
//       --fault-after N arms the --fault sites only once N writes were acknowledged, so a crash
//       test can land a fault in the middle of a run instead of on its first record
//   hafs-nvlog scan --store PATH [--mode ...] [--records]
//       prints the header, every record (--records), and why the scan ended; exits 0 at a
//       clean end, 3 at a torn or corrupt tail, 4 when the ring is damaged inside
//       (valid records follow the bad one: docs/log-format.md, "Torn tail or damage")
//   hafs-nvlog replay --store PATH --volume NAME:ID:DIR... [--accept-damage]
//       applies every valid record of the given volumes to their directories on the storage
//       medium (newest wins, synced): what a takeover does with the partner's mirror. A damaged
//       ring is refused unless --accept-damage (then the records before the damage are applied)
#include "tools/cli.h"
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "base/crc32c.h"
#include "base/fault.h"
#include "fs/volume.h"
#include "nvcache/nvcache.h"

using namespace hafs;
using namespace hafs::nvcache;

namespace {

// No storage medium here: appended records stay staged in the ring (nothing destages them), so
// a ring must be large enough for --count records or the appenders wait for room forever.
class NullTarget : public DestageTarget {
 public:
  Status write(const ObjectId&, uint64_t, std::span<const DestageExtent>) override { return Status::ok(); }
  Status sync(const ObjectId&) override { return Status::ok(); }
};

int fail(const Status& s) {
  std::fprintf(stderr, "hafs-nvlog: %s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hafs-nvlog: format, append to and scan an hafs NV log ring"};
  app.require_subcommand(1);
  std::string path, mode_text = "pmem";
  uint64_t size = 64u << 20, count = 1000, seed = 1, fault_after = 0;
  uint32_t node = 1, payload = 4096, threads = 1;
  bool records = false, accept_damage = false;
  std::vector<std::string> faults;

  auto* fmt = app.add_subcommand("format", "write an empty ring over a new or existing file");
  auto* app_append = app.add_subcommand("append", "append records, print each acknowledged LSN");
  auto* scan = app.add_subcommand("scan", "validate a ring and report what recovery would find");
  auto* replay = app.add_subcommand("replay", "apply a ring's records of some volumes to the medium");
  std::vector<std::string> volume_specs;
  replay->add_option("--store", path, "ring file (an NV log or a mirror of one)")->required();
  replay->add_option("--volume", volume_specs, "NAME:ID:DIR of a volume whose records to apply")->required();
  replay->add_flag("--accept-damage", accept_damage,
                   "apply the records before damage inside the ring (the rest is lost); without it a damaged ring is refused");
  for (auto* sub : {fmt, app_append, scan}) {
    sub->add_option("--store", path, "ring file")->required();
    sub->add_option("--mode", mode_text, "store mode: pmem (mapped, default) or file (fdatasync)")
        ->check(CLI::IsMember({"pmem", "file"}));
  }
  fmt->add_option("--size", size, "ring size in bytes (multiple of 4096)")->check(CLI::Range(uint64_t{kMinRingBytes}, uint64_t{kMaxRingBytes}));
  fmt->add_option("--node", node, "node id written into the header");
  app_append->add_option("--count", count, "records to append");
  app_append->add_option("--payload", payload, "payload bytes per record")->check(CLI::Range(1u, 1u << 20));
  app_append->add_option("--threads", threads, "concurrent appenders")->check(CLI::Range(1u, 64u));
  app_append->add_option("--seed", seed, "seed of the payload bytes and fault probabilities");
  app_append->add_option("--fault", faults, "arm a fault site: SITE=crash|delay:MS|fail:ERRNO");
  app_append->add_option("--fault-after", fault_after,
                         "arm the --fault sites only after this many acknowledged writes");
  scan->add_flag("--records", records, "print every record");
  HAFS_CLI_PARSE(app, argc, argv);

  StoreMode mode;
  parse_store_mode(mode_text, &mode);

  if (*fmt) {
    auto store = open_store(mode, path, size);
    if (!store) return fail(store.status());
    std::random_device rd;
    Status s = Log::format(**store, node, (uint64_t{rd()} << 32) | rd());
    if (!s.is_ok()) return fail(s);
    std::printf("formatted %s: %" PRIu64 " bytes, node %u\n", path.c_str(), (*store)->size(), node);
    return 0;
  }

  // A scan only looks, also at the ring of a running hafsd (which holds the lock).
  auto store = open_store(mode, path, 0, *scan ? StoreLock::kNone : StoreLock::kExclusive);
  if (!store) return fail(store.status());

  if (*replay) {
    std::vector<std::unique_ptr<fs::Volume>> vols;
    for (const auto& spec : volume_specs) {
      const auto a = spec.find(':'), b = spec.find(':', a + 1);
      if (a == std::string::npos || b == std::string::npos)
        return fail(Status::error(Code::kInvalidArgument, "--volume wants NAME:ID:DIR, got '" + spec + "'"));
      uint32_t id = 0;
      try {
        id = static_cast<uint32_t>(std::stoul(spec.substr(a + 1, b - a - 1)));
      } catch (const std::exception&) {
        return fail(Status::error(Code::kInvalidArgument, "bad volume id in '" + spec + "'"));
      }
      auto v = fs::Volume::open(spec.substr(0, a), id, spec.substr(b + 1), fs::WriteMode::kStaged);
      if (!v) return fail(v.status());
      vols.push_back(std::move(*v));
    }
    auto find = [&](uint32_t id) -> fs::Volume* {
      for (auto& v : vols)
        if (v->id() == id) return v.get();
      return nullptr;
    };
    fs::VolumeTarget target(find, Logger("replay", LogLevel::kInfo));
    auto rep = replay_ring(**store, target, [&](uint32_t id, uint64_t) { return find(id) != nullptr; }, accept_damage, nullptr,
                           Logger("replay", LogLevel::kInfo));
    if (!rep) return fail(rep.status());
    std::printf("replayed %" PRIu64 " extents (%" PRIu64 " bytes) of %" PRIu64
                " valid records onto the medium; scan: %s\n",
                rep->records_applied, rep->bytes_applied, rep->ring.records,
                rep->ring.end_message.c_str());
    return 0;
  }

  if (*scan) {
    std::string header_report;
    auto h = read_ring_header(**store, &header_report);
    if (!h) return fail(h.status());
    std::printf("ring %016" PRIx64 " node %u session %u: %" PRIu64 " data bytes, trim LSN %" PRIu64
                " at %" PRIu64 "%s\n",
                h->ring_id, h->node_id, h->session, h->data_bytes, h->trim_lsn, h->trim_pos,
                (h->flags & kRingFlagMirror) ? " (mirror)" : "");
    if (!header_report.empty()) std::printf("warning: %s\n", header_report.c_str());
    auto mark = read_complete_mark(**store, h->ring_id);
    if (!mark) return fail(mark.status());
    if (*mark)
      std::printf("complete mark: records below LSN %" PRIu64 " (position %" PRIu64 ") were complete\n",
                  (*mark)->lsn, (*mark)->pos);
    auto rec = scan_ring(**store, [&](const RecordView& v) {
      if (records)
        std::printf("LSN %" PRIu64 " pos %" PRIu64 " volume %u epoch %" PRIu64 " offset %" PRIu64
                    " length %u\n",
                    v.header.lsn, v.header.pos, v.header.volume_id, v.header.epoch,
                    v.header.file_offset, v.header.payload_len);
    });
    if (!rec) return fail(rec.status());
    std::printf("%" PRIu64 " valid records, %" PRIu64 " payload bytes; next LSN %" PRIu64 "; %s: %s\n",
                rec->records, rec->payload_bytes, rec->next_lsn, scan_end_name(rec->end),
                rec->end_message.c_str());
    return rec->end == ScanEnd::kClean ? 0 : rec->end == ScanEnd::kDamaged ? 4 : 3;
  }

  // append
  FaultRegistry registry(seed);
  std::vector<std::pair<FaultSite, FaultSpec>> to_arm;
  for (const auto& f : faults) {
    auto eq = f.find('=');
    auto site = fault_site_by_name(f.substr(0, eq));
    if (eq == std::string::npos || !site)
      return fail(Status::error(Code::kInvalidArgument, "unknown fault site in '" + f + "'"));
    auto spec = parse_fault_action(f.substr(eq + 1));
    if (!spec) return fail(spec.status());
    to_arm.emplace_back(*site, *spec);
  }
  auto arm_faults = [&] {
    for (const auto& [site, spec] : to_arm) registry.arm(site, spec);
  };
  if (fault_after == 0) arm_faults();
  NullTarget target;
  NvCacheOptions options;
  options.faults = &registry;
  auto cache = NvCache::open(**store, target, options);
  if (!cache) return fail(cache.status());
  std::mutex out_mu;
  uint64_t acked = 0;  // GUARDED_BY(out_mu)
  std::vector<std::thread> workers;
  for (uint32_t t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000 + t);
      std::vector<std::byte> data(payload);
      for (uint64_t i = t; i < count; i += threads) {
        for (auto& b : data) b = static_cast<std::byte>(rng());
        const ObjectId object{1, "obj" + std::to_string(i % 16)};
        const uint64_t offset = (i / 16) * payload;
        auto lsn = (*cache)->write(object, 1, offset, data);
        if (!lsn) {
          std::fprintf(stderr, "hafs-nvlog: append: %s\n", lsn.status().to_string().c_str());
          std::_Exit(2);
        }
        std::lock_guard lock(out_mu);
        std::printf("ack %" PRIu64 " %s %" PRIu64 " %08x\n", *lsn, object.key.c_str(), offset,
                    crc32c(data));
        std::fflush(stdout);
        if (++acked == fault_after) arm_faults();
      }
    });
  for (auto& w : workers) w.join();
  return 0;
}
