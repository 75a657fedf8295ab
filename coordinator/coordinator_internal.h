#pragma once
// Shared by the files that implement Coordinator; not a public header.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "common/clock.h"

namespace testfleet::coordinator_internal {

// Ended suites kept in memory for watchers; older ones are read from the store.
inline constexpr size_t kEndedSuitesInMemory = 64;
// Ids a client or worker can name but not guess: 128 random bits.
inline constexpr int kIdBytes = 16;
// A test's peak memory beyond this is impossible (a petabyte).
inline constexpr int64_t kMaxPeakKb = int64_t{1} << 40;

// A real-time deadline for condition waits, immune to wall-clock steps.
inline absl::Time SteadyDeadline(absl::Duration wait) {
  return RealClock::Get()->Steady() + wait;
}
inline absl::Duration Remaining(absl::Time steady_deadline) {
  return std::max(absl::ZeroDuration(),
                  steady_deadline - RealClock::Get()->Steady());
}

}  // namespace testfleet::coordinator_internal
