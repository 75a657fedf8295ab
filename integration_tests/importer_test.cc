// The importers against a real CMake + GoogleTest project built here: the
// same pass/fail outcome as plain ctest, through --from-ctest and --from-gtest.
#include <cstdio>
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
      if (test["status"] != "passed")
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
  std::set<std::string> ctest_failed;
  int ctest_total = 0;
  std::regex line(R"(Test +#\d+: (\S+) \.+\s*(\*+\s*)?(\w+))");
  for (std::sregex_iterator it(output.begin(), output.end(), line), end;
       it != end; ++it) {
    if ((*it)[3] == "Not") continue;  // "Not Run (Disabled)": not imported
    ++ctest_total;
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
  for (const json& test : from_ctest["tests"]) {
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
      ids, (std::set<std::string>{
               "Math.Adds", "Math.Broken", "Typed/0.ZeroIsFalse",
               "Typed/1.ZeroIsFalse", "Numbers/Param.IsEven/0",
               "Numbers/Param.IsEven/1", "Numbers/Param.IsEven/2",
               "Env.SeedIsSet", "Memory.HoldsMoreThanTestfleetsDefaultLimit"}));
}

TEST_F(ImporterTest, ImportWritesAnEditableSuiteFileAndFiltersApply) {
  std::string output;
  const std::string suite = dir_.Join("suite.json");
  ASSERT_EQ(Coordctl({"import", "--from-gtest=" + build_->Join("fixture_test"),
                      "-o", suite, "--id=Math.*"},
                     dir_.Join("import.log"), &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("wrote 2 tests"));
  // The test binary lives in the build tree, outside the suite's folder.
  EXPECT_THAT(output, HasSubstr("run it with --allow-outside-paths"));
  json document = ReadJson(suite);
  ASSERT_EQ(document["tests"].size(), 2u);
  // Neither GoogleTest nor CTest limits memory; the imported suite says so.
  EXPECT_EQ(document["defaults"]["memory_limit"], "0");
  ASSERT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir_.Join("cache"),
                      "--exclude=*Broken", "--json=" + dir_.Join("r.json"),
                      "--allow-outside-paths"},
                     dir_.Join("run.log"), &output),
            0)
      << output;
  json report = ReadJson(dir_.Join("r.json"));
  ASSERT_EQ(report["tests"].size(), 1u);
  EXPECT_EQ(report["tests"][0]["id"], "Math.Adds");
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
