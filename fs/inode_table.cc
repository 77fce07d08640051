#include "fs/inode_table.h"

namespace hafs::fs {

std::shared_ptr<Inode> InodeTable::get(uint64_t id) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  return it == entries_.end() ? nullptr : it->second.inode;
}

std::shared_ptr<Inode> InodeTable::ref(std::shared_ptr<Inode> candidate) {
  std::lock_guard lock(mu_);
  Entry& e = entries_[candidate->id];
  if (!e.inode) e.inode = std::move(candidate);
  ++e.nlookup;
  return e.inode;
}

void InodeTable::forget(uint64_t id, uint64_t nlookup) {
  std::shared_ptr<Inode> last;  // closed outside the lock
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.nlookup <= nlookup) {
    last = std::move(it->second.inode);
    entries_.erase(it);
  } else {
    it->second.nlookup -= nlookup;
  }
}

size_t InodeTable::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace hafs::fs
