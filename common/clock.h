#pragma once

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace testfleet {

/// Source of wall-clock time, injected so tests control it.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

/// The system's real clock.
class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  /// A process-wide instance.
  static Clock* Get();
};

/// A clock that moves only when the test says so.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testfleet
