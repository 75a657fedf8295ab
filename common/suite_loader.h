#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/file_digester.h"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// Defaults for fields a suite file leaves out.
inline constexpr int64_t kDefaultTimeoutMs = 300'000;
inline constexpr int64_t kDefaultMemoryLimitBytes = 256LL << 20;

/// A suite file read, validated and resolved: defaults merged into every
/// test, input globs expanded, every input hashed.
struct LoadedSuite {
  v1::SuiteSpec spec;
  std::string dir;  // absolute folder of the suite file; inputs and cwd are
                    // relative to it
};

struct SuiteLoadOptions {
  /// Inputs and cwd may name absolute paths or climb out of the suite folder
  /// with "..". Off by default: such a suite reads files a remote worker
  /// does not have in its workspace, and one from an untrusted change could
  /// make workers hash whatever it names.
  bool allow_outside_paths = false;
};

/// Reads the suite file at `path` (CONTRACT.md, "Suite file"). Every error is
/// InvalidArgument with one line naming the file and the bad field, e.g.
/// `suite.json: tests[3].timeout: "-1s" is not a duration (...)`.
absl::StatusOr<LoadedSuite> LoadSuiteFile(const std::string& path,
                                          FileDigester& digester,
                                          const SuiteLoadOptions& options = {});

/// The same for suite JSON already in memory; `display_name` prefixes errors
/// and `dir` is the folder that inputs and cwd are relative to.
absl::StatusOr<LoadedSuite> ParseSuite(const std::string& json_text,
                                       const std::string& display_name,
                                       const std::string& dir,
                                       FileDigester& digester,
                                       const SuiteLoadOptions& options = {});

}  // namespace testfleet
