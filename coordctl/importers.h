#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// Suites from what people already have, as suite documents (CONTRACT.md
/// format) whose paths are relative to `suite_dir`, the folder the document
/// will be read from. They go through the same validation as a suite file.

/// Every test of a CTest build tree (`ctest --show-only=json-v1`): command,
/// working directory, environment, timeout, labels as tags and COST as the
/// `expected` duration hint (in seconds); the test executable is an input.
/// Disabled tests are left out. Defaults are CTest's: no memory limit, and
/// the tree's DartConfiguration.tcl `TimeOut` when it has one.
absl::StatusOr<nlohmann::json> SuiteFromCtest(const std::string& build_dir,
                                              const std::string& suite_dir);

/// One test per GoogleTest test case of `binary` (`--gtest_list_tests`,
/// typed and parameterised tests included, DISABLED_ ones left out), each
/// run with `--gtest_filter`; the binary is an input. No memory limit, as
/// when the binary runs by itself.
absl::StatusOr<nlohmann::json> SuiteFromGtest(const std::string& binary,
                                              const std::string& suite_dir);

/// Which tests to keep: any of `tags` (when given), an id matching any of
/// `ids` (globs, when given) and none of `excludes` (globs).
struct TestFilter {
  std::vector<std::string> tags;
  std::vector<std::string> ids;
  std::vector<std::string> excludes;
  bool empty() const { return tags.empty() && ids.empty() && excludes.empty(); }
};

/// Applies `filter` to the suite; an error when nothing is left.
absl::Status FilterTests(const TestFilter& filter, v1::SuiteSpec& suite);

}  // namespace testfleet
