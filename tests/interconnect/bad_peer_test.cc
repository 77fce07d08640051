// A real MirrorReceiver (in-process, real libfabric over tcp on loopback) against peers that
// misbehave: garbage, truncated or patched messages on a raw fabric connection, wrong keys,
// stale epochs, a second sender, the wrong node, the wrong ring geometry. Every one is refused
// with a clear reason, the connection is closed, the mirror store is not touched, and the
// receiver goes on serving: a correct sender connects afterwards.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "base/crc32c.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
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



bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A raw fabric connection to the receiver, speaking whatever the test sends.
struct RawPeer {
  std::unique_ptr<Connection> conn;
  std::vector<Message> received;  // decoded messages, in order
  std::string decode_errors;

  static RawPeer connect(const std::string& port) {
    RawPeer p;
    auto c = Connection::connect(FabricConfig{}, "127.0.0.1", port, 5000ms);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (c) p.conn = std::move(*c);
    return p;
  }
  // Polls until a message arrives (true) or the connection fails or the deadline passes.
  bool receive_one(std::chrono::milliseconds limit = 10s) {
    const size_t had = received.size();
    const auto deadline = Clock::now() + limit;
    while (received.size() == had && Clock::now() < deadline) {
      if (!poll_once()) return received.size() > had;
    }
    return received.size() > had;
  }
  // Polls until the connection fails (true: the receiver closed it) or the deadline passes.
  bool wait_closed(std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline)
      if (!poll_once()) return true;
    return false;
  }
  const Hello* hello() const { return received.empty() ? nullptr : std::get_if<Hello>(&received.front()); }
  const Refuse* refusal() const {
    for (const auto& m : received)
      if (const auto* r = std::get_if<Refuse>(&m)) return r;
    return nullptr;
  }
  Status send(const std::vector<std::byte>& bytes) { return conn->send_message(bytes); }

 private:
  bool poll_once() {
    std::vector<std::vector<std::byte>> got;
    Status s = conn->poll(&got, 50ms);
    for (const auto& g : got) {
      auto m = decode(g);
      if (m) received.push_back(*m);
      else decode_errors += m.status().message() + "; ";
    }
    return s.is_ok();
  }
};

class BadPeerTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRing = nvcache::kDataOffset + (1u << 20);
  static constexpr uint64_t kRingId = 0x1234;

  void SetUp() override {
    const auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    primary_path_ = "/dev/shm/hafs-bad-peer-test-p-" + tag;
    mirror_path_ = "/dev/shm/hafs-bad-peer-test-m-" + tag;
    port_ = free_port();
    key_ = key_from_passphrase("bad peer test key");
    auto p = nvcache::open_store(nvcache::StoreMode::kPmem, primary_path_, kRing);
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    primary_ = std::move(*p);
    ASSERT_TRUE(nvcache::Log::format(*primary_, 1, kRingId).is_ok());
    auto c = nvcache::NvCache::open(*primary_, target_, {});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    cache_ = std::move(*c);
    auto m = nvcache::open_store(nvcache::StoreMode::kPmem, mirror_path_, kRing);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    mirror_ = std::move(*m);
    // Recognisable bytes everywhere: "not touched" must mean something.
    std::mt19937_64 rng(42);
    for (uint64_t i = 0; i < kRing; ++i) mirror_->mapping()[i] = std::byte(rng());
    auto r = MirrorReceiver::start(*mirror_, receiver_options());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    receiver_ = std::move(*r);
    mirror_crc_ = mirror_crc();
  }

  void TearDown() override {
    if (cache_) cache_->set_replicator(nullptr);
    if (receiver_) receiver_->stop();
    receiver_.reset();
    cache_.reset();
    primary_.reset();
    mirror_.reset();
    std::filesystem::remove(primary_path_);
    std::filesystem::remove(mirror_path_);
  }

  MirrorReceiverOptions receiver_options() { return testing::receiver_options_for(port_, key_); }
  MirrorSenderOptions sender_options() { return testing::sender_options_for(port_, key_); }
  uint32_t mirror_crc() { return crc32c(mirror_->mapping(), mirror_->size()); }

  // A well-formed AUTH answering `hello`, as the real sender would send it, after `edit` (the
  // MAC covers the edited fields: only what the edit changes is wrong).
  template <typename Edit>
  Auth make_auth(const Hello& hello, Edit edit) {
    Auth a;
    a.node_id = 1;
    a.epoch = 1;
    a.ring_id = kRingId;
    a.ring_bytes = kRing;
    a.session = cache_->log().header().session;
    a.trim_session = cache_->log().header().trim_session;
    a.trim_lsn = 1;
    a.trim_pos = 0;
    a.nonce = random_nonce();
    edit(a);
    a.mac = hmac(key_, auth_mac_input(hello, a));
    return a;
  }

  // The receiver refused one more connection (or more: a real sender retries), for a reason
  // naming `why`.
  void expect_refused(uint64_t refused_before, const std::string& why, bool exactly_one = true) {
    EXPECT_TRUE(eventually([&] { return receiver_->stats().refused > refused_before; }))
        << "not refused";
    const auto st = receiver_->stats();
    if (exactly_one) {
      EXPECT_EQ(st.refused, refused_before + 1);
    }
    EXPECT_TRUE(contains(st.last_refusal, why)) << "last refusal: " << st.last_refusal;
    EXPECT_FALSE(st.connected);
  }

  // Starts `sender` as this ring's replicator and waits until it mirrors.
  void start_mirroring(MirrorSender& sender) {
    sender.start();
    cache_->set_replicator(&sender);
    ASSERT_TRUE(eventually([&] { return sender.stats().state == MirrorState::kMirroring; }))
        << sender.stats().last_error;
  }

  // The receiver still serves: a correct sender connects, mirrors, and a write is acknowledged
  // with the partner's ACK (not degraded).
  void expect_correct_sender_mirrors(uint64_t epoch = 1) {
    auto opts = sender_options();
    opts.epoch = epoch;
    MirrorSender sender(cache_->log(), opts);
    sender.start();
    cache_->set_replicator(&sender);
    EXPECT_TRUE(eventually([&] { return sender.stats().state == MirrorState::kMirroring; }))
        << sender.stats().last_error;
    std::vector<std::byte> data(5000, std::byte{7});
    auto w = cache_->write({3, "after"}, 1, 0, data);
    EXPECT_TRUE(w.is_ok()) << w.status().to_string();
    EXPECT_FALSE(sender.stats().degraded);
    EXPECT_EQ(sender.stats().lag_bytes, 0u);
    EXPECT_TRUE(receiver_->stats().connected);
    cache_->set_replicator(nullptr);
    sender.stop();
  }

  std::string primary_path_, mirror_path_, port_;
  Key key_;
  std::unique_ptr<nvcache::Store> primary_, mirror_;
  nvcache::testing::MemTarget target_;
  std::unique_ptr<nvcache::NvCache> cache_;
  std::unique_ptr<MirrorReceiver> receiver_;
  uint32_t mirror_crc_ = 0;
};

TEST_F(BadPeerTest, GarbageInsteadOfAuthIsRefused) {
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one()) << "no HELLO";
  ASSERT_NE(p.hello(), nullptr);
  std::vector<std::byte> garbage(100);
  std::mt19937 rng(1);
  for (auto& b : garbage) b = std::byte(rng());
  ASSERT_TRUE(p.send(garbage).is_ok());
  EXPECT_TRUE(p.wait_closed()) << "the receiver kept the connection";
  expect_refused(0, "bad magic");
  ASSERT_NE(p.refusal(), nullptr);
  EXPECT_EQ(p.refusal()->reason, RefuseReason::kProtocol);
  EXPECT_EQ(mirror_crc(), mirror_crc_) << "the mirror store was touched";
  expect_correct_sender_mirrors();
}

TEST_F(BadPeerTest, TruncatedAuthIsRefused) {
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one());
  ASSERT_NE(p.hello(), nullptr);
  auto bytes = encode(make_auth(*p.hello(), [](Auth&) {}));
  bytes.resize(30);
  ASSERT_TRUE(p.send(bytes).is_ok());
  EXPECT_TRUE(p.wait_closed());
  expect_refused(0, "AUTH with a body");
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors();
}

TEST_F(BadPeerTest, WrongKeyIsRefusedAndTheSenderSaysSo) {
  auto opts = sender_options();
  opts.key = key_from_passphrase("not the key");
  MirrorSender bad(cache_->log(), opts);
  bad.start();
  expect_refused(0, "authentication failed", false);
  EXPECT_TRUE(eventually([&] { return contains(bad.stats().last_error, "refused"); }))
      << "sender's last error: " << bad.stats().last_error;
  EXPECT_NE(bad.stats().state, MirrorState::kMirroring);
  bad.stop();
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors();
}

TEST_F(BadPeerTest, OtherProtocolVersionIsRefused) {
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one());
  ASSERT_NE(p.hello(), nullptr);
  auto bytes = encode(make_auth(*p.hello(), [](Auth&) {}));
  // Header: magic u32 | version u16 (bytes 4..5) | ... | crc u32 (bytes 16..19): a valid
  // message of the next version, CRC recomputed over it with the CRC field zero.
  const uint16_t other = kWireVersion + 1;
  bytes[4] = std::byte(other & 0xff);
  bytes[5] = std::byte(other >> 8);
  for (int i = 16; i < 20; ++i) bytes[i] = std::byte{0};
  const uint32_t crc = crc32c(bytes.data(), bytes.size());
  for (int i = 0; i < 4; ++i) bytes[16 + i] = std::byte((crc >> (8 * i)) & 0xff);
  ASSERT_TRUE(p.send(bytes).is_ok());
  EXPECT_TRUE(p.wait_closed());
  expect_refused(0, "protocol version " + std::to_string(kWireVersion + 1));
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors();
}

TEST_F(BadPeerTest, StaleEpochIsRefused) {
  receiver_->set_min_epoch(5);
  auto opts = sender_options();
  opts.epoch = 3;
  MirrorSender stale(cache_->log(), opts);
  stale.start();
  expect_refused(0, "stale epoch", false);
  EXPECT_TRUE(eventually([&] { return contains(stale.stats().last_error, "refused"); }))
      << stale.stats().last_error;
  stale.stop();
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors(5);
}

// A node that learns the newer epoch from membership (set_epoch) is let in at its next attempt.
TEST_F(BadPeerTest, StaleSenderConnectsOnceItLearnsTheEpoch) {
  receiver_->set_min_epoch(4);
  auto opts = sender_options();
  opts.epoch = 2;
  MirrorSender sender(cache_->log(), opts);
  sender.start();
  expect_refused(0, "stale epoch", false);
  EXPECT_NE(sender.stats().state, MirrorState::kMirroring);
  sender.set_epoch(3);  // still older: refused again
  const uint64_t refused = receiver_->stats().refused;
  ASSERT_TRUE(eventually([&] { return receiver_->stats().refused > refused; }));
  EXPECT_NE(sender.stats().state, MirrorState::kMirroring);
  sender.set_epoch(4);
  sender.set_epoch(1);  // never lowers it
  EXPECT_TRUE(eventually([&] { return sender.stats().state == MirrorState::kMirroring; }))
      << sender.stats().last_error;
  EXPECT_EQ(receiver_->stats().partner_epoch, 4u);
  sender.stop();
}

// A sender accepted at epoch 5 that has not learned of a takeover at epoch 6 (the receiver's
// minimum rises while it is connected) adds nothing more: its next COMMIT is refused as stale and
// the connection dropped. Nothing it sends after that is persisted (membership.md, rule 1).
TEST_F(BadPeerTest, CommitBelowTheMinimumEpochIsRefusedOnAnAcceptedConnection) {
  auto opts = sender_options();
  opts.epoch = 5;
  opts.mirror_wait = 200ms;
  MirrorSender sender(cache_->log(), opts);
  ASSERT_NO_FATAL_FAILURE(start_mirroring(sender));
  std::vector<std::byte> data(3000, std::byte{1});
  ASSERT_TRUE(cache_->write({3, "before"}, 1, 0, data).is_ok());
  const uint64_t commits = receiver_->stats().commits;
  const uint64_t refused = receiver_->stats().refused;
  receiver_->set_min_epoch(6);
  ASSERT_TRUE(cache_->write({3, "after"}, 1, 0, data).is_ok());  // acknowledged degraded, not mirrored
  EXPECT_TRUE(eventually([&] { return receiver_->stats().refused > refused; }));
  // (the sender's reconnect is then refused at the handshake too, which may be the last word)
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, "stale epoch")) << receiver_->stats().last_refusal;
  EXPECT_EQ(receiver_->stats().commits, commits) << "a COMMIT below the minimum epoch was persisted";
  EXPECT_TRUE(sender.stats().degraded);
  cache_->set_replicator(nullptr);
  sender.stop();
}

// The receiver checks each committed record header's CRC (rule 7's walk): a header that went bad
// on the way (here: in the sender's ring before it was shipped) is refused, not persisted, so it
// cannot become damage in the middle of the mirror that a takeover would refuse.
TEST_F(BadPeerTest, ACommittedHeaderWithABadCrcIsRefused) {
  std::vector<std::byte> data(3000, std::byte{1});
  ASSERT_TRUE(cache_->write({3, "first"}, 1, 0, data).is_ok());  // not mirrored yet
  primary_->mapping()[nvcache::kDataOffset + nvcache::rec_off::kHeaderCrc] ^= std::byte{0x40};
  auto opts = sender_options();
  opts.mirror_wait = 200ms;
  MirrorSender sender(cache_->log(), opts);
  sender.start();
  cache_->set_replicator(&sender);
  EXPECT_TRUE(eventually([&] { return receiver_->stats().refused > 0; }));
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, "header CRC mismatch at position 0"))
      << receiver_->stats().last_refusal;
  EXPECT_EQ(receiver_->stats().commits, 0u) << "a record with a bad header was persisted";
  cache_->set_replicator(nullptr);
  sender.stop();
}

// A frozen mirror (a takeover replays it) drops the partner's connection and refuses new ones,
// so nothing of the partner's lands in it; thawed, the partner connects again.
TEST_F(BadPeerTest, AFrozenMirrorRefusesThePartnerUntilThawed) {
  auto opts = sender_options();
  opts.mirror_wait = 200ms;
  MirrorSender sender(cache_->log(), opts);
  ASSERT_NO_FATAL_FAILURE(start_mirroring(sender));
  ASSERT_TRUE(receiver_->freeze(2000ms).is_ok());
  EXPECT_TRUE(receiver_->stats().frozen);
  EXPECT_FALSE(receiver_->stats().connected);
  const uint32_t frozen_crc = mirror_crc();
  std::vector<std::byte> data(3000, std::byte{2});
  ASSERT_TRUE(cache_->write({3, "while frozen"}, 1, 0, data).is_ok());  // degraded
  const uint64_t refused = receiver_->stats().refused;
  EXPECT_TRUE(eventually([&] { return receiver_->stats().refused > refused; })) << "the sender was not refused";
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, "taking over")) << receiver_->stats().last_refusal;
  EXPECT_EQ(mirror_crc(), frozen_crc) << "the frozen mirror changed";
  receiver_->thaw();
  EXPECT_TRUE(eventually([&] { return receiver_->stats().connected && sender.stats().state == MirrorState::kMirroring; }))
      << sender.stats().last_error;
  cache_->set_replicator(nullptr);
  sender.stop();
}

TEST_F(BadPeerTest, SecondSenderWhileTheFirstIsAliveIsRefused) {
  MirrorSender first(cache_->log(), sender_options());
  ASSERT_NO_FATAL_FAILURE(start_mirroring(first));
  std::vector<std::byte> data(3000, std::byte{1});
  ASSERT_TRUE(cache_->write({3, "one"}, 1, 0, data).is_ok());
  const uint64_t commits = receiver_->stats().commits;

  // Another connection claiming node 1: refused before HELLO, the first one is undisturbed.
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one());
  ASSERT_NE(p.refusal(), nullptr) << "expected REFUSE, not HELLO";
  EXPECT_EQ(p.refusal()->reason, RefuseReason::kBusy);
  EXPECT_TRUE(p.wait_closed());
  EXPECT_TRUE(contains(receiver_->stats().last_refusal, "already connected"))
      << receiver_->stats().last_refusal;
  EXPECT_EQ(receiver_->stats().refused, 1u);

  for (int i = 0; i < 20; ++i) {
    auto w = cache_->write({3, "one"}, 1, uint64_t(i) * 3000, data);
    ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  }
  const auto st = first.stats();
  EXPECT_EQ(st.state, MirrorState::kMirroring);
  EXPECT_FALSE(st.degraded);
  EXPECT_EQ(st.lag_bytes, 0u);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_GT(receiver_->stats().commits, commits);
  EXPECT_TRUE(receiver_->stats().connected);
  cache_->set_replicator(nullptr);
  first.stop();
}

TEST_F(BadPeerTest, NotMyPartnerIsRefused) {
  auto opts = sender_options();
  opts.node_id = 3;
  MirrorSender stranger(cache_->log(), opts);
  stranger.start();
  expect_refused(0, "not my partner", false);
  EXPECT_TRUE(eventually([&] { return contains(stranger.stats().last_error, "refused"); }))
      << stranger.stats().last_error;
  stranger.stop();
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors();
}

TEST_F(BadPeerTest, RingGeometryMismatchIsRefused) {
  // A peer whose AUTH (correctly signed) announces a ring of another size.
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one());
  ASSERT_NE(p.hello(), nullptr);
  EXPECT_EQ(p.hello()->mr_bytes, kRing);
  ASSERT_TRUE(p.send(encode(make_auth(*p.hello(), [](Auth& a) { a.ring_bytes = 2 * kRing; }))).is_ok());
  EXPECT_TRUE(p.wait_closed());
  expect_refused(0, "ring geometry");
  ASSERT_NE(p.refusal(), nullptr);
  EXPECT_EQ(p.refusal()->reason, RefuseReason::kGeometry);
  EXPECT_EQ(mirror_crc(), mirror_crc_);

  // The real sender with a ring of another size does not even offer it.
  const std::string other_path = primary_path_ + "-other";
  {
    auto other = nvcache::open_store(nvcache::StoreMode::kPmem, other_path, 2 * kRing);
    ASSERT_TRUE(other.is_ok());
    ASSERT_TRUE(nvcache::Log::format(**other, 1, 0x5678).is_ok());
    nvcache::testing::MemTarget target;
    auto cache = nvcache::NvCache::open(**other, target, {});
    ASSERT_TRUE(cache.is_ok());
    MirrorSender big(cache->get()->log(), sender_options());
    big.start();
    EXPECT_TRUE(eventually([&] { return contains(big.stats().last_error, "partner mirror holds"); }))
        << big.stats().last_error;
    EXPECT_NE(big.stats().state, MirrorState::kMirroring);
    big.stop();
  }
  std::filesystem::remove(other_path);
  EXPECT_EQ(mirror_crc(), mirror_crc_);
  expect_correct_sender_mirrors();
}

// An unauthenticated peer must not be able to change the mirror: the receiver registers the
// mirror store only after AUTH has proven the shared key, and offers its key in ACCEPT (wire
// version 2). Before that there is no region to write into, whatever key a peer tries.
TEST_F(BadPeerTest, UnauthenticatedPeerCannotWriteIntoTheMirror) {
  RawPeer p = RawPeer::connect(port_);
  ASSERT_TRUE(p.conn);
  ASSERT_TRUE(p.receive_one());
  ASSERT_NE(p.hello(), nullptr);
  std::vector<std::byte> junk(4096, std::byte{0xEE});
  auto local = p.conn->register_region(junk.data(), junk.size(), false, 77);
  ASSERT_TRUE(local.is_ok()) << local.status().to_string();
  Status w;
  for (uint64_t key : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{77}, ~uint64_t{0}}) {
    const Region remote{nullptr, nullptr, key, 0};
    w = p.conn->write(junk.data(), junk.size(), local->desc, remote, nvcache::kDataOffset);
    // Whether the write is rejected at once or later, nothing may land: give it time to.
    std::vector<std::vector<std::byte>> got;
    for (int i = 0; i < 10 && w.is_ok(); ++i) w = p.conn->poll(&got, 20ms);
    if (!w.is_ok()) break;
  }
  p.conn->unregister(*local);
  EXPECT_EQ(mirror_crc(), mirror_crc_) << "an unauthenticated peer wrote into the mirror store";
  expect_correct_sender_mirrors();
}

}  // namespace
}  // namespace hafs::interconnect
