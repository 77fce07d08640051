// The boundary between membership and the composition root (tools/hafsd).
//
// membership decides; it never acts. Each tick the composition root hands the Monitor an
// Observation (what only it can see: the interconnect), and the Monitor calls back through
// Actions for everything that touches data (nvcache, interconnect, fs). The contract of every
// action is in docs/membership.md ("The Actions contract"); the short form is below.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "membership/records.h"

namespace hafs::membership {

// What the composition root saw since the last tick. Level-triggered: the Monitor never needs
// to see a particular edge, so a value may be sampled at any time.
struct Observation {
  // The partner's interconnect heartbeats were heard within the interconnect's silence limit.
  bool interconnect_alive = false;
  // Nothing waits to be resynced in either direction: the mirrors have caught up and
  // mirroring is synchronous again. Read only while the interconnect is alive.
  bool mirror_in_sync = true;
  // This node has marked its partner's mirror of its NV log outdated (it acknowledged writes the
  // mirror lacks, I7). Without the mark every acknowledged record of ours is in that mirror, so
  // what a new owner's replay did not read was never acknowledged and may be dropped.
  bool own_mirror_outdated = false;
};

// What a takeover applies besides this node's own staged records of the volume.
struct TakeoverPlan {
  // Apply the records of this node's NV log (its mirror here) — none when kNoNode — ...
  NodeId replay_node = kNoNode;
  // ... of the volume with an epoch in [replay_from_epoch, replay_epoch]: the partner's run of
  // ownership the claim replaced (OwnershipRecord::run_epoch). Records of epochs before the run
  // were applied before (by the takeover that ended the partner's previous run) and re-applying
  // them could roll back newer writes (I8); within the run there was no other writer, so
  // applying them all, in LSN order, ends at the partner's last state.
  uint64_t replay_from_epoch = 0;
  uint64_t replay_epoch = 0;
  // An operator accepted the loss: a damaged mirror is applied up to the damage.
  bool accept_damage = false;
  // This node's own staged records of the volume go to the medium after the replay, those of
  // epochs from here on only (its current run, OwnershipRecord::run_epoch). Older ones are of an
  // earlier run of this node that the partner took over and replayed: applying them after the
  // partner's records would roll back what it served since (rule 9). A restart brings them back
  // from the NV log, so the in-memory discard of rule 4 does not cover this.
  uint64_t own_from_epoch = 0;
};

// Called on the thread that calls Monitor::tick, from inside tick. An implementation must not
// call back into the Monitor (tick is not reentrant). Every call is made at most once per
// change: fence(v) once per loss of v, serve(v, e) once per epoch, and so on.
class Actions {
 public:
  virtual ~Actions() = default;

  // Stop acknowledging and destaging for `volume` NOW, before returning. Staged records stay
  // where they are (take_over or discard decides their fate later). Cannot fail.
  virtual void fence(VolumeId volume) = 0;

  // This node now owns `volume` at `epoch` (already on the medium). Apply to the storage
  // medium every staged record of the volume this node holds — the partner's mirror after a
  // takeover, its own NV log after a restart or a self-fence — sync, and return OK only then
  // (I3). Records of an older epoch are applied here and nowhere else. Not yet serving.
  // An error is retried on the next tick; the volume is not served meanwhile.
  // It must not hold the tick thread for long (the Monitor renews leases on it): work that takes
  // longer runs in the background and the call returns kInProgress; the Monitor renews the lease
  // and calls again next tick, until OK or an error.
  // `plan` says which of the partner's mirrored records to apply; on OK, `*replay_next_lsn`
  // receives the LSN below which the replay read the partner's ring (0 without a replay): the
  // ownership record keeps it, and the partner discards only its records below it.
  virtual Status take_over(VolumeId volume, uint64_t epoch, const TakeoverPlan& plan,
                           uint64_t* replay_next_lsn) = 0;

  // Before a claim on a volume whose takeover replays the partner's mirror (I8): stop the
  // partner's mirror from changing — drop the partner's mirror connection and refuse it — and
  // return OK only once nothing the partner sends can land. thaw_partner_mirror() lets it
  // connect again; the Monitor calls it once no replay needs the mirror.
  virtual Status freeze_partner_mirror() = 0;
  virtual void thaw_partner_mirror() = 0;

  // Serve `volume`: accept operations, stamp records and mirror messages with `epoch`, destage.
  // Only ever called after take_over(volume, epoch) returned OK.
  virtual void serve(VolumeId volume, uint64_t epoch) = 0;

  // Giveback, holder side: stop accepting operations on `volume`, destage and sync everything
  // staged for it, trim, and return OK only when the medium has it all. On an error the Monitor
  // calls serve(volume, same epoch) again and retries the giveback later. Like take_over, a
  // long destage runs in the background: kInProgress until it has finished (the volume is not
  // accepting operations meanwhile; the Monitor keeps renewing its lease and asks again).
  virtual Status release(VolumeId volume) = 0;

  // This node no longer owns `volume` and must never destage its own staged records of it:
  // drop those below `below_lsn` (the new owner replayed them from its mirror; UINT64_MAX: all).
  // Records at or above it are kept, undestaged: the new owner never saw them (I7). Returns how
  // many staged extents of the volume remain. Called again when the bound rises.
  virtual uint64_t discard(VolumeId volume, uint64_t below_lsn) = 0;

  // true: acknowledge without waiting for the partner's mirror (partner down, interconnect cut);
  // what is written meanwhile is what the resync ships later. false: synchronous mirroring again.
  virtual void set_degraded(bool degraded) = 0;
};

}  // namespace hafs::membership
