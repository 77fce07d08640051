// POSIX namespace behaviour through a real mount (staged volume vol0): directories, unlink,
// rename (plain, directories, flags, EXDEV), symlinks, fifos, long and non-UTF-8 names, big
// directories, the mount root, statfs. Each test ends by checking the medium.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "tests/fs/posix_fixture.h"

namespace hafs::testing {
namespace {

int renameat2(const std::string& from, const std::string& to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
}

// errno of a call that is expected to fail; 0 if it succeeded.
template <typename F>
int err_of(F call) {
  errno = 0;
  return call() == -1 ? errno : 0;
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  DIR* d = ::opendir(path.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  return names;
}

class PosixNamesTest : public MountedSuite {};

TEST_F(PosixNamesTest, MkdirRmdirAndTheirErrors) {
  ASSERT_EQ(::mkdir(mnt("d").c_str(), 0750), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::stat(mnt("d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_nlink, 2u);
  EXPECT_EQ(err_of([&] { return ::mkdir(mnt("d").c_str(), 0755); }), EEXIST);
  ASSERT_TRUE(spit(mnt("d/f"), "x"));
  ASSERT_EQ(::mkdir(mnt("d/sub").c_str(), 0755), 0);
  ASSERT_EQ(::stat(mnt("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);
  EXPECT_EQ(err_of([&] { return ::rmdir(mnt("d").c_str()); }), ENOTEMPTY);
  EXPECT_EQ(err_of([&] { return ::rmdir(mnt("d/f").c_str()); }), ENOTDIR);
  EXPECT_EQ(err_of([&] { return ::mkdir(mnt("d/f/x").c_str(), 0755); }), ENOTDIR);
  EXPECT_EQ(err_of([&] { return ::unlink(mnt("d/sub").c_str()); }), EISDIR);
  EXPECT_EQ(err_of([&] { return ::open(mnt("d").c_str(), O_WRONLY); }), EISDIR);
  EXPECT_EQ(err_of([&] { return ::rmdir(mnt("nothing").c_str()); }), ENOENT);
  EXPECT_EQ(err_of([&] { return ::rmdir(mnt("d/sub/.").c_str()); }), EINVAL);
  ASSERT_EQ(::rmdir(mnt("d/sub").c_str()), 0);
  ASSERT_EQ(::unlink(mnt("d/f").c_str()), 0);
  ASSERT_EQ(::rmdir(mnt("d").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(err_of([&] { return ::stat(mnt("d").c_str(), &st); }), ENOENT);
  ASSERT_EQ(::mkdir(mnt("kept").c_str(), 0700), 0);  // for the medium check
  struct stat mst {};
  EXPECT_EQ(::stat(medium("d").c_str(), &mst), -1) << "rmdir did not reach the medium";
}

TEST_F(PosixNamesTest, UnlinkRemovesTheName) {
  ASSERT_TRUE(spit(mnt("f"), "data"));
  ASSERT_TRUE(spit(mnt("g"), "other"));
  ASSERT_EQ(::unlink(mnt("f").c_str()), 0);
  EXPECT_EQ(err_of([&] { return ::unlink(mnt("f").c_str()); }), ENOENT);
  EXPECT_EQ(err_of([&] { return ::open(mnt("f").c_str(), O_RDONLY); }), ENOENT);
  struct stat st {};
  EXPECT_EQ(::stat(medium("f").c_str(), &st), -1);
  EXPECT_EQ(list_dir(mnt()).size(), 3u);  // ".", "..", "g"
}

TEST_F(PosixNamesTest, RenamePlainAndDirectories) {
  ASSERT_TRUE(spit(mnt("a"), "content of a"));
  ASSERT_EQ(::rename(mnt("a").c_str(), mnt("b").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(mnt("b")), "content of a");
  EXPECT_EQ(err_of([&] { return ::access(mnt("a").c_str(), F_OK); }), ENOENT);

  ASSERT_EQ(::mkdir(mnt("d1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(mnt("d2").c_str(), 0755), 0);
  ASSERT_TRUE(spit(mnt("d1/inner"), "inner data"));
  ASSERT_EQ(::rename(mnt("b").c_str(), mnt("d1/b").c_str()), 0);  // into another directory
  ASSERT_EQ(::rename(mnt("d1").c_str(), mnt("d2/moved").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(mnt("d2/moved/inner")), "inner data");
  EXPECT_EQ(slurp(mnt("d2/moved/b")), "content of a");
  struct stat st {};
  ASSERT_EQ(::stat(mnt("d2").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);

  // A directory over an empty directory works, over a non-empty one does not.
  ASSERT_EQ(::mkdir(mnt("empty").c_str(), 0755), 0);
  ASSERT_EQ(::rename(mnt("d2/moved").c_str(), mnt("empty").c_str()), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(mnt("empty/inner")), "inner data");
  ASSERT_EQ(::mkdir(mnt("full").c_str(), 0755), 0);
  ASSERT_TRUE(spit(mnt("full/x"), "x"));
  EXPECT_EQ(err_of([&] { return ::rename(mnt("empty").c_str(), mnt("full").c_str()); }), ENOTEMPTY);
  // Kinds must match.
  EXPECT_EQ(err_of([&] { return ::rename(mnt("full/x").c_str(), mnt("empty").c_str()); }), EISDIR);
  EXPECT_EQ(err_of([&] { return ::rename(mnt("empty").c_str(), mnt("full/x").c_str()); }), ENOTDIR);
  // Into its own subdirectory.
  ASSERT_EQ(::mkdir(mnt("empty/child").c_str(), 0755), 0);
  EXPECT_EQ(err_of([&] { return ::rename(mnt("empty").c_str(), mnt("empty/child/loop").c_str()); }),
            EINVAL);
  EXPECT_EQ(err_of([&] { return ::rename(mnt("missing").c_str(), mnt("x").c_str()); }), ENOENT);
}

TEST_F(PosixNamesTest, RenameNoReplaceAndExchange) {
  ASSERT_TRUE(spit(mnt("a"), "AAA"));
  ASSERT_TRUE(spit(mnt("b"), "BBBBB"));
  EXPECT_EQ(err_of([&] { return renameat2(mnt("a"), mnt("b"), RENAME_NOREPLACE); }), EEXIST);
  EXPECT_EQ(slurp(mnt("a")), "AAA");
  EXPECT_EQ(slurp(mnt("b")), "BBBBB");
  ASSERT_EQ(renameat2(mnt("a"), mnt("c"), RENAME_NOREPLACE), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(mnt("c")), "AAA");

  // Exchange a file and a directory; data and contents intact on both sides.
  ASSERT_EQ(::mkdir(mnt("d").c_str(), 0755), 0);
  ASSERT_TRUE(spit(mnt("d/in"), "in d"));
  ASSERT_EQ(renameat2(mnt("c"), mnt("d"), RENAME_EXCHANGE), 0) << std::strerror(errno);
  EXPECT_EQ(slurp(mnt("d")), "AAA");
  EXPECT_EQ(slurp(mnt("c/in")), "in d");
  EXPECT_EQ(err_of([&] { return renameat2(mnt("c"), mnt("nothing"), RENAME_EXCHANGE); }), ENOENT);
  // The names are on the medium at once (metadata); the bytes once destaged.
  struct stat st {};
  EXPECT_EQ(::stat(medium("c/in").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(::stat(medium("d").c_str(), &st) == 0 ? st.st_mode : 0));
  EXPECT_TRUE(eventually([&] { return slurp(medium("d")) == "AAA" && slurp(medium("c/in")) == "in d"; }));
}

TEST_F(PosixNamesTest, RenameAndLinkAcrossVolumesAreExdev) {
  ASSERT_TRUE(spit(mnt("f"), "stays"));
  const std::string other = node().path("vol2/" + std::string("exdev-target"));
  EXPECT_EQ(err_of([&] { return ::rename(mnt("f").c_str(), other.c_str()); }), EXDEV);
  EXPECT_EQ(err_of([&] { return ::link(mnt("f").c_str(), other.c_str()); }), EXDEV);
  EXPECT_EQ(err_of([&] { return ::rename(mnt("f").c_str(), node().path("vol1/x").c_str()); }), EXDEV);
  EXPECT_EQ(slurp(mnt("f")), "stays");
  EXPECT_EQ(err_of([&] { return ::access(other.c_str(), F_OK); }), ENOENT);
  // Renaming a volume itself, or onto the mount root's level, is refused.
  EXPECT_NE(::rename(node().path("vol2").c_str(), node().path("vol9").c_str()), 0);
  EXPECT_NE(::rename(mnt("f").c_str(), node().path("f").c_str()), 0);
}

TEST_F(PosixNamesTest, HardLinkCounts) {
  ASSERT_TRUE(spit(mnt("a"), "x"));
  ASSERT_EQ(::mkdir(mnt("d").c_str(), 0755), 0);
  for (const char* n : {"b", "d/c", "d/e"}) ASSERT_EQ(::link(mnt("a").c_str(), mnt(n).c_str()), 0) << n;
  struct stat st {};
  ASSERT_EQ(::stat(mnt("d/e").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 4u);
  EXPECT_EQ(err_of([&] { return ::link(mnt("a").c_str(), mnt("b").c_str()); }), EEXIST);
  EXPECT_EQ(err_of([&] { return ::link(mnt("none").c_str(), mnt("z").c_str()); }), ENOENT);
  ASSERT_EQ(::unlink(mnt("b").c_str()), 0);
  ASSERT_EQ(::rename(mnt("d/c").c_str(), mnt("a").c_str()), 0);  // a link over a link to itself
  ASSERT_EQ(::stat(mnt("a").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 3u);
  struct stat mst {};
  ASSERT_EQ(::stat(medium("a").c_str(), &mst), 0);
  EXPECT_EQ(mst.st_nlink, 3u);
}

TEST_F(PosixNamesTest, SymlinksReadlinkLstatAndLoops) {
  ASSERT_TRUE(spit(mnt("target"), "through the link"));
  ASSERT_EQ(::symlink("target", mnt("link").c_str()), 0) << std::strerror(errno);
  char buf[256] = {};
  ASSERT_EQ(::readlink(mnt("link").c_str(), buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "target");
  struct stat lst {}, st {};
  ASSERT_EQ(::lstat(mnt("link").c_str(), &lst), 0);
  EXPECT_TRUE(S_ISLNK(lst.st_mode));
  EXPECT_EQ(lst.st_size, 6);
  ASSERT_EQ(::stat(mnt("link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_size, 16);
  EXPECT_EQ(slurp(mnt("link")), "through the link");
  EXPECT_EQ(err_of([&] { return ::readlink(mnt("target").c_str(), buf, sizeof buf); }), EINVAL);

  ASSERT_EQ(::symlink("dangling-nowhere", mnt("dangling").c_str()), 0);
  EXPECT_EQ(err_of([&] { return ::stat(mnt("dangling").c_str(), &st); }), ENOENT);
  ASSERT_EQ(::lstat(mnt("dangling").c_str(), &lst), 0);

  ASSERT_EQ(::symlink("loop-b", mnt("loop-a").c_str()), 0);
  ASSERT_EQ(::symlink("loop-a", mnt("loop-b").c_str()), 0);
  EXPECT_EQ(err_of([&] { return ::open(mnt("loop-a").c_str(), O_RDONLY); }), ELOOP);
  EXPECT_EQ(err_of([&] { return ::stat(mnt("loop-b").c_str(), &st); }), ELOOP);
  EXPECT_EQ(err_of([&] { return ::open(mnt("link").c_str(), O_RDONLY | O_NOFOLLOW); }), ELOOP);
  EXPECT_EQ(err_of([&] { return ::symlink("x", mnt("link").c_str()); }), EEXIST);

  // A symlink to a directory, and an absolute one pointing back into the mount.
  ASSERT_EQ(::mkdir(mnt("dir").c_str(), 0755), 0);
  ASSERT_TRUE(spit(mnt("dir/f"), "deep"));
  ASSERT_EQ(::symlink("dir", mnt("dirlink").c_str()), 0);
  EXPECT_EQ(slurp(mnt("dirlink/f")), "deep");
  ASSERT_EQ(::symlink(mnt("dir/f").c_str(), mnt("abs").c_str()), 0);
  EXPECT_EQ(slurp(mnt("abs")), "deep");
  // Removing the link leaves the target.
  ASSERT_EQ(::unlink(mnt("link").c_str()), 0);
  EXPECT_EQ(slurp(mnt("target")), "through the link");
  char mbuf[256] = {};
  ASSERT_GT(::readlink(medium("dirlink").c_str(), mbuf, sizeof mbuf), 0);
  EXPECT_STREQ(mbuf, "dir");
}

TEST_F(PosixNamesTest, FifoViaMknod) {
  ASSERT_EQ(::mkfifo(mnt("fifo").c_str(), 0640), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::stat(mnt("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::mknod(mnt("fifo2").c_str(), S_IFIFO | 0600, 0), 0);
  // It works as a pipe (the kernel serves it; the daemon only made the node).
  int r = ::open(mnt("fifo").c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(r, 0) << std::strerror(errno);
  int w = ::open(mnt("fifo").c_str(), O_WRONLY | O_NONBLOCK);
  ASSERT_GE(w, 0) << std::strerror(errno);
  ASSERT_EQ(::write(w, "pipe", 4), 4);
  char buf[8] = {};
  EXPECT_EQ(::read(r, buf, sizeof buf), 4);
  EXPECT_STREQ(buf, "pipe");
  ::close(w);
  ::close(r);
  struct stat mst {};
  ASSERT_EQ(::stat(medium("fifo").c_str(), &mst), 0);
  EXPECT_TRUE(S_ISFIFO(mst.st_mode));
  EXPECT_EQ(err_of([&] { return ::mkfifo(mnt("fifo").c_str(), 0600); }), EEXIST);
}

TEST_F(PosixNamesTest, NameTooLong) {
  const std::string longest(255, 'n'), too_long(256, 'n');
  ASSERT_TRUE(spit(mnt(longest), "255 is fine"));
  EXPECT_EQ(slurp(mnt(longest)), "255 is fine");
  EXPECT_EQ(err_of([&] { return ::open(mnt(too_long).c_str(), O_CREAT | O_WRONLY, 0644); }), ENAMETOOLONG);
  EXPECT_EQ(err_of([&] { return ::mkdir(mnt(too_long).c_str(), 0755); }), ENAMETOOLONG);
  EXPECT_EQ(err_of([&] { return ::symlink("x", mnt(too_long).c_str()); }), ENAMETOOLONG);
  EXPECT_EQ(err_of([&] { return ::mkfifo(mnt(too_long).c_str(), 0644); }), ENAMETOOLONG);
  EXPECT_EQ(err_of([&] { return ::rename(mnt(longest).c_str(), mnt(too_long).c_str()); }), ENAMETOOLONG);
  EXPECT_EQ(err_of([&] { return ::link(mnt(longest).c_str(), mnt(too_long).c_str()); }), ENAMETOOLONG);
  struct stat st {};
  EXPECT_EQ(err_of([&] { return ::stat(mnt(too_long).c_str(), &st); }), ENAMETOOLONG);
  EXPECT_EQ(list_dir(mnt()).size(), 3u);
}

TEST_F(PosixNamesTest, NonUtf8Names) {
  const std::vector<std::string> names = {"bad\xff\xfe", "\x80\x81\x82", "lat\xe9n", "nl\nin\tname",
                                          "sp ace", "\xc3\x28"};
  for (size_t i = 0; i < names.size(); ++i)
    ASSERT_TRUE(spit(mnt(names[i]), "file " + std::to_string(i))) << i;
  ASSERT_EQ(::mkdir(mnt("dir\xff").c_str(), 0755), 0);
  std::set<std::string> listed;
  for (const auto& n : list_dir(mnt())) listed.insert(n);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_TRUE(listed.count(names[i])) << "name " << i << " not listed";
    EXPECT_EQ(slurp(mnt(names[i])), "file " + std::to_string(i));
    EXPECT_TRUE(eventually([&] { return slurp(medium(names[i])) == "file " + std::to_string(i); })) << i;
  }
  EXPECT_TRUE(listed.count("dir\xff"));
  ASSERT_EQ(::rename(mnt(names[0]).c_str(), mnt("dir\xff/\xfe\xff").c_str()), 0);
  EXPECT_EQ(slurp(mnt("dir\xff/\xfe\xff")), "file 0");
}

TEST_F(PosixNamesTest, BigDirectoryListsEveryEntryOnceWithMatchingInodes) {
  constexpr int kThroughMount = 300, kTotal = 5000;
  ASSERT_EQ(::mkdir(mnt("big").c_str(), 0755), 0);
  for (int i = 0; i < kThroughMount; ++i)
    ASSERT_TRUE(spit(mnt("big/mnt-" + std::to_string(i)), "")) << i;
  // The rest straight on the medium, as another node of the cluster would have made them
  // (creating 5000 files through the mount costs 5000 directory syncs).
  for (int i = kThroughMount; i < kTotal; ++i) {
    int fd = ::open(medium("big/med-" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0) << i;
    ::close(fd);
  }
  std::map<std::string, int> seen;
  std::map<std::string, ino_t> ino_of;
  DIR* d = ::opendir(mnt("big").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = ::readdir(d)) {
    ++seen[e->d_name];
    ino_of[e->d_name] = e->d_ino;
  }
  ::closedir(d);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kTotal + 2));
  int mismatched = 0, duplicates = 0;
  for (const auto& [name, count] : seen) {
    if (count != 1) ++duplicates;
    if (name == "." || name == "..") continue;
    struct stat st {};
    if (::lstat(mnt("big/" + name).c_str(), &st) != 0 || st.st_ino != ino_of[name]) ++mismatched;
  }
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(mismatched, 0);
  for (int i : {0, kThroughMount - 1})
    EXPECT_EQ(seen.count("mnt-" + std::to_string(i)), 1u) << i;
  for (int i : {kThroughMount, kTotal - 1})
    EXPECT_EQ(seen.count("med-" + std::to_string(i)), 1u) << i;
  // rewinddir gives the same set again.
  d = ::opendir(mnt("big").c_str());
  ASSERT_NE(d, nullptr);
  int first = 0, second = 0;
  while (::readdir(d)) ++first;
  ::rewinddir(d);
  while (::readdir(d)) ++second;
  ::closedir(d);
  EXPECT_EQ(first, kTotal + 2);
  EXPECT_EQ(second, kTotal + 2);
}

TEST_F(PosixNamesTest, DotAndDotDot) {
  ASSERT_EQ(::mkdir(mnt("sub").c_str(), 0755), 0);
  struct stat a {}, b {};
  ASSERT_EQ(::stat(mnt("sub/.").c_str(), &a), 0);
  ASSERT_EQ(::stat(mnt("sub").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(::stat(mnt("sub/..").c_str(), &a), 0);
  ASSERT_EQ(::stat(mnt().c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  ASSERT_EQ(::stat(node().path("vol0/..").c_str(), &a), 0);
  ASSERT_EQ(::stat(node().mount().c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(b.st_ino, 1u);  // the mount root
  ASSERT_EQ(::stat(node().path("vol0/.").c_str(), &a), 0);
  ASSERT_EQ(::stat(node().path("vol0").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  // Each volume's inode numbers carry its id in the high byte.
  EXPECT_EQ(b.st_ino >> 56, 1u);
  ASSERT_EQ(::stat(node().path("vol2").c_str(), &b), 0);
  EXPECT_EQ(b.st_ino >> 56, 3u);
}

TEST_F(PosixNamesTest, MountRootListsVolumesAndRefusesChanges) {
  const std::string root = node().mount();
  std::set<std::string> names;
  for (const auto& n : list_dir(root)) names.insert(n);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "vol0", "vol1", "vol2"}));
  FILE* ls = ::popen(("ls -la " + root + " 2>&1").c_str(), "r");
  ASSERT_NE(ls, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, ls)) out.append(buf, n);
  EXPECT_EQ(::pclose(ls), 0) << out;
  for (const char* v : {" vol0\n", " vol1\n", " vol2\n", " .\n", " ..\n"})
    EXPECT_NE(out.find(v), std::string::npos) << "ls -la output lacks '" << v << "':\n" << out;
  EXPECT_EQ(out.find("?"), std::string::npos) << out;

  struct stat st {};
  ASSERT_EQ(::stat(root.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(err_of([&] { return ::mkdir((root + "/newvol").c_str(), 0755); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::open((root + "/file").c_str(), O_CREAT | O_WRONLY, 0644); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::mkfifo((root + "/fifo").c_str(), 0644); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::symlink("vol0", (root + "/ln").c_str()); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::rmdir(node().path("vol1").c_str()); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::chmod(root.c_str(), 0777); }), EPERM);
  EXPECT_EQ(err_of([&] { return ::stat((root + "/novolume").c_str(), &st); }), ENOENT);
  names.clear();
  for (const auto& n : list_dir(root)) names.insert(n);
  EXPECT_EQ(names.size(), 5u);
}

TEST_F(PosixNamesTest, Statfs) {
  struct statvfs vm {}, vmed {}, vroot {};
  ASSERT_EQ(::statvfs(mnt().c_str(), &vm), 0) << std::strerror(errno);
  ASSERT_EQ(::statvfs(node().volume_dir("vol0").c_str(), &vmed), 0);
  ASSERT_EQ(::statvfs(node().mount().c_str(), &vroot), 0) << std::strerror(errno);
  EXPECT_GT(vm.f_bsize, 0u);
  EXPECT_EQ(vm.f_blocks * vm.f_frsize, vmed.f_blocks * vmed.f_frsize);
  EXPECT_EQ(vm.f_namemax, 255u);
  EXPECT_GT(vm.f_bavail, 0u);
  EXPECT_GT(vroot.f_blocks, 0u);
}

}  // namespace
}  // namespace hafs::testing
