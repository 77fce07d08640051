// The first real-mount test: hafsd serves a staged volume; data written through the mount is
// read back, reaches the medium after destage, and survives a kill -9 and restart.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/support/hafsd_process.h"

namespace hafs::testing {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(FsSmokeTest, WriteReadRestartAfterKill9) {
  HafsdSpec spec;
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000"};  // keep writes staged
  HafsdProcess node(spec);
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  {
    int fd = ::open(node.path("vol0/file").c_str(), O_CREAT | O_WRONLY | O_DSYNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "acknowledged", 12), 12);
    ::close(fd);
  }
  EXPECT_EQ(slurp(node.path("vol0/file")), "acknowledged");
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/file"), "");  // staged, not destaged yet
  node.kill9();
  ASSERT_TRUE(node.start(&why)) << why;
  EXPECT_EQ(slurp(node.volume_dir("vol0") + "/file"), "acknowledged");  // destaged at start-up
  EXPECT_EQ(slurp(node.path("vol0/file")), "acknowledged");
  EXPECT_EQ(node.stop(), 0) << node.log();
}

}  // namespace
}  // namespace hafs::testing
