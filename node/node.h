// Node: one hafs server, composed once. It opens the volumes, recovers the NV log (and judges
// damage in it), starts mirroring to the partner and keeping the partner's mirror, wires the
// volume operations (fs::Filesystem) to the cache and the lease, and runs membership, which
// decides what the node serves. hafsd builds a Node from real parts (files, libfabric, the
// boot-time clock, a directory on the shared medium) and puts FUSE and the control socket in
// front of it; the whole-pair simulator (tests/sim) builds two from simulated parts and drives
// the same volume operations that the FUSE handlers call.
//
// Start order (Node::open): volumes, NV log recovery (a damaged log is judged by the ownership
// records), destager, mirror receiver and sender (the outdated-mirror mark is read first; damage
// near the end of the log is told by the partner's first HELLO), the volume operations, then
// membership. Nothing is served before membership decided (or, without membership, before every
// recovered record is on the medium).
// Stop order (Node::shutdown): destage everything while the leases are still renewed, stop
// membership, then mirroring, then the cache. Destroying a Node without shutdown() stops its
// threads and keeps what is staged (what a crash of the process keeps).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/fault.h"
#include "base/logger.h"
#include "base/status.h"
#include "fs/filesystem.h"
#include "fs/volume.h"
#include "interconnect/fabric.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "interconnect/transport.h"
#include "membership/clock.h"
#include "membership/mirror_mark.h"
#include "membership/monitor.h"
#include "membership/shared_disk.h"
#include "node/node_actions.h"
#include "nvcache/nvcache.h"
#include "tools/hafsd_config.h"

namespace hafs::node {

// What a Node runs on. Every pointer is borrowed and must outlive the Node.
struct NodeEnv {
  membership::Clock* clock = nullptr;              // membership's time (required with membership)
  membership::SharedDisk* disk = nullptr;          // required with membership
  // The path the data path's threads take to the membership disk (null: `disk`): the mirror
  // sender writes the outdated-mirror mark through it, the destager reads the ownership record
  // before each write to the medium. The simulator gives it one of its own, so that the faults
  // it draws for the tick's path do not depend on when a data-path thread ran.
  membership::SharedDisk* data_path_disk = nullptr;
  nvcache::Store* nvlog = nullptr;                 // required: a formatted NV log
  nvcache::Store* mirror = nullptr;                // required when mirrored: the partner's ring
  interconnect::TransportFactory* transport = nullptr;  // null: libfabric per the configuration
  FaultRegistry* faults = nullptr;                 // fault sites (may be null)
  // Serve although this node's outdated-mirror mark names a ring that is gone (hafsd
  // --accept-loss): the writes acknowledged without the mirror are lost with it.
  bool accept_loss = false;
  // true: the Node runs membership's tick on a thread of its own (hafsd). false: the owner calls
  // tick() (the simulator, which decides when time passes).
  bool tick_thread = true;
  // Formats the NV log anew (a damaged log the partner has covered); required to recover from
  // damage, may be null otherwise.
  std::function<Status(nvcache::Store&)> format_nvlog;
  // Called once when the node must stop (fatal()): another process runs with this node's id
  // (kBusy), or a staged record turned out damaged while running (kDataLoss). Called from the
  // tick or from a data-path thread: it must not block. The owner stops the node (hafsd signals
  // itself and exits 4 or 3); the partner then serves the volumes.
  std::function<void(const Status&)> on_fatal;
  // Called after every membership tick, on the membership thread, with what the monitor says
  // (hafsd: the systemd watchdog ping and STATUS). Must not block.
  std::function<void(const membership::MonitorStatus&)> on_tick;
};

class Node {
 public:
  // Builds and starts the node (see the start order above). Errors: kDataLoss for an NV log
  // whose acknowledged records cannot all be read back, or whose unmirrored writes are gone;
  // kBusy for a store held by another process; others for bad parts.
  static Result<std::unique_ptr<Node>> open(const tools::HafsdConfig& cfg, NodeEnv env, Logger log);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // The volume operations (what FUSE calls).
  fs::Filesystem& filesystem() { return *fs_; }
  const std::vector<fs::Volume*>& volumes() const { return volume_ptrs_; }
  nvcache::NvCache& cache() { return *cache_; }
  interconnect::MirrorSender* sender() { return sender_.get(); }
  interconnect::MirrorReceiver* receiver() { return receiver_.get(); }
  membership::Monitor* monitor() { return monitor_.get(); }
  const NodeActions* actions() const { return actions_.get(); }

  // What the data path tells membership: whether the partner was heard, whether the mirror is in
  // sync, whether the partner's mirror is marked outdated. Never waits for a data-path lock.
  membership::Observation observe() const;
  // One membership tick with this observation, then the epochs the interconnect presents and
  // requires. With tick_thread the Node's own thread calls these; otherwise the owner does.
  void tick(const membership::Observation& obs);
  // Without tick_thread: waits for a takeover replay or giveback destage still running; returns
  // whether there was one (then the next tick() picks its result up).
  bool wait_idle() { return actions_ && actions_->wait_idle(); }
  // Why the node must stop (see NodeEnv::on_fatal); OK while it need not.
  Status fatal() const;

  // The orderly stop: destages everything while the leases are still renewed, then stops
  // membership, mirroring and the cache. Returns the final destage's status (records that could
  // not be destaged stay in the NV log).
  Status shutdown();

 private:
  Node(const tools::HafsdConfig& cfg, NodeEnv env, Logger log);
  Status start();
  Status open_volumes();
  Status recover();
  Status start_mirroring();
  Status check_tail_with_partner(interconnect::TransportFactory& transport);
  Status start_membership();
  void stop_threads();  // membership, mirroring, cache; keeps what is staged
  void stop_membership_thread();
  void set_fatal(const Status& why);
  // Whether the ownership record on the disk still names this node at `epoch` (destage fence).
  bool record_names_us(uint32_t volume, uint64_t epoch) const;
  // The volume's ownership record of this pair as the data path's disk has it now: nullopt when
  // it was never written, or is corrupt or of another cluster; an error when it cannot be read.
  Result<std::optional<membership::OwnershipRecord>> read_ownership(uint32_t volume) const;
  Status check_still_owner_after_mark() const;
  // Rule 8 (docs/membership.md): refuses to start (kDataLoss) while a volume's ownership record
  // names this node with another NV log than the one it has (a new log, or a second process
  // with this node's id on another machine): that run's writes are in the old log and in the
  // partner's mirror of it, not here. --accept-loss overrides.
  Status check_run_ring() const;
  // The volumes whose ownership record on the disk names this node, with their epochs; nullopt
  // when a record cannot be read (the first tick tells the receiver then).
  // What the mirror receiver needs from the ownership records before it accepts its partner
  // (MirrorReceiver::set_held_epochs): the volumes this node holds, with their epochs, and the
  // ring tags the partner's runs are staged in. nullopt when a record cannot be read.
  struct Holders {
    std::vector<std::pair<uint32_t, uint64_t>> held;
    std::vector<uint32_t> partner_rings;
    bool replay_pending = false;  // a record names this node with its replay of the partner's log pending
  };
  std::optional<Holders> holders_on_disk() const;

  const tools::HafsdConfig cfg_;
  const NodeEnv env_;
  const Logger log_;
  uint64_t cluster_id_ = 0;

  std::vector<std::unique_ptr<fs::Volume>> volumes_;
  std::vector<fs::Volume*> volume_ptrs_;
  std::unique_ptr<fs::VolumeTarget> target_;
  nvcache::RecoveryReport report_;
  std::unique_ptr<nvcache::NvCache> cache_;
  std::unique_ptr<interconnect::TransportFactory> own_transport_;  // libfabric, when env has none
  std::unique_ptr<interconnect::MirrorReceiver> receiver_;
  std::unique_ptr<interconnect::MirrorSender> sender_;
  std::unique_ptr<membership::MirrorMark> mirror_mark_;
  std::unique_ptr<fs::Filesystem> fs_;
  std::unique_ptr<FaultyDisk> faulty_disk_;  // the shared disk with the membership fault sites
  std::unique_ptr<NodeActions> actions_;
  std::unique_ptr<membership::Monitor> monitor_;
  mutable std::mutex fatal_mu_;
  Status fatal_;  // GUARDED_BY(fatal_mu_)

  // The membership thread (tick_thread).
  std::thread membership_thread_;
  std::mutex membership_mu_;
  std::condition_variable membership_cv_;
  bool membership_stop_ = false;  // GUARDED_BY(membership_mu_)
  bool membership_wake_ = false;  // GUARDED_BY(membership_mu_): tick now (a background action ended)
  bool stopped_ = false;
};

}  // namespace hafs::node
