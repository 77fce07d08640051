#include "fs/volume.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <vector>

#include "fs/meta_op.h"

namespace hafs::fs {

const char* write_mode_name(WriteMode mode) {
  return mode == WriteMode::kStaged ? "staged" : "write-through";
}

bool parse_write_mode(const std::string& text, WriteMode* out) {
  if (text == "staged") *out = WriteMode::kStaged;
  else if (text == "write-through") *out = WriteMode::kWriteThrough;
  else return false;
  return true;
}

const char* degraded_policy_name(DegradedPolicy policy) {
  return policy == DegradedPolicy::kLocalLog ? "local-log" : "write-through";
}

bool parse_degraded_policy(const std::string& text, DegradedPolicy* out) {
  if (text == "local-log") *out = DegradedPolicy::kLocalLog;
  else if (text == "write-through") *out = DegradedPolicy::kWriteThrough;
  else return false;
  return true;
}

namespace {
struct HandleBuf {
  file_handle fh;
  unsigned char bytes[MAX_HANDLE_SZ];
};
}  // namespace

Result<std::string> handle_key_of(int fd) { return handle_key_at(fd, ""); }

Result<std::string> handle_key_at(int dirfd, const char* name) {
  HandleBuf hb{};
  hb.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(dirfd, name, &hb.fh, &mount_id, name[0] == '\0' ? AT_EMPTY_PATH : 0) != 0)
    return Status::from_errno(errno, "name_to_handle_at");
  std::string key(4 + hb.fh.handle_bytes, '\0');
  const uint32_t type = static_cast<uint32_t>(hb.fh.handle_type);
  for (int i = 0; i < 4; ++i) key[i] = static_cast<char>((type >> (8 * i)) & 0xff);
  std::memcpy(key.data() + 4, hb.fh.f_handle, hb.fh.handle_bytes);
  return key;
}

Result<std::unique_ptr<Volume>> Volume::open(const std::string& name, uint32_t id,
                                             const std::string& path, WriteMode mode) {
  if (id == 0 || id > kMaxVolumeId)
    return Status::error(Code::kInvalidArgument, "volume '" + name + "': id must be 1.." +
                                                     std::to_string(kMaxVolumeId));
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Status::from_errno(errno, "volume '" + name + "': cannot open directory " + path);
  auto vol = std::unique_ptr<Volume>(new Volume(name, id, path, mode, fd));
  vol->meta_ = std::make_unique<MetaLog>(*vol);
  struct stat root_st {};
  if (::fstat(fd, &root_st) != 0) return Status::from_errno(errno, "volume '" + name + "': stat of " + path);
  vol->root_id_ = vol->inode_id(root_st.st_ino);
  HandleBuf hb{};
  hb.fh.handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(fd, "", &hb.fh, &mount_id, AT_EMPTY_PATH) != 0)
    return Status::from_errno(errno, "volume '" + name + "': the filesystem under " + path +
                                         " has no persistent file handles (name_to_handle_at)");
  vol->handle_type_ = hb.fh.handle_type;
  vol->handle_bytes_ = hb.fh.handle_bytes;
  return vol;
}

Volume::~Volume() { ::close(root_fd_); }

Result<int> Volume::open_by_inode(uint64_t medium_ino) const {
  if (!can_open_by_inode() || medium_ino > UINT32_MAX)
    return Status::error(Code::kStale, "inode not resolvable from its number on this filesystem");
  HandleBuf hb{};
  hb.fh.handle_type = handle_type_;
  hb.fh.handle_bytes = 8;
  const uint32_t ino32 = static_cast<uint32_t>(medium_ino), gen = 0;  // 0: any generation
  std::memcpy(hb.fh.f_handle, &ino32, 4);
  std::memcpy(hb.fh.f_handle + 4, &gen, 4);
  int fd = ::open_by_handle_at(root_fd_, &hb.fh, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno == ENOENT ? ESTALE : errno, "open_by_handle_at");
  return fd;
}

Result<int> Volume::open_by_key(const std::string& key, int flags) const {
  if (key.size() < 4 || key.size() - 4 > MAX_HANDLE_SZ)
    return Status::error(Code::kInvalidArgument, "malformed handle key");
  HandleBuf hb{};
  uint32_t type = 0;
  for (int i = 0; i < 4; ++i) type |= uint32_t{static_cast<unsigned char>(key[i])} << (8 * i);
  hb.fh.handle_type = static_cast<int>(type);
  hb.fh.handle_bytes = static_cast<unsigned>(key.size() - 4);
  std::memcpy(hb.fh.f_handle, key.data() + 4, key.size() - 4);
  int fd = ::open_by_handle_at(root_fd_, &hb.fh, flags | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno == ENOENT ? ESTALE : errno, "open_by_handle_at");
  return fd;
}

VolumeTarget::~VolumeTarget() {
  for (auto& [k, fd] : open_) ::close(fd);
}

Status VolumeTarget::write(const nvcache::ObjectId& object, uint64_t epoch,
                           std::span<const nvcache::DestageExtent> extents) {
  Volume* vol = resolve_(object.volume_id);
  if (!vol)
    return Status::error(Code::kUnavailable,
                         "no volume with id " + std::to_string(object.volume_id) + " here");
  if (epoch > vol->epoch())
    return Status::error(Code::kStaleEpoch, "volume " + vol->name() + ": records of epoch " +
                                                std::to_string(epoch) + " but this node holds epoch " +
                                                std::to_string(vol->epoch()) + ": not destaged");
  if (fence_ && !fence_(*vol))
    return Status::error(Code::kStaleEpoch, "volume " + vol->name() + ": no valid lease at epoch " +
                                                std::to_string(vol->epoch()) + ": not destaged");
  int fd = -1;
  {
    std::lock_guard lock(mu_);
    auto it = open_.find({object.volume_id, object.key});
    if (it != open_.end()) fd = it->second;
  }
  if (fd < 0) {
    auto opened = vol->open_by_key(object.key, O_WRONLY);
    if (!opened) return opened.status().with_context("destage to volume " + vol->name());
    fd = *opened;
    std::lock_guard lock(mu_);
    open_[{object.volume_id, object.key}] = fd;
  }
  for (const auto& e : extents) {
    size_t done = 0;
    while (done < e.data.size()) {
      ssize_t n = ::pwrite(fd, e.data.data() + done, e.data.size() - done,
                           static_cast<off_t>(e.file_offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return Status::from_errno(n < 0 ? errno : EIO, "destage pwrite to volume " + vol->name());
      done += static_cast<size_t>(n);
    }
  }
  return Status::ok();
}

Status VolumeTarget::apply_meta(const nvcache::MetaRecord& record) {
  Volume* vol = resolve_(record.volume_id);
  if (!vol)
    return Status::error(Code::kUnavailable,
                         "no volume with id " + std::to_string(record.volume_id) + " here");
  if (record.epoch > vol->epoch())
    return Status::error(Code::kStaleEpoch, "volume " + vol->name() + ": a metadata record of epoch " +
                                                std::to_string(record.epoch) + " but this node holds epoch " +
                                                std::to_string(vol->epoch()) + ": not redone");
  if (fence_ && !fence_(*vol))
    return Status::error(Code::kStaleEpoch, "volume " + vol->name() + ": no valid lease at epoch " +
                                                std::to_string(vol->epoch()) + ": metadata not redone");
  return vol->meta().redo(record);
}

Status VolumeTarget::apply_metas(std::span<const nvcache::MetaRecord> records) {
  std::map<uint32_t, uint64_t> synced_below;  // volume -> LSN of its last kSynced record
  for (const auto& r : records)
    if (auto op = decode_meta_op(r.payload); op && op->kind == MetaKind::kSynced) synced_below[r.volume_id] = r.lsn;
  std::vector<nvcache::MetaRecord> todo;
  for (const auto& r : records)
    if (auto it = synced_below.find(r.volume_id); it == synced_below.end() || r.lsn >= it->second) todo.push_back(r);
  return DestageTarget::apply_metas(todo);
}

Status VolumeTarget::sync_volume(uint32_t volume_id) {
  Volume* vol = resolve_(volume_id);
  // Files written without their own sync (a pass that syncs volumes) were kept open: this sync
  // covers them, and they are closed after it.
  std::vector<int> written;
  {
    std::lock_guard lock(mu_);
    for (auto it = open_.begin(); it != open_.end();) {
      if (it->first.first != volume_id) {
        ++it;
        continue;
      }
      written.push_back(it->second);
      it = open_.erase(it);
    }
  }
  Status s;
  if (vol && ::syncfs(vol->root_fd()) != 0) s = Status::from_errno(errno, "syncfs of volume " + vol->name());
  for (int fd : written) ::close(fd);
  return s;
}

Status VolumeTarget::sync(const nvcache::ObjectId& object) {
  int fd = -1;
  {
    std::lock_guard lock(mu_);
    auto it = open_.find({object.volume_id, object.key});
    if (it == open_.end()) return Status::ok();
    fd = it->second;
    open_.erase(it);
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno(err, "destage fdatasync");
  return Status::ok();
}

}  // namespace hafs::fs
