#include "nvcache/nvcache.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace hafs::nvcache {

void apply_staged(const StagedData& staged, uint64_t offset, std::span<std::byte> buf) {
  for (const auto& piece : staged) {
    HAFS_CHECK(piece.file_offset >= offset &&
                   piece.file_offset + piece.data.size() <= offset + buf.size(),
               "staged piece outside the read range");
    std::memcpy(buf.data() + (piece.file_offset - offset), piece.data.data(), piece.data.size());
  }
}

namespace {
// With sync_volumes, a destage pass of at most this many files syncs each file; of more, the
// volume once.
constexpr size_t kFilesSyncedEach = 4;

void log_recovery(const Logger& logger, const char* what, const RecoveredRing& r) {
  if (!r.header_report.empty()) logger.warn("%s: %s", what, r.header_report.c_str());
  logger.info("%s: %llu records (%llu payload bytes) from LSN %llu to %llu; scan: %s",
              what, static_cast<unsigned long long>(r.records),
              static_cast<unsigned long long>(r.payload_bytes),
              static_cast<unsigned long long>(r.header.trim_lsn),
              static_cast<unsigned long long>(r.next_lsn - 1), r.end_message.c_str());
  if (r.end != ScanEnd::kClean)
    logger.warn("%s: %s ends the valid log; it and anything after it are not applied (%s)", what,
                scan_end_name(r.end), r.end_message.c_str());
}
// Recovery and replay rebuild the index record by record, in LSN order: a WRITE stages its
// bytes (newest wins), a FENCE forgets everything staged for its object before it.
void apply_to_index(ExtentIndex& index, const RecordView& v) {
  if (v.header.type == RecordType::kMeta) return;  // redone by the target, not staged
  ObjectId object{v.header.volume_id,
                  std::string(reinterpret_cast<const char*>(v.key.data()), v.key.size())};
  if (v.header.type == RecordType::kFence) {
    index.drop_object(object);
    return;
  }
  index.insert(object, StagedExtent{v.header.file_offset, v.header.payload_len, v.header.lsn,
                                    v.header.epoch, v.data_pos, v.header.pos});
}
}  // namespace

NvCache::NvCache(Store& store, DestageTarget& target, NvCacheOptions options)
    : store_(store), target_(target), options_(std::move(options)), ring_bytes_(store, 0) {}

Result<std::unique_ptr<NvCache>> NvCache::open(Store& store, DestageTarget& target,
                                               NvCacheOptions options, RecoveryReport* report) {
  auto cache = std::unique_ptr<NvCache>(new NvCache(store, target, std::move(options)));
  uint64_t indexed = 0;
  auto rec = scan_ring(store, [&](const RecordView& v) {
    if (v.header.type == RecordType::kMeta)
      cache->meta_pins_[v.header.lsn] = MetaPin{v.header.pos, v.header.volume_id, v.header.epoch, false};
    apply_to_index(cache->index_, v);
    ++indexed;
  });
  if (!rec) return rec.status().with_context("NV log recovery");
  log_recovery(cache->options_.logger, "NV log recovery", *rec);
  // Damage inside the log is never a normal end (I5): records after it were acknowledged, and
  // appending after the damage would hide them for good.
  if (rec->end == ScanEnd::kDamaged) {
    if (report) *report = RecoveryReport{*rec, indexed};
    return Status::error(Code::kDataLoss, "NV log damaged: " + rec->end_message);
  }
  auto log = Log::open(store, *rec, LogOptions{cache->options_.logger, cache->options_.faults});
  if (!log) return log.status().with_context("NV log open");
  cache->log_ = std::move(*log);
  cache->ring_bytes_ = RingBytes(store, rec->header.data_bytes);
  cache->log_->set_space_waiter_hook([c = cache.get()] { c->wake_destager(); });
  if (report) *report = RecoveryReport{*rec, indexed};
  return cache;
}

NvCache::~NvCache() { stop(); }

void NvCache::start_destager() {
  std::lock_guard lock(wake_mu_);
  if (destager_.joinable() || stopping_) return;
  destager_ = std::thread([this] { destager_main(); });
}

void NvCache::stop() {
  {
    std::lock_guard lock(wake_mu_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (destager_.joinable()) destager_.join();
  if (log_) log_->shutdown();
  {
    std::unique_lock lock(index_mu_);  // under the lock: a writer about to wait cannot miss it
    index_closed_ = true;
  }
  index_room_cv_.notify_all();
}

void NvCache::wake_destager() {
  {
    std::lock_guard lock(wake_mu_);
    wake_ = true;
  }
  wake_cv_.notify_one();
}

Result<uint64_t> NvCache::write(const ObjectId& object, uint64_t epoch, uint64_t offset,
                                std::span<const std::byte> data) {
  const auto started = std::chrono::steady_clock::now();
  if (object.key.size() > kMaxKeyBytes)
    return Status::error(Code::kInvalidArgument, "object key longer than 128 bytes");
  uint64_t last_lsn = 0;
  size_t done = 0;
  // Pins taken below, released when this write is durable everywhere it must be (see below).
  std::vector<std::pair<uint64_t, uint64_t>> pins;
  auto release_pins = [&] {
    if (pins.empty()) return;
    std::unique_lock lock(index_mu_);
    for (const auto& p : pins) trim_pins_.erase(trim_pins_.find(p));
    pins.clear();
  };
  do {
    const size_t len = std::min<size_t>(data.size() - done, options_.max_record_payload);
    {  // Index bound: wait (backpressure) while the index is full.
      std::shared_lock lock(index_mu_);
      if (index_.extent_count() >= options_.max_extents) {
        wake_destager();
        index_room_cv_.wait(lock, [&] {
          return index_.extent_count() < options_.max_extents || index_closed_;
        });
        if (index_closed_) return Status::error(Code::kAborted, "NV cache stopped");
      }
    }
    AppendSpec spec{object.volume_id, epoch,
                    std::span(reinterpret_cast<const std::byte*>(object.key.data()), object.key.size()),
                    offset + done, data.subspan(done, len)};
    auto r = log_->reserve(static_cast<uint16_t>(spec.key.size()), static_cast<uint32_t>(len));
    if (!r) return r.status();
    HAFS_RETURN_IF_ERROR(log_->fill(*r, spec));
    HAFS_RETURN_IF_ERROR(log_->persist(*r));
    // The insert may supersede older, acknowledged extents while this record is not durable
    // yet: not complete locally (an earlier reservation is still filling) or not yet in the
    // partner's mirror. Until it is, a crash (of this node, or of this node before the mirror
    // has it) would lose it, so neither ring may drop what it superseded: pin the oldest staged
    // record against trims (the mirror's trim follows ours) until the write is acknowledged.
    {
      std::unique_lock lock(index_mu_);
      if (auto pin = index_.oldest()) {
        trim_pins_.insert(*pin);
        pins.push_back(*pin);
      }
      index_.insert(object, StagedExtent{offset + done, len, r->lsn, epoch,
                                         r->pos + payload_offset(static_cast<uint16_t>(spec.key.size())),
                                         r->pos});
    }
    Status durable = log_->complete(*r);
    // Mirrored record by record: a pin must not be held across the next reservation, which may
    // have to wait for the very trim the pin holds back (a small ring, a large write).
    if (Replicator* rep = replicator_.load(std::memory_order_acquire); durable.is_ok() && rep)
      durable = rep->wait_mirrored(r->end_pos());
    // The partner took the volume over meanwhile: the record may be voided, and its takeover
    // never applied it, whatever the mirror acknowledged.
    if (durable.is_ok() && superseded(object.volume_id, epoch))
      durable = Status::error(Code::kStaleEpoch, "volume " + std::to_string(object.volume_id) +
                                                     " was taken over by the partner at a newer epoch than " +
                                                     std::to_string(epoch));
    release_pins();
    HAFS_RETURN_IF_ERROR(durable);
    last_lsn = r->lsn;
    done += len;
    records_appended_.fetch_add(1, std::memory_order_relaxed);
    bytes_appended_.fetch_add(len, std::memory_order_relaxed);
  } while (done < data.size());
  if (under_pressure()) wake_destager();
  write_ack_latency_.record(std::chrono::steady_clock::now() - started);
  return last_lsn;
}

Result<StagedData> NvCache::snapshot(const ObjectId& object, uint64_t offset, uint64_t length,
                                     std::optional<uint64_t>* staged_end) const {
  StagedData out;
  std::shared_lock lock(index_mu_);  // the ring bytes of listed extents stay until they leave
  if (staged_end) *staged_end = index_.staged_end(object);
  const std::vector<StagedExtent> extents = index_.lookup(object, offset, length);
  // A reader never gets bytes of a damaged record (RingBytes::read_extent): EIO, and the node
  // stops (on_damage) so that the partner serves the volume from its mirror's good copy.
  CheckedRecord record;
  for (const StagedExtent& e : extents) {
    StagedPiece piece{e.file_offset, std::vector<std::byte>(e.length)};
    if (Status s = ring_bytes_.read_extent(e, piece.data, &record); !s.is_ok()) {
      if (s.code() == Code::kDataLoss) report_damage(e.record_pos, e.lsn, s);
      return s;
    }
    out.push_back(std::move(piece));
  }
  return out;
}

std::optional<uint64_t> NvCache::staged_end(const ObjectId& object) const {
  std::shared_lock lock(index_mu_);
  return index_.staged_end(object);
}

bool NvCache::has_staged(const ObjectId& object) const {
  std::shared_lock lock(index_mu_);
  return index_.contains(object);
}

bool NvCache::under_pressure() const {
  if (log_->used_bytes() * 2 >= log_->data_bytes()) return true;
  std::shared_lock lock(index_mu_);
  return index_.extent_count() * 2 >= options_.max_extents;
}

Result<size_t> NvCache::destage_pass(const std::optional<ObjectId>& only, uint64_t upto_lsn,
                                     bool defer_sync) {
  // Recovered metadata operations first: a file's data may need the create that made it (I4).
  HAFS_RETURN_IF_ERROR(redo_recovered_meta_locked());
  const TrimPoint complete = log_->complete_point();
  // Every record up to complete.lsn - 1 is durable and indexed.
  const uint64_t max_lsn = std::min(complete.lsn - 1, upto_lsn);
  std::vector<ObjectId> objects;
  {
    std::shared_lock lock(index_mu_);
    if (only) {
      if (index_.contains(*only) && destage_eligible(only->volume_id)) objects.push_back(*only);
    } else {
      objects = index_.objects_to_destage(max_lsn, options_.destage_batch_bytes,
                                          [this](uint32_t v) { return destage_eligible(v); });
    }
  }
  // A pass for one object (a flush before a metadata operation) leaves the metadata sync to the
  // destager's next full pass: it needs that object's data on the medium, nothing more.
  if (objects.empty()) {
    if (!only) HAFS_RETURN_IF_ERROR(sync_meta_locked());
    HAFS_RETURN_IF_ERROR(trim_locked());
    return size_t{0};
  }
  // The extents' ring bytes cannot go away meanwhile: only a destage (we hold destage_mu_)
  // removes extents and trims.
  auto lister = [this](const ObjectId& o) {
    std::shared_lock lock(index_mu_);
    return index_.extents_of(o);
  };
  // Nothing damaged goes to the medium: every byte written comes from a record checked whole.
  const auto started = std::chrono::steady_clock::now();
  // The oldest record a deferred sync leaves unsynced: it stays pinned until the next full pass.
  std::optional<MetaPin> deferred;
  uint64_t deferred_lsn = UINT64_MAX;
  if (defer_sync && options_.sync_volumes && only)
    for (const StagedExtent& e : lister(*only))
      if (e.lsn <= max_lsn && e.lsn < deferred_lsn) {
        deferred_lsn = e.lsn;
        deferred = MetaPin{e.record_pos, only->volume_id, e.epoch, true};
      }
  // A few files are synced each by itself (fdatasync flushes that file's blocks; syncfs commits
  // the whole filesystem: W1 was 8 % slower with it); many at once by one volume sync.
  const bool sync_each = !options_.sync_volumes || (!deferred && objects.size() <= kFilesSyncedEach);
  auto result = destage_objects(objects, max_lsn, lister, ring_bytes_, target_, options_.faults,
                                options_.logger, [this](const StagedExtent& e, const Status& why) {
                                  report_damage(e.record_pos, e.lsn, why);
                                }, sync_each);
  if (result && !sync_each && !deferred) {
    std::set<uint32_t> volumes;
    for (const auto& o : result->written) volumes.insert(o.volume_id);
    for (uint32_t v : volumes)
      if (Status s = target_.sync_volume(v); !s.is_ok()) result = s;
  }
  if (result && deferred && !result->written.empty()) {
    std::unique_lock lock(index_mu_);
    meta_pins_.try_emplace(deferred_lsn, *deferred);
  }
  const auto took = std::chrono::steady_clock::now() - started;
  destage_passes_.fetch_add(1, std::memory_order_relaxed);
  if (!result) {
    destage_errors_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(error_mu_);
    last_destage_error_ = result.status().to_string();
    return result.status();
  }
  {
    std::unique_lock lock(index_mu_);
    for (const auto& o : result->written) index_.remove_upto(o, max_lsn);
    for (const auto& o : result->gone) index_.drop_object(o);
  }
  index_room_cv_.notify_all();
  destage_latency_.record(took);
  destaged_bytes_.fetch_add(result->bytes, std::memory_order_relaxed);
  {
    std::lock_guard lock(error_mu_);
    last_destage_error_.clear();
  }
  if (!only) HAFS_RETURN_IF_ERROR(sync_meta_locked());
  HAFS_RETURN_IF_ERROR(trim_locked());
  return result->written.size() + result->gone.size();
}

Result<NvCache::MetaTicket> NvCache::append_meta(uint32_t volume_id, uint64_t epoch,
                                                 std::span<const std::byte> payload) {
  if (payload.size() > options_.max_record_payload)
    return Status::error(Code::kInvalidArgument, "metadata record larger than a record's payload");
  AppendSpec spec{volume_id, epoch, {}, 0, payload, RecordType::kMeta};
  auto r = log_->reserve(0, static_cast<uint32_t>(payload.size()));
  if (!r) return r.status();
  HAFS_RETURN_IF_ERROR(log_->fill(*r, spec));
  HAFS_RETURN_IF_ERROR(log_->persist(*r));
  {
    std::unique_lock lock(index_mu_);
    meta_pins_[r->lsn] = MetaPin{r->pos, volume_id, epoch, true};
  }
  meta_records_.fetch_add(1, std::memory_order_relaxed);
  return MetaTicket{*r, volume_id, epoch};
}

Status NvCache::finish_meta(const MetaTicket& t) {
  HAFS_RETURN_IF_ERROR(log_->complete(t.reservation));
  if (Replicator* rep = replicator_.load(std::memory_order_acquire))
    HAFS_RETURN_IF_ERROR(rep->wait_mirrored(t.reservation.end_pos()));
  if (superseded(t.volume_id, t.epoch))
    return Status::error(Code::kStaleEpoch, "volume " + std::to_string(t.volume_id) +
                                                " was taken over by the partner at a newer epoch than " +
                                                std::to_string(t.epoch));
  records_appended_.fetch_add(1, std::memory_order_relaxed);
  return Status::ok();
}

uint64_t NvCache::unsynced_meta() const {
  std::shared_lock lock(index_mu_);
  return meta_pins_.size();
}

Status NvCache::redo_recovered_meta_locked() {
  std::vector<std::pair<uint64_t, MetaPin>> todo;
  {
    std::shared_lock lock(index_mu_);
    for (const auto& [lsn, pin] : meta_pins_)
      if (!pin.redone && destage_eligible(pin.volume_id) && !superseded(pin.volume_id, pin.epoch))
        todo.emplace_back(lsn, pin);
  }
  if (todo.empty()) return Status::ok();
  // All of them at once: a target may skip records that a later one says the medium holds.
  std::vector<CheckedRecord> read(todo.size());
  std::vector<MetaRecord> metas;
  for (size_t i = 0; i < todo.size(); ++i) {
    const auto& [lsn, pin] = todo[i];
    if (Status s = ring_bytes_.read_record(pin.pos, lsn, &read[i]); !s.is_ok()) {
      if (s.code() == Code::kDataLoss) report_damage(pin.pos, lsn, s);
      return s;
    }
    metas.push_back(MetaRecord{pin.volume_id, pin.epoch, log_->ring_id(), lsn,
                               std::span<const std::byte>(read[i].bytes).subspan(read[i].payload_at)});
  }
  HAFS_RETURN_IF_ERROR(target_.apply_metas(metas).with_context("redo"));
  std::unique_lock lock(index_mu_);
  for (const auto& [lsn, pin] : todo)
    if (auto it = meta_pins_.find(lsn); it != meta_pins_.end()) it->second.redone = true;
  return Status::ok();
}

Status NvCache::sync_meta_locked() {
  std::set<uint32_t> volumes;
  uint64_t upto = 0;
  {
    std::shared_lock lock(index_mu_);
    for (const auto& [lsn, pin] : meta_pins_) {
      if (!pin.redone) continue;  // a paused volume's recovered record: still to be redone
      volumes.insert(pin.volume_id);
      upto = lsn;
    }
  }
  if (volumes.empty()) return Status::ok();
  // Every operation of a pin taken above was executed before its record was appended, so
  // before this sync starts.
  for (uint32_t v : volumes) {
    HAFS_RETURN_IF_ERROR(target_.sync_volume(v));
    meta_syncs_.fetch_add(1, std::memory_order_relaxed);
  }
  std::unique_lock lock(index_mu_);
  std::erase_if(meta_pins_, [&](const auto& e) { return e.first <= upto && e.second.redone; });
  return Status::ok();
}

void NvCache::drop_meta_pins(uint32_t volume_id, const std::function<bool(uint64_t, const MetaPin&)>& drop) {
  std::unique_lock lock(index_mu_);
  std::erase_if(meta_pins_, [&](const auto& e) { return e.second.volume_id == volume_id && drop(e.first, e.second); });
}

void NvCache::report_damage(uint64_t pos, uint64_t lsn, const Status& why) const {
  // The marker first, so that no restart takes the damage for a torn tail (a damaged record
  // followed by fewer than kMaxRecordsInFlight records looks like one).
  Status marked = log_->mark_damaged(pos, lsn);
  if (damage_reported_.exchange(true)) return;
  options_.logger.error("%s; the records stay in the NV log%s", why.to_string().c_str(),
                        marked.is_ok() ? ", marked damaged" : (", and marking it failed: " + marked.to_string()).c_str());
  if (options_.on_damage) options_.on_damage(why);
}

Status NvCache::trim_locked() {
  TrimPoint to = log_->complete_point();
  {
    std::shared_lock lock(index_mu_);
    if (auto oldest = index_.oldest(); oldest && oldest->first < to.lsn)
      to = TrimPoint{oldest->first, oldest->second};
    if (!trim_pins_.empty() && trim_pins_.begin()->first < to.lsn)
      to = TrimPoint{trim_pins_.begin()->first, trim_pins_.begin()->second};
    if (!meta_pins_.empty() && meta_pins_.begin()->first < to.lsn)
      to = TrimPoint{meta_pins_.begin()->first, meta_pins_.begin()->second.pos};
  }
  if (to.lsn <= log_->trim_point().lsn) return Status::ok();
  HAFS_RETURN_IF_ERROR(log_->trim(to));
  if (Replicator* rep = replicator_.load(std::memory_order_acquire)) rep->trimmed(log_->header());
  return Status::ok();
}

Status NvCache::flush_object(const ObjectId& object, bool defer_sync) {
  std::lock_guard lock(destage_mu_);
  auto r = destage_pass(object, UINT64_MAX, defer_sync);
  return r ? Status::ok() : r.status();
}

Status NvCache::flush_and_fence(const ObjectId& object, uint64_t epoch) {
  HAFS_RETURN_IF_ERROR(flush_object(object));
  AppendSpec spec{object.volume_id, epoch,
                  std::span(reinterpret_cast<const std::byte*>(object.key.data()), object.key.size()),
                  0, {}, RecordType::kFence};
  auto r = log_->append(spec);
  if (!r) return r.status();
  // The partner must hold the FENCE before the truncate it guards: its replay after a takeover
  // must not re-apply what the truncate cut.
  if (Replicator* rep = replicator_.load(std::memory_order_acquire))
    HAFS_RETURN_IF_ERROR(rep->wait_mirrored(r->end_pos()));
  if (superseded(object.volume_id, epoch))
    return Status::error(Code::kStaleEpoch, "volume " + std::to_string(object.volume_id) +
                                                " was taken over by the partner at a newer epoch than " +
                                                std::to_string(epoch));
  return Status::ok();
}

void NvCache::supersede(uint32_t volume_id, uint64_t epoch) {
  {
    std::lock_guard lock(superseded_mu_);
    uint64_t& e = superseded_[volume_id];
    if (epoch <= e) return;
    e = epoch;
    superseded_changed_ = true;
    any_superseded_.store(true, std::memory_order_release);
  }
  wake_destager();
}

uint64_t NvCache::drop_earlier_run(uint32_t volume_id, uint64_t run_epoch) {
  uint64_t dropped;
  {
    std::unique_lock lock(index_mu_);
    dropped = index_.drop_volume_epochs_below(volume_id, run_epoch);
  }
  drop_meta_pins(volume_id, [&](uint64_t, const MetaPin& p) { return p.epoch < run_epoch; });
  index_room_cv_.notify_all();
  supersede(volume_id, run_epoch);
  return dropped;
}

bool NvCache::superseded(uint32_t volume_id, uint64_t epoch) const {
  if (!any_superseded_.load(std::memory_order_acquire)) return false;
  std::lock_guard lock(superseded_mu_);
  auto it = superseded_.find(volume_id);
  return it != superseded_.end() && epoch < it->second;
}

void NvCache::void_superseded_locked() {
  if (!any_superseded_.load(std::memory_order_acquire)) return;
  std::map<uint32_t, uint64_t> picks;
  bool restart;
  {
    std::lock_guard lock(superseded_mu_);
    picks = superseded_;
    restart = superseded_changed_;
    superseded_changed_ = false;
  }
  const uint64_t trim = log_->trim_point().pos;
  if (restart || void_walk_pos_ < trim) void_walk_pos_ = trim;  // both are record boundaries
  uint64_t voided = 0;
  const uint64_t filled = log_->filled_point().pos;
  // Readers verify a record's header under index_mu_ (snapshot): none may see one half rewritten
  // and take it for damage (which would stop the node).
  std::unique_lock index_lock(index_mu_);
  auto walked = log_->void_records(void_walk_pos_, filled,
                                   [&](uint32_t volume, uint64_t epoch) {
                                     auto it = picks.find(volume);
                                     return it != picks.end() && epoch < it->second;
                                   }, &voided);
  index_lock.unlock();
  if (!walked) {
    options_.logger.warn("cannot void superseded records (tried again): %s", walked.status().to_string().c_str());
    std::lock_guard lock(superseded_mu_);
    superseded_changed_ = true;
    return;
  }
  void_walk_pos_ = *walked;
  if (voided) {
    records_voided_.fetch_add(voided, std::memory_order_relaxed);
    options_.logger.info("voided %llu records of volumes the partner took over",
                         static_cast<unsigned long long>(voided));
  }
}

void NvCache::set_replicator(Replicator* replicator) {
  replicator_.store(replicator, std::memory_order_release);
  log_->set_filled_hook([this](TrimPoint filled) {
    if (Replicator* rep = replicator_.load(std::memory_order_acquire)) rep->filled(filled);
  });
}

Status NvCache::flush_all() {
  std::lock_guard lock(destage_mu_);
  // Passes until one finds nothing left of what was complete when the flush began (paused
  // volumes' records stay; writes that come meanwhile are the next flush's).
  const uint64_t upto = log_->complete_point().lsn - 1;
  for (;;) {
    auto r = destage_pass(std::nullopt, upto);
    if (!r) return r.status();
    if (*r == 0) break;
  }
  return trim_locked();
}

bool NvCache::destage_eligible(uint32_t volume_id) const {
  std::lock_guard lock(paused_mu_);
  return !paused_volumes_.count(volume_id);
}

void NvCache::pause_volume(uint32_t volume_id) {
  std::lock_guard lock(paused_mu_);
  paused_volumes_.insert(volume_id);
}

void NvCache::resume_volume(uint32_t volume_id) {
  {
    std::lock_guard lock(paused_mu_);
    paused_volumes_.erase(volume_id);
  }
  wake_destager();
}

// Not under destage_mu_: membership calls this from its tick, which must never wait for a
// destage pass (a slow medium holds that lock across its I/O; the tick renews the leases). A pass
// under way may still write extents of the volume it listed before: the fence
// (DestageTarget's epoch check) refuses them for a volume this node lost, and the index drops
// them after the write either way. The trim follows at the destager's next pass.
uint64_t NvCache::discard_volume(uint32_t volume_id, uint64_t below_lsn) {
  uint64_t kept = 0;
  {
    std::unique_lock lock(index_mu_);
    if (below_lsn == UINT64_MAX) index_.drop_volume(volume_id);
    else kept = index_.drop_volume_below(volume_id, below_lsn);
  }
  drop_meta_pins(volume_id, [&](uint64_t lsn, const MetaPin&) { return lsn < below_lsn; });
  index_room_cv_.notify_all();
  wake_destager();
  return kept;
}

uint64_t NvCache::staged_extents(uint32_t volume_id) const {
  std::shared_lock lock(index_mu_);
  return index_.volume_extent_count(volume_id);
}

void NvCache::destager_main() {
  uint32_t backoff_ms = 0;
  for (;;) {
    {
      std::unique_lock lock(wake_mu_);
      const uint32_t wait_ms = backoff_ms ? backoff_ms : options_.destage_interval_ms;
      wake_cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
                        [&] { return stopping_ || (wake_ && backoff_ms == 0); });
      if (stopping_) return;
      wake_ = false;
    }
    // Keep going while there is pressure; otherwise one pass per interval.
    for (;;) {
      Result<size_t> r = size_t{0};
      {
        std::lock_guard lock(destage_mu_);
        void_superseded_locked();
        r = destage_pass(std::nullopt);
      }
      if (!r) {
        if (r.status().code() == Code::kNoSpace && !medium_full_.exchange(true)) {
          // Acknowledged writes stay staged; new ones that find the ring full fail with ENOSPC
          // instead of waiting without end for room the destager cannot make.
          options_.logger.error("the storage medium is full: writes that find the NV log full get ENOSPC "
                                "until a destage succeeds again: %s", r.status().to_string().c_str());
          log_->set_full_refusal(Status::error(Code::kNoSpace, "the storage medium is full (the NV log "
                                                                "holds what it can): " + r.status().message()));
        }
        backoff_ms = backoff_ms ? std::min(backoff_ms * 2, options_.retry_backoff_max_ms) : 10;
        options_.logger.warn("destage failed, records stay staged; retry in %u ms: %s",
                             backoff_ms, r.status().to_string().c_str());
        break;
      }
      if (*r > 0 && medium_full_.exchange(false)) {
        log_->set_full_refusal(Status::ok());
        options_.logger.info("the storage medium takes writes again: no more ENOSPC");
      }
      if (backoff_ms) options_.logger.info("destage recovered");
      backoff_ms = 0;
      if (*r == 0 || !under_pressure()) break;
      std::lock_guard lock(wake_mu_);
      if (stopping_) return;
    }
  }
}

NvCacheStats NvCache::stats() const {
  NvCacheStats s;
  s.data_bytes = log_->data_bytes();
  s.used_bytes = log_->used_bytes();
  {
    std::shared_lock lock(index_mu_);
    s.staged_bytes = index_.staged_bytes();
    s.extents = index_.extent_count();
    s.objects = index_.object_count();
  }
  s.complete_lsn = log_->complete_point().lsn - 1;
  s.trim_lsn = log_->trim_point().lsn;
  s.records_appended = records_appended_.load(std::memory_order_relaxed);
  s.bytes_appended = bytes_appended_.load(std::memory_order_relaxed);
  s.space_waits = log_->space_waits();
  s.destage_passes = destage_passes_.load(std::memory_order_relaxed);
  s.destaged_bytes = destaged_bytes_.load(std::memory_order_relaxed);
  s.destage_errors = destage_errors_.load(std::memory_order_relaxed);
  s.records_voided = records_voided_.load(std::memory_order_relaxed);
  s.meta_records = meta_records_.load(std::memory_order_relaxed);
  s.meta_syncs = meta_syncs_.load(std::memory_order_relaxed);
  s.meta_unsynced = unsynced_meta();
  s.medium_full = medium_full_.load(std::memory_order_relaxed);
  std::lock_guard lock(error_mu_);
  s.last_destage_error = last_destage_error_;
  return s;
}

Result<ReplayReport> replay_ring(const Store& ring, DestageTarget& target,
                                 const std::function<bool(uint32_t, uint64_t)>& select,
                                 bool accept_damage, FaultRegistry* faults, const Logger& logger,
                                 const std::function<Status(const RecoveredRing&)>& before_apply) {
  ExtentIndex index;
  std::vector<std::pair<RecordHeader, std::vector<std::byte>>> metas;  // in LSN order
  auto rec = scan_ring(ring, [&](const RecordView& v) {
    if (!select(v.header.volume_id, v.header.epoch)) return;
    if (v.header.type == RecordType::kMeta)
      metas.emplace_back(v.header, std::vector<std::byte>(v.payload.begin(), v.payload.end()));
    apply_to_index(index, v);
  });
  if (!rec) return rec.status().with_context("replay scan");
  log_recovery(logger, "replay of partner ring", *rec);
  if (rec->end == ScanEnd::kDamaged && !accept_damage)
    return Status::error(Code::kDataLoss, "the mirror is damaged: " + rec->end_message);
  if (before_apply) HAFS_RETURN_IF_ERROR(before_apply(*rec));
  ReplayReport report;
  report.ring = *rec;
  // Metadata first, in LSN order, then data newest-wins: a file's data may need the create that
  // made it, and a truncate's FENCE already keeps older data from being laid over it (I4).
  std::set<uint32_t> meta_volumes;
  std::vector<MetaRecord> meta_records;
  for (const auto& [h, payload] : metas) {
    meta_records.push_back(MetaRecord{h.volume_id, h.epoch, rec->header.ring_id, h.lsn, payload});
    meta_volumes.insert(h.volume_id);
  }
  HAFS_RETURN_IF_ERROR(target.apply_metas(meta_records).with_context("replay"));
  report.meta_records_applied = meta_records.size();
  RingBytes bytes(ring, rec->header.data_bytes);
  auto lister = [&](const ObjectId& o) { return index.extents_of(o); };
  while (index.extent_count() > 0) {
    auto objects = index.objects_to_destage(UINT64_MAX, 64u << 20);
    auto r = destage_objects(objects, UINT64_MAX, lister, bytes, target, faults, logger);
    if (!r) return r.status().with_context("replay");
    for (const auto& o : r->written) index.drop_object(o);
    for (const auto& o : r->gone) index.drop_object(o);
    report.records_applied += r->extents;
    report.bytes_applied += r->bytes;
  }
  for (uint32_t v : meta_volumes) HAFS_RETURN_IF_ERROR(target.sync_volume(v));
  return report;
}

}  // namespace hafs::nvcache
