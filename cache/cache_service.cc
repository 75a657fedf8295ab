#include "cache/cache_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"

namespace testfleet {

grpc::Status ResultCacheService::Lookup(grpc::ServerContext*,
                                        const v1::CacheLookupRequest* request,
                                        v1::CacheLookupResponse* response) {
  std::vector<std::string> keys(request->keys().begin(), request->keys().end());
  auto results = cache_->BatchLookup(keys);
  if (!results.ok()) return ToGrpcStatus(results.status());
  for (auto& result : *results) {
    response->add_found(result.has_value());
    v1::CachedResult* out = response->add_results();
    if (result.has_value()) *out = std::move(*result);
  }
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Put(grpc::ServerContext*,
                                     const v1::CachePutRequest* request,
                                     v1::CachePutResponse* response) {
  if (request->keys_size() != request->results_size()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("put has ", request->keys_size(), " keys but ",
                     request->results_size(), " results")));
  }
  for (int i = 0; i < request->keys_size(); ++i) {
    absl::Status put = cache_->Put(request->keys(i), request->results(i));
    if (!put.ok()) return ToGrpcStatus(put);
    response->set_stored(response->stored() + 1);
  }
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Stats(grpc::ServerContext*,
                                       const v1::CacheStatsRequest*,
                                       v1::CacheStats* response) {
  *response = cache_->Stats();
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Gc(grpc::ServerContext*,
                                    const v1::CacheGcRequest*,
                                    v1::CacheGcResponse* response) {
  auto gc = cache_->Gc();
  if (!gc.ok()) return ToGrpcStatus(gc.status());
  *response = *std::move(gc);
  return grpc::Status::OK;
}

}  // namespace testfleet
