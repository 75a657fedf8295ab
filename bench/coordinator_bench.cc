// The coordinator's own cost per test, in process: a suite submitted,
// pulled in shards and reported by a fleet of workers, as fleet_sim drives
// it but without gRPC and without a simulator on the same cores, so changes
// to the scheduler, the settling of results and the store's writes can be
// told apart from this machine's noise. The store is real (RocksDB, synced
// writes) in a temporary folder of its own.
//
//   coordinator_bench --benchmark_repetitions=5
//
// CPU is the whole process's (the store's writer thread and RocksDB's
// included); `cpu_per_test` is it divided by the tests, and
// `items_per_second` tests a second of that CPU.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "benchmark/benchmark.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "coordinator/coordinator.h"
#include "coordinator/store.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

constexpr int kSlotsPerWorker = 8;

v1::SuiteSpec Suite(const std::string& name, int tests) {
  v1::SuiteSpec suite;
  suite.set_name(name);
  *suite.mutable_platform() = HostPlatform("");
  for (int t = 0; t < tests; ++t) {
    v1::TestSpec& test = *suite.add_tests();
    test.set_id(absl::StrCat("t", t));
    test.add_argv("sim");
    test.add_argv(std::to_string(1 + t % 2000));
    test.set_cwd(".");
    test.set_expected_ms(1 + t % 2000);
  }
  return suite;
}

// One worker's round: every test of every shard pulled, passed, in one
// report (a real worker's reporter gathers its results the same way).
v1::ReportResultsRequest Passed(const std::string& worker,
                                const v1::PullWorkResponse& pulled) {
  v1::ReportResultsRequest report;
  report.set_worker_id(worker);
  for (const v1::Shard& shard : pulled.shards()) {
    for (const v1::TestAssignment& test : shard.tests()) {
      v1::ReportedResult& reported = *report.add_results();
      reported.set_suite_id(shard.suite_id());
      reported.set_lease_id(shard.lease_id());
      v1::TestResult& result = *reported.mutable_result();
      result.set_test_id(test.spec().id());
      result.set_attempt(test.attempt());
      result.set_status(v1::TEST_STATUS_PASSED);
      result.set_wall_ms(test.spec().expected_ms());
      result.set_cache_key(test.cache_key());
      result.set_worker(worker);
    }
  }
  return report;
}

// Args: tests per suite, workers (of 8 slots), and whether the suite has
// history (1: the same suite again each iteration, as in CI; 0: a new one,
// its first run, as fleet_sim submits).
void BM_SuiteThroughCoordinator(benchmark::State& state) {
  const int tests = static_cast<int>(state.range(0));
  const int workers = static_cast<int>(state.range(1));
  const bool history = state.range(2) != 0;
  TestDir folder;  // deleted with everything in it, whatever the run did
  auto store = CoordinatorStore::Open(folder.Join("state"));
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  CoordinatorOptions options;
  options.store = store->get();
  Coordinator coordinator(options);
  std::vector<std::string> ids;
  for (int w = 0; w < workers; ++w) {
    v1::RegisterWorkerRequest request;
    request.set_name("bench");
    request.set_slots(kSlotsPerWorker);
    *request.mutable_platform() = HostPlatform("");
    ids.push_back(coordinator.RegisterWorker(request).value().worker_id());
  }
  int64_t suites = 0;
  std::atomic<int64_t> rejected{0};  // answered on the writer thread
  for (auto _ : state) {
    const std::string name =
        history ? std::string("bench") : absl::StrCat("bench-", suites);
    ++suites;
    if (!coordinator.Submit(Suite(name, tests)).ok()) {
      state.SkipWithError("submit failed");
      return;
    }
    // Answers come on the store's writer thread once durable; the rounds
    // go on meanwhile, as a fleet's would.
    std::vector<v1::ReportResultsRequest> reports;
    int reported = 0;
    while (reported < tests) {
      const int before = reported;
      for (const std::string& worker : ids) {
        v1::PullWorkRequest pull;
        pull.set_worker_id(worker);
        pull.set_free_slots(kSlotsPerWorker);
        pull.set_wait_ms(0);
        v1::ReportResultsRequest report =
            Passed(worker, coordinator.PullWork(pull));
        reported += report.results_size();
        if (report.results_size() > 0) reports.push_back(std::move(report));
      }
      if (reported == before) {
        state.SkipWithError("a round dispatched nothing");
        return;
      }
      absl::BlockingCounter answered(static_cast<int>(reports.size()));
      for (const v1::ReportResultsRequest& report : reports) {
        coordinator.ReportResults(
            report, [&](absl::StatusOr<v1::ReportResultsResponse> response) {
              if (!response.ok() || response->rejected() > 0) ++rejected;
              answered.DecrementCount();
            });
      }
      answered.Wait();
      reports.clear();
    }
  }
  if (rejected > 0) state.SkipWithError("reports failed or were rejected");
  state.SetItemsProcessed(state.iterations() * tests);
  state.counters["cpu_per_test"] =
      benchmark::Counter(tests, benchmark::Counter::kIsIterationInvariantRate |
                                    benchmark::Counter::kInvert);
}
BENCHMARK(BM_SuiteThroughCoordinator)
    ->ArgNames({"tests", "workers", "history"})
    ->Args({20000, 100, 0})
    ->Args({20000, 100, 1})
    ->Args({20000, 1000, 0})
    ->MeasureProcessCPUTime()
    ->Unit(benchmark::kMillisecond);

// Fails the run when a benchmark failed, so its CI smoke test can.
class FailingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) failed_ |= run.error_occurred;
    ConsoleReporter::ReportRuns(runs);
  }
  bool failed() const { return failed_; }

 private:
  bool failed_ = false;
};

}  // namespace
}  // namespace testfleet

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // a line per suite and worker
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  testfleet::FailingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return reporter.failed() ? 1 : 0;
}
