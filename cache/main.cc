// cache_server: the result cache service alone, shared by coordinators,
// workers and developer machines.
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cache/cache_metrics.h"
#include "cache/cache_service.h"
#include "cache/reapi_service.h"
#include "cache/result_cache.h"
#include "common/flags.h"
#include "common/grpc_util.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/signals.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using namespace testfleet;
  DisableMutexDeadlockDetection();
  KeepLargeBuffersInHeap();
  BlockTerminationSignals();
  CLI::App app{
      "Testfleet cache server: the shared result cache, and a Remote "
      "Execution API v2 cache (CAS, ActionCache, ByteStream) on the same "
      "port."};
  std::string listen = "127.0.0.1:7071", ttl = "1h", max_bytes = "1GiB",
              min_free_disk = "128MiB";
  ResultCacheOptions options;
  app.add_option("--listen", listen, "HOST:PORT to serve on")
      ->capture_default_str();
  app.add_option("--data-dir", options.dir, "cache folder")->required();
  app.add_option("--cache-ttl", ttl, "how long a result stays valid")
      ->check(DurationValidator())
      ->capture_default_str();
  app.add_option("--cache-max-bytes", max_bytes, "size limit (LRU eviction)")
      ->check(SizeValidator())
      ->capture_default_str();
  app.add_option("--min-free-disk", min_free_disk,
                 "refuse puts while the disk has less free (0: never)")
      ->check(SizeValidator())
      ->capture_default_str();
  TlsConfig tls;
  std::string token_file;
  AddServerSecurityFlags(app, tls, token_file);
  ReapiOptions reapi_options;
  app.add_option("--instance-name", reapi_options.instances,
                 "REAPI instance name to serve (repeatable; default: only the "
                 "empty name)");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (/metrics)");
  CLI11_PARSE(app, argc, argv);
  std::unique_ptr<TokenAuthority> tokens;
  if (!token_file.empty()) {
    auto loaded = TokenAuthority::Load(token_file);
    if (!loaded.ok()) {
      spdlog::error("{}", std::string(loaded.status().message()));
      return 2;
    }
    tokens = *std::move(loaded);
  }
  auto credentials = MakeServerCredentials(tls);
  if (!credentials.ok()) {
    spdlog::error("{}", std::string(credentials.status().message()));
    return 2;
  }
  options.min_free_disk = SizeFlag(min_free_disk);
  options.ttl = DurationFlag(ttl);
  options.max_bytes = SizeFlag(max_bytes);

  auto cache = ResultCache::Open(options);
  if (!cache.ok()) {
    spdlog::error("{}", std::string(cache.status().message()));
    return 2;
  }
  ResultCacheService service(cache->get(), tokens.get());
  ReapiServices reapi((*cache).get(), tokens.get(), reapi_options);
  auto registry = std::make_shared<prometheus::Registry>();
  CacheMetrics cache_metrics(*registry);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  std::unique_ptr<MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    CountRpcErrors(builder, *registry);
    auto started = MetricsServer::Start(metrics_listen, registry, [&] {
      cache_metrics.Update((*cache)->Stats());
    });
    if (!started.ok()) {
      spdlog::error("{}", std::string(started.status().message()));
      return 2;
    }
    metrics = *std::move(started);
    spdlog::info("metrics on port {}", metrics->port());
  }
  int port = 0;
  builder.AddListeningPort(listen, *credentials, &port);
  builder.RegisterService(&service);
  reapi.Register(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::error("cannot listen on {} (in use or not a local address?)",
                  listen);
    return 2;
  }
  spdlog::info("cache server listening on port {} (data in {})", port,
               options.dir);
  absl::Notification stopping;
  std::thread waiter([&] {
    WaitForTerminationSignal([&] {
      if (tokens != nullptr) tokens->ReloadAndLog();
    });
    stopping.Notify();
    server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  });
  std::thread sweeper([&] {
    // Expired entries are misses already; sweeping reclaims their space.
    while (!stopping.WaitForNotificationWithTimeout(absl::Minutes(1))) {
      auto swept = (*cache)->SweepExpired();
      if (!swept.ok())
        spdlog::warn("cache sweep: {}", std::string(swept.status().message()));
    }
  });
  server->Wait();
  waiter.join();
  sweeper.join();
  return 0;
}
