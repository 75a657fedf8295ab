// ResultCache's in-memory index: loaded or rebuilt at open, kept in LRU
// order, and eviction by it.
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
using result_cache_format::GetInt64;
using result_cache_format::kMetaSize;
using result_cache_format::kValueHeader;

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

}  // namespace testfleet
