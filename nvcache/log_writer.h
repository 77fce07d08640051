// Log: the appending side of the NV log ring. Format: docs/log-format.md.
//
// Appending is reserve -> fill -> persist -> complete:
//   reserve   assigns the next LSN and ring position, in arrival order; blocks while the ring
//             has no room (backpressure: the destager trims and wakes it; never an error).
//   fill      writes header, key and payload at the reservation.
//   persist   makes those bytes durable in the local store.
//   complete  marks the record persisted and indexed by the caller, waits until every
//             earlier record is complete too, so that the complete LSN never has holes, and
//             until the ring's complete mark covers it: a record is acknowledged only when
//             recovery is sure to find it, or to report it damaged.
// A mirror (interconnect) ships the reserved byte range between fill and complete.
//
// A failed fill or persist makes the log fail: every later append gets the same error, because a
// hole in the ring would hide all records after it from recovery. Losing the NV store is a node
// failure; the partner takes over.
//
// Thread safety: all methods may be called concurrently. Lock order: header_mu_ before mu_.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "base/fault.h"
#include "base/logger.h"
#include "nvcache/log_format.h"
#include "nvcache/log_reader.h"
#include "nvcache/store.h"

namespace hafs::nvcache {

struct AppendSpec {
  uint32_t volume_id = 0;
  uint64_t epoch = 0;
  std::span<const std::byte> key;
  uint64_t file_offset = 0;
  std::span<const std::byte> payload;
  RecordType type = RecordType::kWrite;  // kWrite, kMeta, or kFence (no payload)
};

// Where a reserved record sits. A reservation that would cross the end of the data area comes
// with a PAD record before it (pad_lsn != 0), filled and persisted with it.
struct Reservation {
  uint64_t lsn = 0;
  uint64_t pos = 0;        // logical position of the record (offset in data area = pos % data)
  uint64_t span = 0;       // bytes from pos to the next record
  uint64_t pad_lsn = 0;    // 0 when there is no PAD
  uint64_t pad_pos = 0;
  uint64_t pad_span = 0;
  uint64_t first_pos() const { return pad_lsn ? pad_pos : pos; }
  uint64_t end_pos() const { return pos + span; }
};

// The point the ring may be trimmed to: the record at `lsn` sits at `pos`.
struct TrimPoint {
  uint64_t lsn = 1;
  uint64_t pos = 0;
};

struct LogOptions {
  Logger logger;
  FaultRegistry* faults = nullptr;  // optional
};

// Writes `h` into its header slot (header_seq % 2) and persists it. Used by the Log and by a
// mirror receiver, which keeps the header of its copy of the partner's ring.
Status write_ring_header(Store& store, const RingHeader& h);

class Log {
 public:
  // Writes an empty ring over the whole store: both header copies, trim at LSN 1, position 0.
  static Status format(Store& store, uint32_t node_id, uint64_t ring_id, uint32_t flags = 0);

  // Opens a ring whose valid records were found by a scan (see recover_ring), for appending
  // after them. Starts a new writer session and persists the header.
  static Result<std::unique_ptr<Log>> open(Store& store, const RecoveredRing& recovered,
                                           LogOptions options);

  Result<Reservation> reserve(uint16_t key_len, uint32_t payload_len);
  Status fill(const Reservation& r, const AppendSpec& spec);
  Status persist(const Reservation& r);
  Status complete(const Reservation& r);
  // Writes a DAMAGED marker over the header of the record `lsn` at `pos`, which was found damaged
  // after its append (log-format.md): recovery then reports damage there, never a torn tail.
  // The record must be complete (below the complete point) and not trimmed.
  Status mark_damaged(uint64_t pos, uint64_t lsn);
  // Voids (RecordType::kVoid, in place, persisted) every WRITE and FENCE record whose header
  // starts in [from, to) and that `pick(volume_id, epoch)` selects; `from` must be a record
  // boundary and the records up to `to` filled and not trimmed. Returns where the walk stopped:
  // `to`, or the start of a record whose header reaches past it (walk on from there later).
  Result<uint64_t> void_records(uint64_t from, uint64_t to,
                                const std::function<bool(uint32_t volume_id, uint64_t epoch)>& pick,
                                uint64_t* voided = nullptr);
  // Marks the log failed (an append could not be filled or persisted) and wakes every waiter.
  void fail(const Status& why);
  // reserve + fill + persist + complete, for callers with nothing to do in between.
  Result<Reservation> append(const AppendSpec& spec);

  // Frees the ring up to `to` (which must not pass complete_point()); persists the header first.
  Status trim(TrimPoint to);
  // Wakes every waiter with kAborted; later appends fail.
  void shutdown();

  // The first record not yet complete: everything before it is persisted and indexed.
  TrimPoint complete_point() const;
  TrimPoint trim_point() const;
  uint64_t data_bytes() const { return data_bytes_; }
  uint64_t used_bytes() const;   // between trim and head
  uint64_t ring_id() const { return ring_id_; }
  uint32_t session() const { return session_; }
  uint64_t space_waits() const;  // how many reservations had to wait for room
  Store& store() { return store_; }

  // While `why` is an error, a reservation that finds no room fails with it at once instead of
  // waiting (waiting ones are woken and fail too): the destager cannot make room (the storage
  // medium is full). Status::ok() restores the wait (backpressure).
  void set_full_refusal(const Status& why);
  // Called when an appender starts waiting for room; the destager registers itself here.
  void set_space_waiter_hook(std::function<void()> hook);
  // Called (outside the log's locks) whenever the filled point advances: every record before
  // it has its bytes in the ring. The mirror ships up to there.
  void set_filled_hook(std::function<void(TrimPoint)> hook);
  TrimPoint filled_point() const;
  // The ring header as last written (trim point, session, ...).
  RingHeader header() const;

 private:
  Log(Store& store, const RecoveredRing& r, LogOptions options);
  Status write_header_locked(const RingHeader& h);  // requires header_mu_
  Status write_pad(uint64_t lsn, uint64_t pos, uint64_t span);
  Status write_complete_mark(TrimPoint to, uint64_t copy);  // persisted; copy % 2 picks the slot

  Store& store_;
  const LogOptions options_;
  const uint64_t data_bytes_;
  const uint64_t ring_id_;
  const uint32_t node_id_;
  const uint32_t flags_;
  uint32_t session_ = 0;
  uint64_t session_first_lsn_ = 0;  // the first LSN this session appends

  mutable std::mutex header_mu_;  // serializes header writes; taken before mu_
  RingHeader header_;            // GUARDED_BY(header_mu_): what is on the store

  mutable std::mutex mu_;
  std::condition_variable space_cv_;     // room in the ring, or reservation turn
  std::condition_variable complete_cv_;  // complete point advanced
  uint64_t next_lsn_;            // GUARDED_BY(mu_)
  uint64_t head_pos_;            // GUARDED_BY(mu_)
  TrimPoint trim_;               // GUARDED_BY(mu_)
  TrimPoint complete_;           // GUARDED_BY(mu_)
  TrimPoint marked_;             // GUARDED_BY(mu_): what the persisted complete mark says
  bool marking_ = false;         // GUARDED_BY(mu_): a completer is writing the mark
  uint64_t mark_writes_ = 0;     // GUARDED_BY(mu_): picks the copy of the next mark write
  std::map<uint64_t, uint64_t> done_;  // GUARDED_BY(mu_): completed LSN -> its end pos, above complete_
  TrimPoint filled_;             // GUARDED_BY(mu_): every record before it is filled
  std::map<uint64_t, uint64_t> filled_above_;  // GUARDED_BY(mu_): like done_, for filled_
  std::function<void(TrimPoint)> filled_hook_;  // GUARDED_BY(mu_)
  uint64_t tickets_ = 0;         // GUARDED_BY(mu_): reservations handed out in arrival order
  uint64_t serving_ = 0;         // GUARDED_BY(mu_)
  uint64_t space_waits_ = 0;     // GUARDED_BY(mu_)
  Status failed_;                // GUARDED_BY(mu_): sticky failure
  Status full_refusal_;          // GUARDED_BY(mu_): set_full_refusal
  bool shutdown_ = false;        // GUARDED_BY(mu_)
  std::function<void()> space_waiter_hook_;  // GUARDED_BY(mu_)
};

}  // namespace hafs::nvcache
