// MirrorMark: this node's "outdated mirror" record on the shared medium (invariant I7,
// docs/membership.md "The outdated mirror"). Before a node acknowledges a write that its
// partner's mirror of its NV log lacks, it marks that mirror outdated here; the partner never
// takes over from a mirror so marked. The mark is cleared once a resync has caught the mirror up.
//
// Format: docs/membership-format.md (record "node-<id>.mirror"). Thread safe: the mirror sender
// sets and clears it from writer and progress threads.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "base/status.h"
#include "membership/records.h"
#include "membership/shared_disk.h"

namespace hafs::membership {

// The mark of node `node` as it is on the medium; nullopt when it was never written.
Result<std::optional<MirrorMarkRecord>> read_mirror_mark(SharedDisk& disk, NodeId node);

class MirrorMark {
 public:
  // `disk` must outlive the mark. Reads nothing yet: call load() at start.
  MirrorMark(SharedDisk& disk, NodeId node, uint64_t cluster_id)
      : disk_(disk), node_(node), cluster_id_(cluster_id) {}

  // Reads this node's record as an earlier life left it (nullopt: never written).
  Result<std::optional<MirrorMarkRecord>> load();
  // Durably marks the partner's mirror of ring `ring_id` outdated from ring position `from_pos`
  // (lag_bytes unmirrored at the moment of marking). OK only once the record is on the medium.
  Status set_outdated(uint64_t ring_id, uint64_t from_pos, uint64_t lag_bytes);
  // Durably clears the mark (the mirror has caught up).
  Status clear(uint64_t ring_id);
  bool outdated() const;

 private:
  Status write(uint64_t ring_id, bool outdated, uint64_t from_pos, uint64_t lag_bytes);

  SharedDisk& disk_;
  const NodeId node_;
  const uint64_t cluster_id_;
  mutable std::mutex mu_;
  uint64_t counter_ = 0;  // GUARDED_BY(mu_)
  bool outdated_ = false; // GUARDED_BY(mu_): as last written or loaded
};

}  // namespace hafs::membership
