#include "nvcache/destager.h"

#include "nvcache/log_format.h"

#include <algorithm>
#include <array>

#include "base/crc32c.h"

namespace hafs::nvcache {

Status DestageTarget::apply_meta(const MetaRecord& record) {
  return Status::error(Code::kInvalidArgument, "META record LSN " + std::to_string(record.lsn) +
                                                   ": this medium does not take metadata records");
}

Status DestageTarget::apply_metas(std::span<const MetaRecord> records) {
  for (const MetaRecord& r : records) {
    Status s = apply_meta(r);
    if (!s.is_ok() && s.code() != Code::kStale && s.code() != Code::kNotFound)
      return s.with_context("metadata record LSN " + std::to_string(r.lsn));
  }
  return Status::ok();
}

Status DestageTarget::sync_volume(uint32_t) { return Status::ok(); }

Status RingBytes::read(uint64_t data_pos, std::span<std::byte> out) const {
  const uint64_t off = data_pos % data_bytes_;
  HAFS_CHECK(off + out.size() <= data_bytes_, "staged extent crosses the end of the ring");
  return store_->read(kDataOffset + off, out);
}

Status RingBytes::read_record(uint64_t record_pos, uint64_t lsn, CheckedRecord* out) const {
  auto damaged = [&](const std::string& what) {
    return Status::error(Code::kDataLoss, "NV log record LSN " + std::to_string(lsn) + " at position " +
                                              std::to_string(record_pos) + " is damaged: " + what);
  };
  out->pos = UINT64_MAX;
  std::array<std::byte, kRecordHeaderBytes> fixed{};
  HAFS_RETURN_IF_ERROR(read(record_pos, fixed));
  auto h = decode_record_header(fixed);
  if (!h) return damaged(h.status().message());
  if (h->lsn == lsn && h->pos == record_pos && h->type == RecordType::kVoid)
    return Status::error(Code::kStaleEpoch, "NV log record LSN " + std::to_string(lsn) +
                                                " was voided: the partner took its volume over");
  if (h->lsn != lsn || h->pos != record_pos || !carries_payload(h->type))
    return damaged("its header names LSN " + std::to_string(h->lsn) + " at position " + std::to_string(h->pos));
  if (record_pos % data_bytes_ + payload_offset(h->key_len) + h->payload_len > data_bytes_)
    return damaged("its length runs past the end of the ring");
  // One read of the whole record, and the checks on what was read (the header above was only a
  // guide to the length: it is checked again in the copy).
  out->payload_at = payload_offset(h->key_len);
  out->bytes.resize(out->payload_at + h->payload_len);
  HAFS_RETURN_IF_ERROR(read(record_pos, out->bytes));
  const std::span<const std::byte> bytes(out->bytes);
  if (!std::equal(fixed.begin(), fixed.end(), bytes.begin()) ||
      !verify_record_header_crc(bytes.first(kRecordHeaderBytes + h->key_len)))
    return damaged("header CRC mismatch");
  if (crc32c(bytes.subspan(out->payload_at)) != h->payload_crc) return damaged("payload CRC mismatch");
  out->pos = record_pos;
  out->lsn = lsn;
  return Status::ok();
}

Status RingBytes::read_extent(const StagedExtent& e, std::span<std::byte> out, CheckedRecord* record) const {
  if (record->pos != e.record_pos || record->lsn != e.lsn)
    HAFS_RETURN_IF_ERROR(read_record(e.record_pos, e.lsn, record));
  const uint64_t from = e.data_pos - e.record_pos;  // where the piece starts in the record
  HAFS_CHECK(from >= record->payload_at && from + out.size() <= record->bytes.size(),
             "staged extent outside its record");
  std::copy_n(record->bytes.begin() + static_cast<std::ptrdiff_t>(from), out.size(), out.begin());
  return Status::ok();
}

namespace {
Status fault(FaultRegistry* faults, FaultSite site) {
  return faults ? faults->hit(site) : Status::ok();
}
bool object_gone(const Status& s) { return s.code() == Code::kStale || s.code() == Code::kNotFound; }
}  // namespace

Result<DestageResult> destage_objects(const std::vector<ObjectId>& objects, uint64_t max_lsn,
                                      const ExtentLister& list, const RingBytes& ring,
                                      DestageTarget& target, FaultRegistry* faults,
                                      const Logger& logger, const DamageHandler& on_damaged,
                                      bool sync_each) {
  DestageResult result;
  CheckedRecord record;
  for (const ObjectId& object : objects) {
    std::vector<StagedExtent> extents = list(object);
    std::erase_if(extents, [&](const StagedExtent& e) { return e.lsn > max_lsn; });
    if (extents.empty()) continue;
    // Coalesce: adjacent extents become one buffer and one pwrite.
    std::vector<std::vector<std::byte>> buffers;
    std::vector<DestageExtent> runs;
    std::vector<uint64_t> run_offsets;
    uint64_t epoch = 0;
    for (size_t i = 0; i < extents.size();) {
      size_t j = i;
      uint64_t len = 0;
      while (j < extents.size() && extents[j].file_offset == extents[i].file_offset + len) {
        len += extents[j].length;
        ++j;
      }
      std::vector<std::byte> buf(len);
      uint64_t at = 0;
      for (size_t k = i; k < j; ++k) {
        Status read = ring.read_extent(extents[k], std::span(buf.data() + at, extents[k].length), &record);
        if (!read.is_ok()) {
          if (read.code() == Code::kDataLoss && on_damaged) on_damaged(extents[k], read);
          return read;
        }
        at += extents[k].length;
        epoch = std::max(epoch, extents[k].epoch);
      }
      run_offsets.push_back(extents[i].file_offset);
      buffers.push_back(std::move(buf));
      i = j;
    }
    for (size_t r = 0; r < buffers.size(); ++r) runs.push_back({run_offsets[r], buffers[r]});

    HAFS_RETURN_IF_ERROR(fault(faults, FaultSite::kDestageBeforeWrite));
    Status s = target.write(object, epoch, runs);
    if (object_gone(s)) {
      logger.debug("destage: object of volume %u is gone (%s); dropping its staged extents",
                   object.volume_id, s.to_string().c_str());
      result.gone.push_back(object);
      continue;
    }
    HAFS_RETURN_IF_ERROR(s);
    result.written.push_back(object);
    result.extents += extents.size();
    for (const auto& b : buffers) result.bytes += b.size();
  }
  HAFS_RETURN_IF_ERROR(fault(faults, FaultSite::kDestageBeforeSync));
  for (size_t i = 0; sync_each && i < result.written.size();) {
    Status s = target.sync(result.written[i]);
    if (object_gone(s)) {  // unlinked between write and sync: nothing left to keep
      result.gone.push_back(result.written[i]);
      result.written.erase(result.written.begin() + static_cast<long>(i));
      continue;
    }
    HAFS_RETURN_IF_ERROR(s);
    ++i;
  }
  HAFS_RETURN_IF_ERROR(fault(faults, FaultSite::kDestageAfterSync));
  return result;
}

}  // namespace hafs::nvcache
