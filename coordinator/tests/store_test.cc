#include "coordinator/store.h"

#include <map>
#include <memory>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "common/tests/test_dir.h"
#include "gtest/gtest.h"
#include "rocksdb/env.h"
#include "rocksdb/file_system.h"

namespace testfleet {
namespace {

// A file system that remembers, per file, how many bytes were appended and
// how many of those a sync made durable: what a crashed machine (not only a
// killed process) would keep, as RocksDB's fault-injection file system
// models it.
class SyncTrackingFs : public rocksdb::FileSystemWrapper {
 public:
  SyncTrackingFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "SyncTrackingFs"; }

  rocksdb::IOStatus NewWritableFile(
      const std::string& path, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* result,
      rocksdb::IODebugContext* debug) override {
    std::unique_ptr<rocksdb::FSWritableFile> inner;
    rocksdb::IOStatus s =
        target()->NewWritableFile(path, options, &inner, debug);
    if (s.ok()) result->reset(new File(std::move(inner), this, path));
    return s;
  }

  /// Bytes of write-ahead logs a machine crash would lose now.
  uint64_t UnsyncedLogBytes() {
    absl::MutexLock lock(&mu_);
    uint64_t lost = 0;
    for (const auto& [path, sizes] : files_) {
      if (absl::EndsWith(path, ".log")) lost += sizes.appended - sizes.synced;
    }
    return lost;
  }

 private:
  struct Sizes {
    uint64_t appended = 0, synced = 0;
  };
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile> inner, SyncTrackingFs* fs,
         std::string path)
        : FSWritableFileOwnerWrapper(std::move(inner)),
          fs_(fs),
          path_(std::move(path)) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* debug) override {
      fs_->Appended(path_, data.size());
      return FSWritableFileOwnerWrapper::Append(data, options, debug);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data,
                             const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info,
                             rocksdb::IODebugContext* debug) override {
      fs_->Appended(path_, data.size());
      return FSWritableFileOwnerWrapper::Append(data, options, info, debug);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* debug) override {
      rocksdb::IOStatus s = FSWritableFileOwnerWrapper::Sync(options, debug);
      if (s.ok()) fs_->Synced(path_);
      return s;
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options,
                            rocksdb::IODebugContext* debug) override {
      rocksdb::IOStatus s = FSWritableFileOwnerWrapper::Fsync(options, debug);
      if (s.ok()) fs_->Synced(path_);
      return s;
    }

   private:
    SyncTrackingFs* fs_;
    std::string path_;
  };
  void Appended(const std::string& path, uint64_t bytes) {
    absl::MutexLock lock(&mu_);
    files_[path].appended += bytes;
  }
  void Synced(const std::string& path) {
    absl::MutexLock lock(&mu_);
    files_[path].synced = files_[path].appended;
  }
  absl::Mutex mu_;
  std::map<std::string, Sizes> files_ ABSL_GUARDED_BY(mu_);
};

TEST(CoordinatorStoreTest, EveryAcknowledgedWriteSurvivesAMachineCrash) {
  TestDir dir;
  auto fs = std::make_shared<SyncTrackingFs>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  auto store = CoordinatorStore::Open(dir.Join("state"), 0, env.get());
  ASSERT_TRUE(store.ok()) << store.status();

  v1::RunningSuite running;
  running.set_suite_id("s1");
  running.mutable_spec()->set_name("suite");
  running.mutable_spec()->add_tests()->set_id("t");
  ASSERT_TRUE((*store)->SaveRunningSuite(running).ok());
  EXPECT_EQ(fs->UnsyncedLogBytes(), 0u) << "a submit's acknowledgement";

  v1::TestResult result;
  result.set_test_id("t");
  result.set_status(v1::TEST_STATUS_PASSED);
  result.set_finished_at_unix_ms(1700000000000);
  ASSERT_TRUE((*store)->SaveFinished({{"s1", 0, result}}).ok());
  EXPECT_EQ(fs->UnsyncedLogBytes(), 0u) << "a report's acknowledgement";

  CoordinatorStore::PendingRuns runs;
  (*store)->StageRun(runs, "suite", "s1", result);
  ASSERT_TRUE((*store)->WriteRuns(runs).ok());
  EXPECT_EQ(fs->UnsyncedLogBytes(), 0u) << "a history";

  v1::SuiteReport report;
  report.set_suite_id("s1");
  ASSERT_TRUE((*store)->SaveReport(report).ok());
  ASSERT_TRUE((*store)->EndRunningSuite("s1").ok());
  EXPECT_EQ(fs->UnsyncedLogBytes(), 0u) << "a suite's end";
  store->reset();
}

TEST(CoordinatorStoreTest, ARunKeysPrefixIsItsKeysFirst16HexDigitsOrZero) {
  TestDir dir;
  auto store = CoordinatorStore::Open(dir.Join("state"));
  ASSERT_TRUE(store.ok()) << store.status();
  const std::pair<const char*, uint64_t> cases[] = {
      {"00000000000000ff0123", 0xff},
      {"00000000000000fz0123", 0},  // not hex: none, not a partial parse
      {"00ff", 0},                  // too short
  };
  for (const auto& [key, prefix] : cases) {
    v1::TestResult result;
    result.set_test_id(key);
    result.set_status(v1::TEST_STATUS_PASSED);
    result.set_cache_key(key);
    auto history = (*store)->RecordRun("suite", "s1", result);
    ASSERT_TRUE(history.ok()) << history.status();
    EXPECT_EQ(history->runs(0).key_prefix(), prefix) << key;
  }
}

}  // namespace
}  // namespace testfleet
