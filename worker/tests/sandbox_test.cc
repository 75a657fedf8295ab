#include "worker/sandbox.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cache/reapi_service.h"
#include "cache/result_cache.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "worker/executor.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A real REAPI store (RocksDB in a temp folder) served in process.
class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ResultCacheOptions options;
    options.dir = dir_.Join("store");
    store_ = ResultCache::Open(options).value();
    reapi_ = std::make_unique<ReapiServices>(store_.get());
    grpc::ServerBuilder builder;
    reapi_->Register(builder);
    server_ = builder.BuildAndStart();
    cas_ = std::make_unique<CasClient>(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  void TearDown() override { server_->Shutdown(); }

  // Stores `content` and returns it as a file of the tree.
  TreeFile Put(const std::string& path, const std::string& content,
               bool executable = false) {
    const BlobDigest digest = BlobDigest::Of(content);
    EXPECT_TRUE(cas_->UploadMissing({{digest, "", content}}).ok());
    return {path, digest, executable};
  }

  TestDir dir_;
  std::unique_ptr<ResultCache> store_;
  std::unique_ptr<ReapiServices> reapi_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<CasClient> cas_;
};

using FileCacheTest = StoreTest;

TEST_F(FileCacheTest, FetchesOnceKeepsModesAndSurvivesARestart) {
  auto cache = FileCache::Open(dir_.Join("files"), 1 << 30).value();
  const std::string large(3 << 20, 'L');  // streamed, not batched
  const std::vector<TreeFile> files = {Put("/p/small", "small"),
                                       Put("/p/run", "#!/bin/sh\n", true),
                                       Put("/p/large", large)};
  {
    auto pin = cache->Fetch(files, *cas_);
    ASSERT_TRUE(pin.ok()) << pin.status();
  }
  EXPECT_EQ(cache->stats().misses, 3);
  struct stat st {};
  ASSERT_EQ(stat(cache->PathOf(files[1]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555);
  ASSERT_EQ(stat(cache->PathOf(files[0]).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444);
  ASSERT_TRUE(cache->Fetch(files, *cas_).ok());
  EXPECT_EQ(cache->stats().hits, 3);

  // A leftover download and a file of the wrong size are dropped at open.
  std::ofstream(dir_.Join("files/tmp/partial")) << "half";
  const std::string damaged = cache->PathOf(files[2]);
  cache.reset();
  chmod(damaged.c_str(), 0644);
  truncate(damaged.c_str(), 10);
  cache = FileCache::Open(dir_.Join("files"), 1 << 30).value();
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("files/tmp/partial")));
  EXPECT_EQ(cache->stats().files, 2);
  ASSERT_TRUE(cache->Fetch(files, *cas_).ok());
  EXPECT_EQ(cache->stats().misses, 1);  // the large one again
}

TEST_F(FileCacheTest, OneProcessAtATimeAndMissingBlobsNamed) {
  auto cache = FileCache::Open(dir_.Join("files"), 1 << 30).value();
  EXPECT_TRUE(absl::IsFailedPrecondition(
      FileCache::Open(dir_.Join("files"), 1 << 30).status()));
  const TreeFile absent = {"/p/x", BlobDigest::Of("never stored"), false};
  auto pin = cache->Fetch({absent}, *cas_);
  EXPECT_FALSE(pin.ok());
  EXPECT_THAT(pin.status().ToString(), HasSubstr(absent.digest.ToString()));
}

TEST_F(FileCacheTest, EvictsLeastRecentlyUsedButNeverPinnedFiles) {
  auto cache = FileCache::Open(dir_.Join("files"), 2500).value();
  const TreeFile a = Put("/a", std::string(1000, 'a'));
  const TreeFile b = Put("/b", std::string(1000, 'b'));
  const TreeFile c = Put("/c", std::string(1000, 'c'));
  auto pinned = cache->Fetch({a}, *cas_);
  ASSERT_TRUE(pinned.ok());
  ASSERT_TRUE(cache->Fetch({b}, *cas_).ok());
  ASSERT_TRUE(cache->Fetch({c}, *cas_).ok());
  // Over the limit: b went (least recent, unpinned); a is pinned.
  EXPECT_TRUE(std::filesystem::exists(cache->PathOf(a)));
  EXPECT_FALSE(std::filesystem::exists(cache->PathOf(b)));
  EXPECT_TRUE(std::filesystem::exists(cache->PathOf(c)));
  EXPECT_EQ(cache->stats().evictions, 1);
}

TEST_F(FileCacheTest, FileChangedThroughALinkIsDropped) {
  auto cache = FileCache::Open(dir_.Join("files"), 1 << 30).value();
  const TreeFile file = Put("/p/data", "original");
  ASSERT_TRUE(cache->Fetch({file}, *cas_).ok());
  const std::string link = dir_.Join("link");
  ASSERT_EQ(::link(cache->PathOf(file).c_str(), link.c_str()), 0);
  EXPECT_EQ(cache->DropChanged({file}), 0);
  chmod(link.c_str(), 0644);  // what a test could do to its input
  std::ofstream(link) << "tampered";
  EXPECT_EQ(cache->DropChanged({file}), 1);
  EXPECT_FALSE(std::filesystem::exists(cache->PathOf(file)));
  EXPECT_EQ(cache->stats().damaged, 1);
}

class SandboxMakerTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    files_ = FileCache::Open(dir_.Join("files"), 1 << 30).value();
    maker_ = std::make_unique<SandboxMaker>(
        dir_.Join("files/sandboxes"), files_.get(),
        server_->InProcessChannel(grpc::ChannelArguments()));
    ASSERT_TRUE(maker_->Clean().ok());
  }

  // A test of `inputs` (name, content) under /suite, its tree uploaded.
  v1::TestSpec Spec(
      const std::vector<std::pair<std::string, std::string>>& inputs,
      const std::vector<TreeFile>& extra = {}) {
    v1::TestSpec spec;
    spec.set_id("t");
    spec.add_argv("./run.sh");
    spec.set_exec_root("/suite");
    spec.set_cwd("work");
    std::vector<TreeFile> tree = extra;
    for (const auto& [name, content] : inputs) {
      TreeFile file = Put("/suite/" + name, content);
      v1::InputDigest* input = spec.add_inputs();
      input->set_path(name);
      input->set_sha256(file.digest.HashHex());
      input->set_size_bytes(file.digest.size);
      tree.push_back(file);
    }
    InputTreeBuilder builder;
    const BlobDigest root = builder.Add(tree, {"/suite/work"}).value();
    std::vector<BlobSource> blobs;
    for (const auto& [digest, bytes] : builder.directories())
      blobs.push_back({BlobDigest::Of(bytes), "", bytes});
    EXPECT_TRUE(cas_->UploadMissing(blobs).ok());
    spec.set_input_root(root.ToString());
    return spec;
  }

  std::unique_ptr<FileCache> files_;
  std::unique_ptr<SandboxMaker> maker_;
};

TEST_F(SandboxMakerTest, LinksTheDeclaredInputsAndGoesAway) {
  const v1::TestSpec spec =
      Spec({{"data/a.txt", "alpha"}}, {Put("/suite/work/run.sh", "#!", true)});
  std::string dir;
  {
    auto sandbox = maker_->Make(spec);
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    dir = (*sandbox)->dir();
    struct stat in_sandbox {
    }, in_cache{};
    ASSERT_EQ(
        stat((*sandbox)->HostPath("/suite/data/a.txt").c_str(), &in_sandbox),
        0);
    ASSERT_EQ(stat(files_->PathOf((*sandbox)->files()[0]).c_str(), &in_cache),
              0);
    EXPECT_EQ(in_sandbox.st_ino, in_cache.st_ino);  // a hard link
    EXPECT_TRUE(
        std::filesystem::is_directory((*sandbox)->HostPath("/suite/work")));
    EXPECT_EQ(access((*sandbox)->HostPath("/suite/work/run.sh").c_str(), X_OK),
              0);
    // The suite folder is the test's own.
    ASSERT_EQ((*sandbox)->isolation().binds.size(), 1u);
  }
  // Removed off the test's path, by the maker's thread.
  for (int i = 0; i < 500 && maker_->pending_removals() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST_F(SandboxMakerTest, APristineSandboxServesTheNextTestOfItsTree) {
  const v1::TestSpec spec = Spec({{"data/a.txt", "alpha"}});
  auto first = maker_->Make(spec);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string dir = (*first)->dir();
  maker_->Finish(*std::move(first));
  EXPECT_EQ(maker_->idle(), 1);
  auto second = maker_->Make(spec);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*second)->dir(), dir);  // reused, nothing made
  // A test that left a file behind: its sandbox serves nobody else.
  std::ofstream((*second)->HostPath("/suite/work/left-behind")) << "x";
  EXPECT_FALSE((*second)->Pristine());
  maker_->Finish(*std::move(second));
  EXPECT_EQ(maker_->idle(), 0);
  auto third = maker_->Make(spec);
  ASSERT_TRUE(third.ok());
  EXPECT_NE((*third)->dir(), dir);
  // Another test of the same tree but other inputs declared gets its own.
  v1::TestSpec other = spec;
  other.set_cwd("elsewhere");
  maker_->Finish(*std::move(third));
  auto fourth = maker_->Make(other);
  EXPECT_EQ(maker_->idle(), 1);
}

TEST_F(SandboxMakerTest, ATreeThatDisagreesWithTheKeyIsRefused) {
  v1::TestSpec spec = Spec({{"a.txt", "alpha"}});
  spec.mutable_inputs(0)->set_sha256(BlobDigest::Of("other").HashHex());
  EXPECT_THAT(maker_->Make(spec).status().message(),
              HasSubstr("input a.txt is not in the test's input tree"));
  const v1::TestSpec extra =
      Spec({{"a.txt", "alpha"}}, {Put("/suite/undeclared", "x")});
  EXPECT_THAT(maker_->Make(extra).status().message(),
              HasSubstr("holds /suite/undeclared, which the test does not "
                        "declare"));
}

TEST(SandboxRootsTest, TheSuiteFolderAndWhatLiesOutsideIt) {
  v1::TestSpec spec;
  spec.add_argv("x");
  spec.set_exec_root("/home/ci/proj/build");
  spec.set_cwd("../src/tests");
  spec.add_inputs()->set_path("/home/ci/proj/src/tests/data/a.txt");
  spec.add_inputs()->set_path("bin/t");
  EXPECT_EQ(SandboxRoots(spec).value(),
            (std::vector<std::string>{"/home/ci/proj/build",
                                      "/home/ci/proj/src/tests"}));
  spec.add_inputs()->set_path("/usr/lib/libc.so.6");
  EXPECT_THAT(SandboxRoots(spec).status().message(),
              HasSubstr("needs its own /usr/lib"));
  spec.set_exec_root("relative");
  EXPECT_FALSE(SandboxRoots(spec).ok());
}

TEST(IsolationTest, BoundFoldersAppearEvenWhereNothingWasAndAllElseIsReadOnly) {
  if (system(geteuid() == 0 ? "unshare -m true 2>/dev/null"
                            : "unshare -rm true 2>/dev/null") != 0) {
    GTEST_SKIP() << "no mount namespaces on this machine";
  }
  TestDir dir;
  dir.Write("source/hello.txt", "hello\n");
  std::filesystem::create_directories(dir.Join("stage/root"));
  auto launcher = ProcessLauncher::Start(DefaultLauncherPath());
  ASSERT_TRUE(launcher.ok()) << launcher.status();
  // A target under a folder the host lacks, and the host's /tmp replaced.
  const std::string missing = "/tf-isolation-test-" + std::to_string(getpid());
  Isolation isolation{dir.Join("stage"),
                      {{dir.Join("source"), missing + "/deep/folder"}}};
  ExecSpec exec;
  // Its /tmp is its own, and the host's files there show read-only.
  const std::string host_tmp_file = dir.Write("in-host-tmp.txt", "host\n");
  exec.argv = {"/bin/sh", "-c",
               "cat hello.txt && echo new > made.txt && cat made.txt && "
               "ls / >/dev/null && ! touch /var/tmp/tf-isolation-probe && "
               "echo private > /tmp/tf-isolation-private && cat " +
                   host_tmp_file + " && ! rm -f " + host_tmp_file};
  exec.cwd = missing + "/deep/folder";
  exec.timeout = absl::Seconds(30);
  exec.isolation = &isolation;
  auto result = RunTestProcess(exec, **launcher);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status(), v1::TEST_STATUS_PASSED)
      << result->error_message() << result->stderr_tail();
  EXPECT_EQ(result->stdout_tail(), "hello\nnew\nhost\n");
  EXPECT_FALSE(std::filesystem::exists("/tmp/tf-isolation-private"));
  EXPECT_TRUE(std::filesystem::exists(host_tmp_file));
  // Written through the bind; nothing of it outside.
  EXPECT_EQ(ReadFileOrEmpty(dir.Join("source/made.txt")), "new\n");
  EXPECT_FALSE(std::filesystem::exists(missing));
  EXPECT_FALSE(std::filesystem::exists("/var/tmp/tf-isolation-probe"));
}

}  // namespace
}  // namespace testfleet
