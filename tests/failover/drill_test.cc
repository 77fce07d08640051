// Whole-node fault drills driven by hafsctl on a real pair (configuration.md, "Whole-node
// faults"): a hang, a cut interconnect, and a stopped disk heartbeat with a cut interconnect.
// After each: every acknowledged write is there, and no volume ever had two servers.
#include "tests/failover/failover_pair.h"

namespace hafs::testing::failover {
namespace {

RunResult hafsctl(const std::string& socket, std::vector<std::string> args) {
  args.insert(args.begin(), {HAFSCTL_BIN, "--socket", socket});
  return run(args);
}

// `hafsctl fault hang 6` on node 1: node 2 takes vol1 over while node 1 is frozen; node 1 wakes
// with its stale beliefs and stands down (vol1 `partner` there).
TEST_F(FailoverTest, HangDrillTakesOverAndTheWokenNodeStandsDown) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 81);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 200));
  RunResult h = hafsctl(node(1).socket, {"fault", "hang", "6"});
  ASSERT_EQ(h.code, 0) << h.out << h.err;
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 20s);
  ASSERT_GT(epoch2, epoch1) << dump();
  ASSERT_TRUE(w.wait_finished(60s)) << "the writer on the hung node never got an answer";
  ASSERT_TRUE(eventually([&] {
    auto s = status(1);
    return s && volume_row(*s, "vol1").value("state", "") == "partner";
  }, 30s)) << dump();
  verify(w, node(2).proc->path("vol1"), "through node 2's mount after the hang");
  expect_one_writer();
}

// interconnect.cut armed on node 1 cuts both directions: both nodes degrade, nobody takes over
// (each sees the other's disk heartbeat), writes go on; clearing it heals the pair to NORMAL.
TEST_F(FailoverTest, InterconnectCutFaultDegradesBothAndHeals) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  RunResult arm = hafsctl(node(1).socket, {"fault", "arm", "interconnect.cut", "fail:ECONNRESET", "--always"});
  ASSERT_EQ(arm.code, 0) << arm.out << arm.err;
  ASSERT_TRUE(await_node_state(1, "DEGRADED", 30s)) << dump();
  ASSERT_TRUE(await_node_state(2, "DEGRADED", 30s)) << dump();
  AckWriter& w1 = new_writer(node(1).proc->path("vol1"), 82);
  AckWriter& w2 = new_writer(node(2).proc->path("vol2"), 83);
  ASSERT_NO_FATAL_FAILURE(await_acks(w1, 100));
  ASSERT_NO_FATAL_FAILURE(await_acks(w2, 100));
  std::this_thread::sleep_for(4s);  // the observation window: longer than lease + margin
  EXPECT_EQ(await_serving(1, "vol1", 0, 1s), epoch1) << "vol1 moved during a cut with both alive";
  RunResult clear = hafsctl(node(1).socket, {"fault", "clear", "interconnect.cut"});
  ASSERT_EQ(clear.code, 0) << clear.out << clear.err;
  ASSERT_TRUE(await_node_state(1, "NORMAL", 60s)) << dump();
  ASSERT_TRUE(await_node_state(2, "NORMAL", 60s)) << dump();
  w1.stop();
  w2.stop();
  verify(w1, node(1).proc->path("vol1"), "vol1 after the healed cut");
  verify(w2, node(2).proc->path("vol2"), "vol2 after the healed cut");
  expect_one_writer();
}

// Node 1's disk heartbeat stopped AND the interconnect cut: node 2 sees a silent partner, but
// node 1 still renews vol1's lease on the medium, so the record never stands still and node 2
// never claims it. Clearing both returns the pair to NORMAL with vol1 where it was.
TEST_F(FailoverTest, SilentPartnerThatStillRenewsIsNeverTakenOver) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  for (const char* site : {"membership.heartbeat_write", "interconnect.cut"}) {
    RunResult arm = hafsctl(node(1).socket, {"fault", "arm", site, "fail:EIO", "--always"});
    ASSERT_EQ(arm.code, 0) << arm.out << arm.err;
  }
  ASSERT_TRUE(await_node_state(2, "PARTNER_DOWN", 30s)) << dump();
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 84);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 100));
  std::this_thread::sleep_for(5s);  // well past lease + margin of a still record
  {
    auto s = status(2);
    ASSERT_TRUE(s);
    EXPECT_EQ(volume_row(*s, "vol1").value("state", ""), "partner") << dump();
    EXPECT_EQ(volume_row(*s, "vol1").value("epoch", uint64_t{0}), epoch1);
  }
  RunResult clear = hafsctl(node(1).socket, {"fault", "clear"});
  ASSERT_EQ(clear.code, 0) << clear.out << clear.err;
  ASSERT_TRUE(await_node_state(2, "NORMAL", 60s)) << dump();
  w.stop();
  EXPECT_EQ(await_serving(1, "vol1", 0, 5s), epoch1);
  verify(w, node(1).proc->path("vol1"), "vol1 after the silent spell");
  expect_one_writer();
}

}  // namespace
}  // namespace hafs::testing::failover
