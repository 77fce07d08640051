// The store backends under the NV log: pmem mapping, plain file with group commit, memory, and
// the power-loss wrapper the power-loss test builds on.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <atomic>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "nvcache/store.h"
#include "tests/nvcache/scratch_dir.h"

namespace hafs::nvcache {
namespace {

using testing::ScratchDir;

std::vector<std::byte> pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

// Writes, persists and reads back through one store, then reopens the file and finds the same
// bytes: what a crash of the process (pmem on /dev/shm) or of the node (file) would leave.
void check_write_persist_reopen(StoreMode mode, const std::string& path) {
  constexpr uint64_t kSize = 1 << 20;
  const auto a = pattern(10000, 1);
  const auto b = pattern(4096, 2);
  {
    auto store = open_store(mode, path, kSize);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    EXPECT_EQ((*store)->size(), kSize);
    EXPECT_STREQ((*store)->kind(), store_mode_name(mode));
    ASSERT_TRUE((*store)->write(123, a).is_ok());
    ASSERT_TRUE((*store)->write(kSize - b.size(), b).is_ok());  // the very end
    ASSERT_TRUE((*store)->persist(123, a.size()).is_ok());
    ASSERT_TRUE((*store)->persist(kSize - b.size(), b.size()).is_ok());
    EXPECT_GE((*store)->sync_count(), 1u);
    std::vector<std::byte> got(a.size());
    ASSERT_TRUE((*store)->read(123, got).is_ok());
    EXPECT_EQ(got, a);
    // Out of range is refused, not clamped.
    EXPECT_FALSE((*store)->write(kSize - 10, a).is_ok());
    EXPECT_FALSE((*store)->read(kSize + 1, std::span(got.data(), 0)).is_ok());
    EXPECT_FALSE((*store)->persist(kSize - 1, 2).is_ok());
  }
  // Reopen with a different size: an existing file keeps its own.
  auto store = open_store(mode, path, 4 * kSize);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  EXPECT_EQ((*store)->size(), kSize);
  std::vector<std::byte> got(a.size());
  ASSERT_TRUE((*store)->read(123, got).is_ok());
  EXPECT_EQ(got, a);
  std::vector<std::byte> tail(b.size());
  ASSERT_TRUE((*store)->read(kSize - b.size(), tail).is_ok());
  EXPECT_EQ(tail, b);
  std::vector<std::byte> head(123);
  ASSERT_TRUE((*store)->read(0, head).is_ok());
  EXPECT_EQ(head, std::vector<std::byte>(123)) << "bytes never written must read as zero";
}

TEST(StoreTest, PmemStoreKeepsPersistedBytesAcrossReopen) {
  ScratchDir dir("/dev/shm");
  check_write_persist_reopen(StoreMode::kPmem, dir.file("ring"));
  auto store = open_store(StoreMode::kPmem, dir.file("ring"), 0);
  ASSERT_TRUE(store.is_ok());
  EXPECT_NE((*store)->mapping(), nullptr) << "a pmem store is a mapping";
}

TEST(StoreTest, FileStoreKeepsPersistedBytesAcrossReopen) {
  ScratchDir dir("/tmp");
  check_write_persist_reopen(StoreMode::kFile, dir.file("ring"));
  auto store = open_store(StoreMode::kFile, dir.file("ring"), 0);
  ASSERT_TRUE(store.is_ok());
  EXPECT_EQ((*store)->mapping(), nullptr);
}

TEST(StoreTest, FileStoreGroupCommitSharesSyncs) {
  ScratchDir dir("/tmp");
  constexpr int kThreads = 16;
  constexpr int kRounds = 100;
  constexpr uint64_t kChunk = 4096;
  auto store = open_store(StoreMode::kFile, dir.file("ring"), kThreads * kChunk);
  ASSERT_TRUE(store.is_ok()) << store.status().to_string();
  Store& s = **store;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      const uint64_t off = static_cast<uint64_t>(t) * kChunk;
      for (int i = 0; i < kRounds; ++i) {
        const auto data = pattern(kChunk, static_cast<uint64_t>(t * kRounds + i));
        if (!s.write(off, data).is_ok() || !s.persist(off, kChunk).is_ok()) failures++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const uint64_t calls = kThreads * kRounds;
  const uint64_t syncs = s.sync_count();
  std::printf("group commit: %llu persist calls, %llu fdatasync\n",
              static_cast<unsigned long long>(calls), static_cast<unsigned long long>(syncs));
  EXPECT_GE(syncs, 1u);
  EXPECT_LT(syncs, calls) << "concurrent persists must share an fdatasync";
  // The last round of every thread is what the file holds.
  for (int t = 0; t < kThreads; ++t) {
    std::vector<std::byte> got(kChunk);
    ASSERT_TRUE(s.read(static_cast<uint64_t>(t) * kChunk, got).is_ok());
    EXPECT_EQ(got, pattern(kChunk, static_cast<uint64_t>(t * kRounds + kRounds - 1)));
  }
}

TEST(StoreTest, OpenStoreOnUnusablePathGivesClearError) {
  ScratchDir dir("/tmp");
  for (StoreMode mode : {StoreMode::kPmem, StoreMode::kFile}) {
    SCOPED_TRACE(store_mode_name(mode));
    const std::string missing_dir = dir.file("no/such/dir/ring");
    auto a = open_store(mode, missing_dir, 1 << 20);
    ASSERT_FALSE(a.is_ok());
    EXPECT_NE(a.status().to_string().find(missing_dir), std::string::npos)
        << a.status().to_string();
    // A directory cannot be opened for writing, not even by root.
    auto b = open_store(mode, dir.path(), 1 << 20);
    ASSERT_FALSE(b.is_ok());
    EXPECT_NE(b.status().to_string().find(dir.path()), std::string::npos)
        << b.status().to_string();
    // Without a size a missing file is an error, and none is created.
    const std::string absent = dir.file(std::string("absent-") + store_mode_name(mode));
    auto c = open_store(mode, absent, 0);
    ASSERT_FALSE(c.is_ok());
    EXPECT_NE(c.status().to_string().find(absent), std::string::npos) << c.status().to_string();
    EXPECT_FALSE(std::filesystem::exists(absent));
    // An existing empty file still needs a size.
    { std::ofstream touch(dir.file(std::string("empty-") + store_mode_name(mode))); }
    auto d = open_store(mode, dir.file(std::string("empty-") + store_mode_name(mode)), 0);
    ASSERT_FALSE(d.is_ok());
    EXPECT_NE(d.status().to_string().find("no size"), std::string::npos)
        << d.status().to_string();
  }
}

TEST(StoreTest, ParsesStoreModeNames) {
  StoreMode m = StoreMode::kMemory;
  EXPECT_TRUE(parse_store_mode("pmem", &m));
  EXPECT_EQ(m, StoreMode::kPmem);
  EXPECT_TRUE(parse_store_mode("file", &m));
  EXPECT_EQ(m, StoreMode::kFile);
  EXPECT_FALSE(parse_store_mode("PMEM", &m));
  EXPECT_FALSE(parse_store_mode("", &m));
  EXPECT_EQ(m, StoreMode::kFile) << "a failed parse leaves the output alone";
}

TEST(StoreTest, MemStoreChecksRanges) {
  MemStore store(1000);
  const auto data = pattern(100, 3);
  EXPECT_TRUE(store.write(900, data).is_ok());
  EXPECT_TRUE(store.write(1000, std::span(data.data(), 0)).is_ok()) << "empty write at the end";
  Status past = store.write(901, data);
  EXPECT_EQ(past.code(), Code::kInvalidArgument);
  EXPECT_NE(past.message().find("beyond 1000 bytes"), std::string::npos) << past.to_string();
  EXPECT_FALSE(store.write(1001, std::span(data.data(), 0)).is_ok());
  // An offset near 2^64 must not wrap around into range.
  EXPECT_FALSE(store.write(UINT64_MAX - 10, data).is_ok());
  std::vector<std::byte> out(100);
  EXPECT_TRUE(store.read(900, out).is_ok());
  EXPECT_EQ(out, data);
  EXPECT_FALSE(store.read(950, out).is_ok());
  EXPECT_FALSE(store.read(UINT64_MAX - 10, out).is_ok());
  // A refused write changed nothing.
  EXPECT_TRUE(store.read(900, out).is_ok());
  EXPECT_EQ(out, data);
}

TEST(PowerLossStoreTest, CutRevertsUnpersistedWritesOnly) {
  MemStore inner(8192);
  PowerLossStore store(inner);
  const auto durable = pattern(1024, 10);
  ASSERT_TRUE(store.write(0, durable).is_ok());
  ASSERT_TRUE(store.persist(0, durable.size()).is_ok());
  // Overwrites half of the persisted range and one sector beyond it, unpersisted.
  const auto fresh = pattern(1024, 11);
  ASSERT_TRUE(store.write(512, fresh).is_ok());
  EXPECT_EQ(store.power_cut(99, 1.0), 2u) << "two sectors were dirty";
  std::vector<std::byte> got(1536);
  ASSERT_TRUE(inner.read(0, got).is_ok());
  EXPECT_TRUE(std::equal(durable.begin(), durable.end(), got.begin()));
  EXPECT_EQ(std::vector<std::byte>(got.begin() + 1024, got.end()), std::vector<std::byte>(512));
  EXPECT_EQ(store.power_cut(99, 1.0), 0u) << "a cut forgets what it reverted";
}

TEST(PowerLossStoreTest, CutWithZeroProbabilityKeepsEverything) {
  MemStore inner(4096);
  PowerLossStore store(inner);
  const auto data = pattern(4096, 12);
  ASSERT_TRUE(store.write(0, data).is_ok());
  EXPECT_EQ(store.power_cut(5, 0.0), 0u);
  std::vector<std::byte> got(4096);
  ASSERT_TRUE(inner.read(0, got).is_ok());
  EXPECT_EQ(got, data);
}

// Any seed: persisted bytes stay; every unpersisted sector is entirely old or entirely new (a
// write torn at sector granularity), never a mix inside one sector.
TEST(PowerLossStoreTest, RandomCutsTearAtSectorsAndKeepPersistedBytes) {
  constexpr uint64_t kSize = 64 * 512;
  size_t reverted_total = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    MemStore inner(kSize);
    PowerLossStore store(inner);
    const auto v1 = pattern(kSize / 2, seed);
    ASSERT_TRUE(store.write(0, v1).is_ok());
    ASSERT_TRUE(store.persist(0, v1.size()).is_ok());
    const auto v2 = pattern(kSize, seed + 1000);  // over the persisted half and the empty half
    ASSERT_TRUE(store.write(0, v2).is_ok());
    const size_t reverted = store.power_cut(seed);
    reverted_total += reverted;
    size_t old_sectors = 0;
    for (uint64_t s = 0; s < kSize; s += 512) {
      std::vector<std::byte> got(512);
      ASSERT_TRUE(inner.read(s, got).is_ok());
      const std::vector<std::byte> now(v2.begin() + static_cast<long>(s),
                                       v2.begin() + static_cast<long>(s + 512));
      const std::vector<std::byte> before =
          s < v1.size() ? std::vector<std::byte>(v1.begin() + static_cast<long>(s),
                                                 v1.begin() + static_cast<long>(s + 512))
                        : std::vector<std::byte>(512);
      if (got == before) {
        ++old_sectors;
      } else {
        EXPECT_EQ(got, now) << "sector " << s << " is neither old nor new";
      }
    }
    EXPECT_EQ(old_sectors, reverted);
  }
  EXPECT_GT(reverted_total, 0u);
  EXPECT_LT(reverted_total, 50u * 64) << "probability 0.5 keeps some new sectors";
}

}  // namespace
}  // namespace hafs::nvcache
