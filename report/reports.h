#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/test_status.h"
#include "nlohmann/json.hpp"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// Escapes text for XML 1.0 and HTML: markup characters as entities,
/// characters XML cannot carry (most C0 controls, invalid UTF-8) visibly as
/// "\xNN" or U+FFFD.
std::string XmlEscape(const std::string& raw);
/// A test id as one file name: characters other than letters, digits, '.',
/// '-' and '_' as '_', and never "", "." or "..".
std::string SafeFileName(const std::string& test_id);

/// One test case of a GoogleTest XML report (`--gtest_output=xml:`).
struct GtestCase {
  std::string name;  // "Suite.Name"
  double seconds = 0;
  v1::TestStatus status = v1::TEST_STATUS_PASSED;  // passed, failed, skipped
  std::string message;  // the first failure's message
};
/// The cases of a GoogleTest XML report; none when it is not one.
std::vector<GtestCase> ParseGtestXml(const std::string& xml);

/// How many tests of the summary are failures in that sense.
int FailedCount(const v1::SuiteSummary& summary);

/// A regression or improvement as JSON: metric, medians, change, p-value.
nlohmann::json ChangeJson(const v1::PerformanceChange& change);
/// A test's insight as JSON: trend, slope, flip rate, leak suspicion.
nlohmann::json InsightJson(const v1::TestInsight& insight);

/// The JSON report of CONTRACT.md ("JSON report"), plus "regressions",
/// "improvements" and "insights".
std::string JsonReport(const v1::SuiteReport& report);
/// JUnit XML (testsuites/testsuite/testcase with failure, skipped,
/// system-out, system-err, time in seconds); every character XML 1.0 cannot
/// carry is escaped so CI tools load the file whatever the tests printed.
/// A test with `cases` (its GoogleTest XML report, by test id) shows as one
/// testcase per case, named "TEST_ID/Suite.Name".
std::string JunitReport(
    const v1::SuiteReport& report,
    const std::map<std::string, std::vector<GtestCase>>& cases = {});

/// Writes `content` to `path` atomically (temporary file, then rename).
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& content);

/// The few lines printed at the end of a run: counts, wall time, failures.
std::string SummaryText(const v1::SuiteReport& report);

/// "wall_time" or "peak_memory"; the unit of its values ("ms", "KiB").
std::string MetricName(v1::Metric metric);
std::string MetricUnit(v1::Metric metric);
/// One line for a regression or improvement: "t wall_time +50.0% (100.2 ->
/// 150.3 ms, p=0.004, 5 vs 5 runs, baseline rolling)".
std::string ChangeLine(const v1::PerformanceChange& change);
/// How many of the report's changes are regressions.
int RegressionCount(const v1::SuiteReport& report);

/// CONTRACT.md exit code of a finished suite: 0 all passed (cached or run), 1
/// anything failed, timed out, exceeded memory or errored.
int ExitCodeOf(const v1::SuiteReport& report);

}  // namespace testfleet
