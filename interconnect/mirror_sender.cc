#include "interconnect/mirror_sender.h"

#include <algorithm>
#include <random>

#include "nvcache/log_format.h"

namespace hafs::interconnect {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

const char* mirror_state_name(MirrorState s) {
  switch (s) {
    case MirrorState::kDisconnected: return "disconnected";
    case MirrorState::kConnecting: return "connecting";
    case MirrorState::kResyncing: return "resyncing";
    case MirrorState::kMirroring: return "mirroring";
  }
  return "?";
}

MirrorSender::MirrorSender(nvcache::Log& log, MirrorSenderOptions options)
    : log_(log),
      options_(std::move(options)),
      data_bytes_(log.data_bytes()),
      own_transport_(options_.transport ? nullptr : std::make_unique<FabricTransportFactory>(options_.fabric)),
      transport_(options_.transport ? options_.transport : own_transport_.get()) {
  bounce_.resize(options_.window_bytes);
  epoch_.store(options_.epoch);
  filled_ = log_.filled_point();
  mirrored_pos_ = filled_.pos;  // what is in the log now was recovered and destaged, or is ours to ship
  if (options_.outdated_at_start) {
    mark_ = Mark::kMarked;           // whatever the log holds may be missing from the mirror
    unmirrored_upto_ = filled_.pos;
    link_outdated_.store(true);
  }
  policy_ = [limit = options_.mirror_wait](milliseconds waited) { return waited >= limit; };
}

MirrorSender::~MirrorSender() { stop(); }

void MirrorSender::start() {
  std::lock_guard lock(mu_);
  if (!thread_.joinable() && !stop_) thread_ = std::thread([this] { run(); });
}

void MirrorSender::stop() {
  {
    std::lock_guard lock(mu_);
    if (trim_dirty_ && conn_) {  // a clean shutdown destaged everything: let the mirror know
      trim_dirty_ = false;
      send_trim_locked(trim_header_);
    }
    stop_ = true;
  }
  wake_cv_.notify_all();
  mirrored_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  drop_locked("stopped");
}

void MirrorSender::set_degrade_policy(DegradePolicy policy) {
  std::lock_guard lock(mu_);
  policy_ = std::move(policy);
}

void MirrorSender::set_epoch(uint64_t epoch) {
  uint64_t cur = epoch_.load();
  while (cur < epoch && !epoch_.compare_exchange_weak(cur, epoch)) {
  }
}

// Without mu_: membership calls this from its tick, which must not wait for a writer posting to
// a hung partner. Waiters look at degraded_ at least every 50 ms, so a notify without the lock
// is enough.
void MirrorSender::force_degraded(bool degraded) {
  if (!degraded || degraded_.exchange(true)) return;
  options_.logger.warn("membership: not mirroring to node %u for now (partner down, cut off, or "
                       "resyncing): writes are acknowledged from the local NV log alone (DEGRADED)",
                       options_.partner_node_id);
  mirrored_cv_.notify_all();
}

void MirrorSender::set_state_locked(MirrorState s, const std::string& why) {
  if (s == state_) return;
  options_.logger.info("mirror to node %u: %s -> %s (%s)", options_.partner_node_id,
                       mirror_state_name(state_), mirror_state_name(s), why.c_str());
  state_ = s;
  link_state_.store(s, std::memory_order_release);
}

void MirrorSender::drop_locked(const std::string& why) {
  if (conn_) {
    options_.logger.warn("mirror connection to node %u lost: %s", options_.partner_node_id, why.c_str());
    conn_->unregister(bounce_region_);
    conn_.reset();
    counters_.last_error = why;
  }
  commit_times_.clear();
  set_state_locked(MirrorState::kDisconnected, why);
}

void MirrorSender::send_locked(const Message& m) {
  if (!conn_) return;
  Status s = conn_->send_message(encode(m, seq_++));
  if (!s.is_ok()) drop_locked(s.message());
  last_sent_ = Clock::now();
}

void MirrorSender::send_trim_locked(const nvcache::RingHeader& header) {
  send_locked(Trim{header.trim_lsn, header.trim_pos, header.trim_session, epoch_.load()});
  told_trim_pos_ = std::max(told_trim_pos_, header.trim_pos);
}

void MirrorSender::filled(nvcache::TrimPoint filled) {
  std::lock_guard lock(mu_);
  if (filled.lsn <= filled_.lsn) return;  // hooks may arrive out of order
  filled_ = filled;
  ship_locked();
}

void MirrorSender::ship_locked() {
  if (!conn_ || (state_ != MirrorState::kResyncing && state_ != MirrorState::kMirroring)) return;
  while (conn_ && ship_pos_ < filled_.pos) {
    const uint64_t inflight = ship_pos_ - conn_acked_pos_;
    if (inflight >= bounce_.size() || !conn_->can_post(2)) return;  // the next ACK resumes it
    const uint64_t off = ship_pos_ % data_bytes_;
    const uint64_t boff = ship_pos_ % bounce_.size();
    const uint64_t len = std::min({filled_.pos - ship_pos_, uint64_t{options_.max_chunk_bytes},
                                   bounce_.size() - inflight, data_bytes_ - off, bounce_.size() - boff});
    if (ship_pos_ + len > told_trim_pos_ + data_bytes_) {
      // These bytes overwrite ring space the mirror still counts as live (the TRIM of a destage
      // may not have gone out yet): a scan of the mirror from its old trim point would end at
      // once, losing every record after it. Tell it the trim point first; the log's header has
      // it before the space can be reused.
      const uint64_t told = told_trim_pos_;
      send_trim_locked(log_.header());
      if (!conn_) return;
      // The TRIM took a send slot: look again (can_post) before the write and its COMMIT.
      if (told_trim_pos_ != told) continue;
    }
    std::span<std::byte> chunk(bounce_.data() + boff, len);
    if (Status s = log_.store().read(nvcache::kDataOffset + off, chunk); !s.is_ok()) {
      counters_.last_error = s.to_string();
      return;
    }
    Status s = conn_->write(chunk.data(), len, bounce_region_.desc, remote_, nvcache::kDataOffset + off);
    if (s.is_ok() && options_.faults) s = options_.faults->hit(FaultSite::kMirrorAfterRemoteWrite);
    if (!s.is_ok()) {
      drop_locked(s.message());
      return;
    }
    const uint64_t to = ship_pos_ + len;
    send_locked(Commit{ship_pos_, to, to == filled_.pos ? filled_.lsn - 1 : 0, epoch_.load()});
    commit_times_.emplace_back(to, Clock::now());
    ship_pos_ = to;
    counters_.bytes_shipped += len;
  }
}

Status MirrorSender::wait_mirrored(uint64_t end_pos) {
  std::unique_lock lock(mu_);
  const auto start = Clock::now();
  ++waiting_writers_;
  struct Leave {
    MirrorSender* self;
    ~Leave() { --self->waiting_writers_; }
  } leave{this};
  for (;;) {
    if (mirrored_pos_ >= end_pos) return Status::ok();
    if (stop_) return Status::error(Code::kAborted, "mirror stopped");
    if (degraded_) {
      Status s = ack_without_mirror_locked(lock, end_pos);
      if (s.code() != Code::kInProgress) return s;
      continue;
    }
    last_wait_ = Clock::now();
    // Poll for the ACK ourselves while nobody else does: the writer that reads its own ACK
    // saves the wake-up of a thread that would hand it over (wire-protocol.md §7, "Who reads
    // the ACK"). Otherwise the poller of the moment hands it over through mirrored_cv_.
    std::unique_lock token(poll_mu_, std::try_to_lock);
    if (token && conn_) {
      const std::shared_ptr<Transport> c = conn_;
      const auto spin = ack_spin_locked();
      lock.unlock();
      poll_holding_token(c, milliseconds(1), spin, true);
      token.unlock();
      lock.lock();
      // A writer that waits behind this one takes over the polling.
      if (mirrored_pos_ >= end_pos && waiting_writers_ > 1) mirrored_cv_.notify_all();
    } else {
      if (token) token.unlock();
      mirrored_cv_.wait_for(lock, milliseconds(50),
                            [&] { return mirrored_pos_ >= end_pos || degraded_ || stop_; });
    }
    if (mirrored_pos_ >= end_pos || degraded_ || stop_) continue;
    const auto waited = duration_cast<milliseconds>(Clock::now() - start);
    if (policy_(waited)) {
      degraded_ = true;
      options_.logger.warn("partner node %u has not acknowledged for %lld ms (%s): writes are now "
                           "acknowledged from the local NV log alone (DEGRADED)",
                           options_.partner_node_id, static_cast<long long>(waited.count()),
                           mirror_state_name(state_));
      mirrored_cv_.notify_all();
    }
  }
}

std::chrono::microseconds MirrorSender::ack_spin_locked() const {
  // While an ACK is due, poll busily for a moment. Only while ACKs come back within the spin,
  // though: for large records (a 1 MiB chunk takes a millisecond) the spin would end before the
  // ACK came and only take the CPU that shipping and persisting need (docs/performance.md,
  // "Busy-poll").
  const bool awaiting_ack = ship_pos_ > conn_acked_pos_;
  const int64_t last_us = counters_.last_ack_latency_us;
  return awaiting_ack && last_us <= options_.ack_spin.count() ? options_.ack_spin
                                                              : std::chrono::microseconds(0);
}

void MirrorSender::poll_holding_token(const std::shared_ptr<Transport>& c, milliseconds timeout,
                                      std::chrono::microseconds spin, bool by_writer) {
  std::vector<std::vector<std::byte>> got;
  Status polled = c->poll(&got, timeout, spin);
  for (const auto& g : got) handle(c, g, by_writer);
  if (!polled.is_ok()) {
    std::lock_guard lock(mu_);
    if (conn_ == c) drop_locked(polled.message());
  }
}

Status MirrorSender::ack_without_mirror_locked(std::unique_lock<std::mutex>& lock, uint64_t end_pos) {
  if (!options_.mark_outdated || mark_ == Mark::kMarked) {
    unmirrored_upto_ = std::max(unmirrored_upto_, end_pos);
    return Status::ok();
  }
  if (mark_ != Mark::kClean) {  // another writer marks, or the progress thread clears: wait
    mirrored_cv_.wait_for(lock, milliseconds(50));
    return Status::error(Code::kInProgress, "outdated mark being written");
  }
  mark_ = Mark::kMarking;
  const uint64_t from = mirrored_pos_;
  const uint64_t lag = filled_.pos > mirrored_pos_ ? filled_.pos - mirrored_pos_ : 0;
  lock.unlock();
  Status s = options_.mark_outdated(from, lag);
  lock.lock();
  mark_ = s.is_ok() ? Mark::kMarked : Mark::kClean;
  link_outdated_.store(s.is_ok(), std::memory_order_release);
  mirrored_cv_.notify_all();
  if (s.is_ok()) {
    options_.logger.warn("marked node %u's mirror of this NV log outdated from position %llu (%llu "
                         "bytes it lacks now): it cannot take over from it until a resync",
                         options_.partner_node_id, static_cast<unsigned long long>(from),
                         static_cast<unsigned long long>(lag));
  } else if (s.code() == Code::kStaleEpoch) {
    // The node lost a volume meanwhile (the hook's ownership check): no write is acknowledged
    // without the mirror now; the writes fail, the mark is tried again by the next one.
    options_.logger.error("not acknowledging without the mirror: %s", s.to_string().c_str());
    return s;
  } else {
    // Not acknowledged until the mark is durable: the writes wait, the mark is tried again.
    if (counters_.last_error != s.to_string())
      options_.logger.error("cannot mark the partner's mirror outdated (writes wait): %s",
                            s.to_string().c_str());
    counters_.last_error = s.to_string();
    mirrored_cv_.wait_for(lock, milliseconds(100), [&] { return stop_; });
  }
  return Status::error(Code::kInProgress, "outdated mark written");
}

void MirrorSender::maybe_clear_outdated() {
  std::unique_lock lock(mu_);
  if (mark_ != Mark::kMarked || !options_.clear_outdated || degraded_ || !conn_ ||
      state_ != MirrorState::kMirroring || conn_acked_pos_ < unmirrored_upto_)
    return;
  mark_ = Mark::kClearing;
  lock.unlock();
  Status s = options_.clear_outdated();
  lock.lock();
  mark_ = s.is_ok() ? Mark::kClean : Mark::kMarked;
  link_outdated_.store(!s.is_ok(), std::memory_order_release);
  mirrored_cv_.notify_all();
  if (s.is_ok())
    options_.logger.info("node %u's mirror of this NV log has caught up: the outdated mark is cleared",
                         options_.partner_node_id);
  else
    options_.logger.warn("cannot clear the outdated mark (tried again): %s", s.to_string().c_str());
}

void MirrorSender::trimmed(const nvcache::RingHeader& header) {
  std::lock_guard lock(mu_);
  trim_header_ = header;
  trim_dirty_ = true;
}

void MirrorSender::handle(const std::shared_ptr<Transport>& c, const std::vector<std::byte>& bytes,
                          bool by_writer) {
  std::lock_guard lock(mu_);
  // A message of a connection dropped meanwhile (by another thread) says nothing about this one:
  // its positions are those of an older handshake.
  if (conn_ != c) return;
  auto m = decode(bytes);
  if (!m) {
    drop_locked("garbage from the partner: " + m.status().message());
    return;
  }
  last_heard_ = Clock::now();
  link_heard_ns_.store(last_heard_.time_since_epoch().count(), std::memory_order_release);
  if (const auto* a = std::get_if<Ack>(&*m)) {
    if (a->acked_pos <= conn_acked_pos_ || a->acked_pos > ship_pos_) {
      drop_locked("ACK of position " + std::to_string(a->acked_pos) + " outside (" +
                  std::to_string(conn_acked_pos_) + ", " + std::to_string(ship_pos_) + "]");
      return;
    }
    conn_acked_pos_ = a->acked_pos;
    ++counters_.acks;
    if (by_writer) ++counters_.acks_read_by_writers;
    mirrored_pos_ = std::max(mirrored_pos_, a->acked_pos);
    acked_lsn_ = std::max(acked_lsn_, a->acked_lsn);
    while (!commit_times_.empty() && commit_times_.front().first <= a->acked_pos) {
      ack_latency_.record(last_heard_ - commit_times_.front().second);
      if (commit_times_.front().first == a->acked_pos)
        counters_.last_ack_latency_us =
            std::chrono::duration_cast<std::chrono::microseconds>(last_heard_ - commit_times_.front().second).count();
      commit_times_.pop_front();
    }
    if (degraded_ && state_ == MirrorState::kMirroring && conn_acked_pos_ >= filled_.pos) {
      degraded_ = false;  // the policy gave up while connected; the partner has caught up
      options_.logger.info("writes are mirrored again (no longer degraded)");
    }
    if (state_ == MirrorState::kResyncing && conn_acked_pos_ >= resync_target_) {
      resync_ended_ = last_heard_;
      set_state_locked(MirrorState::kMirroring, "the mirror holds everything up to position " +
                                                    std::to_string(resync_target_));
      if (degraded_) {
        degraded_ = false;
        options_.logger.info("writes are mirrored again (no longer degraded)");
      }
    }
    mirrored_cv_.notify_all();
    ship_locked();
  } else if (std::holds_alternative<Heartbeat>(*m)) {
    // heard: that is all a heartbeat says
  } else if (const auto* r = std::get_if<Refuse>(&*m)) {
    drop_locked(std::string("partner refused: ") + refuse_reason_name(r->reason) + ": " + r->text);
  } else {
    drop_locked(std::string("unexpected ") + msg_type_name(static_cast<MsgType>(m->index() + 1)) +
                " from the partner");
  }
}

namespace {
// Waits for the next message during the handshake.
Result<Message> next_message(Transport& c, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::vector<std::vector<std::byte>> got;
  while (got.empty()) {
    if (Clock::now() > deadline) return Status::error(Code::kTimedOut, "handshake timed out");
    HAFS_RETURN_IF_ERROR(c.poll(&got, milliseconds(50)));
  }
  return decode(got.front());
}
}  // namespace

bool MirrorSender::connect_and_handshake() {
  auto fail = [&](const std::string& why) {
    std::lock_guard lock(mu_);
    if (counters_.last_error != why)
      options_.logger.warn("mirror to node %u: %s", options_.partner_node_id, why.c_str());
    counters_.last_error = why;
    return false;
  };
  auto conn = transport_->connect(options_.partner_host, options_.partner_port, options_.connect_timeout);
  if (!conn) return fail(conn.status().message());
  std::shared_ptr<Transport> c = std::move(*conn);
  {
    std::lock_guard lock(mu_);
    set_state_locked(MirrorState::kConnecting, "connected to " + c->peer() + "; handshake");
  }
  auto handshake_failed = [&](const std::string& why) {
    {
      std::lock_guard lock(mu_);
      set_state_locked(MirrorState::kDisconnected, why);
    }
    return fail(why);
  };
  auto first = next_message(*c, milliseconds(2000));
  if (!first) return handshake_failed("handshake: " + first.status().message());
  if (const auto* r = std::get_if<Refuse>(&*first))
    return handshake_failed(std::string("partner refused: ") + refuse_reason_name(r->reason) + ": " + r->text);
  const auto* hello = std::get_if<Hello>(&*first);
  if (!hello) return handshake_failed("handshake: the partner did not start with HELLO");
  if (hello->node_id != options_.partner_node_id)
    return handshake_failed("handshake: node " + std::to_string(hello->node_id) + " answered, not node " +
                            std::to_string(options_.partner_node_id));
  if (hello->mr_bytes != log_.store().size())
    return handshake_failed("partner mirror holds " + std::to_string(hello->mr_bytes) + " bytes, this ring " +
                std::to_string(log_.store().size()));
  const nvcache::RingHeader header = log_.header();
  const nvcache::TrimPoint filled = log_.filled_point();
  Auth auth;
  auth.node_id = options_.node_id;
  auth.epoch = epoch_.load();
  auth.ring_id = header.ring_id;
  auth.ring_bytes = log_.store().size();
  auth.session = header.session;
  auth.trim_session = header.trim_session;
  auth.trim_lsn = header.trim_lsn;
  auth.trim_pos = header.trim_pos;
  auth.nonce = random_nonce();
  auth.mac = hmac(options_.key, auth_mac_input(*hello, auth));
  if (Status s = c->send_message(encode(auth)); !s.is_ok()) return handshake_failed(s.message());
  auto reply = next_message(*c, milliseconds(2000));
  if (!reply) return handshake_failed("handshake: " + reply.status().message());
  if (const auto* r = std::get_if<Refuse>(&*reply))
    return handshake_failed(std::string("partner refused: ") + refuse_reason_name(r->reason) + ": " + r->text);
  const auto* accept = std::get_if<Accept>(&*reply);
  if (!accept) return handshake_failed("handshake: expected ACCEPT");
  if (!hmac_verify(options_.key, accept_mac_input(auth, hello->node_id, accept->mr_key, accept->mr_base),
                   accept->mac))
    return handshake_failed("handshake: the partner does not prove the shared key");
  auto bounce = c->register_region(bounce_.data(), bounce_.size(), false, std::random_device{}());
  if (!bounce) return handshake_failed(bounce.status().message());

  // What the mirror lacks: from where it says it holds this ring and session, else from the
  // trim point (a new session of ours may have rewritten what came after its position).
  const bool same = hello->ring_id == header.ring_id && hello->session == header.session &&
                    hello->have_pos >= header.trim_pos && hello->have_pos <= filled.pos;
  const uint64_t from = same ? hello->have_pos : header.trim_pos;
  std::lock_guard lock(mu_);
  if (stop_) {
    c->unregister(*bounce);
    return false;
  }
  conn_ = c;
  remote_ = Region{nullptr, nullptr, accept->mr_key, accept->mr_base};
  bounce_region_ = *bounce;
  filled_ = std::max(filled_, filled, [](auto& a, auto& b) { return a.lsn < b.lsn; });
  ship_pos_ = conn_acked_pos_ = from;
  told_trim_pos_ = header.trim_pos;  // AUTH carried it
  // The mirror holds every byte before `from` (it said so, e.g. after its restart found bytes
  // whose ACK never came): writes waiting for them are mirrored, and no ACK will name them.
  mirrored_pos_ = std::max(mirrored_pos_, from);
  resync_target_ = filled_.pos;
  resync_from_ = from;
  last_heard_ = last_sent_ = resync_started_ = Clock::now();
  link_heard_ns_.store(last_heard_.time_since_epoch().count(), std::memory_order_release);
  resync_ended_ = {};
  ++counters_.connects;
  counters_.last_error.clear();
  set_state_locked(MirrorState::kResyncing,
                   "connected over " + c->provider() + "; " + std::to_string(resync_target_ - from) +
                       " bytes to resync from position " + std::to_string(from));
  if (from >= resync_target_) {
    set_state_locked(MirrorState::kMirroring, "nothing to resync");
    resync_ended_ = resync_started_;
    if (degraded_) {
      degraded_ = false;
      options_.logger.info("writes are mirrored again (no longer degraded)");
    }
  }
  ship_locked();
  mirrored_cv_.notify_all();
  return true;
}

void MirrorSender::run() {
  for (;;) {
    maybe_clear_outdated();
    std::shared_ptr<Transport> c;
    std::chrono::microseconds spin{0};
    bool writers_poll = false;
    {
      std::lock_guard lock(mu_);
      if (stop_) return;
      c = conn_;
      spin = ack_spin_locked();
      writers_poll = waiting_writers_ > 0 || Clock::now() - last_wait_ < kWritersPollWindow;
    }
    // A cut interconnect (fault interconnect.cut): drop the connection, do not reconnect.
    if (options_.faults) {
      if (Status cut = options_.faults->hit(FaultSite::kInterconnectCut); !cut.is_ok()) {
        std::unique_lock lock(mu_);
        if (conn_) drop_locked("interconnect cut (fault interconnect.cut: " + cut.message() + ")");
        wake_cv_.wait_for(lock, options_.reconnect_interval, [&] { return stop_; });
        continue;
      }
    }
    if (!c) {
      if (!connect_and_handshake()) {
        std::unique_lock lock(mu_);
        wake_cv_.wait_for(lock, options_.reconnect_interval, [&] { return stop_; });
      }
      continue;
    }
    if (writers_poll) {
      // Writers are waiting, or were a moment ago: they read the ACKs themselves. Blocking in
      // the completion queue here would hold the poller token and hand every ACK over through
      // a wake-up; look in now and then instead, for heartbeats, trims and a silent partner.
      {
        std::unique_lock lock(mu_);
        wake_cv_.wait_for(lock, kLookInterval, [&] { return stop_; });
      }
      if (std::unique_lock token(poll_mu_, std::try_to_lock); token)
        poll_holding_token(c, milliseconds(0), std::chrono::microseconds(0), false);
    } else {
      std::lock_guard token(poll_mu_);
      poll_holding_token(c, milliseconds(20), spin, false);
    }
    std::lock_guard lock(mu_);
    if (conn_ != c) continue;  // dropped while polling
    const auto now = Clock::now();
    if (now - last_heard_ > options_.peer_silence_limit) {
      drop_locked("partner silent for " +
                  std::to_string(duration_cast<milliseconds>(now - last_heard_).count()) + " ms");
      continue;
    }
    // Degraded by membership while the partner is connected, idle and fully caught up: there is
    // nothing left to resync, and no ACK will come to end it.
    if (degraded_ && state_ == MirrorState::kMirroring && ship_pos_ == conn_acked_pos_ &&
        conn_acked_pos_ >= filled_.pos) {
      degraded_ = false;
      options_.logger.info("writes are mirrored again (no longer degraded)");
    }
    // A poller frees send slots: never wait for one here (a writer may hold the token).
    if (trim_dirty_ && conn_->can_post(1)) {
      trim_dirty_ = false;
      send_trim_locked(trim_header_);
    }
    if (conn_ && now - last_sent_ >= options_.heartbeat_interval && conn_->can_post(1))
      send_locked(Heartbeat{seq_, static_cast<uint64_t>(duration_cast<std::chrono::microseconds>(
                                                              now.time_since_epoch()).count())});
    ship_locked();
  }
}

std::optional<Hello> probe_partner_mirror(TransportFactory& transport, const std::string& host,
                                         const std::string& port, uint32_t partner_node_id,
                                         milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    const auto left = duration_cast<milliseconds>(deadline - Clock::now());
    auto conn = transport.connect(host, port, std::max(left, milliseconds(1)));
    if (conn) {
      // The receiver speaks first; hanging up before AUTH leaves its mirror as it was.
      auto first = next_message(**conn, std::max(duration_cast<milliseconds>(deadline - Clock::now()), milliseconds(1)));
      if (!first) return std::nullopt;
      const auto* hello = std::get_if<Hello>(&*first);
      if (!hello || hello->node_id != partner_node_id) return std::nullopt;
      return *hello;
    }
    std::this_thread::sleep_for(std::min(milliseconds(50), limit));  // nobody listens yet: retry
  }
  return std::nullopt;
}

MirrorLink MirrorSender::link() const {
  MirrorLink l;
  l.state = link_state_.load(std::memory_order_acquire);
  l.degraded = degraded_.load(std::memory_order_acquire);
  l.outdated_marked = link_outdated_.load(std::memory_order_acquire);
  if (const int64_t heard = link_heard_ns_.load(std::memory_order_acquire); heard != 0)
    l.ms_since_heard = duration_cast<milliseconds>(Clock::now() - Clock::time_point(Clock::duration(heard))).count();
  return l;
}

MirrorStats MirrorSender::stats() const {
  std::lock_guard lock(mu_);
  MirrorStats s = counters_;
  s.state = state_;
  s.degraded = degraded_;
  s.outdated_marked = mark_ == Mark::kMarked || mark_ == Mark::kClearing;
  s.filled_pos = filled_.pos;
  s.mirrored_pos = mirrored_pos_;
  s.lag_bytes = filled_.pos > mirrored_pos_ ? filled_.pos - mirrored_pos_ : 0;
  s.lag_lsns = filled_.lsn - 1 > acked_lsn_ ? filled_.lsn - 1 - acked_lsn_ : 0;
  s.resync_bytes_left = state_ == MirrorState::kResyncing && resync_target_ > conn_acked_pos_
                            ? resync_target_ - conn_acked_pos_ : 0;
  if (resync_started_ != Clock::time_point{}) {
    s.resync_bytes_total = resync_target_ - std::min(resync_from_, resync_target_);
    s.resync_bytes_done = std::min(s.resync_bytes_total, conn_acked_pos_ - std::min(resync_from_, conn_acked_pos_));
    const bool running = state_ == MirrorState::kResyncing;
    const auto end = running || resync_ended_ == Clock::time_point{} ? Clock::now() : resync_ended_;
    const double secs = std::chrono::duration<double>(end - resync_started_).count();
    if (secs > 0) s.resync_rate_bytes_per_s = static_cast<double>(s.resync_bytes_done) / secs;
    if (running && s.resync_rate_bytes_per_s > 0)
      s.resync_eta_ms = static_cast<int64_t>(1000.0 * static_cast<double>(s.resync_bytes_left) / s.resync_rate_bytes_per_s);
  }
  if (last_heard_ != Clock::time_point{})
    s.ms_since_heard = duration_cast<milliseconds>(Clock::now() - last_heard_).count();
  return s;
}

}  // namespace hafs::interconnect
