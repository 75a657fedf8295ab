#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace testfleet {

/// Sources of time, injected so tests control them: `Now()` is the wall
/// clock, for timestamps people read; `Steady()` never jumps (an NTP step or
/// a paused VM does not move it), for durations, deadlines and leases. Its
/// epoch is arbitrary: compare and subtract Steady() values only with each
/// other.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  virtual absl::Time Steady() const = 0;
};

/// The system's real clocks (CLOCK_REALTIME and CLOCK_MONOTONIC).
class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Time Steady() const override;
  /// A process-wide instance.
  static Clock* Get();
};

/// A clock that moves only when the test says so. Advance moves both
/// clocks; Set steps the wall clock alone, as NTP does.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_(start), steady_(absl::UnixEpoch()) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  absl::Time Steady() const override {
    absl::MutexLock lock(&mu_);
    return steady_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
    steady_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  absl::Time steady_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testfleet
