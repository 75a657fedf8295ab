#include "common/disk_space.h"

#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "absl/strings/str_cat.h"

namespace testfleet {

absl::StatusOr<int64_t> FreeDiskBytes(const std::string& path) {
  struct statvfs stats;
  if (statvfs(path.c_str(), &stats) != 0) {
    return absl::InternalError(absl::StrCat("cannot read free space of ", path,
                                            ": ", strerror(errno)));
  }
  return static_cast<int64_t>(stats.f_bavail) *
         static_cast<int64_t>(stats.f_frsize);
}

DiskSpaceGuard::DiskSpaceGuard(std::string dir, int64_t reserve_bytes,
                               const Clock* clock, FreeBytesFn free_bytes,
                               absl::Duration recheck)
    : dir_(std::move(dir)),
      reserve_bytes_(reserve_bytes),
      clock_(clock),
      free_bytes_(std::move(free_bytes)),
      recheck_(recheck) {}

absl::Status DiskSpaceGuard::Check() {
  if (reserve_bytes_ <= 0) return absl::OkStatus();
  const int64_t now = absl::ToUnixNanos(clock_->Now());
  const int64_t checked_at = checked_at_ns_.load(std::memory_order_relaxed);
  if (checked_at != 0 && now - checked_at < absl::ToInt64Nanoseconds(recheck_))
    return absl::OkStatus();
  return CheckNow();
}

absl::Status DiskSpaceGuard::CheckNow() {
  if (reserve_bytes_ <= 0) return absl::OkStatus();
  const int64_t now = absl::ToUnixNanos(clock_->Now());
  absl::StatusOr<int64_t> free = free_bytes_(dir_);
  if (!free.ok()) return free.status();
  if (*free <= reserve_bytes_) {
    checked_at_ns_.store(0, std::memory_order_relaxed);
    return absl::ResourceExhaustedError(absl::StrCat(
        "the disk holding ", dir_, " is nearly full (", *free >> 20,
        " MiB free, ", reserve_bytes_ >> 20,
        " MiB kept in reserve); free space there or lower --min-free-disk, "
        "writes resume by themselves"));
  }
  checked_at_ns_.store(now, std::memory_order_relaxed);
  return absl::OkStatus();
}

}  // namespace testfleet
