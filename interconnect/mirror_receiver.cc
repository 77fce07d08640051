#include "interconnect/mirror_receiver.h"

#include <algorithm>
#include <array>
#include <deque>
#include <optional>
#include <random>

#include "base/crc32c.h"
#include "base/endian.h"
#include "nvcache/log_reader.h"
#include "nvcache/log_writer.h"

namespace hafs::interconnect {

using Clock = std::chrono::steady_clock;

struct MirrorReceiver::Session {
  std::unique_ptr<Transport> conn;
  Region region;               // the mirror store, registered for this connection only, after AUTH
  uint64_t key = 0;            // the MR key asked for (providers may choose their own)
  std::optional<uint64_t> expect_pos;  // where the next COMMIT must start
  std::vector<uint64_t> first_pos;     // where the first COMMIT may start (resync points)
  Hello hello;                 // what we told the sender
  bool authed = false;
  uint32_t seq = 0;
  uint32_t partner = 0;
  Clock::time_point last_heard = Clock::now();
  std::deque<std::vector<std::byte>> pending;  // received, not yet handled
  // COMMITs checked and not yet persisted nor ACKed: the ranges [batch_from, expect_pos) of
  // the COMMITs of one poll, persisted with one commit mark and ACKed once (flush_commits).
  std::optional<uint64_t> batch_from;
  uint64_t batch_lsn = 0;         // the newest upto_lsn the batch's COMMITs named (0: none)
  uint64_t batch_commits = 0;
  uint64_t batch_walk_from = 0;   // walk_pos_ before the batch: restored when it is dropped
  ~Session() {
    if (conn) conn->unregister(region);
  }
};

namespace {
// The commit mark (log-format.md §11): in the unused part of header slot A of the mirror store.
constexpr uint64_t kCommitMarkOffset = 2048;
constexpr uint64_t kCommitMarkMagic = 0x31504D4353464148ull;  // "HAFSCMP1"
constexpr size_t kCommitMarkBytes = 36;  // magic, ring_id, committed_pos, reserved (u64 each); crc u32
constexpr size_t kCommitMarkCrc = 32;    // CRC32C of bytes [0, 32)

Status write_commit_mark(nvcache::Store& store, uint64_t ring_id, uint64_t committed_pos) {
  std::array<std::byte, kCommitMarkBytes> b{};
  put_le<uint64_t>(b, 0, kCommitMarkMagic);
  put_le<uint64_t>(b, 8, ring_id);
  put_le<uint64_t>(b, 16, committed_pos);
  put_le<uint32_t>(b, kCommitMarkCrc, crc32c(b.data(), kCommitMarkCrc));
  HAFS_RETURN_IF_ERROR(store.write(kCommitMarkOffset, b));
  return store.persist(kCommitMarkOffset, b.size());
}

// The committed position of `ring_id`, or 0 (no mark, a torn one, another ring's).
uint64_t read_commit_mark(const nvcache::Store& store, uint64_t ring_id) {
  std::array<std::byte, kCommitMarkBytes> b{};
  if (!store.read(kCommitMarkOffset, b).is_ok()) return 0;
  const std::span<const std::byte> in(b);
  if (get_le<uint64_t>(in, 0) != kCommitMarkMagic || get_le<uint32_t>(in, kCommitMarkCrc) != crc32c(b.data(), kCommitMarkCrc) ||
      get_le<uint64_t>(in, 8) != ring_id)
    return 0;
  return get_le<uint64_t>(in, 16);
}
}  // namespace

Result<std::unique_ptr<MirrorReceiver>> MirrorReceiver::start(nvcache::Store& mirror,
                                                             MirrorReceiverOptions options) {
  if (!mirror.mapping())
    return Status::error(Code::kInvalidArgument, "the mirror store must be a mapped (pmem) store");
  auto r = std::unique_ptr<MirrorReceiver>(new MirrorReceiver(mirror, std::move(options)));
  // What the mirror already holds (a restart): the sender may resend only what is missing.
  auto rec = nvcache::scan_ring(mirror, [](const nvcache::RecordView&) {});
  if (rec.is_ok() && (rec->header.flags & nvcache::kRingFlagMirror)) {
    r->header_ = rec->header;
    r->have_header_ = true;
    r->stats_.ring_id = rec->header.ring_id;
    r->stats_.session = rec->header.session;
    r->stats_.acked_pos = rec->next_pos;
    r->walk_pos_ = rec->next_pos;  // a scan ends at a record boundary
    r->stats_.committed_pos = std::max(rec->next_pos, read_commit_mark(mirror, rec->header.ring_id));
    r->stats_.trim_lsn = rec->header.trim_lsn;
    r->options_.logger.info("mirror holds ring %016llx session %u up to position %llu",
                            static_cast<unsigned long long>(rec->header.ring_id), rec->header.session,
                            static_cast<unsigned long long>(rec->next_pos));
  }
  TransportFactory* transport = r->options_.transport;
  if (!transport) {
    r->own_transport_ = std::make_unique<FabricTransportFactory>(r->options_.fabric);
    transport = r->own_transport_.get();
  }
  auto l = transport->listen(r->options_.listen_host, r->options_.listen_port);
  if (!l) return l.status().with_context("mirror receiver");
  r->listener_ = std::move(*l);
  r->thread_ = std::thread([p = r.get()] { p->run(); });
  return r;
}

MirrorReceiver::~MirrorReceiver() { stop(); }

void MirrorReceiver::stop() {
  stop_.store(true);
  {
    std::lock_guard lock(freeze_mu_);  // a freeze() waiting for the thread gives up now
  }
  freeze_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  listener_.reset();
}

void MirrorReceiver::set_min_epoch(uint64_t epoch) { min_epoch_.store(epoch); }

void MirrorReceiver::set_held_epochs(std::vector<std::pair<uint32_t, uint64_t>> held,
                                     std::vector<uint32_t> partner_rings, bool keep_ring) {
  std::lock_guard lock(held_mu_);
  held_ = std::move(held);
  partner_rings_ = std::move(partner_rings);
  keep_ring_ = keep_ring;
  held_known_ = true;
}

std::optional<std::pair<RefuseReason, std::string>> MirrorReceiver::walk_committed(uint64_t to_pos,
                                                                                  uint64_t* next) {
  std::vector<std::pair<uint32_t, uint64_t>> held;
  {
    std::lock_guard lock(held_mu_);
    held = held_;
  }
  const uint64_t data = mirror_.size() - nvcache::kDataOffset;
  uint64_t pos = walk_pos_;
  while (pos != kWalkLost && pos + nvcache::kRecordHeaderBytes <= to_pos) {
    std::array<std::byte, nvcache::kRecordHeaderBytes> fixed{};
    if (Status st = mirror_.read(nvcache::kDataOffset + pos % data, fixed); !st.is_ok())
      return std::pair{RefuseReason::kProtocol, "cannot read the mirror: " + st.to_string()};
    auto h = nvcache::decode_record_header(fixed);
    // The sender's ring holds whole records from its trim point on: anything else here is a
    // byte that went bad between the one-sided write and this COMMIT. Refused, the sender
    // writes the range again.
    if (!h || h->pos != pos)
      return std::pair{RefuseReason::kProtocol, "no record header at position " + std::to_string(pos)};
    // The header CRC covers the key: checked once the COMMITs reach past it. A header copied
    // while its node rewrote it (a VOID) fails here and is written again, instead of becoming
    // damage in the mirror.
    if (pos + nvcache::kRecordHeaderBytes + h->key_len > to_pos) break;
    std::vector<std::byte> head(nvcache::kRecordHeaderBytes + h->key_len);
    if (Status st = mirror_.read(nvcache::kDataOffset + pos % data, head); !st.is_ok())
      return std::pair{RefuseReason::kProtocol, "cannot read the mirror: " + st.to_string()};
    if (!nvcache::verify_record_header_crc(head))
      return std::pair{RefuseReason::kProtocol, "header CRC mismatch at position " + std::to_string(pos)};
    // A DAMAGED marker (the sender found this record bad after it was mirrored) no longer says
    // how long the record was: the walk cannot go on in this ring. Such a ring's owner has
    // stopped itself; a takeover from this mirror reports the damage.
    if (h->type == nvcache::RecordType::kDamaged) {
      options_.logger.warn("the partner's ring holds a DAMAGED marker at position %llu: its records after it "
                           "are not checked for stale epochs", static_cast<unsigned long long>(pos));
      pos = kWalkLost;
      break;
    }
    if (h->type == nvcache::RecordType::kWrite || h->type == nvcache::RecordType::kFence ||
        h->type == nvcache::RecordType::kMeta)
      for (const auto& [volume, epoch] : held)
        if (h->volume_id == volume && h->epoch < epoch)
          return std::pair{RefuseReason::kStaleEpoch,
                           "COMMIT of a record of volume " + std::to_string(volume) + " at epoch " +
                               std::to_string(h->epoch) + " (LSN " + std::to_string(h->lsn) +
                               "): this node took the volume over at epoch " + std::to_string(epoch)};
    pos += nvcache::record_span(*h);
  }
  *next = pos;
  return std::nullopt;
}

Status MirrorReceiver::freeze(std::chrono::milliseconds limit) {
  std::unique_lock lock(freeze_mu_);
  frozen_ = true;
  const uint64_t asked = ++freeze_asked_;
  if (!freeze_cv_.wait_for(lock, limit, [&] { return freeze_done_ >= asked || stop_.load(); }))
    return Status::error(Code::kTimedOut, "the mirror receiver did not freeze within " +
                                              std::to_string(limit.count()) + " ms");
  return Status::ok();
}

void MirrorReceiver::thaw() {
  std::lock_guard lock(freeze_mu_);
  frozen_ = false;
}

MirrorReceiverStats MirrorReceiver::stats() const {
  std::lock_guard lock(mu_);
  MirrorReceiverStats s = stats_;
  if (last_heard_ != Clock::time_point{})
    s.ms_since_heard = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - last_heard_).count();
  return s;
}

bool MirrorReceiver::send(Session& s, const Message& m) {
  // The progress thread is also the one that frees send slots: drain completions, never wait
  // longer than a silent partner is allowed (a sender that takes no bytes is dropped, and the
  // thread goes on: a freeze for a takeover must not wait for it).
  const auto deadline = Clock::now() + options_.peer_silence_limit;
  while (!s.conn->can_post(1)) {
    std::vector<std::vector<std::byte>> got;
    if (!s.conn->poll(&got, std::chrono::milliseconds(1)).is_ok()) return false;
    for (auto& g : got) s.pending.push_back(std::move(g));
    if (Clock::now() >= deadline) {
      options_.logger.warn("the partner takes no messages (no send slot freed in %lld ms): dropping it",
                           static_cast<long long>(options_.peer_silence_limit.count()));
      return false;
    }
  }
  return s.conn->send_message(encode(m, s.seq++)).is_ok();
}

void MirrorReceiver::refuse(Session& s, RefuseReason reason, const std::string& text) {
  options_.logger.warn("refused the partner connection (%s): %s", refuse_reason_name(reason), text.c_str());
  {
    std::lock_guard lock(mu_);
    ++stats_.refused;
    stats_.last_refusal = std::string(refuse_reason_name(reason)) + ": " + text;
  }
  Refuse m;
  m.reason = reason;
  m.text = text.substr(0, kReasonBytes - 1);
  // The connection is dropped right after: give the REFUSE a moment to leave.
  if (send(s, m)) (void)s.conn->poll(nullptr, std::chrono::milliseconds(50));
}

void MirrorReceiver::run() {
  std::unique_ptr<Session> s;
  std::mt19937_64 keys(std::random_device{}());
  auto drop = [&](const char* why) {
    if (s && s->authed) options_.logger.info("partner connection closed: %s", why);
    s.reset();
    std::lock_guard lock(mu_);
    stats_.connected = false;
  };
  while (!stop_.load()) {
    // Frozen for a takeover's replay: nothing of the partner's may change the mirror now.
    bool frozen;
    uint64_t asked;
    {
      std::lock_guard lock(freeze_mu_);
      frozen = frozen_;
      asked = freeze_asked_;
    }
    {
      std::lock_guard lock(mu_);
      stats_.frozen = frozen;
    }
    if (frozen) {
      if (s) drop("frozen: a takeover replays this mirror");
      {
        std::lock_guard lock(freeze_mu_);
        freeze_done_ = asked;
      }
      freeze_cv_.notify_all();
      auto incoming = listener_->accept(std::chrono::milliseconds(20));
      if (incoming.is_ok()) {
        Session turned;
        turned.conn = std::move(*incoming);
        refuse(turned, RefuseReason::kBusy, "node " + std::to_string(options_.node_id) +
                                                " is taking over your volumes and replays its mirror of your log");
      }
      continue;
    }
    // A cut interconnect (fault interconnect.cut): drop the partner and turn away newcomers.
    if (options_.faults && !options_.faults->hit(FaultSite::kInterconnectCut).is_ok()) {
      if (s) drop("interconnect cut (fault interconnect.cut)");
      (void)listener_->accept(std::chrono::milliseconds(20));  // accepted and closed at once
      continue;
    }
    auto incoming = listener_->accept(std::chrono::milliseconds(s ? 0 : 100));
    if (incoming.is_ok()) {
      auto fresh = std::make_unique<Session>();
      fresh->conn = std::move(*incoming);
      if (s && s->authed && Clock::now() - s->last_heard < options_.peer_silence_limit) {
        // Only one sender: a second connection while the first is alive is refused.
        refuse(*fresh, RefuseReason::kBusy,
               "node " + std::to_string(s->partner) + " is already connected and alive");
      } else {
        if (s) options_.logger.warn("replacing a silent partner connection");
        s = std::move(fresh);
        s->key = keys();
        // The mirror region is registered only once the sender has proven the key (on_auth).
        Hello& h = s->hello;
        h.node_id = options_.node_id;
        h.nonce = random_nonce();
        h.mr_bytes = mirror_.size();
        {
          std::lock_guard lock(mu_);
          h.ring_id = stats_.ring_id;
          h.session = stats_.session;
          h.have_pos = stats_.acked_pos;
        }
        if (!send(*s, h)) drop("could not send HELLO");
      }
    }
    if (!s) continue;
    std::vector<std::vector<std::byte>> got;
    // After traffic, poll busily for a moment: COMMITs come in bursts while writers wait.
    const bool busy = Clock::now() - s->last_heard < std::chrono::milliseconds(1);
    Status polled = s->conn->poll(&got, std::chrono::milliseconds(20),
                                  busy ? options_.spin : std::chrono::microseconds(0));
    // Take what else is ready: the COMMITs of one poll are persisted and ACKed together.
    for (int i = 0; i < kDrainPolls && polled.is_ok() && !got.empty(); ++i) {
      const size_t had = got.size();
      polled = s->conn->poll(&got, std::chrono::milliseconds(0));
      if (got.size() == had) break;
    }
    for (auto& g : got) s->pending.push_back(std::move(g));
    bool ok = true;
    while (ok && !s->pending.empty()) {
      auto bytes = std::move(s->pending.front());
      s->pending.pop_front();
      ok = handle(*s, bytes);
    }
    if (ok) ok = flush_commits(*s);
    // A batch not persisted (refused, or its persist failed) is resent and walked again.
    if (!ok && s->batch_from) walk_pos_ = s->batch_walk_from;
    if (!ok) {
      drop("protocol");
    } else if (!polled.is_ok()) {
      drop(polled.message().c_str());
    }
  }
  s.reset();
}

bool MirrorReceiver::handle(Session& s, const std::vector<std::byte>& bytes) {
  auto m = decode(bytes);
  if (!m) {
    refuse(s, RefuseReason::kProtocol, m.status().message());
    return false;
  }
  s.last_heard = Clock::now();
  {
    std::lock_guard lock(mu_);
    last_heard_ = s.last_heard;
  }
  if (!s.authed) {
    if (const auto* a = std::get_if<Auth>(&*m)) return on_auth(s, *a);
    refuse(s, RefuseReason::kProtocol, "expected AUTH first");
    return false;
  }
  if (const auto* c = std::get_if<Commit>(&*m)) return on_commit(s, *c);
  // Anything else is answered after the COMMITs before it.
  if (!flush_commits(s)) return false;
  if (const auto* t = std::get_if<Trim>(&*m)) return on_trim(s, *t);
  if (const auto* hb = std::get_if<Heartbeat>(&*m)) return send(s, *hb);  // echoed for RTT
  refuse(s, RefuseReason::kProtocol, "unexpected message after AUTH");
  return false;
}

bool MirrorReceiver::on_auth(Session& s, const Auth& a) {
  if (!hmac_verify(options_.key, auth_mac_input(s.hello, a), a.mac)) {
    refuse(s, RefuseReason::kBadKey, "node " + std::to_string(a.node_id) + " does not prove the shared key");
    return false;
  }
  if (a.node_id != options_.partner_node_id) {
    refuse(s, RefuseReason::kWrongNode, "node " + std::to_string(a.node_id) +
                                            " is not my partner (node " +
                                            std::to_string(options_.partner_node_id) + ")");
    return false;
  }
  uint64_t seen_epoch;
  {
    std::lock_guard lock(mu_);
    seen_epoch = stats_.partner_epoch;
  }
  if (a.epoch < std::max(seen_epoch, min_epoch_.load())) {
    refuse(s, RefuseReason::kStaleEpoch, "epoch " + std::to_string(a.epoch) + " is older than " +
                                             std::to_string(std::max(seen_epoch, min_epoch_.load())));
    return false;
  }
  uint64_t mirror_ring;
  {
    std::lock_guard lock(mu_);
    mirror_ring = stats_.ring_id;
  }
  {
    std::lock_guard lock(held_mu_);
    if (options_.wait_for_held_epochs && !held_known_) {
      refuse(s, RefuseReason::kBusy, "node " + std::to_string(options_.node_id) +
                                         " is starting: it has not read which volumes it holds yet");
      return false;
    }
    // Rule 8 (membership.md): a run of the partner is staged in the ring this mirror holds (or
    // our takeover has yet to replay it), and this is another ring of the partner's id. Starting
    // over would erase the run's only other copy; the process that has it is the one to talk to.
    const uint32_t held_tag = nvcache::ring_tag(mirror_ring);
    if (mirror_ring != 0 && a.ring_id != mirror_ring &&
        (keep_ring_ || std::find(partner_rings_.begin(), partner_rings_.end(), held_tag) != partner_rings_.end())) {
      char tags[80];
      std::snprintf(tags, sizeof tags, "ring tag %08x", held_tag);
      refuse(s, RefuseReason::kBusy,
             "this mirror holds node " + std::to_string(a.node_id) + "'s NV log of " + tags +
                 ", in which a run of its volumes is staged (their ownership records say so); a process "
                 "with another NV log cannot replace it (a second process with node " +
                 std::to_string(a.node_id) + "'s identity?)");
      return false;
    }
  }
  if (a.ring_bytes != mirror_.size()) {
    refuse(s, RefuseReason::kGeometry, "partner ring of " + std::to_string(a.ring_bytes) +
                                           " bytes, mirror store of " + std::to_string(mirror_.size()));
    return false;
  }
  if (a.trim_lsn == 0 || a.trim_pos % nvcache::kRecordAlign != 0) {
    refuse(s, RefuseReason::kProtocol, "AUTH with an impossible trim point");
    return false;
  }
  nvcache::RingHeader h;
  {
    std::lock_guard lock(mu_);
    h = have_header_ ? header_ : nvcache::RingHeader{};
  }
  h.ring_bytes = a.ring_bytes;
  h.data_bytes = a.ring_bytes - nvcache::kDataOffset;
  h.ring_id = a.ring_id;
  h.session = a.session;
  h.trim_lsn = a.trim_lsn;
  h.trim_pos = a.trim_pos;
  h.trim_session = a.trim_session;
  h.node_id = a.node_id;
  h.flags = nvcache::kRingFlagMirror;
  h.header_seq = have_header_ ? h.header_seq + 1 : 1;
  Status st;
  if (!have_header_) {  // a new mirror: both header copies valid, like a freshly formatted ring
    nvcache::RingHeader first = h;
    first.header_seq = 0;
    st = nvcache::write_ring_header(mirror_, first);
  }
  if (st.is_ok()) st = nvcache::write_ring_header(mirror_, h);
  if (!st.is_ok()) {
    options_.logger.error("cannot write the mirror header: %s", st.to_string().c_str());
    return false;
  }
  bool same = false;
  {
    std::lock_guard lock(mu_);
    same = stats_.ring_id == a.ring_id && stats_.session == a.session;
    header_ = h;
    have_header_ = true;
    stats_.connected = true;
    stats_.partner_epoch = a.epoch;
    if (stats_.ring_id != a.ring_id) stats_.committed_pos = 0;  // another ring: nothing of it here yet
    stats_.ring_id = a.ring_id;
    stats_.session = a.session;
    stats_.trim_lsn = a.trim_lsn;
    if (!same) stats_.acked_pos = a.trim_pos;
  }
  if (!same) walk_pos_ = a.trim_pos;  // the mirror starts over at the sender's trim point
  s.partner = a.node_id;
  auto region = s.conn->register_region(mirror_.mapping(), mirror_.size(), true, s.key);
  if (!region) {
    options_.logger.error("cannot register the mirror store: %s", region.status().to_string().c_str());
    return false;
  }
  s.region = *region;
  // The sender resumes from what we said we hold (same ring and session), or from its trim.
  s.first_pos = {a.trim_pos};
  if (s.hello.ring_id == a.ring_id && s.hello.session == a.session) s.first_pos.push_back(s.hello.have_pos);
  Accept acc;
  acc.mr_key = s.region.key;
  acc.mr_base = s.region.base;
  acc.mac = hmac(options_.key, accept_mac_input(a, options_.node_id, acc.mr_key, acc.mr_base));
  if (!send(s, acc)) return false;
  s.authed = true;
  options_.logger.info("partner node %u connected over %s (ring %016llx, session %u, epoch %llu)",
                       a.node_id, s.conn->provider().c_str(), static_cast<unsigned long long>(a.ring_id),
                       a.session, static_cast<unsigned long long>(a.epoch));
  return true;
}

bool MirrorReceiver::on_commit(Session& s, const Commit& c) {
  if (c.epoch < min_epoch_.load()) {
    refuse(s, RefuseReason::kStaleEpoch, "COMMIT at epoch " + std::to_string(c.epoch) +
                                             ", older than " + std::to_string(min_epoch_.load()));
    return false;
  }
  const uint64_t data = mirror_.size() - nvcache::kDataOffset;
  if (c.to_pos < c.from_pos || c.to_pos - c.from_pos > data) {
    refuse(s, RefuseReason::kProtocol, "COMMIT of an impossible range [" + std::to_string(c.from_pos) +
                                           ", " + std::to_string(c.to_pos) + ")");
    return false;
  }
  // Ranges follow each other without a gap: an ACK says every byte before it is persisted.
  const bool contiguous = s.expect_pos ? c.from_pos == *s.expect_pos
                                       : std::find(s.first_pos.begin(), s.first_pos.end(), c.from_pos) != s.first_pos.end();
  if (!contiguous) {
    refuse(s, RefuseReason::kProtocol, "COMMIT from position " + std::to_string(c.from_pos) +
                                           " leaves a gap");
    return false;
  }
  // A batch never spans more than the ring: its persist would wrap onto itself.
  if (s.batch_from && c.to_pos - *s.batch_from > data && !flush_commits(s)) return false;
  // A resync from the trim point, although the mirror could have resumed: the walk starts there.
  if (!s.expect_pos && c.from_pos != s.hello.have_pos) walk_pos_ = c.from_pos;
  uint64_t walked = 0;
  if (auto refused = walk_committed(c.to_pos, &walked)) {
    refuse(s, refused->first, refused->second);
    return false;
  }
  if (!s.batch_from) {
    s.batch_from = c.from_pos;
    s.batch_walk_from = walk_pos_;
  }
  if (c.upto_lsn) s.batch_lsn = c.upto_lsn;
  ++s.batch_commits;
  s.expect_pos = c.to_pos;
  walk_pos_ = walked;
  return true;
}

bool MirrorReceiver::flush_commits(Session& s) {
  if (!s.batch_from) return true;
  const uint64_t from = *s.batch_from, to = *s.expect_pos, upto_lsn = s.batch_lsn;
  // Persist what the sender wrote into the region: the write completed at the sender is not a
  // persisted write here until this returns.
  const uint64_t data = mirror_.size() - nvcache::kDataOffset;
  const uint64_t off = from % data, len = to - from;
  const uint64_t first = std::min(len, data - off);
  Status st = mirror_.persist(nvcache::kDataOffset + off, first);
  if (st.is_ok() && len > first) st = mirror_.persist(nvcache::kDataOffset, len - first);
  uint64_t ring_id = 0;
  {
    std::lock_guard lock(mu_);
    ring_id = stats_.ring_id;
  }
  // The commit mark goes with the bytes it vouches for, before the ACK.
  if (st.is_ok()) st = write_commit_mark(mirror_, ring_id, to);
  if (st.is_ok() && options_.faults) st = options_.faults->hit(FaultSite::kMirrorBeforeAck);
  if (!st.is_ok()) {
    options_.logger.error("mirror persist failed: %s", st.to_string().c_str());
    return false;  // no ACK (the batch stays, and is dropped with the connection)
  }
  const uint64_t commits = s.batch_commits;
  s.batch_from.reset();
  s.batch_lsn = s.batch_commits = 0;
  {
    std::lock_guard lock(mu_);
    stats_.acked_pos = to;
    stats_.committed_pos = std::max(stats_.committed_pos, to);
    if (upto_lsn) stats_.acked_lsn = upto_lsn;
    stats_.bytes_committed += len;
    stats_.commits += commits;
    ++stats_.acks;
  }
  return send(s, Ack{upto_lsn, to});
}

bool MirrorReceiver::on_trim(Session& s, const Trim& t) {
  // A node that has not learned of a takeover trims nothing (it may be discarding what the
  // takeover is about to replay).
  if (t.epoch < min_epoch_.load()) {
    refuse(s, RefuseReason::kStaleEpoch, "TRIM at epoch " + std::to_string(t.epoch) +
                                             ", older than " + std::to_string(min_epoch_.load()));
    return false;
  }
  nvcache::RingHeader h;
  {
    std::lock_guard lock(mu_);
    h = header_;
  }
  if (t.trim_lsn <= h.trim_lsn) return true;
  h.trim_lsn = t.trim_lsn;
  h.trim_pos = t.trim_pos;
  h.trim_session = t.trim_session;
  h.header_seq++;
  if (Status st = nvcache::write_ring_header(mirror_, h); !st.is_ok()) {
    options_.logger.error("cannot write the mirror header: %s", st.to_string().c_str());
    return false;
  }
  std::lock_guard lock(mu_);
  header_ = h;
  stats_.trim_lsn = t.trim_lsn;
  return true;
}

}  // namespace hafs::interconnect
