#include "node/node.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <random>

#include "interconnect/auth.h"
#include "membership/records.h"

namespace hafs::node {

namespace {

std::string hex_id(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

uint64_t random_id() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

// The NV log is damaged inside (nvcache: RingDamage). Its records were acknowledged, and the
// partner's mirror holds them: once the partner has taken every volume over and replayed this
// node's log past the damage (its ownership records say so), nothing in this log is needed any
// more and it is formatted anew. Until then the node refuses to start (exit 3), which leaves it
// silent, so that the partner takes its volumes over from the mirror (docs/durability.md).
Status damage_covered_by_partner(const tools::HafsdConfig& cfg, membership::SharedDisk& disk,
                                 uint64_t cluster_id, uint64_t last_needed_lsn) {
  for (const auto& v : cfg.volumes) {
    membership::RecordBlock block{};
    Status read = disk.read(membership::ownership_record_name(v.id), block);
    auto rec = read.is_ok() ? membership::decode_ownership(block) : Result<membership::OwnershipRecord>(read);
    const std::string name = "volume " + v.name + ": ";
    if (!rec) return rec.status().with_context(name + "ownership record");
    if (rec->cluster_id != cluster_id)
      return Status::error(Code::kDataLoss, name + "its ownership record is of another cluster");
    if (rec->owner == cfg.node_id)
      return Status::error(Code::kDataLoss, name + "this node still owns it (epoch " +
                                                std::to_string(rec->epoch) + ")");
    if (rec->replay_node == cfg.node_id &&
        (rec->replay_pending() || rec->replay_next_lsn <= last_needed_lsn))
      return Status::error(Code::kDataLoss, name + "node " + std::to_string(rec->owner) +
                                                " has not replayed this log past LSN " +
                                                std::to_string(last_needed_lsn) + " yet");
  }
  return Status::ok();
}

}  // namespace

Node::Node(const tools::HafsdConfig& cfg, NodeEnv env, Logger log)
    : cfg_(cfg), env_(std::move(env)), log_(std::move(log)) {}

Result<std::unique_ptr<Node>> Node::open(const tools::HafsdConfig& cfg, NodeEnv env, Logger log) {
  HAFS_CHECK(env.nvlog != nullptr, "a Node needs an NV log");
  HAFS_CHECK(!cfg.mirrored() || env.mirror != nullptr, "a mirrored Node needs a mirror store");
  HAFS_CHECK(!cfg.has_membership() || (env.disk && env.clock), "membership needs a disk and a clock");
  std::unique_ptr<Node> node(new Node(cfg, std::move(env), std::move(log)));
  HAFS_RETURN_IF_ERROR(node->start());
  return node;
}

Status Node::start() {
  if (cfg_.has_membership()) {
    auto id = cluster_id_of(cfg_);
    if (!id) return id.status();
    cluster_id_ = *id;
  }
  HAFS_RETURN_IF_ERROR(open_volumes());
  HAFS_RETURN_IF_ERROR(recover());
  if (cfg_.mirrored()) HAFS_RETURN_IF_ERROR(start_mirroring());  // checks rule 8 before it connects
  else if (cfg_.has_membership()) HAFS_RETURN_IF_ERROR(check_run_ring());

  fs::FsOptions fs_opts;
  fs_opts.logger = log_.child("fs");
  fs_opts.attr_timeout_s = cfg_.attr_timeout_s;
  fs_opts.sync_metadata = cfg_.sync_metadata;
  fs_opts.faults = env_.faults;
  // With membership the lease decides whether a write may be acknowledged.
  if (cfg_.has_membership())
    fs_opts.may_acknowledge = [this](const fs::Volume& v) {
      return monitor_ && monitor_->lease_valid(v.id(), v.epoch(), env_.clock->now());
    };
  if (sender_) fs_opts.mirror_degraded = [this] { return sender_->degraded(); };
  fs_ = std::make_unique<fs::Filesystem>(cache_.get(), fs_opts);
  if (!cfg_.has_membership())
    for (fs::Volume* v : volume_ptrs_) fs_->add_volume(v);

  if (cfg_.has_membership()) HAFS_RETURN_IF_ERROR(start_membership());
  return Status::ok();
}

Status Node::open_volumes() {
  for (const auto& v : cfg_.volumes) {
    auto vol = fs::Volume::open(v.name, v.id, v.path, v.mode);
    if (!vol) return vol.status();
    (*vol)->set_home_node(v.home);
    (*vol)->set_degraded_policy(v.degraded);
    volume_ptrs_.push_back(vol->get());
    volumes_.push_back(std::move(*vol));
  }
  auto resolve = [this](uint32_t id) -> fs::Volume* {
    for (fs::Volume* v : volume_ptrs_)
      if (v->id() == id) return v;
    return nullptr;
  };
  target_ = std::make_unique<fs::VolumeTarget>(resolve, log_.child("destage"));
  // With membership the lease decides what this node may destage, and the ownership record on
  // the disk must still name this node: a node whose clock stood still while it was paused (a
  // VM stopped by its hypervisor stops its guest's clocks) believes its lease valid after it
  // resumes, until its next tick, while the partner may have taken the volume over and served
  // newer data meanwhile (docs/membership.md, "A clock that stops").
  if (cfg_.has_membership())
    target_->set_fence([this](const fs::Volume& v) {
      return monitor_ && monitor_->may_destage(v.id(), v.epoch(), env_.clock->now()) &&
             record_names_us(v.id(), v.epoch());
    });
  return Status::ok();
}

Status Node::recover() {
  nvcache::NvCacheOptions opts;
  opts.logger = log_.child("nvlog");
  opts.destage_interval_ms = cfg_.destage_interval_ms;
  opts.sync_volumes = !cfg_.sync_metadata;  // logged metadata: one syncfs per volume and pass
  opts.faults = env_.faults;
  opts.on_damage = [this](const Status& why) { set_fatal(why); };
  auto cache = nvcache::NvCache::open(*env_.nvlog, *target_, opts, &report_);
  if (!cache && cache.status().code() == Code::kDataLoss && env_.disk && report_.ring.damage) {
    Status covered = damage_covered_by_partner(cfg_, *env_.disk, cluster_id_, report_.ring.damage->last_valid_lsn);
    if (!covered.is_ok() || !env_.format_nvlog)
      return Status::error(Code::kDataLoss,
          cache.status().message() + ". Not starting: " +
          (covered.is_ok() ? std::string("this node cannot format its NV log") : covered.message()) +
          ". The partner's mirror holds these records: it takes this node's volumes over while "
          "this node is down; start this node again once it has");
    log_.warn("%s; the partner has taken every volume over and replayed this log past the damage: "
              "formatting the NV log anew", cache.status().message().c_str());
    HAFS_RETURN_IF_ERROR(env_.format_nvlog(*env_.nvlog).with_context("formatting the damaged NV log"));
    cache = nvcache::NvCache::open(*env_.nvlog, *target_, opts, &report_);
  }
  if (!cache) return cache.status();
  cache_ = std::move(*cache);
  // With membership, nothing is destaged before ownership is known: a volume the partner took
  // over while this node was away must have its stale records discarded, never applied.
  if (cfg_.has_membership())
    for (fs::Volume* v : volume_ptrs_) cache_->pause_volume(v->id());
  if (report_.records_indexed > 0 && !cfg_.has_membership()) {
    log_.info("destaging %" PRIu64 " recovered records before serving", report_.records_indexed);
    HAFS_RETURN_IF_ERROR(cache_->flush_all().with_context("destaging recovered records (they stay in the NV log)"));
  }
  cache_->start_destager();
  return Status::ok();
}

Status Node::start_mirroring() {
  const auto& ic = cfg_.interconnect;
  interconnect::Key key{};
  if (!ic.key_file.empty()) {
    auto k = interconnect::load_key_file(ic.key_file);
    if (!k) return k.status();
    key = *k;
  } else {
    key = interconnect::key_from_passphrase(ic.key);
  }
  interconnect::TransportFactory* transport = env_.transport;
  if (!transport) {
    interconnect::FabricConfig fabric;
    fabric.provider = ic.provider;
    own_transport_ = std::make_unique<interconnect::FabricTransportFactory>(fabric);
    transport = own_transport_.get();
  }
  interconnect::MirrorReceiverOptions ro;
  ro.logger = log_.child("mirror-in");
  ro.transport = transport;
  ro.listen_host = ic.listen_host;
  ro.listen_port = ic.listen_port;
  ro.node_id = cfg_.node_id;
  ro.partner_node_id = ic.partner_node_id;
  ro.key = key;
  ro.peer_silence_limit = std::chrono::milliseconds(ic.silence_limit_ms);
  ro.spin = std::chrono::microseconds(ic.busy_poll_us);
  ro.faults = env_.faults;
  ro.wait_for_held_epochs = env_.disk != nullptr;
  auto r = interconnect::MirrorReceiver::start(*env_.mirror, ro);
  if (!r) return r.status();
  receiver_ = std::move(*r);
  // Before the first tick: a restarted node refuses its partner's records of a volume it took
  // over from the first connection on (MirrorReceiver::set_held_epochs).
  if (auto h = holders_on_disk())
    receiver_->set_held_epochs(std::move(h->held), std::move(h->partner_rings), h->replay_pending);

  interconnect::MirrorSenderOptions so;
  so.logger = log_.child("mirror-out");
  so.transport = transport;
  so.partner_host = ic.partner_host;
  so.partner_port = ic.partner_port;
  so.node_id = cfg_.node_id;
  so.partner_node_id = ic.partner_node_id;
  so.key = key;
  so.mirror_wait = std::chrono::milliseconds(ic.mirror_wait_ms);
  so.heartbeat_interval = std::chrono::milliseconds(ic.heartbeat_ms);
  so.peer_silence_limit = std::chrono::milliseconds(ic.silence_limit_ms);
  so.ack_spin = std::chrono::microseconds(ic.busy_poll_us);
  so.faults = env_.faults;
  if (env_.disk) {
    // I7: the partner must know its mirror of our log is outdated before we acknowledge a
    // write it lacks (docs/membership.md, "The outdated mirror").
    mirror_mark_ = std::make_unique<membership::MirrorMark>(env_.data_path_disk ? *env_.data_path_disk : *env_.disk,
                                                            cfg_.node_id, cluster_id_);
    auto found = mirror_mark_->load();
    if (!found) return found.status().with_context("outdated-mirror mark");
    const bool outdated = *found && (*found)->outdated;
    const uint64_t ring_id = cache_->log().ring_id();
    if (outdated && (*found)->ring_id != ring_id) {
      // The writes acknowledged without the mirror were in a ring that is gone (a power loss
      // of a /dev/shm store, --format-nvlog): they are nowhere. Serving would serve older data.
      if (!env_.accept_loss)
        return Status::error(Code::kDataLoss,
            "the partner's mirror of this node's NV log was marked outdated for ring " + hex_id((*found)->ring_id) +
            " (writes were acknowledged without it, " + std::to_string((*found)->lag_bytes) +
            " bytes unmirrored when marked), and this NV log is ring " + hex_id(ring_id) +
            ": those writes are lost. Not serving older data; start with --accept-loss to serve anyway");
      log_.error("--accept-loss: the writes acknowledged without the mirror in ring %s are lost; serving",
                 hex_id((*found)->ring_id).c_str());
      HAFS_RETURN_IF_ERROR(mirror_mark_->clear(ring_id));
    } else if (outdated) {
      log_.warn("the partner's mirror of this NV log is marked outdated (an earlier life acknowledged "
                "writes without it): cleared once a resync has caught it up");
    }
    so.outdated_at_start = outdated && (*found)->ring_id == ring_id;
    so.mark_outdated = [this, ring_id](uint64_t from, uint64_t lag) {
      HAFS_RETURN_IF_ERROR(mirror_mark_->set_outdated(ring_id, from, lag));
      return check_still_owner_after_mark();
    };
    so.clear_outdated = [&mark = *mirror_mark_, ring_id] { return mark.clear(ring_id); };
  }
  // Rule 8, after the mark's more precise verdict and before anything connects: a new ring
  // would make the partner's mirror start over, erasing the old log's only other copy.
  if (env_.disk) HAFS_RETURN_IF_ERROR(check_run_ring());
  // Before this node's sender authenticates: a new session makes the partner's mirror start
  // over from the trim point, and what it held would no longer tell.
  if (env_.disk) HAFS_RETURN_IF_ERROR(check_tail_with_partner(*transport));
  sender_ = std::make_unique<interconnect::MirrorSender>(cache_->log(), so);
  sender_->start();
  cache_->set_replicator(sender_.get());
  log_.info("mirroring to node %u at %s:%s over %s", ic.partner_node_id, ic.partner_host.c_str(),
            ic.partner_port.c_str(), ic.provider.c_str());
  return Status::ok();
}

// Damage among the last records of the log reads like a torn tail (log-format.md §9a). The
// partner's mirror tells: if it holds this ring's last session further than recovery found it
// valid, records that may have been acknowledged are missing here. (A crash of hafsd never does
// that: the mirror gets only bytes already in the local ring.) Then this node must not re-claim
// its volumes from the log: it stops, and the partner takes them over from the mirror, unless it
// already has, past that point.
Status Node::check_tail_with_partner(interconnect::TransportFactory& transport) {
  const auto& ic = cfg_.interconnect;
  const auto hello = interconnect::probe_partner_mirror(
      transport, ic.partner_host, ic.partner_port, ic.partner_node_id,
      std::chrono::milliseconds(2 * ic.silence_limit_ms));
  // Positions are logical and only grow over a ring's life, across sessions: the mirror never
  // holds a position the local ring did not persist first.
  if (!hello || hello->ring_id != report_.ring.header.ring_id || hello->have_pos <= report_.ring.next_pos)
    return Status::ok();
  const std::string lost = "node " + std::to_string(ic.partner_node_id) +
      "'s mirror holds this NV log's session " + std::to_string(hello->session) + " up to position " +
      std::to_string(hello->have_pos) + ", beyond where recovery found it valid (position " +
      std::to_string(report_.ring.next_pos) + ", LSN " + std::to_string(report_.ring.next_lsn) +
      ": " + report_.ring.end_message + "): records that may have been acknowledged are damaged here";
  Status covered = damage_covered_by_partner(cfg_, *env_.disk, cluster_id_, report_.ring.next_lsn);
  if (!covered.is_ok())
    return Status::error(Code::kDataLoss, lost + ". Not starting: " + covered.message() +
        ". The partner's mirror holds these records: it takes this node's volumes over while this node "
        "is down; start this node again once it has");
  log_.warn("%s; the partner has taken every volume over and replayed past them", lost.c_str());
  return Status::ok();
}

// Membership: the monitor decides which volumes this node serves; NodeActions carries it out.
Status Node::start_membership() {
  const auto& mc = cfg_.membership;
  faulty_disk_ = std::make_unique<FaultyDisk>(*env_.disk, env_.faults);
  actions_ = std::make_unique<NodeActions>(cfg_.node_id, volume_ptrs_, fs_.get(), cache_.get(), target_.get(),
                                           env_.mirror, sender_.get(), receiver_.get(),
                                           log_.child("membership"), env_.faults);
  membership::MonitorConfig mcfg;
  mcfg.node_id = cfg_.node_id;
  mcfg.partner_id = cfg_.interconnect.partner_node_id;
  for (auto& v : cfg_.volumes) mcfg.volumes.push_back({v.id, v.home});
  mcfg.incarnation = random_id();
  mcfg.cluster_id = cluster_id_;
  mcfg.ring_tag = nvcache::ring_tag(cache_->log().ring_id());
  mcfg.adopt_foreign_runs = env_.accept_loss;  // rule 8: check_run_ring let such a run through
  mcfg.lease_ms = mc.lease_ms;
  mcfg.margin_ms = mc.margin_ms;
  mcfg.settle_ms = mc.settle_ms;
  mcfg.tick_ms = mc.tick_ms;
  mcfg.partner_silence_ms = mc.partner_silence_ms;
  mcfg.io_timeout_ms = mc.io_timeout_ms;
  mcfg.auto_giveback = mc.auto_giveback;
  mcfg.giveback_delay_ms = mc.giveback_delay_ms;
  actions_->set_wake([this] {
    std::lock_guard lock(membership_mu_);
    membership_wake_ = true;
    membership_cv_.notify_all();
  });
  auto m = membership::Monitor::create(mcfg, *env_.clock, *faulty_disk_, *actions_, log_.child("membership"));
  if (!m) return m.status().with_context("membership");
  monitor_ = std::move(*m);
  if (!env_.tick_thread) return Status::ok();
  membership_thread_ = std::thread([this] {
    std::unique_lock lock(membership_mu_);
    while (!membership_stop_) {
      lock.unlock();
      if (env_.faults) (void)env_.faults->hit(FaultSite::kMembershipTick);
      tick(observe());
      if (env_.on_tick) env_.on_tick(monitor_->status());
      const auto wait = std::clamp(monitor_->next_tick_at() - env_.clock->now(), membership::Millis(1),
                                   membership::Millis(cfg_.membership.tick_ms));
      lock.lock();
      membership_cv_.wait_for(lock, wait, [&] { return membership_stop_ || membership_wake_; });
      membership_wake_ = false;
    }
  });
  return Status::ok();
}

membership::Observation Node::observe() const {
  membership::Observation obs;
  if (!sender_) return obs;
  const auto silence = std::chrono::milliseconds(cfg_.interconnect.silence_limit_ms);
  const auto out = sender_->link();  // never waits for the data path's locks
  const auto in = receiver_->stats();
  const auto heard = [&](int64_t ms) { return ms >= 0 && std::chrono::milliseconds(ms) < silence; };
  // A connection in either direction, and a message within the silence limit: a partner that
  // died closed both at once, and its last heartbeat must not keep it "alive" (RESYNC) for up to
  // the silence limit.
  const bool connected = out.state != interconnect::MirrorState::kDisconnected || in.connected;
  obs.interconnect_alive = connected && (heard(out.ms_since_heard) || heard(in.ms_since_heard));
  obs.mirror_in_sync = out.state == interconnect::MirrorState::kMirroring && !out.degraded;
  obs.own_mirror_outdated = out.outdated_marked;
  return obs;
}

void Node::tick(const membership::Observation& obs) {
  monitor_->tick(obs);
  const membership::MonitorStatus status = monitor_->status();
  // The interconnect handshake, COMMITs and TRIMs present the newest epoch this node has seen;
  // the receiver requires the newest it holds or claims (a partner that has not learned of a
  // takeover may not change the mirror the takeover replays).
  if (sender_) sender_->set_epoch(membership::highest_epoch(status));
  if (receiver_) receiver_->set_min_epoch(membership::highest_epoch_held(status));
  // Per volume (docs/membership.md, rule 7): the mirror refuses this node's partner's records of
  // a volume this node took over at a newer epoch, and this node voids its own records of a
  // volume the partner took over. Only once every ownership record was read.
  const bool all_read = std::none_of(status.volumes.begin(), status.volumes.end(), [](const auto& v) {
    return v.state == membership::VolumeState::kUnknown;
  });
  if (all_read) {
    std::vector<std::pair<uint32_t, uint64_t>> held;
    std::vector<uint32_t> partner_rings;
    bool replay_pending = false;
    for (const auto& v : status.volumes) {
      if (v.owner == cfg_.interconnect.partner_node_id && v.owner_ring != 0) partner_rings.push_back(v.owner_ring);
      replay_pending = replay_pending || v.replay_pending;
      if (v.owner == cfg_.node_id) held.emplace_back(v.id, v.epoch);
      // Not while the partner's replay of this node's records is pending: a voided record would
      // reach the partner's mirror with the next resync, before that replay read it (rule 4).
      else if (v.owner != membership::kNoNode && !v.owner_replay_pending && cache_)
        cache_->supersede(v.id, v.epoch);
    }
    if (receiver_) receiver_->set_held_epochs(std::move(held), std::move(partner_rings), replay_pending);
  }
  if (!status.identity_conflict.empty())
    set_fatal(Status::error(Code::kBusy, status.identity_conflict));
}

void Node::set_fatal(const Status& why) {
  {
    std::lock_guard lock(fatal_mu_);
    if (!fatal_.is_ok()) return;
    fatal_ = why;
  }
  log_.error("stopping: %s", why.to_string().c_str());
  if (env_.on_fatal) env_.on_fatal(why);
}

// I7 after the mark (docs/membership.md, rule 6): the partner reads the mark before its claim
// and again after it; this node writes the mark and then reads its ownership records. One of
// the two sees the other's write, whatever the clocks say. If a volume this node holds was
// claimed meanwhile, nothing is acknowledged without the mirror: the writes fail (the partner
// replays the mirror, or hands the volume back), and the next tick fences the volume.
Status Node::check_still_owner_after_mark() const {
  if (!monitor_) return Status::ok();
  for (const auto& v : monitor_->status().volumes) {
    const bool held = v.state == membership::VolumeState::kServing || v.state == membership::VolumeState::kTakingOver;
    if (held && !record_names_us(v.id, v.epoch))
      return Status::error(Code::kStaleEpoch, "volume " + std::to_string(v.id) + " at epoch " + std::to_string(v.epoch) +
                                                  " is no longer this node's on the disk: not acknowledging writes without the mirror");
  }
  return Status::ok();
}

Result<std::optional<membership::OwnershipRecord>> Node::read_ownership(uint32_t volume) const {
  membership::SharedDisk& disk = env_.data_path_disk ? *env_.data_path_disk : *env_.disk;
  membership::RecordBlock block{};
  const Status read = disk.read(membership::ownership_record_name(volume), block);
  if (read.code() == Code::kNotFound) return std::optional<membership::OwnershipRecord>();
  if (!read.is_ok()) return read.with_context("reading the ownership record of volume " + std::to_string(volume));
  auto rec = membership::decode_ownership(block);
  if (!rec || rec->cluster_id != cluster_id_) return std::optional<membership::OwnershipRecord>();
  return std::optional<membership::OwnershipRecord>(*rec);
}

bool Node::record_names_us(uint32_t volume, uint64_t epoch) const {
  auto rec = read_ownership(volume);
  return rec && *rec && (*rec)->owner == cfg_.node_id && (*rec)->epoch == epoch;
}

Status Node::check_run_ring() const {
  const uint32_t mine = nvcache::ring_tag(cache_->log().ring_id());
  for (const auto& v : cfg_.volumes) {
    auto read = read_ownership(v.id);
    if (!read) return read.status();
    const auto& rec = *read;
    if (!rec || rec->owner != cfg_.node_id || rec->owner_ring == 0 || rec->owner_ring == mine) continue;
    const std::string why = "volume " + v.name + " is this node's at epoch " + std::to_string(rec->epoch) +
        ", served with an NV log of ring tag " + hex_id(rec->owner_ring) + ", but this node's NV log has ring tag " +
        hex_id(mine) + " (a new NV log, or a second process with node " + std::to_string(cfg_.node_id) +
        "'s identity on another machine): what that run acknowledged is in the old log and in node " +
        std::to_string(cfg_.interconnect.partner_node_id) + "'s mirror of it, not here";
    if (env_.accept_loss) {
      log_.error("%s; starting anyway (--accept-loss): those writes are lost", why.c_str());
      continue;
    }
    return Status::error(Code::kDataLoss, why + ". Not starting: node " + std::to_string(cfg_.interconnect.partner_node_id) +
        " takes the volume over from its mirror once this node's lease has run out; start this node again then "
        "(or with --accept-loss, which serves without those writes)");
  }
  return Status::ok();
}

std::optional<Node::Holders> Node::holders_on_disk() const {
  Holders out;
  if (!env_.disk) return out;
  for (const auto& v : cfg_.volumes) {
    auto rec = read_ownership(v.id);
    if (!rec) return std::nullopt;
    if (!*rec) continue;
    if ((*rec)->owner == cfg_.node_id) out.held.emplace_back(v.id, (*rec)->epoch);
    if ((*rec)->owner == cfg_.interconnect.partner_node_id && (*rec)->owner_ring != 0)
      out.partner_rings.push_back((*rec)->owner_ring);
    // Our takeover's replay of the partner's mirror is still to run (a restart in the middle of
    // a takeover): the mirror's ring is kept until the takeover froze the mirror and replayed it
    // (simulator seed 864373789038169591: a twin of the partner made it start over first).
    if ((*rec)->owner == cfg_.node_id && (*rec)->replay_pending() &&
        (*rec)->replay_node == cfg_.interconnect.partner_node_id)
      out.replay_pending = true;
  }
  return out;
}

Status Node::fatal() const {
  std::lock_guard lock(fatal_mu_);
  return fatal_;
}

void Node::stop_membership_thread() {
  if (!membership_thread_.joinable()) return;
  {
    std::lock_guard lock(membership_mu_);
    membership_stop_ = true;
  }
  membership_cv_.notify_all();
  membership_thread_.join();
}

void Node::stop_threads() {
  if (stopped_) return;
  stopped_ = true;
  stop_membership_thread();
  if (actions_) actions_->wait_for_jobs();  // a takeover replay or giveback destage still under way
  if (cache_) cache_->set_replicator(nullptr);
  if (sender_) sender_->stop();
  if (receiver_) receiver_->stop();
  if (cache_) cache_->stop();
}

Status Node::shutdown() {
  // Destage while membership still renews our leases: a lease that lapsed now would let the
  // partner take over and write while this node is still writing to the medium.
  Status flushed = cache_ ? cache_->flush_all() : Status::ok();  // also trims the partner's mirror
  if (flushed.is_ok() && monitor_ && fatal().is_ok()) {
    // Nothing of ours is staged: the records may say so (rule 8), once no tick runs any more.
    stop_membership_thread();
    monitor_->forget_ring();
  }
  stop_threads();  // only now stop renewing: nothing of ours is staged
  if (!flushed.is_ok())
    log_.error("final destage: %s (records stay in the NV log)", flushed.to_string().c_str());
  return flushed;
}

Node::~Node() { stop_threads(); }

}  // namespace hafs::node
