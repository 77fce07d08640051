#include "nvcache/log_format.h"

#include <bit>
#include <cstring>

#include "base/crc32c.h"
#include "base/endian.h"

namespace hafs::nvcache {

void encode_ring_header(const RingHeader& h, std::span<std::byte, kEncodedRingHeader> out) {
  std::memset(out.data(), 0, out.size());
  put_le<uint64_t>(out, ring_off::kMagic, kRingMagic);
  put_le<uint32_t>(out, ring_off::kVersion, kRingVersion);
  put_le<uint32_t>(out, ring_off::kHeaderBytes, kEncodedRingHeader);
  put_le<uint64_t>(out, ring_off::kRingBytes, h.ring_bytes);
  put_le<uint64_t>(out, ring_off::kDataBytes, h.data_bytes);
  put_le<uint64_t>(out, ring_off::kRingId, h.ring_id);
  put_le<uint64_t>(out, ring_off::kHeaderSeq, h.header_seq);
  put_le<uint64_t>(out, ring_off::kTrimLsn, h.trim_lsn);
  put_le<uint64_t>(out, ring_off::kTrimPos, h.trim_pos);
  put_le<uint32_t>(out, ring_off::kSession, h.session);
  put_le<uint32_t>(out, ring_off::kNodeId, h.node_id);
  put_le<uint32_t>(out, ring_off::kFlags, h.flags);
  put_le<uint32_t>(out, ring_off::kTrimSession, h.trim_session);
  put_le<uint32_t>(out, ring_off::kCrc, crc32c(out.data(), ring_off::kCrc));
}

void encode_complete_mark(const CompleteMark& m, std::span<std::byte, kEncodedCompleteMark> out) {
  put_le<uint64_t>(out, 0, kCompleteMarkMagic);
  put_le<uint64_t>(out, 8, m.ring_id);
  put_le<uint64_t>(out, 16, m.lsn);
  put_le<uint64_t>(out, 24, m.pos);
  put_le<uint32_t>(out, 32, crc32c(out.data(), 32));
}

std::optional<CompleteMark> decode_complete_mark(std::span<const std::byte> in) {
  if (in.size() < kEncodedCompleteMark || get_le<uint64_t>(in, 0) != kCompleteMarkMagic ||
      get_le<uint32_t>(in, 32) != crc32c(in.data(), 32))
    return std::nullopt;
  return CompleteMark{get_le<uint64_t>(in, 8), get_le<uint64_t>(in, 16), get_le<uint64_t>(in, 24)};
}

Result<RingHeader> decode_ring_header(std::span<const std::byte> in, uint64_t file_bytes) {
  if (in.size() < kEncodedRingHeader)
    return Status::error(Code::kCorruption, "ring header shorter than its encoding");
  if (get_le<uint64_t>(in, ring_off::kMagic) != kRingMagic)
    return Status::error(Code::kCorruption, "bad ring magic (not an hafs ring)");
  const uint32_t crc = get_le<uint32_t>(in, ring_off::kCrc);
  if (crc != crc32c(in.data(), ring_off::kCrc))
    return Status::error(Code::kCorruption, "ring header CRC mismatch");
  const uint32_t version = get_le<uint32_t>(in, ring_off::kVersion);
  if (version < kOldestRingVersion || version > kRingVersion)
    return Status::error(Code::kCorruption, "unsupported ring version " + std::to_string(version) +
                                                " (this build reads versions " +
                                                std::to_string(kOldestRingVersion) + " to " +
                                                std::to_string(kRingVersion) + ")");
  RingHeader h;
  h.ring_bytes = get_le<uint64_t>(in, ring_off::kRingBytes);
  h.data_bytes = get_le<uint64_t>(in, ring_off::kDataBytes);
  h.ring_id = get_le<uint64_t>(in, ring_off::kRingId);
  h.header_seq = get_le<uint64_t>(in, ring_off::kHeaderSeq);
  h.trim_lsn = get_le<uint64_t>(in, ring_off::kTrimLsn);
  h.trim_pos = get_le<uint64_t>(in, ring_off::kTrimPos);
  h.session = get_le<uint32_t>(in, ring_off::kSession);
  h.node_id = get_le<uint32_t>(in, ring_off::kNodeId);
  h.flags = get_le<uint32_t>(in, ring_off::kFlags);
  h.trim_session = get_le<uint32_t>(in, ring_off::kTrimSession);
  if (get_le<uint32_t>(in, ring_off::kHeaderBytes) != kEncodedRingHeader)
    return Status::error(Code::kCorruption, "ring header size field is not " +
                                                std::to_string(kEncodedRingHeader));
  if (h.ring_bytes != file_bytes)
    return Status::error(Code::kCorruption, "ring header says " + std::to_string(h.ring_bytes) +
                                                " bytes but the store has " +
                                                std::to_string(file_bytes));
  if (h.data_bytes != h.ring_bytes - kDataOffset || h.data_bytes % kRecordAlign != 0)
    return Status::error(Code::kCorruption, "ring header has an impossible data area size");
  if (h.trim_lsn == 0 || h.trim_pos % kRecordAlign != 0)
    return Status::error(Code::kCorruption, "ring header has an impossible trim point");
  return h;
}

void encode_record_header(const RecordHeader& h, std::span<const std::byte> key,
                          std::span<std::byte> out) {
  HAFS_CHECK(key.size() == h.key_len && key.size() <= kMaxKeyBytes, "key length mismatch");
  HAFS_CHECK(out.size() >= payload_offset(h.key_len), "record header buffer too small");
  const size_t len = payload_offset(h.key_len);
  std::memset(out.data(), 0, len);
  put_le<uint32_t>(out, rec_off::kMagic, kRecordMagic);
  put_le<uint8_t>(out, rec_off::kVersion, kRecordVersion);
  put_le<uint8_t>(out, rec_off::kType, static_cast<uint8_t>(h.type));
  put_le<uint16_t>(out, rec_off::kKeyLen, h.key_len);
  put_le<uint64_t>(out, rec_off::kLsn, h.lsn);
  put_le<uint64_t>(out, rec_off::kPos, h.pos);
  put_le<uint64_t>(out, rec_off::kEpoch, h.epoch);
  put_le<uint64_t>(out, rec_off::kFileOffset, h.file_offset);
  put_le<uint32_t>(out, rec_off::kVolumeId, h.volume_id);
  put_le<uint32_t>(out, rec_off::kSession, h.session);
  put_le<uint32_t>(out, rec_off::kPayloadLen, h.payload_len);
  put_le<uint32_t>(out, rec_off::kPayloadCrc, h.payload_crc);
  put_le<uint32_t>(out, rec_off::kRingTag, h.ring_tag);
  if (!key.empty()) std::memcpy(out.data() + kRecordHeaderBytes, key.data(), key.size());
  uint32_t crc = crc32c(out.data(), rec_off::kHeaderCrc);
  crc = crc32c_extend(crc, out.data() + kRecordHeaderBytes, h.key_len);
  put_le<uint32_t>(out, rec_off::kHeaderCrc, crc);
}

Result<RecordHeader> decode_record_header(std::span<const std::byte, kRecordHeaderBytes> in) {
  if (get_le<uint32_t>(in, rec_off::kMagic) != kRecordMagic)
    return Status::error(Code::kCorruption, "no record magic");
  const uint8_t version = get_le<uint8_t>(in, rec_off::kVersion);
  if (version != kRecordVersion)
    return Status::error(Code::kCorruption, "unsupported record version " + std::to_string(version));
  RecordHeader h;
  const uint8_t type = get_le<uint8_t>(in, rec_off::kType);
  if (type != static_cast<uint8_t>(RecordType::kWrite) &&
      type != static_cast<uint8_t>(RecordType::kPad) &&
      type != static_cast<uint8_t>(RecordType::kFence) &&
      type != static_cast<uint8_t>(RecordType::kDamaged) &&
      type != static_cast<uint8_t>(RecordType::kVoid) &&
      type != static_cast<uint8_t>(RecordType::kMeta))
    return Status::error(Code::kCorruption, "unknown record type " + std::to_string(type));
  h.type = static_cast<RecordType>(type);
  h.key_len = get_le<uint16_t>(in, rec_off::kKeyLen);
  h.lsn = get_le<uint64_t>(in, rec_off::kLsn);
  h.pos = get_le<uint64_t>(in, rec_off::kPos);
  h.epoch = get_le<uint64_t>(in, rec_off::kEpoch);
  h.file_offset = get_le<uint64_t>(in, rec_off::kFileOffset);
  h.volume_id = get_le<uint32_t>(in, rec_off::kVolumeId);
  h.session = get_le<uint32_t>(in, rec_off::kSession);
  h.payload_len = get_le<uint32_t>(in, rec_off::kPayloadLen);
  h.payload_crc = get_le<uint32_t>(in, rec_off::kPayloadCrc);
  h.ring_tag = get_le<uint32_t>(in, rec_off::kRingTag);
  if (h.key_len > kMaxKeyBytes)
    return Status::error(Code::kCorruption, "record key length " + std::to_string(h.key_len) +
                                                " exceeds " + std::to_string(kMaxKeyBytes));
  if ((carries_payload(h.type) || h.type == RecordType::kVoid) && h.payload_len > kMaxPayloadBytes)
    return Status::error(Code::kCorruption, "record payload length " +
                                                std::to_string(h.payload_len) + " exceeds " +
                                                std::to_string(kMaxPayloadBytes));
  if (h.type == RecordType::kPad && h.key_len != 0)
    return Status::error(Code::kCorruption, "PAD record with a key");
  if (h.type == RecordType::kFence && h.payload_len != 0)
    return Status::error(Code::kCorruption, "FENCE record with a payload");
  if (h.type == RecordType::kDamaged && (h.key_len != 0 || h.payload_len != 0))
    return Status::error(Code::kCorruption, "DAMAGED marker with a key or payload");
  return h;
}

bool verify_record_header_crc(std::span<const std::byte> header_and_key) {
  if (header_and_key.size() < kRecordHeaderBytes) return false;
  const uint16_t key_len = get_le<uint16_t>(header_and_key, rec_off::kKeyLen);
  if (key_len > kMaxKeyBytes || header_and_key.size() < kRecordHeaderBytes + key_len) return false;
  uint32_t crc = crc32c(header_and_key.data(), rec_off::kHeaderCrc);
  crc = crc32c_extend(crc, header_and_key.data() + kRecordHeaderBytes, key_len);
  return crc == get_le<uint32_t>(header_and_key, rec_off::kHeaderCrc);
}

}  // namespace hafs::nvcache
