// MirrorReceiver: the partner side of mirroring. It listens for the partner's sender, checks
// who it is (protocol version, node id, shared key, epoch, ring geometry), registers its mirror
// store for one-sided writes with a fresh key per connection, and for every COMMIT persists the
// committed byte range and acknowledges it. The mirror store then holds a byte-identical copy of
// the partner's ring, header included (flagged as a mirror), which nvcache's reader recovers
// unchanged.
//
// One thread (the progress thread) accepts, polls the completion queue, persists and acks;
// the tcp provider needs it polled or remote writes are not applied.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/fault.h"
#include "base/logger.h"
#include "interconnect/auth.h"
#include "interconnect/fabric.h"
#include "nvcache/log_format.h"
#include "nvcache/store.h"

namespace hafs::interconnect {

struct MirrorReceiverOptions {
  Logger logger;
  FabricConfig fabric;                 // used when `transport` is null
  TransportFactory* transport = nullptr;  // not owned; null: libfabric with `fabric`
  std::string listen_host = "127.0.0.1";
  std::string listen_port;
  uint32_t node_id = 0;           // this node
  uint32_t partner_node_id = 0;   // the only sender accepted
  Key key{};
  std::chrono::milliseconds peer_silence_limit{1000};  // a silent connection may be replaced
  std::chrono::microseconds spin{100};  // busy-poll this long after traffic before sleeping
  FaultRegistry* faults = nullptr;
  // Refuse every AUTH as busy until set_held_epochs() was called once (a node with membership:
  // it must know which volumes it took over before it accepts its partner's records).
  bool wait_for_held_epochs = false;
};

struct MirrorReceiverStats {
  bool connected = false;
  uint64_t ring_id = 0;
  uint32_t session = 0;
  uint64_t acked_pos = 0;
  // The highest position of ring `ring_id` the partner ever COMMITted here, kept in the mirror
  // store across restarts (the commit mark, log-format.md §11): every byte below it was
  // acknowledged to the partner, so a valid mirror ending below it is damaged.
  uint64_t committed_pos = 0;
  uint64_t acked_lsn = 0;
  uint64_t trim_lsn = 0;
  uint64_t bytes_committed = 0;
  uint64_t commits = 0;
  uint64_t acks = 0;                // ACKs sent: one per batch of COMMITs persisted together
  uint64_t refused = 0;             // connections refused (bad key, version, epoch, busy...)
  uint64_t partner_epoch = 0;
  bool frozen = false;              // a takeover replays the mirror: the partner is refused
  std::string last_refusal;
  int64_t ms_since_heard = -1;      // -1: never heard
};

class MirrorReceiver {
 public:
  // `mirror` must be a mapped store (Store::mapping() != null). Listens at once.
  static Result<std::unique_ptr<MirrorReceiver>> start(nvcache::Store& mirror,
                                                       MirrorReceiverOptions options);
  ~MirrorReceiver();
  // Closes the connection and stops listening. Idempotent. The mirror store keeps its bytes.
  void stop();

  // Refuse senders whose epoch is below `epoch` from now on (membership raises it): at the
  // handshake, and on every COMMIT and TRIM (the connection is dropped).
  void set_min_epoch(uint64_t epoch);
  // The volumes whose newest ownership record this node wrote, with its epoch (membership sets
  // them each tick). A COMMIT whose range holds a WRITE or FENCE record of one of them at an
  // older epoch is refused (the connection is dropped): the partner appended it before it
  // learned that this node took the volume over, so no takeover applied it and none will, and
  // it must not be acknowledged. Epochs are per volume: the pair-wide minimum above cannot tell
  // (a partner that saw a newer epoch of another volume passes it). With wait_for_held_epochs,
  // every AUTH is refused as busy until the first call.
  // `partner_rings`: the ring tags the partner's current runs are staged in (owner_ring of the
  // ownership records naming the partner). While the mirror holds one of those rings, an AUTH
  // of another ring is refused as busy: the mirror would start over and lose the only other copy
  // of that run (membership.md rule 8: a second process with the partner's identity).
  // `keep_ring`: this node's takeover still has to replay the mirror (a record names it with the
  // partner's replay pending): the ring the mirror holds is kept the same way, from a restart on,
  // before the takeover freezes the mirror.
  void set_held_epochs(std::vector<std::pair<uint32_t, uint64_t>> held,
                       std::vector<uint32_t> partner_rings, bool keep_ring);
  // Stops the mirror from changing (a takeover replays it, invariant I8): drops the partner's
  // connection, so that its region is unregistered and no RMA, COMMIT or TRIM can land, and
  // refuses every connection until thaw(). Returns once the progress thread has done so, or
  // kTimedOut after `limit` (the caller must not rely on the mirror then).
  Status freeze(std::chrono::milliseconds limit);
  void thaw();
  MirrorReceiverStats stats() const;

 private:
  MirrorReceiver(nvcache::Store& mirror, MirrorReceiverOptions options)
      : mirror_(mirror), options_(std::move(options)) {}
  void run();
  struct Session;
  // Returns false when the connection must be dropped.
  bool handle(Session& s, const std::vector<std::byte>& bytes);
  bool on_auth(Session& s, const Auth& auth);
  // Checks a COMMIT and adds its range to the session's batch; flush_commits persists the batch
  // and ACKs its end (one commit mark and one ACK for all the COMMITs of a poll).
  bool on_commit(Session& s, const Commit& c);
  bool flush_commits(Session& s);
  // Walks the record headers of the mirror from walk_pos_ through those wholly below `to_pos`;
  // returns why the COMMIT ending there must be refused (a record of a volume held at a newer
  // epoch, or bytes that are no record header), or nullopt with *next set to where to go on.
  std::optional<std::pair<RefuseReason, std::string>> walk_committed(uint64_t to_pos, uint64_t* next);
  bool on_trim(Session& s, const Trim& t);
  void refuse(Session& s, RefuseReason reason, const std::string& text);
  bool send(Session& s, const Message& m);

  static constexpr int kDrainPolls = 8;  // looks for more messages after a poll returned some
  nvcache::Store& mirror_;
  const MirrorReceiverOptions options_;
  std::unique_ptr<TransportFactory> own_transport_;  // the libfabric default, when none was given
  std::unique_ptr<Acceptor> listener_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> min_epoch_{0};
  std::mutex held_mu_;
  std::vector<std::pair<uint32_t, uint64_t>> held_;  // GUARDED_BY(held_mu_): set_held_epochs
  bool held_known_ = false;                           // GUARDED_BY(held_mu_)
  std::vector<uint32_t> partner_rings_;               // GUARDED_BY(held_mu_): set_held_epochs
  bool keep_ring_ = false;                            // GUARDED_BY(held_mu_): set_held_epochs
  // Progress thread only: the next record header of the partner's ring in the mirror not yet
  // checked by walk_committed (records follow each other from a trim point; a COMMIT may end
  // inside a record, whose header is then checked with the COMMIT that completes it).
  uint64_t walk_pos_ = 0;
  static constexpr uint64_t kWalkLost = UINT64_MAX;  // walk_pos_ after a DAMAGED marker
  std::mutex freeze_mu_;
  std::condition_variable freeze_cv_;
  bool frozen_ = false;          // GUARDED_BY(freeze_mu_): asked for by freeze(), until thaw()
  uint64_t freeze_asked_ = 0;    // GUARDED_BY(freeze_mu_): freeze() calls so far
  uint64_t freeze_done_ = 0;     // GUARDED_BY(freeze_mu_): the progress thread has acted on these

  mutable std::mutex mu_;      // guards stats_ and header_ (written by the progress thread)
  MirrorReceiverStats stats_;
  nvcache::RingHeader header_;  // the mirror's header as last written
  bool have_header_ = false;
  std::chrono::steady_clock::time_point last_heard_{};
};

}  // namespace hafs::interconnect
