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
  std::string files;  // the tests' output files (--outputs)
};

/// Where the tests come from: a suite file, a CTest build tree or a
/// GoogleTest binary (exactly one), and which of them to keep.
struct SuiteSource {
  std::string suite;
  std::string from_ctest;
  std::string from_gtest;
  TestFilter filter;
  bool allow_outside_paths = false;  // see SuiteLoadOptions
  int fail_fast = 0;  // cancel the rest after this many failures; 0: off
};

struct RunOptions {
  SuiteSource source;
  int workers = 0;        // 0: one per core
  std::string cache_dir;  // empty: $XDG_CACHE_HOME/testfleet
  std::string remote_cache;
  std::string platform_tag;
  bool terminal = false;                  // progress line in place
  std::string sample_interval = "100ms";  // memory sampling; 0: off
  bool fail_on_regression = false;        // exit 1 on a regression
  std::string signing_key_file;           // fleet key for cache entries
  std::string http_listen;  // HOST:PORT: a dashboard while the run lasts
  ReportOutputs outputs;
};

/// Where history commands look: a coordinator, or (without one) the history
/// `coordctl run` keeps under the cache dir.
struct LocalOrRemote {
  std::string coordinator;
  std::string cache_dir;
};

struct SubmitOptions {
  SuiteSource source;
  std::string coordinator;
  bool wait = false;
  std::optional<int> priority;
  std::string cache_dir;
  std::string platform_tag;
  bool terminal = false;
  bool fail_on_regression = false;
  bool no_upload = false;  // workers use a shared checkout (--workspace)
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
/// A suite name's history (or one test's runs), with trends, flip rates and
/// leak suspicion; `json_path`, when set, gets it all as JSON.
int HistoryCommand(const std::string& suite_name, const std::string& test_id,
                   const LocalOrRemote& where, const std::string& json_path);
/// A suite's regressions and improvements; exit 1 when it has regressions.
int RegressionsCommand(const std::string& suite_id, const LocalOrRemote& where);
/// `operation`: "set" (pin now, or `from_suite_id`'s runs), "clear" (back to
/// rolling) or "show".
int BaselineCommand(const std::string& operation, const std::string& suite_name,
                    const std::string& from_suite_id,
                    const LocalOrRemote& where);
/// `operation` is "stats" or "gc"; `address` a coordinator or cache_server.
/// `writer`: gc also removes every entry that writer stored.
int CacheCommand(const std::string& operation, const std::string& address,
                 const std::string& writer);
/// Writes the suite document of a CTest tree or GoogleTest binary to `output`.
int ImportCommand(const SuiteSource& source, const std::string& output);

}  // namespace testfleet
