// PairSim: the whole HA pair in one process. Two node::Nodes — the same composition hafsd runs —
// built from simulated parts: a SimClock each, one SimDisk for the membership records, a MemStore
// NV log and mirror each, the LoopbackNetwork for the interconnect, and a shared medium (a
// scratch directory both nodes' volumes open). One seeded schedule decides, step by step (100 ms
// of simulated time), which faults hit and which client operations run; clients call the FUSE
// handlers of whichever node serves a volume (sometimes of a node that no longer does), and a
// model records what was acknowledged. Invariants are checked after every step.
//
// Determinism: the schedule (faults, operations, their order, simulated time) comes from the
// seed alone; the simulator waits for each operation and each takeover or giveback job before
// the next step. The data path's own threads (the destager, the mirror's progress threads) run in
// real time, so the bytes of two runs of one seed can differ in when a destage happened; a seed
// that failed replays its schedule exactly, and in practice its failure.
//
// Faults, freely combined: crash and restart of either node (restart order random), pauses of
// any length (dense around the lease; the clock stops in some, as in a suspended VM), interconnect
// cuts, failing and slow membership-disk I/O, failing medium writes (EIO, ENOSPC), byte flips in
// an NV log or a mirror, a second process with a node's identity (its twin: another machine with
// a fresh NV log, the same membership disk and partner).
// Invariants: an acknowledged write reads back (its newest acknowledged value, or that of a write
// that failed after it) from the node serving the volume; never two nodes serving one volume in
// one epoch; epochs never go backwards; at the end, with the faults healed, every volume is
// served or some node says why not.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/fault.h"
#include "interconnect/loopback_transport.h"
#include "membership/clock.h"
#include "membership/sim_disk.h"
#include "node/node.h"
#include "nvcache/store.h"
#include "tools/hafsd_config.h"

namespace hafs::sim {

// What kinds of fault a run draws from, and how often (chance per 100 ms step).
struct FaultMix {
  double crash = 0.004;
  double pause = 0.004;
  double cut = 0.003;
  double disk = 0.002;      // a spell of failing or slow membership-disk I/O
  double medium = 0.002;    // a spell of failing medium writes (EIO or ENOSPC)
  double flip = 0.0;        // a byte flip in a node's NV log or its mirror of the partner's
  double twin = 0.0005;     // a second process starts with a node's identity (another machine)
  static FaultMix none() { return {0, 0, 0, 0, 0, 0, 0}; }
};

struct SimOptions {
  uint64_t seed = 1;
  uint32_t steps = 600;             // 100 ms each
  FaultMix faults;
  uint32_t heal_steps = 400;        // fault-free steps at the end before the final check
  bool verbose = false;             // print the schedule as it runs
  uint32_t silence_limit_ms = 400;  // interconnect.silence_limit_ms (real time)
};

struct SimResult {
  bool ok = true;
  std::string violation;            // the first invariant that failed, with its step
  uint64_t steps = 0;
  uint64_t acked_writes = 0, failed_writes = 0, reads_checked = 0;
  uint64_t crashes = 0, restarts = 0, failed_restarts = 0, pauses = 0, cuts = 0, flips = 0;
  uint64_t self_stops = 0;          // nodes that stopped themselves (damage found, identity taken)
  uint64_t twins = 0;               // second processes started with a node's identity
  uint64_t takeovers = 0;           // epochs that changed owner
  std::vector<std::string> unavailable;  // volumes not served at the end, with the reason told
  // The schedule's last events before a violation (faults, restarts, owner changes), for a run
  // whose replay does not fail again (docs/reliability.md, "Determinism and its limit").
  std::vector<std::string> history;
  std::string summary() const;
};

class PairSim {
 public:
  explicit PairSim(SimOptions options);
  ~PairSim();
  SimResult run();

  // Scripted scenarios (a test drives the steps itself; no random faults are drawn).
  void start();
  void steps(uint32_t n);
  void pause(uint32_t node, uint32_t ms, bool clock_stops);
  void resume(uint32_t node);    // ends a pause now (between steps: before the node's next tick)
  void kill(uint32_t node);      // kill -9; stays down until restart()
  bool restart(uint32_t node);   // false: the start was refused (its reason is kept for the
                                 // check); the node then stays down until restart() again
  // Flips a payload byte of the record `from_end` records before the end of `node`'s NV log (or
  // of its mirror of the partner's). False when there is no such record.
  bool flip_record(uint32_t node, bool mirror, uint32_t from_end);
  // A client write of `len` bytes at `off` through `node`'s handlers; returns the errno (0:
  // acknowledged) and records it in the model.
  int write(uint32_t node, uint32_t volume, uint32_t file, uint32_t off, uint32_t len);
  // Reads the file through the serving node and checks it against the model (result().ok).
  void check(uint32_t volume, uint32_t file);
  node::Node* node(uint32_t id);  // null while down
  FaultRegistry& faults(uint32_t id);
  uint32_t owner(uint32_t volume);  // in the ownership record on the disk; 0: none
  uint64_t epoch(uint32_t volume);  // in the ownership record on the disk; 0: none
  bool replay_pending(uint32_t volume);  // the ownership record says its owner's replay is pending
  // The next write of `volume`'s ownership record by `node` fails (its renewal: a self-fence).
  void fail_next_record_write(uint32_t node, uint32_t volume);
  // Starts a twin of `node`: another process with its identity, on another machine (a fresh NV
  // log and mirror, its own clock and address), the same membership disk and partner. False
  // when it refused to start. It runs until it stops itself, or until stop_twin().
  bool start_twin(uint32_t node);
  void stop_twin();
  node::Node* twin();  // null when there is none
  const SimResult& result() const { return result_; }

 private:
  struct SimNode;
  struct FileModel;

  // One step: faults, membership ticks, client operations, invariants.
  void step(bool faults_on);
  void inject_faults();
  void crash(SimNode& n, const std::string& why);
  void stop_node(SimNode& n, const std::string& why);
  bool start_node(SimNode& n);
  void tick(SimNode& n);
  void client_write();
  int write_on(SimNode& n, uint32_t volume, uint32_t file, uint32_t off, uint32_t len);
  void client_read(uint32_t volume, uint32_t file);
  void check_invariants();
  void settle_links();
  void final_check();
  void flip_byte(SimNode& n);
  std::unique_ptr<SimNode> make_node(uint32_t id, bool twin);
  // Every process up now, twin included.
  std::vector<SimNode*> processes();

  // The node that serves `volume` now: the owner in the ownership record, if it is up and has
  // the volume in its tree. Null when there is none.
  SimNode* server_of(uint32_t volume);
  bool can_talk(const SimNode& a, const SimNode& b) const;
  SimNode& partner_of(const SimNode& n);
  std::string file_name(uint32_t file) const;
  void violation(const std::string& what);
  void note(const std::string& what);
  double chance() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }

  const SimOptions opt_;
  std::mt19937_64 rng_;
  SimResult result_;
  std::filesystem::path dir_;  // the medium: one directory per volume
  membership::SimDisk disk_;
  std::mutex disk_mu_;         // the SimDisk is not thread safe; mirror marks come from senders
  interconnect::LoopbackNetwork network_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::unique_ptr<SimNode> twin_;  // a second process with nodes_[twin_->id - 1]'s identity
  uint64_t twin_until_ = 0;        // ... killed by its operator at this step
  std::map<std::pair<uint32_t, uint32_t>, FileModel> files_;  // (volume, file) -> model
  std::map<uint32_t, uint64_t> last_epoch_;                    // per volume: newest epoch seen
  std::map<uint32_t, uint32_t> last_owner_;
  uint64_t now_step_ = 0;
  uint32_t cut_until_ = 0;     // the interconnect is cut until this step
  uint8_t next_value_ = 1;
  bool settle_needed_ = false;  // a link may come up: wait for the mirrors before the next step
  std::deque<std::string> recent_;  // the last notes, for SimResult::history
};

}  // namespace hafs::sim
