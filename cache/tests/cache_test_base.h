#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cache/db_options.h"
#include "cache/result_cache.h"
#include "common/tests/test_dir.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"

namespace testfleet {

/// A cache in a temporary folder on a fake clock, and ways to measure and
/// damage what it stores.
class CacheTestBase : public ::testing::Test {
 protected:
  std::unique_ptr<ResultCache> Open(int64_t max_bytes = 1LL << 30) {
    ResultCacheOptions options;
    options.dir = dir_.Join("cache");
    options.clock = &clock_;
    options.ttl = absl::Hours(1);
    options.max_bytes = max_bytes;
    // value() fails the test with the status instead of handing back a
    // null that the next line would crash on.
    return ResultCache::Open(options).value();
  }
  // What `store` adds to an empty cache against max_bytes (measured in a
  // cache that is then removed).
  int64_t BytesOf(const std::function<void(ResultCache&)>& store) {
    auto probe = Open();
    store(*probe);
    const int64_t bytes = probe->Stats().bytes();
    probe.reset();
    std::filesystem::remove_all(dir_.Join("cache"));
    return bytes;
  }
  // Changes one stored value of column family `family` (0 results, 2 blob
  // chunks) through RocksDB directly, the cache closed: the value of `key`,
  // or the family's first when `key` is empty.
  void RewriteStored(int family, std::string key,
                     const std::function<void(std::string&)>& change) {
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(CacheDbOptions(), dir_.Join("cache"),
                                  CacheColumnFamilies(), &handles, &db)
                    .ok());
    if (key.empty()) {
      std::unique_ptr<rocksdb::Iterator> it(
          db->NewIterator(rocksdb::ReadOptions(), handles[family]));
      it->SeekToFirst();
      ASSERT_TRUE(it->Valid());
      key = it->key().ToString();
    }
    std::string value;
    ASSERT_TRUE(
        db->Get(rocksdb::ReadOptions(), handles[family], key, &value).ok());
    change(value);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), handles[family], key, value).ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }

  TestDir dir_;
  FakeClock clock_;
};

}  // namespace testfleet
