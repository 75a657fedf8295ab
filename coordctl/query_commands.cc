// The commands that read or change what a coordinator keeps: status,
// watch, cancel, report, workers, explain, history, regressions, baseline.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/text.h"
#include "common/units.h"
#include "coordctl/command_support.h"
#include "coordctl/commands.h"
#include "report/reports.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {

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

}  // namespace testfleet
