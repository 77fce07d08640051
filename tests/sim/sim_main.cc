// hafs-sim: runs the whole-pair simulator (tests/sim/pair_sim.h) for the seeds given, or for N
// random ones, and prints one line per seed; a failing seed prints the command that replays it.
// Exit status: 0 when every run kept its invariants, 1 otherwise, 2 for bad arguments.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <random>

#include "tests/sim/pair_sim.h"
#include "tools/cli.h"

int main(int argc, char** argv) {
  CLI::App app{"hafs-sim: the whole-pair simulator (docs/reliability.md)"};
  std::vector<uint64_t> seeds;
  uint32_t random_runs = 0, steps = 600;
  bool verbose = false, flips = false;
  app.add_option("--seed", seeds, "run this seed (repeatable)");
  app.add_option("--random", random_runs, "run this many random seeds");
  app.add_option("--steps", steps, "steps of 100 ms per run (default 600)");
  app.add_flag("--flips", flips, "also flip bytes in NV logs and mirrors");
  app.add_flag("-v,--verbose", verbose, "print the schedule and the nodes' warnings");
  HAFS_CLI_PARSE(app, argc, argv);
  if (seeds.empty() && random_runs == 0) {
    std::fprintf(stderr, "hafs-sim: give --seed S or --random N\n");
    return 2;
  }
  std::random_device rd;
  for (uint32_t i = 0; i < random_runs; ++i) seeds.push_back((uint64_t{rd()} << 32) | rd());
  int failed = 0;
  double simulated_s = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t seed : seeds) {
    hafs::sim::SimOptions opt;
    opt.seed = seed;
    opt.steps = steps;
    opt.verbose = verbose;
    if (flips) opt.faults.flip = 0.002;
    hafs::sim::PairSim sim(opt);
    const auto r = sim.run();
    simulated_s += r.steps * 0.1;
    std::printf("seed %" PRIu64 ": %s: %s\n", seed, r.ok ? "ok" : "FAILED", r.summary().c_str());
    for (const auto& u : r.unavailable) std::printf("  unavailable at the end, with a reason: %s\n", u.c_str());
    if (!r.ok) {
      ++failed;
      std::printf("  %s\n  replay: hafs-sim --seed %" PRIu64 " --steps %u%s -v\n", r.violation.c_str(), seed, steps,
                  flips ? " --flips" : "");
      if (!verbose)
        for (const auto& h : r.history) std::printf("    %s\n", h.c_str());
    }
    std::fflush(stdout);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu runs, %d failed; %.0f simulated s in %.0f s (%.0f simulated s per hour)\n", seeds.size(),
              failed, simulated_s, wall, wall > 0 ? simulated_s / wall * 3600 : 0);
  return failed ? 1 : 0;
}
