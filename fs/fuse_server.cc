#include "fs/fuse_server.h"

#include <sys/stat.h>
#include <unistd.h>


#include <climits>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace hafs::fs {

bool is_mount_point(const std::string& path) {
  char real[PATH_MAX];
  if (!::realpath(path.c_str(), real)) return false;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mnt;
    fields >> id >> parent >> devno >> root >> mnt;
    if (mnt == real) return true;
  }
  return false;
}

Result<std::unique_ptr<FuseServer>> FuseServer::mount(Filesystem& fs, const std::string& mountpoint,
                                                      const FuseServerOptions& options) {
  struct stat st {};
  if (::stat(mountpoint.c_str(), &st) != 0)
    return Status::from_errno(errno, "mount point " + mountpoint);
  if (!S_ISDIR(st.st_mode))
    return Status::error(Code::kInvalidArgument, "mount point " + mountpoint + " is not a directory");
  if (is_mount_point(mountpoint))
    return Status::error(Code::kInvalidArgument, "mount point " + mountpoint +
                                                     " is busy (something is mounted there)");
  std::vector<std::string> argv_s = {"hafsd", "-o", "fsname=hafs,subtype=hafs,default_permissions"};
  if (options.allow_other) argv_s.back() += ",allow_other";
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_session* se = fuse_session_new(&args, &Filesystem::operations(),
                                      sizeof(fuse_lowlevel_ops), &fs);
  fuse_opt_free_args(&args);  // libfuse copied what it keeps
  if (!se) return Status::error(Code::kInvalidArgument, "fuse_session_new failed (see stderr)");
  if (fuse_session_mount(se, mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    return Status::error(Code::kIoError, "cannot mount FUSE at " + mountpoint +
                                             " (is /dev/fuse there and are we root?)");
  }
  return std::unique_ptr<FuseServer>(new FuseServer(se, mountpoint, options));
}

FuseServer::~FuseServer() {
  if (mounted_) fuse_session_unmount(se_);
  fuse_session_destroy(se_);
}

Status FuseServer::run() {
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, options_.max_threads);
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  int rc = fuse_session_loop_mt(se_, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(se_);
  mounted_ = false;
  if (rc != 0 && rc != -EINTR && rc != SIGTERM && rc != SIGINT)
    return Status::error(Code::kIoError, "FUSE session loop ended with " + std::to_string(rc));
  return Status::ok();
}

void FuseServer::exit() {
  fuse_session_exit(se_);
  // The workers sit in read() on /dev/fuse. A lookup of a name never used before cannot be
  // answered from the kernel's caches, so it wakes one worker, which sees the flag; the loop then
  // stops the others.
  const std::string name = mountpoint_ + "/.hafs-stop-" + std::to_string(::getpid()) + "-" +
                           std::to_string(wakeups_.fetch_add(1));
  struct stat st {};
  (void)::stat(name.c_str(), &st);
}

}  // namespace hafs::fs
