#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "cache/reapi_names.h"
#include "common/clock.h"
#include "common/digest.h"
#include "common/disk_space.h"
#include "testfleet/v1/services.pb.h"
#include "testfleet/v1/testfleet.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
struct ReadOptions;
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

/// The content-addressed store: Testfleet results (action key, 64 hex chars,
/// to CachedResult), REAPI CAS blobs (digest to bytes) and REAPI action
/// results (action digest to ActionResult), in RocksDB, under one TTL and
/// one byte limit enforced by evicting the least recently *used* entries of
/// any kind, with a checksum on every value. Thread-safe. Results are here;
/// blobs and action results in blob_store.cc.
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
  /// BatchLookup answering each hit as its serialized CachedResult, checked
  /// against its checksum but not parsed: what a server sends on as it is.
  absl::StatusOr<std::vector<std::optional<std::string>>> BatchLookupEncoded(
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
  /// WaitForBackgroundWork (db_options.h) on this cache's database.
  bool WaitForBackgroundWork(absl::Duration limit);

  // CAS blobs. The empty blob is always present and never stored.

  /// For each digest, whether the blob is absent (or expired). Present
  /// blobs count as used: their recency and TTL are refreshed.
  std::vector<bool> FindMissingBlobs(absl::Span<const BlobDigest> digests);
  /// Stores a blob held whole in memory. INVALID_ARGUMENT, storing nothing,
  /// when `content` does not have `digest`.
  absl::Status PutBlob(const BlobDigest& digest, absl::string_view content);
  /// A blob whole, for small ones (BatchReadBlobs); nullopt when absent or
  /// damaged (a damaged blob is deleted, so it can be uploaded again).
  absl::StatusOr<std::optional<std::string>> ReadBlob(const BlobDigest& digest);
  /// Bytes [offset, offset + limit) of a blob (limit 0: to the end), handed
  /// to `sink` a chunk at a time; `sink` returns false to stop. NOT_FOUND
  /// when absent or damaged before anything was sent, DATA_LOSS when damage
  /// is found after; OUT_OF_RANGE for an offset past the end.
  absl::Status StreamBlob(const BlobDigest& digest, int64_t offset,
                          int64_t limit,
                          const std::function<bool(absl::string_view)>& sink);
  /// One streamed upload (ByteStream Write): chunks go to disk as they
  /// come, under a generation of their own, and become the blob only when
  /// Finish has checked the size and SHA-256. Dropping an unfinished writer
  /// deletes what it wrote.
  class BlobWriter;
  absl::StatusOr<std::unique_ptr<BlobWriter>> StartBlobWrite(
      const BlobDigest& digest);

  // REAPI action results.

  /// nullopt on a miss, which includes an entry whose referenced blobs
  /// (output files, output trees and the files in them, stdout, stderr) are
  /// not all present: such an entry is deleted, never served.
  absl::StatusOr<std::optional<reapi::ActionResult>> GetActionResult(
      const BlobDigest& action);
  absl::Status PutActionResult(const BlobDigest& action,
                               const reapi::ActionResult& result);

  /// Pins the present blobs among `digests` for `holder` (a suite): they
  /// are neither evicted nor expired until UnpinBlobs(holder). Returns the
  /// digests that are missing.
  std::vector<BlobDigest> PinBlobs(const std::string& holder,
                                   absl::Span<const BlobDigest> digests);
  void UnpinBlobs(const std::string& holder);

  v1::CacheStats Stats() const;
  const ResultCacheOptions& options() const { return options_; }

  /// Blobs are stored in chunks of this many bytes (the last one shorter).
  static constexpr int64_t kBlobChunkBytes = 1 << 20;

 private:
  using RawKey = std::array<char, 32>;
  // The index is keyed by kind (one of the k* below) and hash: a blob and
  // an action result often share a hash (the Action is itself a blob).
  using IndexKey = std::array<char, 33>;
  static constexpr char kResultKind = 'r', kBlobKind = 'b', kActionKind = 'a';
  static IndexKey MakeIndexKey(char kind, const RawKey& hash);
  struct Entry {
    const IndexKey* key = nullptr;
    int64_t bytes = 0;
    int64_t access_ms = 0;
    int64_t stored_access_ms = 0;  // what the meta column family holds
    int64_t expires_ms = 0;
    int64_t blob_size = 0;    // blobs: the digest's size
    uint64_t generation = 0;  // blobs: which upload's chunks hold it
    int pins = 0;             // pinned entries are off the LRU list
    bool access_dirty = false;
    bool linked = false;
    Entry* newer = nullptr;
    Entry* older = nullptr;
  };
  // What deleting an entry from disk needs to know.
  struct DiskKey {
    IndexKey key{};
    int64_t blob_size = -1;  // blobs: -1 when unknown (no chunks deleted)
    uint64_t generation = 0;
  };

  explicit ResultCache(const ResultCacheOptions& options);
  struct IndexRecord {
    IndexKey key;
    int64_t bytes = 0, access_ms = 0, expires_ms = 0, blob_size = 0;
    uint64_t generation = 0;
  };
  static absl::StatusOr<RawKey> ParseKey(const std::string& key);
  // What a result or action result costs in the store.
  static int64_t EntryBytes(size_t value_size);
  struct Encoded {
    RawKey key;
    std::string value;  // header, then the serialized CachedResult
  };
  static absl::StatusOr<Encoded> Encode(const std::string& key,
                                        const v1::CachedResult& value,
                                        int64_t now_ms, int64_t expires_ms);
  // A result's or action result's value: header, then `message`.
  static std::string EncodeValue(const google::protobuf::MessageLite& message,
                                 int64_t now_ms, int64_t expires_ms);
  // The payload of a value that passes its checks, else false.
  static bool CheckValue(absl::string_view value, absl::string_view* payload);
  absl::Status Store(const std::vector<Encoded>& entries, int64_t now_ms,
                     int64_t expires_ms);
  /// The index from the metadata column family, after a clean close.
  absl::Status LoadIndex();
  /// The index from the values themselves, after a crash.
  absl::Status RebuildIndex();
  absl::Status InstallIndex(std::vector<IndexRecord> records, bool persist);
  void Unlink(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PushNewest(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Counts an entry into (sign 1) or out of (-1) the totals.
  void Account(const Entry& entry, int sign) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Entry& InsertLocked(const IndexKey& key, int64_t bytes, int64_t now_ms,
                      int64_t expires_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  DiskKey EraseLocked(const IndexKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry if present, unexpired, refreshed as used; an expired one is
  // erased into `expired`.
  Entry* UseLocked(const IndexKey& key, int64_t now_ms,
                   std::vector<DiskKey>* expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Evicts least recently used entries until under the limit, sparing the
  // `spared` newest (what the caller just wrote).
  std::vector<DiskKey> EvictLocked(size_t spared)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::CacheKindStats& KindStats(char kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteFromDisk(absl::Span<const DiskKey> keys);
  absl::Status DeleteResults(absl::Span<const RawKey> keys);
  // Blobs (blob_store.cc).
  static std::string ChunkKey(const RawKey& hash, uint64_t generation,
                              int64_t chunk);
  static std::string EncodeBlobMeta(const Entry& entry);
  absl::Status LoadBlobIndex(std::vector<IndexRecord>* records);
  absl::Status RemoveOrphanChunks(const std::vector<IndexRecord>& records);
  // Erases a blob found damaged or incomplete on disk.
  absl::Status DropDamagedBlob(const BlobDigest& digest, uint64_t generation);
  // Whether every blob an action result refers to is present.
  absl::StatusOr<bool> ActionResultComplete(const reapi::ActionResult& result);
  uint64_t NextGeneration();
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
  // Takes the serialized CachedResult of keys[index], whose checksum held;
  // false when it is unusable (it does not parse), which counts it corrupt.
  // Called from several threads at once, each index once.
  using TakePayload =
      absl::FunctionRef<bool(size_t index, absl::string_view payload)>;
  // Reads and checks the values of keys[wanted[j]], handing each to `take`.
  FetchOutcome Fetch(absl::Span<const RawKey> keys,
                     absl::Span<const size_t> wanted, TakePayload take) const;
  // One MultiGet of Fetch's (of 1 to kKeysPerMultiGet keys), adding to
  // `outcome`.
  void ReadGroup(absl::Span<const RawKey> keys, absl::Span<const size_t> wanted,
                 const rocksdb::ReadOptions& read, TakePayload take,
                 FetchOutcome& outcome) const;
  // Hands `take` the value of each key that hits; a key it is not called for
  // missed.
  absl::Status LookupRaw(absl::Span<const RawKey> keys, TakePayload take);
  static absl::StatusOr<std::vector<RawKey>> ParseKeys(
      const std::vector<std::string>& keys);
  int64_t NowMs() const;

  ResultCacheOptions options_;
  std::unique_ptr<DiskSpaceGuard> disk_;
  std::unique_ptr<rocksdb::DB> db_;
  // [results, meta, blob chunks, action results]
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  mutable absl::Mutex mu_;
  absl::node_hash_map<IndexKey, Entry> index_ ABSL_GUARDED_BY(mu_);
  Entry* newest_ ABSL_GUARDED_BY(mu_) = nullptr;
  Entry* oldest_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<IndexKey> dirty_access_ ABSL_GUARDED_BY(mu_);
  int64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t linked_ ABSL_GUARDED_BY(mu_) = 0;        // entries on the LRU list
  v1::CacheStats counters_ ABSL_GUARDED_BY(mu_);  // results' but hits
  std::atomic<int64_t> hits_{0};                  // results'
  // Entries, bytes, and blobs' and action results' counters, by kind.
  v1::CacheKindStats result_totals_ ABSL_GUARDED_BY(mu_);
  v1::CacheKindStats blob_stats_ ABSL_GUARDED_BY(mu_);
  v1::CacheKindStats action_stats_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<IndexKey>> pins_
      ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> next_generation_{0};
  // Blob uploads enter the index one at a time (BlobWriter::WriteChunk).
  absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace testfleet

namespace testfleet {

class ResultCache::BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  /// The next bytes. INVALID_ARGUMENT past the digest's size.
  absl::Status Append(absl::string_view data);
  /// Checks the size and SHA-256, then publishes the blob (and evicts to
  /// make room). INVALID_ARGUMENT, storing nothing, on a mismatch.
  absl::Status Finish();
  int64_t received() const { return received_; }
  const BlobDigest& digest() const { return digest_; }

 private:
  friend class ResultCache;
  BlobWriter(ResultCache* cache, const BlobDigest& digest, uint64_t generation);
  absl::Status WriteChunk(absl::string_view payload, bool last);
  // Deletes what an upload that will not finish wrote.
  void DropChunks();

  ResultCache* cache_;
  BlobDigest digest_;
  uint64_t generation_;
  int64_t received_ = 0;
  int64_t chunks_written_ = 0;
  std::string pending_;  // under one chunk, not yet written
  Sha256Hasher hasher_;
  bool finished_ = false;
};

}  // namespace testfleet
