#include "coordinator/perf_analysis.h"

#include <random>

#include "gtest/gtest.h"

namespace testfleet {
namespace {

// `n` durations around `center` with normal noise of `noise` (relative).
std::vector<double> Samples(std::mt19937& random, int n, double center,
                            double noise) {
  std::normal_distribution<double> dist(center, center * noise);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(std::max(0.1, dist(random)));
  return out;
}

TEST(MannWhitneyTest, ExactTailsMatchCountedArrangements) {
  // All of current above all of baseline: 1 arrangement of C(6,3) = 20.
  EXPECT_NEAR(MannWhitneyPGreater({1, 2, 3}, {4, 5, 6}), 1.0 / 20, 1e-12);
  EXPECT_NEAR(MannWhitneyPGreater({1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}), 1.0 / 252,
              1e-12);
  // Interleaved: no evidence either way.
  EXPECT_GT(MannWhitneyPGreater({1, 3, 5}, {2, 4, 6}), 0.3);
  EXPECT_NEAR(MannWhitneyPGreater({4, 5, 6}, {1, 2, 3}), 1.0, 1e-12);
  EXPECT_EQ(MannWhitneyPGreater({}, {1}), 1);
}

TEST(MannWhitneyTest, TiesUseTheCorrectedNormalApproximation) {
  // Peak memory is often identical run to run.
  EXPECT_LT(MannWhitneyPGreater({3000, 3000, 3000, 3000, 3000},
                                {4000, 4000, 4000, 4000, 4000}),
            0.01);
  EXPECT_EQ(MannWhitneyPGreater({3000, 3000, 3000}, {3000, 3000, 3000}), 1);
}

TEST(CompareRunsTest, ThirtyPercentSlowdownWithFivePercentNoiseIsDetected) {
  for (int seed = 0; seed < 100; ++seed) {
    std::mt19937 random(seed);
    const std::vector<double> baseline = Samples(random, 10, 100, 0.05);
    const std::vector<double> current = Samples(random, 10, 130, 0.05);
    const Comparison c = CompareRuns(baseline, current);
    ASSERT_EQ(c.kind, v1::CHANGE_KIND_REGRESSION) << "seed " << seed;
    EXPECT_NEAR(c.ratio, 1.3, 0.1);
    EXPECT_LT(c.p_value, 0.001);
  }
}

TEST(CompareRunsTest, FivePercentChangeIsBelowTheTolerance) {
  for (int seed = 0; seed < 100; ++seed) {
    std::mt19937 random(seed);
    const Comparison c = CompareRuns(Samples(random, 10, 100, 0.05),
                                     Samples(random, 10, 105, 0.05));
    EXPECT_EQ(c.kind, v1::CHANGE_KIND_UNSPECIFIED) << "seed " << seed;
  }
}

TEST(CompareRunsTest, ASingleOutlierDoesNotAlarm) {
  std::mt19937 random(7);
  std::vector<double> baseline = Samples(random, 10, 100, 0.05);
  std::vector<double> current = Samples(random, 5, 100, 0.05);
  current[2] = 400;  // one run on a busy machine
  EXPECT_EQ(CompareRuns(baseline, current).kind, v1::CHANGE_KIND_UNSPECIFIED);
  // Nor does one or two slow runs on their own.
  EXPECT_EQ(CompareRuns(baseline, {400}).kind, v1::CHANGE_KIND_UNSPECIFIED);
  EXPECT_EQ(CompareRuns(baseline, {400, 410}).kind,
            v1::CHANGE_KIND_UNSPECIFIED);
  // An outlier in the baseline does not make an improvement either.
  baseline[0] = 1000;
  EXPECT_EQ(CompareRuns(baseline, Samples(random, 5, 100, 0.05)).kind,
            v1::CHANGE_KIND_UNSPECIFIED);
}

TEST(CompareRunsTest, SpeedupsAreImprovements) {
  std::mt19937 random(3);
  const Comparison c =
      CompareRuns(Samples(random, 10, 100, 0.05), Samples(random, 5, 60, 0.05));
  EXPECT_EQ(c.kind, v1::CHANGE_KIND_IMPROVEMENT);
  EXPECT_NEAR(c.ratio, 0.6, 0.06);
}

TEST(CompareRunsTest, FalseAlarmsStayUnderFivePercentOfNullTrials) {
  // Same distribution on both sides, with heavy-tailed noise: log-normal
  // with 25% spread, the usual shape of test durations on shared machines.
  std::mt19937 random(20261123);
  std::lognormal_distribution<double> noisy(std::log(100.0), 0.25);
  int alarms = 0, significant = 0;
  RegressionRule any_change;  // the test alone, no tolerance, at 5%
  any_change.tolerance = 0;
  any_change.alpha = 0.05;
  for (int trial = 0; trial < 1000; ++trial) {
    std::vector<double> baseline, current;
    for (int i = 0; i < 20; ++i) baseline.push_back(noisy(random));
    for (int i = 0; i < 5; ++i) current.push_back(noisy(random));
    alarms +=
        CompareRuns(baseline, current).kind != v1::CHANGE_KIND_UNSPECIFIED;
    significant += CompareRuns(baseline, current, any_change).kind ==
                   v1::CHANGE_KIND_REGRESSION;
  }
  EXPECT_LT(alarms, 50);  // regressions and improvements together
  // The one-sided test alone keeps its level: about alpha = 5%.
  EXPECT_GT(significant, 30);
  EXPECT_LT(significant, 70);
}

TEST(TrendTest, RisingSeriesDegradesFlatSeriesIsStable) {
  std::mt19937 random(11);
  std::vector<double> rising, flat = Samples(random, 30, 100, 0.05);
  for (int i = 0; i < 30; ++i) rising.push_back(100 + 2 * i + flat[i] - 100);
  const Trend up = TrendOf(rising);
  EXPECT_EQ(up.direction, v1::TREND_DIRECTION_DEGRADING);
  EXPECT_NEAR(up.slope_per_run, 2, 0.5);
  EXPECT_LT(up.p_value, 0.001);
  EXPECT_EQ(TrendOf(flat).direction, v1::TREND_DIRECTION_STABLE);
  std::vector<double> falling(rising.rbegin(), rising.rend());
  EXPECT_EQ(TrendOf(falling).direction, v1::TREND_DIRECTION_IMPROVING);
  EXPECT_EQ(TrendOf({1, 2, 3}).direction, v1::TREND_DIRECTION_STABLE);
}

v1::RunRecord MakeRun(int64_t at, double wall_ms,
                      v1::TestStatus status = v1::TEST_STATUS_PASSED,
                      uint64_t key = 1, int64_t rss_kb = 3000) {
  v1::RunRecord run;
  run.set_finished_at_unix_ms(at);
  run.set_wall_ms(wall_ms);
  run.set_peak_rss_kb(rss_kb);
  run.set_status(status);
  run.set_key_prefix(key);
  return run;
}

TEST(FlakinessTest, FlipsCountOnlyWithinOneActionKey) {
  v1::TestHistory history;
  *history.add_runs() = MakeRun(1, 10, v1::TEST_STATUS_PASSED, 1);
  *history.add_runs() = MakeRun(2, 10, v1::TEST_STATUS_FAILED, 1);
  *history.add_runs() = MakeRun(3, 10, v1::TEST_STATUS_PASSED, 1);
  *history.add_runs() = MakeRun(4, 10, v1::TEST_STATUS_PASSED, 1);
  EXPECT_NEAR(FlipRate(history), 2.0 / 3, 1e-9);
  // A failure after a change of inputs is a real failure, not a flip.
  v1::TestHistory changed;
  *changed.add_runs() = MakeRun(1, 10, v1::TEST_STATUS_PASSED, 1);
  *changed.add_runs() = MakeRun(2, 10, v1::TEST_STATUS_FAILED, 2);
  *changed.add_runs() = MakeRun(3, 10, v1::TEST_STATUS_ERROR, 2);
  EXPECT_EQ(FlipRate(changed), 0);
}

TEST(LeakTest, SustainedGrowthIsSuspectedOneGrowingRunIsNot) {
  v1::TestHistory history;
  for (int i = 0; i < 5; ++i) {
    v1::RunRecord& run = *history.add_runs() = MakeRun(i, 10);
    run.set_memory_growing(i == 2);
    run.set_memory_slope_kb_per_s(i == 2 ? 500 : 0);
  }
  EXPECT_FALSE(LeakSuspected(history));
  for (v1::RunRecord& run : *history.mutable_runs()) {
    run.set_memory_growing(true);
    run.set_memory_slope_kb_per_s(500);
  }
  EXPECT_TRUE(LeakSuspected(history));
}

TEST(AnalyzeHistoryTest, StepFromHundredToHundredFiftyIsARegression) {
  v1::TestHistory history;
  for (int i = 0; i < 10; ++i)
    *history.add_runs() = MakeRun(i, i < 5 ? 100 : 150);
  const TestAnalysis analysis = AnalyzeHistory("probe", history, nullptr);
  ASSERT_EQ(analysis.changes.size(), 1u);
  const v1::PerformanceChange& change = analysis.changes[0];
  EXPECT_EQ(change.metric(), v1::METRIC_WALL_TIME);
  EXPECT_EQ(change.kind(), v1::CHANGE_KIND_REGRESSION);
  EXPECT_DOUBLE_EQ(change.baseline_median(), 100);
  EXPECT_DOUBLE_EQ(change.current_median(), 150);
  EXPECT_EQ(change.baseline_runs(), 5);
  EXPECT_EQ(change.current_runs(), 5);
  EXPECT_EQ(change.baseline(), "rolling");
  EXPECT_EQ(change.recent_size(), 10);

  // A failing newest run gets no verdict on its speed.
  *history.add_runs() = MakeRun(10, 150, v1::TEST_STATUS_FAILED);
  EXPECT_TRUE(AnalyzeHistory("probe", history, nullptr).changes.empty());
}

TEST(AnalyzeHistoryTest, PinnedBaselineStaysPutAsRunsGoBy) {
  v1::TestHistory history;
  for (int i = 0; i < 5; ++i) *history.add_runs() = MakeRun(i, 100);
  v1::Baseline pin;
  pin.set_suite_id("s-4");
  pin.set_until_unix_ms(4);
  // Twenty slow runs: a rolling baseline would have moved onto them.
  for (int i = 5; i < 25; ++i) *history.add_runs() = MakeRun(i, 150);
  EXPECT_TRUE(AnalyzeHistory("t", history, nullptr).changes.empty());
  const TestAnalysis pinned = AnalyzeHistory("t", history, &pin);
  ASSERT_EQ(pinned.changes.size(), 1u);
  EXPECT_EQ(pinned.changes[0].baseline(), "s-4");
  EXPECT_EQ(pinned.changes[0].baseline_runs(), 5);
}

}  // namespace
}  // namespace testfleet
