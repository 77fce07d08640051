#include "membership/mirror_mark.h"

namespace hafs::membership {

Result<std::optional<MirrorMarkRecord>> read_mirror_mark(SharedDisk& disk, NodeId node) {
  RecordBlock block{};
  Status s = disk.read(mirror_mark_record_name(node), block);
  if (s.code() == Code::kNotFound) return std::optional<MirrorMarkRecord>();
  if (!s.is_ok()) return s;
  auto r = decode_mirror_mark(block);
  if (!r) return r.status();
  if (r->node_id != node)
    return Status::error(Code::kCorruption, "mirror mark record of node " + std::to_string(node) +
                                                " names node " + std::to_string(r->node_id));
  return std::optional<MirrorMarkRecord>(*r);
}

Result<std::optional<MirrorMarkRecord>> MirrorMark::load() {
  auto r = read_mirror_mark(disk_, node_);
  if (!r) return r.status();
  std::lock_guard lock(mu_);
  counter_ = *r ? (*r)->counter : 0;
  outdated_ = *r && (*r)->outdated;
  return *r;
}

Status MirrorMark::write(uint64_t ring_id, bool outdated, uint64_t from_pos, uint64_t lag_bytes) {
  std::lock_guard lock(mu_);
  MirrorMarkRecord r;
  r.node_id = node_;
  r.cluster_id = cluster_id_;
  r.ring_id = ring_id;
  r.outdated = outdated;
  r.from_pos = from_pos;
  r.lag_bytes = lag_bytes;
  r.counter = ++counter_;
  RecordBlock block{};
  encode_mirror_mark(r, block);
  HAFS_RETURN_IF_ERROR(disk_.write(mirror_mark_record_name(node_), block));
  outdated_ = outdated;
  return Status::ok();
}

Status MirrorMark::set_outdated(uint64_t ring_id, uint64_t from_pos, uint64_t lag_bytes) {
  return write(ring_id, true, from_pos, lag_bytes);
}

Status MirrorMark::clear(uint64_t ring_id) { return write(ring_id, false, 0, 0); }

bool MirrorMark::outdated() const {
  std::lock_guard lock(mu_);
  return outdated_;
}

}  // namespace hafs::membership
