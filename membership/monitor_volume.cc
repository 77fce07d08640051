// Monitor, volume level: reading the ownership records and the rules of holders, claimants,
// self-fenced holders, givers and watchers. See docs/membership.md for why each rule is safe.
#include <algorithm>
#include <cinttypes>

#include "membership/mirror_mark.h"
#include "membership/monitor.h"

namespace hafs::membership {

void Monitor::forget_ring() {
  ring_tag_ = 0;
  for (auto& v : vols_)
    if (v.state == VolumeState::kServing && renew(v))
      log_.info("volume %u: nothing of this node's run is staged any more (clean stop)", v.id);
  publish();
}

bool Monitor::holds(const Vol& v) {
  return v.state == VolumeState::kServing || v.state == VolumeState::kTakingOver;
}

void Monitor::set_volume_state(Vol& v, VolumeState to, const char* why) {
  if (v.state == to) return;
  log_.info("volume %u: %s -> %s (epoch %" PRIu64 "): %s", v.id, volume_state_name(v.state),
            volume_state_name(to), v.epoch, why);
  v.state = to;
}

OwnershipRecord Monitor::own_record(const Vol& v, uint64_t counter) const {
  OwnershipRecord rec;
  rec.volume_id = v.id;
  rec.owner = config_.node_id;
  rec.home = v.home;
  rec.epoch = v.epoch;
  rec.renew_counter = counter;
  rec.lease_ms = config_.lease_ms;
  rec.cluster_id = config_.cluster_id;
  rec.flags = v.replay.pending ? kOwnFlagReplayPending : 0;
  rec.replay_node = v.replay.node;
  rec.replay_epoch = v.replay.epoch;
  rec.replay_next_lsn = v.replay.next_lsn;
  rec.replay_from_epoch = v.replay.from_epoch;
  rec.run_epoch = v.run_epoch;
  rec.owner_ring = ring_tag_;
  rec.replay_ring = v.replay.node != kNoNode ? v.replay.ring : 0;
  return rec;
}

Monitor::Read Monitor::read_record(Vol& v) {
  Read r;
  RecordBlock block{};
  Status s = disk_.read(ownership_record_name(v.id), block);
  if (s.code() == Code::kNotFound) {
    v.tore_at = Millis(0);
    r.kind = ReadKind::kMissing;
    return r;
  }
  if (!s.is_ok()) {
    log_.debug("volume %u: ownership record unreadable: %s", v.id, s.to_string().c_str());
    v.tore_at = Millis(0);  // blind for a while: someone else may have written since
    r.kind = ReadKind::kError;
    return r;
  }
  auto rec = decode_ownership(block);
  if (rec.is_ok() && (rec->volume_id != v.id || rec->home != v.home)) {
    log_.error("volume %u: ownership record is of volume %u with home %u (config says home %u)",
               v.id, rec->volume_id, rec->home, v.home);
    r.kind = ReadKind::kCorrupt;
    return r;
  }
  if (!rec.is_ok()) {
    if (v.seen_kind != ReadKind::kCorrupt)
      log_.warn("volume %u: %s", v.id, rec.status().to_string().c_str());
    r.kind = ReadKind::kCorrupt;
    return r;
  }
  // A record of another pair (two pairs pointed at one membership directory by mistake) is
  // never ours to take, renew or trust: as good as corrupt, and said loudly.
  if (rec->cluster_id != config_.cluster_id) {
    if (v.seen_kind != ReadKind::kCorrupt)
      log_.error("volume %u: ownership record of another cluster (%016" PRIx64 ", ours %016" PRIx64
                 "): is membership.dir shared by two pairs?",
                 v.id, rec->cluster_id, config_.cluster_id);
    v.blocked = "its ownership record belongs to another cluster";
    r.kind = ReadKind::kCorrupt;
    return r;
  }
  // Rule 8 while running (membership.md): a run of our id staged in another NV log is a second
  // process with our identity that got past the heartbeat watch (both started before either
  // beat). Continuing it from our log would serve the medium without that run's staged writes.
  if (rec->owner == config_.node_id && another_log(rec->owner_ring)) {
    stop_for_identity("volume " + std::to_string(v.id) + "'s ownership record names node " +
                      std::to_string(config_.node_id) + " at epoch " + std::to_string(rec->epoch) +
                      " with an NV log of " + ring_tags(rec->owner_ring) +
                      ": another process with this node's identity staged that run; this node stops");
    r.kind = ReadKind::kError;
    return r;
  }
  v.tore_at = Millis(0);
  r.kind = ReadKind::kValid;
  r.rec = *rec;
  v.have_last = true;
  v.last = *rec;
  return r;
}

Status Monitor::write_record(Vol& v, const OwnershipRecord& rec) {
  RecordBlock block{};
  encode_ownership(rec, block);
  Status s = disk_.write(ownership_record_name(rec.volume_id), block);
  v.tore_at = s.is_ok() ? Millis(0) : std::max(clock_.now(), Millis(1));
  return s;
}

// A corrupt record was torn by its last writer, who is not serving it (a failed write fences
// it). We may rewrite it only if that writer was us: our write failed, every read since saw
// the record corrupt, and it was recent enough (under lease - margin) that no other node can
// have written a valid record in between — a claim needs lease + margin of stillness.
bool Monitor::we_tore_it(const Vol& v) const {
  return v.tore_at.count() != 0 &&
         clock_.now() - v.tore_at < Millis(config_.lease_ms - config_.margin_ms);
}

void Monitor::fence_expired_leases() {
  const Millis now = clock_.now();
  for (auto& v : vols_)
    if (holds(v) && now >= v.lease_valid_until) self_fence(v, "lease expired");
}

void Monitor::self_fence(Vol& v, const char* why) {
  if (v.state == VolumeState::kServing) actions_.fence(v.id);
  v.releasing = false;  // a giveback under way ends here: the fence owns the volume now
  log_.warn("volume %u: self-fencing at epoch %" PRIu64 ": %s", v.id, v.epoch, why);
  set_volume_state(v, VolumeState::kFenced, why);
}

void Monitor::lose_volume(Vol& v, const Read& r, const char* why) {
  if (v.state == VolumeState::kServing) actions_.fence(v.id);
  v.releasing = false;
  log_.warn("volume %u: lost at epoch %" PRIu64 " (record: owner %u epoch %" PRIu64 "): %s",
            v.id, v.epoch, r.rec.owner, r.rec.epoch, why);
  v.discard_pending = true;
  v.replay = {};
  discard_stale(v, r.rec);  // never destage our stale records of it
  v.giveback_requested = false;
  v.planned = false;
  classify(v, r, why);
}

void Monitor::step_volume(Vol& v) {
  v.blocked.clear();  // each tick says anew what holds the volume back, if anything
  const Read r = read_record(v);
  switch (v.state) {
    case VolumeState::kServing:
    case VolumeState::kTakingOver: return step_holder(v, r);
    case VolumeState::kClaiming: return step_claiming(v, r);
    case VolumeState::kFenced: return step_fenced(v, r);
    case VolumeState::kGivingBack: return step_giving_back(v, r);
    case VolumeState::kUnknown:
    case VolumeState::kUnowned:
    case VolumeState::kPartner: return step_watcher(v, r);
  }
}

// Holder: the record must still name us at our epoch; then renew; then finish a takeover.
void Monitor::step_holder(Vol& v, const Read& r) {
  if (r.kind == ReadKind::kValid && r.rec.owner != config_.node_id)
    return lose_volume(v, r, "the record names another owner");
  // Our own record at another epoch: not a takeover, so no discard (our staged records are
  // still the only copy of some writes); stop and re-claim with a fresh epoch.
  if (r.kind == ReadKind::kValid && r.rec.epoch != v.epoch)
    return self_fence(v, "the record names us at another epoch");
  if (r.kind == ReadKind::kError) return;  // cannot verify: no renewal; the lease runs down
  // kValid and ours, or damaged (kCorrupt, kMissing): the holder rewrites it.
  if (r.kind != ReadKind::kValid) log_.warn("volume %u: rewriting a damaged record", v.id);
  if (!renew(v)) return;
  if (v.state == VolumeState::kTakingOver) try_take_over(v);
}

bool Monitor::renew(Vol& v) {
  const Millis start = clock_.now();
  if (start >= v.lease_valid_until) {
    self_fence(v, "lease expired before the renewal");  // never renew an expired lease
    return false;
  }
  const OwnershipRecord rec = own_record(v, v.renew_counter + 1);
  const Status s = write_record(v, rec);
  const Millis took = clock_.now() - start;
  slowest_renewal_ = std::max(slowest_renewal_, took);
  if (!s.is_ok()) {
    self_fence(v, ("renewal write failed: " + s.to_string()).c_str());
    return false;
  }
  if (took > Millis(config_.io_timeout_ms)) {
    self_fence(v, ("renewal took " + std::to_string(took.count()) + " ms").c_str());
    return false;
  }
  v.renew_counter = rec.renew_counter;
  v.last = rec;
  v.have_last = true;
  v.lease_valid_until = start + Millis(config_.lease_ms - config_.margin_ms);
  return true;
}

void Monitor::try_take_over(Vol& v) {
  if (!v.replayed) {
    publish();  // the replay's destage batches check may_destage(), which reads the snapshot
    TakeoverPlan plan;
    plan.own_from_epoch = v.own_from_epoch;
    if (v.replay.pending) {
      plan.replay_node = v.replay.node;
      plan.replay_epoch = v.replay.epoch;
      plan.replay_from_epoch = v.replay.from_epoch;
      plan.accept_damage = v.accept_loss;
    }
    uint64_t next_lsn = 0;
    // I7 after the claim (docs/membership.md, rule 6): the partner may have marked its mirror
    // outdated between our read of the mark and our claim; then it may have acknowledged writes
    // the mirror lacks, and the mirror is not replayed (as if damaged: back to its living owner).
    Status s = plan.replay_node == config_.partner_id && !v.accept_loss ? check_mark_after_claim()
                                                                        : Status::ok();
    if (s.is_ok()) s = actions_.take_over(v.id, v.epoch, plan, &next_lsn);
    if (s.code() == Code::kInProgress) return;  // replaying in the background: renew, ask again
    if (!s.is_ok()) {
      log_.warn("volume %u: take_over at epoch %" PRIu64 " failed (retried next tick): %s", v.id,
                v.epoch, s.to_string().c_str());
      v.blocked = "take-over failed: " + s.to_string();
      // A mirror that cannot be replayed (damaged inside) while its owner lives again: the
      // owner's own NV log holds the records (it keeps them while our replay is pending), so
      // the volume goes back to it rather than waiting for an operator.
      // Not when our own run of the volume began before the partner's run we replay (a claim
      // back, rule 9): our records of it are staged here, older than the partner's, and the
      // partner would serve without them (whole-pair simulator, seed 6958115224298967307).
      // Then the volume waits, blocked, for an operator or a mirror that replays.
      const bool mirror_unreplayable =
          s.code() == Code::kDataLoss && v.replay.pending && v.replay.node == config_.partner_id;
      if (mirror_unreplayable && v.run_epoch < v.replay.from_epoch)
        v.blocked += "; not handing it back to node " + std::to_string(config_.partner_id) +
                     ": this node's own run of the volume (from epoch " + std::to_string(v.run_epoch) +
                     ") is staged here and would be lost";
      else if (mirror_unreplayable && partner_disk_alive_) {
        log_.error("volume %u: the partner's mirror cannot be replayed and node %u is alive: "
                   "handing the volume back to it (its own NV log has the records)",
                   v.id, config_.partner_id);
        v.handover_attempts = 0;
        write_handover(v);
      }
      return;
    }
    v.blocked.clear();
    v.replayed = true;
    if (v.replay.pending) {
      // I8: the record says the replay is done (and how far it read) before anything new is
      // accepted, so no later takeover applies these records again over newer writes.
      v.replay.pending = false;
      v.replay.next_lsn = next_lsn;
      v.accept_loss = false;
      if (!renew(v)) return;  // fenced: the re-claim replays again (nobody was served)
    }
  }
  if (clock_.now() >= v.lease_valid_until) return;  // serve after the next renewal
  actions_.serve(v.id, v.epoch);
  v.discard_pending = false;
  set_volume_state(v, VolumeState::kServing, "replayed and synced; serving");
}

// Claimant: write (or rewrite) the claim, wait settle_ms, re-read: ours -> take over.
void Monitor::step_claiming(Vol& v, const Read& r) {
  const Millis now = clock_.now();
  if (now >= v.claim_started_at + Millis(config_.lease_ms - config_.margin_ms))
    return abandon_claim(v, r, "not confirmed while its lease was valid");
  const OwnershipRecord mine = own_record(v, 0);
  const bool ours = r.kind == ReadKind::kValid && r.rec == mine;
  if (r.kind == ReadKind::kError) return;
  if (v.claim_needs_write) {
    if (ours) {  // the failed write landed after all
      v.claim_needs_write = false;
      return;
    }
    const bool base = (r.kind == ReadKind::kCorrupt && we_tore_it(v)) ||
                      (r.kind == ReadKind::kMissing && !v.claim_has_base) ||
                      (r.kind == ReadKind::kValid && v.claim_has_base && r.rec == v.claim_base);
    if (!base) return abandon_claim(v, r, "another node wrote the record");
    return write_claim(v, r);
  }
  if (now < v.claim_written_at + Millis(config_.settle_ms)) return;
  if (ours) {
    v.renew_counter = 0;
    v.replayed = false;
    v.lease_valid_until = v.claim_started_at + Millis(config_.lease_ms - config_.margin_ms);
    set_volume_state(v, VolumeState::kTakingOver, "claim confirmed after settle");
    return try_take_over(v);
  }
  // Our claim landed whole, yet the record is not it: someone else wrote (or tore) it.
  abandon_claim(v, r, "the record changed under the claim");
}

Monitor::ReplayFields Monitor::replay_after(const OwnershipRecord* base) const {
  ReplayFields f;
  if (!base) return f;
  if (base->owner == config_.partner_id) {
    // Over the partner's ownership: its records of this epoch are in our mirror of its log.
    f.pending = true;
    f.node = config_.partner_id;
    f.epoch = base->epoch;
    // Every epoch of its run: a re-claim over itself that never served has not destaged the
    // records of the epochs before it.
    f.from_epoch = base->run_epoch;
    f.ring = base->owner_ring;
  } else if (base->owner == config_.node_id) {
    // Over our own (an earlier life, a self-fence): what that record said, a pending replay too.
    f.pending = base->replay_pending();
    f.node = base->replay_node;
    f.epoch = base->replay_epoch;
    f.from_epoch = base->replay_from_epoch;
    f.next_lsn = base->replay_next_lsn;
    f.ring = base->replay_ring;
  }
  return f;
}

// Where our run starts with a claim at `epoch` over `base` (rule 9, membership.md). Over our own
// record the run goes on. Over the partner's, a new run starts, unless the partner's run began by
// taking over ours and its replay of it is still pending: it never served, so our earlier run
// goes on, and our records of it are the only copies. Our records of epochs before the run are
// never destaged (TakeoverPlan::own_from_epoch): the partner replayed them and may have served
// newer bytes since.
uint64_t Monitor::run_epoch_after(const OwnershipRecord* base, uint64_t epoch) const {
  if (!base) return epoch;
  if (base->owner == config_.node_id) return base->run_epoch;
  if (base->owner == config_.partner_id && base->replay_node == config_.node_id && base->replay_pending())
    return base->replay_from_epoch;
  return epoch;
}

Status Monitor::check_mark_after_claim() {
  auto mark = read_mirror_mark(disk_, config_.partner_id);
  if (!mark) return mark.status().with_context("reading the partner's outdated-mirror mark");
  if (*mark && (*mark)->outdated)
    return Status::error(Code::kDataLoss,
        "node " + std::to_string(config_.partner_id) + " marked our mirror of its NV log outdated while we "
        "claimed (" + std::to_string((*mark)->lag_bytes) + " bytes unmirrored when marked): it may have "
        "acknowledged writes the mirror lacks");
  return Status::ok();
}

// Rule 8: a record names `tag` as the NV log a run of ours is staged in, and this process's log
// is another one (neither tag unknown, and no operator accepted the loss).
bool Monitor::another_log(uint32_t tag) const {
  return tag != 0 && ring_tag_ != 0 && tag != ring_tag_ && !config_.adopt_foreign_runs;
}

std::string Monitor::ring_tags(uint32_t tag) const {
  char tags[64];
  std::snprintf(tags, sizeof tags, "ring tag %08x, and this process's NV log is %08x", tag, ring_tag_);
  return tags;
}

bool Monitor::prepare_claim(Vol& v, const OwnershipRecord* base) {
  // Rule 8 (membership.md), for a run the partner's takeover has not replayed yet: a claim over
  // that record continues our run (rule 9), but only the NV log it is staged in holds it. With
  // another log (a twin on another machine, or this node with a log formatted anew) the run's
  // only copy is the partner's mirror: wait for the partner to replay it (whole-pair simulator,
  // seeds 9862195802341871820 and 1345506560420389292: a twin of a node whose log was damaged
  // claimed the volume while the partner, which had taken it over, was paused).
  if (base && base->owner == config_.partner_id && base->replay_pending() && base->replay_node == config_.node_id &&
      another_log(base->replay_ring)) {
    v.blocked = "node " + std::to_string(config_.partner_id) + " took this volume over and has not replayed this "
                "node's run of it yet; the run is staged in the NV log of " + ring_tags(base->replay_ring) +
                ": not claiming; waiting for node " + std::to_string(config_.partner_id) + " to replay it from its mirror";
    if (!v.blocked_logged) log_.error("volume %u: %s", v.id, v.blocked.c_str());
    v.blocked_logged = true;
    return false;
  }
  const ReplayFields plan = replay_after(base);
  if (plan.pending && plan.node == config_.partner_id) {
    // I7: never from a mirror its owner marked outdated, unless an operator accepted the loss.
    auto mark = read_mirror_mark(disk_, config_.partner_id);
    if (!mark) {
      v.blocked = "cannot read the partner's outdated-mirror mark: " + mark.status().to_string();
      return false;
    }
    if (*mark && (*mark)->outdated && !v.accept_loss) {
      v.blocked = "node " + std::to_string(config_.partner_id) +
                  " marked our mirror of its NV log outdated (it acknowledged writes the mirror "
                  "lacks; " + std::to_string((*mark)->lag_bytes) +
                  " bytes unmirrored when marked): not taking over; waiting for node " +
                  std::to_string(config_.partner_id) +
                  " to return, or `hafsctl takeover --accept-loss VOLUME` accepts losing them";
      if (!v.blocked_logged) log_.error("volume %u: %s", v.id, v.blocked.c_str());
      v.blocked_logged = true;
      return false;
    }
    v.blocked_logged = false;
    // I8: freeze the mirror before the claim is written: once the partner could learn of the
    // claim, nothing it does (a discard and its trim, a resync) may change what we replay.
    if (!mirror_frozen_) {
      if (Status s = actions_.freeze_partner_mirror(); !s.is_ok()) {
        v.blocked = "cannot freeze the partner's mirror for the takeover: " + s.to_string();
        log_.warn("volume %u: %s", v.id, v.blocked.c_str());
        return false;
      }
      mirror_frozen_ = true;
      log_.info("the partner's mirror is frozen for the takeover of volume %u", v.id);
    }
  }
  v.blocked.clear();
  if (v.kept_extents > 0 && v.discarded_below != 0)
    drop_kept(v, "taking the volume again: they would roll back what its last owner served");
  v.replay = plan;
  return true;
}

void Monitor::start_claim(Vol& v, const Read& r, uint64_t epoch, const char* why) {
  const OwnershipRecord* base = r.kind == ReadKind::kValid ? &r.rec : (v.have_last ? &v.last : nullptr);
  if (!prepare_claim(v, base)) return;
  // Over our own record our run goes on (nobody held it in between); otherwise one starts.
  v.run_epoch = run_epoch_after(base, epoch);
  // Only after a record of this pair's: over a missing record (a membership directory made anew)
  // nothing says which of our records are stale, so all go, as before rule 9.
  v.own_from_epoch = base && (base->owner == config_.node_id || base->owner == config_.partner_id) ? v.run_epoch : 0;
  v.epoch = epoch;
  v.claim_has_base = r.kind == ReadKind::kValid;
  if (v.claim_has_base) v.claim_base = r.rec;
  v.claim_attempts = 0;
  v.claim_needs_write = false;
  v.giveback_requested = false;
  v.planned = false;  // a claim after a failure: the home node gets it back automatically
  set_volume_state(v, VolumeState::kClaiming, why);
  write_claim(v, r);
}

void Monitor::write_claim(Vol& v, const Read& r) {
  if (++v.claim_attempts > config_.claim_attempts_max)
    return abandon_claim(v, r, "claim attempts exhausted");
  const OwnershipRecord rec = own_record(v, 0);
  v.claim_started_at = clock_.now();
  const Status s = write_record(v, rec);
  v.claim_written_at = clock_.now();
  v.claim_needs_write = !s.is_ok();
  if (!s.is_ok()) {
    log_.warn("volume %u: claim write at epoch %" PRIu64 " failed (attempt %u): %s", v.id,
              v.epoch, v.claim_attempts, s.to_string().c_str());
    return;
  }
  v.last = rec;
  v.have_last = true;
}

// A claim that another node's valid record beat is lost like a held volume (our staged
// records of it, if any, are stale). Any other failed claim leaves us as the record's last
// writer: kFenced, whose rules re-claim it (also over a record our own failed write tore).
void Monitor::abandon_claim(Vol& v, const Read& r, const char* why) {
  log_.warn("volume %u: claim at epoch %" PRIu64 " abandoned: %s", v.id, v.epoch, why);
  v.seen_any = false;  // watch anew: stillness counts from the next read
  if (r.kind == ReadKind::kValid && r.rec.owner != config_.node_id) return lose_volume(v, r, why);
  if (r.kind == ReadKind::kCorrupt && !we_tore_it(v)) {
    v.discard_pending = true;
    return set_volume_state(v, VolumeState::kUnknown, why);
  }
  set_volume_state(v, VolumeState::kFenced, why);
}

// Self-fenced holder: re-claim with epoch+1 unless someone else has the record now.
void Monitor::step_fenced(Vol& v, const Read& r) {
  switch (r.kind) {
    case ReadKind::kError: return;
    case ReadKind::kValid:
      if (r.rec.owner == config_.node_id)
        return start_claim(v, r, std::max(v.epoch, r.rec.epoch) + 1, "re-claim after a fence");
      return lose_volume(v, r, "taken while we were fenced");
    case ReadKind::kCorrupt:
    case ReadKind::kMissing: {
      if (!we_tore_it(v)) {  // someone else's damage: never taken as expired; wait
        set_volume_state(v, VolumeState::kUnknown, "record damaged by another writer");
        return;
      }
      const uint64_t epoch = std::max(v.epoch, v.have_last ? v.last.epoch : 0) + 1;
      return start_claim(v, r, epoch, "re-claim of a record our failed write tore");
    }
  }
}

// Giver: released; hand the record to the partner (epoch+1, handover flag): the home node on a
// giveback, the partner of the home node on a planned takeover.
void Monitor::step_giving_back(Vol& v, const Read& r) {
  if (r.kind == ReadKind::kError) return;
  if (r.kind == ReadKind::kValid && r.rec.owner == config_.partner_id && r.rec.epoch == v.epoch + 1) {
    v.giveback_requested = false;
    return classify(v, r, "hand-over landed");
  }
  if (r.kind == ReadKind::kValid && (r.rec.owner != config_.node_id || r.rec.epoch != v.epoch))
    return lose_volume(v, r, "the record changed during giveback");
  write_handover(v);
}

void Monitor::write_handover(Vol& v) {
  if (++v.handover_attempts > config_.claim_attempts_max) {
    v.giveback_requested = false;
    set_volume_state(v, VolumeState::kFenced, "hand-over attempts exhausted; re-claiming");
    return;
  }
  OwnershipRecord rec = own_record(v, 0);
  rec.owner = config_.partner_id;
  rec.epoch = v.epoch + 1;
  // Everything of ours is on the medium: the partner's run starts now. Unless this hands back a
  // takeover whose replay never ran (a mirror marked outdated or damaged): then the partner's
  // run goes on from its old start, and its own records of it are the only copies (rule 9).
  const bool replay_never_ran = v.replay.pending && v.replay.node == config_.partner_id;
  rec.run_epoch = replay_never_ran ? v.replay.from_epoch : rec.epoch;
  rec.flags = kOwnFlagHandover;
  // Nothing of a new run is staged anywhere yet. A run that goes on is staged in the partner's
  // log: named, so that a process with the partner's id and another log does not continue it
  // (rule 8; whole-pair simulator, seed 1892927709913078029: a twin of the partner took a
  // hand-back over with its empty log).
  rec.owner_ring = replay_never_ran ? v.replay.ring : 0;
  if (Status s = write_record(v, rec); !s.is_ok()) {
    log_.warn("volume %u: hand-over write failed (attempt %u): %s", v.id, v.handover_attempts,
              s.to_string().c_str());
    return;
  }
  v.last = rec;
  v.have_last = true;
  v.giveback_requested = false;
  v.discard_pending = false;  // release flushed everything: nothing of ours is left staged
  v.seen_any = false;
  set_volume_state(v, VolumeState::kPartner, v.home == config_.partner_id ? "handed back to its home node"
                                                                          : "handed over to the partner");
}

bool Monitor::takeover_allowed(const Vol& v) const {
  return (state_ == NodeState::kPartnerDown || state_ == NodeState::kTakeover) &&
         partner_silent_ && now_ - v.quiet_since >= Millis(config_.lease_ms + config_.margin_ms);
}

void Monitor::note_content(Vol& v, const Read& r) {
  if (r.kind == ReadKind::kError) return;
  const bool same = v.seen_any && v.seen_kind == r.kind && r.kind != ReadKind::kCorrupt &&
                    (r.kind != ReadKind::kValid || v.seen_rec == r.rec);
  if (!same) v.quiet_since = now_;  // a corrupt record never counts as still
  v.seen_any = true;
  v.seen_kind = r.kind;
  v.seen_rec = r.rec;
}

void Monitor::classify(Vol& v, const Read& r, const char* why) {
  switch (r.kind) {
    case ReadKind::kError: return set_volume_state(v, VolumeState::kUnknown, why);
    case ReadKind::kCorrupt: return set_volume_state(v, VolumeState::kUnknown, "record corrupt");
    case ReadKind::kMissing: return set_volume_state(v, VolumeState::kUnowned, why);
    case ReadKind::kValid:
      if (r.rec.owner == config_.partner_id) return set_volume_state(v, VolumeState::kPartner, why);
      if (r.rec.owner == kNoNode) return set_volume_state(v, VolumeState::kUnowned, why);
      return set_volume_state(v, VolumeState::kUnknown, why);
  }
}

void Monitor::accept_handover(Vol& v, const Read& r) {
  if (v.kept_extents > 0 && v.discarded_below != 0)
    drop_kept(v, "handed the volume back: they would roll back what its last owner served");
  v.replay = replay_after(&r.rec);  // the giver's history; it replayed before serving
  v.replay.pending = false;
  v.epoch = r.rec.epoch;
  v.run_epoch = r.rec.run_epoch;  // the giver wrote it: our run starts at the handover (or goes on)
  v.own_from_epoch = v.run_epoch;
  v.renew_counter = r.rec.renew_counter;
  v.replayed = false;
  // The giver wrote the record for us and never writes it again; our first renewal starts
  // the lease, so it is allowed without one.
  v.lease_valid_until = clock_.now() + Millis(config_.lease_ms - config_.margin_ms);
  // A volume the partner handed over although it is its home (a planned takeover) stays here
  // until a giveback is asked for: no automatic giveback.
  v.planned = v.home != config_.node_id;
  set_volume_state(v, VolumeState::kTakingOver, v.planned ? "handed over to us (planned takeover)"
                                                          : "handed back to us");
  if (renew(v)) try_take_over(v);
}

// Watcher: classify the record; claim what is ours to claim.
void Monitor::step_watcher(Vol& v, const Read& r) {
  now_ = clock_.now();
  note_content(v, r);
  if (r.kind == ReadKind::kError) return;
  classify(v, r, "record read");
  const bool partner_home = v.home == config_.partner_id;
  if (r.kind == ReadKind::kMissing) {
    if (!partner_home) return start_claim(v, r, 1, "home volume that nobody owns");
    if (takeover_allowed(v)) return start_claim(v, r, 1, "partner down; its volume unclaimed");
    return;
  }
  if (r.kind != ReadKind::kValid) return;
  const OwnershipRecord& rec = r.rec;
  if (rec.owner == config_.node_id) {
    if ((rec.flags & kOwnFlagHandover) != 0 && rec.epoch > v.epoch && state_ != NodeState::kStarting)
      return accept_handover(v, r);
    return start_claim(v, r, rec.epoch + 1, "the record names us from an earlier life");
  }
  if (rec.owner == config_.partner_id) {
    discard_stale(v, rec);  // the partner owns it: our staged records it replayed are stale
    if (takeover_allowed(v)) start_claim(v, r, rec.epoch + 1, "the partner's lease expired");
    return;
  }
  if (rec.owner == kNoNode && (!partner_home || takeover_allowed(v)))
    return start_claim(v, r, rec.epoch + 1, "nobody owns it");
  if (rec.owner != kNoNode)
    log_.error("volume %u: owned by node %u, which is not in this pair", v.id, rec.owner);
}

// Our staged records of a volume another node owns: those below the LSN its record says it
// replayed of our log are stale (applied there); the rest it never saw. While its replay is
// pending we keep everything; once it serves, what it did not replay is kept, undestaged, and
// reported (I7: never discard records newer than what the owner replayed).
void Monitor::discard_stale(Vol& v, const OwnershipRecord& rec) {
  uint64_t below = UINT64_MAX;  // a record that does not name our log: nothing of ours counts
  bool served_without = false;
  // Not replayed yet: keep all (if the new owner dies mid-replay and we take the volume back,
  // ours are the only copies). Replayed: what the replay did not read was never acknowledged,
  // unless we acknowledged writes without the mirror (our mark is set): then keep it.
  if (rec.replay_node == config_.node_id && (rec.replay_pending() || own_mirror_outdated_)) {
    below = rec.replay_pending() ? 0 : rec.replay_next_lsn;
    served_without = !rec.replay_pending();
  }
  if (!v.discard_pending && (v.kept_extents == 0 || below <= v.discarded_below)) return;
  v.kept_extents = actions_.discard(v.id, below);
  v.discarded_below = std::max<uint64_t>(below, 1);
  v.discard_pending = false;
  if (v.kept_extents == 0) {
    v.kept_note.clear();
    return;
  }
  if (!served_without) {
    v.discarded_below = 0;  // not a verdict yet: the owner has still to replay them
    v.kept_note = "keeps " + std::to_string(v.kept_extents) + " staged extents of it until node " +
                  std::to_string(rec.owner) + " has replayed them";
    return;
  }
  v.kept_note = "keeps " + std::to_string(v.kept_extents) + " staged extents of it from LSN " +
                std::to_string(below) + " on that node " + std::to_string(rec.owner) +
                " did not replay (it serves the volume without them): not destaged";
  log_.error("volume %u: %s", v.id, v.kept_note.c_str());
}

void Monitor::drop_kept(Vol& v, const char* why) {
  log_.error("volume %u: dropping %" PRIu64 " kept staged extents that its last owner did not "
             "replay: %s", v.id, v.kept_extents, why);
  actions_.discard(v.id, UINT64_MAX);
  v.kept_extents = 0;
  v.discarded_below = 0;
  v.kept_note.clear();
}

bool Monitor::needs_frozen_mirror(const Vol& v) const {
  return v.replay.pending && v.replay.node == config_.partner_id &&
         (v.state == VolumeState::kClaiming || v.state == VolumeState::kTakingOver ||
          v.state == VolumeState::kFenced);
}

void Monitor::thaw_mirror_if_unneeded() {
  if (!mirror_frozen_) return;
  for (const auto& v : vols_)
    if (needs_frozen_mirror(v)) return;
  actions_.thaw_partner_mirror();
  mirror_frozen_ = false;
  log_.info("the partner's mirror is thawed: no replay needs it");
}

}  // namespace hafs::membership
