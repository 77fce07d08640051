// The mirror wire protocol: message layouts and their encode/decode. Defined in
// docs/wire-protocol.md; change the two together, in the same commit.
//
// Every message is a 24-byte header followed by a body of a fixed size per type. All integers
// are little-endian. The CRC32C covers header and body with the CRC field taken as zero.
// Record bytes never travel in messages: they are written one-sided (RMA) into the receiver's
// registered mirror region, and a COMMIT message tells the receiver which range to persist.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "base/status.h"

namespace hafs::interconnect {

inline constexpr uint32_t kWireMagic = 0x574D4148u;  // "HAMW" as LE bytes
inline constexpr uint16_t kWireVersion = 3;  // 3: COMMIT and TRIM carry the epoch
inline constexpr size_t kHeaderBytes = 24;
inline constexpr size_t kNonceBytes = 16;
inline constexpr size_t kMacBytes = 32;               // HMAC-SHA256
inline constexpr size_t kMaxMessageBytes = 256;       // receive slots are this large
inline constexpr size_t kReasonBytes = 96;

enum class MsgType : uint16_t {
  kHello = 1,      // receiver -> sender, first: who I am, my mirror region, what it holds
  kAuth = 2,       // sender -> receiver: who I am, my ring, my epoch, proof of the key
  kAccept = 3,     // receiver -> sender: proof of the key; mirroring may start
  kRefuse = 4,     // receiver -> sender: why not; the receiver closes the connection
  kCommit = 5,     // sender -> receiver: the bytes [from_pos, to_pos) are written; persist them
  kAck = 6,        // receiver -> sender: everything up to acked_lsn is persisted
  kTrim = 7,       // sender -> receiver: the ring was trimmed to (trim_lsn, trim_pos)
  kHeartbeat = 8,  // either way: I am alive
};
const char* msg_type_name(MsgType t);

struct Hello {
  uint32_t node_id = 0;
  std::array<uint8_t, kNonceBytes> nonce{};
  uint64_t mr_bytes = 0;   // size of the mirror store = the partner's ring (not yet registered)
  uint64_t ring_id = 0;    // ring the mirror currently holds (0: none)
  uint32_t session = 0;    // the sender session whose bytes it holds
  uint64_t have_pos = 0;   // it holds every byte of that session's ring before this position
};

struct Auth {
  uint32_t node_id = 0;
  uint64_t epoch = 0;      // the sender's membership epoch: a stale one is refused
  uint64_t ring_id = 0;
  uint64_t ring_bytes = 0;
  uint32_t session = 0;
  uint32_t trim_session = 0;
  uint64_t trim_lsn = 0;
  uint64_t trim_pos = 0;
  std::array<uint8_t, kNonceBytes> nonce{};
  std::array<uint8_t, kMacBytes> mac{};  // HMAC(key, "hafs-auth" | hello.nonce | these fields)
};

struct Accept {
  // The mirror region is registered only now, for an authenticated sender.
  uint64_t mr_key = 0;     // remote key of the mirror region (fresh per connection)
  uint64_t mr_base = 0;    // address of the region's byte 0 as the fabric wants it (0: offsets)
  std::array<uint8_t, kMacBytes> mac{};  // HMAC(key, "hafs-accept" | auth.nonce | ids | mr_key | mr_base)
};

enum class RefuseReason : uint32_t {
  kVersion = 1, kWrongNode = 2, kBadKey = 3, kStaleEpoch = 4, kGeometry = 5, kBusy = 6,
  kProtocol = 7,
};
const char* refuse_reason_name(RefuseReason r);

struct Refuse {
  RefuseReason reason = RefuseReason::kProtocol;
  std::string text;  // at most kReasonBytes - 1 bytes
};

struct Commit {
  uint64_t from_pos = 0;  // logical ring positions; the bytes may end inside a record
  uint64_t to_pos = 0;
  uint64_t upto_lsn = 0;  // the last record ending at or before to_pos, when known (else 0)
  uint64_t epoch = 0;     // the sender's membership epoch now: one below the receiver's is refused
};

struct Ack {
  uint64_t acked_lsn = 0;  // echo of the commit's upto_lsn (for logs and status)
  uint64_t acked_pos = 0;  // every byte before it is persisted in the mirror
};

struct Trim {
  uint64_t trim_lsn = 0;
  uint64_t trim_pos = 0;
  uint32_t trim_session = 0;
  uint64_t epoch = 0;     // as in COMMIT: a node that has not learned a takeover trims nothing
};

struct Heartbeat {
  uint64_t seq = 0;
  uint64_t sent_us = 0;  // sender's monotonic clock, for round-trip figures
};

using Message = std::variant<Hello, Auth, Accept, Refuse, Commit, Ack, Trim, Heartbeat>;

// Encodes `m` (header included) with the given connection sequence number.
std::vector<std::byte> encode(const Message& m, uint32_t seq = 0);
// Decodes one message; a clear error for a short buffer, bad magic, other version, unknown type,
// wrong body size or a CRC mismatch.
Result<Message> decode(std::span<const std::byte> bytes);

// The bytes an HMAC covers (docs/wire-protocol.md, "authentication").
std::vector<uint8_t> auth_mac_input(const Hello& hello, const Auth& auth);
std::vector<uint8_t> accept_mac_input(const Auth& auth, uint32_t receiver_node_id,
                                      uint64_t mr_key, uint64_t mr_base);

}  // namespace hafs::interconnect
