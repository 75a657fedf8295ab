#include "dashboard/json_views.h"

#include "common/test_status.h"
#include "common/text.h"
#include "report/reports.h"

namespace testfleet {
namespace {

std::string Tail(const std::string& text) {
  return ValidUtf8(text.size() > kStderrTailBytes
                       ? text.substr(text.size() - kStderrTailBytes)
                       : text);
}

}  // namespace

std::string JsonText(const nlohmann::json& json) {
  return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string SuiteStateName(v1::SuiteState state) {
  switch (state) {
    case v1::SUITE_STATE_QUEUED:
      return "queued";
    case v1::SUITE_STATE_RUNNING:
      return "running";
    case v1::SUITE_STATE_FINISHED:
      return "finished";
    case v1::SUITE_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

nlohmann::json SummaryJson(const v1::SuiteSummary& summary) {
  // From submission to the first failed result; null while none failed.
  nlohmann::json first_failure_ms = nullptr;
  if (summary.has_first_failure_ms())
    first_failure_ms = summary.first_failure_ms();
  return {{"total", summary.total()},
          {"done", summary.done()},
          {"running", summary.running()},
          {"passed", summary.passed()},
          {"failed", FailedCount(summary)},
          {"cached", summary.cached()},
          {"timed_out", summary.timed_out()},
          {"memory_exceeded", summary.memory_exceeded()},
          {"flaky", summary.flaky()},
          {"errors", summary.errors()},
          {"cancelled", summary.cancelled()},
          {"skipped", summary.skipped()},
          {"wall_ms", summary.wall_ms()},
          {"first_failure_ms", first_failure_ms}};
}

nlohmann::json ProgressJson(const v1::SuiteProgress& progress) {
  return {{"suite_id", progress.suite_id()},
          {"state", SuiteStateName(progress.state())},
          {"summary", SummaryJson(progress.summary())},
          {"workers_busy", progress.workers_busy()},
          {"eta_ms", progress.eta_ms()}};
}

nlohmann::json ListingJson(const v1::SuiteListing& listing) {
  return {{"suite_id", listing.suite_id()},
          {"name", ValidUtf8(listing.name())},
          {"owner", ValidUtf8(listing.owner())},
          {"priority", listing.priority()},
          {"state", SuiteStateName(listing.state())},
          {"summary", SummaryJson(listing.summary())},
          {"eta_ms", listing.eta_ms()},
          {"workers_busy", listing.workers_busy()},
          {"regressions", listing.regressions()},
          {"submitted_at_unix_ms", listing.submitted_at_unix_ms()},
          {"started_at_unix_ms", listing.started_at_unix_ms()},
          {"finished_at_unix_ms", listing.finished_at_unix_ms()}};
}

nlohmann::json WorkerJson(const v1::WorkerInfo& worker, int64_t now_unix_ms) {
  nlohmann::json running = nlohmann::json::array();
  for (const v1::SlotActivity& slot : worker.running()) {
    running.push_back(
        {{"suite_id", slot.suite_id()},
         {"suite_name", ValidUtf8(slot.suite_name())},
         {"test_id", ValidUtf8(slot.test_id())},
         {"running_ms",
          std::max<int64_t>(0, now_unix_ms - slot.since_unix_ms())},
         {"tests_left", slot.tests_left()}});
  }
  return {{"worker_id", ValidUtf8(worker.worker_id())},
          {"name", ValidUtf8(worker.name())},
          {"owner", ValidUtf8(worker.owner())},
          {"slots", worker.slots()},
          {"busy_slots", worker.busy_slots()},
          {"load_average", worker.load_average()},
          {"free_memory_kb", worker.free_memory_kb()},
          {"tests_run", worker.tests_run()},
          {"last_heartbeat_unix_ms", worker.last_heartbeat_unix_ms()},
          {"running", std::move(running)}};
}

nlohmann::json ResultRowJson(const v1::TestResult& result, size_t index) {
  nlohmann::json row = {{"i", index},
                        {"id", ValidUtf8(result.test_id())},
                        {"status", StatusName(result.status())},
                        {"wall_ms", result.wall_ms()},
                        {"cpu_ms", result.user_cpu_ms() + result.sys_cpu_ms()},
                        {"peak_rss_kb", result.peak_rss_kb()},
                        {"worker", ValidUtf8(result.worker())},
                        {"slot", result.slot()},
                        {"started", result.started_at_unix_ms()},
                        {"finished", result.finished_at_unix_ms()},
                        {"cached", result.cached()},
                        {"flaky", result.flaky()},
                        {"attempt", result.attempt()}};
  if (IsFailure(result.status())) {
    row["stderr_tail"] = Tail(result.stderr_tail());
    row["stdout_tail"] = Tail(result.stdout_tail());
    if (!result.error_message().empty())
      row["error"] = ValidUtf8(result.error_message());
    row["exit_code"] = result.exit_code();
    row["signal"] = result.signal();
  }
  return row;
}

nlohmann::json HistoryJson(const v1::HistoryResponse::Entry& entry) {
  nlohmann::json runs = nlohmann::json::array();
  for (const v1::RunRecord& run : entry.history().runs()) {
    runs.push_back({{"finished_at_unix_ms", run.finished_at_unix_ms()},
                    {"wall_ms", run.wall_ms()},
                    {"cpu_ms", run.cpu_ms()},
                    {"peak_rss_kb", run.peak_rss_kb()},
                    {"status", StatusName(run.status())},
                    {"worker", ValidUtf8(run.worker())},
                    {"suite_id", run.suite_id()},
                    {"memory_growing", run.memory_growing()}});
  }
  const v1::RunAggregate& older = entry.history().older();
  return {{"test_id", ValidUtf8(entry.test_id())},
          {"runs", std::move(runs)},
          {"older_runs", older.runs()},
          {"older_passed", older.passed()},
          {"insight", InsightJson(entry.insight())}};
}

nlohmann::json ExplainJson(const v1::ExplainResponse& explain) {
  nlohmann::json differences = nlohmann::json::array();
  for (const std::string& line : explain.differences()) {
    differences.push_back(ValidUtf8(line));
  }
  return {{"cached", explain.cached()},
          {"key", explain.key()},
          {"compared_key", explain.compared_key()},
          {"differences", std::move(differences)}};
}

nlohmann::json CacheJson(const v1::CacheStats& stats) {
  const int64_t lookups = stats.hits() + stats.misses();
  return {{"hits", stats.hits()},
          {"misses", stats.misses()},
          {"hit_rate", lookups > 0 ? static_cast<double>(stats.hits()) /
                                         static_cast<double>(lookups)
                                   : 0.0},
          {"bytes", stats.bytes()},
          {"max_bytes", stats.max_bytes()},
          {"entries", stats.entries()},
          {"results", stats.results().entries()},
          {"blobs", stats.blobs().entries()},
          {"action_results", stats.action_results().entries()}};
}

}  // namespace testfleet
