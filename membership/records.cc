#include "membership/records.h"

#include <cstring>

#include "base/check.h"
#include "base/crc32c.h"
#include "base/endian.h"

namespace hafs::membership {
namespace {

Status corrupt(const std::string& what) { return Status::error(Code::kCorruption, what); }

}  // namespace

std::string heartbeat_record_name(NodeId node) { return "node-" + std::to_string(node) + ".hb"; }
std::string ownership_record_name(VolumeId volume) {
  return "volume-" + std::to_string(volume) + ".own";
}
std::string mirror_mark_record_name(NodeId node) { return "node-" + std::to_string(node) + ".mirror"; }

void encode_heartbeat(const HeartbeatRecord& r, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(r.node_id != kNoNode, "heartbeat of node 0");
  std::memset(out.data(), 0, out.size());
  put_le<uint64_t>(out, hb_off::kMagic, kHeartbeatMagic);
  put_le<uint32_t>(out, hb_off::kVersion, kHeartbeatVersion);
  put_le<uint32_t>(out, hb_off::kNodeId, r.node_id);
  put_le<uint64_t>(out, hb_off::kCounter, r.counter);
  put_le<uint64_t>(out, hb_off::kIncarnation, r.incarnation);
  put_le<uint32_t>(out, hb_off::kState, r.state);
  put_le<uint64_t>(out, hb_off::kClusterId, r.cluster_id);
  put_le<uint32_t>(out, hb_off::kCrc, crc32c(out.data(), hb_off::kCrc));
}

void encode_ownership(const OwnershipRecord& r, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(r.home != kNoNode, "ownership record without a home node");
  HAFS_CHECK((r.flags & ~kOwnFlagsKnown) == 0, "unknown ownership flags");
  HAFS_CHECK(r.owner != kNoNode || r.epoch == 0, "an epoch without an owner");
  HAFS_CHECK(!r.replay_pending() || r.replay_node != kNoNode, "a pending replay of no node");
  std::memset(out.data(), 0, out.size());
  put_le<uint64_t>(out, own_off::kMagic, kOwnershipMagic);
  put_le<uint32_t>(out, own_off::kVersion, kOwnershipVersion);
  put_le<uint32_t>(out, own_off::kVolumeId, r.volume_id);
  put_le<uint32_t>(out, own_off::kOwner, r.owner);
  put_le<uint32_t>(out, own_off::kHome, r.home);
  put_le<uint64_t>(out, own_off::kEpoch, r.epoch);
  put_le<uint64_t>(out, own_off::kRenewCounter, r.renew_counter);
  put_le<uint32_t>(out, own_off::kLeaseMs, r.lease_ms);
  put_le<uint32_t>(out, own_off::kFlags, r.flags);
  put_le<uint64_t>(out, own_off::kClusterId, r.cluster_id);
  put_le<uint32_t>(out, own_off::kReplayNode, r.replay_node);
  put_le<uint64_t>(out, own_off::kReplayEpoch, r.replay_epoch);
  put_le<uint64_t>(out, own_off::kReplayNextLsn, r.replay_next_lsn);
  put_le<uint64_t>(out, own_off::kRunEpoch, r.run_epoch);
  put_le<uint64_t>(out, own_off::kReplayFromEpoch, r.replay_from_epoch);
  put_le<uint32_t>(out, own_off::kOwnerRing, r.owner_ring);
  put_le<uint32_t>(out, own_off::kReplayRing, r.replay_ring);
  put_le<uint32_t>(out, own_off::kCrc, crc32c(out.data(), own_off::kCrc));
}

Result<HeartbeatRecord> decode_heartbeat(std::span<const std::byte> in) {
  if (in.size() < kEncodedHeartbeat) return corrupt("heartbeat record shorter than its encoding");
  if (get_le<uint64_t>(in, hb_off::kMagic) != kHeartbeatMagic)
    return corrupt("bad heartbeat magic (not an hafs heartbeat record)");
  if (get_le<uint32_t>(in, hb_off::kCrc) != crc32c(in.data(), hb_off::kCrc))
    return corrupt("heartbeat record CRC mismatch (torn or corrupt)");
  const uint32_t version = get_le<uint32_t>(in, hb_off::kVersion);
  if (version != kHeartbeatVersion)
    return corrupt("unsupported heartbeat version " + std::to_string(version));
  HeartbeatRecord r;
  r.node_id = get_le<uint32_t>(in, hb_off::kNodeId);
  r.counter = get_le<uint64_t>(in, hb_off::kCounter);
  r.incarnation = get_le<uint64_t>(in, hb_off::kIncarnation);
  r.state = get_le<uint32_t>(in, hb_off::kState);
  r.cluster_id = get_le<uint64_t>(in, hb_off::kClusterId);
  if (r.node_id == kNoNode) return corrupt("heartbeat record of node 0");
  return r;
}

Result<OwnershipRecord> decode_ownership(std::span<const std::byte> in) {
  if (in.size() < kEncodedOwnership) return corrupt("ownership record shorter than its encoding");
  if (get_le<uint64_t>(in, own_off::kMagic) != kOwnershipMagic)
    return corrupt("bad ownership magic (not an hafs ownership record)");
  // The version says where the CRC is; a torn or flipped version field fails the CRC either way.
  const uint32_t version = get_le<uint32_t>(in, own_off::kVersion);
  const size_t crc_at = version == 3 || version == 4 ? own_off::kCrcV4 : own_off::kCrc;
  if (get_le<uint32_t>(in, crc_at) != crc32c(in.data(), crc_at))
    return corrupt("ownership record CRC mismatch (torn or corrupt)");
  // Version 3 differs from 4 only in that offset 60 was reserved (0): read as an unknown owner
  // ring. Both end before the replay ring: read as unknown.
  if (version != kOwnershipVersion && version != 4 && version != 3)
    return corrupt("unsupported ownership version " + std::to_string(version));
  OwnershipRecord r;
  r.volume_id = get_le<uint32_t>(in, own_off::kVolumeId);
  r.owner = get_le<uint32_t>(in, own_off::kOwner);
  r.home = get_le<uint32_t>(in, own_off::kHome);
  r.epoch = get_le<uint64_t>(in, own_off::kEpoch);
  r.renew_counter = get_le<uint64_t>(in, own_off::kRenewCounter);
  r.lease_ms = get_le<uint32_t>(in, own_off::kLeaseMs);
  r.flags = get_le<uint32_t>(in, own_off::kFlags);
  r.cluster_id = get_le<uint64_t>(in, own_off::kClusterId);
  r.replay_node = get_le<uint32_t>(in, own_off::kReplayNode);
  r.replay_epoch = get_le<uint64_t>(in, own_off::kReplayEpoch);
  r.replay_next_lsn = get_le<uint64_t>(in, own_off::kReplayNextLsn);
  r.run_epoch = get_le<uint64_t>(in, own_off::kRunEpoch);
  r.replay_from_epoch = get_le<uint64_t>(in, own_off::kReplayFromEpoch);
  r.owner_ring = get_le<uint32_t>(in, own_off::kOwnerRing);
  r.replay_ring = version >= 5 ? get_le<uint32_t>(in, own_off::kReplayRing) : 0;
  if (r.owner != kNoNode && (r.run_epoch == 0 || r.run_epoch > r.epoch))
    return corrupt("ownership record: run epoch " + std::to_string(r.run_epoch) + " outside 1.." + std::to_string(r.epoch));
  if (r.replay_from_epoch > r.replay_epoch)
    return corrupt("ownership record: replay epochs " + std::to_string(r.replay_from_epoch) + ".." +
                   std::to_string(r.replay_epoch));
  if (r.home == kNoNode) return corrupt("ownership record without a home node");
  if ((r.flags & ~kOwnFlagsKnown) != 0)
    return corrupt("ownership record has unknown flags " + std::to_string(r.flags));
  if (r.owner == kNoNode && r.epoch != 0) return corrupt("ownership record: epoch without owner");
  if (r.replay_pending() && r.replay_node == kNoNode)
    return corrupt("ownership record: a pending replay of node 0");
  return r;
}

void encode_mirror_mark(const MirrorMarkRecord& r, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(r.node_id != kNoNode, "mirror mark of node 0");
  std::memset(out.data(), 0, out.size());
  put_le<uint64_t>(out, mark_off::kMagic, kMirrorMarkMagic);
  put_le<uint32_t>(out, mark_off::kVersion, kMirrorMarkVersion);
  put_le<uint32_t>(out, mark_off::kNodeId, r.node_id);
  put_le<uint64_t>(out, mark_off::kClusterId, r.cluster_id);
  put_le<uint64_t>(out, mark_off::kRingId, r.ring_id);
  put_le<uint32_t>(out, mark_off::kOutdated, r.outdated ? 1 : 0);
  put_le<uint64_t>(out, mark_off::kFromPos, r.from_pos);
  put_le<uint64_t>(out, mark_off::kLagBytes, r.lag_bytes);
  put_le<uint64_t>(out, mark_off::kCounter, r.counter);
  put_le<uint32_t>(out, mark_off::kCrc, crc32c(out.data(), mark_off::kCrc));
}

Result<MirrorMarkRecord> decode_mirror_mark(std::span<const std::byte> in) {
  if (in.size() < kEncodedMirrorMark) return corrupt("mirror mark record shorter than its encoding");
  if (get_le<uint64_t>(in, mark_off::kMagic) != kMirrorMarkMagic)
    return corrupt("bad mirror mark magic (not an hafs mirror mark record)");
  if (get_le<uint32_t>(in, mark_off::kCrc) != crc32c(in.data(), mark_off::kCrc))
    return corrupt("mirror mark record CRC mismatch (torn or corrupt)");
  const uint32_t version = get_le<uint32_t>(in, mark_off::kVersion);
  if (version != kMirrorMarkVersion)
    return corrupt("unsupported mirror mark version " + std::to_string(version));
  MirrorMarkRecord r;
  r.node_id = get_le<uint32_t>(in, mark_off::kNodeId);
  r.cluster_id = get_le<uint64_t>(in, mark_off::kClusterId);
  r.ring_id = get_le<uint64_t>(in, mark_off::kRingId);
  const uint32_t outdated = get_le<uint32_t>(in, mark_off::kOutdated);
  r.from_pos = get_le<uint64_t>(in, mark_off::kFromPos);
  r.lag_bytes = get_le<uint64_t>(in, mark_off::kLagBytes);
  r.counter = get_le<uint64_t>(in, mark_off::kCounter);
  if (r.node_id == kNoNode) return corrupt("mirror mark record of node 0");
  if (outdated > 1) return corrupt("mirror mark record: outdated is " + std::to_string(outdated));
  r.outdated = outdated == 1;
  return r;
}

}  // namespace hafs::membership
