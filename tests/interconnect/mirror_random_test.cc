// A seeded randomized test of mirroring in one process over real libfabric (tcp, loopback):
// random write sizes into a small ring that wraps and is trimmed by a busy destager, while the
// connection is dropped at random moments (the receiver restarted on the same mirror store, or
// a fault at mirror.before_ack). It checks that
//   - every write returned OK only once the partner held it (mirrored_pos covers its end), and
//     the mirror as it stands at that moment recovers every record up to it (a takeover then
//     would lose nothing acknowledged);
//   - after quiescing, the mirror is byte-identical to the primary between trim and head.
// The seed is printed; HAFS_SEED=<seed> replays a run.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <thread>

#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "nvcache/log_reader.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"
#include "tests/interconnect/pair_options.h"
#include "tests/support/wait.h"

namespace hafs::interconnect {
namespace {

using hafs::testing::free_port;
using hafs::testing::eventually;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;



uint64_t seed_for_run() {
  const char* env = std::getenv("HAFS_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  std::printf("mirror random test: seed %" PRIu64 " (replay with HAFS_SEED=%" PRIu64 ")\n", seed, seed);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

class MirrorRandomTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRing = nvcache::kDataOffset + (256u << 10);  // wraps often

  void SetUp() override {
    const auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    primary_path_ = "/dev/shm/hafs-mirror-random-p-" + tag;
    mirror_path_ = "/dev/shm/hafs-mirror-random-m-" + tag;
    port_ = free_port();
    key_ = key_from_passphrase("random test key");
    auto p = nvcache::open_store(nvcache::StoreMode::kPmem, primary_path_, kRing);
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    primary_ = std::move(*p);
    ASSERT_TRUE(nvcache::Log::format(*primary_, 1, 0xABCD).is_ok());
    auto m = nvcache::open_store(nvcache::StoreMode::kPmem, mirror_path_, kRing);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    mirror_ = std::move(*m);
    nvcache::NvCacheOptions co;
    co.logger = Logger("node1-nvlog", LogLevel::kWarn);
    co.destage_interval_ms = 2;  // trims all the time: the ring wraps under the mirror
    auto c = nvcache::NvCache::open(*primary_, target_, co);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    cache_ = std::move(*c);
    cache_->start_destager();
  }

  void TearDown() override {
    if (cache_) cache_->set_replicator(nullptr);
    if (sender_) sender_->stop();
    if (receiver_) receiver_->stop();
    if (cache_) cache_->stop();
    sender_.reset();
    receiver_.reset();
    cache_.reset();
    primary_.reset();
    mirror_.reset();
    std::filesystem::remove(primary_path_);
    std::filesystem::remove(mirror_path_);
  }

  void start_receiver() {
    MirrorReceiverOptions o = testing::receiver_options_for(port_, key_);
    o.faults = &receiver_faults_;
    // The port of the receiver just stopped may take a moment to be free again.
    Result<std::unique_ptr<MirrorReceiver>> r = Status::error(Code::kUnavailable, "not started");
    ASSERT_TRUE(eventually([&] {
      r = MirrorReceiver::start(*mirror_, o);
      return r.is_ok();
    }, 10s)) << r.status().to_string();
    receiver_ = std::move(*r);
  }

  // The mirror as it stands now: the last LSN it recovers (0: none), and why its scan ended.
  std::pair<uint64_t, std::string> mirror_recovers() {
    auto rec = nvcache::scan_ring(*mirror_, [](const nvcache::RecordView&) {});
    if (!rec) return {0, rec.status().to_string()};
    return {rec->next_lsn - 1, rec->end_message};
  }

  std::string primary_path_, mirror_path_, port_;
  Key key_;
  FaultRegistry receiver_faults_{7};
  std::unique_ptr<nvcache::Store> primary_, mirror_;
  nvcache::testing::MemTarget target_;
  std::unique_ptr<nvcache::NvCache> cache_;
  std::unique_ptr<MirrorReceiver> receiver_;
  std::unique_ptr<MirrorSender> sender_;
};

TEST_F(MirrorRandomTest, MirrorFollowsThroughDropsWrapsAndTrims) {
  std::mt19937_64 rng(seed_for_run());
  start_receiver();
  MirrorSenderOptions so = testing::sender_options_for(port_, key_);
  so.mirror_wait = 20s;  // far longer than any reconnect here: degrading is a failure
  so.window_bytes = 64u << 10;
  so.max_chunk_bytes = 16u << 10;
  sender_ = std::make_unique<MirrorSender>(cache_->log(), so);
  sender_->start();
  cache_->set_replicator(sender_.get());
  ASSERT_TRUE(eventually([&] { return sender_->stats().state == MirrorState::kMirroring; }))
      << sender_->stats().last_error;

  constexpr int kWrites = 1500;
  int restarts = 0, faults = 0;
  for (int i = 0; i < kWrites; ++i) {
    const uint64_t dice = rng() % 1000;
    if (dice < 8) {  // the partner restarts (same mirror store, same port)
      receiver_->stop();
      receiver_.reset();
      start_receiver();
      ++restarts;
    } else if (dice < 16) {  // the partner fails to persist once: no ACK, the connection drops
      receiver_faults_.arm(FaultSite::kMirrorBeforeAck, FaultSpec{FaultAction::kFail, 0, EIO, true, 1.0});
      ++faults;
    }
    std::vector<std::byte> data(1 + rng() % ((rng() % 4 == 0) ? 40000 : 3000));
    for (auto& b : data) b = std::byte(rng());
    const uint64_t offset = rng() % (1u << 18);
    auto lsn = cache_->write({3, "obj" + std::to_string(rng() % 5)}, 1, offset, data);
    ASSERT_TRUE(lsn.is_ok()) << "write " << i << ": " << lsn.status().to_string();
    // One writer: the ring's filled point is this write's end. It was acknowledged, so the
    // partner holds it, and the mirror would recover it if this node died now.
    const auto st = sender_->stats();
    ASSERT_FALSE(st.degraded);
    ASSERT_GE(st.mirrored_pos, cache_->log().filled_point().pos) << "write " << i << " acknowledged unmirrored";
    const auto [recovered, why] = mirror_recovers();
    ASSERT_GE(recovered, *lsn) << "write " << i << " (LSN " << *lsn
                               << ") acknowledged but the mirror recovers only up to LSN " << recovered
                               << "; its scan ended: " << why << " (mirror trim LSN "
                               << receiver_->stats().trim_lsn << ", primary trim LSN "
                               << cache_->log().trim_point().lsn << ")";
  }
  std::printf("%d writes, %d partner restarts, %d persist faults, %" PRIu64 " connects\n", kWrites,
              restarts, faults, sender_->stats().connects);
  EXPECT_GE(sender_->stats().connects, 1u + restarts);

  // Quiesce: the destager stops where it is (records stay between trim and head); once the last
  // trim has reached the partner, primary == mirror from trim to head.
  cache_->stop();
  auto compare = [&]() -> std::string {
    const auto& log = cache_->log();
    const uint64_t data = log.data_bytes(), from = log.trim_point().pos, to = log.complete_point().pos;
    for (uint64_t p = from; p < to; ++p)
      if (primary_->mapping()[nvcache::kDataOffset + p % data] != mirror_->mapping()[nvcache::kDataOffset + p % data])
        return "position " + std::to_string(p) + " differs in [" + std::to_string(from) + ", " +
               std::to_string(to) + ")";
    if (receiver_->stats().trim_lsn != log.trim_point().lsn)
      return "mirror trim LSN " + std::to_string(receiver_->stats().trim_lsn) + ", primary " +
             std::to_string(log.trim_point().lsn);
    return "";
  };
  std::string diff;
  EXPECT_TRUE(eventually([&] { return (diff = compare()).empty(); })) << diff;
}

}  // namespace
}  // namespace hafs::interconnect
