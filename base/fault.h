// Named fault sites, armed at run time (hafsctl fault arm, tests, the randomized checker).
//
// Every site is one row of kFaultSites below; its name is stable (scripts and docs use it).
// A site can crash the process (SIGKILL to self), delay, or fail with an errno, once or with a
// probability drawn from a seeded generator. An unarmed site costs one relaxed atomic load.
// A FaultRegistry belongs to one node: two nodes in one process have two registries.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace hafs {

enum class FaultSite : uint8_t {
  kLogAfterReserve,       // a record's ring space is reserved, nothing written yet
  kLogAfterFill,          // record bytes written to the store, not yet persisted
  kLogAfterLocalPersist,  // record persisted locally, not yet acknowledged
  kLogHeaderWrite,        // about to write a ring header copy (trim, open)
  kDestageBeforeWrite,    // destager about to write an object's extents to the medium
  kDestageBeforeSync,     // extents written to the medium, not yet synced
  kDestageAfterSync,      // medium synced, ring not yet trimmed
  kMirrorAfterRemoteWrite,  // sender: record bytes written into the partner, COMMIT not sent
  kMirrorBeforeAck,         // receiver: mirror range persisted, ACK not sent
  kInterconnectCut,         // sender and receiver loops: fail = drop the connection (cut)
  kHeartbeatWrite,          // membership: before this node writes its disk heartbeat
  kLeaseBeforeWrite,        // membership: before this node writes an ownership record
  kTakeoverMidReplay,       // takeover: the partner's records applied, own ones not yet
  kMembershipTick,          // hafsd's membership thread, before each tick (delay = a stalled tick)
  kMetaStamp,               // logged metadata: before the volume's applied stamp is written
  kCount,
};

struct FaultSiteInfo {
  FaultSite site;
  const char* name;
  const char* what;
};

inline constexpr std::array<FaultSiteInfo, static_cast<size_t>(FaultSite::kCount)> kFaultSites{{
    {FaultSite::kLogAfterReserve, "log.after_reserve", "ring space reserved, record not written"},
    {FaultSite::kLogAfterFill, "log.after_fill", "record written, not persisted"},
    {FaultSite::kLogAfterLocalPersist, "log.after_local_persist",
     "record persisted locally, not acknowledged"},
    {FaultSite::kLogHeaderWrite, "log.header_write", "before a ring header copy is written"},
    {FaultSite::kDestageBeforeWrite, "destage.before_write", "before extents go to the medium"},
    {FaultSite::kDestageBeforeSync, "destage.before_sync", "extents written, medium not synced"},
    {FaultSite::kDestageAfterSync, "destage.after_sync", "medium synced, ring not trimmed"},
    {FaultSite::kMirrorAfterRemoteWrite, "mirror.after_remote_write",
     "record bytes written into the partner's mirror, COMMIT not sent"},
    {FaultSite::kMirrorBeforeAck, "mirror.before_ack", "mirror range persisted, ACK not sent"},
    {FaultSite::kInterconnectCut, "interconnect.cut",
     "each turn of the mirror sender's and receiver's loops: fail drops the connection both ways "
     "(fail:ECONNRESET,always = a cut interconnect until cleared), delay slows it"},
    {FaultSite::kHeartbeatWrite, "membership.heartbeat_write",
     "before the disk heartbeat write (fail:EIO,always = the heartbeat stops, the node goes on)"},
    {FaultSite::kLeaseBeforeWrite, "lease.before_write",
     "before an ownership record write: renewal, claim, hand-over (fail = the write fails)"},
    {FaultSite::kTakeoverMidReplay, "takeover.mid_replay",
     "takeover: the partner's records are on the medium, this node's own not yet destaged"},
    {FaultSite::kMembershipTick, "membership.tick",
     "hafsd's membership thread, before each tick (delay:MS = a tick stalled that long)"},
    {FaultSite::kMetaStamp, "meta.stamp",
     "a logged metadata operation executed and appended, its volume's applied stamp not written "
     "(fail = the stamp write fails: the volume's metadata is synced from then on)"},
}};

std::optional<FaultSite> fault_site_by_name(std::string_view name);
const char* fault_site_name(FaultSite site);

enum class FaultAction : uint8_t {
  kCrash,  // SIGKILL to self: a crash-stop at exactly this point
  kDelay,  // sleep delay_ms, then go on
  kFail,   // the operation fails with errno_value
};

struct FaultSpec {
  FaultAction action = FaultAction::kFail;
  uint32_t delay_ms = 0;
  int errno_value = EIO;
  bool once = true;            // disarm after the first firing
  double probability = 1.0;    // chance of firing at each hit, drawn from the seeded generator
};

// Parses "crash", "delay:MS", "fail:EIO" (or fail:ENOSPC, fail:5); clear error otherwise.
Result<FaultSpec> parse_fault_action(std::string_view text);

// Parses "SITE=ACTION[,always][,p=PROBABILITY]", e.g. "destage.before_write=fail:EIO,always".
// Without "always" a fault fires once.
struct FaultArm {
  FaultSite site;
  FaultSpec spec;
};
Result<FaultArm> parse_fault_arm(std::string_view text);

class FaultRegistry {
 public:
  explicit FaultRegistry(uint64_t seed = 0) : rng_(seed) {}

  void arm(FaultSite site, const FaultSpec& spec);
  void clear(FaultSite site);
  void clear_all();

  // The hot path: nothing but an atomic load while the site is unarmed. Returns the failure a
  // kFail fault injects, and OK otherwise (a kDelay fault sleeps first; kCrash never returns).
  Status hit(FaultSite site) {
    if (!armed_[static_cast<size_t>(site)].load(std::memory_order_relaxed)) return Status::ok();
    return fire(site);
  }

  struct ArmedFault {
    FaultSite site;
    FaultSpec spec;
    uint64_t fired;
  };
  std::vector<ArmedFault> armed() const;
  uint64_t fired_count(FaultSite site) const;

 private:
  Status fire(FaultSite site);

  static constexpr size_t kN = static_cast<size_t>(FaultSite::kCount);
  std::array<std::atomic<bool>, kN> armed_{};
  mutable std::mutex mu_;                 // guards specs_, fired_, rng_
  std::array<FaultSpec, kN> specs_{};
  std::array<uint64_t, kN> fired_{};
  std::mt19937_64 rng_;
};

}  // namespace hafs
