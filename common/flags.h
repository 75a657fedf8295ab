#pragma once

#include <string>

#include "CLI/CLI.hpp"
#include "absl/time/time.h"

namespace testfleet {

/// CLI11 validators for our duration and size syntax, so a bad value is
/// refused with our message before anything starts.
CLI::Validator DurationValidator();
CLI::Validator SizeValidator();

/// Parse values that already passed the validators above.
absl::Duration DurationFlag(const std::string& text);
int64_t SizeFlag(const std::string& text);

}  // namespace testfleet
