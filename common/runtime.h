#pragma once

namespace testfleet {

/// Turns Abseil's mutex deadlock detection off for this process. Debian
/// builds Abseil without NDEBUG, which leaves the detection on: every lock
/// and unlock then updates a global lock graph under a global lock. The
/// binaries call this first thing in main(); tests keep the detection.
void DisableMutexDeadlockDetection();

}  // namespace testfleet
