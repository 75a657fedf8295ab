#include "common/suite_loader.h"

#include <filesystem>

#include "common/action_key.h"
#include "common/digest.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

class SuiteLoaderTest : public ::testing::Test {
 protected:
  absl::StatusOr<LoadedSuite> Load(const std::string& json) {
    dir_.Write("suite.json", json);
    return LoadSuiteFile(dir_.Join("suite.json"), digester_);
  }
  // The one-line error of a suite that must be rejected.
  std::string ErrorOf(const std::string& json) {
    auto loaded = Load(json);
    EXPECT_FALSE(loaded.ok()) << json;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    std::string message(loaded.status().message());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    return message;
  }
  TestDir dir_;
  FileDigester digester_;
};

TEST_F(SuiteLoaderTest, MergesDefaultsAndHashesInputs) {
  dir_.Write("bin/math_test", "binary");
  dir_.Write("data/add.txt", "1 2 3");
  dir_.Write("data/sub.txt", "4 5 6");
  auto loaded = Load(R"({
    "name": "example", "priority": 5,
    "defaults": {"timeout": "60s", "memory_limit": "128MiB", "retries": 1,
                 "cwd": ".", "env": {"LANG": "C"}},
    "inputs": ["bin/math_test"],
    "tests": [
      {"id": "math.add", "cmd": ["bin/math_test", "--gtest_filter=Math.Add"],
       "priority": 3, "timeout": "10s", "inputs": ["data/*.txt"],
       "env": {"SEED": "1"}, "tags": ["fast"]},
      {"id": "math.sub", "cmd": ["bin/math_test"]}
    ]})");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const v1::SuiteSpec& suite = loaded->spec;
  EXPECT_EQ(suite.name(), "example");
  EXPECT_EQ(suite.priority(), 5);
  ASSERT_EQ(suite.tests_size(), 2);
  const v1::TestSpec& add = suite.tests(0);
  EXPECT_EQ(add.timeout_ms(), 10000);
  EXPECT_EQ(add.memory_limit_bytes(), 128 << 20);
  EXPECT_EQ(add.retries(), 1);
  EXPECT_EQ(add.priority(), 3);
  EXPECT_EQ(add.env().at("LANG"), "C");
  EXPECT_EQ(add.env().at("SEED"), "1");
  ASSERT_EQ(add.inputs_size(), 3);
  EXPECT_EQ(add.inputs(0).path(), "bin/math_test");
  EXPECT_EQ(add.inputs(1).path(), "data/add.txt");
  EXPECT_EQ(add.inputs(1).sha256(), Sha256Hex("1 2 3"));
  EXPECT_EQ(add.inputs(2).path(), "data/sub.txt");
  const v1::TestSpec& sub = suite.tests(1);
  EXPECT_EQ(sub.timeout_ms(), 60000);
  EXPECT_EQ(sub.inputs_size(), 1);
  EXPECT_EQ(loaded->dir, dir_.path());
}

TEST_F(SuiteLoaderTest, OneChangedInputByteChangesTheKey) {
  dir_.Write("data.bin", "payload-0");
  const std::string suite =
      R"({"tests": [{"id": "t", "cmd": ["true"], "inputs": ["data.bin"]}]})";
  auto before = Load(suite);
  ASSERT_TRUE(before.ok()) << before.status();
  dir_.Write("data.bin", "payload-1");
  auto after = Load(suite);
  ASSERT_TRUE(after.ok()) << after.status();
  v1::Platform platform = HostPlatform("");
  EXPECT_NE(ComputeActionKey(before->spec.tests(0), platform).hex(),
            ComputeActionKey(after->spec.tests(0), platform).hex());
}

TEST_F(SuiteLoaderTest, InputFolderIncludesEveryFileBelowIt) {
  dir_.Write("fixtures/a.txt", "a");
  dir_.Write("fixtures/deep/b.txt", "b");
  auto loaded = Load(
      R"({"tests": [{"id": "t", "cmd": ["true"], "inputs": ["fixtures/"]}]})");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->spec.tests(0).inputs_size(), 2);
  EXPECT_EQ(loaded->spec.tests(0).inputs(1).path(), "fixtures/deep/b.txt");
  EXPECT_EQ(loaded->spec.name(), "suite");  // from the file name
}

TEST_F(SuiteLoaderTest, ContractErrorsNameTheField) {
  const std::string ok_test = R"({"id": "a", "cmd": ["true"]})";
  EXPECT_THAT(
      ErrorOf(R"({"tests": [)" + ok_test + R"(,)" + ok_test + "]}"),
      HasSubstr("suite.json: tests[1].id: duplicate id \"a\" (also tests[0])"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": []}]})"),
              HasSubstr("suite.json: tests[0].cmd: is empty"));
  EXPECT_THAT(
      ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "timeout": "-1s"}]})"),
      HasSubstr("suite.json: tests[0].timeout: \"-1s\" is not a duration"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "colour": 1}]})"),
              HasSubstr("suite.json: tests[0].colour: unknown field"));
  EXPECT_THAT(ErrorOf(R"({"tests": [], "nmae": "x"})"),
              HasSubstr("suite.json: nmae: unknown field"));
  EXPECT_THAT(
      ErrorOf(R"({"defaults": {"tiemout": "1s"}, "tests": [)" + ok_test + "]}"),
      HasSubstr("suite.json: defaults.tiemout: unknown field"));
  EXPECT_THAT(
      ErrorOf(
          R"({"tests": [{"id": "a", "cmd": ["x"], "inputs": ["missing.txt"]}]})"),
      HasSubstr(
          "suite.json: tests[0].inputs[0]: \"missing.txt\" cannot be read"));
  EXPECT_THAT(
      ErrorOf(
          R"({"tests": [{"id": "a", "cmd": ["x"], "inputs": ["*.nothing"]}]})"),
      HasSubstr("tests[0].inputs[0]: \"*.nothing\" matches no file"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": "make test"}]})"),
              HasSubstr("tests[0].cmd: expected an argv array"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"cmd": ["x"]}]})"),
              HasSubstr("tests[0]: missing \"id\""));
  EXPECT_THAT(
      ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "retries": -1}]})"),
      HasSubstr("tests[0].retries: -1 is out of range"));
  EXPECT_THAT(
      ErrorOf(
          R"({"tests": [{"id": "a", "cmd": ["x"], "memory_limit": "lots"}]})"),
      HasSubstr("tests[0].memory_limit: \"lots\" is not a size"));
  EXPECT_THAT(
      ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "cwd": "nowhere"}]})"),
      HasSubstr("tests[0].cwd: \"nowhere\" is not a folder"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x\u0000y"]}]})"),
              HasSubstr("tests[0].cmd[0]: contains a NUL character"));
  EXPECT_THAT(ErrorOf(R"({"tests": []})"), HasSubstr("tests: is empty"));
  EXPECT_THAT(ErrorOf("{\n  \"tests\": [\n    {\"id\": }\n]}"),
              HasSubstr("suite.json: invalid JSON at line 3, column 12"));
  EXPECT_THAT(ErrorOf(R"([1, 2])"),
              HasSubstr("expected an object, found array"));
  // Found by fuzz_suite_parser: an unknown field with a newline in its name
  // made a two-line message; a number no double holds used to throw.
  EXPECT_THAT(ErrorOf("{\"tests\": [], \"\\nputs\": 1}"),
              HasSubstr("suite.json: \"\\nputs\": unknown field"));
  EXPECT_THAT(
      ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "timeout": "1\ns"}]})"),
      HasSubstr("tests[0].timeout: \"1\\ns\" is not a duration"));
  EXPECT_THAT(ErrorOf(R"({"priority": 400000000002e113061, "tests": []})"),
              HasSubstr("suite.json: invalid JSON: "));
}

TEST_F(SuiteLoaderTest, RegressionToleranceComesFromSuiteDefaultsOrTest) {
  auto loaded = Load(R"({"regression_tolerance": "30%", "tests": [
      {"id": "a", "cmd": ["true"]},
      {"id": "b", "cmd": ["true"], "regression_tolerance": 0.5}]})");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_DOUBLE_EQ(loaded->spec.tests(0).regression_tolerance(), 0.3);
  EXPECT_DOUBLE_EQ(loaded->spec.tests(1).regression_tolerance(), 0.5);
  loaded = Load(R"({"defaults": {"regression_tolerance": "10%"},
                    "tests": [{"id": "a", "cmd": ["true"]}]})");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_DOUBLE_EQ(loaded->spec.tests(0).regression_tolerance(), 0.1);
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"],
                             "regression_tolerance": "fast"}]})"),
              HasSubstr("tests[0].regression_tolerance: \"fast\" is not a "
                        "tolerance; write a fraction such as 0.2"));
  EXPECT_THAT(ErrorOf(R"({"regression_tolerance": -1, "tests": [{"id": "a",
                          "cmd": ["x"]}]})"),
              HasSubstr("regression_tolerance: -1 is not a tolerance"));
}

TEST_F(SuiteLoaderTest, PathsOutsideTheSuiteFolderNeedPermission) {
  EXPECT_THAT(
      ErrorOf(
          R"({"tests": [{"id": "a", "cmd": ["x"], "inputs": ["/etc/hostname"]}]})"),
      HasSubstr("tests[0].inputs[0]: \"/etc/hostname\" is outside the suite "
                "folder; move it in, or pass --allow-outside-paths"));
  EXPECT_THAT(
      ErrorOf(
          R"({"tests": [{"id": "a", "cmd": ["x"], "inputs": ["a/../../x"]}]})"),
      HasSubstr("is outside the suite folder"));
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "cwd": ".."}]})"),
              HasSubstr("tests[0].cwd: \"..\" is outside the suite folder"));
  // Inside after normalisation is fine; so is outside when allowed.
  dir_.Write("data/in.txt", "x");
  EXPECT_TRUE(Load(R"({"tests": [{"id": "a", "cmd": ["x"],
                                   "inputs": ["data/../data/in.txt"]}]})")
                  .ok());
  dir_.Write("suite.json", R"({"tests": [{"id": "a", "cmd": ["x"],
                                          "inputs": ["/etc/hostname"]}]})");
  SuiteLoadOptions options;
  options.allow_outside_paths = true;
  auto allowed = LoadSuiteFile(dir_.Join("suite.json"), digester_, options);
  EXPECT_TRUE(allowed.ok()) << allowed.status();
}

TEST_F(SuiteLoaderTest, SymbolicLinksOutOfTheSuiteFolderAreRefused) {
  dir_.Write("outside/secret.txt", "not yours");
  dir_.Write("suite/data/ok.txt", "fine");
  const std::string suite_dir = dir_.Join("suite");
  std::filesystem::create_directory_symlink(dir_.Join("outside"),
                                            suite_dir + "/lnk");
  std::filesystem::create_symlink(dir_.Join("outside/secret.txt"),
                                  suite_dir + "/data/alias.txt");
  auto error_of = [&](const std::string& json) {
    dir_.Write("suite/suite.json", json);
    auto loaded = LoadSuiteFile(suite_dir + "/suite.json", digester_);
    EXPECT_FALSE(loaded.ok()) << json;
    return std::string(loaded.status().message());
  };
  EXPECT_THAT(
      error_of(R"({"tests": [{"id": "a", "cmd": ["x"],
                              "inputs": ["lnk/secret.txt"]}]})"),
      HasSubstr("tests[0].inputs[0]: \"lnk/secret.txt\" leads outside the "
                "suite folder through a symbolic link"));
  // A folder input must not pick up a linked file from elsewhere either.
  EXPECT_THAT(error_of(R"({"tests": [{"id": "a", "cmd": ["x"],
                                       "inputs": ["data"]}]})"),
              HasSubstr("\"data/alias.txt\" leads outside"));
  EXPECT_THAT(
      error_of(R"({"tests": [{"id": "a", "cmd": ["x"], "cwd": "lnk"}]})"),
      HasSubstr("tests[0].cwd: \"lnk\" leads outside"));
}

TEST_F(SuiteLoaderTest, AFieldGivenTwiceIsRefused) {
  EXPECT_THAT(ErrorOf(R"({"tests": [{"id": "a", "cmd": ["x"], "timeout": "1s",
                             "timeout": "1h"}]})"),
              HasSubstr("the field \"timeout\" appears twice in one object"));
  EXPECT_THAT(ErrorOf(R"({"name": "a", "name": "b", "tests": []})"),
              HasSubstr("\"name\" appears twice"));
  // The same name in different objects is fine.
  EXPECT_TRUE(Load(R"({"tests": [{"id": "a", "cmd": ["x"]},
                                 {"id": "b", "cmd": ["x"]}]})")
                  .ok());
}

TEST_F(SuiteLoaderTest, MissingSuiteFileSaysSo) {
  auto loaded = LoadSuiteFile(dir_.Join("absent.json"), digester_);
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("absent.json: cannot read the suite file"));
}

}  // namespace
}  // namespace testfleet
