// The first real-mount test: hafsd serves a staged volume; data written through the mount is
// read back, reaches the medium after destage, and survives a kill -9 and restart.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/hafsd_process.h"
#include "tests/support/wait.h"

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

namespace hafs::testing {
namespace {

// Descriptors of `pid` open for writing only (the destager's; the inode table's are O_PATH).
size_t write_fds(pid_t pid) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo")) {
    std::ifstream info(e.path());
    std::string key;
    unsigned flags = 0;
    while (info >> key)
      if (key == "flags:" && (info >> std::oct >> flags)) break;
    if ((flags & O_ACCMODE) == O_WRONLY) ++n;
  }
  return n;
}

// The destager keeps a file open from its write to its sync; with logged metadata the sync is
// the volume's (syncfs), once per pass, and every file it covered must be closed after it. A
// daemon that kept them ran out of descriptors after about a thousand files (EMFILE in an untar).
TEST(FsSmokeTest, DestagedFilesAreClosedAfterTheirVolumeSync) {
  HafsdSpec spec;
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=20"};
  HafsdProcess node(spec);
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  const size_t before = write_fds(node.pid());
  for (int i = 0; i < 300; ++i) {
    std::ofstream(node.path("vol0/f" + std::to_string(i))) << "data " << i;
    struct timespec ts[2] = {{1, 0}, {2, 0}};  // setting times flushes the file's staged data
    ASSERT_EQ(::utimensat(AT_FDCWD, node.path("vol0/f" + std::to_string(i)).c_str(), ts, 0), 0);
  }
  // Every file's data reaches the medium; then the destager's descriptors are closed again.
  EXPECT_TRUE(eventually([&] { return slurp(node.volume_dir("vol0") + "/f299") == "data 299"; }))
      << node.log();
  EXPECT_TRUE(eventually([&] { return write_fds(node.pid()) <= before + 1; }))
      << write_fds(node.pid()) << " descriptors open for writing, " << before << " before 300 files were written";
  EXPECT_EQ(node.stop(), 0) << node.log();
}

}  // namespace
}  // namespace hafs::testing

namespace hafs::testing {
namespace {

// Each inode the kernel holds keeps a descriptor open in hafsd, and the kernel keeps what it
// looked up until memory runs short: a daemon started with a shell's soft limit of 1,024 open
// files failed creates with EMFILE after about a thousand files. hafsd raises its soft limit to
// the hard one; here it is started with a soft limit of 256 and must serve 1,000 new files.
TEST(FsSmokeTest, ServesMoreFilesThanTheSoftDescriptorLimitItStartedWith) {
  HafsdSpec spec;
  spec.launcher = {"/usr/bin/prlimit", "--nofile=256:", "--"};
  HafsdProcess node(spec);
  std::string why;
  ASSERT_TRUE(node.start(&why)) << why;
  for (int i = 0; i < 1000; ++i) {
    const std::string path = node.path("vol0/f" + std::to_string(i));
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    ::close(fd);
  }
  EXPECT_EQ(node.stop(), 0) << node.log();
}

}  // namespace
}  // namespace hafs::testing
