// tools/hafs-nfs.sh: bad input gets a clear error and leaves nothing running; the exports of two
// nodes with the same volumes carry the same ids; up/down/status behave; NFSv4 alone runs
// without rpcbind.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/nfs/nfs_fixture.h"

namespace hafs::testing {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void expect_nothing_running(const GaneshaNode& node) {
  EXPECT_LT(node.ganesha_pid(), 0) << "ganesha left running";
  EXPECT_LT(node.rpcbind_pid(), 0) << "rpcbind left running";
}

class NfsScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(enter_private_netns(&why)) << why;
  }
};

TEST_F(NfsScriptTest, RefusesAPathThatIsNotAnHafsMount) {
  GaneshaNode node;
  const std::string plain = node.dir() + "/plain";
  std::filesystem::create_directories(plain + "/vol0");
  RunResult r = node.up(plain);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "is not an hafs mount")) << r.output;
  expect_nothing_running(node);
  EXPECT_FALSE(std::filesystem::exists(node.dir() + "/ganesha.log")) << "ganesha was started";

  r = node.up(node.dir() + "/missing");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "does not exist")) << r.output;
  r = node.up("/");  // a mount point, but not hafs
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "is not an hafs mount")) << r.output;
}

TEST_F(NfsScriptTest, RefusesBadArguments) {
  GaneshaNode node;
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"up", "--dir", node.dir(), "--mount", "/", "--port", "0"},
           {"up", "--dir", node.dir(), "--mount", "/", "--port", "70000"},
           {"up", "--dir", node.dir(), "--mount", "/", "--mount-port", "abc"},
           {"up", "--dir", node.dir(), "--mount", "/", "--grace", "0"},
           {"up", "--mount", "/"},
           {"up", "--dir", node.dir(), "--bogus"},
           {"sideways", "--dir", node.dir()}}) {
    RunResult r = node.script(args);
    EXPECT_NE(r.code, 0) << args[0] << " " << args.back();
    EXPECT_TRUE(contains(r.output, "hafs-nfs: ")) << r.output;
  }
  RunResult r = node.script({"up", "--dir", node.dir(), "--mount", "/", "--port", "0"});
  EXPECT_TRUE(contains(r.output, "--port must be a port number")) << r.output;
  expect_nothing_running(node);
}

class NfsServedScriptTest : public NfsNodeTest {};

TEST_F(NfsServedScriptTest, PortInUseFailsClearlyAndLeavesNothingRunning) {
  std::string why;
  ASSERT_TRUE(enter_private_netns(&why)) << why;
  HafsdProcess hafsd;
  ASSERT_TRUE(hafsd.start(&why)) << why;
  GaneshaNode node;
  // Someone else listens on the NFS port.
  int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_any;
  a.sin6_port = htons(static_cast<uint16_t>(node.nfs_port()));
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  ASSERT_EQ(::listen(fd, 1), 0);
  RunResult r = node.up(hafsd.mount());
  ::close(fd);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_TRUE(contains(r.output, "ganesha failed to start")) << r.output;
  EXPECT_TRUE(contains(r.output, "Address already in use")) << r.output;
  expect_nothing_running(node);

  // With the port free again it starts.
  r = node.up(hafsd.mount());
  EXPECT_EQ(r.code, 0) << r.output << node.log();
  EXPECT_EQ(node.down().code, 0);
  expect_nothing_running(node);
}

TEST_F(NfsServedScriptTest, UpStatusDownAndUpTwice) {
  ASSERT_NO_FATAL_FAILURE(start_node());
  EXPECT_EQ(ganesha_->script({"status", "--dir", ganesha_->dir()}).code, 0);
  const int pid = ganesha_->ganesha_pid();
  ASSERT_GT(pid, 0);
  EXPECT_GT(ganesha_->rpcbind_pid(), 0) << "NFSv3 needs rpcbind";
  RunResult again = ganesha_->up(hafsd_->mount());
  EXPECT_EQ(again.code, 1) << again.output;
  EXPECT_TRUE(contains(again.output, "already runs")) << again.output;
  EXPECT_EQ(ganesha_->ganesha_pid(), pid);

  RunResult down = ganesha_->down();
  EXPECT_EQ(down.code, 0) << down.output;
  expect_nothing_running(*ganesha_);
  EXPECT_EQ(ganesha_->script({"status", "--dir", ganesha_->dir()}).code, 3);
  RunResult down_again = ganesha_->down();
  EXPECT_EQ(down_again.code, 0) << down_again.output;
  EXPECT_TRUE(contains(down_again.output, "not running")) << down_again.output;
}

TEST_F(NfsServedScriptTest, NfsV4AloneNeedsNoRpcbind) {
  std::string why;
  ASSERT_TRUE(enter_private_netns(&why)) << why;
  hafsd_ = std::make_unique<HafsdProcess>();
  ASSERT_TRUE(hafsd_->start(&why)) << why;
  ganesha_ = std::make_unique<GaneshaNode>();
  RunResult up = ganesha_->up(hafsd_->mount(), {"--no-v3"});
  ASSERT_EQ(up.code, 0) << up.output << ganesha_->log();
  EXPECT_LT(ganesha_->rpcbind_pid(), 0);
  auto nfs = client(4);
  ASSERT_TRUE(nfs);
  ASSERT_EQ(nfs->write_file("/v4only", "ok"), 0) << nfs->error();
  std::string why3;
  EXPECT_FALSE(NfsClient::connect(target(3), &why3)) << "NFSv3 is off";
}

// Two nodes with the same volumes (ids are cluster-wide) export them with the same Export_Id
// and Filesystem_id, whatever their mount points: what lets a handle move with the address.
TEST_F(NfsServedScriptTest, BothNodesExportTheSameIds) {
  std::string why;
  ASSERT_TRUE(enter_private_netns(&why)) << why;
  HafsdSpec spec;
  spec.volumes = {{"alpha", "staged"}, {"beta", "staged"}};
  HafsdProcess a(spec), b(spec);
  ASSERT_TRUE(a.start(&why)) << why;
  ASSERT_TRUE(b.start(&why)) << why;
  GaneshaNode na, nb;
  RunResult ca = na.script({"config", "--dir", na.dir(), "--mount", a.mount(), "--port", "2049"});
  RunResult cb = nb.script({"config", "--dir", nb.dir(), "--mount", b.mount(), "--port", "2049"});
  ASSERT_EQ(ca.code, 0) << ca.output;
  ASSERT_EQ(cb.code, 0) << cb.output;
  auto exports = [](const std::string& conf, const std::string& mount, const std::string& dir) {
    std::string s = conf.substr(conf.find("\nEXPORT {"));
    s = std::regex_replace(s, std::regex(mount), "MOUNT");
    return std::regex_replace(s, std::regex(dir), "DIR");
  };
  const std::string ea = exports(ca.output, a.mount(), na.dir());
  EXPECT_EQ(ea, exports(cb.output, b.mount(), nb.dir()));
  EXPECT_TRUE(contains(ea, "Export_Id = 1;")) << ea;
  EXPECT_TRUE(contains(ea, "Pseudo = \"/alpha\";")) << ea;
  EXPECT_TRUE(contains(ea, "Filesystem_id = 6873.1;")) << ea;
  EXPECT_TRUE(contains(ea, "Export_Id = 2;")) << ea;
  EXPECT_TRUE(contains(ea, "Filesystem_id = 6873.2;")) << ea;
}

}  // namespace
}  // namespace hafs::testing
