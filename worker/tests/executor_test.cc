#include "worker/executor.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

std::string BinDir() {
  std::string launcher = DefaultLauncherPath();
  return launcher.substr(0, launcher.rfind('/'));
}

class ExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = ProcessLauncher::Start(DefaultLauncherPath());
    ASSERT_TRUE(started.ok()) << started.status();
    launcher_ = std::move(*started);
  }
  v1::TestResult Run(const ExecSpec& spec) {
    auto result = RunTestProcess(spec, *launcher_);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : v1::TestResult();
  }
  std::unique_ptr<ProcessLauncher> launcher_;
};

ExecSpec Probe(std::vector<std::string> args) {
  ExecSpec spec;
  spec.argv = {BinDir() + "/tf_probe"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.cwd = "/tmp";
  spec.timeout = absl::Seconds(60);
  return spec;
}

int64_t OwnRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return 0;
}

TEST_F(ExecutorTest, PassFailExitCodeAndSignal) {
  EXPECT_EQ(Run(Probe({})).status(), v1::TEST_STATUS_PASSED);
  v1::TestResult failed = Run(Probe({"--exit=3", "--stderr=boom"}));
  EXPECT_EQ(failed.status(), v1::TEST_STATUS_FAILED);
  EXPECT_EQ(failed.exit_code(), 3);
  EXPECT_EQ(failed.stderr_tail(), "boom\n");
  ExecSpec killed;
  killed.argv = {"sh", "-c", "kill -9 $$"};
  killed.cwd = "/";
  v1::TestResult signalled = Run(killed);
  EXPECT_EQ(signalled.status(), v1::TEST_STATUS_FAILED);
  EXPECT_EQ(signalled.signal(), SIGKILL);
}

TEST_F(ExecutorTest, DeclaredEnvAndCwdReachTheTest) {
  ExecSpec spec;
  spec.argv = {"sh", "-c", "echo \"$GREETING $(pwd)\""};
  spec.cwd = "/usr";
  spec.env = {{"GREETING", "hello"}};
  v1::TestResult result = Run(spec);
  EXPECT_EQ(result.stdout_tail(), "hello /usr\n");
}

TEST_F(ExecutorTest, TestsThatCannotStartAreErrorsWithTheReason) {
  ExecSpec missing;
  missing.argv = {"/nonexistent/binary"};
  missing.cwd = "/";
  v1::TestResult result = Run(missing);
  EXPECT_EQ(result.status(), v1::TEST_STATUS_ERROR);
  EXPECT_THAT(
      result.error_message(),
      HasSubstr("cannot start /nonexistent/binary: No such file or directory"));

  const std::string data_file = ::testing::TempDir() + "/not_executable.txt";
  std::ofstream(data_file) << "data";
  ExecSpec not_executable;
  not_executable.argv = {data_file};
  not_executable.cwd = "/";
  EXPECT_THAT(Run(not_executable).error_message(),
              HasSubstr("Permission denied"));

  ExecSpec bad_cwd = Probe({});
  bad_cwd.cwd = "/nonexistent/folder";
  v1::TestResult cwd_result = Run(bad_cwd);
  EXPECT_EQ(cwd_result.status(), v1::TEST_STATUS_ERROR);
  EXPECT_THAT(
      cwd_result.error_message(),
      HasSubstr(
          "working directory /nonexistent/folder: No such file or directory"));
}

TEST_F(ExecutorTest, TimeoutKillsTheTestAndEverythingItStarted) {
  ExecSpec spec = Probe({"--orphan", "--sleep-ms=60000"});
  spec.timeout = absl::Milliseconds(300);
  v1::TestResult result = Run(spec);
  EXPECT_EQ(result.status(), v1::TEST_STATUS_TIMED_OUT);
  int orphan = 0;
  ASSERT_EQ(std::sscanf(result.stdout_tail().c_str(), "orphan %d", &orphan), 1)
      << result.stdout_tail();
  EXPECT_EQ(kill(orphan, 0), -1) << "the test's background child survived";
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ExecutorTest, OrphansOfAPassingTestAreKilledToo) {
  v1::TestResult result = Run(Probe({"--orphan"}));
  EXPECT_EQ(result.status(), v1::TEST_STATUS_PASSED);
  int orphan = 0;
  ASSERT_EQ(std::sscanf(result.stdout_tail().c_str(), "orphan %d", &orphan), 1);
  EXPECT_EQ(kill(orphan, 0), -1);
}

TEST_F(ExecutorTest, PeakRssIsTheTestsOwnEvenWhenTheWorkerIsLarge) {
  // Grow this process past 1 GiB first: a test it forked directly would
  // report that as its own peak.
  const size_t big = (1100u << 20);
  char* ballast = static_cast<char*>(malloc(big));
  memset(ballast, 1, big);
  ASSERT_GT(OwnRssKb(), 1000 * 1024);
  v1::TestResult result = Run(Probe({"--alloc-mib=200"}));
  free(ballast);
  ASSERT_EQ(result.status(), v1::TEST_STATUS_PASSED);
  const double expected_kb = 200 * 1024;
  EXPECT_NEAR(static_cast<double>(result.peak_rss_kb()), expected_kb,
              0.05 * expected_kb);
}

TEST_F(ExecutorTest, ChildMemoryCountsInTheTreePeak) {
  v1::TestResult result =
      Run(Probe({"--child-alloc-mib=100", "--sleep-ms=600"}));
  ASSERT_EQ(result.status(), v1::TEST_STATUS_PASSED);
  EXPECT_GE(result.peak_rss_kb(), 100 * 1024);
  EXPECT_LT(result.peak_rss_kb(), 130 * 1024);
}

TEST_F(ExecutorTest, MemoryLimitKillsTheTest) {
  ExecSpec spec = Probe({"--grow-mib=16", "--sleep-ms=20000"});
  spec.memory_limit_bytes = 64LL << 20;
  v1::TestResult result = Run(spec);
  EXPECT_EQ(result.status(), v1::TEST_STATUS_MEMORY_EXCEEDED);
  EXPECT_GT(result.peak_rss_kb(), 64 * 1024);
  EXPECT_THAT(result.error_message(),
              HasSubstr("exceeded its memory limit of 65536 KiB"));
  // Killed within a second of crossing 64 MiB: it grows 160 MiB/s, so its
  // peak stays well under what a second more would give.
  EXPECT_LT(result.peak_rss_kb(), 64 * 1024 + 160 * 1024);
}

TEST_F(ExecutorTest, CpuTimeIsMeasured) {
  v1::TestResult spinner = Run(Probe({"--spin-ms=1000"}));
  EXPECT_NEAR(spinner.user_cpu_ms() + spinner.sys_cpu_ms(), 1000, 100);
  v1::TestResult sleeper = Run(Probe({"--sleep-ms=500"}));
  EXPECT_LT(sleeper.user_cpu_ms() + sleeper.sys_cpu_ms(), 50);
}

TEST_F(ExecutorTest, HugeOutputKeepsABoundedTail) {
  const int64_t rss_before = OwnRssKb();
  v1::TestResult result = Run(Probe({"--write-mib=100"}));
  ASSERT_EQ(result.status(), v1::TEST_STATUS_PASSED);
  EXPECT_EQ(result.stdout_bytes(), 100LL << 20);
  EXPECT_EQ(result.stdout_tail().size(), 64u * 1024);
  EXPECT_EQ(result.stdout_tail().back(), '\n');
  EXPECT_LT(OwnRssKb() - rss_before, 20 * 1024);
}

TEST_F(ExecutorTest, GrowingMemoryHasAPositiveSlopeAndFlatMemoryNone) {
  v1::TestResult growing = Run(Probe({"--grow-mib=4", "--sleep-ms=1500"}));
  ASSERT_GE(growing.memory_curve_size(), 5);
  EXPECT_GT(growing.memory_slope_kb_per_s(), 20 * 1024);  // ~40 MiB/s
  EXPECT_TRUE(growing.memory_growing());
  v1::TestResult flat = Run(Probe({"--alloc-mib=50", "--sleep-ms=1500"}));
  ASSERT_GE(flat.memory_curve_size(), 5);
  EXPECT_LT(std::abs(flat.memory_slope_kb_per_s()), 2 * 1024);
  EXPECT_FALSE(flat.memory_growing());
}

TEST_F(ExecutorTest, SamplingCanBeTurnedOff) {
  ExecSpec spec = Probe({"--alloc-mib=20", "--sleep-ms=400"});
  spec.sample_interval = absl::ZeroDuration();
  v1::TestResult result = Run(spec);
  EXPECT_EQ(result.memory_curve_size(), 0);
  EXPECT_GE(result.peak_rss_kb(), 20 * 1024);  // from the test's own ru_maxrss
}

TEST_F(ExecutorTest, CancelStopsTheTest) {
  // Cancelled while it runs, not before it starts.
  std::atomic<bool> cancelled{false};
  ExecSpec spec = Probe({"--sleep-ms=60000"});
  spec.cancelled = &cancelled;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(300));
    cancelled = true;
  });
  const v1::TestResult result = Run(spec);
  canceller.join();
  EXPECT_EQ(result.status(), v1::TEST_STATUS_CANCELLED);
  EXPECT_GE(result.wall_ms(), 250);  // it had started and ran until then
  EXPECT_NE(result.signal(), 0);     // the process was stopped, not finished
}

TEST_F(ExecutorTest, OneLauncherRunsManyTestsInTurn) {
  for (int i = 0; i < 50; ++i) {
    v1::TestResult result = Run(Probe({"--exit=" + std::to_string(i % 3)}));
    EXPECT_EQ(result.exit_code(), i % 3);
  }
}

TEST(ProcessLauncherTest, MissingLauncherBinaryIsAClearError) {
  auto started = ProcessLauncher::Start("/nonexistent/testfleet-launch");
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(
      std::string(started.status().message()),
      HasSubstr(
          "cannot start the test launcher /nonexistent/testfleet-launch"));
}

TEST(ExecutorMathTest, MemorySlopeOfAKnownLine) {
  std::vector<v1::MemorySample> curve;
  for (int i = 0; i < 10; ++i) {
    v1::MemorySample sample;
    sample.set_offset_ms(i * 100);
    sample.set_rss_kb(1000 + i * 50);  // 50 KiB per 100 ms
    curve.push_back(sample);
  }
  EXPECT_NEAR(MemorySlopeKbPerSecond(curve), 500, 1e-6);
}

}  // namespace
}  // namespace testfleet
