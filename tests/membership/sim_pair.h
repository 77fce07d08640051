// SimPair: two Monitors of one HA pair in one process, sharing one SimDisk, each with its own
// SimClock (which may drift), and a RecordingActions per node that logs every action and
// checks the Actions contract. Tests drive it in simulated time; check_invariants() asserts
// I2 as membership sees it after every step.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "membership/monitor.h"
#include "membership/sim_disk.h"

namespace hafs::membership::testing {

inline uint64_t test_seed(uint64_t fallback) {
  if (const char* env = std::getenv("HAFS_SEED"); env && *env) return std::strtoull(env, nullptr, 0);
  return fallback;
}

struct Event {
  enum Kind { kFence, kTakeOver, kServe, kRelease, kDiscard, kDegraded, kNotDegraded, kFreeze, kThaw };
  Kind kind;
  VolumeId volume = 0;
  uint64_t epoch = 0;  // for kDiscard: the LSN bound below which records were dropped
  Millis at{0};
};

// Records every call; checks what the contract promises (serve only after take_over at that
// epoch, fence only what is served...). Its `serving` map is what the data path would serve.
class RecordingActions final : public Actions {
 public:
  explicit RecordingActions(const Clock& clock) : clock_(clock) {}

  void fence(VolumeId v) override {
    log(Event::kFence, v, 0);
    EXPECT_TRUE(serving.count(v)) << "fence of volume " << v << ", which is not served";
    serving.erase(v);
  }
  Status take_over(VolumeId v, uint64_t epoch, const TakeoverPlan& plan, uint64_t* replay_next_lsn) override {
    log(Event::kTakeOver, v, epoch);
    plans[{v, epoch}] = plan;
    if (plan.replay_node != kNoNode) {
      EXPECT_TRUE(frozen) << "take_over of volume " << v << " replays the partner's mirror while it is not frozen (I8)";
    }
    *replay_next_lsn = plan.replay_node != kNoNode ? replay_next_lsn_to_report : 0;
    EXPECT_FALSE(serving.count(v)) << "take_over of volume " << v << " while serving it";
    if (fail_take_overs > 0) {
      --fail_take_overs;
      return Status::error(fail_take_over_code, "simulated replay failure", EIO);
    }
    if (take_over_calls_in_progress > 0) {  // a replay running in the background
      --take_over_calls_in_progress;
      return Status::error(Code::kInProgress, "simulated background replay");
    }
    taken_over.insert({v, epoch});
    if (on_take_over) on_take_over(v, epoch);
    return Status::ok();
  }
  void serve(VolumeId v, uint64_t epoch) override {
    log(Event::kServe, v, epoch);
    EXPECT_TRUE(taken_over.count({v, epoch}))
        << "serve(" << v << ", " << epoch << ") before take_over returned OK (I3)";
    serving[v] = epoch;
  }
  Status release(VolumeId v) override {
    if (!releasing.count(v)) {  // the first call; the others ask about the background destage
      log(Event::kRelease, v, 0);
      EXPECT_TRUE(serving.count(v)) << "release of volume " << v << ", which is not served";
      serving.erase(v);
      releasing.insert(v);
    }
    if (release_calls_in_progress > 0) {
      --release_calls_in_progress;
      return Status::error(Code::kInProgress, "simulated background destage");
    }
    releasing.erase(v);
    if (fail_releases > 0) {
      --fail_releases;
      return Status::error(Code::kIoError, "simulated flush failure", EIO);
    }
    return Status::ok();
  }
  Status freeze_partner_mirror() override {
    log(Event::kFreeze, 0, 0);
    EXPECT_FALSE(frozen) << "freeze of a frozen mirror";
    if (on_freeze) on_freeze();
    if (fail_freezes > 0) {
      --fail_freezes;
      return Status::error(Code::kTimedOut, "simulated freeze timeout");
    }
    frozen = true;
    return Status::ok();
  }
  void thaw_partner_mirror() override {
    log(Event::kThaw, 0, 0);
    if (on_thaw) on_thaw();
    EXPECT_TRUE(frozen) << "thaw of a mirror that is not frozen";
    frozen = false;
  }
  // Drops the staged LSNs of `v` below `below_lsn` (staged[v]: what the data path holds of it).
  uint64_t discard(VolumeId v, uint64_t below_lsn) override {
    log(Event::kDiscard, v, below_lsn);
    EXPECT_FALSE(serving.count(v)) << "discard of volume " << v << " while serving it";
    if (on_discard) on_discard(v, below_lsn);
    auto& lsns = staged[v];
    lsns.erase(lsns.begin(), lsns.lower_bound(below_lsn));
    return lsns.size();
  }
  void set_degraded(bool d) override {
    log(d ? Event::kDegraded : Event::kNotDegraded, 0, 0);
    EXPECT_NE(d, degraded) << "set_degraded(" << d << ") twice";
    degraded = d;
  }

  size_t count(Event::Kind kind, VolumeId v = 0) const {
    size_t n = 0;
    for (const auto& e : events)
      if (e.kind == kind && (v == 0 || e.volume == v)) ++n;
    return n;
  }
  std::optional<Event> first(Event::Kind kind, VolumeId v) const {
    for (const auto& e : events)
      if (e.kind == kind && e.volume == v) return e;
    return std::nullopt;
  }

  std::vector<Event> events;
  std::map<VolumeId, uint64_t> serving;
  std::set<std::pair<VolumeId, uint64_t>> taken_over;
  std::set<VolumeId> releasing;  // release answered kInProgress, not yet its result
  bool degraded = false;
  int fail_take_overs = 0;
  int fail_releases = 0;
  int take_over_calls_in_progress = 0;  // the next N take_over calls answer kInProgress
  int release_calls_in_progress = 0;    // the next N release calls answer kInProgress
  int fail_freezes = 0;
  Code fail_take_over_code = Code::kIoError;  // kDataLoss: a damaged mirror
  bool frozen = false;                  // the partner's mirror, as this data path holds it
  uint64_t replay_next_lsn_to_report = 1000;  // what a replay says it read up to
  std::map<std::pair<VolumeId, uint64_t>, TakeoverPlan> plans;  // take_over's plan by (volume, epoch)
  std::map<VolumeId, std::set<uint64_t>> staged;  // staged record LSNs per volume (for discard)
  std::function<void(VolumeId, uint64_t)> on_discard;
  std::function<void()> on_freeze;
  std::function<void()> on_thaw;
  std::function<void(VolumeId, uint64_t)> on_take_over;  // inside take_over, after the checks

 private:
  void log(Event::Kind kind, VolumeId v, uint64_t epoch) {
    events.push_back(Event{kind, v, epoch, clock_.now()});
  }
  const Clock& clock_;
};

inline constexpr NodeId kA = 1;
inline constexpr NodeId kB = 2;

// Volumes 1 and 2 are at home on A, 3 and 4 on B.
inline MonitorConfig pair_config(NodeId self) {
  MonitorConfig c;
  c.node_id = self;
  c.partner_id = self == kA ? kB : kA;
  c.volumes = {{1, kA}, {2, kA}, {3, kB}, {4, kB}};
  c.auto_giveback = false;
  return c;
}

class SimPair {
 public:
  static constexpr Millis kStep{10};

  explicit SimPair(uint64_t seed, int64_t b_rate_ppm = 0, LogLevel level = LogLevel::kWarn)
      : disk_(seed), rng_(seed), level_(level) {
    clock_[0] = std::make_unique<SimClock>(Millis(1'000'000));
    clock_[1] = std::make_unique<SimClock>(Millis(7'000'000), b_rate_ppm);  // other origin
    config_[0] = pair_config(kA);
    config_[1] = pair_config(kB);
    disk_.set_delay_hook([this](Millis d) { advance_clocks(d); });
  }

  MonitorConfig& config(int i) { return config_[i]; }
  SimDisk& disk() { return disk_; }
  SimDisk::Port& port(int i) { return disk_.port(i == 0 ? kA : kB); }
  SimClock& clock(int i) { return *clock_[i]; }
  Monitor* monitor(int i) { return mon_[i].get(); }
  RecordingActions& actions(int i) { return *actions_[i]; }
  bool running(int i) const { return mon_[i] != nullptr; }
  bool hung(int i) const { return hung_[i]; }
  Millis elapsed() const { return elapsed_; }

  // Starts node i's process: a fresh Monitor (new incarnation) and a fresh data path.
  void start(int i) {
    actions_[i] = std::make_unique<RecordingActions>(*clock_[i]);
    // Dropping staged records is only right when another node owns the volume now (it
    // replayed the acknowledged ones); anything else loses acknowledged writes.
    // And then only what it replayed: the records below the LSN its record says it read (I7).
    actions_[i]->on_discard = [this, i](VolumeId v, uint64_t below) {
      auto rec = record(v);
      const NodeId self = i == 0 ? kA : kB;
      EXPECT_TRUE(rec && rec->owner != self)
          << "node " << i << " discarded volume " << v << " that nobody else owns";
      if (rec && rec->replay_node == self && (rec->replay_pending() || own_outdated_[i])) {
        EXPECT_TRUE(rec->replay_pending() ? below == 0 : below <= rec->replay_next_lsn)
            << "node " << i << " discarded volume " << v << " below LSN " << below
            << ", past what its owner replayed";
      }
    };
    config_[i].incarnation = rng_();
    auto m = Monitor::create(config_[i], *clock_[i], port(i), *actions_[i],
                             Logger(i == 0 ? "nodeA" : "nodeB", level_));
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    mon_[i] = std::move(m).value();
    hung_[i] = false;
  }
  void start_both() {
    start(0);
    start(1);
  }
  // kill -9: the process and everything it served are gone.
  void kill(int i) {
    mon_[i].reset();
    if (actions_[i]) actions_[i]->serving.clear();
  }
  void hang(int i) { hung_[i] = true; }   // SIGSTOP: nothing runs, the clock goes on
  void wake(int i) { hung_[i] = false; }  // SIGCONT
  void set_cut(bool cut) { cut_ = cut; }
  void set_in_sync(bool in_sync) { in_sync_ = in_sync; }
  // Node i marked its partner's mirror of its log outdated (Observation::own_mirror_outdated).
  void set_own_outdated(int i, bool outdated) { own_outdated_[i] = outdated; }
  void set_random_order(bool random) { random_order_ = random; }

  Observation observation(int i) const {
    const int j = 1 - i;
    Observation o;
    o.interconnect_alive = !cut_ && running(j) && !hung_[j] && running(i) && !hung_[i];
    o.mirror_in_sync = in_sync_;
    o.own_mirror_outdated = own_outdated_[i];
    return o;
  }

  // Ticks node i now (whatever next_tick_at says) and checks the invariants.
  void tick(int i) {
    ASSERT_TRUE(running(i));
    mon_[i]->tick(observation(i));
    check_invariants();
  }

  // Advances simulated time by `d` in kStep steps; a running, unhung node ticks when due.
  void run(Millis d) {
    for (Millis t{0}; t < d; t += kStep) {
      advance_clocks(kStep);
      int order[2] = {0, 1};
      if (random_order_ && (rng_() & 1)) std::swap(order[0], order[1]);
      for (int i : order) {
        if (!running(i) || hung_[i]) continue;
        if (clock_[i]->now() >= mon_[i]->next_tick_at()) tick(i);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
  // Runs until `pred` holds (checked every step), at most `limit`. Returns whether it held.
  template <typename Pred>
  bool run_until(Pred pred, Millis limit) {
    for (Millis t{0}; t < limit; t += kStep) {
      if (pred()) return true;
      run(kStep);
      if (::testing::Test::HasFatalFailure()) return false;
    }
    return pred();
  }

  VolumeView view(int i, VolumeId v) const {
    for (const auto& vv : mon_[i]->status().volumes)
      if (vv.id == v) return vv;
    ADD_FAILURE() << "no volume " << v;
    return {};
  }
  bool serving(int i, VolumeId v) const {
    if (!running(i)) return false;
    const VolumeView vv = view(i, v);
    return vv.state == VolumeState::kServing && !vv.releasing && clock_[i]->now() < vv.lease_valid_until;
  }
  NodeState state(int i) const { return mon_[i]->state(); }

  std::optional<OwnershipRecord> record(VolumeId v) const {
    auto bytes = disk_.peek(ownership_record_name(v));
    if (!bytes) return std::nullopt;
    auto r = decode_ownership(*bytes);
    if (!r.is_ok()) return std::nullopt;
    return *r;
  }

  // I2 as membership sees it: at this instant no volume is served by both nodes with an
  // unexpired lease (each judged on its own clock); valid records' epochs never go down; an
  // epoch is served by one node only, ever; the data path serves what the Monitor says.
  void check_invariants() {
    for (const auto& vc : config_[0].volumes) {
      const VolumeId v = vc.id;
      int holders = 0;
      for (int i = 0; i < 2; ++i) holders += serving(i, v) ? 1 : 0;
      ASSERT_LE(holders, 1) << "volume " << v << " served by both nodes at t=+"
                            << elapsed_.count() << " ms";
      if (auto rec = record(v)) {
        ASSERT_GE(rec->epoch, max_epoch_[v]) << "volume " << v << ": the epoch went down";
        max_epoch_[v] = rec->epoch;
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (!running(i)) continue;
      for (const auto& e : actions_[i]->events) {
        if (e.kind != Event::kServe) continue;
        auto [it, inserted] = served_by_.try_emplace({e.volume, e.epoch}, i);
        ASSERT_EQ(it->second, i) << "volume " << e.volume << " epoch " << e.epoch
                                 << " served by both nodes";
      }
      if (hung_[i]) continue;
      for (const auto& vv : mon_[i]->status().volumes) {
        const bool monitor_says = vv.state == VolumeState::kServing && !vv.releasing;
        auto it = actions_[i]->serving.find(vv.id);
        ASSERT_EQ(monitor_says, it != actions_[i]->serving.end())
            << "node " << i << " volume " << vv.id << ": Monitor and data path disagree";
        if (monitor_says) {
          ASSERT_EQ(it->second, vv.epoch);
        }
      }
    }
  }

 private:
  void advance_clocks(Millis d) {
    clock_[0]->advance(d);
    clock_[1]->advance(d);
    elapsed_ += d;
  }

  SimDisk disk_;
  std::mt19937_64 rng_;
  LogLevel level_;
  std::array<std::unique_ptr<SimClock>, 2> clock_;
  std::array<MonitorConfig, 2> config_;
  std::array<std::unique_ptr<RecordingActions>, 2> actions_;
  std::array<std::unique_ptr<Monitor>, 2> mon_;
  std::array<bool, 2> hung_{};
  bool cut_ = false;
  bool in_sync_ = true;
  std::array<bool, 2> own_outdated_{};
  bool random_order_ = false;
  Millis elapsed_{0};
  std::map<VolumeId, uint64_t> max_epoch_;
  std::map<std::pair<VolumeId, uint64_t>, int> served_by_;
};

}  // namespace hafs::membership::testing
