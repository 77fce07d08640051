// Destaging: writing staged extents to the storage medium, syncing, and only then letting the
// ring be trimmed. DestageTarget is the seam to the medium (fs/ implements it with the volume
// layer: reopen by handle, pwrite, fsync; tests use an in-memory target).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/fault.h"
#include "base/logger.h"
#include "base/status.h"
#include "nvcache/extent_index.h"
#include "nvcache/store.h"

namespace hafs::nvcache {

// A META record as replay hands it to the medium.
struct MetaRecord {
  uint32_t volume_id = 0;
  uint64_t epoch = 0;
  uint64_t ring_id = 0;
  uint64_t lsn = 0;
  std::span<const std::byte> payload;
};

struct DestageExtent {
  uint64_t file_offset = 0;
  std::span<const std::byte> data;
};

class DestageTarget {
 public:
  virtual ~DestageTarget() = default;
  // Writes the extents (sorted, non-overlapping) of one object. `epoch` is the newest epoch
  // among them: a target that fences refuses a stale one with kStaleEpoch. kStale (or
  // kNotFound) means the object no longer exists: its extents are dropped, not retried.
  virtual Status write(const ObjectId& object, uint64_t epoch,
                       std::span<const DestageExtent> extents) = 0;
  // Makes everything written to the object durable on the medium.
  virtual Status sync(const ObjectId& object) = 0;

  // A META record (a metadata operation logged instead of synced, docs/design.md §9), replayed
  // after a restart or a takeover: redo it on the medium unless the medium already holds it.
  // `ring_id` and `lsn` name the record for the volume's applied stamp. kStale or kNotFound:
  // what it acts on is gone (a later record removed it), nothing to redo.
  virtual Status apply_meta(const MetaRecord& record);
  // The META records of a replay or a recovery, in LSN order: each applied with apply_meta (its
  // kStale and kNotFound are not errors). A target may skip those it knows the medium holds.
  virtual Status apply_metas(std::span<const MetaRecord> records);
  // Makes every metadata operation executed on the volume so far durable (syncfs): the META
  // records of those operations may then be trimmed.
  virtual Status sync_volume(uint32_t volume_id);
};

// What one destage of a set of objects did.
struct DestageResult {
  std::vector<ObjectId> written;   // written and synced: their extents <= max_lsn can go
  std::vector<ObjectId> gone;      // no longer exist: their extents can go
  uint64_t bytes = 0;
  uint64_t extents = 0;
};

// Reads the ring bytes of staged extents. The ring space of an extent stays valid until the
// ring is trimmed past its record, which happens only after the extent has left the index.
// A WRITE or META record read whole and checked (RingBytes::read_record): header, key and payload.
struct CheckedRecord {
  uint64_t pos = UINT64_MAX;  // logical ring position; UINT64_MAX: none read yet
  uint64_t lsn = 0;
  std::vector<std::byte> bytes;  // header, key, key padding, payload
  uint64_t payload_at = 0;       // where the payload starts in `bytes`
};

class RingBytes {
 public:
  RingBytes(const Store& store, uint64_t data_bytes) : store_(&store), data_bytes_(data_bytes) {}
  Status read(uint64_t data_pos, std::span<std::byte> out) const;
  // Reads the WRITE (or META) record at logical position `record_pos` whole into `out` and checks that it
  // is still whole: its header (with the key) and payload CRCs match and it is the record of
  // `lsn`. A byte that turned bad in the NV log after the append (a memory or media error) is
  // found here, before the record's bytes are served to a reader or written to the medium:
  // kDataLoss. A voided record: kStaleEpoch.
  Status read_record(uint64_t record_pos, uint64_t lsn, CheckedRecord* out) const;
  // Copies the bytes of staged extent `e` out of its record, read whole and checked by
  // read_record into `record` (reused when `record` already holds it: extents of one record are
  // often neighbours). The bytes copied are the bytes checked: a byte that turns bad between a
  // check and a second read can never slip through.
  Status read_extent(const StagedExtent& e, std::span<std::byte> out, CheckedRecord* record) const;

 private:
  const Store* store_;
  uint64_t data_bytes_;
};

// Writes every extent with LSN <= max_lsn of each object in `objects` (as listed by `extents`,
// coalescing adjacent ones), then syncs them. Every byte written comes from a record checked
// whole (RingBytes::read_extent); a damaged one is passed to `on_damaged` (if set) and stops the
// pass with kDataLoss before its object is written. Stops at the first error, which leaves every
// record staged (nothing is removed from any index here): the caller retries later.
using ExtentLister = std::function<std::vector<StagedExtent>(const ObjectId&)>;
using DamageHandler = std::function<void(const StagedExtent&, const Status&)>;
// With `sync_each` false the objects are written but not synced: the caller syncs their volumes
// (DestageTarget::sync_volume) before it lets their records go.
Result<DestageResult> destage_objects(const std::vector<ObjectId>& objects, uint64_t max_lsn,
                                      const ExtentLister& extents, const RingBytes& ring,
                                      DestageTarget& target, FaultRegistry* faults,
                                      const Logger& logger, const DamageHandler& on_damaged = {},
                                      bool sync_each = true);

}  // namespace hafs::nvcache
