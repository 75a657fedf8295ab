#pragma once

#include <map>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "worker/worker.h"

namespace testfleet {

/// A worker's state as Prometheus metrics: testfleet_worker_slots,
/// testfleet_worker_busy_slots, testfleet_worker_running_tests,
/// testfleet_worker_spooled_bytes and testfleet_worker_tests_total{status}.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(prometheus::Registry& registry);
  /// From Worker::Stats (called every second).
  void Update(const WorkerStats& stats);

 private:
  prometheus::Gauge& slots_;
  prometheus::Gauge& busy_slots_;
  prometheus::Gauge& running_;
  prometheus::Gauge& spooled_;
  prometheus::Family<prometheus::Counter>& tests_;
  std::map<v1::TestStatus, int64_t> seen_;
};

}  // namespace testfleet
