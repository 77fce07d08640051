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

void encode_heartbeat(const HeartbeatRecord& r, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(r.node_id != kNoNode, "heartbeat of node 0");
  std::memset(out.data(), 0, out.size());
  put_le<uint64_t>(out, hb_off::kMagic, kHeartbeatMagic);
  put_le<uint32_t>(out, hb_off::kVersion, kHeartbeatVersion);
  put_le<uint32_t>(out, hb_off::kNodeId, r.node_id);
  put_le<uint64_t>(out, hb_off::kCounter, r.counter);
  put_le<uint64_t>(out, hb_off::kIncarnation, r.incarnation);
  put_le<uint32_t>(out, hb_off::kState, r.state);
  put_le<uint32_t>(out, hb_off::kCrc, crc32c(out.data(), hb_off::kCrc));
}

void encode_ownership(const OwnershipRecord& r, std::span<std::byte, kRecordBlockBytes> out) {
  HAFS_CHECK(r.home != kNoNode, "ownership record without a home node");
  HAFS_CHECK((r.flags & ~kOwnFlagsKnown) == 0, "unknown ownership flags");
  HAFS_CHECK(r.owner != kNoNode || r.epoch == 0, "an epoch without an owner");
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
  if (r.node_id == kNoNode) return corrupt("heartbeat record of node 0");
  return r;
}

Result<OwnershipRecord> decode_ownership(std::span<const std::byte> in) {
  if (in.size() < kEncodedOwnership) return corrupt("ownership record shorter than its encoding");
  if (get_le<uint64_t>(in, own_off::kMagic) != kOwnershipMagic)
    return corrupt("bad ownership magic (not an hafs ownership record)");
  if (get_le<uint32_t>(in, own_off::kCrc) != crc32c(in.data(), own_off::kCrc))
    return corrupt("ownership record CRC mismatch (torn or corrupt)");
  const uint32_t version = get_le<uint32_t>(in, own_off::kVersion);
  if (version != kOwnershipVersion)
    return corrupt("unsupported ownership version " + std::to_string(version));
  OwnershipRecord r;
  r.volume_id = get_le<uint32_t>(in, own_off::kVolumeId);
  r.owner = get_le<uint32_t>(in, own_off::kOwner);
  r.home = get_le<uint32_t>(in, own_off::kHome);
  r.epoch = get_le<uint64_t>(in, own_off::kEpoch);
  r.renew_counter = get_le<uint64_t>(in, own_off::kRenewCounter);
  r.lease_ms = get_le<uint32_t>(in, own_off::kLeaseMs);
  r.flags = get_le<uint32_t>(in, own_off::kFlags);
  if (r.home == kNoNode) return corrupt("ownership record without a home node");
  if ((r.flags & ~kOwnFlagsKnown) != 0)
    return corrupt("ownership record has unknown flags " + std::to_string(r.flags));
  if (r.owner == kNoNode && r.epoch != 0) return corrupt("ownership record: epoch without owner");
  return r;
}

}  // namespace hafs::membership
