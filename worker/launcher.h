#pragma once

#include <cstdint>

namespace testfleet {

/// Records the launcher writes on fd 3 (kLauncherStatusFd) for the worker.
/// The worker starts every test through the small `testfleet-launch`
/// program: the kernel carries a parent's RSS high-water mark into children
/// it forks (posix_spawn too, measured on Linux 6.18), so a test forked by
/// a large worker would report the worker's peak as its own. Forked by the
/// launcher, the floor is the launcher's ~1 MiB instead.
inline constexpr int kLauncherStatusFd = 3;

struct LauncherStarted {
  int32_t test_pid;  // also the test's process group
};

struct LauncherFinished {
  int32_t wait_status;  // as from wait4
  int32_t exec_errno;   // non-zero: the test could not start
  int64_t max_rss_kb;   // the test's own peak (ru_maxrss)
  int64_t user_us;      // the test's and its reaped descendants' CPU
  int64_t sys_us;
};

}  // namespace testfleet
