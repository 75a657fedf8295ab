// Result cache against raw RocksDB on the same data, in one run.
//   build/bin/cache_bench --benchmark_min_time=2   (1,000,000 entries of 1 KiB)
//   BENCH_ENTRIES=20000 build/bin/cache_bench  (quick)
// The cache must stay near raw RocksDB: lookups at least 80% of raw Get,
// puts at least 70% of raw Put, CAS blob reads at least 80% of raw Get of
// the same bytes; *Latency report p50/p99 per operation (the
// gRPC one per batch of 1,000 keys over loopback); CachePutEvicting is the
// put rate of a full cache, each put evicting.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "benchmark/benchmark.h"
#include "cache/cache_client.h"
#include "cache/cache_service.h"
#include "cache/db_options.h"
#include "cache/result_cache.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "common/runtime.h"
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

// A half-filled store would be measured as a fast one.
void ExitUnlessOk(const absl::Status& status, const std::string& root) {
  if (status.ok()) return;
  std::fprintf(stderr, "cache_bench: filling the stores failed: %s\n",
               status.ToString().c_str());
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
  std::exit(1);
}

// Both stores, filled once with the same entries.
struct Stores {
  std::string root;
  std::unique_ptr<ResultCache> cache;
  std::unique_ptr<rocksdb::DB> raw;
  int64_t entries = 0;
  // The same values again as CAS blobs in the cache.
  std::vector<BlobDigest> blobs;

  Stores() {
    // A folder of its own: two runs at once never share one.
    std::string pattern =
        std::filesystem::temp_directory_path() / "testfleet-cache-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("cache_bench: cannot make a temporary folder");
      std::exit(1);
    }
    root = pattern;
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
      const std::string bytes = value.SerializeAsString();
      blobs.push_back(BlobDigest::Of(bytes));
      ExitUnlessOk(cache->Put(Key(i), value), root);
      ExitUnlessOk(cache->PutBlob(blobs.back(), bytes), root);
      const rocksdb::Status raw_put =
          raw->Put(rocksdb::WriteOptions(), *HexToBytes(Key(i)), bytes);
      if (!raw_put.ok())
        ExitUnlessOk(CacheDirError(raw_put, root + "/raw"), root);
    }
    // Measured once the fill's flushes and compactions are done: they took
    // a core for a minute after it and made two runs differ by half.
    if (!cache->WaitForBackgroundWork(absl::Minutes(10)) ||
        !WaitForBackgroundWork(raw.get(), absl::Minutes(10))) {
      std::fprintf(stderr,
                   "cache_bench: RocksDB still compacting; measuring anyway\n");
    }
  }
  ~Stores() {
    cache.reset();
    raw.reset();
    std::filesystem::remove_all(root);
  }
};

// Made by the first benchmark that needs it; deleted by main (its folder
// is a gigabyte).
Stores* stores = nullptr;

Stores& Data() {
  if (stores == nullptr) stores = new Stores();
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

// Blob reads against raw Gets of the same bytes: both hand back the bytes,
// neither parses them.
void BM_BlobRead(benchmark::State& state) {
  std::mt19937_64 random(42);
  std::uniform_int_distribution<size_t> pick(0, Data().blobs.size() - 1);
  std::vector<BlobDigest> digests(1 << 16);
  for (auto& digest : digests) digest = Data().blobs[pick(random)];
  size_t i = 0;
  for (auto _ : state) {
    auto blob = Data().cache->ReadBlob(digests[i++ & 0xffff]);
    benchmark::DoNotOptimize(blob);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_RawRocksDbGetBytes(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, true);
  size_t i = 0;
  std::string value;
  for (auto _ : state) {
    Data().raw->Get(rocksdb::ReadOptions(), keys[i++ & 0xffff], &value);
    benchmark::DoNotOptimize(value);
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

// Per-operation latencies as counters: median and 99th percentile, in µs.
void ReportPercentiles(benchmark::State& state, std::vector<double>& ns) {
  if (ns.empty()) return;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return ns[std::min(ns.size() - 1, static_cast<size_t>(q * ns.size()))] /
           1000;
  };
  state.counters["p50_us"] = at(0.5);
  state.counters["p99_us"] = at(0.99);
}

// Runs `op` once per iteration, timing each call on its own.
template <typename Op>
void TimeEach(benchmark::State& state, Op op) {
  std::vector<double> ns;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    op();
    ns.push_back(std::chrono::duration<double, std::nano>(
                     std::chrono::steady_clock::now() - start)
                     .count());
  }
  state.SetItemsProcessed(state.iterations());
  ReportPercentiles(state, ns);
}

void BM_CacheLookupLatency(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, false);
  size_t i = 0;
  TimeEach(state, [&] {
    auto hit = Data().cache->Lookup(keys[i++ & 0xffff]);
    benchmark::DoNotOptimize(hit);
  });
}

void BM_RawRocksDbGetLatency(benchmark::State& state) {
  auto keys = RandomKeys(1 << 16, true);
  size_t i = 0;
  std::string value;
  TimeEach(state, [&] {
    Data().raw->Get(rocksdb::ReadOptions(), keys[i++ & 0xffff], &value);
    v1::CachedResult parsed;
    parsed.ParseFromString(value);
    benchmark::DoNotOptimize(parsed);
  });
}

// Batches of `range(0)` keys through the real gRPC service on loopback,
// with `lookup(address, keys)` as the client.
template <typename Lookup>
void TimeGrpcBatches(benchmark::State& state, Lookup lookup) {
  ResultCacheService service(Data().cache.get());
  int port = 0;
  std::unique_ptr<grpc::Server> server = ServeOnLoopback(&service, &port);
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto keys = RandomKeys(1 << 16, false);
  const size_t batch = static_cast<size_t>(state.range(0));
  size_t offset = 0;
  TimeEach(state, [&] {
    std::vector<std::string> wanted(
        keys.begin() + static_cast<long>(offset),
        keys.begin() + static_cast<long>(offset + batch));
    if (absl::Status s = lookup(address, wanted); !s.ok())
      state.SkipWithError(s.ToString().c_str());
    offset = (offset + batch) % (keys.size() - batch);
  });
  state.SetItemsProcessed(state.iterations() * state.range(0));
  server->Shutdown();
}

// Our client: the server sends each hit as stored.
void BM_GrpcBatchLookupLatency(benchmark::State& state) {
  std::unique_ptr<CacheClient> client;
  TimeGrpcBatches(state, [&](const std::string& address,
                             const std::vector<std::string>& keys) {
    if (client == nullptr) client = NewGrpcCacheClient(address);
    return client->Lookup(keys).status();
  });
}

// The keys in one call of the raw stub; with `accepts_encoded`, each hit
// parsed afterwards as our client does.
void TimeOneCallLookups(benchmark::State& state, bool accepts_encoded) {
  std::unique_ptr<v1::ResultCache::Stub> stub;
  TimeGrpcBatches(state, [&](const std::string& address,
                             const std::vector<std::string>& keys) {
    if (stub == nullptr) stub = v1::ResultCache::NewStub(MakeChannel(address));
    v1::CacheLookupRequest request;
    for (const std::string& key : keys) request.add_keys(key);
    request.set_accepts_encoded(accepts_encoded);
    v1::CacheLookupResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->Lookup(&context, request, &response);
    for (int i = 0; i < response.encoded_results_size(); ++i) {
      v1::CachedResult hit;
      if (response.found(i)) hit.ParseFromString(response.encoded_results(i));
      benchmark::DoNotOptimize(hit);
    }
    return FromGrpcStatus(status);
  });
}

// The 1,000 keys in one call, as our client sent them before it split a
// batch into calls of 250 (kKeysPerLookupCall) in flight together.
void BM_GrpcBatchLookupOneCallLatency(benchmark::State& state) {
  TimeOneCallLookups(state, /*accepts_encoded=*/true);
}

// A client older than `accepts_encoded`: the server parses each hit and
// serializes it again.
void BM_GrpcBatchLookupParsedLatency(benchmark::State& state) {
  TimeOneCallLookups(state, /*accepts_encoded=*/false);
}

// Puts into a full cache: each one evicts the least recently used entries.
void BM_CachePutEvicting(benchmark::State& state) {
  const std::string dir = Data().root + "/evicting";
  ResultCacheOptions options;
  options.dir = dir;
  options.max_bytes = 16 << 20;  // about 15,000 entries
  auto cache = std::move(ResultCache::Open(options).value());
  v1::CachedResult value = Value(0);
  int64_t next = 0;
  while (cache->Stats().evictions() == 0) (void)cache->Put(Key(next++), value);
  const int64_t evicted_before = cache->Stats().evictions();
  for (auto _ : state) (void)cache->Put(Key(next++), value);
  state.SetItemsProcessed(state.iterations());
  state.counters["evictions"] =
      static_cast<double>(cache->Stats().evictions() - evicted_before);
  cache.reset();
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_CacheLookup);
BENCHMARK(BM_RawRocksDbGet);
BENCHMARK(BM_BlobRead);
BENCHMARK(BM_RawRocksDbGetBytes);
BENCHMARK(BM_CacheBatchLookup)->Arg(100)->Arg(1000);
BENCHMARK(BM_CachePut);
BENCHMARK(BM_RawRocksDbPut);
BENCHMARK(BM_CacheLookupLatency);
BENCHMARK(BM_RawRocksDbGetLatency);
BENCHMARK(BM_GrpcBatchLookupLatency)->Arg(1000)->UseRealTime();
BENCHMARK(BM_GrpcBatchLookupOneCallLatency)->Arg(1000)->UseRealTime();
BENCHMARK(BM_GrpcBatchLookupParsedLatency)->Arg(1000)->UseRealTime();
BENCHMARK(BM_CachePutEvicting);

}  // namespace
}  // namespace testfleet

int main(int argc, char** argv) {
  // As the binaries that serve the cache run.
  testfleet::DisableMutexDeadlockDetection();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  delete testfleet::stores;
  return 0;
}
