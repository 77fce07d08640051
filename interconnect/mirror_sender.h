// MirrorSender: the primary side of mirroring, nvcache's Replicator.
//
// It keeps one connection to the partner's MirrorReceiver and ships the NV log's bytes into the
// partner's mirror region: one-sided writes at the same ring offsets, each followed by a COMMIT
// of that byte range; the partner persists the range and ACKs the position. A write is
// acknowledged to the client once the local log and the partner both hold it (I1), or once the
// degrade policy has decided to go on without the partner (degraded: status says so).
//
// Connection states (one transition function, a log line per transition):
//   kDisconnected  no connection; the progress thread retries every reconnect_interval
//   kConnecting    connected, handshake (HELLO / AUTH / ACCEPT) running
//   kResyncing     handshake done; shipping what the mirror lacks, from its reported position
//                  when it holds this ring and session, else from the trim point
//   kMirroring     the mirror has everything that was filled when the resync started
// The window (bytes shipped and not yet acknowledged) is bounded by window_bytes; it is also the
// size of the registered bounce buffer the bytes are shipped from.
//
// Threading: filled() and wait_mirrored() run on appender threads; one progress thread connects,
// sends heartbeats and trims. The completion queue is read by whoever holds the poller token
// (poll_mu_): a waiting writer when it can take it (it then reads its own ACK), else the progress
// thread. mu_ guards all state; poll_mu_ is taken before mu_, or with try_lock under it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fault.h"
#include "base/histogram.h"
#include "base/logger.h"
#include "interconnect/auth.h"
#include "interconnect/fabric.h"
#include "nvcache/log_writer.h"
#include "nvcache/replicator.h"

namespace hafs::interconnect {

struct MirrorSenderOptions {
  Logger logger;
  FabricConfig fabric;                 // used when `transport` is null
  TransportFactory* transport = nullptr;  // not owned; null: libfabric with `fabric`
  std::string partner_host = "127.0.0.1";
  std::string partner_port;
  uint32_t node_id = 0;
  uint32_t partner_node_id = 0;
  Key key{};
  uint64_t epoch = 1;                     // the first AUTH's epoch; set_epoch() raises it
  size_t window_bytes = 16u << 20;        // shipped and not yet acknowledged, at most
  size_t max_chunk_bytes = 1u << 20;      // one RMA write + COMMIT carries at most this
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds reconnect_interval{100};
  std::chrono::milliseconds heartbeat_interval{100};
  std::chrono::milliseconds peer_silence_limit{1000};  // no message for this long: drop
  std::chrono::milliseconds mirror_wait{3000};  // a write waits this long before the policy is asked
  // Busy-poll this long while an ACK is due, as long as the last ACK came back within it.
  std::chrono::microseconds ack_spin{200};
  FaultRegistry* faults = nullptr;
  // Invariant I7 (docs/membership.md, "The outdated mirror"). Called before the first write the
  // partner's mirror lacks is acknowledged, with the first ring position it may lack and the
  // lag; it must return OK only once that is durable on the shared medium. While it fails, the
  // writes wait (and it is retried); kStaleEpoch (the node lost a volume meanwhile) fails the
  // writes instead. Null: no membership, nothing to mark.
  std::function<Status(uint64_t from_pos, uint64_t lag_bytes)> mark_outdated;
  // Called once the partner's mirror holds every byte acknowledged without it (the resync has
  // caught up); OK once the mark is cleared on the medium.
  std::function<Status()> clear_outdated;
  bool outdated_at_start = false;  // an earlier life left the mark set: cleared after a resync
};

enum class MirrorState { kDisconnected, kConnecting, kResyncing, kMirroring };
const char* mirror_state_name(MirrorState s);

struct MirrorStats {
  MirrorState state = MirrorState::kDisconnected;
  bool degraded = false;          // writes are acknowledged without the partner
  uint64_t filled_pos = 0;        // local ring: every byte before it is filled
  uint64_t mirrored_pos = 0;      // the partner holds every byte before it
  uint64_t lag_bytes = 0;         // filled_pos - mirrored_pos
  uint64_t lag_lsns = 0;          // filled LSN - acknowledged LSN (as far as ACKs told it)
  uint64_t resync_bytes_left = 0;
  // The resync in progress (state kResyncing) or the last one: bytes it had to ship, bytes the
  // mirror has acknowledged of them, their rate since it began, and the time left at that rate.
  uint64_t resync_bytes_total = 0;
  uint64_t resync_bytes_done = 0;
  double resync_rate_bytes_per_s = 0;
  int64_t resync_eta_ms = -1;  // -1: not resyncing, or no rate yet
  int64_t last_ack_latency_us = -1;
  int64_t ms_since_heard = -1;
  uint64_t connects = 0;
  uint64_t bytes_shipped = 0;
  uint64_t acks = 0;
  uint64_t acks_read_by_writers = 0;  // ... read by a waiting writer, not the progress thread
  bool outdated_marked = false;   // the partner's mirror is marked outdated on the medium (I7)
  std::string last_error;
};

// What membership's tick reads of the sender, without its lock (writer threads hold that lock
// while they post to the fabric, which can wait on a hung partner; the tick renews the leases).
struct MirrorLink {
  MirrorState state = MirrorState::kDisconnected;
  bool degraded = false;
  bool outdated_marked = false;
  int64_t ms_since_heard = -1;  // -1: never heard
};

class MirrorSender : public nvcache::Replicator {
 public:
  // The single hook that decides whether writes stop waiting for an unreachable partner: called
  // with how long the oldest waiter has waited; true = go degraded (acknowledge from the local log
  // alone until the mirror has caught up again). The default says true after mirror_wait.
  using DegradePolicy = std::function<bool(std::chrono::milliseconds waited)>;

  MirrorSender(nvcache::Log& log, MirrorSenderOptions options);
  ~MirrorSender() override;
  void start();
  void stop();
  void set_degrade_policy(DegradePolicy policy);
  // Membership's verdict: the partner is down or cut off, stop waiting for it now (true). The
  // degraded state ends by itself once a reconnect's resync has caught up; false is a no-op.
  void force_degraded(bool degraded);
  // Membership's newest epoch: the next handshake presents it (a receiver that knows a newer
  // one refuses the connection as stale). Never lowers it.
  void set_epoch(uint64_t epoch);
  // Cheap (no lock): are writes acknowledged without the partner now?
  bool degraded() const { return degraded_.load(std::memory_order_acquire); }

  // nvcache::Replicator
  void filled(nvcache::TrimPoint filled) override;
  Status wait_mirrored(uint64_t end_pos) override;
  void trimmed(const nvcache::RingHeader& header) override;

  MirrorStats stats() const;
  // Lock-free: never waits for a writer or the progress thread.
  MirrorLink link() const;
  // COMMIT -> ACK round trip of every COMMIT an ACK retires (an ACK may cover several), from
  // sending it to hearing the ACK. No lock: the histogram is atomic.
  const LatencyHistogram& ack_latency() const { return ack_latency_; }

 private:
  void run();
  bool connect_and_handshake();               // progress thread; takes mu_ itself
  void ship_locked();                         // requires mu_
  void drop_locked(const std::string& why);   // requires mu_
  void set_state_locked(MirrorState s, const std::string& why);  // requires mu_
  void send_locked(const Message& m);         // requires mu_
  void send_trim_locked(const nvcache::RingHeader& header);  // requires mu_
  void handle(const std::shared_ptr<Transport>& c, const std::vector<std::byte>& bytes, bool by_writer);
  // Requires poll_mu_ (not mu_): reads c's completion queue and handles what came; `by_writer`:
  // the caller is a writer waiting for an ACK (counted in acks_read_by_writers).
  void poll_holding_token(const std::shared_ptr<Transport>& c, std::chrono::milliseconds timeout,
                          std::chrono::microseconds spin, bool by_writer);
  std::chrono::microseconds ack_spin_locked() const;  // requires mu_
  // A write at end_pos is to be acknowledged without the mirror (degraded): OK once the mirror
  // is marked outdated (I7); kInProgress to look again (the lock was released meanwhile).
  Status ack_without_mirror_locked(std::unique_lock<std::mutex>& lock, uint64_t end_pos);
  void maybe_clear_outdated();  // progress thread; takes mu_ itself

  nvcache::Log& log_;
  const MirrorSenderOptions options_;
  const uint64_t data_bytes_;
  std::unique_ptr<TransportFactory> own_transport_;  // the libfabric default, when none was given
  TransportFactory* const transport_;
  std::thread thread_;

  // The poller token: the transport has one poller at a time, and ACKs are handled in order.
  std::mutex poll_mu_;
  // The progress thread leaves the polling to writers while one waits, and this long after.
  static constexpr std::chrono::milliseconds kWritersPollWindow{20};
  static constexpr std::chrono::milliseconds kLookInterval{5};  // ... looking in this often
  mutable std::mutex mu_;
  std::condition_variable mirrored_cv_;  // mirrored_pos_ advanced, or degraded, or stopping
  std::condition_variable wake_cv_;      // the progress thread: stop
  bool stop_ = false;
  DegradePolicy policy_;
  int waiting_writers_ = 0;                  // in wait_mirrored()
  std::chrono::steady_clock::time_point last_wait_{};  // a writer last waited for an ACK
  MirrorState state_ = MirrorState::kDisconnected;
  std::shared_ptr<Transport> conn_;
  Region remote_;
  Region bounce_region_;
  std::vector<std::byte> bounce_;
  uint32_t seq_ = 0;
  nvcache::TrimPoint filled_;      // newest filled point seen
  uint64_t ship_pos_ = 0;          // next byte to ship on this connection
  uint64_t conn_acked_pos_ = 0;    // acknowledged on this connection
  uint64_t mirrored_pos_ = 0;      // the partner holds every byte before it (never decreases)
  uint64_t acked_lsn_ = 0;
  uint64_t resync_target_ = 0;     // kResyncing ends when the partner holds this position
  uint64_t resync_from_ = 0;       // ... and began shipping from this one
  std::chrono::steady_clock::time_point resync_started_{}, resync_ended_{};
  std::atomic<bool> degraded_{false};  // written under mu_ (force_degraded: without); read without it
  // Mirrors of state_, mark_ and last_heard_ for link(), written where those change.
  std::atomic<MirrorState> link_state_{MirrorState::kDisconnected};
  std::atomic<bool> link_outdated_{false};
  std::atomic<int64_t> link_heard_ns_{0};  // steady_clock nanoseconds; 0: never
  std::atomic<uint64_t> epoch_;
  // The outdated mark (I7): kMarking and kClearing are writes under way with mu_ released.
  enum class Mark { kClean, kMarking, kMarked, kClearing };
  Mark mark_ = Mark::kClean;
  uint64_t unmirrored_upto_ = 0;   // the end of the newest write acknowledged without the mirror
  bool trim_dirty_ = false;
  uint64_t told_trim_pos_ = 0;     // the newest trim position sent to the mirror on this connection
  nvcache::RingHeader trim_header_;
  std::chrono::steady_clock::time_point last_heard_{}, last_sent_{};
  // COMMITs in flight (end position, when sent), oldest first: ACKs retire them from the front.
  std::deque<std::pair<uint64_t, std::chrono::steady_clock::time_point>> commit_times_;
  MirrorStats counters_;
  LatencyHistogram ack_latency_;
};

// Reads what the partner's mirror of this node's ring holds (its receiver's HELLO) without
// authenticating: the connection is closed before AUTH, so the partner's mirror is left as it was
// (an AUTH of a new session would make it start over from the trim point). Retries while nobody
// listens, up to `limit`; nullopt when no HELLO came (the partner is down). The HELLO is not
// authenticated: a forged one can only make a node refuse to start, never lose a write.
std::optional<Hello> probe_partner_mirror(TransportFactory& transport, const std::string& host,
                                         const std::string& port, uint32_t partner_node_id,
                                         std::chrono::milliseconds limit);

}  // namespace hafs::interconnect
