// TLS, tokens and roles, forged results and a poisoned cache, against the
// real binaries on loopback.
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kSubmitter[] = "submitter-0123456789abcdef";
constexpr char kRunner[] = "runner-0123456789abcdef";
constexpr char kIntruder[] = "intruder-0123456789abcdef";
constexpr char kLaptop[] = "laptop-0123456789abcdef";
constexpr char kExpired[] = "expired-0123456789abcdef";
constexpr char kOps[] = "ops-0123456789abcdef";
constexpr char kOtherTeam[] = "otherteam-0123456789abcdef";
constexpr char kViewer[] = "viewer-0123456789abcdef";

class SecurityTest : public ::testing::Test {
 protected:
  // A coordinator with `extra` flags on a free loopback port.
  std::string StartCoordinator(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0",
                                     "--data-dir=" + dir_.Join("coordinator")};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServer(coordinator_, "coordinator", args,
                       dir_.Join("coordinator.log"));
  }
  std::string TokenFile(const std::string& token) {
    return dir_.Write(absl::StrCat("token-", token.substr(0, 6)), token);
  }
  std::string WriteTokens() {
    return dir_.Write(
        "tokens",
        absl::StrCat(kSubmitter, " alice submit\n", kRunner, " ci worker\n",
                     kIntruder, " intruder worker\n", kLaptop,
                     " laptop cache-read\n", kExpired,
                     " bob submit 2020-01-01\n", kOps, " ops admin\n",
                     kOtherTeam, " dave submit\n", kViewer, " carol view\n"));
  }
  std::string WriteSuite(const std::string& name, const std::string& command) {
    json suite = {{"name", name},
                  {"tests", {{{"id", "t"}, {"cmd", {"sh", "-c", command}}}}}};
    return dir_.Write(name + ".json", suite.dump());
  }
  std::unique_ptr<Process> StartWorker(const std::string& coordinator,
                                       std::vector<std::string> extra) {
    std::vector<std::string> args = {
        "--coordinator=" + coordinator, "--workspace=" + dir_.path(),
        "--name=w" + std::to_string(++workers_),
        "--spool-dir=" + dir_.Join("spool" + std::to_string(workers_))};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(
        "worker", args, dir_.Join("worker" + std::to_string(workers_)));
  }
  int Run(const std::vector<std::string>& args, std::string* output) {
    return Coordctl(args, dir_.Join(absl::StrCat("coordctl-", calls_++)),
                    output);
  }

  TestDir dir_;
  std::unique_ptr<Process> coordinator_;
  int workers_ = 0, calls_ = 0;
};

// One call of the Coordinator or ResultCache service with a bearer token.
grpc::ClientContext* WithToken(grpc::ClientContext* context,
                               const std::string& token) {
  context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

TEST_F(SecurityTest, MutualTlsRefusesClientsWithoutACertificate) {
  ASSERT_TRUE(MakeTestCertificates(dir_.path()))
      << ReadFile(dir_.Join("openssl.log"));
  const std::string coordinator = StartCoordinator(
      {"--tls-cert=" + dir_.Join("server.pem"),
       "--tls-key=" + dir_.Join("server.key"),
       "--tls-ca=" + dir_.Join("ca.pem"), "--require-client-cert"});
  const std::vector<std::string> client_cert = {
      "--tls-ca=" + dir_.Join("ca.pem"),
      "--tls-cert=" + dir_.Join("client.pem"),
      "--tls-key=" + dir_.Join("client.key")};
  std::string output;
  // Plaintext, and TLS without a client certificate: refused.
  EXPECT_EQ(Run({"workers", "--coordinator=" + coordinator}, &output), 3);
  EXPECT_EQ(Run({"workers", "--coordinator=" + coordinator,
                 "--tls-ca=" + dir_.Join("ca.pem")},
                &output),
            3)
      << output;
  // With one, a worker runs a suite end to end.
  auto worker = StartWorker(coordinator, client_cert);
  std::vector<std::string> submit = {"submit", WriteSuite("tls", "echo ok"),
                                     "--coordinator=" + coordinator, "--wait",
                                     "--cache-dir=" + dir_.Join("cc")};
  submit.insert(submit.end(), client_cert.begin(), client_cert.end());
  EXPECT_EQ(Run(submit, &output), 0) << output << worker->Log();
}

TEST_F(SecurityTest, TokensGrantRolesAndRefuseTheRest) {
  const std::string coordinator =
      StartCoordinator({"--token-file=" + WriteTokens()});
  auto worker =
      StartWorker(coordinator, {"--token-file=" + TokenFile(kRunner)});
  const std::string suite = WriteSuite("roles", "sleep 0.2");
  std::string output;
  EXPECT_EQ(Run({"submit", suite, "--coordinator=" + coordinator, "--wait",
                 "--cache-dir=" + dir_.Join("cc"),
                 "--token-file=" + TokenFile(kSubmitter)},
                &output),
            0)
      << output << worker->Log();

  // No token, an unknown one, an expired one: unauthenticated, and said so.
  EXPECT_EQ(Run({"workers", "--coordinator=" + coordinator}, &output), 2);
  EXPECT_THAT(output, HasSubstr("no token: this server needs one"));
  EXPECT_EQ(Run({"workers", "--coordinator=" + coordinator,
                 "--token-file=" + TokenFile("stranger-0123456789abcdef")},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("unknown token"));
  EXPECT_EQ(Run({"workers", "--coordinator=" + coordinator,
                 "--token-file=" + TokenFile(kExpired)},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("the token of bob expired on 2020-01-01"));
  // A developer's cache-read token cannot submit.
  EXPECT_EQ(Run({"submit", suite, "--coordinator=" + coordinator,
                 "--cache-dir=" + dir_.Join("cc"),
                 "--token-file=" + TokenFile(kLaptop)},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("lacks the submit role"));

  auto channel =
      grpc::CreateChannel(coordinator, grpc::InsecureChannelCredentials());
  auto stub = v1::Coordinator::NewStub(channel);
  auto cache = v1::ResultCache::NewStub(channel);
  {  // A submit token cannot pull work.
    grpc::ClientContext context;
    v1::PullWorkRequest request;
    request.set_worker_id("w1");
    v1::PullWorkResponse response;
    grpc::Status status =
        stub->PullWork(WithToken(&context, kSubmitter), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(), HasSubstr("lacks the worker role"));
  }
  {  // A cache-read token cannot put, though it can look up.
    v1::CachePutRequest put;
    put.add_keys(std::string(64, 'a'));
    put.add_results()->mutable_result()->set_status(v1::TEST_STATUS_PASSED);
    v1::CachePutResponse stored;
    grpc::ClientContext context;
    EXPECT_EQ(
        cache->Put(WithToken(&context, kLaptop), put, &stored).error_code(),
        grpc::StatusCode::PERMISSION_DENIED);
    v1::CacheLookupRequest lookup;
    lookup.add_keys(std::string(64, 'a'));
    v1::CacheLookupResponse found;
    grpc::ClientContext read;
    EXPECT_TRUE(cache->Lookup(WithToken(&read, kLaptop), lookup, &found).ok());
  }
  {  // A worker token cannot act as a worker another token registered.
    v1::ListWorkersResponse workers;
    grpc::ClientContext list;
    ASSERT_TRUE(stub->ListWorkers(WithToken(&list, kOps),
                                  v1::ListWorkersRequest(), &workers)
                    .ok());
    ASSERT_GT(workers.workers_size(), 0);
    v1::HeartbeatRequest beat;
    beat.set_worker_id(workers.workers(0).worker_id());
    v1::HeartbeatResponse answer;
    grpc::ClientContext context;
    grpc::Status status =
        stub->Heartbeat(WithToken(&context, kIntruder), beat, &answer);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(status.error_message(),
                HasSubstr("was registered by another token"));
  }
}

TEST_F(SecurityTest, ForgedResultForAnotherWorkersLeaseIsRejected) {
  const std::string coordinator =
      StartCoordinator({"--token-file=" + WriteTokens(), "--lease=60s"});
  auto channel =
      grpc::CreateChannel(coordinator, grpc::InsecureChannelCredentials());
  auto stub = v1::Coordinator::NewStub(channel);
  auto register_as = [&](const std::string& token) {
    v1::RegisterWorkerRequest request;
    request.set_name(token.substr(0, 6));
    request.set_slots(1);
    *request.mutable_platform() = HostPlatform("");
    v1::RegisterWorkerResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(
        stub->RegisterWorker(WithToken(&context, token), request, &response)
            .ok());
    return response.worker_id();
  };
  const std::string honest = register_as(kRunner);
  const std::string forger = register_as(kIntruder);

  // A suite whose test fails; the honest worker takes its lease.
  std::string output;
  const std::string suite_path = WriteSuite("forge", "exit 1");
  ASSERT_EQ(Run({"submit", suite_path, "--coordinator=" + coordinator,
                 "--cache-dir=" + dir_.Join("cc"),
                 "--token-file=" + TokenFile(kSubmitter)},
                &output),
            0)
      << output;
  const std::string suite_id = output.substr(0, output.find('\n'));
  v1::PullWorkRequest pull;
  pull.set_worker_id(honest);
  pull.set_free_slots(1);
  pull.set_wait_ms(5000);
  v1::PullWorkResponse work;
  grpc::ClientContext pull_context;
  ASSERT_TRUE(
      stub->PullWork(WithToken(&pull_context, kRunner), pull, &work).ok());
  ASSERT_EQ(work.shards_size(), 1);
  const v1::Shard& shard = work.shards(0);

  auto report = [&](const std::string& token, const std::string& worker_id,
                    v1::TestStatus status) {
    v1::ReportResultsRequest request;
    request.set_worker_id(worker_id);
    v1::ReportedResult* reported = request.add_results();
    reported->set_suite_id(shard.suite_id());
    reported->set_lease_id(shard.lease_id());
    reported->mutable_result()->set_test_id("t");
    reported->mutable_result()->set_attempt(1);
    reported->mutable_result()->set_status(status);
    v1::ReportResultsResponse response;
    grpc::ClientContext context;
    grpc::Status answer =
        stub->ReportResults(WithToken(&context, token), request, &response);
    return std::make_pair(answer, response);
  };
  // The intruder's "passed" for the honest worker's lease: as itself it is
  // rejected, as the honest worker it is refused outright.
  auto [as_itself, rejected] =
      report(kIntruder, forger, v1::TEST_STATUS_PASSED);
  ASSERT_TRUE(as_itself.ok()) << as_itself.error_message();
  EXPECT_EQ(rejected.rejected(), 1);
  EXPECT_EQ(rejected.accepted(), 0);
  auto [impersonating, ignored] =
      report(kIntruder, honest, v1::TEST_STATUS_PASSED);
  EXPECT_EQ(impersonating.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // The honest result counts.
  auto [honest_answer, accepted] =
      report(kRunner, honest, v1::TEST_STATUS_FAILED);
  ASSERT_TRUE(honest_answer.ok());
  EXPECT_EQ(accepted.accepted(), 1);
  ASSERT_EQ(Run({"report", suite_id, "--coordinator=" + coordinator,
                 "--json=" + dir_.Join("report.json"),
                 "--token-file=" + TokenFile(kSubmitter)},
                &output),
            1)
      << output;
  EXPECT_EQ(ReadJson(dir_.Join("report.json"))["tests"][0]["status"], "failed");
}

TEST_F(SecurityTest, AnotherTeamCannotReadOrSteerASuiteAViewerCanRead) {
  const std::string coordinator =
      StartCoordinator({"--token-file=" + WriteTokens()});
  auto worker =
      StartWorker(coordinator, {"--token-file=" + TokenFile(kRunner)});
  const std::string suite = WriteSuite("team-a", "echo secret-output; exit 1");
  std::string output;
  ASSERT_EQ(Run({"submit", suite, "--coordinator=" + coordinator, "--wait",
                 "--cache-dir=" + dir_.Join("cc"),
                 "--token-file=" + TokenFile(kSubmitter)},
                &output),
            1)
      << output << worker->Log();
  const std::string suite_id = output.substr(0, output.find('\n'));
  const std::string other = "--token-file=" + TokenFile(kOtherTeam);
  for (const std::vector<std::string>& call :
       std::vector<std::vector<std::string>>{
           {"status", suite_id},
           {"report", suite_id, "--json=" + dir_.Join("stolen.json")},
           {"explain", suite_id, "t"},
           {"cancel", suite_id},
           {"history", "team-a"},
           {"baseline", "set", "team-a"}}) {
    std::vector<std::string> args = call;
    args.push_back("--coordinator=" + coordinator);
    args.push_back(other);
    EXPECT_NE(Run(args, &output), 0) << call[0] << ": " << output;
    EXPECT_THAT(output, HasSubstr("belongs to alice")) << call[0];
    EXPECT_THAT(output, ::testing::Not(HasSubstr("secret-output")));
  }
  // Nor may it submit under the name whose history is alice's.
  EXPECT_EQ(Run({"submit", suite, "--coordinator=" + coordinator,
                 "--cache-dir=" + dir_.Join("cc"), other},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("the suite name \"team-a\" belongs to alice"));
  // A view token reads it all and changes nothing.
  const std::string viewer = "--token-file=" + TokenFile(kViewer);
  EXPECT_EQ(Run({"report", suite_id, "--coordinator=" + coordinator,
                 "--json=" + dir_.Join("viewed.json"), viewer},
                &output),
            1)
      << output;
  EXPECT_THAT(ReadFile(dir_.Join("viewed.json")), HasSubstr("secret-output"));
  EXPECT_EQ(Run({"cancel", suite_id, "--coordinator=" + coordinator, viewer},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("lacks the submit role"));
}

TEST_F(SecurityTest, SignedCacheIgnoresAPoisonedEntryAndGcPurgesItsWriter) {
  const std::string key =
      dir_.Write("fleet.key", "a fleet key of 32 bytes....");
  const std::string coordinator = StartCoordinator(
      {"--token-file=" + WriteTokens(), "--cache-signing-key=" + key});
  auto worker = StartWorker(coordinator, {"--token-file=" + TokenFile(kRunner),
                                          "--cache-signing-key=" + key});
  std::string output;
  const std::vector<std::string> submit = {
      "submit",
      WriteSuite("poison", "exit 1"),
      "--coordinator=" + coordinator,
      "--wait",
      "--json=" + dir_.Join("first.json"),
      "--cache-dir=" + dir_.Join("cc"),
      "--token-file=" + TokenFile(kSubmitter)};
  ASSERT_EQ(Run(submit, &output), 1) << output << worker->Log();
  const std::string cache_key =
      ReadJson(dir_.Join("first.json"))["tests"][0]["cache_key"];

  // A compromised runner with cache-write rights stores "passed" for it.
  auto cache = v1::ResultCache::NewStub(
      grpc::CreateChannel(coordinator, grpc::InsecureChannelCredentials()));
  v1::CachePutRequest put;
  put.add_keys(cache_key);
  v1::TestResult* forged = put.add_results()->mutable_result();
  forged->set_test_id("t");
  forged->set_status(v1::TEST_STATUS_PASSED);
  v1::CachePutResponse stored;
  grpc::ClientContext context;
  ASSERT_TRUE(cache->Put(WithToken(&context, kIntruder), put, &stored).ok());

  // Unsigned, it is a miss: the test runs and fails again.
  EXPECT_EQ(Run(submit, &output), 1) << output;
  EXPECT_THAT(
      coordinator_->Log(),
      HasSubstr("(writer \"intruder\") is unsigned: treated as a miss"));
  // And the intruder's entries can be purged by an admin.
  EXPECT_EQ(
      Run({"cache", "gc", "--writer=intruder", "--coordinator=" + coordinator,
           "--token-file=" + TokenFile(kOps)},
          &output),
      0)
      << output;
  EXPECT_THAT(output, HasSubstr("removed 1 entries written by intruder"));
  EXPECT_EQ(Run({"cache", "gc", "--coordinator=" + coordinator,
                 "--token-file=" + TokenFile(kRunner)},
                &output),
            2);
  EXPECT_THAT(output, HasSubstr("lacks the admin role"));
}

}  // namespace
}  // namespace testfleet
