#pragma once

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// A result cache's statistics as Prometheus metrics:
/// testfleet_cache_{hits,misses,puts,evictions,expirations,corrupt}_total
/// and the testfleet_cache_{entries,bytes} gauges.
class CacheMetrics {
 public:
  explicit CacheMetrics(prometheus::Registry& registry);
  /// From the cache's running totals (called every second).
  void Update(const v1::CacheStats& stats);

 private:
  struct Total {
    prometheus::Counter* counter;
    int64_t seen = 0;
  };
  void Advance(Total& total, int64_t now);

  Total hits_, misses_, puts_, evictions_, expirations_, corrupt_;
  prometheus::Gauge& entries_;
  prometheus::Gauge& bytes_;
};

}  // namespace testfleet
