#include "report/reports.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "report/html_report.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::SuiteReport SampleReport() {
  v1::SuiteReport report;
  report.set_suite_id("s-1");
  report.set_name("example");
  report.set_state(v1::SUITE_STATE_FINISHED);
  report.set_started_at_unix_ms(1700000000000);
  report.set_finished_at_unix_ms(1700000001234);
  v1::SuiteSummary* s = report.mutable_summary();
  s->set_total(2);
  s->set_done(2);
  s->set_passed(1);
  s->set_failed(1);
  s->set_cached(1);
  s->set_wall_ms(1234);
  v1::TestResult* ok = report.add_results();
  ok->set_test_id("math.add");
  ok->set_status(v1::TEST_STATUS_PASSED);
  ok->set_cached(true);
  ok->set_attempt(1);
  ok->set_worker("w1");
  ok->set_wall_ms(12.5);
  ok->set_peak_rss_kb(3412);
  ok->set_cache_key(std::string(64, 'a'));
  ok->set_started_at_unix_ms(1700000000100);
  ok->set_finished_at_unix_ms(1700000000112);
  v1::TestResult* bad = report.add_results();
  bad->set_test_id("io.<weird>&\"id\"");
  bad->set_status(v1::TEST_STATUS_FAILED);
  bad->set_exit_code(1);
  bad->set_attempt(1);
  bad->set_worker("w2");
  bad->set_stderr_tail(std::string("bell\x07 esc\x1b nul") + '\0' +
                       " bad-utf8 \xff\xfe end");
  bad->set_stdout_tail("ok ]]> <tag>");
  return report;
}

TEST(ReportsTest, JsonHasTheContractFields) {
  auto root = nlohmann::json::parse(JsonReport(SampleReport()));
  EXPECT_EQ(root["suite_id"], "s-1");
  EXPECT_EQ(root["name"], "example");
  EXPECT_EQ(root["started_at"], "2023-11-14T22:13:20.000Z");
  for (const char* field : {"total", "passed", "failed", "cached", "timed_out",
                            "memory_exceeded", "flaky", "wall_ms"}) {
    EXPECT_TRUE(root["summary"].contains(field)) << field;
  }
  const auto& test = root["tests"][0];
  for (const char* field :
       {"id", "status", "cached", "attempts", "worker", "cache_key",
        "exit_code", "signal", "wall_ms", "user_cpu_ms", "sys_cpu_ms",
        "peak_rss_kb", "started_at", "finished_at", "stdout_tail",
        "stderr_tail"}) {
    EXPECT_TRUE(test.contains(field)) << field;
  }
  EXPECT_EQ(test["status"], "passed");
  EXPECT_EQ(test["peak_rss_kb"], 3412);
  EXPECT_EQ(root["tests"][1]["status"], "failed");
  // Invalid UTF-8 from a test's output still gives valid JSON.
  EXPECT_THAT(root["tests"][1]["stderr_tail"].get<std::string>(),
              HasSubstr("\xEF\xBF\xBD"));
}

TEST(ReportsTest, JunitEscapesEverythingXmlCannotCarry) {
  std::string xml = JunitReport(SampleReport());
  EXPECT_THAT(
      xml,
      HasSubstr("<testsuites name=\"example\" tests=\"2\" failures=\"1\""));
  EXPECT_THAT(
      xml, HasSubstr("<testcase name=\"io.&lt;weird&gt;&amp;&quot;id&quot;\""));
  EXPECT_THAT(xml, HasSubstr("time=\"0.013\""));
  EXPECT_THAT(
      xml,
      HasSubstr(
          "<failure message=\"failed with exit code 1\" type=\"failed\">"));
  EXPECT_THAT(xml, HasSubstr("bell\\x07 esc\\x1b nul\\x00 bad-utf8"));
  EXPECT_THAT(xml, HasSubstr("<system-out>ok ]]&gt; &lt;tag&gt;</system-out>"));
  for (char c : xml) {
    unsigned char u = static_cast<unsigned char>(c);
    EXPECT_TRUE(u >= 0x20 || c == '\n' || c == '\t' || c == '\r')
        << "raw control " << int(u);
  }
  EXPECT_THAT(xml, Not(HasSubstr("\xff")));
}

TEST(ReportsTest, ExitCodeFollowsTheContract) {
  v1::SuiteReport report = SampleReport();
  EXPECT_EQ(ExitCodeOf(report), 1);
  report.mutable_results(1)->set_status(v1::TEST_STATUS_PASSED);
  EXPECT_EQ(ExitCodeOf(report), 0);
  report.mutable_results(1)->set_status(v1::TEST_STATUS_MEMORY_EXCEEDED);
  EXPECT_EQ(ExitCodeOf(report), 1);
  report.mutable_results(1)->set_status(v1::TEST_STATUS_PASSED);
  report.set_state(v1::SUITE_STATE_CANCELLED);
  EXPECT_EQ(ExitCodeOf(report), 1);
}

TEST(ReportsTest, HtmlIsSelfContained) {
  std::string html = HtmlReport(SampleReport());
  EXPECT_THAT(html, HasSubstr("<svg"));
  EXPECT_THAT(html, HasSubstr("Failures"));
  EXPECT_THAT(html, HasSubstr("50.0%"));  // cache hit ratio
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("src=\"http")));
  EXPECT_THAT(html, Not(HasSubstr("<weird>")));
  EXPECT_THAT(html, HasSubstr("io.&lt;weird&gt;"));  // the failure is there
}

TEST(ReportsTest, SummaryNamesFailuresAndCounts) {
  std::string text = SummaryText(SampleReport());
  EXPECT_THAT(text, HasSubstr("FAIL io.<weird>"));
  EXPECT_THAT(text, HasSubstr("example: 2 tests, 1 passed, 1 failed"));
  EXPECT_THAT(text, HasSubstr("1 cached"));
}

TEST(ReportsTest, RegressionsAndImprovementsReachEveryFormat) {
  v1::SuiteReport report = SampleReport();
  v1::PerformanceChange* slower = report.add_changes();
  slower->set_test_id("math.add");
  slower->set_metric(v1::METRIC_WALL_TIME);
  slower->set_kind(v1::CHANGE_KIND_REGRESSION);
  slower->set_baseline_median(100);
  slower->set_current_median(150);
  slower->set_ratio(1.5);
  slower->set_p_value(0.004);
  slower->set_baseline_runs(5);
  slower->set_current_runs(5);
  slower->set_tolerance(0.2);
  slower->set_baseline("rolling");
  for (double v : {100, 101, 150, 151}) slower->add_recent(v);
  v1::PerformanceChange* smaller = report.add_changes();
  smaller->set_test_id("io.read");
  smaller->set_metric(v1::METRIC_PEAK_MEMORY);
  smaller->set_kind(v1::CHANGE_KIND_IMPROVEMENT);
  smaller->set_ratio(0.5);
  v1::TestInsight* insight = report.add_insights();
  insight->set_test_id("io.flaky");
  insight->set_flip_rate(0.25);
  insight->set_trend(v1::TREND_DIRECTION_DEGRADING);

  const auto json = nlohmann::json::parse(JsonReport(report));
  ASSERT_EQ(json["regressions"].size(), 1u);
  EXPECT_EQ(json["regressions"][0]["id"], "math.add");
  EXPECT_EQ(json["regressions"][0]["unit"], "ms");
  EXPECT_DOUBLE_EQ(json["regressions"][0]["change_pct"].get<double>(), 50);
  ASSERT_EQ(json["improvements"].size(), 1u);
  EXPECT_EQ(json["improvements"][0]["metric"], "peak_memory");
  EXPECT_EQ(json["insights"][0]["trend"], "degrading");
  EXPECT_EQ(RegressionCount(report), 1);

  EXPECT_THAT(SummaryText(report),
              HasSubstr("REGRESSION math.add wall_time +50.0% (100.0 -> 150.0 "
                        "ms, p=0.004, 5 vs 5 runs, baseline rolling)"));
  const std::string html = HtmlReport(report);
  EXPECT_THAT(html, HasSubstr("<h2>Regressions and improvements</h2>"));
  EXPECT_THAT(html, HasSubstr("<polyline"));
  EXPECT_THAT(html, HasSubstr("1 tests flip between pass and fail"));
}

}  // namespace
}  // namespace testfleet

namespace testfleet {
namespace {

// What GoogleTest 1.12 writes for --gtest_output=xml, trimmed.
constexpr char kGtestXml[] = R"(<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="1" disabled="0" errors="0" time="0.01" name="AllTests">
  <testsuite name="Math" tests="3" failures="1" disabled="0" skipped="1" errors="0" time="0.01">
    <testcase name="Adds" status="run" result="completed" time="0.001" timestamp="2026-11-27T16:00:00.000" classname="Math" />
    <testcase name="Broken" status="run" result="completed" time="0.002" timestamp="2026-11-27T16:00:00.001" classname="Math">
      <failure message="x.cc:10&#x0A;Expected equality &lt;4&gt; &quot;a&quot;" type=""><![CDATA[x.cc:10
Expected equality]]></failure>
    </testcase>
    <testcase name="Later" status="run" result="skipped" time="0" timestamp="2026-11-27T16:00:00.003" classname="Math">
      <skipped message="x.cc:20&#x0A;"><![CDATA[x.cc:20]]></skipped>
    </testcase>
  </testsuite>
</testsuites>
)";

TEST(GtestXmlTest, EveryCaseWithItsOutcome) {
  const std::vector<GtestCase> cases = ParseGtestXml(kGtestXml);
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_EQ(cases[0].name, "Math.Adds");
  EXPECT_EQ(cases[0].status, v1::TEST_STATUS_PASSED);
  EXPECT_DOUBLE_EQ(cases[0].seconds, 0.001);
  EXPECT_EQ(cases[1].status, v1::TEST_STATUS_FAILED);
  EXPECT_EQ(cases[1].message, "x.cc:10\nExpected equality <4> \"a\"");
  EXPECT_EQ(cases[2].status, v1::TEST_STATUS_SKIPPED);
  EXPECT_TRUE(ParseGtestXml("not xml at all").empty());
}

TEST(GtestXmlTest, ATimeThatIsNoDurationReadsAsZero) {
  for (const char* time : {"", " time=\"nan\"", " time=\"inf\"", " time=\"-1\"",
                           " time=\"soon\""}) {
    const std::vector<GtestCase> cases = ParseGtestXml(
        absl::StrCat("<testcase name=\"A\" classname=\"S\"", time, " />"));
    ASSERT_EQ(cases.size(), 1u) << time;
    EXPECT_EQ(cases[0].seconds, 0) << time;
  }
}

TEST(GtestXmlTest, JunitShowsEachCaseOfABinaryRunAsOneTest) {
  v1::SuiteReport report;
  report.set_name("suite");
  v1::TestResult* whole = report.add_results();
  whole->set_test_id("all_math");
  whole->set_status(v1::TEST_STATUS_FAILED);
  v1::TestResult* single = report.add_results();
  single->set_test_id("Math.Adds");
  single->set_status(v1::TEST_STATUS_PASSED);
  std::map<std::string, std::vector<GtestCase>> cases = {
      {"all_math", ParseGtestXml(kGtestXml)},
      {"Math.Adds", {ParseGtestXml(kGtestXml)[0]}}};
  const std::string xml = JunitReport(report, cases);
  EXPECT_THAT(xml,
              ::testing::HasSubstr(
                  "tests=\"4\" failures=\"1\" errors=\"0\" skipped=\"1\""));
  EXPECT_THAT(xml, ::testing::HasSubstr("name=\"all_math/Math.Adds\""));
  EXPECT_THAT(xml, ::testing::HasSubstr("name=\"all_math/Math.Broken\""));
  EXPECT_THAT(xml, ::testing::HasSubstr(
                       "message=\"x.cc:10\nExpected equality &lt;4&gt; "
                       "&quot;a&quot;\""));
  // A test of one case named as the case keeps its own name.
  EXPECT_THAT(xml, ::testing::HasSubstr("<testcase name=\"Math.Adds\""));
}

}  // namespace
}  // namespace testfleet
