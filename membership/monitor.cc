// Monitor, node level: configuration, the tick loop, the disk heartbeat, the node-state
// machine and giveback. The per-volume rules are in monitor_volume.cc.
#include "membership/monitor.h"
#include "membership/mirror_mark.h"

#include <algorithm>
#include <cinttypes>
#include <set>

namespace hafs::membership {

const char* node_state_name(NodeState s) {
  switch (s) {
    case NodeState::kStarting: return "STARTING";
    case NodeState::kNormal: return "NORMAL";
    case NodeState::kPartnerDown: return "PARTNER_DOWN";
    case NodeState::kTakeover: return "TAKEOVER";
    case NodeState::kDegraded: return "DEGRADED";
    case NodeState::kResync: return "RESYNC";
    case NodeState::kGiveback: return "GIVEBACK";
  }
  return "?";
}

const char* volume_state_name(VolumeState s) {
  switch (s) {
    case VolumeState::kUnknown: return "unknown";
    case VolumeState::kUnowned: return "unowned";
    case VolumeState::kPartner: return "partner";
    case VolumeState::kClaiming: return "claiming";
    case VolumeState::kTakingOver: return "taking-over";
    case VolumeState::kServing: return "serving";
    case VolumeState::kFenced: return "fenced";
    case VolumeState::kGivingBack: return "giving-back";
  }
  return "?";
}

Status validate(const MonitorConfig& c) {
  auto bad = [](const std::string& what) { return Status::error(Code::kInvalidArgument, what); };
  if (c.node_id == kNoNode || c.partner_id == kNoNode) return bad("node ids must not be 0");
  if (c.node_id == c.partner_id) return bad("a node cannot be its own partner");
  if (c.volumes.size() > MonitorConfig::kMaxVolumes)
    return bad("more than " + std::to_string(MonitorConfig::kMaxVolumes) + " volumes");
  std::set<VolumeId> ids;
  for (const auto& v : c.volumes) {
    if (!ids.insert(v.id).second) return bad("volume " + std::to_string(v.id) + " listed twice");
    if (v.home != c.node_id && v.home != c.partner_id)
      return bad("volume " + std::to_string(v.id) + " has home node " + std::to_string(v.home) +
                 ", which is not in this pair");
  }
  if (c.lease_ms < 100 || c.lease_ms > 600'000) return bad("lease_ms must be in [100, 600000]");
  if (c.tick_ms == 0 || c.tick_ms > c.lease_ms / 4) return bad("tick_ms must be in [1, lease/4]");
  if (c.margin_ms == 0 || c.margin_ms >= c.lease_ms / 2)
    return bad("margin_ms must be in [1, lease/2)");
  if (c.io_timeout_ms == 0 || c.io_timeout_ms > c.margin_ms)
    return bad("io_timeout_ms must be in [1, margin_ms]: a renewal landing later than the "
               "margin could be missed by the contender");
  if (c.settle_ms < 2 * c.io_timeout_ms)
    return bad("settle_ms must be >= 2 * io_timeout_ms: the confirming re-read must come after "
               "any racing claim landed");
  if (uint64_t{c.settle_ms} + c.tick_ms + c.io_timeout_ms >= c.lease_ms - c.margin_ms)
    return bad("settle_ms + tick_ms + io_timeout_ms must stay below lease_ms - margin_ms: a "
               "claim must be confirmed while its lease is valid");
  if (c.partner_silence_ms < 2 * c.tick_ms)
    return bad("partner_silence_ms must be at least two ticks");
  if (c.claim_attempts_max == 0 || c.claim_attempts_max > 100)
    return bad("claim_attempts_max must be in [1, 100]");
  return Status::ok();
}

Result<std::unique_ptr<Monitor>> Monitor::create(const MonitorConfig& config, Clock& clock,
                                                 SharedDisk& disk, Actions& actions,
                                                 Logger logger) {
  HAFS_RETURN_IF_ERROR(validate(config));
  return std::unique_ptr<Monitor>(new Monitor(config, clock, disk, actions, std::move(logger)));
}

Monitor::Monitor(const MonitorConfig& config, Clock& clock, SharedDisk& disk, Actions& actions,
                 Logger logger)
    : config_(config), clock_(clock), disk_(disk), actions_(actions), log_(std::move(logger)) {
  ring_tag_ = config_.ring_tag;
  vols_.reserve(config_.volumes.size());
  for (const auto& vc : config_.volumes) {
    Vol v;
    v.id = vc.id;
    v.home = vc.home;
    vols_.push_back(v);
  }
  publish();
}

Monitor::~Monitor() = default;

void Monitor::tick(const Observation& obs) {
  now_ = clock_.now();
  if (first_tick_) {
    first_tick_ = false;
    started_at_ = now_;
    partner_hb_changed_at_ = now_;  // assume the partner alive until it has been silent
    RecordBlock own{};
    if (disk_.read(heartbeat_record_name(config_.node_id), own).is_ok()) {
      if (auto hb = decode_heartbeat(own); hb.is_ok()) hb_counter_ = hb->counter;
    }
    // Two beats of a live twin at least, before we write anything of our own.
    identity_checked_at_ = now_ + Millis(2 * config_.tick_ms + config_.margin_ms);
    log_.info("membership starting: node %u, partner %u, %zu volumes, lease %u ms, incarnation "
              "%016" PRIx64 ", cluster %016" PRIx64, config_.node_id, config_.partner_id,
              vols_.size(), config_.lease_ms, config_.incarnation, config_.cluster_id);
  }
  interconnect_alive_ = obs.interconnect_alive;
  own_mirror_outdated_ = obs.own_mirror_outdated;
  fence_expired_leases();  // before any I/O: a node that froze and woke fences first
  // A second process with our identity: nothing more is decided or written, ever.
  if (!identity_conflict_.empty() || !check_identity()) {
    next_tick_at_ = clock_.now() + Millis(config_.lease_ms);
    publish();
    return;
  }
  // Starting: only watch our own heartbeat record until a live twin would have shown itself.
  if (now_ < identity_checked_at_) {
    next_tick_at_ = std::min(clock_.now() + Millis(config_.tick_ms), identity_checked_at_);
    publish();
    return;
  }
  drain_requests();
  beat_and_watch_partner();
  for (auto& v : vols_) {
    if (!identity_conflict_.empty()) break;  // read_record found a run of our id in another log
    step_volume(v);
  }
  now_ = clock_.now();
  step_node_state(obs);
  if (state_ == NodeState::kGiveback) step_giveback();
  else settle_releases();
  thaw_mirror_if_unneeded();

  now_ = clock_.now();
  next_tick_at_ = now_ + Millis(config_.tick_ms);
  for (const auto& v : vols_) {
    // Wake up when a lease runs out, to fence at that moment rather than up to a tick late
    // (the data path's lease_valid() check already refuses in between).
    if (holds(v)) next_tick_at_ = std::min(next_tick_at_, std::max(now_, v.lease_valid_until));
    if (v.state == VolumeState::kClaiming && !v.claim_needs_write)
      next_tick_at_ = std::min(next_tick_at_,
                               std::max(now_, v.claim_written_at + Millis(config_.settle_ms)));
  }
  publish();
}

void Monitor::transition(NodeState to, const char* why) {
  if (to == state_) return;
  log_.info("node %s -> %s: %s", node_state_name(state_), node_state_name(to), why);
  state_ = to;
  ++transitions_;
  if (to == NodeState::kNormal) normal_since_ = now_;
  // Mirroring follows the state: synchronous only in NORMAL and GIVEBACK (and not decided yet
  // in STARTING). RESYNC stays degraded until the composition root says the mirror caught up.
  if (to != NodeState::kStarting) {
    const bool degraded = to != NodeState::kNormal && to != NodeState::kGiveback;
    if (degraded != degraded_) {
      degraded_ = degraded;
      actions_.set_degraded(degraded);
    }
  }
}

void Monitor::step_node_state(const Observation& obs) {
  bool pending_takeover = false;  // partner-owned (or never claimed partner-home) volumes
  bool in_progress = false;       // claims or replays under way
  bool giveback_pending = false;
  bool starting_claims = false;
  for (const auto& v : vols_) {
    if (v.state == VolumeState::kPartner ||
        (v.state == VolumeState::kUnowned && v.home == config_.partner_id))
      pending_takeover = true;
    if (v.state == VolumeState::kClaiming ||
        (v.state == VolumeState::kTakingOver && !v.replayed))
      in_progress = true;
    if (v.state == VolumeState::kClaiming) starting_claims = true;
    if (v.giveback_requested &&
        (v.state == VolumeState::kServing || v.state == VolumeState::kGivingBack))
      giveback_pending = true;
  }
  const bool ic = obs.interconnect_alive;

  // The transitions every state shares; the switch below adds what is particular to some.
  auto general = [&]() {
    if (partner_silent_ && pending_takeover)
      return transition(NodeState::kPartnerDown,
                        "interconnect and the partner's disk heartbeat are both silent");
    if (!ic)
      return transition(NodeState::kDegraded,
                        partner_silent_ ? "partner down; serving without the mirror"
                                        : "interconnect cut while the partner's disk heartbeat "
                                          "moves: no takeover, serving without the mirror");
    if (!obs.mirror_in_sync)
      return transition(NodeState::kResync, "interconnect alive; mirrors are being resynced");
    if (giveback_pending && partner_disk_alive_ &&
        (state_ == NodeState::kNormal || state_ == NodeState::kGiveback))
      return transition(NodeState::kGiveback, "giving the partner's volumes back");
    return transition(NodeState::kNormal, state_ == NodeState::kGiveback
                                              ? "giveback done"
                                              : "partner alive, mirror in sync");
  };

  switch (state_) {
    case NodeState::kStarting:
      if (!starting_claims) general();
      return;
    case NodeState::kPartnerDown:
      if (partner_silent_ && in_progress)
        return transition(NodeState::kTakeover, "the partner's leases expired: claims written");
      if (partner_silent_ && pending_takeover) return;  // still waiting for the leases
      return general();
    case NodeState::kTakeover:
      if (in_progress) return;  // a takeover under way finishes even if the partner returns
      return general();
    case NodeState::kNormal:
      if (ic && obs.mirror_in_sync && config_.auto_giveback && partner_disk_alive_ &&
          now_ - normal_since_ >= Millis(config_.giveback_delay_ms)) {
        for (auto& v : vols_) {
          if (v.home == config_.partner_id && v.state == VolumeState::kServing &&
              !v.giveback_requested && !v.planned) {
            v.giveback_requested = true;
            giveback_pending = true;
            log_.info("volume %u: automatic giveback (NORMAL for %u ms)", v.id,
                      config_.giveback_delay_ms);
          }
        }
      }
      return general();
    case NodeState::kDegraded:
    case NodeState::kResync:
    case NodeState::kGiveback:
      return general();
  }
}

void Monitor::beat_and_watch_partner() {
  HeartbeatRecord hb;
  hb.node_id = config_.node_id;
  hb.counter = ++hb_counter_;
  hb.incarnation = config_.incarnation;
  hb.state = static_cast<uint32_t>(state_);
  hb.cluster_id = config_.cluster_id;
  RecordBlock block{};
  encode_heartbeat(hb, block);
  if (Status s = disk_.write(heartbeat_record_name(config_.node_id), block); !s.is_ok())
    log_.warn("disk heartbeat write failed: %s", s.to_string().c_str());

  RecordBlock partner{};
  Status s = disk_.read(heartbeat_record_name(config_.partner_id), partner);
  now_ = clock_.now();
  if (s.is_ok()) {
    // Any change of the bytes is a sign of life, even a torn beat: a heartbeat only ever
    // delays a takeover, it never allows one (the ownership records do).
    if (!partner_hb_seen_ || partner != partner_hb_last_) {
      partner_hb_seen_ = true;
      partner_hb_last_ = partner;
      partner_hb_changed_at_ = now_;
    }
  } else if (s.code() != Code::kNotFound) {
    log_.debug("partner heartbeat unreadable: %s", s.to_string().c_str());
  }
  const bool alive = now_ - partner_hb_changed_at_ < Millis(config_.partner_silence_ms);
  if (alive != partner_disk_alive_)
    log_.info("partner %u disk heartbeat %s", config_.partner_id, alive ? "moves again" : "silent");
  partner_disk_alive_ = alive;
  partner_silent_ = !interconnect_alive_ && !partner_disk_alive_;

  // The partner's mark of its NV log's mirror (ours of it), for status; a claim reads it anew.
  if (auto mark = read_mirror_mark(disk_, config_.partner_id); mark.is_ok()) {
    const bool outdated = *mark && (*mark)->outdated;
    if (outdated != partner_mirror_outdated_)
      log_.info("partner %u %s its NV log's mirror here", config_.partner_id,
                outdated ? "marked as outdated" : "cleared the outdated mark of");
    partner_mirror_outdated_ = outdated;
    partner_mirror_lag_bytes_ = outdated ? (*mark)->lag_bytes : 0;
  }
}

void Monitor::stop_for_identity(std::string why) {
  identity_conflict_ = std::move(why);
  log_.error("%s", identity_conflict_.c_str());
  for (auto& v : vols_) {
    if (holds(v)) self_fence(v, "a second process has this node's identity");
    else if (v.state == VolumeState::kClaiming)
      set_volume_state(v, VolumeState::kFenced, "a second process has this node's identity");
  }
}

// Our heartbeat record changes only by our own writes. A valid record of our id with another
// incarnation that changes between two reads is a second process with our identity (a node
// started twice, or two machines configured alike): it and we would claim the same volumes and
// interleave two logs. Both stop acting; we report it and the composition root stops the node.
bool Monitor::check_identity() {
  RecordBlock own{};
  if (!disk_.read(heartbeat_record_name(config_.node_id), own).is_ok()) return true;
  auto hb = decode_heartbeat(own);
  if (!hb.is_ok() || hb->node_id != config_.node_id || hb->incarnation == config_.incarnation)
    return true;
  if (own_hb_known_ && own != own_hb_foreign_) {
    stop_for_identity("another process beats as node " + std::to_string(config_.node_id) +
                      " (incarnation " + std::to_string(hb->incarnation) + ", ours " +
                      std::to_string(config_.incarnation) + "): this node stops");
    return false;
  }
  own_hb_known_ = true;
  own_hb_foreign_ = own;
  return true;
}

void Monitor::drain_requests() {
  std::vector<VolumeId> requests, accept_loss;
  {
    std::lock_guard lock(mu_);
    requests.swap(requests_);
    accept_loss.swap(accept_loss_requests_);
  }
  for (VolumeId id : accept_loss) {
    for (auto& v : vols_) {
      if (v.id != id) continue;
      v.accept_loss = true;
      log_.warn("volume %u: an operator accepts losing what the partner's mirror lacks: it may be "
                "taken over from an outdated or damaged mirror", id);
    }
  }
  for (VolumeId id : requests) {
    for (auto& v : vols_) {
      if (v.id != id) continue;
      const char* what = v.home == config_.partner_id ? "giveback" : "hand-over to the partner";
      if (holds(v) || v.state == VolumeState::kClaiming) {
        v.giveback_requested = true;
        log_.info("volume %u: %s requested (runs once NORMAL)", id, what);
      } else {
        log_.warn("volume %u: %s request dropped: not held here (%s)", id, what,
                  volume_state_name(v.state));
      }
    }
  }
}

void Monitor::step_giveback() {
  // Volume by volume: one release and hand-over per tick.
  for (auto& v : vols_) {
    if (!v.giveback_requested) continue;
    if (v.state != VolumeState::kServing) continue;
    Status s = actions_.release(v.id);
    v.releasing = s.code() == Code::kInProgress;
    if (v.releasing) return;  // destaging in the background: renew, ask again next tick
    if (!s.is_ok()) {
      log_.warn("volume %u: release for giveback failed, serving again: %s", v.id,
                s.to_string().c_str());
      actions_.serve(v.id, v.epoch);
      v.giveback_requested = false;
      return;
    }
    v.handover_attempts = 0;
    set_volume_state(v, VolumeState::kGivingBack, "released for giveback");
    write_handover(v);
    return;
  }
}

// The node left GIVEBACK (the partner went away, the interconnect broke) while a release was
// destaging in the background: once it has finished, serve the volume again at the same epoch.
void Monitor::settle_releases() {
  for (auto& v : vols_) {
    if (!v.releasing) continue;
    if (v.state != VolumeState::kServing) {  // fenced meanwhile: that path owns it now
      v.releasing = false;
      continue;
    }
    Status s = actions_.release(v.id);
    if (s.code() == Code::kInProgress) continue;
    v.releasing = false;
    log_.warn("volume %u: giveback abandoned (node %s): serving again at epoch %" PRIu64 "%s%s", v.id,
              node_state_name(state_), v.epoch, s.is_ok() ? "" : "; the release failed: ",
              s.is_ok() ? "" : s.to_string().c_str());
    actions_.serve(v.id, v.epoch);
  }
}

Result<const VolumeConfig*> Monitor::volume_config(VolumeId volume) const {
  for (const auto& c : config_.volumes)
    if (c.id == volume) return &c;
  return Status::error(Code::kNotFound, "no volume " + std::to_string(volume) + " in this pair");
}

Status Monitor::request_giveback(VolumeId volume) {
  auto vc = volume_config(volume);
  if (!vc) return vc.status();
  if ((*vc)->home == config_.node_id)
    return Status::error(Code::kInvalidArgument, "volume " + std::to_string(volume) +
                                                     " is at home on this node: nothing to give back");
  std::lock_guard lock(mu_);
  requests_.push_back(volume);
  return Status::ok();
}

Status Monitor::request_accept_loss(VolumeId volume) {
  auto vc = volume_config(volume);
  if (!vc) return vc.status();
  if ((*vc)->home == config_.node_id)
    return Status::error(Code::kInvalidArgument,
                         "volume " + std::to_string(volume) +
                             " is at home on this node: its NV log is here, nothing to accept");
  std::lock_guard lock(mu_);
  accept_loss_requests_.push_back(volume);
  return Status::ok();
}

Status Monitor::request_handover(VolumeId volume) {
  if (auto vc = volume_config(volume); !vc) return vc.status();
  std::lock_guard lock(mu_);
  requests_.push_back(volume);
  return Status::ok();
}

NodeState Monitor::state() const {
  std::lock_guard lock(mu_);
  return snapshot_.state;
}

MonitorStatus Monitor::status() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

std::optional<VolumeView> Monitor::held_view(VolumeId volume, uint64_t epoch, Millis now) const {
  std::lock_guard lock(mu_);
  for (const auto& v : snapshot_.volumes)
    if (v.id == volume && v.epoch == epoch && now < v.lease_valid_until) return v;
  return std::nullopt;
}

bool Monitor::lease_valid(VolumeId volume, uint64_t epoch, Millis now) const {
  const auto v = held_view(volume, epoch, now);
  return v && v->state == VolumeState::kServing && !v->releasing;
}

uint64_t highest_epoch(const MonitorStatus& status) {
  uint64_t e = 0;
  for (const auto& v : status.volumes) e = std::max(e, v.epoch);
  return e;
}

uint64_t highest_epoch_held(const MonitorStatus& status) {
  uint64_t e = 0;
  for (const auto& v : status.volumes)
    if (v.state == VolumeState::kServing || v.state == VolumeState::kTakingOver ||
        v.state == VolumeState::kClaiming)
      e = std::max(e, v.epoch);
  return e;
}

bool Monitor::may_destage(VolumeId volume, uint64_t epoch, Millis now) const {
  const auto v = held_view(volume, epoch, now);
  return v && (v->state == VolumeState::kServing || v->state == VolumeState::kTakingOver);
}

void Monitor::publish() {
  MonitorStatus s;
  s.state = state_;
  s.degraded = degraded_;
  s.partner_disk_alive = partner_disk_alive_;
  s.interconnect_alive = interconnect_alive_;
  s.transitions = transitions_;
  s.slowest_renewal_ms = slowest_renewal_.count();
  s.partner_mirror_outdated = partner_mirror_outdated_;
  s.partner_mirror_lag_bytes = partner_mirror_lag_bytes_;
  s.mirror_frozen = mirror_frozen_;
  s.identity_conflict = identity_conflict_;
  s.volumes.reserve(vols_.size());
  for (const auto& v : vols_) {
    VolumeView view;
    view.id = v.id;
    view.home = v.home;
    view.state = v.state;
    view.giveback_requested = v.giveback_requested;
    view.releasing = v.releasing;
    view.replay_pending = v.replay.pending && (holds(v) || v.state == VolumeState::kClaiming);
    view.blocked = !v.blocked.empty() ? v.blocked : v.kept_note;
    view.kept_extents = v.kept_extents;
    if (holds(v)) {
      view.owner = config_.node_id;
      view.epoch = v.epoch;
      view.lease_valid_until = v.lease_valid_until;
      view.owner_ring = ring_tag_;
    } else if (v.have_last) {
      view.owner = v.last.owner;
      view.epoch = v.last.epoch;
      view.owner_replay_pending = v.last.replay_pending();
      view.owner_ring = v.last.owner_ring;
    }
    s.volumes.push_back(view);
  }
  std::lock_guard lock(mu_);
  snapshot_ = std::move(s);
}

}  // namespace hafs::membership
