// Store: the seam under the NV log and the mirror. A fixed-size, byte-addressable region that
// can be made durable range by range. Backends:
//   PmemStore   a file mapped through libpmem2: memcpy in, persist = CPU cache flush on a DAX
//               device, msync elsewhere, a fence alone on tmpfs (where msync writes nothing).
//               On /dev/shm it is the emulated-NVRAM default: it survives a crash of hafsd, not
//               a power loss of the node.
//   FileStore   a plain file: pwrite in, persist = fdatasync with group commit (concurrent
//               persist calls share one fdatasync). Survives power loss on a real disk.
//   MemStore    process memory, for unit tests and the simulator.
// Thread safety: write/read of disjoint ranges and persist may be called concurrently.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace hafs::nvcache {

class Store {
 public:
  virtual ~Store() = default;
  virtual uint64_t size() const = 0;
  virtual const char* kind() const = 0;
  // Copies `data` to [off, off + size); not durable until persist() covers it.
  virtual Status write(uint64_t off, std::span<const std::byte> data) = 0;
  virtual Status read(uint64_t off, std::span<std::byte> out) const = 0;
  // Returns once [off, off + len) is durable (it may make more durable).
  virtual Status persist(uint64_t off, uint64_t len) = 0;
  // The bytes as memory when the store is a mapping (zero-copy reads, fabric registration).
  virtual std::byte* mapping() { return nullptr; }
  // How many times the backend really synced (for tests and group-commit figures).
  virtual uint64_t sync_count() const { return 0; }
};

enum class StoreMode { kPmem, kFile, kMemory };
const char* store_mode_name(StoreMode mode);
bool parse_store_mode(const std::string& text, StoreMode* out);  // "pmem" | "file" | "memory"

// Opens the store at `path`, creating a file of `size_bytes` when there is none. An existing
// file keeps its size (the ring header check reports a mismatch with the configuration).
// A file-backed store holds an exclusive flock on its file while open: a second open, in this
// process or another, fails with kBusy.
// kNone is for looking into a store that a running process may own (hafs-nvlog scan, tests
// that compare a live ring with its mirror): the bytes may change under the reader.
enum class StoreLock { kExclusive, kNone };
Result<std::unique_ptr<Store>> open_store(StoreMode mode, const std::string& path,
                                          uint64_t size_bytes,
                                          StoreLock lock = StoreLock::kExclusive);

class MemStore final : public Store {
 public:
  explicit MemStore(uint64_t size_bytes) : bytes_(size_bytes) {}
  explicit MemStore(std::vector<std::byte> image) : bytes_(std::move(image)) {}
  uint64_t size() const override { return bytes_.size(); }
  const char* kind() const override { return "memory"; }
  Status write(uint64_t off, std::span<const std::byte> data) override;
  Status read(uint64_t off, std::span<std::byte> out) const override;
  Status persist(uint64_t, uint64_t) override { return Status::ok(); }
  std::byte* mapping() override { return bytes_.data(); }
  std::vector<std::byte>& bytes() { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

// A wrapper that remembers which 512-byte sectors were written since they were last persisted,
// with their durable contents, so that power_cut() can put the inner store back into a state a
// power loss could leave: every persisted byte kept, each unpersisted sector either new or old
// (chosen by a seeded generator: torn writes included). Persist is treated as the FileStore's
// fdatasync: it makes every earlier write durable. Writes and persists are serialized.
class PowerLossStore final : public Store {
 public:
  explicit PowerLossStore(Store& inner) : inner_(inner) {}
  uint64_t size() const override { return inner_.size(); }
  const char* kind() const override { return "power-loss"; }
  Status write(uint64_t off, std::span<const std::byte> data) override;
  Status read(uint64_t off, std::span<std::byte> out) const override {
    return inner_.read(off, out);
  }
  Status persist(uint64_t off, uint64_t len) override;
  // Reverts each unpersisted sector with probability `revert_probability`; returns how many.
  size_t power_cut(uint64_t seed, double revert_probability = 0.5);

 private:
  static constexpr uint64_t kSector = 512;
  Store& inner_;
  std::mutex mu_;
  std::map<uint64_t, std::vector<std::byte>> dirty_;  // sector -> its durable bytes
};

}  // namespace hafs::nvcache
