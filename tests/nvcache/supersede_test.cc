// Superseded records (docs/membership.md, rule 7): once the partner holds a volume at a newer
// epoch, this node's records of it at older epochs are voided in the ring (RecordType::kVoid)
// and never acknowledged. The partner's mirror refuses them, so a resync that shipped them
// unvoided would be refused for ever.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"

namespace hafs::nvcache {
namespace {

using testing::MemTarget;

constexpr uint64_t kRingBytes = kDataOffset + 1024 * 1024;

std::vector<std::byte> bytes_of(int n, char c) { return std::vector<std::byte>(n, std::byte(c)); }

class SupersedeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Log::format(store_, 3, 0x5eed).is_ok());
    NvCacheOptions o;
    o.logger = Logger("supersede-test", LogLevel::kError);
    o.destage_interval_ms = 5;
    o.on_damage = [this](const Status&) { damage_reported_ = true; };
    auto cache = NvCache::open(store_, target_, o);
    ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
    cache_ = std::move(*cache);
    // Nothing is destaged: the records stay in the ring, as a lost volume's do (paused).
    cache_->pause_volume(1);
    cache_->pause_volume(2);
    cache_->start_destager();
  }
  void TearDown() override { cache_->stop(); }

  // Waits (bounded) for the destager to have voided `n` records in all.
  bool voided(uint64_t n) {
    for (int i = 0; i < 2000 && cache_->stats().records_voided < n; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return cache_->stats().records_voided == n;
  }

  MemStore store_{kRingBytes};
  MemTarget target_;
  std::unique_ptr<NvCache> cache_;
  bool damage_reported_ = false;
};

TEST_F(SupersedeTest, OlderRecordsOfTheVolumeAreVoidedInPlaceAndSkippedByEveryReader) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache_->write(ObjectId{1, "a"}, 1, i * 100, bytes_of(100, 'a')).is_ok());
  ASSERT_TRUE(cache_->write(ObjectId{2, "b"}, 1, 0, bytes_of(100, 'b')).is_ok());
  ASSERT_TRUE(cache_->write(ObjectId{1, "c"}, 3, 0, bytes_of(100, 'c')).is_ok());
  cache_->supersede(1, 3);  // the partner took volume 1 over at epoch 3
  ASSERT_TRUE(voided(4)) << cache_->stats().records_voided;

  std::vector<RecordHeader> seen;
  auto rec = scan_ring(store_, [&](const RecordView& v) { seen.push_back(v.header); });
  ASSERT_TRUE(rec.is_ok()) << rec.status().to_string();
  EXPECT_EQ(rec->end, ScanEnd::kClean) << rec->end_message;
  EXPECT_EQ(rec->next_lsn, 7u) << "voided records keep their place in the LSN sequence";
  ASSERT_EQ(seen.size(), 2u) << "recovery and replay skip voided records";
  EXPECT_EQ(seen[0].volume_id, 2u);
  EXPECT_EQ(seen[1].epoch, 3u);
  // In place: the first record's header says VOID, and its key and payload are still there.
  auto h = decode_record_header(std::span<const std::byte, kRecordHeaderBytes>(
      store_.bytes().data() + kDataOffset, kRecordHeaderBytes));
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->type, RecordType::kVoid);
  EXPECT_EQ(h->volume_id, 1u);
  EXPECT_EQ(h->payload_len, 100u);
  // A read of the voided extents is refused as stale, not reported as damage.
  auto snap = cache_->snapshot(ObjectId{1, "a"}, 0, 400);
  ASSERT_FALSE(snap.is_ok());
  EXPECT_EQ(snap.status().code(), Code::kStaleEpoch) << snap.status().to_string();
  EXPECT_FALSE(damage_reported_);
}

TEST_F(SupersedeTest, AWriteOfASupersededEpochIsNeverAcknowledgedAndItsRecordIsVoided) {
  cache_->supersede(1, 3);
  auto w = cache_->write(ObjectId{1, "a"}, 2, 0, bytes_of(100, 'x'));
  ASSERT_FALSE(w.is_ok());
  EXPECT_EQ(w.status().code(), Code::kStaleEpoch) << w.status().to_string();
  EXPECT_TRUE(voided(1));
  // The volume's newer epoch and other volumes are untouched.
  EXPECT_TRUE(cache_->write(ObjectId{1, "a"}, 3, 0, bytes_of(100, 'y')).is_ok());
  EXPECT_TRUE(cache_->write(ObjectId{2, "a"}, 1, 0, bytes_of(100, 'z')).is_ok());
  EXPECT_TRUE(voided(1));
  // A lower epoch later changes nothing (supersede only goes up).
  cache_->supersede(1, 2);
  EXPECT_FALSE(cache_->write(ObjectId{1, "b"}, 2, 0, bytes_of(10, 'q')).is_ok());
}

}  // namespace
}  // namespace hafs::nvcache
