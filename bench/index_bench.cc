// ExtentIndex with 1 M extents: 1024 objects (16-byte keys, the size of a file handle) of 1024
// non-overlapping 4 KiB extents each, inserted in random order.
//   index/insert_1M     builds the index; ns per insert; memory per extent (malloc bytes in use,
//                       chunk overhead included, divided by the extents; and the RSS growth)
//   index/lookup_4KiB   a random 4 KiB lookup in the full index (one extent found)
//   index/lookup_64KiB  a random 64 KiB lookup (16 extents found and copied out)
//   index/lookup_4KiB_cached  the same 4 KiB lookup in an index of one object and 16 extents,
//                       which stays in the CPU caches: the fixed cost of a lookup
//   index/overwrite     a random 4 KiB insert over a live extent (the newer one replaces it)
#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "bench/bench_util.h"
#include "nvcache/extent_index.h"

namespace hafs::bench {
namespace {

using namespace hafs::nvcache;

constexpr uint64_t kObjects = 1024;
constexpr uint64_t kExtentsPerObject = 1024;
constexpr uint64_t kExtents = kObjects * kExtentsPerObject;
constexpr uint64_t kExtentBytes = 4096;

ObjectId object_id(uint64_t i) {
  std::string key(16, '\0');
  for (size_t b = 0; b < 8; ++b) key[b] = static_cast<char>((i >> (8 * b)) & 0xff);
  key.replace(8, 8, "handle!!");
  return ObjectId{1, key};
}

StagedExtent extent(uint64_t n, uint64_t lsn) {
  const uint64_t pos = lsn * 4224;
  return StagedExtent{n * kExtentBytes, kExtentBytes, lsn, 1, pos + 80, pos};
}

// (object, extent number) pairs in a fixed random order.
std::vector<std::pair<uint32_t, uint32_t>> insert_order() {
  std::vector<std::pair<uint32_t, uint32_t>> order;
  order.reserve(kExtents);
  for (uint32_t o = 0; o < kObjects; ++o)
    for (uint32_t n = 0; n < kExtentsPerObject; ++n) order.emplace_back(o, n);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  return order;
}

struct Fixture {
  std::vector<ObjectId> ids;
  std::vector<std::pair<uint32_t, uint32_t>> order = insert_order();
  Fixture() {
    for (uint64_t o = 0; o < kObjects; ++o) ids.push_back(object_id(o));
  }
  void fill(ExtentIndex& index) const {
    uint64_t lsn = 1;
    for (auto [o, n] : order) index.insert(ids[o], extent(n, lsn++));
  }
};

void bm_insert(benchmark::State& state, const Fixture& f, double rss_per_extent) {
  double bytes_per_extent = 0, insert_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    const uint64_t malloc_before = malloc_in_use_bytes();
    auto index = std::make_unique<ExtentIndex>();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    f.fill(*index);
    const auto t1 = std::chrono::steady_clock::now();
    state.PauseTiming();
    insert_ns += static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    check_ok(index->extent_count() == kExtents ? Status::ok()
                                               : Status::error(Code::kCorruption, "extent count"),
             "insert");
    bytes_per_extent = static_cast<double>(malloc_in_use_bytes() - malloc_before) / kExtents;
    index.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kExtents));
  state.counters["ns_per_insert"] =
      insert_ns / static_cast<double>(std::max<int64_t>(1, state.iterations()) * kExtents);
  state.counters["malloc_bytes_per_extent"] = bytes_per_extent;
  // Measured once, when the process built its first index: later indexes reuse the freed heap.
  state.counters["rss_bytes_per_extent"] = rss_per_extent;
}

void bm_lookup(benchmark::State& state, const Fixture& f, const ExtentIndex& index,
               uint64_t length, uint64_t objects = kObjects,
               uint64_t extents_per_object = kExtentsPerObject) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<uint64_t> pick_object(0, objects - 1);
  std::uniform_int_distribution<uint64_t> pick_offset(0, extents_per_object * kExtentBytes - length);
  uint64_t found = 0;
  for (auto _ : state) {
    auto pieces = index.lookup(f.ids[pick_object(rng)], pick_offset(rng) & ~uint64_t{4095}, length);
    found += pieces.size();
    benchmark::DoNotOptimize(pieces.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["extents_per_lookup"] =
      static_cast<double>(found) / static_cast<double>(std::max<int64_t>(1, state.iterations()));
}

void bm_overwrite(benchmark::State& state, const Fixture& f, ExtentIndex& index, uint64_t& lsn) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<uint64_t> pick_object(0, kObjects - 1);
  std::uniform_int_distribution<uint64_t> pick_extent(0, kExtentsPerObject - 1);
  for (auto _ : state) {
    const uint64_t o = pick_object(rng);
    index.insert(f.ids[o], extent(pick_extent(rng), lsn++));
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["extents"] = static_cast<double>(index.extent_count());
}

}  // namespace
}  // namespace hafs::bench

int main(int argc, char** argv) {
  using namespace hafs::bench;
  const Fixture f;
  // The full index the lookups and overwrites run against, built once.
  const uint64_t rss_before = rss_bytes();
  hafs::nvcache::ExtentIndex index;
  f.fill(index);
  const double rss_per_extent =
      static_cast<double>(static_cast<int64_t>(rss_bytes() - rss_before)) / kExtents;
  // The fixed cost of a lookup: an index of one object with 16 extents stays in the CPU caches.
  hafs::nvcache::ExtentIndex small;
  for (uint64_t n = 0; n < 16; ++n) small.insert(f.ids[0], extent(n, n + 1));
  uint64_t next_lsn = kExtents + 1;
  benchmark::RegisterBenchmark("index/insert_1M", [&](benchmark::State& s) { bm_insert(s, f, rss_per_extent); })
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("index/lookup_4KiB",
                               [&](benchmark::State& s) { bm_lookup(s, f, index, 4096); });
  benchmark::RegisterBenchmark("index/lookup_64KiB",
                               [&](benchmark::State& s) { bm_lookup(s, f, index, 65536); });
  benchmark::RegisterBenchmark("index/lookup_4KiB_cached", [&](benchmark::State& s) {
    bm_lookup(s, f, small, 4096, 1, 16);
  });
  benchmark::RegisterBenchmark("index/overwrite_4KiB",
                               [&](benchmark::State& s) { bm_overwrite(s, f, index, next_lsn); });
  return run_benchmarks(argc, argv);
}
