#include "coordinator/coordinator.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/action_key.h"
#include "common/platform.h"
#include "common/status_macros.h"
#include "coordinator/perf_analysis.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

// Ended suites kept in memory for watchers; older ones are read from the store.
constexpr size_t kEndedSuitesInMemory = 64;

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

absl::Status ValidateSuite(const v1::SuiteSpec& suite, int max_tests) {
  if (suite.tests_size() == 0) {
    return absl::InvalidArgumentError("the suite has no tests");
  }
  if (max_tests > 0 && suite.tests_size() > max_tests) {
    return absl::InvalidArgumentError(
        absl::StrCat("the suite has ", suite.tests_size(),
                     " tests, over this coordinator's limit of ", max_tests,
                     " (--max-suite-tests); split it into smaller suites"));
  }
  std::set<std::string> ids;
  for (int i = 0; i < suite.tests_size(); ++i) {
    const v1::TestSpec& test = suite.tests(i);
    if (test.id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tests[", i, "].id is empty"));
    }
    if (!ids.insert(test.id()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("tests[", i, "].id: duplicate id \"", test.id(), "\""));
    }
    if (test.argv_size() == 0 || test.argv(0).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tests[", i, "].cmd is empty"));
    }
    if (test.timeout_ms() < 0 || test.memory_limit_bytes() < 0 ||
        test.retries() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tests[", i, "] has a negative timeout, memory limit or retries"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)) {
  std::random_device random;
  id_prefix_ =
      absl::StrFormat("%s-%04x",
                      absl::FormatTime("%Y%m%d-%H%M%S", options_.clock->Now(),
                                       absl::UTCTimeZone()),
                      random() & 0xffff);
}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutting_down_ = true;
  work_available_.SignalAll();
  suite_changed_.SignalAll();
}

std::unique_ptr<Coordinator::Suite> Coordinator::BuildSuite(
    v1::SuiteSpec spec) {
  auto suite = std::make_unique<Suite>();
  const int n = spec.tests_size();
  suite->tests.resize(n);
  std::vector<double> known;
  for (int i = 0; i < n; ++i) {
    Test& test = suite->tests[i];
    test.spec = std::move(*spec.mutable_tests(i));
    test.cache_key = ComputeActionKey(test.spec, spec.platform()).hex();
    suite->index_of[test.spec.id()] = i;
    std::optional<TestExpectation> expected;
    if (options_.store)
      expected = options_.store->Expected(spec.name(), test.spec.id());
    test.expected_ms = expected ? expected->wall_ms
                       : test.spec.expected_ms() > 0
                           ? static_cast<double>(test.spec.expected_ms())
                           : -1;
    test.expected_peak_kb = expected ? expected->peak_rss_kb : 0;
    if (expected) known.push_back(expected->wall_ms);
  }
  spec.clear_tests();
  if (options_.store)
    suite->baseline = options_.store->GetBaseline(spec.name());
  // Tests without history are expected to take the suite's median.
  double fallback = absl::ToDoubleMilliseconds(options_.default_expected);
  if (!known.empty()) {
    std::nth_element(known.begin(), known.begin() + known.size() / 2,
                     known.end());
    fallback = known[known.size() / 2];
  }
  for (Test& test : suite->tests) {
    if (test.expected_ms < 0) test.expected_ms = fallback;
  }
  suite->order.reserve(n);
  for (int i = 0; i < n; ++i) suite->order.push_back(i);
  std::stable_sort(suite->order.begin(), suite->order.end(), [&](int a, int b) {
    const Test& ta = suite->tests[a];
    const Test& tb = suite->tests[b];
    if (ta.spec.priority() != tb.spec.priority())
      return ta.spec.priority() > tb.spec.priority();
    return ta.expected_ms > tb.expected_ms;
  });
  suite->spec = std::move(spec);
  return suite;
}

Coordinator::Suite& Coordinator::Install(std::unique_ptr<Suite> suite,
                                         const std::string& id,
                                         uint64_t sequence,
                                         int64_t submitted_at_ms) {
  suite->id = id;
  suite->sequence = sequence;
  v1::SuiteReport& report = suite->report;
  report.set_suite_id(id);
  report.set_name(suite->spec.name());
  report.set_priority(suite->spec.priority());
  report.set_owner(suite->spec.owner());
  report.set_state(v1::SUITE_STATE_QUEUED);
  report.set_submitted_at_unix_ms(submitted_at_ms);
  report.mutable_summary()->set_total(static_cast<int>(suite->tests.size()));
  suite->queued = static_cast<int>(suite->tests.size());
  const absl::Time now = Now();
  for (Test& test : suite->tests) {
    suite->queued_expected_ms += test.expected_ms;
    test.queued_at = now;
  }
  Suite& installed = *suite;
  suites_[id] = std::move(suite);
  return installed;
}

void Coordinator::FinishQueued(Suite& suite, int index, v1::TestResult result,
                               bool persist) {
  --suite.queued;
  suite.queued_expected_ms -= suite.tests[index].expected_ms;
  Finish(suite, index, std::move(result), persist);
}

absl::StatusOr<v1::SubmitSuiteResponse> Coordinator::Submit(
    v1::SuiteSpec spec) {
  if (absl::Status valid = ValidateSuite(spec, options_.max_suite_tests);
      !valid.ok()) {
    return valid;
  }
  v1::RunningSuite running;
  {
    absl::MutexLock lock(&mu_);
    if (options_.max_suites_per_owner > 0 && !spec.owner().empty()) {
      int unfinished = 0;
      for (const auto& [id, suite] : suites_) {
        unfinished += !suite->ended && suite->spec.owner() == spec.owner();
      }
      if (unfinished >= options_.max_suites_per_owner) {
        return absl::ResourceExhaustedError(
            absl::StrCat(spec.owner(), " already has ", unfinished,
                         " unfinished suites, this coordinator's limit "
                         "(--max-suites-per-token); wait for one to end"));
      }
    }
    running.set_suite_id(absl::StrCat(id_prefix_, "-", next_id_));
    running.set_sequence(next_id_++);
  }
  running.set_submitted_at_unix_ms(absl::ToUnixMillis(Now()));
  if (options_.store && options_.persist_running) {
    // Durable before it is acknowledged: a restarted coordinator resumes it.
    // (Swapped in and out, not copied: a suite can be 256 MiB.)
    running.mutable_spec()->Swap(&spec);
    absl::Status saved = options_.store->SaveRunningSuite(running);
    spec.Swap(running.mutable_spec());
    if (!saved.ok()) return saved;
  }
  std::unique_ptr<Suite> suite = BuildSuite(std::move(spec));
  const int n = static_cast<int>(suite->tests.size());
  std::vector<std::string> keys(n);
  for (int i = 0; i < n; ++i) keys[i] = suite->tests[i].cache_key;
  std::vector<std::optional<v1::CachedResult>> hits(n);
  if (options_.cache) {
    auto looked_up = options_.cache->Lookup(keys);
    if (looked_up.ok()) {
      hits = std::move(*looked_up);
    } else {
      spdlog::warn("cache lookup at submit failed ({}); every test will run",
                   looked_up.status().ToString());
    }
  }

  v1::SubmitSuiteResponse response;
  absl::MutexLock lock(&mu_);
  Suite& s = Install(std::move(suite), running.suite_id(), running.sequence(),
                     running.submitted_at_unix_ms());
  response.set_suite_id(s.id);
  for (int i = 0; i < n; ++i) {
    if (!hits[i].has_value()) continue;
    v1::TestResult result = std::move(*hits[i]->mutable_result());
    result.set_test_id(s.tests[i].spec.id());
    result.set_cached(true);
    result.set_flaky(false);
    result.set_cache_key(s.tests[i].cache_key);
    response.set_cached(response.cached() + 1);
    FinishQueued(s, i, std::move(result), /*persist=*/true);
  }
  (void)FlushFinished();  // failures logged; retried by the next flush
  spdlog::info(
      "suite {} \"{}\" submitted: {} tests, {} from the cache, priority {}",
      s.id, s.spec.name(), n, response.cached(), s.spec.priority());
  work_available_.SignalAll();
  return response;
}

absl::StatusOr<int> Coordinator::Recover() {
  if (options_.store == nullptr || !options_.persist_running) return 0;
  absl::StatusOr<std::vector<CoordinatorStore::RecoveredSuite>> recovered =
      options_.store->LoadRunningSuites();
  if (!recovered.ok()) return recovered.status();
  for (CoordinatorStore::RecoveredSuite& r : *recovered) {
    std::unique_ptr<Suite> suite = BuildSuite(*r.suite.mutable_spec());
    absl::MutexLock lock(&mu_);
    next_id_ = std::max<uint64_t>(next_id_, r.suite.sequence() + 1);
    Suite& s = Install(std::move(suite), r.suite.suite_id(), r.suite.sequence(),
                       r.suite.submitted_at_unix_ms());
    for (auto& [index, result] : r.finished) {
      if (index < 0 || index >= static_cast<int>(s.tests.size()) ||
          s.tests[index].phase == Phase::kDone) {
        continue;
      }
      FinishQueued(s, index, std::move(result), /*persist=*/false);
    }
    if (!s.ended && s.report.summary().done() > 0) {
      s.report.set_state(v1::SUITE_STATE_RUNNING);
      s.report.set_started_at_unix_ms(s.report.submitted_at_unix_ms());
    }
    spdlog::info("suite {} \"{}\" resumed: {} of {} tests already finished",
                 s.id, s.spec.name(), s.report.summary().done(),
                 s.report.summary().total());
  }
  absl::MutexLock lock(&mu_);
  work_available_.SignalAll();
  return static_cast<int>(recovered->size());
}

absl::Status Coordinator::FlushFinished() {
  if (options_.store == nullptr || unsaved_.empty()) return absl::OkStatus();
  absl::Status saved = options_.store->SaveFinished(unsaved_);
  NoteStoreWrite(saved);
  // On failure they are kept: a report's retry finds them still unsaved.
  if (saved.ok()) unsaved_.clear();
  return saved;
}

void Coordinator::NoteStoreWrite(const absl::Status& status) {
  // Said when writes start failing and when they work again, not per write.
  if (!status.ok() && !store_failing_) {
    spdlog::error(
        "store writes failing: {}; finished results stay in memory, workers "
        "resend theirs",
        status.ToString());
  } else if (status.ok() && store_failing_) {
    spdlog::info("store writes work again");
  }
  store_failing_ = !status.ok();
}

bool Coordinator::HasQueuedWorkFor(const Suite& suite, const Worker& worker) {
  return !suite.ended && suite.queued > 0 &&
         PlatformsMatch(suite.spec.platform(), worker.info.platform());
}

bool Coordinator::HasWorkFor(const Worker& worker) const {
  for (const auto& [id, suite] : suites_) {
    if (HasQueuedWorkFor(*suite, worker)) return true;
  }
  return false;
}

Coordinator::Suite* Coordinator::PickSuite(const Worker& worker) {
  Suite* best = nullptr;
  for (auto& [id, suite] : suites_) {
    if (!HasQueuedWorkFor(*suite, worker)) continue;
    if (best == nullptr) {
      best = suite.get();
      continue;
    }
    const int p = suite->spec.priority(), bp = best->spec.priority();
    // Higher priority first; among equals, the suite with the fewest running
    // tests (fair share), then the oldest.
    if (p > bp || (p == bp && (suite->leased < best->leased ||
                               (suite->leased == best->leased &&
                                suite->sequence < best->sequence)))) {
      best = suite.get();
    }
  }
  return best;
}

int Coordinator::PopTest(Suite& suite) {
  while (!suite.requeued.empty()) {
    int index = suite.requeued.front();
    suite.requeued.pop_front();
    if (suite.tests[index].phase == Phase::kQueued) return index;
  }
  while (suite.next < suite.order.size()) {
    int index = suite.order[suite.next++];
    if (suite.tests[index].phase == Phase::kQueued) return index;
  }
  return -1;
}

void Coordinator::Requeue(Suite& suite, int index, bool first) {
  Test& test = suite.tests[index];
  test.phase = Phase::kQueued;
  test.lease_id.clear();
  test.queued_at = Now();
  ++suite.queued;
  suite.queued_expected_ms += test.expected_ms;
  if (first) {
    suite.requeued.push_front(index);
  } else {
    suite.requeued.push_back(index);
  }
}

int Coordinator::TotalSlots() const {
  int slots = 0;
  for (const auto& [id, worker] : workers_) slots += worker.info.slots();
  return std::max(slots, 1);
}

bool Coordinator::HasRoomFor(const Test& test, const Worker& worker) const {
  const int64_t need = test.expected_peak_kb;
  const int64_t free = worker.info.free_memory_kb();
  if (need == 0 || free == 0 || need <= free) return true;  // fits, or unknown
  // Too big for this worker: leave it for one with room, if there is one.
  for (const auto& [id, other] : workers_) {
    if (other.info.free_memory_kb() >= need) return false;
  }
  return true;
}

v1::Shard Coordinator::MakeShard(Suite& suite, Worker& worker) {
  // Guided self-scheduling: a shard holds about half a slot's share of the
  // queued work, so shards shrink as the suite drains and the last ones
  // finish together.
  const double target_ms =
      std::min(absl::ToDoubleMilliseconds(options_.max_shard_duration),
               suite.queued_expected_ms / (2.0 * TotalSlots()));
  Lease lease;
  lease.id = absl::StrCat("L", next_id_++);
  lease.worker_id = worker.info.worker_id();
  lease.suite_id = suite.id;
  const absl::Time now = Now();
  lease.deadline = now + options_.lease;
  v1::Shard shard;
  shard.set_lease_id(lease.id);
  shard.set_suite_id(suite.id);
  shard.set_suite_name(suite.spec.name());
  shard.set_lease_deadline_unix_ms(absl::ToUnixMillis(lease.deadline));
  double shard_ms = 0;
  while (static_cast<int>(lease.outstanding.size()) <
         options_.max_shard_tests) {
    int index = PopTest(suite);
    if (index < 0) break;
    Test& test = suite.tests[index];
    if ((!lease.outstanding.empty() &&
         shard_ms + test.expected_ms > target_ms) ||
        !HasRoomFor(test, worker)) {
      suite.requeued.push_front(index);  // first in line for the next shard
      break;
    }
    shard_ms += test.expected_ms;
    test.phase = Phase::kLeased;
    test.lease_id = lease.id;
    test.leased_to.push_back(lease.worker_id);
    if (options_.metrics) options_.metrics->Dispatched(now - test.queued_at);
    --suite.queued;
    ++suite.leased;
    suite.leased_expected_ms += test.expected_ms;
    suite.queued_expected_ms -= test.expected_ms;
    lease.outstanding.push_back(index);
    v1::TestAssignment* assignment = shard.add_tests();
    *assignment->mutable_spec() = test.spec;
    assignment->set_attempt(test.attempt);
    assignment->set_cache_key(test.cache_key);
  }
  if (lease.outstanding.empty()) return shard;
  if (suite.report.state() == v1::SUITE_STATE_QUEUED) {
    suite.report.set_state(v1::SUITE_STATE_RUNNING);
    suite.report.set_started_at_unix_ms(absl::ToUnixMillis(now));
  }
  worker.leases[lease.id] = false;
  worker.info.set_busy_slots(static_cast<int>(worker.leases.size()));
  leases_[lease.id] = std::move(lease);
  return shard;
}

v1::RegisterWorkerResponse Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& owner) {
  absl::MutexLock lock(&mu_);
  Worker worker;
  worker.info.set_owner(owner);
  const std::string name = request.name().empty() ? "worker" : request.name();
  worker.info.set_worker_id(absl::StrCat(name, "#", next_id_++));
  worker.info.set_name(name);
  worker.info.set_slots(std::max(1, request.slots()));
  *worker.info.mutable_platform() = request.platform();
  worker.last_seen = Now();
  worker.info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(worker.last_seen));
  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker.info.worker_id());
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_cache_endpoint(options_.cache_endpoint);
  response.set_cache_service(options_.cache_service);
  spdlog::info("worker {} registered: {} slots, {}", worker.info.worker_id(),
               worker.info.slots(), PlatformString(request.platform()));
  workers_[worker.info.worker_id()] = std::move(worker);
  work_available_.SignalAll();
  return response;
}

v1::PullWorkResponse Coordinator::PullWork(const v1::PullWorkRequest& request) {
  v1::PullWorkResponse response;
  const absl::Time wait_until =
      absl::Now() + absl::Milliseconds(request.wait_ms());
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = workers_.find(request.worker_id());
    if (it == workers_.end()) {
      response.set_unknown_worker(true);
      return response;
    }
    Worker& worker = it->second;
    worker.last_seen = Now();
    if (shutting_down_) return response;
    if (HasWorkFor(worker)) break;
    if (work_available_.WaitWithDeadline(&mu_, wait_until)) return response;
  }
  Worker& worker = workers_.at(request.worker_id());
  int shards = std::min(request.free_slots(), worker.info.slots());
  // An overloaded machine (load well above its slots) takes one shard at a
  // time until it recovers.
  if (worker.info.load_average() > 2.0 * worker.info.slots())
    shards = std::min(shards, 1);
  for (int i = 0; i < shards; ++i) {
    Suite* suite = PickSuite(worker);
    if (suite == nullptr) break;
    v1::Shard shard = MakeShard(*suite, worker);
    if (shard.tests_size() == 0) break;
    *response.add_shards() = std::move(shard);
  }
  // Work is queued but none suits this worker (memory): hold the poll rather
  // than have it ask again at once.
  if (response.shards_size() == 0 && !shutting_down_) {
    work_available_.WaitWithDeadline(&mu_, wait_until);
  }
  return response;
}

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
  if (test.phase == Phase::kLeased) {
    --suite.leased;
    suite.leased_expected_ms -= test.expected_ms;
  } else {  // a late report for work already given back to the queue
    --suite.queued;
    suite.queued_expected_ms -= test.expected_ms;
  }
  if (options_.store && !result.cached()) {
    const v1::ActionKey key =
        ComputeActionKey(test.spec, suite.spec.platform());
    // Written with the rest of the report by ReportResults.
    Analyze(suite, test,
            options_.store->StageRun(pending_runs_, suite.spec.name(), suite.id,
                                     result, &key));
  }
  if (Retriable(result.status()) && test.attempt <= test.spec.retries()) {
    ++test.attempt;
    test.failed_before = true;
    Requeue(suite, index, /*first=*/false);
    work_available_.SignalAll();
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
    *suite.report.add_changes() = std::move(change);
  }
  if (analysis.notable)
    *suite.report.add_insights() = std::move(analysis.insight);
}

void Coordinator::Finish(Suite& suite, int index, v1::TestResult result,
                         bool persist) {
  Test& test = suite.tests[index];
  test.phase = Phase::kDone;
  test.lease_id.clear();
  result.set_attempt(result.cached() ? result.attempt() : test.attempt);
  result.set_flaky(test.failed_before &&
                   result.status() == v1::TEST_STATUS_PASSED);
  if (result.cache_key().empty()) result.set_cache_key(test.cache_key);
  Count(*suite.report.mutable_summary(), result);
  if (options_.metrics) options_.metrics->Finished(result);
  if (persist && options_.store && options_.persist_running) {
    unsaved_.push_back({suite.id, index, result});
  }
  *suite.report.add_results() = std::move(result);
  if (suite.report.summary().done() == suite.report.summary().total()) {
    EndSuite(suite, suite.report.state() == v1::SUITE_STATE_CANCELLED
                        ? v1::SUITE_STATE_CANCELLED
                        : v1::SUITE_STATE_FINISHED);
  }
  suite_changed_.SignalAll();
}

void Coordinator::EndSuite(Suite& suite, v1::SuiteState state) {
  if (suite.ended) return;
  suite.ended = true;
  v1::SuiteReport& report = suite.report;
  const int64_t now = absl::ToUnixMillis(Now());
  if (report.started_at_unix_ms() == 0) report.set_started_at_unix_ms(now);
  report.set_state(state);
  report.set_finished_at_unix_ms(now);
  report.mutable_summary()->set_wall_ms(now - report.submitted_at_unix_ms());
  report.mutable_summary()->set_running(0);
  if (options_.store) {
    (void)FlushFinished();  // failures logged; retried by the next flush
    absl::Status saved = options_.store->SaveReport(report);
    if (saved.ok() && options_.persist_running)
      saved = options_.store->EndRunningSuite(suite.id);
    if (!saved.ok())
      spdlog::error("saving the report of {}: {}", suite.id, saved.ToString());
  }
  const v1::SuiteSummary& summary = report.summary();
  spdlog::info("suite {} ended: {} passed, {} failed, {} cached, {} ms",
               suite.id, summary.passed(),
               summary.total() - summary.passed() - summary.skipped(),
               summary.cached(), summary.wall_ms());
  // Forget the oldest ended suites; their reports stay in the store.
  size_t ended = 0;
  for (const auto& [id, s] : suites_) ended += s->ended;
  for (auto it = suites_.begin();
       ended > kEndedSuitesInMemory && it != suites_.end();) {
    if (it->second->ended && it->second.get() != &suite && options_.store) {
      it = suites_.erase(it);
      --ended;
    } else {
      ++it;
    }
  }
}

void Coordinator::ReleaseLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  auto worker = workers_.find(it->second.worker_id);
  if (worker != workers_.end()) {
    worker->second.leases.erase(lease_id);
    worker->second.info.set_busy_slots(
        static_cast<int>(worker->second.leases.size()));
  }
  leases_.erase(it);
}

bool Coordinator::HeldBy(const Lease* lease, const Suite* suite,
                         const v1::ReportedResult& reported,
                         const std::string& worker_id) const {
  if (lease != nullptr) return lease->worker_id == worker_id;
  // An expired lease: a slow worker's late result still counts, so the test
  // remembers every worker it was given to. One nobody remembers (after a
  // restart) is taken from any worker.
  if (suite == nullptr) return true;
  auto found = suite->index_of.find(reported.result().test_id());
  if (found == suite->index_of.end()) return true;
  const std::vector<std::string>& leased_to =
      suite->tests[found->second].leased_to;
  return leased_to.empty() || std::find(leased_to.begin(), leased_to.end(),
                                        worker_id) != leased_to.end();
}

absl::Status Coordinator::CheckWorkerOwner(const std::string& worker_id,
                                           const std::string& owner) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.info.owner() == owner) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("worker ", worker_id, " was registered by another token"));
}

absl::StatusOr<std::string> Coordinator::OwnerOf(const std::string& suite_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = suites_.find(suite_id);
    if (it != suites_.end()) return it->second->spec.owner();
  }
  ASSIGN_OR_RETURN(v1::SuiteReport report, Report(suite_id));
  return report.owner();
}

absl::StatusOr<v1::ReportResultsResponse> Coordinator::ReportResults(
    const v1::ReportResultsRequest& request) {
  v1::ReportResultsResponse response;
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  auto worker = workers_.find(request.worker_id());
  if (worker != workers_.end()) worker->second.last_seen = now;
  for (const v1::ReportedResult& reported : request.results()) {
    auto suite = suites_.find(reported.suite_id());
    auto lease = leases_.find(reported.lease_id());
    Lease* lease_ptr = lease == leases_.end() ? nullptr : &lease->second;
    if (!HeldBy(lease_ptr,
                suite == suites_.end() ? nullptr : suite->second.get(),
                reported, request.worker_id())) {
      spdlog::warn(
          "worker {} reported {} of lease {}, which it does not hold; "
          "rejected",
          request.worker_id(), reported.result().test_id(),
          reported.lease_id());
      response.set_rejected(response.rejected() + 1);
      continue;
    }
    if (lease_ptr != nullptr) lease_ptr->deadline = now + options_.lease;
    bool accepted = suite != suites_.end() && !suite->second->ended &&
                    Accept(*suite->second, lease_ptr, reported.result());
    if (accepted) {
      response.set_accepted(response.accepted() + 1);
      if (worker != workers_.end()) {
        worker->second.info.set_tests_run(worker->second.info.tests_run() + 1);
      }
    } else {
      response.set_ignored(response.ignored() + 1);
    }
    if (lease_ptr != nullptr && lease_ptr->outstanding.empty()) {
      ReleaseLease(reported.lease_id());
    }
  }
  if (options_.store) NoteStoreWrite(options_.store->WriteRuns(pending_runs_));
  // Acknowledged only once durable; the worker retries otherwise, and its
  // retry, ignored as a duplicate, flushes what is still unsaved.
  if (absl::Status saved = FlushFinished(); !saved.ok()) {
    return absl::Status(saved.code(),
                        absl::StrCat("results not saved (", saved.message(),
                                     "); resend them later"));
  }
  return response;
}

v1::HeartbeatResponse Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end()) {
    response.set_unknown_worker(true);
    return response;
  }
  Worker& worker = it->second;
  worker.last_seen = Now();
  worker.info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(worker.last_seen));
  worker.info.set_load_average(request.load_average());
  worker.info.set_free_memory_kb(request.free_memory_kb());
  for (const std::string& lease_id : request.lease_ids()) {
    auto lease = leases_.find(lease_id);
    if (lease != leases_.end() &&
        lease->second.worker_id == worker.info.worker_id()) {
      lease->second.deadline = Now() + options_.lease;
    }
  }
  std::vector<std::string> cancelled;
  for (const auto& [lease_id, is_cancelled] : worker.leases) {
    if (is_cancelled) cancelled.push_back(lease_id);
  }
  for (const std::string& lease_id : cancelled) {
    response.add_cancelled_lease_ids(lease_id);
    ReleaseLease(lease_id);
  }
  return response;
}

void Coordinator::ExpireLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  Lease& lease = it->second;
  auto suite = suites_.find(lease.suite_id);
  if (suite != suites_.end() && !suite->second->ended) {
    Suite& s = *suite->second;
    for (int index : lease.outstanding) {
      Test& test = s.tests[index];
      if (test.phase == Phase::kLeased && test.lease_id == lease_id) {
        --s.leased;
        s.leased_expected_ms -= test.expected_ms;
        Requeue(s, index, /*first=*/true);
      }
    }
    spdlog::warn("lease {} of worker {} expired: {} tests of suite {} requeued",
                 lease_id, lease.worker_id, lease.outstanding.size(), s.id);
  }
  ReleaseLease(lease_id);
  work_available_.SignalAll();
}

void Coordinator::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  std::vector<std::string> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline < now) expired.push_back(id);
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.last_seen + options_.worker_timeout < now) {
      spdlog::warn("worker {} silent for {}; forgetting it", it->first,
                   absl::FormatDuration(now - it->second.last_seen));
      for (const auto& [lease_id, cancelled] : it->second.leases)
        expired.push_back(lease_id);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& id : expired) ExpireLease(id);
}

absl::StatusOr<int> Coordinator::Cancel(const std::string& suite_id) {
  absl::MutexLock lock(&mu_);
  auto it = suites_.find(suite_id);
  if (it == suites_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no running suite with id ", suite_id));
  }
  Suite& suite = *it->second;
  if (suite.ended) return 0;
  suite.report.set_state(v1::SUITE_STATE_CANCELLED);
  for (auto& [lease_id, lease] : leases_) {
    if (lease.suite_id != suite_id) continue;
    auto worker = workers_.find(lease.worker_id);
    if (worker != workers_.end()) worker->second.leases[lease_id] = true;
  }
  int cancelled = 0;
  const int64_t now = absl::ToUnixMillis(Now());
  for (size_t i = 0; i < suite.tests.size(); ++i) {
    if (suite.tests[i].phase == Phase::kDone) continue;
    v1::TestResult result;
    result.set_test_id(suite.tests[i].spec.id());
    result.set_status(v1::TEST_STATUS_CANCELLED);
    result.set_started_at_unix_ms(now);
    result.set_finished_at_unix_ms(now);
    ++cancelled;
    Finish(suite, static_cast<int>(i), std::move(result), /*persist=*/true);
  }
  (void)FlushFinished();  // failures logged; retried by the next flush
  return cancelled;
}

v1::SuiteProgress Coordinator::ProgressOf(const Suite& suite) const {
  v1::SuiteProgress progress;
  progress.set_suite_id(suite.id);
  progress.set_state(suite.report.state());
  *progress.mutable_summary() = suite.report.summary();
  progress.mutable_summary()->set_running(suite.leased);
  std::set<std::string> busy;
  double leased_expected_ms = 0;
  for (const auto& [id, lease] : leases_) {
    if (lease.suite_id != suite.id) continue;
    busy.insert(lease.worker_id);
    for (int index : lease.outstanding) {
      leased_expected_ms += suite.tests[index].expected_ms;
    }
  }
  progress.set_workers_busy(static_cast<int>(busy.size()));
  if (suite.ended) {
    progress.set_eta_ms(0);
    progress.mutable_summary()->set_wall_ms(suite.report.summary().wall_ms());
  } else {
    progress.set_eta_ms(static_cast<int64_t>(
        (suite.queued_expected_ms + leased_expected_ms) / TotalSlots()));
    progress.mutable_summary()->set_wall_ms(
        absl::ToUnixMillis(Now()) - suite.report.submitted_at_unix_ms());
  }
  return progress;
}

absl::StatusOr<v1::SuiteProgress> Coordinator::Progress(
    const std::string& suite_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = suites_.find(suite_id);
    if (it != suites_.end()) return ProgressOf(*it->second);
  }
  absl::StatusOr<v1::SuiteReport> report = Report(suite_id);
  if (!report.ok()) return report.status();
  v1::SuiteProgress progress;
  progress.set_suite_id(suite_id);
  progress.set_state(report->state());
  *progress.mutable_summary() = report->summary();
  return progress;
}

absl::StatusOr<v1::SuiteReport> Coordinator::Report(
    const std::string& suite_id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = suites_.find(suite_id);
    if (it != suites_.end()) {
      v1::SuiteReport report = it->second->report;
      report.mutable_summary()->set_running(it->second->leased);
      return report;
    }
  }
  if (options_.store) return options_.store->LoadReport(suite_id);
  return absl::NotFoundError(absl::StrCat("no suite with id ", suite_id));
}

absl::StatusOr<v1::HistoryResponse> Coordinator::History(
    const v1::HistoryRequest& request) {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("this coordinator keeps no history");
  }
  const std::string& name = request.suite_name();
  if (name.empty()) {
    return absl::InvalidArgumentError("name the suite whose history you want");
  }
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
    const v1::SetBaselineRequest& request) {
  if (options_.store == nullptr) {
    return absl::FailedPreconditionError("this coordinator keeps no history");
  }
  if (request.suite_name().empty()) {
    return absl::InvalidArgumentError("name the suite to set a baseline for");
  }
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
    ASSIGN_OR_RETURN(v1::SuiteReport report, Report(request.from_suite_id()));
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

absl::StatusOr<bool> Coordinator::NextEvent(const std::string& suite_id,
                                            size_t* cursor,
                                            absl::Duration max_wait,
                                            v1::WatchEvent* event) {
  const absl::Time wait_until = absl::Now() + max_wait;
  {
    absl::MutexLock lock(&mu_);
    bool timed_out = false;
    while (true) {
      // Looked up again after every wait: an ended suite may be dropped from
      // memory meanwhile, and is then read from the store below.
      auto it = suites_.find(suite_id);
      if (it == suites_.end()) break;
      Suite& suite = *it->second;
      const size_t available = static_cast<size_t>(suite.report.results_size());
      if (available > *cursor || suite.ended || shutting_down_ || timed_out) {
        *event->mutable_progress() = ProgressOf(suite);
        for (size_t i = *cursor; i < available; ++i) {
          *event->add_finished() = suite.report.results(static_cast<int>(i));
        }
        *cursor = available;
        return suite.ended;
      }
      timed_out = suite_changed_.WaitWithDeadline(&mu_, wait_until);
    }
  }
  absl::StatusOr<v1::SuiteReport> report = Report(suite_id);
  if (!report.ok()) return report.status();
  event->mutable_progress()->set_suite_id(suite_id);
  event->mutable_progress()->set_state(report->state());
  *event->mutable_progress()->mutable_summary() = report->summary();
  for (size_t i = *cursor; i < static_cast<size_t>(report->results_size());
       ++i) {
    *event->add_finished() = report->results(static_cast<int>(i));
  }
  *cursor = static_cast<size_t>(report->results_size());
  return true;
}

absl::StatusOr<v1::ExplainResponse> Coordinator::Explain(
    const std::string& suite_id, const std::string& test_id) {
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
    auto index = suite.index_of.find(test_id);
    if (index == suite.index_of.end()) {
      return absl::NotFoundError(
          absl::StrCat("suite ", suite_id, " has no test \"", test_id, "\""));
    }
    current = ComputeActionKey(suite.tests[index->second].spec,
                               suite.spec.platform());
    suite_name = suite.spec.name();
    for (const v1::TestResult& result : suite.report.results()) {
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
    snapshot.queued_by_priority[suite->spec.priority()] += suite->queued;
    snapshot.running_tests += suite->leased;
    snapshot.queued_expected_ms += suite->queued_expected_ms;
    snapshot.running_expected_ms += suite->leased_expected_ms;
  }
  for (const auto& [id, worker] : workers_) {
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
  for (const auto& [id, worker] : workers_)
    *response.add_workers() = worker.info;
  return response;
}

}  // namespace testfleet
