// Append throughput and latency of the NV log: Log::append (reserve, fill, persist, complete)
// of one record per iteration, from 1..16 threads, on
//   pmem_shm   the pmem store on a /dev/shm file (emulated NVRAM: memcpy + msync on tmpfs)
//   file_disk  the file store on a real disk (pwrite + fdatasync, concurrent persists grouped)
// Counters: items_per_second = records/s, bytes_per_second = payload bytes/s, p50_us/p99_us/
// max_us = latency of one append over every thread's records, records_per_sync = records per
// store sync (the group-commit ratio; trims add a few syncs). The ring is trimmed to the complete
// point whenever a quarter of it is in use, so appends never wait for room.
#include <chrono>
#include <deque>
#include <memory>
#include <string>

#include "bench/bench_util.h"

namespace hafs::bench {
namespace {

using namespace hafs::nvcache;

struct AppendCase {
  StoreMode mode;
  std::string dir;
  std::string name;
  uint64_t ring_bytes;
  uint32_t payload_bytes;

  std::unique_ptr<RingFile> ring;  // made by the first run, kept until the program ends
  Latencies latencies;
  uint64_t syncs_at_start = 0;
  std::atomic<uint64_t> records{0};
};

constexpr char kKey[] = "0123456789abcdef";  // a 16-byte object key, the size of a file handle

void run_append(benchmark::State& state, AppendCase& c) {
  if (state.thread_index() == 0) {  // the loop start below is a barrier for every thread
    if (!c.ring) c.ring = std::make_unique<RingFile>(c.mode, c.dir, c.name, c.ring_bytes);
    c.ring->reset();
    c.latencies.begin(state.threads());
    c.syncs_at_start = c.ring->store().sync_count();
    c.records = 0;
  }
  std::vector<std::byte> payload(c.payload_bytes, std::byte(state.thread_index() + 1));
  std::vector<uint64_t> samples_ns;
  samples_ns.reserve(static_cast<size_t>(state.max_iterations));
  const auto key = std::as_bytes(std::span(kKey, 16));
  uint64_t file_offset = 0;
  for (auto _ : state) {
    const AppendSpec spec{static_cast<uint32_t>(state.thread_index()), 1, key, file_offset, payload};
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.ring->log().append(spec);
    const auto t1 = std::chrono::steady_clock::now();
    check_ok(r.status(), "append");
    samples_ns.push_back(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    file_offset += payload.size();
    if (samples_ns.size() % 32 == 0) c.ring->trim_if_needed();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c.payload_bytes));
  c.records += static_cast<uint64_t>(state.iterations());
  c.latencies.finish(state, samples_ns, [&c](benchmark::State& s) {
    const uint64_t syncs = c.ring->store().sync_count() - c.syncs_at_start;
    s.counters["records_per_sync"] =
        syncs ? static_cast<double>(c.records.load()) / static_cast<double>(syncs) : 0.0;
  });
}

}  // namespace
}  // namespace hafs::bench

int main(int argc, char** argv) {
  using hafs::bench::AppendCase;
  using hafs::nvcache::StoreMode;
  // A deque: the registered lambdas hold pointers to its elements.
  std::deque<AppendCase> cases;
  auto add = [&](StoreMode mode, const std::string& dir, const std::string& name,
                 uint64_t ring_bytes, uint32_t payload, std::initializer_list<int> threads) {
    AppendCase& c = cases.emplace_back(mode, dir, name, ring_bytes, payload);
    auto* b = benchmark::RegisterBenchmark(("append/" + name).c_str(),
                                           [&c](benchmark::State& s) { hafs::bench::run_append(s, c); });
    for (int t : threads) b->Threads(t);
    b->UseRealTime();
  };
  add(StoreMode::kPmem, hafs::bench::shm_dir(), "pmem_shm/4KiB", 64u << 20, 4096, {1, 2, 4});
  add(StoreMode::kPmem, hafs::bench::shm_dir(), "pmem_shm/64KiB", 256u << 20, 65536, {1, 2});
  add(StoreMode::kFile, hafs::bench::disk_dir(), "file_disk/4KiB", 64u << 20, 4096, {1, 4, 16});
  const int rc = hafs::bench::run_benchmarks(argc, argv);
  cases.clear();  // unlinks the ring files
  return rc;
}
