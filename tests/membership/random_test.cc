// Randomized simulation (in the spirit of TigerBeetle's VOPR): two Monitors, one SimDisk,
// thousands of ticks of random kills, restarts, hangs, interconnect cuts, disk faults (failed,
// torn, slow writes, lost paths), failed replays, clock drift and giveback requests. After every
// tick SimPair::check_invariants asserts I2: no instant with two nodes serving one volume on
// unexpired leases; epochs never go down; an epoch is served by one node only. At the end the
// world heals and every volume with a readable record must be served by exactly one node.
//
// Each run prints its seed; HAFS_SEED=<seed> replays it (HAFS_SIM_SECONDS sets its length,
// HAFS_SIM_LOG=1 logs every transition of both nodes).
#include <gtest/gtest.h>

#include <cinttypes>
#include <cstdio>
#include <random>

#include "tests/membership/sim_pair.h"

namespace hafs::membership::testing {
namespace {

struct Schedule {
  Millis until{0};  // the current disturbance ends then (0: none)
};

void run_one(uint64_t seed, Millis sim_time) {
  std::mt19937_64 rng(seed);
  auto chance = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto between = [&](int64_t lo, int64_t hi) {
    return Millis(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
  };
  const int64_t ppm = std::uniform_int_distribution<int64_t>(-5000, 5000)(rng);
  SimPair p(seed, ppm, std::getenv("HAFS_SIM_LOG") ? LogLevel::kInfo : LogLevel::kError);
  p.set_random_order(true);
  for (int i = 0; i < 2; ++i) {
    p.config(i).auto_giveback = chance(0.7);
    p.config(i).giveback_delay_ms = 5000;
  }
  p.start_both();

  std::array<Millis, 2> down_until{}, hang_until{}, fault_until{}, lost_until{};
  Millis cut_until{0};
  uint64_t kills = 0, hangs = 0, cuts = 0, faults = 0, losses = 0;
  for (Millis t{0}; t < sim_time; t += SimPair::kStep) {
    const Millis now = p.elapsed();
    for (int i = 0; i < 2; ++i) {
      if (!p.running(i) && now >= down_until[i]) {
        p.start(i);
        if (::testing::Test::HasFatalFailure()) return;
      } else if (p.running(i) && !p.hung(i) && chance(0.0004)) {
        p.kill(i);
        ++kills;
        down_until[i] = now + between(500, 15'000);
      }
      if (p.hung(i) && now >= hang_until[i]) p.wake(i);
      else if (p.running(i) && !p.hung(i) && chance(0.0004)) {
        p.hang(i);
        ++hangs;
        hang_until[i] = now + between(100, 8000);
      }
      if (fault_until[i].count() && now >= fault_until[i]) {
        p.port(i).set_faults(SimDiskFaults{});
        fault_until[i] = Millis(0);
      } else if (!fault_until[i].count() && chance(0.0005)) {
        SimDiskFaults f;
        f.write_fail_p = std::uniform_real_distribution<double>(0, 0.3)(rng);
        f.write_tear_p = std::uniform_real_distribution<double>(0, 0.02)(rng);
        f.read_fail_p = std::uniform_real_distribution<double>(0, 0.2)(rng);
        f.delay_p = std::uniform_real_distribution<double>(0, 0.3)(rng);
        f.delay_ms_max = static_cast<uint32_t>(between(1, 200).count());
        p.port(i).set_faults(f);
        ++faults;
        fault_until[i] = now + between(200, 10'000);
      }
      if (lost_until[i].count() && now >= lost_until[i]) {
        p.port(i).set_lost(false);
        lost_until[i] = Millis(0);
      } else if (!lost_until[i].count() && chance(0.0002)) {
        p.port(i).set_lost(true);
        ++losses;
        lost_until[i] = now + between(100, 6000);
      }
      if (p.running(i) && chance(0.0003)) p.actions(i).fail_take_overs = 2;
      if (p.running(i) && chance(0.0005)) {
        const VolumeId v = i == 0 ? 3 + (rng() & 1) : 1 + (rng() & 1);
        (void)p.monitor(i)->request_giveback(v);  // refused or deferred: both are fine here
      }
    }
    if (cut_until.count() && now >= cut_until) {
      p.set_cut(false);
      cut_until = Millis(0);
    } else if (!cut_until.count() && chance(0.0003)) {
      p.set_cut(true);
      ++cuts;
      cut_until = now + between(500, 20'000);
    }
    if (chance(0.002)) p.set_in_sync(chance(0.6));
    p.run(SimPair::kStep);
    if (::testing::Test::HasFatalFailure()) return;
  }

  // Heal everything; the pair must settle with every readable volume served exactly once.
  for (int i = 0; i < 2; ++i) {
    if (!p.running(i)) p.start(i);
    p.wake(i);
    p.port(i).set_faults(SimDiskFaults{});
    p.port(i).set_lost(false);
    p.actions(i).fail_take_overs = 0;
  }
  p.set_cut(false);
  p.set_in_sync(true);
  p.run(Millis(30'000));
  if (::testing::Test::HasFatalFailure()) return;
  int stuck = 0;
  for (VolumeId v : {1u, 2u, 3u, 4u}) {
    if (!p.record(v)) {  // torn by a writer that died before rewriting it: needs the operator
      ++stuck;
      continue;
    }
    EXPECT_EQ(int{p.serving(0, v)} + int{p.serving(1, v)}, 1)
        << "volume " << v << " not served after healing (record owner " << p.record(v)->owner
        << " epoch " << p.record(v)->epoch << ")";
  }
  EXPECT_EQ(p.state(0), p.state(1));
  std::printf("seed %" PRIu64 ": %" PRId64 " s simulated, skew %" PRId64 " ppm, %" PRIu64
              " kills, %" PRIu64 " hangs, %" PRIu64 " cuts, %" PRIu64 " fault periods, %" PRIu64
              " lost paths, %d corrupt records left, final epochs %" PRIu64 "/%" PRIu64
              "/%" PRIu64 "/%" PRIu64 "\n",
              seed, sim_time.count() / 1000, ppm, kills, hangs, cuts, faults, losses, stuck,
              p.record(1) ? p.record(1)->epoch : 0, p.record(2) ? p.record(2)->epoch : 0,
              p.record(3) ? p.record(3)->epoch : 0, p.record(4) ? p.record(4)->epoch : 0);
}

TEST(MembershipRandomTest, NoTwoServersAndEpochsOnlyRiseUnderRandomFaults) {
  const char* env = std::getenv("HAFS_SEED");
  const char* secs = std::getenv("HAFS_SIM_SECONDS");
  const Millis sim_time(1000 * (secs ? std::strtoll(secs, nullptr, 0) : 1200));
  const int runs = env ? 1 : 8;
  std::random_device rd;
  for (int r = 0; r < runs; ++r) {
    const uint64_t seed = test_seed((uint64_t{rd()} << 32) | rd());
    std::printf("membership simulation seed %" PRIu64 " (replay with HAFS_SEED=%" PRIu64 ")\n",
                seed, seed);
    std::fflush(stdout);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with HAFS_SEED=" +
                 std::to_string(seed) + ")");
    run_one(seed, sim_time);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace hafs::membership::testing
