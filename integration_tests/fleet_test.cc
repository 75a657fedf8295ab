// What a fleet runs on: Prometheus metrics, the gRPC health service, and a
// coordinator, cache server and workers on separate hosts (network
// namespaces on a bridge).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/grpc_util.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"
#include "integration_tests/hosts.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

// dir/suite.json: `n` tests t0..t(n-1) that sleep `seconds`; its path.
std::string WriteSleepSuite(TestDir& dir, const std::string& name, int n,
                            const std::string& seconds) {
  json tests = json::array();
  for (int i = 0; i < n; ++i) {
    tests.push_back(
        {{"id", absl::StrCat("t", i)},
         {"cmd", {"sh", "-c", "sleep " + seconds, absl::StrCat("t", i)}}});
  }
  return dir.Write("suite.json",
                   json({{"name", name}, {"tests", tests}}).dump());
}

struct MeteredCoordinator {
  std::unique_ptr<Process> process;
  std::string address;   // 127.0.0.1:PORT
  int metrics_port = 0;  // 0: it did not start
};

// A coordinator in `dir` serving its metrics, with `flags` besides.
MeteredCoordinator StartMeteredCoordinator(TestDir& dir,
                                           std::vector<std::string> flags) {
  flags.insert(flags.end(),
               {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data"),
                "--metrics-listen=127.0.0.1:0"});
  MeteredCoordinator coordinator;
  coordinator.address = StartServer(coordinator.process, "coordinator", flags,
                                    dir.Join("coordinator.log"));
  coordinator.metrics_port =
      ListeningPort(*coordinator.process, "metrics on port");
  return coordinator;
}

// A worker "w" of `slots` slots in `dir` serving its metrics; their port in
// `*metrics_port` (0 when it did not start).
std::unique_ptr<Process> StartMeteredWorker(TestDir& dir,
                                            const std::string& address,
                                            int slots, int* metrics_port) {
  auto worker = std::make_unique<Process>(
      "worker",
      std::vector<std::string>{
          "--coordinator=" + address, absl::StrCat("--slots=", slots),
          "--workspace=" + dir.path(), "--name=w",
          "--spool-dir=" + dir.Join("spool"), "--metrics-listen=127.0.0.1:0"},
      dir.Join("worker.log"));
  *metrics_port = ListeningPort(*worker, "metrics on port");
  return worker;
}

// GET http://127.0.0.1:PORT/metrics; empty on any failure.
std::string Scrape(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
      0) {
    const std::string request = "GET /metrics HTTP/1.0\r\n\r\n";
    if (write(fd, request.data(), request.size()) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[65536];
      ssize_t n;
      while ((n = read(fd, buffer, sizeof(buffer))) > 0)
        response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

// The value of a sample of the text format, e.g.
// Sample(text, "testfleet_queue_depth{priority=\"0\"}"); -1 when absent.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > series.size() &&
        line.substr(0, series.size()) == series && line[series.size()] == ' ') {
      double value = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &value))
        return value;
    }
  }
  return -1;
}

TEST(FleetTest, MetricsFollowASuiteAndHealthAnswers) {
  TestDir dir;
  MeteredCoordinator coordinator =
      StartMeteredCoordinator(dir, {"--target-drain=1s"});
  ASSERT_GT(coordinator.metrics_port, 0) << coordinator.process->Log();
  const std::string& address = coordinator.address;
  const int metrics_port = coordinator.metrics_port;

  {  // grpc.health.v1.Health/Check for "": SERVING (field 1 = 1).
    grpc::GenericStub health(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    grpc::ByteBuffer request, response;
    grpc::Slice empty("");
    request = grpc::ByteBuffer(&empty, 1);
    std::mutex mu;
    std::condition_variable done_cv;
    bool done = false;
    grpc::Status status;
    health.UnaryCall(&context, "/grpc.health.v1.Health/Check",
                     grpc::StubOptions(), &request, &response,
                     [&](grpc::Status s) {
                       std::lock_guard<std::mutex> lock(mu);
                       status = s;
                       done = true;
                       done_cv.notify_all();
                     });
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(
        done_cv.wait_for(lock, std::chrono::seconds(10), [&] { return done; }));
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(response.Dump(&slices).ok());
    std::string bytes;
    for (const auto& slice : slices)
      bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
    EXPECT_EQ(bytes, std::string("\x08\x01", 2));
  }

  // Before any work: nobody is needed.
  EXPECT_EQ(Sample(Scrape(metrics_port), "testfleet_desired_workers"), 0);
  const std::string suite = WriteSleepSuite(dir, "metrics", 12, "0.4");
  int worker_metrics = 0;
  std::unique_ptr<Process> worker =
      StartMeteredWorker(dir, address, 2, &worker_metrics);
  ASSERT_GT(worker_metrics, 0) << worker->Log();
  Process client("coordctl",
                 {"submit", suite, "--coordinator=" + address, "--wait",
                  "--cache-dir=" + dir.Join("cc")},
                 dir.Join("client.log"));

  // While it runs: tests queued and running, more workers wanted.
  bool saw_queue = false, saw_running = false, saw_demand = false;
  WaitFor(
      [&] {
        const std::string text = Scrape(metrics_port);
        saw_queue |= Sample(text, "testfleet_queue_depth{priority=\"0\"}") > 0;
        saw_running |= Sample(text, "testfleet_running_tests") > 0;
        saw_demand |= Sample(text, "testfleet_desired_workers") > 1;
        return saw_queue && saw_running && saw_demand;
      },
      absl::Seconds(20));
  EXPECT_TRUE(saw_queue);
  EXPECT_TRUE(saw_running);
  EXPECT_TRUE(saw_demand);
  ASSERT_EQ(client.Wait(absl::Minutes(2)), 0) << client.Log();

  // After it: the queue is empty and every test was counted.
  std::string text;
  EXPECT_TRUE(WaitFor(
      [&] {
        text = Scrape(metrics_port);
        return Sample(text, "testfleet_desired_workers") == 0;
      },
      absl::Seconds(5)))
      << text;
  EXPECT_EQ(Sample(text, "testfleet_queue_depth{priority=\"0\"}"), 0);
  EXPECT_EQ(
      Sample(text, "testfleet_tests_total{cached=\"false\",status=\"passed\"}"),
      12)
      << text;
  EXPECT_EQ(Sample(text, "testfleet_dispatch_latency_seconds_count"), 12);
  EXPECT_EQ(Sample(text, "testfleet_workers"), 1);
  EXPECT_GT(Sample(text, "testfleet_cache_puts_total"), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Sample(Scrape(worker_metrics),
                      "testfleet_worker_tests_total{status=\"passed\"}") == 12;
      },
      absl::Seconds(5)));
}

TEST(FleetTest, CoordinatorCacheAndWorkersOnSeparateHosts) {
  if (geteuid() != 0 || !std::filesystem::exists(kIp)) {
    GTEST_SKIP() << "needs root and iproute2 (ip netns) for separate hosts";
  }
  Hosts hosts({"coord", "cache", "w1", "w2", "w3"});
  if (!hosts.error().empty()) {
    GTEST_SKIP() << "ip netns is not available here (" << hosts.error()
                 << " failed); the multi-host test needs it";
  }
  TestDir dir;
  auto cache = hosts.Start("cache", "cache_server",
                           {"--listen=" + hosts.address("cache") + ":7071",
                            "--data-dir=" + dir.Join("cache")},
                           dir.Join("cache.log"));
  ASSERT_GT(ListeningPort(*cache), 0) << cache->Log();
  const std::string cache_address = hosts.address("cache") + ":7071";
  auto coordinator =
      hosts.Start("coord", "coordinator",
                  {"--listen=" + hosts.address("coord") + ":7070",
                   "--data-dir=" + dir.Join("coordinator"),
                   "--no-cache-service", "--cache=" + cache_address},
                  dir.Join("coordinator.log"));
  ASSERT_GT(ListeningPort(*coordinator), 0) << coordinator->Log();
  const std::string address = hosts.address("coord") + ":7070";
  std::vector<std::unique_ptr<Process>> workers;
  for (const std::string name : {"w1", "w2", "w3"}) {
    workers.push_back(hosts.Start(
        name, "worker",
        {"--coordinator=" + address, "--slots=2", "--workspace=" + dir.path(),
         "--name=" + name, "--spool-dir=" + dir.Join("spool-" + name)},
        dir.Join(name + ".log")));
  }
  const std::string suite = WriteSleepSuite(dir, "hosts", 30, "0.2");
  // The client too runs on a host of its own (the cache's, here).
  auto client = hosts.Start(
      "cache", "coordctl",
      {"submit", suite, "--coordinator=" + address, "--wait",
       "--json=" + dir.Join("report.json"), "--cache-dir=" + dir.Join("cc")},
      dir.Join("client.log"));
  ASSERT_EQ(client->Wait(absl::Minutes(2)), 0)
      << client->Log() << coordinator->Log();
  const json report = ReadJson(dir.Join("report.json"));
  ASSERT_EQ(report["tests"].size(), 30u);
  EXPECT_EQ(report["summary"]["passed"], 30);
  std::set<std::string> used;
  for (const json& test : report["tests"]) used.insert(test["worker"]);
  EXPECT_EQ(used, (std::set<std::string>{"w1", "w2", "w3"}));
  // Results went to the cache server across the bridge: a rerun is all hits.
  auto rerun = hosts.Start(
      "w1", "coordctl",
      {"submit", suite, "--coordinator=" + address, "--wait",
       "--json=" + dir.Join("rerun.json"), "--cache-dir=" + dir.Join("cc2")},
      dir.Join("rerun.log"));
  ASSERT_EQ(rerun->Wait(absl::Minutes(1)), 0) << rerun->Log();
  EXPECT_EQ(ReadJson(dir.Join("rerun.json"))["summary"]["cached"], 30);
}

// A worker told to gather its results for 100 s still reports a failure at
// once, and with it the passes it was holding (while another slot runs: a
// worker with nothing left to run reports what it holds at once).
TEST(FleetTest, AFailureIsReportedWithoutWaitingForTheReportInterval) {
  TestDir dir;
  // One worker at 0.01 reports a second: 100 s between reports.
  MeteredCoordinator coordinator = StartMeteredCoordinator(
      dir, {"--lease=10m", "--fleet-reports-per-second=0.01"});
  ASSERT_GT(coordinator.metrics_port, 0) << coordinator.process->Log();
  const std::string& address = coordinator.address;
  const int metrics_port = coordinator.metrics_port;
  // Both run at once, one a slot; the pass ends first.
  const std::string suite = dir.Write(
      "suite.json",
      json({{"name", "interval"},
            {"tests",
             {{{"id", "passes"}, {"priority", 1}, {"cmd", {"true"}}},
              {{"id", "fails"}, {"cmd", {"sh", "-c", "sleep 5; exit 1"}}}}}})
          .dump());
  Process client("coordctl",
                 {"submit", suite, "--coordinator=" + address, "--wait",
                  "--json=" + dir.Join("report.json")},
                 dir.Join("client.log"));
  int worker_metrics = 0;
  std::unique_ptr<Process> worker =
      StartMeteredWorker(dir, address, 2, &worker_metrics);
  ASSERT_GT(worker_metrics, 0) << worker->Log();
  const std::string passed =
      "testfleet_tests_total{cached=\"false\",status=\"passed\"}";
  // The pass is done on the worker but held there while the failure runs.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sample(Scrape(worker_metrics),
                      "testfleet_worker_tests_total{status=\"passed\"}") == 1;
      },
      absl::Seconds(30)))
      << worker->Log();
  EXPECT_LE(Sample(Scrape(metrics_port), passed), 0);
  // The failure comes in well inside the 100 s, bringing the pass along.
  ASSERT_EQ(client.Wait(absl::Seconds(40)), 1) << client.Log();
  const json report = ReadJson(dir.Join("report.json"));
  EXPECT_EQ(report["summary"]["passed"], 1);
  EXPECT_EQ(report["summary"]["failed"], 1);
  EXPECT_EQ(Sample(Scrape(metrics_port), passed), 1);
}

// Told to gather for 100 s, a worker whose last test ended (nothing running
// or held to run) reports at once: a suite's end waits for no interval.
TEST(FleetTest, AWorkerWithNothingLeftToRunReportsAtOnce) {
  TestDir dir;
  MeteredCoordinator coordinator = StartMeteredCoordinator(
      dir, {"--lease=10m", "--fleet-reports-per-second=0.01"});
  ASSERT_GT(coordinator.metrics_port, 0) << coordinator.process->Log();
  const std::string suite =
      dir.Write("suite.json", json({{"name", "idle"},
                                    {"tests",
                                     {{{"id", "a"}, {"cmd", {"true"}}},
                                      {{"id", "b"}, {"cmd", {"sleep", "1"}}}}}})
                                  .dump());
  int worker_metrics = 0;
  std::unique_ptr<Process> worker =
      StartMeteredWorker(dir, coordinator.address, 1, &worker_metrics);
  ASSERT_GT(worker_metrics, 0) << worker->Log();
  Process client("coordctl",
                 {"submit", suite, "--coordinator=" + coordinator.address,
                  "--wait", "--json=" + dir.Join("report.json")},
                 dir.Join("client.log"));
  // Well inside the 100 s the worker was told to gather for.
  ASSERT_EQ(client.Wait(absl::Seconds(40)), 0) << client.Log();
  EXPECT_EQ(ReadJson(dir.Join("report.json"))["summary"]["passed"], 2);
}

TEST(FleetTest, AReportRateThatIsNotANumberOfZeroOrMoreIsRefused) {
  TestDir dir;
  for (const std::string rate : {"nan", "-1", "inf"}) {
    Process coordinator(
        "coordinator",
        {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data"),
         "--fleet-reports-per-second=" + rate},
        dir.Join("coordinator-" + rate + ".log"));
    EXPECT_EQ(coordinator.Wait(absl::Seconds(30)), 2) << coordinator.Log();
    EXPECT_THAT(coordinator.Log(),
                ::testing::HasSubstr("--fleet-reports-per-second=" + rate))
        << rate;
  }
}

// A simulator on the coordinator's host splits a slow pull at the
// coordinator's stamps (bench/fleet_sim): they come only when asked for, on
// this host's steady clock, inside the call, also when the answer comes from
// another thread at the pull's wait's end.
TEST(FleetTest, APullThatAsksForTimeStampsGetsThemOnThisHostsClock) {
  TestDir dir;
  std::unique_ptr<Process> process;
  const std::string address =
      StartServer(process, "coordinator",
                  {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data")},
                  dir.Join("coordinator.log"));
  ASSERT_FALSE(address.empty()) << process->Log();
  auto stub = v1::Coordinator::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  v1::RegisterWorkerRequest registration;
  registration.set_name("w");
  registration.set_slots(1);
  *registration.mutable_platform() = HostPlatform("");
  v1::RegisterWorkerResponse registered;
  grpc::ClientContext register_context;
  ASSERT_TRUE(
      stub->RegisterWorker(&register_context, registration, &registered).ok());

  constexpr int kWaitMs = 100;  // nothing is queued: the pull waits it out
  auto pull = [&](grpc::ClientContext& context) {
    v1::PullWorkRequest request;
    request.set_worker_id(registered.worker_id());
    request.set_free_slots(1);
    request.set_wait_ms(kWaitMs);
    v1::PullWorkResponse response;
    return stub->PullWork(&context, request, &response);
  };
  grpc::ClientContext timed;
  timed.AddMetadata(kPullTimingRequest, "1");
  const auto sent = std::chrono::steady_clock::now();
  ASSERT_TRUE(pull(timed).ok());
  const auto back = std::chrono::steady_clock::now();
  const auto received = PullTimingStampOf(timed, kPullReceivedNs);
  const auto answered = PullTimingStampOf(timed, kPullAnsweredNs);
  ASSERT_TRUE(received.has_value());
  ASSERT_TRUE(answered.has_value());
  EXPECT_LE(sent, *received);
  EXPECT_LE(*received, *answered);
  EXPECT_LE(*answered, back);
  // The coordinator's wait lies between its two stamps.
  EXPECT_GE(*answered - *received, std::chrono::milliseconds(kWaitMs));

  grpc::ClientContext plain;
  ASSERT_TRUE(pull(plain).ok());
  EXPECT_FALSE(PullTimingStampOf(plain, kPullReceivedNs).has_value());
  EXPECT_FALSE(PullTimingStampOf(plain, kPullAnsweredNs).has_value());
}

}  // namespace
}  // namespace testfleet
