#pragma once
// Shared by the files that implement Coordinator; not a public header.

#include <algorithm>
#include <cstddef>

#include "absl/time/time.h"
#include "common/clock.h"

namespace testfleet::coordinator_internal {

// Ended suites kept in memory for watchers; older ones are read from the store.
inline constexpr size_t kEndedSuitesInMemory = 64;

// A real-time deadline for condition waits, immune to wall-clock steps.
inline absl::Time SteadyDeadline(absl::Duration wait) {
  return RealClock::Get()->Steady() + wait;
}
inline absl::Duration Remaining(absl::Time steady_deadline) {
  return std::max(absl::ZeroDuration(),
                  steady_deadline - RealClock::Get()->Steady());
}

}  // namespace testfleet::coordinator_internal
