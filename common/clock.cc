#include "common/clock.h"

#include <chrono>

namespace testfleet {

absl::Time RealClock::Steady() const {
  return absl::UnixEpoch() +
         absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

Clock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace testfleet
