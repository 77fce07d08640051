// ExtentIndex: which bytes of which object are staged in the NV log and not yet destaged.
//
// Per object (volume id + opaque key, e.g. a file handle) an ordered set of non-overlapping
// extents, each pointing at the ring bytes that hold its data. Newest wins by LSN: inserting an
// extent trims or splits the older extents it overlaps, and is itself cut around any newer
// extent already present (concurrent appenders may insert out of LSN order). Every extent also
// sits in one index-wide set ordered by LSN, so the oldest live record (how far the ring may be
// trimmed) is found in O(1). Both are Boost.Intrusive containers over one node per extent.
//
// Memory: one Extent node (~120 bytes) per extent; a record adds at most two (itself and the
// tail of an extent it split). max_extents bounds the total; NvCache applies backpressure at it.
// Thread safety: none; NvCache guards the index with its own lock.
#pragma once

#include <boost/intrusive/set.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hafs::nvcache {

namespace bi = boost::intrusive;

// Identifies an object: the volume and the opaque key (at most 128 bytes).
struct ObjectId {
  uint32_t volume_id = 0;
  std::string key;
  bool operator==(const ObjectId&) const = default;
};

// A staged piece, as handed out (a copy: safe to use after the index changes).
struct StagedExtent {
  uint64_t file_offset = 0;
  uint64_t length = 0;
  uint64_t lsn = 0;
  uint64_t epoch = 0;
  uint64_t data_pos = 0;    // logical ring position of the piece's first byte
  uint64_t record_pos = 0;  // logical ring position of the record it came from
  uint64_t end() const { return file_offset + length; }
};

class ExtentIndex {
 public:
  ExtentIndex();
  ~ExtentIndex();
  ExtentIndex(const ExtentIndex&) = delete;
  ExtentIndex& operator=(const ExtentIndex&) = delete;

  void insert(const ObjectId& object, const StagedExtent& extent);

  // The live pieces of `object` overlapping [offset, offset + length), sorted, clipped to it.
  std::vector<StagedExtent> lookup(const ObjectId& object, uint64_t offset, uint64_t length) const;
  // Every live piece of `object`, sorted by offset.
  std::vector<StagedExtent> extents_of(const ObjectId& object) const;
  // The end of the object's last staged byte, if it has any.
  std::optional<uint64_t> staged_end(const ObjectId& object) const;
  bool contains(const ObjectId& object) const;

  // Objects that hold extents with LSN <= max_lsn, oldest first, until about max_bytes.
  // Objects of volumes `eligible` refuses are passed over (their extents stay).
  std::vector<ObjectId> objects_to_destage(
      uint64_t max_lsn, uint64_t max_bytes,
      const std::function<bool(uint32_t volume_id)>& eligible = {}) const;
  // Removes the object's extents with LSN <= max_lsn (those a destage wrote).
  void remove_upto(const ObjectId& object, uint64_t max_lsn);
  void drop_object(const ObjectId& object);
  void drop_volume(uint32_t volume_id);
  // Drops the volume's extents of records below `below_lsn`; returns how many extents stay.
  uint64_t drop_volume_below(uint32_t volume_id, uint64_t below_lsn);
  // Drops the volume's extents of records with an epoch below `epoch`; returns how many.
  uint64_t drop_volume_epochs_below(uint32_t volume_id, uint64_t epoch);
  uint64_t volume_extent_count(uint32_t volume_id) const;

  // The oldest live extent's LSN and record position: the ring cannot be trimmed past it.
  std::optional<std::pair<uint64_t, uint64_t>> oldest() const;
  size_t extent_count() const { return extent_count_; }
  uint64_t staged_bytes() const { return staged_bytes_; }
  size_t object_count() const { return objects_.size(); }

 private:
  struct Extent;
  struct Object;
  struct ByOffset {
    bool operator()(const Extent& a, const Extent& b) const;
  };
  struct ByLsn {
    bool operator()(const Extent& a, const Extent& b) const;
  };
  using OffsetHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;
  using LsnHook = bi::set_member_hook<bi::link_mode<bi::safe_link>>;
  struct Extent {
    StagedExtent e;
    Object* object = nullptr;
    OffsetHook by_offset;
    LsnHook by_lsn;
  };
  using OffsetSet = bi::set<Extent, bi::member_hook<Extent, OffsetHook, &Extent::by_offset>,
                            bi::compare<ByOffset>>;
  using LsnSet = bi::multiset<Extent, bi::member_hook<Extent, LsnHook, &Extent::by_lsn>,
                              bi::compare<ByLsn>>;
  struct Object {
    ObjectId id;
    OffsetSet extents;
  };
  static std::string map_key(const ObjectId& id);

  Object* find(const ObjectId& object) const;
  void unlink_and_free(Object& obj, OffsetSet::iterator it);
  Extent* make(Object& obj, const StagedExtent& e);
  void erase_object_if_empty(Object& obj);

  std::unordered_map<std::string, std::unique_ptr<Object>> objects_;
  LsnSet by_lsn_;
  size_t extent_count_ = 0;
  uint64_t staged_bytes_ = 0;
};

}  // namespace hafs::nvcache
