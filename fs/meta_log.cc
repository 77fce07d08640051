#include "fs/meta_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <random>

#include "base/endian.h"
#include "fs/volume.h"

namespace hafs::fs {

namespace {
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }
timespec from_ns(int64_t ns) { return timespec{ns / 1000000000, ns % 1000000000}; }

// An fd that closes itself.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Does `name` in `dirfd` name the inode of handle key `key`?
bool names(int dirfd, const std::string& name, const std::string& key) {
  auto k = handle_key_at(dirfd, name.c_str());
  return k && *k == key;
}
}  // namespace

MetaLog::MetaLog(const Volume& volume) : volume_(volume) {
  std::random_device rd;
  name_base_ = (uint64_t{rd()} << 32) | rd();
}

MetaLog::~MetaLog() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  refill_cv_.notify_all();
  if (refiller_.joinable()) refiller_.join();
  if (pool_fd_ >= 0) ::close(pool_fd_);
}

Result<int> MetaLog::pool_fd_locked() {
  if (pool_fd_ >= 0) return pool_fd_;
  if (::mkdirat(volume_.root_fd(), kPoolDir, 0700) != 0 && errno != EEXIST)
    return Status::from_errno(errno, "volume " + volume_.name() + ": cannot make the inode pool " + kPoolDir);
  int fd = ::openat(volume_.root_fd(), kPoolDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return Status::from_errno(errno, "volume " + volume_.name() + ": cannot open the inode pool " + kPoolDir);
  pool_fd_ = fd;
  return pool_fd_;
}

Status MetaLog::scan_locked() {
  auto pfd = pool_fd_locked();
  if (!pfd) return pfd.status();
  int dup = ::openat(*pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return Status::from_errno(errno, "reading the inode pool");
  DIR* dir = ::fdopendir(dup);
  if (!dir) {
    ::close(dup);
    return Status::from_errno(errno, "reading the inode pool");
  }
  free_[0].clear();
  free_[1].clear();
  while (dirent* d = ::readdir(dir)) {
    if (d->d_name[0] == 'f') free_[0].emplace_back(d->d_name);
    else if (d->d_name[0] == 'd') free_[1].emplace_back(d->d_name);
  }
  ::closedir(dir);
  // An entry left by a refill whose sync never finished (a crash) may not be durable: one sync
  // makes every entry found durable before any is handed out.
  if (::syncfs(*pfd) != 0) return Status::from_errno(errno, "syncfs of the inode pool");
  scanned_ = true;
  return Status::ok();
}

Result<std::vector<std::string>> MetaLog::make_batch(int pool_fd, bool directory, uint64_t first, size_t count) {
  char base[24];
  std::snprintf(base, sizeof base, "%016llx", static_cast<unsigned long long>(name_base_));
  std::vector<std::string> made;
  for (uint64_t seq = first; seq < first + count; ++seq) {
    std::string name = std::string(directory ? "d" : "f") + base + "-" + std::to_string(seq);
    if (directory) {
      if (::mkdirat(pool_fd, name.c_str(), kPoolDirMode) != 0) return Status::from_errno(errno, "refilling the inode pool");
    } else {
      int fd = ::openat(pool_fd, name.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, kPoolFileMode);
      if (fd < 0) return Status::from_errno(errno, "refilling the inode pool");
      ::close(fd);
    }
    made.push_back(std::move(name));
  }
  // One flush for the batch: from here on no crash can take these inodes (or their numbers) away.
  if (::syncfs(pool_fd) != 0) return Status::from_errno(errno, "syncfs of the inode pool");
  return made;
}

Status MetaLog::refill_locked(bool directory) {
  auto pfd = pool_fd_locked();
  if (!pfd) return pfd.status();
  auto made = make_batch(*pfd, directory, next_seq_, refill_batch_);
  next_seq_ += refill_batch_;
  if (!made) return made.status();
  for (auto& n : *made) free_[directory].push_back(std::move(n));
  ++refills_;
  return Status::ok();
}

void MetaLog::start_refiller() {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  refill_wanted_[0] = refill_wanted_[1] = true;
  if (!refiller_.joinable()) refiller_ = std::thread([this] { refiller_loop(); });
  refill_cv_.notify_all();
}

void MetaLog::refiller_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const int which = refill_wanted_[0] ? 0 : refill_wanted_[1] ? 1 : -1;
    if (which < 0) {
      refill_cv_.wait(lock);
      continue;
    }
    refill_wanted_[which] = false;
    if (!scanned_) {
      if (Status s = scan_locked(); !s.is_ok()) {
        refill_error_ = s;
        refill_cv_.notify_all();
        continue;
      }
    }
    if (free_[which].size() >= 2 * refill_batch_) continue;
    auto pfd = pool_fd_locked();
    const int fd = pfd ? ::dup(*pfd) : -1;  // reset() may close pool_fd_ meanwhile
    if (fd < 0) {
      refill_error_ = pfd ? Status::from_errno(errno, "refilling the inode pool") : pfd.status();
      refill_cv_.notify_all();
      continue;
    }
    const uint64_t first = next_seq_;
    const size_t count = refill_batch_;
    next_seq_ += count;
    refilling_ = true;
    lock.unlock();
    auto made = make_batch(fd, which == 1, first, count);
    ::close(fd);
    lock.lock();
    refilling_ = false;
    if (!made) {
      refill_error_ = made.status();
    } else {
      refill_error_ = Status::ok();
      // A scan meanwhile (after a reset) may have listed some of these already: take() hands a
      // name out only while it is still in the pool, so a name listed twice is used once.
      for (auto& n : *made) free_[which].push_back(std::move(n));
      ++refills_;
      if (free_[which].size() < 2 * refill_batch_) refill_wanted_[which] = true;  // up to two batches
    }
    refill_cv_.notify_all();
  }
}

Result<MetaLog::PoolEntry> MetaLog::take(bool directory) {
  auto pfd = pool_fd_locked();
  if (!pfd) return pfd.status();
  if (!scanned_) HAFS_RETURN_IF_ERROR(scan_locked());
  for (;;) {
    while (free_[directory].empty()) {
      if (!refiller_.joinable() || stopping_ || (!refilling_ && !refill_error_.is_ok())) {
        // No refiller, or its last batch failed: refill here, and fail with the reason.
        HAFS_RETURN_IF_ERROR(refill_locked(directory));
        break;
      }
      refill_wanted_[directory] = true;
      refill_cv_.notify_all();
      refill_cv_.wait(mu_);
      if (!scanned_) HAFS_RETURN_IF_ERROR(scan_locked());
    }
    std::string name = std::move(free_[directory].front());
    free_[directory].pop_front();
    if (refiller_.joinable() && free_[directory].size() < refill_batch_ && !refill_wanted_[directory]) {
      refill_wanted_[directory] = true;
      refill_cv_.notify_all();
    }
    auto key = handle_key_at(*pfd, name.c_str());
    if (key) return PoolEntry{std::move(name), std::move(*key)};
    // Gone (used by a replay or the other node since the scan): the next one.
  }
}

MetaLog::PoolState MetaLog::pool_state() const {
  std::lock_guard lock(mu_);
  return PoolState{free_[0].size(), free_[1].size(), refills(),
                   refilling_ || refill_wanted_[0] || refill_wanted_[1]};
}

void MetaLog::put_back(PoolEntry entry, bool directory) { free_[directory].push_front(std::move(entry.name)); }

Status MetaLog::set_attrs(const MetaOp& op) {
  if ((op.flags & kAttrBits) == 0) return Status::ok();
  auto opened = volume_.open_by_key(op.object, O_PATH | O_NOFOLLOW);
  if (!opened) return opened.status();
  Fd fd(*opened);
  struct stat st {};
  if (::fstatat(fd.fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
    return Status::from_errno(errno, "stat of a logged object");
  return apply_attrs(fd.fd, true, st, op);
}

Status MetaLog::apply_attrs(int fd, bool o_path, const struct stat& st, const MetaOp& op) {
  const uint32_t bits = op.flags & kAttrBits;
  // An O_PATH descriptor takes neither fchmod nor futimens nor ftruncate: those go by /proc.
  const std::string proc = o_path ? proc_path(fd) : std::string();
  // Owner before mode (chown clears set-id bits), size before times (truncate moves mtime).
  // Values the object has already are not set again (a pool inode is made 0644/0755 root-owned,
  // as most creates want it).
  const uid_t uid = (bits & kSetUid) ? op.uid : static_cast<uid_t>(-1);
  const gid_t gid = (bits & kSetGid) ? op.gid : static_cast<gid_t>(-1);
  if ((bits & kSetUid && op.uid != st.st_uid) || (bits & kSetGid && op.gid != st.st_gid)) {
    if (::fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
      return Status::from_errno(errno, "chown of a logged object");
  }
  if ((bits & kSetMode) && !S_ISLNK(st.st_mode) && (st.st_mode & 07777) != (op.mode & 07777)) {
    if ((o_path ? ::chmod(proc.c_str(), op.mode & 07777) : ::fchmod(fd, op.mode & 07777)) != 0)
      return Status::from_errno(errno, "chmod of a logged object");
  }
  if (bits & kSetSize) {
    if ((o_path ? ::truncate(proc.c_str(), static_cast<off_t>(op.size)) : ::ftruncate(fd, static_cast<off_t>(op.size))) != 0)
      return Status::from_errno(errno, "truncate of a logged object");
  }
  if (bits & (kSetAtime | kSetMtime)) {
    timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (bits & kSetAtime) ts[0] = from_ns(op.atime_ns);
    if (bits & kSetMtime) ts[1] = from_ns(op.mtime_ns);
    int rc = !o_path            ? ::futimens(fd, ts)
             : S_ISLNK(st.st_mode) ? ::utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                                   : ::utimensat(AT_FDCWD, proc.c_str(), ts, 0);
    if (rc != 0) return Status::from_errno(errno, "utimens of a logged object");
  }
  return Status::ok();
}

Status MetaLog::execute_create(const MetaOp& op, int parent_fd) {
  auto pfd = pool_fd_locked();
  if (!pfd) return pfd.status();
  Fd opened(-1);  // a redo has only the parent's handle key
  if (parent_fd < 0) {
    auto parent = volume_.open_by_key(op.parent, O_RDONLY | O_DIRECTORY);
    if (!parent) return parent.status();
    opened.fd = parent_fd = *parent;
  }
  // Attributes first, on the pool inode: the name appears with them, and a crash between the two
  // leaves a pool inode that the redo finds in the pool and sets again.
  const int dir_flag = op.kind == MetaKind::kMkdir ? O_DIRECTORY : 0;
  Fd obj(::openat(*pfd, op.pool_name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | dir_flag));
  if (obj.fd < 0) return Status::from_errno(errno, "open of a pool inode");
  struct stat st {};
  if (::fstat(obj.fd, &st) != 0) return Status::from_errno(errno, "stat of a pool inode");
  HAFS_RETURN_IF_ERROR(apply_attrs(obj.fd, false, st, op));
  if (::syscall(SYS_renameat2, *pfd, op.pool_name.c_str(), parent_fd, op.name.c_str(), RENAME_NOREPLACE) != 0)
    return Status::from_errno(errno, "rename of a pool inode into place");
  return Status::ok();
}

Status MetaLog::stamp(uint64_t ring_id, uint64_t lsn) {
  auto pfd = pool_fd_locked();
  if (!pfd) return pfd.status();
  std::array<std::byte, 16> value{};  // ring id, LSN: u64 little-endian (log-format.md §6a)
  put_le<uint64_t>(value, 0, ring_id);
  put_le<uint64_t>(value, 8, lsn);
  if (::fsetxattr(*pfd, kStampXattr, value.data(), value.size(), 0) != 0)
    return Status::from_errno(errno, "volume " + volume_.name() + ": cannot write the applied stamp " +
                                         kStampXattr + " (the medium must take trusted xattrs)");
  return Status::ok();
}

std::optional<std::pair<uint64_t, uint64_t>> MetaLog::read_stamp_locked() {
  auto pfd = pool_fd_locked();
  if (!pfd) return std::nullopt;
  std::array<std::byte, 16> value{};
  if (::fgetxattr(*pfd, kStampXattr, value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    return std::nullopt;
  return std::pair{get_le<uint64_t>(value, 0), get_le<uint64_t>(value, 8)};
}

Status MetaLog::redo(const nvcache::MetaRecord& record) {
  std::lock_guard lock(mu_);
  if (auto s = read_stamp_locked(); s && s->first == record.ring_id && record.lsn <= s->second)
    return Status::ok();  // the medium holds it (and may hold later operations on what it names)
  auto op = decode_meta_op(record.payload);
  if (!op) return op.status().with_context("LSN " + std::to_string(record.lsn));
  Status done = redo_locked(*op);
  if (!done.is_ok() && done.code() != Code::kStale && done.code() != Code::kNotFound) return done;
  HAFS_RETURN_IF_ERROR(stamp(record.ring_id, record.lsn));
  return done;
}

Status MetaLog::redo_locked(const MetaOp& op) {
  auto open_dir = [&](const std::string& key) { return volume_.open_by_key(key, O_RDONLY | O_DIRECTORY); };
  switch (op.kind) {
    case MetaKind::kCreate:
    case MetaKind::kMkdir: {
      auto pfd = pool_fd_locked();
      if (!pfd) return pfd.status();
      struct stat st {};
      if (::fstatat(*pfd, op.pool_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return execute_create(op);
      return set_attrs(op);  // renamed already (attributes first, so they are there): idempotent
    }
    case MetaKind::kUnlink:
    case MetaKind::kRmdir: {
      auto parent = open_dir(op.parent);
      if (!parent) return parent.status();
      Fd dir(*parent);
      if (!names(dir.fd, op.name, op.object)) return Status::ok();  // removed already
      if (::unlinkat(dir.fd, op.name.c_str(), op.kind == MetaKind::kRmdir ? AT_REMOVEDIR : 0) != 0)
        return Status::from_errno(errno, std::string("redo of ") + meta_kind_name(op.kind));
      return Status::ok();
    }
    case MetaKind::kRename: {
      auto from = open_dir(op.parent);
      if (!from) return from.status();
      Fd src(*from);
      if (!names(src.fd, op.name, op.object)) return Status::ok();  // renamed already
      auto to = open_dir(op.new_parent);
      if (!to) return to.status();
      Fd dst(*to);
      if (::syscall(SYS_renameat2, src.fd, op.name.c_str(), dst.fd, op.new_name.c_str(), op.flags) != 0)
        return Status::from_errno(errno, "redo of rename");
      return Status::ok();
    }
    case MetaKind::kLink: {
      auto to = open_dir(op.new_parent);
      if (!to) return to.status();
      Fd dst(*to);
      if (names(dst.fd, op.new_name, op.object)) return Status::ok();  // linked already
      auto obj = volume_.open_by_key(op.object, O_PATH | O_NOFOLLOW);
      if (!obj) return obj.status();
      Fd src(*obj);
      if (::linkat(src.fd, "", dst.fd, op.new_name.c_str(), AT_EMPTY_PATH) != 0)
        return Status::from_errno(errno, "redo of link");
      return Status::ok();
    }
    case MetaKind::kSetattr:
      return set_attrs(op);
    // The rest set absolute state, so a redo of one the medium holds changes nothing.
    case MetaKind::kSetxattr:
    case MetaKind::kRemovexattr: {
      auto obj = volume_.open_by_key(op.object, O_PATH | O_NOFOLLOW);
      if (!obj) return obj.status();
      Fd fd(*obj);
      const std::string proc = proc_path(fd.fd);
      if (op.kind == MetaKind::kSetxattr) {
        if (::setxattr(proc.c_str(), op.name.c_str(), op.value.data(), op.value.size(), 0) != 0)
          return Status::from_errno(errno, "redo of setxattr");
      } else if (::removexattr(proc.c_str(), op.name.c_str()) != 0 && errno != ENODATA) {
        return Status::from_errno(errno, "redo of removexattr");
      }
      return Status::ok();
    }
    case MetaKind::kSynced:
      return Status::ok();  // a marker for the replay (VolumeTarget::apply_metas)
    case MetaKind::kFallocate: {
      if (op.flags & ~static_cast<uint32_t>(FALLOC_FL_KEEP_SIZE))
        return Status::error(Code::kCorruption, "fallocate record of a mode that is never logged");
      auto obj = volume_.open_by_key(op.object, O_WRONLY);
      if (!obj) return obj.status();
      Fd fd(*obj);
      if (::fallocate(fd.fd, static_cast<int>(op.flags), static_cast<off_t>(op.offset), static_cast<off_t>(op.length)) != 0)
        return Status::from_errno(errno, "redo of fallocate");
      return Status::ok();
    }
  }
  return Status::error(Code::kCorruption, "metadata record of an unknown kind");
}

void MetaLog::reset() {
  std::lock_guard lock(mu_);
  if (pool_fd_ >= 0) ::close(pool_fd_);
  pool_fd_ = -1;
  scanned_ = false;
  free_[0].clear();
  free_[1].clear();
}

}  // namespace hafs::fs
