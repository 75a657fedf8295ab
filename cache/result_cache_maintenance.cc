// ResultCache's upkeep: expiry sweeps, purges, scrubs, garbage collection,
// the metadata flush and the figures.
#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache/db_options.h"
#include "cache/result_cache.h"
#include "cache/result_cache_format.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"

namespace testfleet {
using result_cache_format::EncodeMeta;
using result_cache_format::kKeysPerFetchChunk;
using result_cache_format::kValueHeader;
using result_cache_format::MetaKey;

bool ResultCache::WaitForBackgroundWork(absl::Duration limit) {
  return testfleet::WaitForBackgroundWork(db_.get(), limit);
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
  for (size_t begin = 0; begin < keys.size(); begin += kKeysPerFetchChunk) {
    const size_t end = std::min(keys.size(), begin + kKeysPerFetchChunk);
    chunk.clear();
    for (size_t i = begin; i < end; ++i) chunk.push_back(i);
    FetchOutcome outcome =
        Fetch(keys, chunk, [](size_t, absl::string_view payload) {
          v1::CachedResult parsed;  // read to check, not kept
          return parsed.ParseFromArray(payload.data(),
                                       static_cast<int>(payload.size()));
        });
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
