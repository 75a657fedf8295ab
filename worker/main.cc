// worker: connects to a coordinator, pulls shards, runs tests, reports.
#include <unistd.h>

#include <thread>

#include "CLI/CLI.hpp"
#include "cache/result_cache.h"
#include "common/flags.h"
#include "common/grpc_util.h"
#include "common/signals.h"
#include "spdlog/spdlog.h"
#include "worker/worker.h"

int main(int argc, char** argv) {
  using namespace testfleet;
  BlockTerminationSignals();
  CLI::App app{"Testfleet worker: runs tests for a coordinator."};
  WorkerConfig config;
  std::string coordinator, cache_dir, idle, sample = "100ms";
  char host[256] = "worker";
  gethostname(host, sizeof(host) - 1);
  config.name = host;
  config.slots =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  char cwd[4096];
  if (getcwd(cwd, sizeof(cwd)) != nullptr) config.workspace = cwd;
  app.add_option("--coordinator", coordinator, "HOST:PORT of the coordinator")
      ->required();
  app.add_option("--slots", config.slots, "tests run at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--workspace", config.workspace,
                 "folder where suites' relative paths resolve (a checkout)")
      ->capture_default_str();
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
  CLI11_PARSE(app, argc, argv);
  if (app.count("--exit-when-idle") > 0) {
    config.exit_when_idle = DurationFlag(idle.empty() ? "3s" : idle);
  }
  config.sample_interval = DurationFlag(sample);
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
  Worker worker(config, MakeChannel(coordinator), local_cache.get());
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
