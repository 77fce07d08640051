// FsClient: calls the FUSE handlers of one node's fs::Filesystem directly, the way libfuse's
// session loop would, and returns their one reply. The simulator has no kernel and no libfuse
// session: fs_client.cc defines the fuse_reply_* functions the handlers call (a definition in
// the executable takes the place of libfuse's), each of which fills the Reply of its request.
// So the simulator drives the very handlers a FUSE mount drives, minus the kernel's caches.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <cstdint>
#include <string>

#include "fs/filesystem.h"

namespace hafs::sim {

struct Reply {
  bool replied = false;
  int err = 0;                  // fuse_reply_err, 0 for success replies
  fuse_entry_param entry{};     // fuse_reply_entry / fuse_reply_create
  fuse_file_info fi{};          // fuse_reply_open / fuse_reply_create
  size_t count = 0;             // fuse_reply_write
  std::string data;             // fuse_reply_buf
};

// Not thread safe; one client per thread. Every call returns an errno (0: success).
class FsClient {
 public:
  explicit FsClient(fs::Filesystem& filesystem) : fs_(filesystem) {}

  int lookup(fuse_ino_t parent, const std::string& name, fuse_entry_param* entry);
  void forget(fuse_ino_t ino, uint64_t nlookup = 1);
  int open(fuse_ino_t ino, int flags, fuse_file_info* fi);
  int create(fuse_ino_t parent, const std::string& name, mode_t mode, fuse_file_info* fi,
             fuse_entry_param* entry);
  int write(fuse_ino_t ino, fuse_file_info* fi, const std::string& data, off_t offset);
  int read(fuse_ino_t ino, fuse_file_info* fi, size_t size, off_t offset, std::string* out);
  int truncate(fuse_ino_t ino, off_t size);
  void release(fuse_ino_t ino, fuse_file_info* fi);

 private:
  fs::Filesystem& fs_;
};

}  // namespace hafs::sim
