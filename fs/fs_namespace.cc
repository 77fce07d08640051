// Filesystem: names and attributes (lookup, getattr/setattr, create-style operations, unlink,
// rename, link, xattrs, statfs). File data and directories' contents: fs_files.cc.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "fs/filesystem.h"

namespace hafs::fs {

namespace {
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }
int64_t to_ns(const timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }
timespec from_ns(int64_t ns) { return timespec{ns / 1000000000, ns % 1000000000}; }
}  // namespace

Filesystem::Filesystem(nvcache::NvCache* cache, FsOptions options)
    : cache_(cache), options_(std::move(options)) {
  root_ = std::make_shared<Inode>(FUSE_ROOT_ID, nullptr, -1, S_IFDIR, "", 0);
  clock_gettime(CLOCK_REALTIME, &start_time_);
}

// Filesystem::~Filesystem is in fs_files.cc, beside the handles it frees.

void Filesystem::add_volume(Volume* volume) {
  volume->meta().reset();  // the other node, or a replay, may have used its inode pool
  if (logs_metadata(*volume)) volume->meta().start_refiller();
  std::unique_lock lock(volumes_mu_);
  volumes_.push_back(volume);
}

void Filesystem::remove_volume(const std::string& name) {
  std::unique_lock lock(volumes_mu_);
  std::erase_if(volumes_, [&](Volume* v) { return v->name() == name; });
}

Volume* Filesystem::volume_by_id(uint32_t id) const {
  std::shared_lock lock(volumes_mu_);
  for (Volume* v : volumes_)
    if (v->id() == id) return v;
  return nullptr;
}

Volume* Filesystem::volume_by_name(const std::string& name) const {
  std::shared_lock lock(volumes_mu_);
  for (Volume* v : volumes_)
    if (v->name() == name) return v;
  return nullptr;
}

std::vector<Volume*> Filesystem::volumes() const {
  std::shared_lock lock(volumes_mu_);
  return volumes_;
}

std::shared_ptr<Inode> Filesystem::inode_of(fuse_ino_t ino) const {
  if (ino == FUSE_ROOT_ID) return root_;
  auto inode = inodes_.get(ino);
  // An inode whose volume left the tree (given back, or taken away) is gone for this mount.
  if (inode && !volume_by_id(inode->volume->id())) return nullptr;
  return inode;
}

bool Filesystem::hidden(const Inode& dir, const char* name) {
  return dir.volume && dir.id == dir.volume->root_id() && std::strcmp(name, MetaLog::kPoolDir) == 0;
}

bool Filesystem::has_staged(const Inode& inode) const {
  return cache_ && inode.volume && S_ISREG(inode.type) && cache_->has_staged(object_of(inode));
}

void Filesystem::fill_entry_timeouts(fuse_entry_param* e) const {
  e->attr_timeout = options_.attr_timeout_s;
  e->entry_timeout = options_.attr_timeout_s;
}

void Filesystem::root_attr(struct stat* st) const {
  std::memset(st, 0, sizeof *st);
  st->st_ino = FUSE_ROOT_ID;
  st->st_mode = S_IFDIR | 0755;
  st->st_nlink = 2 + volumes().size();
  st->st_atim = st->st_mtim = st->st_ctim = start_time_;
  st->st_blksize = 4096;
}

int Filesystem::attr_of(const Inode& inode, struct stat* st) const {
  if (!inode.volume) {
    root_attr(st);
    return 0;
  }
  if (::fstatat(inode.fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  st->st_ino = inode.id;
  if (cache_ && S_ISREG(st->st_mode)) {
    // Staged writes count: size and mtime include what the NV log holds for the file.
    if (auto end = cache_->staged_end(object_of(inode)); end && *end > uint64_t(st->st_size))
      st->st_size = static_cast<off_t>(*end);
    const int64_t staged = inode.staged_mtime_ns.load(std::memory_order_relaxed);
    if (staged > to_ns(st->st_mtim)) {
      st->st_mtim = from_ns(staged);
      if (staged > to_ns(st->st_ctim)) st->st_ctim = st->st_mtim;
    }
  }
  return 0;
}

int Filesystem::ref_inode(Volume* volume, int fd, fuse_entry_param* e) {
  struct stat st {};
  if (::fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
    int err = errno;
    ::close(fd);
    return err;
  }
  if (S_ISDIR(st.st_mode)) {  // directories keep a readable fd: fsync and *at calls need it
    int dfd = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = errno;
    ::close(fd);
    if (dfd < 0) return err;
    fd = dfd;
  }
  auto key = handle_key_of(fd);
  if (!key) {
    ::close(fd);
    return key.status().to_errno();
  }
  uint64_t generation = 0;  // ext4-style handles carry it after the 32-bit inode number
  if (key->size() == 12) {
    uint32_t g = 0;
    std::memcpy(&g, key->data() + 8, 4);
    generation = g;
  }
  auto inode = inodes_.ref(std::make_shared<Inode>(volume->inode_id(st.st_ino), volume, fd,
                                                   st.st_mode & S_IFMT, std::move(*key), generation));
  std::memset(e, 0, sizeof *e);
  e->ino = inode->id;
  e->generation = inode->generation;
  fill_entry_timeouts(e);
  if (int err = attr_of(*inode, &e->attr); err != 0) {
    inodes_.forget(inode->id, 1);
    return err;
  }
  return 0;
}

int Filesystem::do_lookup(const Inode& parent, const char* name, fuse_entry_param* e) {
  if (std::strlen(name) > NAME_MAX) return ENAMETOOLONG;
  const bool dot = std::strcmp(name, ".") == 0, dotdot = std::strcmp(name, "..") == 0;
  if (!parent.volume) {  // the mount root: its children are the volumes
    if (dot || dotdot) {
      std::memset(e, 0, sizeof *e);
      e->ino = FUSE_ROOT_ID;
      fill_entry_timeouts(e);
      root_attr(&e->attr);
      return 0;
    }
    Volume* vol = volume_by_name(name);
    if (!vol) return ENOENT;
    int fd = ::dup(vol->root_fd());
    if (fd < 0) return errno;
    return ref_inode(vol, fd, e);
  }
  if (dot) {  // the kernel resolves an NFS handle of an inode it forgot by looking up "."
    // Of any inode, not only directories: a file the kernel evicted (its FORGET still on the
    // way) is looked up as "." of itself, where openat(fd, ".") would fail with ENOTDIR and
    // the NFS client would get STALE.
    int fd = ::fcntl(parent.fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return errno;
    return ref_inode(parent.volume, fd, e);
  }
  if (dotdot) {  // ".." of a volume root is the mount root
    struct stat root_st {};
    if (::fstat(parent.volume->root_fd(), &root_st) != 0) return errno;
    if (parent.volume->inode_id(root_st.st_ino) == parent.id) return do_lookup(*root_, ".", e);
  }
  if (hidden(parent, name)) return ENOENT;
  int fd = ::openat(parent.fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  return ref_inode(parent.volume, fd, e);
}

void Filesystem::lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::shared_ptr<Inode> dir = inode_of(parent);
  if (!dir && parent != FUSE_ROOT_ID) {
    // An inode this daemon never saw (NFS handle after eviction, restart or takeover): resolve
    // it from its number, which the medium's handles allow.
    const uint32_t vol_id = static_cast<uint32_t>(parent >> kInodeIdShift);
    Volume* vol = volume_by_id(vol_id);
    if (!vol || std::strcmp(name, ".") != 0) return (void)fuse_reply_err(req, ESTALE);
    auto fd = vol->open_by_inode(parent & kMediumInoMask);
    if (!fd) return (void)fuse_reply_err(req, ESTALE);
    fuse_entry_param e{};
    int err = ref_inode(vol, *fd, &e);
    if (err == 0 && e.ino != parent) {
      inodes_.forget(e.ino, 1);
      err = ESTALE;
    }
    return err ? (void)fuse_reply_err(req, err) : (void)fuse_reply_entry(req, &e);
  }
  fuse_entry_param e{};
  int err = do_lookup(*dir, name, &e);
  if (err == ENOENT) {  // a negative entry the kernel may cache
    std::memset(&e, 0, sizeof e);
    // Not in the root: its names are the volumes this node serves, which membership adds at a
    // takeover or giveback; a cached "no such volume" would hide a volume just served.
    e.entry_timeout = parent == FUSE_ROOT_ID ? 0 : options_.attr_timeout_s;
    return (void)fuse_reply_entry(req, &e);
  }
  if (err) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

void Filesystem::forget(fuse_ino_t ino, uint64_t nlookup) {
  if (ino != FUSE_ROOT_ID) inodes_.forget(ino, nlookup);
}

void Filesystem::getattr(fuse_req_t req, fuse_ino_t ino) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  struct stat st {};
  if (int err = attr_of(*inode, &st)) return (void)fuse_reply_err(req, err);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

// Only operations that are not logged call these: they sync whatever sync_metadata says.
int Filesystem::sync_dir(const Inode& dir) const {
  if (!dir.volume) return 0;
  return ::fsync(dir.fd) == 0 ? 0 : errno;
}

int Filesystem::sync_inode(const Inode& inode) const {
  if (!inode.volume) return 0;
  if (inode.is_dir()) return ::fsync(inode.fd) == 0 ? 0 : errno;
  if (!S_ISREG(inode.type)) return 0;  // symlinks, fifos: the directory's sync covers them
  int fd = ::open(proc_path(inode.fd).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}

int Filesystem::flush_staged(const Inode& inode) {
  if (!has_staged(inode)) return 0;
  // With logged metadata the data only has to be on the medium before the operation that
  // follows; the destager's next pass syncs it (with the operation's record) before any trim.
  Status s = cache_->flush_object(object_of(inode), logs_metadata(*inode.volume));
  if (!s.is_ok()) options_.logger.warn("flush before a metadata operation: %s", s.to_string().c_str());
  return s.is_ok() ? 0 : s.to_errno();
}

int Filesystem::flush_and_fence(const Inode& inode) {
  if (!cache_ || !inode.volume || !S_ISREG(inode.type)) return 0;
  // A write-through volume stages nothing (records of an earlier staged life were destaged
  // before the mount served): nothing to flush, nothing a replay could re-apply.
  if (inode.volume->mode() == WriteMode::kWriteThrough) return flush_staged(inode);
  Status s = cache_->flush_and_fence(object_of(inode), inode.volume->epoch());
  if (!s.is_ok()) options_.logger.warn("flush before truncate: %s", s.to_string().c_str());
  return s.is_ok() ? 0 : s.to_errno();
}

void Filesystem::setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                         fuse_file_info* fi) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*inode->volume)) return (void)fuse_reply_err(req, EIO);
  const std::string proc = proc_path(inode->fd);
  int err = 0;
  // Staged bytes first (and for a truncate a FENCE: neither destage nor replay may resurrect
  // cut data); before setting times, or a later destage's pwrite would move mtime past them.
  if (to_set & FUSE_SET_ATTR_SIZE) err = flush_and_fence(*inode);
  else if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) err = flush_staged(*inode);
  if (err) return (void)fuse_reply_err(req, err);
  Volume& vol = *inode->volume;
  std::unique_lock lock = meta_lock(vol);
  struct stat before {};
  if (lock.owns_lock() && ::fstatat(inode->fd, "", &before, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return (void)fuse_reply_err(req, errno);
  if (to_set & FUSE_SET_ATTR_MODE) {
    if (::chmod(proc.c_str(), attr->st_mode & 07777) != 0) err = errno;
  }
  if (!err && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : static_cast<uid_t>(-1);
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : static_cast<gid_t>(-1);
    if (::fchownat(inode->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) err = errno;
  }
  if (!err && (to_set & FUSE_SET_ATTR_SIZE)) {
    int rc = fi ? ::ftruncate(open_file(fi)->fd, attr->st_size)
                : ::truncate(proc.c_str(), attr->st_size);
    if (rc != 0) err = errno;
  }
  if (!err && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
    timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) ts[0].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_ATIME) ts[0] = attr->st_atim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) ts[1].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_MTIME) ts[1] = attr->st_mtim;
    if (!err) {
      int rc = S_ISLNK(inode->type) ? ::utimensat(inode->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                                    : ::utimensat(AT_FDCWD, proc.c_str(), ts, 0);
      if (rc != 0) err = errno;
      else if (to_set & FUSE_SET_ATTR_MTIME) inode->staged_mtime_ns.store(0);
    }
  }
  if (err) return (void)fuse_reply_err(req, err);
  if (lock.owns_lock()) {
    // The record holds the values the medium now has (times resolved from UTIME_NOW).
    struct stat now {};
    if (::fstatat(inode->fd, "", &now, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return (void)fuse_reply_err(req, errno);
    MetaOp op;
    op.kind = MetaKind::kSetattr;
    op.object = inode->key;
    if (to_set & FUSE_SET_ATTR_MODE) op.flags |= kSetMode;
    if (to_set & FUSE_SET_ATTR_UID) op.flags |= kSetUid;
    if (to_set & FUSE_SET_ATTR_GID) op.flags |= kSetGid;
    if (to_set & FUSE_SET_ATTR_SIZE) op.flags |= kSetSize;
    if (to_set & FUSE_SET_ATTR_ATIME) op.flags |= kSetAtime;
    if (to_set & FUSE_SET_ATTR_MTIME) op.flags |= kSetMtime;
    // chown may have cleared set-id bits: the mode goes with an owner change too.
    if (op.flags & (kSetUid | kSetGid)) op.flags |= kSetMode;
    op.mode = now.st_mode & 07777;
    op.uid = now.st_uid;
    op.gid = now.st_gid;
    op.size = static_cast<uint64_t>(now.st_size);
    op.atime_ns = to_ns(now.st_atim);
    op.mtime_ns = to_ns(now.st_mtim);
    // A chmod or chown that changed nothing (tar as root sets the mode and owner a file already
    // has) needs no record: there is nothing to redo (a redo cannot restore ctime either).
    const bool changed = (op.flags & (kSetSize | kSetAtime | kSetMtime)) || now.st_mode != before.st_mode ||
                         now.st_uid != before.st_uid || now.st_gid != before.st_gid;
    if (changed) {
      MetaTicket ticket = append_logged(vol, op);
      lock.unlock();
      if ((err = finish_logged(vol, ticket))) return (void)fuse_reply_err(req, err);
    }
  } else if ((err = sync_inode(*inode))) {
    return (void)fuse_reply_err(req, err);
  }
  struct stat st {};
  if ((err = attr_of(*inode, &st))) return (void)fuse_reply_err(req, err);
  fuse_reply_attr(req, &st, options_.attr_timeout_s);
}

void Filesystem::readlink(fuse_req_t req, fuse_ino_t ino) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  char buf[PATH_MAX + 1];
  ssize_t n = ::readlinkat(inode->fd, "", buf, sizeof buf);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  if (n == static_cast<ssize_t>(sizeof buf)) return (void)fuse_reply_err(req, ENAMETOOLONG);
  buf[n] = '\0';
  fuse_reply_readlink(req, buf);
}

int Filesystem::chown_new(fuse_req_t req, const Inode& parent, const char* name, mode_t mode) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  struct stat dir {};
  if (::fstat(parent.fd, &dir) != 0) return errno;
  // New nodes are created by root (this daemon), then given to the caller. The group follows
  // the directory's setgid rule, as a local filesystem would do it.
  const gid_t gid = (dir.st_mode & S_ISGID) ? dir.st_gid : ctx->gid;
  if (ctx->uid == 0 && gid == 0) return 0;
  if (::fchownat(parent.fd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  // chown clears set-id bits on non-directories; a creator that asked for them keeps them.
  if (!S_ISDIR(mode) && !S_ISLNK(mode) && (mode & (S_ISUID | S_ISGID)) &&
      ::fchmodat(parent.fd, name, mode & 07777, 0) != 0)
    return errno;
  return 0;
}

int Filesystem::make_node(fuse_req_t req, fuse_ino_t parent, const char* name,
                          const std::function<int(int)>& create, mode_t mode,
                          fuse_entry_param* e) {
  auto dir = inode_of(parent);
  if (!dir) return ESTALE;
  if (!dir->volume) return EPERM;  // volumes come from the configuration, not from mkdir
  if (std::strlen(name) > NAME_MAX) return ENAMETOOLONG;
  if (hidden(*dir, name)) return EPERM;
  if (!may_change(*dir->volume)) return EIO;
  if (create(dir->fd) != 0) return errno;
  int err = chown_new(req, *dir, name, mode);
  if (!err) err = do_lookup(*dir, name, e);
  if (err) return err;
  if ((err = sync_dir(*dir))) {
    inodes_.forget(e->ino, 1);
    return err;
  }
  return 0;
}

void Filesystem::mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
                       dev_t rdev) {
  const mode_t type = mode & S_IFMT;
  if ((S_ISCHR(type) || S_ISBLK(type)) && fuse_req_ctx(req)->uid != 0)
    return (void)fuse_reply_err(req, EPERM);  // this daemon is root; the caller must be too
  fuse_entry_param e{};
  int err = make_node(req, parent, name,
                      [&](int dirfd) { return ::mknodat(dirfd, name, mode, rdev); }, mode, &e);
  err ? (void)fuse_reply_err(req, err) : (void)fuse_reply_entry(req, &e);
}

void Filesystem::mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  fuse_entry_param e{};
  if (auto dir = inode_of(parent); dir && dir->volume && std::strlen(name) <= NAME_MAX &&
                                   !hidden(*dir, name) && logs_metadata(*dir->volume)) {
    int err = may_change(*dir->volume) ? create_logged(req, *dir, name, mode, true, &e) : EIO;
    return err ? (void)fuse_reply_err(req, err) : (void)fuse_reply_entry(req, &e);
  }
  int err = make_node(req, parent, name,
                      [&](int dirfd) { return ::mkdirat(dirfd, name, mode); }, S_IFDIR | mode, &e);
  err ? (void)fuse_reply_err(req, err) : (void)fuse_reply_entry(req, &e);
}

void Filesystem::symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  fuse_entry_param e{};
  int err = make_node(req, parent, name,
                      [&](int dirfd) { return ::symlinkat(link, dirfd, name); }, S_IFLNK | 0777, &e);
  err ? (void)fuse_reply_err(req, err) : (void)fuse_reply_entry(req, &e);
}

std::shared_ptr<Inode> Filesystem::known_child(const Inode& parent, const char* name) const {
  struct stat st {};
  if (!parent.volume || ::fstatat(parent.fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return nullptr;
  return inodes_.get(parent.volume->inode_id(st.st_ino));
}

void Filesystem::note_unlink(const std::shared_ptr<Inode>& victim) {
  struct stat st {};
  if (victim && ::fstatat(victim->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
      st.st_nlink == 0)
    victim->unlinked.store(true);
}

void Filesystem::unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto dir = inode_of(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  if (!dir->volume || hidden(*dir, name)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*dir->volume)) return (void)fuse_reply_err(req, EIO);
  // A file that may stay open after losing its last name must have its data on the medium:
  // the destager cannot reopen an unlinked file by handle.
  auto victim = known_child(*dir, name);
  if (victim)
    if (int err = flush_staged(*victim)) return (void)fuse_reply_err(req, err);
  if (std::unique_lock lock = meta_lock(*dir->volume); lock.owns_lock()) {
    MetaOp op;
    op.kind = MetaKind::kUnlink;
    if (int err = remove_logged(*dir, name, &op)) return (void)fuse_reply_err(req, err);
    MetaTicket ticket = append_logged(*dir->volume, op);
    lock.unlock();
    note_unlink(victim);
    return (void)fuse_reply_err(req, finish_logged(*dir->volume, ticket));
  }
  if (::unlinkat(dir->fd, name, 0) != 0) return (void)fuse_reply_err(req, errno);
  note_unlink(victim);
  fuse_reply_err(req, sync_dir(*dir));
}

void Filesystem::rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto dir = inode_of(parent);
  if (!dir) return (void)fuse_reply_err(req, ESTALE);
  if (!dir->volume || hidden(*dir, name)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*dir->volume)) return (void)fuse_reply_err(req, EIO);
  if (std::unique_lock lock = meta_lock(*dir->volume); lock.owns_lock()) {
    MetaOp op;
    op.kind = MetaKind::kRmdir;
    if (int err = remove_logged(*dir, name, &op)) return (void)fuse_reply_err(req, err);
    MetaTicket ticket = append_logged(*dir->volume, op);
    lock.unlock();
    return (void)fuse_reply_err(req, finish_logged(*dir->volume, ticket));
  }
  if (::unlinkat(dir->fd, name, AT_REMOVEDIR) != 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_err(req, sync_dir(*dir));
}

void Filesystem::rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
                        const char* newname, unsigned int flags) {
  auto from = inode_of(parent), to = inode_of(newparent);
  if (!from || !to) return (void)fuse_reply_err(req, ESTALE);
  if (!from->volume || !to->volume) return (void)fuse_reply_err(req, EPERM);
  if (from->volume != to->volume) return (void)fuse_reply_err(req, EXDEV);
  if (std::strlen(newname) > NAME_MAX) return (void)fuse_reply_err(req, ENAMETOOLONG);
  if (hidden(*from, name) || hidden(*to, newname)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*from->volume)) return (void)fuse_reply_err(req, EIO);
  std::shared_ptr<Inode> victim;
  if (!(flags & RENAME_EXCHANGE)) {
    victim = known_child(*to, newname);
    if (victim)
      if (int err = flush_staged(*victim)) return (void)fuse_reply_err(req, err);
  }
  if (std::unique_lock lock = meta_lock(*from->volume); lock.owns_lock()) {
    auto key = handle_key_at(from->fd, name);
    if (!key) return (void)fuse_reply_err(req, key.status().to_errno());
    if (::syscall(SYS_renameat2, from->fd, name, to->fd, newname, flags) != 0)
      return (void)fuse_reply_err(req, errno);
    MetaOp op;
    op.kind = MetaKind::kRename;
    op.flags = flags;
    op.object = std::move(*key);
    op.parent = from->key;
    op.name = name;
    op.new_parent = to->key;
    op.new_name = newname;
    MetaTicket ticket = append_logged(*from->volume, op);
    lock.unlock();
    note_unlink(victim);
    return (void)fuse_reply_err(req, finish_logged(*from->volume, ticket));
  }
  if (::syscall(SYS_renameat2, from->fd, name, to->fd, newname, flags) != 0)
    return (void)fuse_reply_err(req, errno);
  note_unlink(victim);
  int err = sync_dir(*from);
  if (!err && to != from) err = sync_dir(*to);
  fuse_reply_err(req, err);
}

void Filesystem::link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  auto inode = inode_of(ino);
  auto dir = inode_of(newparent);
  if (!inode || !dir) return (void)fuse_reply_err(req, ESTALE);
  if (!dir->volume || !inode->volume) return (void)fuse_reply_err(req, EPERM);
  if (dir->volume != inode->volume) return (void)fuse_reply_err(req, EXDEV);
  if (std::strlen(newname) > NAME_MAX) return (void)fuse_reply_err(req, ENAMETOOLONG);
  if (hidden(*dir, newname)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*dir->volume)) return (void)fuse_reply_err(req, EIO);
  std::unique_lock lock = meta_lock(*dir->volume);
  if (::linkat(inode->fd, "", dir->fd, newname, AT_EMPTY_PATH) != 0)
    return (void)fuse_reply_err(req, errno);
  inode->unlinked.store(false);
  std::optional<MetaTicket> ticket;
  if (lock.owns_lock()) {
    MetaOp op;
    op.kind = MetaKind::kLink;
    op.object = inode->key;
    op.new_parent = dir->key;
    op.new_name = newname;
    ticket = append_logged(*dir->volume, op);
    lock.unlock();
  }
  fuse_entry_param e{};
  int err = do_lookup(*dir, newname, &e);
  if (err) return (void)fuse_reply_err(req, err);
  if (ticket) err = finish_logged(*dir->volume, *ticket);
  else if ((err = sync_dir(*dir)) == 0) err = sync_inode(*inode);
  if (err) {
    inodes_.forget(e.ino, 1);
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_entry(req, &e);
}

void Filesystem::statfs(fuse_req_t req, fuse_ino_t ino) {
  auto inode = inode_of(ino);
  Volume* vol = inode ? inode->volume : nullptr;
  if (!vol) {
    auto all = volumes();
    if (all.empty()) {
      struct statvfs empty {};
      empty.f_bsize = empty.f_frsize = 4096;
      empty.f_namemax = NAME_MAX;
      return (void)fuse_reply_statfs(req, &empty);
    }
    vol = all.front();
  }
  struct statvfs st {};
  if (::fstatvfs(vol->root_fd(), &st) != 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &st);
}

void Filesystem::setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                          size_t size, int flags) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume) return (void)fuse_reply_err(req, ENOTSUP);
  if (S_ISLNK(inode->type)) return (void)fuse_reply_err(req, EPERM);
  if (!may_change(*inode->volume)) return (void)fuse_reply_err(req, EIO);
  std::unique_lock lock = meta_lock(*inode->volume);
  if (::setxattr(proc_path(inode->fd).c_str(), name, value, size, flags) != 0)
    return (void)fuse_reply_err(req, errno);
  if (!lock.owns_lock()) return (void)fuse_reply_err(req, sync_inode(*inode));
  MetaOp op;
  op.kind = MetaKind::kSetxattr;
  op.object = inode->key;
  op.name = name;
  op.value.assign(value, size);
  MetaTicket ticket = append_logged(*inode->volume, op);
  lock.unlock();
  fuse_reply_err(req, finish_logged(*inode->volume, ticket));
}

void Filesystem::getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume || S_ISLNK(inode->type)) return (void)fuse_reply_err(req, ENODATA);
  const std::string proc = proc_path(inode->fd);
  if (size == 0) {
    ssize_t n = ::getxattr(proc.c_str(), name, nullptr, 0);
    return n < 0 ? (void)fuse_reply_err(req, errno) : (void)fuse_reply_xattr(req, n);
  }
  std::vector<char> buf(size);
  ssize_t n = ::getxattr(proc.c_str(), name, buf.data(), size);
  n < 0 ? (void)fuse_reply_err(req, errno) : (void)fuse_reply_buf(req, buf.data(), n);
}

void Filesystem::listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume || S_ISLNK(inode->type))
    return size == 0 ? (void)fuse_reply_xattr(req, 0) : (void)fuse_reply_buf(req, nullptr, 0);
  const std::string proc = proc_path(inode->fd);
  if (size == 0) {
    ssize_t n = ::listxattr(proc.c_str(), nullptr, 0);
    return n < 0 ? (void)fuse_reply_err(req, errno) : (void)fuse_reply_xattr(req, n);
  }
  std::vector<char> buf(size);
  ssize_t n = ::listxattr(proc.c_str(), buf.data(), size);
  n < 0 ? (void)fuse_reply_err(req, errno) : (void)fuse_reply_buf(req, buf.data(), n);
}

void Filesystem::removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  auto inode = inode_of(ino);
  if (!inode) return (void)fuse_reply_err(req, ESTALE);
  if (!inode->volume || S_ISLNK(inode->type)) return (void)fuse_reply_err(req, ENODATA);
  if (!may_change(*inode->volume)) return (void)fuse_reply_err(req, EIO);
  std::unique_lock lock = meta_lock(*inode->volume);
  if (::removexattr(proc_path(inode->fd).c_str(), name) != 0) return (void)fuse_reply_err(req, errno);
  if (!lock.owns_lock()) return (void)fuse_reply_err(req, sync_inode(*inode));
  MetaOp op;
  op.kind = MetaKind::kRemovexattr;
  op.object = inode->key;
  op.name = name;
  MetaTicket ticket = append_logged(*inode->volume, op);
  lock.unlock();
  fuse_reply_err(req, finish_logged(*inode->volume, ticket));
}

}  // namespace hafs::fs
