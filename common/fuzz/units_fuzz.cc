// libFuzzer target: duration, size and hex parsers on arbitrary text. A
// parsed value is never negative, and formatting it parses back to itself.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/digest.h"
#include "common/units.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto duration = testfleet::ParseDuration(text); duration.ok()) {
    if (*duration < absl::ZeroDuration()) abort();
  }
  if (auto bytes = testfleet::ParseSize(text); bytes.ok()) {
    if (*bytes < 0) abort();
    auto again = testfleet::ParseSize(std::to_string(*bytes));
    if (!again.ok() || *again != *bytes) abort();
  }
  if (auto raw = testfleet::HexToBytes(text); raw.ok()) {
    if (testfleet::BytesToHex(*raw).size() != text.size()) abort();
  }
  return 0;
}
