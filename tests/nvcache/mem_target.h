// MemTarget: an in-memory DestageTarget for unit tests: objects are byte vectors; failures and
// "gone" objects can be switched on.
#pragma once

#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "nvcache/destager.h"

namespace hafs::nvcache::testing {

class MemTarget : public DestageTarget {
 public:
  Status write(const ObjectId& object, uint64_t epoch,
               std::span<const DestageExtent> extents) override {
    std::lock_guard lock(mu_);
    if (int e = fail_errno.load()) return Status::from_errno(e, "MemTarget injected failure");
    if (gone.count(object.key)) return Status::error(Code::kStale, "gone");
    max_epoch = std::max(max_epoch, epoch);
    auto& bytes = unsynced_[key(object)];
    for (const auto& e : extents) {
      if (bytes.size() < e.file_offset + e.data.size()) bytes.resize(e.file_offset + e.data.size());
      std::copy(e.data.begin(), e.data.end(), bytes.begin() + static_cast<long>(e.file_offset));
      ++writes;
    }
    return Status::ok();
  }
  Status sync(const ObjectId& object) override {
    std::lock_guard lock(mu_);
    if (int e = fail_errno.load()) return Status::from_errno(e, "MemTarget injected sync failure");
    synced_[key(object)] = unsynced_[key(object)];
    ++syncs;
    return Status::ok();
  }
  // The durable bytes of an object (what a power cut would leave).
  std::vector<std::byte> durable(const ObjectId& object) {
    std::lock_guard lock(mu_);
    return synced_[key(object)];
  }
  size_t object_count() {
    std::lock_guard lock(mu_);
    return synced_.size();
  }

  std::atomic<int> fail_errno{0};  // may be switched while a destager thread runs
  std::set<std::string> gone;
  uint64_t max_epoch = 0;
  uint64_t writes = 0, syncs = 0;

 private:
  static std::string key(const ObjectId& o) { return std::to_string(o.volume_id) + "/" + o.key; }
  std::mutex mu_;
  std::map<std::string, std::vector<std::byte>> unsynced_, synced_;
};

inline std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

}  // namespace hafs::nvcache::testing
