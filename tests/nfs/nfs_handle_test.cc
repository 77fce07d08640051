// NFS file handles outlive hafsd: a handle obtained before hafsd restarts (same node, same
// medium) resolves after the daemon and ganesha are back, through GETATTR, READ and a LOOKUP
// from the old directory handle, because hafs's inode numbers and generations come from the
// medium (fs/volume.h) and the exports keep their ids (tools/hafs-nfs.sh). A file removed while
// the daemon was down gives STALE, never another file's data.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/nfs/nfs_fixture.h"
#include "tests/support/control_status.h"
#include "tests/support/loop_medium.h"
#include "tests/support/wait.h"

namespace hafs::testing {
namespace {

constexpr int kNfsOk = 0;
constexpr int kNfsErrStale = 70;  // NFS3ERR_STALE and NFS4ERR_STALE

class NfsHandleTest : public NfsNodeTest, public ::testing::WithParamInterface<int> {
 protected:
  std::unique_ptr<RawNfs> raw() {
    std::string why;
    auto r = RawNfs::connect(target(GetParam()), &why);
    EXPECT_TRUE(r) << why;
    return r;
  }
};

TEST_P(NfsHandleTest, HandlesResolveAfterHafsdRestart) {
  ASSERT_NO_FATAL_FAILURE(start_node());
  const std::string content = "written before the restart";
  std::filesystem::create_directories(hafsd_->path("vol0/dir"));
  std::ofstream(hafsd_->path("vol0/dir/kept")) << content;
  std::ofstream(hafsd_->path("vol0/dir/removed")) << "gone soon";

  RawNfs::Handle root, dir, kept, removed;
  RawNfs::Attr kept_attr;
  {
    auto nfs = raw();
    ASSERT_TRUE(nfs);
    ASSERT_EQ(nfs->root(&root), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(root, "dir", &dir), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(dir, "kept", &kept), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(dir, "removed", &removed), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->getattr(kept, &kept_attr), kNfsOk) << nfs->error();
    ASSERT_EQ(kept_attr.size, content.size());
  }

  // Restart: NFS service down, hafsd down (clean), the file removed on the medium meanwhile,
  // hafsd up on the same medium, ganesha up with the same directory and ports.
  RunResult down = ganesha_->down();
  ASSERT_EQ(down.code, 0) << down.output;
  ASSERT_EQ(hafsd_->stop(), 0) << hafsd_->log();
  ASSERT_TRUE(std::filesystem::remove(hafsd_->volume_dir("vol0") + "/dir/removed"));
  std::string why;
  ASSERT_TRUE(hafsd_->start(&why)) << why;
  RunResult up = ganesha_->up(hafsd_->mount());
  ASSERT_EQ(up.code, 0) << up.output << "\n" << ganesha_->log();

  auto nfs = raw();
  ASSERT_TRUE(nfs);
  RawNfs::Attr attr;
  ASSERT_EQ(nfs->getattr(kept, &attr), kNfsOk) << "old handle of dir/kept: " << nfs->error();
  EXPECT_EQ(attr.fileid, kept_attr.fileid);
  EXPECT_EQ(attr.size, content.size());
  std::string data;
  ASSERT_EQ(nfs->read(kept, 0, 4096, &data), kNfsOk) << nfs->error();
  EXPECT_EQ(data, content);
  RawNfs::Handle again;
  ASSERT_EQ(nfs->lookup(dir, "kept", &again), kNfsOk) << "old handle of dir: " << nfs->error();
  EXPECT_EQ(again, kept) << "the same file got a different handle after the restart";
  RawNfs::Handle root_again;
  ASSERT_EQ(nfs->root(&root_again), kNfsOk) << nfs->error();
  EXPECT_EQ(root_again, root);
  EXPECT_EQ(nfs->getattr(removed, &attr), kNfsErrStale) << nfs->error();
}

// What a takeover needs of the handles, without the takeover: two nodes export the same volume
// on the same medium (write-through, so the medium has every byte at once), each through its own
// hafs mount (a different device number) and its own ganesha. A handle from node A's server
// resolves on node B's: same export id, the same filesystem id in ganesha's handle (fsid_type =
// Major64: only the device major, 0 for every FUSE mount, where the minor differs per mount),
// the same inode number and generation from the medium. With ganesha's default (major and minor
// of the device) node B answers STALE.
TEST_P(NfsHandleTest, HandleFromOneNodeResolvesOnTheOther) {
  std::string why;
  ASSERT_TRUE(enter_private_netns(&why)) << why;
  char tmpl[] = "/tmp/hafs-nfs-medium.XXXXXX";
  const std::string medium = ::mkdtemp(tmpl);
  struct RemoveAtExit {  // also when an assertion ends the test early
    std::string path;
    ~RemoveAtExit() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_medium{medium};
  HafsdSpec spec;
  spec.volumes = {{"vol0", "write-through"}};
  spec.medium_dir = medium;
  {
    HafsdProcess a(spec);
    spec.node_id = 2;
    HafsdProcess b(spec);
    ASSERT_TRUE(a.start(&why)) << why;
    ASSERT_TRUE(b.start(&why)) << why;
    GaneshaNode na, nb;
    RunResult up_a = na.up(a.mount());
    RunResult up_b = nb.up(b.mount());
    ASSERT_EQ(up_a.code, 0) << up_a.output << na.log();
    ASSERT_EQ(up_b.code, 0) << up_b.output << nb.log();
    // Many files: node B's kernel forgets each one between GETATTR and READ (FUSE drops
    // unused inodes at once), so READ looks the file up as "." of itself while hafs may still
    // hold it: the case fs/ once answered with ENOTDIR, which the client saw as STALE.
    constexpr int kFiles = 20;
    std::filesystem::create_directories(a.path("vol0/dir"));
    for (int i = 0; i < kFiles; ++i)
      std::ofstream(a.path("vol0/dir/file" + std::to_string(i))) << "served by either node " << i;

    auto on = [&](const GaneshaNode& n) {
      NfsTarget t;
      t.export_path = "/vol0";
      t.version = GetParam();
      t.nfs_port = n.nfs_port();
      t.mount_port = n.mount_port();
      auto r = RawNfs::connect(t, &why);
      EXPECT_TRUE(r) << why;
      return r;
    };
    auto nfs_a = on(na), nfs_b = on(nb);
    ASSERT_TRUE(nfs_a && nfs_b);
    RawNfs::Handle root, dir;
    ASSERT_EQ(nfs_a->root(&root), kNfsOk) << nfs_a->error();
    ASSERT_EQ(nfs_a->lookup(root, "dir", &dir), kNfsOk) << nfs_a->error();
    for (int i = 0; i < kFiles; ++i) {
      const std::string name = "file" + std::to_string(i);
      const std::string content = "served by either node " + std::to_string(i);
      SCOPED_TRACE(name);
      RawNfs::Handle file;
      ASSERT_EQ(nfs_a->lookup(dir, name, &file), kNfsOk) << nfs_a->error();
      RawNfs::Attr attr;
      ASSERT_EQ(nfs_b->getattr(file, &attr), kNfsOk) << "node A's handle on node B: " << nfs_b->error();
      EXPECT_EQ(attr.size, content.size());
      std::string data;
      ASSERT_EQ(nfs_b->read(file, 0, 4096, &data), kNfsOk) << nfs_b->error();
      EXPECT_EQ(data, content);
      RawNfs::Handle file_b;
      ASSERT_EQ(nfs_b->lookup(dir, name, &file_b), kNfsOk) << nfs_b->error();
      EXPECT_EQ(file_b, file) << "the nodes give the same file different handles";
    }
  }
}

std::string version_name(const ::testing::TestParamInfo<int>& param_info) {
  return "v" + std::to_string(param_info.param);
}

INSTANTIATE_TEST_SUITE_P(Versions, NfsHandleTest, ::testing::Values(3, 4), version_name);

// Handles of files made through logged metadata (design.md §9a) outlive a power loss of the
// medium: the medium (an ext4 image) loses every create, rename and directory of the workload,
// hafsd restarts on its NV log and redoes them from the inode pool, and the handles an NFS
// client obtained before resolve to the same files: same fileid, same bytes, and a LOOKUP in an
// old directory handle gives the old handle.
TEST_P(NfsHandleTest, HandlesOfLoggedCreatesResolveAfterAPowerLossOfTheMedium) {
  LoopMedium medium;
  if (!medium.ok()) GTEST_SKIP() << medium.why();
  ASSERT_NO_FATAL_FAILURE(start_node({}, [&](HafsdSpec& spec) {
    spec.medium_dir = medium.path();
    spec.extra_args = {"--set", "nvlog.destage_interval_ms=60000"};  // no destage pass meanwhile
  }));
  // Warm the inode pools (their refills sync the medium); that is the committed state.
  std::ofstream(hafsd_->path("vol0/warm")) << "w";
  std::filesystem::create_directories(hafsd_->path("vol0/warmdir"));
  ASSERT_TRUE(eventually([&] { return inode_pools_settled(hafsd_->control_socket()); })) << hafsd_->log();
  ASSERT_TRUE(medium.sync());
  const std::string content = "made just before the power cut";
  std::filesystem::create_directories(hafsd_->path("vol0/dir/sub"));
  std::ofstream(hafsd_->path("vol0/dir/sub/made")) << content;
  std::filesystem::rename(hafsd_->path("vol0/dir/sub/made"), hafsd_->path("vol0/dir/moved"));

  RawNfs::Handle root, dir, sub, moved;
  RawNfs::Attr moved_attr;
  {
    auto nfs = raw();
    ASSERT_TRUE(nfs);
    ASSERT_EQ(nfs->root(&root), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(root, "dir", &dir), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(dir, "sub", &sub), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->lookup(dir, "moved", &moved), kNfsOk) << nfs->error();
    ASSERT_EQ(nfs->getattr(moved, &moved_attr), kNfsOk) << nfs->error();
  }
  RunResult down = ganesha_->down();
  ASSERT_EQ(down.code, 0) << down.output;
  ASSERT_TRUE(medium.power_loss());
  hafsd_->kill9();
  ASSERT_TRUE(medium.remount());
  ASSERT_FALSE(std::filesystem::exists(hafsd_->volume_dir("vol0") + "/dir")) << "the medium kept the workload";

  std::string why;
  ASSERT_TRUE(hafsd_->start(&why)) << why;
  RunResult up = ganesha_->up(hafsd_->mount());
  ASSERT_EQ(up.code, 0) << up.output << "\n" << ganesha_->log();
  auto nfs = raw();
  ASSERT_TRUE(nfs);
  RawNfs::Attr attr;
  ASSERT_EQ(nfs->getattr(moved, &attr), kNfsOk) << "old handle of dir/moved: " << nfs->error();
  EXPECT_EQ(attr.fileid, moved_attr.fileid);
  std::string data;
  ASSERT_EQ(nfs->read(moved, 0, 4096, &data), kNfsOk) << nfs->error();
  EXPECT_EQ(data, content);
  RawNfs::Handle again;
  ASSERT_EQ(nfs->lookup(dir, "moved", &again), kNfsOk) << "old handle of dir: " << nfs->error();
  EXPECT_EQ(again, moved) << "the file got a different handle after the power loss";
  EXPECT_EQ(nfs->getattr(sub, &attr), kNfsOk) << "old handle of dir/sub: " << nfs->error();
  // Stop before the medium goes (it is this test's, the daemon the fixture's).
  ganesha_->down();
  EXPECT_EQ(hafsd_->stop(), 0) << hafsd_->log();
}

}  // namespace
}  // namespace hafs::testing
