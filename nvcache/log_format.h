// The NV log ring format: constants and the encode/decode of its two structures.
// The format is defined in docs/log-format.md; change the two together, in the same commit.
//
// A ring file is [header copy A | header copy B | data area]. Records sit in the data area at
// 64-byte aligned offsets and never cross its end (a PAD record fills the tail instead).
// All integers are little-endian. A mirror store is a byte-identical ring of the partner's log.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/status.h"

namespace hafs::nvcache {

// ---- ring header --------------------------------------------------------------------------
inline constexpr uint64_t kRingMagic = 0x31474E5253464148ull;  // "HAFSRNG1" read as LE bytes
inline constexpr uint32_t kRingVersion = 2;        // 2: META records (log-format.md §6a)
inline constexpr uint32_t kOldestRingVersion = 1;  // read as well: a version-1 ring holds no META
inline constexpr uint64_t kHeaderSlotBytes = 4096;   // each header copy owns one 4 KiB block
inline constexpr uint64_t kDataOffset = 2 * kHeaderSlotBytes;
inline constexpr uint32_t kRecordAlign = 64;         // records start on 64-byte boundaries
inline constexpr uint64_t kMinRingBytes = kDataOffset + 64 * 1024;
inline constexpr uint64_t kMaxRingBytes = 1ull << 40;

// Header field offsets (bytes from the start of a header copy).
namespace ring_off {
inline constexpr size_t kMagic = 0;        // u64
inline constexpr size_t kVersion = 8;      // u32
inline constexpr size_t kHeaderBytes = 12; // u32: bytes covered by the CRC + 4 (= kEncodedRingHeader)
inline constexpr size_t kRingBytes = 16;   // u64: whole file
inline constexpr size_t kDataBytes = 24;   // u64: data area size, a multiple of kRecordAlign
inline constexpr size_t kRingId = 32;      // u64: random, fixed at format; a mirror keeps it
inline constexpr size_t kHeaderSeq = 40;   // u64: +1 at every header write; the higher valid copy wins
inline constexpr size_t kTrimLsn = 48;     // u64: LSN of the first record not yet destaged
inline constexpr size_t kTrimPos = 56;     // u64: logical position of that record
inline constexpr size_t kSession = 64;     // u32: +1 each time a writer opens the ring
inline constexpr size_t kNodeId = 68;      // u32: node whose log this is
inline constexpr size_t kFlags = 72;       // u32: bit 0 = this store is a mirror copy
inline constexpr size_t kTrimSession = 76; // u32: the record at the trim point is of this session or later
inline constexpr size_t kCrc = 80;         // u32: CRC32C of bytes [0, kCrc)
}  // namespace ring_off
inline constexpr size_t kEncodedRingHeader = ring_off::kCrc + 4;
static_assert(kEncodedRingHeader == 84);
static_assert(kEncodedRingHeader <= kHeaderSlotBytes);

inline constexpr uint32_t kRingFlagMirror = 1u << 0;

struct RingHeader {
  uint64_t ring_bytes = 0;
  uint64_t data_bytes = 0;
  uint64_t ring_id = 0;
  uint64_t header_seq = 0;
  uint64_t trim_lsn = 1;   // LSNs start at 1; 0 means "none"
  uint64_t trim_pos = 0;
  uint32_t session = 0;
  uint32_t node_id = 0;
  uint32_t flags = 0;
  uint32_t trim_session = 0;  // lower bound for the session of the record at the trim point
};

void encode_ring_header(const RingHeader& h, std::span<std::byte, kEncodedRingHeader> out);
// Validates magic, version, CRC and geometry against `file_bytes`; a clear error otherwise.
Result<RingHeader> decode_ring_header(std::span<const std::byte> in, uint64_t file_bytes);

// ---- complete mark (docs/log-format.md §8a) ------------------------------------------------------
// Where a node's own log says how far its records were complete, so that recovery can tell a
// record gone bad among the last ones from a torn tail without the partner's mirror. Two copies,
// at kCompleteMarkOffset of header slot A and of slot B, written alternately by the Log after the
// records they cover are persisted and before any of them is acknowledged. A reader takes the
// valid copy of this ring with the higher LSN.
inline constexpr uint64_t kCompleteMarkMagic = 0x314D4C4353464148ull;  // "HAFSCLM1" as LE bytes
inline constexpr uint64_t kCompleteMarkOffset = 3072;  // in each header slot
inline constexpr size_t kEncodedCompleteMark = 36;     // magic, ring_id, lsn, pos (u64); crc (u32)

// Every record of ring `ring_id` below `lsn` (before logical position `pos`) was complete.
struct CompleteMark {
  uint64_t ring_id = 0;
  uint64_t lsn = 1;
  uint64_t pos = 0;
};
void encode_complete_mark(const CompleteMark& m, std::span<std::byte, kEncodedCompleteMark> out);
// nullopt when the bytes are not a whole, valid mark (never written, torn, or flipped).
std::optional<CompleteMark> decode_complete_mark(std::span<const std::byte> in);

// ---- record ---------------------------------------------------------------------------------
inline constexpr uint32_t kRecordMagic = 0x43455248u;  // "HREC" as LE bytes
inline constexpr uint8_t kRecordVersion = 1;
inline constexpr size_t kRecordHeaderBytes = 64;
inline constexpr size_t kMaxKeyBytes = 128;           // MAX_HANDLE_SZ of name_to_handle_at
inline constexpr uint32_t kMaxPayloadBytes = 4u << 20; // a record never carries more
// The writer never reserves LSN n while a record below n - kMaxRecordsInFlight is not complete
// (persisted). So a valid record with LSN m proves every record up to m - kMaxRecordsInFlight
// was complete, and possibly acknowledged: a bad record that far below a valid one is damage
// inside the log, never a torn tail (docs/log-format.md, "Torn tail or damage").
inline constexpr uint64_t kMaxRecordsInFlight = 64;

enum class RecordType : uint8_t {
  kWrite = 1,  // payload bytes go to `key` at `file_offset`
  kPad = 2,    // fills the data area up to its end; the next record is at offset 0
  kFence = 3,  // every earlier record of `key` is already on the storage medium: replay must
               // not apply them (written after a flush, before a truncate); no payload
  kDamaged = 4,  // written over the header of a record found damaged while the node ran (a
                 // reader's or the destager's CRC check): recovery stops here and reports
                 // damage, however few records follow; no key, no payload
  kVoid = 5,   // a WRITE or FENCE of a volume the partner took over at a newer epoch, voided in
               // place by this node once it learned so (NvCache::supersede): nobody applies it,
               // and the partner's mirror may hold it; key, offset and payload stay as they were
  kMeta = 6,   // a metadata operation already executed on the medium (create, rename, ...):
               // the payload says what (fs/meta_op.h); no key. Replay redoes it in LSN order
               // unless the medium already holds it (docs/design.md §9)
};
// Record types whose payload is part of the record (read, CRC-checked, mirrored).
constexpr bool carries_payload(RecordType t) { return t == RecordType::kWrite || t == RecordType::kMeta; }

namespace rec_off {
inline constexpr size_t kMagic = 0;        // u32
inline constexpr size_t kVersion = 4;      // u8
inline constexpr size_t kType = 5;         // u8
inline constexpr size_t kKeyLen = 6;       // u16
inline constexpr size_t kLsn = 8;          // u64
inline constexpr size_t kPos = 16;         // u64: logical ring position of this record
inline constexpr size_t kEpoch = 24;       // u64: the volume's epoch (fencing token) at append
inline constexpr size_t kFileOffset = 32;  // u64
inline constexpr size_t kVolumeId = 40;    // u32
inline constexpr size_t kSession = 44;     // u32: writer session that appended it
inline constexpr size_t kPayloadLen = 48;  // u32
inline constexpr size_t kPayloadCrc = 52;  // u32: CRC32C of the payload bytes (0 for PAD)
inline constexpr size_t kRingTag = 56;     // u32: ring_tag(ring id): records of another ring never validate
inline constexpr size_t kHeaderCrc = 60;   // u32: CRC32C of bytes [0, 60) then the key bytes
}  // namespace rec_off
static_assert(rec_off::kHeaderCrc + 4 == kRecordHeaderBytes);

struct RecordHeader {
  RecordType type = RecordType::kWrite;
  uint16_t key_len = 0;
  uint64_t lsn = 0;
  uint64_t pos = 0;
  uint64_t epoch = 0;
  uint64_t file_offset = 0;
  uint32_t volume_id = 0;
  uint32_t session = 0;
  uint32_t payload_len = 0;
  uint32_t payload_crc = 0;
  uint32_t ring_tag = 0;
};

// The 32-bit tag of a ring id that every record carries.
constexpr uint32_t ring_tag(uint64_t ring_id) {
  return static_cast<uint32_t>(ring_id) ^ static_cast<uint32_t>(ring_id >> 32);
}

constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Where the payload starts, relative to the record start: header, then the key padded to 8.
constexpr uint64_t payload_offset(uint16_t key_len) {
  return kRecordHeaderBytes + align_up(key_len, 8);
}
// Bytes a record occupies in the data area, up to the next record (a multiple of kRecordAlign).
constexpr uint64_t record_span(uint16_t key_len, uint32_t payload_len) {
  return align_up(payload_offset(key_len) + payload_len, kRecordAlign);
}
// A PAD record's span is the rest of the data area; its payload_len says how much follows the header.
constexpr uint64_t record_span(const RecordHeader& h) {
  return h.type == RecordType::kPad ? kRecordHeaderBytes + h.payload_len
                                    : record_span(h.key_len, h.payload_len);
}

// Encodes header and key into `out` (payload_offset(key_len) bytes), computing the header CRC.
// payload_crc must already be set.
void encode_record_header(const RecordHeader& h, std::span<const std::byte> key,
                          std::span<std::byte> out);

// Decodes the fixed 64 bytes and checks magic, version, type and lengths (not the CRC, which
// also covers the key: see verify_record_header_crc).
Result<RecordHeader> decode_record_header(std::span<const std::byte, kRecordHeaderBytes> in);
bool verify_record_header_crc(std::span<const std::byte> header_and_key);

}  // namespace hafs::nvcache
