#include "worker/metrics.h"

#include <string>

#include "common/metrics.h"
#include "common/test_status.h"

namespace testfleet {
WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : slots_(AddGauge(registry, "testfleet_worker_slots", "Tests run at once")),
      busy_slots_(AddGauge(registry, "testfleet_worker_busy_slots",
                           "Slots running a shard")),
      running_(AddGauge(registry, "testfleet_worker_running_tests",
                        "Test processes running")),
      spooled_(AddGauge(registry, "testfleet_worker_spooled_bytes",
                        "Results on disk waiting for the coordinator")),
      tests_(prometheus::BuildCounter()
                 .Name("testfleet_worker_tests_total")
                 .Help("Tests this worker finished, by status")
                 .Register(registry)) {}

void WorkerMetrics::Update(const WorkerStats& stats) {
  slots_.Set(stats.slots);
  busy_slots_.Set(stats.busy_slots);
  running_.Set(stats.running_tests);
  spooled_.Set(static_cast<double>(stats.spooled_bytes));
  for (const auto& [status, count] : stats.finished) {
    int64_t& seen = seen_[status];
    if (count <= seen) continue;
    tests_.Add({{"status", StatusName(status)}})
        .Increment(static_cast<double>(count - seen));
    seen = count;
  }
}

}  // namespace testfleet
