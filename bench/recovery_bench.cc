// Recovery scan speed: scan_ring over a full 1 GiB ring (pmem store on a /dev/shm file) of
// 4 KiB records, filled once before the benchmarks run.
//   recovery/scan_1GiB            validate every record (header CRC, payload CRC, LSN, position,
//                                 session) with nothing done per record
//   recovery/scan_and_index_1GiB  the same, inserting each record into an ExtentIndex, which is
//                                 what NvCache::open does before a node serves again
// bytes_per_second counts the ring bytes walked (trim point to the end of the valid log).
#include <memory>
#include <string>

#include "bench/bench_util.h"
#include "nvcache/extent_index.h"
#include "nvcache/log_reader.h"

namespace hafs::bench {
namespace {

using namespace hafs::nvcache;

constexpr uint64_t kRingBytes = 1ull << 30;
constexpr uint32_t kPayloadBytes = 4096;
constexpr uint64_t kObjects = 1024;

std::string key_of(uint64_t object) {
  std::string key(16, 'k');
  for (size_t b = 0; b < 8; ++b) key[b] = static_cast<char>((object >> (8 * b)) & 0xff);
  return key;
}

// Appends 4 KiB records, spread round-robin over kObjects objects, until the ring is full.
uint64_t fill(RingFile& ring) {
  Log& log = ring.reset();
  const uint64_t span = record_span(16, kPayloadBytes);
  const uint64_t count = log.data_bytes() / span;
  std::vector<std::byte> payload(kPayloadBytes);
  std::vector<std::string> keys;
  for (uint64_t o = 0; o < kObjects; ++o) keys.push_back(key_of(o));
  for (uint64_t i = 0; i < count; ++i) {
    for (size_t b = 0; b < payload.size(); b += 8) payload[b] = std::byte(i + b);
    const auto& key = keys[i % kObjects];
    const AppendSpec spec{1, 1, std::as_bytes(std::span(key.data(), key.size())),
                          (i / kObjects) * kPayloadBytes, payload};
    check_ok(log.append(spec).status(), "fill");
  }
  return count;
}

void bm_scan(benchmark::State& state, RingFile& ring, uint64_t records, bool index_records) {
  uint64_t walked = 0;
  for (auto _ : state) {
    std::unique_ptr<ExtentIndex> index;
    if (index_records) index = std::make_unique<ExtentIndex>();
    auto rec = scan_ring(ring.store(), [&](const RecordView& v) {
      if (!index) return;
      index->insert(ObjectId{v.header.volume_id,
                             std::string(reinterpret_cast<const char*>(v.key.data()), v.key.size())},
                    StagedExtent{v.header.file_offset, v.header.payload_len, v.header.lsn,
                                 v.header.epoch, v.data_pos, v.header.pos});
    });
    check_ok(rec.status(), "scan");
    if (rec->records != records || rec->end != ScanEnd::kClean)
      check_ok(Status::error(Code::kCorruption, "scan found " + std::to_string(rec->records) +
                                                    " records, ended by " + rec->end_message),
               "scan");
    walked += rec->next_pos - rec->header.trim_pos;
    state.PauseTiming();
    index.reset();  // freeing a quarter million extents is not recovery
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(walked));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(records));
  state.counters["records"] = static_cast<double>(records);
}

}  // namespace
}  // namespace hafs::bench

int main(int argc, char** argv) {
  using namespace hafs::bench;
  auto ring = std::make_unique<RingFile>(hafs::nvcache::StoreMode::kPmem, shm_dir(), "recovery",
                                         kRingBytes);
  const uint64_t records = fill(*ring);
  benchmark::RegisterBenchmark("recovery/scan_1GiB",
                               [&](benchmark::State& s) { bm_scan(s, *ring, records, false); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("recovery/scan_and_index_1GiB",
                               [&](benchmark::State& s) { bm_scan(s, *ring, records, true); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  const int rc = run_benchmarks(argc, argv);
  ring.reset();  // unlinks the ring file
  return rc;
}
