// Volume: one directory tree on the storage medium, served under /<name> in the mount.
//
// A volume knows its root directory, its id (cluster-wide, 1..255: it is in every NV log record
// and in the high byte of every inode number), its write mode, and its epoch (fencing token).
// It is also where staged data lands: VolumeTarget implements nvcache's DestageTarget by
// reopening files from their persistent handle (open_by_handle_at), so renames never matter.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/logger.h"
#include "base/status.h"
#include "fs/meta_log.h"
#include "nvcache/destager.h"

namespace hafs::fs {

enum class WriteMode {
  kStaged,        // writes are appended to the NV log and destaged later (the point of hafs)
  kWriteThrough,  // writes go to the medium and are synced before the reply (baseline, degraded)
};
const char* write_mode_name(WriteMode mode);
bool parse_write_mode(const std::string& text, WriteMode* out);  // "staged" | "write-through"

// What a staged volume's writes do while the mirror is unavailable (partner down, interconnect
// cut, resync not finished): the volume's `degraded` setting.
enum class DegradedPolicy {
  kLocalLog,      // keep staging: acknowledged after the local NV log persist alone (one copy)
  kWriteThrough,  // go to the medium and sync before the reply (the medium holds every write)
};
const char* degraded_policy_name(DegradedPolicy policy);
bool parse_degraded_policy(const std::string& text, DegradedPolicy* out);  // "local-log" | "write-through"

inline constexpr uint32_t kMaxVolumeId = 255;
inline constexpr int kInodeIdShift = 56;  // inode number = volume id << 56 | medium inode number
inline constexpr uint64_t kMediumInoMask = (uint64_t{1} << kInodeIdShift) - 1;

class Volume {
 public:
  // Opens the volume's root directory; a clear error if it is missing or not a directory.
  static Result<std::unique_ptr<Volume>> open(const std::string& name, uint32_t id,
                                              const std::string& path, WriteMode mode);
  ~Volume();

  const std::string& name() const { return name_; }
  uint32_t id() const { return id_; }
  const std::string& path() const { return path_; }
  WriteMode mode() const { return mode_; }
  int root_fd() const { return root_fd_; }  // O_RDONLY|O_DIRECTORY
  uint64_t epoch() const { return epoch_.load(std::memory_order_acquire); }
  // The node that serves it normally (membership; 0 when unknown).
  uint32_t home_node() const { return home_node_; }
  void set_home_node(uint32_t node) { home_node_ = node; }
  void set_epoch(uint64_t epoch) { epoch_.store(epoch, std::memory_order_release); }
  DegradedPolicy degraded_policy() const { return degraded_policy_; }
  void set_degraded_policy(DegradedPolicy policy) { degraded_policy_ = policy; }  // before serving

  // The inode number hafs shows for the volume's root directory.
  uint64_t root_id() const { return root_id_; }
  // The inode number hafs shows for a medium inode of this volume.
  uint64_t inode_id(uint64_t medium_ino) const {
    return (uint64_t{id_} << kInodeIdShift) | (medium_ino & kMediumInoMask);
  }
  // Whether an inode can be reopened from its number alone (ext4-style 8-byte handles that hold
  // a 32-bit inode number and a generation that may be given as 0). Needed for NFS handles of
  // inodes this daemon has never seen (after eviction, restart or takeover).
  bool can_open_by_inode() const { return handle_type_ == 1 && handle_bytes_ == 8; }
  // Opens (O_PATH) the medium inode with that number; kStale if it no longer exists.
  Result<int> open_by_inode(uint64_t medium_ino) const;
  // Opens a file from its handle key (see handle_key_of) with `flags`.
  Result<int> open_by_key(const std::string& key, int flags) const;
  // The volume's logged metadata: inode pool, applied stamp, redo (docs/design.md §9a).
  MetaLog& meta() { return *meta_; }
  const MetaLog& meta() const { return *meta_; }

 private:
  Volume(std::string name, uint32_t id, std::string path, WriteMode mode, int root_fd)
      : name_(std::move(name)), id_(id), path_(std::move(path)), mode_(mode), root_fd_(root_fd) {}

  std::string name_;
  uint32_t id_;
  std::string path_;
  WriteMode mode_;
  int root_fd_;
  uint64_t root_id_ = 0;
  int handle_type_ = 0;
  unsigned handle_bytes_ = 0;
  std::atomic<uint64_t> epoch_{1};
  uint32_t home_node_ = 0;
  DegradedPolicy degraded_policy_ = DegradedPolicy::kLocalLog;
  std::unique_ptr<MetaLog> meta_;
};

// The persistent handle of an open file as an opaque key: 4 bytes of handle type (LE), then the
// handle bytes. This is the object key of every NV log record.
Result<std::string> handle_key_of(int fd);
// The handle key of `name` in directory `dirfd` (not following a symlink); of `dirfd` itself for "".
Result<std::string> handle_key_at(int dirfd, const char* name);

// Destages into volumes: reopen by handle, pwrite, fsync. Files written but not yet synced are
// kept open between write() and sync() of one destage pass.
//
// Fencing (I2): a batch is refused with kStaleEpoch when its records carry an epoch newer than
// the one this node holds for the volume (they were written by a later owner), or when the
// fence hook says this node may not write the volume at its epoch now (lease lost or expired).
class VolumeTarget : public nvcache::DestageTarget {
 public:
  using Resolver = std::function<Volume*(uint32_t volume_id)>;
  // May this node write `volume` to the medium at its current epoch, now? (membership's lease)
  using Fence = std::function<bool(const Volume& volume)>;
  VolumeTarget(Resolver resolve, Logger logger) : resolve_(std::move(resolve)), logger_(std::move(logger)) {}
  // Set before the destager starts; without one (no membership) every batch may be written.
  void set_fence(Fence fence) { fence_ = std::move(fence); }
  ~VolumeTarget() override;

  Status write(const nvcache::ObjectId& object, uint64_t epoch,
               std::span<const nvcache::DestageExtent> extents) override;
  Status sync(const nvcache::ObjectId& object) override;
  Status apply_meta(const nvcache::MetaRecord& record) override;
  // Skips a volume's records before its last "synced" record (MetaKind::kSynced): the medium
  // holds them, and a redo of one could undo a later synced operation (design.md §9a).
  Status apply_metas(std::span<const nvcache::MetaRecord> records) override;
  Status sync_volume(uint32_t volume_id) override;

 private:
  Resolver resolve_;
  Logger logger_;
  Fence fence_;
  std::mutex mu_;
  std::map<std::pair<uint32_t, std::string>, int> open_;  // GUARDED_BY(mu_): written, not synced
};

}  // namespace hafs::fs
