#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache/cas_client.h"
#include "cache/input_tree.h"

namespace testfleet {

/// A worker's local content-addressed store of input files, from which
/// sandboxes are made by hard links. Plain and executable files are kept
/// apart (files/ and exec/, read-only modes 0444 and 0555), as Buildbarn
/// and NativeLink do, so an inode shared by many sandboxes never changes
/// mode. Files come from a REAPI CAS, each checked against its digest and
/// written under tmp/ before it is renamed into place, so a partly written
/// file is never linked (tmp/ is emptied at open). Least recently used
/// files go past `max_bytes`; files being linked are pinned. Thread-safe.
///
///   ASSIGN_OR_RETURN(auto cache, FileCache::Open(dir, 10LL << 30));
///   ASSIGN_OR_RETURN(auto pin, cache->Fetch(files, cas));
///   link(cache->PathOf(file).c_str(), ...);  // then drop `pin`
class FileCache {
 public:
  struct Stats {
    int64_t files = 0;
    int64_t bytes = 0;
    int64_t hits = 0;    // files found present
    int64_t misses = 0;  // files fetched
    int64_t fetched_bytes = 0;
    int64_t evictions = 0;
    int64_t damaged = 0;  // changed through a sandbox, dropped
  };

  /// Opens (creating) the cache in `dir`, which one process at a time may
  /// use (FAILED_PRECONDITION when another has it); files already there are
  /// kept when their size matches their name.
  static absl::StatusOr<std::unique_ptr<FileCache>> Open(const std::string& dir,
                                                         int64_t max_bytes);
  ~FileCache();
  const std::string& dir() const { return dir_; }

  /// Keeps the files of a Fetch from eviction until destroyed.
  class Pin {
   public:
    Pin(FileCache* cache, std::vector<std::string> keys)
        : cache_(cache), keys_(std::move(keys)) {}
    Pin(Pin&& other) noexcept
        : cache_(other.cache_), keys_(std::move(other.keys_)) {
      other.keys_.clear();
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin();

   private:
    FileCache* cache_;
    std::vector<std::string> keys_;
  };

  /// Makes every file present, fetching the missing ones from `cas` in
  /// batches (several at once; another thread's fetch of the same file is
  /// waited for), and pins them all.
  absl::StatusOr<Pin> Fetch(const std::vector<TreeFile>& files, CasClient& cas);
  /// Where `file`'s content is (valid while pinned).
  std::string PathOf(const TreeFile& file) const;
  /// Drops every file among `files` whose mode, size or modification time
  /// changed since it was stored (a test wrote through its hard link);
  /// returns how many.
  int DropChanged(const std::vector<TreeFile>& files);
  Stats stats() const;

 private:
  struct Entry {
    int64_t size = 0;
    int64_t mtime_ns = 0;
    int pins = 0;
    std::list<std::string>::iterator lru;  // valid when pins == 0
  };
  FileCache(std::string dir, int64_t max_bytes)
      : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  static std::string KeyOf(const TreeFile& file);
  std::string PathOfKey(const std::string& key) const;
  // Downloads `files` (all absent) into place.
  absl::Status Download(const std::vector<const TreeFile*>& files,
                        CasClient& cas);
  std::string TempPath() const;
  // Writes `content` (fetched, digest checked) into place; its mtime.
  absl::StatusOr<int64_t> Store(const TreeFile& file,
                                const std::string& content);
  // Moves the downloaded file `temp` into place; its mtime.
  absl::StatusOr<int64_t> Adopt(const TreeFile& file, const std::string& temp);
  void AddLocked(const std::string& key, int64_t size, int64_t mtime_ns,
                 bool pinned) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnpinLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  const int64_t max_bytes_;
  int lock_fd_ = -1;
  mutable absl::Mutex mu_;
  absl::CondVar arrived_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> fetching_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // oldest first
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace testfleet
