// The membership state machine, scenario by scenario: two Monitors sharing one SimDisk, in
// simulated time (docs/membership.md describes the protocol these tests pin down).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/membership/sim_pair.h"

namespace hafs::membership::testing {
namespace {

constexpr int A = 0;
constexpr int B = 1;
constexpr Millis kLease{2000};
constexpr Millis kMargin{250};

// Both nodes up and NORMAL, each serving its home volumes at epoch 1.
void bring_up(SimPair& p) {
  p.start_both();
  p.run(Millis(3000));
}

// Runs until B has just renewed volume 3 (the record changed in the last step).
void run_until_b_renews(SimPair& p) {
  const uint64_t counter = p.record(3)->renew_counter;
  ASSERT_TRUE(p.run_until([&] { return p.record(3)->renew_counter != counter; }, Millis(1000)));
}

TEST(MonitorTest, BothStartingAtOnceClaimOnlyTheirHomeVolumesAtEpochOne) {
  SimPair p(1);
  bring_up(p);
  for (VolumeId v : {1u, 2u}) {
    EXPECT_TRUE(p.serving(A, v));
    EXPECT_FALSE(p.serving(B, v));
    ASSERT_TRUE(p.record(v));
    EXPECT_EQ(p.record(v)->owner, kA);
    EXPECT_EQ(p.record(v)->epoch, 1u);
  }
  for (VolumeId v : {3u, 4u}) {
    EXPECT_TRUE(p.serving(B, v));
    EXPECT_FALSE(p.serving(A, v));
    EXPECT_EQ(p.record(v)->owner, kB);
    EXPECT_EQ(p.record(v)->epoch, 1u);
  }
  EXPECT_EQ(p.state(A), NodeState::kNormal);
  EXPECT_EQ(p.state(B), NodeState::kNormal);
  // take_over came first, then serve, exactly once each.
  EXPECT_EQ(p.actions(A).count(Event::kTakeOver), 2u);
  EXPECT_EQ(p.actions(A).count(Event::kServe), 2u);
  EXPECT_EQ(p.actions(A).events.front().kind, Event::kTakeOver);
  EXPECT_FALSE(p.actions(A).degraded);
}

TEST(MonitorTest, RenewalsMoveTheCounterButNeverTheEpoch) {
  SimPair p(2);
  bring_up(p);
  const uint64_t before = p.record(1)->renew_counter;
  p.run(Millis(10'000));
  const auto rec = p.record(1);
  // A tick every 500 ms: about 20 renewals in 10 s.
  EXPECT_GE(rec->renew_counter, before + 18);
  EXPECT_LE(rec->renew_counter, before + 21);
  EXPECT_EQ(rec->epoch, 1u);
  EXPECT_EQ(rec->flags, 0u);
  EXPECT_EQ(p.actions(A).count(Event::kFence), 0u);
  EXPECT_EQ(p.actions(B).count(Event::kFence), 0u);
  EXPECT_TRUE(p.serving(A, 1));
  // The data-path check agrees with the view, and refuses another epoch.
  const Millis now = p.clock(A).now();
  EXPECT_TRUE(p.monitor(A)->lease_valid(1, 1, now));
  EXPECT_FALSE(p.monitor(A)->lease_valid(1, 2, now));
  EXPECT_FALSE(p.monitor(A)->lease_valid(1, 1, now + kLease));
  EXPECT_FALSE(p.monitor(A)->lease_valid(3, 1, now));
}

TEST(MonitorTest, KilledNodesVolumesAreTakenOverOnlyAfterLeasePlusMargin) {
  SimPair p(3);
  bring_up(p);
  run_until_b_renews(p);
  p.kill(B);
  const Millis killed_at = p.elapsed();  // = B's last renewal, to within one step
  // A must not serve B's volumes before lease + margin after that renewal.
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(10'000)));
  const Millis took = p.elapsed() - killed_at;
  EXPECT_GE(took, kLease + kMargin) << "took over before the lease surely expired";
  // lease + margin + settle, plus up to a tick to notice the stillness and one to re-read.
  EXPECT_LE(took, kLease + kMargin + Millis(250) + Millis(1000)) << "takeover too slow";
  std::printf("takeover %lld ms after the holder's last renewal\n", static_cast<long long>(took.count()));
  for (VolumeId v : {3u, 4u}) {
    EXPECT_EQ(p.record(v)->owner, kA);
    EXPECT_EQ(p.record(v)->epoch, 2u) << "the epoch rises by exactly one";
    auto to = p.actions(A).first(Event::kTakeOver, v);
    auto sv = p.actions(A).first(Event::kServe, v);
    ASSERT_TRUE(to && sv);
    EXPECT_EQ(to->epoch, 2u);
    EXPECT_EQ(sv->epoch, 2u);
    EXPECT_LE(to->at, sv->at);
  }
  EXPECT_EQ(p.state(A), NodeState::kDegraded);
  EXPECT_TRUE(p.actions(A).degraded);
  EXPECT_TRUE(p.serving(A, 1)) << "its own volumes stay served throughout";
  EXPECT_EQ(p.record(1)->epoch, 1u);
}

TEST(MonitorTest, PartnerDownPassesThroughPartnerDownAndTakeoverStates) {
  SimPair p(4);
  bring_up(p);
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.state(A) == NodeState::kPartnerDown; }, Millis(5000)));
  EXPECT_FALSE(p.serving(A, 3));
  ASSERT_TRUE(p.run_until([&] { return p.state(A) == NodeState::kTakeover; }, Millis(5000)));
  EXPECT_FALSE(p.serving(A, 3)) << "not served while the claim settles";
  EXPECT_EQ(p.record(3)->owner, kA);
  ASSERT_TRUE(p.run_until([&] { return p.state(A) == NodeState::kDegraded; }, Millis(5000)));
  EXPECT_TRUE(p.serving(A, 3));
}

TEST(MonitorTest, InterconnectCutWithBothAliveNeverTakesOver) {
  SimPair p(5);
  bring_up(p);
  p.set_cut(true);
  p.set_in_sync(false);  // both keep writing, unmirrored
  p.run(Millis(20'000));
  EXPECT_EQ(p.state(A), NodeState::kDegraded);
  EXPECT_EQ(p.state(B), NodeState::kDegraded);
  EXPECT_TRUE(p.actions(A).degraded);
  EXPECT_TRUE(p.actions(B).degraded);
  for (VolumeId v : {1u, 2u, 3u, 4u}) EXPECT_EQ(p.record(v)->epoch, 1u) << "volume " << v;
  EXPECT_TRUE(p.serving(A, 1));
  EXPECT_TRUE(p.serving(B, 3));
  EXPECT_EQ(p.actions(A).count(Event::kTakeOver), 2u) << "only the start-up claims";
  // Interconnect back: RESYNC until the mirrors caught up, then NORMAL and mirrored again.
  p.set_cut(false);
  p.run(Millis(1000));
  EXPECT_EQ(p.state(A), NodeState::kResync);
  EXPECT_TRUE(p.actions(A).degraded);
  p.set_in_sync(true);
  p.run(Millis(1000));
  EXPECT_EQ(p.state(A), NodeState::kNormal);
  EXPECT_EQ(p.state(B), NodeState::kNormal);
  EXPECT_FALSE(p.actions(A).degraded);
  EXPECT_FALSE(p.actions(B).degraded);
}

TEST(MonitorTest, HungNodeThatWakesLateFencesBeforeAnythingElse) {
  SimPair p(6);
  bring_up(p);
  p.hang(B);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(10'000)));
  p.run(Millis(3000));
  // B is still "serving" in its own stale memory, but the data-path check refuses: the lease
  // ran out on B's own clock while it was frozen.
  EXPECT_EQ(p.actions(B).serving.size(), 2u);
  EXPECT_FALSE(p.monitor(B)->lease_valid(3, 1, p.clock(B).now()));
  EXPECT_FALSE(p.monitor(B)->may_destage(3, 1, p.clock(B).now())) << "stale epoch 1 may not destage";
  EXPECT_FALSE(p.serving(B, 3));
  const size_t before = p.actions(B).events.size();
  p.wake(B);
  p.tick(B);
  const auto& ev = p.actions(B).events;
  ASSERT_GE(ev.size(), before + 2);
  EXPECT_EQ(ev[before].kind, Event::kFence);
  EXPECT_EQ(ev[before + 1].kind, Event::kFence);
  for (size_t i = before; i < ev.size(); ++i)
    EXPECT_NE(ev[i].kind, Event::kServe) << "served something on waking";
  EXPECT_TRUE(p.actions(B).serving.empty());
  for (VolumeId v : {3u, 4u}) {
    const VolumeView vv = p.view(B, v);
    EXPECT_NE(vv.state, VolumeState::kServing);
    EXPECT_EQ(vv.owner, kA);
    EXPECT_EQ(vv.epoch, 2u);
    EXPECT_GE(p.actions(B).count(Event::kDiscard, v), 1u) << "stale records must be dropped";
  }
  // And it stays out until giveback.
  p.run(Millis(10'000));
  EXPECT_FALSE(p.serving(B, 3));
  EXPECT_TRUE(p.serving(A, 3));
}

TEST(MonitorTest, TakeoverReplayMayDestageButNotAcknowledgeUntilServed) {
  SimPair p(61);
  bring_up(p);
  std::vector<std::string> seen;
  p.actions(A).on_take_over = [&](VolumeId v, uint64_t epoch) {
    const Millis now = p.clock(A).now();
    if (!p.monitor(A)->may_destage(v, epoch, now)) seen.push_back("replay of " + std::to_string(v) + " may not destage");
    if (p.monitor(A)->lease_valid(v, epoch, now)) seen.push_back("acknowledging " + std::to_string(v) + " before serve");
    if (p.monitor(A)->may_destage(v, epoch - 1, now)) seen.push_back("old epoch destages " + std::to_string(v));
  };
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(10'000)));
  EXPECT_EQ(p.actions(A).count(Event::kTakeOver, 3), 1u);
  EXPECT_TRUE(seen.empty()) << seen.front();
  EXPECT_TRUE(p.monitor(A)->may_destage(3, 2, p.clock(A).now()));
  EXPECT_TRUE(p.monitor(A)->lease_valid(3, 2, p.clock(A).now()));
  EXPECT_FALSE(p.monitor(A)->may_destage(3, 1, p.clock(A).now()));
}

// A replay longer than three leases (a big mirror onto a slow medium) runs in the background:
// the claimant keeps renewing meanwhile, never fences, and serves once take_over returns OK.
TEST(MonitorTest, LongBackgroundReplayKeepsTheLeaseAndServesAfterIt) {
  SimPair p(62);
  bring_up(p);
  // Two volumes ask each tick: 28 calls are 14 ticks of 500 ms, 7 s, 3.5 leases.
  p.actions(A).take_over_calls_in_progress = 28;
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.view(A, 3).state == VolumeState::kTakingOver; }, Millis(10'000)));
  const Millis began = p.clock(A).now();
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(20'000)));
  EXPECT_GE(p.clock(A).now() - began, Millis(6000)) << "served before the replay finished";
  EXPECT_EQ(p.actions(A).count(Event::kFence), 0u) << "a lease ran out during the replay";
  EXPECT_EQ(p.record(3)->epoch, 2u) << "re-claimed: the claim did not survive the replay";
  EXPECT_EQ(p.actions(A).count(Event::kServe, 3), 1u);
  EXPECT_TRUE(p.serving(A, 1)) << "A's own volumes were not kept meanwhile";
}

TEST(MonitorTest, BriefHangShorterThanTheLeaseChangesNothing) {
  SimPair p(7);
  bring_up(p);
  p.hang(B);
  p.run(Millis(800));
  p.wake(B);
  p.run(Millis(5000));
  EXPECT_TRUE(p.serving(B, 3));
  EXPECT_EQ(p.record(3)->epoch, 1u);
  EXPECT_EQ(p.actions(B).count(Event::kFence), 0u);
}

TEST(MonitorTest, PartnerReturningDuringTakeoverDiscardsAndWaitsForGiveback) {
  SimPair p(8);
  bring_up(p);
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.state(A) == NodeState::kTakeover; }, Millis(10'000)));
  p.set_in_sync(false);
  p.start(B);  // returns while A's claims settle
  p.run(Millis(3000));
  for (VolumeId v : {3u, 4u}) {
    EXPECT_TRUE(p.serving(A, v));
    EXPECT_FALSE(p.serving(B, v));
    EXPECT_EQ(p.record(v)->epoch, 2u);
    EXPECT_EQ(p.actions(B).count(Event::kDiscard, v), 1u);
    EXPECT_EQ(p.actions(B).count(Event::kServe, v), 0u);
  }
  EXPECT_EQ(p.state(A), NodeState::kResync);
  p.set_in_sync(true);
  p.run(Millis(60'000));  // auto giveback is off: B waits
  EXPECT_FALSE(p.serving(B, 3));
  EXPECT_EQ(p.state(B), NodeState::kNormal);
}

TEST(MonitorTest, PartnerReturningBeforeTheClaimsKeepsItsVolumes) {
  SimPair p(9);
  bring_up(p);
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.state(A) == NodeState::kPartnerDown; }, Millis(10'000)));
  p.start(B);  // back before the lease + margin ran out: it re-claims its volumes itself
  p.run(Millis(5000));
  for (VolumeId v : {3u, 4u}) {
    EXPECT_TRUE(p.serving(B, v));
    EXPECT_EQ(p.record(v)->owner, kB);
    EXPECT_EQ(p.record(v)->epoch, 2u) << "a new process re-claims with epoch+1";
    EXPECT_EQ(p.actions(A).count(Event::kServe, v), 0u);
  }
}

// Kill B, let A take over, bring B back and resynced: the common start of the giveback tests.
void take_over_and_return(SimPair& p) {
  bring_up(p);
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(10'000)));
  p.set_in_sync(false);
  p.start(B);
  p.run(Millis(2000));
}

TEST(MonitorTest, GivebackOnCommandHandsOneVolumeBack) {
  SimPair p(10);
  take_over_and_return(p);
  p.set_in_sync(true);
  p.run(Millis(2000));
  ASSERT_EQ(p.state(A), NodeState::kNormal);
  EXPECT_EQ(p.monitor(A)->request_giveback(99).code(), Code::kNotFound);
  EXPECT_EQ(p.monitor(A)->request_giveback(1).code(), Code::kInvalidArgument);
  ASSERT_TRUE(p.monitor(A)->request_giveback(3).is_ok());
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3); }, Millis(5000)));
  EXPECT_EQ(p.record(3)->owner, kB);
  EXPECT_EQ(p.record(3)->epoch, 3u);
  EXPECT_EQ(p.record(3)->flags, 0u) << "B's first renewal clears the hand-over flag";
  auto rel = p.actions(A).first(Event::kRelease, 3);
  auto to = p.actions(B).first(Event::kTakeOver, 3);
  auto sv = p.actions(B).first(Event::kServe, 3);
  ASSERT_TRUE(rel && to && sv);
  EXPECT_LE(rel->at.count() - 1'000'000, sv->at.count() - 7'000'000) << "released first";
  EXPECT_EQ(to->epoch, 3u);
  EXPECT_EQ(sv->epoch, 3u);
  EXPECT_TRUE(p.serving(A, 4)) << "only the requested volume moved";
  EXPECT_EQ(p.record(4)->epoch, 2u);
  p.run(Millis(2000));
  EXPECT_EQ(p.state(A), NodeState::kNormal);
}

TEST(MonitorTest, AutomaticGivebackAfterTheDelay) {
  SimPair p(11);
  p.config(A).auto_giveback = true;
  p.config(A).giveback_delay_ms = 5000;
  take_over_and_return(p);
  p.set_in_sync(true);
  p.run(Millis(4000));
  EXPECT_TRUE(p.serving(A, 3)) << "not before the delay";
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3) && p.serving(B, 4); }, Millis(5000)));
  EXPECT_EQ(p.record(3)->epoch, 3u);
  EXPECT_EQ(p.record(4)->epoch, 3u);
  EXPECT_EQ(p.actions(A).count(Event::kRelease), 2u);
  p.run(Millis(1000));
  EXPECT_EQ(p.state(A), NodeState::kNormal);
  EXPECT_EQ(p.state(B), NodeState::kNormal);
}

// A planned takeover (hafsctl takeover on A): A hands its own volume 1 to B at epoch + 1; B
// serves it and does not give it back by itself, however long it stays NORMAL; a giveback on
// command brings it home at the next epoch.
TEST(MonitorTest, PlannedTakeoverHandsAHomeVolumeOverWithoutAutomaticGiveback) {
  SimPair p(64);
  p.config(B).auto_giveback = true;
  p.config(B).giveback_delay_ms = 2000;
  bring_up(p);
  ASSERT_TRUE(p.monitor(A)->request_handover(1).is_ok());
  EXPECT_EQ(p.monitor(A)->request_handover(9).code(), Code::kNotFound);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1); }, Millis(5000)));
  EXPECT_FALSE(p.serving(A, 1));
  EXPECT_EQ(p.record(1)->owner, kB);
  EXPECT_EQ(p.record(1)->epoch, 2u);
  EXPECT_EQ(p.view(A, 1).state, VolumeState::kPartner);
  EXPECT_TRUE(p.serving(A, 2)) << "only the volume asked for moves";
  p.run(Millis(10'000));
  EXPECT_TRUE(p.serving(B, 1)) << "given back automatically after a planned takeover";
  EXPECT_EQ(p.actions(B).count(Event::kRelease), 0u);
  ASSERT_TRUE(p.monitor(B)->request_giveback(1).is_ok());
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 1); }, Millis(5000)));
  EXPECT_EQ(p.record(1)->epoch, 3u);
  EXPECT_EQ(p.record(1)->owner, kA);
}

TEST(MonitorTest, GivebackRequestedDuringResyncIsDeferredUntilNormal) {
  SimPair p(12);
  take_over_and_return(p);
  ASSERT_EQ(p.state(A), NodeState::kResync);
  ASSERT_TRUE(p.monitor(A)->request_giveback(3).is_ok());
  p.run(Millis(10'000));
  EXPECT_EQ(p.actions(A).count(Event::kRelease), 0u) << "no giveback while resyncing";
  EXPECT_TRUE(p.serving(A, 3));
  EXPECT_TRUE(p.view(A, 3).giveback_requested);
  p.set_in_sync(true);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3); }, Millis(5000)));
  EXPECT_EQ(p.actions(A).count(Event::kRelease, 3), 1u);
}

// A giveback whose destage runs in the background, interrupted by the partner's death: once the
// destage has finished, the volume is served again here at the same epoch; nothing is handed over.
TEST(MonitorTest, GivebackAbandonedMidDestageServesAgain) {
  SimPair p(63);
  take_over_and_return(p);
  p.set_in_sync(true);
  p.run(Millis(1000));
  const uint64_t epoch = p.record(3)->epoch;
  p.actions(A).release_calls_in_progress = 6;
  ASSERT_TRUE(p.monitor(A)->request_giveback(3).is_ok());
  ASSERT_TRUE(p.run_until([&] { return p.actions(A).count(Event::kRelease, 3) == 1; }, Millis(5000)));
  EXPECT_FALSE(p.actions(A).serving.count(3)) << "still served while releasing";
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.actions(A).serving.count(3) == 1; }, Millis(20'000)));
  EXPECT_EQ(p.record(3)->owner, kA);
  EXPECT_EQ(p.record(3)->epoch, epoch) << "handed over although the giveback was abandoned";
  EXPECT_EQ(p.actions(A).serving.at(3), epoch);
  p.run(Millis(5000));
  EXPECT_TRUE(p.serving(A, 3));
  EXPECT_EQ(p.actions(A).count(Event::kFence, 3), 0u);
}

TEST(MonitorTest, FailedReleaseKeepsServingAtTheSameEpoch) {
  SimPair p(13);
  take_over_and_return(p);
  p.set_in_sync(true);
  p.run(Millis(2000));
  p.actions(A).fail_releases = 1;
  ASSERT_TRUE(p.monitor(A)->request_giveback(3).is_ok());
  p.run(Millis(2000));
  EXPECT_TRUE(p.serving(A, 3));
  EXPECT_EQ(p.record(3)->epoch, 2u);
  EXPECT_EQ(p.actions(A).count(Event::kServe, 3), 2u) << "serve again after the failed release";
  ASSERT_TRUE(p.monitor(A)->request_giveback(3).is_ok());
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3); }, Millis(5000)));
}

TEST(MonitorTest, TornRenewalSelfFencesThenReclaimsWithANewEpoch) {
  SimPair p(14);
  bring_up(p);
  p.port(B).tear_next_write_of(ownership_record_name(3));
  p.run(Millis(600));  // B's next tick: its renewal of volume 3 tears (EIO, a prefix landed)
  EXPECT_EQ(p.actions(B).count(Event::kFence, 3), 1u) << "a failed renewal fences at once";
  EXPECT_EQ(p.actions(B).count(Event::kFence, 4), 0u);
  // The record may be torn now: nobody else takes it as expired; B, its last writer,
  // re-claims it with a new epoch and replays before serving again.
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3); }, Millis(3000)));
  EXPECT_EQ(p.record(3)->owner, kB);
  EXPECT_EQ(p.record(3)->epoch, 2u);
  EXPECT_TRUE(p.actions(B).taken_over.count({3, 2}));
  EXPECT_EQ(p.actions(A).count(Event::kServe, 3), 0u);
  EXPECT_EQ(p.record(4)->epoch, 1u);
}

TEST(MonitorTest, TornRecordOfADeadHolderIsNeverTakenAsExpired) {
  SimPair p(15);
  bring_up(p);
  // B dies with volume 3's record torn (a power cut in the middle of its renewal).
  auto bytes = p.disk().peek(ownership_record_name(3));
  ASSERT_TRUE(bytes);
  (*bytes)[own_off::kRenewCounter] ^= std::byte{0x5a};  // the CRC no longer matches
  p.kill(B);
  p.disk().poke(ownership_record_name(3), *bytes);
  p.run(Millis(15'000));
  EXPECT_TRUE(p.serving(A, 4)) << "the intact record is taken over";
  EXPECT_FALSE(p.serving(A, 3)) << "a corrupt record is never an expired one";
  EXPECT_EQ(p.view(A, 3).state, VolumeState::kUnknown);
  EXPECT_EQ(p.actions(A).count(Event::kTakeOver, 3), 0u);
}

TEST(MonitorTest, CorruptRecordIsRewrittenByItsLiveHolder) {
  SimPair p(16);
  bring_up(p);
  auto bytes = p.disk().peek(ownership_record_name(1));
  (*bytes)[own_off::kEpoch] ^= std::byte{0x01};
  p.disk().poke(ownership_record_name(1), *bytes);
  EXPECT_FALSE(p.record(1));
  p.run(Millis(1000));
  ASSERT_TRUE(p.record(1));
  EXPECT_EQ(p.record(1)->owner, kA);
  EXPECT_EQ(p.record(1)->epoch, 1u);
  EXPECT_TRUE(p.serving(A, 1));
  EXPECT_EQ(p.actions(A).count(Event::kFence), 0u);
}

TEST(MonitorTest, FailedRenewalWriteSelfFencesAtOnce) {
  SimPair p(17);
  bring_up(p);
  p.port(B).fail_next_write_of(ownership_record_name(4));
  p.run(Millis(600));  // one tick of B
  EXPECT_FALSE(p.serving(B, 4));
  EXPECT_EQ(p.actions(B).count(Event::kFence, 4), 1u);
  EXPECT_TRUE(p.serving(B, 3));
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 4); }, Millis(3000)));
  EXPECT_EQ(p.record(4)->epoch, 2u) << "serving again takes a new epoch";
}

TEST(MonitorTest, LostDiskOnTheHolderFencesBeforeTheLeaseRunsOut) {
  SimPair p(22);
  bring_up(p);
  run_until_b_renews(p);
  const Millis renewed_at = p.elapsed();
  p.port(B).set_lost(true);  // cannot read, cannot renew
  // Without a readable record B does not renew; it fences when lease - margin has passed
  // since its last renewal began — before A could possibly take over (lease + margin).
  ASSERT_TRUE(p.run_until([&] { return !p.serving(B, 3); }, Millis(5000)));
  EXPECT_LE(p.elapsed() - renewed_at, kLease - kMargin + SimPair::kStep);
  EXPECT_GE(p.elapsed() - renewed_at, kLease - kMargin - Millis(500));
  EXPECT_EQ(p.actions(B).count(Event::kFence), 2u);
  EXPECT_EQ(p.view(B, 3).state, VolumeState::kFenced);
  p.run(Millis(5000));
  EXPECT_FALSE(p.serving(A, 3)) << "B is alive on the interconnect: no takeover";
  EXPECT_FALSE(p.serving(B, 3));
  p.port(B).set_lost(false);
  ASSERT_TRUE(p.run_until([&] { return p.serving(B, 3) && p.serving(B, 4); }, Millis(3000)));
  EXPECT_EQ(p.record(3)->epoch, 2u) << "serving again takes a new epoch";
}

TEST(MonitorTest, SlowRenewalCountsAsFailed) {
  SimPair p(18);
  bring_up(p);
  p.port(A).delay_next_write_of(ownership_record_name(1), Millis(200));  // under io_timeout (250)
  p.run(Millis(600));
  EXPECT_TRUE(p.serving(A, 1));
  EXPECT_EQ(p.actions(A).count(Event::kFence), 0u);
  p.port(A).delay_next_write_of(ownership_record_name(1), Millis(300));  // over io_timeout
  p.run(Millis(600));
  EXPECT_EQ(p.actions(A).count(Event::kFence, 1), 1u);
  EXPECT_EQ(p.actions(A).count(Event::kFence, 2), 0u);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 1); }, Millis(3000)));
  EXPECT_EQ(p.record(1)->epoch, 2u);
}

TEST(MonitorTest, ReplayFailureDelaysServingAndIsRetried) {
  SimPair p(19);
  bring_up(p);
  p.actions(A).fail_take_overs = 3;
  p.kill(B);
  ASSERT_TRUE(p.run_until([&] { return p.serving(A, 3) && p.serving(A, 4); }, Millis(15'000)));
  EXPECT_EQ(p.actions(A).count(Event::kTakeOver, 3) + p.actions(A).count(Event::kTakeOver, 4),
            2u + 3u) << "two replays that worked, three that failed and were retried";
  EXPECT_EQ(p.record(3)->epoch, 2u) << "retries keep the epoch";
}

TEST(MonitorTest, SkewedClocksStillTakeOverSafely) {
  for (int64_t ppm : {-20'000, 20'000}) {  // 2 %: far worse than any real oscillator
    SCOPED_TRACE("B's clock rate " + std::to_string(ppm) + " ppm");
    SimPair p(20, ppm);
    bring_up(p);
    p.hang(A);
    ASSERT_TRUE(p.run_until([&] { return p.serving(B, 1) && p.serving(B, 2); }, Millis(10'000)));
    p.wake(A);
    p.run(Millis(2000));
    EXPECT_FALSE(p.serving(A, 1));
    EXPECT_EQ(p.record(1)->epoch, 2u);
  }
}

TEST(MonitorTest, StatusReportsStatesAndDegradedMode) {
  SimPair p(21);
  bring_up(p);
  p.kill(B);
  p.run(Millis(6000));
  const MonitorStatus s = p.monitor(A)->status();
  EXPECT_EQ(s.state, NodeState::kDegraded);
  EXPECT_TRUE(s.degraded);
  EXPECT_FALSE(s.partner_disk_alive);
  EXPECT_FALSE(s.interconnect_alive);
  EXPECT_GE(s.transitions, 4u);  // STARTING->NORMAL->PARTNER_DOWN->TAKEOVER->DEGRADED
  ASSERT_EQ(s.volumes.size(), 4u);
  for (const auto& v : s.volumes) {
    EXPECT_EQ(v.state, VolumeState::kServing);
    EXPECT_EQ(v.owner, kA);
  }
  EXPECT_STREQ(node_state_name(s.state), "DEGRADED");
  EXPECT_STREQ(volume_state_name(VolumeState::kGivingBack), "giving-back");
}

}  // namespace
}  // namespace hafs::membership::testing
