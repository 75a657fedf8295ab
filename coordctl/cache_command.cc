// `coordctl cache stats|gc`: a cache service's figures and collection.
#include <cstdio>
#include <memory>
#include <string>

#include "cache/cache_client.h"
#include "common/units.h"
#include "coordctl/command_support.h"
#include "coordctl/commands.h"

namespace testfleet {

int CacheCommand(const std::string& operation, const std::string& address,
                 const std::string& writer) {
  std::unique_ptr<CacheClient> cache = NewGrpcCacheClient(address);
  v1::CacheStats stats;
  if (operation == "gc") {
    absl::StatusOr<v1::CacheGcResponse> gc = cache->Gc(writer);
    if (!gc.ok()) return Fail(CodeFor(gc.status()), gc.status());
    std::printf("removed %lld expired entries\n",
                static_cast<long long>(gc->expired_removed()));
    if (gc->corrupt_removed() > 0) {
      std::printf("removed %lld damaged entries\n",
                  static_cast<long long>(gc->corrupt_removed()));
    }
    if (!writer.empty()) {
      std::printf("removed %lld entries written by %s\n",
                  static_cast<long long>(gc->writer_removed()), writer.c_str());
    }
    stats = gc->stats();
  } else {
    absl::StatusOr<v1::CacheStats> got = cache->Stats();
    if (!got.ok()) return Fail(CodeFor(got.status()), got.status());
    stats = *got;
  }
  const int64_t lookups = stats.hits() + stats.misses();
  std::printf(
      "entries %lld, %s of %s; hits %lld, misses %lld (hit ratio %.1f%%); puts "
      "%lld; "
      "expirations %lld, evictions %lld, corrupt %lld; ttl %s\n",
      static_cast<long long>(stats.entries()),
      FormatSize(stats.bytes()).c_str(), FormatSize(stats.max_bytes()).c_str(),
      static_cast<long long>(stats.hits()),
      static_cast<long long>(stats.misses()),
      lookups ? 100.0 * static_cast<double>(stats.hits()) /
                    static_cast<double>(lookups)
              : 0.0,
      static_cast<long long>(stats.puts()),
      static_cast<long long>(stats.expirations()),
      static_cast<long long>(stats.evictions()),
      static_cast<long long>(stats.corrupt()),
      absl::FormatDuration(absl::Milliseconds(stats.ttl_ms())).c_str());
  // Each kind apart: Testfleet results, REAPI blobs and action results.
  const std::pair<const char*, const v1::CacheKindStats*> kinds[] = {
      {"results", &stats.results()},
      {"blobs", &stats.blobs()},
      {"action results", &stats.action_results()}};
  for (const auto& [name, kind] : kinds) {
    std::printf(
        "  %s: entries %lld, %s; hits %lld, misses %lld; puts %lld; "
        "evictions %lld, expirations %lld, corrupt %lld; pinned %lld\n",
        name, static_cast<long long>(kind->entries()),
        FormatSize(kind->bytes()).c_str(), static_cast<long long>(kind->hits()),
        static_cast<long long>(kind->misses()),
        static_cast<long long>(kind->puts()),
        static_cast<long long>(kind->evictions()),
        static_cast<long long>(kind->expirations()),
        static_cast<long long>(kind->corrupt()),
        static_cast<long long>(kind->pinned()));
  }
  return kExitOk;
}

}  // namespace testfleet
