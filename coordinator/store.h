#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/disk_space.h"
#include "testfleet/v1/testfleet.pb.h"

namespace rocksdb {
class DB;
class Env;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace testfleet {

/// What a test is expected to need, from its history.
struct TestExpectation {
  double wall_ms = 0;
  int64_t peak_rss_kb = 0;
  /// One of its last kRecentRuns runs failed (a flaky test's failed attempt
  /// counts): it is likely to fail again, so it runs first.
  bool failed_recently = false;
  /// The action key (hex) of its last passing run; empty: it never passed.
  std::string last_passing_key;
};

/// The coordinator's durable state in RocksDB (its --data-dir): per-test
/// history (longest-first ordering, regressions, trends), pinned baselines,
/// running suites and finished suites' reports.
class CoordinatorStore {
 public:
  /// How many executed runs of a test the history keeps; older ones fold
  /// into an aggregate. Enough for the trend (50 runs) and the regression
  /// windows (5 + 20), at about 10 KiB a test.
  static constexpr int kHistoryRuns = 100;
  /// How many recent runs the scheduling expectation is the median of.
  static constexpr int kExpectationRuns = 20;
  /// How many recent runs a failure among makes a test run first.
  static constexpr int kRecentRuns = 10;

  /// Writes of new data are refused while the disk has less than
  /// `min_free_disk` free (see DiskSpaceGuard); deletes go on.
  /// Below this reserve (--min-free-disk) RocksDB itself can meet a full
  /// disk (its 64 MiB write buffer must fit), which stops it until a restart.
  static constexpr int64_t kMinSafeFreeBytes = 64LL << 20;

  /// `env` (not owned; null: the real one) lets tests watch the files.
  static absl::StatusOr<std::unique_ptr<CoordinatorStore>> Open(
      const std::string& dir, int64_t min_free_disk = 128LL << 20,
      rocksdb::Env* env = nullptr);
  ~CoordinatorStore();

  /// Medians of the test's recent runs, if it ever ran.
  std::optional<TestExpectation> Expected(const std::string& suite_name,
                                          const std::string& test_id) const;
  /// The test's stored history, if it ever ran.
  std::optional<v1::TestHistory> History(const std::string& suite_name,
                                         const std::string& test_id) const;
  /// Histories with runs added by StageRun, not yet written: WriteRuns
  /// stores a whole report's worth in one RocksDB write.
  struct PendingRuns {
    absl::node_hash_map<std::string, v1::TestHistory> histories;  // by key
  };
  /// The action key a run ran under: its hex, and the whole key (its parts,
  /// for `coordctl explain`), made only when it is stored. `make` refers to
  /// a callable that must outlive the RunKey: name it first.
  struct RunKey {
    absl::string_view hex;
    absl::FunctionRef<v1::ActionKey()> make;
  };
  /// Adds an executed run to the test's history in `pending` (read from the
  /// store the first time) and returns that history; `key`, for a passing
  /// run, becomes the test's last key when it differs (the one before it is
  /// kept for `coordctl explain`).
  const v1::TestHistory& StageRun(PendingRuns& pending,
                                  const std::string& suite_name,
                                  const std::string& suite_id,
                                  const v1::TestResult& result,
                                  const RunKey* key = nullptr);
  /// Writes and clears `pending`.
  absl::Status WriteRuns(PendingRuns& pending);
  /// Histories as they are written, by key: a history is serialized where
  /// it was staged, so the write copies none of its fields.
  using SerializedHistories = absl::flat_hash_map<std::string, std::string>;
  /// StageRun and WriteRuns for one run.
  absl::StatusOr<v1::TestHistory> RecordRun(
      const std::string& suite_name, const std::string& suite_id,
      const v1::TestResult& result, const v1::ActionKey* action_key = nullptr);
  /// Every test's history under a suite name, by test id.
  absl::StatusOr<std::vector<std::pair<std::string, v1::TestHistory>>>
  SuiteHistory(const std::string& suite_name) const;

  /// The key of a test's history (what StageRun stages under).
  static std::string HistoryKey(const std::string& suite_name,
                                const std::string& test_id);

  /// The token that owns `suite_name`: the first to submit under it. Claims
  /// an unowned name for `owner` and returns who owns it now.
  absl::StatusOr<std::string> ClaimSuiteName(const std::string& suite_name,
                                             const std::string& owner);
  std::optional<std::string> SuiteNameOwner(
      const std::string& suite_name) const;

  /// The pinned baseline of a suite name; nullopt: rolling.
  std::optional<v1::Baseline> GetBaseline(const std::string& suite_name) const;
  absl::Status SetBaseline(const v1::Baseline& baseline);
  absl::Status ClearBaseline(const std::string& suite_name);

  absl::Status SaveReport(const v1::SuiteReport& report);

  // Running suites, so a restarted coordinator resumes them.
  struct FinishedTest {
    std::string suite_id;
    int index = 0;
    v1::TestResult result;
  };
  struct RecoveredSuite {
    v1::RunningSuite suite;
    std::vector<std::pair<int, v1::TestResult>> finished;  // by test index
  };
  absl::Status SaveRunningSuite(const v1::RunningSuite& suite);
  /// One write for all: a report is acknowledged only once this returns.
  absl::Status SaveFinished(const std::vector<FinishedTest>& finished);
  /// Histories and SaveFinished in one synced write (clears `histories`).
  absl::Status SaveResults(SerializedHistories& histories,
                           const std::vector<FinishedTest>& finished);
  /// Drops a suite's running state (its report is saved by then).
  absl::Status EndRunningSuite(const std::string& suite_id);
  absl::StatusOr<std::vector<RecoveredSuite>> LoadRunningSuites() const;
  absl::StatusOr<v1::SuiteReport> LoadReport(const std::string& suite_id) const;

 private:
  CoordinatorStore() = default;
  // `adds_data`: checked against the disk reserve (deletes are not). Every
  // write is synced: an acknowledgement rests on it, and a crashed machine
  // (not only a killed process) must still hold it.
  absl::Status Write(rocksdb::WriteBatch& batch, bool adds_data = true);
  // After a write failed on a full disk RocksDB takes no more writes (and
  // Debian's build aborts on a write to the file that failed), so none is
  // tried again: this says what to do.
  absl::Status FullDiskStop() const;
  std::atomic<bool> stopped_by_full_disk_{false};
  std::string dir_;
  std::unique_ptr<DiskSpaceGuard> disk_;
  std::unique_ptr<rocksdb::DB> db_;
  absl::Mutex claim_mu_;  // one claim of a name at a time
  std::vector<rocksdb::ColumnFamilyHandle*>
      handles_;  // [history, reports, running]
};

}  // namespace testfleet
