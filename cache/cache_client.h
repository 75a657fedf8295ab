#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache/result_cache.h"
#include "common/clock.h"
#include "grpcpp/channel.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// A result cache as its users see it, local or behind gRPC.
///   std::unique_ptr<CacheClient> cache = NewGrpcCacheClient("10.0.0.5:7070");
///   ASSIGN_OR_RETURN(auto hits, cache->Lookup({key}));
class CacheClient {
 public:
  virtual ~CacheClient() = default;
  /// One answer per key, in order; nullopt is a miss.
  virtual absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) = 0;
  virtual absl::Status Put(const CacheEntries& entries) = 0;
  virtual absl::StatusOr<v1::CacheStats> Stats() = 0;
  /// Removes expired entries, and every entry of `writer` when set.
  virtual absl::StatusOr<v1::CacheGcResponse> Gc(
      const std::string& writer = "") = 0;
  /// "local cache /path" or "cache service at host:port", for messages.
  virtual std::string Describe() const = 0;
};

/// Calls straight into `cache` (not owned), for embedded use.
std::unique_ptr<CacheClient> NewLocalCacheClient(ResultCache* cache);

/// Talks to a ResultCache gRPC service.
std::unique_ptr<CacheClient> NewGrpcCacheClient(const std::string& address);
std::unique_ptr<CacheClient> NewGrpcCacheClient(
    std::shared_ptr<grpc::Channel> channel, const std::string& address);

/// Signs what it writes and checks what it reads, with HMAC-SHA256 under a
/// fleet key over the action key and the result: a shared cache (or anyone
/// who can write its disk) cannot make a test "pass". An unsigned or
/// tampered entry is a miss, logged once with its writer. `inner` is not
/// owned.
std::unique_ptr<CacheClient> NewSigningCacheClient(CacheClient* inner,
                                                   std::string key);
/// The signature NewSigningCacheClient expects on `entry` under `key_hex`.
std::string CacheEntrySignature(const std::string& fleet_key,
                                const std::string& key_hex,
                                const v1::CachedResult& entry);

/// How long a failing cache tier rests before it is tried again.
inline constexpr absl::Duration kRetryFailingTierAfter = absl::Seconds(10);

/// Looks keys up tier by tier (a hit in a later tier is copied into the
/// earlier ones) and writes to every tier. A failing tier counts as a miss and
/// is reported once, not per call, so an unreachable shared cache degrades to
/// "uncached" instead of failing tests; it is skipped for `retry_after` after
/// each failure, so a cache that hangs costs one deadline, not one per test.
/// Tiers are not owned.
std::unique_ptr<CacheClient> NewTieredCacheClient(
    std::vector<CacheClient*> tiers, Clock* clock = RealClock::Get(),
    absl::Duration retry_after = kRetryFailingTierAfter);

/// What a coordinator or worker reads and writes through: `tiers` (not
/// owned) as NewTieredCacheClient does, every entry signed and checked as
/// NewSigningCacheClient does when `signing_key` is not empty. nullptr
/// without tiers.
std::unique_ptr<CacheClient> NewFleetCacheClient(
    std::vector<CacheClient*> tiers, const std::string& signing_key);

}  // namespace testfleet
