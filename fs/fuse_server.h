// FuseServer: mounts a Filesystem with libfuse and runs its multithreaded session loop.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "base/status.h"
#include "fs/filesystem.h"

struct fuse_session;

namespace hafs::fs {

struct FuseServerOptions {
  unsigned max_threads = 16;    // libfuse worker threads at most
  bool allow_other = true;      // other users (and nfs-ganesha) may use the mount
};

class FuseServer {
 public:
  // Checks the mount point (exists, is a directory, is not already a mount point) and mounts.
  static Result<std::unique_ptr<FuseServer>> mount(Filesystem& fs, const std::string& mountpoint,
                                                   const FuseServerOptions& options);
  ~FuseServer();  // unmounts

  // Serves requests until exit() or an unmount; returns the loop's status.
  Status run();
  // Makes run() return; safe from any thread (not from a signal handler).
  void exit();
  const std::string& mountpoint() const { return mountpoint_; }

 private:
  FuseServer(fuse_session* se, std::string mountpoint, FuseServerOptions options)
      : se_(se), mountpoint_(std::move(mountpoint)), options_(options) {}
  fuse_session* se_;
  std::string mountpoint_;
  FuseServerOptions options_;
  bool mounted_ = true;
  std::atomic<uint64_t> wakeups_{0};  // makes the names exit() looks up unique
};

// Whether `path` is a mount point now (from /proc/self/mountinfo).
bool is_mount_point(const std::string& path);

}  // namespace hafs::fs
