// The whole-pair simulator in CI (label sim): a fixed set of seeds with every fault kind, and
// every seed that ever failed (kept below with what it found). HAFS_SEED=S runs that seed alone.
#include <gtest/gtest.h>

#include <cstdlib>

#include "tests/sim/pair_sim.h"

namespace hafs::sim {
namespace {

SimResult run_seed(uint64_t seed, uint32_t steps, FaultMix faults) {
  SimOptions opt;
  opt.seed = seed;
  opt.steps = steps;
  opt.faults = faults;
  std::printf("seed %llu (replay: hafs-sim --seed %llu --steps %u%s -v)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed), steps, faults.flip > 0 ? " --flips" : "");
  PairSim sim(opt);
  SimResult r = sim.run();
  std::printf("%s\n", r.summary().c_str());
  for (const auto& u : r.unavailable) std::printf("unavailable at the end, with a reason: %s\n", u.c_str());
  return r;
}

TEST(SimTest, WithoutFaultsEveryWriteReadsBackAndNothingMoves) {
  SimResult r = run_seed(1, 200, FaultMix::none());
  EXPECT_TRUE(r.ok) << r.violation;
  EXPECT_GT(r.acked_writes, 100u);
  EXPECT_EQ(r.failed_writes, 0u);
  EXPECT_GT(r.reads_checked, 10u);
  EXPECT_EQ(r.takeovers, 0u);
  EXPECT_TRUE(r.unavailable.empty());
}

class SimSeeds : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SimSeeds, EveryFaultKindKeepsTheInvariants) {
  uint64_t seed = GetParam();
  if (const char* env = std::getenv("HAFS_SEED"); env && *env) seed = std::strtoull(env, nullptr, 0);
  FaultMix faults;
  faults.flip = 0.001;
  SimResult r = run_seed(seed, 600, faults);
  EXPECT_TRUE(r.ok) << r.violation;
  EXPECT_GT(r.acked_writes, 0u);
}

INSTANTIATE_TEST_SUITE_P(Fixed, SimSeeds, ::testing::Values(11, 12, 13, 14, 15, 16));

}  // namespace
}  // namespace hafs::sim
