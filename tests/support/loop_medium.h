// An ext4 filesystem in a loop-mounted image, as a storage medium whose page cache a test can
// lose for real: power_loss() is FS_IOC_SHUTDOWN with NOLOGFLUSH, which drops everything the
// journal had not committed, as a power cut does (xfstests' "godown"). Mounted with commit=60, so
// that nothing is committed but by a sync. Needs root, a loop device and mkfs.ext4: ok() says
// whether it could be made (tests skip with why() otherwise). Unmounts and removes itself.
#pragma once

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#ifndef FS_IOC_SHUTDOWN
#define FS_IOC_SHUTDOWN _IOR('X', 125, uint32_t)
#endif

namespace hafs::testing {

class LoopMedium {
 public:
  static constexpr uint32_t kNoLogFlush = 0x2;  // FS_SHUTDOWN_FLAGS_NOLOGFLUSH

  LoopMedium() {
    char tmpl[] = "/var/tmp/hafs-loop-medium-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      why_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir_ = tmpl;
    std::filesystem::create_directory(path());
    if (run("truncate -s 128M " + image()) != 0 || run("mkfs.ext4 -q -F " + image()) != 0) {
      why_ = "cannot make an ext4 image (mkfs.ext4)";
      return;
    }
    if (!mount()) why_ = "cannot loop-mount an ext4 image here (needs root and a loop device)";
  }
  ~LoopMedium() {
    if (mounted_) ::umount2(path().c_str(), MNT_DETACH);
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  LoopMedium(const LoopMedium&) = delete;
  LoopMedium& operator=(const LoopMedium&) = delete;

  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  std::string path() const { return dir_ + "/medium"; }

  // Commits what the medium holds now (syncfs).
  bool sync() const {
    const int fd = ::open(path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    const bool done = fd >= 0 && ::syncfs(fd) == 0;
    if (fd >= 0) ::close(fd);
    return done;
  }
  // The power cut: everything not committed is gone once the image is mounted again.
  bool power_loss() const {
    const int fd = ::open(path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    uint32_t flags = kNoLogFlush;
    const bool done = fd >= 0 && ::ioctl(fd, FS_IOC_SHUTDOWN, &flags) == 0;
    if (fd >= 0) ::close(fd);
    return done;
  }
  // Unmounts (once nothing holds it open: kill the processes that used it first) and mounts the
  // image again, as the machine does when it comes back.
  bool remount() {
    if (::umount2(path().c_str(), 0) != 0) return false;
    mounted_ = false;
    return mount();
  }

 private:
  static int run(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()); }
  std::string image() const { return dir_ + "/medium.img"; }
  bool mount() {
    mounted_ = run("mount -o loop,commit=60 " + image() + " " + path()) == 0;
    return mounted_;
  }

  std::string dir_, why_;
  bool mounted_ = false;
};

}  // namespace hafs::testing
