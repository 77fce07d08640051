// Mirroring in one process over real libfabric (tcp provider, loopback): records appended
// through NvCache land byte-identical in the partner's mirror store, which nvcache's reader
// recovers unchanged.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

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


struct Files {
  std::string primary, mirror;
  Files() {
    const auto tag = std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
    primary = "/dev/shm/hafs-mirror-test-p-" + tag;
    mirror = "/dev/shm/hafs-mirror-test-m-" + tag;
  }
  ~Files() {
    std::filesystem::remove(primary);
    std::filesystem::remove(mirror);
  }
};


class MirrorTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRing = nvcache::kDataOffset + (8u << 20);
  void SetUp() override {
    port_ = free_port();
    key_ = key_from_passphrase("test key");
    auto p = nvcache::open_store(nvcache::StoreMode::kPmem, files_.primary, kRing);
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    primary_ = std::move(*p);
    ASSERT_TRUE(nvcache::Log::format(*primary_, 1, 0x1234).is_ok());
    auto m = nvcache::open_store(nvcache::StoreMode::kPmem, files_.mirror, kRing);
    ASSERT_TRUE(m.is_ok());
    mirror_ = std::move(*m);
    auto c = nvcache::NvCache::open(*primary_, target_, {});
    ASSERT_TRUE(c.is_ok());
    cache_ = std::move(*c);
  }
  MirrorReceiverOptions receiver_options() {
    return testing::receiver_options_for(port_, key_, LogLevel::kInfo);
  }
  MirrorSenderOptions sender_options() {
    return testing::sender_options_for(port_, key_, LogLevel::kInfo);
  }
  void TearDown() override {
    if (sender_) sender_->stop();
    if (cache_) cache_->set_replicator(nullptr);
  }
  // Starts a receiver with `ro` and a sender mirroring the cache's log into it.
  std::unique_ptr<MirrorReceiver> start_mirroring(const MirrorReceiverOptions& ro) {
    auto receiver = MirrorReceiver::start(*mirror_, ro);
    EXPECT_TRUE(receiver.is_ok()) << receiver.status().to_string();
    if (!receiver) return nullptr;
    sender_ = std::make_unique<MirrorSender>(cache_->log(), sender_options());
    sender_->start();
    cache_->set_replicator(sender_.get());
    EXPECT_TRUE(eventually([&] { return sender_->stats().state == MirrorState::kMirroring; }))
        << sender_->stats().last_error;
    return std::move(*receiver);
  }

  Files files_;
  std::string port_;
  Key key_;
  std::unique_ptr<nvcache::Store> primary_, mirror_;
  nvcache::testing::MemTarget target_;
  std::unique_ptr<nvcache::NvCache> cache_;
  std::unique_ptr<MirrorSender> sender_;
};

TEST_F(MirrorTest, MirrorIsByteIdenticalBetweenTrimAndHead) {
  auto receiver = start_mirroring(receiver_options());
  ASSERT_TRUE(receiver && sender_->stats().state == MirrorState::kMirroring);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::vector<std::byte> data(1 + rng() % 9000);
    for (auto& b : data) b = std::byte(rng());
    auto lsn = cache_->write({3, "obj" + std::to_string(i % 7)}, 1, rng() % (1 << 20), data);
    ASSERT_TRUE(lsn.is_ok()) << lsn.status().to_string();
  }
  const auto st = sender_->stats();
  EXPECT_FALSE(st.degraded);
  EXPECT_EQ(st.lag_bytes, 0u);  // every write waited for the partner's ACK
  const auto& log = cache_->log();
  const uint64_t from = log.trim_point().pos, to = log.complete_point().pos;
  ASSERT_LT(from, to);
  std::vector<std::byte> a(to - from), b(to - from);
  const uint64_t data = log.data_bytes();
  ASSERT_LT(to - from, data);
  for (uint64_t p = from; p < to; ++p) {  // compare position by position (the ring may wrap)
    a[p - from] = primary_->mapping()[nvcache::kDataOffset + p % data];
    b[p - from] = mirror_->mapping()[nvcache::kDataOffset + p % data];
  }
  EXPECT_EQ(a, b);
  // The mirror recovers to the same records.
  uint64_t primary_records = 0, mirror_records = 0;
  ASSERT_TRUE(nvcache::scan_ring(*primary_, [&](const auto&) { ++primary_records; }).is_ok());
  auto rec = nvcache::scan_ring(*mirror_, [&](const auto&) { ++mirror_records; });
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(primary_records, mirror_records);
  EXPECT_TRUE(rec->header.flags & nvcache::kRingFlagMirror);
  EXPECT_GE(receiver->stats().commits, 1u);
}

TEST_F(MirrorTest, WrongKeyIsRefusedAndNothingIsWritten) {
  auto receiver = MirrorReceiver::start(*mirror_, receiver_options());
  ASSERT_TRUE(receiver.is_ok());
  auto opts = sender_options();
  opts.key = key_from_passphrase("another key");
  opts.mirror_wait = 200ms;
  sender_ = std::make_unique<MirrorSender>(cache_->log(), opts);
  sender_->start();
  cache_->set_replicator(sender_.get());
  ASSERT_TRUE(eventually([&] { return (*receiver)->stats().refused >= 1; }));
  EXPECT_NE((*receiver)->stats().last_refusal.find("authentication"), std::string::npos);
  std::vector<std::byte> data(100, std::byte{1});
  ASSERT_TRUE(cache_->write({3, "x"}, 1, 0, data).is_ok());  // degraded after mirror_wait
  EXPECT_TRUE(sender_->stats().degraded);
  EXPECT_EQ((*receiver)->stats().commits, 0u);
}


// Writers waiting one after another read their own ACKs from the completion queue instead of
// being woken by the progress thread that read it (wire-protocol.md §7, "Who reads the ACK"): one
// wake-up less per mirrored write. Only the first write after a quiet spell, or an ACK the
// progress thread happens to see first when it looks in, is handed over.
TEST_F(MirrorTest, AWriterWaitingAloneReadsItsOwnAck) {
  auto receiver = start_mirroring(receiver_options());
  ASSERT_TRUE(receiver && sender_->stats().state == MirrorState::kMirroring);
  const auto before = sender_->stats();
  constexpr uint64_t kWrites = 300;
  std::vector<std::byte> data(4096, std::byte{5});
  for (uint64_t i = 0; i < kWrites; ++i)
    ASSERT_TRUE(cache_->write({3, "qd1"}, 1, (i % 64) * 4096, data).is_ok());
  const auto after = sender_->stats();
  EXPECT_FALSE(after.degraded);
  const uint64_t acks = after.acks - before.acks;
  const uint64_t by_writers = after.acks_read_by_writers - before.acks_read_by_writers;
  EXPECT_EQ(acks, kWrites);  // one COMMIT per write at QD1, each answered
  EXPECT_GE(by_writers, acks / 2) << by_writers << " of " << acks << " ACKs read by their writers";
}

// The COMMITs that reach the receiver together are persisted together and answered with one ACK
// (wire-protocol.md §7, "Receiver"): here the first COMMIT is held up in the receiver (a
// delay before its ACK) while three more writers ship one COMMIT each behind it.
TEST_F(MirrorTest, CommitsThatArriveTogetherAreAcknowledgedTogether) {
  FaultRegistry faults;
  auto ro = receiver_options();
  ro.faults = &faults;
  auto receiver = start_mirroring(ro);
  ASSERT_TRUE(receiver && sender_->stats().state == MirrorState::kMirroring);
  const auto before = receiver->stats();
  faults.arm(FaultSite::kMirrorBeforeAck, FaultSpec{FaultAction::kDelay, 500});
  std::vector<std::thread> writers;
  std::atomic<int> failed{0};
  for (int i = 0; i < 4; ++i) {
    const uint64_t shipped = sender_->stats().bytes_shipped;
    writers.emplace_back([&, i] {
      std::vector<std::byte> data(3000, std::byte(i));
      if (!cache_->write({3, "obj" + std::to_string(i)}, 1, 0, data).is_ok()) ++failed;
    });
    // One COMMIT per writer: the next one writes once this one's record has been shipped.
    ASSERT_TRUE(eventually([&] { return sender_->stats().bytes_shipped > shipped; }));
    if (i == 0) {  // the first COMMIT is held up in the receiver from now on
      ASSERT_TRUE(eventually([&] { return faults.fired_count(FaultSite::kMirrorBeforeAck) == 1; }));
    }
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(failed, 0);
  const auto after = receiver->stats();
  EXPECT_EQ(after.commits - before.commits, 4u);
  EXPECT_EQ(after.acks - before.acks, 2u) << "the three COMMITs queued behind the first were not "
                                              "acknowledged together";
  EXPECT_FALSE(sender_->stats().degraded);
  EXPECT_EQ(sender_->stats().lag_bytes, 0u);
}

}  // namespace
}  // namespace hafs::interconnect
