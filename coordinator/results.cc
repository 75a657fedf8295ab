// Coordinator: results coming in (checked, accepted once, retried or
// finished), the history analysis of each run, and suites ending.
#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/action_key.h"
#include "common/digest.h"
#include "common/platform.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {

using coordinator_internal::kMaxPeakKb;

namespace {

// Workers' clocks may drift; a timestamp further than this from the
// coordinator's is not believed.
constexpr absl::Duration kMaxClockSkew = absl::Hours(24);
// A test's figures beyond these are impossible (a year of wall or CPU time).
constexpr double kMaxMs = 365.0 * 24 * 3600 * 1000;
constexpr int kMaxMemorySamples = 100'000;

bool Retriable(v1::TestStatus status) {
  return status == v1::TEST_STATUS_FAILED ||
         status == v1::TEST_STATUS_TIMED_OUT ||
         status == v1::TEST_STATUS_MEMORY_EXCEEDED;
}

void Count(v1::SuiteSummary& summary, const v1::TestResult& result) {
  summary.set_done(summary.done() + 1);
  switch (result.status()) {
    case v1::TEST_STATUS_PASSED:
      summary.set_passed(summary.passed() + 1);
      break;
    case v1::TEST_STATUS_FAILED:
      summary.set_failed(summary.failed() + 1);
      break;
    case v1::TEST_STATUS_TIMED_OUT:
      summary.set_timed_out(summary.timed_out() + 1);
      break;
    case v1::TEST_STATUS_MEMORY_EXCEEDED:
      summary.set_memory_exceeded(summary.memory_exceeded() + 1);
      break;
    case v1::TEST_STATUS_CANCELLED:
      summary.set_cancelled(summary.cancelled() + 1);
      break;
    case v1::TEST_STATUS_SKIPPED:
      summary.set_skipped(summary.skipped() + 1);
      break;
    default:
      summary.set_errors(summary.errors() + 1);
      break;
  }
  if (result.cached()) summary.set_cached(summary.cached() + 1);
  if (result.flaky()) summary.set_flaky(summary.flaky() + 1);
}

}  // namespace

bool Coordinator::Accept(Suite& suite, Lease* lease, v1::TestResult result) {
  // A worker's output tails are bounded by its own setting; a hostile or
  // misconfigured one is bounded here, keeping the end (where errors are).
  for (std::string* tail :
       {result.mutable_stdout_tail(), result.mutable_stderr_tail()}) {
    const size_t limit = options_.max_output_tail_bytes;
    if (limit > 0 && tail->size() > limit) tail->erase(0, tail->size() - limit);
  }
  auto found = suite.index_of.find(result.test_id());
  if (found == suite.index_of.end()) return false;
  const int index = found->second;
  if (lease != nullptr) {
    auto& outstanding = lease->outstanding;
    outstanding.erase(
        std::remove(outstanding.begin(), outstanding.end(), index),
        outstanding.end());
  }
  Test& test = suite.tests[index];
  if (test.phase == Phase::kDone || result.attempt() != test.attempt)
    return false;
  // A late report for work already given back to the queue: out of it, so
  // that a retry goes behind what is queued.
  if (test.phase == Phase::kQueued) suite.queue.Remove(index);
  // What a test without history took tells how long its likes will.
  if (!result.cached() && suite.queue.Guessed(index)) {
    const int others_running =
        suite.leased_guessed - (test.phase == Phase::kLeased ? 1 : 0);
    suite.queue.ObserveGuessed(result.wall_ms(), others_running);
  }
  if (options_.store && !result.cached()) {
    // The hex was made at submit; the whole key only when it is stored.
    auto make_key = [&] {
      return ActionKeyWithHex(test.spec, suite.spec.platform(), test.cache_key);
    };
    const CoordinatorStore::RunKey key{test.cache_key, make_key};
    // Written by the next commit, after the lock is released.
    const v1::TestHistory& history = options_.store->StageRun(
        staged_runs_, suite.spec.name(), suite.id, result, &key);
    dirty_runs_.insert(
        CoordinatorStore::HistoryKey(suite.spec.name(), test.spec.id()));
    Analyze(suite, test, history);
  }
  if (Retriable(result.status()) && test.attempt <= test.spec.retries()) {
    ++test.attempt;
    test.failed_before = true;
    Requeue(suite, index, /*first=*/false);
    ServeWaitingPulls();
    suite_changed_.SignalAll();
    return true;
  }
  Finish(suite, index, std::move(result), /*persist=*/true);
  return true;
}

void Coordinator::Analyze(Suite& suite, const Test& test,
                          const v1::TestHistory& history) {
  RegressionRule rule;
  if (test.spec.regression_tolerance() > 0)
    rule.tolerance = test.spec.regression_tolerance();
  TestAnalysis analysis =
      AnalyzeHistory(test.spec.id(), history,
                     suite.baseline ? &*suite.baseline : nullptr, rule);
  for (v1::PerformanceChange& change : analysis.changes) {
    *suite.report->add_changes() = std::move(change);
  }
  if (analysis.notable)
    *suite.report->add_insights() = std::move(analysis.insight);
}

void Coordinator::Finish(Suite& suite, int index, v1::TestResult result,
                         bool persist) {
  Test& test = suite.tests[index];
  if (test.phase == Phase::kLeased) suite.EndLease(index);
  test.phase = Phase::kDone;
  // Out of line when it never left the queue: a cache hit, a recovered
  // result, a disabled or cancelled test.
  suite.queue.Remove(index);
  result.set_attempt(result.cached() ? result.attempt() : test.attempt);
  result.set_flaky(test.failed_before &&
                   result.status() == v1::TEST_STATUS_PASSED);
  if (result.cache_key().empty()) result.set_cache_key(test.cache_key);
  v1::SuiteSummary& summary = *suite.report->mutable_summary();
  Count(summary, result);
  const bool failed = IsFailure(result.status());
  if (failed && !summary.has_first_failure_ms()) {
    summary.set_first_failure_ms(absl::ToUnixMillis(Now()) -
                                 suite.report->submitted_at_unix_ms());
  }
  if (options_.metrics) options_.metrics->Finished(result);
  if (persist && options_.store && options_.persist_running) {
    unsaved_.push_back({suite.id, index, result});
  }
  *suite.report->add_results() = std::move(result);
  const int fail_fast = suite.spec.fail_fast();
  if (failed && fail_fast > 0 && FailedCount(summary) == fail_fast &&
      summary.done() < summary.total()) {
    const std::string reason =
        absl::StrCat("--fail-fast: the suite stopped after ", fail_fast,
                     fail_fast == 1 ? " failure" : " failures",
                     " (the last: ", test.spec.id(), ")");
    spdlog::info("suite {}: {}", suite.id, LogSafe(reason));
    CancelRest(suite, reason);
  }
  if (summary.done() == summary.total()) {
    EndSuite(suite, suite.report->state() == v1::SUITE_STATE_CANCELLED
                        ? v1::SUITE_STATE_CANCELLED
                        : v1::SUITE_STATE_FINISHED);
  }
  suite_changed_.SignalAll();
}

void Coordinator::EndSuite(Suite& suite, v1::SuiteState state) {
  if (suite.ended) return;
  suite.ended = true;
  if (options_.blob_store && suite.spec.blobs_size() > 0)
    options_.blob_store->UnpinBlobs(suite.id);
  v1::SuiteReport& report = *suite.report;
  const int64_t now = absl::ToUnixMillis(Now());
  if (report.started_at_unix_ms() == 0) report.set_started_at_unix_ms(now);
  report.set_state(state);
  report.set_finished_at_unix_ms(now);
  report.mutable_summary()->set_wall_ms(now - report.submitted_at_unix_ms());
  report.mutable_summary()->set_running(0);
  // Serialized and written by the next commit, outside the lock (a report
  // can be hundreds of MiB); the suite stays in memory until it is saved.
  if (options_.store) unsaved_reports_.push_back(suite.report);
  const v1::SuiteSummary& summary = report.summary();
  spdlog::info(
      "suite {} ended: {} passed, {} failed, {} cancelled, {} cached, {} ms",
      suite.id, summary.passed(), FailedCount(summary), summary.cancelled(),
      summary.cached(), summary.wall_ms());
}

bool Coordinator::HeldBy(const Suite& suite, const v1::ReportedResult& reported,
                         const std::string& worker_id) const {
  auto found = suite.index_of.find(reported.result().test_id());
  if (found == suite.index_of.end()) return false;
  for (const Grant& grant : suite.tests[found->second].grants) {
    if (grant.lease_id == reported.lease_id() && grant.worker_id == worker_id &&
        grant.attempt == reported.result().attempt()) {
      return true;
    }
  }
  return false;
}

absl::Status Coordinator::SanitizeReported(v1::TestResult& result) const {
  if (!v1::TestStatus_IsValid(result.status()) ||
      result.status() == v1::TEST_STATUS_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown status ", result.status()));
  }
  for (double ms : {result.wall_ms(), result.user_cpu_ms(), result.sys_cpu_ms(),
                    result.memory_slope_kb_per_s()}) {
    if (!std::isfinite(ms) || std::fabs(ms) > kMaxMs) {
      return absl::InvalidArgumentError(absl::StrCat("impossible figure ", ms));
    }
  }
  if (result.wall_ms() < 0 || result.user_cpu_ms() < 0 ||
      result.sys_cpu_ms() < 0 || result.peak_rss_kb() < 0 ||
      result.peak_rss_kb() > kMaxPeakKb || result.stdout_bytes() < 0 ||
      result.stderr_bytes() < 0 || result.attempt() < 1) {
    return absl::InvalidArgumentError("a negative or impossible figure");
  }
  if (result.memory_curve_size() > kMaxMemorySamples) {
    return absl::InvalidArgumentError(absl::StrCat(result.memory_curve_size(),
                                                   " memory samples, over ",
                                                   kMaxMemorySamples));
  }
  for (const v1::MemorySample& sample : result.memory_curve()) {
    if (sample.offset_ms() < 0 || sample.rss_kb() < 0 ||
        sample.rss_kb() > kMaxPeakKb) {
      return absl::InvalidArgumentError("an impossible memory sample");
    }
  }
  // Reports and `--outputs` downloads trust these paths and digests.
  for (const v1::OutputFile& output : result.outputs())
    RETURN_IF_ERROR(CheckOutputFile(output));
  // A drifting clock is the worker's problem, not the report's. (Past
  // times are possible: a cached result keeps those of the run behind it.)
  const absl::Time now = Now();
  const int64_t latest = absl::ToUnixMillis(now + kMaxClockSkew);
  auto believable = [&](int64_t ms) { return ms > 0 && ms <= latest; };
  if (!believable(result.started_at_unix_ms()) ||
      !believable(result.finished_at_unix_ms()) ||
      result.finished_at_unix_ms() < result.started_at_unix_ms()) {
    const int64_t now_ms = absl::ToUnixMillis(now);
    result.set_finished_at_unix_ms(now_ms);
    result.set_started_at_unix_ms(now_ms -
                                  static_cast<int64_t>(result.wall_ms()));
  }
  result.set_flaky(false);  // the coordinator's to decide
  return absl::OkStatus();
}

absl::StatusOr<v1::ReportResultsResponse> Coordinator::ReportResults(
    const v1::ReportResultsRequest& request) {
  absl::StatusOr<v1::ReportResultsResponse> answer;
  absl::Notification answered;
  ReportResults(request, [&](absl::StatusOr<v1::ReportResultsResponse> got) {
    answer = std::move(got);
    answered.Notify();
  });
  answered.WaitForNotification();
  return answer;
}

void Coordinator::ReportResults(const v1::ReportResultsRequest& request,
                                ReportAnswer answer) {
  v1::ReportResultsResponse response;
  auto writes = std::make_unique<Writes>();
  {
    Locked lock(this);
    Worker* worker = fleet_.Find(request.worker_id());
    if (worker != nullptr) worker->last_seen = Steady();
    for (const v1::ReportedResult& reported : request.results()) {
      auto suite = suites_.find(reported.suite_id());
      if (worker == nullptr || suite == suites_.end() ||
          !HeldBy(*suite->second, reported, request.worker_id())) {
        spdlog::warn(
            "worker {} reported test {} of suite {} under lease {}, which it "
            "was not given; rejected",
            LogSafe(request.worker_id()), LogSafe(reported.result().test_id()),
            LogSafe(reported.suite_id()), LogSafe(reported.lease_id()));
        response.set_rejected(response.rejected() + 1);
        continue;
      }
      v1::TestResult result = reported.result();
      if (absl::Status sane = SanitizeReported(result); !sane.ok()) {
        spdlog::warn("worker {} reported test {} with {}; rejected",
                     LogSafe(request.worker_id()), LogSafe(result.test_id()),
                     std::string(sane.message()));
        response.set_rejected(response.rejected() + 1);
        continue;
      }
      auto lease = leases_.find(reported.lease_id());
      Lease* lease_ptr = lease == leases_.end() ? nullptr : &lease->second;
      if (lease_ptr != nullptr) {
        lease_ptr->deadline = Steady() + options_.lease;
        lease_ptr->current_since_unix_ms = absl::ToUnixMillis(Now());
      }
      const bool accepted =
          !suite->second->ended &&
          Accept(*suite->second, lease_ptr, std::move(result));
      if (accepted) {
        response.set_accepted(response.accepted() + 1);
        worker->info.set_tests_run(worker->info.tests_run() + 1);
      } else {
        response.set_ignored(response.ignored() + 1);
      }
      if (lease_ptr != nullptr && lease_ptr->outstanding.empty()) {
        ReleaseLease(reported.lease_id());
      }
    }
    // Told at once, not at the next heartbeat: the worker stops within the
    // test it is running (--fail-fast) and caches nothing cancelled.
    if (worker != nullptr)
      TellCancelled(*worker, *response.mutable_cancelled_lease_ids());
    TakeWrites(*writes);
  }
  // Acknowledged only once durable; the worker retries otherwise, and its
  // retry, ignored as a duplicate, lets the next commit write what is still
  // unsaved.
  CommitThen(std::move(writes), [response = std::move(response),
                                 answer = std::move(answer)](
                                    absl::Status saved) mutable {
    if (!saved.ok()) {
      std::move(answer)(absl::Status(
          saved.code(), absl::StrCat("results not saved (", saved.message(),
                                     "); resend them later")));
      return;
    }
    std::move(answer)(std::move(response));
  });
}

}  // namespace testfleet
