// Workers without a checkout: inputs travel by digest and each test runs in
// a sandbox of its own, on a worker that cannot see the submitter's files.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// A worker in a mount namespace of its own in which each of `hidden` is
// covered by an empty tmpfs: it cannot see the submitter's files there.
std::unique_ptr<Process> StartHiddenWorker(
    const std::vector<std::string>& hidden,
    const std::vector<std::string>& args, const std::string& log) {
  std::string script;
  for (const std::string& dir : hidden)
    absl::StrAppend(&script, "mount -t tmpfs none ", dir, " && ");
  absl::StrAppend(&script, "exec ", BinDir(), "/worker");
  for (const std::string& arg : args) absl::StrAppend(&script, " '", arg, "'");
  // Root makes a mount namespace; anyone else a user namespace first.
  std::vector<std::string> unshare_args = {geteuid() == 0 ? "-m" : "-rm",
                                           "/bin/sh", "-c", script};
  return std::make_unique<Process>("/usr/bin/unshare", unshare_args, log);
}

// The worker removes finished sandboxes in the background: gone soon.
bool SandboxesGone(const std::string& dir) {
  return WaitFor([&] { return std::filesystem::is_empty(dir); },
                 absl::Seconds(10));
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Probe: can this machine make a mount namespace at all?
    std::string output;
    Process probe("/usr/bin/unshare",
                  {geteuid() == 0 ? "-m" : "-rm", "/bin/true"},
                  files_.Join("probe.log"));
    if (probe.Wait(absl::Seconds(10)).value_or(1) != 0) {
      GTEST_SKIP() << "no mount namespaces here: " << probe.Log();
    }
    WriteSuiteFolder();
  }

  void WriteSuiteFolder() {
    suite_.Write("data/a.txt", "alpha\n");
    suite_.Write("data/b.txt", "beta\n");
    suite_.Write("data/sub/c.txt", "gamma\n");
    const std::string check = suite_.Write(
        "bin/check.sh",
        "#!/bin/sh\n# FILE EXPECTED: the file holds EXPECTED\n"
        "test \"$(cat \"$1\")\" = \"$2\" || { echo \"$1 is not $2\" >&2; exit "
        "1; }\n");
    chmod(check.c_str(), 0755);
    const json suite = {
        {"name", "sandboxed"},
        {"defaults", {{"timeout", "30s"}}},
        {"tests",
         {{{"id", "a"},
           {"cmd", {"bin/check.sh", "data/a.txt", "alpha"}},
           {"inputs", {"data/a.txt"}}},
          {{"id", "b.fails"},
           {"cmd", {"bin/check.sh", "data/b.txt", "not beta"}},
           {"inputs", {"data/b.txt"}}},
          {{"id", "c.in.sub"},
           {"cmd", {"../../bin/check.sh", "c.txt", "gamma"}},
           {"cwd", "data/sub"},
           {"inputs", {"data/sub/c.txt"}}},
          {{"id", "absolute.path"},
           {"cmd",
            {"sh", "-c",
             absl::StrCat("grep -q alpha ", suite_.Join("data/a.txt"))}},
           {"inputs", {"data/a.txt"}}},
          {{"id", "undeclared.is.absent"},
           {"cmd", {"sh", "-c", "test ! -e data/b.txt"}},
           {"inputs", {"data/a.txt"}}},
          {{"id", "writes.output"},
           {"cmd", {"sh", "-c", "mkdir -p out && echo made > out/made.txt"}},
           {"outputs", {"out"}}}}}};
    suite_.Write("suite.json", suite.dump(2));
  }

  std::string StartCoordinator(const std::string& name,
                               std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--listen=127.0.0.1:0",
                                     "--data-dir=" + files_.Join(name)};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServer(coordinators_[name], "coordinator", args,
                       files_.Join(name + ".log"));
  }

  std::vector<std::string> WorkerArgs(const std::string& coordinator,
                                      const std::string& name) {
    return {"--coordinator=" + coordinator, "--slots=2", "--name=" + name,
            "--spool-dir=" + files_.Join("spool-" + name),
            "--file-cache-dir=" + files_.Join("files-" + name)};
  }

  int Submit(const std::string& coordinator, std::vector<std::string> extra,
             const std::string& tag, std::string* output) {
    std::vector<std::string> args = {
        "submit",
        suite_.Join("suite.json"),
        "--coordinator=" + coordinator,
        "--wait",
        "--json=" + files_.Join(tag + ".json"),
        "--cache-dir=" + files_.Join("client-cache")};
    args.insert(args.end(), extra.begin(), extra.end());
    return Coordctl(args, files_.Join(tag + ".log"), output);
  }

  // Blob puts the coordinator's store counted (`coordctl cache stats`).
  int64_t BlobPuts(const std::string& coordinator) {
    std::string output;
    Coordctl({"cache", "stats", "--coordinator=" + coordinator},
             files_.Join("stats.log"), &output);
    std::smatch match;
    if (!std::regex_search(output, match,
                           std::regex("blobs: entries \\d+, [^;]+; hits \\d+, "
                                      "misses \\d+; puts (\\d+)"))) {
      ADD_FAILURE() << output;
      return -1;
    }
    return std::stoll(match[1]);
  }

  static std::map<std::string, json> ById(const json& report) {
    std::map<std::string, json> tests;
    for (const json& test : report["tests"]) tests[test["id"]] = test;
    return tests;
  }

  TestDir suite_;  // the submitter's checkout
  TestDir files_;  // servers' folders and logs
  std::map<std::string, std::unique_ptr<Process>> coordinators_;
  std::vector<std::unique_ptr<Process>> workers_;
};

TEST_F(SandboxTest, HiddenCheckoutRunsAsASharedWorkspaceDoes) {
  std::string output;
  // With a shared workspace, as before.
  const std::string shared = StartCoordinator("shared");
  std::vector<std::string> args = WorkerArgs(shared, "checkout");
  args.push_back("--workspace=" + suite_.path());
  workers_.push_back(
      std::make_unique<Process>("worker", args, files_.Join("checkout.log")));
  EXPECT_EQ(Submit(shared, {"--no-upload"}, "shared", &output), 1) << output;

  // A worker that sees an empty folder where the suite is.
  const std::string sandboxed = StartCoordinator("sandboxed");
  workers_.push_back(StartHiddenWorker({suite_.path()},
                                       WorkerArgs(sandboxed, "hidden"),
                                       files_.Join("hidden.log")));
  EXPECT_EQ(Submit(sandboxed, {"--outputs=" + files_.Join("outputs")},
                   "sandboxed", &output),
            1)
      << output << workers_.back()->Log();
  // Three data files and the program, which is in the tree undeclared.
  EXPECT_THAT(output, HasSubstr("inputs: sent 4 of 4 files"));

  const auto expected = ById(ReadJson(files_.Join("shared.json")));
  const auto got = ById(ReadJson(files_.Join("sandboxed.json")));
  ASSERT_EQ(got.size(), 6u);
  // Stricter than a checkout: what a test does not declare is not there.
  EXPECT_EQ(expected.at("undeclared.is.absent")["status"], "failed");
  EXPECT_EQ(got.at("undeclared.is.absent")["status"], "passed");
  for (const auto& [id, test] : expected) {
    SCOPED_TRACE(id);
    if (id == "undeclared.is.absent") continue;
    ASSERT_EQ(got.count(id), 1u);
    EXPECT_EQ(got.at(id)["status"], test["status"]) << got.at(id).dump() << "\n"
                                                    << test.dump();
    EXPECT_EQ(got.at(id)["cache_key"], test["cache_key"]);
    EXPECT_EQ(got.at(id)["worker"], "hidden");
  }
  EXPECT_EQ(got.at("b.fails")["status"], "failed");
  EXPECT_THAT(got.at("b.fails")["stderr_tail"].get<std::string>(),
              HasSubstr("data/b.txt is not not beta"));
  // The output came back through the blob store.
  EXPECT_EQ(ReadFile(files_.Join("outputs/writes.output/out/made.txt")),
            "made\n");
  ASSERT_EQ(got.at("writes.output")["outputs"].size(), 1u);
  EXPECT_EQ(got.at("writes.output")["outputs"][0]["path"], "out/made.txt");
  // Pristine sandboxes wait for reuse; a stopping worker leaves none.
  workers_.back()->Kill(SIGTERM);
  EXPECT_TRUE(SandboxesGone(files_.Join("files-hidden/sandboxes")));
}

TEST_F(SandboxTest, OnlyChangedFilesAreUploaded) {
  const std::string coordinator = StartCoordinator("coordinator");
  workers_.push_back(StartHiddenWorker({suite_.path()},
                                       WorkerArgs(coordinator, "hidden"),
                                       files_.Join("hidden.log")));
  std::string output;
  ASSERT_EQ(Submit(coordinator, {}, "first", &output), 1) << output;
  const int64_t puts = BlobPuts(coordinator);

  // Unchanged: nothing goes.
  ASSERT_EQ(Submit(coordinator, {}, "again", &output), 1) << output;
  EXPECT_THAT(output, HasSubstr("inputs: sent 0 of 4 files and 0 of"));
  EXPECT_EQ(BlobPuts(coordinator), puts);

  // One file changed: that file, and the folder records on its path.
  suite_.Write("data/sub/c.txt", "gamma changed\n");
  ASSERT_EQ(Submit(coordinator, {}, "changed", &output), 1) << output;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      output, match,
      std::regex("inputs: sent 1 of 4 files and (\\d+) of \\d+ folders")))
      << output;
  const int64_t folders = std::stoll(match[1]);
  // data/sub, data, the suite folder and its ancestors up to "/": once for
  // the tree of the test that reads c.txt.
  const int64_t depth =
      std::count(suite_.path().begin(), suite_.path().end(), '/') + 3;
  EXPECT_GE(folders, 1);
  EXPECT_LE(folders, depth);
  EXPECT_EQ(BlobPuts(coordinator), puts + 1 + folders);
  // And the test saw the new content.
  EXPECT_EQ(ById(ReadJson(files_.Join("changed.json")))["c.in.sub"]["status"],
            "failed");
}

TEST_F(SandboxTest, ATestCannotChangeTheWorkersFilesAndLeavesNothing) {
  // The worker's own files, out of /tmp (which each test has its own of).
  std::string pattern = "/var/tmp/tf-victim-XXXXXX";
  const std::string outside = mkdtemp(pattern.data());
  const std::string victim = outside + "/victim.txt";
  std::ofstream(victim) << "untouched\n";
  const json suite = {
      {"name", "hostile"},
      {"tests",
       {{{"id", "overwrite"},
         {"cmd", {"sh", "-c", absl::StrCat("echo changed > ", victim)}}},
        {{"id", "remove"}, {"cmd", {"rm", "-f", victim}}},
        {{"id", "tmp.is.private"},
         {"cmd", {"sh", "-c", "echo x > /tmp/tf-sandbox-probe"}}},
        {{"id", "killed"}, {"cmd", {"sleep", "30"}}, {"timeout", "1s"}},
        {{"id", "leaks.through.a.link"},
         {"cmd", {"ln", "-s", "/etc", "leak"}},
         {"outputs", {"leak/hostname"}}}}}};
  suite_.Write("suite.json", suite.dump());
  const std::string coordinator = StartCoordinator("coordinator");
  workers_.push_back(StartHiddenWorker({suite_.path()},
                                       WorkerArgs(coordinator, "hidden"),
                                       files_.Join("hidden.log")));
  std::string output;
  EXPECT_EQ(Submit(coordinator, {}, "hostile", &output), 1) << output;
  const auto got = ById(ReadJson(files_.Join("hostile.json")));
  EXPECT_EQ(got.at("overwrite")["status"], "failed");
  EXPECT_THAT(got.at("overwrite")["stderr_tail"].get<std::string>(),
              HasSubstr("Read-only file system"));
  EXPECT_EQ(got.at("remove")["status"], "failed");
  EXPECT_EQ(got.at("tmp.is.private")["status"], "passed");
  EXPECT_EQ(got.at("killed")["status"], "timed_out");
  // The worker's own files never become outputs.
  EXPECT_EQ(got.at("leaks.through.a.link")["status"], "error");
  EXPECT_THAT(got.at("leaks.through.a.link")["error"].get<std::string>(),
              HasSubstr("leads outside the test's folder"));
  EXPECT_FALSE(got.at("leaks.through.a.link").contains("outputs"));
  EXPECT_EQ(ReadFile(victim), "untouched\n");
  std::filesystem::remove_all(outside);
  EXPECT_FALSE(std::filesystem::exists("/tmp/tf-sandbox-probe"));
  // Only the passed test's sandbox, untouched, waits for reuse: the killed
  // and failed tests' are gone.
  const std::string sandboxes = files_.Join("files-hidden/sandboxes");
  auto count = [&] {
    return std::distance(std::filesystem::directory_iterator(sandboxes),
                         std::filesystem::directory_iterator());
  };
  EXPECT_TRUE(WaitFor([&] { return count() == 1; }, absl::Seconds(10)))
      << count();
  workers_.back()->Kill(SIGTERM);
  EXPECT_TRUE(SandboxesGone(sandboxes));
}

TEST_F(SandboxTest, WorkerKilledMidDownloadLeavesNoPartialFile) {
  // Large enough that the download takes a while on loopback.
  std::string big(256 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i);
  suite_.Write("data/big.bin", big);
  big.clear();
  const json suite = {
      {"name", "big"},
      {"tests",
       {{{"id", "reads.big"},
         {"cmd", {"sh", "-c", "test $(wc -c < data/big.bin) = 268435456"}},
         {"inputs", {"data/big.bin"}}}}}};
  suite_.Write("suite.json", suite.dump());
  const std::string coordinator =
      StartCoordinator("coordinator", {"--lease=2s"});
  auto first =
      StartHiddenWorker({suite_.path()}, WorkerArgs(coordinator, "first"),
                        files_.Join("first.log"));
  auto client = std::make_unique<Process>(
      "coordctl",
      std::vector<std::string>{"submit", suite_.Join("suite.json"),
                               "--coordinator=" + coordinator, "--wait",
                               "--json=" + files_.Join("big.json"),
                               "--cache-dir=" + files_.Join("client-cache")},
      files_.Join("client.log"));
  // Killed while the file is being written under tmp/.
  const std::string temp = files_.Join("files-first/tmp");
  ASSERT_TRUE(WaitFor(
      [&] {
        std::error_code ec;
        return std::filesystem::exists(temp, ec) &&
               !std::filesystem::is_empty(temp, ec);
      },
      absl::Seconds(60)))
      << first->Log() << client->Log();
  first->Kill(SIGKILL);
  // Another worker runs it.
  workers_.push_back(StartHiddenWorker({suite_.path()},
                                       WorkerArgs(coordinator, "second"),
                                       files_.Join("second.log")));
  ASSERT_EQ(client->Wait(absl::Minutes(2)), 0) << client->Log();
  const auto got = ById(ReadJson(files_.Join("big.json")));
  EXPECT_EQ(got.at("reads.big")["status"], "passed");
  EXPECT_EQ(got.at("reads.big")["worker"], "second");

  // Restarted, the first worker's file cache holds no partial file.
  auto restarted =
      StartHiddenWorker({suite_.path()}, WorkerArgs(coordinator, "first"),
                        files_.Join("first-again.log"));
  ASSERT_TRUE(WaitFor(
      [&] { return restarted->Log().find("2 slots") != std::string::npos; },
      absl::Seconds(20)))
      << restarted->Log();
  EXPECT_TRUE(std::filesystem::is_empty(temp));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           files_.Join("files-first"))) {
    if (!entry.is_regular_file() || entry.path().filename() == "lock") continue;
    const std::string name = entry.path().filename().string();
    ASSERT_EQ(name.size() > 65 ? name[64] : ' ', '-') << name;
    EXPECT_EQ(std::to_string(entry.file_size()), name.substr(65)) << name;
  }
}

}  // namespace
}  // namespace testfleet
