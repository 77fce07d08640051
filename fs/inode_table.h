// InodeTable: the inodes the kernel currently knows (lookup count > 0), by inode number.
//
// The inode number is derived from the storage medium (volume id << 56 | medium inode number),
// so it is the same after a restart of hafsd and on the partner after a takeover; an entry holds
// an fd on the medium inode (O_PATH, or O_RDONLY for directories) and its handle key (the NV log
// object key). Lookup counts follow fuse_lowlevel.h: +1 per entry reply, -n per forget; the
// entry goes when its count reaches zero.
// Thread safety: all methods lock; Inode fields other than the atomics are immutable.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "fs/volume.h"

namespace hafs::fs {

struct Inode {
  Inode(uint64_t id_, Volume* volume_, int fd_, mode_t type_, std::string key_, uint64_t gen_)
      : id(id_), volume(volume_), fd(fd_), type(type_), key(std::move(key_)), generation(gen_) {}
  ~Inode() {
    if (fd >= 0) ::close(fd);
  }
  Inode(const Inode&) = delete;
  Inode& operator=(const Inode&) = delete;

  bool is_dir() const { return S_ISDIR(type); }

  const uint64_t id;
  Volume* const volume;        // null for the mount root
  const int fd;
  const mode_t type;           // S_IFMT bits
  const std::string key;       // handle key: the NV log object key
  const uint64_t generation;
  std::atomic<int64_t> staged_mtime_ns{0};  // newest staged write, for getattr
  std::atomic<bool> unlinked{false};        // no name left on the medium (writes go straight there)
};

class InodeTable {
 public:
  std::shared_ptr<Inode> get(uint64_t id) const;
  // Returns the entry for `candidate->id`, inserting `candidate` if there is none, and adds one
  // lookup reference. When an entry exists, `candidate` is dropped (its fd closed).
  std::shared_ptr<Inode> ref(std::shared_ptr<Inode> candidate);
  void forget(uint64_t id, uint64_t nlookup);
  size_t size() const;

 private:
  struct Entry {
    std::shared_ptr<Inode> inode;
    uint64_t nlookup = 0;
  };
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Entry> entries_;  // GUARDED_BY(mu_)
};

}  // namespace hafs::fs
