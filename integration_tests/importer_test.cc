// The importers against a real CMake + GoogleTest project built here: the
// same pass/fail outcome as plain ctest, through --from-ctest and --from-gtest.
#include <unistd.h>

#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

// Runs a shell command line; its exit code, output (stdout and stderr) in
// `output`.
int Shell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  output->clear();
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    output->append(buffer, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ImporterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    build_ = new TestDir();
    std::string output;
    const std::string source = std::string(TESTFLEET_SOURCE_DIR) +
                               "/integration_tests/fixtures/gtest_project";
    ASSERT_EQ(Shell(absl::StrCat("cmake -S ", source, " -B ", build_->path(),
                                 " -G Ninja"),
                    &output),
              0)
        << output;
    ASSERT_EQ(Shell(absl::StrCat("cmake --build ", build_->path()), &output), 0)
        << output;
  }
  static void TearDownTestSuite() { delete build_; }

  // Failed test ids in a coordctl JSON report.
  static std::set<std::string> FailedIn(const json& report) {
    std::set<std::string> failed;
    for (const json& test : report["tests"]) {
      if (test["status"] != "passed" && test["status"] != "skipped")
        failed.insert(test["id"].get<std::string>());
    }
    return failed;
  }

  static TestDir* build_;
  TestDir dir_;
};
TestDir* ImporterTest::build_ = nullptr;

TEST_F(ImporterTest, SameOutcomeAsCtestThroughBothImporters) {
  std::string output;
  EXPECT_NE(Shell(absl::StrCat("ctest --test-dir ", build_->path()), &output),
            0);
  std::set<std::string> ctest_failed, ctest_disabled;
  int ctest_total = 0;
  std::regex line(R"(Test +#\d+: (\S+) \.+\s*(\*+\s*)?(\w+))");
  for (std::sregex_iterator it(output.begin(), output.end(), line), end;
       it != end; ++it) {
    ++ctest_total;  // "Not Run (Disabled)" too: reported as skipped
    if ((*it)[3] == "Not") ctest_disabled.insert((*it)[1]);
    if ((*it)[3] == "Failed") ctest_failed.insert((*it)[1]);
  }
  // CTest names a value-parameterised test by its value (IsEven/3), GoogleTest
  // by its index (IsEven/1): the same failing test.
  ASSERT_EQ(ctest_failed,
            (std::set<std::string>{"Math.Broken", "Numbers/Param.IsEven/3"}))
      << output;

  const std::string cache = "--cache-dir=" + dir_.Join("cache");
  ASSERT_EQ(Coordctl({"run", "--from-ctest=" + build_->path(), cache,
                      "--json=" + dir_.Join("ctest.json")},
                     dir_.Join("ctest.log"), &output),
            1)
      << output;
  json from_ctest = ReadJson(dir_.Join("ctest.json"));
  EXPECT_EQ(FailedIn(from_ctest), ctest_failed);
  EXPECT_EQ(static_cast<int>(from_ctest["tests"].size()), ctest_total);
  ASSERT_EQ(ctest_disabled,
            (std::set<std::string>{"Math.NeverRuns", "never_runs"}));
  for (const json& test : from_ctest["tests"]) {
    if (ctest_disabled.count(test["id"])) {
      EXPECT_EQ(test["status"], "skipped") << test.dump();
    }
    if (test["id"] == "env_check") {
      // The CTest ENVIRONMENT property reached the test, which then passed.
      EXPECT_EQ(test["status"], "passed");
      EXPECT_THAT(test["stdout_tail"].get<std::string>(),
                  HasSubstr("[       OK ] Env.SeedIsSet"));
    }
  }

  ASSERT_EQ(Coordctl({"run", "--from-gtest=" + build_->Join("fixture_test"),
                      cache, "--json=" + dir_.Join("gtest.json")},
                     dir_.Join("gtest.log"), &output),
            1)
      << output;
  json from_gtest = ReadJson(dir_.Join("gtest.json"));
  EXPECT_EQ(FailedIn(from_gtest),
            (std::set<std::string>{"Math.Broken", "Numbers/Param.IsEven/1"}));
  std::set<std::string> ids;
  for (const json& test : from_gtest["tests"])
    ids.insert(test["id"].get<std::string>());
  EXPECT_EQ(
      ids,
      (std::set<std::string>{
          "Math.Adds", "Math.Broken", "Typed/0.ZeroIsFalse",
          "Typed/1.ZeroIsFalse", "Numbers/Param.IsEven/0",
          "Numbers/Param.IsEven/1", "Numbers/Param.IsEven/2", "Env.SeedIsSet",
          "Memory.HoldsMoreThanTestfleetsDefaultLimit", "Library.Greets",
          "Data.ReadsItsWorkingDirectory", "Math.DISABLED_NeverRuns"}));
  for (const json& test : from_gtest["tests"]) {
    EXPECT_EQ(test["status"] == "skipped",
              test["id"] == "Math.DISABLED_NeverRuns")
        << test.dump();
  }
}

// The CTest project on a worker that can see neither its source tree nor its
// build tree: what the importer declares is all the tests get, and their
// outcome is ctest's.
TEST_F(ImporterTest, CtestProjectRunsOnAWorkerWithoutTheTrees) {
  std::string output;
  Process probe("/usr/bin/unshare", {"-m", "/bin/true"}, dir_.Join("p.log"));
  if (geteuid() != 0 || probe.Wait(absl::Seconds(10)).value_or(1) != 0)
    GTEST_SKIP() << "needs root and mount namespaces";
  std::unique_ptr<Process> coordinator;
  const std::string address = StartServer(
      coordinator, "coordinator",
      {"--listen=127.0.0.1:0", "--data-dir=" + dir_.Join("coordinator")},
      dir_.Join("coordinator.log"));
  const std::string source = std::string(TESTFLEET_SOURCE_DIR) +
                             "/integration_tests/fixtures/gtest_project";
  Process worker(
      "/usr/bin/unshare",
      {"-m", "/bin/sh", "-c",
       absl::StrCat("mount -t tmpfs none ", source, " && mount -t tmpfs none ",
                    build_->path(), " && exec ", BinDir(),
                    "/worker --coordinator=", address, " --slots=2 --name=bare",
                    " --spool-dir=", dir_.Join("spool"),
                    " --file-cache-dir=", dir_.Join("files"))},
      dir_.Join("worker.log"));
  EXPECT_EQ(Coordctl({"submit", "--from-ctest=" + build_->path(),
                      "--coordinator=" + address, "--wait",
                      "--cache-dir=" + dir_.Join("cc"),
                      "--json=" + dir_.Join("bare.json"),
                      "--outputs=" + dir_.Join("outputs")},
                     dir_.Join("bare.log"), &output),
            1)
      << output << worker.Log();
  const json report = ReadJson(dir_.Join("bare.json"));
  EXPECT_EQ(FailedIn(report),
            (std::set<std::string>{"Math.Broken", "Numbers/Param.IsEven/3"}))
      << output;
  std::map<std::string, std::string> status;
  for (const json& test : report["tests"]) {
    status[test["id"]] = test["status"];
    EXPECT_EQ(test["worker"] == "bare", test["status"] != "skipped")
        << test.dump();
  }
  // The shared library, the source tree's data folder, the absolute path
  // in a shell string all travelled; disabled tests are listed, skipped.
  EXPECT_EQ(status["Library.Greets"], "passed");
  EXPECT_EQ(status["data_in_source_tree"], "passed");
  EXPECT_EQ(status["shell_reads_absolute_path"], "passed");
  EXPECT_EQ(status["never_runs"], "skipped");
  EXPECT_EQ(status["Math.NeverRuns"], "skipped");
  // GoogleTest's own XML report came back as an output.
  EXPECT_THAT(ReadFile(dir_.Join("outputs/Math.Adds/testfleet-gtest/"
                                 "Math.Adds.xml")),
              HasSubstr("<testcase name=\"Adds\""));
}

TEST_F(ImporterTest, ImportWritesAnEditableSuiteFileAndFiltersApply) {
  std::string output;
  const std::string suite = dir_.Join("suite.json");
  ASSERT_EQ(Coordctl({"import", "--from-gtest=" + build_->Join("fixture_test"),
                      "-o", suite, "--id=Math.*"},
                     dir_.Join("import.log"), &output),
            0)
      << output;
  // Math.DISABLED_NeverRuns too, to be listed as skipped.
  EXPECT_THAT(output, HasSubstr("wrote 3 tests"));
  // The test binary lives in the build tree, outside the suite's folder.
  EXPECT_THAT(output, HasSubstr("run it with --allow-outside-paths"));
  json document = ReadJson(suite);
  ASSERT_EQ(document["tests"].size(), 3u);
  // Neither GoogleTest nor CTest limits memory; the imported suite says so.
  EXPECT_EQ(document["defaults"]["memory_limit"], "0");
  ASSERT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir_.Join("cache"),
                      "--exclude=*Broken", "--json=" + dir_.Join("r.json"),
                      "--allow-outside-paths"},
                     dir_.Join("run.log"), &output),
            0)
      << output;
  json report = ReadJson(dir_.Join("r.json"));
  ASSERT_EQ(report["tests"].size(), 2u);
  EXPECT_EQ(FailedIn(report), std::set<std::string>());
  EXPECT_EQ(report["summary"]["skipped"], 1);
  EXPECT_EQ(Coordctl({"run", suite, "--tag=nothing-has-this",
                      "--allow-outside-paths"},
                     dir_.Join("none.log"), &output),
            2);
  EXPECT_THAT(output,
              HasSubstr("no test of the suite passes --tag/--id/--exclude"));
  EXPECT_EQ(Coordctl({"run", "--from-ctest=" + dir_.Join("nowhere")},
                     dir_.Join("bad.log"), &output),
            2);
  EXPECT_THAT(output, HasSubstr("is not a folder"));
}

}  // namespace
}  // namespace testfleet
