#pragma once

#include <array>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// A result cache's statistics as Prometheus metrics:
/// testfleet_cache_{hits,misses,puts,evictions,expirations,corrupt}_total
/// (Testfleet results) and the testfleet_cache_{entries,bytes} gauges (all
/// kinds), and each kind apart, labelled kind="results", "blobs" or
/// "action_results": testfleet_cache_kind_{...}_total and the
/// testfleet_cache_kind_{entries,bytes,pinned} gauges.
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
  struct Kind {
    Total hits, misses, puts, evictions, expirations, corrupt;
    prometheus::Gauge* entries;
    prometheus::Gauge* bytes;
    prometheus::Gauge* pinned;
  };
  void Advance(Total& total, int64_t now);
  void UpdateKind(Kind& kind, const v1::CacheKindStats& stats);

  Total hits_, misses_, puts_, evictions_, expirations_, corrupt_;
  prometheus::Gauge& entries_;
  prometheus::Gauge& bytes_;
  std::array<Kind, 3> kinds_;  // results, blobs, action results
};

}  // namespace testfleet
