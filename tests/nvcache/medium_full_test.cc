// A full storage medium (issue 12): the destager cannot make room in the NV log, so writes that
// find the ring full would wait without end. They get ENOSPC at once instead, as on a full local
// disk, while everything acknowledged stays staged; once a destage succeeds they wait again
// (backpressure) and succeed.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "nvcache/nvcache.h"
#include "tests/nvcache/mem_target.h"
#include "tests/support/wait.h"

namespace hafs::nvcache {
namespace {

using testing::MemTarget;
using Clock = std::chrono::steady_clock;

TEST(MediumFullTest, WritesThatFindTheLogFullGetEnospcAndAcknowledgedOnesStayStaged) {
  MemStore store(kDataOffset + 256 * 1024);
  ASSERT_TRUE(Log::format(store, 1, 0x77).is_ok());
  MemTarget target;
  target.fail_errno = ENOSPC;
  NvCacheOptions o;
  o.logger = Logger("medium-full-test", LogLevel::kOff);
  o.destage_interval_ms = 5;
  o.retry_backoff_max_ms = 20;
  auto cache = NvCache::open(store, target, o);
  ASSERT_TRUE(cache.is_ok()) << cache.status().to_string();
  (*cache)->start_destager();

  // Fill the ring: every write is acknowledged until the first that finds no room, which must
  // fail with ENOSPC in bounded time rather than wait.
  const std::vector<std::byte> data(8192, std::byte{0x33});
  int acknowledged = 0;
  Status refused;
  const auto t0 = Clock::now();
  for (int i = 0; i < 1000 && refused.is_ok(); ++i) {
    auto w = (*cache)->write(ObjectId{1, "f"}, 1, uint64_t(i) * data.size(), data);
    if (w.is_ok()) ++acknowledged;
    else refused = w.status();
  }
  ASSERT_FALSE(refused.is_ok()) << "the ring never filled";
  EXPECT_EQ(refused.code(), Code::kNoSpace) << refused.to_string();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
  EXPECT_GT(acknowledged, 10);
  EXPECT_TRUE((*cache)->stats().medium_full);
  // Everything acknowledged is still there, staged.
  auto snap = (*cache)->snapshot(ObjectId{1, "f"}, 0, uint64_t(acknowledged) * data.size());
  ASSERT_TRUE(snap.is_ok());
  uint64_t staged = 0;
  for (const auto& p : *snap) staged += p.data.size();
  EXPECT_EQ(staged, uint64_t(acknowledged) * data.size());

  // Space comes back: the destager empties the ring, and writes succeed again.
  target.fail_errno = 0;
  EXPECT_TRUE(hafs::testing::eventually([&] { return !(*cache)->stats().medium_full; }));
  EXPECT_TRUE((*cache)->write(ObjectId{1, "f"}, 1, 0, data).is_ok());
  (*cache)->stop();
}

}  // namespace
}  // namespace hafs::nvcache
