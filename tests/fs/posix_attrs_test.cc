// POSIX attributes through a real mount: modes, owners and permission checks as a non-root
// user (a forked child that switches to uid/gid 65534), ownership of new nodes, the setgid
// directory rule, and extended attributes. Each test ends by checking the medium.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "tests/fs/posix_fixture.h"

namespace hafs::testing {
namespace {

constexpr gid_t kOtherGroup = 4242;

// A step for as_user(): 0 if `ok`, errno otherwise.
int result(bool ok) { return ok ? 0 : errno; }

class PosixAttrsTest : public MountedSuite {
 protected:
  void SetUp() override {
    MountedSuite::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(::chmod(mnt().c_str(), 0777), 0);  // other users work in here
  }
};

TEST_F(PosixAttrsTest, ChmodAndChownAsRoot) {
  ASSERT_TRUE(spit(mnt("f"), "x"));
  ASSERT_EQ(::chmod(mnt("f").c_str(), 04751), 0) << std::strerror(errno);
  struct stat st {};
  ASSERT_EQ(::stat(mnt("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04751u);
  ASSERT_EQ(::chown(mnt("f").c_str(), 1234, 5678), 0) << std::strerror(errno);
  ASSERT_EQ(::stat(mnt("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07000, 0u) << "chown must clear set-id bits of a file";
  ASSERT_EQ(::symlink("f", mnt("ln").c_str()), 0);
  ASSERT_EQ(::lchown(mnt("ln").c_str(), 77, 88), 0) << std::strerror(errno);
  struct stat lst {};
  ASSERT_EQ(::lstat(mnt("ln").c_str(), &lst), 0);
  EXPECT_EQ(lst.st_uid, 77u);
  ASSERT_EQ(::stat(mnt("f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u) << "lchown followed the link";
  struct stat mst {};
  ASSERT_EQ(::stat(medium("f").c_str(), &mst), 0);
  EXPECT_EQ(mst.st_uid, 1234u);
  EXPECT_EQ(mst.st_mode & 07777, st.st_mode & 07777);
}

TEST_F(PosixAttrsTest, NewNodesBelongToTheCreator) {
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] {
              int fd = ::open(mnt("file").c_str(), O_CREAT | O_WRONLY, 0644);
              if (fd < 0) return errno;
              bool ok = ::write(fd, "mine", 4) == 4;
              ::close(fd);
              if (!ok) return EIO;
              if (::mkdir(mnt("dir").c_str(), 0755) != 0) return errno;
              if (::symlink("file", mnt("link").c_str()) != 0) return errno;
              return result(::mkfifo(mnt("fifo").c_str(), 0600) == 0);
            }),
            0);
  for (const char* n : {"file", "dir", "link", "fifo"}) {
    struct stat st {}, mst {};
    ASSERT_EQ(::lstat(mnt(n).c_str(), &st), 0) << n;
    EXPECT_EQ(st.st_uid, kNobody) << n;
    EXPECT_EQ(st.st_gid, kNogroup) << n;
    ASSERT_EQ(::lstat(medium(n).c_str(), &mst), 0) << n;
    EXPECT_EQ(mst.st_uid, kNobody) << n;
  }
  struct stat st {};
  ASSERT_EQ(::stat(mnt("file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // The owner may chmod its own file, and write it.
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::chmod(mnt("file").c_str(), 0600) == 0); }), 0);
  ASSERT_EQ(::stat(mnt("file").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // A root-created file stays root's.
  ASSERT_TRUE(spit(mnt("roots"), "r"));
  ASSERT_EQ(::stat(mnt("roots").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(PosixAttrsTest, PermissionChecksForAnotherUser) {
  ASSERT_TRUE(spit(mnt("readonly"), "protected"));
  ASSERT_EQ(::chmod(mnt("readonly").c_str(), 0444), 0);
  ASSERT_EQ(::mkdir(mnt("closed").c_str(), 0555), 0);
  ASSERT_TRUE(spit(mnt("private"), "secret"));
  ASSERT_EQ(::chmod(mnt("private").c_str(), 0600), 0);

  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::open(mnt("readonly").c_str(), O_WRONLY) >= 0); }),
            EACCES);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::truncate(mnt("readonly").c_str(), 0) == 0); }),
            EACCES);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::open(mnt("readonly").c_str(), O_RDONLY) >= 0); }),
            0);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::open(mnt("private").c_str(), O_RDONLY) >= 0); }),
            EACCES);
  EXPECT_EQ(as_user(kNobody, kNogroup,
                    [&] { return result(::open(mnt("closed/new").c_str(), O_CREAT | O_WRONLY, 0644) >= 0); }),
            EACCES);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::mkdir(mnt("closed/sub").c_str(), 0755) == 0); }),
            EACCES);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::chmod(mnt("readonly").c_str(), 0666) == 0); }),
            EPERM);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::chown(mnt("readonly").c_str(), kNobody, -1) == 0); }),
            EPERM);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] {
              const timespec t[2] = {{1, 0}, {1, 0}};
              return result(::utimensat(AT_FDCWD, mnt("readonly").c_str(), t, 0) == 0);
            }),
            EPERM);
  // On its own file: giving it away is refused, to a group it is not in as well.
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] {
              int fd = ::open(mnt("own").c_str(), O_CREAT | O_WRONLY, 0644);
              if (fd < 0) return errno;
              ::close(fd);
              return result(::chown(mnt("own").c_str(), 1000, -1) == 0);
            }),
            EPERM);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::chown(mnt("own").c_str(), -1, kOtherGroup) == 0); }),
            EPERM);
  // Unlinking in a sticky directory someone else's file.
  ASSERT_EQ(::mkdir(mnt("sticky").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(mnt("sticky").c_str(), 01777), 0);  // not through mkdir: the umask applies
  ASSERT_TRUE(spit(mnt("sticky/roots"), "r"));
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::unlink(mnt("sticky/roots").c_str()) == 0); }),
            EPERM);
  // Nothing changed.
  EXPECT_EQ(slurp(mnt("readonly")), "protected");
  struct stat st {};
  ASSERT_EQ(::stat(mnt("readonly").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(::access(mnt("closed/new").c_str(), F_OK), -1);
  EXPECT_EQ(::access(mnt("sticky/roots").c_str(), F_OK), 0);
}

TEST_F(PosixAttrsTest, SetgidDirectoryGivesItsGroup) {
  ASSERT_EQ(::mkdir(mnt("sg").c_str(), 0777), 0);
  ASSERT_EQ(::chown(mnt("sg").c_str(), 0, kOtherGroup), 0);
  ASSERT_EQ(::chmod(mnt("sg").c_str(), 02777), 0);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] {
              if (::mkdir(mnt("sg/subdir").c_str(), 0755) != 0) return errno;
              int fd = ::open(mnt("sg/file").c_str(), O_CREAT | O_WRONLY, 0644);
              if (fd < 0) return errno;
              ::close(fd);
              return 0;
            }),
            0);
  ASSERT_TRUE(spit(mnt("sg/by-root"), ""));
  struct stat st {};
  ASSERT_EQ(::stat(mnt("sg/file").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kOtherGroup);
  ASSERT_EQ(::stat(mnt("sg/by-root").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, kOtherGroup);
  ASSERT_EQ(::stat(mnt("sg/subdir").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_EQ(st.st_gid, kOtherGroup);
  EXPECT_TRUE(st.st_mode & S_ISGID) << "a subdirectory of a setgid directory is setgid too";
  // Without setgid, the creator's group.
  ASSERT_EQ(::mkdir(mnt("plain").c_str(), 0777), 0);
  ASSERT_EQ(::chown(mnt("plain").c_str(), 0, kOtherGroup), 0);
  ASSERT_EQ(::chmod(mnt("plain").c_str(), 0777), 0);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::mkdir(mnt("plain/d").c_str(), 0755) == 0); }), 0);
  ASSERT_EQ(::stat(mnt("plain/d").c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, kNogroup);
}

TEST_F(PosixAttrsTest, SetidBitsRequestedByCreatorAreKept) {
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] {
              int fd = ::open(mnt("suid").c_str(), O_CREAT | O_WRONLY, 04755);
              if (fd < 0) return errno;
              ::close(fd);
              return 0;
            }),
            0);
  struct stat st {};
  ASSERT_EQ(::stat(mnt("suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  EXPECT_EQ(st.st_uid, kNobody);
}

TEST_F(PosixAttrsTest, UserXattrs) {
  ASSERT_TRUE(spit(mnt("f"), "x"));
  const std::string f = mnt("f");
  ASSERT_EQ(::setxattr(f.c_str(), "user.one", "1", 1, 0), 0) << std::strerror(errno);
  ASSERT_EQ(::setxattr(f.c_str(), "user.two", "second", 6, XATTR_CREATE), 0);
  char buf[256] = {};
  EXPECT_EQ(::getxattr(f.c_str(), "user.two", buf, sizeof buf), 6);
  EXPECT_STREQ(buf, "second");
  EXPECT_EQ(::getxattr(f.c_str(), "user.two", nullptr, 0), 6);  // size query
  errno = 0;
  EXPECT_EQ(::getxattr(f.c_str(), "user.two", buf, 2), -1);
  EXPECT_EQ(errno, ERANGE);
  errno = 0;
  EXPECT_EQ(::setxattr(f.c_str(), "user.one", "x", 1, XATTR_CREATE), -1);
  EXPECT_EQ(errno, EEXIST);
  errno = 0;
  EXPECT_EQ(::setxattr(f.c_str(), "user.none", "x", 1, XATTR_REPLACE), -1);
  EXPECT_EQ(errno, ENODATA);
  ASSERT_EQ(::setxattr(f.c_str(), "user.one", "uno", 3, XATTR_REPLACE), 0);

  ssize_t n = ::listxattr(f.c_str(), buf, sizeof buf);
  ASSERT_GT(n, 0);
  std::set<std::string> names;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(buf + i)) + 1) names.insert(buf + i);
  EXPECT_TRUE(names.count("user.one"));
  EXPECT_TRUE(names.count("user.two"));
  EXPECT_EQ(::listxattr(f.c_str(), nullptr, 0), n);

  ASSERT_EQ(::removexattr(f.c_str(), "user.two"), 0);
  errno = 0;
  EXPECT_EQ(::getxattr(f.c_str(), "user.two", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  errno = 0;
  EXPECT_EQ(::removexattr(f.c_str(), "user.two"), -1);
  EXPECT_EQ(errno, ENODATA);
  // On a directory too, and on the medium.
  ASSERT_EQ(::setxattr(mnt().c_str(), "user.dir", "d", 1, 0), 0) << std::strerror(errno);
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(::getxattr(medium("f").c_str(), "user.one", buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "uno");
  EXPECT_EQ(::getxattr(medium().c_str(), "user.dir", buf, sizeof buf), 1);
  errno = 0;
  EXPECT_EQ(::getxattr(medium("f").c_str(), "user.two", buf, sizeof buf), -1);
  EXPECT_EQ(errno, ENODATA);
  // Another user may not set user.* attributes on a file it cannot write.
  ASSERT_EQ(::chmod(f.c_str(), 0644), 0);
  EXPECT_EQ(as_user(kNobody, kNogroup, [&] { return result(::setxattr(f.c_str(), "user.x", "1", 1, 0) == 0); }),
            EACCES);
}

}  // namespace
}  // namespace hafs::testing
