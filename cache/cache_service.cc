#include "cache/cache_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"

namespace testfleet {

grpc::Status ResultCacheService::Lookup(grpc::ServerContext* context,
                                        const v1::CacheLookupRequest* request,
                                        v1::CacheLookupResponse* response) {
  auto caller = auth_->Authorize(*context, Role::kCacheRead);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  std::vector<std::string> keys(request->keys().begin(), request->keys().end());
  if (request->accepts_encoded()) {
    auto encoded = cache_->BatchLookupEncoded(keys);
    if (!encoded.ok()) return ToGrpcStatus(encoded.status());
    for (auto& result : *encoded) {
      response->add_found(result.has_value());
      std::string* out = response->add_encoded_results();
      if (result.has_value()) *out = std::move(*result);
    }
    return grpc::Status::OK;
  }
  auto results = cache_->BatchLookup(keys);
  if (!results.ok()) return ToGrpcStatus(results.status());
  for (auto& result : *results) {
    response->add_found(result.has_value());
    v1::CachedResult* out = response->add_results();
    if (result.has_value()) *out = std::move(*result);
  }
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Put(grpc::ServerContext* context,
                                     const v1::CachePutRequest* request,
                                     v1::CachePutResponse* response) {
  auto caller = auth_->Authorize(*context, Role::kCacheWrite);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  if (request->keys_size() != request->results_size()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("put has ", request->keys_size(), " keys but ",
                     request->results_size(), " results")));
  }
  CacheEntries entries;
  entries.reserve(request->keys_size());
  v1::CachePutRequest& taken = TakeRequest(request);  // moved, not copied
  for (int i = 0; i < request->keys_size(); ++i) {
    entries.emplace_back(std::move(*taken.mutable_keys(i)),
                         std::move(*taken.mutable_results(i)));
    // The writer is who the token says, not what the entry claims.
    if (!caller->anonymous()) entries.back().second.set_writer(caller->name);
  }
  if (absl::Status put = cache_->Put(entries); !put.ok())
    return ToGrpcStatus(put);
  response->set_stored(request->keys_size());
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Stats(grpc::ServerContext* context,
                                       const v1::CacheStatsRequest*,
                                       v1::CacheStats* response) {
  auto caller = auth_->Authorize(*context, Role::kCacheRead);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  *response = cache_->Stats();
  return grpc::Status::OK;
}

grpc::Status ResultCacheService::Gc(grpc::ServerContext* context,
                                    const v1::CacheGcRequest* request,
                                    v1::CacheGcResponse* response) {
  auto caller = auth_->Authorize(*context, Role::kAdmin);
  if (!caller.ok()) return ToGrpcStatus(caller.status());
  auto gc = cache_->Gc(request->writer());
  if (!gc.ok()) return ToGrpcStatus(gc.status());
  *response = *std::move(gc);
  return grpc::Status::OK;
}

}  // namespace testfleet
