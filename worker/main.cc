// worker: connects to a coordinator, pulls shards, runs tests, reports.
#include <unistd.h>

#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "cache/result_cache.h"
#include "common/flags.h"
#include "common/grpc_util.h"
#include "common/metrics.h"
#include "common/runtime.h"
#include "common/signals.h"
#include "spdlog/spdlog.h"
#include "worker/metrics.h"
#include "worker/worker.h"

namespace {

// The first of `base`, `base-2`, ... `base-16` that `open` does not find
// taken by another worker (FAILED_PRECONDITION): workers sharing a name on
// one host each get their own.
template <typename Open>
auto OpenFirstFree(const std::string& base, Open open) -> decltype(open(base)) {
  auto opened = open(base);
  for (int n = 2;
       n <= 16 && !opened.ok() &&
       opened.status().code() == absl::StatusCode::kFailedPrecondition;
       ++n) {
    opened = open(absl::StrCat(base, "-", n));
  }
  return opened;
}

// The named spool, or the default one of this worker name and coordinator: a
// worker restarted with both finds what its predecessor could not deliver.
absl::StatusOr<std::unique_ptr<testfleet::ResultSpool>> OpenSpool(
    const std::string& dir, const std::string& name,
    const std::string& coordinator, int64_t max_bytes) {
  auto open = [max_bytes](const std::string& path) {
    return testfleet::ResultSpool::Open(path, max_bytes);
  };
  if (!dir.empty()) return open(dir);
  return OpenFirstFree(
      "/var/tmp/testfleet-spool/" +
          absl::StrReplaceAll(absl::StrCat(name, "@", coordinator),
                              {{"/", "_"}}),
      open);
}

// The named file cache, or the default one of this worker name: a restarted
// worker finds the files its predecessor fetched.
absl::StatusOr<std::unique_ptr<testfleet::FileCache>> OpenFileCache(
    const std::string& dir, const std::string& name, int64_t max_bytes) {
  auto open = [max_bytes](const std::string& path) {
    return testfleet::FileCache::Open(path, max_bytes);
  };
  if (!dir.empty()) return open(dir);
  return OpenFirstFree(
      "/var/tmp/testfleet-files/" + absl::StrReplaceAll(name, {{"/", "_"}}),
      open);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace testfleet;
  DisableMutexDeadlockDetection();
  BlockTerminationSignals();
  CLI::App app{"Testfleet worker: runs tests for a coordinator."};
  WorkerConfig config;
  std::string coordinator, cache_dir, idle, spool_dir, spool_max = "1GiB";
  // Shown by --help, and WorkerConfig's own: one place for each default.
  std::string sample = absl::FormatDuration(config.sample_interval),
              report_interval = absl::FormatDuration(config.report_interval);
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  config.name = host;
  config.slots =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--coordinator", coordinator, "HOST:PORT of the coordinator")
      ->required();
  app.add_option("--slots", config.slots, "tests run at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--workspace", config.workspace,
                 "folder where suites' relative paths resolve (a checkout); "
                 "without it each test runs in a sandbox made from its "
                 "inputs, fetched by digest");
  std::string file_cache_dir, file_cache_max = "10GiB";
  app.add_option("--file-cache-dir", file_cache_dir,
                 "sandboxed: input files kept for hard links, and the "
                 "sandboxes (default: /var/tmp/testfleet-files/NAME)");
  app.add_option("--file-cache-max-bytes", file_cache_max,
                 "bound of the input file cache")
      ->check(SizeValidator())
      ->capture_default_str();
  app.add_flag("--keep-failed-sandboxes", config.keep_failed_sandboxes,
               "leave the sandboxes of failed tests for debugging");
  app.add_option("--cache-dir", cache_dir,
                 "local result cache, consulted first");
  app.add_option("--name", config.name, "name in reports")
      ->capture_default_str();
  app.add_option("--platform-tag", config.platform_tag,
                 "extra platform key part, e.g. a toolchain name");
  app.add_option("--exit-when-idle", idle,
                 "exit after this long without work (bare flag: 3s)")
      ->expected(0, 1)
      ->default_str("3s")
      ->check(DurationValidator());
  app.add_option("--sample-interval", sample, "memory sampling period")
      ->check(DurationValidator())
      ->capture_default_str();
  app.add_option("--report-interval", report_interval,
                 "how long passing results gather before one report (the "
                 "coordinator may advise longer; failures go at once)")
      ->check(DurationValidator())
      ->capture_default_str();
  app.add_option("--spool-dir", spool_dir,
                 "where results wait while the coordinator is unreachable "
                 "(default: /var/tmp/testfleet-spool/NAME@COORDINATOR)");
  app.add_option("--spool-max-bytes", spool_max, "bound of the spool")
      ->check(SizeValidator())
      ->capture_default_str();
  ClientSecurity security;
  std::string token_file, signing_key_file;
  AddClientSecurityFlags(app, security, token_file);
  app.add_option("--cache-signing-key", signing_key_file,
                 "fleet key file: sign cache entries, ignore unsigned ones");
  std::string metrics_listen;
  app.add_option("--metrics-listen", metrics_listen,
                 "HOST:PORT to serve Prometheus metrics on (/metrics)");
  app.add_option("--max-tests", config.max_tests,
                 "stop pulling after this many tests, finish and exit")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  absl::StatusOr<std::string> key = ReadSigningKey(signing_key_file);
  absl::Status ready =
      key.ok() ? InstallClientSecurity(security, token_file) : key.status();
  if (!ready.ok()) {
    spdlog::error("{}", std::string(ready.message()));
    return 2;
  }
  config.cache_signing_key = *key;
  if (app.count("--exit-when-idle") > 0) {
    config.exit_when_idle = DurationFlag(idle.empty() ? "3s" : idle);
  }
  config.sample_interval = DurationFlag(sample);
  config.report_interval = DurationFlag(report_interval);
  config.coordinator_address = coordinator;

  std::unique_ptr<ResultCache> local_cache;
  if (!cache_dir.empty()) {
    ResultCacheOptions options;
    options.dir = cache_dir;
    auto opened = ResultCache::Open(options);
    if (!opened.ok()) {
      spdlog::error("{}", std::string(opened.status().message()));
      return 2;
    }
    local_cache = std::move(*opened);
  }
  auto spool =
      OpenSpool(spool_dir, config.name, coordinator, SizeFlag(spool_max));
  if (!spool.ok()) {
    spdlog::error("{}", std::string(spool.status().message()));
    return 2;
  }
  if ((*spool)->batches() > 0) {
    spdlog::info(
        "spool {}: {} result batches left by an earlier worker; "
        "delivering them",
        (*spool)->dir(), (*spool)->batches());
  }
  auto channel = MakeChannel(coordinator, Traffic::kSmallCalls);
  std::unique_ptr<FileCache> files;
  std::unique_ptr<SandboxMaker> sandboxes;
  if (app.count("--workspace") == 0) {
    auto opened =
        OpenFileCache(file_cache_dir, config.name, SizeFlag(file_cache_max));
    if (!opened.ok()) {
      spdlog::error("{}", std::string(opened.status().message()));
      return 2;
    }
    files = *std::move(opened);
    // Blobs, megabytes each, go on a connection of their own.
    sandboxes = std::make_unique<SandboxMaker>(
        files->dir() + "/sandboxes", files.get(), MakeChannel(coordinator));
    if (absl::Status cleaned = sandboxes->Clean(); !cleaned.ok()) {
      spdlog::error("{}", std::string(cleaned.message()));
      return 2;
    }
    spdlog::info("no --workspace: tests run in sandboxes under {}",
                 files->dir());
  }
  Worker worker(config, channel, local_cache.get(), *std::move(spool),
                sandboxes.get());
  auto registry = std::make_shared<prometheus::Registry>();
  WorkerMetrics worker_metrics(*registry);
  std::unique_ptr<MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    auto started = MetricsServer::Start(metrics_listen, registry, [&] {
      worker_metrics.Update(worker.Stats());
    });
    if (!started.ok()) {
      spdlog::error("{}", std::string(started.status().message()));
      return 2;
    }
    metrics = *std::move(started);
    spdlog::info("metrics on port {}", metrics->port());
  }
  std::thread waiter([&] {
    int signal = WaitForTerminationSignal();
    spdlog::info("signal {}: finishing running shards, then exiting", signal);
    worker.Stop();
  });
  waiter.detach();
  absl::Status status = worker.Run();
  if (!status.ok()) {
    spdlog::error("{}", std::string(status.message()));
    return 3;
  }
  return 0;
}
