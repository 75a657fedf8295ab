#pragma once

#include "cache/result_cache.h"
#include "common/security.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {

/// The ResultCache gRPC service: checks the caller's token (`auth`, not
/// owned; null: everyone allowed), translates requests into calls on a
/// ResultCache (not owned) and statuses back. Lookups and stats need
/// cache-read, puts cache-write (the entry records the token's name as its
/// writer), gc admin.
class ResultCacheService final : public v1::ResultCache::Service {
 public:
  explicit ResultCacheService(ResultCache* cache,
                              const TokenAuthority* auth = nullptr)
      : cache_(cache), auth_(auth != nullptr ? auth : &open_) {}

  grpc::Status Lookup(grpc::ServerContext* context,
                      const v1::CacheLookupRequest* request,
                      v1::CacheLookupResponse* response) override;
  grpc::Status Put(grpc::ServerContext* context,
                   const v1::CachePutRequest* request,
                   v1::CachePutResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* context,
                     const v1::CacheStatsRequest* request,
                     v1::CacheStats* response) override;
  grpc::Status Gc(grpc::ServerContext* context,
                  const v1::CacheGcRequest* request,
                  v1::CacheGcResponse* response) override;

 private:
  ResultCache* cache_;
  const TokenAuthority open_;
  const TokenAuthority* auth_;
};

}  // namespace testfleet
