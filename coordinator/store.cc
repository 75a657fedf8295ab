#include "coordinator/store.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/db_options.h"
#include "common/status_macros.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

std::string NameOwnerKey(const std::string& suite_name) {
  return "o/" + suite_name;
}

std::string BaselineKey(const std::string& suite_name) {
  return "b/" + suite_name;
}

std::string RunningSuiteKey(const std::string& suite_id) {
  return "s/" + suite_id;
}

// Results sort by test index under their suite: "r/<id>/00000042".
std::string FinishedPrefix(const std::string& suite_id) {
  return "r/" + suite_id + "/";
}
std::string FinishedKey(const std::string& suite_id, int index) {
  char digits[16];
  snprintf(digits, sizeof(digits), "%08d", index);
  return FinishedPrefix(suite_id) + digits;
}

std::string ReportKey(const std::string& suite_id) {
  return absl::StrCat("r/", suite_id);
}

absl::Status StoreError(const rocksdb::Status& s, const std::string& dir) {
  std::string message = s.ToString();
  if (IsLockHeld(s)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir,
                     " is in use by another coordinator; stop it or use "
                     "another --data-dir"));
  }
  if (IsDiskFull(s)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("data dir ", dir, " is out of disk space (", message,
                     "); free space there"));
  }
  return absl::InternalError(absl::StrCat("data dir ", dir, ": ", message));
}

}  // namespace

std::string CoordinatorStore::HistoryKey(const std::string& suite_name,
                                         const std::string& test_id) {
  // NUL separates the parts: neither a suite name nor a test id contains one.
  return absl::StrCat("h/", suite_name, std::string(1, '\0'), test_id);
}

absl::StatusOr<std::string> CoordinatorStore::ClaimSuiteName(
    const std::string& suite_name, const std::string& owner) {
  absl::MutexLock lock(&claim_mu_);
  if (std::optional<std::string> holder = SuiteNameOwner(suite_name))
    return *holder;
  rocksdb::WriteBatch batch;
  batch.Put(NameOwnerKey(suite_name), owner);
  RETURN_IF_ERROR(Write(batch));
  return owner;
}

std::optional<std::string> CoordinatorStore::SuiteNameOwner(
    const std::string& suite_name) const {
  std::string owner;
  if (!db_->Get(rocksdb::ReadOptions(), NameOwnerKey(suite_name), &owner)
           .ok()) {
    return std::nullopt;
  }
  return owner;
}

absl::StatusOr<std::unique_ptr<CoordinatorStore>> CoordinatorStore::Open(
    const std::string& dir, int64_t min_free_disk, rocksdb::Env* env) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data dir ", dir, ": ", ec.message(),
                     "; choose a writable --data-dir"));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.info_log = RocksDbLogger();
  options.allow_concurrent_memtable_write = false;  // a vector memtable below
  if (env != nullptr) options.env = env;
  // History: small values read once per test at every submit; bloom filters
  // and a block cache keep that in memory.
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = rocksdb::NewLRUCache(64 << 20);
  rocksdb::ColumnFamilyOptions history(options);
  history.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Each result reads its test's history, which is rarely in the memtable
  // (the memtable holds the histories written lately): its own bloom filter
  // answers "not here" without a walk of the skiplist.
  history.memtable_whole_key_filtering = true;
  history.memtable_prefix_bloom_size_ratio = 0.02;
  history.write_buffer_size = 8 << 20;
  // Reports are megabytes each: a column family of their own, so a history
  // block never shares a block with one.
  rocksdb::ColumnFamilyOptions reports(options);
  // Running suites' finished results: a write per result, read back only
  // when a restarted coordinator resumes. A vector memtable appends each
  // (sorted once, at flush); with skiplists, memtable inserts were 13% of
  // the coordinator's CPU at 1,000 simulated workers, 8% after this
  // (BENCHMARKS.md, issue 19).
  rocksdb::ColumnFamilyOptions running(options);
  running.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, history},
      {"reports", reports},
      {"running", running}};
  auto store = std::unique_ptr<CoordinatorStore>(new CoordinatorStore());
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(options, dir, families, &store->handles_, &db);
  if (!s.ok()) return StoreError(s, dir);
  store->dir_ = dir;
  store->disk_ = std::make_unique<DiskSpaceGuard>(dir, min_free_disk);
  store->db_.reset(db);
  return store;
}

absl::Status CoordinatorStore::Write(rocksdb::WriteBatch& batch,
                                     bool adds_data) {
  if (adds_data) {
    if (absl::Status room = disk_->Check(); !room.ok()) return room;
  }
  if (stopped_by_full_disk_.load()) return FullDiskStop();
  rocksdb::WriteOptions synced;
  synced.sync = true;
  rocksdb::Status s = db_->Write(synced, &batch);
  if (!s.ok()) {
    // RocksDB stops every write after a full disk until told to resume.
    if (IsDiskFull(s)) {
      stopped_by_full_disk_ = true;
      absl::Status stop = FullDiskStop();
      spdlog::error("{}", std::string(stop.message()));
      return stop;
    }
    return StoreError(s, dir_);
  }
  return absl::OkStatus();
}

absl::Status CoordinatorStore::FullDiskStop() const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "data dir ", dir_,
      ": RocksDB stopped writing when the disk filled (only --min-free-disk "
      "stops short of that); free at least ",
      kMinSafeFreeBytes >> 20,
      " MiB there and restart the coordinator: unfinished suites resume and "
      "nothing acknowledged is lost"));
}

CoordinatorStore::~CoordinatorStore() {
  if (!db_) return;
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

std::optional<v1::TestHistory> CoordinatorStore::History(
    const std::string& suite_name, const std::string& test_id) const {
  std::string value;
  v1::TestHistory history;
  if (!db_->Get(rocksdb::ReadOptions(), HistoryKey(suite_name, test_id), &value)
           .ok() ||
      !history.ParseFromString(value)) {
    return std::nullopt;
  }
  return history;
}

std::optional<TestExpectation> CoordinatorStore::Expected(
    const std::string& suite_name, const std::string& test_id) const {
  std::optional<v1::TestHistory> found = History(suite_name, test_id);
  if (!found || found->runs_size() == 0) return std::nullopt;
  // Every status counts: a test that times out takes its timeout.
  std::vector<double> wall_ms;
  std::vector<int64_t> peak_rss_kb;
  TestExpectation expected;
  const int runs = found->runs_size();
  for (int i = std::max(0, runs - kExpectationRuns); i < runs; ++i) {
    const v1::RunRecord& run = found->runs(i);
    wall_ms.push_back(run.wall_ms());
    peak_rss_kb.push_back(run.peak_rss_kb());
    if (i >= runs - kRecentRuns && run.status() != v1::TEST_STATUS_PASSED)
      expected.failed_recently = true;
  }
  expected.last_passing_key = found->last_key().hex();
  auto median = [](auto& values) {
    std::nth_element(values.begin(), values.begin() + values.size() / 2,
                     values.end());
    return values[values.size() / 2];
  };
  expected.wall_ms = median(wall_ms);
  expected.peak_rss_kb = median(peak_rss_kb);
  return expected;
}

const v1::TestHistory& CoordinatorStore::StageRun(PendingRuns& pending,
                                                  const std::string& suite_name,
                                                  const std::string& suite_id,
                                                  const v1::TestResult& result,
                                                  const RunKey* key) {
  auto [slot, added] =
      pending.histories.try_emplace(HistoryKey(suite_name, result.test_id()));
  v1::TestHistory& history = slot->second;
  if (added) {
    history = History(suite_name, result.test_id()).value_or(v1::TestHistory());
  }
  if (key != nullptr && result.status() == v1::TEST_STATUS_PASSED &&
      key->hex != history.last_key().hex()) {
    if (history.has_last_key())
      *history.mutable_previous_key() = history.last_key();
    *history.mutable_last_key() = key->make();
  }
  v1::RunRecord& run = *history.add_runs();
  run.set_finished_at_unix_ms(result.finished_at_unix_ms());
  run.set_wall_ms(result.wall_ms());
  run.set_cpu_ms(result.user_cpu_ms() + result.sys_cpu_ms());
  run.set_peak_rss_kb(result.peak_rss_kb());
  run.set_memory_slope_kb_per_s(result.memory_slope_kb_per_s());
  run.set_memory_growing(result.memory_growing());
  run.set_status(result.status());
  run.set_worker(result.worker());
  run.set_suite_id(suite_id);
  const absl::string_view hex =
      key != nullptr ? key->hex : absl::string_view(result.cache_key());
  // SimpleHexAtoi leaves a partial parse behind on failure: a key that is
  // not hex has no prefix, not part of one.
  uint64_t prefix = 0;
  if (hex.size() < 16 || !absl::SimpleHexAtoi(hex.substr(0, 16), &prefix))
    prefix = 0;
  run.set_key_prefix(prefix);
  // Runs beyond the bound fold into one aggregate.
  const int excess = history.runs_size() - kHistoryRuns;
  if (excess > 0) {
    v1::RunAggregate& older = *history.mutable_older();
    for (int i = 0; i < excess; ++i) {
      const v1::RunRecord& dropped = history.runs(i);
      if (older.runs() == 0)
        older.set_first_at_unix_ms(dropped.finished_at_unix_ms());
      older.set_runs(older.runs() + 1);
      older.set_passed(older.passed() +
                       (dropped.status() == v1::TEST_STATUS_PASSED));
      older.set_wall_ms_sum(older.wall_ms_sum() + dropped.wall_ms());
      older.set_peak_rss_kb_max(
          std::max(older.peak_rss_kb_max(), dropped.peak_rss_kb()));
    }
    history.mutable_runs()->DeleteSubrange(0, excess);
  }
  history.set_updated_at_unix_ms(result.finished_at_unix_ms());
  return history;
}

absl::Status CoordinatorStore::WriteRuns(PendingRuns& pending) {
  SerializedHistories histories;
  for (const auto& [key, history] : pending.histories)
    histories.emplace(key, history.SerializeAsString());
  pending.histories.clear();
  return SaveResults(histories, {});
}

absl::Status CoordinatorStore::SaveResults(
    SerializedHistories& histories, const std::vector<FinishedTest>& finished) {
  if (histories.empty() && finished.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const auto& [key, history] : histories) batch.Put(key, history);
  histories.clear();
  for (const FinishedTest& test : finished) {
    batch.Put(handles_[2], FinishedKey(test.suite_id, test.index),
              test.result.SerializeAsString());
  }
  return Write(batch);
}

absl::StatusOr<v1::TestHistory> CoordinatorStore::RecordRun(
    const std::string& suite_name, const std::string& suite_id,
    const v1::TestResult& result, const v1::ActionKey* action_key) {
  PendingRuns pending;
  auto copy_key = [&] { return *action_key; };
  const RunKey key{action_key != nullptr ? absl::string_view(action_key->hex())
                                         : absl::string_view(),
                   copy_key};
  v1::TestHistory history = StageRun(pending, suite_name, suite_id, result,
                                     action_key != nullptr ? &key : nullptr);
  RETURN_IF_ERROR(WriteRuns(pending));
  return history;
}

absl::StatusOr<std::vector<std::pair<std::string, v1::TestHistory>>>
CoordinatorStore::SuiteHistory(const std::string& suite_name) const {
  std::vector<std::pair<std::string, v1::TestHistory>> tests;
  const std::string prefix = HistoryKey(suite_name, "");
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[0]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    v1::TestHistory history;
    if (!history.ParseFromArray(it->value().data(),
                                static_cast<int>(it->value().size()))) {
      continue;
    }
    tests.emplace_back(it->key().ToString().substr(prefix.size()),
                       std::move(history));
  }
  if (!it->status().ok()) return StoreError(it->status(), dir_);
  return tests;
}

std::optional<v1::Baseline> CoordinatorStore::GetBaseline(
    const std::string& suite_name) const {
  std::string value;
  v1::Baseline baseline;
  if (!db_->Get(rocksdb::ReadOptions(), BaselineKey(suite_name), &value).ok() ||
      !baseline.ParseFromString(value)) {
    return std::nullopt;
  }
  return baseline;
}

absl::Status CoordinatorStore::SetBaseline(const v1::Baseline& baseline) {
  rocksdb::WriteBatch batch;
  batch.Put(BaselineKey(baseline.suite_name()), baseline.SerializeAsString());
  return Write(batch);
}

absl::Status CoordinatorStore::ClearBaseline(const std::string& suite_name) {
  rocksdb::WriteBatch batch;
  batch.Delete(BaselineKey(suite_name));
  return Write(batch, /*adds_data=*/false);
}

absl::Status CoordinatorStore::SaveReport(const v1::SuiteReport& report) {
  rocksdb::WriteBatch batch;
  batch.Put(handles_[1], ReportKey(report.suite_id()),
            report.SerializeAsString());
  return Write(batch);
}

absl::Status CoordinatorStore::SaveRunningSuite(const v1::RunningSuite& suite) {
  rocksdb::WriteBatch batch;
  batch.Put(handles_[2], RunningSuiteKey(suite.suite_id()),
            suite.SerializeAsString());
  RETURN_IF_ERROR(disk_->CheckNow());  // a new suite: no stale reading
  return Write(batch);
}

absl::Status CoordinatorStore::SaveFinished(
    const std::vector<FinishedTest>& finished) {
  SerializedHistories none;
  return SaveResults(none, finished);
}

absl::Status CoordinatorStore::EndRunningSuite(const std::string& suite_id) {
  rocksdb::WriteBatch batch;
  batch.Delete(handles_[2], RunningSuiteKey(suite_id));
  const std::string prefix = FinishedPrefix(suite_id);
  // '/' + 1 is '0': the range holds exactly the keys under the prefix.
  batch.DeleteRange(handles_[2], prefix,
                    prefix.substr(0, prefix.size() - 1) + "0");
  return Write(batch, /*adds_data=*/false);
}

absl::StatusOr<std::vector<CoordinatorStore::RecoveredSuite>>
CoordinatorStore::LoadRunningSuites() const {
  std::vector<RecoveredSuite> recovered;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[2]));
  for (it->Seek("s/"); it->Valid() && it->key().starts_with("s/"); it->Next()) {
    RecoveredSuite suite;
    if (!suite.suite.ParseFromArray(it->value().data(),
                                    static_cast<int>(it->value().size()))) {
      return absl::DataLossError(absl::StrCat(
          "running suite ", it->key().ToString(), " in ", dir_, " is corrupt"));
    }
    recovered.push_back(std::move(suite));
  }
  if (!it->status().ok()) return StoreError(it->status(), dir_);
  for (RecoveredSuite& suite : recovered) {
    const std::string prefix = FinishedPrefix(suite.suite.suite_id());
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
         it->Next()) {
      v1::TestResult result;
      if (!result.ParseFromArray(it->value().data(),
                                 static_cast<int>(it->value().size()))) {
        continue;  // that test runs again
      }
      const int index =
          std::atoi(it->key().ToString().substr(prefix.size()).c_str());
      suite.finished.emplace_back(index, std::move(result));
    }
    if (!it->status().ok()) return StoreError(it->status(), dir_);
  }
  return recovered;
}

absl::StatusOr<v1::SuiteReport> CoordinatorStore::LoadReport(
    const std::string& suite_id) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[1],
                               ReportKey(suite_id), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat("no suite with id ", suite_id));
  }
  if (!s.ok()) return StoreError(s, dir_);
  v1::SuiteReport report;
  if (!report.ParseFromString(value)) {
    return absl::DataLossError(
        absl::StrCat("stored report of ", suite_id, " is corrupt"));
  }
  return report;
}

}  // namespace testfleet
