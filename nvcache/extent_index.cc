#include "nvcache/extent_index.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "base/check.h"

namespace hafs::nvcache {

bool ExtentIndex::ByOffset::operator()(const Extent& a, const Extent& b) const {
  return a.e.file_offset < b.e.file_offset;
}
bool ExtentIndex::ByLsn::operator()(const Extent& a, const Extent& b) const {
  return a.e.lsn < b.e.lsn;
}

ExtentIndex::ExtentIndex() = default;

ExtentIndex::~ExtentIndex() {
  for (auto& [k, obj] : objects_)
    obj->extents.clear_and_dispose([this](Extent* x) {
      by_lsn_.erase(by_lsn_.iterator_to(*x));
      delete x;
    });
}

std::string ExtentIndex::map_key(const ObjectId& id) {
  std::string k(sizeof id.volume_id, '\0');
  std::memcpy(k.data(), &id.volume_id, sizeof id.volume_id);
  k += id.key;
  return k;
}

ExtentIndex::Object* ExtentIndex::find(const ObjectId& object) const {
  auto it = objects_.find(map_key(object));
  return it == objects_.end() ? nullptr : it->second.get();
}

ExtentIndex::Extent* ExtentIndex::make(Object& obj, const StagedExtent& e) {
  auto* x = new Extent{e, &obj, {}, {}};
  obj.extents.insert(*x);
  by_lsn_.insert(*x);
  ++extent_count_;
  staged_bytes_ += e.length;
  return x;
}

void ExtentIndex::unlink_and_free(Object& obj, OffsetSet::iterator it) {
  Extent* x = &*it;
  obj.extents.erase(it);
  by_lsn_.erase(by_lsn_.iterator_to(*x));
  --extent_count_;
  staged_bytes_ -= x->e.length;
  delete x;
}

void ExtentIndex::erase_object_if_empty(Object& obj) {
  if (obj.extents.empty()) objects_.erase(map_key(obj.id));
}

void ExtentIndex::insert(const ObjectId& object, const StagedExtent& extent) {
  if (extent.length == 0) return;
  auto& slot = objects_[map_key(object)];
  if (!slot) slot = std::make_unique<Object>(Object{object, {}});
  Object& obj = *slot;

  const uint64_t lo = extent.file_offset, hi = extent.end();
  // The parts of the new extent not covered by newer extents; older overlapped ones are cut.
  std::vector<std::pair<uint64_t, uint64_t>> keep{{lo, hi}};
  auto cut_keep = [&](uint64_t a, uint64_t b) {  // remove [a, b) from keep
    std::vector<std::pair<uint64_t, uint64_t>> next;
    for (auto [s, t] : keep) {
      if (b <= s || a >= t) { next.emplace_back(s, t); continue; }
      if (s < a) next.emplace_back(s, a);
      if (b < t) next.emplace_back(b, t);
    }
    keep.swap(next);
  };

  // First extent that might overlap: the one starting at or before lo, else the first after.
  Extent probe{};
  probe.e.file_offset = lo;
  auto it = obj.extents.upper_bound(probe);
  if (it != obj.extents.begin()) {
    auto prev = std::prev(it);
    if (prev->e.end() > lo) it = prev;
  }
  std::vector<StagedExtent> tails;  // right parts of split older extents, re-added below
  while (it != obj.extents.end() && it->e.file_offset < hi) {
    Extent& old = *it;
    if (old.e.lsn > extent.lsn) {  // newer data stays; the new extent yields around it
      cut_keep(old.e.file_offset, old.e.end());
      ++it;
      continue;
    }
    const StagedExtent o = old.e;
    auto next = std::next(it);
    unlink_and_free(obj, it);
    if (o.file_offset < lo) {  // keep the left part of the older extent
      StagedExtent left = o;
      left.length = lo - o.file_offset;
      make(obj, left);
    }
    if (o.end() > hi) {  // keep the right part
      StagedExtent right = o;
      right.file_offset = hi;
      right.length = o.end() - hi;
      right.data_pos = o.data_pos + (hi - o.file_offset);
      tails.push_back(right);
    }
    it = next;
  }
  for (const auto& t : tails) make(obj, t);
  for (auto [s, t] : keep) {
    StagedExtent piece = extent;
    piece.file_offset = s;
    piece.length = t - s;
    piece.data_pos = extent.data_pos + (s - lo);
    make(obj, piece);
  }
  erase_object_if_empty(obj);
}

std::vector<StagedExtent> ExtentIndex::lookup(const ObjectId& object, uint64_t offset,
                                              uint64_t length) const {
  std::vector<StagedExtent> out;
  const Object* obj = find(object);
  if (!obj || length == 0) return out;
  const uint64_t hi = offset + length;
  Extent probe{};
  probe.e.file_offset = offset;
  auto it = obj->extents.upper_bound(probe);
  if (it != obj->extents.begin()) {
    auto prev = std::prev(it);
    if (prev->e.end() > offset) it = prev;
  }
  for (; it != obj->extents.end() && it->e.file_offset < hi; ++it) {
    StagedExtent e = it->e;
    if (e.file_offset < offset) {
      const uint64_t skip = offset - e.file_offset;
      e.file_offset += skip;
      e.data_pos += skip;
      e.length -= skip;
    }
    if (e.end() > hi) e.length = hi - e.file_offset;
    out.push_back(e);
  }
  return out;
}

std::vector<StagedExtent> ExtentIndex::extents_of(const ObjectId& object) const {
  std::vector<StagedExtent> out;
  if (const Object* obj = find(object))
    for (const auto& x : obj->extents) out.push_back(x.e);
  return out;
}

std::optional<uint64_t> ExtentIndex::staged_end(const ObjectId& object) const {
  const Object* obj = find(object);
  if (!obj || obj->extents.empty()) return std::nullopt;
  return obj->extents.rbegin()->e.end();
}

bool ExtentIndex::contains(const ObjectId& object) const { return find(object) != nullptr; }

std::vector<ObjectId> ExtentIndex::objects_to_destage(
    uint64_t max_lsn, uint64_t max_bytes, const std::function<bool(uint32_t)>& eligible) const {
  std::vector<ObjectId> out;
  std::unordered_set<const Object*> seen;
  uint64_t bytes = 0;
  for (const auto& x : by_lsn_) {
    if (x.e.lsn > max_lsn || bytes >= max_bytes) break;
    if (!seen.insert(x.object).second) continue;
    if (eligible && !eligible(x.object->id.volume_id)) continue;
    out.push_back(x.object->id);
    for (const auto& y : x.object->extents) bytes += y.e.length;
  }
  return out;
}

void ExtentIndex::remove_upto(const ObjectId& object, uint64_t max_lsn) {
  Object* obj = find(object);
  if (!obj) return;
  for (auto it = obj->extents.begin(); it != obj->extents.end();) {
    auto next = std::next(it);
    if (it->e.lsn <= max_lsn) unlink_and_free(*obj, it);
    it = next;
  }
  erase_object_if_empty(*obj);
}

void ExtentIndex::drop_object(const ObjectId& object) { remove_upto(object, UINT64_MAX); }

void ExtentIndex::drop_volume(uint32_t volume_id) { drop_volume_below(volume_id, UINT64_MAX); }

uint64_t ExtentIndex::drop_volume_below(uint32_t volume_id, uint64_t below_lsn) {
  std::vector<ObjectId> ids;
  for (const auto& [k, obj] : objects_)
    if (obj->id.volume_id == volume_id) ids.push_back(obj->id);
  for (const auto& id : ids) remove_upto(id, below_lsn == 0 ? 0 : below_lsn - 1);
  return volume_extent_count(volume_id);
}

uint64_t ExtentIndex::drop_volume_epochs_below(uint32_t volume_id, uint64_t epoch) {
  uint64_t dropped = 0;
  std::vector<Object*> objects;
  for (const auto& [k, obj] : objects_)
    if (obj->id.volume_id == volume_id) objects.push_back(obj.get());
  for (Object* obj : objects) {
    for (auto it = obj->extents.begin(); it != obj->extents.end();) {
      auto next = std::next(it);
      if (it->e.epoch < epoch) {
        unlink_and_free(*obj, it);
        ++dropped;
      }
      it = next;
    }
    erase_object_if_empty(*obj);
  }
  return dropped;
}

uint64_t ExtentIndex::volume_extent_count(uint32_t volume_id) const {
  uint64_t n = 0;
  for (const auto& [k, obj] : objects_)
    if (obj->id.volume_id == volume_id) n += obj->extents.size();
  return n;
}

std::optional<std::pair<uint64_t, uint64_t>> ExtentIndex::oldest() const {
  if (by_lsn_.empty()) return std::nullopt;
  return std::make_pair(by_lsn_.begin()->e.lsn, by_lsn_.begin()->e.record_pos);
}

}  // namespace hafs::nvcache
