#pragma once

#include <map>

#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// The coordinator's state at one moment, for metrics and autoscaling.
struct CoordinatorSnapshot {
  std::map<int, int> queued_by_priority;  // suite priority -> queued tests
  int running_tests = 0;                  // leased to workers
  int workers = 0;
  int slots = 0;
  int free_slots = 0;
  int unfinished_suites = 0;
  double queued_expected_ms = 0;   // history's estimate of the queued work
  double running_expected_ms = 0;  // and of the leased work
};

/// Workers needed to finish the queued and running work within
/// `target_drain`, from the history's duration estimates and the slots the
/// registered workers have on average (1 with none registered): the
/// `testfleet_desired_workers` gauge a KEDA ScaledObject or HPA scales on.
/// At least 1 while any work is left, 0 when there is none.
int DesiredWorkers(const CoordinatorSnapshot& snapshot,
                   absl::Duration target_drain);

/// Prometheus metrics of a coordinator (names in docs/operations.md).
class CoordinatorMetrics {
 public:
  CoordinatorMetrics(prometheus::Registry& registry,
                     absl::Duration target_drain);

  /// A test left the queue for a worker after waiting `waited`.
  void Dispatched(absl::Duration waited);
  /// A test's final result (run or cached).
  void Finished(const v1::TestResult& result);
  /// Gauges from a snapshot (called every second).
  void Update(const CoordinatorSnapshot& snapshot);

 private:
  const absl::Duration target_drain_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Gauge& running_;
  prometheus::Gauge& workers_;
  prometheus::Gauge& free_slots_;
  prometheus::Gauge& suites_;
  prometheus::Gauge& queued_work_;
  prometheus::Gauge& desired_workers_;
  prometheus::Histogram& dispatch_latency_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Counter>& tests_;
  std::map<int, prometheus::Gauge*> queue_by_priority_;
  struct StatusSeries {
    prometheus::Counter* tests[2] = {};  // [cached]
    prometheus::Histogram* duration = nullptr;
  };
  StatusSeries by_status_[v1::TestStatus_ARRAYSIZE];
};

}  // namespace testfleet
