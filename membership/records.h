// The two on-disk records of membership: a node's disk heartbeat and a volume's ownership record.
// The format is defined in docs/membership-format.md; change the two together, in the same commit.
//
// Each record is one 4 KiB block of its own on the storage medium ("node-<id>.hb",
// "volume-<id>.own"), written whole and durably (membership/shared_disk.h). The encoded record
// sits at byte 0 of its block; the rest of the block is zero and not covered by anything.
// All integers are little-endian. The CRC32C covers every byte before the CRC field.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/status.h"

namespace hafs::membership {

using NodeId = uint32_t;    // 0 is "no node"
using VolumeId = uint32_t;
inline constexpr NodeId kNoNode = 0;

inline constexpr size_t kRecordBlockBytes = 4096;
using RecordBlock = std::array<std::byte, kRecordBlockBytes>;

// ---- node heartbeat: "node-<id>.hb" ---------------------------------------------------------
inline constexpr uint64_t kHeartbeatMagic = 0x3142484E53464148ull;  // "HAFSNHB1" as LE bytes
inline constexpr uint32_t kHeartbeatVersion = 2;  // 2: cluster_id

namespace hb_off {
inline constexpr size_t kMagic = 0;        // u64
inline constexpr size_t kVersion = 8;      // u32
inline constexpr size_t kNodeId = 12;      // u32: the node that writes this record (never 0)
inline constexpr size_t kCounter = 16;     // u64: +1 per beat (every tick)
inline constexpr size_t kIncarnation = 24; // u64: random, drawn at each process start
inline constexpr size_t kState = 32;       // u32: the writer's NodeState (membership/monitor.h)
inline constexpr size_t kReserved = 36;    // u32: 0
inline constexpr size_t kClusterId = 40;   // u64: the pair's cluster id (membership.cluster_id)
inline constexpr size_t kCrc = 48;         // u32: CRC32C of bytes [0, kCrc)
}  // namespace hb_off
inline constexpr size_t kEncodedHeartbeat = hb_off::kCrc + 4;
static_assert(kEncodedHeartbeat == 52);
static_assert(kEncodedHeartbeat <= kRecordBlockBytes);

struct HeartbeatRecord {
  NodeId node_id = kNoNode;
  uint64_t counter = 0;
  uint64_t incarnation = 0;
  uint32_t state = 0;
  uint64_t cluster_id = 0;
};

// ---- volume ownership: "volume-<id>.own" ----------------------------------------------------
inline constexpr uint64_t kOwnershipMagic = 0x314E574F53464148ull;  // "HAFSOWN1" as LE bytes
inline constexpr uint32_t kOwnershipVersion = 5;  // 2: cluster_id and the replay fields; 3: run_epoch, replay_from_epoch; 4: owner_ring; 5: replay_ring

namespace own_off {
inline constexpr size_t kMagic = 0;         // u64
inline constexpr size_t kVersion = 8;       // u32
inline constexpr size_t kVolumeId = 12;     // u32
inline constexpr size_t kOwner = 16;        // u32: node that holds the volume (0 = nobody)
inline constexpr size_t kHome = 20;         // u32: node that owns it in normal operation
inline constexpr size_t kEpoch = 24;        // u64: fencing token; +1 on every change of owner
inline constexpr size_t kRenewCounter = 32; // u64: +1 per lease renewal by the owner; 0 at a claim
inline constexpr size_t kLeaseMs = 40;      // u32: the owner's lease (informational, for status)
inline constexpr size_t kFlags = 44;        // u32: kOwnFlag* below
inline constexpr size_t kClusterId = 48;    // u64: the pair's cluster id
inline constexpr size_t kReplayNode = 56;   // u32: whose NV log the last takeover replays (0: none)
inline constexpr size_t kOwnerRing = 60;    // u32: ring tag of the owner's NV log when it wrote this (0: unknown; version 3: reserved, 0)
inline constexpr size_t kReplayEpoch = 64;  // u64: ... the epoch of the records of it that count
inline constexpr size_t kReplayNextLsn = 72;// u64: ... every record below this LSN was read
inline constexpr size_t kRunEpoch = 80;     // u64: the epoch at which `owner` took the volume from another node
inline constexpr size_t kReplayFromEpoch = 88;  // u64: the replay applies records of epochs [this, replay_epoch]
inline constexpr size_t kReplayRing = 96;   // u32: ring tag of the NV log the pending replay reads (0: unknown)
inline constexpr size_t kCrc = 100;         // u32: CRC32C of bytes [0, kCrc)
inline constexpr size_t kCrcV4 = 96;        // versions 3 and 4 end before kReplayRing: their CRC is here
}  // namespace own_off
inline constexpr size_t kEncodedOwnership = own_off::kCrc + 4;
static_assert(kEncodedOwnership == 104);
static_assert(kEncodedOwnership <= kRecordBlockBytes);

// Written by a holder giving the volume back: `owner` is the home node, which has not renewed
// yet. The new owner's first renewal clears it.
inline constexpr uint32_t kOwnFlagHandover = 1u << 0;
// The owner claimed the volume over `replay_node`'s ownership: the records of `replay_node`'s
// NV log of this volume with epoch `replay_epoch` (its mirror here) must be applied before the
// volume is served. Cleared by the renewal that records replay_next_lsn, before serving. A
// re-claim keeps it (a replay that did not finish is done again; nobody served in between).
inline constexpr uint32_t kOwnFlagReplayPending = 1u << 1;
inline constexpr uint32_t kOwnFlagsKnown = kOwnFlagHandover | kOwnFlagReplayPending;

struct OwnershipRecord {
  VolumeId volume_id = 0;
  NodeId owner = kNoNode;
  NodeId home = kNoNode;
  uint64_t epoch = 0;
  uint64_t renew_counter = 0;
  uint32_t lease_ms = 0;
  uint32_t flags = 0;
  uint64_t cluster_id = 0;
  NodeId replay_node = kNoNode;  // with replay_epoch and replay_next_lsn: see kOwnFlagReplayPending
  uint64_t replay_epoch = 0;
  uint64_t replay_next_lsn = 0;  // 0 while the replay is pending
  // The owner's run: it has held the volume without interruption since epoch `run_epoch` (it
  // re-claims over its own records after a self-fence or a restart). Its NV log's records of
  // epochs run_epoch..epoch may not all be on the medium yet: a takeover over this record
  // replays all of them, not only those of `epoch` (a re-claim that never served has not
  // destaged the earlier ones).
  uint64_t run_epoch = 0;
  uint64_t replay_from_epoch = 0;  // with replay_epoch: the range of epochs the replay applies
  // nvcache::ring_tag of the NV log the owner wrote this record with (0: unknown, e.g. a hand-over
  // written by the other node). The owner's run is staged in that log and the partner's mirror of
  // it: a process with the owner's id and another log must not continue the run (rule 8).
  uint32_t owner_ring = 0;
  // nvcache::ring_tag of the NV log replay_node's records are staged in (0: unknown, e.g. a
  // version-4 record). A process with replay_node's id and another log must not continue that
  // run by claiming over this record while the replay is pending (rule 8).
  uint32_t replay_ring = 0;

  bool replay_pending() const { return (flags & kOwnFlagReplayPending) != 0; }
  bool operator==(const OwnershipRecord&) const = default;
};

// ---- outdated mirror mark: "node-<id>.mirror" ------------------------------------------------
// Written by node <id> before it acknowledges the first write its partner's mirror lacks
// (invariant I7), and cleared when the partner's mirror has caught up. A missing record reads as
// "not outdated" (a node that never went without its mirror).
inline constexpr uint64_t kMirrorMarkMagic = 0x314B4D4D53464148ull;  // "HAFSMMK1" as LE bytes
inline constexpr uint32_t kMirrorMarkVersion = 1;

namespace mark_off {
inline constexpr size_t kMagic = 0;       // u64
inline constexpr size_t kVersion = 8;     // u32
inline constexpr size_t kNodeId = 12;     // u32: the node whose NV log the partner mirrors
inline constexpr size_t kClusterId = 16;  // u64
inline constexpr size_t kRingId = 24;     // u64: that NV log's ring id
inline constexpr size_t kOutdated = 32;   // u32: 1 = the mirror lacks acknowledged writes; 0 = not
inline constexpr size_t kReserved = 36;   // u32: 0
inline constexpr size_t kFromPos = 40;    // u64: the mirror may lack ring bytes from here on
inline constexpr size_t kLagBytes = 48;   // u64: filled - mirrored when the mark was written
inline constexpr size_t kCounter = 56;    // u64: +1 per write of the record
inline constexpr size_t kCrc = 64;        // u32: CRC32C of bytes [0, kCrc)
}  // namespace mark_off
inline constexpr size_t kEncodedMirrorMark = mark_off::kCrc + 4;
static_assert(kEncodedMirrorMark == 68);

struct MirrorMarkRecord {
  NodeId node_id = kNoNode;
  uint64_t cluster_id = 0;
  uint64_t ring_id = 0;
  bool outdated = false;
  uint64_t from_pos = 0;
  uint64_t lag_bytes = 0;
  uint64_t counter = 0;
};

// Record names on the medium.
std::string heartbeat_record_name(NodeId node);
std::string ownership_record_name(VolumeId volume);
std::string mirror_mark_record_name(NodeId node);

// Encoders fill the whole block (zeros after the record). They CHECK their input: an encoder is
// never handed a record that breaks the format's rules (node 0, unknown flags).
void encode_heartbeat(const HeartbeatRecord& r, std::span<std::byte, kRecordBlockBytes> out);
void encode_ownership(const OwnershipRecord& r, std::span<std::byte, kRecordBlockBytes> out);
void encode_mirror_mark(const MirrorMarkRecord& r, std::span<std::byte, kRecordBlockBytes> out);

// Decoders check magic, CRC, version and field rules, in that order; kCorruption with a clear
// message otherwise (a torn write fails the CRC).
Result<HeartbeatRecord> decode_heartbeat(std::span<const std::byte> in);
Result<OwnershipRecord> decode_ownership(std::span<const std::byte> in);
Result<MirrorMarkRecord> decode_mirror_mark(std::span<const std::byte> in);

}  // namespace hafs::membership
