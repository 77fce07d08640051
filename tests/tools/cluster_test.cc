// `hafsctl cluster up | down | status | restart-node` (tools/cluster.h, docs/operations.md "A
// local cluster"), run as the real binary against real hafsd processes: a pair on loopback and one
// in network namespaces serve and mirror; `down` leaves no process, mount, namespace or /dev/shm
// file behind, also after both nodes were killed with SIGKILL and after `up` itself was killed; a
// second `down` is a no-op; bad command lines and unusable directories get clear errors. Every
// test runs `cluster down --purge` at its end, failed or not.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/run_program.h"

#ifndef HAFSCTL_BIN
#error "HAFSCTL_BIN must name the hafsctl binary"
#endif

extern char** environ;

namespace hafs::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using hafs::testing::ProgramResult;
using hafs::testing::run_program;
using Outcome = ProgramResult;

// Spawns argv (argv[0] absolute) with stdout and stderr into files under `scratch`.
pid_t spawn(const std::vector<std::string>& args, const std::string& scratch) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, (scratch + "/out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, (scratch + "/err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Runs argv to completion, at most `limit`.
Outcome run(const std::vector<std::string>& args, std::chrono::milliseconds limit = 120s) {
  return run_program(args, limit);
}

Outcome ctl(std::vector<std::string> args, std::chrono::milliseconds limit = 120s) {
  args.insert(args.begin(), HAFSCTL_BIN);
  return run(args, limit);
}

bool running(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  return stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

// Mount points under `dir` now.
std::vector<std::string> mounts_under(const std::string& dir) {
  std::vector<std::string> found;
  std::ifstream in("/proc/mounts");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string device, where;
    if (f >> device >> where && where.rfind(dir + "/", 0) == 0) found.push_back(where);
  }
  return found;
}

std::set<std::string> netns_list() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/run/netns", ec)) names.insert(e.path().filename());
  return names;
}

std::set<std::string> shm_cluster_files() {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/dev/shm", ec))
    if (e.path().filename().string().rfind("hafs-cluster-", 0) == 0) names.insert(e.path());
  return names;
}

bool write_dsync(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_DSYNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

template <typename F>
bool eventually(F done, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hafs-cluster-test.XXXXXX";
    root_ = ::mkdtemp(tmpl);
    dir_ = root_ + "/cluster";  // made by `up`
  }

  void TearDown() override {
    Outcome r = ctl({"cluster", "down", "--dir", dir_, "--purge"});
    if (r.code != 0) ADD_FAILURE() << "cleanup: cluster down failed: " << r;
    if (HasFailure())
      for (const char* n : {"1", "2"})
        std::cerr << "---- node " << n << " log ----\n" << read_file(dir_ + "/node" + n + "/hafsd.log");
    std::error_code ec;
    if (mounts_under(root_).empty()) fs::remove_all(root_, ec);  // never into a live mount
  }

  json manifest() { return json::parse(read_file(dir_ + "/cluster.json"), nullptr, false); }

  Outcome up(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"cluster", "up", "--dir", dir_, "--nvlog-size", "32MiB"};
    args.insert(args.end(), extra.begin(), extra.end());
    return ctl(args);
  }

  // After `down`: nothing of cluster `m` is left but (without --purge) the logs.
  void expect_gone(const json& m) {
    ASSERT_TRUE(m.is_object());
    for (const auto& n : m["nodes"]) {
      EXPECT_FALSE(running(n["pid"].get<pid_t>())) << "node " << n["id"] << " still runs";
      EXPECT_FALSE(fs::exists(n["nvlog"].get<std::string>())) << n["nvlog"];
      EXPECT_FALSE(fs::exists(n["mirror"].get<std::string>())) << n["mirror"];
      EXPECT_FALSE(fs::exists(n["mount"].get<std::string>())) << n["mount"];
      EXPECT_FALSE(fs::exists(n["socket"].get<std::string>())) << n["socket"];
      EXPECT_FALSE(fs::exists(n["config"].get<std::string>())) << n["config"];
      if (!n["netns"].get<std::string>().empty()) {
        EXPECT_EQ(netns_list().count(n["netns"].get<std::string>()), 0u) << n["netns"];
      }
    }
    EXPECT_TRUE(mounts_under(dir_).empty()) << mounts_under(dir_).front();
    EXPECT_FALSE(fs::exists(dir_ + "/medium"));
    EXPECT_FALSE(fs::exists(dir_ + "/pair.key"));
    EXPECT_FALSE(fs::exists(dir_ + "/cluster.json"));
  }

  std::string root_, dir_;
};

TEST_F(ClusterTest, UpServesBothNodesAndDownRemovesEverything) {
  Outcome r = up();
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("cluster ready"), std::string::npos) << r;
  const json m = manifest();
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["version"], 1);
  EXPECT_EQ(m["membership_dir"], dir_ + "/medium/.membership");
  ASSERT_EQ(m["nodes"].size(), 2u);
  for (const auto& n : m["nodes"]) {
    EXPECT_TRUE(running(n["pid"].get<pid_t>()));
    EXPECT_EQ(n["netns"], "");
    EXPECT_EQ(n["address"], "127.0.0.1");
    EXPECT_EQ(n["socket"], dir_ + "/node" + std::to_string(n["id"].get<int>()) + "/control.sock");
    EXPECT_EQ(n["nvlog"].get<std::string>().rfind("/dev/shm/hafs-cluster-", 0), 0u);
    EXPECT_NE(read_file(n["config"].get<std::string>()).find("[membership]"), std::string::npos);
  }
  Outcome st = ctl({"cluster", "status", "--dir", dir_});
  ASSERT_EQ(st.code, 0) << st;
  EXPECT_NE(st.out.find("node 1: pid " + std::to_string(m["nodes"][0]["pid"].get<int>()) + " running, NORMAL, serving vol1;"),
            std::string::npos) << st;
  EXPECT_NE(st.out.find("running, NORMAL, serving vol2;"), std::string::npos) << st;

  // A write through node 1's mount is on the medium after a flush.
  const std::string data = "written through node 1\n";
  ASSERT_TRUE(write_dsync(dir_ + "/node1/mnt/vol1/hello.txt", data));
  Outcome f = ctl({"--socket", dir_ + "/node1/control.sock", "flush"});
  ASSERT_EQ(f.code, 0) << f;
  EXPECT_EQ(read_file(dir_ + "/medium/vol1/hello.txt"), data);
  // And node 2 serves vol2.
  ASSERT_TRUE(write_dsync(dir_ + "/node2/mnt/vol2/other.txt", data));

  Outcome d = ctl({"cluster", "down", "--dir", dir_});
  ASSERT_EQ(d.code, 0) << d;
  EXPECT_NE(d.out.find("node 1: stopped hafsd pid"), std::string::npos) << d;
  expect_gone(m);
  EXPECT_TRUE(fs::exists(dir_ + "/node1/hafsd.log")) << "down keeps the logs without --purge";
  Outcome again = ctl({"cluster", "down", "--dir", dir_});
  EXPECT_EQ(again.code, 0) << again;
  EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again;
  Outcome purge = ctl({"cluster", "down", "--dir", dir_, "--purge"});
  EXPECT_EQ(purge.code, 0) << purge;
  EXPECT_FALSE(fs::exists(dir_ + "/node1/hafsd.log"));
}

TEST_F(ClusterTest, NetnsPutsEachNodeInItsOwnNamespace) {
  if (::access("/usr/sbin/ip", X_OK) != 0 && ::access("/sbin/ip", X_OK) != 0) GTEST_SKIP() << "no ip command";
  Outcome r = up({"--netns"});
  if (r.code != 0 && r.err.find("cannot make the network namespaces") != std::string::npos)
    GTEST_SKIP() << "network namespaces cannot be made here: " << r.err;
  ASSERT_EQ(r.code, 0) << r;
  const json m = manifest();
  ASSERT_TRUE(m.is_object());
  EXPECT_TRUE(m["netns"].get<bool>());
  const auto namespaces = netns_list();
  Outcome st = ctl({"cluster", "status", "--dir", dir_});
  ASSERT_EQ(st.code, 0) << st;
  for (const auto& n : m["nodes"]) {
    const std::string ns = n["netns"].get<std::string>();
    ASSERT_FALSE(ns.empty());
    EXPECT_EQ(namespaces.count(ns), 1u) << ns << " not in ip netns list";
    EXPECT_NE(st.out.find("netns " + ns + " " + n["address"].get<std::string>() + ":7400"), std::string::npos) << st;
    EXPECT_EQ(n["address"].get<std::string>().rfind("10.201.", 0), 0u);
  }
  const Outcome list = run({access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip", "netns", "list"});
  EXPECT_NE(list.out.find(m["nodes"][0]["netns"].get<std::string>()), std::string::npos) << list;
  // The interconnect runs over the veth pair: both nodes are NORMAL (status said so) and serve.
  ASSERT_TRUE(write_dsync(dir_ + "/node2/mnt/vol2/x", "over the veth"));

  Outcome d = ctl({"cluster", "down", "--dir", dir_});
  ASSERT_EQ(d.code, 0) << d;
  EXPECT_NE(d.out.find("deleted network namespace"), std::string::npos) << d;
  expect_gone(m);
}

TEST_F(ClusterTest, DownCleansUpAfterBothNodesWereKilled) {
  ASSERT_EQ(up().code, 0);
  const json m = manifest();
  ASSERT_TRUE(m.is_object());
  for (const auto& n : m["nodes"]) ASSERT_EQ(::kill(n["pid"].get<pid_t>(), SIGKILL), 0);
  ASSERT_TRUE(eventually(
      [&] { return !running(m["nodes"][0]["pid"].get<pid_t>()) && !running(m["nodes"][1]["pid"].get<pid_t>()); }, 10s));
  Outcome st = ctl({"cluster", "status", "--dir", dir_});
  EXPECT_EQ(st.code, 3) << st;
  EXPECT_NE(st.out.find("not running"), std::string::npos) << st;
  EXPECT_EQ(mounts_under(dir_).size(), 2u) << "the dead nodes' mounts are still there";
  Outcome d = ctl({"cluster", "down", "--dir", dir_});
  ASSERT_EQ(d.code, 0) << d;
  EXPECT_NE(d.out.find("unmounted"), std::string::npos) << d;
  expect_gone(m);
  Outcome again = ctl({"cluster", "down", "--dir", dir_});
  EXPECT_EQ(again.code, 0) << again;
  EXPECT_NE(again.out.find("nothing to do"), std::string::npos) << again;
}

TEST_F(ClusterTest, DownCleansUpAfterUpWasKilled) {
  // cluster.json is written before the nodes start and updated with each pid: once both pids are
  // in it, killing `up` (whether it was still waiting or not) leaves everything to `down`.
  char tmpl[] = "/tmp/hafs-cluster-test-up.XXXXXX";
  const std::string scratch = ::mkdtemp(tmpl);
  const pid_t up_pid = spawn({HAFSCTL_BIN, "cluster", "up", "--dir", dir_, "--nvlog-size", "32MiB"}, scratch);
  ASSERT_GT(up_pid, 0);
  json m;
  const bool recorded = eventually([&] {
    m = manifest();
    return m.is_object() && m["nodes"].size() == 2 && m["nodes"][0]["pid"] != 0 && m["nodes"][1]["pid"] != 0;
  }, 30s);
  ::kill(up_pid, SIGKILL);
  ::waitpid(up_pid, nullptr, 0);
  std::error_code ec;
  fs::remove_all(scratch, ec);
  ASSERT_TRUE(recorded) << "cluster.json never held both pids";
  Outcome d = ctl({"cluster", "down", "--dir", dir_});
  ASSERT_EQ(d.code, 0) << d;
  expect_gone(m);
}

TEST_F(ClusterTest, RestartNodeBringsAKilledNodeBack) {
  ASSERT_EQ(up({"--set", "membership.auto_giveback=false"}).code, 0);
  const json m = manifest();
  ASSERT_TRUE(m.is_object());
  const pid_t old_pid = m["nodes"][0]["pid"].get<pid_t>();
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  // Node 2 takes vol1 over.
  ASSERT_TRUE(eventually([&] {
    Outcome st = ctl({"cluster", "status", "--dir", dir_}, 10s);
    return st.out.find("serving vol1 vol2") != std::string::npos;
  }, 60s));
  Outcome r = ctl({"cluster", "restart-node", "1", "--dir", dir_});
  ASSERT_EQ(r.code, 0) << r;
  EXPECT_NE(r.out.find("unmounted the dead mount"), std::string::npos) << r;
  const json after = manifest();
  const pid_t new_pid = after["nodes"][0]["pid"].get<pid_t>();
  EXPECT_NE(new_pid, old_pid);
  EXPECT_TRUE(running(new_pid));
  EXPECT_EQ(after["nodes"][0]["argv"], m["nodes"][0]["argv"]);
  // Both nodes answer again; the pair goes back to NORMAL (node 2 keeps vol1: no auto giveback).
  ASSERT_TRUE(eventually([&] {
    Outcome st = ctl({"cluster", "status", "--dir", dir_}, 10s);
    return st.code == 0 && st.out.find("running, NORMAL, serving nothing;") != std::string::npos;
  }, 60s));
  Outcome d = ctl({"cluster", "down", "--dir", dir_});
  ASSERT_EQ(d.code, 0) << d;
  expect_gone(after);
}

TEST_F(ClusterTest, UpRefusesADirectoryWithARunningCluster) {
  ASSERT_EQ(up().code, 0);
  Outcome again = up();
  EXPECT_EQ(again.code, 1) << again;
  EXPECT_NE(again.err.find("already holds a running cluster"), std::string::npos) << again;
  EXPECT_TRUE(running(manifest()["nodes"][0]["pid"].get<pid_t>())) << "the running cluster was left alone";
}

TEST_F(ClusterTest, UpThatFailsRemovesWhatItMade) {
  const auto shm_before = shm_cluster_files();
  Outcome r = up({"--set", "nvlog.no_such_setting=1"});
  EXPECT_EQ(r.code, 1) << r;
  EXPECT_NE(r.err.find("unknown setting"), std::string::npos) << "the log tail says why: " << r;
  EXPECT_FALSE(fs::exists(dir_ + "/cluster.json"));
  EXPECT_FALSE(fs::exists(dir_ + "/medium"));
  EXPECT_TRUE(mounts_under(dir_).empty());
  EXPECT_EQ(shm_cluster_files(), shm_before);
}

TEST_F(ClusterTest, BadCommandLinesAndDirectories) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;  // in stderr
  };
  const std::vector<Case> cases = {
      {{"cluster", "up", "--dir", dir_, "--bogus"}, 2, "--bogus"},
      {{"cluster", "up", "--nodes", "2"}, 2, "--dir"},
      {{"cluster", "down"}, 2, "--dir"},
      {{"cluster", "status"}, 2, "--dir"},
      {{"cluster", "up", "--dir", dir_, "--nodes", "3"}, 2, "only --nodes 2 is supported"},
      {{"cluster", "up", "--dir", dir_, "--set", "novalue"}, 2, "expected KEY=VALUE"},
      {{"cluster", "up", "--dir", dir_, "--wait", "0"}, 2, "--wait"},
      {{"cluster"}, 2, "subcommand"},
      {{"cluster", "frobnicate"}, 2, "subcommand"},
      {{"cluster", "up", "--dir", dir_ + std::string(120, 'x')}, 2, "too long"},
      {{"cluster", "up", "--dir", dir_, "--hafsd", root_ + "/hafsd"}, 1, "no hafsd binary"},
      {{"cluster", "up", "--dir", dir_, "--hafsd", "/bin/true"}, 2, "must start with 'hafsd'"},
      {{"cluster", "up", "--dir", "/proc/hafs-cluster-test"}, 1, "cannot make /proc/hafs-cluster-test"},
      {{"cluster", "status", "--dir", dir_}, 1, "no cluster in"},
      {{"cluster", "restart-node", "1", "--dir", dir_}, 1, "no cluster in"},
  };
  for (const auto& c : cases) {
    Outcome r = ctl(c.args);
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    EXPECT_EQ(r.code, c.code) << line << "\n" << r;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << line << "\n" << r;
  }
  EXPECT_FALSE(fs::exists(dir_ + "/cluster.json"));
  // A file where DIR should be.
  ASSERT_TRUE(write_dsync(root_ + "/file", "x"));
  Outcome notdir = ctl({"cluster", "up", "--dir", root_ + "/file"});
  EXPECT_EQ(notdir.code, 1) << notdir;
  EXPECT_NE(notdir.err.find("is not a directory"), std::string::npos) << notdir;
  // Not root.
  if (::access("/usr/bin/setpriv", X_OK) == 0) {
    for (const char* cmd : {"up", "down"}) {
      Outcome r = run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", HAFSCTL_BIN, "cluster",
                       cmd, "--dir", dir_});
      EXPECT_EQ(r.code, 1) << cmd << "\n" << r;
      EXPECT_NE(r.err.find(std::string(cmd) + " needs root"), std::string::npos) << r;
    }
  }
  // restart-node of a node that is not there.
  ASSERT_EQ(up().code, 0);
  Outcome no_node = ctl({"cluster", "restart-node", "3", "--dir", dir_});
  EXPECT_EQ(no_node.code, 2) << no_node;
  EXPECT_NE(no_node.err.find("no node 3"), std::string::npos) << no_node;
}

}  // namespace
}  // namespace hafs::tools
