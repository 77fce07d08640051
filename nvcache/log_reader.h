// LogReader: walks a ring (an NV log or a mirror of one) from its trim point and yields every
// valid record in LSN order; it stops at the first record that is missing, torn or corrupt and
// says where and why. Nothing after that point is ever returned (invariant I5).
//
// A record is valid when: magic and version match, its header CRC (header + key) and payload
// CRC verify, its LSN is the next one expected, its position is where the ring says it should
// be, its session is not older than the record before it, and its length fits the data area. Format: docs/log-format.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "nvcache/log_format.h"
#include "nvcache/store.h"

namespace hafs::nvcache {

// Reads both header copies and returns the newest valid one. `report` (optional) receives a line
// about a damaged copy, which is survivable as long as the other copy is valid.
Result<RingHeader> read_ring_header(const Store& store, std::string* report = nullptr);

// Why a scan ended.
enum class ScanEnd {
  kClean,    // no record where the next one would be (never written, or left from an earlier lap)
  kTorn,     // a record with the expected LSN that fails its header or payload CRC: a torn write
  kCorrupt,  // bytes that claim to be the next record but cannot be (bad length, position, session)
  kGap,      // a valid record whose LSN skips ahead of the expected one
  kDamaged,  // the scan stopped at a bad record, yet valid records of this ring follow it with
             // LSNs at least kMaxRecordsInFlight beyond: the bad one was complete (and may have
             // been acknowledged). Damage inside the log, never a normal end (I5)
};
const char* scan_end_name(ScanEnd end);

struct RecordView {
  RecordHeader header;
  std::span<const std::byte> key;
  std::span<const std::byte> payload;  // valid until the next call to next()
  uint64_t data_pos = 0;               // logical ring position of the payload's first byte
};

class LogReader {
 public:
  LogReader(const Store& store, const RingHeader& header);

  // Fills `out` with the next valid record (WRITE or FENCE) and returns true, or returns false
  // at the end of the valid log (see end(), end_message()). PAD records are consumed silently. An error Status
  // means the store itself could not be read.
  Result<bool> next(RecordView* out);

  ScanEnd end() const { return end_; }
  const std::string& end_message() const { return end_message_; }
  uint64_t next_lsn() const { return next_lsn_; }  // LSN the next appended record must carry
  uint64_t next_pos() const { return next_pos_; }  // logical position where it goes
  uint32_t last_session() const { return last_session_; }

 private:
  Status read_at(uint64_t pos, std::span<std::byte> out);
  bool stop(ScanEnd end, std::string message);

  const Store& store_;
  RingHeader header_;
  uint64_t next_lsn_;
  uint64_t next_pos_;
  uint32_t last_session_ = 0;
  bool done_ = false;
  ScanEnd end_ = ScanEnd::kClean;
  std::string end_message_;
  std::vector<std::byte> buf_;  // header + key + payload of the current record
};

// Where a log is damaged: the scan stopped at `bad_lsn` (expected at `bad_pos`), and valid
// records of the same ring and writer session follow, the first at `next_valid_lsn` /
// `next_valid_pos`, the highest with `last_valid_lsn`; or the ring's complete mark says that
// records up to `last_valid_lsn` (before `next_valid_pos`) were complete.
struct RingDamage {
  uint64_t bad_lsn = 0;
  uint64_t bad_pos = 0;
  uint64_t next_valid_lsn = 0;
  uint64_t next_valid_pos = 0;
  uint64_t last_valid_lsn = 0;
  // No valid record follows the bad one: the ring's complete mark says records up to
  // last_valid_lsn were complete (log-format.md §8a).
  bool from_complete_mark = false;
  std::string describe() const;
};

// Looks past the end of a scan (the record expected with `end_lsn` at `end_pos`) for valid
// records of this ring, of session `min_session` or later, with higher LSNs, over the rest of one
// lap from the trim point. Returns the damage when the highest of them is at least `min_beyond`
// (kMaxRecordsInFlight, the most records that can be torn at once) beyond `end_lsn`, or when one
// of them is a DAMAGED marker (a record found bad while the node ran); nullopt for a torn tail
// or a clean end.
Result<std::optional<RingDamage>> find_damage(const Store& store, const RingHeader& header,
                                              uint64_t end_lsn, uint64_t end_pos,
                                              uint32_t min_session, uint64_t min_beyond);

// The newest valid complete mark of ring `ring_id` in `store` (log-format.md §8a), or nullopt
// when neither copy is a valid mark of that ring (a mirror, a ring older than the mark, or both
// copies bad).
Result<std::optional<CompleteMark>> read_complete_mark(const Store& store, uint64_t ring_id);

// The whole-ring summary that recovery and Log::open use.
struct RecoveredRing {
  RingHeader header;  // the newest valid copy; its session raised to the newest valid record's
  uint64_t next_lsn = 1;
  uint64_t next_pos = 0;
  uint64_t records = 0;
  uint64_t payload_bytes = 0;
  ScanEnd end = ScanEnd::kClean;
  std::string end_message;
  std::string header_report;  // a damaged header copy, if any
  std::optional<RingDamage> damage;  // set when end == kDamaged
};

}  // namespace hafs::nvcache

namespace hafs::nvcache {
// Reads the header and walks every valid record, calling `on_record` for each (its spans are
// valid only during the call). The result says where the valid log ends and why.
Result<RecoveredRing> scan_ring(const Store& store,
                                const std::function<void(const RecordView&)>& on_record);
}  // namespace hafs::nvcache
