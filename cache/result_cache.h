#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "common/disk_space.h"
#include "testfleet/v1/services.pb.h"
#include "testfleet/v1/testfleet.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace testfleet {

struct ResultCacheOptions {
  std::string dir;  // created when missing
  absl::Duration ttl = absl::Hours(1);
  int64_t max_bytes = 1LL << 30;
  const Clock* clock = RealClock::Get();
  // Lookups refresh recency in memory, exactly. On disk (for the order after
  // a restart) an access time is only rewritten once it is this much newer
  // than the stored one, in batches of `recency_flush_every` entries (with
  // new entries' metadata) and at close: a hot entry costs no write per read.
  absl::Duration recency_granularity = absl::Minutes(1);
  int recency_flush_every = 4096;
  // Puts are refused while the disk has less than this free (deletes and
  // lookups go on): see DiskSpaceGuard.
  int64_t min_free_disk = 128LL << 20;
};

/// (action key as 64 hex characters, result) pairs, for puts of many.
using CacheEntries = std::vector<std::pair<std::string, v1::CachedResult>>;

/// The content-addressed result store: action key (64 hex chars) to
/// CachedResult, in RocksDB, with a TTL, a byte limit enforced by evicting the
/// least recently *used* entries, and a checksum on every value. Thread-safe.
///
///   ASSIGN_OR_RETURN(auto cache, ResultCache::Open({.dir = "/var/cache/tf"}));
///   RETURN_IF_ERROR(cache->Put(key.hex(), result));
///   ASSIGN_OR_RETURN(std::optional<v1::CachedResult> hit,
///   cache->Lookup(key.hex()));
///
/// An index of every entry (key, size, access and expiry time; about 100
/// bytes each) is kept in memory so that misses, recency and eviction cost no
/// disk reads. A put writes only the value (WAL on, so an acknowledged put
/// survives a crash); the metadata column family follows in batches and is
/// read back at open after a clean close, while after a crash the index is
/// rebuilt from the values.
class ResultCache {
 public:
  static absl::StatusOr<std::unique_ptr<ResultCache>> Open(
      const ResultCacheOptions& options);
  ~ResultCache();

  /// nullopt on a miss (absent, expired or corrupt: never a wrong result).
  absl::StatusOr<std::optional<v1::CachedResult>> Lookup(
      const std::string& key);
  /// One answer per key, in order: one pass over the index and one RocksDB
  /// MultiGet.
  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> BatchLookup(
      const std::vector<std::string>& keys);
  /// Stores (or replaces) the entry, then evicts least recently used entries
  /// until the store is under its byte limit.
  absl::Status Put(const std::string& key, const v1::CachedResult& value);
  /// Put for many entries, in one write.
  absl::Status Put(const CacheEntries& entries);
  /// Removes every expired entry; returns how many.
  absl::StatusOr<int64_t> SweepExpired();
  /// Removes every entry `writer` stored (one full scan); returns how many.
  absl::StatusOr<int64_t> PurgeWriter(const std::string& writer);
  /// Reads every entry and removes those that fail their checks (a damaged
  /// block, a bad checksum); returns how many.
  absl::StatusOr<int64_t> ScrubDamaged();
  /// SweepExpired, ScrubDamaged (and PurgeWriter when `writer` is set),
  /// answered with the stats after it.
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string& writer = "");
  /// Writes the pending metadata (new entries, refreshed access times) in
  /// one batch; returns how many entries it wrote.
  absl::StatusOr<int64_t> FlushMetadata();

  v1::CacheStats Stats() const;
  const ResultCacheOptions& options() const { return options_; }

 private:
  using RawKey = std::array<char, 32>;
  struct Entry {
    const RawKey* key = nullptr;
    int64_t bytes = 0;
    int64_t access_ms = 0;
    int64_t stored_access_ms = 0;  // what the meta column family holds
    int64_t expires_ms = 0;
    bool access_dirty = false;
    Entry* newer = nullptr;
    Entry* older = nullptr;
  };

  explicit ResultCache(const ResultCacheOptions& options);
  struct IndexRecord {
    RawKey key;
    int64_t bytes = 0, access_ms = 0, expires_ms = 0;
  };
  static absl::StatusOr<RawKey> ParseKey(const std::string& key);
  struct Encoded {
    RawKey key;
    std::string value;  // header, then the serialized CachedResult
  };
  static absl::StatusOr<Encoded> Encode(const std::string& key,
                                        const v1::CachedResult& value,
                                        int64_t now_ms, int64_t expires_ms);
  absl::Status Store(const std::vector<Encoded>& entries, int64_t now_ms,
                     int64_t expires_ms);
  /// The index from the metadata column family, after a clean close.
  absl::Status LoadIndex();
  /// The index from the values themselves, after a crash.
  absl::Status RebuildIndex();
  absl::Status InstallIndex(std::vector<IndexRecord> records, bool persist);
  void Unlink(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushNewest(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(const RawKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteFromDisk(absl::Span<const RawKey> keys);
  // Inline room for one: a single lookup allocates nothing for its
  // bookkeeping.
  template <typename T>
  using Small = absl::InlinedVector<T, 1>;
  // What reading some keys' values found.
  struct FetchOutcome {
    absl::Status error;
    int64_t hits = 0, corrupt = 0;
    Small<RawKey> lost;  // gone from disk or corrupt: never a wrong hit
  };
  // Reads and checks the values of keys[wanted[j]] into their results.
  FetchOutcome Fetch(absl::Span<const RawKey> keys,
                     absl::Span<const size_t> wanted,
                     absl::Span<std::optional<v1::CachedResult>> results) const;
  // Answers keys[i] in results[i] (both the same size).
  absl::Status LookupRaw(absl::Span<const RawKey> keys,
                         absl::Span<std::optional<v1::CachedResult>> results);
  int64_t NowMs() const;

  ResultCacheOptions options_;
  std::unique_ptr<DiskSpaceGuard> disk_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // [values, meta]

  mutable absl::Mutex mu_;
  absl::node_hash_map<RawKey, Entry> index_ ABSL_GUARDED_BY(mu_);
  Entry* newest_ ABSL_GUARDED_BY(mu_) = nullptr;
  Entry* oldest_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<RawKey> dirty_access_ ABSL_GUARDED_BY(mu_);
  int64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  v1::CacheStats counters_ ABSL_GUARDED_BY(mu_);  // all but hits
  std::atomic<int64_t> hits_{0};
};

}  // namespace testfleet
