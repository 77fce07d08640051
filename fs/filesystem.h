// Filesystem: the FUSE low-level filesystem of one node: one tree, /<volume>/..., for every
// volume the node serves.
//
// Data: writes to a staged volume go to the NV log (nvcache) and are acknowledged once durable
// there; reads lay staged bytes over the medium's. Writes to a write-through volume go to the
// medium and are synced before the reply.
// Metadata: executed on the medium and, before the reply (I1), either logged in the NV log as a
// META record (fs.sync_metadata = false, on a staged volume; fs_logged.cc, design.md §9a) or
// synced on the medium (file and directory).
// Ordering (I4): an operation that needs a file's staged data on the medium first (truncate,
// fallocate, SEEK_DATA, setting times, unlinking an open file's last name) destages the file
// first; a truncate also writes a FENCE so that no replay re-applies older records after it.
// See docs/design.md.
//
// Handlers follow fuse_lowlevel.h: exactly one reply per request; helpers return an errno.
// Thread safety: handlers run concurrently on libfuse's worker threads.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <functional>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/fault.h"
#include "base/logger.h"
#include "fs/inode_table.h"
#include "fs/meta_op.h"
#include "fs/volume.h"
#include "nvcache/nvcache.h"

namespace hafs::fs {

struct FsOptions {
  Logger logger;
  FaultRegistry* faults = nullptr;  // meta.stamp
  double attr_timeout_s = 1.0;   // how long the kernel may cache attributes and entries
  // true: sync file + directory on the medium before acknowledging a metadata operation (I1).
  // false: log it in the NV log instead (a META record, mirrored like a write) on a volume that
  // stages; the destager makes it durable on the medium before trimming it (design.md §9a).
  bool sync_metadata = true;
  // Asked before a write is acknowledged: false (this node's lease on the volume ran out, or it
  // was fenced) fails the write with EIO. Null: always acknowledge (no membership).
  std::function<bool(const Volume&)> may_acknowledge;
  // Are writes acknowledged without the partner's mirror now? A staged volume whose degraded
  // policy is write-through then writes to the medium instead of the NV log. Null: never.
  std::function<bool()> mirror_degraded;
};

class Filesystem {
 public:
  // `cache` may be null when every volume is write-through.
  Filesystem(nvcache::NvCache* cache, FsOptions options);
  ~Filesystem();

  // The volumes served under the mount root. A volume must outlive its time in the tree.
  void add_volume(Volume* volume);
  void remove_volume(const std::string& name);
  Volume* volume_by_id(uint32_t id) const;
  std::vector<Volume*> volumes() const;

  // The operation table; libfuse passes `this` back as the session's userdata.
  static const fuse_lowlevel_ops& operations();

  // ---- handlers (called from the C trampolines in fuse_ops.cc) ----
  void init(fuse_conn_info* conn);
  void lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
  void forget(fuse_ino_t ino, uint64_t nlookup);
  void getattr(fuse_req_t req, fuse_ino_t ino);
  void setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi);
  void readlink(fuse_req_t req, fuse_ino_t ino);
  void mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev);
  void mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode);
  void symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name);
  void unlink(fuse_req_t req, fuse_ino_t parent, const char* name);
  void rmdir(fuse_req_t req, fuse_ino_t parent, const char* name);
  void rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags);
  void link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname);
  void statfs(fuse_req_t req, fuse_ino_t ino);
  void setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
                int flags);
  void getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size);
  void listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
  void removexattr(fuse_req_t req, fuse_ino_t ino, const char* name);

  void open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi);
  void read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi);
  void write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi);
  void flush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus);
  void releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
  void fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi);
  void fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                 fuse_file_info* fi);
  void lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info* fi);

 private:
  struct OpenFile {
    std::shared_ptr<Inode> inode;
    int fd;
  };
  struct DirHandle;

  std::shared_ptr<Inode> inode_of(fuse_ino_t ino) const;
  static OpenFile* open_file(fuse_file_info* fi) { return reinterpret_cast<OpenFile*>(fi->fh); }
  Volume* volume_by_name(const std::string& name) const;
  nvcache::ObjectId object_of(const Inode& inode) const { return {inode.volume->id(), inode.key}; }
  bool has_staged(const Inode& inode) const;
  // Is `name` in `dir` hafs's own (the inode pool in a volume's root)? Not shown, not changed.
  static bool hidden(const Inode& dir, const char* name);

  // Looks `name` up in `parent` on the medium and references the inode (one lookup count).
  int do_lookup(const Inode& parent, const char* name, fuse_entry_param* e);
  // References the inode open at `fd` (which this takes) of `volume`.
  int ref_inode(Volume* volume, int fd, fuse_entry_param* e);
  int attr_of(const Inode& inode, struct stat* st) const;
  void root_attr(struct stat* st) const;
  void fill_entry_timeouts(fuse_entry_param* e) const;
  // Gives a new node the caller's owner (and the group the directory's setgid rule asks for).
  int chown_new(fuse_req_t req, const Inode& parent, const char* name, mode_t mode);
  int sync_dir(const Inode& dir) const;
  int sync_inode(const Inode& inode) const;
  int flush_staged(const Inode& inode);
  int flush_and_fence(const Inode& inode);
  // Marks `victim` unlinked when the medium says it has no name left.
  void note_unlink(const std::shared_ptr<Inode>& victim);
  // The inode `name` in `parent` refers to, if the kernel knows it (for flushes before unlink).
  std::shared_ptr<Inode> known_child(const Inode& parent, const char* name) const;
  int make_node(fuse_req_t req, fuse_ino_t parent, const char* name,
                const std::function<int(int dirfd)>& create, mode_t mode, fuse_entry_param* e);

  // ---- logged metadata (fs_logged.cc; docs/design.md §9a) ----
  // May this node change `vol` now? Not once the volume left its tree (given back, fenced), nor
  // after its lease ran out (a node that froze past its lease and woke up, with requests queued
  // in the kernel: the partner may serve the volume, and a change made now would be made behind
  // its back). Writes ask it before they are acknowledged, metadata operations before they
  // touch the medium.
  bool may_change(const Volume& vol) const;
  // Is a metadata operation on `vol` logged (a META record) instead of synced on the medium now?
  bool logs_metadata(const Volume& vol) const;
  // The volume's metadata lock when its operations are logged (held across an operation, its
  // append and its stamp), else an empty lock.
  std::unique_lock<std::mutex> meta_lock(Volume& vol) const;
  using MetaTicket = Result<nvcache::NvCache::MetaTicket>;
  // Appends `op`, which the caller executed on the medium under meta_lock(vol), and stamps it.
  MetaTicket append_logged(Volume& vol, const MetaOp& op);
  // After a stamp failed: syncs the volume and appends a kSynced record (the ticket to finish).
  MetaTicket append_synced_marker(Volume& vol);
  // After the lock is released: waits for the mirror; 0 once the operation may be acknowledged.
  int finish_logged(Volume& vol, const MetaTicket& ticket);
  // unlink or rmdir (op->kind) of `name` in `dir` on the medium, filling the record's names.
  int remove_logged(const Inode& dir, const char* name, MetaOp* op);
  // create and mkdir from the inode pool; 0 and `e` (with `fd` opened with `open_flags` unless
  // it is null) or an errno; EEXIST when the name is taken.
  int create_logged(fuse_req_t req, const Inode& dir, const char* name, mode_t mode, bool directory,
                    fuse_entry_param* e, int open_flags = 0, int* fd = nullptr);
  // The new object `key`'s inode (a lookup reference in `e`) and, unless `fd` is null, a
  // descriptor opened with `open_flags`; 0 or an errno (then neither is held).
  int open_created(Volume& vol, const std::string& key, fuse_entry_param* e, int open_flags, int* fd);

  nvcache::NvCache* const cache_;
  const FsOptions options_;
  InodeTable inodes_;
  std::shared_ptr<Inode> root_;
  timespec start_time_{};
  mutable std::shared_mutex volumes_mu_;
  std::vector<Volume*> volumes_;  // GUARDED_BY(volumes_mu_)

  // Handles the kernel holds. An unmount need not send RELEASE for all of them: the destructor
  // closes what is left.
  std::mutex handles_mu_;
  std::unordered_set<OpenFile*> open_files_;  // GUARDED_BY(handles_mu_)
  std::unordered_set<DirHandle*> open_dirs_;  // GUARDED_BY(handles_mu_)
  OpenFile* new_open_file(std::shared_ptr<Inode> inode, int fd);
  void free_open_file(OpenFile* of);
};

}  // namespace hafs::fs
