// The mirror protocol's state machine at unit level: a real MirrorSender and MirrorReceiver in one
// process over the in-process LoopbackNetwork (no libfabric), memory stores on both sides, seeded
// faults on the connection: drops at random operations, delayed delivery, writes to unknown keys.
// It checks that
//   - every write returned OK only once the partner held it (mirrored_pos covers its end) and
//     the mirror as it stands then recovers its LSN;
//   - after quiescing, the mirror is byte-identical to the primary between trim and head;
//   - a wrong key is refused, a drop during resync resumes where the mirror stood, and a peer
//     that never acknowledges makes writes wait until the degrade policy fires.
// The real transport runs in mirror_test.cc, mirror_random_test.cc and pair_test.cc.
// The seed is printed; HAFS_SEED=<seed> replays a run.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "interconnect/loopback_transport.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "nvcache/log_reader.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"
#include "tests/interconnect/pair_options.h"
#include "tests/support/wait.h"

namespace hafs::interconnect {
namespace {

using hafs::testing::eventually;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;


bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

uint64_t seed_for_run() {
  const char* env = std::getenv("HAFS_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 0) : std::random_device{}();
  std::printf("loopback protocol test: seed %" PRIu64 " (replay with HAFS_SEED=%" PRIu64 ")\n", seed, seed);
  std::fflush(stdout);
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

std::vector<std::byte> random_bytes(std::mt19937_64& rng, size_t n) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = std::byte(rng());
  return v;
}

// ---- The loopback transport's own contracts ----

TEST(LoopbackTransportTest, AMessageNeverOvertakesTheWriteBeforeIt) {
  LoopbackNetwork net(seed_for_run());
  net.set_faults(LoopbackFaults{0, 0.5, 300, 0});
  auto acceptor = net.listen("a", "1");
  ASSERT_TRUE(acceptor.is_ok());
  auto client = net.connect("a", "1", 100ms);
  ASSERT_TRUE(client.is_ok()) << client.status().to_string();
  auto server = (*acceptor)->accept(100ms);
  ASSERT_TRUE(server.is_ok());
  constexpr size_t kOps = 300;
  std::vector<uint64_t> src(kOps), dst(kOps, ~uint64_t{0});
  auto local = (*client)->register_region(src.data(), src.size() * 8, false, 1);
  auto remote = (*server)->register_region(dst.data(), dst.size() * 8, true, 9);
  ASSERT_TRUE(local.is_ok() && remote.is_ok());
  std::thread writer([&] {
    for (uint64_t i = 0; i < kOps; ++i) {
      while (!(*client)->can_post(2)) ASSERT_TRUE((*client)->poll(nullptr, 1ms).is_ok());
      src[i] = i;
      ASSERT_TRUE((*client)->write(&src[i], 8, local->desc, *remote, i * 8).is_ok());
      std::vector<std::byte> m(8);
      std::memcpy(m.data(), &i, 8);
      ASSERT_TRUE((*client)->send_message(m).is_ok());
    }
  });
  size_t seen = 0;
  const auto deadline = Clock::now() + 10s;
  while (seen < kOps && Clock::now() < deadline) {
    std::vector<std::vector<std::byte>> got;
    ASSERT_TRUE((*server)->poll(&got, 10ms).is_ok());
    for (const auto& g : got) {
      uint64_t i;
      std::memcpy(&i, g.data(), 8);
      ASSERT_EQ(i, seen);
      ASSERT_EQ(dst[i], i) << "the message for write " << i << " arrived before the write";
      ++seen;
    }
  }
  writer.join();
  EXPECT_EQ(seen, kOps);
  EXPECT_GT(net.stats().delays, 0u);
}

TEST(LoopbackTransportTest, AWriteToAnUnknownKeyKillsBothEnds) {
  LoopbackNetwork net(seed_for_run());
  auto acceptor = net.listen("a", "1");
  ASSERT_TRUE(acceptor.is_ok());
  EXPECT_FALSE(net.listen("a", "1").is_ok());  // the address is taken
  EXPECT_FALSE(net.connect("a", "2", 100ms).is_ok());  // nobody listens there
  auto client = net.connect("a", "1", 100ms);
  auto server = (*acceptor)->accept(100ms);
  ASSERT_TRUE(client.is_ok() && server.is_ok());
  std::vector<std::byte> src(64), dst(64);
  auto local = (*client)->register_region(src.data(), src.size(), false, 1);
  auto remote = (*server)->register_region(dst.data(), dst.size(), true, 5);
  ASSERT_TRUE(local.is_ok() && remote.is_ok());
  Region wrong = *remote;
  wrong.key = 6;
  ASSERT_TRUE((*client)->write(src.data(), 8, local->desc, wrong, 0).is_ok());  // fails at the target
  Status s = (*server)->poll(nullptr, 100ms);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_TRUE(contains(s.message(), "unknown key")) << s.to_string();
  EXPECT_EQ((*client)->poll(nullptr, 0ms).code(), Code::kUnavailable);
  EXPECT_FALSE((*client)->can_post(1));
  EXPECT_FALSE((*client)->send_message(src).is_ok());
  EXPECT_EQ(net.stats().errors, 1u);
}

TEST(LoopbackTransportTest, SlotsComeBackOnlyThroughThePostersPoll) {
  LoopbackNetwork net(seed_for_run(), LoopbackConfig{4, 4});
  auto acceptor = net.listen("a", "1");
  auto client = net.connect("a", "1", 100ms);
  auto server = (*acceptor)->accept(100ms);
  ASSERT_TRUE(client.is_ok() && server.is_ok());
  std::vector<std::byte> m(16);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE((*client)->send_message(m).is_ok());
  EXPECT_FALSE((*client)->can_post(1));
  std::vector<std::vector<std::byte>> got;
  ASSERT_TRUE((*server)->poll(&got, 100ms).is_ok());
  EXPECT_EQ(got.size(), 4u);
  EXPECT_FALSE((*client)->can_post(1));  // delivered, but the completions are not reaped yet
  ASSERT_TRUE((*client)->poll(nullptr, 0ms).is_ok());
  EXPECT_TRUE((*client)->can_post(4));
  // Closing one end: what it sent is still delivered, then the other end sees the close.
  ASSERT_TRUE((*client)->send_message(m).is_ok());
  client->reset();
  got.clear();
  ASSERT_TRUE((*server)->poll(&got, 100ms).is_ok());
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ((*server)->poll(&got, 100ms).code(), Code::kUnavailable);
}

// ---- The protocol over the loopback ----

constexpr uint64_t kRing = nvcache::kDataOffset + (256u << 10);  // wraps often
constexpr const char* kHost = "node2";  // the receiver's loopback address
constexpr const char* kPort = "mirror";

class LoopbackProtocolTest : public ::testing::Test {
 protected:

  void SetUp() override {
    net_ = std::make_unique<LoopbackNetwork>(seed_for_run());
    key_ = key_from_passphrase("loopback test key");
    primary_ = std::make_unique<nvcache::MemStore>(kRing);
    mirror_ = std::make_unique<nvcache::MemStore>(kRing);
    ASSERT_TRUE(nvcache::Log::format(*primary_, 1, 0xC0FFEE).is_ok());
  }

  void TearDown() override {
    if (cache_) cache_->set_replicator(nullptr);
    if (sender_) sender_->stop();
    if (receiver_) receiver_->stop();
    if (cache_) cache_->stop();
    sender_.reset();
    receiver_.reset();
    cache_.reset();
  }

  void open_cache(bool destager) {
    nvcache::NvCacheOptions co;
    co.logger = Logger("node1-nvlog", LogLevel::kWarn);
    co.destage_interval_ms = 2;  // trims all the time: the ring wraps under the mirror
    auto c = nvcache::NvCache::open(*primary_, target_, co);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    cache_ = std::move(*c);
    if (destager) cache_->start_destager();
  }

  MirrorReceiverOptions receiver_options() {
    MirrorReceiverOptions o = testing::receiver_options_for(kPort, key_, LogLevel::kWarn, kHost);
    o.transport = net_.get();
    return o;
  }
  void start_receiver() {
    auto r = MirrorReceiver::start(*mirror_, receiver_options());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    receiver_ = std::move(*r);
  }

  MirrorSenderOptions sender_options(std::chrono::milliseconds mirror_wait) {
    MirrorSenderOptions o = testing::sender_options_for(kPort, key_, LogLevel::kWarn, kHost);
    o.transport = net_.get();
    o.mirror_wait = mirror_wait;
    o.window_bytes = 64u << 10;
    o.max_chunk_bytes = 16u << 10;
    o.connect_timeout = 100ms;
    o.reconnect_interval = 5ms;
    o.heartbeat_interval = 50ms;
    return o;
  }
  void start_sender(MirrorSenderOptions o) {
    sender_ = std::make_unique<MirrorSender>(cache_->log(), std::move(o));
    sender_->start();
    cache_->set_replicator(sender_.get());
  }

  // The last LSN the mirror as it stands now recovers (0: none), and why its scan ended.
  std::pair<uint64_t, std::string> mirror_recovers() {
    auto rec = nvcache::scan_ring(*mirror_, [](const nvcache::RecordView&) {});
    if (!rec) return {0, rec.status().to_string()};
    return {rec->next_lsn - 1, rec->end_message};
  }

  // "" when the mirror equals the primary between trim and head, else where it differs.
  std::string compare_mirror() {
    const auto& log = cache_->log();
    const uint64_t data = log.data_bytes(), from = log.trim_point().pos, to = log.complete_point().pos;
    for (uint64_t p = from; p < to; ++p)
      if (primary_->mapping()[nvcache::kDataOffset + p % data] != mirror_->mapping()[nvcache::kDataOffset + p % data])
        return "position " + std::to_string(p) + " differs in [" + std::to_string(from) + ", " +
               std::to_string(to) + ")";
    if (receiver_ && receiver_->stats().trim_lsn != log.trim_point().lsn)
      return "mirror trim LSN " + std::to_string(receiver_->stats().trim_lsn) + ", primary " +
             std::to_string(log.trim_point().lsn);
    return "";
  }

  std::unique_ptr<LoopbackNetwork> net_;  // first: outlives everything that uses it
  Key key_;
  std::unique_ptr<nvcache::MemStore> primary_, mirror_;
  nvcache::testing::MemTarget target_;
  std::unique_ptr<nvcache::NvCache> cache_;
  std::unique_ptr<MirrorReceiver> receiver_;
  std::unique_ptr<MirrorSender> sender_;
};

TEST_F(LoopbackProtocolTest, RandomWritesThroughDropsDelaysAndBadKeys) {
  std::mt19937_64 rng(net_->seed() ^ 0x5EEDu);  // the test's own choices
  open_cache(/*destager=*/true);
  start_receiver();
  LoopbackFaults faults;
  faults.drop_p = 0.003;
  faults.delay_p = 0.05;
  faults.delay_us_max = 1500;
  faults.bad_key_p = 0.001;
  net_->set_faults(faults);
  start_sender(sender_options(20s));  // far longer than any reconnect here: degrading is a failure
  ASSERT_TRUE(eventually([&] { return sender_->stats().state == MirrorState::kMirroring; }))
      << sender_->stats().last_error;

  constexpr int kWrites = 3000;
  int restarts = 0, cuts = 0;
  for (int i = 0; i < kWrites; ++i) {
    const uint64_t dice = rng() % 1000;
    if (dice < 4) {  // the partner restarts on the same mirror store
      receiver_->stop();
      receiver_.reset();
      start_receiver();
      ++restarts;
    } else if (dice < 10) {  // the network cuts every connection
      cuts += net_->drop_all("cut by the test") > 0;
    }
    const auto data = random_bytes(rng, 1 + rng() % ((rng() % 4 == 0) ? 40000 : 3000));
    auto lsn = cache_->write({3, "obj" + std::to_string(rng() % 5)}, 1, rng() % (1u << 18), data);
    ASSERT_TRUE(lsn.is_ok()) << "write " << i << ": " << lsn.status().to_string();
    // One writer: the ring's filled point is this write's end. It was acknowledged, so the
    // partner holds it, and the mirror would recover it if this node died now.
    const auto st = sender_->stats();
    ASSERT_FALSE(st.degraded) << "write " << i << ": " << st.last_error;
    ASSERT_GE(st.mirrored_pos, cache_->log().filled_point().pos) << "write " << i << " acknowledged unmirrored";
    const auto [recovered, why] = mirror_recovers();
    ASSERT_GE(recovered, *lsn) << "write " << i << " (LSN " << *lsn
                               << ") acknowledged but the mirror recovers only up to LSN " << recovered
                               << "; its scan ended: " << why;
  }
  const auto ns = net_->stats();
  std::printf("%d writes, %d partner restarts, %d cuts, %" PRIu64 " connects; network: %" PRIu64
              " writes, %" PRIu64 " messages, %" PRIu64 " delays, %" PRIu64 " drops, %" PRIu64
              " bad keys, %" PRIu64 " write errors\n",
              kWrites, restarts, cuts, sender_->stats().connects, ns.writes, ns.messages, ns.delays,
              ns.drops, ns.bad_keys, ns.errors);
  EXPECT_GE(sender_->stats().connects, 1u + restarts);
  EXPECT_GT(ns.delays, 0u);

  // Quiesce: no more faults; the destager stops where it is (records stay between trim and head);
  // once the last trim has reached the partner, primary == mirror from trim to head.
  net_->set_faults({});
  cache_->stop();
  std::string diff;
  EXPECT_TRUE(eventually([&] { return (diff = compare_mirror()).empty(); })) << diff;
}

TEST_F(LoopbackProtocolTest, WrongKeyIsRefusedAndTheMirrorIsUntouched) {
  std::mt19937_64 rng(net_->seed());
  auto& bytes = mirror_->bytes();
  for (auto& b : bytes) b = std::byte(rng());
  const std::vector<std::byte> before = bytes;
  open_cache(false);
  start_receiver();
  auto o = sender_options(200ms);
  o.key = key_from_passphrase("another key");
  o.reconnect_interval = 50ms;
  start_sender(o);
  ASSERT_TRUE(eventually([&] { return receiver_->stats().refused >= 1; }));
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, refuse_reason_name(RefuseReason::kBadKey)))
      << receiver_->stats().last_refusal;
  ASSERT_TRUE(eventually([&] { return contains(sender_->stats().last_error, "refused"); }))
      << sender_->stats().last_error;
  ASSERT_TRUE(cache_->write({3, "x"}, 1, 0, random_bytes(rng, 100)).is_ok());  // degraded after mirror_wait
  const auto st = sender_->stats();
  EXPECT_TRUE(st.degraded);
  EXPECT_EQ(st.connects, 0u);  // never got past the handshake
  EXPECT_EQ(receiver_->stats().commits, 0u);
  EXPECT_TRUE(mirror_->bytes() == before) << "a refused sender changed the mirror store";
}

// Membership rule 8: while an ownership record says a run of the partner's volumes is staged in
// the ring this mirror holds, a sender with another ring of the partner's id (a second process
// with its identity, another machine's NV log) is refused: starting the mirror over would erase
// the run's only other copy (whole-pair simulator, seed 14686284917154837223). Once no record
// names that ring any more, the new ring is accepted.
TEST_F(LoopbackProtocolTest, AnotherRingCannotReplaceAMirrorHoldingThePartnersRun) {
  std::mt19937_64 rng(net_->seed());
  open_cache(false);
  start_receiver();
  start_sender(sender_options(2000ms));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cache_->write({1, "f"}, 1, uint64_t(i) * 100, random_bytes(rng, 100)).is_ok());
  ASSERT_TRUE(eventually([&] { return compare_mirror().empty(); })) << compare_mirror();
  receiver_->set_held_epochs({}, {nvcache::ring_tag(0xC0FFEE)}, false);
  const auto held = mirror_recovers();
  ASSERT_EQ(held.first, 5u) << held.second;

  // The twin: same node id, another NV log.
  cache_->set_replicator(nullptr);
  sender_->stop();
  cache_->stop();
  sender_.reset();
  cache_.reset();
  primary_ = std::make_unique<nvcache::MemStore>(kRing);
  ASSERT_TRUE(nvcache::Log::format(*primary_, 1, 0xBADBAD).is_ok());
  open_cache(false);
  const uint64_t refused_before = receiver_->stats().refused;
  auto o = sender_options(200ms);
  o.reconnect_interval = 20ms;
  start_sender(o);
  ASSERT_TRUE(eventually([&] { return receiver_->stats().refused > refused_before; }));
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, "cannot replace it")) << receiver_->stats().last_refusal;
  ASSERT_TRUE(cache_->write({1, "g"}, 1, 0, random_bytes(rng, 100)).is_ok());  // degraded after mirror_wait
  EXPECT_EQ(mirror_recovers(), held) << "the twin's sender changed the mirror of the original's run";

  // A takeover of this node's that has still to replay the mirror keeps the ring the same way.
  const uint64_t refused_pinned = receiver_->stats().refused;
  receiver_->set_held_epochs({}, {}, /*keep_ring=*/true);
  ASSERT_TRUE(eventually([&] { return receiver_->stats().refused > refused_pinned; }));
  EXPECT_EQ(mirror_recovers(), held) << "the mirror a takeover must replay started over";
  receiver_->set_held_epochs({}, {}, false);  // taken over and replayed: nothing keeps the ring
  ASSERT_TRUE(eventually([&] { return receiver_->stats().ring_id == 0xBADBADu && compare_mirror().empty(); }))
      << compare_mirror();
}

TEST_F(LoopbackProtocolTest, DropDuringResyncResumesAndConverges) {
  std::mt19937_64 rng(net_->seed());
  open_cache(/*destager=*/false);  // the trim point stays: the resync span is known
  auto o = sender_options(50ms);
  o.window_bytes = 8u << 10;
  o.max_chunk_bytes = 2u << 10;
  start_sender(o);
  // No partner yet: the first write waits mirror_wait, then the sender goes degraded.
  for (int i = 0; i < 120; ++i)
    ASSERT_TRUE(cache_->write({3, "obj" + std::to_string(i % 3)}, 1, rng() % 65536,
                              random_bytes(rng, 500 + rng() % 1000)).is_ok());
  ASSERT_TRUE(sender_->stats().degraded);
  const uint64_t from = cache_->log().trim_point().pos, to = cache_->log().filled_point().pos;
  ASSERT_GT(to - from, 100u << 10);

  // Slow delivery so that the resync takes a while; cut the connection in the middle of it.
  net_->set_faults(LoopbackFaults{0, 1.0, 3000, 0});
  start_receiver();
  ASSERT_TRUE(eventually([&] {
    return sender_->stats().state == MirrorState::kResyncing && receiver_->stats().bytes_committed > 0;
  })) << sender_->stats().last_error;
  ASSERT_EQ(net_->drop_all("cut during resync"), 1u);
  const uint64_t committed_at_cut = receiver_->stats().bytes_committed;
  EXPECT_LT(committed_at_cut, to - from) << "the resync was over before the cut";
  net_->set_faults({});

  ASSERT_TRUE(eventually([&] {
    const auto st = sender_->stats();
    return st.state == MirrorState::kMirroring && !st.degraded && st.mirrored_pos >= to;
  })) << sender_->stats().last_error;
  EXPECT_GE(sender_->stats().connects, 2u);
  // Resumed from where the mirror stood, not from the trim point: nothing was committed twice.
  EXPECT_EQ(receiver_->stats().bytes_committed, to - from);
  EXPECT_EQ(compare_mirror(), "");
  uint64_t primary_records = 0, mirror_records = 0;
  ASSERT_TRUE(nvcache::scan_ring(*primary_, [&](const auto&) { ++primary_records; }).is_ok());
  ASSERT_TRUE(nvcache::scan_ring(*mirror_, [&](const auto&) { ++mirror_records; }).is_ok());
  EXPECT_EQ(primary_records, mirror_records);
  // Mirroring again: the next write waits for the partner.
  ASSERT_TRUE(cache_->write({3, "after"}, 1, 0, random_bytes(rng, 300)).is_ok());
  EXPECT_FALSE(sender_->stats().degraded);
  EXPECT_GE(sender_->stats().mirrored_pos, cache_->log().filled_point().pos);
}

// A partner that completes the handshake, echoes heartbeats, and never acknowledges a COMMIT.
class SilentPartner {
 public:
  SilentPartner(LoopbackNetwork& net, const Key& key) : key_(key) {
    auto a = net.listen(kHost, kPort);
    EXPECT_TRUE(a.is_ok()) << a.status().to_string();
    if (a) acceptor_ = std::move(*a);
    thread_ = std::thread([this] { run(); });
  }
  ~SilentPartner() {
    stop_ = true;
    thread_.join();
  }
  std::atomic<int> commits{0};
  std::atomic<bool> accepted{false};
  std::string error;  // read after the destructor's join or once accepted

 private:
  void run() {
    std::unique_ptr<Transport> t;
    while (!stop_ && !t) {
      auto c = acceptor_->accept(10ms);
      if (c) t = std::move(*c);
    }
    if (!t) return;
    Hello hello;
    hello.node_id = 2;
    hello.nonce = random_nonce();
    hello.mr_bytes = kRing;
    std::vector<std::byte> region(kRing);
    Region reg;
    uint32_t seq = 0;
    if (!t->send_message(encode(hello, seq++)).is_ok()) return;
    while (!stop_) {
      std::vector<std::vector<std::byte>> got;
      if (!t->poll(&got, 10ms).is_ok()) break;
      for (const auto& g : got) {
        auto m = decode(g);
        if (!m) continue;
        if (const auto* auth = std::get_if<Auth>(&*m)) {
          auto r = t->register_region(region.data(), region.size(), true, 77);
          if (!r) return;
          reg = *r;
          Accept acc;
          acc.mr_key = reg.key;
          acc.mr_base = reg.base;
          acc.mac = hmac(key_, accept_mac_input(*auth, 2, acc.mr_key, acc.mr_base));
          (void)t->send_message(encode(acc, seq++));
          accepted = true;
        } else if (std::holds_alternative<Commit>(*m)) {
          ++commits;  // and no ACK, ever
        } else if (const auto* hb = std::get_if<Heartbeat>(&*m)) {
          if (t->can_post(1)) (void)t->send_message(encode(*hb, seq++));
        }
      }
    }
    t->unregister(reg);
  }

  const Key key_;
  std::unique_ptr<Acceptor> acceptor_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(LoopbackProtocolTest, APartnerThatNeverAcksMakesWritesWaitForTheDegradePolicy) {
  std::mt19937_64 rng(net_->seed());
  open_cache(false);
  SilentPartner partner(*net_, key_);
  auto o = sender_options(300ms);
  o.peer_silence_limit = 10s;  // it is alive: only the degrade policy may end the wait
  start_sender(o);
  std::atomic<int> asked{0};
  std::atomic<int64_t> waited_max_ms{0};
  sender_->set_degrade_policy([&](std::chrono::milliseconds waited) {
    ++asked;
    waited_max_ms = std::max<int64_t>(waited_max_ms, waited.count());
    return waited >= 300ms;
  });
  ASSERT_TRUE(eventually([&] { return sender_->stats().state == MirrorState::kMirroring; }))
      << sender_->stats().last_error;
  ASSERT_TRUE(partner.accepted);

  const auto start = Clock::now();
  ASSERT_TRUE(cache_->write({3, "x"}, 1, 0, random_bytes(rng, 2000)).is_ok());
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 5s);
  auto st = sender_->stats();
  EXPECT_TRUE(st.degraded);
  EXPECT_LT(st.mirrored_pos, st.filled_pos);
  EXPECT_EQ(st.state, MirrorState::kMirroring);  // still connected: the partner is alive
  EXPECT_GE(asked.load(), 2);                    // asked while waiting, said yes at the limit
  EXPECT_GE(waited_max_ms.load(), 300);
  EXPECT_TRUE(eventually([&] { return partner.commits.load() >= 1; }));
  // Degraded: the next write does not wait.
  const auto start2 = Clock::now();
  ASSERT_TRUE(cache_->write({3, "y"}, 1, 0, random_bytes(rng, 2000)).is_ok());
  EXPECT_LT(Clock::now() - start2, 200ms);
  cache_->set_replicator(nullptr);
  sender_->stop();  // before the partner goes away
}

}  // namespace
}  // namespace hafs::interconnect
