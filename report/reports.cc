#include "report/reports.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/text.h"
#include "nlohmann/json.hpp"

namespace testfleet {
namespace {

std::string IsoTime(int64_t unix_ms) {
  if (unix_ms == 0) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

}  // namespace

std::string SafeFileName(const std::string& test_id) {
  std::string name = test_id;
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '-' && c != '_') {
      c = '_';
    }
  }
  if (name.empty() || name == "." || name == "..") name = "_" + name;
  return name;
}

std::string XmlEscape(const std::string& raw) {
  std::string text = XmlChars(raw);
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += ch;
    }
  }
  return out;
}

int FailedCount(const v1::SuiteSummary& s) {
  return s.failed() + s.timed_out() + s.memory_exceeded() + s.errors();
}

std::string MetricName(v1::Metric metric) {
  return metric == v1::METRIC_PEAK_MEMORY ? "peak_memory" : "wall_time";
}

std::string MetricUnit(v1::Metric metric) {
  return metric == v1::METRIC_PEAK_MEMORY ? "KiB" : "ms";
}

std::string ChangeLine(const v1::PerformanceChange& change) {
  return absl::StrFormat(
      "%s %s %+.1f%% (%.1f -> %.1f %s, p=%.3g, %d vs %d runs, baseline %s)",
      change.test_id(), MetricName(change.metric()), (change.ratio() - 1) * 100,
      change.baseline_median(), change.current_median(),
      MetricUnit(change.metric()), change.p_value(), change.baseline_runs(),
      change.current_runs(), change.baseline());
}

int RegressionCount(const v1::SuiteReport& report) {
  int regressions = 0;
  for (const v1::PerformanceChange& change : report.changes())
    regressions += change.kind() == v1::CHANGE_KIND_REGRESSION;
  return regressions;
}

namespace {

const char* TrendName(v1::TrendDirection direction) {
  switch (direction) {
    case v1::TREND_DIRECTION_IMPROVING:
      return "improving";
    case v1::TREND_DIRECTION_DEGRADING:
      return "degrading";
    default:
      return "stable";
  }
}

}  // namespace

nlohmann::json ChangeJson(const v1::PerformanceChange& change) {
  return {{"id", change.test_id()},
          {"metric", MetricName(change.metric())},
          {"unit", MetricUnit(change.metric())},
          {"baseline_median", change.baseline_median()},
          {"current_median", change.current_median()},
          {"change_pct", (change.ratio() - 1) * 100},
          {"p_value", change.p_value()},
          {"baseline_runs", change.baseline_runs()},
          {"current_runs", change.current_runs()},
          {"tolerance_pct", change.tolerance() * 100},
          {"baseline", change.baseline()},
          {"recent", change.recent()}};
}

nlohmann::json InsightJson(const v1::TestInsight& insight) {
  return {{"id", insight.test_id()},
          {"trend", TrendName(insight.trend())},
          {"slope_ms_per_run", insight.slope_ms_per_run()},
          {"trend_p_value", insight.trend_p_value()},
          {"runs", insight.runs()},
          {"flip_rate", insight.flip_rate()},
          {"leak_suspected", insight.leak_suspected()},
          {"median_wall_ms", insight.median_wall_ms()},
          {"median_peak_rss_kb", insight.median_peak_rss_kb()}};
}

std::string JsonReport(const v1::SuiteReport& report) {
  using json = nlohmann::json;
  const v1::SuiteSummary& s = report.summary();
  json root;
  root["suite_id"] = report.suite_id();
  root["name"] = report.name();
  root["started_at"] = IsoTime(report.started_at_unix_ms());
  root["finished_at"] = IsoTime(report.finished_at_unix_ms());
  root["summary"] = {
      {"total", s.total()},
      {"passed", s.passed()},
      {"failed", s.failed()},
      {"cached", s.cached()},
      {"timed_out", s.timed_out()},
      {"memory_exceeded", s.memory_exceeded()},
      {"flaky", s.flaky()},
      {"errors", s.errors()},
      {"cancelled", s.cancelled()},
      {"skipped", s.skipped()},
      {"wall_ms", s.wall_ms()},
      {"first_failure_ms",
       s.has_first_failure_ms() ? json(s.first_failure_ms()) : json()}};
  json tests = json::array();
  for (const v1::TestResult& r : report.results()) {
    json curve = json::array();
    for (const auto& sample : r.memory_curve()) {
      curve.push_back({sample.offset_ms(), sample.rss_kb()});
    }
    json test = {{"id", r.test_id()},
                 {"status", StatusName(r.status())},
                 {"cached", r.cached()},
                 {"flaky", r.flaky()},
                 {"attempts", r.attempt()},
                 {"worker", r.worker()},
                 {"slot", r.slot()},
                 {"cache_key", r.cache_key()},
                 {"exit_code", r.exit_code()},
                 {"signal", r.signal()},
                 {"wall_ms", r.wall_ms()},
                 {"user_cpu_ms", r.user_cpu_ms()},
                 {"sys_cpu_ms", r.sys_cpu_ms()},
                 {"peak_rss_kb", r.peak_rss_kb()},
                 {"memory_slope_kb_per_s", r.memory_slope_kb_per_s()},
                 {"memory_growing", r.memory_growing()},
                 {"memory_curve", curve},
                 {"started_at", IsoTime(r.started_at_unix_ms())},
                 {"finished_at", IsoTime(r.finished_at_unix_ms())},
                 {"stdout_tail", ValidUtf8(r.stdout_tail())},
                 {"stderr_tail", ValidUtf8(r.stderr_tail())},
                 {"stdout_bytes", r.stdout_bytes()},
                 {"stderr_bytes", r.stderr_bytes()}};
    if (!r.error_message().empty())
      test["error"] = ValidUtf8(r.error_message());
    if (r.outputs_size() > 0) {
      json outputs = json::array();
      for (const v1::OutputFile& output : r.outputs()) {
        outputs.push_back({{"path", ValidUtf8(output.path())},
                           {"sha256", output.sha256()},
                           {"size_bytes", output.size_bytes()}});
      }
      test["outputs"] = std::move(outputs);
    }
    tests.push_back(std::move(test));
  }
  root["tests"] = std::move(tests);
  json regressions = json::array(), improvements = json::array(),
       insights = json::array();
  for (const v1::PerformanceChange& change : report.changes()) {
    (change.kind() == v1::CHANGE_KIND_REGRESSION ? regressions : improvements)
        .push_back(ChangeJson(change));
  }
  for (const v1::TestInsight& insight : report.insights())
    insights.push_back(InsightJson(insight));
  root["regressions"] = std::move(regressions);
  root["improvements"] = std::move(improvements);
  root["insights"] = std::move(insights);
  return root.dump(2) + "\n";
}

namespace {

// The text of an XML attribute value: entities decoded (those GoogleTest
// writes, and numeric ones), anything else kept as written.
std::string XmlText(const std::string& escaped) {
  static const std::pair<const char*, const char*> kNamed[] = {{"&quot;", "\""},
                                                               {"&apos;", "'"},
                                                               {"&lt;", "<"},
                                                               {"&gt;", ">"},
                                                               {"&amp;", "&"}};
  std::string out;
  for (size_t i = 0; i < escaped.size();) {
    bool decoded = false;
    if (escaped[i] == '&') {
      for (const auto& [entity, text] : kNamed) {
        if (escaped.compare(i, strlen(entity), entity) == 0) {
          out += text;
          i += strlen(entity);
          decoded = true;
          break;
        }
      }
      const size_t semicolon = escaped.find(';', i);
      if (!decoded && escaped.compare(i, 2, "&#") == 0 &&
          semicolon != std::string::npos && semicolon - i < 10) {
        const bool hex = escaped[i + 2] == 'x';
        const std::string digits =
            escaped.substr(i + (hex ? 3 : 2), semicolon - i - (hex ? 3 : 2));
        const long code = std::strtol(digits.c_str(), nullptr, hex ? 16 : 10);
        if (code > 0 && code < 128) {
          out += static_cast<char>(code);
          i = semicolon + 1;
          decoded = true;
        }
      }
    }
    if (!decoded) out += escaped[i++];
  }
  return out;
}

}  // namespace

std::vector<GtestCase> ParseGtestXml(const std::string& xml) {
  // GoogleTest writes one <testcase .../> or <testcase ...>...</testcase>
  // per case, attributes quoted with '"' and escaped: a regular language.
  static const std::regex kCase(
      R"(<testcase\s([^>]*?)(/>|>([\s\S]*?)</testcase>))");
  static const std::regex kAttribute(R"re((\w+)="([^"]*)")re");
  std::vector<GtestCase> cases;
  for (std::sregex_iterator it(xml.begin(), xml.end(), kCase), end;
       it != end && cases.size() < 100000; ++it) {
    std::map<std::string, std::string> attributes;
    const std::string text = (*it)[1];
    for (std::sregex_iterator a(text.begin(), text.end(), kAttribute);
         a != std::sregex_iterator(); ++a) {
      attributes[(*a)[1]] = (*a)[2];
    }
    GtestCase& c = cases.emplace_back();
    c.name =
        XmlText(absl::StrCat(attributes["classname"], ".", attributes["name"]));
    // A time that is missing or no duration reads as 0: SimpleAtod leaves
    // its output unspecified on failure, and takes "nan" and "inf".
    if (!absl::SimpleAtod(attributes["time"], &c.seconds) ||
        !std::isfinite(c.seconds) || c.seconds < 0) {
      c.seconds = 0;
    }
    const std::string body = (*it)[3];
    std::smatch failure;
    if (std::regex_search(body, failure,
                          std::regex(R"re(<failure message="([^"]*)")re"))) {
      c.status = v1::TEST_STATUS_FAILED;
      c.message = XmlText(failure[1]);
    } else if (attributes["result"] == "skipped" ||
               body.find("<skipped") != std::string::npos) {
      c.status = v1::TEST_STATUS_SKIPPED;
    }
  }
  return cases;
}

namespace {

// One <testcase> of the JUnit report.
struct JunitCase {
  std::string name;  // escaped
  double seconds = 0;
  v1::TestStatus status = v1::TEST_STATUS_PASSED;
  std::string message;                     // escaped
  const v1::TestResult* result = nullptr;  // tails and failure text
};

std::vector<JunitCase> JunitCases(
    const v1::SuiteReport& report,
    const std::map<std::string, std::vector<GtestCase>>& cases) {
  std::vector<JunitCase> out;
  for (const v1::TestResult& r : report.results()) {
    auto found = cases.find(r.test_id());
    if (found != cases.end() && !found->second.empty()) {
      for (const GtestCase& c : found->second) {
        // A test of one case named as the case (--from-gtest) keeps its id.
        const bool same = found->second.size() == 1 && c.name == r.test_id();
        out.push_back({XmlEscape(same ? r.test_id()
                                      : absl::StrCat(r.test_id(), "/", c.name)),
                       c.seconds, c.status, XmlEscape(c.message), &r});
      }
      continue;
    }
    std::string message = XmlEscape(
        r.error_message().empty()
            ? absl::StrCat(StatusName(r.status()),
                           r.signal() ? " by signal " : " with exit code ",
                           r.signal() ? r.signal() : r.exit_code())
            : r.error_message());
    out.push_back({XmlEscape(r.test_id()), r.wall_ms() / 1000.0, r.status(),
                   std::move(message), &r});
  }
  return out;
}

}  // namespace

std::string JunitReport(
    const v1::SuiteReport& report,
    const std::map<std::string, std::vector<GtestCase>>& gtest_cases) {
  const v1::SuiteSummary& s = report.summary();
  const std::vector<JunitCase> cases = JunitCases(report, gtest_cases);
  int failures = 0, errors = 0, skipped = 0;
  for (const JunitCase& c : cases) {
    if (c.status == v1::TEST_STATUS_ERROR) {
      ++errors;
    } else if (IsFailure(c.status)) {
      ++failures;
    } else if (c.status == v1::TEST_STATUS_SKIPPED ||
               c.status == v1::TEST_STATUS_CANCELLED) {
      ++skipped;
    }
  }
  const int total = static_cast<int>(cases.size());
  std::string name = XmlEscape(report.name());
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  absl::StrAppendFormat(
      &xml,
      "<testsuites name=\"%s\" tests=\"%d\" failures=\"%d\" errors=\"%d\" "
      "skipped=\"%d\" time=\"%.3f\">\n",
      name, total, failures, errors, skipped, s.wall_ms() / 1000.0);
  absl::StrAppendFormat(
      &xml,
      "  <testsuite name=\"%s\" id=\"0\" tests=\"%d\" failures=\"%d\" "
      "errors=\"%d\" skipped=\"%d\" time=\"%.3f\" timestamp=\"%s\" "
      "hostname=\"testfleet\">\n",
      name, total, failures, errors, skipped, s.wall_ms() / 1000.0,
      IsoTime(report.started_at_unix_ms()).substr(0, 19));
  for (const JunitCase& c : cases) {
    const v1::TestResult& r = *c.result;
    absl::StrAppendFormat(
        &xml, "    <testcase name=\"%s\" classname=\"%s\" time=\"%.3f\">\n",
        c.name, name, c.seconds);
    if (c.status == v1::TEST_STATUS_ERROR) {
      absl::StrAppendFormat(
          &xml, "      <error message=\"%s\" type=\"error\"/>\n", c.message);
    } else if (IsFailure(c.status)) {
      absl::StrAppendFormat(
          &xml, "      <failure message=\"%s\" type=\"%s\">%s</failure>\n",
          c.message, StatusName(c.status), XmlEscape(r.stderr_tail()));
    } else if (c.status == v1::TEST_STATUS_SKIPPED ||
               c.status == v1::TEST_STATUS_CANCELLED) {
      absl::StrAppendFormat(
          &xml, "      <skipped message=\"%s\"/>\n",
          c.message.empty() ? StatusName(c.status) : c.message);
    }
    if (!r.stdout_tail().empty()) {
      absl::StrAppend(&xml, "      <system-out>", XmlEscape(r.stdout_tail()),
                      "</system-out>\n");
    }
    if (!r.stderr_tail().empty()) {
      absl::StrAppend(&xml, "      <system-err>", XmlEscape(r.stderr_tail()),
                      "</system-err>\n");
    }
    absl::StrAppend(&xml, "    </testcase>\n");
  }
  absl::StrAppend(&xml, "  </testsuite>\n</testsuites>\n");
  return xml;
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& content) {
  std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) {
      return absl::UnavailableError(
          absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string SummaryText(const v1::SuiteReport& report) {
  const v1::SuiteSummary& s = report.summary();
  std::string text;
  for (const v1::TestResult& r : report.results()) {
    if (!IsFailure(r.status())) continue;
    absl::StrAppendFormat(
        &text, "FAIL %s (%s%s)\n", r.test_id(), StatusName(r.status()),
        r.error_message().empty() ? "" : ": " + r.error_message());
  }
  std::vector<const v1::TestResult*> executed;
  for (const v1::TestResult& r : report.results()) {
    if (!r.cached() && r.status() != v1::TEST_STATUS_CANCELLED)
      executed.push_back(&r);
  }
  std::sort(executed.begin(), executed.end(),
            [](const v1::TestResult* a, const v1::TestResult* b) {
              return a->wall_ms() > b->wall_ms();
            });
  if (!executed.empty()) {
    absl::StrAppend(&text,
                    "slowest tests                 wall ms     CPU ms   peak "
                    "RSS  worker\n");
    for (size_t i = 0; i < std::min<size_t>(5, executed.size()); ++i) {
      const v1::TestResult& r = *executed[i];
      absl::StrAppendFormat(&text, "  %-24s %10.1f %10.1f %6.1f MiB  %s\n",
                            r.test_id(), r.wall_ms(),
                            r.user_cpu_ms() + r.sys_cpu_ms(),
                            r.peak_rss_kb() / 1024.0, r.worker());
    }
  }
  for (const v1::PerformanceChange& change : report.changes()) {
    absl::StrAppend(&text,
                    change.kind() == v1::CHANGE_KIND_REGRESSION ? "REGRESSION "
                                                                : "improved ",
                    ChangeLine(change), "\n");
  }
  absl::StrAppendFormat(&text,
                        "%s: %d tests, %d passed, %d failed, %d timed out, %d "
                        "memory exceeded, %d errors, "
                        "%d cached, %d flaky in %.2f s (suite %s)\n",
                        report.name(), s.total(), s.passed(), s.failed(),
                        s.timed_out(), s.memory_exceeded(), s.errors(),
                        s.cached(), s.flaky(), s.wall_ms() / 1000.0,
                        report.suite_id());
  if (s.has_first_failure_ms()) {
    absl::StrAppendFormat(&text, "first failure %.2f s after submission\n",
                          s.first_failure_ms() / 1000.0);
  }
  // Cancelled tests by reason (fail-fast stops running tests and skips the
  // rest), in the order the reasons first came.
  std::vector<std::pair<std::string, int>> cancelled;
  for (const v1::TestResult& r : report.results()) {
    if (r.status() != v1::TEST_STATUS_CANCELLED) continue;
    auto same = std::find_if(
        cancelled.begin(), cancelled.end(),
        [&](const auto& c) { return c.first == r.error_message(); });
    if (same == cancelled.end()) {
      cancelled.emplace_back(r.error_message(), 1);
    } else {
      ++same->second;
    }
  }
  for (const auto& [reason, count] : cancelled) {
    absl::StrAppendFormat(&text, "%d tests cancelled%s\n", count,
                          reason.empty() ? "" : ": " + reason);
  }
  return text;
}

int ExitCodeOf(const v1::SuiteReport& report) {
  for (const v1::TestResult& r : report.results()) {
    if (IsFailure(r.status())) return 1;
  }
  return report.summary().done() == report.summary().total() &&
                 report.state() == v1::SUITE_STATE_FINISHED
             ? 0
             : 1;
}

}  // namespace testfleet
