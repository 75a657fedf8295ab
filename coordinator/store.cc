#include "coordinator/store.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"

namespace testfleet {
namespace {

std::string HistoryKey(const std::string& suite_name,
                       const std::string& test_id) {
  // NUL separates the parts: neither a suite name nor a test id contains one.
  return absl::StrCat("h/", suite_name, std::string(1, '\0'), test_id);
}

std::string ReportKey(const std::string& suite_id) {
  return absl::StrCat("r/", suite_id);
}

absl::Status StoreError(const rocksdb::Status& s, const std::string& dir) {
  std::string message = s.ToString();
  if (absl::StrContains(message, "lock")) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir,
                     " is in use by another coordinator; stop it or use "
                     "another --data-dir"));
  }
  if (absl::StrContains(message, "No space")) {
    return absl::ResourceExhaustedError(
        absl::StrCat("data dir ", dir, " is out of disk space: ", message));
  }
  return absl::InternalError(absl::StrCat("data dir ", dir, ": ", message));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorStore>> CoordinatorStore::Open(
    const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create data dir ", dir, ": ", ec.message(),
                     "; choose a writable --data-dir"));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 3;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &db);
  if (!s.ok()) return StoreError(s, dir);
  auto store = std::unique_ptr<CoordinatorStore>(new CoordinatorStore());
  store->dir_ = dir;
  store->db_.reset(db);
  return store;
}

CoordinatorStore::~CoordinatorStore() {
  if (db_) db_->Close();
}

std::optional<TestExpectation> CoordinatorStore::Expected(
    const std::string& suite_name, const std::string& test_id) const {
  std::string value;
  if (!db_->Get(rocksdb::ReadOptions(), HistoryKey(suite_name, test_id), &value)
           .ok()) {
    return std::nullopt;
  }
  v1::TestHistory history;
  if (!history.ParseFromString(value) || history.wall_ms_size() == 0) {
    return std::nullopt;
  }
  auto median = [](auto values) {
    std::nth_element(values.begin(), values.begin() + values.size() / 2,
                     values.end());
    return values[values.size() / 2];
  };
  TestExpectation expected;
  expected.wall_ms = median(
      std::vector<double>(history.wall_ms().begin(), history.wall_ms().end()));
  if (history.peak_rss_kb_size() > 0) {
    expected.peak_rss_kb = median(std::vector<int64_t>(
        history.peak_rss_kb().begin(), history.peak_rss_kb().end()));
  }
  return expected;
}

absl::Status CoordinatorStore::RecordRun(const std::string& suite_name,
                                         const v1::TestResult& result) {
  const std::string key = HistoryKey(suite_name, result.test_id());
  std::string value;
  v1::TestHistory history;
  if (db_->Get(rocksdb::ReadOptions(), key, &value).ok()) {
    history.ParseFromString(value);
  }
  history.add_wall_ms(result.wall_ms());
  history.add_peak_rss_kb(result.peak_rss_kb());
  auto trim = [](auto* field) {
    if (field->size() > kHistoryRuns) {
      field->erase(field->begin(),
                   field->begin() + (field->size() - kHistoryRuns));
    }
  };
  trim(history.mutable_wall_ms());
  trim(history.mutable_peak_rss_kb());
  history.set_updated_at_unix_ms(result.finished_at_unix_ms());
  rocksdb::Status s =
      db_->Put(rocksdb::WriteOptions(), key, history.SerializeAsString());
  if (!s.ok()) return StoreError(s, dir_);
  return absl::OkStatus();
}

absl::Status CoordinatorStore::SaveReport(const v1::SuiteReport& report) {
  rocksdb::Status s =
      db_->Put(rocksdb::WriteOptions(), ReportKey(report.suite_id()),
               report.SerializeAsString());
  if (!s.ok()) return StoreError(s, dir_);
  return absl::OkStatus();
}

absl::StatusOr<v1::SuiteReport> CoordinatorStore::LoadReport(
    const std::string& suite_id) const {
  std::string value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), ReportKey(suite_id), &value);
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
