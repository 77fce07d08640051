// NFS through a failover, with a floating service address (issue #7): two hafsd nodes, each in a
// network namespace of its own with its own ganesha, joined by a bridge in this test's private
// namespace, where the client (libnfs) lives. Node 1 serves vol1 under the service address S1.
// The client writes files through S1 (each write_file is WRITEs then COMMIT: acknowledged once
// it returns) and keeps NFS file handles. Node 1 dies (hafsd and ganesha, kill -9); node 2 takes
// vol1 over, S1 moves to node 2's namespace, node 2's ganesha re-exports with vol1 added, and
// the client, through S1 again: the old handles resolve (same export id, same filesystem id,
// inode numbers from the medium), every acknowledged file has its content, and writing goes on.
// Node 1 then returns; `hafsctl giveback` moves vol1 home, S1 moves back, and the same handles
// resolve on node 1 again.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "tests/nfs/nfs_client.h"
#include "tests/nfs/nfs_env.h"
#include "tests/support/hafsd_process.h"
#include "tests/support/wait.h"

namespace hafs::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kNfsOk = 0;

bool ip(std::vector<std::string> args, std::string* out = nullptr) {
  args.insert(args.begin(), "/usr/sbin/ip");
  RunResult r = run_command(args, 30s);
  if (out) *out = r.output;
  if (r.code != 0) ADD_FAILURE() << "ip failed (" << r.code << "): " << r.output;
  return r.code == 0;
}

class NfsFailoverTest : public ::testing::Test {
 protected:
  struct Node {
    std::string ns, dev, addr, ganesha_dir;
    std::unique_ptr<HafsdProcess> hafsd;
  };

  void SetUp() override {
    std::string why;
    ASSERT_TRUE(enter_private_netns(&why)) << why;
    const std::string tag = std::to_string(::getpid() % 100000);
    const std::string net = "10.79." + std::to_string(::getpid() % 200 + 20) + ".";
    net_ = net;
    ASSERT_TRUE(ip({"link", "add", "br0", "type", "bridge"}));
    ASSERT_TRUE(ip({"addr", "add", net + "1/24", "dev", "br0"}));
    ASSERT_TRUE(ip({"link", "set", "br0", "up"}));
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      n.ns = "hafs-nf-" + tag + "-" + std::to_string(i + 1);
      n.dev = "nf" + tag + (i == 0 ? "a" : "b");
      n.addr = net + std::to_string(11 + i);
      ASSERT_TRUE(ip({"netns", "add", n.ns}));
      made_ns_[i] = true;
      ASSERT_TRUE(ip({"link", "add", n.dev, "type", "veth", "peer", "name", "eth0", "netns", n.ns}));
      ASSERT_TRUE(ip({"link", "set", n.dev, "master", "br0", "up"}));
      ASSERT_TRUE(ip({"-n", n.ns, "addr", "add", n.addr + "/24", "dev", "eth0"}));
      ASSERT_TRUE(ip({"-n", n.ns, "link", "set", "eth0", "up"}));
      ASSERT_TRUE(ip({"-n", n.ns, "link", "set", "lo", "up"}));
      char tmpl[] = "/tmp/hafs-nf-ganesha.XXXXXX";
      n.ganesha_dir = ::mkdtemp(tmpl);
    }
    // The volumes on the disk's ext4, whose file handles reopen an inode from its number alone
    // (NFS handles need that, docs/nfs.md); the membership records on tmpfs, where a renewal
    // never waits for a slow fdatasync of this shared machine's disk.
    char tmpl[] = "/tmp/hafs-nf-medium.XXXXXX";
    medium_ = ::mkdtemp(tmpl);
    for (const char* d : {"vol1", "vol2"}) std::filesystem::create_directories(medium_ + "/" + d);
    char mtmpl[] = "/dev/shm/hafs-nf-members.XXXXXX";
    members_ = ::mkdtemp(mtmpl);
  }

  void TearDown() override {
    for (auto& n : nodes_) ganesha(n, {"down", "--dir", n.ganesha_dir});
    for (auto& n : nodes_) {
      if (n.hafsd && (HasFailure() || std::getenv("HAFS_NFS_LOGS"))) std::cerr << n.hafsd->log();
      n.hafsd.reset();
    }
    for (int i = 0; i < 2; ++i) {
      if (made_ns_[i]) run_command({"/usr/sbin/ip", "netns", "del", nodes_[i].ns}, 30s);
      std::error_code ec;
      if (HasFailure() && !nodes_[i].ganesha_dir.empty())
        std::cerr << "ganesha " << i + 1 << ": " << run_command({"/usr/bin/tail", "-20", nodes_[i].ganesha_dir + "/ganesha.log"}).output;
      std::filesystem::remove_all(nodes_[i].ganesha_dir, ec);
    }
    std::error_code ec;
    std::filesystem::remove_all(medium_, ec);
    std::filesystem::remove_all(members_, ec);
    for (const auto& m : mirrors_) std::filesystem::remove(m, ec);
  }

  RunResult ganesha(const Node& n, std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/sbin/ip", "netns", "exec", n.ns, hafs_nfs_script()});
    return run_command(args, 60s);
  }

  void start_nodes() {
    for (int i = 0; i < 2; ++i) {
      Node& n = nodes_[i];
      const Node& partner = nodes_[1 - i];
      HafsdSpec spec;
      spec.node_id = static_cast<uint32_t>(i + 1);
      spec.volumes = {{"vol1", "staged"}, {"vol2", "staged"}};
      spec.volume_homes = {{"vol1", 1}, {"vol2", 2}};
      spec.medium_dir = medium_;
      spec.nvlog_size = "32MiB";
      spec.launcher = {"/usr/bin/nsenter", "--net=/run/netns/" + n.ns};
      const std::string mirror = "/dev/shm/" + n.ns + ".mirror";
      mirrors_.push_back(mirror);
      spec.extra_args = {"--set", "interconnect.partner_node_id=" + std::to_string(2 - i),
                         "--set", "interconnect.listen=" + n.addr + ":7400",
                         "--set", "interconnect.partner=" + partner.addr + ":7400",
                         "--set", "interconnect.key=nfs-failover-key",
                         "--set", "interconnect.mirror_path=\"" + mirror + "\"",
                         "--set", "membership.dir=\"" + members_ + "\"",
                         "--set", "membership.auto_giveback=false"};
      n.hafsd = std::make_unique<HafsdProcess>(spec);
      std::string why;
      ASSERT_TRUE(n.hafsd->start(&why)) << "node " << i + 1 << ": " << why;
    }
    for (int i = 0; i < 2; ++i)
      ASSERT_TRUE(eventually([&] { return std::filesystem::exists(nodes_[i].hafsd->path(i == 0 ? "vol1" : "vol2")); },
                             30s))
          << "node " << i + 1 << " does not serve its home volume";
  }

  std::string service_addr(int i) const { return net_ + std::to_string(101 + i); }

  NfsTarget target(const std::string& server) const {
    NfsTarget t;
    t.server = server;
    t.export_path = "/vol1";
    t.version = 3;
    return t;
  }

  std::string net_, medium_, members_;
  Node nodes_[2];
  bool made_ns_[2] = {false, false};
  std::vector<std::string> mirrors_;
};

std::string content_of(int i) { return "file " + std::to_string(i) + " " + std::string(3000 + i * 7, char('a' + i % 26)); }

TEST_F(NfsFailoverTest, HandlesAndAcknowledgedWritesSurviveTheMoveOfTheServiceAddress) {
  ASSERT_NO_FATAL_FAILURE(start_nodes());
  // Service addresses: S1 on node 1, S2 on node 2; each node's ganesha exports what it serves.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(ip({"-n", nodes_[i].ns, "addr", "add", service_addr(i) + "/24", "dev", "eth0"}));
    RunResult up = ganesha(nodes_[i], {"up", "--dir", nodes_[i].ganesha_dir, "--mount", nodes_[i].hafsd->mount()});
    ASSERT_EQ(up.code, 0) << up.output;
  }
  const std::string s1 = service_addr(0);

  // A workload through S1: every write_file that returned 0 was WRITEs then COMMIT, i.e.
  // acknowledged by the server; it runs until node 1 dies under it.
  RawNfs::Handle root, first;
  std::mutex mu;
  std::set<int> acked;  // GUARDED_BY(mu)
  std::atomic<bool> writer_done{false}, writer_stop{false};
  std::string writer_error;
  {
    std::string why;
    auto raw = RawNfs::connect(target(s1), &why);
    ASSERT_TRUE(raw) << why;
    auto c = NfsClient::connect(target(s1), &why);
    ASSERT_TRUE(c) << why;
    ASSERT_EQ(c->write_file("/f0", content_of(0)), 0) << c->error();
    acked.insert(0);
    ASSERT_EQ(raw->root(&root), kNfsOk) << raw->error();
    ASSERT_EQ(raw->lookup(root, "f0", &first), kNfsOk) << raw->error();
  }
  std::thread writer([&] {
    std::string why;
    auto c = NfsClient::connect(target(s1), &why);
    for (int i = 1; c && !writer_stop; ++i) {
      if (c->write_file("/f" + std::to_string(i), content_of(i)) != 0) {
        writer_error = c->error();
        break;
      }
      std::lock_guard lock(mu);
      acked.insert(i);
    }
    if (!c) writer_error = why;
    writer_done = true;
  });
  struct Joiner {  // also when an assertion ends the test early
    std::thread& t;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } joiner{writer, writer_stop};
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return acked.size() >= 20 || writer_done;
  }, 60s));
  ASSERT_FALSE(writer_done) << "the writer stopped before the kill: " << writer_error;

  // Node 1 dies under the workload: hafsd and its ganesha, kill -9; its service address goes too.
  const int dead_ganesha = live_pid_in(nodes_[0].ganesha_dir + "/ganesha.pid");
  ASSERT_GT(dead_ganesha, 0);
  nodes_[0].hafsd->kill9();
  ::kill(dead_ganesha, SIGKILL);
  ASSERT_TRUE(ip({"-n", nodes_[0].ns, "addr", "del", s1 + "/24", "dev", "eth0"}));
  writer.join();  // its next call fails (connection reset, or the client's RPC timeout)
  std::cout << "acknowledged before node 1 died: " << acked.size() << " files; the writer then got: "
            << writer_error << "\n";
  ganesha(nodes_[0], {"down", "--dir", nodes_[0].ganesha_dir});  // reaps what is left (rpcbind)

  // Node 2 takes vol1 over; S1 moves to node 2, whose ganesha re-exports with vol1 added.
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(nodes_[1].hafsd->path("vol1/f0")); }, 30s))
      << nodes_[1].hafsd->log();
  ASSERT_TRUE(ip({"-n", nodes_[1].ns, "addr", "add", s1 + "/24", "dev", "eth0"}));
  ASSERT_TRUE(ip({"neigh", "flush", "dev", "br0"}));
  RunResult down = ganesha(nodes_[1], {"down", "--dir", nodes_[1].ganesha_dir});
  ASSERT_EQ(down.code, 0) << down.output;
  RunResult up = ganesha(nodes_[1], {"up", "--dir", nodes_[1].ganesha_dir, "--mount", nodes_[1].hafsd->mount()});
  ASSERT_EQ(up.code, 0) << up.output;

  // The same handles, through the same address, now answered by node 2.
  std::string why;
  auto raw = RawNfs::connect(target(s1), &why);
  ASSERT_TRUE(raw) << why;
  RawNfs::Handle root2, first2;
  ASSERT_EQ(raw->root(&root2), kNfsOk) << raw->error();
  EXPECT_EQ(root2, root) << "the export's root handle changed with the node";
  RawNfs::Attr attr;
  ASSERT_EQ(raw->getattr(first, &attr), kNfsOk) << "a handle from node 1 does not resolve on node 2: " << raw->error();
  EXPECT_EQ(attr.size, content_of(0).size());
  std::string data;
  ASSERT_EQ(raw->read(first, 0, 65536, &data), kNfsOk) << raw->error();
  EXPECT_EQ(data, content_of(0));
  ASSERT_EQ(raw->lookup(root, "f0", &first2), kNfsOk) << raw->error();
  EXPECT_EQ(first2, first);

  auto c = NfsClient::connect(target(s1), &why);
  ASSERT_TRUE(c) << why;
  for (int i : acked) {
    std::string got;
    ASSERT_EQ(c->read_file("/f" + std::to_string(i), &got), 0) << c->error();
    EXPECT_EQ(got, content_of(i)) << "acknowledged file f" << i << " differs after the failover";
  }
  // And the service goes on.
  ASSERT_EQ(c->write_file("/after", "written through the moved address"), 0) << c->error();
  std::string after;
  ASSERT_EQ(c->read_file("/after", &after), 0) << c->error();
  EXPECT_EQ(after, "written through the moved address");
  c.reset();
  raw.reset();

  // Node 1 returns; the giveback moves vol1 and S1 back, and the same handles resolve on node 1.
  std::string why1;
  ASSERT_TRUE(nodes_[0].hafsd->start(&why1)) << why1;
  RunResult normal = run_command({HAFSCTL_BIN, "--socket", nodes_[1].hafsd->control_socket(), "giveback", "vol1",
                                  "--wait", "90"}, 120s);
  ASSERT_EQ(normal.code, 0) << normal.output;
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(nodes_[0].hafsd->path("vol1/after")); }, 30s))
      << nodes_[0].hafsd->log();
  ASSERT_TRUE(ip({"-n", nodes_[1].ns, "addr", "del", s1 + "/24", "dev", "eth0"}));
  ASSERT_TRUE(ip({"-n", nodes_[0].ns, "addr", "add", s1 + "/24", "dev", "eth0"}));
  ASSERT_TRUE(ip({"neigh", "flush", "dev", "br0"}));
  for (int i = 0; i < 2; ++i) {  // each node exports what it serves now
    (void)ganesha(nodes_[i], {"down", "--dir", nodes_[i].ganesha_dir});
    RunResult again = ganesha(nodes_[i], {"up", "--dir", nodes_[i].ganesha_dir, "--mount", nodes_[i].hafsd->mount()});
    ASSERT_EQ(again.code, 0) << again.output;
  }
  auto back = RawNfs::connect(target(s1), &why);
  ASSERT_TRUE(back) << why;
  ASSERT_EQ(back->getattr(first, &attr), kNfsOk) << "node 1's old handle after the giveback: " << back->error();
  ASSERT_EQ(back->read(first, 0, 65536, &data), kNfsOk) << back->error();
  EXPECT_EQ(data, content_of(0));
  auto c1 = NfsClient::connect(target(s1), &why);
  ASSERT_TRUE(c1) << why;
  ASSERT_EQ(c1->read_file("/after", &after), 0) << c1->error();
  EXPECT_EQ(after, "written through the moved address");
}

}  // namespace
}  // namespace hafs::testing
