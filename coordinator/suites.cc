// Coordinator: suites coming in (submission, recovery after a restart),
// who owns them and their names, and cancellation.
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
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {

using coordinator_internal::kIdBytes;

std::unique_ptr<Coordinator::Suite> Coordinator::BuildSuite(
    v1::SuiteSpec spec) {
  auto suite = std::make_unique<Suite>();
  const int n = spec.tests_size();
  suite->tests.resize(n);
  std::vector<double> known;
  // Each test's own expectation; -1: none (no history, none in its spec).
  std::vector<double> expected_ms(n);
  for (int i = 0; i < n; ++i) {
    Test& test = suite->tests[i];
    test.spec = std::move(*spec.mutable_tests(i));
    test.cache_key = ActionKeyHex(test.spec, spec.platform());
    suite->index_of[test.spec.id()] = i;
    std::optional<TestExpectation> expected;
    if (options_.store)
      expected = options_.store->Expected(spec.name(), test.spec.id());
    expected_ms[i] = expected ? expected->wall_ms
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
  // Tests without history are expected to take the suite's median until
  // this run's own say better (SuiteQueue::ObserveGuessed).
  double fallback = absl::ToDoubleMilliseconds(options_.default_expected);
  if (!known.empty()) {
    std::nth_element(known.begin(), known.begin() + known.size() / 2,
                     known.end());
    fallback = known[known.size() / 2];
  }
  auto expected_or_fallback = [&](int i) {
    return expected_ms[i] < 0 ? fallback : expected_ms[i];
  };
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const Test& ta = suite->tests[a];
    const Test& tb = suite->tests[b];
    if (ta.spec.priority() != tb.spec.priority())
      return ta.spec.priority() > tb.spec.priority();
    if (options_.failures_first && ta.urgency != tb.urgency)
      return ta.urgency < tb.urgency;
    return expected_or_fallback(a) > expected_or_fallback(b);
  });
  suite->queue = SuiteQueue(std::move(order), std::move(expected_ms), fallback);
  suite->spec = std::move(spec);
  return suite;
}

Coordinator::Suite& Coordinator::Install(std::unique_ptr<Suite> suite,
                                         const std::string& id,
                                         uint64_t sequence,
                                         int64_t submitted_at_ms) {
  suite->id = id;
  suite->sequence = sequence;
  v1::SuiteReport& report = *suite->report;
  report.set_suite_id(id);
  report.set_name(suite->spec.name());
  report.set_priority(suite->spec.priority());
  report.set_owner(suite->spec.owner());
  report.set_state(v1::SUITE_STATE_QUEUED);
  report.set_submitted_at_unix_ms(submitted_at_ms);
  report.mutable_summary()->set_total(static_cast<int>(suite->tests.size()));
  const absl::Time now = Steady();
  for (Test& test : suite->tests) test.queued_at = now;
  Suite& installed = *suite;
  suites_[id] = std::move(suite);
  return installed;
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
        tests += suite->queue.size() + suite->leased;
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
        Finish(s, i, std::move(result), /*persist=*/true);
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
      Finish(s, i, std::move(result), /*persist=*/true);
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
      Finish(s, index, std::move(result), /*persist=*/false);
    }
    if (!s.ended && s.report->summary().done() > 0) {
      s.report->set_state(v1::SUITE_STATE_RUNNING);
      s.report->set_started_at_unix_ms(s.report->submitted_at_unix_ms());
    }
    spdlog::info("suite {} \"{}\" resumed: {} of {} tests already finished",
                 s.id, LogSafe(s.spec.name()), s.report->summary().done(),
                 s.report->summary().total());
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
  suite.report->set_state(v1::SUITE_STATE_CANCELLED);
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
