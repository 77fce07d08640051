// Clock: the monotonic time seam of membership. Leases, silence limits and settle times are all
// measured on the local monotonic clock; nodes never compare their clocks (no clock sync).
// SteadyClock is the real one (CLOCK_BOOTTIME); SimClock is advanced by tests and may run fast or slow (rate_ppm)
// to model two nodes whose clocks drift apart.
#pragma once

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "base/check.h"

namespace hafs::membership {

using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time since an arbitrary origin; never goes back.
  virtual Millis now() const = 0;
};

// CLOCK_BOOTTIME, not CLOCK_MONOTONIC: the monotonic clock stops while a machine (a VM) is
// suspended, so a resumed holder would believe a lease valid that ran out long ago on its
// partner's clock. The boot-time clock counts the suspension.
class SteadyClock final : public Clock {
 public:
  Millis now() const override {
    timespec ts{};
    ::clock_gettime(CLOCK_BOOTTIME, &ts);
    return Millis(int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000);
  }
};

// Advanced by one thread (the simulation's); read from any (a simulated node's data-path threads
// ask it whether a lease still holds).
class SimClock final : public Clock {
 public:
  // rate_ppm > 0 runs fast: advance(1000 ms) moves it 1000 * (1 + rate_ppm / 1e6) ms.
  explicit SimClock(Millis start = Millis(1'000'000), int64_t rate_ppm = 0)
      : now_us_(start.count() * 1000), rate_ppm_(rate_ppm) {
    HAFS_CHECK(rate_ppm > -1'000'000, "a clock cannot run backwards");
  }
  Millis now() const override { return Millis(now_us_.load(std::memory_order_acquire) / 1000); }
  void advance(Millis step) {
    HAFS_CHECK(step.count() >= 0, "simulated time only moves forward");
    now_us_.fetch_add(step.count() * (1'000'000 + rate_ppm_) / 1000, std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> now_us_;
  int64_t rate_ppm_;
};

}  // namespace hafs::membership
