// libFuzzer target: the suite parser on arbitrary bytes. Every input must be
// refused with a one-line InvalidArgument or parse into a suite the
// coordinator's own validation accepts; nothing may crash or read outside
// the (empty) suite folder.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "common/file_digester.h"
#include "common/suite_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    char pattern[] = "/tmp/tf-fuzz-suite-XXXXXX";
    return std::string(mkdtemp(pattern));
  }();
  testfleet::FileDigester digester;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto suite = testfleet::ParseSuite(text, "fuzz.json", dir, digester);
  if (!suite.ok()) {
    const std::string message(suite.status().message());
    if (message.find('\n') != std::string::npos ||
        suite.status().code() != absl::StatusCode::kInvalidArgument) {
      abort();  // errors are one line and always "bad input"
    }
    return 0;
  }
  if (suite->spec.tests_size() == 0) abort();
  for (const auto& test : suite->spec.tests()) {
    if (test.id().empty() || test.argv_size() == 0 || test.timeout_ms() < 0 ||
        test.memory_limit_bytes() < 0) {
      abort();  // the parser let through what it promises to refuse
    }
  }
  return 0;
}
