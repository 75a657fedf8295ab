#include "coordctl/commands.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "cache/cache_client.h"
#include "cache/input_tree.h"
#include "common/flags.h"
#include "common/grpc_util.h"
#include "common/platform.h"
#include "common/suite_loader.h"
#include "common/text.h"
#include "common/units.h"
#include "coordctl/command_support.h"
#include "coordctl/importers.h"
#include "coordctl/progress.h"
#include "coordctl/transfer.h"
#include "coordinator/server.h"
#include "dashboard/dashboard.h"
#include "report/html_report.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"
#include "testfleet/v1/services.grpc.pb.h"
#include "worker/worker.h"

namespace testfleet {
namespace {

// relative to `suite_dir`.
absl::StatusOr<std::optional<nlohmann::json>> Imported(
    const SuiteSource& source, const std::string& suite_dir) {
  const int sources = !source.suite.empty() + !source.from_ctest.empty() +
                      !source.from_gtest.empty();
  if (sources != 1) {
    return absl::InvalidArgumentError(
        "give exactly one of SUITE, --from-ctest=BUILD_DIR, "
        "--from-gtest=BINARY");
  }
  if (!source.from_ctest.empty())
    return SuiteFromCtest(source.from_ctest, suite_dir);
  if (!source.from_gtest.empty())
    return SuiteFromGtest(source.from_gtest, suite_dir);
  return std::nullopt;
}

// A digester with the memo kept under the cache root, loaded now and saved
// when done, so unchanged inputs are not hashed again at every submit.
class MemoizedDigester {
 public:
  explicit MemoizedDigester(const std::string& cache_root)
      : memo_(cache_root + "/digests.pb") {
    std::filesystem::create_directories(cache_root, error_);
    if (absl::Status loaded = digester_.Load(memo_); !loaded.ok()) {
      spdlog::warn("{}", std::string(loaded.message()));
    }
  }
  ~MemoizedDigester() {
    if (!error_) (void)digester_.Save(memo_);  // unwritable: only costs time
  }
  FileDigester& get() { return digester_; }

 private:
  const std::string memo_;
  std::error_code error_;
  FileDigester digester_;
};

// Reads and hashes the suite.
absl::StatusOr<LoadedSuite> LoadForSubmit(const SuiteSource& source,
                                          FileDigester& digester,
                                          const std::string& platform_tag) {
  // Imported suites live where their tests do: the build tree, the binary's
  // folder.
  std::error_code absolute_error;
  const std::string import_dir =
      source.from_ctest.empty() && source.from_gtest.empty()
          ? std::string()
          : std::filesystem::absolute(
                !source.from_ctest.empty()
                    ? std::filesystem::path(source.from_ctest)
                    : std::filesystem::path(source.from_gtest).parent_path(),
                absolute_error)
                .lexically_normal()
                .string();
  absl::StatusOr<std::optional<nlohmann::json>> imported =
      Imported(source, import_dir);
  if (!imported.ok()) return imported.status();
  const std::string origin = !source.suite.empty() ? source.suite
                             : !source.from_ctest.empty()
                                 ? "ctest " + source.from_ctest
                                 : "gtest " + source.from_gtest;
  // An importer's suite comes from this machine's own build tree, whose
  // tests may well use the source tree beside it.
  SuiteLoadOptions options;
  options.allow_outside_paths =
      source.allow_outside_paths || imported->has_value();
  absl::StatusOr<LoadedSuite> suite =
      imported->has_value() ? ParseSuite((*imported)->dump(), origin,
                                         import_dir, digester, options)
                            : LoadSuiteFile(source.suite, digester, options);
  if (!suite.ok()) return suite;
  if (absl::Status kept = FilterTests(source.filter, suite->spec); !kept.ok())
    return kept;
  *suite->spec.mutable_platform() = HostPlatform(platform_tag);
  suite->spec.set_fail_fast(source.fail_fast);
  // Said here, in our words, rather than as gRPC's RESOURCE_EXHAUSTED.
  const size_t bytes = suite->spec.ByteSizeLong();
  if (bytes > static_cast<size_t>(kMaxMessageBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": the suite is ", bytes >> 20, " MiB as a message, over the ",
        kMaxMessageBytes >> 20,
        " MiB limit of one request; split it into smaller suites"));
  }
  char host[256] = "";
  gethostname(host, sizeof(host) - 1);
  suite->spec.set_submitted_from(absl::StrCat(host, ":", origin));
  return suite;
}

}  // namespace

int RunCommand(const RunOptions& options) {
  const std::string cache_root = CacheRoot(options.cache_dir);
  MemoizedDigester digester(cache_root);
  absl::StatusOr<LoadedSuite> suite =
      LoadForSubmit(options.source, digester.get(), options.platform_tag);
  if (!suite.ok()) return Fail(kExitUsage, suite.status());

  CoordinatorServerConfig config;
  config.data_dir = cache_root;
  config.remote_cache = options.remote_cache;
  absl::StatusOr<std::string> key = ReadSigningKey(options.signing_key_file);
  if (!key.ok()) return Fail(kExitUsage, key.status());
  config.cache_signing_key = *key;
  config.coordinator.lease = absl::Seconds(30);
  config.coordinator.persist_running = false;  // this run's suite ends with it
  // The suite was read and checked here, with the user's own
  // --allow-outside-paths: the embedded coordinator takes it as it is.
  config.coordinator.allow_outside_paths = true;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(config);
  std::string temp_dir;
  if (!server.ok() && absl::IsFailedPrecondition(server.status())) {
    // Another run holds the cache: go on uncached rather than fail.
    std::string pattern =
        std::filesystem::temp_directory_path() / "testfleet-run-XXXXXX";
    temp_dir = mkdtemp(pattern.data());
    spdlog::warn("{}; this run uses a private cache in {}",
                 std::string(server.status().message()), temp_dir);
    config.data_dir = temp_dir;
    server = CoordinatorServer::Start(config);
  }
  if (!server.ok()) return Fail(kExitInfrastructure, server.status());
  std::unique_ptr<Dashboard> dashboard;
  if (!options.http_listen.empty()) {
    DashboardOptions web;
    web.listen = options.http_listen;
    absl::StatusOr<std::unique_ptr<Dashboard>> started =
        ServeDashboard(**server, config, std::move(web));
    if (!started.ok()) return Fail(CodeFor(started.status()), started.status());
    dashboard = *std::move(started);
  }

  const int worker_count =
      options.workers > 0
          ? options.workers
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::unique_ptr<Worker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < worker_count; ++i) {
    WorkerConfig worker_config;
    worker_config.name = absl::StrCat("local-", i + 1);
    worker_config.slots = 1;
    worker_config.workspace = suite->dir;
    worker_config.platform_tag = options.platform_tag;
    worker_config.coordinator_address = "the embedded coordinator";
    worker_config.pull_wait = absl::Milliseconds(500);
    worker_config.sample_interval = DurationFlag(options.sample_interval);
    worker_config.cache_signing_key = config.cache_signing_key;
    workers.push_back(std::make_unique<Worker>(
        worker_config, (*server)->InProcessChannel(), nullptr));
    threads.emplace_back([w = workers.back().get()] {
      absl::Status status = w->Run();
      if (!status.ok()) spdlog::error("{}", std::string(status.message()));
    });
  }

  auto stub = v1::Coordinator::NewStub((*server)->InProcessChannel());
  v1::SubmitSuiteRequest request;
  *request.mutable_suite() = suite->spec;
  v1::SubmitSuiteResponse submitted;
  grpc::ClientContext context;
  grpc::Status status = stub->SubmitSuite(&context, request, &submitted);
  absl::StatusOr<v1::SuiteReport> report = absl::UnknownError("not submitted");
  if (status.ok()) {
    if (!submitted.dashboard_url().empty()) {
      std::fprintf(stderr, "dashboard: %s\n",
                   submitted.dashboard_url().c_str());
    }
    ProgressPrinter printer(stderr, options.terminal);
    report = WatchToEnd(*stub, submitted.suite_id(), "the embedded coordinator",
                        &printer);
  } else {
    report = FromGrpcStatus(status);
  }
  for (auto& worker : workers) worker->Stop();  // cancels their long polls
  for (auto& thread : threads) thread.join();
  // While the embedded store still serves the outputs.
  const int code =
      report.ok()
          ? Finish(*report, options.outputs, (*server)->InProcessChannel(),
                   options.fail_on_regression)
          : Fail(CodeFor(report.status()), report.status());
  dashboard.reset();  // before the coordinator it shows
  (*server)->Shutdown();
  server->reset();
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  return code;
}

// Uploads the suite's inputs for workers without a checkout; the line that
// says what was sent.
absl::StatusOr<std::string> SendInputs(
    LoadedSuite& suite, FileDigester& digester,
    const std::shared_ptr<grpc::Channel>& channel,
    const std::string& coordinator) {
  CasClient cas(channel);
  absl::StatusOr<UploadSummary> uploaded = UploadInputs(suite, digester, cas);
  if (absl::IsUnimplemented(uploaded.status())) {
    // A coordinator without a blob store: its workers have checkouts.
    for (v1::TestSpec& test : *suite.spec.mutable_tests()) {
      test.clear_input_root();
      test.clear_exec_root();
    }
    suite.spec.clear_blobs();
    return absl::StrCat("inputs: not sent; the coordinator at ", coordinator,
                        " keeps no blobs (--no-cache-service), so its "
                        "workers need --workspace\n");
  }
  if (absl::IsUnavailable(uploaded.status())) {
    return FromGrpcStatus(
        grpc::Status(grpc::StatusCode::UNAVAILABLE,
                     std::string(uploaded.status().message())),
        "coordinator", coordinator);
  }
  if (!uploaded.ok()) {
    return absl::Status(
        uploaded.status().code(),
        absl::StrCat("uploading the inputs: ", uploaded.status().message()));
  }
  return absl::StrFormat(
      "inputs: sent %d of %d files and %d of %d folders (%s) to %s\n",
      uploaded->files_sent, uploaded->files, uploaded->directories_sent,
      uploaded->directories, FormatSize(uploaded->bytes_sent), coordinator);
}

int SubmitCommand(const SubmitOptions& options) {
  MemoizedDigester digester(CacheRoot(options.cache_dir));
  absl::StatusOr<LoadedSuite> suite =
      LoadForSubmit(options.source, digester.get(), options.platform_tag);
  if (!suite.ok()) return Fail(kExitUsage, suite.status());
  if (options.priority) suite->spec.set_priority(*options.priority);
  auto channel = MakeChannel(options.coordinator);
  std::string upload_line;
  if (!options.no_upload) {
    absl::StatusOr<std::string> sent =
        SendInputs(*suite, digester.get(), channel, options.coordinator);
    if (!sent.ok()) return Fail(CodeFor(sent.status()), sent.status());
    upload_line = *std::move(sent);
  }
  auto stub = v1::Coordinator::NewStub(channel);
  v1::SubmitSuiteRequest request;
  *request.mutable_suite() = std::move(suite->spec);
  v1::SubmitSuiteResponse submitted;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Minutes(2)));
  grpc::Status status = stub->SubmitSuite(&context, request, &submitted);
  if (!status.ok()) {
    absl::Status error =
        FromGrpcStatus(status, "coordinator", options.coordinator);
    return Fail(CodeFor(error), error);
  }
  std::printf("%s\n", submitted.suite_id().c_str());
  std::fflush(stdout);
  // Said after the suite id, which scripts read from the first line.
  std::fputs(upload_line.c_str(), stderr);
  if (!submitted.dashboard_url().empty()) {
    std::fprintf(stderr, "dashboard: %s\n", submitted.dashboard_url().c_str());
  }
  if (!options.wait) return kExitOk;
  DetachOnInterrupt(submitted.suite_id(), options.coordinator);
  ProgressPrinter printer(stderr, options.terminal);
  absl::StatusOr<v1::SuiteReport> report =
      WatchToEnd(*stub, submitted.suite_id(), options.coordinator, &printer);
  if (!report.ok()) return Fail(CodeFor(report.status()), report.status());
  return Finish(*report, options.outputs, channel, options.fail_on_regression);
}

int ImportCommand(const SuiteSource& source, const std::string& output) {
  if (source.suite.size() > 0) {
    return Fail(
        kExitUsage,
        absl::InvalidArgumentError(
            "import reads --from-ctest or --from-gtest, not a suite file"));
  }
  std::error_code absolute_error;
  const std::string suite_dir =
      std::filesystem::absolute(output, absolute_error)
          .lexically_normal()
          .parent_path()
          .string();
  absl::StatusOr<std::optional<nlohmann::json>> imported =
      Imported(source, suite_dir);
  if (!imported.ok()) return Fail(kExitUsage, imported.status());
  nlohmann::json& document = **imported;
  if (!source.filter.empty()) {
    // Filter through the loader's own view of the tests, keeping the
    // document's form (relative paths, durations) for people to edit.
    FileDigester digester;
    SuiteLoadOptions options;
    options.allow_outside_paths = true;
    absl::StatusOr<LoadedSuite> loaded =
        ParseSuite(document.dump(), output, suite_dir, digester, options);
    if (!loaded.ok()) return Fail(kExitUsage, loaded.status());
    if (absl::Status kept = FilterTests(source.filter, loaded->spec);
        !kept.ok()) {
      return Fail(kExitUsage, kept);
    }
    std::set<std::string> keep;
    for (const v1::TestSpec& test : loaded->spec.tests())
      keep.insert(test.id());
    nlohmann::json tests = nlohmann::json::array();
    for (const nlohmann::json& test : document["tests"]) {
      if (keep.count(test["id"].get<std::string>())) tests.push_back(test);
    }
    document["tests"] = tests;
  }
  if (absl::Status written =
          WriteFileAtomically(output, document.dump(2) + "\n");
      !written.ok()) {
    return Fail(kExitInfrastructure, written);
  }
  std::printf("wrote %zu tests to %s\n", document["tests"].size(),
              output.c_str());
  // Say now, not at the first run, when the suite leaves its folder.
  FileDigester digester;
  absl::StatusOr<LoadedSuite> strict =
      ParseSuite(document.dump(), output, suite_dir, digester);
  if (!strict.ok() && absl::StrContains(strict.status().message(),
                                        "outside the suite folder")) {
    std::printf(
        "note: it names paths outside its folder (%s); run it with "
        "--allow-outside-paths, or write it inside the build tree\n",
        std::string(strict.status().message()).c_str());
  }
  return kExitOk;
}

}  // namespace testfleet
