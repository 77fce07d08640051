// nfs_load: 4 KiB random writes through libnfs (the real NFS client this machine has), QD 1..64
// with libnfs's async API on one connection. Stable mode opens with O_SYNC (every WRITE is
// FILE_SYNC); unstable mode sends UNSTABLE writes and one COMMIT at the end, inside the timed
// run. Prints IOPS and per-write latency percentiles. Figures: docs/performance.md, "NFS".
//
//   nfs_load --url 'nfs://127.0.0.1/vol0?version=3&nfsport=N&mountport=M' [--file load.dat]
//            [--size-mib 256] [--seconds 10] [--qd 1] [--unstable] [--prefill]
//
// NFSv3 only: libnfs 4.0 cannot encode NFSv4 WRITEs of 4 KiB (docs/nfs.md).
#include <fcntl.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include <nfsc/libnfs.h>
}

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kBlockBytes = 4096;
constexpr int kMaxQueueDepth = 64;

struct Options {
  std::string url;
  std::string file = "nfs_load.dat";
  uint64_t size_mib = 256;
  int seconds = 10;
  int queue_depth = 1;
  bool unstable = false;
  bool prefill = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "nfs_load: %s\nusage: nfs_load --url nfs://HOST/EXPORT?version=3[&nfsport=N&mountport=M]\n"
               "         [--file NAME] [--size-mib N] [--seconds N] [--qd 1..%d] [--unstable] [--prefill]\n",
               why, kMaxQueueDepth);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    if (a == "--url") o.url = value();
    else if (a == "--file") o.file = value();
    else if (a == "--size-mib") o.size_mib = std::strtoull(value().c_str(), nullptr, 10);
    else if (a == "--seconds") o.seconds = std::atoi(value().c_str());
    else if (a == "--qd") o.queue_depth = std::atoi(value().c_str());
    else if (a == "--unstable") o.unstable = true;
    else if (a == "--prefill") o.prefill = true;
    else usage(("unknown argument " + a).c_str());
  }
  if (o.url.empty()) usage("--url is required");
  if (o.size_mib == 0 || o.seconds <= 0) usage("--size-mib and --seconds must be positive");
  if (o.queue_depth < 1 || o.queue_depth > kMaxQueueDepth) usage("--qd out of range");
  return o;
}

// The run: queue_depth writes in flight, each completion records its latency and issues the
// next until the deadline; then (unstable) one COMMIT.
struct Run {
  nfs_context* nfs = nullptr;
  nfsfh* fh = nullptr;
  uint64_t blocks = 0;
  uint64_t rng = 0x9e3779b97f4a7c15;
  Clock::time_point deadline;
  int in_flight = 0;
  int error = 0;
  std::string error_text;
  std::vector<uint32_t> latency_us;
  std::vector<char> buf = std::vector<char>(kBlockBytes, 'w');

  struct Slot {
    Run* run;
    Clock::time_point start;
  };
  Slot slots[kMaxQueueDepth];

  uint64_t next_offset() {  // xorshift64: cheap, and the same sequence every run
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (rng % blocks) * kBlockBytes;
  }

  void issue(Slot* s) {
    s->start = Clock::now();
    if (nfs_pwrite_async(nfs, fh, next_offset(), kBlockBytes, buf.data(), on_write, s) != 0) {
      error = -EIO;
      error_text = nfs_get_error(nfs);
      return;
    }
    ++in_flight;
  }

  static void on_write(int err, nfs_context*, void* data, void* priv) {
    Slot* s = static_cast<Slot*>(priv);
    Run* r = s->run;
    --r->in_flight;
    const auto now = Clock::now();
    if (err < 0) {
      r->error = err;
      r->error_text = data ? static_cast<const char*>(data) : "write failed";
      return;
    }
    r->latency_us.push_back(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(now - s->start).count()));
    if (now < r->deadline && r->error == 0) r->issue(s);
  }

  // Services the connection until `done()`; false on a connection error.
  template <typename F>
  bool service_until(F done) {
    while (!done()) {
      pollfd pfd{nfs_get_fd(nfs), static_cast<short>(nfs_which_events(nfs)), 0};
      if (::poll(&pfd, 1, 1000) < 0 && errno != EINTR) return false;
      if (nfs_service(nfs, pfd.revents) < 0) {
        error_text = nfs_get_error(nfs);
        return false;
      }
    }
    return true;
  }
};

int fail(nfs_context* nfs, const std::string& what) {
  std::fprintf(stderr, "nfs_load: %s: %s\n", what.c_str(), nfs ? nfs_get_error(nfs) : "");
  if (nfs) nfs_destroy_context(nfs);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  nfs_context* nfs = nfs_init_context();
  if (!nfs) return fail(nullptr, "nfs_init_context");
  nfs_url* url = nfs_parse_url_dir(nfs, o.url.c_str());
  if (!url) return fail(nfs, "bad URL " + o.url);
  const int mounted = nfs_mount(nfs, url->server, url->path);
  nfs_destroy_url(url);
  if (mounted != 0) return fail(nfs, "mount " + o.url);

  const std::string path = "/" + o.file;
  const uint64_t size = o.size_mib << 20;
  if (o.prefill) {  // lay the file out in full, so the run overwrites allocated blocks
    nfsfh* pf = nullptr;
    if (nfs_create(nfs, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644, &pf) != 0)
      return fail(nfs, "create " + path);
    std::vector<char> mib(1 << 20, 'p');
    for (uint64_t off = 0; off < size; off += mib.size())
      if (nfs_pwrite(nfs, pf, off, mib.size(), mib.data()) < 0) return fail(nfs, "prefill");
    if (nfs_fsync(nfs, pf) != 0) return fail(nfs, "prefill commit");
    nfs_close(nfs, pf);
  }

  Run run;
  run.nfs = nfs;
  run.blocks = size / kBlockBytes;
  const int flags = O_WRONLY | O_CREAT | (o.unstable ? 0 : O_SYNC);
  if (nfs_create(nfs, path.c_str(), flags, 0644, &run.fh) != 0) return fail(nfs, "open " + path);
  run.latency_us.reserve(static_cast<size_t>(o.seconds) * 200000);

  const auto start = Clock::now();
  run.deadline = start + std::chrono::seconds(o.seconds);
  for (int i = 0; i < o.queue_depth; ++i) {
    run.slots[i].run = &run;
    run.issue(&run.slots[i]);
  }
  bool ok = run.service_until([&] { return run.in_flight == 0; });
  bool committed = true;
  if (ok && run.error == 0 && o.unstable) {
    committed = false;
    int commit_err = 1;
    auto on_commit = [](int err, nfs_context*, void*, void* priv) { *static_cast<int*>(priv) = err; };
    if (nfs_fsync_async(nfs, run.fh, on_commit, &commit_err) == 0)
      ok = run.service_until([&] { return commit_err != 1; });
    committed = ok && commit_err == 0;
  }
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!ok || run.error != 0 || !committed) {
    std::fprintf(stderr, "nfs_load: %s\n", run.error_text.empty() ? "commit failed" : run.error_text.c_str());
    return fail(nfs, "run");
  }
  nfs_close(nfs, run.fh);
  nfs_destroy_context(nfs);

  std::vector<uint32_t>& lat = run.latency_us;
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) { return lat.empty() ? 0u : lat[std::min(lat.size() - 1, size_t(p * lat.size()))]; };
  std::printf("mode=%s qd=%d writes=%zu seconds=%.2f iops=%.0f p50_us=%u p99_us=%u max_us=%u\n",
              o.unstable ? "unstable+commit" : "stable", o.queue_depth, lat.size(), elapsed_s,
              double(lat.size()) / elapsed_s, pct(0.50), pct(0.99), lat.empty() ? 0u : lat.back());
  return 0;
}
