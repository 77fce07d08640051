// The ring writer and reader side by side: append, scan, wrap, backpressure, sessions.
#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"
#include "tests/nvcache/mem_target.h"
#include "tests/nvcache/ring_edit.h"

namespace hafs::nvcache {
namespace {

using testing::bytes_of;

constexpr uint64_t kRing = kDataOffset + 64 * 1024;

std::unique_ptr<Log> fresh_log(MemStore& store, uint64_t ring_id = 42) {
  EXPECT_TRUE(Log::format(store, 7, ring_id).is_ok());
  auto rec = scan_ring(store, [](const RecordView&) {});
  EXPECT_TRUE(rec.is_ok());
  auto log = Log::open(store, *rec, {});
  EXPECT_TRUE(log.is_ok()) << log.status().to_string();
  return std::move(*log);
}

AppendSpec spec_for(const std::vector<std::byte>& payload, uint64_t off = 0) {
  static const std::string key = "key-1";
  return AppendSpec{3, 9, std::span(reinterpret_cast<const std::byte*>(key.data()), key.size()),
                    off, payload};
}

TEST(LogTest, AppendThenScanReturnsRecordsInOrder) {
  MemStore store(kRing);
  auto log = fresh_log(store);
  for (int i = 0; i < 10; ++i) {
    auto payload = bytes_of("payload-" + std::to_string(i));
    auto r = log->append(spec_for(payload, i * 100));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->lsn, static_cast<uint64_t>(i + 1));
  }
  std::vector<std::string> seen;
  auto rec = scan_ring(store, [&](const RecordView& v) {
    seen.emplace_back(reinterpret_cast<const char*>(v.payload.data()), v.payload.size());
    EXPECT_EQ(v.header.volume_id, 3u);
    EXPECT_EQ(v.header.epoch, 9u);
    EXPECT_EQ(v.header.file_offset, (seen.size() - 1) * 100);
  });
  ASSERT_TRUE(rec.is_ok());
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen[9], "payload-9");
  EXPECT_EQ(rec->end, ScanEnd::kClean);
  EXPECT_EQ(rec->next_lsn, 11u);
}

TEST(LogTest, WrapsWithPadAndScansAcrossTheEnd) {
  MemStore store(kRing);
  auto log = fresh_log(store);
  std::vector<std::byte> payload(3000, std::byte{0x5a});
  uint64_t last = 0;
  // Fill, trim everything, repeat: positions run past the end of the data area several times.
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 15; ++i) {
      payload[0] = std::byte(round * 16 + i);
      auto r = log->append(spec_for(payload));
      ASSERT_TRUE(r.is_ok());
      last = r->lsn;
    }
    if (round < 4) {
      ASSERT_TRUE(log->trim(log->complete_point()).is_ok());
    }
  }
  uint64_t count = 0, lsn = 0;
  auto rec = scan_ring(store, [&](const RecordView& v) {
    ++count;
    lsn = v.header.lsn;
  });
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(count, 15u);
  EXPECT_EQ(lsn, last);
  EXPECT_GT(rec->next_pos, log->data_bytes());  // it did wrap
}

TEST(LogTest, FullRingBlocksUntilTrimmed) {
  MemStore store(kRing);
  auto log = fresh_log(store);
  std::vector<std::byte> payload(8000);
  while (log->used_bytes() + record_span(5, 8000) * 2 <= log->data_bytes())
    ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
  ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
  std::atomic<bool> appended{false};
  std::thread writer([&] {
    EXPECT_TRUE(log->append(spec_for(payload)).is_ok());  // waits: backpressure, not an error
    appended = true;
  });
  // The writer must be waiting for room before we trim.
  while (log->space_waits() == 0) std::this_thread::yield();
  EXPECT_FALSE(appended.load());
  ASSERT_TRUE(log->trim(log->complete_point()).is_ok());
  writer.join();
  EXPECT_TRUE(appended.load());
}

TEST(LogTest, ConcurrentAppendersGetDistinctContiguousLsns) {
  MemStore store(kDataOffset + (4u << 20));
  auto log = fresh_log(store);
  constexpr int kThreads = 4, kEach = 500;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> lsns;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::vector<std::byte> payload(100 + t);
      for (int i = 0; i < kEach; ++i) {
        auto r = log->append(spec_for(payload));
        ASSERT_TRUE(r.is_ok());
        EXPECT_GE(log->complete_point().lsn, r->lsn + 1);  // acked means complete
        std::lock_guard lock(mu);
        lsns.insert(r->lsn);
        if (i % 100 == 99) {
          ASSERT_TRUE(log->trim(log->complete_point()).is_ok());
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(lsns.size(), static_cast<size_t>(kThreads * kEach));
}

TEST(LogTest, ReopenStartsANewSessionAndContinuesTheLsns) {
  MemStore store(kRing);
  {
    auto log = fresh_log(store);
    auto payload = bytes_of("a");
    ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
    ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
  }
  auto rec = scan_ring(store, [](const RecordView&) {});
  ASSERT_TRUE(rec.is_ok());
  EXPECT_EQ(rec->records, 2u);
  auto log = Log::open(store, *rec, {});
  ASSERT_TRUE(log.is_ok());
  EXPECT_EQ((*log)->session(), 2u);
  auto payload = bytes_of("b");
  auto r = (*log)->append(spec_for(payload));
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->lsn, 3u);
}

TEST(LogTest, StaleRecordAtTheTrimPointOfANewSessionIsNotResurrected) {
  MemStore store(kRing);
  uint64_t pos2 = 0;
  {
    auto log = fresh_log(store);
    std::vector<std::byte> payload(1000, std::byte{1});
    ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
    auto r2 = log->append(spec_for(payload));
    ASSERT_TRUE(r2.is_ok());
    pos2 = r2->pos;
    ASSERT_TRUE(log->append(spec_for(payload)).is_ok());  // LSN 3: persisted, "never acked"
  }
  // The crash tore record 2 (so its complete mark never passed it); record 3 of session 1
  // survives behind it.
  testing::rewind_complete_mark(store, 2, pos2);
  store.bytes()[kDataOffset + pos2 + 200] ^= std::byte{0xff};
  auto rec = scan_ring(store, [](const RecordView&) {});
  ASSERT_TRUE(rec.is_ok());
  ASSERT_EQ(rec->end, ScanEnd::kTorn);
  ASSERT_EQ(rec->next_lsn, 2u);
  {
    auto log = Log::open(store, *rec, {});
    ASSERT_TRUE(log.is_ok());
    std::vector<std::byte> payload(1000, std::byte{2});  // the same span: head lands on old LSN 3
    auto r = (*log)->append(spec_for(payload));
    ASSERT_TRUE(r.is_ok());
    ASSERT_TRUE((*log)->trim((*log)->complete_point()).is_ok());  // everything destaged
  }
  // Crash before anything else is appended: the scan starts at the stale LSN 3 of session 1.
  uint64_t records = 0;
  auto again = scan_ring(store, [&](const RecordView&) { ++records; });
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(records, 0u) << again->end_message;
  EXPECT_EQ(again->end, ScanEnd::kClean);
  EXPECT_EQ(again->next_lsn, 3u);
}

// A record is acknowledged (complete returns) only once the ring's complete mark covers it, so
// that recovery can tell it from a torn tail (log-format.md §8a); concurrent completers share
// one mark write.
TEST(LogTest, EveryAcknowledgedRecordIsCoveredByTheCompleteMark) {
  MemStore store(kRing);
  auto log = fresh_log(store);
  std::vector<std::byte> payload(100, std::byte{7});
  for (int i = 0; i < 5; ++i) {
    auto r = log->append(spec_for(payload));
    ASSERT_TRUE(r.is_ok());
    auto mark = read_complete_mark(store, log->ring_id());
    ASSERT_TRUE(mark.is_ok() && mark->has_value());
    EXPECT_EQ((*mark)->lsn, r->lsn + 1);
    EXPECT_EQ((*mark)->pos, r->end_pos());
  }
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&] {
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(log->append(spec_for(payload)).is_ok());
    });
  for (auto& w : writers) w.join();
  auto mark = read_complete_mark(store, log->ring_id());
  ASSERT_TRUE(mark.is_ok() && mark->has_value());
  EXPECT_EQ((*mark)->lsn, log->complete_point().lsn);
  EXPECT_EQ((*mark)->pos, log->complete_point().pos);
}

TEST(LogTest, RecordTooLargeForTheRingIsAClearError) {
  MemStore store(kRing);
  auto log = fresh_log(store);
  std::vector<std::byte> payload(40 * 1024);
  auto r = log->append(spec_for(payload));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("cannot fit"), std::string::npos);
}

TEST(LogTest, FormatRefusesAStoreOfAnImpossibleSize) {
  MemStore small(4096);
  EXPECT_EQ(Log::format(small, 1, 1).code(), Code::kInvalidArgument);
  MemStore odd(kRing + 100);
  EXPECT_EQ(Log::format(odd, 1, 1).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace hafs::nvcache
