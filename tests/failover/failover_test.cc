// Failover scenarios of a real HA pair: kill -9 under load, return and giveback, a frozen owner,
// a cut interconnect, a failing destage on the survivor. The pair, the workload and the checks
// are in failover_pair.h.
#include "tests/failover/failover_pair.h"

namespace hafs::testing::failover {
namespace {

// kill -9 of node 1 while it acknowledges writes on vol1: node 2 takes vol1 over at a higher
// epoch after replaying its mirror; every acknowledged write is there.
TEST_F(FailoverTest, Kill9UnderWriteLoadTakesOver) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  ASSERT_GT(epoch1, 0u);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 11);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 300));

  const auto killed = Clock::now();
  node(1).proc->kill9();
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 20s);
  const auto served = Clock::now();
  ASSERT_GT(epoch2, epoch1) << dump();
  const auto takeover_ms = std::chrono::duration_cast<std::chrono::milliseconds>(served - killed).count();
  RecordProperty("takeover_ms", std::to_string(takeover_ms));
  std::cout << "takeover after kill -9: vol1 served by node 2 at epoch " << epoch2 << " after ~" << takeover_ms
            << " ms\n";
  ASSERT_TRUE(w.wait_finished(30s));  // its mount died with node 1
  auto s = status(2);
  ASSERT_TRUE(s);
  const json& lt = (*s)["membership"]["last_takeover"];
  ASSERT_TRUE(lt.is_object()) << s->dump();
  EXPECT_EQ(lt.value("volume", ""), "vol1");
  EXPECT_EQ(lt.value("epoch", uint64_t{0}), epoch2);
  // vol2 never moved.
  EXPECT_EQ(volume_row(*s, "vol2").value("state", ""), "serving");

  verify(w, node(2).proc->path("vol1"), "through node 2's mount");
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(2).proc->stop(), 0);
  verify(w, medium_ + "/vol1", "on the medium");
}

// Node 1 returns after a takeover: it does not serve vol1 (node 2 owns it), the pair resyncs to
// NORMAL, and `hafsctl giveback vol1` moves vol1 home at a higher epoch with its data.
TEST_F(FailoverTest, ReturnResyncAndGiveback) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 22);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 200));
  node(1).proc->kill9();
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 20s);
  ASSERT_GT(epoch2, epoch1) << dump();
  ASSERT_TRUE(w.wait_finished(30s));

  std::string why;
  ASSERT_TRUE(node(1).proc->start(&why)) << why;
  // Node 1 learns that node 2 owns vol1 and stays off it; node 2 resyncs node 1's mirror.
  ASSERT_TRUE(eventually([&] {
    auto s = status(1);
    return s && volume_row(*s, "vol1").value("state", "") == "partner" &&
           volume_row(*s, "vol2").value("state", "") == "partner";
  }, 30s)) << dump();
  ASSERT_TRUE(await_node_state(2, "NORMAL", 60s)) << dump();
  ASSERT_TRUE(await_node_state(1, "NORMAL", 60s)) << dump();
  {
    auto s = status(1);
    ASSERT_TRUE(s);
    EXPECT_NE(volume_row(*s, "vol1").value("state", ""), "serving");
    EXPECT_NE(volume_row(*s, "vol2").value("state", ""), "serving");
  }
  verify(w, node(2).proc->path("vol1"), "through node 2's mount before the giveback");

  RunResult g = run({HAFSCTL_BIN, "--socket", node(2).socket, "giveback", "vol1"});
  ASSERT_EQ(g.code, 0) << g.out << g.err;
  const uint64_t epoch3 = await_serving(1, "vol1", epoch2, 30s);
  ASSERT_GT(epoch3, epoch2) << dump();
  ASSERT_TRUE(eventually([&] {
    auto s = status(2);
    return s && volume_row(*s, "vol1").value("state", "") == "partner";
  }, 30s)) << dump();
  verify(w, node(1).proc->path("vol1"), "through node 1's mount after the giveback");

  // Node 1 takes writes on vol1 again.
  AckWriter& w2 = new_writer(node(1).proc->path("vol1"), 23);
  ASSERT_NO_FATAL_FAILURE(await_acks(w2, 50));
  w2.stop();
  verify(w2, node(1).proc->path("vol1"), "new writes through node 1's mount");
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(1).proc->stop(), 0);
  ASSERT_EQ(node(2).proc->stop(), 0);
  verify(w2, medium_ + "/vol1", "new writes on the medium");
}

// Node 1 frozen past its lease: node 2 takes vol1 over. When node 1 wakes, it acknowledges no
// write on vol1 with its stale epoch (the writer that waited on it gets an error), reports vol1
// not served, and the pair resyncs to NORMAL.
TEST_F(FailoverTest, FrozenOwnerNeverAcknowledgesAfterWaking) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 33);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 200));

  node(1).proc->pause();
  const auto stopped = Clock::now();
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 20s);
  ASSERT_GT(epoch2, epoch1) << dump();
  std::cout << "takeover after SIGSTOP: ~"
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopped).count() << " ms\n";
  // The deliberate freeze: well past node 1's lease (2 s) and node 2's claim.
  std::this_thread::sleep_until(stopped + 6s);
  const size_t acked_before = w.acked();
  const int64_t resumed_ns = mono_ns();
  node(1).proc->resume();

  // The writer was blocked in a write on node 1; it must fail, never succeed.
  ASSERT_TRUE(w.wait_finished(60s)) << "the writer still runs after node 1 woke: " << w.acked() - acked_before
                                    << " more acks";
  EXPECT_NE(w.error(), 0);
  // No write issued after the wake-up is acknowledged. The one write in flight at the SIGSTOP
  // may complete after it: if node 1 froze between its last lease check (passed, lease valid,
  // record mirrored) and the reply, the reply goes out on waking. That write was decided under
  // the valid lease and is in node 2's replay (checked by the verify below); any other late
  // acknowledgement would be a stale-epoch acknowledgement.
  EXPECT_EQ(w.issued_and_acked_since(resumed_ns), 0u) << "node 1 acknowledged a write issued after it woke";
  EXPECT_LE(w.acked_since(resumed_ns), 1u) << "node 1 acknowledged writes after waking with a stale epoch";
  EXPECT_LE(w.acked(), acked_before + 1);
  RecordProperty("acks_returned_after_wake", std::to_string(w.acked_since(resumed_ns)));
  // An observation window: a fresh write on node 1's vol1 is refused too (the volume left its tree).
  {
    AckWriter& late = new_writer(node(1).proc->path("vol1"), 34);
    EXPECT_TRUE(late.wait_finished(30s));
    EXPECT_EQ(late.acked(), 0u) << "node 1 acknowledged a new write on vol1 after waking";
  }
  ASSERT_TRUE(eventually([&] {
    auto s = status(1);
    if (!s) return false;
    const std::string st = volume_row(*s, "vol1").value("state", "");
    return st == "fenced" || st == "partner";
  }, 30s)) << dump();
  ASSERT_TRUE(await_node_state(2, "NORMAL", 60s)) << dump();
  // Node 1 serves nothing now and writes nothing: its sender, degraded by membership while its
  // connection may have survived the freeze, must still leave DEGRADED once it is caught up.
  ASSERT_TRUE(await_node_state(1, "NORMAL", 60s)) << dump();
  {
    auto s = status(1);
    ASSERT_TRUE(s);
    EXPECT_EQ(volume_row(*s, "vol1").value("state", ""), "partner");
    EXPECT_EQ(volume_row(*s, "vol2").value("state", ""), "partner");
  }
  verify(w, node(2).proc->path("vol1"), "through node 2's mount");
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(1).proc->stop(), 0);
  ASSERT_EQ(node(2).proc->stop(), 0);
  verify(w, medium_ + "/vol1", "on the medium");
}

// The interconnect cut with both nodes alive (each node in its own network namespace, the veth
// between them set down): no takeover, both degraded and still acknowledging; heal -> NORMAL.
TEST_F(FailoverTest, InterconnectCutNeverTakesOver) {
  ns_ = std::make_unique<NetnsPair>();
  NetnsPair& ns = *ns_;
  ASSERT_TRUE(ns.ok()) << "cannot make the network namespaces";
  ASSERT_NO_FATAL_FAILURE(start_pair(&ns));
  const uint64_t e1 = await_serving(1, "vol1", 0, 10s), e2 = await_serving(2, "vol2", 0, 10s);

  ASSERT_TRUE(ns.set_link(false));
  auto degraded = [&](uint32_t id) {
    auto s = status(id);
    return s && (*s)["membership"].value("degraded", false) && (*s)["membership"].value("state", "") == "DEGRADED";
  };
  ASSERT_TRUE(eventually([&] { return degraded(1) && degraded(2); }, 30s)) << dump();
  // Writes go on on both sides, unmirrored, for longer than a lease + margin + settle.
  AckWriter& w1 = new_writer(node(1).proc->path("vol1"), 41);
  AckWriter& w2 = new_writer(node(2).proc->path("vol2"), 42);
  const auto cut_window = Clock::now() + 5s;
  while (Clock::now() < cut_window) {
    for (uint32_t id : {1u, 2u}) {
      auto s = status(id);
      ASSERT_TRUE(s) << "node " << id << " does not answer";
      const std::string own = id == 1 ? "vol1" : "vol2", other = id == 1 ? "vol2" : "vol1";
      EXPECT_EQ(volume_row(*s, own).value("state", ""), "serving") << dump();
      EXPECT_EQ(volume_row(*s, own).value("epoch", uint64_t{0}), id == 1 ? e1 : e2);
      EXPECT_EQ(volume_row(*s, other).value("state", ""), "partner") << dump();
    }
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_FALSE(w1.finished()) << "error " << w1.error();
  EXPECT_FALSE(w2.finished()) << "error " << w2.error();
  EXPECT_GT(w1.acked(), 0u);
  EXPECT_GT(w2.acked(), 0u);

  ASSERT_TRUE(ns.set_link(true));
  ASSERT_TRUE(await_node_state(1, "NORMAL", 90s)) << dump();
  ASSERT_TRUE(await_node_state(2, "NORMAL", 90s)) << dump();
  // Mirrors converged: both senders mirroring, not degraded, nothing left to resync.
  ASSERT_TRUE(eventually([&] {
    for (uint32_t id : {1u, 2u}) {
      auto s = status(id);
      if (!s || !(*s)["mirror"].is_object()) return false;
      const json& m = (*s)["mirror"];
      if (m.value("state", "") != "mirroring" || m.value("degraded", true) || m.value("resync_bytes_left", 1) != 0)
        return false;
    }
    return true;
  }, 60s)) << dump();
  ASSERT_NO_FATAL_FAILURE(await_acks(w1, w1.acked() + 20));  // mirrored again
  w1.stop();
  w2.stop();
  EXPECT_EQ(w1.error(), 0);
  EXPECT_EQ(w2.error(), 0);
  {
    auto s1 = status(1), s2 = status(2);
    ASSERT_TRUE(s1 && s2);
    EXPECT_EQ(volume_row(*s1, "vol1").value("epoch", uint64_t{0}), e1);
    EXPECT_EQ(volume_row(*s2, "vol2").value("epoch", uint64_t{0}), e2);
  }
  verify(w1, node(1).proc->path("vol1"), "vol1 through node 1's mount");
  verify(w2, node(2).proc->path("vol2"), "vol2 through node 2's mount");
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(1).proc->stop(), 0);
  ASSERT_EQ(node(2).proc->stop(), 0);
  verify(w1, medium_ + "/vol1", "vol1 on the medium");
  verify(w2, medium_ + "/vol2", "vol2 on the medium");
}

// The survivor's destage fails (EIO) during the takeover: vol1 is not served until the replay
// of the mirror succeeds; once the fault is cleared it is, with every acknowledged write.
TEST_F(FailoverTest, DestageErrorOnSurvivorDelaysServing) {
  ASSERT_NO_FATAL_FAILURE(start_pair());
  const uint64_t epoch1 = await_serving(1, "vol1", 0, 10s);
  AckWriter& w = new_writer(node(1).proc->path("vol1"), 55);
  ASSERT_NO_FATAL_FAILURE(await_acks(w, 200));
  RunResult arm = run({HAFSCTL_BIN, "--socket", node(2).socket, "fault", "arm", "destage.before_write", "fail:EIO",
                       "--always"});
  ASSERT_EQ(arm.code, 0) << arm.out << arm.err;

  node(1).proc->kill9();
  ASSERT_TRUE(w.wait_finished(30s));
  // The claim holds, the replay fails and is retried: vol1 stays unserved on node 2.
  auto fired = [&](uint64_t n) {
    auto s = status(2);
    if (!s) return false;
    for (const auto& f : (*s)["faults"])
      if (f.value("site", "") == "destage.before_write" && f.value("fired", uint64_t{0}) >= n) return true;
    return false;
  };
  ASSERT_TRUE(eventually([&] { return fired(3); }, 30s)) << dump();
  {
    auto s = status(2);
    ASSERT_TRUE(s);
    json row = volume_row(*s, "vol1");
    EXPECT_EQ(row.value("state", ""), "taking-over") << dump();
    EXPECT_GT(row.value("epoch", uint64_t{0}), epoch1);
    EXPECT_FALSE(std::filesystem::exists(node(2).proc->path("vol1") + "/ackcheck-0.dat"))
        << "vol1 is visible on node 2 before its replay succeeded";
  }
  RunResult clear = run({HAFSCTL_BIN, "--socket", node(2).socket, "fault", "clear", "destage.before_write"});
  ASSERT_EQ(clear.code, 0) << clear.out << clear.err;
  const uint64_t epoch2 = await_serving(2, "vol1", epoch1, 30s);
  ASSERT_GT(epoch2, epoch1) << dump();
  verify(w, node(2).proc->path("vol1"), "through node 2's mount");
  expect_one_writer();
  watcher_->stop();
  ASSERT_EQ(node(2).proc->stop(), 0);
  verify(w, medium_ + "/vol1", "on the medium");
}

}  // namespace
}  // namespace hafs::testing::failover
