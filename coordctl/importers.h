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
/// `expected` duration hint (in seconds). Inputs are what the test needs
/// where no checkout exists, taken from the source and build trees only: the
/// executable, the project's shared libraries it loads (ldd), files its
/// command names (also inside `sh -c` strings), REQUIRED_FILES and the files
/// of a WORKING_DIRECTORY the project chose (a warning names a large one).
/// GoogleTest programs write their XML report as an output. Disabled tests
/// are kept, marked `disabled`, and reported as skipped. Defaults are CTest's:
/// no memory limit, and the tree's DartConfiguration.tcl `TimeOut` when it has
/// one.
absl::StatusOr<nlohmann::json> SuiteFromCtest(const std::string& build_dir,
                                              const std::string& suite_dir);

/// One test per GoogleTest test case of `binary` (`--gtest_list_tests`,
/// typed and parameterised tests included, DISABLED_ ones marked
/// `disabled`), each run with `--gtest_filter` and writing its XML report
/// as an output; the binary and the shared libraries beside it that it
/// loads are inputs. No memory limit, as
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
