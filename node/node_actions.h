// What membership's decisions do in a Node: the membership::Actions of a node, carried out with
// nvcache, interconnect and fs (DESIGN.md: membership decides, the composition root acts).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fault.h"
#include "base/logger.h"
#include "fs/filesystem.h"
#include "fs/volume.h"
#include "interconnect/auth.h"
#include "tools/hafsd_config.h"
#include "interconnect/mirror_receiver.h"
#include "interconnect/mirror_sender.h"
#include "membership/actions.h"
#include "membership/shared_disk.h"
#include "nvcache/nvcache.h"

namespace hafs::node {

// The pair's cluster id, which every membership record carries (a record of another cluster is
// never trusted): the first 8 bytes of HMAC(interconnect key, "hafs-cluster:" + membership.cluster).
// The two nodes of a pair share the key; two pairs pointed at one directory by mistake do not,
// or are told apart by membership.cluster.
Result<uint64_t> cluster_id_of(const tools::HafsdConfig& cfg);

// The shared disk as hafsd uses it: the records, with the membership fault sites in front of
// the writes (membership.heartbeat_write for heartbeats, lease.before_write for ownership
// records), so that a drill can stop a node's disk heartbeat or fail its renewals.
class FaultyDisk final : public membership::SharedDisk {
 public:
  FaultyDisk(membership::SharedDisk& disk, FaultRegistry* faults) : disk_(disk), faults_(faults) {}
  Status read(const std::string& name, std::span<std::byte, membership::kRecordBlockBytes> out) override {
    return disk_.read(name, out);
  }
  Status write(const std::string& name, std::span<const std::byte, membership::kRecordBlockBytes> data) override;

 private:
  membership::SharedDisk& disk_;
  FaultRegistry* const faults_;
};

// The long actions — a takeover's replay and destage, a giveback's destage — run on a thread
// of their own, one per volume, and report kInProgress until they have finished: the tick thread
// must stay free to renew the leases (a 256 MiB replay to an ext4 medium takes longer than a
// lease). When one finishes it calls the wake hook, so that the next tick comes at once.
class NodeActions : public membership::Actions {
 public:
  // Every pointer is owned by hafsd's main and outlives this object. `mirror` (the partner's
  // ring, kept by this node's mirror receiver), `sender` and `faults` may be null. `faults` is
  // hafsd's registry: the takeover replay writes through the destage fault sites like the destager.
  // `receiver` (the mirror's, null without mirroring) is what a takeover freezes.
  NodeActions(uint32_t node_id, std::vector<fs::Volume*> volumes, fs::Filesystem* filesystem,
              nvcache::NvCache* cache, nvcache::DestageTarget* target, nvcache::Store* mirror,
              interconnect::MirrorSender* sender, interconnect::MirrorReceiver* receiver,
              Logger logger, FaultRegistry* faults = nullptr);

  void fence(membership::VolumeId volume) override;
  Status take_over(membership::VolumeId volume, uint64_t epoch, const membership::TakeoverPlan& plan,
                   uint64_t* replay_next_lsn) override;
  Status freeze_partner_mirror() override;
  void thaw_partner_mirror() override;
  void serve(membership::VolumeId volume, uint64_t epoch) override;
  Status release(membership::VolumeId volume) override;
  uint64_t discard(membership::VolumeId volume, uint64_t below_lsn) override;
  void set_degraded(bool degraded) override;
  ~NodeActions() override;

  // Called (from a job's thread) when a background action finished; hafsd ticks the monitor.
  void set_wake(std::function<void()> wake) { wake_ = std::move(wake); }
  // Waits for the background actions still running (shutdown, after the last tick).
  void wait_for_jobs();
  // Waits until every background action has finished, leaving their results for the next tick
  // (the simulator, which lets no simulated time pass while a replay runs). Returns whether one
  // was still running. Tick thread only.
  bool wait_idle();

  // The last takeover of a partner's volume and how long each phase took (for status).
  nlohmann::json last_takeover() const;

 private:
  // One background action of a volume.
  struct Job {
    enum Kind { kTakeOver, kRelease } kind;
    uint64_t epoch;
    std::thread thread;
    std::atomic<bool> done{false};
    Status result;       // written by the thread before `done`
    uint64_t value = 0;  // ... and what the action reports with it (a replay's next LSN)
  };
  fs::Volume* find(membership::VolumeId id) const;
  // Starts `work` for `id` in the background, or reports on the job already there: kInProgress
  // while it runs; its result, once, when it is the same action (kind and epoch); a finished job
  // of another action is forgotten (its result is stale) and `work` starts.
  // `work` may report a value (Job::value), handed back through `value` with its result.
  Status in_background(membership::VolumeId id, Job::Kind kind, uint64_t epoch,
                       std::function<Status(uint64_t* value)> work, uint64_t* value = nullptr);
  Status take_over_now(fs::Volume* v, uint64_t epoch, const membership::TakeoverPlan& plan,
                       uint64_t* replay_next_lsn);

  const uint32_t node_id_;
  const std::vector<fs::Volume*> volumes_;
  fs::Filesystem* const fs_;
  nvcache::NvCache* const cache_;
  nvcache::DestageTarget* const target_;
  nvcache::Store* const mirror_;
  interconnect::MirrorSender* const sender_;
  interconnect::MirrorReceiver* const receiver_;
  const Logger log_;
  FaultRegistry* const faults_;
  mutable std::mutex mu_;
  nlohmann::json last_takeover_;  // GUARDED_BY(mu_)
  std::function<void()> wake_;
  std::mutex idle_mu_;
  std::condition_variable idle_cv_;  // a job finished
  std::map<membership::VolumeId, std::unique_ptr<Job>> jobs_;  // the tick thread's
};

}  // namespace hafs::node
