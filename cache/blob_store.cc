// The CAS blobs and REAPI action results of ResultCache: one index, one LRU
// and one byte limit with the Testfleet results (result_cache.cc).
//
// A blob is stored in chunks of kBlobChunkBytes in the "blobs" column family
// (RocksDB BlobDB files), keyed by hash, generation and chunk number; each
// chunk carries a checksum of its bytes, checked on every read. A generation
// is one upload's: chunks arrive under it as they are received, and the
// blob's metadata record ("b" + hash in "meta": size, access and expiry time,
// generation), written with the last chunk once size and SHA-256 match, is
// what makes them a blob. So an upload that stops halfway or lies about its
// digest never replaces or shows as a blob, and two uploads of one blob do
// not write over each other's chunks.
#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "cache/db_options.h"
#include "cache/result_cache.h"
#include "cache/result_cache_format.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace testfleet {

using result_cache_format::AsSlice;

namespace {

constexpr size_t kChunkKeySize = 32 + 8 + 4;  // hash, generation, chunk
constexpr size_t kChunkHeader = 8;            // XXH3 of the bytes
constexpr size_t kBlobMetaSize = 32;  // size, access_ms, expires_ms, generation
// Blobs from this size up are written without the WAL (WriteChunk): one
// memtable flush per blob costs less than logging every byte twice.
constexpr int64_t kUnloggedBlobBytes = 64 << 20;
// Trees read to check an action result's completeness: larger ones make it a
// miss rather than a long read.
constexpr int64_t kMaxTreeBytes = 64 << 20;

void PutBigEndian(char* out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i, value >>= 8)
    out[i] = static_cast<char>(value & 0xff);
}

uint64_t GetBigEndian(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i)
    value = (value << 8) | static_cast<unsigned char>(in[i]);
  return value;
}

int64_t ChunkCount(int64_t size) {
  return (size + ResultCache::kBlobChunkBytes - 1) /
         ResultCache::kBlobChunkBytes;
}

// What a blob costs in the store: its bytes, its chunks' keys and headers,
// and its metadata.
int64_t BlobEntryBytes(int64_t size) {
  return size + ChunkCount(size) * (kChunkKeySize + kChunkHeader) + 33 +
         kBlobMetaSize;
}

// Every chunk carries an XXH3 of its bytes, checked as it is read; RocksDB's
// own CRC32C of the blob record would check them again, and Debian's
// portable RocksDB computes it without the CPU's CRC instruction (half the
// time of a large read went there).
const rocksdb::ReadOptions& ChunkReadOptions() {
  static const rocksdb::ReadOptions options = [] {
    rocksdb::ReadOptions read;
    read.verify_checksums = false;
    return read;
  }();
  return options;
}

}  // namespace

std::string ResultCache::ChunkKey(const RawKey& hash, uint64_t generation,
                                  int64_t chunk) {
  std::string key(kChunkKeySize, '\0');
  std::memcpy(&key[0], hash.data(), hash.size());
  PutBigEndian(&key[32], generation, 8);
  PutBigEndian(&key[40], static_cast<uint64_t>(chunk), 4);
  return key;
}

std::string ResultCache::EncodeBlobMeta(const Entry& entry) {
  std::string meta(kBlobMetaSize, '\0');
  PutBigEndian(&meta[0], static_cast<uint64_t>(entry.blob_size), 8);
  PutBigEndian(&meta[8], static_cast<uint64_t>(entry.access_ms), 8);
  PutBigEndian(&meta[16], static_cast<uint64_t>(entry.expires_ms), 8);
  PutBigEndian(&meta[24], entry.generation, 8);
  return meta;
}

uint64_t ResultCache::NextGeneration() {
  return next_generation_.fetch_add(1, std::memory_order_relaxed);
}

absl::Status ResultCache::LoadBlobIndex(std::vector<IndexRecord>* records) {
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), handles_[1]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice key = it->key();
    rocksdb::Slice value = it->value();
    if (key.size() != sizeof(IndexKey) || key[0] != kBlobKind ||
        value.size() != kBlobMetaSize)
      continue;
    IndexRecord& record = records->emplace_back();
    std::memcpy(record.key.data(), key.data(), sizeof(IndexKey));
    record.blob_size = static_cast<int64_t>(GetBigEndian(value.data(), 8));
    record.access_ms = static_cast<int64_t>(GetBigEndian(value.data() + 8, 8));
    record.expires_ms =
        static_cast<int64_t>(GetBigEndian(value.data() + 16, 8));
    record.generation = GetBigEndian(value.data() + 24, 8);
    record.bytes = BlobEntryBytes(record.blob_size);
  }
  if (!it->status().ok()) return CacheDirError(it->status(), options_.dir);
  return absl::OkStatus();
}

absl::Status ResultCache::RemoveOrphanChunks(
    const std::vector<IndexRecord>& records) {
  // Chunks of uploads a crash interrupted belong to no blob.
  absl::flat_hash_set<std::string> owned;
  for (const IndexRecord& record : records) {
    if (record.key[0] != kBlobKind) continue;
    RawKey hash;
    std::memcpy(hash.data(), record.key.data() + 1, hash.size());
    owned.insert(ChunkKey(hash, record.generation, 0).substr(0, 40));
  }
  rocksdb::WriteBatch batch;
  rocksdb::ReadOptions read;
  read.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read, handles_[2]));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice key = it->key();
    if (key.size() == kChunkKeySize &&
        owned.contains(absl::string_view(key.data(), 40)))
      continue;
    batch.Delete(handles_[2], key);
  }
  if (!it->status().ok()) return CacheDirError(it->status(), options_.dir);
  if (batch.Count() == 0) return absl::OkStatus();
  spdlog::warn("result cache {}: removed {} chunks of unfinished uploads",
               options_.dir, batch.Count());
  rocksdb::Status s = db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return CacheDirError(s, options_.dir);
  return absl::OkStatus();
}

std::vector<bool> ResultCache::FindMissingBlobs(
    absl::Span<const BlobDigest> digests) {
  const int64_t now = NowMs();
  std::vector<bool> missing(digests.size(), false);
  std::vector<DiskKey> expired;
  bool flush_due = false;
  {
    absl::MutexLock lock(&mu_);
    int64_t hits = 0;
    for (size_t i = 0; i < digests.size(); ++i) {
      if (digests[i].size == 0) {  // the empty blob
        ++hits;
        continue;
      }
      Entry* entry =
          UseLocked(MakeIndexKey(kBlobKind, digests[i].hash), now, &expired);
      missing[i] = entry == nullptr || entry->blob_size != digests[i].size;
      if (!missing[i]) ++hits;
    }
    blob_stats_.set_hits(blob_stats_.hits() + hits);
    blob_stats_.set_misses(blob_stats_.misses() +
                           static_cast<int64_t>(digests.size()) - hits);
    flush_due =
        static_cast<int>(dirty_access_.size()) >= options_.recency_flush_every;
  }
  absl::Status deleted = DeleteFromDisk(expired);
  if (!deleted.ok()) spdlog::warn("result cache: {}", deleted.ToString());
  if (flush_due) {
    auto flushed = FlushMetadata();
    if (!flushed.ok())
      spdlog::warn("result cache: {}", flushed.status().ToString());
  }
  return missing;
}

absl::Status ResultCache::PutBlob(const BlobDigest& digest,
                                  absl::string_view content) {
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer, StartBlobWrite(digest));
  RETURN_IF_ERROR(writer->Append(content));
  return writer->Finish();
}

absl::StatusOr<std::optional<std::string>> ResultCache::ReadBlob(
    const BlobDigest& digest) {
  // Not reserved from digest.size: that is the client's claim until the
  // blob is found (GetTree's root, a batch read).
  std::string content;
  absl::Status read = StreamBlob(digest, 0, 0, [&](absl::string_view bytes) {
    content.append(bytes.data(), bytes.size());
    return true;
  });
  if (absl::IsNotFound(read) || absl::IsDataLoss(read)) return std::nullopt;
  RETURN_IF_ERROR(read);
  return content;
}

absl::Status ResultCache::StreamBlob(
    const BlobDigest& digest, int64_t offset, int64_t limit,
    const std::function<bool(absl::string_view)>& sink) {
  if (offset < 0 || limit < 0) {
    return absl::OutOfRangeError(absl::StrCat(
        "read offset ", offset, " and limit ", limit, " must not be negative"));
  }
  uint64_t generation = 0;
  if (digest.size > 0) {
    std::vector<DiskKey> expired;
    Entry* entry;
    {
      absl::MutexLock lock(&mu_);
      entry =
          UseLocked(MakeIndexKey(kBlobKind, digest.hash), NowMs(), &expired);
      if (entry != nullptr && entry->blob_size != digest.size) entry = nullptr;
      if (entry != nullptr) generation = entry->generation;
      if (entry == nullptr) blob_stats_.set_misses(blob_stats_.misses() + 1);
    }
    RETURN_IF_ERROR(DeleteFromDisk(expired));
    if (entry == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("blob ", digest.ToString(), " is not in the cache"));
    }
  }
  if (offset > digest.size) {
    return absl::OutOfRangeError(
        absl::StrCat("read offset ", offset, " is past the end of blob ",
                     digest.ToString(), " (", digest.size, " bytes)"));
  }
  const int64_t end =
      limit > 0 ? std::min(digest.size, offset + limit) : digest.size;
  bool sent = false;
  for (int64_t chunk = offset / kBlobChunkBytes; offset < end; ++chunk) {
    const int64_t chunk_start = chunk * kBlobChunkBytes;
    const int64_t chunk_size =
        std::min<int64_t>(kBlobChunkBytes, digest.size - chunk_start);
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(ChunkReadOptions(), handles_[2],
                 ChunkKey(digest.hash, generation, chunk), &value);
    const bool intact =
        s.ok() &&
        value.size() == kChunkHeader + static_cast<size_t>(chunk_size) &&
        GetBigEndian(value.data(), 8) ==
            XXH3_64bits(value.data() + kChunkHeader,
                        value.size() - kChunkHeader);
    if (!intact) {
      if (!s.ok() && !s.IsNotFound() && !s.IsCorruption())
        return CacheDirError(s, options_.dir);
      spdlog::warn("result cache: blob {} chunk {} is {} on disk; deleted",
                   digest.ToString(), chunk, s.ok() ? "damaged" : s.ToString());
      RETURN_IF_ERROR(DropDamagedBlob(digest, generation));
      const std::string what = absl::StrCat("blob ", digest.ToString(),
                                            " was damaged in the cache and is "
                                            "deleted; upload it again");
      return sent ? absl::DataLossError(what) : absl::NotFoundError(what);
    }
    const int64_t from = offset - chunk_start;
    const int64_t to = std::min(end, chunk_start + chunk_size) - chunk_start;
    sent = true;
    if (!sink(absl::string_view(value.data() + kChunkHeader + from,
                                static_cast<size_t>(to - from))))
      return absl::OkStatus();
    offset = chunk_start + to;
  }
  absl::MutexLock lock(&mu_);
  blob_stats_.set_hits(blob_stats_.hits() + 1);
  return absl::OkStatus();
}

absl::Status ResultCache::DropDamagedBlob(const BlobDigest& digest,
                                          uint64_t generation) {
  DiskKey disk_key;
  {
    absl::MutexLock lock(&mu_);
    const IndexKey key = MakeIndexKey(kBlobKind, digest.hash);
    auto it = index_.find(key);
    if (it == index_.end() || it->second.generation != generation)
      return absl::OkStatus();  // replaced or evicted meanwhile
    disk_key = EraseLocked(key);
    blob_stats_.set_corrupt(blob_stats_.corrupt() + 1);
    blob_stats_.set_misses(blob_stats_.misses() + 1);
  }
  return DeleteFromDisk({&disk_key, 1});
}

absl::StatusOr<std::unique_ptr<ResultCache::BlobWriter>>
ResultCache::StartBlobWrite(const BlobDigest& digest) {
  if (BlobEntryBytes(digest.size) > options_.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "blob ", digest.ToString(), " (", digest.size,
        " bytes) is larger than the cache's size limit of ", options_.max_bytes,
        " bytes; raise --cache-max-bytes to store it"));
  }
  if (digest.size > 0) RETURN_IF_ERROR(disk_->Check());
  return std::unique_ptr<BlobWriter>(
      new BlobWriter(this, digest, NextGeneration()));
}

ResultCache::BlobWriter::BlobWriter(ResultCache* cache,
                                    const BlobDigest& digest,
                                    uint64_t generation)
    : cache_(cache), digest_(digest), generation_(generation) {}

ResultCache::BlobWriter::~BlobWriter() { DropChunks(); }

void ResultCache::BlobWriter::DropChunks() {
  if (finished_) return;
  finished_ = true;
  if (chunks_written_ == 0) return;
  DiskKey orphan{MakeIndexKey(kBlobKind, digest_.hash),
                 std::min(digest_.size, chunks_written_ * kBlobChunkBytes),
                 generation_};
  absl::Status deleted = cache_->DeleteFromDisk({&orphan, 1});
  if (!deleted.ok()) spdlog::warn("result cache: {}", deleted.ToString());
}

absl::Status ResultCache::BlobWriter::Append(absl::string_view data) {
  if (finished_) {
    return absl::FailedPreconditionError(
        absl::StrCat("blob ", digest_.ToString(), " is already written"));
  }
  if (static_cast<int64_t>(data.size()) > digest_.size - received_) {
    return absl::InvalidArgumentError(absl::StrCat("upload of blob ",
                                                   digest_.ToString(),
                                                   " sent more than "
                                                   "its ",
                                                   digest_.size, " bytes"));
  }
  hasher_.Update(data);
  received_ += static_cast<int64_t>(data.size());
  while (!data.empty()) {
    // A full chunk is written once more bytes follow it; the last one waits
    // for Finish, which writes it with the blob's metadata.
    if (static_cast<int64_t>(pending_.size()) == kBlobChunkBytes) {
      RETURN_IF_ERROR(WriteChunk(pending_, /*last=*/false));
      pending_.clear();
    }
    const size_t room = static_cast<size_t>(kBlobChunkBytes) - pending_.size();
    if (pending_.empty() && data.size() > room) {
      RETURN_IF_ERROR(WriteChunk(data.substr(0, room), /*last=*/false));
    } else {
      pending_.append(data.data(), std::min(room, data.size()));
    }
    data.remove_prefix(std::min(room, data.size()));
  }
  return absl::OkStatus();
}

absl::Status ResultCache::BlobWriter::WriteChunk(absl::string_view payload,
                                                 bool last) {
  std::string value(kChunkHeader, '\0');
  PutBigEndian(&value[0], XXH3_64bits(payload.data(), payload.size()), 8);
  value.append(payload.data(), payload.size());
  rocksdb::WriteBatch batch;
  batch.Put(cache_->handles_[2],
            ChunkKey(digest_.hash, generation_, chunks_written_), value);
  ++chunks_written_;
  // A large blob's chunks skip the WAL (whose CRC32C, computed without the
  // CPU's instruction by Debian's RocksDB, cost a fifth of a large write):
  // they are flushed to blob files before the metadata that makes them a
  // blob is written, so a crash loses only unfinished uploads.
  const bool unlogged = digest_.size >= kUnloggedBlobBytes;
  if (!last) {
    rocksdb::WriteOptions write;
    write.disableWAL = unlogged;
    rocksdb::Status s = cache_->db_->Write(write, &batch);
    if (!s.ok()) return CacheDirError(s, cache_->options_.dir);
    return absl::OkStatus();
  }
  if (unlogged) {
    rocksdb::FlushOptions flush;
    flush.wait = true;
    rocksdb::Status s = cache_->db_->Flush(flush, cache_->handles_[2]);
    if (!s.ok()) return CacheDirError(s, cache_->options_.dir);
  }
  // The metadata makes the chunks a blob: written with the last of them,
  // and entered in the index, under commit_mu_ so that two uploads of one
  // blob finish one after the other.
  const int64_t now = cache_->NowMs();
  const int64_t expires = now + absl::ToInt64Milliseconds(cache_->options_.ttl);
  const IndexKey key = MakeIndexKey(kBlobKind, digest_.hash);
  std::vector<DiskKey> victims;
  absl::MutexLock commit(&cache_->commit_mu_);
  {
    absl::MutexLock lock(&cache_->mu_);
    auto it = cache_->index_.find(key);
    if (it != cache_->index_.end() && it->second.blob_size == digest_.size &&
        it->second.expires_ms > now) {
      --chunks_written_;  // the last one was not written
      DropChunks();       // stored meanwhile: the index keeps that upload's
      return absl::OkStatus();
    }
  }
  Entry meta;
  meta.blob_size = digest_.size;
  meta.access_ms = now;
  meta.expires_ms = expires;
  meta.generation = generation_;
  batch.Put(cache_->handles_[1], rocksdb::Slice(key.data(), key.size()),
            EncodeBlobMeta(meta));
  rocksdb::Status s = cache_->db_->Write(rocksdb::WriteOptions(), &batch);
  if (!s.ok()) return CacheDirError(s, cache_->options_.dir);
  {
    absl::MutexLock lock(&cache_->mu_);
    auto old = cache_->index_.find(key);
    if (old != cache_->index_.end())
      victims.push_back(cache_->EraseLocked(key));
    Entry& entry =
        cache_->InsertLocked(key, BlobEntryBytes(digest_.size), now, expires);
    entry.blob_size = digest_.size;
    entry.generation = generation_;
    cache_->blob_stats_.set_puts(cache_->blob_stats_.puts() + 1);
    std::vector<DiskKey> evicted = cache_->EvictLocked(1);
    victims.insert(victims.end(), evicted.begin(), evicted.end());
  }
  finished_ = true;
  return cache_->DeleteFromDisk(victims);
}

absl::Status ResultCache::BlobWriter::Finish() {
  if (finished_) return absl::OkStatus();
  if (received_ != digest_.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload of blob ", digest_.ToString(), " ended after ",
                     received_, " of its ", digest_.size, " bytes"));
  }
  const std::string actual = hasher_.FinishRaw();
  if (std::memcmp(actual.data(), digest_.hash.data(), digest_.hash.size()) !=
      0) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload of blob ", digest_.ToString(), " has SHA-256 ",
                     BytesToHex(actual), ", not the digest's; nothing stored"));
  }
  if (digest_.size == 0) {  // the empty blob is always present
    finished_ = true;
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(WriteChunk(pending_, /*last=*/true));
  pending_.clear();
  finished_ = true;
  return absl::OkStatus();
}

absl::StatusOr<bool> ResultCache::ActionResultComplete(
    const reapi::ActionResult& result) {
  std::vector<BlobDigest> needed;
  std::vector<BlobDigest> trees;
  auto need = [&](const reapi::Digest& digest) -> absl::Status {
    ASSIGN_OR_RETURN(BlobDigest parsed, ParseDigest(digest));
    needed.push_back(parsed);
    return absl::OkStatus();
  };
  for (const auto& file : result.output_files())
    RETURN_IF_ERROR(need(file.digest()));
  for (const auto& dir : result.output_directories()) {
    RETURN_IF_ERROR(need(dir.tree_digest()));
    trees.push_back(needed.back());
  }
  if (result.has_stdout_digest()) RETURN_IF_ERROR(need(result.stdout_digest()));
  if (result.has_stderr_digest()) RETURN_IF_ERROR(need(result.stderr_digest()));
  for (const BlobDigest& tree_digest : trees) {
    if (tree_digest.size > kMaxTreeBytes) return false;
    ASSIGN_OR_RETURN(std::optional<std::string> bytes, ReadBlob(tree_digest));
    reapi::Tree tree;
    if (!bytes.has_value() ||
        !tree.ParseFromArray(bytes->data(), static_cast<int>(bytes->size())) ||
        !CheckTree(tree).ok())
      return false;
    auto files_of = [&](const reapi::Directory& dir) -> absl::Status {
      for (const auto& file : dir.files()) RETURN_IF_ERROR(need(file.digest()));
      return absl::OkStatus();
    };
    RETURN_IF_ERROR(files_of(tree.root()));
    for (const auto& child : tree.children()) RETURN_IF_ERROR(files_of(child));
  }
  std::vector<bool> missing = FindMissingBlobs(needed);
  return std::find(missing.begin(), missing.end(), true) == missing.end();
}

absl::StatusOr<std::optional<reapi::ActionResult>> ResultCache::GetActionResult(
    const BlobDigest& action) {
  const IndexKey key = MakeIndexKey(kActionKind, action.hash);
  std::vector<DiskKey> expired;
  bool present;
  {
    absl::MutexLock lock(&mu_);
    present = UseLocked(key, NowMs(), &expired) != nullptr;
    if (!present) action_stats_.set_misses(action_stats_.misses() + 1);
  }
  RETURN_IF_ERROR(DeleteFromDisk(expired));
  if (!present) return std::nullopt;
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), handles_[3],
                               AsSlice(action.hash), &value);
  if (!s.ok() && !s.IsNotFound() && !s.IsCorruption())
    return CacheDirError(s, options_.dir);
  absl::string_view payload;
  reapi::ActionResult result;
  const bool intact =
      s.ok() &&
      CheckValue(absl::string_view(value.data(), value.size()), &payload) &&
      result.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  bool complete = false;
  if (intact) {
    auto checked = ActionResultComplete(result);
    complete = checked.ok() && *checked;
  }
  if (intact && complete) {
    absl::MutexLock lock(&mu_);
    action_stats_.set_hits(action_stats_.hits() + 1);
    return result;
  }
  // Never an answer that points at nothing: the entry goes, and the client
  // runs the action again.
  DiskKey gone;
  {
    absl::MutexLock lock(&mu_);
    gone = EraseLocked(key);
    action_stats_.set_misses(action_stats_.misses() + 1);
    if (!intact) action_stats_.set_corrupt(action_stats_.corrupt() + 1);
  }
  spdlog::info(
      "result cache: action {} {}; deleted", action.ToString(),
      intact ? "refers to blobs no longer here" : "result is damaged on disk");
  RETURN_IF_ERROR(DeleteFromDisk({&gone, 1}));
  return std::nullopt;
}

absl::Status ResultCache::PutActionResult(const BlobDigest& action,
                                          const reapi::ActionResult& result) {
  RETURN_IF_ERROR(disk_->Check());
  const int64_t now = NowMs();
  const int64_t expires = now + absl::ToInt64Milliseconds(options_.ttl);
  const std::string value = EncodeValue(result, now, expires);
  rocksdb::Status s = db_->Put(rocksdb::WriteOptions(), handles_[3],
                               AsSlice(action.hash), value);
  if (!s.ok()) return CacheDirError(s, options_.dir);
  std::vector<DiskKey> victims;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = InsertLocked(MakeIndexKey(kActionKind, action.hash),
                                EntryBytes(value.size()), now, expires);
    if (!entry.access_dirty) {
      entry.access_dirty = true;
      dirty_access_.push_back(*entry.key);
    }
    action_stats_.set_puts(action_stats_.puts() + 1);
    victims = EvictLocked(1);
  }
  return DeleteFromDisk(victims);
}

std::vector<BlobDigest> ResultCache::PinBlobs(
    const std::string& holder, absl::Span<const BlobDigest> digests) {
  std::vector<BlobDigest> missing;
  const int64_t now = NowMs();
  absl::MutexLock lock(&mu_);
  std::vector<IndexKey>& held = pins_[holder];
  for (const BlobDigest& digest : digests) {
    if (digest.size == 0) continue;
    const IndexKey key = MakeIndexKey(kBlobKind, digest.hash);
    auto it = index_.find(key);
    if (it == index_.end() || it->second.blob_size != digest.size ||
        (it->second.pins == 0 && it->second.expires_ms <= now)) {
      missing.push_back(digest);
      continue;
    }
    Entry& entry = it->second;
    if (entry.pins++ == 0) {
      Unlink(&entry);
      blob_stats_.set_pinned(blob_stats_.pinned() + 1);
    }
    held.push_back(key);
  }
  if (held.empty()) pins_.erase(holder);
  return missing;
}

void ResultCache::UnpinBlobs(const std::string& holder) {
  const int64_t now = NowMs();
  absl::MutexLock lock(&mu_);
  auto pinned = pins_.find(holder);
  if (pinned == pins_.end()) return;
  for (const IndexKey& key : pinned->second) {
    auto it = index_.find(key);
    if (it == index_.end() || it->second.pins == 0) continue;
    Entry& entry = it->second;
    if (--entry.pins > 0) continue;
    // Back on the LRU list as just used: the suite that held it has ended.
    entry.access_ms = now;
    entry.expires_ms = now + absl::ToInt64Milliseconds(options_.ttl);
    PushNewest(&entry);
    blob_stats_.set_pinned(blob_stats_.pinned() - 1);
  }
  pins_.erase(pinned);
}

}  // namespace testfleet
