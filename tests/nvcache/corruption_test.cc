// Corrupt rings (invariants I5, I6): each test edits bytes of a ring holding several records,
// then checks that the scan ends with a clear reason at the damage, and that recovery applies
// exactly the records before it to the medium: nothing after, nothing invented.
#include <gtest/gtest.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "base/crc32c.h"
#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"
#include "tests/nvcache/ring_edit.h"

namespace hafs::nvcache {
namespace {

using testing::MemTarget;

constexpr uint64_t kRingBytes = kDataOffset + 128 * 1024;
constexpr uint64_t kRingId = 0x0123456789abcdefull;
constexpr int kRecords = 5;
constexpr size_t kPayloadBytes = 200;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

NvCacheOptions quiet() {
  NvCacheOptions o;
  o.logger = Logger("corruption-test", LogLevel::kError);
  return o;
}

ObjectId object_of(int i) { return ObjectId{1, "obj-" + std::to_string(i)}; }

std::vector<std::byte> payload_of(int i, size_t len = kPayloadBytes) {
  std::string s;
  while (s.size() < len) s += "record-" + std::to_string(i) + ";";
  s.resize(len);
  return testing::bytes_of(s);
}

template <typename T>
void put_le(std::byte* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    p[i] = static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
}

class CorruptionTest : public ::testing::Test {
 protected:
  // A formatted ring with kRecords records of kPayloadBytes, record i to object i, left staged
  // (no destage), as a crash would leave it.
  void SetUp() override {
    ASSERT_TRUE(Log::format(store_, 7, kRingId).is_ok());
    {
      MemTarget unused;
      auto cache = NvCache::open(store_, unused, quiet());
      ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
      for (int i = 0; i < kRecords; ++i) {
        auto lsn = (*cache)->write(object_of(i), 1, 0, payload_of(i));
        ASSERT_TRUE(lsn.is_ok()) << lsn.status().to_string();
        ASSERT_EQ(*lsn, static_cast<uint64_t>(i + 1));
      }
    }
    // As if all kRecords (fewer than kMaxRecordsInFlight) were still in flight at the crash:
    // these tests check how each kind of bad record ends a scan. Once the complete mark covers
    // a record, the same bytes are damage (DamageTest).
    testing::rewind_complete_mark(store_, 1, 0);
    auto rec = scan_ring(store_, [&](const RecordView& v) { headers_.push_back(v.header); });
    ASSERT_TRUE(rec.is_ok());
    ASSERT_EQ(headers_.size(), static_cast<size_t>(kRecords));
    ASSERT_EQ(rec->end, ScanEnd::kClean);
  }

  uint64_t record_offset(int i) const { return kDataOffset + headers_[i].pos % (kRingBytes - kDataOffset); }
  uint64_t payload_offset_of(int i) const {
    return record_offset(i) + payload_offset(headers_[i].key_len);
  }
  std::byte* at(uint64_t off) { return store_.bytes().data() + off; }

  // Rewrites record i's header through `edit`, with a valid header CRC: only the edited field
  // is wrong, which is what a scan must catch by other means than the CRC.
  void rewrite_record(int i, const std::function<void(RecordHeader&)>& edit) {
    RecordHeader h = headers_[i];
    edit(h);
    const std::string key = object_of(i).key;
    std::vector<std::byte> buf(payload_offset(h.key_len));
    std::span<const std::byte> key_bytes(reinterpret_cast<const std::byte*>(key.data()), key.size());
    encode_record_header(h, key_bytes.first(h.key_len), buf);
    std::copy(buf.begin(), buf.end(), at(record_offset(i)));
  }
  // Rewrites a raw header field of record i and recomputes the header CRC over it.
  template <typename T>
  void rewrite_record_field(int i, size_t field, T v) {
    std::byte* rec = at(record_offset(i));
    put_le<T>(rec + field, v);
    uint32_t crc = crc32c(rec, rec_off::kHeaderCrc);
    crc = crc32c_extend(crc, rec + kRecordHeaderBytes, headers_[i].key_len);
    put_le<uint32_t>(rec + rec_off::kHeaderCrc, crc);
  }
  // Rewrites a field of both ring header copies, recomputing their CRCs.
  template <typename T>
  void rewrite_ring_field(int copy, size_t field, T v) {
    std::byte* h = at(copy * kHeaderSlotBytes);
    put_le<T>(h + field, v);
    put_le<uint32_t>(h + ring_off::kCrc, crc32c(h, ring_off::kCrc));
  }

  // The scan ends with `end` and a message naming `why`, after exactly `valid` records.
  void expect_scan(int valid, ScanEnd end, const std::string& why) {
    uint64_t seen = 0;
    auto rec = scan_ring(store_, [&](const RecordView& v) {
      EXPECT_EQ(v.header.lsn, seen + 1);
      ++seen;
    });
    ASSERT_TRUE(rec.is_ok()) << rec.status().to_string();
    EXPECT_EQ(rec->records, static_cast<uint64_t>(valid));
    EXPECT_EQ(rec->end, end) << scan_end_name(rec->end) << ": " << rec->end_message;
    EXPECT_TRUE(contains(rec->end_message, why)) << rec->end_message;
    EXPECT_EQ(rec->next_lsn, static_cast<uint64_t>(valid + 1));
  }

  // Recovery over the damaged ring applies records [0, valid) to a fresh medium and nothing
  // else; the recovery report says why the log ended.
  void expect_recovery_applies(int valid, ScanEnd end) {
    MemTarget target;
    RecoveryReport report;
    {
      auto cache = NvCache::open(store_, target, quiet(), &report);
      ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
      ASSERT_TRUE((*cache)->flush_all().is_ok());
    }
    EXPECT_EQ(report.ring.end, end);
    EXPECT_EQ(report.records_indexed, static_cast<uint64_t>(valid));
    ASSERT_EQ(target.object_count(), static_cast<size_t>(valid)) << "records after the damage applied";
    for (int i = 0; i < valid; ++i) EXPECT_EQ(target.durable(object_of(i)), payload_of(i)) << i;
  }

  // The header is unusable: the scan and the open fail with `why`, and nothing reaches the medium.
  void expect_refused(const std::string& why) {
    auto rec = scan_ring(store_, [](const RecordView&) {});
    ASSERT_FALSE(rec.is_ok());
    EXPECT_EQ(rec.status().code(), Code::kCorruption);
    EXPECT_TRUE(contains(rec.status().message(), why)) << rec.status().message();
    MemTarget target;
    auto cache = NvCache::open(store_, target, quiet());
    ASSERT_FALSE(cache.is_ok());
    EXPECT_EQ(cache.status().code(), Code::kCorruption);
    EXPECT_TRUE(contains(cache.status().message(), "NV log recovery")) << cache.status().message();
    EXPECT_TRUE(contains(cache.status().message(), why)) << cache.status().message();
    EXPECT_EQ(target.object_count(), 0u);
  }

  MemStore store_{kRingBytes};
  std::vector<RecordHeader> headers_;
};

TEST_F(CorruptionTest, UndamagedRingRecoversEveryRecord) {
  expect_scan(kRecords, ScanEnd::kClean, "end at position");
  expect_recovery_applies(kRecords, ScanEnd::kClean);
}

// ---- the ring header ------------------------------------------------------------------------

TEST_F(CorruptionTest, StoreLargerThanTheHeaderSaysIsRefusedWithBothSizes) {
  store_.bytes().resize(kRingBytes + 4096);
  expect_refused("ring header says " + std::to_string(kRingBytes) + " bytes but the store has " +
                 std::to_string(kRingBytes + 4096));
}

TEST_F(CorruptionTest, StoreSmallerThanTheHeaderSaysIsRefusedWithBothSizes) {
  store_.bytes().resize(kRingBytes - 4096);
  expect_refused("ring header says " + std::to_string(kRingBytes) + " bytes but the store has " +
                 std::to_string(kRingBytes - 4096));
}

TEST_F(CorruptionTest, StoreSmallerThanAnyRingIsRefused) {
  store_.bytes().resize(kMinRingBytes - 4096);
  expect_refused("smaller than the smallest ring");
}

TEST_F(CorruptionTest, RingOfAnotherVersionIsRefused) {
  rewrite_ring_field<uint32_t>(0, ring_off::kVersion, 3);
  rewrite_ring_field<uint32_t>(1, ring_off::kVersion, 3);
  expect_refused("unsupported ring version 3 (this build reads versions 1 to 2)");
}

TEST_F(CorruptionTest, RingWithAnotherMagicIsRefused) {
  rewrite_ring_field<uint64_t>(0, ring_off::kMagic, 0x4641484E52474E31ull);
  rewrite_ring_field<uint64_t>(1, ring_off::kMagic, 0x4641484E52474E31ull);
  expect_refused("bad ring magic");
}

TEST_F(CorruptionTest, HeaderCopyACorruptFallsBackToCopyBAndLosesNothing) {
  // Copy A holds the newest header (the writer session that appended every record).
  *at(ring_off::kTrimLsn) ^= std::byte{0x10};
  std::string report;
  auto h = read_ring_header(store_, &report);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_TRUE(contains(report, "header copy A: ring header CRC mismatch")) << report;
  expect_scan(kRecords, ScanEnd::kClean, "end at position");
  MemTarget target;
  RecoveryReport rec;
  {
    auto cache = NvCache::open(store_, target, quiet(), &rec);
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    EXPECT_TRUE(contains(rec.ring.header_report, "header copy A")) << rec.ring.header_report;
    ASSERT_TRUE((*cache)->flush_all().is_ok());
  }
  ASSERT_EQ(target.object_count(), static_cast<size_t>(kRecords));
  for (int i = 0; i < kRecords; ++i) EXPECT_EQ(target.durable(object_of(i)), payload_of(i)) << i;
  // Opening rewrote the damaged copy: both are valid again.
  report.clear();
  ASSERT_TRUE(read_ring_header(store_, &report).is_ok());
  EXPECT_EQ(report, "");
}

TEST_F(CorruptionTest, HeaderCopyBCorruptFallsBackToCopyAAndLosesNothing) {
  *at(kHeaderSlotBytes + ring_off::kSession) ^= std::byte{0x01};
  std::string report;
  ASSERT_TRUE(read_ring_header(store_, &report).is_ok());
  EXPECT_TRUE(contains(report, "header copy B: ring header CRC mismatch")) << report;
  EXPECT_FALSE(contains(report, "copy A")) << report;
  expect_scan(kRecords, ScanEnd::kClean, "end at position");
  expect_recovery_applies(kRecords, ScanEnd::kClean);
}

TEST_F(CorruptionTest, BothHeaderCopiesCorruptIsACorruptionErrorNamingBoth) {
  *at(ring_off::kRingId) ^= std::byte{0x01};
  *at(kHeaderSlotBytes + ring_off::kRingId) ^= std::byte{0x01};
  expect_refused("no valid ring header (header copy A: ring header CRC mismatch; header copy B: "
                 "ring header CRC mismatch)");
}

// ---- records --------------------------------------------------------------------------------

TEST_F(CorruptionTest, TornPayloadOfTheLastRecordEndsTheLogBeforeIt) {
  *at(payload_offset_of(kRecords - 1) + kPayloadBytes - 1) ^= std::byte{0xff};
  expect_scan(kRecords - 1, ScanEnd::kTorn,
              "payload CRC mismatch at position " + std::to_string(headers_[kRecords - 1].pos) +
                  " (LSN 5 expected)");
  expect_recovery_applies(kRecords - 1, ScanEnd::kTorn);
}

TEST_F(CorruptionTest, TornHeaderOfTheLastRecordEndsTheLogBeforeIt) {
  *at(record_offset(kRecords - 1) + rec_off::kEpoch) ^= std::byte{0x02};
  expect_scan(kRecords - 1, ScanEnd::kTorn, "header CRC mismatch");
  expect_recovery_applies(kRecords - 1, ScanEnd::kTorn);
}

TEST_F(CorruptionTest, TornKeyOfARecordIsCaughtByTheHeaderCrc) {
  *at(record_offset(3) + kRecordHeaderBytes) ^= std::byte{0x01};  // "obj-3" -> "nbj-3"
  expect_scan(3, ScanEnd::kTorn, "header CRC mismatch");
  expect_recovery_applies(3, ScanEnd::kTorn);
}

TEST_F(CorruptionTest, FlippedBitInAMiddlePayloadStopsThereAndLaterRecordsAreNotApplied) {
  *at(payload_offset_of(2) + 17) ^= std::byte{0x08};
  expect_scan(2, ScanEnd::kTorn, "payload CRC mismatch at position " +
                                     std::to_string(headers_[2].pos) + " (LSN 3 expected)");
  expect_recovery_applies(2, ScanEnd::kTorn);
}

TEST_F(CorruptionTest, LsnGapEndsTheLogAndIsReportedAsAGap) {
  rewrite_record(2, [](RecordHeader& h) { h.lsn = 10; });
  expect_scan(2, ScanEnd::kGap, "LSN 10 found at position " + std::to_string(headers_[2].pos) +
                                    " (LSN 3 expected)");
  expect_recovery_applies(2, ScanEnd::kGap);
}

TEST_F(CorruptionTest, RecordWithAnOlderLsnIsTheCleanEndOfAnEarlierLap) {
  rewrite_record(2, [](RecordHeader& h) { h.lsn = 1; });
  expect_scan(2, ScanEnd::kClean, "end at position");
  expect_recovery_applies(2, ScanEnd::kClean);
}

TEST_F(CorruptionTest, PayloadLengthBeyondTheMaximumIsCorrupt) {
  rewrite_record(2, [](RecordHeader& h) { h.payload_len = kMaxPayloadBytes + 1; });
  expect_scan(2, ScanEnd::kCorrupt, "payload length " + std::to_string(kMaxPayloadBytes + 1));
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, PayloadLengthPastTheEndOfTheDataAreaIsCorrupt) {
  rewrite_record(2, [](RecordHeader& h) { h.payload_len = 200 * 1024; });
  expect_scan(2, ScanEnd::kCorrupt, "impossible with");
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, PadThatDoesNotReachTheEndOfTheDataAreaIsCorrupt) {
  rewrite_record(2, [](RecordHeader& h) {
    h.type = RecordType::kPad;
    h.key_len = 0;
    h.payload_len = 64;
  });
  expect_scan(2, ScanEnd::kCorrupt, "impossible with");
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, RecordThatClaimsAnotherPositionIsCorrupt) {
  rewrite_record(2, [](RecordHeader& h) { h.pos += kRecordAlign; });
  expect_scan(2, ScanEnd::kCorrupt, "record says position " +
                                        std::to_string(headers_[2].pos + kRecordAlign));
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, RecordOfAnotherRingIsTheCleanEnd) {
  rewrite_record(2, [](RecordHeader& h) { h.ring_tag ^= 0x1; });
  expect_scan(2, ScanEnd::kClean, "record of another ring");
  expect_recovery_applies(2, ScanEnd::kClean);
}

TEST_F(CorruptionTest, RecordOfAnUnknownTypeIsCorrupt) {
  rewrite_record_field<uint8_t>(2, rec_off::kType, 9);
  expect_scan(2, ScanEnd::kCorrupt, "unknown record type 9");
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, RecordOfAnotherVersionIsCorrupt) {
  rewrite_record_field<uint8_t>(2, rec_off::kVersion, 3);
  expect_scan(2, ScanEnd::kCorrupt, "unsupported record version 3");
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, RecordWithAKeyTooLongIsCorrupt) {
  rewrite_record_field<uint16_t>(2, rec_off::kKeyLen, kMaxKeyBytes + 1);
  expect_scan(2, ScanEnd::kCorrupt, "key length 129 exceeds 128");
  expect_recovery_applies(2, ScanEnd::kCorrupt);
}

TEST_F(CorruptionTest, ZeroedRecordIsTheCleanEndAndHidesEverythingAfterIt) {
  std::fill(at(record_offset(1)), at(record_offset(1) + kRecordHeaderBytes), std::byte{0});
  expect_scan(1, ScanEnd::kClean, "end at position " + std::to_string(headers_[1].pos));
  expect_recovery_applies(1, ScanEnd::kClean);
}

// ---- a stale record of an earlier session -----------------------------------------------------

// Session 1 persisted LSN 3 but crashed before LSN 2 was written: recovery ends at LSN 2. Session
// 2 then appends its own LSN 2, of the same size, so the head lands exactly on the old LSN 3: a
// record with a valid CRC, this ring's tag, the next LSN and the right position. Only its older
// session tells that it was never acknowledged; it must never be returned or applied.
TEST(StaleSessionTest, OldRecordRightAfterTheNewHeadIsNotReturned) {
  MemStore store(kRingBytes);
  ASSERT_TRUE(Log::format(store, 7, kRingId).is_ok());
  const std::string key0 = object_of(0).key, key1 = object_of(1).key, key2 = object_of(2).key;
  auto spec = [](const std::string& key, const std::vector<std::byte>& payload) {
    return AppendSpec{1, 1, std::span(reinterpret_cast<const std::byte*>(key.data()), key.size()),
                      0, payload};
  };
  const auto p0 = payload_of(0), p1 = payload_of(1), p2 = payload_of(2);
  {
    auto rec = scan_ring(store, [](const RecordView&) {});
    ASSERT_TRUE(rec.is_ok());
    auto log = Log::open(store, *rec, {});
    ASSERT_TRUE(log.is_ok());
    ASSERT_EQ((*log)->session(), 1u);
    ASSERT_TRUE((*log)->append(spec(key0, p0)).is_ok());
    auto r2 = (*log)->reserve(static_cast<uint16_t>(key1.size()), kPayloadBytes);
    auto r3 = (*log)->reserve(static_cast<uint16_t>(key2.size()), kPayloadBytes);
    ASSERT_TRUE(r2.is_ok() && r3.is_ok());
    ASSERT_EQ(r3->lsn, 3u);
    ASSERT_TRUE((*log)->fill(*r3, spec(key2, p2)).is_ok());  // LSN 3 reaches the store...
    ASSERT_TRUE((*log)->persist(*r3).is_ok());
    // ...and the node dies before LSN 2 is written: neither is acknowledged.
  }
  MemTarget first;
  {
    RecoveryReport report;
    auto cache = NvCache::open(store, first, quiet(), &report);
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    EXPECT_EQ(report.ring.records, 1u);
    EXPECT_EQ(report.ring.next_lsn, 2u);
    EXPECT_EQ((*cache)->log().session(), 2u);
    auto lsn = (*cache)->write(object_of(1), 1, 0, payload_of(1));
    ASSERT_TRUE(lsn.is_ok());
    ASSERT_EQ(*lsn, 2u);  // the head is now where session 1 put its LSN 3
  }
  std::vector<uint64_t> lsns;
  std::vector<uint32_t> sessions;
  auto rec = scan_ring(store, [&](const RecordView& v) {
    lsns.push_back(v.header.lsn);
    sessions.push_back(v.header.session);
  });
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(lsns, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(sessions, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(rec->end, ScanEnd::kClean);
  EXPECT_TRUE(contains(rec->end_message, "record of session 1 after session 2")) << rec->end_message;

  MemTarget target;
  {
    auto cache = NvCache::open(store, target, quiet());
    ASSERT_TRUE(cache.is_ok());
    ASSERT_TRUE((*cache)->flush_all().is_ok());
  }
  ASSERT_EQ(target.object_count(), 2u) << "the stale record of session 1 was applied";
  EXPECT_EQ(target.durable(object_of(0)), p0);
  EXPECT_EQ(target.durable(object_of(1)), p1);
}

}  // namespace
}  // namespace hafs::nvcache
