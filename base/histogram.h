// LatencyHistogram: a fixed-bucket latency histogram for metrics (Prometheus exposition by
// `hafsctl metrics`, docs/operations.md "Metrics").
//
// Buckets are log-spaced in microseconds, 1-2-5 per decade from 1 us to 10 s, plus an overflow
// bucket (+Inf). record() is two relaxed atomic adds (the bucket, the sum) and a search over 22
// constants: cheap enough for every write on the data path, and free when nothing records.
// There is no separate count: the count is the sum of the buckets, so a snapshot's +Inf bucket
// always equals its count even while writers record.
//
// Thread safety: record() and snapshot() from any thread, concurrently. A snapshot is not
// atomic as a whole: a record() that runs meanwhile may show in its bucket and not yet in the
// sum, or the other way round. Each bucket and the sum only ever grow.
// Lifetime: a member of the object whose latency it measures (no globals; two nodes in one
// process have two of each).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace hafs {

class LatencyHistogram {
 public:
  // Upper bounds (inclusive, as Prometheus' `le`) of the finite buckets, in microseconds.
  static constexpr std::array<uint64_t, 22> kBoundsUs = {
      1,      2,      5,      10,      20,      50,      100,     200,
      500,    1000,   2000,   5000,    10000,   20000,   50000,   100000,
      200000, 500000, 1000000, 2000000, 5000000, 10000000};
  // The finite buckets and the overflow (+Inf) bucket last.
  static constexpr size_t kBuckets = kBoundsUs.size() + 1;

  struct Snapshot {
    std::array<uint64_t, kBuckets> buckets{};  // per bucket, NOT cumulative; [kBuckets-1] is +Inf
    uint64_t count = 0;                        // sum of buckets
    uint64_t sum_ns = 0;                       // sum of all recorded latencies
    // Cumulative count of bucket i (observations <= kBoundsUs[i]; i == kBuckets-1: all).
    uint64_t cumulative(size_t i) const;
  };

  // Negative durations count as 0.
  void record(std::chrono::nanoseconds latency) {
    const uint64_t ns = latency.count() > 0 ? static_cast<uint64_t>(latency.count()) : 0;
    buckets_[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }
  Snapshot snapshot() const;

  // The bucket an observation of `ns` nanoseconds falls in: the first whose bound is >= it.
  static size_t bucket_of(uint64_t ns) {
    size_t lo = 0, hi = kBoundsUs.size();  // the answer is in [lo, hi]; hi = overflow
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (ns <= kBoundsUs[mid] * 1000) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace hafs
