#include "coordinator/coordinator.h"

#include <cmath>
#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "cache/tests/fake_cache_client.h"
#include "common/action_key.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "coordinator/server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::ElementsAre;

v1::SuiteSpec MakeSuite(const std::string& name, int tests, int priority = 0) {
  v1::SuiteSpec suite;
  suite.set_name(name);
  suite.set_priority(priority);
  *suite.mutable_platform() = HostPlatform("");
  for (int i = 0; i < tests; ++i) {
    v1::TestSpec* test = suite.add_tests();
    test->set_id(absl::StrCat(name, ".t", i));
    test->add_argv("true");
    test->add_argv(std::to_string(i));
    test->set_cwd(".");
  }
  return suite;
}

// A suite as the service hands it over: submitted by the token `owner`.
v1::SuiteSpec OwnedSuite(const std::string& owner, const std::string& name,
                         int tests) {
  v1::SuiteSpec suite = MakeSuite(name, tests);
  suite.set_owner(owner);
  return suite;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  CoordinatorTest() {
    options_.clock = &clock_;
    options_.lease = absl::Seconds(30);
    options_.worker_timeout = absl::Seconds(60);
    options_.cache = &cache_;
  }
  std::unique_ptr<Coordinator> Make() {
    return std::make_unique<Coordinator>(options_);
  }
  // Coordinators made from now on keep history and reports in a real store.
  void UseStore() {
    store_ = CoordinatorStore::Open(store_dir_.Join("state")).value();
    options_.store = store_.get();
  }

  std::string Register(Coordinator& c, int slots = 1,
                       const std::string& tag = "") {
    v1::RegisterWorkerRequest request;
    request.set_name("w");
    request.set_slots(slots);
    *request.mutable_platform() = HostPlatform(tag);
    return c.RegisterWorker(request).value().worker_id();
  }
  v1::PullWorkResponse Pull(Coordinator& c, const std::string& worker,
                            int slots = 1) {
    v1::PullWorkRequest request;
    request.set_worker_id(worker);
    request.set_free_slots(slots);
    request.set_wait_ms(0);
    return c.PullWork(request);
  }
  // Reports every test of `shard` with `status`, each taking `wall_ms`.
  v1::ReportResultsResponse ReportShard(
      Coordinator& c, const std::string& worker, const v1::Shard& shard,
      v1::TestStatus status = v1::TEST_STATUS_PASSED, double wall_ms = 0) {
    v1::ReportResultsRequest request;
    request.set_worker_id(worker);
    for (const v1::TestAssignment& a : shard.tests()) {
      v1::ReportedResult* r = request.add_results();
      r->set_suite_id(shard.suite_id());
      r->set_lease_id(shard.lease_id());
      r->mutable_result()->set_test_id(a.spec().id());
      r->mutable_result()->set_attempt(a.attempt());
      r->mutable_result()->set_status(status);
      r->mutable_result()->set_wall_ms(wall_ms);
    }
    absl::StatusOr<v1::ReportResultsResponse> response =
        c.ReportResults(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.value_or(v1::ReportResultsResponse());
  }
  // The order one worker of one slot is given `suite`'s tests in.
  std::vector<std::string> DispatchOrder(const v1::SuiteSpec& suite) {
    auto c = Make();
    EXPECT_TRUE(c->Submit(suite).ok());
    const std::string worker = Register(*c);
    std::vector<std::string> order;
    for (int round = 0; round < 10; ++round) {
      auto pulled = Pull(*c, worker);
      if (pulled.shards_size() == 0) break;
      for (const auto& id : Ids(pulled.shards(0))) order.push_back(id);
      ReportShard(*c, worker, pulled.shards(0));
    }
    return order;
  }
  std::vector<std::string> Ids(const v1::Shard& shard) {
    std::vector<std::string> ids;
    for (const auto& a : shard.tests()) ids.push_back(a.spec().id());
    return ids;
  }

  FakeClock clock_;
  FakeCacheClient cache_;
  TestDir store_dir_;
  std::unique_ptr<CoordinatorStore> store_;
  CoordinatorOptions options_;
};

TEST_F(CoordinatorTest, EveryTestIsReportedOnceAndTheSuiteFinishes) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 100));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string worker = Register(*c, 2);
  int shards = 0;
  for (int round = 0; round < 200; ++round) {
    auto pulled = Pull(*c, worker, 2);
    if (pulled.shards_size() == 0) break;
    for (const auto& shard : pulled.shards()) {
      ++shards;
      EXPECT_LE(shard.tests_size(), options_.max_shard_tests);
      ReportShard(*c, worker, shard);
    }
  }
  auto report = c->Report(submitted->suite_id());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->state(), v1::SUITE_STATE_FINISHED);
  EXPECT_EQ(report->results_size(), 100);
  EXPECT_EQ(report->summary().passed(), 100);
  std::set<std::string> ids;
  for (const auto& r : report->results()) ids.insert(r.test_id());
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_GT(shards, 2);  // batched, but not all in one shard
}

// What a waiting pull was answered with, and how often.
struct PullAnswers {
  std::vector<v1::PullWorkResponse> responses;
  Coordinator::PullAnswer Collect() {
    return
        [this](v1::PullWorkResponse r) { responses.push_back(std::move(r)); };
  }
};

v1::PullWorkRequest WaitingPull(const std::string& worker, int64_t wait_ms,
                                int slots = 1) {
  v1::PullWorkRequest request;
  request.set_worker_id(worker);
  request.set_free_slots(slots);
  request.set_wait_ms(wait_ms);
  return request;
}

TEST_F(CoordinatorTest, AWaitingPullIsAnsweredOnceWhenWorkArrives) {
  auto c = Make();
  const std::string worker = Register(*c);
  PullAnswers answers;
  const uint64_t id =
      c->PullWork(WaitingPull(worker, 10'000), answers.Collect());
  EXPECT_NE(id, 0u);
  EXPECT_TRUE(answers.responses.empty());  // waits: nothing is queued
  ASSERT_TRUE(c->Submit(MakeSuite("s", 3)).ok());
  ASSERT_EQ(answers.responses.size(), 1u);  // answered by the submission
  EXPECT_EQ(answers.responses[0].shards_size(), 1);
  c->AbandonPull(id);  // answered already: nothing more
  clock_.Advance(absl::Seconds(20));
  c->ExpirePulls();
  EXPECT_EQ(answers.responses.size(), 1u);
}

TEST_F(CoordinatorTest, AWaitingPullEndsEmptyAtItsWaitOrWhenAbandoned) {
  auto c = Make();
  const std::string worker = Register(*c);
  PullAnswers timed, abandoned;
  EXPECT_EQ(c->ExpirePulls(), absl::InfiniteDuration());  // none waits
  c->PullWork(WaitingPull(worker, 2'000), timed.Collect());
  const uint64_t id =
      c->PullWork(WaitingPull(worker, 60'000), abandoned.Collect());
  // Each call says when the next wait ends: the server sleeps until then.
  EXPECT_EQ(c->ExpirePulls(), absl::Milliseconds(2'000));
  clock_.Advance(absl::Milliseconds(1'999));
  EXPECT_EQ(c->ExpirePulls(), absl::Milliseconds(1));
  EXPECT_TRUE(timed.responses.empty());
  clock_.Advance(absl::Milliseconds(1));
  // The other waits at most half the worker timeout (30 s), not its 60 s.
  EXPECT_EQ(c->ExpirePulls(), absl::Seconds(28));
  ASSERT_EQ(timed.responses.size(), 1u);
  EXPECT_EQ(timed.responses[0].shards_size(), 0);
  EXPECT_FALSE(timed.responses[0].unknown_worker());
  EXPECT_TRUE(abandoned.responses.empty());
  c->AbandonPull(id);
  ASSERT_EQ(abandoned.responses.size(), 1u);
  EXPECT_EQ(abandoned.responses[0].shards_size(), 0);
  // Work arriving later goes to no one who left.
  ASSERT_TRUE(c->Submit(MakeSuite("s", 3)).ok());
  EXPECT_EQ(abandoned.responses.size(), 1u);
  EXPECT_EQ(timed.responses.size(), 1u);
}

TEST_F(CoordinatorTest,
       AnUnknownWorkerIsToldAtOnceAndShutdownAnswersEveryWait) {
  auto c = Make();
  PullAnswers unknown;
  EXPECT_EQ(c->PullWork(WaitingPull("nobody#1", 10'000), unknown.Collect()),
            0u);
  ASSERT_EQ(unknown.responses.size(), 1u);
  EXPECT_TRUE(unknown.responses[0].unknown_worker());
  const std::string worker = Register(*c);
  PullAnswers waiting;
  for (int i = 0; i < 3; ++i)
    c->PullWork(WaitingPull(worker, 10'000), waiting.Collect());
  EXPECT_TRUE(waiting.responses.empty());
  c->Shutdown();
  EXPECT_EQ(waiting.responses.size(), 3u);
}

TEST_F(CoordinatorTest, ThousandsOfWaitingPullsAreServedOldestFirst) {
  options_.max_workers = 0;
  auto c = Make();
  constexpr int kWorkers = 2'000;
  std::vector<PullAnswers> answers(kWorkers);
  for (int i = 0; i < kWorkers; ++i)
    c->PullWork(WaitingPull(Register(*c), 10'000), answers[i].Collect());
  // 500 tests of one expected second over 2,000 slots: one test a shard.
  ASSERT_TRUE(c->Submit(MakeSuite("s", 500)).ok());
  int answered = 0;
  for (int i = 0; i < kWorkers; ++i) {
    ASSERT_LE(answers[i].responses.size(), 1u);
    if (answers[i].responses.empty()) continue;
    ++answered;
    EXPECT_EQ(answers[i].responses[0].shards_size(), 1);
    EXPECT_LT(i, 500) << "a later waiter was served before an earlier one";
  }
  EXPECT_EQ(answered, 500);
}

TEST_F(CoordinatorTest, WorkersAreToldToGatherReportsLongerAsTheFleetGrows) {
  options_.fleet_reports_per_second = 1'000;
  options_.lease = absl::Seconds(6);
  options_.max_workers = 0;
  auto c = Make();
  v1::RegisterWorkerRequest request;
  request.set_slots(8);
  EXPECT_EQ(c->RegisterWorker(request)->report_interval_ms(), 1);
  for (int i = 0; i < 498; ++i) ASSERT_TRUE(c->RegisterWorker(request).ok());
  const std::string last = c->RegisterWorker(request)->worker_id();
  v1::HeartbeatRequest beat;
  beat.set_worker_id(last);
  EXPECT_EQ(c->Heartbeat(beat).report_interval_ms(), 500);  // 500 workers
  for (int i = 0; i < 2'000; ++i) ASSERT_TRUE(c->RegisterWorker(request).ok());
  // Never past a sixth of the lease, so leases are renewed in time.
  EXPECT_EQ(c->Heartbeat(beat).report_interval_ms(), 1'000);
}

TEST_F(CoordinatorTest, ShardsShrinkTowardTheEndOfASuite) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 200)).ok());
  const std::string worker = Register(*c, 1);
  std::vector<int> sizes;
  for (int round = 0; round < 500; ++round) {
    auto pulled = Pull(*c, worker);
    if (pulled.shards_size() == 0) break;
    sizes.push_back(pulled.shards(0).tests_size());
    ReportShard(*c, worker, pulled.shards(0));
  }
  ASSERT_GE(sizes.size(), 3u);
  EXPECT_GT(sizes.front(), sizes.back());
  EXPECT_EQ(sizes.back(), 1);
}

TEST_F(CoordinatorTest, LongestExpectedTestsGoFirstAndTestPriorityBeforeThat) {
  UseStore();
  v1::TestResult run;
  for (auto [id, ms] :
       {std::pair{"s.t0", 10.0}, {"s.t1", 5000.0}, {"s.t2", 300.0}}) {
    run.set_test_id(id);
    run.set_wall_ms(ms);
    run.set_status(v1::TEST_STATUS_PASSED);
    ASSERT_TRUE(store_->RecordRun("s", "s-1", run).ok());
  }
  v1::SuiteSpec suite =
      MakeSuite("s", 4);  // s.t3 has no history: the median, 300
  suite.mutable_tests(0)->set_priority(1);
  EXPECT_THAT(DispatchOrder(suite),
              ElementsAre("s.t0", "s.t1", "s.t2", "s.t3"));
}

class FailuresFirstTest : public CoordinatorTest {
 protected:
  // History of suite "s" (5 tests): t0 passed, 5 s, on today's key; t1
  // failed, 10 ms; t2 passed, 20 ms, on another key (its inputs changed
  // since); t3 passed, 3 s, on today's key; t4 never ran (the median, 3 s).
  void SetUp() override {
    UseStore();
    suite_ = MakeSuite("s", 5);
    auto record = [&](int i, double ms, v1::TestStatus status, bool same_key) {
      v1::TestSpec spec = suite_.tests(i);
      if (!same_key) spec.add_argv("--an-earlier-input");
      const v1::ActionKey key = ComputeActionKey(spec, suite_.platform());
      v1::TestResult run;
      run.set_test_id(spec.id());
      run.set_wall_ms(ms);
      run.set_status(status);
      ASSERT_TRUE(store_->RecordRun("s", "s-1", run, &key).ok());
    };
    record(0, 5000, v1::TEST_STATUS_PASSED, true);
    record(1, 10, v1::TEST_STATUS_FAILED, true);
    record(2, 20, v1::TEST_STATUS_PASSED, false);
    record(3, 3000, v1::TEST_STATUS_PASSED, true);
  }
  v1::SuiteSpec suite_;
};

TEST_F(FailuresFirstTest, RecentFailuresThenChangedTestsThenTheRest) {
  EXPECT_THAT(DispatchOrder(suite_),
              ElementsAre("s.t1", "s.t4", "s.t2", "s.t0", "s.t3"));
}

TEST_F(FailuresFirstTest, LongestFirstOnlyWhenTurnedOff) {
  options_.failures_first = false;
  EXPECT_THAT(DispatchOrder(suite_),
              ElementsAre("s.t0", "s.t3", "s.t4", "s.t2", "s.t1"));
}

TEST_F(CoordinatorTest, TheFirstFailureIsTimedFromSubmission) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 3));
  const std::string worker = Register(*c, 3);
  auto pulled = Pull(*c, worker, 3);
  ASSERT_EQ(pulled.shards_size(), 3);
  clock_.Advance(absl::Seconds(2));
  ReportShard(*c, worker, pulled.shards(0));
  EXPECT_FALSE(
      c->Progress(submitted->suite_id())->summary().has_first_failure_ms());
  clock_.Advance(absl::Seconds(3));
  ReportShard(*c, worker, pulled.shards(1), v1::TEST_STATUS_TIMED_OUT);
  clock_.Advance(absl::Seconds(1));
  ReportShard(*c, worker, pulled.shards(2), v1::TEST_STATUS_FAILED);
  auto report = c->Report(submitted->suite_id());
  ASSERT_TRUE(report->summary().has_first_failure_ms());
  EXPECT_EQ(report->summary().first_failure_ms(), 5000);
}

TEST_F(CoordinatorTest, FailFastCancelsTheRestAfterNFailuresAndSaysWhy) {
  auto c = Make();
  v1::SuiteSpec suite = MakeSuite("s", 10);
  suite.set_fail_fast(2);
  auto submitted = c->Submit(suite);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string worker = Register(*c, 2);
  auto pulled = Pull(*c, worker, 2);
  ASSERT_EQ(pulled.shards_size(), 2);
  // One test at a time, as a slot reports them.
  auto report_one = [&](const v1::Shard& shard, int i, v1::TestStatus status) {
    v1::Shard one = shard;
    one.clear_tests();
    *one.add_tests() = shard.tests(i);
    return ReportShard(*c, worker, one, status);
  };
  report_one(pulled.shards(0), 0, v1::TEST_STATUS_PASSED);
  report_one(pulled.shards(0), 1, v1::TEST_STATUS_FAILED);
  EXPECT_EQ(c->Progress(submitted->suite_id())->state(),
            v1::SUITE_STATE_RUNNING);
  // The report that ends the suite tells its worker which slots to stop.
  const v1::ReportResultsResponse told =
      report_one(pulled.shards(1), 0, v1::TEST_STATUS_MEMORY_EXCEEDED);
  EXPECT_EQ(told.cancelled_lease_ids_size(),
            (pulled.shards(0).tests_size() > 2) +
                (pulled.shards(1).tests_size() > 1));

  auto report = c->Report(submitted->suite_id());
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->state(), v1::SUITE_STATE_CANCELLED);
  EXPECT_EQ(report->summary().passed(), 1);
  EXPECT_EQ(report->summary().failed() + report->summary().memory_exceeded(),
            2);
  EXPECT_EQ(report->summary().cancelled(), 7);
  EXPECT_EQ(report->results_size(), 10);
  // Tests a slot was running were stopped; the others never started.
  int stopped = 0, not_run = 0;
  for (const v1::TestResult& r : report->results()) {
    if (r.status() != v1::TEST_STATUS_CANCELLED) continue;
    EXPECT_TRUE(absl::StrContains(r.error_message(), "--fail-fast"))
        << r.error_message();
    stopped += absl::StartsWith(r.error_message(), "stopped while running");
    not_run += absl::StartsWith(r.error_message(), "not run");
  }
  // One test a slot: the next of each shard with tests left.
  EXPECT_EQ(stopped, told.cancelled_lease_ids_size());
  EXPECT_EQ(stopped + not_run, 7);
  // Told once; a late result changes nothing.
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(worker);
  EXPECT_EQ(c->Heartbeat(heartbeat).cancelled_lease_ids_size(), 0);
  if (pulled.shards(0).tests_size() > 2) {
    EXPECT_EQ(
        report_one(pulled.shards(0), 2, v1::TEST_STATUS_PASSED).accepted(), 0);
  }
  EXPECT_EQ(c->Report(submitted->suite_id())->summary().cancelled(), 7);
}

TEST_F(CoordinatorTest, HigherPrioritySuiteSubmittedLaterRunsFirst) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("low", 5, 0)).ok());
  ASSERT_TRUE(c->Submit(MakeSuite("high", 5, 10)).ok());
  const std::string worker = Register(*c);
  auto pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  EXPECT_EQ(pulled.shards(0).suite_name(), "high");
}

TEST_F(CoordinatorTest, EqualPrioritySuitesShareWorkers) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("a", 50)).ok());
  ASSERT_TRUE(c->Submit(MakeSuite("b", 50)).ok());
  const std::string worker = Register(*c, 4);
  auto pulled = Pull(*c, worker, 4);
  std::map<std::string, int> per_suite;
  for (const auto& shard : pulled.shards()) ++per_suite[shard.suite_name()];
  EXPECT_EQ(per_suite["a"], 2);
  EXPECT_EQ(per_suite["b"], 2);
}

TEST_F(CoordinatorTest, ResultsForAnotherWorkersLeaseAreRejected) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 2));
  const std::string holder = Register(*c);
  const std::string forger = Register(*c);
  auto pulled = Pull(*c, holder, 2);
  ASSERT_EQ(pulled.shards_size(), 1);
  v1::ReportResultsRequest forged;
  forged.set_worker_id(forger);
  for (const v1::TestAssignment& a : pulled.shards(0).tests()) {
    v1::ReportedResult* r = forged.add_results();
    r->set_suite_id(pulled.shards(0).suite_id());
    r->set_lease_id(pulled.shards(0).lease_id());
    r->mutable_result()->set_test_id(a.spec().id());
    r->mutable_result()->set_attempt(1);
    r->mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  }
  const int n = pulled.shards(0).tests_size();
  auto answer = c->ReportResults(forged);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->rejected(), n);
  EXPECT_EQ(answer->accepted(), 0);
  EXPECT_EQ(ReportShard(*c, holder, pulled.shards(0)).accepted(), n);
}

TEST_F(CoordinatorTest, ExpiredLeaseIsRequeuedAndALateReportCountsOnce) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 3));
  const std::string lost = Register(*c);
  auto first = Pull(*c, lost);
  ASSERT_EQ(first.shards_size(), 1);
  const v1::Shard lost_shard = first.shards(0);

  clock_.Advance(absl::Seconds(31));  // no heartbeat: the lease expires
  c->ExpireLeases();
  const std::string rescuer = Register(*c);
  auto second = Pull(*c, rescuer);
  ASSERT_EQ(second.shards_size(), 1);
  EXPECT_EQ(Ids(second.shards(0)), Ids(lost_shard));

  // The lost worker was only slow: its late report is accepted once...
  auto late = ReportShard(*c, lost, lost_shard);
  EXPECT_EQ(late.accepted(), lost_shard.tests_size());
  // ...and the rescuer's duplicate, and any repeat, are ignored.
  auto duplicate = ReportShard(*c, rescuer, second.shards(0));
  EXPECT_EQ(duplicate.accepted(), 0);
  EXPECT_EQ(duplicate.ignored(), lost_shard.tests_size());
  EXPECT_EQ(ReportShard(*c, lost, lost_shard).accepted(), 0);

  for (int round = 0; round < 10; ++round) {
    auto pulled = Pull(*c, rescuer);
    if (pulled.shards_size() == 0) break;
    ReportShard(*c, rescuer, pulled.shards(0));
  }
  auto report = c->Report(submitted->suite_id());
  EXPECT_EQ(report->state(), v1::SUITE_STATE_FINISHED);
  EXPECT_EQ(report->results_size(), 3);
}

// The store's writer shares an ended suite's report instead of a copy
// taken under the lock, so nothing may change it after the end: not a
// late report of a lost lease, not a cancel, not a lease expiring.
TEST_F(CoordinatorTest, AnEndedSuitesReportIsFinalAndTheOneStored) {
  UseStore();
  auto c = Make();
  const std::string suite_id = c->Submit(MakeSuite("s", 3))->suite_id();
  const std::string lost = Register(*c);
  const v1::PullWorkResponse first = Pull(*c, lost);
  ASSERT_EQ(first.shards_size(), 1);
  clock_.Advance(absl::Seconds(31));
  c->ExpireLeases();
  const std::string rescuer = Register(*c);
  for (int round = 0; round < 10; ++round) {
    auto pulled = Pull(*c, rescuer);
    if (pulled.shards_size() == 0) break;
    ReportShard(*c, rescuer, pulled.shards(0), v1::TEST_STATUS_FAILED);
  }
  const absl::StatusOr<v1::SuiteReport> ended = c->Report(suite_id);
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->state(), v1::SUITE_STATE_FINISHED);
  ASSERT_EQ(ended->results_size(), 3);

  EXPECT_EQ(ReportShard(*c, lost, first.shards(0)).accepted(), 0);
  EXPECT_EQ(c->Cancel(suite_id).value_or(-1), 0);
  clock_.Advance(absl::Seconds(31));
  c->ExpireLeases();

  const absl::StatusOr<v1::SuiteReport> later = c->Report(suite_id);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->SerializeAsString(), ended->SerializeAsString());
  const absl::StatusOr<v1::SuiteReport> stored = store_->LoadReport(suite_id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->SerializeAsString(), ended->SerializeAsString());
}

// A running suite's results are copied a slice at a time: the copy still
// holds every result reported before it, in order, with the summary of
// the same moment, across slices.
TEST_F(CoordinatorTest, ARunningSuitesReportHoldsEveryResultSoFarAcrossSlices) {
  const int kTests = Coordinator::kReportResultsPerLock * 2 + 500;
  auto c = Make();
  const std::string suite_id = c->Submit(MakeSuite("s", kTests))->suite_id();
  const std::string worker = Register(*c);
  std::vector<std::string> reported;
  v1::Shard held;  // leased, not reported: the suite keeps running
  for (int round = 0; round < kTests; ++round) {
    auto pulled = Pull(*c, worker);
    if (pulled.shards_size() == 0) break;
    if (static_cast<int>(reported.size()) + pulled.shards(0).tests_size() >=
        kTests) {
      held = pulled.shards(0);
      break;
    }
    ReportShard(*c, worker, pulled.shards(0));
    for (const std::string& id : Ids(pulled.shards(0))) reported.push_back(id);
  }
  ASSERT_GT(static_cast<int>(reported.size()),
            2 * Coordinator::kReportResultsPerLock);
  ASSERT_GT(held.tests_size(), 0);

  const absl::StatusOr<v1::SuiteReport> running = c->Report(suite_id);
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::SUITE_STATE_RUNNING);
  EXPECT_EQ(running->summary().done(), static_cast<int>(reported.size()));
  EXPECT_EQ(running->summary().running(), held.tests_size());
  ASSERT_EQ(running->results_size(), static_cast<int>(reported.size()));
  for (int i = 0; i < running->results_size(); ++i) {
    ASSERT_EQ(running->results(i).test_id(), reported[i]) << i;
  }

  ReportShard(*c, worker, held);
  const absl::StatusOr<v1::SuiteReport> ended = c->Report(suite_id);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->state(), v1::SUITE_STATE_FINISHED);
  ASSERT_EQ(ended->results_size(), kTests);
  for (int i = 0; i < running->results_size(); ++i) {
    ASSERT_EQ(ended->results(i).SerializeAsString(),
              running->results(i).SerializeAsString())
        << i;
  }
}

TEST_F(CoordinatorTest, SnapshotCountsTheExpectedWorkQueuedAndLeased) {
  options_.default_expected = absl::Seconds(2);
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 4)).ok());
  EXPECT_EQ(c->Snapshot().queued_expected_ms, 8000);
  EXPECT_EQ(c->Snapshot().running_expected_ms, 0);
  const std::string worker = Register(*c);
  v1::PullWorkResponse pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  const int leased = pulled.shards(0).tests_size();
  CoordinatorSnapshot snapshot = c->Snapshot();
  EXPECT_EQ(snapshot.running_tests, leased);
  EXPECT_EQ(snapshot.running_expected_ms, 2000.0 * leased);
  EXPECT_EQ(snapshot.queued_expected_ms, 2000.0 * (4 - leased));

  clock_.Advance(absl::Seconds(31));  // the lease expires: all queued again
  c->ExpireLeases();
  EXPECT_EQ(c->Snapshot().running_expected_ms, 0);
  EXPECT_EQ(c->Snapshot().queued_expected_ms, 8000);

  pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  // Reported: neither any more; and the tests left, without history of
  // their own, are now expected to take what these took.
  ReportShard(*c, worker, pulled.shards(0), v1::TEST_STATUS_PASSED, 500);
  snapshot = c->Snapshot();
  EXPECT_EQ(snapshot.running_expected_ms, 0);
  EXPECT_EQ(snapshot.queued_expected_ms,
            500.0 * (4 - pulled.shards(0).tests_size()));
}

TEST_F(CoordinatorTest, AReportedTestNoLongerCountsAsRunningForTheGuess) {
  auto c = Make();  // no history: each test first guessed at 1 s
  ASSERT_TRUE(c->Submit(MakeSuite("s", 2)).ok());
  const std::string worker = Register(*c);
  v1::PullWorkResponse pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  ASSERT_EQ(pulled.shards(0).tests_size(), 1);  // half of the 2 s queued
  // The only one leased finished in 5 ms, none runs: the other is guessed
  // to take as long.
  ReportShard(*c, worker, pulled.shards(0), v1::TEST_STATUS_PASSED, 5);
  EXPECT_EQ(c->Snapshot().queued_expected_ms, 5.0);
}

TEST_F(CoordinatorTest, TestsWithoutHistoryAreSizedByWhatTheirLikesTook) {
  UseStore();
  v1::TestResult run;  // one test of the suite has history: 3 s
  run.set_test_id("s.t0");
  run.set_wall_ms(3000);
  run.set_status(v1::TEST_STATUS_PASSED);
  ASSERT_TRUE(store_->RecordRun("s", "s-0", run).ok());
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 1000)).ok());
  // The other 999 take the suite's median, 3 s, until some of them ran.
  EXPECT_EQ(c->Snapshot().queued_expected_ms, 1000 * 3000.0);
  const std::string worker = Register(*c);
  v1::PullWorkResponse first = Pull(*c, worker);
  ASSERT_EQ(first.shards_size(), 1);
  ASSERT_EQ(first.shards(0).tests(0).spec().id(), "s.t0");  // longest
  ASSERT_EQ(first.shards(0).tests_size(), 3);               // 10 s of 3 s
  ReportShard(*c, worker, first.shards(0), v1::TEST_STATUS_PASSED, 2);
  // Two ran in 2 ms each: the 997 left are shards of max_shard_tests (the
  // most).
  EXPECT_EQ(c->Snapshot().queued_expected_ms, 997 * 2.0);
  v1::PullWorkResponse second = Pull(*c, worker);
  ASSERT_EQ(second.shards_size(), 1);
  EXPECT_EQ(second.shards(0).tests_size(), options_.max_shard_tests);
  EXPECT_EQ(c->Snapshot().running_expected_ms, options_.max_shard_tests * 2.0);
  auto progress = c->Progress(first.shards(0).suite_id());
  ASSERT_TRUE(progress.ok());
  EXPECT_EQ(progress->eta_ms(), 997 * 2);  // one slot
}

TEST_F(CoordinatorTest, HeartbeatsKeepLeasesAlive) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 1)).ok());
  const std::string worker = Register(*c);
  auto pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(20));
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_worker_id(worker);
    heartbeat.add_lease_ids(pulled.shards(0).lease_id());
    EXPECT_FALSE(c->Heartbeat(heartbeat).unknown_worker());
    c->ExpireLeases();
  }
  EXPECT_EQ(Pull(*c, Register(*c)).shards_size(), 0);  // nothing was requeued
}

TEST_F(CoordinatorTest, SilentWorkerIsForgottenAndToldToRegisterAgain) {
  auto c = Make();
  const std::string worker = Register(*c);
  clock_.Advance(absl::Seconds(61));
  c->ExpireLeases();
  EXPECT_TRUE(Pull(*c, worker).unknown_worker());
  EXPECT_EQ(c->ListWorkers().workers_size(), 0);
}

TEST_F(CoordinatorTest, FailedTestIsRetriedAndReportedFlaky) {
  auto c = Make();
  v1::SuiteSpec suite = MakeSuite("s", 1);
  suite.mutable_tests(0)->set_retries(2);
  auto submitted = c->Submit(suite);
  const std::string worker = Register(*c);
  auto first = Pull(*c, worker);
  ReportShard(*c, worker, first.shards(0), v1::TEST_STATUS_FAILED);
  auto second = Pull(*c, worker);
  ASSERT_EQ(second.shards_size(), 1);
  EXPECT_EQ(second.shards(0).tests(0).attempt(), 2);
  // A stale report of attempt 1 does not end the test.
  EXPECT_EQ(ReportShard(*c, worker, first.shards(0)).accepted(), 0);
  ReportShard(*c, worker, second.shards(0), v1::TEST_STATUS_PASSED);
  auto report = c->Report(submitted->suite_id());
  ASSERT_EQ(report->results_size(), 1);
  EXPECT_EQ(report->results(0).status(), v1::TEST_STATUS_PASSED);
  EXPECT_TRUE(report->results(0).flaky());
  EXPECT_EQ(report->results(0).attempt(), 2);
  EXPECT_EQ(report->summary().flaky(), 1);
}

TEST_F(CoordinatorTest, TestFailingEveryAttemptIsFailed) {
  auto c = Make();
  v1::SuiteSpec suite = MakeSuite("s", 1);
  suite.mutable_tests(0)->set_retries(1);
  auto submitted = c->Submit(suite);
  const std::string worker = Register(*c);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto pulled = Pull(*c, worker);
    ASSERT_EQ(pulled.shards_size(), 1);
    ReportShard(*c, worker, pulled.shards(0), v1::TEST_STATUS_FAILED);
  }
  EXPECT_EQ(Pull(*c, worker).shards_size(), 0);
  auto report = c->Report(submitted->suite_id());
  EXPECT_EQ(report->summary().failed(), 1);
  EXPECT_EQ(report->results(0).attempt(), 2);
}

TEST_F(CoordinatorTest, CacheHitsAtSubmitNeverReachAWorker) {
  v1::SuiteSpec suite = MakeSuite("s", 3);
  v1::CachedResult cached;
  cached.mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  cached.mutable_result()->set_wall_ms(123);
  cached.mutable_result()->set_worker("yesterday");
  const std::string key =
      ComputeActionKey(suite.tests(1), suite.platform()).hex();
  ASSERT_TRUE(cache_.Put({{key, cached}}).ok());
  auto c = Make();
  auto submitted = c->Submit(suite);
  EXPECT_EQ(submitted->cached(), 1);
  const std::string worker = Register(*c, 4);
  std::set<std::string> dispatched;
  for (int round = 0; round < 10; ++round) {
    auto pulled = Pull(*c, worker, 4);
    if (pulled.shards_size() == 0) break;
    for (const auto& shard : pulled.shards()) {
      for (const auto& id : Ids(shard)) dispatched.insert(id);
      ReportShard(*c, worker, shard);
    }
  }
  EXPECT_EQ(dispatched, (std::set<std::string>{"s.t0", "s.t2"}));
  auto report = c->Report(submitted->suite_id());
  EXPECT_EQ(report->summary().cached(), 1);
  for (const auto& r : report->results()) {
    if (r.test_id() == "s.t1") {
      EXPECT_TRUE(r.cached());
      EXPECT_EQ(r.wall_ms(), 123);  // the telemetry of the run that produced it
      EXPECT_EQ(r.cache_key(), key);
    }
  }
}

TEST_F(CoordinatorTest, MemoryHungryTestsGoToWorkersWithRoom) {
  UseStore();
  v1::TestResult run;
  run.set_test_id("s.t0");
  run.set_wall_ms(100);
  run.set_peak_rss_kb(4 << 20);  // 4 GiB
  ASSERT_TRUE(store_->RecordRun("s", "s-1", run).ok());
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 1)).ok());
  auto beat = [&](const std::string& worker, int64_t free_kb) {
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_worker_id(worker);
    heartbeat.set_free_memory_kb(free_kb);
    c->Heartbeat(heartbeat);
  };
  const std::string small = Register(*c);
  const std::string large = Register(*c);
  beat(small, 1 << 20);  // 1 GiB free
  beat(large, 16 << 20);
  EXPECT_EQ(Pull(*c, small).shards_size(), 0);
  ASSERT_EQ(Pull(*c, large).shards_size(), 1);

  // When no worker has room, it runs anyway.
  ASSERT_TRUE(c->Submit(MakeSuite("s", 1)).ok());
  beat(large, 1 << 20);
  EXPECT_EQ(Pull(*c, small).shards_size(), 1);
}

TEST_F(CoordinatorTest, RestartedCoordinatorResumesUnfinishedSuites) {
  UseStore();
  std::string suite_id;
  std::set<std::string> finished_before;
  {
    auto c = Make();
    auto submitted = c->Submit(MakeSuite("s", 6));
    ASSERT_TRUE(submitted.ok());
    suite_id = submitted->suite_id();
    const std::string worker = Register(*c);
    auto pulled = Pull(*c, worker);
    ASSERT_EQ(pulled.shards_size(), 1);
    ReportShard(*c, worker, pulled.shards(0));
    for (const auto& id : Ids(pulled.shards(0))) finished_before.insert(id);
    // A second shard is in flight when the coordinator dies.
    ASSERT_EQ(Pull(*c, worker).shards_size(), 1);
  }
  auto c = Make();
  auto resumed = c->Recover();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(*resumed, 1);
  auto report = c->Report(suite_id);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->summary().done(), static_cast<int>(finished_before.size()));
  const std::string worker = Register(*c, 4);
  for (int round = 0; round < 20; ++round) {
    auto pulled = Pull(*c, worker, 4);
    if (pulled.shards_size() == 0) break;
    for (const auto& shard : pulled.shards()) {
      for (const auto& id : Ids(shard))
        EXPECT_EQ(finished_before.count(id), 0u) << id;
      ReportShard(*c, worker, shard);
    }
  }
  report = c->Report(suite_id);
  EXPECT_EQ(report->state(), v1::SUITE_STATE_FINISHED);
  std::set<std::string> ids;
  for (const auto& r : report->results()) ids.insert(r.test_id());
  EXPECT_EQ(report->results_size(), 6);
  EXPECT_EQ(ids.size(), 6u);
  // Ended suites are not resumed again.
  auto again = Make();
  EXPECT_EQ(*again->Recover(), 0);
}

TEST_F(CoordinatorTest, WorkersOnlyGetWorkForTheirPlatform) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 2)).ok());
  EXPECT_EQ(Pull(*c, Register(*c, 1, "other-toolchain")).shards_size(), 0);
  EXPECT_EQ(Pull(*c, Register(*c, 1, "")).shards_size(), 1);
}

TEST_F(CoordinatorTest, CancelEndsTheSuiteAndTellsTheWorker) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 10));
  const std::string worker = Register(*c);
  auto pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  auto cancelled = c->Cancel(submitted->suite_id());
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(*cancelled, 10);
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_worker_id(worker);
  auto response = c->Heartbeat(heartbeat);
  ASSERT_EQ(response.cancelled_lease_ids_size(), 1);
  EXPECT_EQ(response.cancelled_lease_ids(0), pulled.shards(0).lease_id());
  auto report = c->Report(submitted->suite_id());
  EXPECT_EQ(report->state(), v1::SUITE_STATE_CANCELLED);
  EXPECT_EQ(report->summary().cancelled(), 10);
  // The leased tests were cancelled too: nothing runs for the suite now.
  EXPECT_EQ(report->summary().running(), 0);
  EXPECT_EQ(c->Progress(submitted->suite_id())->summary().running(), 0);
  EXPECT_EQ(Pull(*c, worker).shards_size(), 0);
}

TEST_F(CoordinatorTest, RejectsInvalidSuites) {
  auto c = Make();
  v1::SuiteSpec duplicate = MakeSuite("s", 2);
  duplicate.mutable_tests(1)->set_id("s.t0");
  EXPECT_EQ(c->Submit(duplicate).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SuiteSpec empty_cmd = MakeSuite("s", 1);
  empty_cmd.mutable_tests(0)->clear_argv();
  EXPECT_EQ(c->Submit(empty_cmd).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Submit(MakeSuite("s", 0)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c->Report("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, WatchDeliversEveryResultOnceAndEnds) {
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 5));
  const std::string worker = Register(*c, 5);
  for (int round = 0; round < 10; ++round) {
    auto pulled = Pull(*c, worker, 5);
    if (pulled.shards_size() == 0) break;
    for (const auto& shard : pulled.shards()) ReportShard(*c, worker, shard);
  }
  Coordinator::WatchCursor cursor;
  int delivered = 0;
  bool ended = false;
  for (int i = 0; i < 10 && !ended; ++i) {
    v1::WatchEvent event;
    auto next = c->NextEvent(submitted->suite_id(), &cursor,
                             absl::Milliseconds(10), &event);
    ASSERT_TRUE(next.ok());
    ended = *next;
    delivered += event.finished_size();
  }
  EXPECT_TRUE(ended);
  EXPECT_EQ(delivered, 5);
}

TEST(CoordinatorServerTest, StartThatFailsHalfWayReturnsTheError) {
  TestDir dir;
  CoordinatorServerConfig config;
  config.data_dir = dir.Join("data");
  config.cache_dir = dir.Write("not-a-folder", "a file where the cache goes");
  auto server = CoordinatorServer::Start(config);  // used to crash here
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()),
              ::testing::HasSubstr("not-a-folder"));
}

// ---- hardening (issue 15): each of these failed before the fix ----

Principal Token(const std::string& name, Role role) {
  return Principal{name, static_cast<uint32_t>(role)};
}

v1::ReportResultsRequest Forge(const std::string& worker,
                               const std::string& suite_id,
                               const std::string& lease_id,
                               const std::string& test_id, int attempt = 1) {
  v1::ReportResultsRequest request;
  request.set_worker_id(worker);
  v1::ReportedResult* r = request.add_results();
  r->set_suite_id(suite_id);
  r->set_lease_id(lease_id);
  r->mutable_result()->set_test_id(test_id);
  r->mutable_result()->set_attempt(attempt);
  r->mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  return request;
}

TEST_F(CoordinatorTest, AResultIsTakenOnlyForTheTestAttemptAndLeaseGiven) {
  auto c = Make();
  auto a = c->Submit(MakeSuite("a", 2));
  auto b = c->Submit(MakeSuite("b", 2));
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string worker = Register(*c);
  options_.max_shard_tests = 1;
  auto pulled = Pull(*c, worker);
  ASSERT_EQ(pulled.shards_size(), 1);
  const v1::Shard& shard = pulled.shards(0);
  const std::string given = shard.tests(0).spec().id();
  const std::string other_suite =
      shard.suite_id() == a->suite_id() ? b->suite_id() : a->suite_id();
  const std::string other_prefix =
      shard.suite_id() == a->suite_id() ? "b" : "a";
  auto rejected = [&](const v1::ReportResultsRequest& request) {
    auto answer = c->ReportResults(request);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() && answer->rejected() == 1 && answer->accepted() == 0;
  };
  // A queued test never leased, under a made-up lease id.
  EXPECT_TRUE(rejected(Forge(worker, other_suite, "L1", other_prefix + ".t0")));
  // A real lease, but for another suite's test.
  EXPECT_TRUE(rejected(
      Forge(worker, other_suite, shard.lease_id(), other_prefix + ".t0")));
  // A worker nobody registered.
  EXPECT_TRUE(
      rejected(Forge("intruder#1", shard.suite_id(), shard.lease_id(), given)));
  // The right lease, a later attempt than the one given.
  EXPECT_TRUE(rejected(Forge(worker, shard.suite_id(), shard.lease_id(), given,
                             /*attempt=*/2)));
  // Only the real thing passes.
  auto answer = c->ReportResults(
      Forge(worker, shard.suite_id(), shard.lease_id(), given));
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->accepted(), 1);
}

TEST_F(CoordinatorTest, LeaseAndSuiteIdsCarry128RandomBits) {
  auto c = Make();
  auto first = c->Submit(MakeSuite("s", 2));
  auto second = c->Submit(MakeSuite("t", 2));
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_THAT(first->suite_id(),
              ::testing::MatchesRegex("[0-9]{8}-[0-9]{6}-[0-9a-f]{32}"));
  EXPECT_NE(first->suite_id().substr(16), second->suite_id().substr(16));
  const std::string worker = Register(*c, 2);
  auto pulled = Pull(*c, worker, 2);
  ASSERT_EQ(pulled.shards_size(), 2);
  EXPECT_THAT(pulled.shards(0).lease_id(),
              ::testing::MatchesRegex("[0-9a-f]{32}"));
  EXPECT_NE(pulled.shards(0).lease_id(), pulled.shards(1).lease_id());
}

TEST_F(CoordinatorTest, ASuiteIsReadByItsOwnerViewersAndAdminsOnly) {
  auto c = Make();
  auto submitted = c->Submit(OwnedSuite("alice", "s", 2));
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  const std::string id = submitted->suite_id();
  const Principal alice = Token("alice", Role::kSubmit);
  const Principal bob = Token("bob", Role::kSubmit);
  const Principal viewer = Token("carol", Role::kView);
  const Principal admin = Principal{"root", 63};
  v1::WatchEvent event;
  Coordinator::WatchCursor cursor;
  EXPECT_TRUE(c->Report(id, alice).ok());
  EXPECT_EQ(c->Report(id, bob).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c->Progress(id, bob).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c->Explain(id, "s.t0", bob).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c->NextEvent(id, &cursor, absl::ZeroDuration(), &event, bob)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(c->Cancel(id, bob).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(c->Report(id, viewer).ok());
  EXPECT_TRUE(c->Explain(id, "s.t0", viewer).ok());
  EXPECT_EQ(c->Cancel(id, viewer).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(c->Progress(id, admin).ok());
  EXPECT_THAT(c->Cancel(id, alice), ::testing::Eq(absl::StatusOr<int>(2)));
}

TEST_F(CoordinatorTest, ASuiteNameItsHistoryAndBaselineBelongToItsFirstOwner) {
  UseStore();
  auto c = Make();
  ASSERT_TRUE(c->Submit(OwnedSuite("alice", "nightly", 1)).ok());
  auto refused = c->Submit(OwnedSuite("bob", "nightly", 1));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::HasSubstr("belongs to alice"));
  v1::SetBaselineRequest pin;
  pin.set_suite_name("nightly");
  EXPECT_EQ(c->SetBaseline(pin, Token("bob", Role::kSubmit)).status().code(),
            absl::StatusCode::kPermissionDenied);
  v1::HistoryRequest history;
  history.set_suite_name("nightly");
  EXPECT_EQ(c->History(history, Token("bob", Role::kSubmit)).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(c->SetBaseline(pin, Token("alice", Role::kSubmit)).ok());
  // A name nobody claimed: readable by every reader, pinned only by admins.
  history.set_suite_name("unclaimed");
  EXPECT_NE(c->History(history, Token("bob", Role::kSubmit)).status().code(),
            absl::StatusCode::kPermissionDenied);
  pin.set_suite_name("unclaimed");
  EXPECT_EQ(c->SetBaseline(pin, Token("bob", Role::kSubmit)).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(CoordinatorTest, EveryFieldIsCheckedOnTheServerAsInTheClient) {
  auto c = Make();
  struct Case {
    std::function<void(v1::TestSpec&)> spoil;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](v1::TestSpec& t) { t.set_cwd("/etc"); },
       "tests[0].cwd: \"/etc\" is outside the suite folder"},
      {[](v1::TestSpec& t) { t.set_cwd("a/../../.."); },
       "tests[0].cwd: \"a/../../..\" is not a normalized path"},
      {[](v1::TestSpec& t) {
         v1::InputDigest* input = t.add_inputs();
         input->set_path("../../../etc/passwd");
         input->set_sha256(std::string(64, 'a'));
       },
       "tests[0].inputs[0]: \"../../../etc/passwd\" is outside"},
      {[](v1::TestSpec& t) { (*t.mutable_env())["A=B"] = "x"; },
       "tests[0].env.A=B: is not a valid variable name"},
      {[](v1::TestSpec& t) { t.add_argv(std::string("a\0b", 3)); },
       "tests[0].cmd[2]: contains a NUL character"},
      {[](v1::TestSpec& t) { (*t.mutable_env())["X"] = std::string("\0", 1); },
       "tests[0].env.X: contains a NUL character"},
      {[](v1::TestSpec& t) { t.set_id("two\nlines"); },
       "tests[0].id: contains a control character"},
      {[](v1::TestSpec& t) { t.set_retries(1000000); },
       "tests[0].retries: 1000000 is out of range [0, 100]"},
      {[](v1::TestSpec& t) { t.set_timeout_ms(-1); },
       "tests[0].timeout: -1 ms is negative"},
      {[](v1::TestSpec& t) {
         v1::InputDigest* input = t.add_inputs();
         input->set_path("data.txt");
         input->set_sha256("abc");
       },
       "tests[0].inputs[0]: \"data.txt\" has no valid SHA-256"},
  };
  for (const Case& bad : cases) {
    v1::SuiteSpec suite = MakeSuite("s", 1);
    bad.spoil(*suite.mutable_tests(0));
    auto refused = c->Submit(suite);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument)
        << bad.message;
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::StartsWith(bad.message));
  }
  // Suite-level fields too: a client's --fail-fast is checked again here.
  v1::SuiteSpec negative_fail_fast = MakeSuite("s", 1);
  negative_fail_fast.set_fail_fast(-1);
  auto refused = c->Submit(negative_fail_fast);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::StartsWith("fail_fast: -1 is negative"));
  // A coordinator told to trust shared paths takes the absolute cwd.
  options_.allow_outside_paths = true;
  v1::SuiteSpec shared = MakeSuite("s", 1);
  shared.mutable_tests(0)->set_cwd("/tmp");
  EXPECT_TRUE(Make()->Submit(shared).ok());
}

TEST_F(CoordinatorTest, ImpossibleFiguresFromAWorkerAreRejectedOrBounded) {
  options_.max_workers = 2;
  auto c = Make();
  auto submitted = c->Submit(MakeSuite("s", 3));
  ASSERT_TRUE(submitted.ok());
  v1::RegisterWorkerRequest greedy;
  greedy.set_name("greedy");
  greedy.set_slots(100000);
  auto registered = c->RegisterWorker(greedy);
  ASSERT_TRUE(registered.ok());
  EXPECT_EQ(c->ListWorkers().workers(0).slots(), options_.max_worker_slots);
  v1::RegisterWorkerRequest escape;
  escape.set_name("evil\x1b]0;title\x07");
  EXPECT_EQ(c->RegisterWorker(escape).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string worker = Register(*c, 3);
  EXPECT_EQ(c->RegisterWorker(greedy).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto pulled = Pull(*c, worker, 3);
  ASSERT_GE(pulled.shards_size(), 1);
  const v1::Shard& shard = pulled.shards(0);
  ASSERT_GE(shard.tests_size(), 1);
  const std::string test = shard.tests(0).spec().id();
  for (double wall : {-5.0, std::nan(""), 1e300}) {
    v1::ReportResultsRequest bad =
        Forge(worker, shard.suite_id(), shard.lease_id(), test);
    bad.mutable_results(0)->mutable_result()->set_wall_ms(wall);
    auto answer = c->ReportResults(bad);
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->rejected(), 1) << wall;
  }
  // Outputs that lead out of the test's folder, or name no digest, are the
  // coordinator's to refuse, not only coordctl's at download.
  for (const char* path : {"../../etc/passwd", "/etc/passwd", "a/../../b"}) {
    v1::ReportResultsRequest bad =
        Forge(worker, shard.suite_id(), shard.lease_id(), test);
    v1::OutputFile* output =
        bad.mutable_results(0)->mutable_result()->add_outputs();
    output->set_path(path);
    output->set_sha256(std::string(64, 'a'));
    auto answer = c->ReportResults(bad);
    ASSERT_TRUE(answer.ok());
    EXPECT_EQ(answer->rejected(), 1) << path;
  }
  v1::ReportResultsRequest no_digest =
      Forge(worker, shard.suite_id(), shard.lease_id(), test);
  no_digest.mutable_results(0)->mutable_result()->add_outputs()->set_path(
      "out.xml");
  EXPECT_EQ(c->ReportResults(no_digest)->rejected(), 1);
  v1::ReportResultsRequest future =
      Forge(worker, shard.suite_id(), shard.lease_id(), test);
  const int64_t year_3000 = 32503680000000;
  future.mutable_results(0)->mutable_result()->set_started_at_unix_ms(
      year_3000);
  future.mutable_results(0)->mutable_result()->set_finished_at_unix_ms(
      year_3000 + 5);
  auto answer = c->ReportResults(future);
  ASSERT_TRUE(answer.ok());
  EXPECT_EQ(answer->accepted(), 1);
  auto report = c->Report(submitted->suite_id());
  ASSERT_TRUE(report.ok());
  ASSERT_EQ(report->results_size(), 1);
  EXPECT_EQ(report->results(0).finished_at_unix_ms(),
            absl::ToUnixMillis(clock_.Now()));
}

TEST_F(CoordinatorTest, ATokensQueuedTestsAreCountedAcrossItsSuites) {
  options_.max_tests_per_owner = 5;
  auto c = Make();
  ASSERT_TRUE(c->Submit(OwnedSuite("alice", "a", 3)).ok());
  EXPECT_EQ(c->Submit(OwnedSuite("alice", "b", 3)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(c->Submit(OwnedSuite("bob", "b", 3)).ok());
}

TEST_F(CoordinatorTest, EndedSuitesLeaveMemoryByTheirSizeNotOnlyTheirCount) {
  UseStore();
  options_.max_ended_tests_in_memory = 150;
  auto c = Make();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto submitted = c->Submit(MakeSuite(absl::StrCat("s", i), 100));
    ASSERT_TRUE(submitted.ok());
    ids.push_back(submitted->suite_id());
    ASSERT_TRUE(c->Cancel(submitted->suite_id()).ok());
  }
  int in_memory = 0;
  for (const std::string& id : ids) {
    // Explain answers only for suites held in memory; reports come from the
    // store either way.
    in_memory +=
        c->Explain(id, "x").status().code() != absl::StatusCode::kNotFound ||
        absl::StrContains(c->Explain(id, "x").status().message(),
                          "has no test");
    auto report = c->Report(id);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->summary().cancelled(), 100);
  }
  EXPECT_EQ(in_memory, 1);
}

TEST_F(CoordinatorTest, AWallClockStepExpiresNoLease) {
  auto c = Make();
  ASSERT_TRUE(c->Submit(MakeSuite("s", 2)).ok());
  const std::string worker = Register(*c);
  ASSERT_EQ(Pull(*c, worker).shards_size(), 1);
  clock_.Set(clock_.Now() + absl::Hours(2));  // NTP steps the wall clock
  c->ExpireLeases();
  v1::HeartbeatRequest beat;
  beat.set_worker_id(worker);
  EXPECT_FALSE(c->Heartbeat(beat).unknown_worker());
  EXPECT_EQ(c->Snapshot().running_tests, 1);
}

TEST_F(CoordinatorTest, ACachedFailureServesOnlyTestsThatAskedForIt) {
  v1::SuiteSpec suite = MakeSuite("s", 1);
  v1::CachedResult failed;
  failed.mutable_result()->set_status(v1::TEST_STATUS_FAILED);
  const std::string key =
      ComputeActionKey(suite.tests(0), suite.platform()).hex();
  ASSERT_TRUE(cache_.Put({{key, failed}}).ok());
  auto submitted = Make()->Submit(suite);
  ASSERT_TRUE(submitted.ok());
  EXPECT_EQ(submitted->cached(), 0);
}

}  // namespace
}  // namespace testfleet
