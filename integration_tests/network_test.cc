// A worker on another "host" (a network namespace on a bridge), whose link
// the test takes down and up again.
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"
#include "integration_tests/hosts.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(NetworkTest, WorkerCutOffForTenSecondsDeliversEveryResult) {
  if (geteuid() != 0 || !std::filesystem::exists(kIp)) {
    GTEST_SKIP() << "needs root and iproute2 (ip netns) for a network cut";
  }
  Hosts hosts({"remote"});
  if (!hosts.error().empty()) {
    GTEST_SKIP() << "ip netns is not available here (" << hosts.error()
                 << " failed); the network-cut test needs it";
  }
  TestDir dir;
  // A long lease: the coordinator waits for the cut-off worker's results
  // instead of giving its work to anyone else.
  Process coordinator("coordinator",
                      {"--listen=" + hosts.gateway() + ":0",
                       "--data-dir=" + dir.Join("coordinator"), "--lease=60s"},
                      dir.Join("coordinator.log"));
  const int port = ListeningPort(coordinator);
  ASSERT_GT(port, 0) << coordinator.Log();
  const std::string address = absl::StrCat(hosts.gateway(), ":", port);
  std::unique_ptr<Process> worker = hosts.Start(
      "remote", "worker",
      {"--coordinator=" + address, "--slots=2", "--workspace=" + dir.path(),
       "--name=remote", "--spool-dir=" + dir.Join("spool")},
      dir.Join("worker.log"));

  // Each test notes when it ran, in a file of its own: one line per run.
  constexpr int kTests = 30;
  json tests = json::array();
  for (int i = 0; i < kTests; ++i) {
    const std::string id = absl::StrCat("t", i);
    tests.push_back(
        {{"id", id},
         {"cmd", {"sh", "-c", "date +%s.%N >> runs/$0; sleep 1", id}}});
  }
  std::filesystem::create_directories(dir.Join("runs"));
  const std::string suite =
      dir.Write("suite.json", json({{"name", "cut"}, {"tests", tests}}).dump());
  Process client("coordctl",
                 {"submit", suite, "--coordinator=" + address, "--wait",
                  "--json=" + dir.Join("report.json"),
                  "--cache-dir=" + dir.Join("client-cache")},
                 dir.Join("client.log"));
  ASSERT_TRUE(
      WaitFor([&] { return std::filesystem::exists(dir.Join("runs/t0")); },
              absl::Seconds(30)))
      << worker->Log();
  absl::SleepFor(absl::Seconds(1));

  const double cut_at = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  ASSERT_TRUE(hosts.SetLink("remote", false));
  // The cut is real: from the worker's side the coordinator is unreachable.
  std::unique_ptr<Process> probe =
      hosts.Start("remote", "coordctl", {"workers", "--coordinator=" + address},
                  dir.Join("probe.log"));
  EXPECT_EQ(probe->Wait(absl::Seconds(20)), 3) << probe->Log();
  absl::SleepFor(
      absl::Seconds(10) -
      (absl::Now() - absl::FromUnixMicros(static_cast<int64_t>(cut_at * 1e6))));
  ASSERT_TRUE(hosts.SetLink("remote", true));
  const double restored_at =
      absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());

  ASSERT_EQ(client.Wait(absl::Minutes(2)), 0) << client.Log() << worker->Log();
  const json report = ReadJson(dir.Join("report.json"));
  ASSERT_EQ(report["tests"].size(), static_cast<size_t>(kTests));
  EXPECT_EQ(report["summary"]["passed"], kTests);
  // Every test ran exactly once, so the results of those that ran during
  // the cut were delivered after it, not recomputed.
  int ran_during_cut = 0;
  for (int i = 0; i < kTests; ++i) {
    const std::string runs = ReadFile(dir.Join(absl::StrCat("runs/t", i)));
    std::vector<std::string> lines =
        absl::StrSplit(runs, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u)
        << "t" << i << " ran " << lines.size() << " times";
    const double started = std::stod(lines[0]);
    ran_during_cut += started >= cut_at && started < restored_at;
  }
  EXPECT_GT(ran_during_cut, 0) << "no test ran while the link was down";
  for (const json& test : report["tests"]) EXPECT_EQ(test["worker"], "remote");
  // What could not be delivered during the cut waited on disk.
  EXPECT_THAT(worker->Log(), HasSubstr("spooled in"));
  EXPECT_THAT(worker->Log(), HasSubstr("spooled results"));
}

}  // namespace
}  // namespace testfleet
