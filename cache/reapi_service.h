#pragma once

#include <memory>
#include <string>
#include <vector>

#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cache/result_cache.h"
#include "common/security.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "grpcpp/server_builder.h"

namespace testfleet {

struct ReapiOptions {
  // Instance names served; requests naming another are refused.
  std::vector<std::string> instances = {""};
};

/// The Remote Execution API v2 cache services (Capabilities,
/// ContentAddressableStorage, ActionCache, ByteStream) on a ResultCache (not
/// owned), checking each caller's token (`auth`, not owned; null: everyone
/// allowed): reads need cache-read, writes cache-write. SHA-256 only.
///
///   ReapiServices reapi(cache, tokens);
///   reapi.Register(builder);  // beside the ResultCache service
class ReapiServices {
 public:
  /// What one batch may carry in all (advertised in Capabilities): below
  /// gRPC's default 4 MiB message limit with room for the framing.
  static constexpr int64_t kMaxBatchTotalBytes = (4 << 20) - (64 << 10);

  ReapiServices(ResultCache* cache, const TokenAuthority* auth = nullptr,
                ReapiOptions options = {});
  ~ReapiServices();
  void Register(grpc::ServerBuilder& builder);

 private:
  class Capabilities;
  class Cas;
  class ActionCache;
  class ByteStream;
  struct Shared;
  std::unique_ptr<Shared> shared_;
  std::unique_ptr<Capabilities> capabilities_;
  std::unique_ptr<Cas> cas_;
  std::unique_ptr<ActionCache> action_cache_;
  std::unique_ptr<ByteStream> byte_stream_;
};

}  // namespace testfleet
