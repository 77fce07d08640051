// NvCache: the NV log as the rest of hafs uses it. It owns the ring writer, the index of staged
// extents and the destager thread, and recovers the ring when it opens.
//
//   write()     stages bytes: appended to the ring, persisted, indexed; returns when durable.
//   snapshot()  the staged bytes over a range, to lay over bytes read from the medium.
//   flush_*()   destages now (before a metadata operation, on fsync of a write-through path,
//               on shutdown) and returns the destage error if there is one.
// The destager runs in its own thread: it destages when data has waited destage_interval_ms,
// at once under pressure (ring or index half full, or a writer waiting for room), and retries
// failures (EIO, ENOSPC) with backoff while the records stay staged.
//
// Thread safety: every method may be called from any thread. Locks, in order:
// destage_mu_ (one destage at a time) -> index_mu_ -> the Log's locks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <map>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/fault.h"
#include "base/histogram.h"
#include "base/logger.h"
#include "base/status.h"
#include "nvcache/destager.h"
#include "nvcache/extent_index.h"
#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "nvcache/replicator.h"
#include "nvcache/store.h"

namespace hafs::nvcache {

struct NvCacheOptions {
  Logger logger;
  FaultRegistry* faults = nullptr;
  uint32_t max_record_payload = 1u << 20;     // a larger write becomes several records
  size_t max_extents = 1u << 20;              // index bound; writers wait at it
  uint64_t destage_batch_bytes = 64u << 20;   // bytes one destage pass writes at most
  uint32_t destage_interval_ms = 100;         // how long staged data may wait when idle
  uint32_t retry_backoff_max_ms = 5000;       // destage retry backoff cap after EIO/ENOSPC
  // Sync each volume written by a destage pass of many files once (DestageTarget::sync_volume:
  // syncfs) instead of each file; and let flush_object(object, true) leave even that to the next
  // pass. Set with logged metadata, whose records need the volume synced anyway (design.md §9a).
  bool sync_volumes = false;
  // Called once, from a reader or the destager, when a staged record turned out damaged while
  // running (a byte went bad after its append): its bytes are neither served nor destaged. The
  // owner stops the node; the partner's mirror holds the good copy (docs/durability.md).
  std::function<void(const Status&)> on_damage;
};

struct RecoveryReport {
  RecoveredRing ring;
  uint64_t records_indexed = 0;
};

struct NvCacheStats {
  uint64_t data_bytes = 0;        // ring data area
  uint64_t used_bytes = 0;        // ring bytes between trim and head
  uint64_t staged_bytes = 0;      // live staged bytes in the index
  uint64_t extents = 0;
  uint64_t objects = 0;
  uint64_t complete_lsn = 0;      // highest LSN with every record up to it durable
  uint64_t trim_lsn = 0;
  uint64_t records_appended = 0;
  uint64_t bytes_appended = 0;
  uint64_t space_waits = 0;       // reservations that waited for room (backpressure)
  uint64_t destage_passes = 0;
  uint64_t destaged_bytes = 0;
  uint64_t destage_errors = 0;
  uint64_t records_voided = 0;    // superseded records voided in the ring (NvCache::supersede)
  uint64_t meta_records = 0;      // META records appended (metadata operations logged)
  uint64_t meta_unsynced = 0;     // META records whose operation the medium may not hold durably yet
  uint64_t meta_syncs = 0;        // volume syncs that made logged metadata durable
  // The last destage failed with ENOSPC: writes that find the ring full fail with ENOSPC until a
  // destage succeeds again (acknowledged writes stay staged).
  bool medium_full = false;
  std::string last_destage_error; // empty when the last pass succeeded
};

// Staged bytes copied out of the ring for one range (see NvCache::snapshot).
struct StagedPiece {
  uint64_t file_offset;
  std::vector<std::byte> data;
};
using StagedData = std::vector<StagedPiece>;
// Lays `staged` over `buf`, which holds the range starting at `offset` as read from the medium.
void apply_staged(const StagedData& staged, uint64_t offset, std::span<std::byte> buf);

class NvCache {
 public:
  // Opens the ring in `store`, which the caller keeps alive and which must hold a formatted ring
  // (Log::format). Every valid record is recovered into the index; call flush_all() to destage
  // them before serving, then start_destager().
  static Result<std::unique_ptr<NvCache>> open(Store& store, DestageTarget& target,
                                               NvCacheOptions options,
                                               RecoveryReport* report = nullptr);
  ~NvCache();

  void start_destager();
  // Stops the destager thread and wakes every waiting writer with kAborted. Idempotent.
  void stop();

  // Returns the LSN of the last record once everything is durable in the log and indexed.
  Result<uint64_t> write(const ObjectId& object, uint64_t epoch, uint64_t offset,
                         std::span<const std::byte> data);

  // Copies the staged bytes of [offset, offset + length). Take it BEFORE reading the medium:
  // a destage that completes in between then only makes the medium newer, never the overlay
  // missing (see docs/design.md, "read path").
  // `staged_end`, when given, receives the end of the object's last staged byte, read under the
  // same lock as the pieces.
  Result<StagedData> snapshot(const ObjectId& object, uint64_t offset, uint64_t length,
                              std::optional<uint64_t>* staged_end = nullptr) const;
  std::optional<uint64_t> staged_end(const ObjectId& object) const;
  bool has_staged(const ObjectId& object) const;

  // `defer_sync` (with sync_volumes): the object's staged data is written to the medium now, and
  // synced by the destager's next pass; its records stay in the ring (pinned) until then.
  Status flush_object(const ObjectId& object, bool defer_sync = false);
  // Destages the object, then appends a FENCE record so that no replay (recovery, or a partner's
  // takeover) re-applies its older records after the metadata operation that follows (a
  // truncate). Returns once the FENCE is durable.
  Status flush_and_fence(const ObjectId& object, uint64_t epoch);
  Status flush_all();
  // Forgets a volume's staged extents of records below `below_lsn` without destaging them
  // (records stay in the ring until trimmed past): the records another node applied after a
  // takeover. Extents of records at or above it stay staged (and, while the volume is paused,
  // undestaged). Returns how many extents stayed. Never waits for a destage pass; the trim
  // past the dropped records follows at the destager's next pass.
  uint64_t discard_volume(uint32_t volume_id, uint64_t below_lsn = UINT64_MAX);
  // How many extents of the volume are staged.
  uint64_t staged_extents(uint32_t volume_id) const;
  // A paused volume's records are not destaged (they stay staged and hold the trim back) until
  // it is resumed: membership pauses a volume this node does not own, or was fenced from.
  void pause_volume(uint32_t volume_id);
  void resume_volume(uint32_t volume_id);

  // The partner holds `volume_id` at `epoch` (membership, each tick): this node's records of it
  // at older epochs are superseded. They are never acknowledged (a write whose record is
  // superseded fails with kStaleEpoch, even once the mirror holds its bytes), and the destager
  // voids them in the ring (RecordType::kVoid) so that no resync ships them to the partner,
  // whose mirror refuses them (MirrorReceiver::set_held_epochs). Never waits for a destage.
  void supersede(uint32_t volume_id, uint64_t epoch);
  // This node takes `volume_id` (back) for a run that starts at `run_epoch`: its records of the
  // volume at older epochs are of an earlier run the partner took over and replayed, and are
  // never destaged (membership.md, rule 9). Drops them from the index at once and has the
  // destager void them in the ring (as supersede does), so that a restart does not bring them
  // back. Returns how many staged extents were dropped.
  uint64_t drop_earlier_run(uint32_t volume_id, uint64_t run_epoch);

  // ---- metadata records (docs/design.md §9) ----
  // A metadata operation the caller has just executed on the medium, without a sync, becomes a
  // META record: append_meta appends and persists it here; the caller stamps the volume with
  // its LSN (in the same order as its operations: under its own lock), then finish_meta waits
  // for the partner's mirror, outside that lock. The operation may be acknowledged when
  // finish_meta returns OK. The record stays (holds the trim) until a destage pass has synced
  // the volume on the medium (DestageTarget::sync_volume).
  struct MetaTicket {
    Reservation reservation;
    uint32_t volume_id = 0;
    uint64_t epoch = 0;
  };
  Result<MetaTicket> append_meta(uint32_t volume_id, uint64_t epoch, std::span<const std::byte> payload);
  Status finish_meta(const MetaTicket& ticket);
  uint64_t ring_id() const { return log_->ring_id(); }
  // META records not yet made durable on the medium (executed, or recovered and not redone).
  uint64_t unsynced_meta() const;

  NvCacheStats stats() const;
  // Latency of write() from entry to its return, for acknowledged writes (errors are not
  // recorded): reserve, fill, persist, index, and the wait for the partner's mirror.
  const LatencyHistogram& write_ack_latency() const { return write_ack_latency_; }
  // Latency of each destage pass that wrote something: the write and sync of one batch of
  // objects (up to destage_batch_bytes), successful passes only (failures count in
  // NvCacheStats::destage_errors).
  const LatencyHistogram& destage_latency() const { return destage_latency_; }
  Log& log() { return *log_; }

  // Mirrors every record from now on: a write is acknowledged only once `replicator` says the
  // partner holds it (or that it goes on without the partner). Set before serving; null to stop.
  void set_replicator(Replicator* replicator);

 private:
  NvCache(Store& store, DestageTarget& target, NvCacheOptions options);
  // One destage of up to destage_batch_bytes (or of `only` when given), then trim. Requires
  // destage_mu_. Returns how many objects it destaged.
  Result<size_t> destage_pass(const std::optional<ObjectId>& only, uint64_t upto_lsn = UINT64_MAX,
                              bool defer_sync = false);
  Status trim_locked();  // requires destage_mu_
  // Marks the record damaged in the ring (Log::mark_damaged) and tells options_.on_damage, once.
  // Must not block: readers may hold index_mu_.
  void report_damage(uint64_t pos, uint64_t lsn, const Status& why) const;
  void destager_main();
  bool superseded(uint32_t volume_id, uint64_t epoch) const;
  // Voids the superseded records between the last walk and the filled point. Requires destage_mu_.
  void void_superseded_locked();
  bool under_pressure() const;
  void wake_destager();

  Store& store_;
  DestageTarget& target_;
  const NvCacheOptions options_;
  std::unique_ptr<Log> log_;
  std::atomic<Replicator*> replicator_{nullptr};
  RingBytes ring_bytes_;

  std::mutex destage_mu_;               // one destage at a time (thread, flushes)
  mutable std::shared_mutex index_mu_;
  ExtentIndex index_;                   // GUARDED_BY(index_mu_)
  // GUARDED_BY(index_mu_): for each write between its index insert and its complete, the oldest
  // staged (LSN, record position) at the insert. Trims stay at or before the lowest: a record
  // superseded by a write that is not complete yet is still the only durable copy of its data.
  std::multiset<std::pair<uint64_t, uint64_t>> trim_pins_;
  std::condition_variable_any index_room_cv_;  // extent count fell below max_extents, or stop()
  bool index_closed_ = false;           // GUARDED_BY(index_mu_): stop() ran; writers stop waiting

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_ = false;                   // GUARDED_BY(wake_mu_)
  bool stopping_ = false;               // GUARDED_BY(wake_mu_)
  std::thread destager_;

  // GUARDED_BY(index_mu_): every META record in the ring that the medium may not hold durably
  // yet, by LSN; and the oldest WRITE record of a flush_object whose sync was deferred. `redone`
  // is false for a META record recovered from the ring (restart) that the destager has not
  // redone on the medium yet: its volume's data waits for it (I4). The trim stays at or before
  // the lowest; a full destage pass syncs the volumes and unpins.
  struct MetaPin {
    uint64_t pos = 0;
    uint32_t volume_id = 0;
    uint64_t epoch = 0;
    bool redone = true;
  };
  std::map<uint64_t, MetaPin> meta_pins_;
  // Redoes the recovered META records of eligible volumes, in LSN order. Requires destage_mu_.
  Status redo_recovered_meta_locked();
  // Syncs the volumes of executed META records and unpins them. Requires destage_mu_.
  Status sync_meta_locked();
  // Forgets the META pins of `volume_id` that `drop` picks (records another node applies).
  void drop_meta_pins(uint32_t volume_id, const std::function<bool(uint64_t lsn, const MetaPin&)>& drop);

  mutable std::mutex superseded_mu_;
  std::map<uint32_t, uint64_t> superseded_;  // GUARDED_BY(superseded_mu_): volume -> epoch
  bool superseded_changed_ = false;          // GUARDED_BY(superseded_mu_): walk again from the trim
  std::atomic<bool> any_superseded_{false};
  uint64_t void_walk_pos_ = 0;               // GUARDED_BY(destage_mu_): the walk went this far

  mutable std::mutex paused_mu_;
  std::set<uint32_t> paused_volumes_;   // GUARDED_BY(paused_mu_)
  bool destage_eligible(uint32_t volume_id) const;

  std::atomic<uint64_t> records_appended_{0};
  std::atomic<uint64_t> bytes_appended_{0};
  std::atomic<uint64_t> destage_passes_{0};
  std::atomic<uint64_t> destaged_bytes_{0};
  std::atomic<uint64_t> destage_errors_{0};
  std::atomic<uint64_t> records_voided_{0};
  std::atomic<uint64_t> meta_records_{0};
  std::atomic<uint64_t> meta_syncs_{0};
  std::atomic<bool> medium_full_{false};
  mutable std::atomic<bool> damage_reported_{false};  // on_damage was called
  LatencyHistogram write_ack_latency_;
  LatencyHistogram destage_latency_;
  mutable std::mutex error_mu_;
  std::string last_destage_error_;      // GUARDED_BY(error_mu_)
};

// Replays a ring that is not ours (the mirror of a dead partner's log) onto the medium: every
// valid record that `select` picks (by volume and epoch) is applied newest-wins and synced.
// Read-only on the ring. Used by takeover, which serves those volumes only after this returns
// OK. A damaged ring (ScanEnd::kDamaged) is refused with kDataLoss unless `accept_damage`, which
// applies the records before the damage (an operator accepted the loss of the rest).
struct ReplayReport {
  RecoveredRing ring;  // ring.next_lsn: every record below it was read (and applied if picked)
  uint64_t records_applied = 0;
  uint64_t bytes_applied = 0;
  uint64_t meta_records_applied = 0;  // META records redone (or found already on the medium)
};
// `before_apply` (may be null) judges the scanned ring before anything is written: an error
// stops the replay with nothing applied. (A replay that stopped part-way would have written a
// prefix of the records over newer data the ring's owner had destaged and trimmed since.)
Result<ReplayReport> replay_ring(const Store& ring, DestageTarget& target,
                                 const std::function<bool(uint32_t volume_id, uint64_t epoch)>& select,
                                 bool accept_damage, FaultRegistry* faults, const Logger& logger,
                                 const std::function<Status(const RecoveredRing&)>& before_apply = nullptr);

}  // namespace hafs::nvcache
