#include "common/runtime.h"

#include <malloc.h>
#include <pthread.h>

#include <string>

#include "absl/synchronization/mutex.h"

namespace testfleet {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void KeepLargeBuffersInHeap() {
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  // Freed memory stays for the next message rather than going back to the
  // kernel at every free.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

void NameThisThread(const char* name) {
  pthread_setname_np(pthread_self(), std::string(name).substr(0, 15).c_str());
}

}  // namespace testfleet
