// The ring format's two structures (nvcache/log_format.h): encode/decode round trips and every
// reason a decode refuses its input.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "nvcache/log_format.h"

namespace hafs::nvcache {
namespace {

constexpr uint64_t kFileBytes = kDataOffset + 64 * 1024;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

RingHeader sample_ring_header() {
  RingHeader h;
  h.ring_bytes = kFileBytes;
  h.data_bytes = kFileBytes - kDataOffset;
  h.ring_id = 0x0123456789abcdefull;
  h.header_seq = 77;
  h.trim_lsn = 1234;
  h.trim_pos = 64 * 100;
  h.session = 5;
  h.node_id = 2;
  h.flags = kRingFlagMirror;
  h.trim_session = 4;
  return h;
}

using RingBuf = std::array<std::byte, kEncodedRingHeader>;

RingBuf encoded(const RingHeader& h) {
  RingBuf buf{};
  encode_ring_header(h, buf);
  return buf;
}

template <typename T>
void put_le(std::span<std::byte> buf, size_t off, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    buf[off + i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

// Rewrites a field and recomputes the header CRC, so that only the field itself is wrong.
template <typename T>
void set_ring_field(RingBuf& buf, size_t off, T v) {
  put_le<T>(buf, off, v);
  put_le<uint32_t>(buf, ring_off::kCrc, crc32c(buf.data(), ring_off::kCrc));
}

void expect_ring_error(const RingBuf& buf, uint64_t file_bytes, const std::string& what) {
  auto r = decode_ring_header(buf, file_bytes);
  ASSERT_FALSE(r.is_ok()) << "decoded although " << what << " is expected";
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(contains(r.status().message(), what)) << r.status().message();
}

TEST(RingHeaderFormatTest, EncodeThenDecodeGivesBackEveryField) {
  const RingHeader h = sample_ring_header();
  auto r = decode_ring_header(encoded(h), kFileBytes);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->ring_bytes, h.ring_bytes);
  EXPECT_EQ(r->data_bytes, h.data_bytes);
  EXPECT_EQ(r->ring_id, h.ring_id);
  EXPECT_EQ(r->header_seq, h.header_seq);
  EXPECT_EQ(r->trim_lsn, h.trim_lsn);
  EXPECT_EQ(r->trim_pos, h.trim_pos);
  EXPECT_EQ(r->session, h.session);
  EXPECT_EQ(r->node_id, h.node_id);
  EXPECT_EQ(r->flags, h.flags);
  EXPECT_EQ(r->trim_session, h.trim_session);
}

TEST(RingHeaderFormatTest, EncodingIsLittleEndianAtTheDocumentedOffsets) {
  const RingBuf buf = encoded(sample_ring_header());
  EXPECT_EQ(std::memcmp(buf.data() + ring_off::kMagic, "HAFSRNG1", 8), 0);
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kVersion]), 2);
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kHeaderBytes]), static_cast<int>(kEncodedRingHeader));
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kRingId]), 0xef);
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kRingId + 7]), 0x01);
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kNodeId]), 2);
  EXPECT_EQ(std::to_integer<int>(buf[ring_off::kTrimSession]), 4);
}

TEST(RingHeaderFormatTest, ShortInputIsCorruption) {
  const RingBuf buf = encoded(sample_ring_header());
  auto r = decode_ring_header(std::span(buf.data(), buf.size() - 1), kFileBytes);
  ASSERT_FALSE(r.is_ok());
  EXPECT_TRUE(contains(r.status().message(), "shorter")) << r.status().message();
}

TEST(RingHeaderFormatTest, BadMagicIsReportedAsNotAnHafsRing) {
  RingBuf buf = encoded(sample_ring_header());
  set_ring_field<uint64_t>(buf, ring_off::kMagic, 0x1122334455667788ull);
  expect_ring_error(buf, kFileBytes, "bad ring magic");
}

TEST(RingHeaderFormatTest, UnsupportedVersionNamesBothVersions) {
  RingBuf buf = encoded(sample_ring_header());
  set_ring_field<uint32_t>(buf, ring_off::kVersion, 9);
  expect_ring_error(buf, kFileBytes, "unsupported ring version 9 (this build reads versions 1 to 2)");
}

TEST(RingHeaderFormatTest, HeaderSizeFieldOtherThanTheEncodingIsRefused) {
  RingBuf buf = encoded(sample_ring_header());
  set_ring_field<uint32_t>(buf, ring_off::kHeaderBytes, 80);
  expect_ring_error(buf, kFileBytes, "ring header size field is not 84");
}

TEST(RingHeaderFormatTest, AnyFlippedBitFailsTheCrc) {
  const RingBuf good = encoded(sample_ring_header());
  // Every bit after the magic (a flipped magic bit is reported as bad magic first).
  for (size_t bit = 64; bit < kEncodedRingHeader * 8; ++bit) {
    RingBuf buf = good;
    buf[bit / 8] ^= std::byte(1u << (bit % 8));
    auto r = decode_ring_header(buf, kFileBytes);
    ASSERT_FALSE(r.is_ok()) << "bit " << bit;
    EXPECT_TRUE(contains(r.status().message(), "CRC mismatch")) << r.status().message();
  }
}

TEST(RingHeaderFormatTest, StoreOfAnotherSizeIsRefusedWithBothSizes) {
  const RingBuf buf = encoded(sample_ring_header());
  expect_ring_error(buf, kFileBytes + 4096,
                    "says " + std::to_string(kFileBytes) + " bytes but the store has " +
                        std::to_string(kFileBytes + 4096));
}

TEST(RingHeaderFormatTest, ImpossibleGeometryIsRefused) {
  RingHeader h = sample_ring_header();
  h.data_bytes = h.ring_bytes - kDataOffset - 64;  // does not fill the file
  expect_ring_error(encoded(h), kFileBytes, "impossible data area size");

  h = sample_ring_header();
  h.ring_bytes = kFileBytes + 32;  // data area not a multiple of the record alignment
  h.data_bytes = h.ring_bytes - kDataOffset;
  expect_ring_error(encoded(h), kFileBytes + 32, "impossible data area size");

  h = sample_ring_header();
  h.trim_lsn = 0;
  expect_ring_error(encoded(h), kFileBytes, "impossible trim point");

  h = sample_ring_header();
  h.trim_pos = 64 * 100 + 8;  // not record aligned
  expect_ring_error(encoded(h), kFileBytes, "impossible trim point");
}

// ---- records --------------------------------------------------------------------------------

RecordHeader sample_record(RecordType type = RecordType::kWrite) {
  RecordHeader h;
  h.type = type;
  h.key_len = 11;
  h.lsn = 0x1122334455ull;
  h.pos = 64 * 12345;
  h.epoch = 9;
  h.file_offset = 1ull << 40;
  h.volume_id = 3;
  h.session = 4;
  h.payload_len = 4096;
  h.payload_crc = 0xdeadbeef;
  h.ring_tag = ring_tag(0xabcdef0123456789ull);
  return h;
}

std::vector<std::byte> key_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

std::vector<std::byte> encode_record(const RecordHeader& h, const std::vector<std::byte>& key) {
  std::vector<std::byte> out(payload_offset(h.key_len));
  encode_record_header(h, key, out);
  return out;
}

Result<RecordHeader> decode_fixed(const std::vector<std::byte>& buf) {
  return decode_record_header(std::span<const std::byte, kRecordHeaderBytes>(buf.data(),
                                                                              kRecordHeaderBytes));
}

// Sets a raw field of an encoded record and recomputes its header CRC.
template <typename T>
void set_record_field(std::vector<std::byte>& buf, size_t off, T v) {
  put_le<T>(buf, off, v);
  const uint16_t key_len = static_cast<uint16_t>(std::to_integer<uint16_t>(buf[rec_off::kKeyLen]) |
                                                 std::to_integer<uint16_t>(buf[rec_off::kKeyLen + 1]) << 8);
  uint32_t crc = crc32c(buf.data(), rec_off::kHeaderCrc);
  if (key_len <= kMaxKeyBytes && buf.size() >= kRecordHeaderBytes + key_len)
    crc = crc32c_extend(crc, buf.data() + kRecordHeaderBytes, key_len);
  put_le<uint32_t>(buf, rec_off::kHeaderCrc, crc);
}

void expect_record_error(const std::vector<std::byte>& buf, const std::string& what) {
  auto r = decode_fixed(buf);
  ASSERT_FALSE(r.is_ok()) << "decoded although " << what << " is expected";
  EXPECT_EQ(r.status().code(), Code::kCorruption);
  EXPECT_TRUE(contains(r.status().message(), what)) << r.status().message();
}

TEST(RecordHeaderFormatTest, EncodeThenDecodeGivesBackEveryField) {
  const RecordHeader h = sample_record();
  const auto key = key_bytes("file-handle");
  const auto buf = encode_record(h, key);
  ASSERT_EQ(buf.size(), kRecordHeaderBytes + 16);  // key padded to 8
  EXPECT_TRUE(verify_record_header_crc(buf));
  auto r = decode_fixed(buf);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->type, h.type);
  EXPECT_EQ(r->key_len, h.key_len);
  EXPECT_EQ(r->lsn, h.lsn);
  EXPECT_EQ(r->pos, h.pos);
  EXPECT_EQ(r->epoch, h.epoch);
  EXPECT_EQ(r->file_offset, h.file_offset);
  EXPECT_EQ(r->volume_id, h.volume_id);
  EXPECT_EQ(r->session, h.session);
  EXPECT_EQ(r->payload_len, h.payload_len);
  EXPECT_EQ(r->payload_crc, h.payload_crc);
  EXPECT_EQ(r->ring_tag, h.ring_tag);
  EXPECT_EQ(std::memcmp(buf.data() + kRecordHeaderBytes, key.data(), key.size()), 0);
  EXPECT_EQ(std::memcmp(buf.data() + rec_off::kMagic, "HREC", 4), 0);
}

TEST(RecordHeaderFormatTest, PadAndFenceRoundTrip) {
  RecordHeader pad = sample_record(RecordType::kPad);
  pad.key_len = 0;
  pad.payload_len = 4096 - 64;
  auto r = decode_fixed(encode_record(pad, {}));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->type, RecordType::kPad);
  EXPECT_EQ(record_span(*r), 4096u);

  RecordHeader fence = sample_record(RecordType::kFence);
  fence.payload_len = 0;
  const auto key = key_bytes("file-handle");
  auto f = decode_fixed(encode_record(fence, key));
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->type, RecordType::kFence);
  EXPECT_EQ(record_span(*f), 128u);
}

TEST(RecordHeaderFormatTest, SpansAreAlignedAndCoverHeaderKeyAndPayload) {
  EXPECT_EQ(payload_offset(0), 64u);
  EXPECT_EQ(payload_offset(1), 72u);
  EXPECT_EQ(payload_offset(128), 192u);
  EXPECT_EQ(record_span(0, 0), 64u);
  EXPECT_EQ(record_span(0, 1), 128u);
  EXPECT_EQ(record_span(5, 56), 128u);
  EXPECT_EQ(record_span(5, 57), 192u);
  for (uint16_t k = 0; k <= kMaxKeyBytes; k += 7)
    for (uint32_t p = 0; p < 300; p += 13) {
      EXPECT_EQ(record_span(k, p) % kRecordAlign, 0u);
      EXPECT_GE(record_span(k, p), payload_offset(k) + p);
      EXPECT_LT(record_span(k, p), payload_offset(k) + p + kRecordAlign);
    }
}

TEST(RecordHeaderFormatTest, RingTagFoldsBothHalvesOfTheRingId) {
  EXPECT_EQ(ring_tag(0x0000000100000002ull), 3u);
  EXPECT_NE(ring_tag(1), ring_tag(2));
}

TEST(RecordHeaderFormatTest, NoMagicIsTheNormalEndOfALog) {
  std::vector<std::byte> zeros(kRecordHeaderBytes);
  expect_record_error(zeros, "no record magic");
}

TEST(RecordHeaderFormatTest, BadVersionIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint8_t>(buf, rec_off::kVersion, 2);
  expect_record_error(buf, "unsupported record version 2");
}

TEST(RecordHeaderFormatTest, UnknownTypeIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint8_t>(buf, rec_off::kType, 7);
  expect_record_error(buf, "unknown record type 7");
  set_record_field<uint8_t>(buf, rec_off::kType, 0);
  expect_record_error(buf, "unknown record type 0");
}

TEST(RecordHeaderFormatTest, KeyLongerThanAHandleIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint16_t>(buf, rec_off::kKeyLen, kMaxKeyBytes + 1);
  expect_record_error(buf, "key length 129 exceeds 128");
  EXPECT_FALSE(verify_record_header_crc(buf));
}

TEST(RecordHeaderFormatTest, PayloadLongerThanTheMaximumIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint32_t>(buf, rec_off::kPayloadLen, kMaxPayloadBytes + 1);
  expect_record_error(buf, "payload length " + std::to_string(kMaxPayloadBytes + 1) + " exceeds");
}

TEST(RecordHeaderFormatTest, PadWithAKeyIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint8_t>(buf, rec_off::kType, static_cast<uint8_t>(RecordType::kPad));
  expect_record_error(buf, "PAD record with a key");
}

TEST(RecordHeaderFormatTest, FenceWithAPayloadIsRefused) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  set_record_field<uint8_t>(buf, rec_off::kType, static_cast<uint8_t>(RecordType::kFence));
  expect_record_error(buf, "FENCE record with a payload");
}

TEST(RecordHeaderFormatTest, HeaderCrcCoversEveryHeaderBitAndTheKey) {
  const auto good = encode_record(sample_record(), key_bytes("file-handle"));
  const size_t covered = kRecordHeaderBytes + 11;  // header then the key, not the key padding
  for (size_t bit = 0; bit < covered * 8; ++bit) {
    if (bit / 8 >= rec_off::kKeyLen && bit / 8 < rec_off::kKeyLen + 2) continue;  // moves the key
    auto buf = good;
    buf[bit / 8] ^= std::byte(1u << (bit % 8));
    EXPECT_FALSE(verify_record_header_crc(buf)) << "bit " << bit;
  }
  auto padded = good;  // the padding after the key is outside the CRC
  padded[kRecordHeaderBytes + 12] ^= std::byte{1};
  EXPECT_TRUE(verify_record_header_crc(padded));
}

TEST(RecordHeaderFormatTest, VerifyRefusesATruncatedHeaderOrKey) {
  const auto good = encode_record(sample_record(), key_bytes("file-handle"));
  EXPECT_FALSE(verify_record_header_crc(std::span(good.data(), kRecordHeaderBytes - 1)));
  EXPECT_FALSE(verify_record_header_crc(std::span(good.data(), kRecordHeaderBytes + 5)));
}

TEST(RecordHeaderFormatTest, DecodeDoesNotCheckTheCrcButVerifyDoes) {
  auto buf = encode_record(sample_record(), key_bytes("file-handle"));
  buf[rec_off::kEpoch] ^= std::byte{0x40};
  EXPECT_TRUE(decode_fixed(buf).is_ok());
  EXPECT_FALSE(verify_record_header_crc(buf));
}

}  // namespace
}  // namespace hafs::nvcache
