#include "coordinator/metrics.h"

#include <cmath>
#include <string>

#include "common/metrics.h"
#include "common/test_status.h"

namespace testfleet {
namespace {

// 1 ms to about 30 min, for dispatch waits and test durations alike.
prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800};
}

}  // namespace

int DesiredWorkers(const CoordinatorSnapshot& snapshot,
                   absl::Duration target_drain) {
  const double work_ms =
      snapshot.queued_expected_ms + snapshot.running_expected_ms;
  if (work_ms <= 0 && snapshot.running_tests == 0) return 0;
  const double slots_per_worker =
      snapshot.workers > 0
          ? static_cast<double>(snapshot.slots) / snapshot.workers
          : 1.0;
  const double drain_ms =
      std::max(1.0, absl::ToDoubleMilliseconds(target_drain));
  return std::max(
      1, static_cast<int>(std::ceil(work_ms / (drain_ms * slots_per_worker))));
}

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry,
                                       absl::Duration target_drain)
    : target_drain_(target_drain),
      queue_depth_(prometheus::BuildGauge()
                       .Name("testfleet_queue_depth")
                       .Help("Queued tests, by suite priority")
                       .Register(registry)),
      running_(AddGauge(registry, "testfleet_running_tests",
                        "Tests leased to workers")),
      workers_(AddGauge(registry, "testfleet_workers", "Registered workers")),
      free_slots_(AddGauge(registry, "testfleet_free_slots",
                           "Slots of registered workers without a shard")),
      suites_(AddGauge(registry, "testfleet_unfinished_suites",
                       "Suites queued or running")),
      queued_work_(AddGauge(
          registry, "testfleet_queued_work_seconds",
          "Expected duration of the queued tests, from their history")),
      desired_workers_(AddGauge(registry, "testfleet_desired_workers",
                                "Workers needed to finish the queued and "
                                "running work within --target-drain")),
      dispatch_latency_(prometheus::BuildHistogram()
                            .Name("testfleet_dispatch_latency_seconds")
                            .Help("Time a test waited in the queue")
                            .Register(registry)
                            .Add({}, SecondsBuckets())),
      durations_(prometheus::BuildHistogram()
                     .Name("testfleet_test_duration_seconds")
                     .Help("Wall time of executed tests, by status")
                     .Register(registry)),
      tests_(prometheus::BuildCounter()
                 .Name("testfleet_tests_total")
                 .Help("Finished tests, by status and whether cached")
                 .Register(registry)) {
  // Every series up front: a test's result then costs no label lookups
  // (the coordinator counts each one), and dashboards see zeros, not gaps.
  for (int status = v1::TestStatus_MIN; status <= v1::TestStatus_MAX;
       ++status) {
    const std::string name = StatusName(static_cast<v1::TestStatus>(status));
    StatusSeries& series = by_status_[status];
    series.tests[0] = &tests_.Add({{"status", name}, {"cached", "false"}});
    series.tests[1] = &tests_.Add({{"status", name}, {"cached", "true"}});
    series.duration = &durations_.Add({{"status", name}}, SecondsBuckets());
  }
}

void CoordinatorMetrics::Dispatched(absl::Duration waited) {
  dispatch_latency_.Observe(absl::ToDoubleSeconds(waited));
}

void CoordinatorMetrics::Finished(const v1::TestResult& result) {
  const int status = v1::TestStatus_IsValid(result.status())
                         ? result.status()
                         : v1::TEST_STATUS_UNSPECIFIED;
  by_status_[status].tests[result.cached()]->Increment();
  if (!result.cached()) {
    by_status_[status].duration->Observe(result.wall_ms() / 1000.0);
  }
}

void CoordinatorMetrics::Update(const CoordinatorSnapshot& snapshot) {
  // Priorities seen before and now empty read 0, not their last value.
  for (auto& [priority, gauge] : queue_by_priority_) gauge->Set(0);
  for (const auto& [priority, queued] : snapshot.queued_by_priority) {
    prometheus::Gauge*& gauge = queue_by_priority_[priority];
    if (gauge == nullptr) {
      gauge = &queue_depth_.Add({{"priority", std::to_string(priority)}});
    }
    gauge->Set(queued);
  }
  running_.Set(snapshot.running_tests);
  workers_.Set(snapshot.workers);
  free_slots_.Set(snapshot.free_slots);
  suites_.Set(snapshot.unfinished_suites);
  queued_work_.Set(snapshot.queued_expected_ms / 1000.0);
  desired_workers_.Set(DesiredWorkers(snapshot, target_drain_));
}

}  // namespace testfleet
