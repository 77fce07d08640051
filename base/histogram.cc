#include "base/histogram.h"

namespace hafs {

uint64_t LatencyHistogram::Snapshot::cumulative(size_t i) const {
  uint64_t n = 0;
  for (size_t b = 0; b <= i && b < kBuckets; ++b) n += buckets[b];
  return n;
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const {
  Snapshot s;
  for (size_t b = 0; b < kBuckets; ++b) {
    s.buckets[b] = buckets_[b].load(std::memory_order_relaxed);
    s.count += s.buckets[b];
  }
  s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace hafs
