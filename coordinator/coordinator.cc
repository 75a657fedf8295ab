#include "coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/action_key.h"
#include "common/digest.h"
#include "common/platform.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

using coordinator_internal::kEndedSuitesInMemory;

// Ids a client or worker can name but not guess: 128 random bits.
constexpr int kIdBytes = 16;
// Workers' clocks may drift; a timestamp further than this from the
// coordinator's is not believed.
constexpr absl::Duration kMaxClockSkew = absl::Hours(24);
// A test's figures beyond these are impossible (a year of wall or CPU time,
// a petabyte of memory).
constexpr double kMaxMs = 365.0 * 24 * 3600 * 1000;
constexpr int64_t kMaxPeakKb = int64_t{1} << 40;
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

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::SetDashboardUrl(const std::string& base_url) {
  Locked lock(this);
  dashboard_url_ = base_url;
}

void Coordinator::Shutdown() {
  Locked lock(this);
  shutting_down_ = true;
  for (PullAnswer& answer : fleet_.TakeAllWaiting())
    Answer(std::move(answer), v1::PullWorkResponse());
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
    // A test that never passed counts as changed: it has no passing key.
    if (expected && expected->failed_recently) {
      test.urgency = Urgency::kFailedRecently;
    } else if (!expected || expected->last_passing_key != test.cache_key) {
      test.urgency = Urgency::kChanged;
    }
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
    if (options_.failures_first && ta.urgency != tb.urgency)
      return ta.urgency < tb.urgency;
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
  const absl::Time now = Steady();
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
  RETURN_IF_ERROR(CheckSuiteSpec(spec, options_.allow_outside_paths));
  const int max_tests = options_.max_suite_tests;
  if (max_tests > 0 && spec.tests_size() > max_tests) {
    return absl::InvalidArgumentError(
        absl::StrCat("the suite has ", spec.tests_size(),
                     " tests, over this coordinator's limit of ", max_tests,
                     " (--max-suite-tests); split it into smaller suites"));
  }
  if (spec.blobs_size() > 0 && options_.blob_store == nullptr) {
    return absl::FailedPreconditionError(
        "the suite names blobs, but this coordinator has no cache to keep "
        "them in (started with --no-cache-service)");
  }
  RETURN_IF_ERROR(ClaimSuiteName(spec.name(), spec.owner()));
  v1::RunningSuite running;
  {
    Locked lock(this);
    if (!spec.owner().empty()) {
      int unfinished = 0;
      int64_t tests = 0;
      for (const auto& [id, suite] : suites_) {
        if (suite->ended || suite->spec.owner() != spec.owner()) continue;
        ++unfinished;
        tests += suite->queued + suite->leased;
      }
      if (options_.max_suites_per_owner > 0 &&
          unfinished >= options_.max_suites_per_owner) {
        return absl::ResourceExhaustedError(
            absl::StrCat(spec.owner(), " already has ", unfinished,
                         " unfinished suites, this coordinator's limit "
                         "(--max-suites-per-token); wait for one to end"));
      }
      if (options_.max_tests_per_owner > 0 &&
          tests + spec.tests_size() > options_.max_tests_per_owner) {
        return absl::ResourceExhaustedError(absl::StrCat(
            spec.owner(), " has ", tests, " tests queued or running; ",
            spec.tests_size(), " more would pass this coordinator's limit of ",
            options_.max_tests_per_owner,
            " (--max-tests-per-token); wait for some to finish"));
      }
    }
    running.set_suite_id(absl::StrCat(
        absl::FormatTime("%Y%m%d-%H%M%S", Now(), absl::UTCTimeZone()), "-",
        RandomHex(kIdBytes)));
    running.set_sequence(next_sequence_++);
  }
  running.set_submitted_at_unix_ms(absl::ToUnixMillis(Now()));
  RETURN_IF_ERROR(PinSuiteBlobs(running.suite_id(), spec));
  if (options_.store && options_.persist_running) {
    // Durable before it is acknowledged: a restarted coordinator resumes it.
    // (Swapped in and out, not copied: a suite can be 256 MiB.)
    running.mutable_spec()->Swap(&spec);
    absl::Status saved = options_.store->SaveRunningSuite(running);
    spec.Swap(running.mutable_spec());
    if (!saved.ok()) {
      if (options_.blob_store)
        options_.blob_store->UnpinBlobs(running.suite_id());
      return saved;
    }
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
  Writes writes;
  {
    Locked lock(this);
    Suite& s = Install(std::move(suite), running.suite_id(), running.sequence(),
                       running.submitted_at_unix_ms());
    response.set_suite_id(s.id);
    if (!dashboard_url_.empty()) {
      response.set_dashboard_url(
          absl::StrCat(dashboard_url_, "/suites/", s.id));
    }
    for (int i = 0; i < n; ++i) {
      if (s.tests[i].spec.disabled()) {
        // Listed as ctest and GoogleTest list them, never run.
        v1::TestResult result;
        result.set_test_id(s.tests[i].spec.id());
        result.set_status(v1::TEST_STATUS_SKIPPED);
        result.set_error_message("disabled");
        result.set_cache_key(s.tests[i].cache_key);
        const int64_t now_ms = absl::ToUnixMillis(Now());
        result.set_started_at_unix_ms(now_ms);
        result.set_finished_at_unix_ms(now_ms);
        FinishQueued(s, i, std::move(result), /*persist=*/true);
        continue;
      }
      if (!hits[i].has_value()) continue;
      // A cached failure serves only a test that asked for failures to be
      // cached (the key says so too; this guards entries from elsewhere).
      if (!Cacheable(s.tests[i].spec, hits[i]->result())) continue;
      v1::TestResult result = std::move(*hits[i]->mutable_result());
      result.set_test_id(s.tests[i].spec.id());
      result.set_cached(true);
      result.set_flaky(false);
      result.set_cache_key(s.tests[i].cache_key);
      response.set_cached(response.cached() + 1);
      FinishQueued(s, i, std::move(result), /*persist=*/true);
    }
    spdlog::info(
        "suite {} \"{}\" submitted: {} tests, {} from the cache, priority {}",
        s.id, LogSafe(s.spec.name()), n, response.cached(), s.spec.priority());
    ServeWaitingPulls();
    TakeWrites(writes);
  }
  (void)Commit(writes);  // failures logged; retried by the next commit
  return response;
}

absl::Status Coordinator::PinSuiteBlobs(const std::string& suite_id,
                                        const v1::SuiteSpec& spec) {
  if (spec.blobs_size() == 0 || options_.blob_store == nullptr)
    return absl::OkStatus();
  std::vector<BlobDigest> digests;
  digests.reserve(spec.blobs_size());
  for (int i = 0; i < spec.blobs_size(); ++i) {
    const std::string& blob = spec.blobs(i);
    auto digest = ParseDigestString(blob);
    if (!digest.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("blobs[", i, "]: ", digest.status().message(),
                       " (write blobs as HASH/SIZE)"));
    }
    digests.push_back(*digest);
  }
  std::vector<BlobDigest> missing =
      options_.blob_store->PinBlobs(suite_id, digests);
  if (missing.empty()) return absl::OkStatus();
  options_.blob_store->UnpinBlobs(suite_id);
  return absl::FailedPreconditionError(absl::StrCat(
      missing.size(), " of the suite's ", digests.size(),
      " blobs are not in the cache (first: ", missing[0].ToString(),
      "); upload them (REAPI CAS), then submit again"));
}

absl::StatusOr<int> Coordinator::Recover() {
  if (options_.store == nullptr || !options_.persist_running) return 0;
  absl::StatusOr<std::vector<CoordinatorStore::RecoveredSuite>> recovered =
      options_.store->LoadRunningSuites();
  if (!recovered.ok()) return recovered.status();
  for (CoordinatorStore::RecoveredSuite& r : *recovered) {
    std::unique_ptr<Suite> suite = BuildSuite(*r.suite.mutable_spec());
    Locked lock(this);
    next_sequence_ = std::max<uint64_t>(next_sequence_, r.suite.sequence() + 1);
    Suite& s = Install(std::move(suite), r.suite.suite_id(), r.suite.sequence(),
                       r.suite.submitted_at_unix_ms());
    if (absl::Status pinned = PinSuiteBlobs(s.id, s.spec); !pinned.ok()) {
      spdlog::warn("suite {}: {}", s.id, std::string(pinned.message()));
    }
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
                 s.id, LogSafe(s.spec.name()), s.report.summary().done(),
                 s.report.summary().total());
  }
  Writes writes;
  {
    Locked lock(this);
    ServeWaitingPulls();
    TakeWrites(writes);
  }
  (void)Commit(writes);  // reports of suites that had all their results
  return static_cast<int>(recovered->size());
}

void Coordinator::TakeWrites(Writes& writes) {
  writes.ticket = next_ticket_++;
  writes.finished.swap(unsaved_);
  writes.reports.swap(unsaved_reports_);
  for (const std::string& key : dirty_runs_) {
    auto staged = staged_runs_.histories.find(key);
    if (staged == staged_runs_.histories.end()) continue;
    writes.runs.histories.emplace(key, staged->second);
    run_tickets_[key] = writes.ticket;
  }
  dirty_runs_.clear();
}

void Coordinator::WriteGroup(const std::vector<Writes*>& group) {
  Writes& first = *group.front();
  // Later tickets hold newer histories of the same test: they win.
  for (size_t i = 1; i < group.size(); ++i) {
    for (auto& [key, history] : group[i]->runs.histories)
      first.runs.histories.insert_or_assign(key, std::move(history));
    group[i]->runs.histories.clear();
    first.finished.insert(first.finished.end(),
                          std::make_move_iterator(group[i]->finished.begin()),
                          std::make_move_iterator(group[i]->finished.end()));
    group[i]->finished.clear();
  }
  const bool tried = !first.runs.histories.empty() || !first.finished.empty();
  const absl::Status results_saved =
      options_.store->SaveResults(first.runs, first.finished);
  absl::Status all = results_saved;
  bool any_report = false;
  for (Writes* member : group) {
    member->results_saved = results_saved;
    member->report_saved.assign(member->reports.size(), false);
    for (size_t i = 0; i < member->reports.size(); ++i) {
      any_report = true;
      const v1::SuiteReport& report = *member->reports[i];
      absl::Status saved = options_.store->SaveReport(report);
      if (saved.ok() && options_.persist_running)
        saved = options_.store->EndRunningSuite(report.suite_id());
      if (!saved.ok()) {
        spdlog::error("saving the report of {}: {}; retried", report.suite_id(),
                      saved.ToString());
        all.Update(saved);
      }
      member->report_saved[i] = saved.ok();
    }
  }
  // Only a write tried tells whether writes work: an empty commit would
  // otherwise say "working again" between two failures.
  if (tried || any_report) {
    absl::MutexLock health(&store_health_mu_);
    NoteStoreWrite(all);
  }
}

absl::Status Coordinator::Commit(Writes& writes) {
  if (options_.store == nullptr) return absl::OkStatus();
  std::vector<std::string> run_keys;
  for (const auto& [key, history] : writes.runs.histories)
    run_keys.push_back(key);
  committer_.Commit(writes.ticket, &writes);
  const absl::Status& saved = writes.results_saved;
  const std::vector<bool>& report_saved = writes.report_saved;
  Locked lock(this);
  for (const std::string& key : run_keys) {
    auto ticket = run_tickets_.find(key);
    if (!saved.ok()) {
      dirty_runs_.insert(key);  // written again by the next commit
    } else if (ticket != run_tickets_.end() &&
               ticket->second == writes.ticket && dirty_runs_.count(key) == 0) {
      // Nothing newer staged: the store answers for it from now on.
      run_tickets_.erase(ticket);
      staged_runs_.histories.erase(key);
    }
  }
  if (!saved.ok()) {
    unsaved_.insert(unsaved_.end(),
                    std::make_move_iterator(writes.finished.begin()),
                    std::make_move_iterator(writes.finished.end()));
  }
  bool trim = false;
  for (size_t i = 0; i < writes.reports.size(); ++i) {
    if (!report_saved[i]) {
      unsaved_reports_.push_back(std::move(writes.reports[i]));
      continue;
    }
    auto suite = suites_.find(writes.reports[i]->suite_id());
    if (suite != suites_.end()) suite->second->report_saved = true;
    trim = true;
  }
  if (trim) TrimEndedSuites();
  return saved;
}

void Coordinator::TrimEndedSuites() {
  if (options_.store == nullptr) return;  // nowhere else to read them from
  size_t ended = 0;
  int64_t ended_tests = 0;
  for (const auto& [id, suite] : suites_) {
    if (!suite->ended) continue;
    ++ended;
    ended_tests += static_cast<int64_t>(suite->tests.size());
  }
  // Oldest first: suites_ is ordered by id, which starts with the time.
  for (auto it = suites_.begin();
       it != suites_.end() &&
       (ended > kEndedSuitesInMemory ||
        ended_tests > options_.max_ended_tests_in_memory);) {
    Suite& suite = *it->second;
    if (suite.ended && suite.report_saved) {
      --ended;
      ended_tests -= static_cast<int64_t>(suite.tests.size());
      it = suites_.erase(it);
    } else {
      ++it;
    }
  }
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
  test.queued_at = Steady();
  ++suite.queued;
  suite.queued_expected_ms += test.expected_ms;
  if (first) {
    suite.requeued.push_front(index);
  } else {
    suite.requeued.push_back(index);
  }
}

int Coordinator::TotalSlots() const {
  return std::max<int64_t>(fleet_.slots(), 1);
}

bool Coordinator::HasRoomFor(const Test& test, const Worker& worker) const {
  const int64_t need = test.expected_peak_kb;
  const int64_t free = worker.info.free_memory_kb();
  if (need == 0 || free == 0 || need <= free) return true;  // fits, or unknown
  // Too big for this worker: leave it for one with room, if there is one.
  return !fleet_.SomeoneHasFreeMemory(need);
}

v1::Shard Coordinator::MakeShard(Suite& suite, Worker& worker) {
  // Guided self-scheduling: a shard holds about half a slot's share of the
  // queued work, so shards shrink as the suite drains and the last ones
  // finish together.
  const double target_ms =
      std::min(absl::ToDoubleMilliseconds(options_.max_shard_duration),
               suite.queued_expected_ms / (2.0 * TotalSlots()));
  Lease lease;
  lease.id = RandomHex(kIdBytes);
  lease.worker_id = worker.info.worker_id();
  lease.suite_id = suite.id;
  const absl::Time now = Steady();
  lease.deadline = now + options_.lease;
  lease.current_since_unix_ms = absl::ToUnixMillis(Now());
  v1::Shard shard;
  shard.set_lease_id(lease.id);
  shard.set_suite_id(suite.id);
  shard.set_suite_name(suite.spec.name());
  shard.set_lease_deadline_unix_ms(absl::ToUnixMillis(Now() + options_.lease));
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
    test.grants.push_back({lease.id, lease.worker_id, test.attempt});
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
    suite.report.set_started_at_unix_ms(absl::ToUnixMillis(Now()));
  }
  worker.leases[lease.id] = false;
  worker.info.set_busy_slots(static_cast<int>(worker.leases.size()));
  leases_[lease.id] = std::move(lease);
  return shard;
}

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& owner) {
  Locked lock(this);
  ASSIGN_OR_RETURN(Worker * worker,
                   fleet_.Register(request, owner, Steady(), Now()));
  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker->info.worker_id());
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_cache_endpoint(options_.cache_endpoint);
  response.set_cache_service(options_.cache_service);
  response.set_report_interval_ms(absl::ToInt64Milliseconds(ReportInterval()));
  spdlog::info("worker {} registered: {} slots, {}", worker->info.worker_id(),
               worker->info.slots(),
               LogSafe(PlatformString(request.platform())));
  return response;
}

Coordinator::Locked::~Locked() {
  std::vector<std::pair<PullAnswer, v1::PullWorkResponse>> answers;
  answers.swap(c_->answers_);
  c_->mu_.Unlock();
  for (auto& [answer, response] : answers) answer(std::move(response));
}

void Coordinator::Answer(PullAnswer answer, v1::PullWorkResponse response) {
  answers_.emplace_back(std::move(answer), std::move(response));
}

bool Coordinator::ServePull(const std::string& worker_id, int free_slots,
                            v1::PullWorkResponse& response) {
  Worker* found = fleet_.Find(worker_id);
  if (found == nullptr) {
    response.set_unknown_worker(true);
    return true;
  }
  Worker& worker = *found;
  worker.last_seen = Steady();
  if (shutting_down_) return true;
  if (!HasWorkFor(worker)) return false;
  int shards = std::clamp(free_slots, 0, worker.info.slots());
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
  // Work is queued but none suits this worker (memory): it waits rather
  // than ask again at once.
  return response.shards_size() > 0;
}

void Coordinator::ServeWaitingPulls() {
  const bool queued =
      std::any_of(suites_.begin(), suites_.end(),
                  [](const auto& entry) { return entry.second->queued > 0; });
  fleet_.Serve(
      [&](Fleet::WaitingPull& pull) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        v1::PullWorkResponse response;
        // Without queued work only the unknown are answered.
        if ((!queued && fleet_.Find(pull.worker_id) != nullptr) ||
            !ServePull(pull.worker_id, pull.free_slots, response)) {
          return false;
        }
        Answer(std::move(pull.answer), std::move(response));
        return true;
      });
}

uint64_t Coordinator::PullWork(const v1::PullWorkRequest& request,
                               PullAnswer answer) {
  Locked lock(this);
  v1::PullWorkResponse response;
  if (ServePull(request.worker_id(), request.free_slots(), response) ||
      request.wait_ms() <= 0) {
    Answer(std::move(answer), std::move(response));
    return 0;
  }
  // A waiting worker is alive: its wait ends well before it would be
  // forgotten.
  const absl::Duration wait = std::min(absl::Milliseconds(request.wait_ms()),
                                       options_.worker_timeout / 2);
  return fleet_.Wait({request.worker_id(), request.free_slots(),
                      Steady() + wait, std::move(answer)});
}

void Coordinator::AbandonPull(uint64_t pull_id) {
  Locked lock(this);
  if (PullAnswer answer = fleet_.StopWaiting(pull_id))
    Answer(std::move(answer), v1::PullWorkResponse());
}

void Coordinator::ExpirePulls() {
  Locked lock(this);
  for (PullAnswer& answer : fleet_.TakeExpired(Steady()))
    Answer(std::move(answer), v1::PullWorkResponse());
}

v1::PullWorkResponse Coordinator::PullWork(const v1::PullWorkRequest& request) {
  struct Answered {
    absl::Mutex mu;
    std::optional<v1::PullWorkResponse> response ABSL_GUARDED_BY(mu);
  };
  auto answered = std::make_shared<Answered>();
  const uint64_t id =
      PullWork(request, [answered](v1::PullWorkResponse response) {
        absl::MutexLock lock(&answered->mu);
        answered->response = std::move(response);
      });
  auto ready = [&answered]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answered->mu) {
    return answered->response.has_value();
  };
  absl::MutexLock lock(&answered->mu);
  if (!answered->mu.AwaitWithTimeout(
          absl::Condition(&ready),
          absl::Milliseconds(std::max<int64_t>(0, request.wait_ms())))) {
    answered->mu.Unlock();
    AbandonPull(id);
    answered->mu.Lock();
    answered->mu.Await(absl::Condition(&ready));
  }
  return *std::move(answered->response);
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
    *suite.report.add_changes() = std::move(change);
  }
  if (analysis.notable)
    *suite.report.add_insights() = std::move(analysis.insight);
}

void Coordinator::Finish(Suite& suite, int index, v1::TestResult result,
                         bool persist) {
  Test& test = suite.tests[index];
  test.phase = Phase::kDone;
  result.set_attempt(result.cached() ? result.attempt() : test.attempt);
  result.set_flaky(test.failed_before &&
                   result.status() == v1::TEST_STATUS_PASSED);
  if (result.cache_key().empty()) result.set_cache_key(test.cache_key);
  v1::SuiteSummary& summary = *suite.report.mutable_summary();
  Count(summary, result);
  const bool failed = IsFailure(result.status());
  if (failed && !summary.has_first_failure_ms()) {
    summary.set_first_failure_ms(absl::ToUnixMillis(Now()) -
                                 suite.report.submitted_at_unix_ms());
  }
  if (options_.metrics) options_.metrics->Finished(result);
  if (persist && options_.store && options_.persist_running) {
    unsaved_.push_back({suite.id, index, result});
  }
  *suite.report.add_results() = std::move(result);
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
    EndSuite(suite, suite.report.state() == v1::SUITE_STATE_CANCELLED
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
  v1::SuiteReport& report = suite.report;
  const int64_t now = absl::ToUnixMillis(Now());
  if (report.started_at_unix_ms() == 0) report.set_started_at_unix_ms(now);
  report.set_state(state);
  report.set_finished_at_unix_ms(now);
  report.mutable_summary()->set_wall_ms(now - report.submitted_at_unix_ms());
  report.mutable_summary()->set_running(0);
  // Serialized and written by the next commit, outside the lock (a report
  // can be hundreds of MiB); the suite stays in memory until it is saved.
  if (options_.store) {
    unsaved_reports_.push_back(std::make_shared<const v1::SuiteReport>(report));
  }
  const v1::SuiteSummary& summary = report.summary();
  spdlog::info(
      "suite {} ended: {} passed, {} failed, {} cancelled, {} cached, {} ms",
      suite.id, summary.passed(), FailedCount(summary), summary.cancelled(),
      summary.cached(), summary.wall_ms());
}

void Coordinator::ReleaseLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  if (Worker* worker = fleet_.Find(it->second.worker_id)) {
    worker->leases.erase(lease_id);
    worker->info.set_busy_slots(static_cast<int>(worker->leases.size()));
  }
  leases_.erase(it);
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

absl::Status Coordinator::CheckWorkerOwner(const std::string& worker_id,
                                           const std::string& owner) {
  Locked lock(this);
  const Worker* worker = fleet_.Find(worker_id);
  if (worker == nullptr || worker->info.owner() == owner) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("worker ", worker_id, " was registered by another token"));
}

absl::Status Coordinator::CheckOwner(const Principal& caller,
                                     const std::string& owner, bool change,
                                     const std::string& what,
                                     const std::string& action) {
  if (change ? caller.CanChange(owner) : caller.CanRead(owner)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat(what, " belongs to ", owner.empty() ? "no token" : owner,
                   "; only its owner", change ? "" : ", a view token",
                   " or an admin may ", action));
}

absl::Status Coordinator::CheckAccess(const std::string& suite_id,
                                      const std::string& owner,
                                      const Principal& caller, bool change) {
  return CheckOwner(caller, owner, change, absl::StrCat("suite ", suite_id),
                    change ? "change it" : "read it");
}

absl::Status Coordinator::ClaimSuiteName(const std::string& suite_name,
                                         const std::string& owner) {
  if (options_.store == nullptr || owner.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string holder,
                   options_.store->ClaimSuiteName(suite_name, owner));
  if (holder == owner) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat(
      "the suite name \"", suite_name, "\" belongs to ", holder,
      " (its history and baseline are theirs); choose another \"name\""));
}

absl::Status Coordinator::CheckNameOwner(const std::string& suite_name,
                                         const Principal& caller, bool change) {
  if (options_.store == nullptr || caller.anonymous()) return absl::OkStatus();
  std::optional<std::string> holder =
      options_.store->SuiteNameOwner(suite_name);
  // A name nobody has submitted under with a token (history from before
  // tokens were turned on) is readable by every reader, changed by admins.
  if (!holder.has_value() && !change) return absl::OkStatus();
  return CheckOwner(caller, holder.value_or(""), change,
                    absl::StrCat("the suite name \"", suite_name, "\""),
                    change ? "change its baseline" : "read its history");
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
  v1::ReportResultsResponse response;
  Writes writes;
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
    TakeWrites(writes);
  }
  // Acknowledged only once durable; the worker retries otherwise, and its
  // retry, ignored as a duplicate, lets the next commit write what is still
  // unsaved.
  if (absl::Status saved = Commit(writes); !saved.ok()) {
    return absl::Status(saved.code(),
                        absl::StrCat("results not saved (", saved.message(),
                                     "); resend them later"));
  }
  return response;
}

v1::HeartbeatResponse Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  Locked lock(this);
  Worker* found = fleet_.Find(request.worker_id());
  if (found == nullptr) {
    response.set_unknown_worker(true);
    return response;
  }
  Worker& worker = *found;
  worker.last_seen = Steady();
  worker.info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(Now()));
  // Bounded: a rogue worker's figures steer placement, not arithmetic.
  const double load = request.load_average();
  worker.info.set_load_average(std::isfinite(load) ? std::clamp(load, 0.0, 1e6)
                                                   : 0.0);
  worker.info.set_free_memory_kb(
      std::clamp<int64_t>(request.free_memory_kb(), 0, kMaxPeakKb));
  for (const std::string& lease_id : request.lease_ids()) {
    auto lease = leases_.find(lease_id);
    if (lease != leases_.end() &&
        lease->second.worker_id == worker.info.worker_id()) {
      lease->second.deadline = Steady() + options_.lease;
    }
  }
  TellCancelled(worker, *response.mutable_cancelled_lease_ids());
  response.set_report_interval_ms(absl::ToInt64Milliseconds(ReportInterval()));
  return response;
}

void Coordinator::TellCancelled(
    Worker& worker, google::protobuf::RepeatedPtrField<std::string>& told) {
  std::vector<std::string> cancelled;
  for (const auto& [lease_id, is_cancelled] : worker.leases) {
    if (is_cancelled) cancelled.push_back(lease_id);
  }
  for (const std::string& lease_id : cancelled) {
    *told.Add() = lease_id;
    ReleaseLease(lease_id);
  }
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
      if (test.phase == Phase::kLeased &&
          test.grants.back().lease_id == lease_id) {
        --s.leased;
        s.leased_expected_ms -= test.expected_ms;
        Requeue(s, index, /*first=*/true);
      }
    }
    spdlog::warn("lease {} of worker {} expired: {} tests of suite {} requeued",
                 lease_id, lease.worker_id, lease.outstanding.size(), s.id);
  }
  ReleaseLease(lease_id);
}

void Coordinator::ExpireLeases() {
  Writes writes;
  {
    Locked lock(this);
    ExpireLeasesLocked();
    TakeWrites(writes);  // and what failed to be written before
  }
  (void)Commit(writes);
}

void Coordinator::ExpireLeasesLocked() {
  const absl::Time now = Steady();
  std::vector<std::string> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline < now) expired.push_back(id);
  }
  const std::vector<Worker> forgotten =
      fleet_.ForgetSilent(now - options_.worker_timeout);
  for (const Worker& worker : forgotten) {
    spdlog::warn("worker {} silent for {}; forgetting it",
                 worker.info.worker_id(),
                 absl::FormatDuration(now - worker.last_seen));
    for (const auto& [lease_id, cancelled] : worker.leases)
      expired.push_back(lease_id);
  }
  for (const std::string& id : expired) ExpireLease(id);
  // Their tests are queued again; a forgotten worker's pulls are told so.
  if (!expired.empty() || !forgotten.empty()) ServeWaitingPulls();
}

absl::StatusOr<int> Coordinator::Cancel(const std::string& suite_id,
                                        const Principal& caller) {
  Writes writes;
  absl::StatusOr<int> cancelled;
  {
    Locked lock(this);
    cancelled = CancelLocked(suite_id, caller);
    TakeWrites(writes);
  }
  (void)Commit(writes);  // failures logged; retried by the next commit
  return cancelled;
}

absl::StatusOr<int> Coordinator::CancelLocked(const std::string& suite_id,
                                              const Principal& caller) {
  auto it = suites_.find(suite_id);
  if (it == suites_.end()) {
    return absl::NotFoundError(
        absl::StrCat("no running suite with id ", suite_id));
  }
  Suite& suite = *it->second;
  RETURN_IF_ERROR(CheckAccess(suite_id, suite.spec.owner(), caller, true));
  if (suite.ended) return 0;
  return CancelRest(suite, "");
}

int Coordinator::CancelRest(Suite& suite, const std::string& reason) {
  suite.report.set_state(v1::SUITE_STATE_CANCELLED);
  // A slot runs its shard in order: the first unreported test is running.
  std::set<int> running;
  for (auto& [lease_id, lease] : leases_) {
    if (lease.suite_id != suite.id) continue;
    if (!lease.outstanding.empty()) running.insert(lease.outstanding.front());
    if (Worker* worker = fleet_.Find(lease.worker_id))
      worker->leases[lease_id] = true;
  }
  // Collected first: the last Finish ends the suite.
  std::vector<int> unfinished;
  for (size_t i = 0; i < suite.tests.size(); ++i) {
    if (suite.tests[i].phase != Phase::kDone)
      unfinished.push_back(static_cast<int>(i));
  }
  const int64_t now = absl::ToUnixMillis(Now());
  for (int index : unfinished) {
    Test& test = suite.tests[index];
    v1::TestResult result;
    result.set_test_id(test.spec.id());
    result.set_status(v1::TEST_STATUS_CANCELLED);
    if (!reason.empty()) {
      result.set_error_message(absl::StrCat(
          running.count(index) ? "stopped while running" : "not run", ": ",
          reason));
    }
    result.set_started_at_unix_ms(now);
    result.set_finished_at_unix_ms(now);
    Finish(suite, index, std::move(result), /*persist=*/true);
  }
  return static_cast<int>(unfinished.size());
}

}  // namespace testfleet
