#include "bench/bench_util.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "nvcache/log_reader.h"

namespace hafs::bench {

using namespace hafs::nvcache;

namespace {
std::string file_name_of(std::string name) {
  for (char& ch : name)
    if (ch == '/') ch = '-';
  return name;
}
std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
}  // namespace

std::string shm_dir() { return env_or("HAFS_BENCH_SHM_DIR", "/dev/shm"); }
std::string disk_dir() { return env_or("HAFS_BENCH_DISK_DIR", "/var/tmp"); }

void check_ok(const Status& s, const char* what) {
  if (s.is_ok()) return;
  std::fprintf(stderr, "benchmark setup failed: %s: %s\n", what, s.to_string().c_str());
  std::abort();
}

RingFile::RingFile(StoreMode mode, const std::string& dir, const std::string& name,
                   uint64_t ring_bytes)
    : path_(dir + "/hafs-bench-" + std::to_string(::getpid()) + "-" + file_name_of(name)) {
  auto store = open_store(mode, path_, ring_bytes);
  check_ok(store.status(), path_.c_str());
  store_ = std::move(*store);
  // Write every block once, so that no run pays for first-touch page allocation (tmpfs) or
  // unwritten-extent conversion (ext4) that a ring in service has long since paid.
  std::vector<std::byte> zeros(1 << 20);
  for (uint64_t off = 0; off < ring_bytes; off += zeros.size())
    check_ok(store_->write(off, std::span(zeros.data(), std::min<uint64_t>(zeros.size(), ring_bytes - off))),
             "prefill");
  check_ok(store_->persist(0, ring_bytes), "prefill persist");
}

RingFile::~RingFile() {
  log_.reset();
  store_.reset();
  ::unlink(path_.c_str());
}

Log& RingFile::reset() {
  log_.reset();
  check_ok(Log::format(*store_, 1, 0x6861667300000000ull + next_ring_id_++), "format");
  auto rec = scan_ring(*store_, [](const RecordView&) {});
  check_ok(rec.status(), "scan of a fresh ring");
  auto log = Log::open(*store_, *rec, LogOptions{Logger("bench", LogLevel::kWarn), nullptr});
  check_ok(log.status(), "open");
  log_ = std::move(*log);
  return *log_;
}

void RingFile::trim_if_needed() {
  std::unique_lock lock(trim_mu_, std::try_to_lock);
  if (!lock) return;
  if (log_->used_bytes() <= log_->data_bytes() / 4) return;
  check_ok(log_->trim(log_->complete_point()), "trim");
}

void Latencies::begin(int threads) {
  std::lock_guard lock(mu_);
  threads_ = threads;
  arrived_ = 0;
  all_ns_.clear();
}

void Latencies::finish(benchmark::State& state, std::vector<uint64_t>& samples_ns,
                       const std::function<void(benchmark::State&)>& last) {
  std::lock_guard lock(mu_);
  all_ns_.insert(all_ns_.end(), samples_ns.begin(), samples_ns.end());
  if (++arrived_ < threads_) return;
  // Counters are summed over the threads of a run: only the last thread sets these.
  std::sort(all_ns_.begin(), all_ns_.end());
  state.counters["p50_us"] = percentile(all_ns_, 0.50) / 1000.0;
  state.counters["p99_us"] = percentile(all_ns_, 0.99) / 1000.0;
  state.counters["max_us"] = all_ns_.empty() ? 0.0 : static_cast<double>(all_ns_.back()) / 1000.0;
  if (last) last(state);
}

double percentile(const std::vector<uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())));
  return static_cast<double>(sorted[i]);
}

uint64_t malloc_in_use_bytes() {
  const struct mallinfo2 mi = ::mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

uint64_t rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace hafs::bench
