#include "interconnect/wire.h"

#include <cstring>

#include "base/crc32c.h"

namespace hafs::interconnect {
namespace {

// Header: magic u32 | version u16 | type u16 | body_bytes u32 | seq u32 | crc u32 | zero u32
constexpr size_t kOffMagic = 0, kOffVersion = 4, kOffType = 6, kOffBody = 8, kOffSeq = 12,
                 kOffCrc = 16;

class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) : out_(out) {}
  template <typename T>
  void put(T v) {
    for (size_t i = 0; i < sizeof(T); ++i)
      out_.push_back(static_cast<std::byte>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
  template <size_t N>
  void put(const std::array<uint8_t, N>& a) {
    for (uint8_t b : a) out_.push_back(static_cast<std::byte>(b));
  }
  void put_text(const std::string& s, size_t n) {
    for (size_t i = 0; i < n; ++i)
      out_.push_back(static_cast<std::byte>(i < s.size() && i + 1 < n ? s[i] : '\0'));
  }

 private:
  std::vector<std::byte>& out_;
};

class Reader {
 public:
  explicit Reader(std::span<const std::byte> in) : in_(in) {}
  template <typename T>
  T get() {
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i)
      v |= static_cast<uint64_t>(std::to_integer<uint8_t>(in_[at_ + i])) << (8 * i);
    at_ += sizeof(T);
    return static_cast<T>(v);
  }
  template <size_t N>
  void get(std::array<uint8_t, N>& a) {
    for (auto& b : a) b = std::to_integer<uint8_t>(in_[at_++]);
  }
  std::string get_text(size_t n) {
    std::string s(reinterpret_cast<const char*>(in_.data() + at_), n);
    at_ += n;
    s.resize(std::strlen(s.c_str()));
    return s;
  }

 private:
  std::span<const std::byte> in_;
  size_t at_ = 0;
};

constexpr size_t body_size(MsgType t) {
  switch (t) {
    case MsgType::kHello: return 4 + kNonceBytes + 8 + 8 + 4 + 8;
    case MsgType::kAuth: return 4 + 8 + 8 + 8 + 4 + 4 + 8 + 8 + kNonceBytes + kMacBytes;
    case MsgType::kAccept: return 16 + kMacBytes;
    case MsgType::kRefuse: return 4 + kReasonBytes;
    case MsgType::kCommit: return 32;
    case MsgType::kAck: return 16;
    case MsgType::kTrim: return 28;
    case MsgType::kHeartbeat: return 16;
  }
  return 0;
}
static_assert(kHeaderBytes + body_size(MsgType::kAuth) <= kMaxMessageBytes);
static_assert(kHeaderBytes + body_size(MsgType::kRefuse) <= kMaxMessageBytes);

MsgType type_of(const Message& m) { return static_cast<MsgType>(m.index() + 1); }

void put_auth_fields(Writer& w, const Auth& a) {
  w.put(a.node_id);
  w.put(a.epoch);
  w.put(a.ring_id);
  w.put(a.ring_bytes);
  w.put(a.session);
  w.put(a.trim_session);
  w.put(a.trim_lsn);
  w.put(a.trim_pos);
  w.put(a.nonce);
}

}  // namespace

const char* msg_type_name(MsgType t) {
  switch (t) {
    case MsgType::kHello: return "HELLO";
    case MsgType::kAuth: return "AUTH";
    case MsgType::kAccept: return "ACCEPT";
    case MsgType::kRefuse: return "REFUSE";
    case MsgType::kCommit: return "COMMIT";
    case MsgType::kAck: return "ACK";
    case MsgType::kTrim: return "TRIM";
    case MsgType::kHeartbeat: return "HEARTBEAT";
  }
  return "?";
}

const char* refuse_reason_name(RefuseReason r) {
  switch (r) {
    case RefuseReason::kVersion: return "protocol version";
    case RefuseReason::kWrongNode: return "not my partner";
    case RefuseReason::kBadKey: return "authentication failed";
    case RefuseReason::kStaleEpoch: return "stale epoch";
    case RefuseReason::kGeometry: return "ring geometry";
    case RefuseReason::kBusy: return "partner already connected";
    case RefuseReason::kProtocol: return "protocol error";
  }
  return "?";
}

std::vector<std::byte> encode(const Message& m, uint32_t seq) {
  std::vector<std::byte> out;
  out.reserve(kMaxMessageBytes);
  Writer w(out);
  const MsgType t = type_of(m);
  w.put(kWireMagic);
  w.put(kWireVersion);
  w.put(static_cast<uint16_t>(t));
  w.put(static_cast<uint32_t>(body_size(t)));
  w.put(seq);
  w.put(uint32_t{0});  // CRC, filled below
  w.put(uint32_t{0});
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, Hello>) {
          w.put(b.node_id); w.put(b.nonce); w.put(b.mr_bytes);
          w.put(b.ring_id); w.put(b.session); w.put(b.have_pos);
        } else if constexpr (std::is_same_v<T, Auth>) {
          put_auth_fields(w, b);
          w.put(b.mac);
        } else if constexpr (std::is_same_v<T, Accept>) {
          w.put(b.mr_key); w.put(b.mr_base); w.put(b.mac);
        } else if constexpr (std::is_same_v<T, Refuse>) {
          w.put(static_cast<uint32_t>(b.reason)); w.put_text(b.text, kReasonBytes);
        } else if constexpr (std::is_same_v<T, Commit>) {
          w.put(b.from_pos); w.put(b.to_pos); w.put(b.upto_lsn); w.put(b.epoch);
        } else if constexpr (std::is_same_v<T, Ack>) {
          w.put(b.acked_lsn); w.put(b.acked_pos);
        } else if constexpr (std::is_same_v<T, Trim>) {
          w.put(b.trim_lsn); w.put(b.trim_pos); w.put(b.trim_session); w.put(b.epoch);
        } else {
          w.put(b.seq); w.put(b.sent_us);
        }
      },
      m);
  HAFS_CHECK(out.size() == kHeaderBytes + body_size(t), "message body size mismatch");
  const uint32_t crc = crc32c(out.data(), out.size());
  for (size_t i = 0; i < 4; ++i) out[kOffCrc + i] = static_cast<std::byte>((crc >> (8 * i)) & 0xff);
  return out;
}

Result<Message> decode(std::span<const std::byte> bytes) {
  auto bad = [](const std::string& why) { return Status::error(Code::kCorruption, "message: " + why); };
  if (bytes.size() < kHeaderBytes) return bad("shorter than a header (" + std::to_string(bytes.size()) + " bytes)");
  Reader h(bytes);
  const uint32_t magic = h.get<uint32_t>();
  const uint16_t version = h.get<uint16_t>();
  const uint16_t type = h.get<uint16_t>();
  const uint32_t body = h.get<uint32_t>();
  (void)h.get<uint32_t>();  // seq
  const uint32_t crc = h.get<uint32_t>();
  if (magic != kWireMagic) return bad("bad magic (not an hafs peer)");
  if (version != kWireVersion)
    return bad("protocol version " + std::to_string(version) + ", this node speaks " + std::to_string(kWireVersion));
  if (type < 1 || type > 8) return bad("unknown type " + std::to_string(type));
  const MsgType t = static_cast<MsgType>(type);
  if (body != body_size(t) || bytes.size() < kHeaderBytes + body)
    return bad(std::string(msg_type_name(t)) + " with a body of " + std::to_string(body) + " bytes (" +
               std::to_string(bytes.size()) + " received)");
  std::vector<std::byte> copy(bytes.begin(), bytes.begin() + static_cast<long>(kHeaderBytes + body));
  std::memset(copy.data() + kOffCrc, 0, 4);
  if (crc32c(copy.data(), copy.size()) != crc) return bad(std::string(msg_type_name(t)) + " CRC mismatch");
  Reader r(bytes.subspan(kHeaderBytes, body));
  switch (t) {
    case MsgType::kHello: {
      Hello m;
      m.node_id = r.get<uint32_t>(); r.get(m.nonce);
      m.mr_bytes = r.get<uint64_t>(); m.ring_id = r.get<uint64_t>();
      m.session = r.get<uint32_t>(); m.have_pos = r.get<uint64_t>();
      return Message(m);
    }
    case MsgType::kAuth: {
      Auth m;
      m.node_id = r.get<uint32_t>(); m.epoch = r.get<uint64_t>(); m.ring_id = r.get<uint64_t>();
      m.ring_bytes = r.get<uint64_t>(); m.session = r.get<uint32_t>(); m.trim_session = r.get<uint32_t>();
      m.trim_lsn = r.get<uint64_t>(); m.trim_pos = r.get<uint64_t>(); r.get(m.nonce); r.get(m.mac);
      return Message(m);
    }
    case MsgType::kAccept: {
      Accept m;
      m.mr_key = r.get<uint64_t>(); m.mr_base = r.get<uint64_t>(); r.get(m.mac);
      return Message(m);
    }
    case MsgType::kRefuse: {
      Refuse m;
      m.reason = static_cast<RefuseReason>(r.get<uint32_t>());
      m.text = r.get_text(kReasonBytes);
      return Message(m);
    }
    case MsgType::kCommit: {
      Commit m;
      m.from_pos = r.get<uint64_t>(); m.to_pos = r.get<uint64_t>(); m.upto_lsn = r.get<uint64_t>();
      m.epoch = r.get<uint64_t>();
      return Message(m);
    }
    case MsgType::kAck: {
      Ack m;
      m.acked_lsn = r.get<uint64_t>(); m.acked_pos = r.get<uint64_t>();
      return Message(m);
    }
    case MsgType::kTrim: {
      Trim m;
      m.trim_lsn = r.get<uint64_t>(); m.trim_pos = r.get<uint64_t>(); m.trim_session = r.get<uint32_t>();
      m.epoch = r.get<uint64_t>();
      return Message(m);
    }
    case MsgType::kHeartbeat: {
      Heartbeat m;
      m.seq = r.get<uint64_t>(); m.sent_us = r.get<uint64_t>();
      return Message(m);
    }
  }
  return bad("unknown type");
}

std::vector<uint8_t> auth_mac_input(const Hello& hello, const Auth& auth) {
  std::vector<std::byte> out;
  Writer w(out);
  w.put_text("hafs-auth", 10);
  w.put(hello.nonce);
  w.put(hello.node_id);
  put_auth_fields(w, auth);
  std::vector<uint8_t> bytes(out.size());
  std::memcpy(bytes.data(), out.data(), out.size());
  return bytes;
}

std::vector<uint8_t> accept_mac_input(const Auth& auth, uint32_t receiver_node_id,
                                      uint64_t mr_key, uint64_t mr_base) {
  std::vector<std::byte> out;
  Writer w(out);
  w.put_text("hafs-accept", 12);
  w.put(auth.nonce);
  w.put(auth.node_id);
  w.put(receiver_node_id);
  w.put(mr_key);
  w.put(mr_base);
  std::vector<uint8_t> bytes(out.size());
  std::memcpy(bytes.data(), out.data(), out.size());
  return bytes;
}

}  // namespace hafs::interconnect
