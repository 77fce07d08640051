#include "node/node_actions.h"

#include <algorithm>

namespace hafs::node {

using Clock = std::chrono::steady_clock;

namespace {
int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}
}  // namespace

Result<uint64_t> cluster_id_of(const tools::HafsdConfig& cfg) {
  interconnect::Key key{};
  if (!cfg.interconnect.key_file.empty()) {
    auto k = interconnect::load_key_file(cfg.interconnect.key_file);
    if (!k) return k.status();
    key = *k;
  } else {
    key = interconnect::key_from_passphrase(cfg.interconnect.key);
  }
  const std::string text = "hafs-cluster:" + cfg.membership.cluster;
  const auto mac = interconnect::hmac(key, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id |= uint64_t{mac[i]} << (8 * i);
  return id;
}

Status FaultyDisk::write(const std::string& name,
                         std::span<const std::byte, membership::kRecordBlockBytes> data) {
  if (faults_) {
    const bool heartbeat = name.ends_with(".hb");  // membership-format.md: node-<id>.hb
    HAFS_RETURN_IF_ERROR(faults_->hit(heartbeat ? FaultSite::kHeartbeatWrite : FaultSite::kLeaseBeforeWrite));
  }
  return disk_.write(name, data);
}

NodeActions::NodeActions(uint32_t node_id, std::vector<fs::Volume*> volumes, fs::Filesystem* filesystem,
                         nvcache::NvCache* cache, nvcache::DestageTarget* target, nvcache::Store* mirror,
                         interconnect::MirrorSender* sender, interconnect::MirrorReceiver* receiver,
                         Logger logger, FaultRegistry* faults)
    : node_id_(node_id), volumes_(std::move(volumes)), fs_(filesystem), cache_(cache), target_(target),
      mirror_(mirror), sender_(sender), receiver_(receiver), log_(std::move(logger)), faults_(faults) {}

fs::Volume* NodeActions::find(membership::VolumeId id) const {
  for (fs::Volume* v : volumes_)
    if (v->id() == id) return v;
  return nullptr;
}

void NodeActions::fence(membership::VolumeId id) {
  fs::Volume* v = find(id);
  if (!v) return;
  // Stop acknowledging (the volume leaves the tree: its inodes answer ESTALE, writes EIO) and
  // destaging (its records stay staged until take_over or discard decides).
  cache_->pause_volume(id);
  fs_->remove_volume(v->name());
  log_.warn("volume %s fenced: no longer served or destaged here", v->name().c_str());
}

NodeActions::~NodeActions() { wait_for_jobs(); }

void NodeActions::wait_for_jobs() {
  for (auto& [id, job] : jobs_)
    if (job->thread.joinable()) job->thread.join();
  jobs_.clear();
}

bool NodeActions::wait_idle() {
  std::unique_lock lock(idle_mu_);
  auto all_done = [&] {
    return std::all_of(jobs_.begin(), jobs_.end(), [](const auto& j) { return j.second->done.load(); });
  };
  if (all_done()) return false;
  idle_cv_.wait(lock, all_done);
  return true;
}

Status NodeActions::in_background(membership::VolumeId id, Job::Kind kind, uint64_t epoch,
                                  std::function<Status(uint64_t*)> work, uint64_t* value) {
  if (auto it = jobs_.find(id); it != jobs_.end()) {
    Job& job = *it->second;
    if (!job.done.load(std::memory_order_acquire))
      return Status::error(Code::kInProgress, "volume " + std::to_string(id) + ": still running");
    job.thread.join();
    const bool same = job.kind == kind && job.epoch == epoch;
    Status result = job.result;
    if (same && value) *value = job.value;
    jobs_.erase(it);
    if (same) return result;
  }
  auto job = std::make_unique<Job>();
  job->kind = kind;
  job->epoch = epoch;
  Job* j = job.get();
  j->thread = std::thread([this, j, work = std::move(work)] {
    j->result = work(&j->value);
    {
      std::lock_guard lock(idle_mu_);
      j->done.store(true, std::memory_order_release);
    }
    idle_cv_.notify_all();
    if (wake_) wake_();
  });
  jobs_[id] = std::move(job);
  return Status::error(Code::kInProgress, "volume " + std::to_string(id) + ": started");
}

Status NodeActions::take_over(membership::VolumeId id, uint64_t epoch, const membership::TakeoverPlan& plan,
                              uint64_t* replay_next_lsn) {
  fs::Volume* v = find(id);
  if (!v) return Status::error(Code::kNotFound, "no volume with id " + std::to_string(id));
  return in_background(
      id, Job::kTakeOver, epoch,
      [this, v, epoch, plan](uint64_t* next_lsn) { return take_over_now(v, epoch, plan, next_lsn); },
      replay_next_lsn);
}

Status NodeActions::freeze_partner_mirror() {
  if (!receiver_) return Status::ok();
  return receiver_->freeze(std::chrono::milliseconds(2000));
}

void NodeActions::thaw_partner_mirror() {
  if (receiver_) receiver_->thaw();
}

Status NodeActions::take_over_now(fs::Volume* v, uint64_t epoch, const membership::TakeoverPlan& plan,
                                  uint64_t* replay_next_lsn) {
  const membership::VolumeId id = v->id();
  const auto start = Clock::now();
  v->set_epoch(epoch);
  uint64_t replayed_records = 0, replayed_bytes = 0;
  int64_t replay_ms = 0;
  *replay_next_lsn = 0;
  if (plan.replay_node != membership::kNoNode) {
    if (!mirror_)
      return Status::error(Code::kDataLoss, "takeover of " + v->name() + " needs node " +
                                                std::to_string(plan.replay_node) + "'s mirror, and this node has none");
    // Every mirrored record of the volume's last ownership goes to the medium, synced, before it
    // is served (I3): those of its whole last run of ownership (TakeoverPlan); records of epochs
    // before that run were applied by the takeover that ended it and are not again (I8).
    const uint64_t from = plan.replay_from_epoch, to = plan.replay_epoch;
    // Damage among the mirror's last records reads like a torn tail (log-format.md §9a). The
    // receiver knows better: every byte below the position the partner COMMITted (kept in the
    // mirror store, across restarts) was acknowledged to it, so a valid log ending below that is
    // damage. Judged before anything is applied: a prefix of the partner's records written to
    // the medium could roll back what the partner destaged and trimmed after them.
    auto committed_check = [&](const nvcache::RecoveredRing& ring) -> Status {
      if (!receiver_ || plan.accept_damage) return Status::ok();
      const auto in = receiver_->stats();
      if (in.ring_id == ring.header.ring_id && in.committed_pos > ring.next_pos)
        return Status::error(Code::kDataLoss,
            "the mirror holds node " + std::to_string(plan.replay_node) + "'s ring acknowledged up to position " +
            std::to_string(in.committed_pos) + ", but its records are valid only up to " +
            std::to_string(ring.next_pos) + " (" + ring.end_message + "): the mirror is damaged");
      return Status::ok();
    };
    auto rep = nvcache::replay_ring(
        *mirror_, *target_,
        [id, from, to](uint32_t vol, uint64_t rec_epoch) { return vol == id && rec_epoch >= from && rec_epoch <= to; },
        plan.accept_damage, faults_, log_.child("replay"), committed_check);
    if (!rep) return rep.status().with_context("takeover replay of " + v->name());
    replayed_records = rep->records_applied;
    replayed_bytes = rep->bytes_applied;
    *replay_next_lsn = std::max<uint64_t>(rep->ring.next_lsn, 1);
    replay_ms = ms_since(start);
    if (faults_) HAFS_RETURN_IF_ERROR(faults_->hit(FaultSite::kTakeoverMidReplay).with_context("takeover of " + v->name()));
  }
  // Our own staged records of it (a restart, a re-claim after a self-fence) go too: those of our
  // current run. Older ones are of an earlier run of ours that the partner took over, replayed
  // and served after: applied now, they would roll back its writes (membership.md, rule 9). A
  // restart re-reads them from the NV log unless they were voided already.
  if (plan.own_from_epoch > 0) {
    if (uint64_t dropped = cache_->drop_earlier_run(id, plan.own_from_epoch))
      log_.warn("volume %s: dropped %llu staged extents of epochs before %llu (an earlier run of this node, "
                "which the partner took over and replayed)", v->name().c_str(),
                static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(plan.own_from_epoch));
  }
  const auto destage_start = Clock::now();
  cache_->resume_volume(id);
  HAFS_RETURN_IF_ERROR(cache_->flush_all().with_context("destage before serving " + v->name()));
  const int64_t destage_ms = ms_since(destage_start), total_ms = ms_since(start);
  log_.info("volume %s taken over at epoch %llu: replayed %llu extents (%llu bytes) of the partner's "
            "mirror in %lld ms, destaged own records in %lld ms, %lld ms in all",
            v->name().c_str(), static_cast<unsigned long long>(epoch),
            static_cast<unsigned long long>(replayed_records), static_cast<unsigned long long>(replayed_bytes),
            static_cast<long long>(replay_ms), static_cast<long long>(destage_ms), static_cast<long long>(total_ms));
  if (plan.replay_node != membership::kNoNode) {
    std::lock_guard lock(mu_);
    last_takeover_ = {{"volume", v->name()}, {"epoch", epoch}, {"replayed_extents", replayed_records},
                      {"replayed_bytes", replayed_bytes}, {"replay_ms", replay_ms},
                      {"destage_ms", destage_ms}, {"total_ms", total_ms}};
  }
  return Status::ok();
}

void NodeActions::serve(membership::VolumeId id, uint64_t epoch) {
  fs::Volume* v = find(id);
  if (!v) return;
  v->set_epoch(epoch);
  cache_->resume_volume(id);
  if (fs_->volume_by_id(id) != v) fs_->add_volume(v);
  log_.info("serving volume %s at epoch %llu", v->name().c_str(), static_cast<unsigned long long>(epoch));
}

Status NodeActions::release(membership::VolumeId id) {
  fs::Volume* v = find(id);
  if (!v) return Status::error(Code::kNotFound, "no volume with id " + std::to_string(id));
  // The first call stops serving it; the destage runs in the background (an error makes the
  // Monitor serve it again at the same epoch).
  if (fs_->volume_by_id(id) == v) fs_->remove_volume(v->name());
  return in_background(id, Job::kRelease, v->epoch(), [this, v, id](uint64_t*) {
    Status s = cache_->flush_all();
    if (!s.is_ok()) return s.with_context("giveback of " + v->name());
    cache_->pause_volume(id);
    log_.info("volume %s released for giveback: destaged and no longer served", v->name().c_str());
    return Status::ok();
  });
}

uint64_t NodeActions::discard(membership::VolumeId id, uint64_t below_lsn) {
  const uint64_t kept = cache_->discard_volume(id, below_lsn);
  if (fs::Volume* v = find(id)) {
    if (kept == 0)
      log_.info("discarded this node's stale records of volume %s", v->name().c_str());
    else if (below_lsn == UINT64_MAX || below_lsn == 0)
      log_.warn("volume %s: %llu staged extents of this node are kept (not destaged): the new owner has "
                "not replayed them yet", v->name().c_str(), static_cast<unsigned long long>(kept));
    else
      log_.error("volume %s: discarded this node's records below LSN %llu (the new owner replayed them); "
                 "%llu staged extents at or above it are kept, not destaged: the new owner never saw them",
                 v->name().c_str(), static_cast<unsigned long long>(below_lsn),
                 static_cast<unsigned long long>(kept));
  }
  return kept;
}

void NodeActions::set_degraded(bool degraded) {
  if (sender_) sender_->force_degraded(degraded);
}

nlohmann::json NodeActions::last_takeover() const {
  std::lock_guard lock(mu_);
  return last_takeover_;
}

}  // namespace hafs::node
