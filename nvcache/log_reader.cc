#include "nvcache/log_reader.h"

#include <algorithm>
#include <array>

#include "base/crc32c.h"
#include "base/endian.h"

namespace hafs::nvcache {

const char* scan_end_name(ScanEnd end) {
  switch (end) {
    case ScanEnd::kClean: return "clean end";
    case ScanEnd::kTorn: return "torn record";
    case ScanEnd::kCorrupt: return "corrupt record";
    case ScanEnd::kGap: return "LSN gap";
    case ScanEnd::kDamaged: return "damaged record";
  }
  return "?";
}

Result<RingHeader> read_ring_header(const Store& store, std::string* report) {
  if (store.size() < kMinRingBytes)
    return Status::error(Code::kCorruption, "store of " + std::to_string(store.size()) +
                                                " bytes is smaller than the smallest ring (" +
                                                std::to_string(kMinRingBytes) + ")");
  std::optional<RingHeader> best;
  std::string errors;
  for (int copy = 0; copy < 2; ++copy) {
    std::array<std::byte, kEncodedRingHeader> buf{};
    HAFS_RETURN_IF_ERROR(store.read(copy * kHeaderSlotBytes, buf));
    auto h = decode_ring_header(buf, store.size());
    if (!h) {
      errors += std::string(errors.empty() ? "" : "; ") + "header copy " + "AB"[copy] + ": " +
                h.status().message();
      continue;
    }
    if (!best || h->header_seq > best->header_seq) best = *h;
  }
  if (!best) return Status::error(Code::kCorruption, "no valid ring header (" + errors + ")");
  if (report) *report = errors;
  return *best;
}

LogReader::LogReader(const Store& store, const RingHeader& header)
    : store_(store),
      header_(header),
      next_lsn_(header.trim_lsn),
      next_pos_(header.trim_pos),
      // The record at the trim point was written by this session or a later one: anything
      // older there is stale bytes from before a crash.
      last_session_(header.trim_session) {}

Status LogReader::read_at(uint64_t pos, std::span<std::byte> out) {
  return store_.read(kDataOffset + pos % header_.data_bytes, out);
}

bool LogReader::stop(ScanEnd end, std::string message) {
  done_ = true;
  end_ = end;
  end_message_ = std::move(message);
  return false;
}

Result<bool> LogReader::next(RecordView* out) {
  while (!done_) {
    const uint64_t offset = next_pos_ % header_.data_bytes;
    const uint64_t room = header_.data_bytes - offset;  // bytes until the end of the data area
    const std::string where = "at position " + std::to_string(next_pos_) + " (LSN " +
                              std::to_string(next_lsn_) + " expected)";
    std::array<std::byte, kRecordHeaderBytes> fixed{};
    HAFS_RETURN_IF_ERROR(read_at(next_pos_, fixed));
    auto decoded = decode_record_header(fixed);
    if (!decoded) {
      // No magic is the normal end of a log; anything else with a magic is damage.
      if (decoded.status().message() == "no record magic") return stop(ScanEnd::kClean, "end " + where);
      return stop(ScanEnd::kCorrupt, decoded.status().message() + " " + where);
    }
    const RecordHeader& h = *decoded;
    // A record from an earlier lap, or an unacknowledged one from before the last restart
    // (older session), is where the valid log ends.
    if (h.lsn < next_lsn_) return stop(ScanEnd::kClean, "end " + where);
    // The header CRC (header + key) first: a torn header may carry any length.
    const uint64_t head_len = kRecordHeaderBytes + h.key_len;
    if (head_len > room)
      return stop(ScanEnd::kCorrupt, "record key crosses the end of the ring " + where);
    buf_.resize(head_len);
    HAFS_RETURN_IF_ERROR(read_at(next_pos_, buf_));
    if (!verify_record_header_crc(buf_)) {
      if (h.lsn == next_lsn_) return stop(ScanEnd::kTorn, "header CRC mismatch " + where);
      return stop(ScanEnd::kClean, "end (unverifiable bytes) " + where);
    }
    const uint64_t span = record_span(h);
    if (span > room || span % kRecordAlign != 0 || (h.type == RecordType::kPad && span != room))
      return stop(ScanEnd::kCorrupt, "record length " + std::to_string(span) +
                                         " impossible with " + std::to_string(room) +
                                         " bytes left " + where);
    if (h.ring_tag != ring_tag(header_.ring_id))
      return stop(ScanEnd::kClean, "end (record of another ring) " + where);
    // Before the LSN and position checks: a crashed writer can leave persisted, unacknowledged
    // records beyond the valid end, and once the next session has appended records of other
    // sizes one of them can sit exactly where the next record would start, with any LSN. It is
    // stale bytes (a clean end), not a gap or damage.
    // No upper bound from the header's session: when the newest header copy is damaged the
    // reader falls back to the older one, whose session may be older than the records' own.
    if (h.session < last_session_)
      return stop(ScanEnd::kClean, "end (record of session " + std::to_string(h.session) +
                                       " after session " + std::to_string(last_session_) + ") " +
                                       where);
    if (h.lsn != next_lsn_)
      return stop(ScanEnd::kGap, "LSN " + std::to_string(h.lsn) + " found " + where);
    if (h.pos != next_pos_)
      return stop(ScanEnd::kCorrupt, "record says position " + std::to_string(h.pos) + " " + where);
    if (h.type == RecordType::kDamaged)
      return stop(ScanEnd::kDamaged, "the record was found damaged while the node ran (DAMAGED marker) " + where);
    if (carries_payload(h.type)) {
      buf_.resize(payload_offset(h.key_len) + h.payload_len);
      HAFS_RETURN_IF_ERROR(read_at(next_pos_ + head_len, std::span(buf_).subspan(head_len)));
    }
    const std::span<const std::byte> payload(buf_.data() + payload_offset(h.key_len),
                                             carries_payload(h.type) ? h.payload_len : 0);
    if (carries_payload(h.type) && crc32c(payload) != h.payload_crc)
      return stop(ScanEnd::kTorn, "payload CRC mismatch " + where);

    last_session_ = h.session;
    next_lsn_ = h.lsn + 1;
    next_pos_ += span;
    if (h.type == RecordType::kPad || h.type == RecordType::kVoid) continue;
    out->header = h;
    out->key = std::span<const std::byte>(buf_.data() + kRecordHeaderBytes, h.key_len);
    out->payload = payload;
    out->data_pos = h.pos + payload_offset(h.key_len);
    return true;
  }
  return false;
}

}  // namespace hafs::nvcache

namespace hafs::nvcache {

Result<RecoveredRing> scan_ring(const Store& store,
                                const std::function<void(const RecordView&)>& on_record) {
  RecoveredRing out;
  auto header = read_ring_header(store, &out.header_report);
  if (!header) return header.status();
  out.header = *header;
  LogReader reader(store, *header);
  RecordView view;
  for (;;) {
    auto more = reader.next(&view);
    if (!more) return more.status();
    if (!*more) break;
    ++out.records;
    out.payload_bytes += view.payload.size();
    on_record(view);
  }
  out.next_lsn = reader.next_lsn();
  out.next_pos = reader.next_pos();
  out.end = reader.end();
  out.end_message = reader.end_message();
  // Any end, a clean one too: a flipped magic or LSN byte reads as "no record here". A DAMAGED
  // marker is damage however few records follow it (they need not be kMaxRecordsInFlight).
  const bool marked = out.end == ScanEnd::kDamaged;
  auto damage = find_damage(store, out.header, out.next_lsn, out.next_pos, reader.last_session(),
                            marked ? 0 : kMaxRecordsInFlight);
  if (!damage) return damage.status();
  if (marked && !*damage)  // nothing valid after it: the damaged record was the last one
    *damage = RingDamage{out.next_lsn, out.next_pos, out.next_lsn + 1, out.next_pos, out.next_lsn};
  // Damage among the last records, with no valid record after it: the complete mark says the
  // records were complete, so they are not a torn tail (log-format.md §8a).
  if (!*damage) {
    auto mark = read_complete_mark(store, out.header.ring_id);
    if (!mark) return mark.status();
    if (*mark && (*mark)->pos > out.next_pos)
      *damage = RingDamage{out.next_lsn, out.next_pos, (*mark)->lsn, (*mark)->pos,
                           (*mark)->lsn - 1, /*from_complete_mark=*/true};
  }
  if (*damage) {
    out.end = ScanEnd::kDamaged;
    out.end_message = (*damage)->describe() + " (the scan stopped: " + out.end_message + ")";
    out.damage = **damage;
  }
  // The next writer session must be newer than every valid record's, also when the header came
  // from the older copy (the newer one damaged).
  out.header.session = std::max(out.header.session, reader.last_session());
  return out;
}

}  // namespace hafs::nvcache

namespace hafs::nvcache {

Result<std::optional<CompleteMark>> read_complete_mark(const Store& store, uint64_t ring_id) {
  std::optional<CompleteMark> newest;
  for (uint64_t copy = 0; copy < 2; ++copy) {
    std::array<std::byte, kEncodedCompleteMark> b{};
    HAFS_RETURN_IF_ERROR(store.read(copy * kHeaderSlotBytes + kCompleteMarkOffset, b));
    auto m = decode_complete_mark(b);
    if (m && m->ring_id == ring_id && (!newest || m->lsn > newest->lsn)) newest = m;
  }
  return newest;
}

std::string RingDamage::describe() const {
  if (from_complete_mark)
    return "records from LSN " + std::to_string(bad_lsn) + " (position " + std::to_string(bad_pos) +
           ") to LSN " + std::to_string(last_valid_lsn) + " (before position " +
           std::to_string(next_valid_pos) +
           ") were complete (the log's complete mark says so) but do not read back: damaged";
  return "records from LSN " + std::to_string(bad_lsn) + " (position " + std::to_string(bad_pos) +
         ") to LSN " + std::to_string(next_valid_lsn - 1) + " (before position " +
         std::to_string(next_valid_pos) + ") are damaged; valid records follow up to LSN " +
         std::to_string(last_valid_lsn);
}

namespace {
// The record whose header starts at logical position `pos`, if it is a whole valid record of
// this ring with a session of at least `min_session`; nullopt otherwise.
Result<std::optional<RecordHeader>> valid_record_at(const Store& store, const RingHeader& ring,
                                                    uint64_t pos, uint64_t min_lsn,
                                                    uint32_t min_session) {
  const uint64_t offset = pos % ring.data_bytes;
  const uint64_t room = ring.data_bytes - offset;
  std::array<std::byte, kRecordHeaderBytes> fixed{};
  HAFS_RETURN_IF_ERROR(store.read(kDataOffset + offset, fixed));
  auto h = decode_record_header(fixed);
  if (!h || h->type == RecordType::kPad || h->pos != pos || h->lsn < min_lsn ||
      h->ring_tag != ring_tag(ring.ring_id) || h->session < min_session)
    return std::optional<RecordHeader>();
  const uint64_t span = record_span(*h);
  if (span > room) return std::optional<RecordHeader>();
  std::vector<std::byte> bytes(payload_offset(h->key_len) + h->payload_len);
  HAFS_RETURN_IF_ERROR(store.read(kDataOffset + offset, bytes));
  if (!verify_record_header_crc(std::span(bytes).first(kRecordHeaderBytes + h->key_len)))
    return std::optional<RecordHeader>();
  if (carries_payload(h->type) &&
      crc32c(std::span(bytes).subspan(payload_offset(h->key_len))) != h->payload_crc)
    return std::optional<RecordHeader>();
  return std::optional<RecordHeader>(*h);
}
}  // namespace

Result<std::optional<RingDamage>> find_damage(const Store& store, const RingHeader& header,
                                              uint64_t end_lsn, uint64_t end_pos,
                                              uint32_t min_session, uint64_t min_beyond) {
  const uint64_t data = header.data_bytes;
  const uint64_t limit = header.trim_pos + data;  // one lap from the trim point
  std::optional<RingDamage> found;
  bool marked = false;  // a DAMAGED marker follows: damage however few records follow
  std::vector<std::byte> chunk(std::min<uint64_t>(data, 1u << 20));
  uint64_t pos = end_pos;
  while (pos < limit) {
    // Candidates are the 64-byte slots that start with the record magic; read them in chunks
    // that never cross the end of the data area.
    const uint64_t offset = pos % data;
    const uint64_t len = std::min({uint64_t{chunk.size()}, data - offset, limit - pos});
    HAFS_RETURN_IF_ERROR(store.read(kDataOffset + offset, std::span(chunk).first(len)));
    uint64_t next = pos + len;
    for (uint64_t i = 0; i + 4 <= len; i += kRecordAlign) {
      if (get_le<uint32_t>(std::span<const std::byte>(chunk), i) != kRecordMagic) continue;
      auto h = valid_record_at(store, header, pos + i, end_lsn + 1, min_session);
      if (!h) return h.status();
      if (!*h) continue;
      if (!found) found = RingDamage{end_lsn, end_pos, (*h)->lsn, pos + i, (*h)->lsn};
      found->last_valid_lsn = std::max(found->last_valid_lsn, (*h)->lsn);
      marked = marked || (*h)->type == RecordType::kDamaged;
      next = pos + i + record_span(**h);  // go on after this record
      break;
    }
    pos = next;
  }
  if (found && (marked || found->last_valid_lsn >= end_lsn + min_beyond)) return found;
  return std::optional<RingDamage>();
}

}  // namespace hafs::nvcache
