// A partner that completes the handshake and then takes no more bytes (a hung process, a stuck
// NIC): the sender's posts find no free request or send slot, and fi_write keeps saying EAGAIN.
// Writers must still get an answer within mirror_wait plus the post timeout (issue 12): the
// connection is dropped (FabricConfig::post_timeout) and the degrade policy decides, instead of
// every writer and the sender's progress thread waiting for ever under the sender's lock.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <random>
#include <thread>

#include "interconnect/fabric.h"
#include "interconnect/mirror_sender.h"
#include "nvcache/nvcache.h"
#include "tests/interconnect/pair_options.h"
#include "tests/nvcache/mem_target.h"
#include "tests/support/wait.h"

namespace hafs::interconnect {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using hafs::testing::free_port;

// Listens, answers one sender's handshake correctly (HELLO, ACCEPT with a registered region),
// then never polls again until told to go.
class HungReceiver {
 public:
  HungReceiver(const std::string& port, const Key& key, size_t region_bytes)
      : key_(key), region_buf_(region_bytes) {
    FabricTransportFactory fabric(FabricConfig{});
    auto l = fabric.listen("127.0.0.1", port);
    EXPECT_TRUE(l.is_ok()) << l.status().to_string();
    if (l) listener_ = std::move(*l);
    thread_ = std::thread([this] { run(); });
  }
  ~HungReceiver() {
    stop_ = true;
    thread_.join();
  }
  bool handshake_done() const { return accepted_.load(); }

 private:
  void run() {
    while (!stop_) {
      auto c = listener_->accept(50ms);
      if (!c) continue;
      conn_ = std::move(*c);
      Hello hello;
      hello.node_id = 2;
      hello.nonce = random_nonce();
      hello.mr_bytes = region_buf_.size();
      if (!conn_->send_message(encode(hello)).is_ok()) continue;
      std::optional<Auth> auth;
      const auto deadline = Clock::now() + 5s;
      while (!auth && Clock::now() < deadline && !stop_) {
        std::vector<std::vector<std::byte>> got;
        if (!conn_->poll(&got, 20ms).is_ok()) break;
        for (const auto& g : got)
          if (auto m = decode(g); m && std::holds_alternative<Auth>(*m)) auth = std::get<Auth>(*m);
      }
      if (!auth) continue;
      auto region = conn_->register_region(region_buf_.data(), region_buf_.size(), true, 7);
      ASSERT_TRUE(region.is_ok()) << region.status().to_string();
      Accept acc;
      acc.mr_key = region->key;
      acc.mr_base = region->base;
      acc.mac = hmac(key_, accept_mac_input(*auth, 2, acc.mr_key, acc.mr_base));
      ASSERT_TRUE(conn_->send_message(encode(acc)).is_ok());
      accepted_ = true;
      // Hung: no poll, no ACK, no reply to anything, until the test ends.
      while (!stop_) std::this_thread::sleep_for(10ms);
    }
  }

  Key key_;
  std::vector<std::byte> region_buf_;
  std::unique_ptr<Acceptor> listener_;
  std::unique_ptr<Transport> conn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> accepted_{false};
};

TEST(HungPartnerTest, WritersAreAnsweredWithinMirrorWaitWhateverThePartnerDoes) {
  constexpr uint64_t kRing = nvcache::kDataOffset + (64u << 20);
  const std::string port = free_port();
  const Key key = key_from_passphrase("hung partner test key");
  const std::string path = "/dev/shm/hafs-hung-partner-test-" + std::to_string(::getpid());
  auto store = nvcache::open_store(nvcache::StoreMode::kPmem, path, kRing);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  ASSERT_TRUE(nvcache::Log::format(**store, 1, 0x4242).is_ok());
  hafs::nvcache::testing::MemTarget target;
  auto cache = nvcache::NvCache::open(**store, target, {});
  ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
  (*cache)->start_destager();
  HungReceiver partner(port, key, kRing);

  MirrorSenderOptions so = testing::sender_options_for(port, key, LogLevel::kError);
  so.mirror_wait = 500ms;
  so.fabric.post_timeout = 500ms;
  so.peer_silence_limit = 60s;  // only the post timeout may notice the hang
  so.window_bytes = 16u << 20;
  so.max_chunk_bytes = 4096;  // many requests in flight: more than the provider has room for
  MirrorSender sender((*cache)->log(), so);
  sender.start();
  (*cache)->set_replicator(&sender);
  ASSERT_TRUE(hafs::testing::eventually([&] { return partner.handshake_done(); }));

  // Far more than the socket buffers hold: the partner's side stops taking bytes early on.
  std::vector<std::byte> data(256 << 10, std::byte{0x5a});
  Clock::duration slowest{};
  auto writer = std::async(std::launch::async, [&] {
    for (int i = 0; i < 160; ++i) {
      const auto t0 = Clock::now();
      auto w = (*cache)->write(nvcache::ObjectId{1, "f"}, 1, uint64_t(i) * data.size(), data);
      slowest = std::max(slowest, Clock::now() - t0);
      if (!w.is_ok()) return w.status();
    }
    // Then small writes for a few seconds: the sender's heartbeats and TRIMs meet the full
    // connection too, on its progress thread, which holds the sender's lock while it posts.
    const auto until = Clock::now() + 4s;
    for (uint64_t i = 0; Clock::now() < until; ++i) {
      const auto t0 = Clock::now();
      auto w = (*cache)->write(nvcache::ObjectId{1, "g"}, 1, (i % 1024) * 4096, std::span(data).first(4096));
      slowest = std::max(slowest, Clock::now() - t0);
      if (!w.is_ok()) return w.status();
    }
    return Status::ok();
  });
  // Without the post timeout the writer never returns: give it far more than it needs.
  ASSERT_EQ(writer.wait_for(60s), std::future_status::ready) << "a writer is stuck behind a hung partner";
  const Status done = writer.get();
  EXPECT_TRUE(done.is_ok()) << done.to_string();  // degraded: acknowledged from the local log
  EXPECT_LT(slowest, 3s) << "a write waited "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count() << " ms";
  EXPECT_TRUE(sender.degraded());
  (*cache)->set_replicator(nullptr);
  sender.stop();
  (*cache)->stop();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace hafs::interconnect
