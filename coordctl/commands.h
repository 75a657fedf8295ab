#pragma once

#include <optional>
#include <string>

#include "coordctl/importers.h"

namespace testfleet {

/// Where reports go; empty: not written.
struct ReportOutputs {
  std::string json;
  std::string junit;
  std::string html;
};

/// Where the tests come from: a suite file, a CTest build tree or a
/// GoogleTest binary (exactly one), and which of them to keep.
struct SuiteSource {
  std::string suite;
  std::string from_ctest;
  std::string from_gtest;
  TestFilter filter;
};

struct RunOptions {
  SuiteSource source;
  int workers = 0;        // 0: one per core
  std::string cache_dir;  // empty: $XDG_CACHE_HOME/testfleet
  std::string remote_cache;
  std::string platform_tag;
  bool terminal = false;                  // progress line in place
  std::string sample_interval = "100ms";  // memory sampling; 0: off
  ReportOutputs outputs;
};

struct SubmitOptions {
  SuiteSource source;
  std::string coordinator;
  bool wait = false;
  std::optional<int> priority;
  std::string cache_dir;
  std::string platform_tag;
  bool terminal = false;
  ReportOutputs outputs;
};

/// Each command returns the process exit code of CONTRACT.md: 0 success, 1
/// test failures, 2 bad usage or input, 3 infrastructure error. Messages go to
/// stderr, results to stdout.
int RunCommand(const RunOptions& options);
int SubmitCommand(const SubmitOptions& options);
int StatusCommand(const std::string& suite_id, const std::string& coordinator);
int WatchCommand(const std::string& suite_id, const std::string& coordinator,
                 bool terminal);
int CancelCommand(const std::string& suite_id, const std::string& coordinator);
int ReportCommand(const std::string& suite_id, const std::string& coordinator,
                  const ReportOutputs& outputs);
int WorkersCommand(const std::string& coordinator);
int ExplainCommand(const std::string& suite_id, const std::string& test_id,
                   const std::string& coordinator);
/// `operation` is "stats" or "gc"; `address` a coordinator or cache_server.
int CacheCommand(const std::string& operation, const std::string& address);
/// Writes the suite document of a CTest tree or GoogleTest binary to `output`.
int ImportCommand(const SuiteSource& source, const std::string& output);

}  // namespace testfleet
