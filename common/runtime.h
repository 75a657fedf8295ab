#pragma once

namespace testfleet {

/// Turns Abseil's mutex deadlock detection off for this process. Debian
/// builds Abseil without NDEBUG, which leaves the detection on: every lock
/// and unlock then updates a global lock graph under a global lock. The
/// binaries call this first thing in main(); tests keep the detection.
void DisableMutexDeadlockDetection();

/// Keeps buffers up to 64 MiB in the malloc heap instead of fresh mmap()s.
/// glibc maps every allocation over its threshold afresh; a 1 GiB ByteStream
/// upload in 1 MiB messages then spent most of its time faulting in and
/// unmapping pages (perf: 62% of the server in the kernel). Called by the
/// servers that move blobs.
void KeepLargeBuffersInHeap();

/// Names the calling thread, so that `top -H`, `perf` and /proc tell a
/// server's own threads apart (the kernel keeps the first 15 characters).
void NameThisThread(const char* name);

}  // namespace testfleet
