#pragma once

#include <optional>
#include <string>
#include <vector>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// One-sided Mann-Whitney U test: the p-value of "`current` tends to be
/// greater than `baseline`". Exact (by counting arrangements) for small
/// samples without ties, the normal approximation with tie and continuity
/// corrections otherwise. Rank-based, so it assumes no distribution (test
/// durations are skewed and heavy-tailed) and one wild sample moves it
/// little. 1 when either sample is empty.
double MannWhitneyPGreater(const std::vector<double>& baseline,
                           const std::vector<double>& current);

struct Comparison {
  double baseline_median = 0;
  double current_median = 0;
  double ratio = 1;  // current / baseline median
  double p_value = 1;
  v1::ChangeKind kind = v1::CHANGE_KIND_UNSPECIFIED;  // no change
};

/// Settings of the regression rule.
struct RegressionRule {
  double tolerance = 0.2;  // relative change that matters
  // Significance level of each one-sided test. Strict, because a suite
  // tests thousands of tests at once: at 0.05 a clean run of 1,000 tests
  // would flag dozens by chance.
  double alpha = 0.01;
  size_t min_runs = 3;  // per side: one or two samples never alarm
};

/// A regression when the current median exceeds the baseline's by more than
/// the tolerance AND Mann-Whitney says the shift is significant; an
/// improvement likewise downwards. Both conditions: a big but noisy change
/// and a tiny but consistent one are not reported.
Comparison CompareRuns(const std::vector<double>& baseline,
                       const std::vector<double>& current,
                       const RegressionRule& rule = {});

struct Trend {
  double slope_per_run = 0;  // Theil-Sen: median of pairwise slopes
  double p_value = 1;        // Mann-Kendall, two-sided
  v1::TrendDirection direction = v1::TREND_DIRECTION_STABLE;
};

/// The trend of `values` (oldest first): degrading (rising) or improving
/// when Mann-Kendall finds a monotonic trend at `alpha` and the Theil-Sen
/// line moves by at least `min_change` of the median over the window.
Trend TrendOf(const std::vector<double>& values, double alpha = 0.05,
              double min_change = 0.1);

/// Pass/fail flips between consecutive runs of the same action key, over all
/// such pairs (0 when none): the same command on the same inputs should not
/// change its verdict.
double FlipRate(const v1::TestHistory& history);

/// Memory growing within most of the last passing runs (at least 3 of them
/// and 80%): one growing run is noise, a sustained slope is a leak.
bool LeakSuspected(const v1::TestHistory& history);

/// How runs are chosen for the comparison.
struct Windows {
  size_t current_runs = 5;    // the latest passing runs
  size_t baseline_runs = 20;  // passing runs before them (or before a pin)
};

/// Everything history says about one test right after its newest run:
/// changes against the baseline (`pinned`, else the runs before the current
/// window) for wall time and peak memory, and its insight.
struct TestAnalysis {
  std::vector<v1::PerformanceChange> changes;
  v1::TestInsight insight;
  /// A trend, flips or a leak: worth a line in the report.
  bool notable = false;
};
TestAnalysis AnalyzeHistory(const std::string& test_id,
                            const v1::TestHistory& history,
                            const v1::Baseline* pinned,
                            const RegressionRule& rule = {},
                            const Windows& windows = {});

}  // namespace testfleet
