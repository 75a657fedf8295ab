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

constexpr const char* kKindNames[] = {"results", "blobs", "action_results"};

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
                      "Bytes the result cache holds")) {
  auto counters = [&](const std::string& what) {
    return &prometheus::BuildCounter()
                .Name("testfleet_cache_kind_" + what + "_total")
                .Help("Cache " + what + " by kind of entry")
                .Register(registry);
  };
  auto gauges = [&](const std::string& what) {
    return &prometheus::BuildGauge()
                .Name("testfleet_cache_kind_" + what)
                .Help("Cache " + what + " by kind of entry")
                .Register(registry);
  };
  auto* hits = counters("hits");
  auto* misses = counters("misses");
  auto* puts = counters("puts");
  auto* evictions = counters("evictions");
  auto* expirations = counters("expirations");
  auto* corrupt = counters("corrupt");
  auto* entries = gauges("entries");
  auto* bytes = gauges("bytes");
  auto* pinned = gauges("pinned");
  for (size_t i = 0; i < kinds_.size(); ++i) {
    const prometheus::Labels label = {{"kind", kKindNames[i]}};
    kinds_[i] = {{&hits->Add(label)},        {&misses->Add(label)},
                 {&puts->Add(label)},        {&evictions->Add(label)},
                 {&expirations->Add(label)}, {&corrupt->Add(label)},
                 &entries->Add(label),       &bytes->Add(label),
                 &pinned->Add(label)};
  }
}

void CacheMetrics::Advance(Total& total, int64_t now) {
  // A counter only goes up; a cache reopened with fewer counts starts over.
  if (now > total.seen) total.counter->Increment(now - total.seen);
  total.seen = now;
}

void CacheMetrics::UpdateKind(Kind& kind, const v1::CacheKindStats& stats) {
  Advance(kind.hits, stats.hits());
  Advance(kind.misses, stats.misses());
  Advance(kind.puts, stats.puts());
  Advance(kind.evictions, stats.evictions());
  Advance(kind.expirations, stats.expirations());
  Advance(kind.corrupt, stats.corrupt());
  kind.entries->Set(stats.entries());
  kind.bytes->Set(stats.bytes());
  kind.pinned->Set(stats.pinned());
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
  UpdateKind(kinds_[0], stats.results());
  UpdateKind(kinds_[1], stats.blobs());
  UpdateKind(kinds_[2], stats.action_results());
}

}  // namespace testfleet
