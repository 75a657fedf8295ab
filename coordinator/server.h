#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "cache/cache_client.h"
#include "cache/cache_metrics.h"
#include "cache/cache_service.h"
#include "cache/reapi_service.h"
#include "cache/result_cache.h"
#include "common/metrics.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_service.h"
#include "coordinator/store.h"
#include "grpcpp/grpcpp.h"

namespace testfleet {

struct CoordinatorServerConfig {
  std::string
      listen;  // HOST:PORT ("127.0.0.1:0" picks a port); empty: in-process only
  std::string data_dir;  // history and reports; the cache below it by default
  bool cache_service =
      true;                  // serve the ResultCache service from a local cache
  std::string cache_dir;     // default: DATA_DIR/cache
  std::string remote_cache;  // a cache service to consult after the local one
  std::string
      cache_endpoint;  // the cache workers should use, when not this server
  absl::Duration cache_ttl = absl::Hours(1);
  int64_t cache_max_bytes = 1LL << 30;
  int64_t min_free_disk = 128LL << 20;  // writes stop short of a full disk
  TlsConfig tls;           // serve TLS / mutual TLS; empty: plaintext
  std::string token_file;  // tokens and roles; empty: no tokens needed
  // Fleet key: cache entries looked up at submit must carry its signature.
  std::string cache_signing_key;
  std::string metrics_listen;  // HOST:PORT of /metrics; empty: none
  // testfleet_desired_workers: enough workers to drain the queue this fast.
  absl::Duration target_drain = absl::Minutes(10);
  CoordinatorOptions
      coordinator;  // scheduling knobs; cache and store are set here
};

/// A running coordinator: store, cache, scheduling logic and the gRPC server
/// that exposes them, plus the housekeeping thread (lease expiry, cache
/// sweeps). Used by the `coordinator` binary and embedded by `coordctl run`.
///   ASSIGN_OR_RETURN(auto server, CoordinatorServer::Start(config));
///   server->Wait();  // until Shutdown() from another thread
class CoordinatorServer {
 public:
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      CoordinatorServerConfig config);
  ~CoordinatorServer();

  /// The token table (SIGHUP reloads it); null without --token-file.
  TokenAuthority* tokens() { return auth_.get(); }

  int port() const { return port_; }
  /// The /metrics port (0 without --metrics-listen).
  int metrics_port() const {
    return metrics_server_ ? metrics_server_->port() : 0;
  }
  /// A channel to this server that never leaves the process.
  std::shared_ptr<grpc::Channel> InProcessChannel();
  ResultCache* cache() { return cache_.get(); }
  Coordinator& coordinator() { return *coordinator_; }
  /// Stops taking requests, wakes long polls, drains and joins.
  void Shutdown();
  void Wait();

 private:
  CoordinatorServer() = default;
  void Housekeeping();

  CoordinatorServerConfig config_;
  std::unique_ptr<CoordinatorStore> store_;
  std::unique_ptr<ResultCache> cache_;
  std::unique_ptr<CacheClient> local_client_;
  std::unique_ptr<CacheClient> remote_client_;
  std::unique_ptr<CacheClient> cache_client_;  // the tiers, maybe signed
  std::unique_ptr<TokenAuthority> auth_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::unique_ptr<CacheMetrics> cache_metrics_;
  std::unique_ptr<MetricsServer> metrics_server_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorService> coordinator_service_;
  std::unique_ptr<ResultCacheService> cache_service_;
  std::unique_ptr<ReapiServices> reapi_;  // on the same cache and port
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread housekeeping_;
};

}  // namespace testfleet
