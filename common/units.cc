#include "common/units.h"

#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace testfleet {

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a duration", why.empty() ? "" : ": ", why,
        " (use e.g. 500ms, 30s, 5m, 1h, 1m30s)"));
  };
  absl::string_view stripped = absl::StripAsciiWhitespace(text);
  if (stripped.empty()) return bad("it is empty");
  if (stripped == "0") return absl::ZeroDuration();
  absl::Duration d;
  if (!absl::ParseDuration(stripped, &d)) return bad("");
  if (d < absl::ZeroDuration()) return bad("it is negative");
  if (d == absl::InfiniteDuration()) return bad("it is infinite");
  return d;
}

absl::StatusOr<int64_t> ParseSize(absl::string_view text) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a size", why.empty() ? "" : ": ",
                     why, " (use e.g. 4096, 64KiB, 512MiB, 1GiB)"));
  };
  absl::string_view s = absl::StripAsciiWhitespace(text);
  size_t number_end = 0;
  while (number_end < s.size() &&
         (absl::ascii_isdigit(s[number_end]) || s[number_end] == '.')) {
    ++number_end;
  }
  if (number_end == 0) {
    return bad(s.empty() || s[0] != '-' ? "it does not start with a number"
                                        : "it is negative");
  }
  std::string number(s.substr(0, number_end));
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size()) return bad("bad number");
  std::string unit =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(s.substr(number_end)));
  double multiplier = 0;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kb") {
    multiplier = 1e3;
  } else if (unit == "kib") {
    multiplier = 1024.0;
  } else if (unit == "m" || unit == "mb") {
    multiplier = 1e6;
  } else if (unit == "mib") {
    multiplier = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gb") {
    multiplier = 1e9;
  } else if (unit == "gib") {
    multiplier = 1024.0 * 1024 * 1024;
  } else if (unit == "t" || unit == "tb") {
    multiplier = 1e12;
  } else if (unit == "tib") {
    multiplier = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return bad(absl::StrCat("unknown unit \"", unit, "\""));
  }
  double bytes = value * multiplier;
  if (!std::isfinite(bytes) || bytes >= 9.2e18) return bad("it is too large");
  return static_cast<int64_t>(std::llround(bytes));
}

std::string FormatSize(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (std::fabs(value) >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

}  // namespace testfleet
