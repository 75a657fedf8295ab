#pragma once

#include "cache/result_cache.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {

/// The ResultCache gRPC service: translates requests into calls on a
/// ResultCache (not owned) and statuses back.
class ResultCacheService final : public v1::ResultCache::Service {
 public:
  explicit ResultCacheService(ResultCache* cache) : cache_(cache) {}

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
};

}  // namespace testfleet
