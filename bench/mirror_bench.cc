// Mirror round trip over real libfabric (tcp provider on loopback, in one process): append a
// record to the NV log, ship it into the partner's mirror region, COMMIT, the partner persists
// and ACKs. Per record: p50/p99 latency of append+mirror; records/s and bytes/s.
// Arguments: record bytes, ack busy-poll microseconds (sender and receiver). Threads = records
// in flight (window 1 and 16). "LocalOnly" is the same append without a partner, side by side.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "bench/bench_util.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"

namespace hafs::bench {
namespace {

using namespace std::chrono_literals;
constexpr uint64_t kRingBytes = nvcache::kDataOffset + (256ull << 20);

std::string free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return std::to_string(ntohs(a.sin_port));
}

struct Pair {
  RingFile primary{nvcache::StoreMode::kPmem, shm_dir(), "mirror-bench-primary", kRingBytes};
  std::string mirror_path = shm_dir() + "/hafs-mirror-bench-mirror-" + std::to_string(::getpid());
  std::unique_ptr<nvcache::Store> mirror;
  std::unique_ptr<interconnect::MirrorReceiver> receiver;
  std::unique_ptr<interconnect::MirrorSender> sender;
  Latencies latencies;

  ~Pair() { std::filesystem::remove(mirror_path); }

  void start(std::chrono::microseconds spin) {
    nvcache::Log& log = primary.reset();
    if (!mirror) {
      auto m = nvcache::open_store(nvcache::StoreMode::kPmem, mirror_path, kRingBytes);
      check_ok(m.status(), "mirror store");
      mirror = std::move(*m);
    }
    const auto key = interconnect::key_from_passphrase("bench");
    const std::string port = free_port();
    interconnect::MirrorReceiverOptions ro;
    ro.logger = Logger("partner", LogLevel::kWarn);
    ro.listen_port = port;
    ro.node_id = 2;
    ro.partner_node_id = 1;
    ro.key = key;
    ro.spin = spin;
    auto r = interconnect::MirrorReceiver::start(*mirror, ro);
    check_ok(r.status(), "receiver");
    receiver = std::move(*r);
    interconnect::MirrorSenderOptions so;
    so.logger = Logger("owner", LogLevel::kWarn);
    so.partner_port = port;
    so.node_id = 1;
    so.partner_node_id = 2;
    so.key = key;
    so.ack_spin = spin;
    so.mirror_wait = 60s;
    sender = std::make_unique<interconnect::MirrorSender>(log, so);
    log.set_filled_hook([s = sender.get()](nvcache::TrimPoint p) { s->filled(p); });
    sender->start();
    while (sender->stats().state != interconnect::MirrorState::kMirroring) std::this_thread::sleep_for(1ms);
  }
  void stop() {
    primary.log().set_filled_hook({});
    sender.reset();
    receiver.reset();
  }
};

Pair& pair() {
  static Pair p;  // one ring and mirror file for the program, as bench_util's RingFile intends
  return p;
}

void append_loop(benchmark::State& state, bool mirrored) {
  Pair& p = pair();
  const auto bytes = static_cast<size_t>(state.range(0));
  if (state.thread_index() == 0) {
    if (mirrored) p.start(std::chrono::microseconds(state.range(1)));
    else p.primary.reset();
    p.latencies.begin(state.threads());
  }
  std::vector<std::byte> payload(bytes, std::byte{0x5a});
  const std::string key = "bench-object-" + std::to_string(state.thread_index());
  nvcache::AppendSpec spec{1, 1, std::as_bytes(std::span(key)), 0, payload};
  std::vector<uint64_t> samples;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = p.primary.log().append(spec);
    if (!r.is_ok()) state.SkipWithError(r.status().to_string().c_str());
    if (mirrored && r.is_ok()) {
      Status s = p.sender->wait_mirrored(r->end_pos());
      if (!s.is_ok()) state.SkipWithError(s.to_string().c_str());
    }
    samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    p.primary.trim_if_needed();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes));
  p.latencies.finish(state, samples, [&](benchmark::State&) {
    if (mirrored) p.stop();
  });
}

void BM_MirroredAppend(benchmark::State& state) { append_loop(state, true); }
void BM_LocalOnlyAppend(benchmark::State& state) { append_loop(state, false); }

BENCHMARK(BM_LocalOnlyAppend)->Args({4096, 0})->Args({65536, 0})->Threads(1)->Threads(16)->UseRealTime()->MinTime(2);
BENCHMARK(BM_MirroredAppend)
    ->Args({4096, 0})->Args({4096, 200})->Args({65536, 0})->Args({65536, 200})
    ->Threads(1)->Threads(16)->UseRealTime()->MinTime(2);

}  // namespace
}  // namespace hafs::bench

int main(int argc, char** argv) { return hafs::bench::run_benchmarks(argc, argv); }
