// SimDisk: an in-memory storage medium shared by the nodes of a simulation, with seeded fault
// injection per node (TigerBeetle's VOPR / FoundationDB's AsyncFileNonDurable in miniature).
//
// Each node talks to the medium through its own Port (its "SAN path"), so a fault can hit one
// node and not the other. Faults, per port:
//   - fail:  a write returns EIO and changes nothing; a read returns EIO
//   - tear:  a write returns EIO after a prefix of the new bytes landed (the rest stays old)
//   - delay: the operation takes `delay` of simulated time (the delay hook advances the clocks)
//   - lost:  every operation returns EIO until restored (the path to the medium is gone)
// Random faults draw from one generator seeded by the test, so a run replays from its seed.
// Not thread safe: a simulation runs in one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "membership/clock.h"
#include "membership/shared_disk.h"

namespace hafs::membership {

struct SimDiskFaults {
  double write_fail_p = 0;   // chance that a write fails cleanly
  double write_tear_p = 0;   // chance that a write tears
  double read_fail_p = 0;    // chance that a read fails
  double delay_p = 0;        // chance that an operation is delayed by 1..delay_ms_max
  uint32_t delay_ms_max = 0;
};

class SimDisk {
 public:
  class Port final : public SharedDisk {
   public:
    Status read(const std::string& name, std::span<std::byte, kRecordBlockBytes> out) override;
    Status write(const std::string& name,
                 std::span<const std::byte, kRecordBlockBytes> data) override;

    void set_faults(const SimDiskFaults& faults) { faults_ = faults; }
    void fail_next_writes(uint32_t n) { fail_writes_ += n; }
    void tear_next_write() { tear_writes_ += 1; }
    void delay_next_op(Millis delay) { delay_next_ = delay; }
    // Faults aimed at the next write of one record (each fires once).
    void fail_next_write_of(const std::string& name) { aimed_.push_back({kAimFail, name, {}}); }
    void tear_next_write_of(const std::string& name) { aimed_.push_back({kAimTear, name, {}}); }
    void delay_next_write_of(const std::string& name, Millis d) {
      aimed_.push_back({kAimDelay, name, d});
    }
    void set_lost(bool lost) { lost_ = lost; }
    bool lost() const { return lost_; }
    uint64_t writes() const { return writes_; }
    uint64_t failed_writes() const { return failed_writes_; }

   private:
    friend class SimDisk;
    Port(SimDisk* disk, NodeId node) : disk_(disk), node_(node) {}
    // Applies a delay fault, if one fires. Returns the injected failure, or OK.
    Status before_op(bool is_write);

    enum AimKind { kAimFail, kAimTear, kAimDelay };
    struct Aimed {
      AimKind kind;
      std::string name;
      Millis delay;
    };

    SimDisk* disk_;
    NodeId node_;
    std::vector<Aimed> aimed_;
    SimDiskFaults faults_;
    uint32_t fail_writes_ = 0;
    uint32_t tear_writes_ = 0;
    std::optional<Millis> delay_next_;
    bool lost_ = false;
    uint64_t writes_ = 0;
    uint64_t failed_writes_ = 0;
  };

  explicit SimDisk(uint64_t seed) : rng_(seed) {}
  SimDisk(const SimDisk&) = delete;
  SimDisk& operator=(const SimDisk&) = delete;

  // The port of `node`, created on first use; the reference stays valid for the disk's life.
  Port& port(NodeId node);
  // Called with the length of every injected delay, before the delayed operation completes;
  // the simulation advances its clocks there.
  void set_delay_hook(std::function<void(Millis)> hook) { delay_hook_ = std::move(hook); }

  // Direct access for tests: the bytes of a record (nullopt if never written), or replace them.
  std::optional<RecordBlock> peek(const std::string& name) const;
  void poke(const std::string& name, const RecordBlock& bytes) { records_[name] = bytes; }

 private:
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  std::map<std::string, RecordBlock> records_;
  std::map<NodeId, std::unique_ptr<Port>> ports_;
  std::function<void(Millis)> delay_hook_;
  std::mt19937_64 rng_;
};

}  // namespace hafs::membership
