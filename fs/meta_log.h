// MetaLog: one volume's logged metadata (docs/design.md §9a). With fs.sync_metadata = false a
// metadata operation is executed on the medium without a sync and logged as a META record; this
// class holds what that needs on the volume:
//
//  - The inode pool, <volume root>/.hafs-pool: files and directories created and synced ahead
//    of need. A logged create renames a pool inode into place, so the inode number (and NFS
//    handle) the client receives is one that no crash can change: a replay renames the very
//    same pool inode. (A plain create on the medium would get a new number when it is redone.)
//  - The applied stamp, xattr trusted.hafs.applied of the pool directory: (ring id, LSN) of the
//    last META record executed on the volume, written right after each operation, under the
//    volume's lock. The medium's metadata becomes durable in the order it was made (ext4 and
//    xfs journal it), so after any crash at most the one record after the stamp can be on the
//    medium already; its redo checks tell exactly whether it is.
//  - redo(): a META record replayed after a restart or a takeover.
//
// Thread safety: callers hold mutex() across an operation, its append and its stamp (so that
// LSN order is operation order per volume); redo() and reset() take it themselves. With
// start_refiller(), a thread of its own refills the pool ahead of need, outside mutex() but for
// the hand-over of its batch.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status.h"
#include "fs/meta_op.h"
#include "nvcache/destager.h"

namespace hafs::fs {

class Volume;

class MetaLog {
 public:
  static constexpr const char* kPoolDir = ".hafs-pool";
  static constexpr const char* kStampXattr = "trusted.hafs.applied";
  static constexpr size_t kRefillBatch = 256;  // pool inodes created per sync, by default
  static constexpr mode_t kPoolFileMode = 0644;  // what most creates ask for: no chmod then
  static constexpr mode_t kPoolDirMode = 0755;

  explicit MetaLog(const Volume& volume);
  ~MetaLog();
  MetaLog(const MetaLog&) = delete;
  MetaLog& operator=(const MetaLog&) = delete;

  std::mutex& mutex() { return mu_; }

  struct PoolEntry {
    std::string name;  // in the pool directory
    std::string key;   // its handle key: the object of the create
  };
  // A durable pool inode of that type. When none is left it refills the pool (creates a batch,
  // then syncfs), or with a refiller running waits for the refiller's batch (mutex() is released
  // meanwhile: call it before the operation changes anything).
  Result<PoolEntry> take(bool directory);      // requires mutex()
  void put_back(PoolEntry entry, bool directory);  // requires mutex(): it was not used
  // Executes `op` on the medium as a live operation does (create and mkdir: rename from the
  // pool, then mode, owner and times; the others are executed by their callers). `parent_fd`:
  // the parent directory (`op.parent`) when the caller has it open; else opened by its key.
  Status execute_create(const MetaOp& op, int parent_fd = -1);  // requires mutex()
  // Sets the attributes `op.flags` names on `op.object` (absolute values: idempotent).
  Status set_attrs(const MetaOp& op);
  // Records that the record (ring, LSN) is executed on the volume.
  Status stamp(uint64_t ring_id, uint64_t lsn);  // requires mutex()
  // Redoes a replayed META record unless the stamp says the medium holds it; then stamps it.
  Status redo(const nvcache::MetaRecord& record);
  // Forgets what it knew of the pool: call before serving the volume (again). Another node may
  // have used the pool meanwhile, or a replay may have.
  void reset();
  uint64_t refills() const { return refills_.load(std::memory_order_relaxed); }
  struct PoolState {
    size_t files = 0, directories = 0;  // pool inodes ready to be taken
    uint64_t refills = 0;
    bool refilling = false;  // the refiller makes or is asked for a batch
  };
  PoolState pool_state() const;
  // A stamp could not be written: the volume's operations are synced instead from then on.
  void set_failed() { failed_.store(true, std::memory_order_relaxed); }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void set_refill_batch(size_t n) { refill_batch_ = n; }  // before use (tests: smaller pools)
  // Starts (once) the thread that refills the pool to two batches of each type whenever fewer
  // than one is left, and asks it to fill the pool now: a create then waits neither for the medium's inode allocator nor for
  // the batch's syncfs (the first batch after a start cost ~90 ms a create's wait, measured).
  void start_refiller();

 private:
  Result<int> pool_fd_locked();
  Status scan_locked();
  Status refill_locked(bool directory);
  // Creates `count` pool entries named from sequence number `first`, then syncs the medium.
  Result<std::vector<std::string>> make_batch(int pool_fd, bool directory, uint64_t first, size_t count);
  void refiller_loop();
  std::optional<std::pair<uint64_t, uint64_t>> read_stamp_locked();
  Status redo_locked(const MetaOp& op);
  // Sets the attributes `op.flags` names on `fd` (of stat `st`), skipping values it has already.
  // `o_path`: the descriptor is O_PATH (then through /proc where an f* call needs a real one).
  Status apply_attrs(int fd, bool o_path, const struct stat& st, const MetaOp& op);

  const Volume& volume_;
  mutable std::mutex mu_;
  int pool_fd_ = -1;                // GUARDED_BY(mu_)
  bool scanned_ = false;            // GUARDED_BY(mu_)
  std::deque<std::string> free_[2]; // GUARDED_BY(mu_): [0] files, [1] directories
  uint64_t name_base_ = 0;          // random per instance: names never collide across nodes
  uint64_t next_seq_ = 0;           // GUARDED_BY(mu_)
  std::atomic<uint64_t> refills_{0};
  size_t refill_batch_ = kRefillBatch;
  std::atomic<bool> failed_{false};
  // The refiller.
  std::thread refiller_;
  std::condition_variable_any refill_cv_;  // waits on mu_: the refiller's and the takers' wake-ups
  bool refill_wanted_[2] = {false, false};  // GUARDED_BY(mu_)
  bool refilling_ = false;                  // GUARDED_BY(mu_)
  bool stopping_ = false;                   // GUARDED_BY(mu_)
  Status refill_error_;                     // GUARDED_BY(mu_): the refiller's last batch, if it failed
};

}  // namespace hafs::fs
