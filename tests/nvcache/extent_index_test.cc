// ExtentIndex: newest-wins staging of extents per object, checked case by case and against a
// byte-array reference model under thousands of seeded random inserts in random LSN orders.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "nvcache/extent_index.h"

namespace hafs::nvcache {
namespace {

const ObjectId kA{1, "object-a"};
const ObjectId kB{1, "object-b"};
const ObjectId kOtherVolumeA{2, "object-a"};

// Each write's ring bytes are identifiable: its data starts at lsn * 1e6, its record 64 before.
StagedExtent write_of(uint64_t lsn, uint64_t offset, uint64_t length) {
  return StagedExtent{offset, length, lsn, lsn % 7, lsn * 1000000, lsn * 1000000 - 64};
}

// An extent as (offset, length, lsn, data_pos), for compact expectations.
struct Piece {
  uint64_t offset, length, lsn, data_pos;
  bool operator==(const Piece&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Piece& p) {
  return os << "{off " << p.offset << " len " << p.length << " lsn " << p.lsn << " data "
            << p.data_pos << "}";
}
std::vector<Piece> pieces(const std::vector<StagedExtent>& v) {
  std::vector<Piece> out;
  for (const auto& e : v) out.push_back({e.file_offset, e.length, e.lsn, e.data_pos});
  return out;
}
Piece piece_of(uint64_t lsn, uint64_t offset, uint64_t length, uint64_t skip = 0) {
  return {offset, length, lsn, lsn * 1000000 + skip};
}

TEST(ExtentIndexTest, EmptyIndexHasNothing) {
  ExtentIndex index;
  EXPECT_EQ(index.extent_count(), 0u);
  EXPECT_EQ(index.staged_bytes(), 0u);
  EXPECT_EQ(index.object_count(), 0u);
  EXPECT_FALSE(index.oldest().has_value());
  EXPECT_FALSE(index.contains(kA));
  EXPECT_FALSE(index.staged_end(kA).has_value());
  EXPECT_TRUE(index.lookup(kA, 0, 100).empty());
  EXPECT_TRUE(index.objects_to_destage(UINT64_MAX, UINT64_MAX).empty());
}

TEST(ExtentIndexTest, ZeroLengthInsertIsIgnored) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 10, 0));
  EXPECT_FALSE(index.contains(kA));
  EXPECT_EQ(index.extent_count(), 0u);
}

TEST(ExtentIndexTest, InsertIntoAnEmptyObjectIsOneExtent) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 100, 50));
  EXPECT_TRUE(index.contains(kA));
  EXPECT_EQ(pieces(index.extents_of(kA)), (std::vector<Piece>{piece_of(1, 100, 50)}));
  EXPECT_EQ(index.extent_count(), 1u);
  EXPECT_EQ(index.staged_bytes(), 50u);
  EXPECT_EQ(index.object_count(), 1u);
}

TEST(ExtentIndexTest, NewerWriteInTheMiddleSplitsTheOlderInThree) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 100));
  index.insert(kA, write_of(2, 40, 20));
  EXPECT_EQ(pieces(index.extents_of(kA)),
            (std::vector<Piece>{piece_of(1, 0, 40), piece_of(2, 40, 20), piece_of(1, 60, 40, 60)}));
  EXPECT_EQ(index.extent_count(), 3u);
  EXPECT_EQ(index.staged_bytes(), 100u);
}

TEST(ExtentIndexTest, NewerWriteOverlappingBothEndsTrimsTheOlderOnes) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 50));
  index.insert(kA, write_of(2, 50, 50));
  index.insert(kA, write_of(3, 30, 40));
  EXPECT_EQ(pieces(index.extents_of(kA)),
            (std::vector<Piece>{piece_of(1, 0, 30), piece_of(3, 30, 40), piece_of(2, 70, 30, 20)}));
  EXPECT_EQ(index.staged_bytes(), 100u);
}

TEST(ExtentIndexTest, NewerWriteCoveringSeveralOlderOnesReplacesThemAll) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 10, 10));
  index.insert(kA, write_of(2, 30, 10));
  index.insert(kA, write_of(3, 50, 10));
  index.insert(kA, write_of(4, 0, 100));
  EXPECT_EQ(pieces(index.extents_of(kA)), (std::vector<Piece>{piece_of(4, 0, 100)}));
  EXPECT_EQ(index.extent_count(), 1u);
  ASSERT_TRUE(index.oldest().has_value());
  EXPECT_EQ(index.oldest()->first, 4u);
}

TEST(ExtentIndexTest, RewriteOfTheSameRangeKeepsOnlyTheNewest) {
  ExtentIndex index;
  for (uint64_t lsn = 1; lsn <= 10; ++lsn) index.insert(kA, write_of(lsn, 0, 4096));
  EXPECT_EQ(pieces(index.extents_of(kA)), (std::vector<Piece>{piece_of(10, 0, 4096)}));
  EXPECT_EQ(index.staged_bytes(), 4096u);
}

TEST(ExtentIndexTest, OlderWriteInsertedAfterANewerOneOnlyFillsTheGaps) {
  ExtentIndex index;  // concurrent appenders index out of LSN order
  index.insert(kA, write_of(5, 40, 20));
  index.insert(kA, write_of(3, 0, 100));
  EXPECT_EQ(pieces(index.extents_of(kA)),
            (std::vector<Piece>{piece_of(3, 0, 40), piece_of(5, 40, 20), piece_of(3, 60, 40, 60)}));
  EXPECT_EQ(index.staged_bytes(), 100u);
}

TEST(ExtentIndexTest, OlderWriteEntirelyUnderNewerOnesLeavesNoPiece) {
  ExtentIndex index;
  index.insert(kA, write_of(7, 0, 60));
  index.insert(kA, write_of(8, 60, 40));
  index.insert(kA, write_of(2, 20, 70));
  EXPECT_EQ(pieces(index.extents_of(kA)),
            (std::vector<Piece>{piece_of(7, 0, 60), piece_of(8, 60, 40)}));
  EXPECT_EQ(index.extent_count(), 2u);
  EXPECT_EQ(index.oldest()->first, 7u);
}

TEST(ExtentIndexTest, OlderWriteBetweenNewerAndOlderExtentsReplacesOnlyTheOlder) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 100));   // oldest
  index.insert(kA, write_of(9, 20, 10));   // newest
  index.insert(kA, write_of(5, 10, 40));   // in between, arrives last
  EXPECT_EQ(pieces(index.extents_of(kA)),
            (std::vector<Piece>{piece_of(1, 0, 10), piece_of(5, 10, 10), piece_of(9, 20, 10),
                                piece_of(5, 30, 20, 20), piece_of(1, 50, 50, 50)}));
  EXPECT_EQ(index.staged_bytes(), 100u);
}

TEST(ExtentIndexTest, AdjacentExtentsStaySeparate) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 10));
  index.insert(kA, write_of(2, 10, 10));
  EXPECT_EQ(index.extent_count(), 2u);
  EXPECT_EQ(pieces(index.lookup(kA, 0, 20)),
            (std::vector<Piece>{piece_of(1, 0, 10), piece_of(2, 10, 10)}));
}

TEST(ExtentIndexTest, ObjectsAreTellApartByVolumeAndByEveryKeyByte) {
  ExtentIndex index;
  const ObjectId with_nul{1, std::string("ab\0c", 4)};
  const ObjectId prefix{1, "ab"};
  index.insert(kA, write_of(1, 0, 10));
  index.insert(kOtherVolumeA, write_of(2, 0, 20));
  index.insert(with_nul, write_of(3, 0, 30));
  index.insert(prefix, write_of(4, 0, 40));
  EXPECT_EQ(index.object_count(), 4u);
  EXPECT_EQ(index.staged_end(kA), 10u);
  EXPECT_EQ(index.staged_end(kOtherVolumeA), 20u);
  EXPECT_EQ(index.staged_end(with_nul), 30u);
  EXPECT_EQ(index.staged_end(prefix), 40u);
}

TEST(ExtentIndexTest, LookupClipsPiecesToTheRangeAndShiftsTheirRingPosition) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 100, 100));  // [100, 200)
  index.insert(kA, write_of(2, 300, 100));  // [300, 400)
  EXPECT_EQ(pieces(index.lookup(kA, 150, 200)),
            (std::vector<Piece>{piece_of(1, 150, 50, 50), piece_of(2, 300, 50)}));
  EXPECT_EQ(pieces(index.lookup(kA, 120, 10)), (std::vector<Piece>{piece_of(1, 120, 10, 20)}));
  EXPECT_EQ(pieces(index.lookup(kA, 0, 1000)),
            (std::vector<Piece>{piece_of(1, 100, 100), piece_of(2, 300, 100)}));
  EXPECT_TRUE(index.lookup(kA, 200, 100).empty());  // the hole between them
  EXPECT_TRUE(index.lookup(kA, 0, 100).empty());    // ends where the first begins
  EXPECT_TRUE(index.lookup(kA, 400, 10).empty());
  EXPECT_TRUE(index.lookup(kA, 150, 0).empty());
  EXPECT_TRUE(index.lookup(kB, 0, 1000).empty());
  // The clipped copy keeps the extent's identity.
  auto one = index.lookup(kA, 399, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].lsn, 2u);
  EXPECT_EQ(one[0].epoch, 2u);
  EXPECT_EQ(one[0].record_pos, 2u * 1000000 - 64);
  EXPECT_EQ(one[0].data_pos, 2u * 1000000 + 99);
}

TEST(ExtentIndexTest, StagedEndIsTheEndOfTheLastStagedByte) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 10));
  index.insert(kA, write_of(2, 500, 12));
  EXPECT_EQ(index.staged_end(kA), 512u);
  index.insert(kA, write_of(3, 100, 10));
  EXPECT_EQ(index.staged_end(kA), 512u);
  index.remove_upto(kA, 2);
  EXPECT_EQ(index.staged_end(kA), 110u);
  index.remove_upto(kA, 3);
  EXPECT_FALSE(index.staged_end(kA).has_value());
}

TEST(ExtentIndexTest, OldestIsTheLowestLiveLsnWithItsRecordPosition) {
  ExtentIndex index;
  index.insert(kB, write_of(5, 0, 10));
  index.insert(kA, write_of(3, 0, 10));
  index.insert(kA, write_of(8, 20, 10));
  ASSERT_TRUE(index.oldest().has_value());
  EXPECT_EQ(*index.oldest(), std::make_pair(uint64_t{3}, uint64_t{3 * 1000000 - 64}));
  index.insert(kA, write_of(9, 0, 10));  // supersedes LSN 3 entirely
  EXPECT_EQ(index.oldest()->first, 5u);
  index.remove_upto(kB, 5);
  EXPECT_EQ(index.oldest()->first, 8u);
  index.drop_object(kA);
  EXPECT_FALSE(index.oldest().has_value());
}

TEST(ExtentIndexTest, SplitOlderExtentKeepsItsLsnAsTheOldest) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 100));
  index.insert(kA, write_of(2, 10, 10));
  index.remove_upto(kA, 0);  // nothing at or below LSN 0
  EXPECT_EQ(index.extent_count(), 3u);
  EXPECT_EQ(index.oldest()->first, 1u);
  EXPECT_EQ(index.oldest()->second, 1u * 1000000 - 64);
}

TEST(ExtentIndexTest, RemoveUptoRemovesOnlyThatObjectsExtentsAtOrBelowTheLsn) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 10));
  index.insert(kA, write_of(2, 10, 10));
  index.insert(kA, write_of(3, 20, 10));
  index.insert(kB, write_of(4, 0, 10));
  index.remove_upto(kA, 2);
  EXPECT_EQ(pieces(index.extents_of(kA)), (std::vector<Piece>{piece_of(3, 20, 10)}));
  EXPECT_EQ(index.extents_of(kB).size(), 1u);
  EXPECT_EQ(index.extent_count(), 2u);
  EXPECT_EQ(index.staged_bytes(), 20u);
  index.remove_upto(kA, 3);
  EXPECT_FALSE(index.contains(kA));
  EXPECT_EQ(index.object_count(), 1u);
  index.remove_upto(ObjectId{9, "never"}, 100);  // unknown object: nothing happens
  EXPECT_EQ(index.extent_count(), 1u);
}

TEST(ExtentIndexTest, DropVolumeForgetsOnlyThatVolume) {
  ExtentIndex index;
  index.insert(kA, write_of(1, 0, 10));
  index.insert(kB, write_of(2, 0, 10));
  index.insert(kOtherVolumeA, write_of(3, 0, 10));
  index.drop_volume(1);
  EXPECT_FALSE(index.contains(kA));
  EXPECT_FALSE(index.contains(kB));
  EXPECT_TRUE(index.contains(kOtherVolumeA));
  EXPECT_EQ(index.extent_count(), 1u);
  EXPECT_EQ(index.staged_bytes(), 10u);
  EXPECT_EQ(index.oldest()->first, 3u);
  index.drop_volume(7);
  EXPECT_EQ(index.object_count(), 1u);
}

TEST(ExtentIndexTest, ObjectsToDestageAreListedOldestFirstUpToTheLsnAndByteBounds) {
  ExtentIndex index;
  const ObjectId c{1, "object-c"};
  index.insert(kB, write_of(1, 0, 100));
  index.insert(kA, write_of(2, 0, 100));
  index.insert(kB, write_of(3, 100, 100));
  index.insert(c, write_of(4, 0, 100));
  EXPECT_EQ(index.objects_to_destage(UINT64_MAX, UINT64_MAX), (std::vector<ObjectId>{kB, kA, c}));
  EXPECT_EQ(index.objects_to_destage(3, UINT64_MAX), (std::vector<ObjectId>{kB, kA}));
  EXPECT_EQ(index.objects_to_destage(0, UINT64_MAX), std::vector<ObjectId>{});
  // kB alone holds 200 bytes, which reaches the bound: one object per pass.
  EXPECT_EQ(index.objects_to_destage(UINT64_MAX, 150), std::vector<ObjectId>{kB});
  EXPECT_EQ(index.objects_to_destage(UINT64_MAX, 250), (std::vector<ObjectId>{kB, kA}));
}

// ---- randomized, against a reference model ------------------------------------------------

// For each byte of each object: the newest write that covers it (by LSN, whatever the order of
// insertion), or nothing once removed.
class ReferenceModel {
 public:
  explicit ReferenceModel(size_t object_bytes) : object_bytes_(object_bytes) {}
  void insert(size_t object, const StagedExtent& w) {
    auto& bytes = slot(object);
    for (uint64_t b = w.file_offset; b < w.end(); ++b)
      if (!bytes[b] || bytes[b]->lsn < w.lsn) bytes[b] = w;
  }
  void remove_upto(size_t object, uint64_t max_lsn) {
    for (auto& b : slot(object))
      if (b && b->lsn <= max_lsn) b.reset();
  }
  const std::vector<std::optional<StagedExtent>>& bytes(size_t object) { return slot(object); }

 private:
  std::vector<std::optional<StagedExtent>>& slot(size_t object) {
    auto& v = objects_[object];
    if (v.empty()) v.resize(object_bytes_);
    return v;
  }
  size_t object_bytes_;
  std::map<size_t, std::vector<std::optional<StagedExtent>>> objects_;
};

uint64_t test_seed() {
  if (const char* env = std::getenv("HAFS_SEED"); env && *env) return std::strtoull(env, nullptr, 0);
  return std::random_device{}();
}

void expect_index_matches_model(ExtentIndex& index, ReferenceModel& model,
                                const std::vector<ObjectId>& objects, size_t object_bytes) {
  size_t extents = 0;
  uint64_t staged = 0;
  std::optional<uint64_t> oldest_lsn;
  for (size_t o = 0; o < objects.size(); ++o) {
    const auto list = index.extents_of(objects[o]);
    extents += list.size();
    std::vector<const StagedExtent*> got(object_bytes, nullptr);
    uint64_t prev_end = 0;
    for (const auto& e : list) {
      ASSERT_GT(e.length, 0u);
      ASSERT_GE(e.file_offset, prev_end) << "extents overlap or are unsorted";
      ASSERT_LE(e.end(), object_bytes);
      prev_end = e.end();
      staged += e.length;
      if (!oldest_lsn || e.lsn < *oldest_lsn) oldest_lsn = e.lsn;
      for (uint64_t b = e.file_offset; b < e.end(); ++b) got[b] = &e;
    }
    const auto& want = model.bytes(o);
    for (uint64_t b = 0; b < object_bytes; ++b) {
      if (!want[b]) {
        ASSERT_EQ(got[b], nullptr) << "object " << o << " byte " << b << " staged by LSN "
                                   << got[b]->lsn << " but nothing should be";
        continue;
      }
      ASSERT_NE(got[b], nullptr) << "object " << o << " byte " << b << " lost LSN " << want[b]->lsn;
      ASSERT_EQ(got[b]->lsn, want[b]->lsn) << "object " << o << " byte " << b;
      ASSERT_EQ(got[b]->data_pos + (b - got[b]->file_offset),
                want[b]->data_pos + (b - want[b]->file_offset))
          << "object " << o << " byte " << b << " points at the wrong ring byte";
      ASSERT_EQ(got[b]->record_pos, want[b]->record_pos);
      ASSERT_EQ(got[b]->epoch, want[b]->epoch);
    }
    EXPECT_EQ(index.contains(objects[o]), !list.empty());
    if (!list.empty()) {
      EXPECT_EQ(index.staged_end(objects[o]), list.back().end());
    }
  }
  EXPECT_EQ(index.extent_count(), extents);
  EXPECT_EQ(index.staged_bytes(), staged);
  if (oldest_lsn) {
    ASSERT_TRUE(index.oldest().has_value());
    EXPECT_EQ(index.oldest()->first, *oldest_lsn);
  } else {
    EXPECT_FALSE(index.oldest().has_value());
  }
}

TEST(ExtentIndexRandomTest, ThousandsOfInsertsInRandomLsnOrderMatchTheByteModel) {
  const uint64_t seed = test_seed();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with HAFS_SEED=" +
               std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  constexpr size_t kObjectBytes = 2048;
  const std::vector<ObjectId> objects = {kA, kB, kOtherVolumeA};
  ExtentIndex index;
  ReferenceModel model(kObjectBytes);

  constexpr uint64_t kWrites = 6000;
  uint64_t next_lsn = 1;
  uint64_t complete = 0;  // every LSN up to here has been inserted
  std::map<uint64_t, std::pair<size_t, StagedExtent>> in_flight;
  while (complete < kWrites) {
    // Reserve a few LSNs at once, as concurrent appenders do, then index them in random order.
    const uint64_t batch = std::min<uint64_t>(1 + rng() % 8, kWrites - next_lsn + 1);
    std::vector<uint64_t> lsns;
    for (uint64_t i = 0; i < batch; ++i) lsns.push_back(next_lsn++);
    std::shuffle(lsns.begin(), lsns.end(), rng);
    for (uint64_t lsn : lsns) {
      const size_t o = rng() % objects.size();
      const uint64_t len = 1 + rng() % (rng() % 4 == 0 ? 1024 : 64);
      const uint64_t off = rng() % (kObjectBytes - len + 1);
      const StagedExtent w = write_of(lsn, off, len);
      index.insert(objects[o], w);
      model.insert(o, w);
    }
    complete = next_lsn - 1;
    // Now and then a destage removes what is complete, or a truncate forgets an object.
    const uint64_t r = rng() % 100;
    if (r < 3) {
      const size_t o = rng() % objects.size();
      const uint64_t upto = complete - rng() % (complete + 1) / 2;
      index.remove_upto(objects[o], upto);
      model.remove_upto(o, upto);
    } else if (r < 4) {
      const size_t o = rng() % objects.size();
      index.drop_object(objects[o]);
      model.remove_upto(o, UINT64_MAX);
    }
    if (complete % 97 < 8 || complete == kWrites) {
      expect_index_matches_model(index, model, objects, kObjectBytes);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  EXPECT_GT(index.extent_count(), 0u);
  // Draining everything leaves an empty index.
  for (const auto& o : objects) index.remove_upto(o, UINT64_MAX);
  EXPECT_EQ(index.extent_count(), 0u);
  EXPECT_EQ(index.staged_bytes(), 0u);
  EXPECT_EQ(index.object_count(), 0u);
  EXPECT_FALSE(index.oldest().has_value());
}

TEST(ExtentIndexRandomTest, FullyShuffledLsnOrderGivesTheSameResultAsLsnOrder) {
  const uint64_t seed = test_seed();
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with HAFS_SEED=" +
               std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  std::vector<StagedExtent> writes;
  for (uint64_t lsn = 1; lsn <= 3000; ++lsn) {
    const uint64_t len = 1 + rng() % 300;
    writes.push_back(write_of(lsn, rng() % (8192 - len), len));
  }
  ExtentIndex in_order, shuffled;
  for (const auto& w : writes) in_order.insert(kA, w);
  std::shuffle(writes.begin(), writes.end(), rng);
  for (const auto& w : writes) shuffled.insert(kA, w);
  EXPECT_EQ(pieces(in_order.extents_of(kA)), pieces(shuffled.extents_of(kA)));
  EXPECT_EQ(in_order.extent_count(), shuffled.extent_count());
  EXPECT_EQ(in_order.staged_bytes(), shuffled.staged_bytes());
  EXPECT_EQ(in_order.oldest(), shuffled.oldest());
}

}  // namespace
}  // namespace hafs::nvcache
