// The failover test pair (DESIGN.md "Takeover, resync, giveback", docs/membership.md): two
// hafsd processes share one storage medium (a directory with both volumes and the membership
// records) and mirror their NV logs to each other. Node 1 is vol1's home, node 2 vol2's. The
// tests kill -9, freeze (SIGSTOP), partition and fail the survivor's destage, and check after
// every fault:
//   - I1/I3: every acknowledged write is there (through the surviving node's mount, and on the
//     medium after a clean stop), with hafs-ackcheck verify;
//   - I2: a watcher polls both nodes' `hafsctl status --json` all along and fails the test if
//     a volume is served by both nodes at once, if one (volume, epoch) is served by two nodes,
//     or if a node's view of an epoch goes back.
// No timing is asserted; the takeover time (kill -> served) is recorded as a test property.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "tests/support/control_status.h"
#include "tests/support/hafsd_process.h"
#include "tests/support/run_program.h"
#include "tests/support/wait.h"

#if !defined(HAFSCTL_BIN) || !defined(ACKCHECK_BIN)
#error "HAFSCTL_BIN and ACKCHECK_BIN must name the hafsctl and hafs-ackcheck binaries"
#endif


namespace hafs::testing::failover {

using hafs::testing::eventually;
using hafs::testing::HafsdProcess;
using hafs::testing::HafsdSpec;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;


inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

using RunResult = ProgramResult;

// Runs `args` (argv[0] an absolute path) to completion, at most `limit`.
inline RunResult run(const std::vector<std::string>& args, std::chrono::milliseconds limit = 60s) {
  return run_program(args, limit);
}

using hafs::testing::status_of;

inline json volume_row(const json& status, const std::string& name) {
  if (status.contains("volumes"))
    for (const auto& v : status["volumes"])
      if (v.value("name", "") == name) return v;
  return json::object();
}

// ---- the acknowledged-write workload: hafs-ackcheck's block format, acks with a timestamp ----

inline constexpr size_t kBlock = 4096;
inline constexpr char kMagic[8] = {'H', 'A', 'F', 'S', 'B', 'L', 'K', '1'};

// Exactly hafs-ackcheck's block (tools/ackcheck_main.cc), so that `hafs-ackcheck verify` checks it.
inline void make_block(uint32_t file, uint32_t block, uint64_t seq, char* buf) {
  std::memcpy(buf, kMagic, 8);
  std::memcpy(buf + 8, &file, 4);
  std::memcpy(buf + 12, &block, 4);
  std::memcpy(buf + 16, &seq, 8);
  std::mt19937 pattern(static_cast<uint32_t>(seq * 2654435761u + file * 40503u + block));
  for (size_t i = 24; i < kBlock - 4; ++i) buf[i] = static_cast<char>(pattern());
  const uint32_t crc = hafs::crc32c(buf, kBlock - 4);
  std::memcpy(buf + kBlock - 4, &crc, 4);
}

// One message of the writer child: an acknowledged write (err 0) or the error that ended it.
struct AckMsg {
  uint32_t file, block;
  uint64_t seq;
  int64_t issued_ns;    // CLOCK_MONOTONIC when pwrite was called
  int64_t returned_ns;  // CLOCK_MONOTONIC when pwrite returned
  int32_t err;
  uint32_t pad;
};
static_assert(sizeof(AckMsg) <= PIPE_BUF);

// A forked child writing checksummed 4 KiB blocks with O_DSYNC to `files` files under `dir`;
// after every pwrite it reports the outcome through a pipe, stamped with the time pwrite
// returned. It stops at the first failed write. The child uses only system calls and memory
// prepared before the fork (the test process has threads).
// Sequence numbers start at `first_seq`. hafs-ackcheck accepts a block whose sequence number is
// at least the acknowledged one, so a second writer over the same blocks with a higher
// `first_seq` leaves the first writer's acknowledgements verifiable, while a block that goes back
// to the first writer's data fails the second writer's verify (OLDER).
class AckWriter {
 public:
  AckWriter(std::string dir, uint64_t seed, uint32_t files = 4, uint32_t blocks = 64, uint64_t first_seq = 1)
      : dir_(std::move(dir)), seed_(seed), files_(files), blocks_(blocks), first_seq_(first_seq) {}
  ~AckWriter() { stop(); }

  bool start() {
    std::vector<std::string> paths;
    for (uint32_t f = 0; f < files_; ++f) paths.push_back(dir_ + "/ackcheck-" + std::to_string(f) + ".dat");
    std::vector<char> buf(kBlock);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    started_ns_ = mono_ns();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      int out[64];
      for (uint32_t f = 0; f < files_ && f < 64; ++f) {
        out[f] = ::open(paths[f].c_str(), O_CREAT | O_WRONLY | O_DSYNC | O_CLOEXEC, 0644);
        if (out[f] < 0) {
          AckMsg m{f, 0, 0, mono_ns(), mono_ns(), errno ? errno : EIO, 0};
          (void)!::write(fds[1], &m, sizeof m);
          ::_exit(2);
        }
      }
      std::mt19937_64 rng(seed_);
      for (uint64_t seq = first_seq_;; ++seq) {
        const uint32_t f = static_cast<uint32_t>(rng() % files_), b = static_cast<uint32_t>(rng() % blocks_);
        make_block(f, b, seq, buf.data());
        const int64_t issued = mono_ns();
        const ssize_t n = ::pwrite(out[f], buf.data(), kBlock, static_cast<off_t>(b) * kBlock);
        const int err = n == static_cast<ssize_t>(kBlock) ? 0 : n < 0 ? errno : EIO;
        AckMsg m{f, b, seq, issued, mono_ns(), err, 0};
        if (::write(fds[1], &m, sizeof m) != sizeof m) ::_exit(4);
        if (err) ::_exit(3);
      }
    }
    ::close(fds[1]);
    if (pid_ < 0) {
      ::close(fds[0]);
      return false;
    }
    read_fd_ = fds[0];
    reader_ = std::thread([this] {
      AckMsg m{};
      for (;;) {
        size_t got = 0;
        while (got < sizeof m) {
          ssize_t n = ::read(read_fd_, reinterpret_cast<char*>(&m) + got, sizeof m - got);
          if (n <= 0) break;
          got += static_cast<size_t>(n);
        }
        if (got < sizeof m) break;
        std::lock_guard lock(mu_);
        if (m.err == 0) acks_.push_back(m);
        else error_ = m.err;
      }
      finished_.store(true);
    });
    return true;
  }

  // Waits (bounded) for the child to end by itself (after a failed write).
  bool wait_finished(std::chrono::milliseconds limit) {
    return eventually([&] { return finished_.load(); }, limit);
  }

  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;
  }

  size_t acked() const {
    std::lock_guard lock(mu_);
    return acks_.size();
  }
  int error() const {
    std::lock_guard lock(mu_);
    return error_;
  }
  bool finished() const { return finished_.load(); }
  // Acknowledged writes whose pwrite returned at or after `t_ns`.
  size_t acked_since(int64_t t_ns) const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& a : acks_) n += a.returned_ns >= t_ns;
    return n;
  }
  // Acknowledged writes whose pwrite was issued at or after `t_ns`.
  size_t issued_and_acked_since(int64_t t_ns) const {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& a : acks_) n += a.issued_ns >= t_ns;
    return n;
  }
  // hafs-ackcheck's acks file ("ack FILE BLOCK SEQ" per line).
  void write_acks_file(const std::string& path) const {
    std::lock_guard lock(mu_);
    std::ofstream out(path);
    for (const auto& a : acks_) out << "ack " << a.file << " " << a.block << " " << a.seq << "\n";
  }

 private:
  const std::string dir_;
  const uint64_t seed_;
  const uint32_t files_, blocks_;
  const uint64_t first_seq_;
  pid_t pid_ = -1;
  int read_fd_ = -1;
  int64_t started_ns_ = 0;
  std::thread reader_;
  mutable std::mutex mu_;
  std::vector<AckMsg> acks_;  // GUARDED_BY(mu_)
  int error_ = 0;             // GUARDED_BY(mu_)
  std::atomic<bool> finished_{false};
};

// ---- the I2 watcher ----

// Polls both nodes' status, alternating the order of a sandwich N1 N2 N1 / N2 N1 N2: a volume
// served by the outer node at the same epoch before and after, and by the inner node in between,
// was served by both at one instant. Also: one (volume, epoch) served by two nodes, or a node's
// epoch of a volume going back (within one process), is a violation.
class ServingWatcher {
 public:
  ServingWatcher(std::vector<std::string> sockets, std::vector<std::string> volumes)
      : sockets_(std::move(sockets)), volumes_(std::move(volumes)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~ServingWatcher() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> violations() const {
    std::lock_guard lock(mu_);
    return violations_;
  }
  uint64_t rounds() const { return rounds_.load(); }

 private:
  struct Seen {
    bool answered = false;
    std::map<std::string, uint64_t> serving;  // volume -> epoch
    int64_t pid = 0;
    std::map<std::string, uint64_t> epochs;   // volume -> epoch in the node's view
  };

  Seen look(size_t node) {
    Seen s;
    auto st = status_of(sockets_[node], 1.0);
    if (!st) return s;
    s.answered = true;
    s.pid = (*st)["node"].value("pid", int64_t{0});
    for (const auto& name : volumes_) {
      json row = volume_row(*st, name);
      const uint64_t epoch = row.value("epoch", uint64_t{0});
      s.epochs[name] = epoch;
      if (row.value("state", "") == "serving") s.serving[name] = epoch;
    }
    record(node, s);
    return s;
  }

  void violation(const std::string& what) {
    std::lock_guard lock(mu_);
    if (violations_.size() < 20) violations_.push_back(what);
  }

  void record(size_t node, const Seen& s) {
    for (const auto& [name, epoch] : s.serving) {
      auto [it, fresh] = server_of_.try_emplace({name, epoch}, node);
      if (!fresh && it->second != node)
        violation(name + " epoch " + std::to_string(epoch) + " served by node " + std::to_string(it->second + 1) +
                  " and by node " + std::to_string(node + 1));
    }
    for (const auto& [name, epoch] : s.epochs) {
      if (epoch == 0) continue;  // not read yet
      auto& last = last_epoch_[{node, s.pid, name}];
      if (epoch < last)
        violation("node " + std::to_string(node + 1) + " saw " + name + "'s epoch go back from " +
                  std::to_string(last) + " to " + std::to_string(epoch));
      last = std::max(last, epoch);
    }
  }

  void loop() {
    for (uint64_t round = 0; !stop_.load(); ++round) {
      const size_t outer = round % 2, inner = 1 - outer;
      Seen a = look(outer), b = look(inner), c = look(outer);
      for (const auto& name : volumes_) {
        if (!b.serving.count(name) || !a.serving.count(name) || !c.serving.count(name)) continue;
        if (a.pid == c.pid && a.serving[name] == c.serving[name])
          violation(name + " served by node " + std::to_string(outer + 1) + " at epoch " +
                    std::to_string(a.serving[name]) + " before and after node " + std::to_string(inner + 1) +
                    " served it at epoch " + std::to_string(b.serving[name]));
      }
      rounds_.fetch_add(1);
      std::this_thread::sleep_for(20ms);
    }
  }

  const std::vector<std::string> sockets_, volumes_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> rounds_{0};
  // Only the watcher thread touches these two.
  std::map<std::pair<std::string, uint64_t>, size_t> server_of_;
  std::map<std::tuple<size_t, int64_t, std::string>, uint64_t> last_epoch_;
  mutable std::mutex mu_;
  std::vector<std::string> violations_;  // GUARDED_BY(mu_)
};

// One 4 KiB block of `fill` at `offset` of `path` (created if missing), written with O_DSYNC by
// a child process, so that a frozen daemon cannot hang the test: true when the write was
// acknowledged within `limit`.
inline bool write_block(const std::string& path, off_t offset, char fill, std::chrono::milliseconds limit = 30s) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    std::vector<char> buf(kBlock, fill);
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_DSYNC | O_CLOEXEC, 0644);
    if (fd < 0) ::_exit(2);
    ::_exit(::pwrite(fd, buf.data(), buf.size(), offset) == static_cast<ssize_t>(buf.size()) ? 0 : 1);
  }
  const auto deadline = Clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(2ms);
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// The 4 KiB block at `offset` of a file read directly (the storage medium), "" if it is shorter.
inline std::string medium_block(const std::string& path, off_t offset) {
  const std::string all = read_file(path);
  if (all.size() < static_cast<size_t>(offset) + kBlock) return "";
  return all.substr(static_cast<size_t>(offset), kBlock);
}

// ---- network namespaces (the partition test) ----

inline bool sh(const std::vector<std::string>& args) {
  RunResult r = run(args, 30s);
  if (r.code != 0) std::cerr << "command failed (" << r.code << "): " << args[0] << " ... " << r.err << "\n";
  return r.code == 0;
}

// Two network namespaces joined by one veth pair with private addresses; removed at the end.
class NetnsPair {
 public:
  NetnsPair() {
    const std::string tag = std::to_string(::getpid() % 100000);
    for (int i = 0; i < 2; ++i) {
      ns_[i] = "hafs-ft-" + tag + "-" + std::to_string(i + 1);
      dev_[i] = "hft" + tag + (i == 0 ? "a" : "b");
    }
    const int sub = static_cast<int>(::getpid() % 200) + 20;
    addr_[0] = "10.213." + std::to_string(sub) + ".1";
    addr_[1] = "10.213." + std::to_string(sub) + ".2";
    remove();
    ok_ = sh({"/usr/sbin/ip", "netns", "add", ns_[0]}) && sh({"/usr/sbin/ip", "netns", "add", ns_[1]}) &&
          sh({"/usr/sbin/ip", "-n", ns_[0], "link", "add", dev_[0], "type", "veth", "peer", "name", dev_[1],
              "netns", ns_[1]});
    for (int i = 0; ok_ && i < 2; ++i)
      ok_ = sh({"/usr/sbin/ip", "-n", ns_[i], "addr", "add", addr_[i] + "/24", "dev", dev_[i]}) &&
            sh({"/usr/sbin/ip", "-n", ns_[i], "link", "set", "lo", "up"}) &&
            sh({"/usr/sbin/ip", "-n", ns_[i], "link", "set", dev_[i], "up"});
  }
  ~NetnsPair() { remove(); }
  bool ok() const { return ok_; }
  const std::string& addr(int i) const { return addr_[i]; }
  std::vector<std::string> launcher(int i) const { return {"/usr/bin/nsenter", "--net=/run/netns/" + ns_[i]}; }
  bool set_link(bool up) {
    return sh({"/usr/sbin/ip", "-n", ns_[0], "link", "set", dev_[0], up ? "up" : "down"}) &&
           sh({"/usr/sbin/ip", "-n", ns_[1], "link", "set", dev_[1], up ? "up" : "down"});
  }

 private:
  void remove() {
    for (int i = 0; i < 2; ++i)
      if (std::filesystem::exists("/run/netns/" + ns_[i])) run({"/usr/sbin/ip", "netns", "del", ns_[i]}, 30s);
  }
  std::string ns_[2], dev_[2], addr_[2];
  bool ok_ = false;
};

// ---- the pair ----

class FailoverTest : public ::testing::Test {
 protected:
  struct Node {
    uint32_t id = 0;
    std::string port, mirror_path, socket;
    HafsdSpec spec;  // what proc was made from (duplicate_spec copies it)
    std::unique_ptr<HafsdProcess> proc;
  };

  void SetUp() override {
    // The shared medium lives on tmpfs: the membership records are renewed with a 100 ms I/O
    // timeout (io_timeout_ms), and an fdatasync on this shared machine's disk sometimes takes
    // longer, which makes the holder fence itself and re-claim at a new epoch (correct, but it is
    // not the fault under test).
    char tmpl[] = "/dev/shm/hafs-failover.XXXXXX";
    medium_ = ::mkdtemp(tmpl);
    std::filesystem::create_directories(medium_ + "/.membership");
    std::filesystem::create_directories(medium_ + "/vol1");
    std::filesystem::create_directories(medium_ + "/vol2");
    scratch_ = medium_ + "-scratch";
    std::filesystem::create_directories(scratch_);
  }

  // Makes and starts both nodes. With `ns`, node i runs in namespace i and talks over the veth.
  // extra[i]: more hafsd arguments for node i + 1 (e.g. {"--set", "KEY=VALUE"}).
  void start_pair(const NetnsPair* ns = nullptr, std::array<std::vector<std::string>, 2> extra = {}) {
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    for (uint32_t i = 0; i < 2; ++i) {
      nodes_[i].id = i + 1;
      nodes_[i].port = ns ? "7400" : hafs::testing::free_port();
      nodes_[i].mirror_path = "/dev/shm/hafs-failover-" + tag + "-mirror" + std::to_string(i + 1);
    }
    for (uint32_t i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      const Node& partner = nodes_[1 - i];
      const std::string host = ns ? ns->addr(static_cast<int>(i)) : "127.0.0.1";
      const std::string partner_host = ns ? ns->addr(static_cast<int>(1 - i)) : "127.0.0.1";
      HafsdSpec spec;
      spec.node_id = n.id;
      spec.volumes = {{"vol1", "staged"}, {"vol2", "staged"}};
      spec.volume_homes = {{"vol1", 1}, {"vol2", 2}};
      spec.volume_degraded = volume_degraded_;
      spec.medium_dir = medium_;
      spec.nvlog_size = "32MiB";
      if (ns) spec.launcher = ns->launcher(static_cast<int>(i));
      else spec.launcher = launchers_[i];
      spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000",
                         "--set", "interconnect.partner_node_id=" + std::to_string(partner.id),
                         "--set", "interconnect.listen=" + host + ":" + n.port,
                         "--set", "interconnect.partner=" + partner_host + ":" + partner.port,
                         "--set", "interconnect.key=failover-test-key",
                         "--set", "interconnect.mirror_path=\"" + n.mirror_path + "\"",
                         "--set", "membership.dir=\"" + medium_ + "/.membership\"",
                         "--set", "membership.auto_giveback=false"};
      spec.extra_args.insert(spec.extra_args.end(), extra[i].begin(), extra[i].end());
      n.spec = spec;
      n.proc = std::make_unique<HafsdProcess>(spec);
      n.socket = n.proc->control_socket();
    }
    for (auto& n : nodes_) {
      std::string why;
      ASSERT_TRUE(n.proc->start(&why)) << "node " << n.id << ": " << why;
    }
    watcher_ = std::make_unique<ServingWatcher>(std::vector<std::string>{nodes_[0].socket, nodes_[1].socket},
                                                std::vector<std::string>{"vol1", "vol2"});
    // Each node serves its home volume, and the pair is NORMAL (mirroring both ways).
    ASSERT_TRUE(await_serving(1, "vol1", 0, 30s)) << dump();
    ASSERT_TRUE(await_serving(2, "vol2", 0, 30s)) << dump();
    ASSERT_TRUE(await_node_state(1, "NORMAL", 60s)) << dump();
    ASSERT_TRUE(await_node_state(2, "NORMAL", 60s)) << dump();
  }

  void TearDown() override {
    for (auto& w : writers_) w->stop();
    if (watcher_) watcher_->stop();
    for (auto& n : nodes_) {
      if (n.proc) {
        n.proc->resume();
        if (HasFailure() || std::getenv("HAFS_FAILOVER_LOGS")) std::cerr << "---- node " << n.id << " log ----\n" << n.proc->log();
      }
      n.proc.reset();  // stops it (SIGTERM, else SIGKILL), unmounts, removes its files
      std::error_code ec;
      if (!n.mirror_path.empty()) std::filesystem::remove(n.mirror_path, ec);
    }
    ns_.reset();  // after the daemons that ran in the namespaces
    std::error_code ec;
    std::filesystem::remove_all(medium_, ec);
    std::filesystem::remove_all(scratch_, ec);
  }

  Node& node(uint32_t id) { return nodes_[id - 1]; }

  std::optional<json> status(uint32_t id) { return status_of(node(id).socket); }

  // Waits until node `id` serves `volume` at an epoch above `above`; returns that epoch (0: never).
  uint64_t await_serving(uint32_t id, const std::string& volume, uint64_t above, std::chrono::milliseconds limit) {
    uint64_t epoch = 0;
    eventually([&] {
      auto s = status(id);
      if (!s) return false;
      json row = volume_row(*s, volume);
      if (row.value("state", "") != "serving" || row.value("epoch", uint64_t{0}) <= above) return false;
      epoch = row.value("epoch", uint64_t{0});
      return true;
    }, limit);
    return epoch;
  }

  // The node that serves `volume` now (0: none).
  uint32_t server_of(const std::string& volume) {
    for (uint32_t id : {1u, 2u}) {
      if (!node(id).proc || !node(id).proc->running()) continue;
      auto s = status(id);
      if (s && volume_row(*s, volume).value("state", "") == "serving") return id;
    }
    return 0;
  }

  // `hafsctl --socket <node id's socket> ARGS...`.
  RunResult hafsctl_on(uint32_t id, std::vector<std::string> args, std::chrono::milliseconds limit = 60s) {
    args.insert(args.begin(), {HAFSCTL_BIN, "--socket", node(id).socket});
    return run(args, limit);
  }

  // Node `id`'s spec with its identity (node id, NV log file, mirror file, membership directory,
  // medium, partner) and another mount point, control socket and interconnect listen port: a
  // second hafsd started by mistake with this node's configuration on another machine or in
  // another directory.
  HafsdSpec duplicate_spec(uint32_t id) {
    HafsdSpec spec = node(id).spec;
    spec.nvlog_path = node(id).proc->nvlog();
    for (auto& a : spec.extra_args)
      if (a.starts_with("interconnect.listen=")) a = "interconnect.listen=127.0.0.1:" + hafs::testing::free_port();
    return spec;
  }

  bool await_node_state(uint32_t id, const std::string& state, std::chrono::milliseconds limit) {
    return eventually([&] {
      auto s = status(id);
      return s && (*s)["membership"].value("state", "") == state;
    }, limit);
  }

  std::string dump() {
    std::string out;
    for (auto& n : nodes_) {
      auto s = n.proc && n.proc->running() ? status_of(n.socket) : std::nullopt;
      out += "node " + std::to_string(n.id) + ": " + (s ? (*s)["membership"].dump() + " " + (*s)["volumes"].dump()
                                                        : std::string("no answer")) + "\n";
    }
    return out;
  }

  AckWriter& new_writer(const std::string& dir, uint64_t seed) {
    writers_.push_back(std::make_unique<AckWriter>(dir, seed));
    EXPECT_TRUE(writers_.back()->start());
    return *writers_.back();
  }

  // hafs-ackcheck verify of every write `w` had acknowledged, in `dir`.
  void verify(const AckWriter& w, const std::string& dir, const std::string& what) {
    const std::string acks = scratch_ + "/acks-" + std::to_string(++verifies_);
    w.write_acks_file(acks);
    RunResult r = run({ACKCHECK_BIN, "verify", "--dir", dir, "--acks", acks}, 120s);
    EXPECT_EQ(r.code, 0) << what << ": hafs-ackcheck verify failed:\n" << r.out << r.err;
    std::cout << what << ": " << r.out;
  }

  // No I2 violation seen by the watcher so far.
  void expect_one_writer() {
    ASSERT_TRUE(watcher_);
    for (const auto& v : watcher_->violations()) ADD_FAILURE() << "I2 violated: " << v;
  }

  std::string medium_, scratch_;
  // Degraded policies (volume name -> local-log | write-through) for start_pair.
  std::vector<std::pair<std::string, std::string>> volume_degraded_;
  // Set before start_pair: what each node's hafsd is started through (without namespaces), e.g.
  // {"/usr/bin/env", "NOTIFY_SOCKET=..."} for one node's environment.
  std::array<std::vector<std::string>, 2> launchers_;
  Node nodes_[2];
  std::unique_ptr<ServingWatcher> watcher_;
  std::unique_ptr<NetnsPair> ns_;
  std::vector<std::unique_ptr<AckWriter>> writers_;
  int verifies_ = 0;
};

// ---- the bytes of an NV log or mirror file (docs/log-format.md), read independently of nvcache ----

// One record found by ring_records: where it is in the file and what it claims to be.
struct RingRecord {
  uint64_t file_offset = 0;  // of the record header
  uint64_t lsn = 0, pos = 0;
  uint8_t type = 0;          // 1 WRITE, 2 PAD, 3 FENCE, 6 META
  uint32_t key_len = 0, payload_len = 0;
  uint64_t payload_offset() const { return file_offset + 64 + ((key_len + 7) / 8) * 8; }
};

template <typename T>
T le_at(const std::string& bytes, uint64_t off) {
  T v{};
  std::memcpy(&v, bytes.data() + off, sizeof v);
  return v;
}

// The valid records of the ring in `path` from its trim point on, in LSN order, validated as
// docs/log-format.md §9 says (magic, version, LSN, position, header and payload CRC, ring tag);
// the scan ends at the first record that fails. Empty when no header copy is valid.
inline std::vector<RingRecord> ring_records(const std::string& path) {
  constexpr uint64_t kDataOffset = 8192;
  const std::string f = read_file(path);
  std::vector<RingRecord> out;
  // The valid header copy with the higher header_seq (§2, §3).
  std::optional<uint64_t> header;
  for (uint64_t slot : {uint64_t{0}, uint64_t{4096}}) {
    if (f.size() < slot + 84 || f.compare(slot, 8, "HAFSRNG1") != 0) continue;
    if (le_at<uint32_t>(f, slot + 80) != hafs::crc32c(f.data() + slot, 80)) continue;
    if (!header || le_at<uint64_t>(f, slot + 40) > le_at<uint64_t>(f, *header + 40)) header = slot;
  }
  if (!header) return out;
  const uint64_t data_bytes = le_at<uint64_t>(f, *header + 24), ring_id = le_at<uint64_t>(f, *header + 32);
  const uint32_t tag = static_cast<uint32_t>(ring_id) ^ static_cast<uint32_t>(ring_id >> 32);
  if (data_bytes == 0 || f.size() < kDataOffset + data_bytes) return out;
  uint64_t lsn = le_at<uint64_t>(f, *header + 48), pos = le_at<uint64_t>(f, *header + 56);
  for (uint64_t seen = 0; seen < data_bytes;) {
    const uint64_t off = kDataOffset + pos % data_bytes;
    if (off + 64 > f.size() || f.compare(off, 4, "HREC") != 0 || static_cast<uint8_t>(f[off + 4]) != 1) break;
    RingRecord r;
    r.file_offset = off;
    r.type = static_cast<uint8_t>(f[off + 5]);
    r.key_len = le_at<uint16_t>(f, off + 6);
    r.lsn = le_at<uint64_t>(f, off + 8);
    r.pos = le_at<uint64_t>(f, off + 16);
    r.payload_len = le_at<uint32_t>(f, off + 48);
    if (r.lsn != lsn || r.pos != pos || r.key_len > 128 || le_at<uint32_t>(f, off + 56) != tag) break;
    if (off + 64 + r.key_len > f.size()) break;
    const uint32_t hcrc = hafs::crc32c_extend(hafs::crc32c(f.data() + off, 60), f.data() + off + 64, r.key_len);
    if (hcrc != le_at<uint32_t>(f, off + 60)) break;
    uint64_t span = 0;
    if (r.type == 2) {
      span = 64 + uint64_t{r.payload_len};
    } else if (r.type == 1 || r.type == 3 || r.type == 6) {
      span = ((64 + ((r.key_len + 7) / 8) * 8 + uint64_t{r.payload_len} + 63) / 64) * 64;
      if (r.payload_offset() + r.payload_len > f.size()) break;
      if ((r.type == 1 || r.type == 6) && r.payload_len > 0 &&
          le_at<uint32_t>(f, off + 52) != hafs::crc32c(f.data() + r.payload_offset(), r.payload_len))
        break;
    } else {
      break;
    }
    out.push_back(r);
    pos += span;
    seen += span;
    ++lsn;
  }
  return out;
}

// Which byte of a record flip_record_byte changes.
enum class RecordField { kPayloadByte, kMagicByte, kLsnByte };

inline const char* field_name(RecordField f) {
  switch (f) {
    case RecordField::kPayloadByte: return "payload";
    case RecordField::kMagicByte: return "magic";
    case RecordField::kLsnByte: return "LSN";
  }
  return "?";
}

// Flips one byte (XOR 0x20) of the WRITE record at fraction `where` (0 = the first, 1 = the
// last) of the valid records of the ring in `path`, in the given field: what a bad DIMM or a
// stray write does to a log at rest. Returns what it did, or "" when the ring has no WRITE
// record (nothing was changed). The file's owner must not be running.
// Zeroes both copies of a ring's complete mark (log-format.md §8a): a ring as a build before
// the mark wrote it, for which only the partner's mirror tells damage among its last records.
inline bool erase_complete_mark(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const std::array<char, 36> zeros{};
  bool ok = true;
  for (off_t slot : {off_t{0}, off_t{4096}})
    ok = ok && ::pwrite(fd, zeros.data(), zeros.size(), slot + 3072) == static_cast<ssize_t>(zeros.size());
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

inline std::string flip_record_byte(const std::string& path, RecordField field, double where = 0.5) {
  std::vector<RingRecord> writes;
  for (const auto& r : ring_records(path))
    if (r.type == 1 && r.payload_len > 0) writes.push_back(r);
  if (writes.empty()) return "";
  const size_t i = std::min(writes.size() - 1, static_cast<size_t>(where * static_cast<double>(writes.size())));
  const RingRecord& r = writes[i];
  const uint64_t at = field == RecordField::kPayloadByte ? r.payload_offset() + r.payload_len / 2
                      : field == RecordField::kMagicByte ? r.file_offset + 1
                                                     : r.file_offset + 8;
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return "";
  unsigned char byte = 0;
  bool ok = ::pread(fd, &byte, 1, static_cast<off_t>(at)) == 1;
  const unsigned char was = byte;
  byte ^= 0x20;
  ok = ok && ::pwrite(fd, &byte, 1, static_cast<off_t>(at)) == 1 && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return "";
  std::ostringstream what;
  what << field_name(field) << " byte of record LSN " << r.lsn << " (WRITE " << i + 1 << " of " << writes.size()
       << ", LSNs " << writes.front().lsn << ".." << writes.back().lsn << ") at file offset " << at << ": 0x"
       << std::hex << static_cast<int>(was) << " -> 0x" << static_cast<int>(byte);
  return what.str();
}

// Lets a writer acknowledge some writes (bounded wait).
inline void await_acks(const AckWriter& w, size_t n) {
  ASSERT_TRUE(eventually([&] { return w.acked() >= n || w.finished(); }, 60s)) << "only " << w.acked() << " acks";
  ASSERT_GE(w.acked(), n) << "the writer stopped: error " << w.error();
}

}  // namespace hafs::testing::failover
