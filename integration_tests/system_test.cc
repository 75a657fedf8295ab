// Whole-system tests: the real coordinator, worker, cache_server and coordctl
// binaries on loopback ports with RocksDB data in temporary folders.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/digest.h"
#include "common/disk_space.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

class SystemTest : public ::testing::Test {
 protected:
  // A suite of `n` tests; each sleeps `sleep` seconds and echoes its id.
  std::string WriteSuite(const std::string& file, const std::string& name,
                         int n, double sleep = 0, int priority = 0,
                         bool own_inputs = false) {
    json suite = {{"name", name}, {"priority", priority}};
    json tests = json::array();
    for (int i = 0; i < n; ++i) {
      std::string id = absl::StrCat(name, ".", i);
      json test = {
          {"id", id},
          {"cmd",
           {"sh", "-c", absl::StrCat("sleep ", sleep, "; echo $0"), id}}};
      if (own_inputs) {
        std::string input = absl::StrCat("inputs/", i, ".txt");
        dir_.Write(input, absl::StrCat("input of test ", i));
        test["inputs"] = {input};
      }
      tests.push_back(test);
    }
    suite["tests"] = tests;
    return dir_.Write(file, suite.dump(2));
  }

  // Starts a coordinator on a free loopback port; returns its address.
  std::string StartCoordinator(std::vector<std::string> extra = {}) {
    return StartCoordinatorAt("127.0.0.1:0", extra, "coordinator.log");
  }
  // Kills the coordinator (SIGKILL) and starts another on the same address
  // and data dir, with `extra` flags.
  void RestartCoordinator(const std::string& address,
                          std::vector<std::string> extra = {}) {
    coordinator_->Kill(SIGKILL);
    StartCoordinatorAt(address, extra, "coordinator-2.log");
  }
  std::string StartCoordinatorAt(const std::string& listen,
                                 std::vector<std::string> extra,
                                 const std::string& log) {
    std::vector<std::string> args = {"--listen=" + listen,
                                     "--data-dir=" + dir_.Join("coordinator")};
    args.insert(args.end(), extra.begin(), extra.end());
    coordinator_ =
        std::make_unique<Process>("coordinator", args, dir_.Join(log));
    int port = ListeningPort(*coordinator_);
    EXPECT_GT(port, 0) << coordinator_->Log();
    return absl::StrCat("127.0.0.1:", port);
  }

  Process& StartWorker(const std::string& coordinator, const std::string& name,
                       std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--coordinator=" + coordinator, "--slots=1",
        "--workspace=" + dir_.path(), "--name=" + name,
        "--spool-dir=" + dir_.Join("spool-" + name)};
    args.insert(args.end(), extra.begin(), extra.end());
    workers_.push_back(std::make_unique<Process>(
        "worker", args, dir_.Join("worker-" + name + ".log")));
    return *workers_.back();
  }

  int Submit(const std::string& coordinator, const std::string& suite,
             const std::string& report, std::string* output = nullptr) {
    return Coordctl(
        {"submit", suite, "--coordinator=" + coordinator, "--wait",
         "--json=" + report, "--cache-dir=" + dir_.Join("client-cache")},
        dir_.Join("submit-" + std::to_string(submits_++) + ".log"), output);
  }

  // `coordctl submit --wait` in the background; its JSON report goes to
  // report.json, its output to client.log.
  std::unique_ptr<Process> SubmitInBackground(const std::string& coordinator,
                                              const std::string& suite) {
    return std::make_unique<Process>(
        "coordctl",
        std::vector<std::string>{"submit", suite,
                                 "--coordinator=" + coordinator, "--wait",
                                 "--json=" + dir_.Join("report.json"),
                                 "--cache-dir=" + dir_.Join("cc")},
        dir_.Join("client.log"));
  }

  // The suite id a background `coordctl submit` prints first; empty if it
  // did not within 30 s.
  static std::string SuiteIdOf(const Process& client) {
    WaitFor([&] { return client.Log().find('\n') != std::string::npos; },
            absl::Seconds(30));
    const std::string log = client.Log();
    const size_t end = log.find('\n');
    return end == std::string::npos ? "" : log.substr(0, end);
  }

  // The busy slots `coordctl workers` shows for the worker named `name`;
  // -1 when it is not listed.
  int BusySlots(const std::string& coordinator, const std::string& name) {
    std::string output;
    if (Coordctl({"workers", "--coordinator=" + coordinator},
                 dir_.Join("workers-poll.log"), &output) != 0) {
      return -1;
    }
    for (absl::string_view line : absl::StrSplit(output, '\n')) {
      std::vector<std::string> columns =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      int busy = 0;
      if (columns.size() > 2 && absl::StartsWith(columns[0], name + "#") &&
          absl::SimpleAtoi(columns[2], &busy)) {
        return busy;
      }
    }
    return -1;
  }

  // Every one of the suite's `n` tests reported exactly once, passed.
  static void ExpectEveryTestPassedOnce(const json& report, size_t n) {
    std::set<std::string> ids;
    for (const json& test : report["tests"])
      ids.insert(test["id"].get<std::string>());
    EXPECT_EQ(report["tests"].size(), n);
    EXPECT_EQ(ids.size(), n);
    EXPECT_EQ(report["summary"]["passed"], static_cast<int>(n));
  }

  TestDir dir_;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
  int submits_ = 0;
};

TEST_F(SystemTest, TwoHundredTestsOverThreeWorkersAreEachReportedOnce) {
  const std::string coordinator = StartCoordinator();
  for (const char* name : {"a", "b", "c"}) StartWorker(coordinator, name);
  const std::string suite = WriteSuite("suite.json", "big", 200, 0.01);
  std::string output;
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("report.json"), &output), 0)
      << output;
  json report = ReadJson(dir_.Join("report.json"));
  ASSERT_EQ(report["tests"].size(), 200u);
  std::set<std::string> ids, workers;
  for (const json& test : report["tests"]) {
    ids.insert(test["id"].get<std::string>());
    workers.insert(test["worker"].get<std::string>());
    EXPECT_EQ(test["status"], "passed");
    EXPECT_EQ(test["stdout_tail"], test["id"].get<std::string>() + "\n");
  }
  EXPECT_EQ(ids.size(), 200u);
  EXPECT_EQ(workers.size(), 3u) << "every worker should have taken work";
  EXPECT_EQ(report["summary"]["passed"], 200);

  // Unchanged, the suite is answered from the cache at submit.
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("again.json")), 0);
  EXPECT_EQ(ReadJson(dir_.Join("again.json"))["summary"]["cached"], 200);
}

TEST_F(SystemTest, HighPrioritySuiteSubmittedLaterStartsFirst) {
  const std::string coordinator = StartCoordinator();
  const std::string low = WriteSuite("low.json", "low", 6, 0.05, 1);
  const std::string high = WriteSuite("high.json", "high", 3, 0.05, 9);
  // Both queued before any worker exists; the high one is submitted second.
  Process low_client("coordctl",
                     {"submit", low, "--coordinator=" + coordinator, "--wait",
                      "--json=" + dir_.Join("low-report.json"),
                      "--cache-dir=" + dir_.Join("client-cache")},
                     dir_.Join("low.log"));
  ASSERT_FALSE(SuiteIdOf(low_client).empty())
      << "low suite was not submitted: " << low_client.Log();
  Process high_client("coordctl",
                      {"submit", high, "--coordinator=" + coordinator, "--wait",
                       "--json=" + dir_.Join("high-report.json"),
                       "--cache-dir=" + dir_.Join("client-cache-2")},
                      dir_.Join("high.log"));
  ASSERT_FALSE(SuiteIdOf(high_client).empty());
  StartWorker(coordinator, "only");
  ASSERT_EQ(low_client.Wait(absl::Minutes(2)), 0) << low_client.Log();
  ASSERT_EQ(high_client.Wait(absl::Minutes(2)), 0) << high_client.Log();
  auto first_start = [](const json& report) {
    std::string first = "9999";
    for (const json& test : report["tests"])
      first = std::min(first, test["started_at"].get<std::string>());
    return first;
  };
  auto last_finish = [](const json& report) {
    std::string last;
    for (const json& test : report["tests"])
      last = std::max(last, test["finished_at"].get<std::string>());
    return last;
  };
  json low_report = ReadJson(dir_.Join("low-report.json"));
  json high_report = ReadJson(dir_.Join("high-report.json"));
  EXPECT_LE(last_finish(high_report), first_start(low_report))
      << "the high-priority suite must run before the low one";
}

TEST_F(SystemTest, OneChangedInputByteRerunsOnlyItsTest) {
  const std::string suite =
      WriteSuite("suite.json", "inputs", 5, 0, 0, /*own_inputs=*/true);
  const std::string cache = "--cache-dir=" + dir_.Join("dev-cache");
  auto run = [&](const std::string& report) {
    std::string output;
    int code =
        Coordctl({"run", suite, "--workers=2", cache, "--json=" + report},
                 report + ".log", &output);
    EXPECT_EQ(code, 0) << output;
    return ReadJson(report);
  };
  json first = run(dir_.Join("first.json"));
  EXPECT_EQ(first["summary"]["cached"], 0);
  json second = run(dir_.Join("second.json"));
  EXPECT_EQ(second["summary"]["cached"], 5);
  dir_.Write("inputs/3.txt", "input of test 4");  // one byte differs
  json third = run(dir_.Join("third.json"));
  EXPECT_EQ(third["summary"]["cached"], 4);
  for (const json& test : third["tests"]) {
    EXPECT_EQ(test["cached"].get<bool>(), test["id"] != "inputs.3")
        << test["id"];
  }
}

TEST_F(SystemTest, WorkerKilledMidSuiteLosesNoTest) {
  const std::string coordinator = StartCoordinator({"--lease=2s"});
  Process& victim = StartWorker(coordinator, "victim");
  StartWorker(coordinator, "survivor");
  const std::string suite = WriteSuite("suite.json", "kill", 40, 0.1);
  auto client = SubmitInBackground(coordinator, suite);
  // Kill the victim while it holds a shard (checked, not assumed).
  ASSERT_TRUE(WaitFor([&] { return BusySlots(coordinator, "victim") > 0; },
                      absl::Seconds(30)));
  victim.Kill(SIGKILL);
  ASSERT_EQ(client->Wait(absl::Minutes(2)), 0) << client->Log();
  ExpectEveryTestPassedOnce(ReadJson(dir_.Join("report.json")), 40);
  EXPECT_THAT(coordinator_->Log(), HasSubstr("expired"));
}

TEST_F(SystemTest, TwoClientsSubmittingAtOnceBothComplete) {
  const std::string coordinator = StartCoordinator();
  StartWorker(coordinator, "w1");
  StartWorker(coordinator, "w2");
  const std::string one = WriteSuite("one.json", "one", 20, 0.02);
  const std::string two = WriteSuite("two.json", "two", 20, 0.02);
  Process a("coordctl",
            {"submit", one, "--coordinator=" + coordinator, "--wait",
             "--cache-dir=" + dir_.Join("c1")},
            dir_.Join("a.log"));
  Process b("coordctl",
            {"submit", two, "--coordinator=" + coordinator, "--wait",
             "--cache-dir=" + dir_.Join("c2")},
            dir_.Join("b.log"));
  EXPECT_EQ(a.Wait(absl::Minutes(2)), 0) << a.Log();
  EXPECT_EQ(b.Wait(absl::Minutes(2)), 0) << b.Log();
  EXPECT_THAT(a.Log(), HasSubstr("one: 20 tests, 20 passed"));
  EXPECT_THAT(b.Log(), HasSubstr("two: 20 tests, 20 passed"));
}

TEST_F(SystemTest, FailuresGiveExitCodeOneAndJunit) {
  dir_.Write("fail.json", R"({"name": "mixed", "tests": [
      {"id": "ok", "cmd": ["true"]},
      {"id": "bad", "cmd": ["sh", "-c", "echo 'expected <1> & got 2' >&2; exit 1"]},
      {"id": "slow", "cmd": ["sleep", "10"], "timeout": "300ms"}]})");
  std::string output;
  EXPECT_EQ(Coordctl({"run", dir_.Join("fail.json"), "--workers=2",
                      "--cache-dir=" + dir_.Join("cache"),
                      "--junit=" + dir_.Join("junit.xml"),
                      "--html=" + dir_.Join("report.html")},
                     dir_.Join("fail.log"), &output),
            1)
      << output;
  EXPECT_THAT(output, HasSubstr("FAIL bad"));
  EXPECT_THAT(output, HasSubstr("FAIL slow (timed_out"));
  std::string junit = ReadFile(dir_.Join("junit.xml"));
  EXPECT_THAT(
      junit,
      HasSubstr("<testsuites name=\"mixed\" tests=\"3\" failures=\"2\""));
  EXPECT_THAT(junit, HasSubstr("expected &lt;1&gt; &amp; got 2"));
  EXPECT_THAT(ReadFile(dir_.Join("report.html")), HasSubstr("<svg"));
}

TEST_F(SystemTest, FailFastCancelsTheRestAndCachesNothingCancelled) {
  // One test fails at once; 30 others sleep. Two slots: the suite stops
  // after the failure with most tests never started.
  std::string tests = R"({"id": "broken", "cmd": ["sh", "-c", "exit 3"]})";
  for (int i = 0; i < 30; ++i) {
    absl::StrAppend(&tests, R"(, {"id": "t)", i,
                    R"(", "cmd": ["sleep", "0.3"], "env": {"N": ")", i,
                    R"("}})");
  }
  dir_.Write("suite.json",
             absl::StrCat(R"({"name": "ff", "tests": [)", tests, "]}"));
  std::string output;
  ASSERT_EQ(Coordctl({"run", dir_.Join("suite.json"), "--workers=2",
                      "--fail-fast", "--cache-dir=" + dir_.Join("cache"),
                      "--json=" + dir_.Join("ff.json")},
                     dir_.Join("ff.log"), &output),
            1)
      << output;
  EXPECT_THAT(output, HasSubstr("FAIL broken"));
  EXPECT_THAT(output, HasSubstr("tests cancelled: "));
  EXPECT_THAT(output, HasSubstr(": --fail-fast: the suite stopped after 1 "
                                "failure (the last: broken)"));
  const nlohmann::json report = ReadJson(dir_.Join("ff.json"));
  const nlohmann::json& summary = report["summary"];
  EXPECT_EQ(summary["failed"], 1);
  EXPECT_TRUE(summary["first_failure_ms"].is_number());
  ASSERT_EQ(report["tests"].size(), 31u);  // every test listed
  int passed = 0, not_run = 0, stopped = 0;
  for (const nlohmann::json& test : report["tests"]) {
    if (test["status"] == "passed") ++passed;
    if (test["status"] != "cancelled") continue;
    const std::string error = test["error"];
    EXPECT_THAT(error, HasSubstr("--fail-fast: the suite stopped after 1 "
                                 "failure (the last: broken)"));
    not_run += error.rfind("not run", 0) == 0;
    stopped += error.rfind("stopped while running", 0) == 0;
  }
  EXPECT_EQ(summary["cancelled"], 30 - passed);
  // At most the test each of the 2 slots was running was stopped.
  EXPECT_LE(stopped, 2);
  EXPECT_EQ(not_run + stopped, 30 - passed);
  // The summary counts each reason apart.
  EXPECT_THAT(output,
              HasSubstr(absl::StrCat(not_run, " tests cancelled: not run: ")));
  // Only what passed is in the cache: cancelled tests run next time.
  ASSERT_EQ(Coordctl({"run", dir_.Join("suite.json"), "--workers=2",
                      "--cache-dir=" + dir_.Join("cache"),
                      "--json=" + dir_.Join("again.json")},
                     dir_.Join("again.log"), &output),
            1)
      << output;
  EXPECT_EQ(ReadJson(dir_.Join("again.json"))["summary"]["cached"], passed);
}

TEST_F(SystemTest, BadInputIsExitTwoNamingTheField) {
  struct Case {
    const char* suite;
    const char* message;
  };
  const Case cases[] = {
      {R"({"tests": [{"id": "a", "cmd": ["true"]}, {"id": "a", "cmd": ["true"]}]})",
       "tests[1].id: duplicate id \"a\""},
      {R"({"tests": [{"id": "a", "cmd": []}]})", "tests[0].cmd: is empty"},
      {R"({"tests": [{"id": "a", "cmd": ["true"], "timeout": "-1s"}]})",
       "tests[0].timeout: \"-1s\" is not a duration"},
      {R"({"tests": [{"id": "a", "cmd": ["true"], "bogus": 1}]})",
       "tests[0].bogus: unknown field"},
      {R"({"tests": [{"id": "a", "cmd": ["true"], "inputs": ["nope.bin"]}]})",
       "tests[0].inputs[0]: \"nope.bin\" cannot be read"},
      {R"({"tests": [)", "invalid JSON at line 1"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string suite =
        dir_.Write(absl::StrCat("bad", i++, ".json"), c.suite);
    std::string output;
    EXPECT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir_.Join("cache")},
                       dir_.Join("bad.log"), &output),
              2);
    EXPECT_THAT(output, HasSubstr(suite + ": " + c.message));
  }
  std::string output;
  EXPECT_EQ(
      Coordctl({"run", dir_.Join("missing.json")}, dir_.Join("m.log"), &output),
      2);
  EXPECT_THAT(output, HasSubstr("missing.json: cannot read the suite file"));
  EXPECT_EQ(Coordctl({"run"}, dir_.Join("usage.log"), &output), 2);
  EXPECT_EQ(Coordctl({"frobnicate"}, dir_.Join("usage2.log"), &output), 2);
  // Nothing listens on port 1: an infrastructure error, exit 3.
  const std::string suite = WriteSuite("ok.json", "ok", 1);
  EXPECT_EQ(Coordctl({"submit", suite, "--coordinator=127.0.0.1:1",
                      "--cache-dir=" + dir_.Join("cache")},
                     dir_.Join("unreachable.log"), &output),
            3);
  EXPECT_THAT(output, HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

TEST_F(SystemTest, StandaloneCacheServerIsSharedByTheFleetAndDevelopers) {
  Process cache("cache_server",
                {"--listen=127.0.0.1:0", "--data-dir=" + dir_.Join("shared")},
                dir_.Join("cache.log"));
  const std::string cache_address =
      absl::StrCat("127.0.0.1:", ListeningPort(cache));
  const std::string coordinator =
      StartCoordinator({"--no-cache-service", "--cache=" + cache_address});
  StartWorker(coordinator, "ci");
  const std::string suite = WriteSuite("suite.json", "shared", 10, 0, 0, true);
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("ci.json")), 0);
  EXPECT_EQ(ReadJson(dir_.Join("ci.json"))["summary"]["cached"], 0);

  // A developer machine with an empty local cache reuses the fleet's results.
  std::string output;
  ASSERT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir_.Join("laptop"),
                      "--remote-cache=" + cache_address,
                      "--json=" + dir_.Join("dev.json")},
                     dir_.Join("dev.log"), &output),
            0)
      << output;
  EXPECT_EQ(ReadJson(dir_.Join("dev.json"))["summary"]["cached"], 10);

  ASSERT_EQ(Coordctl({"cache", "stats", "--cache=" + cache_address},
                     dir_.Join("stats.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("entries 10"));
}

TEST_F(SystemTest, WorkerRefusesInputsThatDifferFromTheSubmittedOnes) {
  const std::string coordinator = StartCoordinator();
  const std::string suite = WriteSuite("suite.json", "drift", 2, 0, 0, true);
  TestDir other_checkout;  // the worker's workspace has another input 0
  other_checkout.Write("inputs/0.txt", "something else");
  other_checkout.Write("inputs/1.txt", "input of test 1");
  workers_.push_back(std::make_unique<Process>(
      "worker",
      std::vector<std::string>{"--coordinator=" + coordinator,
                               "--workspace=" + other_checkout.path(),
                               "--name=stale",
                               "--spool-dir=" + dir_.Join("spool-stale")},
      dir_.Join("stale.log")));
  std::string output;
  EXPECT_EQ(Submit(coordinator, suite, dir_.Join("report.json"), &output), 1);
  json report = ReadJson(dir_.Join("report.json"));
  for (const json& test : report["tests"]) {
    if (test["id"] == "drift.0") {
      EXPECT_EQ(test["status"], "error");
      EXPECT_THAT(test["error"].get<std::string>(),
                  HasSubstr("input inputs/0.txt on worker stale differs from "
                            "the submitted one"));
      // Nothing of what the worker's own file holds leaks to the submitter.
      const std::string local_digest = Sha256Hex("something else");
      EXPECT_THAT(test["error"].get<std::string>(),
                  ::testing::Not(HasSubstr(local_digest.substr(0, 12))));
    } else {
      EXPECT_EQ(test["status"], "passed");
    }
  }
}

TEST_F(SystemTest, ASecondCoordinatorOnAPortInUseRefusesToStart) {
  const std::string first = StartCoordinator();
  Process second("coordinator",
                 {"--listen=" + first, "--data-dir=" + dir_.Join("second")},
                 dir_.Join("second.log"));
  EXPECT_EQ(second.Wait(absl::Seconds(30)), 2) << second.Log();
  EXPECT_THAT(second.Log(), HasSubstr("cannot listen on " + first));
  EXPECT_THAT(second.Log(), ::testing::Not(HasSubstr("listening")));
}

TEST_F(SystemTest, StatusWorkersAndReportCommands) {
  const std::string coordinator = StartCoordinator();
  StartWorker(coordinator, "lister");
  const std::string suite = WriteSuite("suite.json", "cmds", 3);
  std::string output;
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("r.json"), &output), 0);
  const std::string suite_id = output.substr(0, output.find('\n'));
  ASSERT_EQ(Coordctl({"status", suite_id, "--coordinator=" + coordinator},
                     dir_.Join("s.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("finished: 3/3 done"));
  ASSERT_EQ(Coordctl({"workers", "--coordinator=" + coordinator},
                     dir_.Join("w.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("lister"));
  ASSERT_EQ(Coordctl({"report", suite_id, "--coordinator=" + coordinator,
                      "--junit=" + dir_.Join("again.xml")},
                     dir_.Join("r.log"), &output),
            0);
  EXPECT_THAT(ReadFile(dir_.Join("again.xml")), HasSubstr("tests=\"3\""));
  EXPECT_EQ(
      Coordctl({"status", "no-such-suite", "--coordinator=" + coordinator},
               dir_.Join("n.log"), &output),
      2);
}

TEST_F(SystemTest, ExplainNamesTheInputThatChanged) {
  const std::string coordinator = StartCoordinator();
  StartWorker(coordinator, "explainer");
  const std::string suite =
      WriteSuite("suite.json", "why", 3, 0, 0, /*own_inputs=*/true);
  std::string output;
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("first.json")), 0);
  dir_.Write("inputs/1.txt", "input of test 9");
  ASSERT_EQ(Submit(coordinator, suite, dir_.Join("second.json"), &output), 0);
  const std::string suite_id = output.substr(0, output.find('\n'));
  ASSERT_EQ(
      Coordctl({"explain", suite_id, "why.1", "--coordinator=" + coordinator},
               dir_.Join("explain.log"), &output),
      0)
      << output;
  EXPECT_THAT(output, HasSubstr("why.1 ran"));
  EXPECT_THAT(output, HasSubstr("input inputs/1.txt changed (sha256 "));
  ASSERT_EQ(
      Coordctl({"explain", suite_id, "why.0", "--coordinator=" + coordinator},
               dir_.Join("explain0.log"), &output),
      0);
  EXPECT_THAT(output, HasSubstr("why.0 came from the cache"));
  EXPECT_EQ(
      Coordctl({"explain", suite_id, "nope", "--coordinator=" + coordinator},
               dir_.Join("explain-bad.log"), &output),
      2);
  EXPECT_THAT(output, HasSubstr("has no test \"nope\""));
}

TEST_F(SystemTest, SlowerProbeIsReportedAsARegressionWithItsNumbers) {
  const std::string coordinator = StartCoordinator();
  StartWorker(coordinator, "timer");
  // The probe sleeps as long as its input file says; the file also names the
  // run, so every run has a new cache key and really executes.
  const json suite = {
      {"name", "perf"},
      {"tests",
       {{{"id", "probe"},
         {"cmd", {BinDir() + "/tf_probe", "--sleep-ms-from=duration.txt"}},
         {"inputs", {"duration.txt"}}}}}};
  const std::string suite_path = dir_.Write("perf.json", suite.dump());
  // Three times slower: a loaded host that delays one 100 ms run by 50 ms
  // (ctest -j2 beside other integration tests) cannot make the two speeds
  // overlap, so the verdict and its figures do not depend on the load.
  constexpr int kFastMs = 100;
  constexpr int kSlowMs = 300;
  std::string output, fifth_suite;
  for (int run = 1; run <= 10; ++run) {
    dir_.Write("duration.txt",
               absl::StrCat(run <= 5 ? kFastMs : kSlowMs, " ms, run ", run));
    const std::string report = dir_.Join(absl::StrCat("run", run, ".json"));
    const int code =
        Coordctl({"submit", suite_path, "--coordinator=" + coordinator,
                  "--wait", "--fail-on-regression", "--json=" + report,
                  "--cache-dir=" + dir_.Join("cc")},
                 dir_.Join(absl::StrCat("run", run, ".log")), &output);
    if (run == 5) fifth_suite = ReadJson(report)["suite_id"];
    // Runs 6 to 9 mix both speeds in their window: a verdict may come early
    // or not, depending on noise; by run 10 it must.
    if (run <= 5) {
      ASSERT_EQ(code, 0) << "run " << run << ": " << output;
    }
    if (run == 10) {
      EXPECT_EQ(code, 1) << output;
    }
  }
  EXPECT_THAT(output, HasSubstr("REGRESSION probe wall_time +"));
  EXPECT_THAT(output,
              HasSubstr("1 performance regressions (--fail-on-regression)"));
  const json report = ReadJson(dir_.Join("run10.json"));
  ASSERT_EQ(report["regressions"].size(), 1u) << report.dump(2);
  const json& regression = report["regressions"][0];
  EXPECT_EQ(regression["id"], "probe");
  EXPECT_EQ(regression["metric"], "wall_time");
  EXPECT_NEAR(regression["baseline_median"].get<double>(), kFastMs, 20);
  EXPECT_NEAR(regression["current_median"].get<double>(), kSlowMs, 30);
  EXPECT_NEAR(regression["change_pct"].get<double>(), 200, 40);
  EXPECT_LT(regression["p_value"].get<double>(), 0.01);
  EXPECT_EQ(regression["baseline_runs"], 5);
  EXPECT_EQ(regression["current_runs"], 5);
  EXPECT_EQ(regression["recent"].size(), 10u);
  const std::string tenth_suite = report["suite_id"];

  ASSERT_EQ(
      Coordctl({"regressions", tenth_suite, "--coordinator=" + coordinator},
               dir_.Join("regressions.log"), &output),
      1);
  EXPECT_THAT(output, HasSubstr("REGRESSION probe wall_time"));
  ASSERT_EQ(
      Coordctl({"history", "perf", "probe", "--coordinator=" + coordinator,
                "--json=" + dir_.Join("history.json")},
               dir_.Join("history.log"), &output),
      0)
      << output;
  EXPECT_EQ(ReadJson(dir_.Join("history.json"))["tests"][0]["history"].size(),
            10u);
  // Pinned to run 5, the baseline no longer rolls onto the slow runs.
  ASSERT_EQ(Coordctl({"baseline", "set", "perf", "--from=" + fifth_suite,
                      "--coordinator=" + coordinator},
                     dir_.Join("baseline.log"), &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("suite " + fifth_suite));
  dir_.Write("duration.txt", absl::StrCat(kSlowMs, " ms, run 11"));
  EXPECT_EQ(Coordctl({"submit", suite_path, "--coordinator=" + coordinator,
                      "--wait", "--json=" + dir_.Join("run11.json"),
                      "--cache-dir=" + dir_.Join("cc")},
                     dir_.Join("run11.log")),
            0);
  const json eleventh = ReadJson(dir_.Join("run11.json"));
  ASSERT_EQ(eleventh["regressions"].size(), 1u);
  EXPECT_EQ(eleventh["regressions"][0]["baseline"], fifth_suite);
}

TEST_F(SystemTest, InterruptingWaitDetachesWithoutCancelling) {
  const std::string coordinator =
      StartCoordinator();  // no worker: the suite stays queued
  const std::string suite = WriteSuite("suite.json", "detach", 2);
  Process client("coordctl",
                 {"submit", suite, "--coordinator=" + coordinator, "--wait",
                  "--cache-dir=" + dir_.Join("cc")},
                 dir_.Join("client.log"));
  const std::string suite_id = SuiteIdOf(client);
  ASSERT_FALSE(suite_id.empty()) << client.Log();
  client.Kill(SIGINT);
  EXPECT_EQ(client.Wait(absl::Seconds(10)), 130);
  EXPECT_THAT(client.Log(),
              HasSubstr("detached; suite " + suite_id + " keeps running"));
  std::string output;
  ASSERT_EQ(Coordctl({"status", suite_id, "--coordinator=" + coordinator},
                     dir_.Join("s.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("queued: 0/2 done"));
}

TEST_F(SystemTest, CoordinatorKilledAndRestartedMidSuiteLosesNothing) {
  const std::string first = StartCoordinator({"--lease=2s"});
  StartWorker(first, "w1");
  StartWorker(first, "w2");
  const std::string suite = WriteSuite("suite.json", "restart", 40, 0.1);
  auto client = SubmitInBackground(first, suite);
  ASSERT_FALSE(SuiteIdOf(*client).empty());
  absl::SleepFor(absl::Milliseconds(900));  // some tests done, others in flight
  // The same address and data: workers and the waiting client reconnect.
  RestartCoordinator(first, {"--lease=2s"});
  ASSERT_GT(ListeningPort(*coordinator_), 0) << coordinator_->Log();
  ASSERT_EQ(client->Wait(absl::Minutes(2)), 0) << client->Log();
  EXPECT_THAT(coordinator_->Log(), HasSubstr("resumed"));
  ExpectEveryTestPassedOnce(ReadJson(dir_.Join("report.json")), 40);
}

TEST_F(SystemTest, TwentyRandomWorkerKillsLoseNoTest) {
  const std::string coordinator = StartCoordinator({"--lease=1s"});
  std::vector<std::unique_ptr<Process>> workers;
  int started = 0;
  auto start = [&] {
    workers.push_back(std::make_unique<Process>(
        "worker",
        std::vector<std::string>{
            "--coordinator=" + coordinator, "--slots=2",
            "--workspace=" + dir_.path(), "--name=w" + std::to_string(started),
            "--spool-dir=" + dir_.Join(absl::StrCat("spool-", started))},
        dir_.Join("w" + std::to_string(started) + ".log")));
    ++started;
  };
  for (int i = 0; i < 3; ++i) start();
  const std::string suite = WriteSuite("suite.json", "chaos", 300, 0.05);
  auto client = SubmitInBackground(coordinator, suite);
  std::mt19937 random(20261123);  // seeded: the same kill points every run
  for (int kill = 0; kill < 20 && !client->Wait(absl::ZeroDuration()); ++kill) {
    absl::SleepFor(absl::Milliseconds(
        std::uniform_int_distribution<int>(100, 400)(random)));
    const size_t victim =
        std::uniform_int_distribution<size_t>(0, workers.size() - 1)(random);
    workers[victim]->Kill(SIGKILL);
    workers.erase(workers.begin() + static_cast<long>(victim));
    start();
  }
  ASSERT_EQ(client->Wait(absl::Minutes(3)), 0) << client->Log();
  ExpectEveryTestPassedOnce(ReadJson(dir_.Join("report.json")), 300);
}

// A small filesystem of its own for the coordinator's data, unmounted at the
// end (lazily: the coordinator may still hold files there).
class SmallDisk {
 public:
  SmallDisk(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    mounted_ = geteuid() == 0 && std::system(("mount -t tmpfs -o size=" + size +
                                              " tmpfs " + path + " 2>/dev/null")
                                                 .c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) (void)std::system(("umount -l " + path_).c_str());
  }
  bool mounted() const { return mounted_; }
  // Writes a file that leaves about `left` bytes free.
  bool FillLeaving(int64_t left) {
    absl::StatusOr<int64_t> free = FreeDiskBytes(path_);
    if (!free.ok()) return false;
    std::ofstream filler(path_ + "/filler", std::ios::binary);
    const std::string chunk(1 << 20, 'x');
    for (int64_t n = (*free - left) >> 20; n > 0 && filler; --n)
      filler << chunk;
    filler.close();
    return filler.good();
  }
  // Writes until the disk refuses another byte.
  bool FillCompletely() {
    if (!FillLeaving(1 << 20)) return false;
    std::ofstream filler(path_ + "/filler", std::ios::binary | std::ios::app);
    const std::string chunk(4096, 'x');
    for (int i = 0; i < 100'000 && filler; ++i) filler << chunk << std::flush;
    return !filler.good();  // it stopped because the disk is full
  }
  void Free() { std::filesystem::remove(path_ + "/filler"); }

 private:
  std::string path_;
  bool mounted_ = false;
};

TEST_F(SystemTest, FullDiskFailsRequestsClearlyAndLosesNothing) {
  SmallDisk disk(dir_.Join("coordinator"), "256m");
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string coordinator = StartCoordinator({"--min-free-disk=64MiB"});
  StartWorker(coordinator, "w");
  const std::string suite = WriteSuite("a.json", "during", 20, 0.3);
  auto client = SubmitInBackground(coordinator, suite);
  ASSERT_FALSE(SuiteIdOf(*client).empty());
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_TRUE(disk.FillLeaving(30 << 20));

  // A new suite is refused with the reason and the fix; the server stays up.
  // (No --wait: were it taken, it could not finish while the disk is full.)
  std::string output;
  const std::string other = WriteSuite("b.json", "after", 3);
  EXPECT_NE(Coordctl({"submit", other, "--coordinator=" + coordinator,
                      "--cache-dir=" + dir_.Join("client-cache")},
                     dir_.Join("refused.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("nearly full"));
  EXPECT_THAT(output, HasSubstr("--min-free-disk"));
  EXPECT_EQ(Coordctl({"workers", "--coordinator=" + coordinator},
                     dir_.Join("workers.log")),
            0);
  absl::SleepFor(absl::Seconds(2));  // results come in and are refused
  disk.Free();

  // Space is back: the running suite completes with every result, and new
  // work is taken, without a restart.
  ASSERT_EQ(client->Wait(absl::Minutes(2)), 0) << client->Log();
  ExpectEveryTestPassedOnce(ReadJson(dir_.Join("report.json")), 20);
  EXPECT_EQ(Submit(coordinator, other, dir_.Join("b2.json"), &output), 0)
      << output;
  EXPECT_THAT(coordinator_->Log(), HasSubstr("store writes failing"));
  EXPECT_THAT(coordinator_->Log(), HasSubstr("store writes work again"));
  EXPECT_THAT(workers_.back()->Log(), HasSubstr("results not saved"));
}

TEST_F(SystemTest, WithoutAReserveAFullDiskStopsWritesUntilSpaceReturns) {
  SmallDisk disk(dir_.Join("coordinator"), "256m");
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string coordinator = StartCoordinator({"--min-free-disk=0"});
  StartWorker(coordinator, "w");
  ASSERT_TRUE(disk.FillCompletely());  // RocksDB itself meets the full disk
  std::string output;
  const std::string suite = WriteSuite("a.json", "full", 3);
  EXPECT_NE(Coordctl({"submit", suite, "--coordinator=" + coordinator,
                      "--cache-dir=" + dir_.Join("client-cache")},
                     dir_.Join("refused.log"), &output),
            0);
  // What to do is said, and the server stays up and says it again rather
  // than try a write that RocksDB would refuse (or abort on).
  EXPECT_THAT(output, HasSubstr("free at least 64 MiB there and restart"));
  EXPECT_NE(Coordctl({"submit", suite, "--coordinator=" + coordinator,
                      "--cache-dir=" + dir_.Join("client-cache")},
                     dir_.Join("refused-again.log"), &output),
            0);
  EXPECT_THAT(output, HasSubstr("restart the coordinator"));
  EXPECT_EQ(Coordctl({"workers", "--coordinator=" + coordinator},
                     dir_.Join("workers.log")),
            0);
  const std::string log = coordinator_->Log();
  EXPECT_THAT(log, HasSubstr("is below 64 MiB"));
  size_t said = 0;
  for (size_t at = log.find("RocksDB stopped writing"); at != std::string::npos;
       at = log.find("RocksDB stopped writing", at + 1))
    ++said;
  EXPECT_EQ(said, 1u) << log;  // the state change is logged once
  // Space freed and a restart, as it says: the store works again.
  disk.Free();
  RestartCoordinator(coordinator, {"--min-free-disk=0"});
  ASSERT_GT(ListeningPort(*coordinator_), 0) << coordinator_->Log();
  EXPECT_EQ(Submit(coordinator, suite, dir_.Join("a.json.report"), &output), 0)
      << output << coordinator_->Log();
}

TEST_F(SystemTest, FiftyConcurrentClientsAllComplete) {
  const std::string coordinator = StartCoordinator();
  StartWorker(coordinator, "a");
  StartWorker(coordinator, "b");
  std::vector<std::unique_ptr<Process>> clients;
  for (int i = 0; i < 50; ++i) {
    const std::string name = "c" + std::to_string(i);
    const std::string suite = WriteSuite(name + ".json", name, 4);
    clients.push_back(std::make_unique<Process>(
        "coordctl",
        std::vector<std::string>{"submit", suite,
                                 "--coordinator=" + coordinator, "--wait",
                                 "--cache-dir=" + dir_.Join("cc-" + name)},
        dir_.Join(name + ".log")));
  }
  int errors = 0;
  for (auto& client : clients) {
    std::optional<int> code = client->Wait(absl::Minutes(3));
    if (code != 0) {
      ++errors;
      ADD_FAILURE() << client->Log();
    }
  }
  EXPECT_EQ(errors, 0);
}

}  // namespace
}  // namespace testfleet
