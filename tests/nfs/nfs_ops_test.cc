// Data and namespace operations through ganesha with the libnfs client, NFSv3 and NFSv4 (4.0:
// the only minor version libnfs 4.0 speaks), checked through NFS and through the hafs mount.
#include <nfsc/libnfs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "base/crc32c.h"
#include "tests/nfs/nfs_fixture.h"

namespace hafs::testing {
namespace {

constexpr size_t kBigFileBytes = 10u << 20;
constexpr int kDirEntries = 10000;

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

uint32_t checksum(const std::string& s) { return crc32c(s.data(), s.size()); }

std::string read_local(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class NfsOpsTest : public NfsNodeTest, public ::testing::WithParamInterface<int> {};

std::string version_name(const ::testing::TestParamInfo<int>& param_info) {
  return "v" + std::to_string(param_info.param);
}

TEST_P(NfsOpsTest, TenMiBWriteReadsBackWithTheSameChecksum) {
  ASSERT_NO_FATAL_FAILURE(start_node());
  for (const std::string volume : {"vol0", "vol1"}) {  // staged and write-through
    SCOPED_TRACE(volume);
    auto nfs = client(GetParam(), volume);
    ASSERT_TRUE(nfs);
    const std::string data = random_bytes(kBigFileBytes, 7 + GetParam());
    ASSERT_EQ(nfs->write_file("/big.dat", data), 0) << nfs->error();
    std::string back;
    ASSERT_EQ(nfs->read_file("/big.dat", &back), 0) << nfs->error();
    ASSERT_EQ(back.size(), data.size());
    EXPECT_EQ(checksum(back), checksum(data));
    // What the NFS client wrote is what hafs holds.
    EXPECT_EQ(checksum(read_local(hafsd_->path(volume + "/big.dat"))), checksum(data));
  }
}

TEST_P(NfsOpsTest, CreateRenameLinkUnlinkMkdirRmdir) {
  ASSERT_NO_FATAL_FAILURE(start_node());
  auto nfs = client(GetParam());
  ASSERT_TRUE(nfs);
  nfs_context* c = nfs->ctx();
  ASSERT_EQ(nfs->write_file("/a.txt", "first file"), 0) << nfs->error();
  ASSERT_EQ(nfs_rename(c, "/a.txt", "/b.txt"), 0) << nfs->error();
  EXPECT_FALSE(std::filesystem::exists(hafsd_->path("vol0/a.txt")));
  EXPECT_EQ(read_local(hafsd_->path("vol0/b.txt")), "first file");

  ASSERT_EQ(nfs_link(c, "/b.txt", "/c.txt"), 0) << nfs->error();
  struct nfs_stat_64 st {};
  ASSERT_EQ(nfs_stat64(c, "/c.txt", &st), 0) << nfs->error();
  EXPECT_EQ(st.nfs_nlink, 2u);
  struct nfs_stat_64 st_b {};
  ASSERT_EQ(nfs_stat64(c, "/b.txt", &st_b), 0) << nfs->error();
  EXPECT_EQ(st.nfs_ino, st_b.nfs_ino);
  struct stat local {};
  ASSERT_EQ(::stat(hafsd_->path("vol0/c.txt").c_str(), &local), 0);
  EXPECT_EQ(local.st_ino, st.nfs_ino) << "the NFS fileid is hafs's inode number";

  ASSERT_EQ(nfs_unlink(c, "/b.txt"), 0) << nfs->error();
  std::string back;
  ASSERT_EQ(nfs->read_file("/c.txt", &back), 0) << nfs->error();
  EXPECT_EQ(back, "first file");
  ASSERT_EQ(nfs_unlink(c, "/c.txt"), 0) << nfs->error();
  EXPECT_LT(nfs_stat64(c, "/c.txt", &st), 0);
  EXPECT_FALSE(std::filesystem::exists(hafsd_->path("vol0/c.txt")));

  ASSERT_EQ(nfs_mkdir(c, "/d"), 0) << nfs->error();
  ASSERT_EQ(nfs->write_file("/d/inner", "x"), 0) << nfs->error();
  EXPECT_TRUE(std::filesystem::is_directory(hafsd_->path("vol0/d")));
  EXPECT_EQ(nfs_rmdir(c, "/d"), -ENOTEMPTY);
  ASSERT_EQ(nfs_unlink(c, "/d/inner"), 0) << nfs->error();
  ASSERT_EQ(nfs_rmdir(c, "/d"), 0) << nfs->error();
  EXPECT_FALSE(std::filesystem::exists(hafsd_->path("vol0/d")));
  std::vector<std::string> names;
  ASSERT_EQ(nfs->list_dir("/", &names), 0) << nfs->error();
  EXPECT_TRUE(names.empty()) << names.size() << " names left, first " << names.front();
}

TEST_P(NfsOpsTest, ReaddirOfTenThousandEntries) {
  std::set<std::string> made;
  // The entries are made on the medium before hafsd serves the volume: READDIR is the point,
  // and 10k synced creates through the mount would only measure the medium's fsync.
  ASSERT_NO_FATAL_FAILURE(start_node([&](HafsdProcess& p) {
    const std::string big = p.volume_dir("vol0") + "/big";
    std::filesystem::create_directories(big);
    for (int i = 0; i < kDirEntries; ++i) {
      const std::string name = "entry-" + std::to_string(i);
      std::ofstream(big + "/" + name) << i;
      made.insert(name);
    }
  }));
  auto nfs = client(GetParam());
  ASSERT_TRUE(nfs);
  std::vector<std::string> names;
  ASSERT_EQ(nfs->list_dir("/big", &names), 0) << nfs->error();
  EXPECT_EQ(names.size(), size_t{kDirEntries});
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), made);
  std::string back;
  ASSERT_EQ(nfs->read_file("/big/entry-9999", &back), 0) << nfs->error();
  EXPECT_EQ(back, "9999");
}

INSTANTIATE_TEST_SUITE_P(Versions, NfsOpsTest, ::testing::Values(3, 4), version_name);

}  // namespace
}  // namespace hafs::testing
