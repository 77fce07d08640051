#include "nvcache/store.h"

#include <fcntl.h>
#include <libpmem2.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <random>

namespace hafs::nvcache {
namespace {

Status check_range(uint64_t off, uint64_t len, uint64_t size) {
  if (off > size || len > size - off)
    return Status::error(Code::kInvalidArgument, "store range [" + std::to_string(off) + ", +" +
                                                     std::to_string(len) + ") beyond " +
                                                     std::to_string(size) + " bytes");
  return Status::ok();
}

// Opens or creates the backing file; returns the fd and its size.
Result<std::pair<int, uint64_t>> open_backing_file(const std::string& path, uint64_t size_bytes,
                                                   StoreLock lock) {
  // Without a size there is nothing to create: a missing file is an error, not a new empty one.
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (size_bytes ? O_CREAT : 0), 0600);
  if (fd < 0) return Status::from_errno(errno, "cannot open store file " + path);
  // A store has one writer: a second process on the same NV log or mirror (a node started twice)
  // would interleave records with the first. The lock goes with the process (kill -9 included).
  if (lock == StoreLock::kExclusive && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK)
      return Status::error(Code::kBusy, "store file " + path +
                                            " is locked by another process (is an hafsd with this "
                                            "node's identity running?)");
    return Status::from_errno(e, "cannot lock store file " + path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::from_errno(e, "cannot stat store file " + path);
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == 0) {
    if (size_bytes == 0) {
      ::close(fd);
      return Status::error(Code::kInvalidArgument, "store file " + path + " is empty and no size given");
    }
    // Allocate for real where the filesystem can, so a full disk shows now, not mid-append.
    int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size_bytes));
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ::ftruncate(fd, static_cast<off_t>(size_bytes)) ? errno : 0;
    if (rc != 0) {
      ::close(fd);
      return Status::from_errno(rc, "cannot size store file " + path);
    }
    size = size_bytes;
  }
  return std::make_pair(fd, size);
}

class PmemStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& path, uint64_t size_bytes, StoreLock lock) {
    auto f = open_backing_file(path, size_bytes, lock);
    if (!f) return f.status();
    auto [fd, size] = *f;
    auto store = std::unique_ptr<PmemStore>(new PmemStore(fd, size));
    HAFS_RETURN_IF_ERROR(store->map(path));
    return std::unique_ptr<Store>(std::move(store));
  }
  ~PmemStore() override {
    if (map_) pmem2_map_delete(&map_);
    if (src_) pmem2_source_delete(&src_);
    if (cfg_) pmem2_config_delete(&cfg_);
    ::close(fd_);
  }
  uint64_t size() const override { return size_; }
  const char* kind() const override { return "pmem"; }
  Status write(uint64_t off, std::span<const std::byte> data) override {
    HAFS_RETURN_IF_ERROR(check_range(off, data.size(), size_));
    std::memcpy(base_ + off, data.data(), data.size());
    return Status::ok();
  }
  Status read(uint64_t off, std::span<std::byte> out) const override {
    HAFS_RETURN_IF_ERROR(check_range(off, out.size(), size_));
    std::memcpy(out.data(), base_ + off, out.size());
    return Status::ok();
  }
  Status persist(uint64_t off, uint64_t len) override {
    HAFS_RETURN_IF_ERROR(check_range(off, len, size_));
    if (on_tmpfs_) std::atomic_thread_fence(std::memory_order_seq_cst);
    else persist_(base_ + off, len);  // libpmem2: cache flush + fence on DAX, msync otherwise
    syncs_.fetch_add(1, std::memory_order_relaxed);
    return Status::ok();
  }
  std::byte* mapping() override { return base_; }
  uint64_t sync_count() const override { return syncs_.load(std::memory_order_relaxed); }

 private:
  PmemStore(int fd, uint64_t size) : fd_(fd), size_(size) {}
  Status map(const std::string& path) {
    auto fail = [&](const char* what) {
      return Status::error(Code::kIoError, std::string(what) + " for " + path + ": " +
                                               pmem2_errormsg());
    };
    if (pmem2_config_new(&cfg_)) return fail("pmem2_config_new");
    // Ordinary files (tmpfs, ext4) only offer page granularity; DAX offers more and is accepted.
    if (pmem2_config_set_required_store_granularity(cfg_, PMEM2_GRANULARITY_PAGE))
      return fail("pmem2_config_set_required_store_granularity");
    if (pmem2_source_from_fd(&src_, fd_)) return fail("pmem2_source_from_fd");
    if (pmem2_map_new(&map_, cfg_, src_)) return fail("pmem2_map_new");
    base_ = static_cast<std::byte*>(pmem2_map_get_address(map_));
    persist_ = pmem2_get_persist_fn(map_);
    // On tmpfs (/dev/shm) the mapped pages are the file: msync has nothing to write and makes
    // nothing more durable (such a store survives a crash of hafsd, never a power loss). Stores
    // are ordered for another process that maps the file by a fence alone, without a system call.
    struct statfs fs {};
    on_tmpfs_ = ::fstatfs(fd_, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
    if (pmem2_map_get_size(map_) < size_) return fail("mapping shorter than the file");
    return Status::ok();
  }

  int fd_;
  uint64_t size_;
  pmem2_config* cfg_ = nullptr;
  pmem2_source* src_ = nullptr;
  pmem2_map* map_ = nullptr;
  std::byte* base_ = nullptr;
  pmem2_persist_fn persist_ = nullptr;
  bool on_tmpfs_ = false;
  std::atomic<uint64_t> syncs_{0};
};

class FileStore final : public Store {
 public:
  static Result<std::unique_ptr<Store>> open(const std::string& path, uint64_t size_bytes, StoreLock lock) {
    auto f = open_backing_file(path, size_bytes, lock);
    if (!f) return f.status();
    return std::unique_ptr<Store>(new FileStore(f->first, f->second, path));
  }
  ~FileStore() override { ::close(fd_); }
  uint64_t size() const override { return size_; }
  const char* kind() const override { return "file"; }
  Status write(uint64_t off, std::span<const std::byte> data) override {
    HAFS_RETURN_IF_ERROR(check_range(off, data.size(), size_));
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "pwrite to " + path_);
      done += static_cast<size_t>(n);
    }
    return Status::ok();
  }
  Status read(uint64_t off, std::span<std::byte> out) const override {
    HAFS_RETURN_IF_ERROR(check_range(off, out.size(), size_));
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::from_errno(n < 0 ? errno : EIO, "pread from " + path_);
      done += static_cast<size_t>(n);
    }
    return Status::ok();
  }
  // Group commit: a caller whose bytes are written takes a ticket; one fdatasync that starts
  // after the ticket was taken covers it. While one caller syncs, the others wait and the next
  // sync covers all of them at once.
  Status persist(uint64_t off, uint64_t len) override {
    // fdatasync covers the whole file, but a range beyond it is a caller's bug, refused as the
    // other backends refuse it.
    HAFS_RETURN_IF_ERROR(check_range(off, len, size_));
    std::unique_lock lock(mu_);
    const uint64_t ticket = ++requested_;
    while (synced_ < ticket) {
      if (syncing_) {
        cv_.wait(lock);
        continue;
      }
      syncing_ = true;
      const uint64_t covers = requested_;
      lock.unlock();
      int rc = ::fdatasync(fd_);
      int err = errno;
      lock.lock();
      syncing_ = false;
      ++syncs_;
      if (rc != 0) {
        // The kernel may have dropped the dirty pages it failed to write: nothing earlier can be
        // called durable. Every waiter of this round gets the error.
        failed_through_ = covers;
        last_error_ = err;
      } else {
        synced_ = covers;
      }
      cv_.notify_all();
    }
    if (ticket <= failed_through_)
      return Status::from_errno(last_error_, "fdatasync of " + path_);
    return Status::ok();
  }
  uint64_t sync_count() const override {
    std::lock_guard lock(mu_);
    return syncs_;
  }

 private:
  FileStore(int fd, uint64_t size, std::string path) : fd_(fd), size_(size), path_(std::move(path)) {}

  int fd_;
  uint64_t size_;
  std::string path_;
  mutable std::mutex mu_;  // guards the group-commit state below
  std::condition_variable cv_;
  uint64_t requested_ = 0;      // tickets handed out
  uint64_t synced_ = 0;         // every ticket <= this is durable
  uint64_t failed_through_ = 0; // tickets <= this saw a failed fdatasync
  int last_error_ = 0;
  bool syncing_ = false;
  uint64_t syncs_ = 0;
};

}  // namespace

const char* store_mode_name(StoreMode mode) {
  switch (mode) {
    case StoreMode::kPmem: return "pmem";
    case StoreMode::kFile: return "file";
    case StoreMode::kMemory: return "memory";
  }
  return "?";
}

bool parse_store_mode(const std::string& text, StoreMode* out) {
  if (text == "pmem") *out = StoreMode::kPmem;
  else if (text == "file") *out = StoreMode::kFile;
  else if (text == "memory") *out = StoreMode::kMemory;
  else return false;
  return true;
}

Result<std::unique_ptr<Store>> open_store(StoreMode mode, const std::string& path,
                                          uint64_t size_bytes, StoreLock lock) {
  switch (mode) {
    case StoreMode::kPmem: return PmemStore::open(path, size_bytes, lock);
    case StoreMode::kFile: return FileStore::open(path, size_bytes, lock);
    case StoreMode::kMemory: return std::unique_ptr<Store>(new MemStore(size_bytes));
  }
  return Status::error(Code::kInvalidArgument, "unknown store mode");
}

Status MemStore::write(uint64_t off, std::span<const std::byte> data) {
  HAFS_RETURN_IF_ERROR(check_range(off, data.size(), bytes_.size()));
  std::memcpy(bytes_.data() + off, data.data(), data.size());
  return Status::ok();
}

Status MemStore::read(uint64_t off, std::span<std::byte> out) const {
  HAFS_RETURN_IF_ERROR(check_range(off, out.size(), bytes_.size()));
  std::memcpy(out.data(), bytes_.data() + off, out.size());
  return Status::ok();
}

Status PowerLossStore::write(uint64_t off, std::span<const std::byte> data) {
  std::lock_guard lock(mu_);
  HAFS_RETURN_IF_ERROR(check_range(off, data.size(), inner_.size()));
  for (uint64_t s = off / kSector * kSector; s < off + data.size(); s += kSector) {
    if (dirty_.contains(s)) continue;
    std::vector<std::byte> old(std::min<uint64_t>(kSector, inner_.size() - s));
    HAFS_RETURN_IF_ERROR(inner_.read(s, old));
    dirty_.emplace(s, std::move(old));
  }
  return inner_.write(off, data);
}

Status PowerLossStore::persist(uint64_t off, uint64_t len) {
  std::lock_guard lock(mu_);
  HAFS_RETURN_IF_ERROR(inner_.persist(off, len));
  dirty_.clear();
  return Status::ok();
}

size_t PowerLossStore::power_cut(uint64_t seed, double revert_probability) {
  std::lock_guard lock(mu_);
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution revert(revert_probability);
  size_t reverted = 0;
  for (auto& [sector, old] : dirty_) {
    if (!revert(rng)) continue;
    HAFS_CHECK(inner_.write(sector, old).is_ok(), "power_cut could not restore a sector");
    ++reverted;
  }
  dirty_.clear();
  return reverted;
}

}  // namespace hafs::nvcache
