// A worker on another "host": a network namespace joined to this one by a
// veth pair, whose link the test takes down and up again.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kIp[] = "/usr/sbin/ip";

// A namespace and a veth pair between it and this host, removed at the end.
class WorkerHost {
 public:
  WorkerHost() {
    const int n = static_cast<int>(getpid() % 250) + 1;
    ns_ = absl::StrCat("tfw", getpid());
    host_link_ = absl::StrCat("tfh", getpid());
    const std::string worker_link = absl::StrCat("tfw", getpid(), "p");
    host_ip_ = absl::StrCat("10.251.", n, ".1");
    const std::string worker_ip = absl::StrCat("10.251.", n, ".2");
    for (const std::string& command : {
             absl::StrCat(kIp, " netns add ", ns_),
             absl::StrCat(kIp, " link add ", host_link_,
                          " type veth peer name ", worker_link),
             absl::StrCat(kIp, " link set ", worker_link, " netns ", ns_),
             absl::StrCat(kIp, " addr add ", host_ip_, "/30 dev ", host_link_),
             absl::StrCat(kIp, " link set ", host_link_, " up"),
             absl::StrCat(kIp, " -n ", ns_, " addr add ", worker_ip, "/30 dev ",
                          worker_link),
             absl::StrCat(kIp, " -n ", ns_, " link set ", worker_link, " up"),
             absl::StrCat(kIp, " -n ", ns_, " link set lo up"),
         }) {
      if (std::system((command + " 2>/dev/null").c_str()) != 0) {
        error_ = command;
        return;
      }
    }
  }
  ~WorkerHost() {
    (void)std::system(
        absl::StrCat(kIp, " link del ", host_link_, " 2>/dev/null").c_str());
    (void)std::system(
        absl::StrCat(kIp, " netns del ", ns_, " 2>/dev/null").c_str());
  }

  /// Empty when the namespace is ready; else the command that failed.
  const std::string& error() const { return error_; }
  const std::string& host_ip() const { return host_ip_; }
  bool SetLink(bool up) {
    return std::system(
               absl::StrCat(kIp, " link set ", host_link_, up ? " up" : " down")
                   .c_str()) == 0;
  }
  /// Runs build/bin/`binary` inside the namespace.
  std::unique_ptr<Process> Start(const std::string& binary,
                                 std::vector<std::string> args,
                                 const std::string& log) const {
    args.insert(args.begin(), {"netns", "exec", ns_, BinDir() + "/" + binary});
    return std::make_unique<Process>(kIp, args, log);
  }

 private:
  std::string ns_, host_link_, host_ip_, error_;
};

TEST(NetworkTest, WorkerCutOffForTenSecondsDeliversEveryResult) {
  if (geteuid() != 0 || !std::filesystem::exists(kIp)) {
    GTEST_SKIP() << "needs root and iproute2 (ip netns) for a network cut";
  }
  WorkerHost host;
  if (!host.error().empty()) {
    GTEST_SKIP() << "ip netns is not available here (" << host.error()
                 << " failed); the network-cut test needs it";
  }
  TestDir dir;
  // A long lease: the coordinator waits for the cut-off worker's results
  // instead of giving its work to anyone else.
  Process coordinator("coordinator",
                      {"--listen=" + host.host_ip() + ":0",
                       "--data-dir=" + dir.Join("coordinator"), "--lease=60s"},
                      dir.Join("coordinator.log"));
  const int port = ListeningPort(coordinator);
  ASSERT_GT(port, 0) << coordinator.Log();
  const std::string address = absl::StrCat(host.host_ip(), ":", port);
  std::unique_ptr<Process> worker = host.Start(
      "worker",
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
  ASSERT_TRUE(host.SetLink(false));
  // The cut is real: from the worker's side the coordinator is unreachable.
  std::unique_ptr<Process> probe =
      host.Start("coordctl", {"workers", "--coordinator=" + address},
                 dir.Join("probe.log"));
  EXPECT_EQ(probe->Wait(absl::Seconds(20)), 3) << probe->Log();
  absl::SleepFor(
      absl::Seconds(10) -
      (absl::Now() - absl::FromUnixMicros(static_cast<int64_t>(cut_at * 1e6))));
  ASSERT_TRUE(host.SetLink(true));
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
