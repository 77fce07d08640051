// Logged metadata across a real loss of the medium's page cache (design.md §9a, I1).
//
// The medium is an ext4 filesystem in a loop-mounted image (journal commit every 60 s). hafsd
// serves a staged volume on it, with metadata logged (the default). A workload creates, writes,
// renames, links, chmods, sets and removes xattrs, fallocates and removes through the mount, and
// records each surviving name's inode number and mode as the mount reported them. Then the medium "loses power":
// FS_IOC_SHUTDOWN with NOLOGFLUSH drops everything its journal had not committed, exactly what a
// power cut does; hafsd is killed with SIGKILL and the image is mounted again. The test checks
// that the medium really lost the workload, then restarts hafsd on the same NV log: its recovery
// must redo the logged operations so that every name is back with the same inode number (the
// inode pool), mode and bytes, and no removed name is back.
//
// Needs root, a loop device and mkfs.ext4; skipped (with the reason) where the machine has none.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "tests/fs/posix_fixture.h"
#include "tests/support/control_status.h"
#include "tests/support/hafsd_process.h"
#include "tests/support/wait.h"
#include "tests/support/loop_medium.h"

namespace hafs::testing {
namespace {

class PowerLossMetaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!medium_.ok()) GTEST_SKIP() << medium_.why();
  }
  void TearDown() override { node_.reset(); }  // before the medium goes

  // hafsd on the medium, no destage pass meanwhile (so no sync of the volume), every stamp
  // failing (fault meta.stamp).
  void start_with_failing_stamps() {
    HafsdSpec spec;
    spec.medium_dir = medium_.path();
    spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000", "--fault", "meta.stamp=fail:EIO"};
    node_ = std::make_unique<HafsdProcess>(spec);
    std::string why;
    ASSERT_TRUE(node_->start(&why)) << why;
  }

  LoopMedium medium_;
  std::unique_ptr<HafsdProcess> node_;
};

struct Seen {
  ino_t ino;
  mode_t mode;
  std::string data;
};

TEST_F(PowerLossMetaTest, LoggedOperationsComeBackWithTheirInodeNumbers) {
  HafsdSpec spec;
  spec.medium_dir = medium_.path();
  // No destage pass (and so no sync of the volume) while the workload runs.
  spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000"};
  node_ = std::make_unique<HafsdProcess>(spec);
  std::string why;
  ASSERT_TRUE(node_->start(&why)) << why;
  const std::string vol = node_->path("vol0");

  // Warm both pools (their refills sync the medium), then make that the committed state.
  ASSERT_TRUE(spit(vol + "/warm", "w"));
  ASSERT_TRUE(spit(vol + "/trunc", "staged bytes to cut"));
  ASSERT_EQ(::setxattr((vol + "/trunc").c_str(), "user.old", "committed", 9, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::mkdir((vol + "/warmdir").c_str(), 0755), 0);
  // The refiller's batches (two of each type) sync the medium as they are made: all made first.
  ASSERT_TRUE(eventually([&] { return inode_pools_settled(node_->control_socket()); })) << node_->log();
  ASSERT_TRUE(medium_.sync());

  // The workload: every kind of logged operation. The truncate first: the flush of staged data
  // before it syncs the volume (its FENCE must not outrun the data), which would commit
  // everything before it.
  ASSERT_EQ(::truncate((vol + "/trunc").c_str(), 6), 0);
  ASSERT_EQ(::mkdir((vol + "/d").c_str(), 0750), 0);
  ASSERT_EQ(::mkdir((vol + "/d/sub").c_str(), 0700), 0);
  for (int i = 0; i < 20; ++i)
    ASSERT_TRUE(spit(vol + "/d/f" + std::to_string(i), "bytes of file " + std::to_string(i)));
  ASSERT_EQ(::rename((vol + "/d/f1").c_str(), (vol + "/d/sub/moved").c_str()), 0);
  ASSERT_EQ(::rename((vol + "/d/f2").c_str(), (vol + "/d/f3").c_str()), 0);  // replaces f3
  ASSERT_EQ(::link((vol + "/d/f4").c_str(), (vol + "/d/sub/f4-link").c_str()), 0);
  ASSERT_EQ(::chmod((vol + "/d/f5").c_str(), 0604), 0);
  ASSERT_EQ(::unlink((vol + "/d/f7").c_str()), 0);
  ASSERT_EQ(::unlink((vol + "/warm").c_str()), 0);
  ASSERT_EQ(::rmdir((vol + "/warmdir").c_str()), 0);
  ASSERT_EQ(::setxattr((vol + "/d/f6").c_str(), "user.kept", "v1", 2, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::setxattr((vol + "/d/f8").c_str(), "user.gone", "v2", 2, 0), 0);
  ASSERT_EQ(::removexattr((vol + "/d/f8").c_str(), "user.gone"), 0);
  ASSERT_EQ(::removexattr((vol + "/trunc").c_str(), "user.old"), 0);
  {
    const int fd = ::open((vol + "/d/f9").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::fallocate(fd, 0, 0, 100000), 0) << std::strerror(errno);  // extends: size 100000
    ::close(fd);
  }
  std::map<std::string, Seen> seen;
  for (const auto& e : std::filesystem::recursive_directory_iterator(vol)) {
    struct stat st {};
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    const std::string rel = e.path().string().substr(vol.size());
    seen[rel] = Seen{st.st_ino, st.st_mode, S_ISREG(st.st_mode) ? slurp(e.path()) : ""};
  }
  ASSERT_EQ(seen.size(), 22u);  // trunc, d, d/sub, and 19 names of files (20 made, one renamed over, one unlinked, one link)

  ASSERT_TRUE(medium_.power_loss());
  node_->kill9();
  ASSERT_TRUE(medium_.remount()) << std::strerror(errno);
  // An honest crash: the medium lost the workload (its journal never committed it)...
  EXPECT_FALSE(std::filesystem::exists(medium_.path() + "/vol0/d"));
  EXPECT_EQ(std::filesystem::file_size(medium_.path() + "/vol0/trunc"), 19u);
  // ...and kept what hafs synced before it: the pools and the warm-up.
  EXPECT_TRUE(std::filesystem::exists(medium_.path() + "/vol0/warm"));

  ASSERT_TRUE(node_->start(&why)) << why;
  for (const auto& [rel, want] : seen) {
    struct stat st {};
    ASSERT_EQ(::lstat((vol + rel).c_str(), &st), 0) << rel << " is gone after the recovery";
    EXPECT_EQ(st.st_ino, want.ino) << rel << " came back as another inode";
    EXPECT_EQ(st.st_mode, want.mode) << rel;
    if (S_ISREG(st.st_mode)) {
      EXPECT_EQ(slurp(vol + rel), want.data) << rel;
    }
  }
  for (const char* gone : {"/d/f1", "/d/f2", "/d/f7", "/warm", "/warmdir"})
    EXPECT_FALSE(std::filesystem::exists(vol + gone)) << gone << " came back";
  char value[16] = {};
  EXPECT_EQ(::getxattr((vol + "/d/f6").c_str(), "user.kept", value, sizeof value), 2);
  EXPECT_STREQ(value, "v1");
  EXPECT_LT(::getxattr((vol + "/d/f8").c_str(), "user.gone", value, sizeof value), 0) << "a removed xattr came back";
  EXPECT_LT(::getxattr((vol + "/trunc").c_str(), "user.old", value, sizeof value), 0) << "a removed xattr came back";
  EXPECT_EQ(std::filesystem::file_size(vol + "/d/f9"), 100000u);
  EXPECT_EQ(node_->stop(), 0) << node_->log();
}

// A stamp that cannot be written (fault meta.stamp, as on a medium without trusted xattrs): the
// volume is synced at once and its metadata is synced, not logged, from then on (without its
// stamp the next record's redo could not tell what the medium holds; design.md §9a). So the
// operations after it are on the medium by themselves after a power cut, before any redo, and
// the recovery does not redo the unstamped record over them.
TEST_F(PowerLossMetaTest, AFailedStampMakesTheVolumeSyncItsMetadata) {
  ASSERT_NO_FATAL_FAILURE(start_with_failing_stamps());
  std::string why;
  const std::string vol = node_->path("vol0");
  // The create whose stamp fails is made durable (a syncfs) and acknowledged; then a chmod of
  // it, synced. A redo of the create's record would set its mode back: the kSynced record
  // appended after the syncfs makes every replay skip it.
  ASSERT_TRUE(spit(vol + "/first", "x"));
  ASSERT_EQ(::chmod((vol + "/first").c_str(), 0600), 0);
  ASSERT_TRUE(spit(vol + "/after", "synced"));
  ASSERT_EQ(::mkdir((vol + "/afterdir").c_str(), 0755), 0);
  ASSERT_EQ(::rename((vol + "/after").c_str(), (vol + "/afterdir/moved").c_str()), 0);
  EXPECT_NE(node_->log().find("synced from now on"), std::string::npos) << node_->log();

  ASSERT_TRUE(medium_.power_loss());
  node_->kill9();
  ASSERT_TRUE(medium_.remount());
  EXPECT_TRUE(std::filesystem::exists(medium_.path() + "/vol0/afterdir/moved"))
      << "an operation after the failed stamp was not synced";
  ASSERT_TRUE(node_->start(&why)) << why;
  EXPECT_EQ(slurp(vol + "/afterdir/moved"), "synced");
  struct stat st {};
  ASSERT_EQ(::stat((vol + "/first").c_str(), &st), 0) << "the acknowledged create is gone";
  EXPECT_EQ(st.st_mode & 07777, 0600u) << "the recovery undid the chmod after the failed stamp";
  EXPECT_EQ(node_->stop(), 0) << node_->log();
}

// The operation whose stamp failed is acknowledged only once the volume is synced: its record
// is skipped by every replay from then on (the kSynced record after it), so the medium must hold
// it by itself. Here nothing is synced after it before the power cut.
TEST_F(PowerLossMetaTest, AnOperationWhoseStampFailedIsOnTheMediumWhenAcknowledged) {
  ASSERT_NO_FATAL_FAILURE(start_with_failing_stamps());
  ASSERT_EQ(::mkdir(node_->path("vol0/made").c_str(), 0755), 0);
  ASSERT_TRUE(medium_.power_loss());
  node_->kill9();
  ASSERT_TRUE(medium_.remount());
  EXPECT_TRUE(std::filesystem::is_directory(medium_.path() + "/vol0/made"))
      << "acknowledged, its record skipped by every replay, and not on the medium";
}

}  // namespace
}  // namespace hafs::testing
