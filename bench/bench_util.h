// Helpers shared by the benchmark programs in bench/: ring files on a chosen filesystem, and
// per-operation latency percentiles collected from every thread of a run.
//
// Ring files live in HAFS_BENCH_SHM_DIR (default /dev/shm: the pmem store on tmpfs, the
// emulated-NVRAM default) and HAFS_BENCH_DISK_DIR (default /var/tmp: the file store on a real
// disk). Each program removes the files it made before it exits. Figures: docs/performance.md.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nvcache/log_writer.h"
#include "nvcache/store.h"

namespace hafs::bench {

std::string shm_dir();
std::string disk_dir();

// Aborts the program with the status; a benchmark whose setup fails has nothing to measure.
void check_ok(const Status& s, const char* what);

// One ring file, kept for the whole program and formatted afresh (with a new ring id) for every
// benchmark run, so that each run starts with an empty ring and records of earlier runs never
// validate. The file is written through once at creation: a fresh file's blocks are unwritten
// (posix_fallocate), and a real ring has been around the lap many times.
class RingFile {
 public:
  RingFile(nvcache::StoreMode mode, const std::string& dir, const std::string& name,
           uint64_t ring_bytes);
  ~RingFile();  // unlinks the file
  RingFile(const RingFile&) = delete;
  RingFile& operator=(const RingFile&) = delete;

  // Formats the ring and opens a writer on it (a new session). Invalidates the previous log().
  nvcache::Log& reset();
  nvcache::Log& log() { return *log_; }
  nvcache::Store& store() { return *store_; }
  const std::string& path() const { return path_; }

  // Frees the ring up to the complete point when more than a quarter is in use, so that
  // appenders never wait for room. Safe from any thread: one trims, the others skip.
  void trim_if_needed();

 private:
  std::string path_;
  std::unique_ptr<nvcache::Store> store_;
  std::unique_ptr<nvcache::Log> log_;
  std::mutex trim_mu_;  // Log::trim must not go backwards: one trimmer at a time
  uint64_t next_ring_id_ = 1;
};

// Per-operation latencies of all threads of one benchmark run. Thread 0 calls begin() before
// the benchmark loop (the loop start is a barrier); every thread calls finish() after the loop
// with its own samples; the last one to arrive publishes p50/p99/max in microseconds as counters
// and runs `last` (e.g. counters that need every thread's work to be done).
class Latencies {
 public:
  void begin(int threads);
  void finish(benchmark::State& state, std::vector<uint64_t>& samples_ns,
              const std::function<void(benchmark::State&)>& last = {});

 private:
  std::mutex mu_;
  int threads_ = 0;
  int arrived_ = 0;
  std::vector<uint64_t> all_ns_;
};

// The value at fraction p (0..1) of sorted samples.
double percentile(const std::vector<uint64_t>& sorted, double p);

// Bytes currently allocated through malloc (in use, chunk overhead included).
uint64_t malloc_in_use_bytes();
// Resident set size of this process.
uint64_t rss_bytes();

// Runs the registered benchmarks (Initialize, RunSpecifiedBenchmarks, Shutdown).
int run_benchmarks(int argc, char** argv);

}  // namespace hafs::bench
