#include "common/flags.h"

#include "common/units.h"

namespace testfleet {

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto parsed = ParseDuration(value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "DURATION");
}

CLI::Validator SizeValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto parsed = ParseSize(value);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "SIZE");
}

absl::Duration DurationFlag(const std::string& text) {
  return ParseDuration(text).value_or(absl::ZeroDuration());
}

int64_t SizeFlag(const std::string& text) {
  return ParseSize(text).value_or(0);
}

}  // namespace testfleet
