#include "common/runtime.h"

#include "absl/synchronization/mutex.h"

namespace testfleet {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace testfleet
