// base/histogram.h: bucket boundaries (inclusive, as Prometheus' `le`), the overflow bucket,
// the sum, and concurrent recording losing nothing.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "base/histogram.h"

namespace hafs {
namespace {

using namespace std::chrono_literals;
using H = LatencyHistogram;

TEST(LatencyHistogramTest, BoundsAreIncreasingOneTwoFiveFromOneMicrosecondToTenSeconds) {
  EXPECT_EQ(H::kBoundsUs.front(), 1u);
  EXPECT_EQ(H::kBoundsUs.back(), 10'000'000u);
  for (size_t i = 1; i < H::kBoundsUs.size(); ++i) EXPECT_LT(H::kBoundsUs[i - 1], H::kBoundsUs[i]);
  EXPECT_EQ(H::kBuckets, H::kBoundsUs.size() + 1);
}

TEST(LatencyHistogramTest, AnObservationOnABoundCountsInThatBucket) {
  for (size_t i = 0; i < H::kBoundsUs.size(); ++i) {
    const uint64_t bound_ns = H::kBoundsUs[i] * 1000;
    EXPECT_EQ(H::bucket_of(bound_ns), i) << "bound " << H::kBoundsUs[i] << " us";
    EXPECT_EQ(H::bucket_of(bound_ns + 1), i + 1) << "just above " << H::kBoundsUs[i] << " us";
  }
  EXPECT_EQ(H::bucket_of(0), 0u);
  EXPECT_EQ(H::bucket_of(UINT64_MAX), H::kBuckets - 1);
}

TEST(LatencyHistogramTest, RecordFillsBucketsSumAndCount) {
  H h;
  EXPECT_EQ(h.snapshot().count, 0u);
  h.record(500ns);          // <= 1 us
  h.record(3us);            // <= 5 us
  h.record(3us);
  h.record(1500ms);         // <= 2 s
  h.record(11s);            // +Inf
  h.record(-5ns);           // clamps to 0: <= 1 us
  const H::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, 6u);
  EXPECT_EQ(s.sum_ns, 500u + 3000 + 3000 + 1'500'000'000u + 11'000'000'000u);
  EXPECT_EQ(s.buckets[0], 2u);
  EXPECT_EQ(s.buckets[H::bucket_of(3000)], 2u);
  EXPECT_EQ(H::bucket_of(3000), 2u);  // the 5 us bucket
  EXPECT_EQ(s.buckets[H::bucket_of(1'500'000'000)], 1u);
  EXPECT_EQ(s.buckets[H::kBuckets - 1], 1u);
  EXPECT_EQ(s.cumulative(0), 2u);
  EXPECT_EQ(s.cumulative(2), 4u);
  EXPECT_EQ(s.cumulative(H::kBuckets - 2), 5u);
  EXPECT_EQ(s.cumulative(H::kBuckets - 1), s.count);
}

TEST(LatencyHistogramTest, ConcurrentRecordsAreAllCounted) {
  H h;
  constexpr int kThreads = 4, kEach = 100'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kEach; ++i) h.record(std::chrono::nanoseconds((t + 1) * 1000));
    });
  // Snapshots taken meanwhile never see a cumulative count go down, nor +Inf differ from count.
  uint64_t last = 0;
  for (int i = 0; i < 1000; ++i) {
    const H::Snapshot s = h.snapshot();
    EXPECT_GE(s.count, last);
    EXPECT_EQ(s.cumulative(H::kBuckets - 1), s.count);
    for (size_t b = 1; b < H::kBuckets; ++b) EXPECT_LE(s.cumulative(b - 1), s.cumulative(b));
    last = s.count;
  }
  for (auto& t : threads) t.join();
  const H::Snapshot s = h.snapshot();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kEach);
  EXPECT_EQ(s.sum_ns, uint64_t{kEach} * (1000 + 2000 + 3000 + 4000));
  EXPECT_EQ(s.buckets[H::bucket_of(1000)], uint64_t{kEach});       // 1 us
  EXPECT_EQ(s.buckets[H::bucket_of(2000)], uint64_t{kEach});       // 2 us
  EXPECT_EQ(s.buckets[H::bucket_of(3000)], uint64_t{2} * kEach);   // 3 and 4 us: <= 5 us
}

}  // namespace
}  // namespace hafs
