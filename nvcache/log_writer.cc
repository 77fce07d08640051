#include "nvcache/log_writer.h"

#include <array>

#include "base/crc32c.h"

namespace hafs::nvcache {
namespace {

Status fault(FaultRegistry* faults, FaultSite site) {
  return faults ? faults->hit(site) : Status::ok();
}

}  // namespace

Status Log::format(Store& store, uint32_t node_id, uint64_t ring_id, uint32_t flags) {
  const uint64_t size = store.size();
  if (size < kMinRingBytes || size > kMaxRingBytes || size % kHeaderSlotBytes != 0)
    return Status::error(Code::kInvalidArgument,
                         "a ring needs a multiple of 4096 bytes between " +
                             std::to_string(kMinRingBytes) + " and " +
                             std::to_string(kMaxRingBytes) + "; the store has " +
                             std::to_string(size));
  RingHeader h;
  h.ring_bytes = size;
  h.data_bytes = size - kDataOffset;
  h.ring_id = ring_id;
  h.node_id = node_id;
  h.flags = flags;
  // Both copies valid from the start; seq 1 (copy B) is the newer one. No complete mark yet
  // (one of an earlier format names another ring_id anyway).
  for (uint64_t seq = 0; seq < 2; ++seq) {
    h.header_seq = seq;
    std::array<std::byte, kEncodedRingHeader> buf{};
    encode_ring_header(h, buf);
    HAFS_RETURN_IF_ERROR(store.write(seq * kHeaderSlotBytes, buf));
    const std::array<std::byte, kEncodedCompleteMark> no_mark{};
    HAFS_RETURN_IF_ERROR(store.write(seq * kHeaderSlotBytes + kCompleteMarkOffset, no_mark));
  }
  return store.persist(0, kDataOffset);
}

Log::Log(Store& store, const RecoveredRing& r, LogOptions options)
    : store_(store),
      options_(std::move(options)),
      data_bytes_(r.header.data_bytes),
      ring_id_(r.header.ring_id),
      node_id_(r.header.node_id),
      flags_(r.header.flags),
      header_(r.header),
      next_lsn_(r.next_lsn),
      head_pos_(r.next_pos),
      trim_{r.header.trim_lsn, r.header.trim_pos},
      complete_{r.next_lsn, r.next_pos},
      marked_{r.next_lsn, r.next_pos},
      filled_{r.next_lsn, r.next_pos} {}

Result<std::unique_ptr<Log>> Log::open(Store& store, const RecoveredRing& recovered,
                                       LogOptions options) {
  auto log = std::unique_ptr<Log>(new Log(store, recovered, std::move(options)));
  // A new session: records an earlier session left beyond the valid end (persisted but never
  // acknowledged before a crash) can never be mistaken for records of this one.
  std::lock_guard lock(log->header_mu_);
  RingHeader h = log->header_;
  h.session = std::max(h.session, recovered.header.session) + 1;
  h.header_seq++;
  HAFS_RETURN_IF_ERROR(log->write_header_locked(h));
  log->session_ = h.session;
  log->session_first_lsn_ = recovered.next_lsn;
  return log;
}

Status write_ring_header(Store& store, const RingHeader& h) {
  std::array<std::byte, kEncodedRingHeader> buf{};
  encode_ring_header(h, buf);
  // Alternate copies: a torn header write damages only the copy being written, and the other
  // still holds the previous (valid, older) header.
  const uint64_t off = (h.header_seq % 2) * kHeaderSlotBytes;
  HAFS_RETURN_IF_ERROR(store.write(off, buf));
  return store.persist(off, buf.size());
}

Status Log::write_complete_mark(TrimPoint to, uint64_t copy) {
  std::array<std::byte, kEncodedCompleteMark> buf{};
  encode_complete_mark(CompleteMark{ring_id_, to.lsn, to.pos}, buf);
  const uint64_t off = (copy % 2) * kHeaderSlotBytes + kCompleteMarkOffset;
  HAFS_RETURN_IF_ERROR(store_.write(off, buf));
  return store_.persist(off, buf.size());
}

Status Log::write_header_locked(const RingHeader& h) {
  HAFS_RETURN_IF_ERROR(fault(options_.faults, FaultSite::kLogHeaderWrite));
  HAFS_RETURN_IF_ERROR(write_ring_header(store_, h));
  header_ = h;
  return Status::ok();
}

Result<Reservation> Log::reserve(uint16_t key_len, uint32_t payload_len) {
  if (key_len > kMaxKeyBytes || payload_len > kMaxPayloadBytes)
    return Status::error(Code::kInvalidArgument, "record key or payload too large");
  const uint64_t span = record_span(key_len, payload_len);
  // At most half the data area: a PAD plus the record always fits an empty ring.
  if (span > data_bytes_ / 2)
    return Status::error(Code::kInvalidArgument,
                         "a record of " + std::to_string(span) + " bytes cannot fit a ring of " +
                             std::to_string(data_bytes_) + " data bytes");
  std::unique_lock lock(mu_);
  const uint64_t ticket = tickets_++;
  bool waited = false;
  Reservation r;
  for (;;) {
    if (!failed_.is_ok()) return failed_;
    if (shutdown_) return Status::error(Code::kAborted, "log shut down");
    if (serving_ == ticket) {
      const uint64_t offset = head_pos_ % data_bytes_;
      const uint64_t pad = offset + span > data_bytes_ ? data_bytes_ - offset : 0;
      // The in-flight bound (log_format.h, kMaxRecordsInFlight): the LSNs this reservation takes
      // stay below complete + the bound, which is what lets recovery tell a torn tail from damage.
      const uint64_t lsns = pad ? 2 : 1;
      const bool in_flight_room = next_lsn_ + lsns <= complete_.lsn + kMaxRecordsInFlight;
      if (in_flight_room && (head_pos_ - trim_.pos) + pad + span <= data_bytes_) {
        if (pad) {
          r.pad_lsn = next_lsn_++;
          r.pad_pos = head_pos_;
          r.pad_span = pad;
          head_pos_ += pad;
        }
        r.lsn = next_lsn_++;
        r.pos = head_pos_;
        r.span = span;
        head_pos_ += span;
        ++serving_;
        break;
      }
      // The destager cannot make room (the medium is full): fail now, as a full disk would.
      // The turn passes on: this ticket took nothing.
      if (in_flight_room && !full_refusal_.is_ok()) {
        ++serving_;
        Status why = full_refusal_;
        lock.unlock();
        space_cv_.notify_all();
        return why;
      }
      // Backpressure: the ring is full (or the in-flight bound is reached, which the completes
      // under way lift by themselves). Wait for the destager to trim; never fail otherwise.
      if (in_flight_room && !waited) {
        waited = true;
        ++space_waits_;
      }
      if (in_flight_room && space_waiter_hook_) space_waiter_hook_();
    }
    space_cv_.wait(lock);
  }
  lock.unlock();
  space_cv_.notify_all();  // the next ticket's turn
  if (Status s = fault(options_.faults, FaultSite::kLogAfterReserve); !s.is_ok()) {
    fail(s);
    return s;
  }
  return r;
}

Status Log::write_pad(uint64_t lsn, uint64_t pos, uint64_t span) {
  RecordHeader h;
  h.type = RecordType::kPad;
  h.lsn = lsn;
  h.pos = pos;
  h.session = session_;
  h.payload_len = static_cast<uint32_t>(span - kRecordHeaderBytes);
  h.ring_tag = ring_tag(ring_id_);
  std::array<std::byte, kRecordHeaderBytes> buf{};
  encode_record_header(h, {}, buf);
  return store_.write(kDataOffset + pos % data_bytes_, buf);
}

Status Log::mark_damaged(uint64_t pos, uint64_t lsn) {
  RecordHeader h;
  h.type = RecordType::kDamaged;
  h.lsn = lsn;
  h.pos = pos;
  h.session = session_;
  h.ring_tag = ring_tag(ring_id_);
  std::array<std::byte, kRecordHeaderBytes> buf{};
  encode_record_header(h, {}, buf);
  const uint64_t off = kDataOffset + pos % data_bytes_;
  HAFS_RETURN_IF_ERROR(store_.write(off, buf));
  return store_.persist(off, buf.size());
}

Result<uint64_t> Log::void_records(uint64_t from, uint64_t to,
                                   const std::function<bool(uint32_t, uint64_t)>& pick,
                                   uint64_t* voided) {
  std::vector<std::byte> head;
  uint64_t pos = from;
  while (pos + kRecordHeaderBytes <= to) {
    const uint64_t off = kDataOffset + pos % data_bytes_;
    head.resize(kRecordHeaderBytes);
    HAFS_RETURN_IF_ERROR(store_.read(off, head));
    auto h = decode_record_header(std::span<const std::byte, kRecordHeaderBytes>(head.data(), kRecordHeaderBytes));
    if (!h || h->pos != pos)
      return Status::error(Code::kCorruption, "no record header at position " + std::to_string(pos) +
                                                  " of the NV log (voiding records)");
    if ((h->type == RecordType::kWrite || h->type == RecordType::kFence || h->type == RecordType::kMeta) &&
        pick(h->volume_id, h->epoch)) {
      // The header CRC covers the key: re-encode header and key with the new type. Key, file
      // offset and payload (with its CRC) stay, so a dump still shows what the record held.
      head.resize(kRecordHeaderBytes + h->key_len);
      HAFS_RETURN_IF_ERROR(store_.read(off, head));
      if (!verify_record_header_crc(head))
        return Status::error(Code::kDataLoss, "NV log record LSN " + std::to_string(h->lsn) +
                                                  " is damaged (header CRC, voiding records)");
      std::vector<std::byte> key(head.begin() + kRecordHeaderBytes, head.end());
      h->type = RecordType::kVoid;
      std::vector<std::byte> out(payload_offset(h->key_len));
      encode_record_header(*h, key, out);
      HAFS_RETURN_IF_ERROR(store_.write(off, std::span(out).first(kRecordHeaderBytes)));
      HAFS_RETURN_IF_ERROR(store_.persist(off, kRecordHeaderBytes));
      if (voided) ++*voided;
    }
    pos += record_span(*h);
  }
  return pos;
}

Status Log::fill(const Reservation& r, const AppendSpec& spec) {
  HAFS_CHECK(record_span(static_cast<uint16_t>(spec.key.size()),
                         static_cast<uint32_t>(spec.payload.size())) == r.span,
             "fill does not match its reservation");
  Status s;
  if (r.pad_lsn) s = write_pad(r.pad_lsn, r.pad_pos, r.pad_span);
  if (s.is_ok()) {
    RecordHeader h;
    HAFS_CHECK(carries_payload(spec.type) || spec.payload.empty(), "a FENCE has no payload");
    h.type = spec.type;
    h.key_len = static_cast<uint16_t>(spec.key.size());
    h.lsn = r.lsn;
    h.pos = r.pos;
    h.epoch = spec.epoch;
    h.file_offset = spec.file_offset;
    h.volume_id = spec.volume_id;
    h.session = session_;
    h.payload_len = static_cast<uint32_t>(spec.payload.size());
    h.payload_crc = crc32c(spec.payload);
    h.ring_tag = ring_tag(ring_id_);
    std::array<std::byte, payload_offset(kMaxKeyBytes)> head{};
    const size_t head_len = payload_offset(h.key_len);
    encode_record_header(h, spec.key, std::span(head.data(), head_len));
    const uint64_t off = kDataOffset + r.pos % data_bytes_;
    s = store_.write(off, std::span(head.data(), head_len));
    if (s.is_ok() && !spec.payload.empty()) s = store_.write(off + head_len, spec.payload);
  }
  if (s.is_ok()) s = fault(options_.faults, FaultSite::kLogAfterFill);
  if (!s.is_ok()) {
    fail(s);
    return s;
  }
  // Advance the filled point over every contiguous filled record.
  TrimPoint filled;
  bool advanced = false;
  std::function<void(TrimPoint)> hook;
  {
    std::lock_guard lock(mu_);
    if (r.pad_lsn) filled_above_[r.pad_lsn] = r.pad_pos + r.pad_span;
    filled_above_[r.lsn] = r.pos + r.span;
    for (auto it = filled_above_.begin(); it != filled_above_.end() && it->first == filled_.lsn;
         it = filled_above_.erase(it)) {
      filled_.pos = it->second;
      ++filled_.lsn;
      advanced = true;
    }
    filled = filled_;
    if (advanced) hook = filled_hook_;
  }
  if (hook) hook(filled);
  return s;
}

Status Log::persist(const Reservation& r) {
  Status s;
  if (r.pad_lsn) s = store_.persist(kDataOffset + r.pad_pos % data_bytes_, r.pad_span);
  if (s.is_ok()) s = store_.persist(kDataOffset + r.pos % data_bytes_, r.span);
  if (s.is_ok()) s = fault(options_.faults, FaultSite::kLogAfterLocalPersist);
  if (!s.is_ok()) fail(s);
  return s;
}

Status Log::complete(const Reservation& r) {
  std::unique_lock lock(mu_);
  if (r.pad_lsn) done_[r.pad_lsn] = r.pad_pos + r.pad_span;
  done_[r.lsn] = r.pos + r.span;
  bool advanced = false;
  for (auto it = done_.begin(); it != done_.end() && it->first == complete_.lsn;
       it = done_.erase(it)) {
    complete_.pos = it->second;
    ++complete_.lsn;
    advanced = true;
  }
  if (advanced) {
    complete_cv_.notify_all();
    space_cv_.notify_all();  // a reservation may wait for the in-flight bound
  }
  // Acknowledged only once the complete mark covers the record too (log-format.md §8a): then a
  // recovery that cannot read it back knows it was complete, and reports damage, not a torn
  // tail. One completer writes the mark for all who wait (group commit); the copies alternate
  // so that a torn mark write leaves the previous mark in the other copy.
  for (;;) {
    complete_cv_.wait(lock, [&] {
      return (complete_.lsn > r.lsn && !marking_) || marked_.lsn > r.lsn || !failed_.is_ok() ||
             shutdown_;
    });
    if (marked_.lsn > r.lsn) return Status::ok();
    if (!failed_.is_ok()) return failed_;
    if (shutdown_) return Status::error(Code::kAborted, "log shut down");
    marking_ = true;
    const TrimPoint to = complete_;
    const uint64_t copy = mark_writes_++;
    lock.unlock();
    Status s = write_complete_mark(to, copy);
    lock.lock();
    marking_ = false;
    if (!s.is_ok()) {
      lock.unlock();
      fail(s);
      return s;
    }
    marked_ = to;
    complete_cv_.notify_all();
  }
}

void Log::fail(const Status& why) {
  {
    std::lock_guard lock(mu_);
    if (!failed_.is_ok()) return;
    failed_ = why.with_context("NV log failed; no further appends");
  }
  options_.logger.error("%s", why.to_string().c_str());
  space_cv_.notify_all();
  complete_cv_.notify_all();
}

Result<Reservation> Log::append(const AppendSpec& spec) {
  auto r = reserve(static_cast<uint16_t>(spec.key.size()), static_cast<uint32_t>(spec.payload.size()));
  if (!r) return r.status();
  HAFS_RETURN_IF_ERROR(fill(*r, spec));
  HAFS_RETURN_IF_ERROR(persist(*r));
  HAFS_RETURN_IF_ERROR(complete(*r));
  return r;
}

Status Log::trim(TrimPoint to) {
  std::lock_guard hlock(header_mu_);
  {
    std::lock_guard lock(mu_);
    HAFS_CHECK(to.lsn <= complete_.lsn && to.pos <= complete_.pos, "trim past the complete point");
    if (to.lsn <= trim_.lsn) return Status::ok();  // a concurrent trim went further already
  }
  RingHeader h = header_;
  h.trim_lsn = to.lsn;
  h.trim_pos = to.pos;
  // Records from here on are this session's: a stale record of an earlier session found at the
  // trim point after a crash must read as the end, not as the next record.
  if (to.lsn >= session_first_lsn_) h.trim_session = session_;
  h.header_seq++;
  HAFS_RETURN_IF_ERROR(write_header_locked(h));
  {
    std::lock_guard lock(mu_);
    trim_ = to;
  }
  space_cv_.notify_all();
  return Status::ok();
}

void Log::shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  space_cv_.notify_all();
  complete_cv_.notify_all();
}

TrimPoint Log::complete_point() const {
  std::lock_guard lock(mu_);
  return complete_;
}

TrimPoint Log::trim_point() const {
  std::lock_guard lock(mu_);
  return trim_;
}

uint64_t Log::used_bytes() const {
  std::lock_guard lock(mu_);
  return head_pos_ - trim_.pos;
}

uint64_t Log::space_waits() const {
  std::lock_guard lock(mu_);
  return space_waits_;
}

void Log::set_filled_hook(std::function<void(TrimPoint)> hook) {
  std::lock_guard lock(mu_);
  filled_hook_ = std::move(hook);
}

TrimPoint Log::filled_point() const {
  std::lock_guard lock(mu_);
  return filled_;
}

RingHeader Log::header() const {
  std::lock_guard lock(header_mu_);
  return header_;
}

void Log::set_full_refusal(const Status& why) {
  {
    std::lock_guard lock(mu_);
    full_refusal_ = why;
  }
  space_cv_.notify_all();
}

void Log::set_space_waiter_hook(std::function<void()> hook) {
  std::lock_guard lock(mu_);
  space_waiter_hook_ = std::move(hook);
}

}  // namespace hafs::nvcache
