// NvCache over a MemStore and a MemTarget: staging and read overlay, flushes and the destager
// thread, destage failures, backpressure, recovery on reopen, replay of a mirror, and concurrent
// writers checked against the acknowledged writes in LSN order (invariants I4, I6).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/fault.h"
#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"

namespace hafs::nvcache {
namespace {

using testing::bytes_of;
using testing::MemTarget;
using namespace std::chrono_literals;

constexpr uint64_t kRingBytes = kDataOffset + 256 * 1024;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

NvCacheOptions options() {
  NvCacheOptions o;
  o.logger = Logger("nvcache-test", LogLevel::kError);
  o.destage_interval_ms = 60000;  // the destager runs when woken, not on a timer
  o.retry_backoff_max_ms = 20;
  return o;
}

// Polls `done` until it holds or `limit` passes: the waits of these tests, never a fixed sleep.
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

std::vector<std::byte> filled(size_t n, char c) { return std::vector<std::byte>(n, std::byte(c)); }

// An object's bytes as a medium of zeros written with `writes` at their offsets.
std::vector<std::byte> image(std::initializer_list<std::pair<uint64_t, std::vector<std::byte>>> writes) {
  std::vector<std::byte> out;
  for (const auto& [off, data] : writes) {
    if (out.size() < off + data.size()) out.resize(off + data.size());
    std::copy(data.begin(), data.end(), out.begin() + static_cast<long>(off));
  }
  return out;
}

class NvCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(Log::format(store_, 1, 0xfeed).is_ok()); }

  std::unique_ptr<NvCache> open(NvCacheOptions o = options(), RecoveryReport* report = nullptr) {
    auto cache = NvCache::open(store_, target_, std::move(o), report);
    EXPECT_TRUE(cache.is_ok()) << cache.status().to_string();
    return cache.is_ok() ? std::move(*cache) : nullptr;
  }
  uint64_t write(NvCache& cache, const ObjectId& o, uint64_t off, const std::vector<std::byte>& d,
                 uint64_t epoch = 1) {
    auto lsn = cache.write(o, epoch, off, d);
    EXPECT_TRUE(lsn.is_ok()) << lsn.status().to_string();
    return lsn.is_ok() ? *lsn : 0;
  }

  MemStore store_{kRingBytes};
  MemTarget target_;
  const ObjectId a_{1, "object-a"};
  const ObjectId b_{1, "object-b"};
  const ObjectId c_{2, "object-c"};
};

TEST_F(NvCacheTest, SnapshotOverlaysTheNewestStagedBytesOnTheMedium) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(write(*cache, a_, 100, filled(50, 'x')), 1u);
  EXPECT_EQ(write(*cache, a_, 120, filled(10, 'y')), 2u);
  EXPECT_TRUE(cache->has_staged(a_));
  EXPECT_FALSE(cache->has_staged(b_));
  EXPECT_EQ(cache->staged_end(a_), 150u);

  auto snap = cache->snapshot(a_, 90, 100);  // [90, 190)
  ASSERT_TRUE(snap.is_ok());
  std::vector<std::byte> buf = filled(100, 'm');  // what the medium holds
  apply_staged(*snap, 90, buf);
  std::vector<std::byte> want = filled(100, 'm');
  std::fill(want.begin() + 10, want.begin() + 60, std::byte('x'));
  std::fill(want.begin() + 30, want.begin() + 40, std::byte('y'));
  EXPECT_EQ(buf, want);

  auto inner = cache->snapshot(a_, 125, 2);  // clipped to the range asked for
  ASSERT_TRUE(inner.is_ok());
  ASSERT_EQ(inner->size(), 1u);
  EXPECT_EQ((*inner)[0].file_offset, 125u);
  EXPECT_EQ((*inner)[0].data, filled(2, 'y'));
  auto none = cache->snapshot(a_, 0, 100);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(target_.object_count(), 0u) << "nothing is destaged before a flush";
}

TEST_F(NvCacheTest, LargeWriteIsSplitIntoRecordsAndReadsBackWhole) {
  NvCacheOptions o = options();
  o.max_record_payload = 1000;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  std::vector<std::byte> data(3500);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i * 7);
  EXPECT_EQ(write(*cache, a_, 10, data), 4u);  // the LSN of the last of four records
  EXPECT_EQ(cache->stats().records_appended, 4u);
  EXPECT_EQ(cache->stats().bytes_appended, 3500u);
  auto snap = cache->snapshot(a_, 10, 3500);
  ASSERT_TRUE(snap.is_ok());
  std::vector<std::byte> buf(3500);
  apply_staged(*snap, 10, buf);
  EXPECT_EQ(buf, data);
}

TEST_F(NvCacheTest, LatencyHistogramsCountAcknowledgedWritesAndSuccessfulDestages) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(64, 'a'));
  write(*cache, b_, 0, filled(64, 'b'));
  EXPECT_FALSE(cache->write(ObjectId{1, std::string(kMaxKeyBytes + 1, 'k')}, 1, 0, filled(1, 'x')).is_ok());
  EXPECT_EQ(cache->write_ack_latency().snapshot().count, 2u) << "a refused write is not acknowledged";
  EXPECT_EQ(cache->destage_latency().snapshot().count, 0u);

  target_.fail_errno = EIO;
  EXPECT_FALSE(cache->flush_all().is_ok());
  EXPECT_EQ(cache->destage_latency().snapshot().count, 0u) << "a failed pass counts as an error only";
  EXPECT_EQ(cache->stats().destage_errors, 1u);
  target_.fail_errno = 0;
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(cache->destage_latency().snapshot().count, 1u) << "one pass wrote both objects";
  EXPECT_EQ(cache->stats().destaged_bytes, 128u);
}

TEST_F(NvCacheTest, KeyLongerThanAHandleIsRefused) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  auto r = cache->write(ObjectId{1, std::string(kMaxKeyBytes + 1, 'k')}, 1, 0, filled(1, 'x'));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(cache->stats().records_appended, 0u);
}

TEST_F(NvCacheTest, FlushObjectDestagesExactlyThatObjectAndTrimsUpToTheNextStagedRecord) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(100, 'a'));                 // LSN 1
  const uint64_t b_lsn = write(*cache, b_, 0, filled(100, 'b'));  // LSN 2
  write(*cache, a_, 50, filled(100, 'A'));                // LSN 3
  const uint64_t used_before = cache->stats().used_bytes;
  ASSERT_TRUE(cache->flush_object(a_).is_ok());
  EXPECT_EQ(target_.object_count(), 1u);
  EXPECT_EQ(target_.durable(a_), image({{0, filled(100, 'a')}, {50, filled(100, 'A')}}));
  EXPECT_FALSE(cache->has_staged(a_));
  EXPECT_TRUE(cache->has_staged(b_));
  NvCacheStats s = cache->stats();
  EXPECT_EQ(s.trim_lsn, b_lsn) << "the ring is trimmed up to b's record, not past it";
  EXPECT_LT(s.used_bytes, used_before);
  EXPECT_EQ(s.staged_bytes, 100u);
  EXPECT_EQ(s.destaged_bytes, 150u);

  ASSERT_TRUE(cache->flush_all().is_ok());
  s = cache->stats();
  EXPECT_EQ(target_.durable(b_), filled(100, 'b'));
  EXPECT_EQ(s.trim_lsn, 4u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.extents, 0u);
  EXPECT_EQ(s.objects, 0u);
}

TEST_F(NvCacheTest, FlushOfAnObjectWithNothingStagedIsOk) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  EXPECT_TRUE(cache->flush_object(a_).is_ok());
  EXPECT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.object_count(), 0u);
}

TEST_F(NvCacheTest, DestagerThreadEventuallyDestagesAndTrims) {
  NvCacheOptions o = options();
  o.destage_interval_ms = 5;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  cache->start_destager();
  for (int i = 0; i < 20; ++i) write(*cache, i % 2 ? a_ : b_, i * 10, filled(10, char('a' + i)));
  ASSERT_TRUE(eventually([&] {
    NvCacheStats s = cache->stats();
    return s.staged_bytes == 0 && s.used_bytes == 0;
  })) << "the destager did not drain the cache";
  NvCacheStats s = cache->stats();
  EXPECT_GE(s.destage_passes, 1u);
  EXPECT_EQ(s.destaged_bytes, 200u);
  EXPECT_EQ(s.trim_lsn, 21u);
  EXPECT_EQ(s.destage_errors, 0u);
  cache->stop();
  std::vector<std::byte> want_a(200), want_b(200);
  for (int i = 0; i < 20; ++i)
    std::fill_n((i % 2 ? want_a : want_b).begin() + i * 10, 10, std::byte('a' + i));
  want_b.resize(190);
  EXPECT_EQ(target_.durable(a_), want_a);
  EXPECT_EQ(target_.durable(b_), want_b);
}

TEST_F(NvCacheTest, FailingMediumKeepsRecordsStagedAndTheyArriveOnceItRecovers) {
  NvCacheOptions o = options();
  o.destage_interval_ms = 5;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(64, 'a'));
  write(*cache, b_, 0, filled(64, 'b'));
  target_.fail_errno = EIO;
  cache->start_destager();
  ASSERT_TRUE(eventually([&] { return cache->stats().destage_errors >= 2; }))
      << "the destager did not retry";
  NvCacheStats s = cache->stats();
  EXPECT_TRUE(contains(s.last_destage_error, "MemTarget injected")) << s.last_destage_error;
  EXPECT_EQ(s.staged_bytes, 128u) << "a failed destage must keep every record staged";
  EXPECT_EQ(s.trim_lsn, 1u);
  Status flush = cache->flush_object(a_);
  EXPECT_EQ(flush.code(), Code::kIoError);
  EXPECT_EQ(flush.sys_errno(), EIO);
  EXPECT_FALSE(cache->flush_all().is_ok());
  EXPECT_TRUE(cache->has_staged(a_));
  auto snap = cache->snapshot(a_, 0, 64);  // reads still see the staged bytes
  ASSERT_TRUE(snap.is_ok());
  ASSERT_EQ(snap->size(), 1u);
  EXPECT_EQ((*snap)[0].data, filled(64, 'a'));

  target_.fail_errno = 0;
  ASSERT_TRUE(eventually([&] {
    NvCacheStats t = cache->stats();
    return t.staged_bytes == 0 && t.used_bytes == 0;
  })) << "the destager did not retry after the medium recovered";
  EXPECT_EQ(cache->stats().last_destage_error, "");
  cache->stop();
  EXPECT_EQ(target_.durable(a_), filled(64, 'a'));
  EXPECT_EQ(target_.durable(b_), filled(64, 'b'));
}

TEST_F(NvCacheTest, ObjectThatIsGoneFromTheMediumIsDroppedNotRetried) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(64, 'a'));
  write(*cache, b_, 0, filled(64, 'b'));
  target_.gone.insert(a_.key);
  ASSERT_TRUE(cache->flush_object(a_).is_ok());
  EXPECT_FALSE(cache->has_staged(a_));
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.object_count(), 1u);
  EXPECT_EQ(target_.durable(b_), filled(64, 'b'));
  NvCacheStats s = cache->stats();
  EXPECT_EQ(s.extents, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.destage_errors, 0u);
}

TEST_F(NvCacheTest, WriterBlocksAtMaxExtentsUntilTheDestagerMakesRoom) {
  NvCacheOptions o = options();
  o.max_extents = 4;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  for (int i = 0; i < 4; ++i) write(*cache, a_, i * 100, filled(10, char('0' + i)));
  ASSERT_EQ(cache->stats().extents, 4u);
  std::atomic<bool> done{false};
  Result<uint64_t> result = Status::error(Code::kAborted, "not run");
  std::thread writer([&] {
    result = cache->write(b_, 1, 0, filled(10, 'w'));
    done = true;
  });
  // No destager runs yet, so the writer cannot finish: give it ample time to prove it waits.
  EXPECT_FALSE(eventually([&] { return done.load(); }, 200ms)) << "the writer did not wait";
  EXPECT_EQ(cache->stats().records_appended, 4u);
  cache->start_destager();  // the writer already asked for a destage; it runs at once
  ASSERT_TRUE(eventually([&] { return done.load(); })) << "the writer was never let through";
  writer.join();
  ASSERT_TRUE(result.is_ok()) << result.status().to_string();
  EXPECT_EQ(*result, 5u);
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.durable(b_), filled(10, 'w'));
  EXPECT_EQ(target_.durable(a_).size(), 310u);
}

TEST_F(NvCacheTest, StopWakesAWriterWaitingAtMaxExtentsWithAborted) {
  NvCacheOptions o = options();
  o.max_extents = 2;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(10, 'a'));
  write(*cache, a_, 100, filled(10, 'a'));
  std::atomic<bool> done{false};
  Result<uint64_t> result = uint64_t{0};
  std::thread writer([&] {
    result = cache->write(b_, 1, 0, filled(10, 'w'));
    done = true;
  });
  EXPECT_FALSE(eventually([&] { return done.load(); }, 100ms));
  cache->stop();
  const bool woke = eventually([&] { return done.load(); }, 10s);
  if (!woke) {  // leave no thread blocked on a destroyed cache: let it through, then fail
    cache->discard_volume(1);
    writer.join();
    FAIL() << "stop() left a writer blocked at max_extents";
  }
  writer.join();
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), Code::kAborted);
}

// Membership discards from its tick: a destage pass stuck on a slow medium (holding the destage
// lock across its I/O) must not hold the discard, or the tick stops renewing leases.
TEST_F(NvCacheTest, DiscardDoesNotWaitForADestagePassUnderWay) {
  FaultRegistry faults;
  NvCacheOptions o = options();
  o.faults = &faults;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(10, 'a'));
  write(*cache, c_, 0, filled(10, 'c'));
  FaultSpec slow;
  slow.action = FaultAction::kDelay;
  slow.delay_ms = 3000;
  faults.arm(FaultSite::kDestageBeforeWrite, slow);
  std::atomic<bool> flushed{false};
  std::thread flusher([&] {
    EXPECT_TRUE(cache->flush_all().is_ok());
    flushed = true;
  });
  ASSERT_TRUE(eventually([&] { return faults.fired_count(FaultSite::kDestageBeforeWrite) > 0; }));
  EXPECT_EQ(cache->discard_volume(c_.volume_id), 0u);
  EXPECT_FALSE(flushed.load()) << "discard_volume waited for the destage pass";
  EXPECT_FALSE(cache->has_staged(c_));
  flusher.join();
  EXPECT_EQ(target_.durable(a_), filled(10, 'a'));
}

TEST_F(NvCacheTest, WriterBlocksOnAFullRingUntilTheDestagerTrims) {
  MemStore small(kMinRingBytes);
  ASSERT_TRUE(Log::format(small, 1, 0xbeef).is_ok());
  auto opened = NvCache::open(small, target_, options());
  ASSERT_TRUE(opened.is_ok());
  auto& cache = *opened;
  const auto payload = filled(4000, 'r');
  int written = 0;
  while (cache->stats().used_bytes + 2 * record_span(8, 4000) <= cache->stats().data_bytes)
    write(*cache, ObjectId{1, "obj-" + std::to_string(written++)}, 0, payload);
  write(*cache, ObjectId{1, "obj-" + std::to_string(written++)}, 0, payload);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    EXPECT_TRUE(cache->write(ObjectId{1, "last"}, 1, 0, payload).is_ok());
    done = true;
  });
  ASSERT_TRUE(eventually([&] { return cache->stats().space_waits > 0; }))
      << "the writer never had to wait for room";
  EXPECT_FALSE(done.load());
  cache->start_destager();
  ASSERT_TRUE(eventually([&] { return done.load(); })) << "a full ring failed or hung a writer";
  writer.join();
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.object_count(), static_cast<size_t>(written + 1));
  EXPECT_EQ(target_.durable(ObjectId{1, "last"}), payload);
}

TEST_F(NvCacheTest, ReopenWithoutFlushRecoversEveryRecordAndFlushAllAppliesThem) {
  std::mt19937_64 rng(11);
  std::map<std::string, std::vector<std::byte>> want;
  const std::vector<ObjectId> objects = {a_, b_, c_};
  {
    auto cache = open();
    ASSERT_NE(cache, nullptr);
    for (int i = 0; i < 60; ++i) {
      const ObjectId& o = objects[rng() % objects.size()];
      std::vector<std::byte> data(1 + rng() % 500);
      for (auto& x : data) x = std::byte(rng());
      const uint64_t off = rng() % 2000;
      write(*cache, o, off, data);
      auto& w = want[std::to_string(o.volume_id) + o.key];
      if (w.size() < off + data.size()) w.resize(off + data.size());
      std::copy(data.begin(), data.end(), w.begin() + static_cast<long>(off));
    }
  }  // destroyed: nothing destaged, as after a crash of the process
  EXPECT_EQ(target_.object_count(), 0u);
  RecoveryReport report;
  auto cache = open(options(), &report);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(report.ring.records, 60u);
  EXPECT_EQ(report.records_indexed, 60u);
  EXPECT_EQ(report.ring.end, ScanEnd::kClean);
  EXPECT_EQ(cache->log().session(), 2u);
  ASSERT_TRUE(cache->flush_all().is_ok());
  for (const auto& o : objects)
    EXPECT_EQ(target_.durable(o), want[std::to_string(o.volume_id) + o.key]) << o.key;
  EXPECT_EQ(write(*cache, a_, 0, filled(1, 'z')), 61u) << "LSNs continue after recovery";
}

TEST_F(NvCacheTest, ReopenAfterAPartialFlushEndsWithTheSameMedium) {
  {
    auto cache = open();
    ASSERT_NE(cache, nullptr);
    write(*cache, b_, 0, filled(30, 'b'));
    write(*cache, a_, 0, filled(30, 'a'));
    ASSERT_TRUE(cache->flush_object(a_).is_ok());  // trim stays before b's record
    write(*cache, a_, 10, filled(5, 'A'));
  }
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.durable(a_), image({{0, filled(30, 'a')}, {10, filled(5, 'A')}}));
  EXPECT_EQ(target_.durable(b_), filled(30, 'b'));
}

TEST_F(NvCacheTest, FenceKeepsRecoveryFromReapplyingRecordsFlushedBeforeIt) {
  {
    auto cache = open();
    ASSERT_NE(cache, nullptr);
    write(*cache, b_, 0, filled(8, 'b'));  // keeps the ring from being trimmed past a's records
    write(*cache, a_, 0, filled(100, 'o'));
    ASSERT_TRUE(cache->flush_and_fence(a_, 1).is_ok());
    write(*cache, a_, 10, filled(5, 'n'));
  }
  MemTarget fresh;  // the medium after the metadata operation (say a truncate to 0)
  auto cache = NvCache::open(store_, fresh, options());
  ASSERT_TRUE(cache.is_ok());
  ASSERT_TRUE((*cache)->flush_all().is_ok());
  EXPECT_EQ(fresh.durable(a_), image({{10, filled(5, 'n')}}));
  EXPECT_EQ(fresh.durable(b_), filled(8, 'b'));
}

TEST_F(NvCacheTest, DiscardVolumeForgetsItsRecordsWithoutDestagingThem) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  write(*cache, a_, 0, filled(10, 'a'));
  write(*cache, c_, 0, filled(10, 'c'));  // volume 2
  cache->discard_volume(1);
  EXPECT_FALSE(cache->has_staged(a_));
  EXPECT_TRUE(cache->has_staged(c_));
  ASSERT_TRUE(cache->flush_all().is_ok());
  EXPECT_EQ(target_.object_count(), 1u);
  EXPECT_EQ(target_.durable(c_), filled(10, 'c'));
}

TEST_F(NvCacheTest, ReplayOfAMirrorAppliesOnlyTheSelectedVolume) {
  {
    auto cache = open();
    ASSERT_NE(cache, nullptr);
    write(*cache, a_, 0, filled(20, 'a'));      // volume 1
    write(*cache, c_, 0, filled(20, 'c'));      // volume 2
    write(*cache, c_, 10, filled(20, 'C'));     // volume 2
    write(*cache, ObjectId{2, "d"}, 5, filled(3, 'd'));
    write(*cache, b_, 0, filled(20, 'b'));      // volume 1
  }
  MemStore mirror(store_.bytes());  // the partner's byte copy of this ring
  MemTarget medium;
  auto report = replay_ring(mirror, medium, [](uint32_t v, uint64_t) { return v == 2; }, false, nullptr,
                            Logger("replay", LogLevel::kError));
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_EQ(report->ring.records, 5u);
  EXPECT_EQ(report->ring.end, ScanEnd::kClean);
  EXPECT_EQ(report->bytes_applied, 33u);
  EXPECT_EQ(medium.object_count(), 2u);
  EXPECT_EQ(medium.durable(c_), image({{0, filled(10, 'c')}, {10, filled(20, 'C')}}));
  EXPECT_EQ(medium.durable(ObjectId{2, "d"}), image({{5, filled(3, 'd')}}));
  EXPECT_EQ(mirror.size(), store_.size());
  EXPECT_TRUE(mirror.bytes() == store_.bytes())
      << "replay must not write the ring it reads";
}

// An acknowledged write (LSN 1) is superseded in the index by a newer write (LSN 3) that is not
// yet complete because an earlier appender (LSN 2) has not filled its record. A trim then must not
// free LSN 1: if the node dies before LSN 2 is written, LSN 3 is lost with it, and LSN 1 is the
// only copy of acknowledged data that never reached the medium.
TEST_F(NvCacheTest, AcknowledgedWriteOverwrittenByAnIncompleteOneSurvivesATrimAndACrash) {
  auto cache = open();
  ASSERT_NE(cache, nullptr);
  ASSERT_EQ(write(*cache, a_, 0, filled(100, 'o')), 1u);  // acknowledged
  auto slow = cache->log().reserve(4, 10);                 // LSN 2: an appender still filling
  ASSERT_TRUE(slow.is_ok());
  std::thread newer([&] {
    auto r = cache->write(a_, 1, 0, filled(100, 'n'));     // LSN 3: indexed, waits for LSN 2
    EXPECT_FALSE(r.is_ok()) << "the node dies before it is acknowledged";
  });
  ASSERT_TRUE(eventually([&] {
    auto snap = cache->snapshot(a_, 0, 1);
    return snap.is_ok() && !snap->empty() && snap->front().data[0] == std::byte('n');
  }));
  ASSERT_TRUE(cache->flush_all().is_ok());  // nothing complete to destage, but it trims
  const std::vector<std::byte> crash_image = store_.bytes();  // the node dies here
  cache->log().shutdown();
  newer.join();
  cache.reset();

  MemStore after(crash_image);
  MemTarget medium;
  auto recovered = NvCache::open(after, medium, options());
  ASSERT_TRUE(recovered.is_ok()) << recovered.status().to_string();
  ASSERT_TRUE((*recovered)->flush_all().is_ok());
  EXPECT_EQ(target_.object_count(), 0u);
  EXPECT_EQ(medium.durable(a_), filled(100, 'o')) << "an acknowledged write was lost";
}

// Four writers hit overlapping ranges of three shared objects while readers take snapshots and
// the destager runs; each writer also owns a private object whose overlay it checks after every
// write. The final medium equals the acknowledged writes applied in LSN order.
TEST_F(NvCacheTest, ConcurrentWritersEndWithTheAcknowledgedWritesInLsnOrder) {
  NvCacheOptions o = options();
  o.destage_interval_ms = 2;
  auto cache = open(o);
  ASSERT_NE(cache, nullptr);
  cache->start_destager();
  const std::vector<ObjectId> shared = {a_, b_, c_};
  constexpr int kWriters = 4, kWrites = 400;
  constexpr uint64_t kObjectBytes = 4096;
  struct Acked {
    uint64_t lsn;
    size_t object;
    uint64_t offset;
    std::vector<std::byte> data;
  };
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<bool> writers_done{false};
  std::atomic<int> bad_overlays{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      const ObjectId mine{3, "private-" + std::to_string(t)};
      std::vector<std::byte> my_image;
      for (int i = 0; i < kWrites; ++i) {
        std::vector<std::byte> data(1 + rng() % 256);
        for (auto& x : data) x = std::byte(rng());
        const uint64_t off = rng() % (kObjectBytes - data.size());
        const size_t obj = rng() % shared.size();
        auto lsn = cache->write(shared[obj], 1, off, data);
        ASSERT_TRUE(lsn.is_ok()) << lsn.status().to_string();
        {
          std::lock_guard lock(mu);
          acked.push_back({*lsn, obj, off, data});
        }
        // Read-your-writes on the private object: snapshot first, then the medium.
        ASSERT_TRUE(cache->write(mine, 1, off, data).is_ok());
        if (my_image.size() < off + data.size()) my_image.resize(off + data.size());
        std::copy(data.begin(), data.end(), my_image.begin() + static_cast<long>(off));
        auto snap = cache->snapshot(mine, 0, my_image.size());
        ASSERT_TRUE(snap.is_ok());
        std::vector<std::byte> view = target_.durable(mine);
        view.resize(my_image.size());
        apply_staged(*snap, 0, view);
        if (view != my_image) ++bad_overlays;
      }
    });
  std::thread reader([&] {
    std::mt19937_64 rng(7);
    while (!writers_done) {
      const uint64_t off = rng() % kObjectBytes, len = 1 + rng() % 512;
      auto snap = cache->snapshot(shared[rng() % shared.size()], off, len);
      ASSERT_TRUE(snap.is_ok());
      uint64_t prev_end = off;
      for (const auto& p : *snap) {
        ASSERT_GE(p.file_offset, prev_end) << "pieces overlap or are unsorted";
        prev_end = p.file_offset + p.data.size();
        ASSERT_LE(prev_end, off + len) << "piece outside the range";
      }
    }
  });
  for (auto& th : threads) th.join();
  writers_done = true;
  reader.join();
  EXPECT_EQ(bad_overlays.load(), 0) << "a snapshot over the medium missed acknowledged bytes";
  ASSERT_TRUE(cache->flush_all().is_ok());
  cache->stop();

  std::sort(acked.begin(), acked.end(), [](const Acked& x, const Acked& y) { return x.lsn < y.lsn; });
  ASSERT_EQ(acked.size(), static_cast<size_t>(kWriters * kWrites));
  for (size_t i = 1; i < acked.size(); ++i) ASSERT_NE(acked[i].lsn, acked[i - 1].lsn);
  std::vector<std::vector<std::byte>> want(shared.size());
  for (const auto& w : acked) {
    auto& img = want[w.object];
    if (img.size() < w.offset + w.data.size()) img.resize(w.offset + w.data.size());
    std::copy(w.data.begin(), w.data.end(), img.begin() + static_cast<long>(w.offset));
  }
  for (size_t i = 0; i < shared.size(); ++i)
    EXPECT_EQ(target_.durable(shared[i]), want[i]) << shared[i].key;
  NvCacheStats s = cache->stats();
  EXPECT_EQ(s.records_appended, static_cast<uint64_t>(2 * kWriters * kWrites));
  EXPECT_EQ(s.staged_bytes, 0u);
  EXPECT_EQ(s.used_bytes, 0u);
  EXPECT_EQ(s.destage_errors, 0u);
}

}  // namespace
}  // namespace hafs::nvcache
