#include "report/html_report.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/units.h"
#include "report/reports.h"

namespace testfleet {
namespace {

const char* Color(const v1::TestResult& r) {
  if (r.status() == v1::TEST_STATUS_PASSED)
    return r.cached() ? "#9ecae1" : "#31a354";
  if (r.status() == v1::TEST_STATUS_CANCELLED ||
      r.status() == v1::TEST_STATUS_SKIPPED) {
    return "#bdbdbd";
  }
  return "#de2d26";
}

// Gantt chart: one lane per worker slot, executed tests as bars; cached tests
// took no slot time and are listed in the summary instead.
std::string Timeline(const v1::SuiteReport& report) {
  std::map<std::string, std::vector<const v1::TestResult*>> lanes;
  int64_t t0 = INT64_MAX, t1 = 0;
  for (const v1::TestResult& r : report.results()) {
    if (r.cached() || r.worker().empty()) continue;
    lanes[absl::StrCat(r.worker(), "/", r.slot())].push_back(&r);
    t0 = std::min(t0, r.started_at_unix_ms());
    t1 = std::max(t1, r.finished_at_unix_ms());
  }
  if (lanes.empty())
    return "<p>No test ran on a worker: every result came from the cache.</p>";
  const double width = 1000, lane_height = 18, left = 120;
  const double span = std::max<int64_t>(t1 - t0, 1);
  const double height = lane_height * static_cast<double>(lanes.size()) + 24;
  std::string svg = absl::StrFormat(
      // Scales to the page width; the view box keeps the drawing units.
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
      "width=\"100%%\" class=\"timeline\">",
      width + left + 10, height);
  int lane = 0;
  for (const auto& [name, tests] : lanes) {
    const double y = lane * lane_height;
    absl::StrAppendFormat(&svg,
                          "<text x=\"0\" y=\"%.0f\" font-size=\"11\">%s</text>",
                          y + 13, XmlEscape(name));
    for (const v1::TestResult* r : tests) {
      const double x =
          left +
          width * static_cast<double>(r->started_at_unix_ms() - t0) / span;
      const double w =
          std::max(1.0, width *
                            static_cast<double>(r->finished_at_unix_ms() -
                                                r->started_at_unix_ms()) /
                            span);
      absl::StrAppendFormat(
          &svg,
          "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" "
          "fill=\"%s\" stroke=\"#fff\" stroke-width=\"0.5\"><title>%s %s %.0f "
          "ms</title></rect>",
          x, y + 2, w, lane_height - 4, Color(*r), XmlEscape(r->test_id()),
          StatusName(r->status()), r->wall_ms());
    }
    ++lane;
  }
  absl::StrAppendFormat(
      &svg,
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">0 s</text>"
      "<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" "
      "text-anchor=\"end\">%.2f s</text></svg>",
      left, height - 4, left + width, height - 4, span / 1000.0);
  return svg;
}

std::string MemoryCurves(const std::vector<const v1::TestResult*>& heaviest) {
  int64_t max_kb = 1, max_ms = 1;
  for (const v1::TestResult* r : heaviest) {
    for (const auto& s : r->memory_curve()) {
      max_kb = std::max(max_kb, s.rss_kb());
      max_ms = std::max(max_ms, s.offset_ms());
    }
  }
  static const char* kColors[] = {"#e6550d", "#3182bd", "#31a354", "#756bb1",
                                  "#636363"};
  const double w = 600, h = 200;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
      "height=\"%.0f\">"
      "<rect width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#ccc\"/>",
      w + 220, h + 20, w, h);
  int i = 0;
  for (const v1::TestResult* r : heaviest) {
    if (r->memory_curve_size() < 2) continue;
    std::string points;
    for (const auto& s : r->memory_curve()) {
      absl::StrAppendFormat(
          &points, "%.1f,%.1f ",
          w * static_cast<double>(s.offset_ms()) / static_cast<double>(max_ms),
          h - h * static_cast<double>(s.rss_kb()) /
                  static_cast<double>(max_kb));
    }
    absl::StrAppendFormat(
        &svg,
        "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
        "points=\"%s\"/><text x=\"%.0f\" y=\"%d\" font-size=\"11\" "
        "fill=\"%s\">%s</text>",
        kColors[i % 5], points, w + 8, 14 + 14 * i, kColors[i % 5],
        XmlEscape(r->test_id()));
    ++i;
  }
  absl::StrAppendFormat(
      &svg,
      "<text x=\"4\" y=\"%.0f\" font-size=\"11\">%.1f MiB, %.1f s</text></svg>",
      h + 14, static_cast<double>(max_kb) / 1024.0,
      static_cast<double>(max_ms) / 1000.0);
  return i == 0 ? "<p>No test ran long enough to sample its memory.</p>" : svg;
}

// A small trend chart of a metric over recent runs; the last point (this
// run's window) in the change's colour.
std::string Sparkline(const v1::PerformanceChange& change) {
  const int n = change.recent_size();
  if (n < 2) return "";
  double low = change.recent(0), high = change.recent(0);
  for (double v : change.recent()) {
    low = std::min(low, v);
    high = std::max(high, v);
  }
  if (high <= low) high = low + 1;
  const double w = 160, h = 32;
  std::string points;
  for (int i = 0; i < n; ++i) {
    absl::StrAppendFormat(
        &points, "%.1f,%.1f ", w * i / (n - 1),
        h - 2 - (h - 4) * (change.recent(i) - low) / (high - low));
  }
  const char* color =
      change.kind() == v1::CHANGE_KIND_REGRESSION ? "#de2d26" : "#31a354";
  return absl::StrFormat(
      "<svg width=\"%.0f\" height=\"%.0f\"><polyline fill=\"none\" "
      "stroke=\"%s\" stroke-width=\"1.5\" points=\"%s\"/></svg>",
      w, h, color, points);
}

std::string ChangesSection(const v1::SuiteReport& report) {
  std::string html =
      "<h2>Regressions and improvements</h2><p>Against each test's baseline "
      "(its earlier runs, or a pinned one): a change beyond the tolerance "
      "that a one-sided Mann-Whitney U test finds significant (p &lt; "
      "0.01).</p>";
  if (report.changes_size() == 0) html += "<p>None.</p>";
  if (report.changes_size() > 0) {
    html +=
        "<table><tr><th></th><th>test</th><th>metric</th><th>baseline</th>"
        "<th>now</th><th>change</th><th>p</th><th>runs</th><th>recent "
        "runs</th></tr>";
  }
  for (const v1::PerformanceChange& change : report.changes()) {
    const bool regression = change.kind() == v1::CHANGE_KIND_REGRESSION;
    absl::StrAppendFormat(
        &html,
        "<tr><td class=\"%s\">%s</td><td>%s</td><td>%s</td>"
        "<td class=\"num\">%.1f %s</td><td class=\"num\">%.1f %s</td>"
        "<td class=\"num\">%+.1f%%</td><td class=\"num\">%.3g</td>"
        "<td class=\"num\">%d vs %d</td><td>%s</td></tr>",
        regression ? "bad" : "", regression ? "regression" : "improvement",
        XmlEscape(change.test_id()), MetricName(change.metric()),
        change.baseline_median(), MetricUnit(change.metric()),
        change.current_median(), MetricUnit(change.metric()),
        (change.ratio() - 1) * 100, change.p_value(), change.baseline_runs(),
        change.current_runs(), Sparkline(change));
  }
  if (report.changes_size() > 0) html += "</table>";
  int flaky = 0, leaks = 0;
  for (const v1::TestInsight& insight : report.insights()) {
    flaky += insight.flip_rate() > 0;
    leaks += insight.leak_suspected();
  }
  if (flaky + leaks > 0) {
    absl::StrAppendFormat(&html,
                          "<p>%d tests flip between pass and fail on the same "
                          "inputs; %d look like they leak memory (see the "
                          "JSON report's insights).</p>",
                          flaky, leaks);
  }
  return html;
}

// A path as a relative URL: every byte but unreserved ones and '/' escaped.
std::string UrlPath(const std::string& path) {
  std::string url;
  for (unsigned char c : path) {
    if (absl::ascii_isalnum(c) || c == '/' || c == '.' || c == '-' ||
        c == '_' || c == '~') {
      url += static_cast<char>(c);
    } else {
      absl::StrAppendFormat(&url, "%%%02X", c);
    }
  }
  return url;
}

std::string OutputsSection(const v1::SuiteReport& report,
                           const std::string& link) {
  std::string rows;
  for (const v1::TestResult& r : report.results()) {
    for (const v1::OutputFile& output : r.outputs()) {
      const std::string shown = XmlEscape(output.path());
      const std::string name =
          link.empty()
              ? shown
              : absl::StrFormat("<a href=\"%s\">%s</a>",
                                XmlEscape(UrlPath(absl::StrCat(
                                    link, "/", SafeFileName(r.test_id()), "/",
                                    output.path()))),
                                shown);
      absl::StrAppendFormat(
          &rows,
          "<tr><td>%s</td><td>%s</td><td class=\"num\">%s</td>"
          "<td><code>%s</code></td></tr>",
          XmlEscape(r.test_id()), name, FormatSize(output.size_bytes()),
          output.sha256().substr(0, 12));
    }
  }
  if (rows.empty()) return "";
  return absl::StrCat(
      "<h2>Outputs</h2><table><tr><th>test</th><th>file</th><th>size</th>"
      "<th>sha256</th></tr>",
      rows, "</table>");
}

}  // namespace

std::string HtmlReport(const v1::SuiteReport& report,
                       const std::string& outputs_link) {
  const v1::SuiteSummary& s = report.summary();
  std::string html = absl::StrFormat(
      "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Testfleet: "
      "%s</title>"
      "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
      "collapse}"
      "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}"
      "pre{background:#f6f6f6;padding:6px;max-height:20em;overflow:auto}"
      ".bad{color:#de2d26}.num{text-align:right}</style></head><body>",
      XmlEscape(report.name()));
  const int failed = FailedCount(s);
  const double hit_ratio = s.total() ? 100.0 * s.cached() / s.total() : 0;
  absl::StrAppendFormat(
      &html,
      "<h1>%s</h1><p>Suite <code>%s</code>: <b>%d</b> tests, <b>%d</b> passed, "
      "<b class=\"%s\">%d</b> failed (%d timed out, %d over memory, %d "
      "errors), %d flaky, "
      "%d cached (<b>%.1f%%</b> cache hit ratio), wall time %.2f s%s.</p>",
      XmlEscape(report.name()), XmlEscape(report.suite_id()), s.total(),
      s.passed(), failed ? "bad" : "", failed, s.timed_out(),
      s.memory_exceeded(), s.errors(), s.flaky(), s.cached(), hit_ratio,
      s.wall_ms() / 1000.0,
      s.has_first_failure_ms() ? absl::StrFormat(", first failure after %.2f s",
                                                 s.first_failure_ms() / 1000.0)
                               : "");

  html += "<h2>Failures</h2>";
  int failures = 0;
  for (const v1::TestResult& r : report.results()) {
    if (!IsFailure(r.status())) continue;
    ++failures;
    absl::StrAppendFormat(&html, "<h3 class=\"bad\">%s: %s</h3><p>%s</p>",
                          XmlEscape(r.test_id()), StatusName(r.status()),
                          XmlEscape(r.error_message()));
    if (!r.stdout_tail().empty()) {
      absl::StrAppend(&html, "<p>stdout (tail)</p><pre>",
                      XmlEscape(r.stdout_tail()), "</pre>");
    }
    if (!r.stderr_tail().empty()) {
      absl::StrAppend(&html, "<p>stderr (tail)</p><pre>",
                      XmlEscape(r.stderr_tail()), "</pre>");
    }
  }
  if (failures == 0) html += "<p>None.</p>";
  html += ChangesSection(report);
  html += OutputsSection(report, outputs_link);

  html +=
      "<h2>Timeline of worker slots</h2><p>Green passed, red failed; hover for "
      "details.</p>";
  html += Timeline(report);
  if (s.cached() > 0) {
    absl::StrAppendFormat(
        &html,
        "<p>%d tests were answered from the cache and took no worker slot; "
        "their figures in the tables are those of the run that produced "
        "them.</p>",
        s.cached());
  }

  std::vector<const v1::TestResult*> executed;
  for (const v1::TestResult& r : report.results()) {
    if (!r.cached()) executed.push_back(&r);
  }
  auto by = [&](auto key) {
    std::vector<const v1::TestResult*> sorted = executed;
    std::sort(sorted.begin(), sorted.end(),
              [&](const v1::TestResult* a, const v1::TestResult* b) {
                return key(a) > key(b);
              });
    if (sorted.size() > 15) sorted.resize(15);
    return sorted;
  };
  html +=
      "<h2>Slowest tests</h2><table><tr><th>test</th><th>wall ms</th><th>user "
      "CPU ms</th>"
      "<th>sys CPU ms</th><th>worker</th></tr>";
  for (const v1::TestResult* r :
       by([](const v1::TestResult* r) { return r->wall_ms(); })) {
    absl::StrAppendFormat(
        &html,
        "<tr><td>%s</td><td class=\"num\">%.1f</td><td class=\"num\">%.1f</td>"
        "<td class=\"num\">%.1f</td><td>%s</td></tr>",
        XmlEscape(r->test_id()), r->wall_ms(), r->user_cpu_ms(),
        r->sys_cpu_ms(), XmlEscape(r->worker()));
  }
  html += "</table>";

  auto heaviest = by([](const v1::TestResult* r) { return r->peak_rss_kb(); });
  html +=
      "<h2>Peak memory</h2><table><tr><th>test</th><th>peak RSS</th><th></th>"
      "<th>slope KiB/s</th></tr>";
  const int64_t max_peak =
      heaviest.empty() ? 1 : std::max<int64_t>(1, heaviest[0]->peak_rss_kb());
  for (const v1::TestResult* r : heaviest) {
    absl::StrAppendFormat(
        &html,
        "<tr><td>%s</td><td class=\"num\">%.1f MiB</td><td><svg width=\"200\" "
        "height=\"10\"><rect width=\"%.0f\" height=\"10\" fill=\"#e6550d\"/>"
        "</svg></td><td class=\"num\">%.1f</td></tr>",
        XmlEscape(r->test_id()), r->peak_rss_kb() / 1024.0,
        200.0 * static_cast<double>(r->peak_rss_kb()) /
            static_cast<double>(max_peak),
        r->memory_slope_kb_per_s());
  }
  html += "</table><h3>Memory curves of the heaviest tests</h3>";
  if (heaviest.size() > 5) heaviest.resize(5);
  html += MemoryCurves(heaviest);
  html += "</body></html>\n";
  return html;
}

}  // namespace testfleet
