#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace testfleet {

/// Parses a non-negative duration with units: "500ms", "30s", "1h", "1m30s".
/// The error says what was wrong and shows valid examples.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

/// Parses a byte size: "512MiB", "1GiB", "64KiB", "1.5GB", "4096" (bytes).
/// Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal ones (KB, MB,
/// GB, TB) powers of 1000.
absl::StatusOr<int64_t> ParseSize(absl::string_view text);

/// "1.5 GiB", "12.0 MiB", "512 B": for people, not for parsing back.
std::string FormatSize(int64_t bytes);

}  // namespace testfleet
