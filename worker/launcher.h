#pragma once

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>

namespace testfleet {

/// The protocol between a worker slot and its `testfleet-launch` process, a
/// small static fork server started once per slot. Why: Linux charges a
/// forking parent's RSS high-water mark to the child (posix_spawn included,
/// measured on kernel 6.18), so a test forked by a large worker would report
/// the worker's peak as its own; forked by the launcher the floor is the
/// launcher's ~1 MiB. And one long-lived launcher costs no exec per test.
///
/// Over a stream socket on the launcher's fd 3:
///   request:  LaunchRequestHeader, with SCM_RIGHTS carrying the test's
///             stdout and stderr; then `payload_bytes` of NUL-terminated
///             strings: cwd, argv[0..argc), env[0..envc), and when
///             `isolated`: the stage folder, then source and target of each
///             of `bindc` binds (isolation.h).
///   answer 1: LaunchStarted (the test's pid, or why it could not start).
///   answer 2: LaunchFinished, when the test and everything it started are
///             gone (only after a successful start).
/// The launcher exits when the socket closes.
inline constexpr int kLauncherSocketFd = 3;

struct LaunchRequestHeader {
  uint32_t payload_bytes;
  uint32_t argc;
  uint32_t envc;
  uint32_t isolated;  // non-zero: run the test in its own mount namespace
  uint32_t bindc;
};

struct LaunchStarted {
  int32_t test_pid;     // also its session and process group; -1 if not started
  int32_t chdir_errno;  // non-zero: the working directory is unusable
  int32_t exec_errno;   // non-zero: the program could not be executed
  int32_t isolation_errno;   // non-zero: its sandbox could not be set up
  char isolation_step[256];  // which step, at which path (NUL-terminated)
};

struct LaunchFinished {
  int32_t wait_status;  // as from wait4
  int64_t max_rss_kb;   // the test's own peak (ru_maxrss)
  int64_t user_us;      // the test's and its reaped descendants' CPU
  int64_t sys_us;
};

/// A message of one buffer with room for `control_size` bytes of ancillary
/// data (the descriptors of a request).
inline struct msghdr OneBufferMessage(struct iovec* iov, char* control,
                                      size_t control_size) {
  struct msghdr message {};
  message.msg_iov = iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = control_size;
  return message;
}

/// Reads or writes exactly `size` bytes, through short transfers and EINTR;
/// false on end of file or error.
inline bool ReadFully(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

inline bool WriteFully(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace testfleet
