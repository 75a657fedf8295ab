#pragma once

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "testfleet/v1/testfleet.pb.h"
#include "worker/process_launcher.h"

namespace testfleet {

/// How to run one test process.
struct ExecSpec {
  std::vector<std::string> argv;  // argv[0] without '/' is looked up in PATH
  std::string cwd;                // absolute
  std::map<std::string, std::string> env;  // added to the worker's environment
  absl::Duration timeout = absl::Minutes(5);  // zero: none
  int64_t memory_limit_bytes = 0;             // zero: none
  absl::Duration sample_interval =
      absl::Milliseconds(100);                   // zero: no sampling
  absl::Duration kill_grace = absl::Seconds(2);  // SIGTERM to SIGKILL
  size_t tail_bytes = 64 * 1024;                 // kept of stdout and of stderr
  size_t max_curve_samples = 600;  // the curve is halved past this
  const std::atomic<bool>* cancelled = nullptr;  // set to stop the test
  /// Non-null: the test's own view of the filesystem (a sandbox).
  const Isolation* isolation = nullptr;
};

/// Runs a test as a real process and measures it. The test is forked by the
/// slot's `launcher` (launcher.h) into a session of its own, stdin from
/// /dev/null, stdout/stderr kept as bounded tails (the rest counted and
/// dropped); its process group is stopped on timeout, memory limit or cancel
/// (SIGTERM, grace, SIGKILL) and nothing it started outlives it. Peak RSS is
/// the larger of the test's own ru_maxrss and the sampled sum of RSS over its
/// session; CPU time is the test's plus its reaped descendants'.
///
/// The result has status, exit_code or signal, wall and CPU times, peak RSS,
/// the memory curve and its slope, tails and timestamps; a test that cannot
/// start is TEST_STATUS_ERROR with the reason in error_message. An error
/// status means the launcher itself failed: start a new one.
absl::StatusOr<v1::TestResult> RunTestProcess(const ExecSpec& spec,
                                              ProcessLauncher& launcher);

/// Least-squares slope of a memory curve, in KiB per second; from ten samples
/// on, the first fifth (start-up allocation) is left out.
double MemorySlopeKbPerSecond(const std::vector<v1::MemorySample>& curve);

/// What a leak looks like: over at least ten samples, the fitted line rises
/// by 4 MiB or more and by at least a quarter of the peak.
bool MemoryGrowing(const std::vector<v1::MemorySample>& curve,
                   double slope_kb_per_s, int64_t peak_kb);

}  // namespace testfleet
