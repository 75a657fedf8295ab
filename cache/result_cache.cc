#include "cache/result_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cache/db_options.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace testfleet {
namespace {

namespace fs = std::filesystem;

constexpr char kValueMagic[4] = {'T', 'F', 'C', '2'};
// Below this many keys a batch is read in one piece.
constexpr size_t kKeysPerFetchChunk = 256;

constexpr size_t kValueHeader = 24;  // magic, crc32, expires_ms, stored_ms
constexpr char kFormatMarkerKey[] = "\0testfleet-cache-format";
constexpr size_t kFormatMarkerKeySize = sizeof(kFormatMarkerKey) - 1;
constexpr char kFormatVersion[] = "2";
// "1" while closed cleanly: the meta column family then describes every
// value. Set to "0" at open, so a crash makes the next open rebuild the index
// from the values themselves.
constexpr char kCleanMarkerKey[] = "\0testfleet-cache-clean";
constexpr size_t kCleanMarkerKeySize = sizeof(kCleanMarkerKey) - 1;
constexpr size_t kMetaSize = 24;  // bytes, access_ms, expires_ms

void PutInt64(char* out, int64_t value) {
  auto v = static_cast<uint64_t>(value);
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void PutUint32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t GetUint32(const char* in) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

int64_t GetInt64(const char* in) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return static_cast<int64_t>(v);
}

// XXH3 (the checksum RocksDB itself prefers): a tenth of zlib's crc32 cost
// on a 1 KiB value.
uint32_t Checksum(const char* data, size_t size) {
  return static_cast<uint32_t>(XXH3_64bits(data, size));
}

std::string EncodeMeta(int64_t bytes, int64_t access_ms, int64_t expires_ms) {
  std::string meta(kMetaSize, '\0');
  PutInt64(&meta[0], bytes);
  PutInt64(&meta[8], access_ms);
  PutInt64(&meta[16], expires_ms);
  return meta;
}

rocksdb::Slice AsSlice(const std::array<char, 32>& key) {
  return rocksdb::Slice(key.data(), key.size());
}
rocksdb::Slice AsSlice(const std::array<char, 33>& key) {
  return rocksdb::Slice(key.data(), key.size());
}

}  // namespace

ResultCache::IndexKey ResultCache::MakeIndexKey(char kind, const RawKey& hash) {
  IndexKey key;
  key[0] = kind;
  std::memcpy(key.data() + 1, hash.data(), hash.size());
  return key;
}

// The meta column family's key of an entry: a result's is its bare hash (as
// before blobs existed), the others' their index key.
static rocksdb::Slice MetaKey(const std::array<char, 33>& key) {
  return key[0] == 'r' ? rocksdb::Slice(key.data() + 1, 32) : AsSlice(key);
}

// Its value, its metadata and two keys.
int64_t ResultCache::EntryBytes(size_t value_size) {
  return static_cast<int64_t>(value_size + 2 * 32 + kMetaSize);
}

ResultCache::ResultCache(const ResultCacheOptions& options)
    : options_(options),
      disk_(std::make_unique<DiskSpaceGuard>(options.dir, options.min_free_disk,
                                             options.clock)) {
  // Generations of blob uploads must differ across restarts too.
  uint64_t seed = 0;
  std::string raw = *HexToBytes(RandomHex(8));
  std::memcpy(&seed, raw.data(), sizeof(seed));
  next_generation_ = seed;
}

ResultCache::~ResultCache() {
  if (db_ == nullptr) return;
  auto flushed = FlushMetadata();
  if (flushed.ok()) {
    rocksdb::Status s =
        db_->Put(rocksdb::WriteOptions(), handles_[1],
                 rocksdb::Slice(kCleanMarkerKey, kCleanMarkerKeySize), "1");
    if (!s.ok()) spdlog::warn("result cache: {}", s.ToString());
  } else {
    spdlog::warn("result cache: {}", flushed.status().ToString());
  }
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle);
  db_->Close();
}

absl::StatusOr<std::unique_ptr<ResultCache>> ResultCache::Open(
    const ResultCacheOptions& options) {
  const std::string& dir = options.dir;
  if (dir.empty()) return absl::InvalidArgumentError("cache dir is empty");
  std::error_code ec;
  bool existed = fs::exists(dir, ec);
  if (!existed) {
    fs::create_directories(dir, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create cache dir ", dir, ": ", ec.message(),
                       "; choose a writable cache dir"));
    }
  } else if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cache dir ", dir, " is not a folder"));
  }
  if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cache dir ", dir, " is not writable: ", std::strerror(errno),
        "; fix its permissions or choose another cache dir"));
  }
  bool fresh = !fs::exists(fs::path(dir) / "CURRENT", ec);
  if (fresh && existed && !fs::is_empty(dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir,
        " is not a Testfleet cache (it holds other files); choose an empty "
        "or new cache dir"));
  }

  auto cache = std::unique_ptr<ResultCache>(new ResultCache(options));
  rocksdb::Options db_options = CacheDbOptions();
  std::vector<rocksdb::ColumnFamilyDescriptor> families = CacheColumnFamilies();
  if (!fresh) {
    std::vector<std::string> existing;
    rocksdb::DB::ListColumnFamilies(db_options, dir, &existing);
    if (std::find(existing.begin(), existing.end(), "meta") == existing.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir,
          " is a RocksDB database but not a Testfleet cache; choose "
          "another cache dir"));
    }
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, dir, families, &cache->handles_, &db);
  if (!s.ok()) return CacheDirError(s, dir);
  cache->db_.reset(db);

  rocksdb::Slice marker_key(kFormatMarkerKey, kFormatMarkerKeySize);
  if (fresh) {
    s = db->Put(rocksdb::WriteOptions(), cache->handles_[1], marker_key,
                kFormatVersion);
    if (!s.ok()) return CacheDirError(s, dir);
  } else {
    std::string version;
    s = db->Get(rocksdb::ReadOptions(), cache->handles_[1], marker_key,
                &version);
    int found_format = 0, current_format = 0;
    if (s.ok() && absl::SimpleAtoi(version, &found_format) &&
        absl::SimpleAtoi(kFormatVersion, &current_format) &&
        found_format < current_format) {
      // Ours, from an older Testfleet: a cache only saves re-runs, so it is
      // started afresh rather than refused forever.
      spdlog::warn(
          "result cache {} has format {} from an older Testfleet; starting it "
          "afresh in format {}",
          dir, version, kFormatVersion);
      cache.reset();
      rocksdb::Status destroyed =
          rocksdb::DestroyDB(dir, db_options, CacheColumnFamilies());
      if (!destroyed.ok()) return CacheDirError(destroyed, dir);
      return Open(options);
    }
    if (!s.ok() || version != kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, " is not a Testfleet cache of format ", kFormatVersion,
          " (format marker ", s.ok() ? version : "missing",
          "); choose another cache dir"));
    }
  }
  rocksdb::Slice clean_key(kCleanMarkerKey, kCleanMarkerKeySize);
  std::string clean;
  const bool closed_cleanly =
      fresh ||
      (db->Get(rocksdb::ReadOptions(), cache->handles_[1], clean_key, &clean)
           .ok() &&
       clean == "1");
  rocksdb::WriteOptions sync;
  sync.sync = true;
  s = db->Put(sync, cache->handles_[1], clean_key, "0");
  if (!s.ok()) return CacheDirError(s, dir);
  RETURN_IF_ERROR(closed_cleanly ? cache->LoadIndex() : cache->RebuildIndex());
  return cache;
}

absl::StatusOr<ResultCache::RawKey> ResultCache::ParseKey(
    const std::string& key) {
  RawKey raw_key;
  if (key.size() != 2 * sizeof(RawKey) || !DecodeHex(key, raw_key.data())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache key \"", key, "\" is not 64 hex characters (a SHA-256)"));
  }
  return raw_key;
}

int64_t ResultCache::NowMs() const {
  return absl::ToUnixMillis(options_.clock->Now());
}

absl::Status ResultCache::LoadIndex() {
  std::vector<IndexRecord> records;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[1]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice key = it->key();
    rocksdb::Slice value = it->value();
    IndexRecord record;
    if (key.size() == sizeof(RawKey)) {
      record.key[0] = kResultKind;
      std::memcpy(record.key.data() + 1, key.data(), sizeof(RawKey));
    } else if (key.size() == sizeof(IndexKey) && key[0] == kActionKind) {
      std::memcpy(record.key.data(), key.data(), sizeof(IndexKey));
    } else {
      continue;  // blobs: LoadBlobIndex
    }
    if (value.size() != kMetaSize) continue;
    record.bytes = GetInt64(value.data());
    record.access_ms = GetInt64(value.data() + 8);
    record.expires_ms = GetInt64(value.data() + 16);
    records.push_back(record);
  }
  if (!it->status().ok()) return CacheDirError(it->status(), options_.dir);
  RETURN_IF_ERROR(LoadBlobIndex(&records));
  return InstallIndex(std::move(records), /*persist=*/false);
}

absl::Status ResultCache::RebuildIndex() {
  const absl::Time started = absl::Now();
  // Access times the metadata already had; new entries' come from the value.
  absl::flat_hash_map<IndexKey, int64_t> access;
  std::unique_ptr<rocksdb::Iterator> meta(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[1]));
  for (meta->SeekToFirst(); meta->Valid(); meta->Next()) {
    rocksdb::Slice key = meta->key();
    if (meta->value().size() != kMetaSize) continue;
    IndexKey index_key;
    if (key.size() == sizeof(RawKey)) {
      index_key[0] = kResultKind;
      std::memcpy(index_key.data() + 1, key.data(), sizeof(RawKey));
    } else if (key.size() == sizeof(IndexKey) && key[0] == kActionKind) {
      std::memcpy(index_key.data(), key.data(), sizeof(IndexKey));
    } else {
      continue;
    }
    access[index_key] = GetInt64(meta->value().data() + 8);
  }
  // Results and action results are rebuilt from their values; blobs from
  // their metadata, which is written with a blob's last chunk.
  std::vector<IndexRecord> records;
  for (char kind : {kResultKind, kActionKind}) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(
        rocksdb::ReadOptions(), handles_[kind == kResultKind ? 0 : 3]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      rocksdb::Slice key = it->key();
      rocksdb::Slice value = it->value();
      // Anything malformed is kept out of the index; a lookup never sees it
      // and eviction of its neighbours will not count it.
      if (key.size() != sizeof(RawKey) || value.size() < kValueHeader) continue;
      IndexRecord record;
      record.key[0] = kind;
      std::memcpy(record.key.data() + 1, key.data(), sizeof(RawKey));
      record.bytes = EntryBytes(value.size());
      record.expires_ms = GetInt64(value.data() + 8);
      auto known = access.find(record.key);
      record.access_ms =
          known != access.end() ? known->second : GetInt64(value.data() + 16);
      records.push_back(record);
    }
    if (!it->status().ok()) return CacheDirError(it->status(), options_.dir);
  }
  RETURN_IF_ERROR(LoadBlobIndex(&records));
  RETURN_IF_ERROR(RemoveOrphanChunks(records));
  spdlog::warn(
      "result cache {} was not closed cleanly; rebuilt its index of {} entries "
      "in {}",
      options_.dir, records.size(),
      absl::FormatDuration(absl::Now() - started));
  return InstallIndex(std::move(records), /*persist=*/true);
}

absl::Status ResultCache::InstallIndex(std::vector<IndexRecord> records,
                                       bool persist) {
  const int64_t now = NowMs();
  std::vector<DiskKey> expired;
  std::sort(records.begin(), records.end(),
            [](const IndexRecord& a, const IndexRecord& b) {
              return a.access_ms < b.access_ms;
            });
  {
    absl::MutexLock lock(&mu_);
    index_.reserve(records.size());
    for (const IndexRecord& record : records) {
      if (record.expires_ms <= now) {
        expired.push_back({record.key, record.blob_size, record.generation});
        continue;
      }
      Entry& entry = InsertLocked(record.key, record.bytes, record.access_ms,
                                  record.expires_ms);
      entry.blob_size = record.blob_size;
      entry.generation = record.generation;
      if (persist) {
        entry.access_dirty = true;
        dirty_access_.push_back(record.key);
      }
    }
    counters_.set_expirations(static_cast<int64_t>(expired.size()));
  }
  RETURN_IF_ERROR(DeleteFromDisk(expired));
  if (persist) return FlushMetadata().status();
  return absl::OkStatus();
}

void ResultCache::Unlink(Entry* entry) {
  if (!entry->linked) return;
  if (entry->newer) entry->newer->older = entry->older;
  if (entry->older) entry->older->newer = entry->newer;
  if (newest_ == entry) newest_ = entry->older;
  if (oldest_ == entry) oldest_ = entry->newer;
  entry->newer = entry->older = nullptr;
  entry->linked = false;
  --linked_;
}

void ResultCache::PushNewest(Entry* entry) {
  entry->older = newest_;
  entry->newer = nullptr;
  if (newest_) newest_->newer = entry;
  newest_ = entry;
  if (oldest_ == nullptr) oldest_ = entry;
  entry->linked = true;
  ++linked_;
}

v1::CacheKindStats& ResultCache::KindStats(char kind) {
  return kind == kBlobKind     ? blob_stats_
         : kind == kActionKind ? action_stats_
                               : result_totals_;
}

void ResultCache::Account(const Entry& entry, int sign) {
  total_bytes_ += sign * entry.bytes;
  v1::CacheKindStats& kind = KindStats((*entry.key)[0]);
  kind.set_bytes(kind.bytes() + sign * entry.bytes);
  kind.set_entries(kind.entries() + sign);
}

ResultCache::Entry& ResultCache::InsertLocked(const IndexKey& key,
                                              int64_t bytes, int64_t now_ms,
                                              int64_t expires_ms) {
  auto [slot, inserted] = index_.try_emplace(key);
  Entry& entry = slot->second;
  if (!inserted) {
    Unlink(&entry);
    Account(entry, -1);
  }
  entry.key = &slot->first;
  entry.bytes = bytes;
  entry.access_ms = now_ms;
  entry.stored_access_ms = now_ms;
  entry.expires_ms = expires_ms;
  // A replaced pinned entry stays pinned (and off the LRU list).
  if (entry.pins == 0) PushNewest(&entry);
  Account(entry, 1);
  return entry;
}

ResultCache::DiskKey ResultCache::EraseLocked(const IndexKey& key) {
  DiskKey disk_key{key};
  auto it = index_.find(key);
  if (it == index_.end()) return disk_key;
  Unlink(&it->second);
  Account(it->second, -1);
  disk_key.blob_size = it->second.blob_size;
  disk_key.generation = it->second.generation;
  index_.erase(it);
  return disk_key;
}

ResultCache::Entry* ResultCache::UseLocked(const IndexKey& key, int64_t now_ms,
                                           std::vector<DiskKey>* expired) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  Entry& entry = it->second;
  if (entry.expires_ms <= now_ms && entry.pins == 0) {
    expired->push_back(EraseLocked(key));
    v1::CacheKindStats& kind = KindStats(key[0]);
    if (key[0] == kResultKind) {
      counters_.set_expirations(counters_.expirations() + 1);
    } else {
      kind.set_expirations(kind.expirations() + 1);
    }
    return nullptr;
  }
  if (entry.pins == 0) {
    Unlink(&entry);
    PushNewest(&entry);
  }
  entry.access_ms = now_ms;
  // A result is valid for the TTL after it was stored; blobs and action
  // results live for the TTL after their last use.
  if (key[0] != kResultKind)
    entry.expires_ms = now_ms + absl::ToInt64Milliseconds(options_.ttl);
  if (!entry.access_dirty &&
      now_ms - entry.stored_access_ms >=
          absl::ToInt64Milliseconds(options_.recency_granularity)) {
    entry.access_dirty = true;
    dirty_access_.push_back(key);
  }
  return &entry;
}

std::vector<ResultCache::DiskKey> ResultCache::EvictLocked(size_t spared) {
  std::vector<DiskKey> victims;
  while (total_bytes_ > options_.max_bytes && linked_ > spared) {
    const char kind = (*oldest_->key)[0];
    victims.push_back(EraseLocked(*oldest_->key));
    if (kind == kResultKind) {
      counters_.set_evictions(counters_.evictions() + 1);
    } else {
      v1::CacheKindStats& stats = KindStats(kind);
      stats.set_evictions(stats.evictions() + 1);
    }
  }
  return victims;
}

absl::Status ResultCache::DeleteFromDisk(absl::Span<const DiskKey> keys) {
  if (keys.empty()) return absl::OkStatus();
  rocksdb::WriteBatch batch;
  for (const DiskKey& disk_key : keys) {
    const IndexKey& key = disk_key.key;
    RawKey hash;
    std::memcpy(hash.data(), key.data() + 1, hash.size());
    batch.Delete(handles_[1], MetaKey(key));
    if (key[0] == kResultKind) batch.Delete(handles_[0], AsSlice(hash));
    if (key[0] == kActionKind) batch.Delete(handles_[3], AsSlice(hash));
    if (key[0] == kBlobKind && disk_key.blob_size > 0) {
      const int64_t chunks =
          (disk_key.blob_size + kBlobChunkBytes - 1) / kBlobChunkBytes;
      for (int64_t chunk = 0; chunk < chunks; ++chunk)
        batch.Delete(handles_[2], ChunkKey(hash, disk_key.generation, chunk));
    }
  }
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return CacheDirError(s, options_.dir);
  return absl::OkStatus();
}

absl::Status ResultCache::DeleteResults(absl::Span<const RawKey> keys) {
  std::vector<DiskKey> disk_keys;
  disk_keys.reserve(keys.size());
  for (const RawKey& key : keys)
    disk_keys.push_back({MakeIndexKey(kResultKind, key)});
  return DeleteFromDisk(disk_keys);
}

absl::StatusOr<std::optional<v1::CachedResult>> ResultCache::Lookup(
    const std::string& key) {
  ASSIGN_OR_RETURN(RawKey raw_key, ParseKey(key));
  std::optional<v1::CachedResult> result;
  RETURN_IF_ERROR(LookupRaw({&raw_key, 1}, {&result, 1}));
  return result;
}

absl::StatusOr<std::vector<std::optional<v1::CachedResult>>>
ResultCache::BatchLookup(const std::vector<std::string>& keys) {
  std::vector<RawKey> raw_keys;
  raw_keys.reserve(keys.size());
  for (const std::string& key : keys) {
    ASSIGN_OR_RETURN(raw_keys.emplace_back(), ParseKey(key));
  }
  std::vector<std::optional<v1::CachedResult>> results(keys.size());
  RETURN_IF_ERROR(LookupRaw(raw_keys, absl::MakeSpan(results)));
  return results;
}

ResultCache::FetchOutcome ResultCache::Fetch(
    absl::Span<const RawKey> keys, absl::Span<const size_t> wanted,
    absl::Span<std::optional<v1::CachedResult>> results) const {
  // No copy out of the block cache.
  Small<rocksdb::Slice> slices;
  slices.reserve(wanted.size());
  for (size_t i : wanted) slices.emplace_back(keys[i].data(), keys[i].size());
  Small<rocksdb::PinnableSlice> values(wanted.size());
  Small<rocksdb::Status> statuses(wanted.size());
  if (wanted.size() == 1) {
    statuses[0] =
        db_->Get(rocksdb::ReadOptions(), handles_[0], slices[0], &values[0]);
  } else if (!wanted.empty()) {
    db_->MultiGet(rocksdb::ReadOptions(), handles_[0], wanted.size(),
                  slices.data(), values.data(), statuses.data());
  }
  FetchOutcome outcome;
  for (size_t j = 0; j < wanted.size(); ++j) {
    const RawKey& key = keys[wanted[j]];
    const rocksdb::PinnableSlice& value = values[j];
    if (statuses[j].IsCorruption()) {
      // A damaged block is this entry's loss, not the cache's: a miss,
      // counted, and deleted so the next put rewrites it.
      // Said once per read: a damaged block holds many entries.
      if (outcome.corrupt++ == 0) {
        spdlog::warn(
            "result cache: entry {} is in a damaged block ({}); it and any "
            "others there are deleted and missed",
            BytesToHex(absl::string_view(key.data(), key.size())),
            statuses[j].ToString());
      }
      outcome.lost.push_back(key);
      continue;
    }
    if (!statuses[j].ok() && !statuses[j].IsNotFound()) {
      outcome.error = CacheDirError(statuses[j], options_.dir);
      return outcome;
    }
    std::optional<v1::CachedResult>& result = results[wanted[j]];
    if (statuses[j].ok()) {
      result.emplace();
      absl::string_view payload;
      if (!CheckValue(absl::string_view(value.data(), value.size()),
                      &payload) ||
          !result->ParseFromArray(payload.data(),
                                  static_cast<int>(payload.size()))) {
        result.reset();
        ++outcome.corrupt;
        spdlog::warn("result cache: entry {} failed its checksum; deleted",
                     BytesToHex(absl::string_view(key.data(), key.size())));
      }
    }
    if (result.has_value()) {
      ++outcome.hits;
    } else {
      outcome.lost.push_back(key);
    }
  }
  return outcome;
}

absl::Status ResultCache::LookupRaw(
    absl::Span<const RawKey> keys,
    absl::Span<std::optional<v1::CachedResult>> results) {
  const int64_t now = NowMs();
  Small<size_t> live;  // indices into `keys` the index holds
  std::vector<DiskKey> expired;
  bool flush_due = false;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (UseLocked(MakeIndexKey(kResultKind, keys[i]), now, &expired) ==
          nullptr) {
        counters_.set_misses(counters_.misses() + 1);
        continue;
      }
      live.push_back(i);
    }
    flush_due =
        static_cast<int>(dirty_access_.size()) >= options_.recency_flush_every;
  }
  RETURN_IF_ERROR(DeleteFromDisk(expired));

  // Values outside the lock. A large batch (a suite's lookups at submit)
  // is read and checked in chunks side by side: its MultiGet and checksums
  // take milliseconds, while the caller waits with cores idle.
  // (hardware_concurrency reads /sys: once, not per lookup.)
  static const size_t kCores =
      std::max(1u, std::thread::hardware_concurrency());
  const size_t chunks =
      std::clamp<size_t>(live.size() / kKeysPerFetchChunk, 1, kCores);
  Small<FetchOutcome> outcomes(chunks);
  auto fetch = [&](size_t chunk) {
    const size_t begin = live.size() * chunk / chunks;
    const size_t end = live.size() * (chunk + 1) / chunks;
    outcomes[chunk] = Fetch(
        keys, absl::MakeConstSpan(live).subspan(begin, end - begin), results);
  };
  {
    std::vector<std::thread> helpers;
    for (size_t chunk = 1; chunk < chunks; ++chunk)
      helpers.emplace_back(fetch, chunk);
    fetch(0);
    for (std::thread& helper : helpers) helper.join();
  }
  Small<RawKey> lost;  // gone from disk or corrupt: never a wrong hit
  int64_t hits = 0, corrupt = 0;
  for (FetchOutcome& outcome : outcomes) {
    RETURN_IF_ERROR(outcome.error);
    hits += outcome.hits;
    corrupt += outcome.corrupt;
    lost.insert(lost.end(), outcome.lost.begin(), outcome.lost.end());
  }
  hits_.fetch_add(hits, std::memory_order_relaxed);  // no second lock per hit
  if (!lost.empty()) {
    {
      absl::MutexLock lock(&mu_);
      for (const RawKey& key : lost)
        EraseLocked(MakeIndexKey(kResultKind, key));
      counters_.set_misses(counters_.misses() +
                           static_cast<int64_t>(lost.size()));
      counters_.set_corrupt(counters_.corrupt() + corrupt);
    }
    RETURN_IF_ERROR(DeleteResults(lost));
  }
  if (flush_due) RETURN_IF_ERROR(FlushMetadata().status());
  return absl::OkStatus();
}

absl::StatusOr<ResultCache::Encoded> ResultCache::Encode(
    const std::string& key, const v1::CachedResult& value, int64_t now_ms,
    int64_t expires_ms) {
  Encoded out;
  ASSIGN_OR_RETURN(out.key, ParseKey(key));
  out.value = EncodeValue(value, now_ms, expires_ms);
  return out;
}

std::string ResultCache::EncodeValue(
    const google::protobuf::MessageLite& message, int64_t now_ms,
    int64_t expires_ms) {
  std::string encoded(kValueHeader, '\0');
  std::memcpy(&encoded[0], kValueMagic, 4);
  PutInt64(&encoded[8], expires_ms);
  PutInt64(&encoded[16], now_ms);
  message.AppendToString(&encoded);
  PutUint32(&encoded[4], Checksum(encoded.data() + 8, encoded.size() - 8));
  return encoded;
}

bool ResultCache::CheckValue(absl::string_view value,
                             absl::string_view* payload) {
  if (value.size() < kValueHeader ||
      std::memcmp(value.data(), kValueMagic, 4) != 0 ||
      GetUint32(value.data() + 4) !=
          Checksum(value.data() + 8, value.size() - 8)) {
    return false;
  }
  *payload = value.substr(kValueHeader);
  return true;
}

absl::Status ResultCache::Put(const std::string& key,
                              const v1::CachedResult& value) {
  const int64_t now = NowMs();
  const int64_t expires = now + absl::ToInt64Milliseconds(options_.ttl);
  std::vector<Encoded> entries(1);
  ASSIGN_OR_RETURN(entries[0], Encode(key, value, now, expires));
  return Store(entries, now, expires);
}

absl::Status ResultCache::Put(const CacheEntries& entries) {
  const int64_t now = NowMs();
  const int64_t expires = now + absl::ToInt64Milliseconds(options_.ttl);
  std::vector<Encoded> encoded;
  encoded.reserve(entries.size());
  for (const auto& [key, value] : entries) {
    ASSIGN_OR_RETURN(encoded.emplace_back(), Encode(key, value, now, expires));
  }
  return Store(encoded, now, expires);
}

absl::Status ResultCache::Store(const std::vector<Encoded>& entries,
                                int64_t now_ms, int64_t expires_ms) {
  if (entries.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(disk_->Check());
  rocksdb::WriteBatch batch;
  for (const Encoded& entry : entries) {
    batch.Put(handles_[0], rocksdb::Slice(entry.key.data(), entry.key.size()),
              entry.value);
  }
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return CacheDirError(s, options_.dir);

  std::vector<DiskKey> victims;
  bool flush_due = false;
  {
    absl::MutexLock lock(&mu_);
    std::vector<const Entry*> written;
    for (const Encoded& encoded : entries) {
      Entry& entry =
          InsertLocked(MakeIndexKey(kResultKind, encoded.key),
                       EntryBytes(encoded.value.size()), now_ms, expires_ms);
      // The metadata follows in a batch: the value alone is the durable
      // record (an unclean close rebuilds the index from the values).
      if (!entry.access_dirty) {
        entry.access_dirty = true;
        dirty_access_.push_back(*entry.key);
      }
      written.push_back(&entry);
    }
    counters_.set_puts(counters_.puts() + static_cast<int64_t>(entries.size()));
    flush_due =
        static_cast<int>(dirty_access_.size()) >= options_.recency_flush_every;
    // Evict from the least recently used end, never what this put wrote:
    // those are the newest `written` entries (fewer if a key came twice).
    std::sort(written.begin(), written.end());
    const size_t kept = static_cast<size_t>(
        std::unique(written.begin(), written.end()) - written.begin());
    victims = EvictLocked(kept);
  }
  RETURN_IF_ERROR(DeleteFromDisk(victims));
  if (flush_due) return FlushMetadata().status();
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ResultCache::SweepExpired() {
  std::vector<DiskKey> expired;
  const int64_t now = NowMs();
  {
    absl::MutexLock lock(&mu_);
    std::vector<IndexKey> keys;
    for (const auto& [key, entry] : index_) {
      if (entry.expires_ms <= now && entry.pins == 0) keys.push_back(key);
    }
    for (const IndexKey& key : keys) {
      expired.push_back(EraseLocked(key));
      if (key[0] == kResultKind) {
        counters_.set_expirations(counters_.expirations() + 1);
      } else {
        v1::CacheKindStats& kind = KindStats(key[0]);
        kind.set_expirations(kind.expirations() + 1);
      }
    }
  }
  RETURN_IF_ERROR(DeleteFromDisk(expired));
  return static_cast<int64_t>(expired.size());
}

absl::StatusOr<int64_t> ResultCache::PurgeWriter(const std::string& writer) {
  std::vector<RawKey> written;
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[0]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice value = it->value();
    v1::CachedResult entry;
    if (it->key().size() != sizeof(RawKey) || value.size() < kValueHeader ||
        !entry.ParseFromArray(value.data() + kValueHeader,
                              static_cast<int>(value.size() - kValueHeader)) ||
        entry.writer() != writer) {
      continue;
    }
    RawKey key;
    std::memcpy(key.data(), it->key().data(), sizeof(RawKey));
    written.push_back(key);
  }
  if (!it->status().ok()) return CacheDirError(it->status(), options_.dir);
  {
    absl::MutexLock lock(&mu_);
    for (const RawKey& key : written)
      EraseLocked(MakeIndexKey(kResultKind, key));
  }
  RETURN_IF_ERROR(DeleteResults(written));
  spdlog::info("result cache {}: removed {} entries written by {}",
               options_.dir, written.size(), writer);
  return static_cast<int64_t>(written.size());
}

absl::StatusOr<int64_t> ResultCache::ScrubDamaged() {
  std::vector<RawKey> keys;
  {
    absl::MutexLock lock(&mu_);
    keys.reserve(index_.size());
    for (const auto& [key, entry] : index_) {
      if (key[0] != kResultKind) continue;  // blobs are checked as read
      RawKey& hash = keys.emplace_back();
      std::memcpy(hash.data(), key.data() + 1, hash.size());
    }
  }
  int64_t damaged = 0;
  std::vector<size_t> chunk;
  std::vector<std::optional<v1::CachedResult>> values(keys.size());
  for (size_t begin = 0; begin < keys.size(); begin += kKeysPerFetchChunk) {
    const size_t end = std::min(keys.size(), begin + kKeysPerFetchChunk);
    chunk.clear();
    for (size_t i = begin; i < end; ++i) chunk.push_back(i);
    FetchOutcome outcome = Fetch(keys, chunk, absl::MakeSpan(values));
    for (size_t i = begin; i < end; ++i) values[i].reset();  // read, not kept
    RETURN_IF_ERROR(outcome.error);
    if (outcome.lost.empty()) continue;
    {
      absl::MutexLock lock(&mu_);
      for (const RawKey& key : outcome.lost)
        EraseLocked(MakeIndexKey(kResultKind, key));
      counters_.set_corrupt(counters_.corrupt() + outcome.corrupt);
    }
    damaged += outcome.corrupt;
    RETURN_IF_ERROR(DeleteResults(outcome.lost));
  }
  return damaged;
}

absl::StatusOr<v1::CacheGcResponse> ResultCache::Gc(const std::string& writer) {
  v1::CacheGcResponse response;
  ASSIGN_OR_RETURN(int64_t removed, SweepExpired());
  response.set_expired_removed(removed);
  ASSIGN_OR_RETURN(int64_t damaged, ScrubDamaged());
  response.set_corrupt_removed(damaged);
  if (!writer.empty()) {
    ASSIGN_OR_RETURN(int64_t purged, PurgeWriter(writer));
    response.set_writer_removed(purged);
  }
  *response.mutable_stats() = Stats();
  return response;
}

absl::StatusOr<int64_t> ResultCache::FlushMetadata() {
  rocksdb::WriteBatch batch;
  {
    absl::MutexLock lock(&mu_);
    for (const IndexKey& key : dirty_access_) {
      auto it = index_.find(key);
      if (it == index_.end() || !it->second.access_dirty) continue;
      Entry& entry = it->second;
      entry.access_dirty = false;
      entry.stored_access_ms = entry.access_ms;
      batch.Put(handles_[1], MetaKey(key),
                key[0] == kBlobKind ? EncodeBlobMeta(entry)
                                    : EncodeMeta(entry.bytes, entry.access_ms,
                                                 entry.expires_ms));
    }
    dirty_access_.clear();
  }
  if (batch.Count() == 0) return 0;
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return CacheDirError(s, options_.dir);
  return static_cast<int64_t>(batch.Count());
}

v1::CacheStats ResultCache::Stats() const {
  absl::MutexLock lock(&mu_);
  v1::CacheStats stats = counters_;
  stats.set_hits(hits_.load(std::memory_order_relaxed));
  stats.set_bytes(total_bytes_);
  stats.set_entries(static_cast<int64_t>(index_.size()));
  stats.set_max_bytes(options_.max_bytes);
  stats.set_ttl_ms(absl::ToInt64Milliseconds(options_.ttl));
  v1::CacheKindStats& results = *stats.mutable_results();
  results = result_totals_;
  results.set_hits(stats.hits());
  results.set_misses(stats.misses());
  results.set_evictions(stats.evictions());
  results.set_expirations(stats.expirations());
  results.set_corrupt(stats.corrupt());
  results.set_puts(stats.puts());
  *stats.mutable_blobs() = blob_stats_;
  *stats.mutable_action_results() = action_stats_;
  return stats;
}

}  // namespace testfleet
