// Fencing and the degraded policy on a real HA pair: a node frozen in the middle of a destage
// batch writes nothing to the medium when it wakes with a stale epoch (I2), and a volume whose
// degraded policy is write-through puts its writes on the medium while the mirror is gone.
#include "tests/failover/failover_pair.h"

namespace hafs::testing::failover {
namespace {

// Has the fault at `site` fired at least `n` times on the node behind `socket`?
bool fault_fired(const std::string& socket, const std::string& site, uint64_t n) {
  auto s = status_of(socket);
  if (!s) return false;
  for (const auto& f : (*s)["faults"])
    if (f.value("site", "") == site && f.value("fired", uint64_t{0}) >= n) return true;
  return false;
}

// Node 1 is frozen while a destage batch of vol1 (block 'A') is on its way to the medium (held
// at destage.before_write). Node 2 takes vol1 over and writes block 'B' over it, which reaches
// the medium. When node 1 wakes, its batch is refused by the lease check in the destage target:
// the medium keeps 'B'. Without that check node 1 would write its stale 'A' over 'B'.
TEST_F(FailoverTest, FrozenOwnerNeverDestagesAfterWaking) {
  ASSERT_NO_FATAL_FAILURE(start_pair(nullptr, {{{"--set", "nvlog.destage_interval_ms=200"}, {}}}));
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  ASSERT_GT(epoch1, 0u);
  RunResult arm = run({HAFSCTL_BIN, "--socket", node(1).socket, "fault", "arm", "destage.before_write",
                       "delay:8000", "--always"});
  ASSERT_EQ(arm.code, 0) << arm.out << arm.err;
  const std::string rel = "vol1/stale.dat";
  ASSERT_TRUE(write_block(node(1).proc->path(rel), 0, 'A'));
  ASSERT_TRUE(eventually([&] { return fault_fired(node(1).socket, "destage.before_write", 1); }, 20s))
      << "node 1 never started destaging vol1: " << (status(1) ? status(1)->dump() : "no status");
  node(1).proc->pause();  // the batch with 'A' is between the medium read of the log and the write

  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 20s);
  ASSERT_GT(epoch2, epoch1) << dump();
  ASSERT_TRUE(write_block(node(2).proc->path(rel), 0, 'B'));
  RunResult flush = run({HAFSCTL_BIN, "--socket", node(2).socket, "flush", "vol1"});
  ASSERT_EQ(flush.code, 0) << flush.out << flush.err;
  ASSERT_EQ(medium_block(medium_ + "/" + rel, 0), std::string(kBlock, 'B'));

  node(1).proc->resume();
  ASSERT_TRUE(eventually([&] { return node(1).proc->log().find("not destaged") != std::string::npos; }, 30s))
      << "node 1's held batch was never refused:\n" << node(1).proc->log();
  EXPECT_EQ(medium_block(medium_ + "/" + rel, 0), std::string(kBlock, 'B'))
      << "node 1 wrote its stale block over node 2's after waking";
  ASSERT_TRUE(eventually([&] {
    auto s = status(1);
    return s && volume_row(*s, "vol1").value("state", "") == "partner";
  }, 30s)) << dump();
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(1).proc->stop(), 0);
  ASSERT_EQ(node(2).proc->stop(), 0);
  EXPECT_EQ(medium_block(medium_ + "/" + rel, 0), std::string(kBlock, 'B'))
      << "node 1 destaged its stale records of vol1 at shutdown";
}

// vol1 has degraded = write-through, vol2 the default local-log. While mirrored, node 1 stages
// vol1's writes (the medium does not have them yet). With node 2 dead, node 1 is degraded: a
// vol1 write is on the medium when acknowledged (after the staged block before it), while a
// write to vol2 (taken over) stays staged in node 1's log alone.
TEST_F(FailoverTest, DegradedWriteThroughPolicyPutsWritesOnTheMedium) {
  volume_degraded_ = {{"vol1", "write-through"}};
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch2 = await_serving(2, "vol2", 0, 10s);
  {
    auto s = status(1);
    ASSERT_TRUE(s);
    EXPECT_EQ(volume_row(*s, "vol1").value("degraded_policy", ""), "write-through");
    EXPECT_EQ(volume_row(*s, "vol2").value("degraded_policy", ""), "local-log");
  }
  const std::string file = "vol1/policy.dat";
  ASSERT_TRUE(write_block(node(1).proc->path(file), 0, 'N'));
  EXPECT_EQ(medium_block(medium_ + "/" + file, 0), "") << "mirrored writes are staged, not on the medium";

  node(2).proc->kill9();
  ASSERT_TRUE(eventually([&] {
    auto s = status(1);
    return s && (*s)["mirror"].value("degraded", false);
  }, 30s)) << dump();
  ASSERT_TRUE(write_block(node(1).proc->path(file), kBlock, 'D'));
  EXPECT_EQ(medium_block(medium_ + "/" + file, kBlock), std::string(kBlock, 'D'))
      << "a degraded write-through write is not on the medium when acknowledged";
  EXPECT_EQ(medium_block(medium_ + "/" + file, 0), std::string(kBlock, 'N'))
      << "the staged block before it was not flushed first";

  ASSERT_GT(await_serving(1, "vol2", epoch2, 20s), epoch2) << dump();
  const std::string other = "vol2/policy.dat";
  ASSERT_TRUE(write_block(node(1).proc->path(other), 0, 'L'));
  EXPECT_EQ(medium_block(medium_ + "/" + other, 0), "") << "local-log writes stay staged while degraded";
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(1).proc->stop(), 0);
  EXPECT_EQ(medium_block(medium_ + "/" + other, 0), std::string(kBlock, 'L'));
  EXPECT_EQ(medium_block(medium_ + "/" + file, kBlock), std::string(kBlock, 'D'));
}

}  // namespace
}  // namespace hafs::testing::failover
