#include "coordinator/perf_analysis.h"

#include <algorithm>
#include <cmath>
#include <map>

namespace testfleet {
namespace {

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  double median = values[mid];
  if (values.size() % 2 == 0) {
    median =
        (median + *std::max_element(values.begin(), values.begin() + mid)) / 2;
  }
  return median;
}

double UpperNormalTail(double z) { return 0.5 * std::erfc(z / std::sqrt(2)); }

// P(U >= u) for U of samples of sizes n and m without ties, by counting:
// arrangements(n, m, u) = arrangements(n-1, m, u-m) + arrangements(n, m-1, u)
// (the largest value belongs to the first sample, beating all m others, or
// to the second).
double ExactUpperTail(size_t n, size_t m, double u) {
  // counts[i][j]: distribution of U for sizes i and j.
  std::vector<std::vector<std::vector<double>>> counts(
      n + 1, std::vector<std::vector<double>>(m + 1));
  for (size_t i = 0; i <= n; ++i) {
    for (size_t j = 0; j <= m; ++j) {
      std::vector<double>& c = counts[i][j];
      c.assign(i * j + 1, 0);
      if (i == 0 || j == 0) {
        c[0] = 1;
        continue;
      }
      const std::vector<double>& without_first = counts[i - 1][j];
      for (size_t v = 0; v < without_first.size(); ++v)
        c[v + j] += without_first[v];
      const std::vector<double>& without_second = counts[i][j - 1];
      for (size_t v = 0; v < without_second.size(); ++v)
        c[v] += without_second[v];
    }
  }
  const std::vector<double>& c = counts[n][m];
  double total = 0, tail = 0;
  for (size_t v = 0; v < c.size(); ++v) {
    total += c[v];
    if (static_cast<double>(v) >= u - 1e-9) tail += c[v];
  }
  return tail / total;
}

bool Passed(const v1::RunRecord& run) {
  return run.status() == v1::TEST_STATUS_PASSED;
}

}  // namespace

double MannWhitneyPGreater(const std::vector<double>& baseline,
                           const std::vector<double>& current) {
  const size_t m = baseline.size(), n = current.size();
  if (n == 0 || m == 0) return 1;
  double u = 0;
  bool ties = false;
  for (double c : current) {
    for (double b : baseline) {
      if (c > b) {
        u += 1;
      } else if (c == b) {
        u += 0.5;
        ties = true;
      }
    }
  }
  if (!ties && n * m <= 400) return ExactUpperTail(n, m, u);

  // Normal approximation; ties (anywhere) shrink the variance.
  std::vector<double> all(baseline);
  all.insert(all.end(), current.begin(), current.end());
  std::sort(all.begin(), all.end());
  double tie_term = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j] == all[i]) ++j;
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    i = j;
  }
  const double total = static_cast<double>(n + m);
  const double variance = static_cast<double>(n * m) / 12.0 *
                          ((total + 1) - tie_term / (total * (total - 1)));
  const double mean = static_cast<double>(n * m) / 2;
  if (variance <= 0) return u > mean ? 0 : 1;  // every value equal
  return UpperNormalTail((u - mean - 0.5) / std::sqrt(variance));
}

Comparison CompareRuns(const std::vector<double>& baseline,
                       const std::vector<double>& current,
                       const RegressionRule& rule) {
  Comparison result;
  result.baseline_median = Median(baseline);
  result.current_median = Median(current);
  if (baseline.size() < rule.min_runs || current.size() < rule.min_runs ||
      result.baseline_median <= 0) {
    return result;
  }
  result.ratio = result.current_median / result.baseline_median;
  if (result.ratio > 1 + rule.tolerance) {
    result.p_value = MannWhitneyPGreater(baseline, current);
    if (result.p_value < rule.alpha) result.kind = v1::CHANGE_KIND_REGRESSION;
  } else if (result.ratio < 1 - rule.tolerance) {
    result.p_value = MannWhitneyPGreater(current, baseline);
    if (result.p_value < rule.alpha) result.kind = v1::CHANGE_KIND_IMPROVEMENT;
  }
  return result;
}

Trend TrendOf(const std::vector<double>& values, double alpha,
              double min_change) {
  Trend trend;
  const size_t n = values.size();
  if (n < 4) return trend;
  double s = 0;
  std::vector<double> slopes;
  slopes.reserve(n * (n - 1) / 2);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i + 1; j < n; ++j) {
      const double d = values[j] - values[i];
      s += (d > 0) - (d < 0);
      slopes.push_back(d / static_cast<double>(j - i));
    }
  }
  trend.slope_per_run = Median(std::move(slopes));
  std::map<double, double> counts;
  for (double v : values) counts[v] += 1;
  const double dn = static_cast<double>(n);
  double variance = dn * (dn - 1) * (2 * dn + 5);
  for (const auto& [value, t] : counts) variance -= t * (t - 1) * (2 * t + 5);
  variance /= 18;
  if (variance <= 0 || s == 0) return trend;
  const double z = (s - (s > 0 ? 1 : -1)) / std::sqrt(variance);
  trend.p_value = std::erfc(std::fabs(z) / std::sqrt(2));
  const double median = std::fabs(Median(values));
  const bool moves =
      std::fabs(trend.slope_per_run) * (dn - 1) >= min_change * median;
  if (trend.p_value < alpha && moves) {
    trend.direction = trend.slope_per_run > 0 ? v1::TREND_DIRECTION_DEGRADING
                                              : v1::TREND_DIRECTION_IMPROVING;
  }
  return trend;
}

double FlipRate(const v1::TestHistory& history) {
  // The last verdict seen for each key: pass or fail; errors (could not
  // run) and cancellations say nothing about the test.
  std::map<uint64_t, bool> last_passed;
  int pairs = 0, flips = 0;
  for (const v1::RunRecord& run : history.runs()) {
    const v1::TestStatus status = run.status();
    if (status == v1::TEST_STATUS_ERROR ||
        status == v1::TEST_STATUS_CANCELLED ||
        status == v1::TEST_STATUS_UNSPECIFIED) {
      continue;
    }
    const bool passed = Passed(run);
    auto [it, first] = last_passed.try_emplace(run.key_prefix(), passed);
    if (first) continue;
    ++pairs;
    flips += it->second != passed;
    it->second = passed;
  }
  return pairs == 0 ? 0 : static_cast<double>(flips) / pairs;
}

bool LeakSuspected(const v1::TestHistory& history) {
  int considered = 0, growing = 0;
  for (int i = history.runs_size() - 1; i >= 0 && considered < 5; --i) {
    const v1::RunRecord& run = history.runs(i);
    if (!Passed(run)) continue;
    ++considered;
    growing += run.memory_growing() && run.memory_slope_kb_per_s() > 0;
  }
  return considered >= 3 && growing >= 3 && growing * 5 >= considered * 4;
}

TestAnalysis AnalyzeHistory(const std::string& test_id,
                            const v1::TestHistory& history,
                            const v1::Baseline* pinned,
                            const RegressionRule& rule,
                            const Windows& windows) {
  TestAnalysis analysis;
  std::vector<const v1::RunRecord*> passed;
  for (const v1::RunRecord& run : history.runs()) {
    if (Passed(run)) passed.push_back(&run);
  }
  auto values = [](const std::vector<const v1::RunRecord*>& runs,
                   v1::Metric metric) {
    std::vector<double> out;
    for (const v1::RunRecord* run : runs) {
      out.push_back(metric == v1::METRIC_WALL_TIME
                        ? run->wall_ms()
                        : static_cast<double>(run->peak_rss_kb()));
    }
    return out;
  };
  auto last = [](const std::vector<const v1::RunRecord*>& runs, size_t k) {
    return std::vector<const v1::RunRecord*>(
        runs.end() - static_cast<long>(std::min(k, runs.size())), runs.end());
  };

  v1::TestInsight& insight = analysis.insight;
  insight.set_test_id(test_id);
  insight.set_runs(
      static_cast<int32_t>(history.older().runs() + history.runs_size()));
  const std::vector<const v1::RunRecord*> recent = last(passed, 20);
  insight.set_median_wall_ms(Median(values(recent, v1::METRIC_WALL_TIME)));
  insight.set_median_peak_rss_kb(
      static_cast<int64_t>(Median(values(recent, v1::METRIC_PEAK_MEMORY))));
  const Trend trend = TrendOf(values(last(passed, 50), v1::METRIC_WALL_TIME));
  insight.set_trend(trend.direction);
  insight.set_slope_ms_per_run(trend.slope_per_run);
  insight.set_trend_p_value(trend.p_value);
  insight.set_flip_rate(FlipRate(history));
  insight.set_leak_suspected(LeakSuspected(history));
  analysis.notable = trend.direction != v1::TREND_DIRECTION_STABLE ||
                     insight.flip_rate() > 0 || insight.leak_suspected();

  // A verdict on speed only for a run that passed.
  if (history.runs_size() == 0 || !Passed(*history.runs().rbegin())) {
    return analysis;
  }
  std::vector<const v1::RunRecord*> baseline, current;
  if (pinned != nullptr) {
    std::vector<const v1::RunRecord*> before, after;
    for (const v1::RunRecord* run : passed) {
      (run->finished_at_unix_ms() <= pinned->until_unix_ms() ? before : after)
          .push_back(run);
    }
    baseline = last(before, windows.baseline_runs);
    current = last(after, windows.current_runs);
  } else {
    current = last(passed, windows.current_runs);
    const std::vector<const v1::RunRecord*> earlier(
        passed.begin(), passed.end() - static_cast<long>(current.size()));
    baseline = last(earlier, windows.baseline_runs);
  }
  for (v1::Metric metric : {v1::METRIC_WALL_TIME, v1::METRIC_PEAK_MEMORY}) {
    const Comparison comparison =
        CompareRuns(values(baseline, metric), values(current, metric), rule);
    if (comparison.kind == v1::CHANGE_KIND_UNSPECIFIED) continue;
    v1::PerformanceChange& change = analysis.changes.emplace_back();
    change.set_test_id(test_id);
    change.set_metric(metric);
    change.set_kind(comparison.kind);
    change.set_baseline_median(comparison.baseline_median);
    change.set_current_median(comparison.current_median);
    change.set_ratio(comparison.ratio);
    change.set_p_value(comparison.p_value);
    change.set_baseline_runs(static_cast<int32_t>(baseline.size()));
    change.set_current_runs(static_cast<int32_t>(current.size()));
    change.set_tolerance(rule.tolerance);
    change.set_baseline(pinned != nullptr ? pinned->suite_id() : "rolling");
    if (change.baseline().empty()) change.set_baseline("pinned");
    for (double v : values(recent, metric)) change.add_recent(v);
  }
  return analysis;
}

}  // namespace testfleet
