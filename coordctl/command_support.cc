#include "coordctl/command_support.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/cas_client.h"
#include "cache/input_tree.h"
#include "common/text.h"
#include "coordctl/transfer.h"
#include "report/html_report.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

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

}  // namespace

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
           bool fail_on_regression) {
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
}  // namespace testfleet
