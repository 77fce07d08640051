// Real-process crash tests of the NV log: the hafs-nvlog tool appends with several threads and
// prints every acknowledged write; it is killed with SIGKILL at a random moment, or crashes
// itself at a named fault site; then the ring is scanned here and every acknowledged record
// must be in it, intact, with the LSN, object and offset it was acknowledged with (I1, I5).
//
// The kill moments, fault points and sizes come from one seeded generator: the seed is printed,
// and HAFS_SEED=<seed> replays a failing run.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "nvcache/store.h"
#include "tests/nvcache/scratch_dir.h"

#ifndef HAFS_NVLOG_BIN
#error "HAFS_NVLOG_BIN must name the hafs-nvlog binary"
#endif

namespace hafs::nvcache {
namespace {

using testing::ScratchDir;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

uint64_t base_seed() {
  static const uint64_t seed = [] {
    const char* env = std::getenv("HAFS_SEED");
    return env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  }();
  return seed;
}

// Every test draws from its own generator derived from the base seed, so one test replays the
// same way whether it runs alone (ctest runs them one per process) or with the others.
std::mt19937_64 rng_for_test() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const uint64_t seed = base_seed();
  std::printf("%s.%s: seed %" PRIu64 " (replay with HAFS_SEED=%" PRIu64 ")\n",
              info->test_suite_name(), info->name(), seed, seed);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::seed_seq seq{seed, uint64_t{std::hash<std::string>{}(info->name())}};
  return std::mt19937_64(seq);
}

uint64_t uniform(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
}

// One hafs-nvlog process with its stdout on a pipe. The destructor kills (SIGKILL, by pid) and
// reaps it if it is still there, so a failed assertion never leaves a process behind; and the
// child asks the kernel to kill it should this test process die first.
class ToolProcess {
 public:
  explicit ToolProcess(const std::vector<std::string>& args) {
    std::vector<std::string> full{HAFS_NVLOG_BIN};
    full.insert(full.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : full) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fds[2];
    HAFS_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "pipe2 failed");
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    HAFS_CHECK(pid_ >= 0, "fork failed");
    if (pid_ == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      ::dup2(fds[1], STDOUT_FILENO);  // the duplicate does not inherit O_CLOEXEC
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    out_fd_ = fds[0];
  }
  ~ToolProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  ToolProcess(const ToolProcess&) = delete;
  ToolProcess& operator=(const ToolProcess&) = delete;

  // Collects stdout until the process closes it (returns true) or `deadline` passes.
  bool read_until(Clock::time_point deadline) {
    while (!eof_) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{out_fd_, POLLIN, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR) continue;
      HAFS_CHECK(n >= 0, "poll failed");
      if (n == 0) continue;
      char buf[65536];
      const ssize_t got = ::read(out_fd_, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      HAFS_CHECK(got >= 0, "read from the tool's pipe failed");
      if (got == 0) eof_ = true;
      out_.append(buf, static_cast<size_t>(got));
    }
    return true;
  }
  void kill_now() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }
  // Reaps the process; returns its wait status.
  int wait() {
    if (pid_ > 0) {
      while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    return status_;
  }
  const std::string& output() const { return out_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool eof_ = false;
  int status_ = 0;
  std::string out_;
};

bool killed_by_sigkill(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
bool exited_ok(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// Runs the tool to completion and returns its exit status and output.
std::pair<int, std::string> run_tool(const std::vector<std::string>& args) {
  ToolProcess p(args);
  const bool done = p.read_until(Clock::now() + std::chrono::seconds(60));
  if (!done) p.kill_now();
  const int status = p.wait();
  return {status, p.output()};
}

struct Ack {
  uint64_t lsn;
  std::string object;
  uint64_t offset;
  uint32_t crc;
  int life;
};

// Parses the "ack LSN OBJECT OFFSET CRC" lines; a last line cut off by the kill is ignored
// (its write was acknowledged to nobody).
std::vector<Ack> parse_acks(const std::string& out, int life) {
  std::vector<Ack> acks;
  size_t start = 0;
  for (size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
    const std::string line = out.substr(start, nl - start);
    char object[200];
    Ack a{0, "", 0, 0, life};
    EXPECT_EQ(std::sscanf(line.c_str(), "ack %" SCNu64 " %199s %" SCNu64 " %" SCNx32, &a.lsn,
                          object, &a.offset, &a.crc),
              4)
        << "unexpected tool output line: " << line;
    a.object = object;
    acks.push_back(a);
  }
  return acks;
}

struct Found {
  std::string key;
  uint64_t offset;
  uint32_t crc;  // recomputed here from the payload bytes
  uint32_t session;
};

struct Scan {
  RecoveredRing ring;
  std::map<uint64_t, Found> by_lsn;
};

Scan scan_store(StoreMode mode, const std::string& path) {
  Scan out;
  auto store = open_store(mode, path, 0);
  EXPECT_TRUE(store.is_ok()) << store.status().to_string();
  if (!store.is_ok()) return out;
  auto rec = scan_ring(**store, [&](const RecordView& v) {
    const bool fresh = out.by_lsn
                           .emplace(v.header.lsn,
                                    Found{std::string(reinterpret_cast<const char*>(v.key.data()),
                                                      v.key.size()),
                                          v.header.file_offset, crc32c(v.payload),
                                          v.header.session})
                           .second;
    EXPECT_TRUE(fresh) << "LSN " << v.header.lsn << " returned twice";
  });
  EXPECT_TRUE(rec.is_ok()) << rec.status().to_string();
  if (rec.is_ok()) out.ring = *rec;
  return out;
}

// The checks of every trial: the scan ends cleanly or at a torn record (a crash never leaves a
// corrupt record or an LSN gap), the valid records are LSN-contiguous, and every acknowledged
// write is there with what was acknowledged.
void check_ring(StoreMode mode, const std::string& path, const std::vector<Ack>& acks,
                Scan* scan_out = nullptr) {
  Scan scan = scan_store(mode, path);
  const RecoveredRing& r = scan.ring;
  EXPECT_TRUE(r.end == ScanEnd::kClean || r.end == ScanEnd::kTorn)
      << scan_end_name(r.end) << ": " << r.end_message;
  EXPECT_EQ(scan.by_lsn.size(), r.records);
  // Nothing destages and the ring never wraps here, so there are no PAD records: LSNs from the
  // trim point up are all there.
  EXPECT_EQ(r.records, r.next_lsn - r.header.trim_lsn);
  std::set<uint64_t> acked_lsns;
  size_t missing = 0;
  for (const Ack& a : acks) {
    EXPECT_TRUE(acked_lsns.insert(a.lsn).second) << "LSN " << a.lsn << " acknowledged twice";
    auto it = scan.by_lsn.find(a.lsn);
    if (it == scan.by_lsn.end()) {
      if (++missing <= 5)
        ADD_FAILURE() << "acknowledged LSN " << a.lsn << " (life " << a.life << ", " << a.object
                      << " @" << a.offset << ") is not in the ring; scan: " << r.records
                      << " records, " << scan_end_name(r.end) << ": " << r.end_message;
      continue;
    }
    EXPECT_EQ(it->second.key, a.object) << "LSN " << a.lsn;
    EXPECT_EQ(it->second.offset, a.offset) << "LSN " << a.lsn;
    EXPECT_EQ(it->second.crc, a.crc) << "LSN " << a.lsn << ": payload differs from the acked one";
  }
  EXPECT_EQ(missing, 0u) << "of " << acks.size() << " acknowledged records";
  if (scan_out) *scan_out = std::move(scan);
}

std::string mode_arg(StoreMode mode) { return store_mode_name(mode); }

void format_ring(StoreMode mode, const std::string& path, uint64_t size) {
  auto [status, out] = run_tool({"format", "--store", path, "--size", std::to_string(size),
                                 "--mode", mode_arg(mode)});
  ASSERT_TRUE(exited_ok(status)) << "format failed (" << status << "): " << out;
}

struct AppendRun {
  std::vector<Ack> acks;
  int status = 0;
};

std::vector<std::string> append_args(StoreMode mode, const std::string& path, uint64_t count,
                                     uint32_t payload, uint64_t seed) {
  return {"append",  "--store",   path, "--mode", mode_arg(mode), "--count", std::to_string(count),
          "--threads", "4", "--payload", std::to_string(payload), "--seed", std::to_string(seed)};
}

// Makes the append crash at `site` once `after` writes were acknowledged.
void arm_crash(std::vector<std::string>& args, const std::string& site, uint64_t after) {
  args.insert(args.end(), {"--fault", site + "=crash", "--fault-after", std::to_string(after)});
}

// Starts an append and SIGKILLs it `kill_after` after it started (the deliberate random
// moment; it may also finish before).
AppendRun append_then_kill(const std::vector<std::string>& args, milliseconds kill_after, int life) {
  AppendRun run;
  ToolProcess p(args);
  const bool finished = p.read_until(Clock::now() + kill_after);
  if (!finished) {
    p.kill_now();
    EXPECT_TRUE(p.read_until(Clock::now() + std::chrono::seconds(30)))
        << "the killed tool's stdout did not close";
  }
  run.status = p.wait();
  EXPECT_TRUE(killed_by_sigkill(run.status) || exited_ok(run.status))
      << "tool died otherwise (status " << run.status << ")";
  run.acks = parse_acks(p.output(), life);
  return run;
}

// Starts an append with a crash fault armed and waits for the tool to kill itself.
AppendRun append_until_fault(const std::vector<std::string>& args, int life) {
  AppendRun run;
  ToolProcess p(args);
  EXPECT_TRUE(p.read_until(Clock::now() + std::chrono::seconds(30)))
      << "the tool neither crashed nor finished";
  run.status = p.wait();
  run.acks = parse_acks(p.output(), life);
  return run;
}

constexpr uint64_t kRingBytes = 32ull << 20;

// Records of `payload` bytes that fit the ring with room to spare (nothing trims it here).
uint64_t fitting_records(uint32_t payload, uint64_t ring_bytes = kRingBytes) {
  const uint64_t span = align_up(payload_offset(8) + payload, kRecordAlign);
  return (ring_bytes - kDataOffset) / span * 9 / 10;
}

class CrashTest : public ::testing::Test {
 protected:
  std::mt19937_64 rng_ = rng_for_test();
};

TEST_F(CrashTest, KillAtRandomMomentKeepsEveryAckedRecord) {
  ScratchDir dir("/dev/shm");
  constexpr int kTrials = 20;
  size_t total_acks = 0, killed = 0;
  for (int trial = 0; trial < kTrials; ++trial) {
    const std::string path = dir.file("ring" + std::to_string(trial));
    const uint32_t payload = std::array<uint32_t, 4>{64, 512, 3000, 4096}[uniform(rng_, 0, 3)];
    const uint64_t count = std::min<uint64_t>(100000, fitting_records(payload));
    const auto delay = milliseconds(uniform(rng_, 0, 150));
    SCOPED_TRACE("trial " + std::to_string(trial) + ": payload " + std::to_string(payload) +
                 ", kill after " + std::to_string(delay.count()) + " ms");
    ASSERT_NO_FATAL_FAILURE(format_ring(StoreMode::kPmem, path, kRingBytes));
    AppendRun run = append_then_kill(
        append_args(StoreMode::kPmem, path, count, payload, uniform(rng_, 1, 1u << 30)), delay, 0);
    check_ring(StoreMode::kPmem, path, run.acks);
    total_acks += run.acks.size();
    killed += killed_by_sigkill(run.status);
    std::filesystem::remove(path);
  }
  std::printf("%zu acknowledged records checked, %zu of %d runs killed mid-way\n", total_acks,
              killed, kTrials);
  EXPECT_GT(total_acks, 0u) << "no run acknowledged anything: nothing was tested";
  EXPECT_GT(killed, 0u) << "no run was killed: nothing was tested";
}

TEST_F(CrashTest, CrashAtEachLogFaultSiteKeepsEveryAckedRecord) {
  ScratchDir dir("/dev/shm");
  for (const char* site : {"log.after_reserve", "log.after_fill", "log.after_local_persist"}) {
    for (int trial = 0; trial < 4; ++trial) {
      const std::string path = dir.file(std::string(site) + std::to_string(trial));
      const uint64_t after = uniform(rng_, 1, 3000);
      const uint32_t payload = static_cast<uint32_t>(uniform(rng_, 1, 4096));
      SCOPED_TRACE(std::string(site) + " after " + std::to_string(after) + " acks, payload " +
                   std::to_string(payload));
      ASSERT_NO_FATAL_FAILURE(format_ring(StoreMode::kPmem, path, kRingBytes));
      auto args = append_args(StoreMode::kPmem, path, after + 2000, payload,
                              uniform(rng_, 1, 1u << 30));
      arm_crash(args, site, after);
      AppendRun run = append_until_fault(args, 0);
      EXPECT_TRUE(killed_by_sigkill(run.status))
          << "the fault did not crash the tool (status " << run.status << ")";
      EXPECT_GE(run.acks.size(), after);
      EXPECT_LT(run.acks.size(), after + 2000);
      // At log.after_local_persist the crashing record was persisted, never acknowledged:
      // recovery may find it (unless an earlier LSN was still being written), never needs to.
      check_ring(StoreMode::kPmem, path, run.acks);
      std::filesystem::remove(path);
    }
  }
}

// One ring through several lives: each is killed (at a random moment or at a fault site), the
// next reopens the ring and appends after what survived. Records acked in every life must be
// there at the end; LSNs continue across lives, and each life writes under a newer session.
TEST_F(CrashTest, CrashAndReopenLoopKeepsEveryLife) {
  ScratchDir dir("/dev/shm");
  const std::string path = dir.file("ring");
  constexpr uint64_t kLoopRing = 64ull << 20;
  constexpr uint32_t kPayload = 200;
  constexpr int kLives = 8;
  const uint64_t per_life = fitting_records(kPayload, kLoopRing) / kLives;
  ASSERT_NO_FATAL_FAILURE(format_ring(StoreMode::kPmem, path, kLoopRing));
  int killed_mid_run = 0;
  std::vector<Ack> all;
  uint64_t max_acked_lsn = 0;
  uint32_t last_session = 0;
  for (int life = 1; life <= kLives; ++life) {
    auto args = append_args(StoreMode::kPmem, path, per_life, kPayload, uniform(rng_, 1, 1u << 30));
    AppendRun run;
    if (life % 3 == 0) {
      static const char* kSites[] = {"log.after_reserve", "log.after_fill",
                                     "log.after_local_persist"};
      const std::string site = kSites[uniform(rng_, 0, 2)];
      const uint64_t after = uniform(rng_, 1, per_life / 2);
      SCOPED_TRACE("life " + std::to_string(life) + ": " + site + " after " +
                   std::to_string(after));
      arm_crash(args, site, after);
      run = append_until_fault(args, life);
      EXPECT_TRUE(killed_by_sigkill(run.status)) << "status " << run.status;
    } else {
      const auto delay = milliseconds(uniform(rng_, 5, 100));
      SCOPED_TRACE("life " + std::to_string(life) + ": kill after " +
                   std::to_string(delay.count()) + " ms");
      run = append_then_kill(args, delay, life);
      killed_mid_run += killed_by_sigkill(run.status);
    }
    for (const Ack& a : run.acks)
      EXPECT_GT(a.lsn, max_acked_lsn) << "life " << life << " reused an LSN of an earlier life";
    for (const Ack& a : run.acks) max_acked_lsn = std::max(max_acked_lsn, a.lsn);
    all.insert(all.end(), run.acks.begin(), run.acks.end());
    Scan scan;
    check_ring(StoreMode::kPmem, path, all, &scan);
    // Every record a life acknowledged carries that life's session, newer than the last one.
    std::set<uint32_t> sessions;
    for (const Ack& a : run.acks)
      if (auto it = scan.by_lsn.find(a.lsn); it != scan.by_lsn.end())
        sessions.insert(it->second.session);
    if (!run.acks.empty()) {
      ASSERT_EQ(sessions.size(), 1u) << "life " << life;
      EXPECT_GT(*sessions.begin(), last_session) << "life " << life;
      last_session = *sessions.begin();
    }
    std::printf("life %d: %zu acks, ring has %" PRIu64 " records, %s\n", life, run.acks.size(),
                scan.ring.records, scan_end_name(scan.ring.end));
  }
  std::printf("%d of %d lives killed at a random moment mid-run\n", killed_mid_run,
              kLives - kLives / 3);
  EXPECT_GT(all.size(), 0u);
  EXPECT_GT(last_session, 1u) << "fewer than two lives acknowledged anything";
}

TEST_F(CrashTest, FileStoreKillAndFaultKeepEveryAckedRecord) {
  ScratchDir dir("/tmp");
  constexpr uint64_t kFileRing = 8ull << 20;
  size_t total_acks = 0;
  int killed = 0;
  constexpr int kTrials = 4;
  for (int trial = 0; trial < kTrials; ++trial) {
    const std::string path = dir.file("ring" + std::to_string(trial));
    const uint32_t payload = static_cast<uint32_t>(uniform(rng_, 100, 4096));
    const uint64_t count = fitting_records(payload, kFileRing);
    ASSERT_NO_FATAL_FAILURE(format_ring(StoreMode::kFile, path, kFileRing));
    auto args = append_args(StoreMode::kFile, path, count, payload, uniform(rng_, 1, 1u << 30));
    AppendRun run;
    if (trial == kTrials - 1) {
      const uint64_t after = uniform(rng_, 1, 500);
      SCOPED_TRACE("last trial: log.after_local_persist after " + std::to_string(after));
      arm_crash(args, "log.after_local_persist", after);
      run = append_until_fault(args, 0);
      EXPECT_TRUE(killed_by_sigkill(run.status)) << "status " << run.status;
    } else {
      const auto delay = milliseconds(uniform(rng_, 20, 250));
      SCOPED_TRACE("trial " + std::to_string(trial) + ": kill after " +
                   std::to_string(delay.count()) + " ms");
      run = append_then_kill(args, delay, 0);
    }
    check_ring(StoreMode::kFile, path, run.acks);
    total_acks += run.acks.size();
    killed += killed_by_sigkill(run.status);
  }
  std::printf("%zu acknowledged records checked, %d of %d runs killed mid-way\n", total_acks,
              killed, kTrials);
  EXPECT_GT(total_acks, 0u);
}


// In process, with exact control: two crashes with records of different sizes. Life 1 leaves
// persisted, unacknowledged records (LSN 3, 4) beyond a hole (LSN 2, reserved, never written);
// life 2 appends one larger record at LSN 2 that ends exactly where old LSN 4 starts, then
// crashes. The stale LSN 4 of session 1 is where the valid log ends: a clean end, not a gap.
TEST(ReopenAfterCrashTest, StaleRecordOfACrashedSessionIsACleanEnd) {
  MemStore store(kDataOffset + 64 * 1024);
  ASSERT_TRUE(Log::format(store, 1, 42).is_ok());
  const std::string key = "k";
  const auto spec = [&](const std::vector<std::byte>& payload) {
    return AppendSpec{.volume_id = 1,
                      .epoch = 1,
                      .key = std::span(reinterpret_cast<const std::byte*>(key.data()), key.size()),
                      .file_offset = 0,
                      .payload = payload};
  };
  const auto open_log = [&](RecoveredRing* rec) -> std::unique_ptr<Log> {
    auto scanned = scan_ring(store, [](const RecordView&) {});
    EXPECT_TRUE(scanned.is_ok());
    if (!scanned.is_ok()) return nullptr;
    *rec = *scanned;
    auto log = Log::open(store, *scanned, {});
    EXPECT_TRUE(log.is_ok()) << log.status().to_string();
    return log.is_ok() ? std::move(*log) : nullptr;
  };
  const std::vector<std::byte> small(100, std::byte{1});
  RecoveredRing rec;
  uint64_t hole_pos = 0, stale_pos = 0;
  {  // life 1
    auto log = open_log(&rec);
    ASSERT_NE(log, nullptr);
    ASSERT_TRUE(log->append(spec(small)).is_ok());  // LSN 1, acknowledged
    auto hole = log->reserve(1, 100);               // LSN 2: the writer dies before filling
    auto c = log->reserve(1, 100);                  // LSN 3, 4: filled and persisted, never
    auto d = log->reserve(1, 100);                  // acknowledged (they wait for LSN 2)
    ASSERT_TRUE(hole.is_ok() && c.is_ok() && d.is_ok());
    ASSERT_TRUE(log->fill(*c, spec(small)).is_ok() && log->persist(*c).is_ok());
    ASSERT_TRUE(log->fill(*d, spec(small)).is_ok() && log->persist(*d).is_ok());
    hole_pos = hole->pos;
    stale_pos = d->pos;
  }
  {  // life 2
    auto log = open_log(&rec);
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(rec.end, ScanEnd::kClean) << rec.end_message;
    EXPECT_EQ(rec.next_lsn, 2u);
    // One record covering the old LSN 2 and 3: the next record would start at old LSN 4.
    const std::vector<std::byte> big(stale_pos - hole_pos - payload_offset(1), std::byte{2});
    auto r = log->append(spec(big));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->lsn, 2u);
    ASSERT_EQ(r->end_pos(), stale_pos);
  }
  std::vector<uint64_t> lsns;
  auto after = scan_ring(store, [&](const RecordView& v) { lsns.push_back(v.header.lsn); });
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ(lsns, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(after->end, ScanEnd::kClean) << scan_end_name(after->end) << ": " << after->end_message;
  EXPECT_EQ(after->next_lsn, 3u);
}

}  // namespace
}  // namespace hafs::nvcache
