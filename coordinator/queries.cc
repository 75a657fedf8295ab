// The Coordinator's read side: progress, reports, history, watching,
// explaining, and the fleet's lists (workers, suites, tests).
#include <algorithm>
#include <optional>
#include <set>
#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/action_key.h"
#include "common/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"

namespace testfleet {

using coordinator_internal::kEndedSuitesInMemory;
using coordinator_internal::Remaining;
using coordinator_internal::SteadyDeadline;

v1::SuiteProgress Coordinator::ProgressOf(const Suite& suite) const {
  v1::SuiteProgress progress;
  progress.set_suite_id(suite.id);
  progress.set_state(suite.report->state());
  *progress.mutable_summary() = suite.report->summary();
  progress.mutable_summary()->set_running(suite.leased);
  std::set<std::string> busy;
  for (const auto& [id, lease] : leases_) {
    if (lease.suite_id == suite.id) busy.insert(lease.worker_id);
  }
  progress.set_workers_busy(static_cast<int>(busy.size()));
  if (suite.ended) {
    progress.set_eta_ms(0);
    progress.mutable_summary()->set_wall_ms(suite.report->summary().wall_ms());
  } else {
    progress.set_eta_ms(static_cast<int64_t>(
        (suite.queue.expected_ms() + suite.LeasedExpectedMs()) / TotalSlots()));
    progress.mutable_summary()->set_wall_ms(
        absl::ToUnixMillis(Now()) - suite.report->submitted_at_unix_ms());
  }
  return progress;
}

template <typename View>
std::optional<
    absl::StatusOr<std::invoke_result_t<View, const Coordinator::Suite&>>>
Coordinator::InMemory(const std::string& suite_id, const Principal& caller,
                      View view) {
  absl::MutexLock lock(&mu_);
  auto it = suites_.find(suite_id);
  if (it == suites_.end()) return std::nullopt;
  if (absl::Status access =
          CheckAccess(suite_id, it->second->spec.owner(), caller, false);
      !access.ok()) {
    return access;
  }
  return view(*it->second);
}

absl::StatusOr<v1::SuiteProgress> Coordinator::Progress(
    const std::string& suite_id, const Principal& caller) {
  if (auto held = InMemory(suite_id, caller, [this](const Suite& suite) {
        return ProgressOf(suite);
      })) {
    return *std::move(held);
  }
  absl::StatusOr<v1::SuiteReport> report = Report(suite_id, caller);
  if (!report.ok()) return report.status();
  v1::SuiteProgress progress;
  progress.set_suite_id(suite_id);
  progress.set_state(report->state());
  *progress.mutable_summary() = report->summary();
  return progress;
}

absl::StatusOr<v1::SuiteReport> Coordinator::Report(const std::string& suite_id,
                                                    const Principal& caller) {
  // Copying a report of 200,000 results takes 120 ms, too long to hold every
  // call of the fleet up. An ended suite's report is final: copied after the
  // lock. A running one's results are only ever appended, so its first
  // `results` stay as they are: taken here with everything else, copied in
  // slices below, the lock released between them.
  struct Taken {
    std::shared_ptr<const v1::SuiteReport> report;
    bool ended = false;
    v1::SuiteReport head;  // all but the results, of a running suite
    int results = 0;
  };
  auto held = InMemory(suite_id, caller, [](const Suite& suite) {
    Taken taken;
    taken.report = suite.report;
    taken.ended = suite.ended;
    if (taken.ended) return taken;
    // Swapped out and back (nothing outside the lock reads a running
    // suite's report): the rest is copied without them.
    google::protobuf::RepeatedPtrField<v1::TestResult> results;
    results.Swap(suite.report->mutable_results());
    taken.head = *suite.report;
    suite.report->mutable_results()->Swap(&results);
    taken.results = suite.report->results_size();
    taken.head.mutable_summary()->set_running(suite.leased);
    return taken;
  });
  if (held) {
    if (!held->ok()) return held->status();
    Taken& taken = **held;
    if (taken.ended) return *taken.report;
    v1::SuiteReport& report = taken.head;
    report.mutable_results()->Reserve(taken.results);
    for (int from = 0; from < taken.results; from += kReportResultsPerLock) {
      absl::MutexLock lock(&mu_);
      const int to = std::min(taken.results, from + kReportResultsPerLock);
      for (int i = from; i < to; ++i) {
        *report.add_results() = taken.report->results(i);
      }
    }
    return std::move(report);
  }
  if (options_.store == nullptr) {
    return absl::NotFoundError(absl::StrCat("no suite with id ", suite_id));
  }
  ASSIGN_OR_RETURN(v1::SuiteReport report,
                   options_.store->LoadReport(suite_id));
  RETURN_IF_ERROR(CheckAccess(suite_id, report.owner(), caller, false));
  return report;
}

absl::StatusOr<v1::HistoryResponse> Coordinator::History(
    const v1::HistoryRequest& request, const Principal& caller) {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("this coordinator keeps no history");
  }
  const std::string& name = request.suite_name();
  if (name.empty()) {
    return absl::InvalidArgumentError("name the suite whose history you want");
  }
  RETURN_IF_ERROR(CheckNameOwner(name, caller, /*change=*/false));
  v1::HistoryResponse response;
  std::optional<v1::Baseline> baseline = options_.store->GetBaseline(name);
  if (baseline) *response.mutable_baseline() = *baseline;
  std::vector<std::pair<std::string, v1::TestHistory>> tests;
  if (!request.test_id().empty()) {
    std::optional<v1::TestHistory> history =
        options_.store->History(name, request.test_id());
    if (!history) {
      return absl::NotFoundError(absl::StrCat(
          "no history for test ", request.test_id(), " of suite \"", name,
          "\": it has not run here yet (results from the cache do not count)"));
    }
    tests.emplace_back(request.test_id(), *std::move(history));
  } else {
    ASSIGN_OR_RETURN(tests, options_.store->SuiteHistory(name));
    if (tests.empty()) {
      return absl::NotFoundError(
          absl::StrCat("no history for suite \"", name,
                       "\": no test of a suite by that name has run here"));
    }
  }
  for (auto& [id, history] : tests) {
    v1::HistoryResponse::Entry& entry = *response.add_tests();
    entry.set_test_id(id);
    *entry.mutable_insight() =
        AnalyzeHistory(id, history, baseline ? &*baseline : nullptr).insight;
    *entry.mutable_history() = std::move(history);
  }
  return response;
}

absl::StatusOr<v1::Baseline> Coordinator::SetBaseline(
    const v1::SetBaselineRequest& request, const Principal& caller) {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("this coordinator keeps no history");
  }
  if (request.suite_name().empty()) {
    return absl::InvalidArgumentError("name the suite to set a baseline for");
  }
  RETURN_IF_ERROR(
      CheckNameOwner(request.suite_name(), caller, /*change=*/true));
  v1::Baseline baseline;
  baseline.set_suite_name(request.suite_name());
  if (request.clear()) {
    RETURN_IF_ERROR(options_.store->ClearBaseline(request.suite_name()));
    return baseline;
  }
  const int64_t now = absl::ToUnixMillis(Now());
  baseline.set_pinned_at_unix_ms(now);
  baseline.set_until_unix_ms(now);
  if (!request.from_suite_id().empty()) {
    ASSIGN_OR_RETURN(v1::SuiteReport report,
                     Report(request.from_suite_id(), caller));
    if (report.name() != request.suite_name()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "suite ", request.from_suite_id(), " is \"", report.name(),
          "\", not \"", request.suite_name(), "\""));
    }
    if (report.state() != v1::SUITE_STATE_FINISHED) {
      return absl::FailedPreconditionError(absl::StrCat(
          "suite ", request.from_suite_id(),
          " has not finished; pin a baseline from a finished one"));
    }
    baseline.set_suite_id(request.from_suite_id());
    baseline.set_until_unix_ms(report.finished_at_unix_ms());
  }
  RETURN_IF_ERROR(options_.store->SetBaseline(baseline));
  return baseline;
}

namespace {

// A suite's listing as its report has it (an ended suite's is final).
v1::SuiteListing ListingOfReport(const v1::SuiteReport& report) {
  v1::SuiteListing listing;
  listing.set_suite_id(report.suite_id());
  listing.set_name(report.name());
  listing.set_owner(report.owner());
  listing.set_priority(report.priority());
  listing.set_state(report.state());
  *listing.mutable_summary() = report.summary();
  listing.set_submitted_at_unix_ms(report.submitted_at_unix_ms());
  listing.set_started_at_unix_ms(report.started_at_unix_ms());
  listing.set_finished_at_unix_ms(report.finished_at_unix_ms());
  listing.set_regressions(RegressionCount(report));
  return listing;
}

// Appends what `report` holds past `cursor` to `event` and advances it.
void TakeNew(const v1::SuiteReport& report, Coordinator::WatchCursor& cursor,
             v1::WatchEvent& event) {
  for (size_t i = cursor.results;
       i < static_cast<size_t>(report.results_size()); ++i) {
    *event.add_finished() = report.results(static_cast<int>(i));
  }
  cursor.results = static_cast<size_t>(report.results_size());
  for (size_t i = cursor.changes;
       i < static_cast<size_t>(report.changes_size()); ++i) {
    *event.add_changes() = report.changes(static_cast<int>(i));
  }
  cursor.changes = static_cast<size_t>(report.changes_size());
}

}  // namespace

absl::StatusOr<bool> Coordinator::NextEvent(const std::string& suite_id,
                                            WatchCursor* cursor,
                                            absl::Duration max_wait,
                                            v1::WatchEvent* event,
                                            const Principal& caller) {
  const absl::Time wait_until = SteadyDeadline(max_wait);
  {
    absl::MutexLock lock(&mu_);
    bool timed_out = false;
    while (true) {
      // Looked up again after every wait: an ended suite may be dropped from
      // memory meanwhile, and is then read from the store below.
      auto it = suites_.find(suite_id);
      if (it == suites_.end()) break;
      Suite& suite = *it->second;
      RETURN_IF_ERROR(CheckAccess(suite_id, suite.spec.owner(), caller, false));
      const size_t available =
          static_cast<size_t>(suite.report->results_size());
      if (available > cursor->results || suite.ended || shutting_down_ ||
          timed_out) {
        *event->mutable_progress() = ProgressOf(suite);
        TakeNew(*suite.report, *cursor, *event);
        return suite.ended;
      }
      timed_out = suite_changed_.WaitWithTimeout(&mu_, Remaining(wait_until));
    }
  }
  absl::StatusOr<v1::SuiteReport> report = Report(suite_id, caller);
  if (!report.ok()) return report.status();
  event->mutable_progress()->set_suite_id(suite_id);
  event->mutable_progress()->set_state(report->state());
  *event->mutable_progress()->mutable_summary() = report->summary();
  TakeNew(*report, *cursor, *event);
  return true;
}

absl::StatusOr<v1::ExplainResponse> Coordinator::Explain(
    const std::string& suite_id, const std::string& test_id,
    const Principal& caller) {
  v1::ExplainResponse response;
  v1::ActionKey current;
  std::string suite_name;
  {
    absl::MutexLock lock(&mu_);
    auto it = suites_.find(suite_id);
    if (it == suites_.end()) {
      return absl::NotFoundError(absl::StrCat(
          "suite ", suite_id, " is not among the ", kEndedSuitesInMemory,
          " most recent suites this coordinator holds; explain a newer run"));
    }
    const Suite& suite = *it->second;
    RETURN_IF_ERROR(CheckAccess(suite_id, suite.spec.owner(), caller, false));
    auto index = suite.index_of.find(test_id);
    if (index == suite.index_of.end()) {
      return absl::NotFoundError(
          absl::StrCat("suite ", suite_id, " has no test \"", test_id, "\""));
    }
    current = ComputeActionKey(suite.tests[index->second].spec,
                               suite.spec.platform());
    suite_name = suite.spec.name();
    for (const v1::TestResult& result : suite.report->results()) {
      if (result.test_id() == test_id) response.set_cached(result.cached());
    }
  }
  response.set_key(current.hex());
  std::optional<v1::TestHistory> history;
  if (options_.store) history = options_.store->History(suite_name, test_id);
  if (!history) return response;
  // This run may itself be the last passing one: compare with the one before.
  const v1::ActionKey& earlier = history->last_key().hex() == current.hex()
                                     ? history->previous_key()
                                     : history->last_key();
  if (earlier.hex().empty()) return response;
  response.set_compared_key(earlier.hex());
  for (std::string& change : DescribeKeyChanges(earlier, current)) {
    response.add_differences(std::move(change));
  }
  return response;
}

CoordinatorSnapshot Coordinator::Snapshot() {
  absl::MutexLock lock(&mu_);
  CoordinatorSnapshot snapshot;
  for (const auto& [id, suite] : suites_) {
    if (suite->ended) continue;
    ++snapshot.unfinished_suites;
    snapshot.queued_by_priority[suite->spec.priority()] += suite->queue.size();
    snapshot.running_tests += suite->leased;
    snapshot.queued_expected_ms += suite->queue.expected_ms();
    snapshot.running_expected_ms += suite->LeasedExpectedMs();
  }
  for (const auto& [id, worker] : fleet_.workers()) {
    ++snapshot.workers;
    snapshot.slots += worker.info.slots();
    snapshot.free_slots +=
        std::max(0, worker.info.slots() - worker.info.busy_slots());
  }
  return snapshot;
}

v1::ListWorkersResponse Coordinator::ListWorkers() {
  absl::MutexLock lock(&mu_);
  v1::ListWorkersResponse response;
  for (const auto& [id, worker] : fleet_.workers()) {
    v1::WorkerInfo& info = *response.add_workers();
    info = worker.info;
    for (const auto& [lease_id, cancelled] : worker.leases) {
      auto lease = leases_.find(lease_id);
      if (lease == leases_.end() || lease->second.outstanding.empty()) continue;
      auto suite = suites_.find(lease->second.suite_id);
      if (suite == suites_.end()) continue;
      v1::SlotActivity& slot = *info.add_running();
      slot.set_suite_id(suite->second->id);
      slot.set_suite_name(suite->second->spec.name());
      slot.set_test_id(
          suite->second->tests[lease->second.outstanding.front()].spec.id());
      slot.set_since_unix_ms(lease->second.current_since_unix_ms);
      slot.set_tests_left(static_cast<int>(lease->second.outstanding.size()));
    }
  }
  return response;
}

v1::SuiteListing Coordinator::ListingOf(const Suite& suite) const {
  // The report holds the name, owner, priority and times; the progress
  // what is live (running tests, wall time so far, ETA, busy workers).
  const v1::SuiteProgress progress = ProgressOf(suite);
  v1::SuiteListing listing = ListingOfReport(*suite.report);
  listing.set_state(progress.state());
  *listing.mutable_summary() = progress.summary();
  listing.set_eta_ms(progress.eta_ms());
  listing.set_workers_busy(progress.workers_busy());
  return listing;
}

absl::StatusOr<v1::SuiteListing> Coordinator::Listing(
    const std::string& suite_id, const Principal& caller) {
  if (auto held = InMemory(suite_id, caller, [this](const Suite& suite) {
        return ListingOf(suite);
      })) {
    return *std::move(held);
  }
  ASSIGN_OR_RETURN(v1::SuiteReport report, Report(suite_id, caller));
  return ListingOfReport(report);
}

std::vector<v1::SuiteListing> Coordinator::ListSuites(const Principal& caller) {
  absl::MutexLock lock(&mu_);
  std::vector<const Suite*> visible;
  for (const auto& [id, suite] : suites_) {
    if (caller.CanRead(suite->spec.owner())) visible.push_back(suite.get());
  }
  std::sort(visible.begin(), visible.end(), [](const Suite* a, const Suite* b) {
    if (a->ended != b->ended) return !a->ended;
    if (a->ended) return a->sequence > b->sequence;
    if (a->spec.priority() != b->spec.priority())
      return a->spec.priority() > b->spec.priority();
    return a->sequence < b->sequence;
  });
  std::vector<v1::SuiteListing> listings;
  listings.reserve(visible.size());
  for (const Suite* suite : visible) listings.push_back(ListingOf(*suite));
  return listings;
}

std::vector<Coordinator::TestMatch> Coordinator::FindTests(
    const std::string& query, size_t limit, const Principal& caller) {
  absl::MutexLock lock(&mu_);
  std::vector<const Suite*> visible;
  for (const auto& [id, suite] : suites_) {
    if (caller.CanRead(suite->spec.owner())) visible.push_back(suite.get());
  }
  std::sort(visible.begin(), visible.end(), [](const Suite* a, const Suite* b) {
    return a->sequence > b->sequence;
  });
  std::vector<TestMatch> matches;
  for (const Suite* suite : visible) {
    for (const Test& test : suite->tests) {
      if (matches.size() >= limit) return matches;
      if (absl::StrContains(test.spec.id(), query)) {
        matches.push_back({suite->id, suite->spec.name(), test.spec.id()});
      }
    }
  }
  return matches;
}

}  // namespace testfleet
