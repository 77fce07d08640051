// Filesystem: file data (open/create/read/write/fsync/fallocate/lseek) and directory listing.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <ctime>

#include "fs/filesystem.h"

namespace hafs::fs {

namespace {
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// Flags for the medium's fd: the client's access mode, without what hafs does itself.
// O_APPEND: the kernel already turned it into offsets (and pwrite would ignore them);
// O_DIRECT, O_SYNC, O_DSYNC: every acknowledged write is durable anyway;
// O_TRUNC: the kernel sends a setattr, which flushes and fences first.
int medium_flags(int flags) {
  return (flags & ~(O_APPEND | O_DIRECT | O_SYNC | O_DSYNC | O_TRUNC | O_CREAT | O_EXCL |
                    O_NOCTTY | O_NOFOLLOW)) |
         O_CLOEXEC;
}

int64_t now_ns() {
  timespec t{};
  clock_gettime(CLOCK_REALTIME, &t);
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

int write_all(int fd, const char* buf, size_t size, off_t off) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, buf + done, size - done, off + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}
}  // namespace

struct Filesystem::DirHandle {
  DIR* dp = nullptr;
  off_t offset = 0;
  dirent* entry = nullptr;
  ~DirHandle() {
    if (dp) ::closedir(dp);
  }
};

Filesystem::~Filesystem() {
  std::lock_guard lock(handles_mu_);
  for (OpenFile* of : open_files_) {
    ::close(of->fd);
    delete of;
  }
  for (DirHandle* d : open_dirs_) delete d;
}

Filesystem::OpenFile* Filesystem::new_open_file(std::shared_ptr<Inode> inode, int fd) {
  auto* of = new OpenFile{std::move(inode), fd};
  std::lock_guard lock(handles_mu_);
  open_files_.insert(of);
  return of;
}

void Filesystem::free_open_file(OpenFile* of) {
  {
    std::lock_guard lock(handles_mu_);
    open_files_.erase(of);
  }
  ::close(of->fd);
  delete of;
}

void Filesystem::init(fuse_conn_info* conn) {
  // NFS re-export: handles must resolve from the inode number alone (docs/design.md, "Inode
  // numbers and NFS handles").
  if (conn->capable & FUSE_CAP_EXPORT_SUPPORT) conn->want |= FUSE_CAP_EXPORT_SUPPORT;
  // The kernel's writeback cache would own size and mtime: wrong for a clustered filesystem.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // open(O_TRUNC) must become a setattr (flush, FENCE, truncate, sync: see setattr); libfuse
  // asks for atomic O_TRUNC by default, which would pass O_TRUNC to open(), where medium_flags()
  // drops it.
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  conn->max_write = 1u << 20;
}

void Filesystem::open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume) return (void)fuse_reply_err(req, EISDIR);
  int fd = ::open(proc_path(inode->fd).c_str(), medium_flags(fi->flags));
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  fi->fh = reinterpret_cast<uint64_t>(new_open_file(inode, fd));
  fi->keep_cache = 0;  // another node may have changed the file while it served the volume
  if (fuse_reply_open(req, fi) != 0) free_open_file(open_file(fi));
}

void Filesystem::create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                        fuse_file_info* fi) {
  auto dir = inode_of(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  if (!dir->volume) return (void)fuse_reply_err(req, EPERM);
  if (std::strlen(name) > NAME_MAX) return (void)fuse_reply_err(req, ENAMETOOLONG);
  if (hidden(*dir, name)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*dir->volume)) return (void)fuse_reply_err(req, EIO);
  if (logs_metadata(*dir->volume)) {
    fuse_entry_param e{};
    int fd = -1;
    int err = create_logged(req, *dir, name, mode, false, &e, medium_flags(fi->flags), &fd);
    if (err == 0) {
      fi->fh = reinterpret_cast<uint64_t>(new_open_file(inodes_.get(e.ino), fd));
      if (fuse_reply_create(req, &e, fi) != 0) free_open_file(open_file(fi));
      return;
    }
    // EEXIST without O_EXCL: another creator won the race; open what it made, below.
    if (err != EEXIST || (fi->flags & O_EXCL)) return (void)fuse_reply_err(req, err);
  }
  int fd = ::openat(dir->fd, name, medium_flags(fi->flags) | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  bool created = fd >= 0;
  if (!created && errno == EEXIST && !(fi->flags & O_EXCL))  // lost a race with another creator
    fd = ::openat(dir->fd, name, medium_flags(fi->flags) | O_NOFOLLOW);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  int err = created ? chown_new(req, *dir, name, S_IFREG | mode) : 0;
  fuse_entry_param e{};
  if (!err) err = do_lookup(*dir, name, &e);
  if (!err && created && (err = sync_dir(*dir)) != 0) inodes_.forget(e.ino, 1);
  if (err) {
    ::close(fd);
    return (void)fuse_reply_err(req, err);
  }
  auto inode = inodes_.get(e.ino);
  fi->fh = reinterpret_cast<uint64_t>(new_open_file(inode, fd));
  if (fuse_reply_create(req, &e, fi) != 0) free_open_file(open_file(fi));
}

void Filesystem::read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  OpenFile* of = open_file(fi);
  const Inode& inode = *of->inode;
  // A volume that left this node's tree (fenced, given back) may have a newer owner: no reads.
  if (volume_by_id(inode.volume->id()) != inode.volume) return (void)fuse_reply_err(req, EIO);
  nvcache::StagedData staged;
  std::optional<uint64_t> staged_end;
  if (cache_) {
    // The staged bytes first, then the medium: a destage finishing in between can only make
    // the medium newer, never leave a byte missing from both.
    auto snap = cache_->snapshot(object_of(inode), off, size, &staged_end);
    if (!snap) return (void)fuse_reply_err(req, snap.status().to_errno());
    staged = std::move(*snap);
  }
  std::vector<char> buf(size, 0);
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(of->fd, buf.data() + got, size - got, off + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return (void)fuse_reply_err(req, errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  // Staged writes past the medium's end extend the file (the gap reads as zeros).
  size_t len = got;
  if (staged_end && *staged_end > static_cast<uint64_t>(off) + got)
    len = static_cast<size_t>(std::min<uint64_t>(size, *staged_end - off));
  nvcache::apply_staged(staged, off, std::as_writable_bytes(std::span(buf.data(), len)));
  fuse_reply_buf(req, buf.data(), len);
}

void Filesystem::write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
                       fuse_file_info* fi) {
  OpenFile* of = open_file(fi);
  Inode& inode = *of->inode;
  Volume& vol = *inode.volume;
  // A volume that left this node's tree (fenced, given back) takes no more writes, and none is
  // acknowledged without a valid lease (a node that froze past its lease and woke up).
  auto may_ack = [&] { return may_change(vol); };
  if (!may_ack()) return (void)fuse_reply_err(req, EIO);
  // Degraded with the write-through policy: the medium takes the write, after whatever of the
  // file is still staged (a later destage must never overwrite it with older bytes).
  const bool through = vol.mode() == WriteMode::kWriteThrough ||
                       (vol.degraded_policy() == DegradedPolicy::kWriteThrough &&
                        options_.mirror_degraded && options_.mirror_degraded());
  if (through && vol.mode() == WriteMode::kStaged)
    if (int err = flush_staged(inode)) return (void)fuse_reply_err(req, err);
  if (cache_ && !through && !inode.unlinked.load()) {
    auto lsn = cache_->write(object_of(inode), vol.epoch(), off,
                             std::as_bytes(std::span(buf, size)));
    if (!lsn) {
      options_.logger.error("staging a write failed: %s", lsn.status().to_string().c_str());
      return (void)fuse_reply_err(req, lsn.status().to_errno());
    }
    inode.staged_mtime_ns.store(now_ns(), std::memory_order_relaxed);
    if (!may_ack()) return (void)fuse_reply_err(req, EIO);  // fenced while this write waited
    return (void)fuse_reply_write(req, size);
  }
  // Write-through (by mode or by degraded policy), or a file with no name left (the destager
  // could not reopen it by handle): straight to the medium. Write-through syncs before the reply.
  if (int err = write_all(of->fd, buf, size, off)) return (void)fuse_reply_err(req, err);
  if (through && !inode.unlinked.load() && ::fdatasync(of->fd) != 0) return (void)fuse_reply_err(req, errno);
  if (through && !may_ack()) return (void)fuse_reply_err(req, EIO);  // fenced meanwhile
  fuse_reply_write(req, size);
}

// FLUSH (every close) and FSYNC have nothing to do when every acknowledged write and metadata
// operation is durable already. ENOSYS tells the kernel so: it stops sending them on this mount
// (and returns 0 to the caller), which saves a FUSE round trip per fsync and per close (issue 13;
// docs/design.md §9). Logged metadata (§9a) is durable in the NV log when acknowledged, too.
void Filesystem::flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  fuse_reply_err(req, ENOSYS);  // every acknowledged write is durable already
}

void Filesystem::release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  free_open_file(open_file(fi));
  fuse_reply_err(req, 0);
}

void Filesystem::fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  // Staged writes were durable in the NV log when acknowledged, write-through ones on the
  // medium, metadata synced or logged: nothing is left to do. That is the point of the log.
  // (A file with no name left is written to the medium unsynced: no crash can bring it back.)
  fuse_reply_err(req, ENOSYS);
}

void Filesystem::opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  auto* d = new DirHandle;
  if (inode->volume) {
    int fd = ::openat(inode->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !(d->dp = ::fdopendir(fd))) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      delete d;
      return (void)fuse_reply_err(req, err);
    }
  }
  {
    std::lock_guard lock(handles_mu_);
    open_dirs_.insert(d);
  }
  fi->fh = reinterpret_cast<uint64_t>(d);
  if (fuse_reply_open(req, fi) != 0) {
    std::lock_guard lock(handles_mu_);
    open_dirs_.erase(d);
    delete d;
  }
}

void Filesystem::readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                         fuse_file_info* fi, bool plus) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  std::vector<char> buf(size);
  size_t used = 0;
  // Adds one entry; returns false when the buffer is full (the entry is not added).
  auto add = [&](const char* name, struct stat st, off_t next, bool lookup_ref) {
    size_t n;
    if (plus) {
      fuse_entry_param e{};
      if (lookup_ref) {
        if (do_lookup(*inode, name, &e) != 0) return true;  // vanished meanwhile: skip it
      } else {
        e.attr = st;
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, name, &e, next);
      if (n > size - used) {
        if (lookup_ref) inodes_.forget(e.ino, 1);  // not sent: the kernel holds no reference
        return false;
      }
    } else {
      n = fuse_add_direntry(req, buf.data() + used, size - used, name, &st, next);
      if (n > size - used) return false;
    }
    used += n;
    return true;
  };

  if (!inode->volume) {  // the mount root lists the volumes
    auto vols = volumes();
    for (off_t i = off; i < static_cast<off_t>(vols.size()) + 2; ++i) {
      struct stat st {};
      const char* name = i == 0 ? "." : i == 1 ? ".." : vols[i - 2]->name().c_str();
      st.st_mode = S_IFDIR;
      st.st_ino = FUSE_ROOT_ID;
      if (i >= 2) {
        struct stat vst {};
        if (::fstat(vols[i - 2]->root_fd(), &vst) == 0) st.st_ino = vols[i - 2]->inode_id(vst.st_ino);
      }
      if (!add(name, st, i + 1, plus && i >= 2)) break;
    }
    return (void)fuse_reply_buf(req, buf.data(), used);
  }

  if (off != d->offset) {
    ::seekdir(d->dp, off);
    d->entry = nullptr;
    d->offset = off;
  }
  for (;;) {
    if (!d->entry) {
      errno = 0;
      d->entry = ::readdir(d->dp);
      if (!d->entry) {
        if (errno && used == 0) return (void)fuse_reply_err(req, errno);
        break;
      }
    }
    const char* name = d->entry->d_name;
    const bool dots = std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0;
    struct stat st {};
    st.st_mode = static_cast<mode_t>(d->entry->d_type) << 12;
    st.st_ino = inode->volume->inode_id(d->entry->d_ino);
    if (dots) st.st_ino = FUSE_ROOT_ID;  // the kernel does not use them; never looked up here
    if (!hidden(*inode, name) && !add(name, st, d->entry->d_off, !dots)) break;
    d->offset = d->entry->d_off;
    d->entry = nullptr;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void Filesystem::releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto* d = reinterpret_cast<DirHandle*>(fi->fh);
  {
    std::lock_guard lock(handles_mu_);
    open_dirs_.erase(d);
  }
  delete d;
  fuse_reply_err(req, 0);
}

void Filesystem::fsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  // Every acknowledged operation on a directory was synced, or logged, before its reply.
  fuse_reply_err(req, inode_of(ino) || ino == FUSE_ROOT_ID ? 0 : ESTALE);
}

void Filesystem::fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
                           fuse_file_info* fi) {
  OpenFile* of = open_file(fi);
  Volume& vol = *of->inode->volume;
  if (!may_change(vol)) return (void)fuse_reply_err(req, EIO);
  // Allocating changes no byte: logged like a setattr, and staged data stays staged.
  if ((mode & ~FALLOC_FL_KEEP_SIZE) == 0) {
    if (std::unique_lock lock = meta_lock(vol); lock.owns_lock()) {
      if (::fallocate(of->fd, mode, offset, length) != 0) return (void)fuse_reply_err(req, errno);
      MetaOp op;
      op.kind = MetaKind::kFallocate;
      op.object = of->inode->key;
      op.flags = static_cast<uint32_t>(mode);
      op.offset = static_cast<uint64_t>(offset);
      op.length = static_cast<uint64_t>(length);
      MetaTicket ticket = append_logged(vol, op);
      lock.unlock();
      return (void)fuse_reply_err(req, finish_logged(vol, ticket));
    }
  }
  // Punching or zeroing must not be undone by a later destage or replay of older writes: the
  // staged data is flushed and fenced, and the change synced (these modes are not logged).
  if (int err = flush_and_fence(*of->inode)) return (void)fuse_reply_err(req, err);
  if (::fallocate(of->fd, mode, offset, length) != 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_err(req, ::fsync(of->fd) != 0 ? errno : 0);
}

void Filesystem::lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  OpenFile* of = open_file(fi);
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  // Where data is, is the medium's answer once staged bytes are on it.
  if (int err = flush_staged(*of->inode)) return (void)fuse_reply_err(req, err);
  off_t r = ::lseek(of->fd, off, whence);
  r < 0 ? (void)fuse_reply_err(req, errno) : (void)fuse_reply_lseek(req, r);
}

}  // namespace hafs::fs
