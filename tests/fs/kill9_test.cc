// kill -9 during writes (I1, I4, I5): a child process writes checksummed, self-identifying 4 KiB
// blocks to several files through the mount and reports every write before it issues it
// (INTENT) and once the syscall returned success (ACK) through a pipe. The test kills hafsd with
// SIGKILL at a seeded random moment, waits for the workload to see the dead mount and exit,
// restarts hafsd (recovery destages the NV log before serving) and checks every block through
// the mount and on the medium:
//   - every acknowledged block holds its latest acknowledged sequence number, or a later one
//     that was in flight at the kill;
//   - nothing is torn or foreign: a block is all zeros (only if never acknowledged) or has a
//     valid CRC and names its own file and index.
// Repeated over several kill/restart cycles on the same files (a crash-and-reopen loop).
//
// The seed is printed and recorded as a test property; HAFS_SEED=<seed> replays the kill delays
// and the workload's choices (the interleaving with the kill itself is up to the scheduler).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "tests/support/hafsd_process.h"

namespace hafs::testing {
namespace {

constexpr size_t kBlockBytes = 4096;
constexpr uint32_t kBlockMagic = 0x4b394b39;  // "9K9K"
constexpr uint64_t kBlocksPerFile = 256;

// The first bytes of every block the workload writes; the rest is derived from the header.
struct BlockHeader {
  uint32_t magic;
  uint32_t file_id;
  uint64_t block_index;
  uint64_t seq;     // unique per write, increasing per file
  uint32_t crc;     // CRC32C of the whole block with this field zero
  uint32_t reserved;
};
static_assert(sizeof(BlockHeader) == 32);

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void make_block(uint32_t file_id, uint64_t index, uint64_t seq, char* out) {
  BlockHeader h{kBlockMagic, file_id, index, seq, 0, 0};
  uint64_t x = seq * 31 + index * 7 + file_id;
  for (size_t i = sizeof h; i < kBlockBytes; i += 8) {
    uint64_t v = splitmix(x);
    std::memcpy(out + i, &v, 8);
  }
  std::memcpy(out, &h, sizeof h);
  h.crc = crc32c(out, kBlockBytes);
  std::memcpy(out, &h, sizeof h);
}

// The sequence number a block holds: 0 for all zeros, -1 (with *why) for torn or foreign bytes.
int64_t block_seq(const char* block, uint32_t file_id, uint64_t index, std::string* why) {
  static const std::vector<char> zeros(kBlockBytes, 0);
  if (std::memcmp(block, zeros.data(), kBlockBytes) == 0) return 0;
  BlockHeader h;
  std::memcpy(&h, block, sizeof h);
  std::vector<char> copy(block, block + kBlockBytes);
  BlockHeader z = h;
  z.crc = 0;
  std::memcpy(copy.data(), &z, sizeof z);
  std::ostringstream o;
  if (h.magic != kBlockMagic) o << "bad magic 0x" << std::hex << h.magic;
  else if (crc32c(copy.data(), kBlockBytes) != h.crc) o << "bad CRC (torn or corrupt), header seq " << h.seq;
  else if (h.file_id != file_id || h.block_index != index)
    o << "foreign block: says file " << h.file_id << " block " << h.block_index;
  else if (h.seq == 0) o << "sequence number 0";
  else return static_cast<int64_t>(h.seq);
  *why = o.str();
  return -1;
}

// One message from the workload to the test, written atomically to a pipe.
struct Msg {
  enum Type : uint32_t { kReady = 1, kIntent = 2, kAck = 3, kError = 4 };
  uint32_t type;
  uint32_t file_id;
  uint64_t block;  // kError: errno
  uint64_t seq;
};
static_assert(sizeof(Msg) <= PIPE_BUF);

struct WorkloadFile {
  std::string mount_path;   // through the mount
  std::string medium_path;  // on the storage medium
  bool write_through = false;
};

bool send(int fd, const Msg& m) { return ::write(fd, &m, sizeof m) == static_cast<ssize_t>(sizeof m); }

// The child process: one thread per file writing blocks until the mount fails. Never returns.
[[noreturn]] void workload_main(const std::vector<WorkloadFile>& files, uint64_t seed, uint32_t cycle,
                                int out) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<int> fds(files.size(), -1);
  std::vector<int> modes(files.size());  // 0: O_DSYNC, 1: write + fsync, 2: write + fdatasync
  std::mt19937_64 setup(seed ^ (uint64_t{cycle} << 20));
  for (size_t f = 0; f < files.size(); ++f) {
    modes[f] = static_cast<int>(setup() % 3);
    fds[f] = ::open(files[f].mount_path.c_str(), O_RDWR | O_CREAT | (modes[f] == 0 ? O_DSYNC : 0), 0644);
    if (fds[f] < 0) {
      send(out, {Msg::kError, static_cast<uint32_t>(f), static_cast<uint64_t>(errno), 0});
      ::_exit(1);
    }
  }
  send(out, {Msg::kReady, 0, 0, 0});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);  // a bound
  std::vector<std::thread> threads;
  for (size_t f = 0; f < files.size(); ++f)
    threads.emplace_back([&, f] {
      std::mt19937_64 rng(seed ^ (uint64_t{cycle} << 20) ^ (f + 1) * 0x100000001b3ull);
      char block[kBlockBytes];
      const auto id = static_cast<uint32_t>(f);
      for (uint64_t n = 1; std::chrono::steady_clock::now() < deadline; ++n) {
        const uint64_t index = rng() % kBlocksPerFile;
        const uint64_t seq = (uint64_t{cycle + 1} << 32) | n;
        make_block(id, index, seq, block);
        if (!send(out, {Msg::kIntent, id, index, seq})) return;
        ssize_t w = ::pwrite(fds[f], block, kBlockBytes, static_cast<off_t>(index * kBlockBytes));
        int err = 0;
        if (w != static_cast<ssize_t>(kBlockBytes)) err = w < 0 ? errno : EIO;  // short: torn
        else if (modes[f] == 1 && ::fsync(fds[f]) != 0) err = errno;
        else if (modes[f] == 2 && ::fdatasync(fds[f]) != 0) err = errno;
        if (err != 0) {
          send(out, {Msg::kError, id, static_cast<uint64_t>(err), seq});
          return;
        }
        if (!send(out, {Msg::kAck, id, index, seq})) return;
      }
    });
  for (auto& t : threads) t.join();
  for (int fd : fds) ::close(fd);  // the dead mount's descriptors go before hafsd restarts
  ::_exit(0);
}

// What the test knows about the blocks: the sequence number each held at the last check (0:
// zeros) and, for the cycle running now, the intents and acknowledgements the workload sent.
struct Model {
  std::vector<std::vector<uint64_t>> checked;           // [file][block]
  std::vector<std::vector<uint64_t>> last_ack;          // [file][block], 0: none this cycle
  std::vector<std::vector<std::set<uint64_t>>> intents; // [file][block] this cycle
  uint64_t acks_total = 0;

  explicit Model(size_t files)
      : checked(files, std::vector<uint64_t>(kBlocksPerFile, 0)),
        last_ack(files, std::vector<uint64_t>(kBlocksPerFile, 0)),
        intents(files, std::vector<std::set<uint64_t>>(kBlocksPerFile)) {}

  void new_cycle() {
    for (auto& f : last_ack) std::fill(f.begin(), f.end(), 0);
    for (auto& f : intents)
      for (auto& b : f) b.clear();
  }

  // Whether `seq` may be in block (f, b) now; *why says what was expected otherwise.
  bool allowed(size_t f, size_t b, uint64_t seq, std::string* why) const {
    const uint64_t ack = last_ack[f][b];
    if (ack != 0) {
      if (seq == ack || (seq > ack && intents[f][b].count(seq))) return true;
      *why = "latest acknowledged seq is " + std::to_string(ack) + " (the block holds " +
             (seq == 0 ? std::string("zeros") : std::to_string(seq)) + ")";
      return false;
    }
    if (seq == checked[f][b] || intents[f][b].count(seq)) return true;
    *why = "no write to it was acknowledged in this cycle, so it must hold " +
           (checked[f][b] ? "seq " + std::to_string(checked[f][b]) : std::string("zeros")) +
           " or an in-flight write; it holds " + std::to_string(seq);
    return false;
  }
};

std::string slurp(const std::string& path, bool* exists) {
  std::ifstream in(path, std::ios::binary);
  *exists = static_cast<bool>(in);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Checks every file as read from `where` (mount or medium paths) against the model; records the
// blocks' sequence numbers in *seen. Adds a gtest failure per bad block (at most a few per file).
void check_files(const std::vector<WorkloadFile>& files, bool on_medium, const Model& model,
                 std::vector<std::vector<uint64_t>>* seen, const std::string& context) {
  for (size_t f = 0; f < files.size(); ++f) {
    bool exists = false;
    const std::string& path = on_medium ? files[f].medium_path : files[f].mount_path;
    const std::string data = slurp(path, &exists);
    const std::string where = context + (on_medium ? ", medium " : ", mount ") + path;
    if (!exists) {
      for (size_t b = 0; b < kBlocksPerFile; ++b)
        EXPECT_EQ(model.last_ack[f][b], 0u) << where << " is missing but block " << b << " was acknowledged";
      (*seen)[f].assign(kBlocksPerFile, 0);
      continue;
    }
    EXPECT_EQ(data.size() % kBlockBytes, 0u) << where << ": size " << data.size() << " is not whole blocks";
    EXPECT_LE(data.size(), kBlocksPerFile * kBlockBytes) << where << ": larger than any block written";
    int bad = 0;
    for (size_t b = 0; b < kBlocksPerFile && bad < 5; ++b) {
      std::vector<char> block(kBlockBytes, 0);
      if (b * kBlockBytes < data.size())
        std::memcpy(block.data(), data.data() + b * kBlockBytes,
                    std::min(kBlockBytes, data.size() - b * kBlockBytes));
      std::string why;
      const int64_t seq = block_seq(block.data(), static_cast<uint32_t>(f), b, &why);
      if (seq < 0) {
        ADD_FAILURE() << where << " block " << b << ": " << why;
        ++bad;
        continue;
      }
      (*seen)[f][b] = static_cast<uint64_t>(seq);
      if (!model.allowed(f, b, static_cast<uint64_t>(seq), &why)) {
        ADD_FAILURE() << where << " block " << b << ": " << why;
        ++bad;
      }
    }
  }
}

uint64_t test_seed() {
  if (const char* s = std::getenv("HAFS_SEED"); s && *s) return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

// Runs `cycles` kill/restart cycles of the workload on `spec`'s volumes.
void run_kill9_cycles(HafsdSpec spec, int cycles) {
  const uint64_t seed = test_seed();
  std::printf("kill9 seed %" PRIu64 " (replay: HAFS_SEED=%" PRIu64 "), %d cycles\n", seed, seed, cycles);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);

  HafsdProcess node(spec);
  std::vector<WorkloadFile> files;
  for (const auto& [vol, mode] : spec.volumes)
    for (int i = 0; i < (mode == "staged" ? 3 : 1); ++i) {
      const std::string rel = vol + "/blocks" + std::to_string(i);
      files.push_back({node.path(rel), node.volume_dir(vol) + "/blocks" + std::to_string(i),
                       mode == "write-through"});
    }
  Model model(files.size());
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;

  for (int cycle = 0; cycle < cycles; ++cycle) {
    const auto t0 = std::chrono::steady_clock::now();
    model.new_cycle();
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    std::fflush(nullptr);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(pipe_fds[0]);
      workload_main(files, seed, static_cast<uint32_t>(cycle), pipe_fds[1]);
    }
    ::close(pipe_fds[1]);

    // The workload's messages, read as they come (the pipe must not fill up).
    std::vector<Msg> msgs;
    std::atomic<bool> ready{false}, killed{false};
    std::atomic<uint64_t> acks_seen{0};
    std::vector<std::string> errors_before_kill, errors_after_kill;
    std::thread reader([&] {
      Msg m;
      size_t have = 0;
      for (;;) {
        ssize_t n = ::read(pipe_fds[0], reinterpret_cast<char*>(&m) + have, sizeof m - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += static_cast<size_t>(n);
        if (have < sizeof m) continue;
        have = 0;
        if (m.type == Msg::kReady) ready = true;
        if (m.type == Msg::kAck) ++acks_seen;
        if (m.type == Msg::kError) {
          const std::string e = "file " + std::to_string(m.file_id) + ": " + std::strerror(static_cast<int>(m.block));
          (killed ? errors_after_kill : errors_before_kill).push_back(e);
        }
        msgs.push_back(m);
      }
    });

    // Kill at a seeded random moment once the workload has its files open and writes.
    const auto ready_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (acks_seen == 0 && std::chrono::steady_clock::now() < ready_deadline) {
      int st = 0;
      if (::waitpid(child, &st, WNOHANG) == child) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto delay = std::chrono::milliseconds(rng() % 1500);
    std::this_thread::sleep_for(delay);  // the random kill moment: not synchronisation
    killed = true;
    node.kill9();

    // The workload must notice the dead mount and exit by itself.
    int status = 0;
    bool exited = false;
    const auto exit_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < exit_deadline) {
      if (::waitpid(child, &status, WNOHANG) == child) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
    }
    reader.join();
    ::close(pipe_fds[0]);
    ASSERT_TRUE(exited) << "the workload hung on the dead mount (seed " << seed << ")";
    ASSERT_TRUE(ready) << "the workload did not open its files (seed " << seed << ")";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "workload status " << status;
    EXPECT_TRUE(errors_before_kill.empty()) << "writes failed before the kill (seed " << seed << "): "
                                            << errors_before_kill.front();

    uint64_t acks = 0, intents = 0;
    for (const Msg& m : msgs) {
      if (m.type == Msg::kIntent) {
        model.intents[m.file_id][m.block].insert(m.seq);
        ++intents;
      } else if (m.type == Msg::kAck) {
        uint64_t& a = model.last_ack[m.file_id][m.block];
        ASSERT_GT(m.seq, a);  // one writer per file: acknowledgements come in order
        a = m.seq;
        ++acks;
      }
    }
    model.acks_total += acks;
    EXPECT_GT(acks, 0u) << "cycle " << cycle << ": the workload acknowledged nothing";

    // Restart: recovery destages the NV log before the mount appears.
    ASSERT_TRUE(node.start(&why)) << why;
    const std::string context = "cycle " + std::to_string(cycle) + " (seed " + std::to_string(seed) + ")";
    std::vector<std::vector<uint64_t>> through_mount(files.size(), std::vector<uint64_t>(kBlocksPerFile, 0));
    std::vector<std::vector<uint64_t>> on_medium = through_mount;
    check_files(files, false, model, &through_mount, context);
    // Nothing is staged now (recovery destaged it, nothing wrote since): the medium agrees.
    check_files(files, true, model, &on_medium, context);
    EXPECT_EQ(through_mount, on_medium) << context << ": mount and medium disagree";
    if (::testing::Test::HasFailure()) {
      std::printf("daemon log:\n%s\n", node.log().c_str());
      return;
    }
    model.checked = through_mount;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("cycle %d: killed %lld ms after the first acknowledgement; %" PRIu64 " acknowledged writes, %" PRIu64
                " in flight at the kill (%s); cycle took %.2f s\n",
                cycle, static_cast<long long>(delay.count()), acks, intents - acks,
                errors_after_kill.empty() ? "no errors" : errors_after_kill.front().c_str(), secs);
    std::fflush(stdout);
  }

  // A clean stop destages everything: the medium holds exactly what the last check saw.
  ASSERT_EQ(node.stop(), 0) << node.log();
  model.new_cycle();
  std::vector<std::vector<uint64_t>> final_medium(files.size(), std::vector<uint64_t>(kBlocksPerFile, 0));
  check_files(files, true, model, &final_medium, "after the clean stop");
  EXPECT_EQ(final_medium, model.checked);
  std::printf("kill9: %" PRIu64 " acknowledged writes verified over %d cycles\n", model.acks_total, cycles);
}

TEST(Kill9Test, CrashAndRestartLoopPmemLog) {
  HafsdSpec spec;
  spec.volumes = {{"vol0", "staged"}, {"wt", "write-through"}};
  run_kill9_cycles(spec, 10);
}

TEST(Kill9Test, CrashAndRestartFileModeLogOnDisk) {
  HafsdSpec spec;
  spec.nvlog_mode = "file";
  spec.nvlog_dir = "/tmp";
  spec.volumes = {{"vol0", "staged"}};
  run_kill9_cycles(spec, 2);
}

}  // namespace
}  // namespace hafs::testing
