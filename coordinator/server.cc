#include "coordinator/server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

namespace testfleet {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    CoordinatorServerConfig config) {
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer());
  if (config.data_dir.empty()) {
    return absl::InvalidArgumentError("--data-dir is required");
  }
  ASSIGN_OR_RETURN(
      server->store_,
      CoordinatorStore::Open(config.data_dir + "/state", config.min_free_disk));
  if (!config.token_file.empty()) {
    ASSIGN_OR_RETURN(server->auth_, TokenAuthority::Load(config.token_file));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   MakeServerCredentials(config.tls));
  std::vector<CacheClient*> tiers;
  if (config.cache_service) {
    ResultCacheOptions cache_options;
    cache_options.dir = config.cache_dir.empty() ? config.data_dir + "/cache"
                                                 : config.cache_dir;
    cache_options.ttl = config.cache_ttl;
    cache_options.max_bytes = config.cache_max_bytes;
    cache_options.min_free_disk = config.min_free_disk;
    ASSIGN_OR_RETURN(server->cache_, ResultCache::Open(cache_options));
    server->local_client_ = NewLocalCacheClient(server->cache_.get());
    tiers.push_back(server->local_client_.get());
    server->cache_service_ = std::make_unique<ResultCacheService>(
        server->cache_.get(), server->auth_.get());
    server->reapi_ = std::make_unique<ReapiServices>(server->cache_.get(),
                                                     server->auth_.get());
  }
  const std::string& external = !config.remote_cache.empty()
                                    ? config.remote_cache
                                    : config.cache_endpoint;
  if (!external.empty()) {
    server->remote_client_ = NewGrpcCacheClient(external);
    tiers.push_back(server->remote_client_.get());
  }
  server->cache_client_ = NewFleetCacheClient(tiers, config.cache_signing_key);

  CoordinatorOptions options = config.coordinator;
  if (!config.metrics_listen.empty()) {
    server->registry_ = std::make_shared<prometheus::Registry>();
    server->metrics_ = std::make_unique<CoordinatorMetrics>(
        *server->registry_, config.target_drain);
    if (server->cache_) {
      server->cache_metrics_ =
          std::make_unique<CacheMetrics>(*server->registry_);
    }
    options.metrics = server->metrics_.get();
  }
  options.cache = server->cache_client_.get();
  options.blob_store = server->cache_.get();
  options.store = server->store_.get();
  options.cache_service =
      config.cache_service || !config.cache_endpoint.empty();
  options.cache_endpoint = config.cache_service ? "" : config.cache_endpoint;
  server->coordinator_ = std::make_unique<Coordinator>(options);
  ASSIGN_OR_RETURN(int resumed, server->coordinator_->Recover());
  if (resumed > 0) spdlog::info("resumed {} unfinished suites", resumed);
  server->coordinator_service_ = std::make_unique<CoordinatorService>(
      server->coordinator_.get(), server->auth_.get());

  // grpc.health.v1 for load balancers and Kubernetes probes.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  if (server->registry_) CountRpcErrors(builder, *server->registry_);
  if (!config.listen.empty()) {
    builder.AddListeningPort(config.listen, credentials, &server->port_);
  }
  builder.RegisterService(server->coordinator_service_.get());
  if (server->cache_service_) {
    builder.RegisterService(server->cache_service_.get());
    server->reapi_->Register(builder);
  }
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr ||
      (!config.listen.empty() && server->port_ == 0)) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", config.listen,
        " (in use or not a local address?); choose another --listen"));
  }
  if (server->registry_) {
    CoordinatorServer* s = server.get();
    ASSIGN_OR_RETURN(
        server->metrics_server_,
        MetricsServer::Start(config.metrics_listen, server->registry_, [s] {
          s->metrics_->Update(s->coordinator_->Snapshot());
          if (s->cache_metrics_) {
            s->cache_metrics_->Update(s->cache_->Stats());
          }
        }));
  }
  server->config_ = std::move(config);
  server->housekeeping_ =
      std::thread([s = server.get()] { s->Housekeeping(); });
  return server;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

std::shared_ptr<grpc::Channel> CoordinatorServer::InProcessChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return server_->InProcessChannel(args);
}

void CoordinatorServer::Housekeeping() {
  absl::Time next_sweep = absl::Now() + absl::Minutes(1);
  absl::Time next_lease_check = absl::Now() + absl::Seconds(1);
  absl::MutexLock lock(&mu_);
  auto stopping = [this]()
                      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  // Sleeps until the next long poll's wait ends, but at most kLongestSleep:
  // a poll that starts meanwhile ends on time if it waits at least as long
  // (workers wait 0.5 s or more). At least kShortestSleep: a fleet's
  // thousands of polls end in batches, not a wake-up each. A fixed 50 ms
  // tick was most of an idle coordinator's CPU.
  constexpr absl::Duration kShortestSleep = absl::Milliseconds(50);
  constexpr absl::Duration kLongestSleep = absl::Milliseconds(250);
  absl::Duration sleep = kLongestSleep;
  while (!mu_.AwaitWithTimeout(absl::Condition(&stopping), sleep)) {
    mu_.Unlock();
    sleep =
        std::clamp(coordinator_->ExpirePulls(), kShortestSleep, kLongestSleep);
    if (absl::Now() >= next_lease_check) {
      coordinator_->ExpireLeases();
      next_lease_check = absl::Now() + absl::Seconds(1);
    }
    if (cache_ && absl::Now() >= next_sweep) {
      auto swept = cache_->SweepExpired();
      if (!swept.ok())
        spdlog::warn("cache sweep: {}", swept.status().ToString());
      next_sweep = absl::Now() + absl::Minutes(1);
    }
    mu_.Lock();
  }
}

void CoordinatorServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  metrics_server_.reset();  // its refresher reads the coordinator
  // A server whose Start failed half way has only some of its parts.
  // Wake long polls and watchers first so the server can drain quickly.
  if (coordinator_) coordinator_->Shutdown();
  if (server_) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  }
  if (housekeeping_.joinable()) housekeeping_.join();
}

void CoordinatorServer::Wait() { server_->Wait(); }

}  // namespace testfleet
