#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"

namespace testfleet {

/// Bytes free for an unprivileged writer on the filesystem holding `path`.
absl::StatusOr<int64_t> FreeDiskBytes(const std::string& path);

/// Refuses writes while the disk holding a data dir has less than a reserve
/// free. RocksDB that runs into a full disk stops all writes until it is
/// resumed (and Debian's build can abort on the next write to a file that
/// failed), so the store stops short of it instead: the request fails with a
/// clear status, and writes go on by themselves once space returns. Free space
/// is read at most every `recheck` while above the reserve, always below it.
/// Thread-safe.
///
///   DiskSpaceGuard guard("/var/lib/testfleet", 128 << 20);
///   RETURN_IF_ERROR(guard.Check());
///   db->Put(...);
class DiskSpaceGuard {
 public:
  using FreeBytesFn =
      std::function<absl::StatusOr<int64_t>(const std::string&)>;

  DiskSpaceGuard(std::string dir, int64_t reserve_bytes,
                 const Clock* clock = RealClock::Get(),
                 FreeBytesFn free_bytes = FreeDiskBytes,
                 absl::Duration recheck = absl::Milliseconds(100));

  /// OK while more than the reserve is free; else ResourceExhausted naming
  /// the dir, what is free and what to do.
  absl::Status Check();
  /// Check, reading free space now whatever the last reading: for admitting
  /// new work, which must not slip in on a reading from before the disk
  /// filled.
  absl::Status CheckNow();

 private:
  const std::string dir_;
  const int64_t reserve_bytes_;
  const Clock* const clock_;
  const FreeBytesFn free_bytes_;
  const absl::Duration recheck_;
  std::atomic<int64_t> checked_at_ns_{0};  // 0: check next time
};

}  // namespace testfleet
