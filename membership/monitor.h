// Monitor: the membership state machine of one node of an HA pair.
//
// It decides who owns which volume at which epoch, when to fence, take over, resync and give
// back, from three inputs: the shared records on the storage medium (SharedDisk), the local
// monotonic clock (Clock), and an Observation from the composition root each tick. It acts only
// through Actions. The protocol, the timing and its limits are in docs/membership.md; the
// records in docs/membership-format.md.
//
// Threading: tick() is called from one thread (hafsd's membership thread; a test's loop), every
// tick_ms or sooner when next_tick_at() asks. status(), lease_valid() and request_giveback()
// may be called from any thread: they read a snapshot published at the end of each tick, or
// queue a request that the next tick picks up.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/logger.h"
#include "base/status.h"
#include "membership/actions.h"
#include "membership/clock.h"
#include "membership/records.h"
#include "membership/shared_disk.h"

namespace hafs::membership {

enum class NodeState : uint8_t {
  kStarting = 0,     // first ticks: reading the ownership records; claiming home volumes that
                     // nobody owns and re-claiming (epoch+1) those a previous life of us held
  kNormal = 1,       // partner alive on the interconnect, mirror in sync: writes are mirrored
  kPartnerDown = 2,  // interconnect and the partner's disk heartbeat both silent: waiting for
                     // the partner's leases to surely expire (renew counter still for
                     // lease + margin on our clock); still serving our own volumes, unmirrored
  kTakeover = 3,     // claims written (epoch+1, us as owner): settling, re-reading, replaying
                     // (Actions::take_over) and then serving the partner's volumes
  kDegraded = 4,     // serving without the mirror: partner down (after takeover), or the
                     // interconnect cut while the partner's disk heartbeat shows it alive
  kResync = 5,       // interconnect back: the composition root resyncs the mirrors; waiting for
                     // Observation::mirror_in_sync, then NORMAL
  kGiveback = 6,     // handing the partner's volumes back, one per tick: release, then the
                     // ownership record with epoch+1 and the home node as owner
};
const char* node_state_name(NodeState s);

enum class VolumeState : uint8_t {
  kUnknown = 0,     // not read yet, unreadable or corrupt, and not held by us: we leave it be
                    // (a corrupt record is never taken as an expired one)
  kUnowned = 1,     // no record on the medium: nobody ever claimed it; its home node claims it
  kPartner = 2,     // the partner owns it; we watch its renew counter (takeover needs it still)
  kClaiming = 3,    // we wrote epoch+1 naming us; after settle_ms we re-read to catch a racer
  kTakingOver = 4,  // the claim holds: we renew the lease; Actions::take_over runs (retried on
                    // error); not served until it returned OK
  kServing = 5,     // we own it at `epoch` with a valid lease; Actions::serve was called
  kFenced = 6,      // we held or claimed it and stopped: lease expired, a write failed, a claim
                    // went stale. As its last writer we re-claim it (epoch+1) once the disk
                    // answers, unless the record shows someone else took it
  kGivingBack = 7,  // released (flushed, not served); the hand-over write is being retried
};
const char* volume_state_name(VolumeState s);

struct VolumeConfig {
  VolumeId id = 0;
  NodeId home = kNoNode;
};

struct MonitorConfig {
  NodeId node_id = kNoNode;
  NodeId partner_id = kNoNode;
  std::vector<VolumeConfig> volumes;  // every volume of the pair, the same list on both nodes
  uint64_t incarnation = 0;           // random, drawn by the caller at each process start
  uint64_t cluster_id = 0;            // the pair's id: records of another cluster are refused
  uint32_t ring_tag = 0;              // nvcache::ring_tag of this node's NV log (OwnershipRecord::owner_ring)
  // Rule 8 while running: a valid record naming this node with another (non-zero) owner_ring is
  // a run staged in another NV log, so a second process with this node's identity: this node
  // stops (identity_conflict). True only when an operator started it with --accept-loss.
  bool adopt_foreign_runs = false;

  uint32_t lease_ms = 2000;     // a holder's lease: renewals keep it; it fences without one
  uint32_t margin_ms = 250;     // holder: lease ends lease - margin after a renewal began;
                                // contender: waits lease + margin of stillness
  uint32_t settle_ms = 500;     // after a claim write, before the confirming re-read
  uint32_t io_timeout_ms = 250; // a renewal slower than this counts as failed
  uint32_t tick_ms = 500;       // the caller ticks at least this often (<= lease / 4)
  uint32_t partner_silence_ms = 2000;  // partner's disk heartbeat silent this long = silent
  bool auto_giveback = true;
  uint32_t giveback_delay_ms = 30000;  // in NORMAL this long (resync done) before auto giveback
  uint32_t claim_attempts_max = 5;     // rewrites of a failed or torn claim before giving up

  static constexpr size_t kMaxVolumes = 1024;
};

// Checks ids, the volume list and the timing relations docs/membership.md derives.
Status validate(const MonitorConfig& config);

struct VolumeView {
  VolumeId id = 0;
  NodeId home = kNoNode;
  NodeId owner = kNoNode;       // owner in the last valid record read or written; 0 unknown
  uint64_t epoch = 0;           // epoch of that record
  VolumeState state = VolumeState::kUnknown;
  Millis lease_valid_until{0};  // our lease (local clock), while we hold it
  bool giveback_requested = false;
  bool releasing = false;       // held, but a giveback's release is destaging it: not served
  bool replay_pending = false;  // held or claimed: the partner's records are still to be applied
  // Owned by the partner, whose record says its replay of this node's records is still pending
  // (they must stay as they are, in this node's log and so in the partner's mirror: rule 4).
  bool owner_replay_pending = false;
  // The ring tag of the NV log the owner's run is staged in (OwnershipRecord::owner_ring; 0:
  // unknown, or nothing staged). The mirror keeps the partner's ring while a run is staged in it.
  uint32_t owner_ring = 0;
  // Why this node does not take the volume over although the rules would let it (an outdated
  // partner mirror, damage), or keeps records of it; empty otherwise.
  std::string blocked;
  uint64_t kept_extents = 0;    // staged extents of ours the new owner did not replay (kept)
};

struct MonitorStatus {
  NodeState state = NodeState::kStarting;
  bool degraded = false;              // what set_degraded last said
  bool partner_disk_alive = true;     // the partner's heartbeat record moved recently
  bool interconnect_alive = false;    // from the last Observation
  uint64_t transitions = 0;           // node-state transitions so far
  int64_t slowest_renewal_ms = 0;     // the slowest lease renewal so far, failed ones included
  // The partner's mark of its own NV log's mirror (ours of it) as last read (I7).
  bool partner_mirror_outdated = false;
  uint64_t partner_mirror_lag_bytes = 0;  // unmirrored bytes when the partner marked it
  bool mirror_frozen = false;         // the partner's mirror is frozen for a takeover's replay
  // Another process beats with this node's id: everything is fenced and nothing is done any
  // more; the composition root stops the node. Empty while there is none.
  std::string identity_conflict;
  std::vector<VolumeView> volumes;
};

// The newest epoch of any volume in `status`: the pair's epoch the interconnect handshake
// presents and requires (a node that has not yet learned a takeover is refused as stale).
uint64_t highest_epoch(const MonitorStatus& status);
// The newest epoch of a volume this node holds or claims (0: none): the receiver refuses a
// partner's COMMIT or TRIM below it (docs/wire-protocol.md).
uint64_t highest_epoch_held(const MonitorStatus& status);

class Monitor {
 public:
  // Validates `config`. `clock`, `disk` and `actions` must outlive the Monitor.
  static Result<std::unique_ptr<Monitor>> create(const MonitorConfig& config, Clock& clock,
                                                 SharedDisk& disk, Actions& actions,
                                                 Logger logger);
  ~Monitor();

  // One step: fence expired leases (before any I/O), beat, read every record, renew, claim,
  // confirm, take over, give back, and move the node state. Never blocks beyond its disk I/O
  // and the Actions it calls.
  void tick(const Observation& observation);
  // A clean stop, once everything this node staged is on the medium (and no tick runs any more):
  // renews every volume it serves with owner_ring 0, so that a start with another NV log (this
  // machine rebooted, its /dev/shm emptied) may continue the run (rule 8: nothing of it is staged).
  void forget_ring();
  // When the next tick is due (local clock): tick_ms after this one, or sooner when a claim's
  // settle time ends or a lease runs out.
  Millis next_tick_at() const { return next_tick_at_; }

  // Queues a giveback of `volume` (one the partner is home for); it runs once this node is
  // NORMAL — deferred, not refused, during RESYNC or DEGRADED. kNotFound for an unknown volume,
  // kInvalidArgument for a volume whose home is this node.
  Status request_giveback(VolumeId volume);
  // Queues a hand-over of `volume` to the partner whatever its home (a planned takeover by the
  // partner, e.g. before maintenance of this node; `hafsctl takeover`): the same steps as a
  // giveback, once NORMAL. The partner does not give it back automatically. kNotFound for an
  // unknown volume.
  Status request_handover(VolumeId volume);
  // An operator accepts losing what the partner's mirror lacks (`hafsctl takeover --accept-loss`):
  // `volume` may be taken over although the partner marked its mirror outdated, or although the
  // mirror is damaged (the records before the damage are applied). Still only once the
  // partner's lease has surely expired. kNotFound for an unknown volume, kInvalidArgument for a
  // volume whose home is this node.
  Status request_accept_loss(VolumeId volume);

  NodeState state() const;
  MonitorStatus status() const;
  // True while this node serves `volume` at `epoch` with a lease valid at `now`: the check the
  // data path makes before acknowledging (a process that froze and woke before its next tick
  // must not acknowledge on a lease that ran out meanwhile).
  bool lease_valid(VolumeId volume, uint64_t epoch, Millis now) const;
  // True while this node holds `volume` at `epoch` with a lease valid at `now`, serving it or
  // taking it over: the check before every destage batch (the takeover's replay destages before
  // the volume is served). A node that lost the volume, or froze past its lease, writes nothing.
  bool may_destage(VolumeId volume, uint64_t epoch, Millis now) const;

 private:
  enum class ReadKind : uint8_t { kValid, kMissing, kCorrupt, kError };
  // The replay fields of an ownership record (records.h, kOwnFlagReplayPending).
  struct ReplayFields {
    bool pending = false;
    NodeId node = kNoNode;
    uint64_t epoch = 0;
    uint64_t from_epoch = 0;  // records of epochs [from_epoch, epoch] are applied
    uint64_t next_lsn = 0;
    // The ring tag of the NV log those records are staged in (the owner_ring of the partner's
    // record we claimed over; 0: not known). Written as the record's replay_ring, and a
    // hand-back of a takeover whose replay never ran names it as owner_ring (rule 8): only
    // that log continues the run.
    uint32_t ring = 0;
  };
  struct Read {
    ReadKind kind = ReadKind::kError;
    OwnershipRecord rec;  // kValid only
  };
  // What this node knows and does about one volume. Owned by the tick thread.
  struct Vol {
    VolumeId id = 0;
    NodeId home = kNoNode;
    VolumeState state = VolumeState::kUnknown;
    bool have_last = false;
    OwnershipRecord last;          // the last valid record read or written
    uint64_t epoch = 0;            // the epoch we hold, claim, or last held (0: never)
    uint64_t renew_counter = 0;    // of our record, while we hold it
    Millis lease_valid_until{0};   // we may acknowledge until then (local clock)
    bool replayed = false;         // take_over(id, epoch) returned OK
    bool discard_pending = true;   // we may have staged records of it from an earlier ownership
    bool giveback_requested = false;
    bool releasing = false;        // release() answered kInProgress: not served, still held
    bool planned = false;          // received by a planned hand-over: no automatic giveback
    ReplayFields replay;           // of the record we hold or claim (written with it)
    uint64_t run_epoch = 0;        // since when we hold it without interruption (OwnershipRecord)
    uint64_t own_from_epoch = 0;   // our staged records below it are stale (TakeoverPlan); 0: none
    bool accept_loss = false;      // an operator allows a takeover from an outdated mirror
    std::string blocked;           // why we do not take it over this tick (status); empty: nothing
    bool blocked_logged = false;   // the outdated-mirror refusal was logged (once per episode)
    std::string kept_note;         // what discard_stale kept, for status
    uint64_t discarded_below = 0;  // the LSN bound of our last discard of it (0: none yet)
    uint64_t kept_extents = 0;     // what that discard kept (records the owner did not replay)
    // claim (kClaiming)
    bool claim_has_base = false;
    OwnershipRecord claim_base;    // the valid record we claimed over (none: it was missing)
    bool claim_needs_write = false;
    uint32_t claim_attempts = 0;
    Millis claim_started_at{0};    // the last claim write began
    Millis claim_written_at{0};    // ... and ended; the settle counts from here
    uint32_t handover_attempts = 0;
    // When our last write of the record failed (it may have torn it), if no read since then
    // returned anything but a corrupt record. Only then may we write over a corrupt record.
    Millis tore_at{0};
    // watcher: the record's content and since when it has not changed (local clock)
    bool seen_any = false;
    ReadKind seen_kind = ReadKind::kError;
    OwnershipRecord seen_rec;
    Millis quiet_since{0};
  };

  Monitor(const MonitorConfig& config, Clock& clock, SharedDisk& disk, Actions& actions,
          Logger logger);

  // Node level (monitor.cc).
  void transition(NodeState to, const char* why);
  void step_node_state(const Observation& obs);
  void beat_and_watch_partner();
  void drain_requests();
  void step_giveback();
  Result<const VolumeConfig*> volume_config(VolumeId volume) const;
  void settle_releases();
  void publish();
  // The published view of `volume` when it names `epoch` and a lease valid at `now` (any
  // state: the callers say which states count).
  std::optional<VolumeView> held_view(VolumeId volume, uint64_t epoch, Millis now) const;

  // Volume level (monitor_volume.cc).
  void set_volume_state(Vol& v, VolumeState to, const char* why);
  Read read_record(Vol& v);
  Status write_record(Vol& v, const OwnershipRecord& rec);
  bool we_tore_it(const Vol& v) const;
  void fence_expired_leases();
  void step_volume(Vol& v);
  void step_holder(Vol& v, const Read& r);
  void step_claiming(Vol& v, const Read& r);
  void step_fenced(Vol& v, const Read& r);
  void step_giving_back(Vol& v, const Read& r);
  void step_watcher(Vol& v, const Read& r);
  void classify(Vol& v, const Read& r, const char* why);
  void start_claim(Vol& v, const Read& r, uint64_t epoch, const char* why);
  void write_claim(Vol& v, const Read& r);
  void abandon_claim(Vol& v, const Read& r, const char* why);
  void accept_handover(Vol& v, const Read& r);
  // Before a claim: the replay the claim carries over `base` (the record it replaces, null when
  // none), the partner's outdated-mirror mark, and the mirror freeze. False: do not claim now
  // (v.blocked says why when it is not a passing I/O error).
  bool prepare_claim(Vol& v, const OwnershipRecord* base);
  ReplayFields replay_after(const OwnershipRecord* base) const;
  Status check_mark_after_claim();
  void discard_stale(Vol& v, const OwnershipRecord& owner_record);
  void drop_kept(Vol& v, const char* why);
  bool needs_frozen_mirror(const Vol& v) const;
  void thaw_mirror_if_unneeded();
  bool check_identity();
  uint64_t run_epoch_after(const OwnershipRecord* base, uint64_t epoch) const;
  bool another_log(uint32_t tag) const;
  std::string ring_tags(uint32_t tag) const;  // "ring tag X, and this process's NV log is Y"
  // Another process has our identity: fence everything, decide and write nothing more (rule 5;
  // rule 8 while running). The composition root stops the node (MonitorStatus::identity_conflict).
  void stop_for_identity(std::string why);
  void write_handover(Vol& v);
  bool renew(Vol& v);
  void try_take_over(Vol& v);
  void lose_volume(Vol& v, const Read& r, const char* why);
  void self_fence(Vol& v, const char* why);
  bool takeover_allowed(const Vol& v) const;
  void note_content(Vol& v, const Read& r);
  static bool holds(const Vol& v);
  OwnershipRecord own_record(const Vol& v, uint64_t counter) const;

  const MonitorConfig config_;
  Clock& clock_;
  SharedDisk& disk_;
  Actions& actions_;
  const Logger log_;

  // Owned by the tick thread.
  NodeState state_ = NodeState::kStarting;
  Millis now_{0};
  Millis started_at_{0};
  Millis normal_since_{0};
  Millis next_tick_at_{0};
  bool first_tick_ = true;
  bool degraded_ = false;
  bool interconnect_alive_ = false;
  bool own_mirror_outdated_ = false;  // from the last Observation
  bool partner_disk_alive_ = true;
  Millis slowest_renewal_{0};
  uint32_t ring_tag_ = 0;           // written into our records (config_.ring_tag; 0 after forget_ring)       // the slowest ownership renewal so far (io_timeout_ms is its bound)
  bool partner_silent_ = false;     // interconnect dead and disk heartbeat still
  bool partner_mirror_outdated_ = false;
  uint64_t partner_mirror_lag_bytes_ = 0;
  bool mirror_frozen_ = false;      // freeze_partner_mirror() succeeded, thaw not yet called
  // Identity (a second process with our node id): our own heartbeat record must only ever
  // change by our writes. During the first identity_check_ms we only watch it.
  Millis identity_checked_at_{0};   // the end of the start-up watch
  bool own_hb_known_ = false;
  RecordBlock own_hb_foreign_{};    // the last record of ours seen with another incarnation
  std::string identity_conflict_;
  uint64_t hb_counter_ = 0;
  bool partner_hb_seen_ = false;
  RecordBlock partner_hb_last_{};   // raw bytes: a change of any kind is a sign of life
  Millis partner_hb_changed_at_{0};
  uint64_t transitions_ = 0;
  std::vector<Vol> vols_;

  // Shared with other threads.
  mutable std::mutex mu_;                  // guards snapshot_, requests_; leaf lock
  MonitorStatus snapshot_;
  std::vector<VolumeId> requests_;         // giveback requests not yet seen by tick
  std::vector<VolumeId> accept_loss_requests_;  // request_accept_loss, not yet seen by tick
};

}  // namespace hafs::membership
