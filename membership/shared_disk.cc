#include "membership/shared_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace hafs::membership {
namespace {

// An aligned bounce buffer: O_DIRECT wants the buffer, offset and length aligned to the
// logical block size; 4096 covers every device we target.
struct AlignedBlock {
  AlignedBlock() {
    void* p = nullptr;
    HAFS_CHECK(::posix_memalign(&p, kRecordBlockBytes, kRecordBlockBytes) == 0, "posix_memalign");
    ptr = static_cast<std::byte*>(p);
  }
  ~AlignedBlock() { std::free(ptr); }
  AlignedBlock(const AlignedBlock&) = delete;
  AlignedBlock& operator=(const AlignedBlock&) = delete;
  std::byte* ptr;
};

}  // namespace

bool valid_record_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Result<std::unique_ptr<DirectoryDisk>> DirectoryDisk::open(const std::string& dir,
                                                           bool allow_direct) {
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Status::from_errno(errno, "membership directory " + dir);
  // Probe O_DIRECT with a scratch file: tmpfs and some FUSE filesystems refuse it (EINVAL).
  const std::string probe = dir + "/.odirect-probe";
  int fd = -1;
  if (allow_direct) fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
  const bool direct = fd >= 0;
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  return std::unique_ptr<DirectoryDisk>(new DirectoryDisk(dir, dir_fd, direct));
}

DirectoryDisk::~DirectoryDisk() {
  for (auto& [name, fd] : fds_) ::close(fd);
  ::close(dir_fd_);
}

Result<int> DirectoryDisk::fd_of(const std::string& name, bool create) {
  if (!valid_record_name(name))
    return Status::error(Code::kInvalidArgument, "bad membership record name '" + name + "'");
  std::lock_guard lock(mu_);
  if (auto it = fds_.find(name); it != fds_.end()) return it->second;
  if (fds_.size() >= kMaxRecords)
    return Status::error(Code::kInvalidArgument, "more than " + std::to_string(kMaxRecords) +
                                                     " membership records");
  const int flags = O_RDWR | O_CLOEXEC | O_DSYNC | (direct_io_ ? O_DIRECT : 0);
  int fd = ::openat(dir_fd_, name.c_str(), flags);
  if (fd < 0 && errno == ENOENT) {
    if (!create) return Status::error(Code::kNotFound, "no membership record " + name);
    fd = ::openat(dir_fd_, name.c_str(), flags | O_CREAT | O_EXCL, 0644);
    if (fd < 0 && errno == EEXIST) fd = ::openat(dir_fd_, name.c_str(), flags);  // the partner won
    if (fd >= 0 && ::fsync(dir_fd_) != 0) {  // the new name must survive a power cut too
      const int e = errno;
      ::close(fd);
      return Status::from_errno(e, "fsync of the membership directory " + dir_);
    }
  }
  if (fd < 0) return Status::from_errno(errno, "open " + dir_ + "/" + name);
  fds_.emplace(name, fd);
  return fd;
}

Status DirectoryDisk::read(const std::string& name, std::span<std::byte, kRecordBlockBytes> out) {
  auto fd = fd_of(name, /*create=*/false);
  if (!fd.is_ok()) return fd.status();
  AlignedBlock buf;
  const ssize_t n = ::pread(*fd, buf.ptr, kRecordBlockBytes, 0);
  if (n < 0) return Status::from_errno(errno, "read " + dir_ + "/" + name);
  if (n == 0) return Status::error(Code::kNotFound, "membership record " + name + " is empty");
  // A short file (created, first write torn) reads as zeros after its end: decoding refuses it.
  std::memset(out.data(), 0, out.size());
  std::memcpy(out.data(), buf.ptr, static_cast<size_t>(n));
  return Status::ok();
}

Status DirectoryDisk::write(const std::string& name,
                            std::span<const std::byte, kRecordBlockBytes> data) {
  auto fd = fd_of(name, /*create=*/true);
  if (!fd.is_ok()) return fd.status();
  AlignedBlock buf;
  std::memcpy(buf.ptr, data.data(), kRecordBlockBytes);
  const ssize_t n = ::pwrite(*fd, buf.ptr, kRecordBlockBytes, 0);
  if (n < 0) return Status::from_errno(errno, "write " + dir_ + "/" + name);
  if (static_cast<size_t>(n) != kRecordBlockBytes)
    return Status::error(Code::kIoError, "short write of membership record " + name, EIO);
  // O_DSYNC already made the write durable; fdatasync covers filesystems that ignore O_DSYNC
  // with O_DIRECT refused. It costs nothing when there is nothing left to flush.
  if (!direct_io_ && ::fdatasync(*fd) != 0)
    return Status::from_errno(errno, "fdatasync " + dir_ + "/" + name);
  return Status::ok();
}

}  // namespace hafs::membership
