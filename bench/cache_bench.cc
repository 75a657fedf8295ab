// Result cache against raw RocksDB on the same data, in one run.
//   build/bin/cache_bench --benchmark_min_time=2   (1,000,000 entries of 1 KiB)
//   BENCH_ENTRIES=20000 build/bin/cache_bench  (quick)
// The cache must stay near raw RocksDB: lookups at least 80% of raw Get,
// puts at least 70% of raw Put.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "cache/db_options.h"
#include "cache/result_cache.h"
#include "common/digest.h"
#include "rocksdb/db.h"

namespace testfleet {
namespace {

int64_t Entries() {
  const char* env = std::getenv("BENCH_ENTRIES");
  return env ? std::atoll(env) : 1'000'000;
}

std::string Key(int64_t i) { return Sha256Hex(std::to_string(i)); }

// A CachedResult that serializes to about 1 KiB.
v1::CachedResult Value(int64_t i) {
  v1::CachedResult value;
  value.mutable_result()->set_test_id("suite.test_" + std::to_string(i));
  value.mutable_result()->set_status(v1::TEST_STATUS_PASSED);
  value.mutable_result()->set_wall_ms(12.5);
  value.mutable_result()->set_stdout_tail(std::string(940, 'x'));
  value.set_writer("bench");
  return value;
}

// Both stores, filled once with the same entries.
struct Stores {
  std::string root;
  std::unique_ptr<ResultCache> cache;
  std::unique_ptr<rocksdb::DB> raw;
  int64_t entries = 0;

  Stores() {
    root = std::filesystem::temp_directory_path() / "testfleet-cache-bench";
    std::filesystem::remove_all(root);
    entries = Entries();
    ResultCacheOptions options;
    options.dir = root + "/cache";
    options.max_bytes = 64LL << 30;
    options.ttl = absl::Hours(24);
    cache = std::move(ResultCache::Open(options).value());
    rocksdb::DB* db = nullptr;
    rocksdb::DB::Open(CacheDbOptions(), root + "/raw", &db);
    raw.reset(db);
    for (int64_t i = 0; i < entries; ++i) {
      v1::CachedResult value = Value(i);
      (void)cache->Put(Key(i), value);
      raw->Put(rocksdb::WriteOptions(), *HexToBytes(Key(i)),
               value.SerializeAsString());
    }
  }
  ~Stores() {
    cache.reset();
    raw.reset();
    std::filesystem::remove_all(root);
  }
};

Stores& Data() {
  static Stores* stores = new Stores();
  return *stores;
}

std::vector<std::string> RandomKeys(size_t n, bool raw) {
  std::mt19937_64 random(42);
  std::uniform_int_distribution<int64_t> pick(0, Data().entries - 1);
  std::vector<std::string> keys(n);
  for (auto& key : keys) {
    key = Key(pick(random));
    if (raw) key = *HexToBytes(key);
  }
  return keys;
}

void BM_CacheLookup(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, false);
  size_t i = 0;
  for (auto _ : state) {
    auto hit = Data().cache->Lookup(keys[i++ & 0xffff]);
    benchmark::DoNotOptimize(hit);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RawRocksDbGet(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, true);
  size_t i = 0;
  std::string value;
  for (auto _ : state) {
    Data().raw->Get(rocksdb::ReadOptions(), keys[i++ & 0xffff], &value);
    // The cache parses what it reads; so does the baseline.
    v1::CachedResult parsed;
    parsed.ParseFromString(value);
    benchmark::DoNotOptimize(parsed);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_CacheBatchLookup(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, false);
  size_t offset = 0;
  const size_t batch = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    std::vector<std::string> wanted(
        keys.begin() + static_cast<long>(offset),
        keys.begin() + static_cast<long>(offset + batch));
    auto hits = Data().cache->BatchLookup(wanted);
    benchmark::DoNotOptimize(hits);
    offset = (offset + batch) % (keys.size() - batch);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void BM_CachePut(benchmark::State& state) {
  int64_t next = Data().entries + 1'000'000'000LL;
  v1::CachedResult value = Value(0);
  for (auto _ : state) {
    (void)Data().cache->Put(Key(next++), value);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RawRocksDbPut(benchmark::State& state) {
  int64_t next = Data().entries + 2'000'000'000LL;
  v1::CachedResult value = Value(0);
  for (auto _ : state) {
    Data().raw->Put(rocksdb::WriteOptions(), *HexToBytes(Key(next++)),
                    value.SerializeAsString());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_CacheLookup);
BENCHMARK(BM_RawRocksDbGet);
BENCHMARK(BM_CacheBatchLookup)->Arg(100);
BENCHMARK(BM_CachePut);
BENCHMARK(BM_RawRocksDbPut);

}  // namespace
}  // namespace testfleet

BENCHMARK_MAIN();
