// The rules that keep an acknowledged write through failures in sequence (issue "Acknowledged
// writes are lost under a short pause, a second failure, ..."), in simulated time: the mirror
// is frozen before a takeover's claim (I8), a mirror marked outdated is never taken over from
// (I7), a replay is applied at most once (I8), a node discards only what the new owner replayed,
// and a second process with a node's identity stops. docs/membership.md gives the reasons.
#include <gtest/gtest.h>

#include <string>

#include "membership/mirror_mark.h"
#include "tests/membership/sim_pair.h"

namespace hafs::membership::testing {
namespace {

constexpr int A = 0;
constexpr int B = 1;

void bring_up(SimPair& p) {
  p.start_both();
  p.run(Millis(4000));
  ASSERT_TRUE(p.serving(A, 1));
  ASSERT_TRUE(p.serving(B, 3));
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A (log ring tag 0x1111) hangs and B (0x2222) takes its volume 1 over; B's replay answers "in
// progress" `replays` times, so the record names B with A's replay pending meanwhile.
void take_over_a_with_replay_pending(SimPair& p, int replays) {
  p.config(A).ring_tag = 0x1111;
  p.config(B).ring_tag = 0x2222;
  bring_up(p);
  p.hang(A);
  p.actions(B).take_over_calls_in_progress = replays;
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->owner == kB; }, Millis(15'000)));
}

// A second process with A's identity and another NV log (ring tag 0x3333), on A's clock, started
// after A was killed. step() runs the pair 10 ms and ticks the twin when it is due.
struct Twin {
  explicit Twin(SimPair& pair) : p(pair), actions(p.clock(A)) {
    MonitorConfig c = p.config(A);
    c.incarnation = p.config(A).incarnation + 1;
    c.ring_tag = 0x3333;
    auto r = Monitor::create(c, p.clock(A), p.port(A), actions, Logger("twin", LogLevel::kError));
    if (r.is_ok()) m = std::move(*r);
  }
  void step() {
    p.run(Millis(10));
    if (p.clock(A).now() >= m->next_tick_at()) m->tick(Observation{});
  }
  std::string conflict() const { return m->status().identity_conflict; }
  bool served(VolumeId volume = 0) const {  // 0: any volume
    for (const auto& e : actions.events)
      if (e.kind == Event::kServe && (volume == 0 || e.volume == volume)) return true;
    return false;
  }
  SimPair& p;
  RecordingActions actions;
  std::unique_ptr<Monitor> m;
};

// Case 1: A pauses just past its lease. B freezes its mirror of A's log before its claim can be
// read by anyone, replays A's records of epoch 1 only, records the replay as done before serving,
// and thaws only then. A, awake, keeps its records while B's replay is pending and afterwards
// drops only those below the LSN B says it read. The rest it keeps when it had acknowledged
// writes without the mirror (its mark set; here, as after a DEGRADED spell): B never saw them.
TEST(PromiseTest, PausePastTheLeaseFreezesTheMirrorBeforeTheClaim) {
  int taken = 0, kept = 0;
  for (int pause_ms : {1200, 2000, 2300, 2600, 2800, 2900, 3000, 3100, 3200, 3400, 4000, 6000}) {
    SCOPED_TRACE("pause " + std::to_string(pause_ms) + " ms");
    SimPair p(100 + static_cast<uint64_t>(pause_ms));
    bring_up(p);
    p.set_own_outdated(A, true);
    p.actions(A).staged[1] = {500, 999, 1000, 1500};  // 1000 and 1500: beyond B's replay (1000)
    bool froze_before_claim = false, thawed_after_done = false;
    p.actions(B).on_freeze = [&] { froze_before_claim = p.record(1) && p.record(1)->owner == kA; };
    p.actions(B).on_thaw = [&] {
      thawed_after_done = !p.record(1)->replay_pending() && p.record(1)->replay_next_lsn == 1000;
    };
    p.hang(A);
    p.run(Millis(pause_ms));
    p.wake(A);
    p.run(Millis(8000));
    if (p.record(1)->owner == kB) {
      ++taken;
      EXPECT_TRUE(froze_before_claim);
      EXPECT_TRUE(thawed_after_done);
      const auto plan = p.actions(B).plans.at({1, p.record(1)->epoch});
      EXPECT_EQ(plan.replay_node, kA);
      EXPECT_EQ(plan.replay_epoch, 1u);
      EXPECT_TRUE(p.serving(B, 1));
      EXPECT_FALSE(p.actions(B).frozen);
      // A dropped exactly what B read, kept what it did not, and says so.
      EXPECT_EQ(p.actions(A).staged[1], (std::set<uint64_t>{1000, 1500}));
      EXPECT_EQ(p.view(A, 1).kept_extents, 2u);
      EXPECT_TRUE(contains(p.view(A, 1).blocked, "did not replay")) << p.view(A, 1).blocked;
    } else {
      // A woke in time and kept (or re-claimed) it: nothing was discarded.
      ++kept;
      EXPECT_EQ(p.record(1)->owner, kA);
      EXPECT_EQ(p.actions(A).staged[1].size(), 4u);
      EXPECT_FALSE(p.actions(B).frozen);
    }
  }
  // Both sides of the lease were exercised.
  EXPECT_GE(taken, 3);
  EXPECT_GE(kept, 2);
}

// Case 2: A acknowledged writes without its mirror and marked it outdated; then A died. B never
// takes A's volumes over from that mirror, says why, and waits for A — or for an operator who
// accepts the loss.
TEST(PromiseTest, NoTakeoverFromAMirrorMarkedOutdated) {
  SimPair p(7);
  bring_up(p);
  MirrorMark mark(p.port(A), kA, p.config(A).cluster_id);
  ASSERT_TRUE(mark.set_outdated(0x1234, 4096, 8192).is_ok());
  p.kill(A);
  p.run(Millis(20'000));
  for (VolumeId v : {1u, 2u}) {
    EXPECT_EQ(p.record(v)->owner, kA) << "volume " << v;
    EXPECT_EQ(p.actions(B).count(Event::kTakeOver, v), 0u);
    EXPECT_TRUE(contains(p.view(B, v).blocked, "outdated")) << p.view(B, v).blocked;
  }
  EXPECT_TRUE(p.monitor(B)->status().partner_mirror_outdated);
  EXPECT_EQ(p.monitor(B)->status().partner_mirror_lag_bytes, 8192u);
  EXPECT_EQ(p.actions(B).count(Event::kFreeze), 0u);

  // The operator accepts losing vol1's unmirrored writes: B takes it over, damage accepted too.
  ASSERT_TRUE(p.monitor(B)->request_accept_loss(1).is_ok());
  EXPECT_EQ(p.monitor(B)->request_accept_loss(3).code(), Code::kInvalidArgument);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(10'000)));
  EXPECT_TRUE(p.actions(B).plans.at({1, p.record(1)->epoch}).accept_damage);
  EXPECT_EQ(p.record(2)->owner, kA);  // the other volume still waits

  // A returns: it re-claims vol2 from its own log, and keeps its vol1 records B never saw.
  p.set_own_outdated(A, true);
  p.start(A);
  p.actions(A).staged[1] = {5000};
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 2); }, Millis(15'000)));
  p.run(Millis(2000));
  EXPECT_EQ(p.actions(A).staged[1], (std::set<uint64_t>{5000}));
  EXPECT_EQ(p.view(A, 1).kept_extents, 1u);
}

// Rule 6: A (paused, its clock stopped) wakes and marks its mirror outdated after B read the mark
// but before B's take-over: B must not replay the mirror (A may have acknowledged writes it
// lacks). A is alive, so the volume goes back to A, whose log has them.
TEST(PromiseTest, AMarkWrittenWhileTheClaimLandsIsSeenAfterTheClaim) {
  SimPair p(23);
  bring_up(p);
  const uint64_t a_run = p.record(1)->run_epoch;
  p.hang(A);
  p.actions(B).take_over_calls_in_progress = 1;  // the first take-over call answers "in progress"
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->owner == kB; }, Millis(15'000)));
  MirrorMark mark(p.port(A), kA, p.config(A).cluster_id);  // A's write, landing after B's read
  ASSERT_TRUE(mark.set_outdated(0x1234, 4096, 8192).is_ok());
  p.wake(A);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 1); }, Millis(20'000))) << p.view(B, 1).blocked;
  EXPECT_FALSE(p.serving(B, 1));
  for (const auto& [key, plan] : p.actions(B).plans) {
    if (key.first != 1) continue;
    EXPECT_EQ(p.actions(B).taken_over.count(key), 0u) << "B replayed the outdated mirror";
  }
  // Rule 9: B never replayed A's run, so A's run goes on and its records of it are destaged (a
  // real-process check found a first version of the rule dropping them: PauseLengthTest 3100 ms).
  const auto plan = p.actions(A).plans.at({1, p.record(1)->epoch});
  EXPECT_EQ(plan.own_from_epoch, a_run) << "A would drop the records B never replayed";
  EXPECT_EQ(p.record(1)->run_epoch, a_run);
}

// Without its mark, everything A had acknowledged was in B's mirror: what B's replay did not
// read was never acknowledged, and A drops it all.
TEST(PromiseTest, WithoutTheMarkTheLosingNodeDropsWhatTheReplayDidNotRead) {
  SimPair p(14);
  bring_up(p);
  p.actions(A).staged[1] = {500, 1000, 1500};
  p.hang(A);
  p.run(Millis(6000));
  p.wake(A);
  p.run(Millis(6000));
  ASSERT_EQ(p.record(1)->owner, kB);
  EXPECT_TRUE(p.actions(A).staged[1].empty());
  EXPECT_EQ(p.view(A, 1).kept_extents, 0u);
  EXPECT_TRUE(p.view(A, 1).blocked.empty()) << p.view(A, 1).blocked;
}

// The mark is read before every claim, not once: a mark cleared by the returning owner lets the
// next takeover go ahead.
TEST(PromiseTest, AClearedMarkAllowsTheTakeover) {
  SimPair p(8);
  bring_up(p);
  MirrorMark mark(p.port(A), kA, p.config(A).cluster_id);
  ASSERT_TRUE(mark.set_outdated(1, 0, 100).is_ok());
  ASSERT_TRUE(mark.clear(1).is_ok());
  p.kill(A);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1) && p.serving(B, 2); }, Millis(15'000)));
  EXPECT_FALSE(p.monitor(B)->status().partner_mirror_outdated);
}

// Case 3: after a takeover B self-fences and re-claims. The re-claim is over B's own record,
// whose replay is done: A's mirror is not replayed again over what B wrote meanwhile.
TEST(PromiseTest, ReclaimAfterSelfFenceNeverReplaysTheMirrorAgain) {
  SimPair p(9);
  bring_up(p);
  p.kill(A);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(15'000)));
  const uint64_t e1 = p.record(1)->epoch;
  EXPECT_EQ(p.actions(B).plans.at({1, e1}).replay_node, kA);
  EXPECT_FALSE(p.record(1)->replay_pending());
  EXPECT_EQ(p.record(1)->replay_next_lsn, 1000u);
  p.port(B).fail_next_write_of(ownership_record_name(1));  // the next renewal fails: fence
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->epoch > e1 && p.serving(B, 1); }, Millis(15'000)));
  const uint64_t e2 = p.record(1)->epoch;
  EXPECT_EQ(p.actions(B).plans.at({1, e2}).replay_node, kNoNode) << "the mirror was replayed a second time";
  EXPECT_EQ(p.record(1)->replay_node, kA);  // the history stays: A may still discard by it
  EXPECT_EQ(p.record(1)->replay_next_lsn, 1000u);
  EXPECT_FALSE(p.actions(B).frozen);
}

// Found by the whole-pair simulator: A self-fenced, re-claimed its volume (epoch + 1) and died
// before that re-claim's take-over had destaged its records of the earlier epoch. B's takeover
// must replay A's whole run of ownership, not only the records of the newest epoch.
TEST(PromiseTest, ATakeoverReplaysTheOwnersWholeRunNotOnlyItsLastEpoch) {
  SimPair p(21);
  bring_up(p);
  const uint64_t e1 = p.record(1)->epoch;
  EXPECT_EQ(p.record(1)->run_epoch, e1);
  p.actions(A).take_over_calls_in_progress = 1'000'000;  // A's re-claim never finishes its destage
  p.port(A).fail_next_write_of(ownership_record_name(1));  // the next renewal fails: fence
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->epoch > e1 && p.record(1)->owner == kA; }, Millis(15'000)));
  EXPECT_EQ(p.record(1)->run_epoch, e1) << "a re-claim over its own record continues the owner's run";
  EXPECT_FALSE(p.serving(A, 1));
  const uint64_t e2 = p.record(1)->epoch;
  p.kill(A);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(15'000)));
  const auto plan = p.actions(B).plans.at({1, p.record(1)->epoch});
  EXPECT_EQ(plan.replay_node, kA);
  EXPECT_EQ(plan.replay_epoch, e2);
  EXPECT_EQ(plan.replay_from_epoch, e1) << "records of A's epoch " << e1 << " were never destaged";
  EXPECT_EQ(p.record(1)->run_epoch, p.record(1)->epoch) << "B's run starts with its takeover";
}

// Rule 9 (found by the whole-pair simulator, seed 16582014662777112823): A's own staged records
// of a volume from before B's run must never go to the medium after B's records once B replayed
// them and served: a restart of A brings them back from its NV log, so the in-memory discard of
// rule 4 does not cover a re-claim of A's. A's run starts anew over B's record (own_from_epoch),
// unless B's replay of A's run was still pending: then B never served, and A's records of that
// run are the only copies, so A's run goes on from its old start.
TEST(PromiseTest, AClaimBackCarriesOnlyTheRunTheOtherNodeNeverTookOver) {
  for (const bool b_replayed : {true, false}) {
    SCOPED_TRACE(b_replayed ? "B replayed A's run and served" : "B died before its replay was done");
    SimPair p(b_replayed ? 22 : 23);
    bring_up(p);
    const uint64_t a_run = p.record(1)->run_epoch;
    p.kill(A);
    if (!b_replayed) p.actions(B).take_over_calls_in_progress = 1'000'000;
    ASSERT_TRUE(p.run_until([&] { return p.record(1)->owner == kB && (!b_replayed || p.serving(B, 1)); },
                            Millis(15'000)));
    p.run(Millis(500));
    EXPECT_EQ(p.record(1)->replay_pending(), !b_replayed);
    const uint64_t b_epoch = p.record(1)->epoch;
    p.kill(B);
    p.start(A);
    ASSERT_TRUE(p.run_until([&] { return p.serving(A, 1); }, Millis(20'000)));
    const uint64_t a_epoch = p.record(1)->epoch;
    const auto plan = p.actions(A).plans.at({1, a_epoch});
    EXPECT_EQ(plan.replay_node, kB);
    EXPECT_EQ(plan.replay_epoch, b_epoch);
    if (b_replayed) {
      EXPECT_EQ(plan.own_from_epoch, a_epoch) << "A's records from before B's run would roll back B's writes";
      EXPECT_EQ(p.record(1)->run_epoch, a_epoch);
    } else {
      EXPECT_EQ(plan.own_from_epoch, a_run) << "A's records of its earlier run are the only copies";
      EXPECT_EQ(p.record(1)->run_epoch, a_run);
    }
  }
}

// A takeover interrupted mid-replay (B killed) is done again by B's next life before serving:
// the record says the replay is pending, so the re-claim replays (nobody served in between).
TEST(PromiseTest, ARestartMidReplayReplaysAgainBeforeServing) {
  SimPair p(10);
  bring_up(p);
  p.kill(A);
  p.actions(B).take_over_calls_in_progress = 1'000'000;  // the replay never ends in this life
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->owner == kB; }, Millis(15'000)));
  p.run(Millis(1000));
  EXPECT_TRUE(p.record(1)->replay_pending());
  EXPECT_FALSE(p.serving(B, 1));
  p.kill(B);
  p.start(B);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(15'000)));
  const auto plan = p.actions(B).plans.at({1, p.record(1)->epoch});
  EXPECT_EQ(plan.replay_node, kA);
  EXPECT_EQ(plan.replay_epoch, 1u);
  EXPECT_FALSE(p.record(1)->replay_pending());
}

// A mirror damaged inside cannot be replayed: the volume is not served ("refuse and report"),
// and once its owner lives again it goes back to the owner, whose NV log has the records.
TEST(PromiseTest, ADamagedMirrorIsNotServedAndGoesBackToItsLivingOwner) {
  SimPair p(15);
  bring_up(p);
  p.kill(A);
  p.actions(B).fail_take_overs = 1'000'000;
  p.actions(B).fail_take_over_code = Code::kDataLoss;
  ASSERT_TRUE(p.run_until([&] { return p.record(1)->owner == kB; }, Millis(15'000)));
  p.run(Millis(5000));
  EXPECT_FALSE(p.serving(B, 1));
  EXPECT_TRUE(contains(p.view(B, 1).blocked, "take-over failed")) << p.view(B, 1).blocked;
  p.start(A);
  p.actions(A).staged[1] = {700};
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 1); }, Millis(20'000)));
  EXPECT_EQ(p.actions(A).staged[1], (std::set<uint64_t>{700})) << "A dropped records nobody replayed";
  EXPECT_FALSE(p.actions(B).frozen);
}

// But not when the volume's run is partly the giver's (whole-pair simulator, seed
// 6958115224298967307, our reading): A took B's volume over while B was paused and died before
// its replay; B claims it back, its own run going on (rule 9), and cannot replay A's log. B's
// own records of its run are staged in B's log only; handed back, A would serve without them.
TEST(PromiseTest, AHandBackNeverLeavesTheGiversOwnRunBehind) {
  SimPair p(26);
  bring_up(p);
  p.hang(B);
  p.actions(A).take_over_calls_in_progress = 1'000'000;  // A's replay of B's run never ends
  ASSERT_TRUE(p.run_until([&] { return p.record(3)->owner == kA; }, Millis(15'000)));
  ASSERT_TRUE(p.record(3)->replay_pending());
  p.kill(A);
  p.actions(B).fail_take_overs = 1'000'000;  // B's mirror of A's log cannot be replayed
  p.actions(B).fail_take_over_code = Code::kDataLoss;
  p.wake(B);
  ASSERT_TRUE(p.run_until([&] { return p.record(3)->owner == kB; }, Millis(15'000)));
  EXPECT_LT(p.record(3)->run_epoch, p.record(3)->replay_from_epoch) << "B's claim back started a new run";
  p.start(A);
  p.run(Millis(10'000));
  EXPECT_EQ(p.record(3)->owner, kB) << "B handed back a volume whose own run is staged in its log";
  EXPECT_TRUE(contains(p.view(B, 3).blocked, "is staged here and would be lost")) << p.view(B, 3).blocked;
}

// A mirror that cannot be frozen is not taken over from (the claim waits and is retried).
TEST(PromiseTest, NoClaimWhileTheMirrorCannotBeFrozen) {
  SimPair p(11);
  bring_up(p);
  p.actions(B).fail_freezes = 3;
  p.kill(A);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(20'000)));
  EXPECT_GE(p.actions(B).count(Event::kFreeze), 4u);
}

// Case 5: a second process with A's identity (same id, same medium). The one that starts second
// sees A's heartbeat move under another incarnation during its start-up watch and stops before
// it writes anything; A goes on serving at the same epoch.
TEST(PromiseTest, ASecondProcessWithANodesIdentityStops) {
  SimPair p(12);
  bring_up(p);
  const uint64_t epoch = p.record(1)->epoch;
  SimClock clock(Millis(50'000));
  RecordingActions actions(clock);
  MonitorConfig twin = p.config(A);
  twin.incarnation = p.config(A).incarnation + 1;
  auto m = Monitor::create(twin, clock, p.port(A), actions, Logger("twin", LogLevel::kWarn));
  ASSERT_TRUE(m.is_ok());
  for (int i = 0; i < 400; ++i) {
    p.run(Millis(10));
    clock.advance(Millis(10));
    if (clock.now() >= (*m)->next_tick_at()) (*m)->tick(Observation{});
  }
  EXPECT_TRUE(contains((*m)->status().identity_conflict, "another process")) << (*m)->status().identity_conflict;
  EXPECT_TRUE(actions.events.empty()) << "the twin acted";
  EXPECT_TRUE(p.serving(A, 1));
  EXPECT_EQ(p.record(1)->epoch, epoch);
  EXPECT_TRUE(p.monitor(A)->status().identity_conflict.empty());
}

// Rule 8 while running: a twin with A's identity and another NV log that got past the heartbeat
// watch (here: A died just before it started; in the whole-pair simulator, seed
// 14686284917154837223, both started before either beat) must not continue A's run: the record
// names A with A's log, and the twin's log has none of it. It stops before it claims anything,
// and B takes the volumes over from its mirror of A's log. Without the rule the twin re-claims
// "its own" volume and serves the medium without A's staged writes.
TEST(PromiseTest, ATwinWithAnotherNvLogStopsAtTheFirstRecordOfTheOriginalsRun) {
  SimPair p(14);
  p.config(A).ring_tag = 0x1111;
  p.config(B).ring_tag = 0x2222;
  bring_up(p);
  ASSERT_EQ(p.record(1)->owner_ring, 0x1111u);
  const uint64_t epoch = p.record(1)->epoch;
  p.kill(A);
  Twin twin(p);
  ASSERT_NE(twin.m, nullptr);
  for (int i = 0; i < 1500 && !p.serving(B, 1); ++i) twin.step();
  EXPECT_TRUE(contains(twin.conflict(), "another process with this node's identity")) << twin.conflict();
  EXPECT_FALSE(twin.served()) << "the twin served a volume";
  EXPECT_GE(p.record(1)->epoch, epoch);
  EXPECT_TRUE(p.serving(B, 1)) << "B never took A's volume over";
}

// Rule 8 and a hand-back (whole-pair simulator, seed 1892927709913078029): B's takeover of A's
// volume cannot replay (A marked the mirror outdated) and A seems alive, so B hands the volume
// back. The run goes on in A's NV log, and the hand-back names that log: a twin of A with another
// log, which is what beats as A, stops instead of serving the volume without the run's writes.
TEST(PromiseTest, AHandBackNamesTheLogTheRunIsStagedIn) {
  SimPair p(24);
  ASSERT_NO_FATAL_FAILURE(take_over_a_with_replay_pending(p, 1));
  MirrorMark mark(p.port(A), kA, p.config(A).cluster_id);
  ASSERT_TRUE(mark.set_outdated(0x1234, 4096, 8192).is_ok());
  p.kill(A);
  Twin twin(p);
  ASSERT_NE(twin.m, nullptr);
  bool handed_back = false;
  for (int i = 0; i < 2000 && twin.conflict().empty(); ++i) {
    twin.step();
    if (auto rec = p.record(1); rec && rec->owner == kA && (rec->flags & kOwnFlagHandover) != 0) {
      handed_back = true;
      EXPECT_EQ(rec->owner_ring, 0x1111u) << "the hand-back does not name the log A's run is staged in";
    }
  }
  EXPECT_TRUE(handed_back) << "B never handed the volume back";
  EXPECT_TRUE(contains(twin.conflict(), "another process with this node's identity")) << twin.conflict();
  EXPECT_FALSE(twin.served()) << "the twin served a volume";
}

// Rule 8 and a pending takeover (whole-pair simulator, seeds 9862195802341871820 and
// 1345506560420389292): B took A's volume over and has not replayed A's run yet (the record
// names A's log as the replay's), then B stops too. A claim over that record would continue A's
// run, which only A's log and B's mirror hold: a twin of A with another log waits for B instead
// of serving the volume without the run's writes.
TEST(PromiseTest, APendingTakeoverNamesTheLogItReplays) {
  SimPair p(25);
  ASSERT_NO_FATAL_FAILURE(take_over_a_with_replay_pending(p, 1000));  // B's replay never ends
  ASSERT_TRUE(p.record(1)->replay_pending());
  EXPECT_EQ(p.record(1)->replay_ring, 0x1111u) << "the claim does not name the log its replay reads";
  p.kill(A);
  p.kill(B);
  Twin twin(p);
  ASSERT_NE(twin.m, nullptr);
  for (int i = 0; i < 1500; ++i) twin.step();
  EXPECT_FALSE(twin.served(1)) << "the twin served a volume whose run only B's mirror holds";
  EXPECT_EQ(p.record(1)->owner, kB);
  std::string blocked;
  for (const auto& v : twin.m->status().volumes)
    if (v.id == 1) blocked = v.blocked;
  EXPECT_TRUE(contains(blocked, "waiting for node 2 to replay it")) << blocked;
}

// A record of another cluster (two pairs on one membership directory) is never taken.
TEST(PromiseTest, RecordsOfAnotherClusterAreNeverTaken) {
  SimPair p(13);
  p.config(A).cluster_id = 5;
  p.config(B).cluster_id = 5;
  OwnershipRecord foreign;
  foreign.volume_id = 3;
  foreign.owner = 9;
  foreign.home = kB;
  foreign.epoch = 4;
  foreign.run_epoch = 4;
  foreign.cluster_id = 6;
  RecordBlock block{};
  encode_ownership(foreign, block);
  ASSERT_TRUE(p.port(B).write(ownership_record_name(3), block).is_ok());
  p.start_both();
  p.run(Millis(10'000));
  EXPECT_FALSE(p.serving(B, 3));
  EXPECT_FALSE(p.serving(A, 3));
  EXPECT_EQ(p.record(3)->cluster_id, 6u);  // untouched
  EXPECT_TRUE(contains(p.view(B, 3).blocked, "another cluster"));
  EXPECT_TRUE(p.serving(B, 4));
}

}  // namespace
}  // namespace hafs::membership::testing
