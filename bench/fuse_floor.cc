// fuse_floor: the FUSE floor of the end-to-end benchmarks (bench/fio/run.sh, target "floor").
//
// A minimal low-level FUSE passthrough over a directory (run.sh puts it on tmpfs), set up the
// way hafsd sets up its session: FUSE_USE_VERSION 312, the same capabilities (no writeback
// cache, no atomic O_TRUNC, 1 MiB max_write), the multi-threaded loop with clone_fd and at most
// 16 workers, one reply per request from the worker that read it. Every request is one system
// call on the backing file and nothing else, so what a job costs here is what FUSE alone costs
// it: hafs's figures are read against this floor (issue 13: W1 mirrored >= 0.6x the floor).
//
// It serves exactly what fio and bench/meta need (lookup, getattr, setattr, create, mkdir,
// symlink, readlink, open, read, write, flush, fsync, release, unlink, rmdir, statfs, and a
// directory listing), with inode numbers of its own.
//
// Usage: fuse_floor BACKING_DIR MOUNT_POINT   (foreground; SIGTERM or SIGINT unmounts and exits)
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace {

// One inode the kernel knows: an O_PATH descriptor of the backing file and its lookup count.
struct Node {
  int fd = -1;
  uint64_t nlookup = 0;
  std::pair<dev_t, ino_t> key{};
};

class Floor {
 public:
  explicit Floor(int root_fd) {
    struct stat st {};
    ::fstat(root_fd, &st);
    nodes_[FUSE_ROOT_ID] = Node{root_fd, 1, {st.st_dev, st.st_ino}};
    by_key_[{st.st_dev, st.st_ino}] = FUSE_ROOT_ID;
  }

  int fd_of(fuse_ino_t ino) {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    return it == nodes_.end() ? -1 : it->second.fd;
  }

  // Looks `name` up under `parent` and counts a lookup of it: fills *e, returns an errno.
  int lookup(fuse_ino_t parent, const char* name, fuse_entry_param* e) {
    const int dir = fd_of(parent);
    if (dir < 0) return ESTALE;
    *e = fuse_entry_param{};
    if (::fstatat(dir, name, &e->attr, AT_SYMLINK_NOFOLLOW) != 0) return errno;
    const std::pair<dev_t, ino_t> key{e->attr.st_dev, e->attr.st_ino};
    std::lock_guard lock(mu_);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
      const int fd = ::openat(dir, name, O_PATH | O_NOFOLLOW);
      if (fd < 0) return errno;
      it = by_key_.emplace(key, next_ino_++).first;
      nodes_[it->second] = Node{fd, 0, key};
    }
    ++nodes_[it->second].nlookup;
    e->ino = it->second;
    e->attr.st_ino = it->second;
    e->attr_timeout = e->entry_timeout = 1.0;  // hafsd's default attr_timeout_s
    return 0;
  }

  void forget(fuse_ino_t ino, uint64_t n) {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end() || ino == FUSE_ROOT_ID) return;
    it->second.nlookup -= std::min(n, it->second.nlookup);
    if (it->second.nlookup == 0) {
      ::close(it->second.fd);
      by_key_.erase(it->second.key);
      nodes_.erase(it);
    }
  }

  int stat(fuse_ino_t ino, struct stat* st) {
    const int fd = fd_of(ino);
    if (fd < 0) return ESTALE;
    if (::fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
    st->st_ino = ino;
    return 0;
  }

  // The backing file opened for I/O (an O_PATH descriptor cannot read or write).
  int reopen(fuse_ino_t ino, int flags) {
    const int fd = fd_of(ino);
    if (fd < 0) return -ESTALE;
    const std::string proc = "/proc/self/fd/" + std::to_string(fd);
    const int io = ::open(proc.c_str(), flags & ~(O_NOFOLLOW | O_CREAT | O_EXCL));
    return io < 0 ? -errno : io;
  }

 private:
  std::mutex mu_;
  std::map<fuse_ino_t, Node> nodes_;
  std::map<std::pair<dev_t, ino_t>, fuse_ino_t> by_key_;
  fuse_ino_t next_ino_ = FUSE_ROOT_ID + 1;
};

Floor& self(fuse_req_t req) { return *static_cast<Floor*>(fuse_req_userdata(req)); }

void op_init(void*, fuse_conn_info* conn) {
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  conn->max_write = 1u << 20;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  if (int err = self(req).lookup(parent, name, &e)) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  self(req).forget(ino, n);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* list) {
  for (size_t i = 0; i < count; ++i) self(req).forget(list[i].ino, list[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st {};
  if (int err = self(req).stat(ino, &st)) return (void)fuse_reply_err(req, err);
  fuse_reply_attr(req, &st, 1.0);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  const int fd = self(req).fd_of(ino);
  if (fd < 0) return (void)fuse_reply_err(req, ESTALE);
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  int rc = 0;
  if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
    rc = ::fchownat(fd, "", to_set & FUSE_SET_ATTR_UID ? attr->st_uid : static_cast<uid_t>(-1),
                    to_set & FUSE_SET_ATTR_GID ? attr->st_gid : static_cast<gid_t>(-1),
                    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
  if (rc == 0 && (to_set & FUSE_SET_ATTR_MODE)) rc = ::chmod(proc.c_str(), attr->st_mode);
  if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
    rc = fi ? ::ftruncate(static_cast<int>(fi->fh), attr->st_size) : ::truncate(proc.c_str(), attr->st_size);
  if (rc == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
    timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (to_set & FUSE_SET_ATTR_ATIME) ts[0] = to_set & FUSE_SET_ATTR_ATIME_NOW ? timespec{0, UTIME_NOW} : attr->st_atim;
    if (to_set & FUSE_SET_ATTR_MTIME) ts[1] = to_set & FUSE_SET_ATTR_MTIME_NOW ? timespec{0, UTIME_NOW} : attr->st_mtim;
    rc = ::utimensat(AT_FDCWD, proc.c_str(), ts, 0);
  }
  if (rc != 0) return (void)fuse_reply_err(req, errno);
  op_getattr(req, ino, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  const int dir = self(req).fd_of(parent);
  if (dir < 0) return (void)fuse_reply_err(req, ESTALE);
  const int fd = ::openat(dir, name, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  fuse_entry_param e;
  if (int err = self(req).lookup(parent, name, &e)) {
    ::close(fd);
    return (void)fuse_reply_err(req, err);
  }
  fi->fh = static_cast<uint64_t>(fd);
  fuse_reply_create(req, &e, fi);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const int fd = self(req).reopen(ino, fi->flags);
  if (fd < 0) return (void)fuse_reply_err(req, -fd);
  fi->fh = static_cast<uint64_t>(fd);
  fuse_reply_open(req, fi);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  std::vector<char> buf(size);
  const ssize_t got = ::pread(static_cast<int>(fi->fh), buf.data(), size, off);
  if (got < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_buf(req, buf.data(), static_cast<size_t>(got));
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  const ssize_t put = ::pwrite(static_cast<int>(fi->fh), buf, size, off);
  if (put < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_write(req, static_cast<size_t>(put));
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  const int fd = static_cast<int>(fi->fh);
  fuse_reply_err(req, (datasync ? ::fdatasync(fd) : ::fsync(fd)) == 0 ? 0 : errno);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ::close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  const int dir = self(req).fd_of(parent);
  if (dir < 0) return (void)fuse_reply_err(req, ESTALE);
  fuse_reply_err(req, ::unlinkat(dir, name, 0) == 0 ? 0 : errno);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  const int dir = self(req).fd_of(parent);
  if (dir < 0) return (void)fuse_reply_err(req, ESTALE);
  fuse_reply_err(req, ::unlinkat(dir, name, AT_REMOVEDIR) == 0 ? 0 : errno);
}

// mkdir and symlink: `make` creates the name in the parent's directory, then it is looked up.
template <typename Make>
void make_entry(fuse_req_t req, fuse_ino_t parent, const char* name, Make make) {
  const int dir = self(req).fd_of(parent);
  if (dir < 0) return (void)fuse_reply_err(req, ESTALE);
  if (make(dir) != 0) return (void)fuse_reply_err(req, errno);
  fuse_entry_param e;
  if (int err = self(req).lookup(parent, name, &e)) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  make_entry(req, parent, name, [&](int dir) { return ::mkdirat(dir, name, mode); });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  make_entry(req, parent, name, [&](int dir) { return ::symlinkat(link, dir, name); });
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  char buf[PATH_MAX + 1];
  const ssize_t n = ::readlinkat(self(req).fd_of(ino), "", buf, PATH_MAX);
  if (n < 0) return (void)fuse_reply_err(req, errno);
  buf[n] = '\0';
  fuse_reply_readlink(req, buf);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  const int fd = self(req).fd_of(ino);
  struct statvfs sv {};
  if (fd < 0 || ::fstatvfs(fd, &sv) != 0) return (void)fuse_reply_err(req, fd < 0 ? ESTALE : errno);
  fuse_reply_statfs(req, &sv);
}

// Directories: opened for a listing of names (fio lists none; `ls` of the mount works).
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  const int fd = self(req).reopen(ino, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return (void)fuse_reply_err(req, -fd);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return (void)fuse_reply_err(req, errno);
  }
  fi->fh = reinterpret_cast<uint64_t>(d);
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  DIR* d = reinterpret_cast<DIR*>(fi->fh);
  ::seekdir(d, off);
  std::vector<char> buf(size);
  size_t used = 0;
  while (dirent* de = ::readdir(d)) {
    struct stat st {};
    st.st_ino = de->d_ino;
    st.st_mode = static_cast<mode_t>(de->d_type) << 12;
    const size_t need = fuse_add_direntry(req, buf.data() + used, size - used, de->d_name, &st, ::telldir(d));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ::closedir(reinterpret_cast<DIR*>(fi->fh));
  fuse_reply_err(req, 0);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.create = op_create;
  ops.open = op_open;
  ops.read = op_read;
  ops.write = op_write;
  ops.flush = op_flush;
  ops.fsync = op_fsync;
  ops.release = op_release;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.readlink = op_readlink;
  ops.statfs = op_statfs;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.releasedir = op_releasedir;
  return ops;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuse_floor BACKING_DIR MOUNT_POINT\n");
    return 2;
  }
  const int root = ::open(argv[1], O_PATH | O_DIRECTORY);
  if (root < 0) {
    std::fprintf(stderr, "fuse_floor: %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  Floor floor(root);
  char prog[] = "fuse_floor", opt[] = "-o", opts[] = "fsname=floor,subtype=floor,default_permissions";
  char* args_v[] = {prog, opt, opts};
  fuse_args args = FUSE_ARGS_INIT(3, args_v);
  const fuse_lowlevel_ops ops = make_ops();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &floor);
  if (!se) return 1;
  if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[2]) != 0) {
    std::fprintf(stderr, "fuse_floor: cannot mount at %s\n", argv[2]);
    fuse_session_destroy(se);
    return 1;
  }
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 16);
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  const int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  return rc == 0 || rc == SIGTERM || rc == SIGINT ? 0 : 1;
}
