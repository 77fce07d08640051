// Replicator: the seam through which the NV log reaches a second store on the partner node.
// nvcache calls it; interconnect implements it (MirrorSender). nvcache knows no network.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "nvcache/log_format.h"
#include "nvcache/log_writer.h"

namespace hafs::nvcache {

class Replicator {
 public:
  virtual ~Replicator() = default;
  // Every record before `filled` has its bytes in the ring (filled, maybe not yet persisted):
  // they may be shipped. Called from appender threads; must not wait for the network.
  virtual void filled(TrimPoint filled) = 0;
  // Returns once the partner has persisted every ring byte before logical position `end_pos`
  // (the end of the caller's record), or once the replicator has decided to go on without the
  // partner (degraded: the write is in the local log alone). An error fails the write.
  virtual Status wait_mirrored(uint64_t end_pos) = 0;
  // The ring was trimmed (after a destage): the mirror may trim to the same point.
  virtual void trimmed(const RingHeader& header) = 0;
};

}  // namespace hafs::nvcache
