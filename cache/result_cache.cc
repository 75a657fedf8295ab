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
#include "cache/result_cache_format.h"
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
using result_cache_format::AsSlice;
using result_cache_format::Checksum;
using result_cache_format::GetUint32;
using result_cache_format::kCleanMarkerKey;
using result_cache_format::kCleanMarkerKeySize;
using result_cache_format::kFormatMarkerKey;
using result_cache_format::kFormatMarkerKeySize;
using result_cache_format::kFormatVersion;
using result_cache_format::kKeysPerFetchChunk;
using result_cache_format::kKeysPerMultiGet;
using result_cache_format::kMetaSize;
using result_cache_format::kValueHeader;
using result_cache_format::kValueMagic;
using result_cache_format::MetaKey;
using result_cache_format::PutInt64;
using result_cache_format::PutUint32;

}  // namespace

ResultCache::IndexKey ResultCache::MakeIndexKey(char kind, const RawKey& hash) {
  IndexKey key;
  key[0] = kind;
  std::memcpy(key.data() + 1, hash.data(), hash.size());
  return key;
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

namespace {

// One MultiGet's keys, values or statuses.
template <typename T>
using Group = absl::InlinedVector<T, kKeysPerMultiGet>;

// Parses a hit's payload into its slot; false (corrupt) when it does not.
bool ParseInto(std::optional<v1::CachedResult>& slot,
               absl::string_view payload) {
  slot.emplace();
  if (slot->ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return true;
  slot.reset();
  return false;
}

}  // namespace

absl::StatusOr<std::optional<v1::CachedResult>> ResultCache::Lookup(
    const std::string& key) {
  ASSIGN_OR_RETURN(RawKey raw_key, ParseKey(key));
  std::optional<v1::CachedResult> result;
  RETURN_IF_ERROR(LookupRaw({&raw_key, 1}, [&](size_t, absl::string_view p) {
    return ParseInto(result, p);
  }));
  return result;
}

absl::StatusOr<std::vector<ResultCache::RawKey>> ResultCache::ParseKeys(
    const std::vector<std::string>& keys) {
  std::vector<RawKey> raw_keys;
  raw_keys.reserve(keys.size());
  for (const std::string& key : keys) {
    ASSIGN_OR_RETURN(raw_keys.emplace_back(), ParseKey(key));
  }
  return raw_keys;
}

absl::StatusOr<std::vector<std::optional<v1::CachedResult>>>
ResultCache::BatchLookup(const std::vector<std::string>& keys) {
  ASSIGN_OR_RETURN(std::vector<RawKey> raw_keys, ParseKeys(keys));
  std::vector<std::optional<v1::CachedResult>> results(keys.size());
  RETURN_IF_ERROR(LookupRaw(raw_keys, [&](size_t i, absl::string_view p) {
    return ParseInto(results[i], p);
  }));
  return results;
}

absl::StatusOr<std::vector<std::optional<std::string>>>
ResultCache::BatchLookupEncoded(const std::vector<std::string>& keys) {
  ASSIGN_OR_RETURN(std::vector<RawKey> raw_keys, ParseKeys(keys));
  std::vector<std::optional<std::string>> results(keys.size());
  RETURN_IF_ERROR(LookupRaw(raw_keys, [&](size_t i, absl::string_view p) {
    results[i].emplace(p);
    return true;
  }));
  return results;
}

ResultCache::FetchOutcome ResultCache::Fetch(absl::Span<const RawKey> keys,
                                             absl::Span<const size_t> wanted,
                                             TakePayload take) const {
  // A batch (a suite's keys, a scrub of everything) reads most blocks
  // once; caching them would push out the blocks single lookups reuse.
  rocksdb::ReadOptions read;
  read.fill_cache = wanted.size() == 1;
  FetchOutcome outcome;
  for (size_t begin = 0; begin < wanted.size() && outcome.error.ok();
       begin += kKeysPerMultiGet) {
    ReadGroup(keys, wanted.subspan(begin, kKeysPerMultiGet), read, take,
              outcome);
  }
  return outcome;
}

void ResultCache::ReadGroup(absl::Span<const RawKey> keys,
                            absl::Span<const size_t> wanted,
                            const rocksdb::ReadOptions& read, TakePayload take,
                            FetchOutcome& outcome) const {
  // No copy out of the block cache.
  Group<rocksdb::Slice> slices;
  for (size_t i : wanted) slices.emplace_back(keys[i].data(), keys[i].size());
  Group<rocksdb::PinnableSlice> values(wanted.size());
  Group<rocksdb::Status> statuses(wanted.size());
  if (wanted.size() == 1) {
    statuses[0] = db_->Get(read, handles_[0], slices[0], &values[0]);
  } else {
    db_->MultiGet(read, handles_[0], wanted.size(), slices.data(),
                  values.data(), statuses.data());
  }
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
      return;
    }
    if (statuses[j].IsNotFound()) {
      outcome.lost.push_back(key);
      continue;
    }
    absl::string_view payload;
    if (CheckValue(absl::string_view(value.data(), value.size()), &payload) &&
        take(wanted[j], payload)) {
      ++outcome.hits;
      continue;
    }
    ++outcome.corrupt;
    outcome.lost.push_back(key);
    spdlog::warn("result cache: entry {} failed its checksum; deleted",
                 BytesToHex(absl::string_view(key.data(), key.size())));
  }
}

absl::Status ResultCache::LookupRaw(absl::Span<const RawKey> keys,
                                    TakePayload take) {
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
        keys, absl::MakeConstSpan(live).subspan(begin, end - begin), take);
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

}  // namespace testfleet
