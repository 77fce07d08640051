// POSIX file-data behaviour through a real mount, on a staged and on a write-through volume:
// open flags, appends, sparse and large files, read-after-write, truncate, fallocate, unlink
// and rename of files with staged data, fsync, times. Each test ends by checking that the
// medium holds what the mount shows (see posix_fixture.h).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "tests/fs/posix_fixture.h"

namespace hafs::testing {
namespace {

constexpr off_t kGiB = off_t{1} << 30;

std::string pattern(size_t len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(len, '\0');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

off_t size_of(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// The volume under test: "staged" -> vol0, "write-through" -> vol1.
class PosixDataTest : public MountedSuite, public ::testing::WithParamInterface<std::string> {
 protected:
  PosixDataTest() { use_volume(GetParam() == "staged" ? "vol0" : "vol1"); }
};

TEST_P(PosixDataTest, CreateExclusiveAndExisting) {
  const std::string f = mnt("f");
  int fd = ::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_TRUE(pwrite_str(fd, "first", 0));
  ::close(fd);
  errno = 0;
  EXPECT_EQ(::open(f.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640), -1);
  EXPECT_EQ(errno, EEXIST);
  fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0600);  // exists: opened, mode unchanged, data kept
  ASSERT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(pread_str(fd, 100, 0), "first");
  ::close(fd);
  struct stat st {};
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_size, 5);
  errno = 0;
  EXPECT_EQ(::open(mnt("missing").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ENOENT);
  errno = 0;
  EXPECT_EQ(::open(mnt("f/sub").c_str(), O_CREAT | O_RDWR, 0644), -1);
  EXPECT_EQ(errno, ENOTDIR);
}

TEST_P(PosixDataTest, OTruncDropsStagedData) {
  const std::string f = mnt("f");
  ASSERT_TRUE(spit(f, pattern(100000, 1)));
  int fd = ::open(f.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  ASSERT_TRUE(pwrite_str(fd, "new", 0));
  ::close(fd);
  EXPECT_EQ(slurp(f), "new");
  EXPECT_EQ(size_of(f), 3);
}

TEST_P(PosixDataTest, TwoAppendersLandAtTheEnd) {
  const std::string f = mnt("f");
  ASSERT_TRUE(spit(f, "0123"));
  int a = ::open(f.c_str(), O_WRONLY | O_APPEND);
  int b = ::open(f.c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  ASSERT_EQ(::write(a, "AA", 2), 2);
  ASSERT_EQ(::write(b, "BBB", 3), 3);
  ASSERT_EQ(::write(a, "C", 1), 1);
  // An explicit offset with O_APPEND still appends on Linux.
  ASSERT_EQ(::pwrite(b, "D", 1, 0), 1);
  EXPECT_EQ(::lseek(a, 0, SEEK_CUR), 10);
  ::close(a);
  ::close(b);
  EXPECT_EQ(slurp(f), "0123AABBBCD");
}

TEST_P(PosixDataTest, SparseFileAtOneGiB) {
  const std::string f = mnt("sparse");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const std::string data = pattern(10000, 2);
  ASSERT_TRUE(pwrite_str(fd, data, kGiB));
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, kGiB + 10000);
  EXPECT_EQ(pread_str(fd, 4096, 0), std::string(4096, '\0'));
  EXPECT_EQ(pread_str(fd, 8192, kGiB / 2 + 1), std::string(8192, '\0'));
  // A read across the start of the data: zeros, then the bytes.
  EXPECT_EQ(pread_str(fd, 100, kGiB - 50), std::string(50, '\0') + data.substr(0, 50));
  EXPECT_EQ(pread_str(fd, 20000, kGiB), data);  // short read at EOF
  EXPECT_EQ(::lseek(fd, 0, SEEK_DATA), kGiB);
  EXPECT_EQ(::lseek(fd, 0, SEEK_HOLE), 0);
  EXPECT_EQ(::lseek(fd, kGiB, SEEK_HOLE), kGiB + 10000);
  errno = 0;
  EXPECT_EQ(::lseek(fd, kGiB + 10000, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  ::close(fd);
  // The medium holds the same: data at 1 GiB, a hole before it.
  EXPECT_TRUE(eventually([&] { return size_of(medium("sparse")) == kGiB + 10000; }));
  int mfd = ::open(medium("sparse").c_str(), O_RDONLY);
  ASSERT_GE(mfd, 0);
  EXPECT_TRUE(eventually([&] { return pread_str(mfd, 10000, kGiB) == data; }));
  EXPECT_EQ(::lseek(mfd, 0, SEEK_DATA), kGiB);
  struct stat mst {};
  ASSERT_EQ(::fstat(mfd, &mst), 0);
  EXPECT_LT(mst.st_blocks * 512, 1 << 20) << "the hole was filled on the medium";
  ::close(mfd);
}

TEST_P(PosixDataTest, OffsetsBeyondFourGiB) {
  const std::string f = mnt("big");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  const off_t off = 5 * kGiB + 3;
  ASSERT_TRUE(pwrite_str(fd, "tail-bytes", off));
  ASSERT_TRUE(pwrite_str(fd, "four", 4 * kGiB - 2));  // crosses the 32-bit boundary
  EXPECT_EQ(pread_str(fd, 10, off), "tail-bytes");
  EXPECT_EQ(pread_str(fd, 4, 4 * kGiB - 2), "four");
  EXPECT_EQ(pread_str(fd, 6, 4 * kGiB - 4), std::string(2, '\0') + "four");
  EXPECT_EQ(pread_str(fd, 64, off + 5), "bytes");
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, off + 10);
  ASSERT_EQ(::ftruncate(fd, 4 * kGiB + 1), 0) << std::strerror(errno);
  EXPECT_EQ(pread_str(fd, 100, 4 * kGiB - 2), "fou");
  ::close(fd);
  EXPECT_EQ(size_of(f), 4 * kGiB + 1);
  EXPECT_TRUE(eventually([&] { return size_of(medium("big")) == 4 * kGiB + 1; }));
  int mfd = ::open(medium("big").c_str(), O_RDONLY);
  ASSERT_GE(mfd, 0);
  EXPECT_EQ(pread_str(mfd, 100, 4 * kGiB - 2), "fou");
  ::close(mfd);
}

TEST_P(PosixDataTest, ReadAfterWriteAtManyOffsets) {
  const std::string f = mnt("f");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string model;
  std::mt19937 rng(42);
  for (int i = 0; i < 300; ++i) {
    const size_t off = rng() % (3 << 20);
    const size_t len = 1 + rng() % 70000;
    const std::string data = pattern(len, static_cast<uint32_t>(i));
    ASSERT_TRUE(pwrite_str(fd, data, static_cast<off_t>(off)));
    if (model.size() < off + len) model.resize(off + len, '\0');
    model.replace(off, len, data);
    // Read a random range back (unaligned, sometimes past EOF) after every write.
    const size_t roff = rng() % (model.size() + 100);
    const size_t rlen = 1 + rng() % 100000;
    const std::string want = roff >= model.size() ? "" : model.substr(roff, rlen);
    ASSERT_EQ(pread_str(fd, rlen, static_cast<off_t>(roff)), want) << "write " << i;
  }
  // Short reads at EOF, and nothing at or past it.
  EXPECT_EQ(pread_str(fd, 100, static_cast<off_t>(model.size()) - 7), model.substr(model.size() - 7));
  EXPECT_EQ(pread_str(fd, 100, static_cast<off_t>(model.size())), "");
  EXPECT_EQ(pread_str(fd, 100, static_cast<off_t>(model.size()) + 4096), "");
  char c;
  EXPECT_EQ(::pread(fd, &c, 1, static_cast<off_t>(model.size())), 0);
  ::close(fd);
  EXPECT_EQ(size_of(f), static_cast<off_t>(model.size()));
  EXPECT_TRUE(slurp(f) == model) << "whole-file read differs";
  EXPECT_TRUE(eventually([&] { return slurp(medium("f")) == model; })) << "medium differs";
}

TEST_P(PosixDataTest, PartialOverwrite) {
  const std::string f = mnt("f");
  ASSERT_TRUE(spit(f, std::string(10000, 'a')));
  int fd = ::open(f.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "BBB", 4095));
  ASSERT_TRUE(pwrite_str(fd, "c", 9999));
  ASSERT_TRUE(pwrite_str(fd, "dd", 4096));
  ::close(fd);
  std::string want(10000, 'a');
  want.replace(4095, 3, "Bdd");
  want[9999] = 'c';
  EXPECT_TRUE(slurp(f) == want);
  EXPECT_TRUE(eventually([&] { return slurp(medium("f")) == want; }));
}

TEST_P(PosixDataTest, TruncateShrinkAndExtendWithStagedData) {
  const std::string f = mnt("f");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string model = pattern(100000, 3);
  ASSERT_TRUE(pwrite_str(fd, model, 0));
  ASSERT_EQ(::ftruncate(fd, 30000), 0) << std::strerror(errno);
  model.resize(30000);
  EXPECT_EQ(size_of(f), 30000);
  EXPECT_TRUE(pread_str(fd, 200000, 0) == model);

  ASSERT_TRUE(pwrite_str(fd, std::string(1000, 'b'), 50000));  // staged past the new end
  model.resize(50000, '\0');
  model += std::string(1000, 'b');
  EXPECT_TRUE(pread_str(fd, 200000, 0) == model);

  ASSERT_EQ(::truncate(f.c_str(), 40000), 0) << std::strerror(errno);  // by path
  model.resize(40000);
  EXPECT_EQ(size_of(f), 40000);
  EXPECT_TRUE(pread_str(fd, 200000, 0) == model);

  ASSERT_EQ(::truncate(f.c_str(), 200000), 0);  // extend: zeros, the cut bytes stay cut
  model.resize(200000, '\0');
  EXPECT_TRUE(pread_str(fd, 300000, 0) == model);

  ASSERT_TRUE(pwrite_str(fd, "ccccc", 10));
  ASSERT_EQ(::ftruncate(fd, 12), 0);
  model = model.substr(0, 10) + "cc";
  EXPECT_EQ(pread_str(fd, 100, 0), model);
  ::close(fd);
  EXPECT_EQ(slurp(f), model);
  EXPECT_TRUE(eventually([&] { return slurp(medium("f")) == model; }));
}

TEST_P(PosixDataTest, FallocateAndPunchHoleWithStagedData) {
  const std::string f = mnt("f");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  std::string model(65536, '\xab');
  ASSERT_TRUE(pwrite_str(fd, model, 0));
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192), 0)
      << std::strerror(errno);
  model.replace(4096, 8192, std::string(8192, '\0'));
  EXPECT_EQ(size_of(f), 65536);
  EXPECT_TRUE(pread_str(fd, 100000, 0) == model);

  ASSERT_EQ(::fallocate(fd, 0, 65536, 65536), 0) << std::strerror(errno);  // allocate, extends
  model.resize(131072, '\0');
  EXPECT_EQ(size_of(f), 131072);

  ASSERT_EQ(::fallocate(fd, FALLOC_FL_KEEP_SIZE, 131072, 65536), 0);  // beyond EOF: size kept
  EXPECT_EQ(size_of(f), 131072);

  ASSERT_TRUE(pwrite_str(fd, "x", 5000));  // staged again, inside the punched hole
  model[5000] = 'x';
  EXPECT_TRUE(pread_str(fd, 200000, 0) == model);
  ::close(fd);
  EXPECT_TRUE(slurp(f) == model);
  EXPECT_TRUE(eventually([&] { return slurp(medium("f")) == model; }));
}

TEST_P(PosixDataTest, FsyncAndFdatasyncSucceed) {
  int fd = ::open(mnt("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "data", 0));
  EXPECT_EQ(::fsync(fd), 0) << std::strerror(errno);
  EXPECT_EQ(::fdatasync(fd), 0) << std::strerror(errno);
  ::close(fd);
  int dfd = ::open(mnt().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  EXPECT_EQ(::fsync(dfd), 0) << std::strerror(errno);
  ::close(dfd);
  int sfd = ::open(mnt("f").c_str(), O_RDWR | O_SYNC);
  ASSERT_GE(sfd, 0);
  ASSERT_TRUE(pwrite_str(sfd, "DA", 0));
  ::close(sfd);
  EXPECT_EQ(slurp(mnt("f")), "DAta");
}

TEST_P(PosixDataTest, OpenUnlinkedFileStaysReadableAndWritable) {
  const std::string f = mnt("f");
  int fd = ::open(f.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "staged before unlink", 0));
  ASSERT_EQ(::unlink(f.c_str()), 0) << std::strerror(errno);
  errno = 0;
  EXPECT_EQ(::access(f.c_str(), F_OK), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(pread_str(fd, 100, 0), "staged before unlink");
  ASSERT_TRUE(pwrite_str(fd, "STAGED", 0));
  ASSERT_TRUE(pwrite_str(fd, "!", 20));
  EXPECT_EQ(pread_str(fd, 100, 0), "STAGED before unlink!");
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_size, 21);
  // A new file with the same name is a different file.
  ASSERT_TRUE(spit(f, "new"));
  EXPECT_EQ(pread_str(fd, 100, 0), "STAGED before unlink!");
  EXPECT_EQ(slurp(f), "new");
  ::close(fd);
}

TEST_P(PosixDataTest, RenameOverFileWithStagedData) {
  const std::string a = mnt("a"), b = mnt("b");
  ASSERT_TRUE(spit(a, "renamed file's data"));
  ASSERT_TRUE(spit(b, std::string(50000, 'v')));  // the victim, staged
  int victim_fd = ::open(b.c_str(), O_RDWR);
  ASSERT_GE(victim_fd, 0);
  ASSERT_EQ(::rename(a.c_str(), b.c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(::access(a.c_str(), F_OK), -1);
  EXPECT_EQ(slurp(b), "renamed file's data");
  // The victim lives on while open, without a name.
  EXPECT_EQ(pread_str(victim_fd, 3, 49997), "vvv");
  ASSERT_TRUE(pwrite_str(victim_fd, "late", 0));
  EXPECT_EQ(pread_str(victim_fd, 4, 0), "late");
  ::close(victim_fd);
  EXPECT_EQ(slurp(b), "renamed file's data");
  EXPECT_TRUE(eventually([&] { return slurp(medium("b")) == "renamed file's data"; }));
}

TEST_P(PosixDataTest, RenameExchangeSwapsStagedFiles) {
  const std::string a = mnt("a"), b = mnt("b");
  ASSERT_TRUE(spit(a, "AAAA"));
  ASSERT_TRUE(spit(b, "BBBBBBBB"));
  ASSERT_EQ(::syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE), 0)
      << std::strerror(errno);
  EXPECT_EQ(slurp(a), "BBBBBBBB");
  EXPECT_EQ(slurp(b), "AAAA");
  EXPECT_EQ(size_of(a), 8);
  // Writes after the swap go to the file now under each name.
  int fd = ::open(a.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "b", 0));
  ::close(fd);
  EXPECT_EQ(slurp(a), "bBBBBBBB");
  EXPECT_TRUE(eventually([&] { return slurp(medium("a")) == "bBBBBBBB" && slurp(medium("b")) == "AAAA"; }));
}

TEST_P(PosixDataTest, HardLinkSharesData) {
  const std::string a = mnt("a"), b = mnt("b");
  ASSERT_TRUE(spit(a, "shared"));
  ASSERT_EQ(::link(a.c_str(), b.c_str()), 0) << std::strerror(errno);
  struct stat sa {}, sb {};
  ASSERT_EQ(::stat(a.c_str(), &sa), 0);
  ASSERT_EQ(::stat(b.c_str(), &sb), 0);
  EXPECT_EQ(sa.st_ino, sb.st_ino);
  EXPECT_EQ(sa.st_nlink, 2u);
  EXPECT_EQ(sb.st_nlink, 2u);
  int fd = ::open(b.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "SH", 0));
  ASSERT_TRUE(pwrite_str(fd, "+more", 6));
  ::close(fd);
  EXPECT_EQ(slurp(a), "SHared+more");
  EXPECT_EQ(size_of(a), 11);
  ASSERT_EQ(::unlink(a.c_str()), 0);
  ASSERT_EQ(::stat(b.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_nlink, 1u);
  EXPECT_EQ(slurp(b), "SHared+more");
  errno = 0;
  EXPECT_EQ(::link(mnt().c_str(), mnt("dirlink").c_str()), -1);  // no hard links to directories
  EXPECT_EQ(errno, EPERM);
}

TEST_P(PosixDataTest, ExplicitTimesSurviveDestage) {
  const std::string f = mnt("f");
  ASSERT_TRUE(spit(f, pattern(70000, 4)));
  const timespec times[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
  ASSERT_EQ(::utimensat(AT_FDCWD, f.c_str(), times, 0), 0) << std::strerror(errno);
  struct stat set {};
  ASSERT_EQ(::stat(f.c_str(), &set), 0);
  EXPECT_EQ(set.st_atim.tv_sec, 1000000000);  // before any read: reads move atime (relatime)
  EXPECT_EQ(set.st_atim.tv_nsec, 123456789);
  // Wait until the staged bytes are on the medium, then the times must still be those set.
  ASSERT_TRUE(eventually([&] { return slurp(medium("f")) == pattern(70000, 4); }));
  for (const std::string& p : {f, medium("f")}) {
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1100000000) << p;
    EXPECT_EQ(st.st_mtim.tv_nsec, 987654321) << p;
  }
}

TEST_P(PosixDataTest, WriteAdvancesMtimeAndCtime) {
  const std::string f = mnt("f");
  ASSERT_TRUE(spit(f, "x"));
  const timespec past[2] = {{1000000000, 0}, {1000000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, f.c_str(), past, 0), 0);
  struct stat before {};
  ASSERT_EQ(::stat(f.c_str(), &before), 0);
  ASSERT_EQ(before.st_mtim.tv_sec, 1000000000);
  timespec start {};
  clock_gettime(CLOCK_REALTIME, &start);
  int fd = ::open(f.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(pwrite_str(fd, "written", 1));
  struct stat after {};
  ASSERT_EQ(::fstat(fd, &after), 0);
  ::close(fd);
  EXPECT_GE(after.st_mtim.tv_sec, start.tv_sec - 1);
  EXPECT_GE(after.st_ctim.tv_sec, before.st_ctim.tv_sec);
  EXPECT_GE(after.st_ctim.tv_sec, after.st_mtim.tv_sec);
  // Still after the destage (which writes the bytes later).
  ASSERT_TRUE(eventually([&] { return slurp(medium("f")) == "xwritten"; }));
  ASSERT_EQ(::stat(f.c_str(), &after), 0);
  EXPECT_GE(after.st_mtim.tv_sec, start.tv_sec - 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, PosixDataTest, ::testing::Values("staged", "write-through"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param == "staged" ? std::string("Staged") : std::string("WriteThrough");
                         });

}  // namespace
}  // namespace hafs::testing
