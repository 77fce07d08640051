#include "tests/sim/pair_sim.h"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <thread>

#include "membership/records.h"
#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "tests/sim/fs_client.h"
#include "tests/sim/pausable_transport.h"

namespace hafs::sim {

namespace {

constexpr uint32_t kStepMs = 100;
constexpr uint32_t kFiles = 4;             // per volume
constexpr uint32_t kFileBytes = 16 << 10;  // each file's fixed size
constexpr uint64_t kNvlogBytes = 4 << 20;

// The SimDisk as one node sees it, usable from several threads (a node's tick and its mirror
// sender's outdated-mirror mark).
class LockedPort final : public membership::SharedDisk {
 public:
  // With a gate, every read and write waits while the gate is closed: a paused process does no
  // I/O (the data path's path to the disk; the tick's is paused by not ticking).
  LockedPort(membership::SimDisk::Port& port, std::mutex& mu,
             std::shared_ptr<PausableTransport::Gate> gate = nullptr)
      : port_(port), mu_(mu), gate_(std::move(gate)) {}
  Status read(const std::string& name, std::span<std::byte, membership::kRecordBlockBytes> out) override {
    if (gate_) gate_->wait();
    std::lock_guard lock(mu_);
    return port_.read(name, out);
  }
  Status write(const std::string& name, std::span<const std::byte, membership::kRecordBlockBytes> data) override {
    if (gate_) gate_->wait();
    std::lock_guard lock(mu_);
    return port_.write(name, data);
  }
  membership::SimDisk::Port& port() { return port_; }

 private:
  membership::SimDisk::Port& port_;
  std::mutex& mu_;
  std::shared_ptr<PausableTransport::Gate> gate_;
};

}  // namespace

struct PairSim::SimNode {
  uint32_t id = 0;
  tools::HafsdConfig cfg;
  membership::SimClock clock;
  std::unique_ptr<LockedPort> disk;       // the tick's path to the membership disk
  std::unique_ptr<LockedPort> data_path_disk;  // the outdated-mirror mark's
  nvcache::MemStore nvlog{kNvlogBytes};
  nvcache::MemStore mirror{kNvlogBytes};
  FaultRegistry faults;
  std::unique_ptr<node::Node> node;  // null while down
  uint64_t paused_until = 0;         // paused (no ticks, no operations) before this step
  bool clock_frozen = false;         // ... and its clock stands still meanwhile
  bool twin = false;                 // a second process with the identity of nodes_[id - 1]
  std::unique_ptr<PausableTransport> net;  // its view of the interconnect: paused with it
  uint64_t down_until = 0;           // down: restart at this step
  std::string down_reason;           // why the last start failed (empty: it did not)
  explicit SimNode(uint64_t seed) : faults(seed) {}
  bool up() const { return node != nullptr; }
};

// The acknowledged state of one file: for each byte, the values a read may return. An
// acknowledged write leaves one; a failed write adds its own (it may have reached the NV log and
// be replayed later, and then it is the newest).
struct PairSim::FileModel {
  std::vector<std::vector<uint8_t>> allowed = std::vector<std::vector<uint8_t>>(kFileBytes, std::vector<uint8_t>{0});
};

std::string SimResult::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%" PRIu64 " steps (%.0f simulated s): %" PRIu64 " writes acknowledged, %" PRIu64
                " failed, %" PRIu64 " reads checked; %" PRIu64 " crashes, %" PRIu64 " restarts (%" PRIu64
                " refused), %" PRIu64 " pauses, %" PRIu64 " cuts, %" PRIu64 " flips, %" PRIu64 " twins, %" PRIu64 " self-stops, %" PRIu64 " owner changes",
                steps, steps * kStepMs / 1000.0, acked_writes, failed_writes, reads_checked, crashes, restarts,
                failed_restarts, pauses, cuts, flips, twins, self_stops, takeovers);
  return buf;
}

PairSim::PairSim(SimOptions options)
    : opt_(options), rng_(options.seed), disk_(options.seed ^ 0x5157), network_(options.seed ^ 0x1e7) {
  char tmpl[] = "/tmp/hafs-sim-XXXXXX";
  HAFS_CHECK(::mkdtemp(tmpl) != nullptr, "mkdtemp");
  dir_ = tmpl;
  for (uint32_t v = 1; v <= 2; ++v) {
    std::filesystem::create_directories(dir_ / ("vol" + std::to_string(v)));
    for (uint32_t f = 0; f < kFiles; ++f) {
      std::ofstream out(dir_ / ("vol" + std::to_string(v)) / file_name(f), std::ios::binary);
      out << std::string(kFileBytes, '\0');
      files_[{v, f}] = FileModel{};
    }
  }
  for (uint32_t id = 1; id <= 2; ++id) nodes_.push_back(make_node(id, /*twin=*/false));
  // A slow disk operation takes simulated time on both nodes' clocks.
  disk_.set_delay_hook([this](membership::Millis d) {
    for (auto& n : nodes_)
      if (!n->clock_frozen) n->clock.advance(d);
  });
}

std::unique_ptr<PairSim::SimNode> PairSim::make_node(uint32_t id, bool twin) {
  auto n = std::make_unique<SimNode>(opt_.seed * 31 + id + (twin ? 1000 + now_step_ : 0));
  n->id = id;
  n->twin = twin;
  const uint32_t partner = 3 - id;
  auto& c = n->cfg;
  c.node_id = id;
  c.destage_interval_ms = 20;
  for (uint32_t v = 1; v <= 2; ++v)
    c.volumes.push_back({"vol" + std::to_string(v), v, (dir_ / ("vol" + std::to_string(v))).string(),
                         fs::WriteMode::kStaged, v, fs::DegradedPolicy::kLocalLog});
  c.interconnect.provider = "loopback";
  // A twin runs on another machine: its own address, the same partner.
  c.interconnect.listen_host = "node" + std::to_string(id) + (twin ? "-twin" : "");
  c.interconnect.listen_port = "mirror";
  c.interconnect.partner_node_id = partner;
  c.interconnect.partner_host = "node" + std::to_string(partner);
  c.interconnect.partner_port = "mirror";
  c.interconnect.key = "simulated pair";
  c.interconnect.mirror_wait_ms = 100;
  c.interconnect.heartbeat_ms = 50;
  c.interconnect.silence_limit_ms = opt_.silence_limit_ms;
  c.membership.dir = "simulated";
  c.membership.cluster = "sim";
  c.membership.giveback_delay_ms = 5000;
  n->net = std::make_unique<PausableTransport>(network_);
  const uint32_t port = twin ? 200 + id : id;
  n->disk = std::make_unique<LockedPort>(disk_.port(port), disk_mu_);
  // The data path's own path (the outdated-mirror mark, the destager's fence read): no random
  // faults, no simulated delays (it is used from real threads), paused with the node: a paused
  // node's destager stops at its next fence read, as a stopped process would.
  n->data_path_disk = std::make_unique<LockedPort>(disk_.port(100 + port), disk_mu_, n->net->gate());
  HAFS_CHECK(nvcache::Log::format(n->nvlog, id, opt_.seed * 1000 + id + (twin ? 7 + now_step_ * 10 : 0)).is_ok(),
             "format");
  return n;
}

std::vector<PairSim::SimNode*> PairSim::processes() {
  std::vector<SimNode*> up;
  for (auto& n : nodes_)
    if (n->up()) up.push_back(n.get());
  if (twin_ && twin_->up()) up.push_back(twin_.get());
  return up;
}

PairSim::~PairSim() {
  twin_.reset();
  for (auto& n : nodes_) n->node.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string PairSim::file_name(uint32_t file) const { return "f" + std::to_string(file); }

PairSim::SimNode& PairSim::partner_of(const SimNode& n) { return *nodes_[n.id == 1 ? 1 : 0]; }

void PairSim::note(const std::string& what) {
  char at[32];
  std::snprintf(at, sizeof at, "[sim %6.1f s] ", now_step_ * kStepMs / 1000.0);
  if (opt_.verbose) std::fprintf(stderr, "%s%s\n", at, what.c_str());
  recent_.push_back(at + what);
  if (recent_.size() > 200) recent_.pop_front();
}

void PairSim::violation(const std::string& what) {
  if (!result_.ok) return;
  result_.ok = false;
  char at[64];
  std::snprintf(at, sizeof at, "step %" PRIu64 " (%.1f s): ", now_step_, now_step_ * kStepMs / 1000.0);
  result_.violation = at + what;
  note("VIOLATION: " + what);
  result_.history.assign(recent_.begin(), recent_.end());
}

bool PairSim::can_talk(const SimNode& a, const SimNode& b) const {
  return a.up() && b.up() && now_step_ >= b.paused_until && now_step_ >= a.paused_until && now_step_ >= cut_until_;
}

bool PairSim::start_node(SimNode& n) {
  node::NodeEnv env;
  env.clock = &n.clock;
  env.disk = n.disk.get();
  env.data_path_disk = n.data_path_disk.get();
  env.nvlog = &n.nvlog;
  env.mirror = &n.mirror;
  env.transport = n.net.get();
  env.faults = &n.faults;
  env.tick_thread = false;
  const uint64_t ring = opt_.seed * 1000 + n.id + now_step_ * 10;
  env.format_nvlog = [id = n.id, ring](nvcache::Store& s) { return nvcache::Log::format(s, id, ring); };
  Logger log("sim-node" + std::to_string(n.id) + (n.twin ? "-twin" : ""), opt_.verbose ? LogLevel::kWarn : LogLevel::kOff);
  auto opened = node::Node::open(n.cfg, std::move(env), log);
  if (!opened) {
    n.down_reason = opened.status().to_string();
    note(std::string(n.twin ? "the twin of node " : "node ") + std::to_string(n.id) + " does not start: " + n.down_reason);
    return false;
  }
  n.node = std::move(*opened);
  n.down_reason.clear();
  return true;
}

void PairSim::crash(SimNode& n, const std::string& why) {
  note(std::string(n.twin ? "the twin of node " : "node ") + std::to_string(n.id) + " crashes (" + why + ")");
  n.net->set_paused(false);  // its threads must run to be joined
  n.node.reset();  // its threads stop; the NV log and mirror stores keep what they held
  // Down for a moment (a supervisor restarts it) or for long (a reboot, a repair).
  n.down_until = now_step_ + (chance() < 0.5 ? below(20) : 20 + below(200));
  n.paused_until = 0;
  n.clock_frozen = false;
  ++result_.crashes;
}

void PairSim::stop_node(SimNode& n, const std::string& why) {
  note(std::string(n.twin ? "the twin of node " : "node ") + std::to_string(n.id) + " stops itself: " + why);
  n.net->set_paused(false);
  (void)n.node->shutdown();
  n.node.reset();
  n.down_until = now_step_ + 10 + below(100);
  n.paused_until = 0;
  n.clock_frozen = false;
  ++result_.self_stops;
}

void PairSim::tick(SimNode& n) {
  membership::Observation obs = n.node->observe();
  // Whether the partner was heard is the simulator's to say: a paused process sends nothing.
  obs.interconnect_alive = can_talk(n, partner_of(n));
  n.node->tick(obs);
  // A takeover's replay or a giveback's destage runs on a job thread; no simulated time passes
  // while it does, and its end is picked up at once (hafsd's wake-up).
  for (int i = 0; i < 8 && n.node->wait_idle(); ++i) n.node->tick(obs);
}

PairSim::SimNode* PairSim::server_of(uint32_t volume) {
  auto block = disk_.peek(membership::ownership_record_name(volume));
  if (!block) return nullptr;
  auto rec = membership::decode_ownership(*block);
  if (!rec) return nullptr;
  // The original first; its twin (another machine with its identity) when the original cannot.
  for (SimNode* n : processes())
    if (n->id == rec->owner && now_step_ >= n->paused_until && n->node->filesystem().volume_by_id(volume) != nullptr)
      return n;
  return nullptr;
}

void PairSim::inject_faults() {
  const FaultMix& f = opt_.faults;
  for (auto& np : nodes_) {
    SimNode& n = *np;
    if (n.up() && chance() < f.crash) crash(n, "kill -9");
    if (n.up() && now_step_ >= n.paused_until && chance() < f.pause) {
      // Pauses cluster around the lease (2 s) and the contender's wait (lease + margin + settle):
      // the lengths where a holder wakes just as its partner claims.
      const uint32_t ms = chance() < 0.7 ? 1500 + static_cast<uint32_t>(below(1500)) : static_cast<uint32_t>(below(8000));
      n.paused_until = now_step_ + ms / kStepMs;
      n.clock_frozen = chance() < 0.3;
      n.net->set_paused(true);
      ++result_.pauses;
      note("node " + std::to_string(n.id) + " pauses for " + std::to_string(ms) + " ms" +
           (n.clock_frozen ? " (its clock stops)" : ""));
    }
    if (chance() < f.disk) {
      membership::SimDiskFaults df;
      if (chance() < 0.5) df.write_fail_p = 0.3; else { df.delay_p = 0.3; df.delay_ms_max = 400; }
      n.disk->port().set_faults(df);
      note("node " + std::to_string(n.id) + "'s membership disk turns bad");
    } else if (chance() < 0.02) {
      n.disk->port().set_faults({});
    }
    if (chance() < f.medium) {
      FaultSpec spec;
      spec.errno_value = chance() < 0.5 ? ENOSPC : EIO;
      spec.once = false;
      spec.probability = 0.5;
      n.faults.arm(FaultSite::kDestageBeforeWrite, spec);
      note("node " + std::to_string(n.id) + "'s medium writes fail with " + (spec.errno_value == EIO ? "EIO" : "ENOSPC"));
    } else if (chance() < 0.05) {
      n.faults.clear(FaultSite::kDestageBeforeWrite);
    }
    if (chance() < f.flip) flip_byte(n);
  }
  // A twin is most dangerous where an operator would start one: while the node seems gone (down
  // or paused), in its place. Then five times as likely, and of that node.
  if (!twin_) {
    std::vector<uint32_t> gone;
    for (auto& np : nodes_)
      if (!np->up() || now_step_ < np->paused_until) gone.push_back(np->id);
    if (chance() < (gone.empty() ? f.twin : 5 * f.twin)) {
      const uint32_t id = gone.empty() ? 1 + static_cast<uint32_t>(below(2)) : gone[below(gone.size())];
      if (start_twin(id)) twin_until_ = now_step_ + 10 + below(100);
    }
  }
  if (now_step_ >= cut_until_ && chance() < f.cut) {
    const uint32_t ms = 200 + static_cast<uint32_t>(below(6000));
    cut_until_ = static_cast<uint32_t>(now_step_ + ms / kStepMs);
    // Every operation posted during the cut drops its connection, handshakes included.
    interconnect::LoopbackFaults cut;
    cut.drop_p = 1.0;
    network_.set_faults(cut);
    network_.drop_all("simulated cut");
    ++result_.cuts;
    note("the interconnect is cut for " + std::to_string(ms) + " ms");
  }
}

// One byte of the records a node holds (its NV log, or its mirror of the partner's) turns bad.
// Mostly inside a record the store still holds (header, key or payload, the last records as
// likely as the first): damage there is what recovery, replay and the running checks must
// tell. Otherwise anywhere in the first 64 KiB of the data area, held or not.
void PairSim::flip_byte(SimNode& n) {
  const bool mirror = chance() < 0.5;
  nvcache::MemStore& store = mirror ? n.mirror : n.nvlog;
  std::vector<std::pair<uint64_t, uint64_t>> held;  // store offset, span of each record held
  if (chance() < 0.7) {
    const uint64_t data_bytes = store.size() - nvcache::kDataOffset;
    (void)nvcache::scan_ring(store, [&](const nvcache::RecordView& v) {
      held.push_back({nvcache::kDataOffset + v.header.pos % data_bytes,
                      nvcache::payload_offset(v.header.key_len) + v.header.payload_len});
    });
  }
  uint64_t off = nvcache::kDataOffset + below(64 << 10);
  std::string where = "at " + std::to_string(off);
  if (!held.empty()) {
    const auto [start, span] = held[below(held.size())];
    off = std::min<uint64_t>(start + below(span), store.size() - 1);
    where = "in the record at offset " + std::to_string(start) + " (byte " + std::to_string(off - start) + ")";
  }
  store.bytes()[off] ^= std::byte{static_cast<uint8_t>(1 + below(255))};
  ++result_.flips;
  note("a byte flips in node " + std::to_string(n.id) + "'s " + (mirror ? "mirror" : "NV log") + " " + where);
}

void PairSim::client_write() {
  const uint32_t volume = 1 + static_cast<uint32_t>(below(2));
  const uint32_t file = static_cast<uint32_t>(below(kFiles));
  // Usually the serving node; sometimes any node that still shows the volume (a client that has
  // not noticed a takeover, or a node that woke from a pause and believes it still serves).
  SimNode* n = server_of(volume);
  if (!n || chance() < 0.2) {
    std::vector<SimNode*> candidates;
    for (SimNode* c : processes())
      if (now_step_ >= c->paused_until && c->node->filesystem().volume_by_id(volume)) candidates.push_back(c);
    if (candidates.empty()) return;
    n = candidates[below(candidates.size())];
  }
  const uint32_t len = 1 + static_cast<uint32_t>(below(chance() < 0.8 ? 512 : 4096));
  const uint32_t off = static_cast<uint32_t>(below(kFileBytes - len + 1));
  write_on(*n, volume, file, off, len);
}

int PairSim::write_on(SimNode& node, uint32_t volume, uint32_t file, uint32_t off, uint32_t len) {
  SimNode* n = &node;
  const uint8_t value = next_value_;
  next_value_ = next_value_ == 255 ? 1 : next_value_ + 1;
  FsClient c(n->node->filesystem());
  fuse_entry_param vol{}, fe{};
  fuse_file_info fi{};
  int err = c.lookup(FUSE_ROOT_ID, "vol" + std::to_string(volume), &vol);
  if (err) return err;
  err = c.lookup(vol.ino, file_name(file), &fe);
  c.forget(vol.ino);
  if (err) {
    violation("node " + std::to_string(n->id) + " cannot find vol" + std::to_string(volume) + "/" +
              file_name(file) + ": errno " + std::to_string(err));
    return err;
  }
  err = c.open(fe.ino, O_RDWR, &fi);
  if (!err) {
    err = c.write(fe.ino, &fi, std::string(len, static_cast<char>(value)), off);
    c.release(fe.ino, &fi);
  }
  c.forget(fe.ino);
  FileModel& m = files_[{volume, file}];
  for (uint32_t i = off; i < off + len; ++i) {
    if (err == 0) m.allowed[i].assign(1, value);
    else m.allowed[i].push_back(value);
  }
  err == 0 ? ++result_.acked_writes : ++result_.failed_writes;
  if (opt_.verbose)
    note("write vol" + std::to_string(volume) + "/" + file_name(file) + " [" + std::to_string(off) + ", " +
         std::to_string(off + len) + ") = " + std::to_string(value) + " on node " + std::to_string(n->id) + ": " +
         (err ? "errno " + std::to_string(err) : std::string("acknowledged")));
  return err;
}

void PairSim::client_read(uint32_t volume, uint32_t file) {
  SimNode* n = server_of(volume);
  if (!n) return;
  FsClient c(n->node->filesystem());
  fuse_entry_param vol{}, fe{};
  fuse_file_info fi{};
  if (c.lookup(FUSE_ROOT_ID, "vol" + std::to_string(volume), &vol)) return;
  int err = c.lookup(vol.ino, file_name(file), &fe);
  c.forget(vol.ino);
  if (err) return violation("vol" + std::to_string(volume) + "/" + file_name(file) + " is gone on node " + std::to_string(n->id));
  std::string data;
  err = c.open(fe.ino, O_RDONLY, &fi);
  if (!err) {
    err = c.read(fe.ino, &fi, kFileBytes, 0, &data);
    c.release(fe.ino, &fi);
  }
  c.forget(fe.ino);
  if (err == EIO || err == ESTALE) return;  // fenced in between: not served (status says why)
  if (err) return violation("reading vol" + std::to_string(volume) + "/" + file_name(file) + " on node " +
                            std::to_string(n->id) + ": errno " + std::to_string(err));
  ++result_.reads_checked;
  if (data.size() != kFileBytes)
    return violation("vol" + std::to_string(volume) + "/" + file_name(file) + " on node " + std::to_string(n->id) +
                     " has " + std::to_string(data.size()) + " bytes, not " + std::to_string(kFileBytes));
  const FileModel& m = files_[{volume, file}];
  for (uint32_t i = 0; i < kFileBytes; ++i) {
    const auto& ok = m.allowed[i];
    const uint8_t got = static_cast<uint8_t>(data[i]);
    if (std::find(ok.begin(), ok.end(), got) == ok.end()) {
      uint32_t end = i;
      while (end < kFileBytes && std::find(m.allowed[end].begin(), m.allowed[end].end(),
                                           static_cast<uint8_t>(data[end])) == m.allowed[end].end()) ++end;
      return violation("LOST WRITE: vol" + std::to_string(volume) + "/" + file_name(file) + " read from node " +
                       std::to_string(n->id) + " has byte " + std::to_string(got) + " at " + std::to_string(i) +
                       " (bad up to " + std::to_string(end) + "), acknowledged was " + std::to_string(ok.front()));
    }
  }
}

void PairSim::check_invariants() {
  for (uint32_t v = 1; v <= 2; ++v) {
    auto block = disk_.peek(membership::ownership_record_name(v));
    if (!block) continue;
    auto rec = membership::decode_ownership(*block);
    if (!rec) continue;  // a torn record: the monitors refuse it too
    if (rec->epoch < last_epoch_[v])
      violation("vol" + std::to_string(v) + "'s epoch went back from " + std::to_string(last_epoch_[v]) + " to " +
                std::to_string(rec->epoch));
    if (rec->epoch > last_epoch_[v] && last_owner_[v] != 0 && rec->owner != last_owner_[v]) ++result_.takeovers;
    if (rec->epoch != last_epoch_[v] || rec->owner != last_owner_[v])
      note("vol" + std::to_string(v) + ": node " + std::to_string(rec->owner) + " at epoch " + std::to_string(rec->epoch) +
           (rec->replay_pending() ? " (replay of node " + std::to_string(rec->replay_node) + "'s log pending)" : ""));
    last_epoch_[v] = std::max(last_epoch_[v], rec->epoch);
    last_owner_[v] = rec->owner;
  }
  std::map<std::pair<uint32_t, uint64_t>, uint32_t> serving;  // (volume, epoch) -> node
  for (SimNode* n : processes()) {
    for (const auto& view : n->node->monitor()->status().volumes) {
      if (view.state != membership::VolumeState::kServing) continue;
      auto [it, fresh] = serving.try_emplace({view.id, view.epoch}, n->id);
      if (!fresh)
        violation("nodes " + std::to_string(it->second) + " and " + std::to_string(n->id) + " both serve vol" +
                  std::to_string(view.id) + " in epoch " + std::to_string(view.epoch));
    }
  }
}

// The mirror connects, resyncs and reconnects on real threads, in real time, while simulated time
// runs much faster. After anything that lets a link come up (a start, the end of a cut), the
// simulator waits (a bounded while) until both senders mirror, so that what a step finds does not
// depend on how fast this machine ran those threads.
void PairSim::settle_links() {
  if (!settle_needed_) return;
  settle_needed_ = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  for (;;) {
    bool settled = true;
    for (auto& n : nodes_)
      if (can_talk(*n, partner_of(*n)) && n->node->sender()->link().state != interconnect::MirrorState::kMirroring)
        settled = false;
    if (settled || std::chrono::steady_clock::now() > give_up) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // real threads: no event to wait on
  }
}

void PairSim::step(bool faults_on) {
  if (faults_on) inject_faults();
  if (cut_until_ != 0 && now_step_ >= cut_until_) {
    network_.set_faults({});
    cut_until_ = 0;
    settle_needed_ = true;
    note("the interconnect works again");
  }
  for (auto& n : nodes_) {
    if (!n->up() && now_step_ >= n->down_until) {
      ++result_.restarts;
      note("node " + std::to_string(n->id) + " restarts");
      if (!start_node(*n)) {
        ++result_.failed_restarts;
        n->down_until = now_step_ + 10 + below(40);
      } else {
        settle_needed_ = true;
      }
    }
  }
  if (twin_ && (!twin_->up() || now_step_ >= twin_until_)) {
    if (twin_->up()) crash(*twin_, "its operator stops it");
    twin_.reset();
  }
  for (SimNode* n : processes())
    if (!n->clock_frozen || now_step_ >= n->paused_until) n->clock.advance(membership::Millis(kStepMs));
  for (auto& n : nodes_)
    if (now_step_ >= n->paused_until && n->paused_until != 0) {
      n->clock_frozen = false;
      n->paused_until = 0;
      n->net->set_paused(false);
      settle_needed_ = true;  // its links may come up again
    }
  settle_links();
  // The nodes tick in a random order; a paused node does nothing.
  std::vector<SimNode*> order;
  for (SimNode* n : processes())
    if (now_step_ >= n->paused_until && n->clock.now() >= n->node->monitor()->next_tick_at()) order.push_back(n);
  std::shuffle(order.begin(), order.end(), rng_);
  for (SimNode* n : order) tick(*n);
  for (int i = 0; i < 2; ++i)
    if (chance() < 0.6) client_write();
  if (chance() < 0.2) client_read(1 + static_cast<uint32_t>(below(2)), static_cast<uint32_t>(below(kFiles)));
  // A node that must stop (damage found while running, its identity taken) stops as hafsd does.
  for (SimNode* n : processes())
    if (!n->node->fatal().is_ok()) stop_node(*n, n->node->fatal().to_string());
  check_invariants();
  ++now_step_;
  ++result_.steps;
}

void PairSim::final_check() {
  // Heal: nothing is paused or cut, every disk and medium works; the nodes restart.
  if (cut_until_ != 0) network_.set_faults({});
  cut_until_ = 0;
  settle_needed_ = true;
  stop_twin();
  for (auto& n : nodes_) {
    n->paused_until = 0;
    n->clock_frozen = false;
    n->net->set_paused(false);
    n->disk->port().set_faults({});
    n->faults.clear_all();
  }
  for (uint32_t i = 0; i < opt_.heal_steps && result_.ok; ++i) step(/*faults_on=*/false);
  if (!result_.ok) return;
  for (uint32_t v = 1; v <= 2; ++v) {
    if (server_of(v)) {
      for (uint32_t f = 0; f < kFiles; ++f) client_read(v, f);
      continue;
    }
    // Not served: someone must say why (a blocked volume, or a node that refuses to start).
    std::string why;
    for (auto& n : nodes_) {
      if (!n->up()) {
        if (!n->down_reason.empty()) why += "node " + std::to_string(n->id) + " does not start: " + n->down_reason + "; ";
        continue;
      }
      for (const auto& view : n->node->monitor()->status().volumes)
        if (view.id == v && !view.blocked.empty()) why += "node " + std::to_string(n->id) + ": " + view.blocked + "; ";
    }
    if (why.empty())
      violation("vol" + std::to_string(v) + " is served by nobody after " + std::to_string(opt_.heal_steps * kStepMs / 1000) +
                " s without faults, and no node says why");
    else
      result_.unavailable.push_back("vol" + std::to_string(v) + ": " + why);
  }
}

// ---- scripted scenarios (tests) ----

void PairSim::start() {
  for (auto& n : nodes_) HAFS_CHECK(start_node(*n), "the pair starts");
  settle_needed_ = true;
}

void PairSim::steps(uint32_t n) {
  for (uint32_t i = 0; i < n && result_.ok; ++i) step(/*faults_on=*/false);
}

void PairSim::pause(uint32_t id, uint32_t ms, bool clock_stops) {
  SimNode& n = *nodes_[id - 1];
  n.paused_until = now_step_ + ms / kStepMs;
  n.clock_frozen = clock_stops;
  n.net->set_paused(true);
  ++result_.pauses;
  note("node " + std::to_string(id) + " pauses for " + std::to_string(ms) + " ms" + (clock_stops ? " (its clock stops)" : ""));
}

void PairSim::resume(uint32_t id) {
  SimNode& n = *nodes_[id - 1];
  n.paused_until = now_step_;
  n.clock_frozen = false;
  n.net->set_paused(false);
  settle_needed_ = true;
  settle_links();
  note("node " + std::to_string(id) + " resumes");
}

void PairSim::kill(uint32_t id) {
  crash(*nodes_[id - 1], "kill -9");
  nodes_[id - 1]->down_until = UINT64_MAX;  // stays down
}

bool PairSim::restart(uint32_t id) {
  SimNode& n = *nodes_[id - 1];
  n.down_until = now_step_;
  if (!start_node(n)) {
    n.down_until = UINT64_MAX;  // a script decides when to try again
    return false;
  }
  settle_needed_ = true;
  return true;
}

bool PairSim::flip_record(uint32_t id, bool mirror, uint32_t from_end) {
  nvcache::MemStore& store = mirror ? nodes_[id - 1]->mirror : nodes_[id - 1]->nvlog;
  std::vector<std::pair<uint64_t, uint16_t>> records;  // position, key length
  auto scan = nvcache::scan_ring(store, [&](const nvcache::RecordView& v) {
    if (v.header.type == nvcache::RecordType::kWrite && v.header.payload_len > 0)
      records.push_back({v.header.pos, v.header.key_len});
  });
  if (!scan || records.size() <= from_end) return false;
  const auto [pos, key_len] = records[records.size() - 1 - from_end];
  const uint64_t data_bytes = store.size() - nvcache::kDataOffset;
  store.bytes()[nvcache::kDataOffset + pos % data_bytes + nvcache::payload_offset(key_len)] ^= std::byte{0x10};
  ++result_.flips;
  note("a payload byte flips in node " + std::to_string(id) + "'s " + (mirror ? "mirror" : "NV log") +
       " at position " + std::to_string(pos));
  return true;
}

int PairSim::write(uint32_t id, uint32_t volume, uint32_t file, uint32_t off, uint32_t len) {
  SimNode& n = *nodes_[id - 1];
  HAFS_CHECK(n.up(), "a scripted write to a node that is down");
  return write_on(n, volume, file, off, len);
}

void PairSim::check(uint32_t volume, uint32_t file) { client_read(volume, file); }

node::Node* PairSim::node(uint32_t id) { return nodes_[id - 1]->node.get(); }

FaultRegistry& PairSim::faults(uint32_t id) { return nodes_[id - 1]->faults; }

uint32_t PairSim::owner(uint32_t volume) {
  auto block = disk_.peek(membership::ownership_record_name(volume));
  if (!block) return 0;
  auto rec = membership::decode_ownership(*block);
  return rec ? rec->owner : 0;
}

uint64_t PairSim::epoch(uint32_t volume) {
  auto block = disk_.peek(membership::ownership_record_name(volume));
  if (!block) return 0;
  auto rec = membership::decode_ownership(*block);
  return rec ? rec->epoch : 0;
}

bool PairSim::replay_pending(uint32_t volume) {
  auto block = disk_.peek(membership::ownership_record_name(volume));
  if (!block) return false;
  auto rec = membership::decode_ownership(*block);
  return rec && rec->replay_pending();
}

void PairSim::fail_next_record_write(uint32_t id, uint32_t volume) {
  std::lock_guard lock(disk_mu_);
  nodes_[id - 1]->disk->port().fail_next_write_of(membership::ownership_record_name(volume));
}

bool PairSim::start_twin(uint32_t id) {
  stop_twin();
  twin_ = make_node(id, /*twin=*/true);
  twin_until_ = UINT64_MAX;
  ++result_.twins;
  note("a twin of node " + std::to_string(id) + " starts (another process with its identity)");
  if (!start_node(*twin_)) {
    twin_.reset();
    return false;
  }
  return true;
}

void PairSim::stop_twin() {
  if (twin_ && twin_->up()) crash(*twin_, "its operator stops it");
  twin_.reset();
}

node::Node* PairSim::twin() { return twin_ ? twin_->node.get() : nullptr; }

SimResult PairSim::run() {
  for (auto& n : nodes_) HAFS_CHECK(start_node(*n), "the pair starts");
  settle_needed_ = true;
  for (uint32_t i = 0; i < opt_.steps && result_.ok; ++i) step(/*faults_on=*/true);
  if (result_.ok) final_check();
  return result_;
}

}  // namespace hafs::sim
