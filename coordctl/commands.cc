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

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;
constexpr int kExitInfrastructure = 3;

int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "coordctl: %s\n", LogSafe(status.message()).c_str());
  return code;
}

std::string CacheRoot(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg) {
    return absl::StrCat(xdg, "/testfleet");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home) {
    return absl::StrCat(home, "/.cache/testfleet");
  }
  return "/tmp/testfleet-cache";
}

// Reads and hashes the suite, with the digest memo kept under the cache root
// so unchanged inputs are not hashed again at every submit.
// The suite document of an importer (nullopt for a suite file), with paths
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

// The cases of each test's GoogleTest XML report (an output the importers
// declare), read from the blob store; tests whose report is gone have none.
std::map<std::string, std::vector<GtestCase>> GtestCases(
    const v1::SuiteReport& report,
    const std::shared_ptr<grpc::Channel>& channel) {
  std::vector<std::string> ids;
  std::vector<BlobDigest> digests;
  for (const v1::TestResult& result : report.results()) {
    for (const v1::OutputFile& output : result.outputs()) {
      if (!absl::StartsWith(output.path(), "testfleet-gtest/")) continue;
      auto digest = DigestOfInput(output.sha256(), output.size_bytes());
      if (!digest.ok() || digest->size > (64 << 20)) continue;
      ids.push_back(result.test_id());
      digests.push_back(*digest);
    }
  }
  std::map<std::string, std::vector<GtestCase>> cases;
  if (digests.empty()) return cases;
  CasClient cas(channel);
  absl::StatusOr<std::vector<std::string>> xml = cas.ReadBlobs(digests);
  if (!xml.ok()) {
    spdlog::warn("GoogleTest reports not read, JUnit shows whole tests: {}",
                 std::string(xml.status().message()));
    return cases;
  }
  for (size_t i = 0; i < ids.size(); ++i)
    cases[ids[i]] = ParseGtestXml((*xml)[i]);
  return cases;
}

// `channel` reaches the blob store holding the tests' outputs.
absl::Status WriteReports(const v1::SuiteReport& report,
                          const ReportOutputs& outputs,
                          const std::shared_ptr<grpc::Channel>& channel) {
  if (!outputs.files.empty()) {
    CasClient cas(channel);
    absl::StatusOr<int> downloaded =
        DownloadOutputs(report, outputs.files, cas);
    if (!downloaded.ok()) {
      return absl::Status(downloaded.status().code(),
                          absl::StrCat("downloading the outputs: ",
                                       downloaded.status().message()));
    }
    std::fprintf(stderr, "outputs: %d files in %s\n", *downloaded,
                 outputs.files.c_str());
  }
  if (!outputs.json.empty()) {
    if (auto s = WriteFileAtomically(outputs.json, JsonReport(report)); !s.ok())
      return s;
  }
  if (!outputs.junit.empty()) {
    if (auto s = WriteFileAtomically(
            outputs.junit, JunitReport(report, GtestCases(report, channel)));
        !s.ok())
      return s;
  }
  if (!outputs.html.empty()) {
    // Links to the outputs, relative to the page, when they were downloaded.
    const std::string links =
        outputs.files.empty()
            ? std::string()
            : std::filesystem::absolute(outputs.files)
                  .lexically_relative(
                      std::filesystem::absolute(outputs.html).parent_path())
                  .string();
    if (auto s = WriteFileAtomically(outputs.html, HtmlReport(report, links));
        !s.ok())
      return s;
  }
  return absl::OkStatus();
}

// A coordinator to call: a server at an address, or the history and reports
// `coordctl run` keeps under the cache dir, opened in this process.
struct Connection {
  std::string address;  // for messages
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<CoordinatorServer> embedded;
};

Connection Remote(const std::string& address) {
  return {address, MakeChannel(address), nullptr};
}

absl::StatusOr<Connection> Connect(const std::string& coordinator,
                                   const std::string& cache_dir) {
  if (!coordinator.empty()) return Remote(coordinator);
  CoordinatorServerConfig config;
  config.data_dir = CacheRoot(cache_dir);
  config.cache_service = false;
  config.coordinator.persist_running = false;
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(config);
  if (!server.ok()) return server.status();
  Connection connection;
  connection.address = "the local history in " + config.data_dir;
  connection.channel = (*server)->InProcessChannel();
  connection.embedded = *std::move(server);
  return connection;
}

// One unary call with a deadline; failures become the one-line message
// users see.
template <typename Request, typename Response>
absl::Status CallCoordinator(
    const Connection& connection,
    grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                  const Request&, Response*),
    const Request& request, Response* response) {
  auto stub = v1::Coordinator::NewStub(connection.channel);
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(60)));
  return FromGrpcStatus(((*stub).*method)(&context, request, response),
                        "coordinator", connection.address);
}

v1::SuiteRef Ref(const std::string& suite_id) {
  v1::SuiteRef ref;
  ref.set_suite_id(suite_id);
  return ref;
}

// Follows the suite to its end, showing progress, and returns its report. A
// broken stream (coordinator restarting) is resumed with backoff.
absl::StatusOr<v1::SuiteReport> WatchToEnd(v1::Coordinator::Stub& stub,
                                           const std::string& suite_id,
                                           const std::string& address,
                                           ProgressPrinter* printer) {
  absl::Duration backoff = absl::Milliseconds(200);
  const absl::Time give_up_after = absl::Now() + absl::Minutes(5);
  while (true) {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
        stub.WatchSuite(&context, Ref(suite_id));
    v1::WatchEvent event;
    bool ended = false;
    while (reader->Read(&event)) {
      backoff = absl::Milliseconds(200);
      if (printer) printer->Update(event);
      const v1::SuiteState state = event.progress().state();
      ended = state == v1::SUITE_STATE_FINISHED ||
              state == v1::SUITE_STATE_CANCELLED;
    }
    grpc::Status status = reader->Finish();
    if (ended || status.ok()) break;
    absl::Status error = FromGrpcStatus(status, "coordinator", address);
    if (!absl::IsUnavailable(error) || absl::Now() > give_up_after)
      return error;
    spdlog::warn("{}; reconnecting", std::string(error.message()));
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  if (printer) printer->Finish();
  v1::SuiteReport report;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(60)));
  grpc::Status status = stub.GetReport(&context, Ref(suite_id), &report);
  if (!status.ok()) return FromGrpcStatus(status, "coordinator", address);
  return report;
}

int Finish(const v1::SuiteReport& report, const ReportOutputs& outputs,
           const std::shared_ptr<grpc::Channel>& channel,
           bool fail_on_regression = false) {
  std::fputs(SummaryText(report).c_str(), stdout);
  std::fflush(stdout);
  if (absl::Status written = WriteReports(report, outputs, channel);
      !written.ok()) {
    return Fail(kExitInfrastructure, written);
  }
  const int code = ExitCodeOf(report);
  const int regressions = RegressionCount(report);
  if (code == kExitOk && fail_on_regression && regressions > 0) {
    std::fprintf(stderr,
                 "coordctl: %d performance regressions "
                 "(--fail-on-regression)\n",
                 regressions);
    return 1;
  }
  return code;
}

// Ctrl-C while following a suite leaves it running: say so, and how to
// cancel it. The message is built now, since a signal handler may only write.
char detach_message[512];

void DetachOnInterrupt(const std::string& suite_id,
                       const std::string& coordinator) {
  std::snprintf(
      detach_message, sizeof(detach_message),
      "\ncoordctl: detached; suite %s keeps running (coordctl watch|cancel %s "
      "--coordinator=%s)\n",
      suite_id.c_str(), suite_id.c_str(), coordinator.c_str());
  std::signal(SIGINT, [](int) {
    (void)!write(STDERR_FILENO, detach_message, std::strlen(detach_message));
    _exit(130);
  });
}

// Bad input and missing rights are the user's to fix (2); the rest is
// infrastructure (3).
int CodeFor(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsNotFound(status) ||
                 absl::IsPermissionDenied(status) ||
                 absl::IsUnauthenticated(status)
             ? kExitUsage
             : kExitInfrastructure;
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

int StatusCommand(const std::string& suite_id, const std::string& coordinator) {
  v1::SuiteProgress progress;
  absl::Status status =
      CallCoordinator(Remote(coordinator), &v1::Coordinator::Stub::GetStatus,
                      Ref(suite_id), &progress);
  if (!status.ok()) return Fail(CodeFor(status), status);
  const v1::SuiteSummary& s = progress.summary();
  static const char* kStates[] = {"unknown", "queued", "running", "finished",
                                  "cancelled"};
  std::printf(
      "%s %s: %d/%d done, %d passed, %d failed, %d cached, %d running\n",
      suite_id.c_str(), kStates[progress.state() < 5 ? progress.state() : 0],
      s.done(), s.total(), s.passed(), FailedCount(s), s.cached(), s.running());
  return kExitOk;
}

int WatchCommand(const std::string& suite_id, const std::string& coordinator,
                 bool terminal) {
  auto channel = MakeChannel(coordinator);
  auto stub = v1::Coordinator::NewStub(channel);
  ProgressPrinter printer(stderr, terminal);
  absl::StatusOr<v1::SuiteReport> report =
      WatchToEnd(*stub, suite_id, coordinator, &printer);
  if (!report.ok()) return Fail(CodeFor(report.status()), report.status());
  return Finish(*report, {}, channel);
}

int CancelCommand(const std::string& suite_id, const std::string& coordinator) {
  v1::CancelResponse response;
  absl::Status status =
      CallCoordinator(Remote(coordinator), &v1::Coordinator::Stub::CancelSuite,
                      Ref(suite_id), &response);
  if (!status.ok()) return Fail(CodeFor(status), status);
  std::printf("cancelled %d tests of %s\n", response.cancelled(),
              suite_id.c_str());
  return kExitOk;
}

int ReportCommand(const std::string& suite_id, const std::string& coordinator,
                  const ReportOutputs& outputs) {
  v1::SuiteReport report;
  const Connection connection = Remote(coordinator);
  absl::Status status = CallCoordinator(
      connection, &v1::Coordinator::Stub::GetReport, Ref(suite_id), &report);
  if (!status.ok()) return Fail(CodeFor(status), status);
  return Finish(report, outputs, connection.channel);
}

int WorkersCommand(const std::string& coordinator) {
  v1::ListWorkersResponse response;
  absl::Status status =
      CallCoordinator(Remote(coordinator), &v1::Coordinator::Stub::ListWorkers,
                      v1::ListWorkersRequest(), &response);
  if (!status.ok()) return Fail(CodeFor(status), status);
  std::printf("%-28s %5s %5s %6s %10s %8s %s\n", "WORKER", "SLOTS", "BUSY",
              "LOAD", "FREE MEM", "TESTS", "LAST HEARTBEAT");
  const int64_t now = absl::ToUnixMillis(absl::Now());
  for (const v1::WorkerInfo& w : response.workers()) {
    std::printf("%-28s %5d %5d %6.2f %10s %8lld %.1fs ago\n",
                LogSafe(w.worker_id()).c_str(), w.slots(), w.busy_slots(),
                w.load_average(), FormatSize(w.free_memory_kb() * 1024).c_str(),
                static_cast<long long>(w.tests_run()),
                (now - w.last_heartbeat_unix_ms()) / 1000.0);
  }
  return kExitOk;
}

int ExplainCommand(const std::string& suite_id, const std::string& test_id,
                   const std::string& coordinator) {
  v1::ExplainRequest request;
  request.set_suite_id(suite_id);
  request.set_test_id(test_id);
  v1::ExplainResponse response;
  absl::Status status = CallCoordinator(
      Remote(coordinator), &v1::Coordinator::Stub::Explain, request, &response);
  if (!status.ok()) return Fail(CodeFor(status), status);
  std::printf("%s %s (key %s)\n", test_id.c_str(),
              response.cached() ? "came from the cache" : "ran",
              response.key().substr(0, 12).c_str());
  if (response.compared_key().empty()) {
    std::printf("no earlier passing run of %s is known: nothing to compare\n",
                test_id.c_str());
  } else if (response.differences_size() == 0) {
    std::printf(
        "same key as the last passing run (%s)%s\n",
        response.compared_key().substr(0, 12).c_str(),
        response.cached() ? "" : ": its entry had expired or been evicted");
  } else {
    std::printf("since the last passing run (key %s):\n",
                response.compared_key().substr(0, 12).c_str());
    for (const std::string& change : response.differences()) {
      std::printf("  %s\n", LogSafe(change).c_str());
    }
  }
  return kExitOk;
}

int HistoryCommand(const std::string& suite_name, const std::string& test_id,
                   const LocalOrRemote& where, const std::string& json_path) {
  absl::StatusOr<Connection> connection =
      Connect(where.coordinator, where.cache_dir);
  if (!connection.ok()) return Fail(kExitInfrastructure, connection.status());
  v1::HistoryRequest request;
  request.set_suite_name(suite_name);
  request.set_test_id(test_id);
  v1::HistoryResponse response;
  absl::Status status = CallCoordinator(
      *connection, &v1::Coordinator::Stub::GetHistory, request, &response);
  if (!status.ok()) return Fail(CodeFor(status), status);
  if (!json_path.empty()) {
    nlohmann::json tests = nlohmann::json::array();
    for (const auto& entry : response.tests()) {
      nlohmann::json runs = nlohmann::json::array();
      for (const v1::RunRecord& run : entry.history().runs()) {
        runs.push_back({{"finished_at_unix_ms", run.finished_at_unix_ms()},
                        {"status", StatusName(run.status())},
                        {"wall_ms", run.wall_ms()},
                        {"cpu_ms", run.cpu_ms()},
                        {"peak_rss_kb", run.peak_rss_kb()},
                        {"memory_slope_kb_per_s", run.memory_slope_kb_per_s()},
                        {"worker", run.worker()},
                        {"suite_id", run.suite_id()}});
      }
      nlohmann::json test = InsightJson(entry.insight());
      test["older_runs"] = entry.history().older().runs();
      test["history"] = std::move(runs);
      tests.push_back(std::move(test));
    }
    nlohmann::json root = {
        {"suite", suite_name},
        {"baseline", response.has_baseline()
                         ? response.baseline().suite_id().empty()
                               ? std::string("pinned")
                               : response.baseline().suite_id()
                         : std::string("rolling")},
        {"tests", std::move(tests)}};
    if (absl::Status written = WriteFileAtomically(json_path, root.dump(2));
        !written.ok()) {
      return Fail(kExitInfrastructure, written);
    }
  }
  static const char* kTrends[] = {"-", "stable", "improving", "degrading"};
  if (!test_id.empty()) {
    const auto& entry = response.tests(0);
    std::printf("%-20s %-15s %10s %10s %10s %12s  %s\n", "FINISHED", "STATUS",
                "WALL MS", "CPU MS", "PEAK RSS", "SLOPE KiB/s", "WORKER");
    for (const v1::RunRecord& run : entry.history().runs()) {
      std::printf(
          "%-20s %-15s %10.1f %10.1f %10s %12.1f  %s\n",
          absl::FormatTime("%Y-%m-%d %H:%M:%S",
                           absl::FromUnixMillis(run.finished_at_unix_ms()),
                           absl::LocalTimeZone())
              .c_str(),
          StatusName(run.status()).c_str(), run.wall_ms(), run.cpu_ms(),
          FormatSize(run.peak_rss_kb() * 1024).c_str(),
          run.memory_slope_kb_per_s(), LogSafe(run.worker()).c_str());
    }
    if (entry.history().older().runs() > 0) {
      std::printf("(and %lld older runs, %lld passed)\n",
                  static_cast<long long>(entry.history().older().runs()),
                  static_cast<long long>(entry.history().older().passed()));
    }
  }
  std::printf("%-32s %6s %10s %10s %-10s %10s %7s %6s\n", "TEST", "RUNS",
              "MEDIAN MS", "PEAK RSS", "TREND", "MS/RUN", "FLIPS", "LEAK");
  for (const auto& entry : response.tests()) {
    const v1::TestInsight& insight = entry.insight();
    std::printf("%-32s %6d %10.1f %10s %-10s %+10.2f %6.0f%% %6s\n",
                LogSafe(insight.test_id()).c_str(), insight.runs(),
                insight.median_wall_ms(),
                FormatSize(insight.median_peak_rss_kb() * 1024).c_str(),
                kTrends[insight.trend() < 4 ? insight.trend() : 0],
                insight.slope_ms_per_run(), insight.flip_rate() * 100,
                insight.leak_suspected() ? "yes" : "");
  }
  return kExitOk;
}

int RegressionsCommand(const std::string& suite_id,
                       const LocalOrRemote& where) {
  absl::StatusOr<Connection> connection =
      Connect(where.coordinator, where.cache_dir);
  if (!connection.ok()) return Fail(kExitInfrastructure, connection.status());
  v1::SuiteReport report;
  absl::Status status = CallCoordinator(
      *connection, &v1::Coordinator::Stub::GetReport, Ref(suite_id), &report);
  if (!status.ok()) return Fail(CodeFor(status), status);
  if (report.changes_size() == 0) {
    std::printf("suite %s: no regressions or improvements\n", suite_id.c_str());
  }
  for (const v1::PerformanceChange& change : report.changes()) {
    std::printf("%s %s\n",
                change.kind() == v1::CHANGE_KIND_REGRESSION ? "REGRESSION"
                                                            : "improved  ",
                LogSafe(ChangeLine(change)).c_str());
  }
  return RegressionCount(report) > 0 ? 1 : kExitOk;
}

int BaselineCommand(const std::string& operation, const std::string& suite_name,
                    const std::string& from_suite_id,
                    const LocalOrRemote& where) {
  absl::StatusOr<Connection> connection =
      Connect(where.coordinator, where.cache_dir);
  if (!connection.ok()) return Fail(kExitInfrastructure, connection.status());
  v1::Baseline baseline;
  absl::Status status;
  if (operation == "show") {
    v1::HistoryRequest request;
    request.set_suite_name(suite_name);
    v1::HistoryResponse response;
    status = CallCoordinator(*connection, &v1::Coordinator::Stub::GetHistory,
                             request, &response);
    baseline = response.baseline();
  } else {
    v1::SetBaselineRequest request;
    request.set_suite_name(suite_name);
    request.set_from_suite_id(from_suite_id);
    request.set_clear(operation == "clear");
    status = CallCoordinator(*connection, &v1::Coordinator::Stub::SetBaseline,
                             request, &baseline);
  }
  if (!status.ok()) return Fail(CodeFor(status), status);
  if (baseline.until_unix_ms() == 0) {
    std::printf("%s: rolling baseline (the runs before the latest ones)\n",
                suite_name.c_str());
    return kExitOk;
  }
  std::printf("%s: baseline pinned to the runs finished by %s%s\n",
              suite_name.c_str(),
              absl::FormatTime("%Y-%m-%d %H:%M:%S",
                               absl::FromUnixMillis(baseline.until_unix_ms()),
                               absl::LocalTimeZone())
                  .c_str(),
              baseline.suite_id().empty()
                  ? ""
                  : absl::StrCat(" (suite ", baseline.suite_id(), ")").c_str());
  return kExitOk;
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

int CacheCommand(const std::string& operation, const std::string& address,
                 const std::string& writer) {
  std::unique_ptr<CacheClient> cache = NewGrpcCacheClient(address);
  v1::CacheStats stats;
  if (operation == "gc") {
    absl::StatusOr<v1::CacheGcResponse> gc = cache->Gc(writer);
    if (!gc.ok()) return Fail(CodeFor(gc.status()), gc.status());
    std::printf("removed %lld expired entries\n",
                static_cast<long long>(gc->expired_removed()));
    if (gc->corrupt_removed() > 0) {
      std::printf("removed %lld damaged entries\n",
                  static_cast<long long>(gc->corrupt_removed()));
    }
    if (!writer.empty()) {
      std::printf("removed %lld entries written by %s\n",
                  static_cast<long long>(gc->writer_removed()), writer.c_str());
    }
    stats = gc->stats();
  } else {
    absl::StatusOr<v1::CacheStats> got = cache->Stats();
    if (!got.ok()) return Fail(CodeFor(got.status()), got.status());
    stats = *got;
  }
  const int64_t lookups = stats.hits() + stats.misses();
  std::printf(
      "entries %lld, %s of %s; hits %lld, misses %lld (hit ratio %.1f%%); puts "
      "%lld; "
      "expirations %lld, evictions %lld, corrupt %lld; ttl %s\n",
      static_cast<long long>(stats.entries()),
      FormatSize(stats.bytes()).c_str(), FormatSize(stats.max_bytes()).c_str(),
      static_cast<long long>(stats.hits()),
      static_cast<long long>(stats.misses()),
      lookups ? 100.0 * static_cast<double>(stats.hits()) /
                    static_cast<double>(lookups)
              : 0.0,
      static_cast<long long>(stats.puts()),
      static_cast<long long>(stats.expirations()),
      static_cast<long long>(stats.evictions()),
      static_cast<long long>(stats.corrupt()),
      absl::FormatDuration(absl::Milliseconds(stats.ttl_ms())).c_str());
  // Each kind apart: Testfleet results, REAPI blobs and action results.
  const std::pair<const char*, const v1::CacheKindStats*> kinds[] = {
      {"results", &stats.results()},
      {"blobs", &stats.blobs()},
      {"action results", &stats.action_results()}};
  for (const auto& [name, kind] : kinds) {
    std::printf(
        "  %s: entries %lld, %s; hits %lld, misses %lld; puts %lld; "
        "evictions %lld, expirations %lld, corrupt %lld; pinned %lld\n",
        name, static_cast<long long>(kind->entries()),
        FormatSize(kind->bytes()).c_str(), static_cast<long long>(kind->hits()),
        static_cast<long long>(kind->misses()),
        static_cast<long long>(kind->puts()),
        static_cast<long long>(kind->evictions()),
        static_cast<long long>(kind->expirations()),
        static_cast<long long>(kind->corrupt()),
        static_cast<long long>(kind->pinned()));
  }
  return kExitOk;
}

}  // namespace testfleet
