#include "cache/result_cache.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cache/db_options.h"
#include "cache/tests/cache_test_base.h"
#include "common/digest.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

std::string Key(int i) { return Sha256Hex(std::to_string(i)); }

v1::CachedResult Result(const std::string& id, size_t payload = 100) {
  v1::CachedResult value;
  value.mutable_result()->set_test_id(id);
  value.mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  value.mutable_result()->set_stdout_tail(std::string(payload, 'x'));
  value.set_writer("unit-test");
  return value;
}

class ResultCacheTest : public CacheTestBase {
 protected:
  bool Has(ResultCache& cache, int i) {
    auto hit = cache.Lookup(Key(i));
    EXPECT_TRUE(hit.ok()) << hit.status();
    return hit.ok() && hit->has_value();
  }
  // What one Result("probe") entry counts against max_bytes.
  int64_t ProbeEntryBytes() {
    return BytesOf([](ResultCache& cache) {
      EXPECT_TRUE(cache.Put(Key(0), Result("probe")).ok());
    });
  }
  // Flips one byte of entry i's stored value (the cache must be closed).
  void CorruptStoredValue(int i) {
    RewriteStored(0, *HexToBytes(Key(i)),
                  [](std::string& value) { value[value.size() - 5] ^= 0x01; });
  }
};

TEST_F(ResultCacheTest, PutThenLookupRoundTrips) {
  auto cache = Open();
  EXPECT_FALSE(Has(*cache, 1));
  ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  auto hit = cache->Lookup(Key(1));
  ASSERT_TRUE(hit.ok() && hit->has_value());
  EXPECT_EQ((*hit)->result().test_id(), "t1");
  v1::CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.hits(), 1);
  EXPECT_EQ(stats.misses(), 1);
  EXPECT_EQ(stats.entries(), 1);
  EXPECT_GT(stats.bytes(), 100);
}

TEST_F(ResultCacheTest, GcPurgesEveryEntryOfOneWriter) {
  auto cache = Open();
  for (int i = 0; i < 5; ++i) {
    v1::CachedResult entry = Result(absl::StrCat("t", i));
    entry.set_writer(i < 3 ? "compromised-runner" : "ci");
    ASSERT_TRUE(cache->Put(Key(i), entry).ok());
  }
  auto gc = cache->Gc("compromised-runner");
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->writer_removed(), 3);
  EXPECT_EQ(gc->stats().entries(), 2);
  EXPECT_FALSE(cache->Lookup(Key(0))->has_value());
  EXPECT_TRUE(cache->Lookup(Key(4))->has_value());
}

TEST_F(ResultCacheTest, BadKeyIsRejected) {
  auto cache = Open();
  EXPECT_THAT(std::string(cache->Lookup("xyz").status().message()),
              HasSubstr("is not 64 hex characters"));
  EXPECT_FALSE(cache->Put("abcd", Result("t")).ok());
}

TEST_F(ResultCacheTest, EntriesExpireAfterTheTtl) {
  auto cache = Open();
  ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  ASSERT_TRUE(cache->Put(Key(2), Result("t2")).ok());
  clock_.Advance(absl::Hours(1) - absl::Milliseconds(1));
  EXPECT_TRUE(Has(*cache, 1));
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(Has(*cache, 1));
  EXPECT_EQ(cache->Stats().expirations(), 1);
  auto swept = cache->SweepExpired();
  ASSERT_TRUE(swept.ok());
  EXPECT_EQ(*swept, 1);  // key 2
  EXPECT_EQ(cache->Stats().entries(), 0);
  EXPECT_EQ(cache->Stats().bytes(), 0);
}

TEST_F(ResultCacheTest, ExpiredEntriesAreDroppedAtReopen) {
  {
    auto cache = Open();
    ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  }
  clock_.Advance(absl::Hours(2));
  auto cache = Open();
  EXPECT_EQ(cache->Stats().entries(), 0);
  EXPECT_FALSE(Has(*cache, 1));
}

TEST_F(ResultCacheTest, EvictsTheLeastRecentlyUsedUnderTheSizeLimit) {
  const int64_t entry_bytes = ProbeEntryBytes();

  auto cache = Open(3 * entry_bytes);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(cache->Put(Key(i), Result("probe")).ok());
    clock_.Advance(absl::Seconds(1));
  }
  EXPECT_TRUE(Has(*cache, 1));  // 1 is now the most recently used
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cache->Put(Key(4), Result("probe")).ok());
  EXPECT_EQ(cache->Stats().evictions(), 1);
  EXPECT_FALSE(Has(*cache, 2));
  EXPECT_TRUE(Has(*cache, 1));
  EXPECT_TRUE(Has(*cache, 3));
  EXPECT_TRUE(Has(*cache, 4));
  EXPECT_LE(cache->Stats().bytes(), 3 * entry_bytes);
}

TEST_F(ResultCacheTest, BatchPutEvictsOnlyOlderEntries) {
  const int64_t entry_bytes = ProbeEntryBytes();

  auto cache = Open(3 * entry_bytes);
  ASSERT_TRUE(cache->Put(Key(1), Result("probe")).ok());
  ASSERT_TRUE(cache->Put(Key(2), Result("probe")).ok());
  ASSERT_TRUE(cache
                  ->Put(CacheEntries{{Key(3), Result("probe")},
                                     {Key(4), Result("probe")}})
                  .ok());
  EXPECT_EQ(cache->Stats().puts(), 4);
  EXPECT_EQ(cache->Stats().evictions(), 1);
  EXPECT_FALSE(Has(*cache, 1));
  EXPECT_TRUE(Has(*cache, 2));
  EXPECT_TRUE(Has(*cache, 3));
  EXPECT_TRUE(Has(*cache, 4));
  // A batch bigger than the limit keeps all it wrote, evicting the rest.
  ASSERT_TRUE(cache
                  ->Put(CacheEntries{{Key(5), Result("probe")},
                                     {Key(6), Result("probe")},
                                     {Key(7), Result("probe")},
                                     {Key(8), Result("probe")}})
                  .ok());
  EXPECT_EQ(cache->Stats().entries(), 4);
  for (int i = 5; i <= 8; ++i) EXPECT_TRUE(Has(*cache, i)) << i;
}

TEST_F(ResultCacheTest, LargeBatchLookupAnswersEveryKeyInItsPlace) {
  auto cache = Open();
  CacheEntries entries;
  for (int i = 0; i < 1200; ++i)
    entries.emplace_back(Key(i), Result(absl::StrCat("t", i)));
  ASSERT_TRUE(cache->Put(entries).ok());
  // Present and absent keys interleaved, enough for several read chunks.
  std::vector<std::string> keys;
  for (int i = 0; i < 1500; ++i)
    keys.push_back(Key(i % 5 == 4 ? 100000 + i : i));
  auto results = cache->BatchLookup(keys);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), keys.size());
  int hits = 0;
  for (int i = 0; i < 1500; ++i) {
    const bool stored = i % 5 != 4 && i < 1200;
    ASSERT_EQ((*results)[i].has_value(), stored) << i;
    if (stored) {
      EXPECT_EQ((*results)[i]->result().test_id(), absl::StrCat("t", i));
      ++hits;
    }
  }
  EXPECT_EQ(cache->Stats().hits(), hits);
  EXPECT_EQ(cache->Stats().misses(), 1500 - hits);
}

TEST_F(ResultCacheTest, BatchLookupAnswersEachKeyInOrder) {
  {
    auto cache = Open();
    ASSERT_TRUE(
        cache->Put(CacheEntries{{Key(1), Result("t1")}, {Key(2), Result("t2")}})
            .ok());
    clock_.Advance(absl::Minutes(40));
    ASSERT_TRUE(
        cache->Put(CacheEntries{{Key(3), Result("t3")}, {Key(4), Result("t4")}})
            .ok());
  }
  CorruptStoredValue(4);
  auto cache = Open();
  clock_.Advance(absl::Minutes(30));  // 1 and 2 expired
  auto results = cache->BatchLookup({Key(3), Key(9), Key(1), Key(4), Key(3)});
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 5u);
  ASSERT_TRUE((*results)[0].has_value());
  EXPECT_EQ((*results)[0]->result().test_id(), "t3");
  EXPECT_FALSE((*results)[1].has_value());  // never stored
  EXPECT_FALSE((*results)[2].has_value());  // expired
  EXPECT_FALSE((*results)[3].has_value());  // corrupt
  ASSERT_TRUE((*results)[4].has_value());
  EXPECT_EQ((*results)[4]->result().test_id(), "t3");
  v1::CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.hits(), 2);
  EXPECT_EQ(stats.misses(), 3);
  EXPECT_EQ(stats.expirations(), 1);
  EXPECT_EQ(stats.corrupt(), 1);
  EXPECT_EQ(stats.entries(), 2);  // 2 (expired, not yet swept) and 3
  EXPECT_EQ(cache->BatchLookup({Key(1), "not-a-key"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ResultCacheTest, EncodedBatchLookupSendsCheckedBytesAsStored) {
  {
    auto cache = Open();
    ASSERT_TRUE(
        cache->Put(CacheEntries{{Key(1), Result("t1")}, {Key(2), Result("t2")}})
            .ok());
  }
  CorruptStoredValue(2);
  auto cache = Open();
  auto encoded = cache->BatchLookupEncoded({Key(1), Key(2), Key(9), Key(1)});
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  ASSERT_EQ(encoded->size(), 4u);
  for (size_t i : {0u, 3u}) {
    ASSERT_TRUE((*encoded)[i].has_value());
    v1::CachedResult parsed;
    ASSERT_TRUE(parsed.ParseFromString(*(*encoded)[i]));
    EXPECT_EQ(parsed.SerializeAsString(), Result("t1").SerializeAsString());
  }
  EXPECT_FALSE((*encoded)[1].has_value());  // failed its checksum
  EXPECT_FALSE((*encoded)[2].has_value());  // never stored
  v1::CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.hits(), 2);
  EXPECT_EQ(stats.misses(), 2);
  EXPECT_EQ(stats.corrupt(), 1);
  EXPECT_EQ(cache->BatchLookupEncoded({"not-a-key"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ResultCacheTest, RecencySurvivesReopen) {
  int64_t entry_bytes = 0;
  {
    auto cache = Open();
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(cache->Put(Key(i), Result("probe")).ok());
      clock_.Advance(absl::Minutes(2));
    }
    EXPECT_TRUE(Has(*cache, 1));
    entry_bytes = cache->Stats().bytes() / 3;
  }
  clock_.Advance(absl::Minutes(2));
  auto cache = Open(3 * entry_bytes);
  ASSERT_TRUE(cache->Put(Key(4), Result("probe")).ok());
  EXPECT_FALSE(Has(*cache, 2));  // the least recently used before the reopen
  EXPECT_TRUE(Has(*cache, 1));
}

TEST_F(ResultCacheTest, HotEntriesCostNoWritePerRead) {
  auto cache = Open();
  ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  EXPECT_EQ(*cache->FlushMetadata(), 1);  // the new entry's metadata
  // Reads within the recency granularity leave nothing to persist.
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(Has(*cache, 1));
  EXPECT_EQ(*cache->FlushMetadata(), 0);
  // A read a while later is persisted once, however often it repeats.
  clock_.Advance(absl::Minutes(2));
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(Has(*cache, 1));
  EXPECT_EQ(*cache->FlushMetadata(), 1);
}

// Rewrites the cache's format marker through RocksDB directly.
void SetFormatMarker(const std::string& dir, const std::string& version) {
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(CacheDbOptions(), dir, CacheColumnFamilies(),
                                &handles, &db)
                  .ok());
  const std::string key("\0testfleet-cache-format", 23);
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], key, version).ok());
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  delete db;
}

TEST_F(ResultCacheTest, OlderFormatStartsAfreshNewerIsRefused) {
  {
    auto cache = Open();
    ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  }
  SetFormatMarker(dir_.Join("cache"), "1");
  {
    auto cache = Open();  // an older Testfleet's cache: emptied, usable
    EXPECT_EQ(cache->Stats().entries(), 0);
    ASSERT_TRUE(cache->Put(Key(2), Result("t2")).ok());
    EXPECT_TRUE(Has(*cache, 2));
  }
  SetFormatMarker(dir_.Join("cache"), "99");
  ResultCacheOptions options;
  options.dir = dir_.Join("cache");
  auto newer = ResultCache::Open(options);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ResultCacheTest, CorruptValueIsDetectedDeletedAndMissed) {
  {
    auto cache = Open();
    ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());
  }
  CorruptStoredValue(1);
  auto cache = Open();
  EXPECT_EQ(cache->Stats().entries(), 1);
  EXPECT_FALSE(Has(*cache, 1));
  EXPECT_EQ(cache->Stats().corrupt(), 1);
  EXPECT_EQ(cache->Stats().entries(), 0);
  ASSERT_TRUE(cache->Put(Key(1), Result("t1")).ok());  // healthy again
  EXPECT_TRUE(Has(*cache, 1));
}

TEST_F(ResultCacheTest, DamagedFileCostsItsEntriesNotTheWholeCache) {
  constexpr int kEntries = 300;
  {
    auto cache = Open();
    CacheEntries entries;
    for (int i = 0; i < kEntries; ++i) {
      // Incompressible payloads: each block holds a few entries.
      entries.emplace_back(Key(i), Result(Sha256Hex(Key(i)) + Key(i), 1000));
    }
    ASSERT_TRUE(cache->Put(entries).ok());
  }
  // Everything into table files, then bytes flipped inside the largest one
  // (the values), as a bad disk would.
  {
    rocksdb::Options options = CacheDbOptions();
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir_.Join("cache"),
                                  CacheColumnFamilies(), &handles, &db)
                    .ok());
    for (auto* handle : handles) {
      ASSERT_TRUE(db->Flush(rocksdb::FlushOptions(), handle).ok());
    }
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
    delete db;
  }
  std::string largest;
  uintmax_t largest_size = 0;
  for (const auto& file :
       std::filesystem::directory_iterator(dir_.Join("cache"))) {
    if (file.path().extension() == ".sst" && file.file_size() > largest_size) {
      largest = file.path().string();
      largest_size = file.file_size();
    }
  }
  ASSERT_FALSE(largest.empty());
  {
    std::fstream sst(largest, std::ios::in | std::ios::out | std::ios::binary);
    for (uintmax_t at = largest_size / 4; at < largest_size / 2; at += 4096) {
      sst.seekp(static_cast<std::streamoff>(at));
      sst.put('\xff');
    }
  }
  auto cache = Open();
  ASSERT_NE(cache, nullptr);
  std::vector<std::string> keys;
  for (int i = 0; i < kEntries; ++i) keys.push_back(Key(i));
  auto found = cache->BatchLookup(keys);
  ASSERT_TRUE(found.ok()) << found.status();  // was "in use by another process"
  int hits = 0;
  for (const auto& hit : *found) hits += hit.has_value();
  EXPECT_GT(hits, 0);
  EXPECT_LT(hits, kEntries);
  EXPECT_EQ(cache->Stats().corrupt(), kEntries - hits);
  // Damaged entries are gone: the next lookup is clean misses and hits.
  auto again = cache->BatchLookup(keys);
  ASSERT_TRUE(again.ok()) << again.status();
  auto gc = cache->Gc();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->stats().entries(), hits);
}

TEST_F(ResultCacheTest, AcknowledgedPutsSurviveKillNine) {
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(acks[0]);
    ResultCacheOptions options;
    options.dir = dir_.Join("cache");
    auto cache = ResultCache::Open(options);
    if (!cache.ok()) _exit(2);
    for (int i = 0;; ++i) {  // until killed
      if (!(*cache)->Put(Key(i), Result("t")).ok()) _exit(3);
      if (write(acks[1], &i, sizeof(i)) != sizeof(i)) _exit(4);
    }
  }
  close(acks[1]);
  int last_acked = -1;
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(read(acks[0], &last_acked, sizeof(last_acked)),
              static_cast<ssize_t>(sizeof(last_acked)));
  }
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  // Anything acknowledged after the 500th is also durable; count those too.
  int more = 0;
  while (read(acks[0], &more, sizeof(more)) == sizeof(more)) last_acked = more;
  close(acks[0]);
  ASSERT_TRUE(WIFSIGNALED(status));

  ResultCacheOptions options;
  options.dir = dir_.Join("cache");
  auto cache = ResultCache::Open(options);
  ASSERT_TRUE(cache.ok()) << cache.status();
  for (int i = 0; i <= last_acked; ++i) {
    auto hit = (*cache)->Lookup(Key(i));
    ASSERT_TRUE(hit.ok() && hit->has_value())
        << "acknowledged entry " << i << " lost";
  }
}

TEST_F(ResultCacheTest, SecondOpenOfTheSameDirSaysItIsInUse) {
  auto first = Open();
  ResultCacheOptions options;
  options.dir = dir_.Join("cache");
  auto second = ResultCache::Open(options);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("is in use by another process"));
}

TEST_F(ResultCacheTest, RefusesFoldersThatAreNotACache) {
  dir_.Write("not-a-cache/notes.txt", "hello");
  ResultCacheOptions options;
  options.dir = dir_.Join("not-a-cache");
  EXPECT_THAT(std::string(ResultCache::Open(options).status().message()),
              HasSubstr("is not a Testfleet cache"));

  rocksdb::Options raw_options;
  raw_options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(raw_options, dir_.Join("other-db"), &db).ok());
  delete db;
  options.dir = dir_.Join("other-db");
  EXPECT_THAT(std::string(ResultCache::Open(options).status().message()),
              HasSubstr("not a Testfleet cache"));

  options.dir = dir_.Join("not-a-cache/notes.txt/cache");
  EXPECT_THAT(std::string(ResultCache::Open(options).status().message()),
              HasSubstr("cannot create cache dir"));
}

TEST_F(ResultCacheTest, ConcurrentPutsAndLookupsStayConsistent) {
  auto cache = Open();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) {
        int k = t * 1000 + i;
        ASSERT_TRUE(cache->Put(Key(k), Result(std::to_string(k))).ok());
        auto hit = cache->Lookup(Key(k));
        ASSERT_TRUE(hit.ok() && hit->has_value());
        ASSERT_EQ((*hit)->result().test_id(), std::to_string(k));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(cache->Stats().entries(), 1000);
  EXPECT_EQ(cache->Stats().hits(), 1000);
}

}  // namespace
}  // namespace testfleet
