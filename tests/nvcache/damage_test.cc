// Damage inside the log is never its end (invariant I5, docs/log-format.md "Torn tail or
// damage"): a ring of many acknowledged records gets one byte edited in the middle, and
// recovery must refuse it (kDataLoss, naming the damaged range) instead of serving the records
// before it as if nothing came after. The same edit among the last records is damage too when
// the ring's complete mark covers them (they were acknowledged), and a torn tail when they were
// still in flight at the crash: then it ends the log quietly.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"
#include "tests/nvcache/ring_edit.h"

namespace hafs::nvcache {
namespace {

using testing::MemTarget;

constexpr uint64_t kRingBytes = kDataOffset + 1024 * 1024;
constexpr int kRecords = 300;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

NvCacheOptions quiet() {
  NvCacheOptions o;
  o.logger = Logger("damage-test", LogLevel::kError);
  return o;
}

class DamageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Log::format(store_, 3, 0x5151).is_ok());
    MemTarget unused;
    auto cache = NvCache::open(store_, unused, quiet());
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    for (int i = 0; i < kRecords; ++i) {
      std::vector<std::byte> data(100 + i % 7 * 50, std::byte(i & 0xff));
      ASSERT_TRUE((*cache)->write(ObjectId{1, "f" + std::to_string(i % 9)}, 1, uint64_t(i) * 512, data).is_ok());
    }
    auto rec = scan_ring(store_, [&](const RecordView& v) { pos_.push_back(v.header.pos); keylen_.push_back(v.header.key_len); });
    ASSERT_TRUE(rec.is_ok());
    ASSERT_EQ(pos_.size(), static_cast<size_t>(kRecords));
  }
  std::byte* record(int i) { return store_.bytes().data() + kDataOffset + pos_[i]; }

  // Recovery refuses the ring and names LSN i + 1 as the first damaged record.
  void expect_damage_at(int i) {
    auto rec = scan_ring(store_, [](const RecordView&) {});
    ASSERT_TRUE(rec.is_ok()) << rec.status().to_string();
    EXPECT_EQ(rec->end, ScanEnd::kDamaged) << rec->end_message;
    ASSERT_TRUE(rec->damage.has_value());
    EXPECT_EQ(rec->damage->bad_lsn, static_cast<uint64_t>(i + 1));
    EXPECT_EQ(rec->damage->last_valid_lsn, static_cast<uint64_t>(kRecords));
    EXPECT_TRUE(contains(rec->end_message, "damaged")) << rec->end_message;
    MemTarget target;
    RecoveryReport report;
    auto cache = NvCache::open(store_, target, quiet(), &report);
    ASSERT_FALSE(cache.is_ok());
    EXPECT_EQ(cache.status().code(), Code::kDataLoss);
    EXPECT_TRUE(contains(cache.status().message(), "LSN " + std::to_string(i + 1))) << cache.status().message();
    EXPECT_TRUE(report.ring.damage.has_value());
    EXPECT_EQ(target.object_count(), 0u) << "a damaged log must not reach the medium";
  }
  void expect_torn_tail_at(int i) {
    auto rec = scan_ring(store_, [](const RecordView&) {});
    ASSERT_TRUE(rec.is_ok());
    EXPECT_NE(rec->end, ScanEnd::kDamaged) << rec->end_message;
    EXPECT_EQ(rec->records, static_cast<uint64_t>(i));
    MemTarget target;
    EXPECT_TRUE(NvCache::open(store_, target, quiet()).is_ok());
  }

  MemStore store_{kRingBytes};
  std::vector<uint64_t> pos_;
  std::vector<uint16_t> keylen_;
};

TEST_F(DamageTest, FlippedPayloadByteInTheMiddleIsDamage) {
  record(100)[payload_offset(keylen_[100]) + 3] ^= std::byte{0x20};
  expect_damage_at(100);
}

TEST_F(DamageTest, FlippedMagicByteInTheMiddleIsDamageNotACleanEnd) {
  record(150)[rec_off::kMagic] ^= std::byte{0x01};
  expect_damage_at(150);
}

TEST_F(DamageTest, FlippedLsnByteInTheMiddleIsDamage) {
  record(120)[rec_off::kLsn] ^= std::byte{0x04};
  expect_damage_at(120);
}

TEST_F(DamageTest, ZeroedRecordInTheMiddleIsDamage) {
  std::fill(record(42), record(42) + kRecordHeaderBytes, std::byte{0});
  expect_damage_at(42);
}

// A crash with records i.. in flight: the complete mark stops before them.
TEST_F(DamageTest, DamageAmongTheLastRecordsInFlightIsATornTail) {
  const int i = kRecords - static_cast<int>(kMaxRecordsInFlight) + 1;
  testing::rewind_complete_mark(store_, i + 1, pos_[i]);
  record(i)[payload_offset(keylen_[i]) + 1] ^= std::byte{0x10};
  expect_torn_tail_at(i);
}

TEST_F(DamageTest, TheLastRecordTornIsATornTail) {
  testing::rewind_complete_mark(store_, kRecords, pos_[kRecords - 1]);
  record(kRecords - 1)[payload_offset(keylen_[kRecords - 1])] ^= std::byte{0xff};
  expect_torn_tail_at(kRecords - 1);
}

// The same bytes going bad after the records were acknowledged (found by the whole-pair
// simulator: a flip in a down node's log, its partner unreachable at the restart): the complete
// mark covers them, so they are damage, not a torn tail, however few records follow.
TEST_F(DamageTest, TheLastRecordGoneBadAfterItsAcknowledgementIsDamage) {
  record(kRecords - 1)[payload_offset(keylen_[kRecords - 1])] ^= std::byte{0xff};
  expect_damage_at(kRecords - 1);
  auto rec = scan_ring(store_, [](const RecordView&) {});
  ASSERT_TRUE(rec.is_ok());
  EXPECT_TRUE(rec->damage->from_complete_mark);
  EXPECT_TRUE(contains(rec->end_message, "complete mark")) << rec->end_message;
}

TEST_F(DamageTest, AFlippedMagicAmongTheLastRecordsIsDamageNotACleanEnd) {
  record(kRecords - 3)[rec_off::kMagic] ^= std::byte{0x01};
  expect_damage_at(kRecords - 3);
}

// A torn (or flipped) newest copy of the mark: the other copy, one completion older, still
// covers all but the last record.
TEST_F(DamageTest, TheOlderCopyOfTheMarkStandsInForATornNewerOne) {
  auto newest = read_complete_mark(store_, 0x5151);
  ASSERT_TRUE(newest.is_ok() && newest->has_value());
  ASSERT_EQ((*newest)->lsn, static_cast<uint64_t>(kRecords + 1));
  for (uint64_t copy = 0; copy < 2; ++copy) {
    std::byte* mark = store_.bytes().data() + copy * kHeaderSlotBytes + kCompleteMarkOffset;
    auto m = decode_complete_mark(std::span<const std::byte>(mark, kEncodedCompleteMark));
    if (m && m->lsn == (*newest)->lsn) mark[20] ^= std::byte{0x40};  // tear the newer copy
  }
  auto older = read_complete_mark(store_, 0x5151);
  ASSERT_TRUE(older.is_ok() && older->has_value());
  EXPECT_EQ((*older)->lsn, static_cast<uint64_t>(kRecords));
  record(kRecords - 2)[payload_offset(keylen_[kRecords - 2]) + 5] ^= std::byte{0x08};
  auto rec = scan_ring(store_, [](const RecordView&) {});
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(rec->end, ScanEnd::kDamaged) << rec->end_message;
  EXPECT_EQ(rec->damage->bad_lsn, static_cast<uint64_t>(kRecords - 1));
}

// A mirror with damage inside is refused by a takeover's replay unless the loss is accepted,
// and then only the records before the damage are applied.
TEST_F(DamageTest, ReplayRefusesADamagedMirrorUnlessTheLossIsAccepted) {
  record(100)[payload_offset(keylen_[100]) + 3] ^= std::byte{0x20};
  MemTarget target;
  auto all = [](uint32_t, uint64_t) { return true; };
  auto refused = replay_ring(store_, target, all, false, nullptr, Logger("replay", LogLevel::kError));
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), Code::kDataLoss);
  EXPECT_EQ(target.object_count(), 0u);
  auto accepted = replay_ring(store_, target, all, true, nullptr, Logger("replay", LogLevel::kError));
  ASSERT_TRUE(accepted.is_ok()) << accepted.status().to_string();
  EXPECT_EQ(accepted->ring.next_lsn, 101u);
}

// A byte that goes bad in a staged record while the cache runs (found by the whole-pair
// simulator): a reader gets EIO, never the bad byte; the destager writes nothing of the object;
// the owner is told once; and the record is marked DAMAGED, so that the next recovery reports
// damage although fewer than kMaxRecordsInFlight records follow it (a torn tail otherwise).
TEST(RunningDamageTest, ABadStagedRecordIsNeitherServedNorDestagedAndStaysDamage) {
  MemStore store(kRingBytes);
  ASSERT_TRUE(Log::format(store, 3, 0x5252).is_ok());
  MemTarget target;
  int told = 0;
  Status why;
  NvCacheOptions opts = quiet();
  opts.on_damage = [&](const Status& s) { ++told; why = s; };
  auto cache = NvCache::open(store, target, opts);
  ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
  const ObjectId object{1, "f"};
  for (int i = 0; i < 10; ++i) {
    std::vector<std::byte> data(256, std::byte(i + 1));
    ASSERT_TRUE((*cache)->write(object, 1, uint64_t(i) * 256, data).is_ok());
  }
  std::vector<uint64_t> pos;
  std::vector<uint16_t> keylen;
  ASSERT_TRUE(scan_ring(store, [&](const RecordView& v) { pos.push_back(v.header.pos); keylen.push_back(v.header.key_len); }).is_ok());
  ASSERT_EQ(pos.size(), 10u);
  store.bytes()[kDataOffset + pos[2] + payload_offset(keylen[2]) + 5] ^= std::byte{0x40};

  auto read = (*cache)->snapshot(object, 0, 10 * 256);
  ASSERT_FALSE(read.is_ok()) << "the bad byte was served";
  EXPECT_EQ(read.status().code(), Code::kDataLoss);
  EXPECT_EQ(read.status().to_errno(), EIO);
  EXPECT_EQ(told, 1);
  EXPECT_TRUE(contains(why.message(), "LSN 3")) << why.message();
  EXPECT_FALSE((*cache)->flush_all().is_ok());
  EXPECT_EQ(target.object_count(), 0u) << "a damaged record reached the medium";
  EXPECT_EQ(told, 1) << "told once";
  (*cache)->stop();
  cache->reset();

  auto rec = scan_ring(store, [](const RecordView&) {});
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(rec->end, ScanEnd::kDamaged) << rec->end_message;
  EXPECT_TRUE(contains(rec->end_message, "DAMAGED marker")) << rec->end_message;
  ASSERT_TRUE(rec->damage.has_value());
  EXPECT_EQ(rec->damage->bad_lsn, 3u);
  EXPECT_EQ(rec->damage->last_valid_lsn, 10u);
  MemTarget again;
  auto reopened = NvCache::open(store, again, quiet());
  ASSERT_FALSE(reopened.is_ok()) << "a restart took the damage for a torn tail";
  EXPECT_EQ(reopened.status().code(), Code::kDataLoss);

  // A second byte going bad in an earlier record (found by the simulator) must not hide the
  // marker behind a scan that now stops earlier and looks like a torn tail.
  store.bytes()[kDataOffset + pos[1] + payload_offset(keylen[1]) + 7] ^= std::byte{0x08};
  auto rec2 = scan_ring(store, [](const RecordView&) {});
  ASSERT_TRUE(rec2.is_ok());
  EXPECT_EQ(rec2->end, ScanEnd::kDamaged) << rec2->end_message;
  ASSERT_TRUE(rec2->damage.has_value());
  EXPECT_EQ(rec2->damage->bad_lsn, 2u);
  MemTarget third;
  EXPECT_EQ(NvCache::open(store, third, quiet()).status().code(), Code::kDataLoss);
}

// The writer keeps at most kMaxRecordsInFlight records between reserve and complete: the next
// reservation waits until the oldest completes. That bound is what the torn-tail rule rests on.
TEST(InFlightBoundTest, ReservationsBeyondTheBoundWaitForTheOldestToComplete) {
  MemStore store(kDataOffset + 4 * 1024 * 1024);
  ASSERT_TRUE(Log::format(store, 1, 77).is_ok());
  auto ring = scan_ring(store, [](const RecordView&) {});
  ASSERT_TRUE(ring.is_ok());
  auto log = Log::open(store, *ring, LogOptions{Logger("bound", LogLevel::kError), nullptr});
  ASSERT_TRUE(log.is_ok());
  const std::string key = "k";
  const std::vector<std::byte> payload(64, std::byte{1});
  std::vector<Reservation> held;
  for (uint64_t i = 0; i < kMaxRecordsInFlight; ++i) {
    auto r = (*log)->reserve(1, 64);
    ASSERT_TRUE(r.is_ok());
    held.push_back(*r);
  }
  auto next = std::async(std::launch::async, [&] { return (*log)->reserve(1, 64); });
  EXPECT_EQ(next.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "a reservation went beyond the in-flight bound";
  AppendSpec spec{1, 1, std::span(reinterpret_cast<const std::byte*>(key.data()), key.size()), 0, payload};
  ASSERT_TRUE((*log)->fill(held[0], spec).is_ok());
  ASSERT_TRUE((*log)->persist(held[0]).is_ok());
  ASSERT_TRUE((*log)->complete(held[0]).is_ok());
  ASSERT_EQ(next.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  auto r = next.get();
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->lsn, kMaxRecordsInFlight + 1);
  (*log)->shutdown();
}


// A store whose byte at `armed` turns bad right after the first read that covers it: the moment
// between a check of a record and a second read of its bytes. Found by the whole-pair simulator
// (seed 8732042895777086480): the destager checked a record, a byte flipped, and the destager's
// second read put it on the medium.
class GoesBadAfterARead final : public Store {
 public:
  explicit GoesBadAfterARead(MemStore& inner) : inner_(inner) {}
  uint64_t size() const override { return inner_.size(); }
  const char* kind() const override { return "goes-bad"; }
  Status write(uint64_t off, std::span<const std::byte> data) override { return inner_.write(off, data); }
  Status read(uint64_t off, std::span<std::byte> out) const override {
    HAFS_RETURN_IF_ERROR(inner_.read(off, out));
    if (armed_ >= off && armed_ < off + out.size()) {
      inner_.bytes()[armed_] ^= std::byte{0x40};
      armed_ = UINT64_MAX;
    }
    return Status::ok();
  }
  Status persist(uint64_t off, uint64_t len) override { return inner_.persist(off, len); }
  void arm(uint64_t offset) { armed_ = offset; }

 private:
  MemStore& inner_;
  mutable uint64_t armed_ = UINT64_MAX;
};

class CheckedBytesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Log::format(inner_, 3, 0x5353).is_ok());
    opts_.on_damage = [this](const Status&) { ++told_; };
    auto cache = NvCache::open(store_, target_, opts_);
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    cache_ = std::move(*cache);
    for (int i = 0; i < 4; ++i) {
      std::vector<std::byte> data(256, std::byte(i + 1));
      ASSERT_TRUE(cache_->write(object_, 1, uint64_t(i) * 256, data).is_ok());
    }
    std::vector<std::pair<uint64_t, uint16_t>> records;
    ASSERT_TRUE(scan_ring(inner_, [&](const RecordView& v) { records.push_back({v.header.pos, v.header.key_len}); }).is_ok());
    ASSERT_EQ(records.size(), 4u);
    store_.arm(kDataOffset + records[2].first + payload_offset(records[2].second) + 5);  // byte 517
  }
  void TearDown() override { if (cache_) cache_->stop(); }

  MemStore inner_{kRingBytes};
  GoesBadAfterARead store_{inner_};
  MemTarget target_;
  NvCacheOptions opts_ = quiet();
  int told_ = 0;
  std::unique_ptr<NvCache> cache_;
  const ObjectId object_{1, "f"};
};

TEST_F(CheckedBytesTest, AReaderGetsTheBytesItsCheckRead) {
  auto read = cache_->snapshot(object_, 0, 4 * 256);
  ASSERT_TRUE(read.is_ok()) << read.status().to_string();
  for (const auto& piece : *read) {
    if (piece.file_offset <= 517 && 517 < piece.file_offset + piece.data.size()) {
      EXPECT_EQ(piece.data[517 - piece.file_offset], std::byte{3}) << "a byte that went bad after its check was served";
    }
  }
}

TEST_F(CheckedBytesTest, TheDestagerWritesTheBytesItsCheckRead) {
  ASSERT_TRUE(cache_->flush_all().is_ok());
  const auto medium = target_.durable(object_);
  ASSERT_EQ(medium.size(), 4u * 256);
  EXPECT_EQ(medium[517], std::byte{3}) << "a byte that went bad after its check reached the medium";
  EXPECT_EQ(told_, 0);
}

}  // namespace
}  // namespace hafs::nvcache
