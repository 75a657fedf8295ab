#include "cache/cache_metrics.h"

#include <string>

#include "common/metrics.h"

namespace testfleet {
namespace {

prometheus::Counter* Counter(prometheus::Registry& registry,
                             const std::string& what) {
  return &prometheus::BuildCounter()
              .Name("testfleet_cache_" + what + "_total")
              .Help("Result cache " + what)
              .Register(registry)
              .Add({});
}

}  // namespace

CacheMetrics::CacheMetrics(prometheus::Registry& registry)
    : hits_{Counter(registry, "hits")},
      misses_{Counter(registry, "misses")},
      puts_{Counter(registry, "puts")},
      evictions_{Counter(registry, "evictions")},
      expirations_{Counter(registry, "expirations")},
      corrupt_{Counter(registry, "corrupt")},
      entries_(AddGauge(registry, "testfleet_cache_entries",
                        "Entries in the result cache")),
      bytes_(AddGauge(registry, "testfleet_cache_bytes",
                      "Bytes the result cache holds")) {}

void CacheMetrics::Advance(Total& total, int64_t now) {
  // A counter only goes up; a cache reopened with fewer counts starts over.
  if (now > total.seen) total.counter->Increment(now - total.seen);
  total.seen = now;
}

void CacheMetrics::Update(const v1::CacheStats& stats) {
  Advance(hits_, stats.hits());
  Advance(misses_, stats.misses());
  Advance(puts_, stats.puts());
  Advance(evictions_, stats.evictions());
  Advance(expirations_, stats.expirations());
  Advance(corrupt_, stats.corrupt());
  entries_.Set(stats.entries());
  bytes_.Set(stats.bytes());
}

}  // namespace testfleet
