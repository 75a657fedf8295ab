// The cache as a Remote Execution API server, against real clients: Debian's
// Bazel 4.2 building a workspace of genrules with --remote_cache, and
// tf_reapi_bad_inputs sending every bad request we know of.
#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cache/reapi_names.h"
#include "common/grpc_util.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr char kWriter[] = "bazelci-0123456789abcdef";
constexpr char kReader[] = "laptop-0123456789abcdef";
const char* const kOutputs[] = {"a_upper.txt", "b_upper.txt", "joined.txt",
                                "large.txt"};

// How many of a build's actions `kind` handled ("remote cache hit",
// "local"), from Bazel's "INFO: N processes: ..." line.
int Processes(const std::string& output, const std::string& kind) {
  std::smatch line;
  if (!std::regex_search(output, line,
                         std::regex("INFO: \\d+ process(es)?: ([^\\n]*)")))
    return -1;
  const std::string counts = line[2];
  std::smatch count;
  if (!std::regex_search(counts, count, std::regex("(\\d+) " + kind))) return 0;
  return std::stoi(count[1]);
}

class ReapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(TESTFLEET_SOURCE_DIR "/integration_tests/fixtures/bazel_workspace",
             workspace_, fs::copy_options::recursive);
  }
  void TearDown() override {
    if (bazel_started_) Bazel({"shutdown"});
  }

  std::string StartCoordinator(const std::vector<std::string>& extra) {
    return Start(coordinator_, "coordinator", extra);
  }
  std::string StartCache(const std::vector<std::string>& extra = {}) {
    return Start(cache_, "cache_server", extra);
  }
  std::string Start(std::unique_ptr<Process>& slot, const std::string& binary,
                    const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0",
                                     "--data-dir=" + dir_.Join(binary)};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServer(slot, binary, args, dir_.Join(binary + ".log"));
  }

  // Bazel with its own output root (so nothing of the machine's is used or
  // left), no rc files, the command's output in `output`.
  int Bazel(const std::vector<std::string>& command,
            std::string* output = nullptr) {
    std::vector<std::string> args = {
        "--bazelrc=/dev/null", "--output_user_root=" + dir_.Join("bazel-root"),
        "--max_idle_secs=300"};
    args.insert(args.end(), command.begin(), command.end());
    Process bazel("/usr/bin/bazel", args,
                  dir_.Join(absl::StrCat("bazel-", calls_++, ".log")),
                  workspace_);
    bazel_started_ = true;
    std::optional<int> code = bazel.Wait(absl::Minutes(5));
    if (output != nullptr) *output = bazel.Log();
    return code.value_or(-1);
  }

  int Build(const std::vector<std::string>& flags, std::string* output) {
    std::vector<std::string> command = {"build", "--spawn_strategy=local",
                                        "--remote_timeout=60"};
    command.insert(command.end(), flags.begin(), flags.end());
    command.push_back("//...");
    return Bazel(command, output);
  }

  std::string Output(const std::string& name) {
    return ReadFile(workspace_ + "/bazel-bin/" + name);
  }

  TestDir dir_;
  const std::string workspace_ = dir_.Join("workspace");
  std::unique_ptr<Process> cache_, coordinator_;
  bool bazel_started_ = false;
  int calls_ = 0;
};

TEST_F(ReapiTest, BazelTakesEveryActionFromTheCacheAndRerunsOnlyWhatChanged) {
  const std::string remote = "--remote_cache=grpc://" + StartCache();
  std::string output;
  ASSERT_EQ(Build({remote}, &output), 0) << output << cache_->Log();
  EXPECT_EQ(Processes(output, "local"), 4) << output;
  std::vector<std::string> built;
  for (const char* name : kOutputs) built.push_back(Output(name));
  ASSERT_EQ(built[3].size(), 6'000'000u);  // travels by ByteStream

  // After a clean, every action is a remote hit and every output the same.
  ASSERT_EQ(Bazel({"clean"}), 0);
  ASSERT_EQ(Build({remote}, &output), 0) << output;
  EXPECT_EQ(Processes(output, "remote cache hit"), 4) << output;
  EXPECT_EQ(Processes(output, "local"), 0) << output;
  for (size_t i = 0; i < built.size(); ++i)
    EXPECT_EQ(Output(kOutputs[i]), built[i]) << kOutputs[i];

  // One source changes: only the two actions that read it run.
  ASSERT_EQ(Bazel({"clean"}), 0);
  std::ofstream(workspace_ + "/src/b.txt") << "charlie\n";
  ASSERT_EQ(Build({remote}, &output), 0) << output;
  EXPECT_EQ(Processes(output, "remote cache hit"), 2) << output;
  EXPECT_EQ(Processes(output, "local"), 2) << output;
  EXPECT_EQ(Output("b_upper.txt"), "CHARLIE\n");

  // The cache tells blobs and results apart.
  ASSERT_EQ(Coordctl({"cache", "stats", "--cache=" + remote.substr(22)},
                     dir_.Join("stats.log"), &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("  blobs: entries "));
  EXPECT_THAT(output, HasSubstr("  action results: entries 6,"));
}

TEST_F(ReapiTest, BazelWithTokensAndAReaderWhoseUploadsAreRefused) {
  const std::string tokens =
      dir_.Write("tokens", absl::StrCat(kWriter, " ci cache-write\n", kReader,
                                        " laptop cache-read\n"));
  const std::string remote =
      "--remote_cache=grpc://" + StartCache({"--token-file=" + tokens});
  auto as = [&](const std::string& token) {
    return std::vector<std::string>{
        remote, "--remote_header=authorization=Bearer " + token};
  };
  std::string output;
  ASSERT_EQ(Build(as(kWriter), &output), 0) << output << cache_->Log();
  ASSERT_EQ(Bazel({"clean"}), 0);
  ASSERT_EQ(Build(as(kReader), &output), 0) << output;
  EXPECT_EQ(Processes(output, "remote cache hit"), 4) << output;

  // The reader's own results cannot be uploaded: Bazel says so and the
  // build still succeeds; nothing of it is in the cache afterwards.
  ASSERT_EQ(Bazel({"clean"}), 0);
  std::ofstream(workspace_ + "/src/a.txt") << "delta\n";
  ASSERT_EQ(Build(as(kReader), &output), 0) << output;
  EXPECT_EQ(Processes(output, "local"), 3) << output;
  EXPECT_THAT(output, HasSubstr("WARNING: Writing to Remote Cache")) << output;
  ASSERT_EQ(Bazel({"clean"}), 0);
  ASSERT_EQ(Build(as(kWriter), &output), 0) << output;
  EXPECT_EQ(Processes(output, "local"), 3) << output;
  // Without a token, nothing at all: Bazel stops at its first call rather
  // than quietly building without the cache.
  ASSERT_EQ(Bazel({"clean"}), 0);
  EXPECT_NE(Build({remote}, &output), 0);
  EXPECT_THAT(output, HasSubstr("UNAUTHENTICATED")) << output;
}

// Debian's Bazel 4.2 cannot open TLS channels at all (its netty finds no
// ALPN: "JDK provider does not support ALPN protocol"), so TLS with a token
// is shown with our own REAPI client: every request, good and bad, answered
// as over plaintext.
TEST_F(ReapiTest, TlsWithATokenServesEveryRequest) {
  ASSERT_TRUE(MakeTestCertificates(dir_.path()))
      << ReadFile(dir_.Join("openssl.log"));
  const std::string tokens =
      dir_.Write("tokens", absl::StrCat(kWriter, " ci cache-write\n"));
  const std::string address = StartCache(
      {"--tls-cert=" + dir_.Join("server.pem"),
       "--tls-key=" + dir_.Join("server.key"), "--token-file=" + tokens});
  Process probe("tf_reapi_bad_inputs", {address, dir_.Join("ca.pem"), kWriter},
                dir_.Join("probe.log"));
  ASSERT_EQ(probe.Wait(absl::Minutes(2)), 0) << probe.Log() << cache_->Log();
  Process plaintext("tf_reapi_bad_inputs", {address},
                    dir_.Join("plaintext.log"));
  EXPECT_NE(plaintext.Wait(absl::Minutes(2)), 0);
  EXPECT_THAT(plaintext.Log(), HasSubstr("cannot store a first blob"));
}

TEST_F(ReapiTest, ActionWhoseOutputWasEvictedIsRebuiltNotFailed) {
  // Room for Bazel's outputs (6 MB and a few small ones), not for more.
  const std::string address = StartCache({"--cache-max-bytes=8MiB"});
  const std::string remote = "--remote_cache=grpc://" + address;
  std::string output;
  ASSERT_EQ(Build({remote}, &output), 0) << output << cache_->Log();
  // Another client fills the cache: the oldest blobs go, among them the
  // outputs the action results point at.
  auto channel = MakeChannel(address);
  auto cas = reapi::ContentAddressableStorage::NewStub(channel);
  for (int i = 0; i < 4; ++i) {
    reapi::BatchUpdateBlobsRequest request;
    const std::string filler(3'000'000, static_cast<char>('a' + i));
    auto* blob = request.add_requests();
    *blob->mutable_digest() = BlobDigest::Of(filler).ToProto();
    blob->set_data(filler);
    reapi::BatchUpdateBlobsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(cas->BatchUpdateBlobs(&context, request, &response).ok());
    ASSERT_EQ(response.responses(0).status().code(), 0);
  }
  ASSERT_EQ(Bazel({"clean"}), 0);
  ASSERT_EQ(Build({remote}, &output), 0) << output;
  EXPECT_EQ(Processes(output, "local"), 4) << output;
  EXPECT_EQ(Output("large.txt").size(), 6'000'000u);
}

TEST_F(ReapiTest, BazelUsesTheCoordinatorsEmbeddedCache) {
  const std::string remote = "--remote_cache=grpc://" + StartCoordinator({});
  std::string output;
  ASSERT_EQ(Build({remote}, &output), 0) << output << coordinator_->Log();
  ASSERT_EQ(Bazel({"clean"}), 0);
  ASSERT_EQ(Build({remote}, &output), 0) << output;
  EXPECT_EQ(Processes(output, "remote cache hit"), 4) << output;
}

TEST_F(ReapiTest, AQueuedSuitesBlobsArePinnedUntilItEnds) {
  const std::string address = StartCoordinator({"--cache-max-bytes=1MiB"});
  auto channel = MakeChannel(address);
  auto cas = reapi::ContentAddressableStorage::NewStub(channel);
  auto coordinator = v1::Coordinator::NewStub(channel);
  auto upload = [&](const std::string& content) {
    reapi::BatchUpdateBlobsRequest request;
    auto* blob = request.add_requests();
    *blob->mutable_digest() = BlobDigest::Of(content).ToProto();
    blob->set_data(content);
    reapi::BatchUpdateBlobsResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(cas->BatchUpdateBlobs(&context, request, &response).ok());
    return BlobDigest::Of(content);
  };
  auto present = [&](const BlobDigest& digest) {
    reapi::FindMissingBlobsRequest request;
    *request.add_blob_digests() = digest.ToProto();
    reapi::FindMissingBlobsResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(cas->FindMissingBlobs(&context, request, &response).ok());
    return response.missing_blob_digests_size() == 0;
  };
  auto fill = [&](char with) {  // another client, past the limit
    std::vector<BlobDigest> filler;
    for (int i = 0; i < 5; ++i)
      filler.push_back(upload(std::string(300'000, with) + std::to_string(i)));
    return filler;
  };
  const BlobDigest input = upload(std::string(300'000, 'i'));
  auto submit = [&](const BlobDigest& blob, v1::SubmitSuiteResponse* response) {
    v1::SubmitSuiteRequest request;
    request.mutable_suite()->set_name("pinned");
    auto* test = request.mutable_suite()->add_tests();
    test->set_id("t");
    test->add_argv("true");
    request.mutable_suite()->add_blobs(blob.ToString());
    grpc::ClientContext context;
    return coordinator->SubmitSuite(&context, request, response);
  };
  v1::SubmitSuiteResponse submitted;
  // No worker: the suite stays queued.
  ASSERT_TRUE(submit(input, &submitted).ok());
  const std::vector<BlobDigest> filler = fill('a');
  EXPECT_TRUE(present(input));
  EXPECT_FALSE(present(filler[0]));  // the cache did evict
  // A suite naming a blob the cache lacks is refused.
  v1::SubmitSuiteResponse refused;
  grpc::Status missing = submit(filler[0], &refused);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(missing.error_message(), HasSubstr("not in the cache"));

  // Once the suite ends, its blobs age like any other.
  v1::SuiteRef ref;
  ref.set_suite_id(submitted.suite_id());
  v1::CancelResponse cancelled;
  grpc::ClientContext context;
  ASSERT_TRUE(coordinator->CancelSuite(&context, ref, &cancelled).ok());
  fill('b');
  EXPECT_FALSE(present(input));
}

TEST_F(ReapiTest, BadRequestsGetTheirStatusAndStoreNothing) {
  const std::string address = StartCache();
  Process probe("tf_reapi_bad_inputs", {address}, dir_.Join("probe.log"));
  ASSERT_EQ(probe.Wait(absl::Minutes(2)), 0) << probe.Log();
  EXPECT_THAT(probe.Log(), ::testing::Not(HasSubstr("UNEXPECTED")));
  EXPECT_THAT(probe.Log(),
              HasSubstr("| ByteStream write: claims 2 GiB, sends 10 bytes | "
                        "RESOURCE_EXHAUSTED |"));
  EXPECT_THAT(probe.Log(), HasSubstr("is not a single path component"));
}

}  // namespace
}  // namespace testfleet
