#include "common/clock.h"

namespace testfleet {

Clock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace testfleet
