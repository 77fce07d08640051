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
  virtual Status take_over(VolumeId volume, uint64_t epoch) = 0;

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
  // drop them (the new owner replayed the acknowledged ones from its mirror).
  virtual void discard(VolumeId volume) = 0;

  // true: acknowledge without waiting for the partner's mirror (partner down, interconnect cut);
  // what is written meanwhile is what the resync ships later. false: synchronous mirroring again.
  virtual void set_degraded(bool degraded) = 0;
};

}  // namespace hafs::membership
