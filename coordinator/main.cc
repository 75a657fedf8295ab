// coordinator: the gRPC server that takes suites, schedules them over
// workers, keeps history and (unless --no-cache-service) serves the cache.
#include <cmath>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/flags.h"
#include "common/runtime.h"
#include "common/signals.h"
#include "coordinator/server.h"
#include "dashboard/dashboard.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  using namespace testfleet;
  DisableMutexDeadlockDetection();
  KeepLargeBuffersInHeap();
  BlockTerminationSignals();
  CLI::App app{"Testfleet coordinator: schedules test suites over workers."};
  CoordinatorServerConfig config;
  config.listen = "127.0.0.1:7070";
  std::string ttl = "1h", max_bytes = "1GiB", lease = "30s",
              min_free_disk = "128MiB";
  bool no_cache_service = false;
  app.add_option("--listen", config.listen, "HOST:PORT to serve on")
      ->capture_default_str();
  app.add_option("--data-dir", config.data_dir,
                 "folder for history, reports and the cache")
      ->required();
  app.add_option("--cache-ttl", ttl, "how long a cached result stays valid")
      ->check(DurationValidator())
      ->capture_default_str();
  app.add_option("--cache-max-bytes", max_bytes,
                 "cache size limit (LRU eviction)")
      ->check(SizeValidator())
      ->capture_default_str();
  app.add_option("--cache-dir", config.cache_dir,
                 "cache folder (default DATA_DIR/cache)");
  app.add_flag("--no-cache-service", no_cache_service,
               "do not serve the cache; with --cache, use a cache_server");
  app.add_option(
      "--cache", config.cache_endpoint,
      "HOST:PORT of a cache_server that workers and submit-time lookups use");
  app.add_option("--lease", lease,
                 "how long a shard stays with a silent worker")
      ->check(DurationValidator())
      ->capture_default_str();
  app.add_option("--min-free-disk", min_free_disk,
                 "refuse new data while the disk has less free (0: never)")
      ->check(SizeValidator())
      ->capture_default_str();
  std::string signing_key_file;
  app.add_option("--cache-signing-key", signing_key_file,
                 "fleet key file: cache entries used at submit must be signed "
                 "with it");
  app.add_option("--max-suite-tests", config.coordinator.max_suite_tests,
                 "refuse suites with more tests (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-suites-per-token",
                 config.coordinator.max_suites_per_owner,
                 "unfinished suites one token may have (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-tests-per-token",
                 config.coordinator.max_tests_per_owner,
                 "unfinished tests one token may have (0: no limit)")
      ->capture_default_str();
  app.add_option("--max-workers", config.coordinator.max_workers,
                 "workers registered at once (0: no limit)")
      ->capture_default_str();
  app.add_flag("--allow-outside-paths", config.coordinator.allow_outside_paths,
               "accept suites whose cwd or inputs are absolute or climb out "
               "of the suite folder (workers that share one file system)");
  bool longest_first = false;
  app.add_flag("--longest-first", longest_first,
               "order each priority longest first only, not recent failures "
               "and changed tests first");
  app.add_option("--fleet-reports-per-second",
                 config.coordinator.fleet_reports_per_second,
                 "how many result reports the whole fleet should send a "
                 "second: workers gather passing results for workers/this "
                 "seconds (at most a sixth of --lease; failures go at once; "
                 "0: no advice)")
      ->capture_default_str();
  AddServerSecurityFlags(app, config.tls, config.token_file);
  std::string target_drain = "10m";
  app.add_option("--metrics-listen", config.metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (/metrics)");
  app.add_option("--target-drain", target_drain,
                 "testfleet_desired_workers: workers to finish the queue "
                 "within this")
      ->check(DurationValidator())
      ->capture_default_str();
  DashboardOptions dashboard;
  app.add_option("--http-listen", dashboard.listen,
                 "HOST:PORT to serve the web dashboard on (HTTPS with "
                 "--tls-cert; loopback only without --token-file)");
  app.add_option("--http-public-url", dashboard.public_url,
                 "the dashboard's address as people open it (printed by "
                 "coordctl submit); default: from --http-listen");
  app.add_flag("--http-allow-remote", dashboard.allow_remote_without_tokens,
               "serve the dashboard beyond loopback without --token-file "
               "(anyone who reaches it may look and cancel)");
  CLI11_PARSE(app, argc, argv);
  // Calls this coordinator makes (to a cache_server) use the same CA and
  // certificate, and the token in TESTFLEET_TOKEN.
  absl::StatusOr<std::string> key = ReadSigningKey(signing_key_file);
  absl::Status ready =
      key.ok()
          ? InstallClientSecurity({{config.tls.cert_file, config.tls.key_file,
                                    config.tls.ca_file},
                                   ""},
                                  "")
          : key.status();
  if (!ready.ok()) {
    spdlog::error("{}", std::string(ready.message()));
    return 2;
  }
  config.cache_signing_key = *key;
  config.min_free_disk = SizeFlag(min_free_disk);
  if (config.min_free_disk < CoordinatorStore::kMinSafeFreeBytes) {
    spdlog::warn(
        "--min-free-disk={} is below {} MiB: a full disk can then stop the "
        "store until the coordinator is restarted",
        min_free_disk, CoordinatorStore::kMinSafeFreeBytes >> 20);
  }
  config.target_drain = DurationFlag(target_drain);
  config.cache_ttl = DurationFlag(ttl);
  config.cache_max_bytes = SizeFlag(max_bytes);
  config.cache_service = !no_cache_service;
  config.coordinator.failures_first = !longest_first;
  const double report_rate = config.coordinator.fleet_reports_per_second;
  if (!std::isfinite(report_rate) || report_rate < 0) {
    spdlog::error(
        "--fleet-reports-per-second={}: give a number of reports a second, 0 "
        "or more (e.g. 1000; 0: no advice)",
        report_rate);
    return 2;
  }
  config.coordinator.lease = DurationFlag(lease);
  if (config.coordinator.lease <= absl::ZeroDuration()) {
    spdlog::error("--lease={}: a lease must be longer than 0 (e.g. 30s)",
                  lease);
    return 2;
  }
  config.coordinator.worker_timeout = 2 * config.coordinator.lease;

  auto server = CoordinatorServer::Start(config);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 2;
  }
  spdlog::info("coordinator listening on port {} (data in {})",
               (*server)->port(), config.data_dir);
  if ((*server)->metrics_port() > 0) {
    spdlog::info("metrics on port {}", (*server)->metrics_port());
  }
  std::unique_ptr<Dashboard> web;
  if (!dashboard.listen.empty()) {
    auto started = ServeDashboard(**server, config, std::move(dashboard));
    if (!started.ok()) {
      spdlog::error("{}", std::string(started.status().message()));
      (*server)->Shutdown();
      return 2;
    }
    web = *std::move(started);
    spdlog::info("dashboard on {}", web->url());
  }
  std::thread waiter([&] {
    const int signal = WaitForTerminationSignal([&] {
      if ((*server)->tokens() != nullptr) (*server)->tokens()->ReloadAndLog();
    });
    spdlog::info("signal {}: shutting down", signal);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  web.reset();  // before the coordinator it shows
  return 0;
}
