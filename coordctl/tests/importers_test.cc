#include "coordctl/importers.h"

#include <sys/stat.h>

#include "common/tests/test_dir.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

TEST(CtestImporterTest, KeepsCtestsLimitsNotTestfleetsDefaults) {
  TestDir build;
  build.Write("CTestTestfile.cmake",
              "add_test(quick \"/bin/true\")\n"
              "add_test(bounded \"/bin/true\" \"x\")\n"
              "set_tests_properties(bounded PROPERTIES TIMEOUT 30)\n");
  absl::StatusOr<nlohmann::json> suite =
      SuiteFromCtest(build.path(), build.path());
  ASSERT_TRUE(suite.ok()) << suite.status();
  EXPECT_EQ((*suite)["defaults"], (nlohmann::json{{"memory_limit", "0"}}));

  // include(CTest) writes the default timeout here; a test's TIMEOUT wins.
  build.Write("DartConfiguration.tcl",
              "# TimeOut is the amount of time in seconds\nTimeOut: 1500\n");
  suite = SuiteFromCtest(build.path(), build.path());
  ASSERT_TRUE(suite.ok()) << suite.status();
  EXPECT_EQ((*suite)["defaults"]["timeout"], "1500000ms");
  EXPECT_EQ((*suite)["defaults"]["memory_limit"], "0");
  ASSERT_EQ((*suite)["tests"].size(), 2u);
  EXPECT_FALSE((*suite)["tests"][0].contains("timeout"));
  EXPECT_EQ((*suite)["tests"][1]["timeout"], "30000ms");
}

TEST(GtestImporterTest, ABinaryFillingStderrFirstDoesNotHangTheImport) {
  // 200 KiB on stderr before the listing: a reader that drains stdout first
  // would wait forever on a full stderr pipe.
  TestDir dir;
  const std::string binary =
      dir.Write("noisy_test",
                "#!/bin/sh\n"
                "head -c 204800 /dev/zero | tr '\\0' x >&2\n"
                "printf 'Suite.\\n  Case\\n'\n");
  ASSERT_EQ(chmod(binary.c_str(), 0755), 0);
  absl::StatusOr<nlohmann::json> suite = SuiteFromGtest(binary, dir.path());
  ASSERT_TRUE(suite.ok()) << suite.status();
  ASSERT_EQ((*suite)["tests"].size(), 1u);
  EXPECT_EQ((*suite)["tests"][0]["id"], "Suite.Case");
}

}  // namespace
}  // namespace testfleet
