#include "worker/file_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

namespace fs = std::filesystem;

// Files up to this size travel in batches; larger ones stream to disk.
constexpr int64_t kBatchedFileBytes = 1 << 20;
// Bytes of small files held in memory at once while fetching.
constexpr int64_t kFetchGroupBytes = 64 << 20;
constexpr size_t kParallelStreams = 4;

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
         st.st_mtim.tv_nsec;
}

mode_t ModeOf(bool executable) { return executable ? 0555 : 0444; }

absl::Status Errno(const std::string& what, const std::string& path) {
  const int error = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", strerror(error));
  if (error == ENOSPC || error == EDQUOT) {
    return absl::ResourceExhaustedError(
        message + " (free space or lower --file-cache-max-bytes)");
  }
  return absl::InternalError(message);
}

}  // namespace

FileCache::~FileCache() {
  if (lock_fd_ >= 0) close(lock_fd_);
}

FileCache::Pin::~Pin() {
  if (cache_ == nullptr || keys_.empty()) return;
  absl::MutexLock lock(&cache_->mu_);
  for (const std::string& key : keys_) cache_->UnpinLocked(key);
  cache_->EvictLocked();
}

std::string FileCache::KeyOf(const TreeFile& file) {
  return absl::StrCat(file.executable ? "x" : "f", file.digest.HashHex(), "-",
                      file.digest.size);
}

std::string FileCache::PathOfKey(const std::string& key) const {
  return absl::StrCat(dir_, key[0] == 'x' ? "/exec/" : "/files/",
                      key.substr(1, 2), "/", key.substr(1));
}

std::string FileCache::PathOf(const TreeFile& file) const {
  return PathOfKey(KeyOf(file));
}

std::string FileCache::TempPath() const {
  return absl::StrCat(dir_, "/tmp/", RandomHex(12));
}

absl::StatusOr<std::unique_ptr<FileCache>> FileCache::Open(
    const std::string& dir, int64_t max_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const int lock_fd =
      ec ? -1
         : open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat(
        "cannot make the file cache ", dir, ": ",
        ec ? ec.message() : strerror(errno), " (choose another folder)"));
  }
  std::unique_ptr<FileCache> cache(new FileCache(dir, max_bytes));
  cache->lock_fd_ = lock_fd;
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the file cache ", dir, " is used by another worker"));
  }
  // What a killed worker left half written is never adopted.
  fs::remove_all(dir + "/tmp", ec);
  fs::create_directories(dir + "/tmp", ec);
  struct Found {
    int64_t mtime_ns;
    std::string key;
    int64_t size;
  };
  std::vector<Found> found;
  static const char kHex[] = "0123456789abcdef";
  for (const char* kind : {"files", "exec"}) {
    for (int i = 0; i < 256; ++i) {
      const std::string shard =
          absl::StrCat(dir, "/", kind, "/", std::string{kHex[i / 16]},
                       std::string{kHex[i % 16]});
      fs::create_directories(shard, ec);
      for (fs::directory_iterator it(shard, ec), end; !ec && it != end;
           it.increment(ec)) {
        const std::string name = it->path().filename().string();
        const size_t dash = name.find('-');
        int64_t size = -1;
        struct stat st {};
        if (dash != 64 || !absl::SimpleAtoi(name.substr(65), &size) ||
            lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
            st.st_size != size) {
          fs::remove(it->path(), ec);
          continue;
        }
        found.push_back({MtimeNs(st),
                         absl::StrCat(kind[0] == 'e' ? "x" : "f", name), size});
      }
      ec.clear();
    }
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.mtime_ns < b.mtime_ns;
  });
  absl::MutexLock lock(&cache->mu_);
  for (const Found& file : found)
    cache->AddLocked(file.key, file.size, file.mtime_ns, false);
  cache->EvictLocked();
  return cache;
}

void FileCache::AddLocked(const std::string& key, int64_t size,
                          int64_t mtime_ns, bool pinned) {
  Entry& entry = entries_[key];
  entry.size = size;
  entry.mtime_ns = mtime_ns;
  entry.pins = pinned ? 1 : 0;
  if (!pinned) entry.lru = lru_.insert(lru_.end(), key);
  ++stats_.files;
  stats_.bytes += size;
}

void FileCache::UnpinLocked(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.pins == 0) return;
  if (--it->second.pins == 0) it->second.lru = lru_.insert(lru_.end(), key);
}

void FileCache::EvictLocked() {
  while (stats_.bytes > max_bytes_ && !lru_.empty()) {
    const std::string key = lru_.front();
    lru_.pop_front();
    auto it = entries_.find(key);
    // A hard link in a sandbox keeps the content alive where it is used.
    unlink(PathOfKey(key).c_str());
    stats_.bytes -= it->second.size;
    --stats_.files;
    ++stats_.evictions;
    entries_.erase(it);
  }
}

absl::StatusOr<int64_t> FileCache::Store(const TreeFile& file,
                                         const std::string& content) {
  const std::string temp = TempPath();
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      ModeOf(file.executable));
  if (fd < 0) return Errno("cannot create", temp);
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status error = Errno("cannot write", temp);
      close(fd);
      unlink(temp.c_str());
      return error;
    }
    done += static_cast<size_t>(n);
  }
  close(fd);
  return Adopt(file, temp);
}

absl::StatusOr<int64_t> FileCache::Adopt(const TreeFile& file,
                                         const std::string& temp) {
  const std::string path = PathOf(file);
  struct stat st {};
  if (chmod(temp.c_str(), ModeOf(file.executable)) != 0 ||
      rename(temp.c_str(), path.c_str()) != 0 || stat(path.c_str(), &st) != 0) {
    absl::Status error = Errno("cannot store", path);
    unlink(temp.c_str());
    return error;
  }
  return MtimeNs(st);
}

absl::Status FileCache::Download(const std::vector<const TreeFile*>& files,
                                 CasClient& cas) {
  std::vector<const TreeFile*> small, large;
  for (const TreeFile* file : files)
    (file->digest.size <= kBatchedFileBytes ? small : large).push_back(file);
  auto add = [this](const TreeFile& file, int64_t mtime_ns) {
    absl::MutexLock lock(&mu_);
    AddLocked(KeyOf(file), file.digest.size, mtime_ns, true);
    fetching_.erase(KeyOf(file));
    stats_.fetched_bytes += file.digest.size;
    ++stats_.misses;
    arrived_.SignalAll();
  };
  for (size_t begin = 0; begin < small.size();) {
    std::vector<BlobDigest> group;
    int64_t group_bytes = 0;
    size_t end = begin;
    for (; end < small.size() && group_bytes < kFetchGroupBytes; ++end) {
      group.push_back(small[end]->digest);
      group_bytes += small[end]->digest.size;
    }
    ASSIGN_OR_RETURN(std::vector<std::string> contents, cas.ReadBlobs(group));
    for (size_t i = begin; i < end; ++i) {
      ASSIGN_OR_RETURN(int64_t mtime_ns, Store(*small[i], contents[i - begin]));
      add(*small[i], mtime_ns);
    }
    begin = end;
  }
  for (size_t begin = 0; begin < large.size(); begin += kParallelStreams) {
    std::vector<std::future<absl::Status>> running;
    for (size_t i = begin; i < std::min(large.size(), begin + kParallelStreams);
         ++i) {
      running.push_back(std::async(std::launch::async, [&, i] {
        const std::string temp = TempPath();
        absl::Status read = cas.ReadToFile(large[i]->digest, temp);
        if (!read.ok()) {
          unlink(temp.c_str());
          return read;
        }
        absl::StatusOr<int64_t> mtime_ns = Adopt(*large[i], temp);
        if (!mtime_ns.ok()) return mtime_ns.status();
        add(*large[i], *mtime_ns);
        return absl::OkStatus();
      }));
    }
    absl::Status first;
    for (auto& done : running) first.Update(done.get());
    RETURN_IF_ERROR(first);
  }
  return absl::OkStatus();
}

absl::StatusOr<FileCache::Pin> FileCache::Fetch(
    const std::vector<TreeFile>& files, CasClient& cas) {
  std::vector<std::string> pinned;
  std::vector<const TreeFile*> mine;
  std::vector<std::string> awaited;
  {
    absl::MutexLock lock(&mu_);
    absl::flat_hash_set<std::string> seen;
    for (const TreeFile& file : files) {
      std::string key = KeyOf(file);
      if (!seen.insert(key).second) continue;
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        if (it->second.pins++ == 0) lru_.erase(it->second.lru);
        ++stats_.hits;
        pinned.push_back(std::move(key));
      } else if (fetching_.count(key)) {
        awaited.push_back(std::move(key));
      } else {
        fetching_.insert(key);
        mine.push_back(&file);
      }
    }
  }
  absl::Status status = Download(mine, cas);
  {
    absl::MutexLock lock(&mu_);
    // What this call fetched is pinned once (by `add`); what it failed to
    // fetch is free for another try.
    for (const TreeFile* file : mine) {
      std::string key = KeyOf(*file);
      if (entries_.count(key)) {
        pinned.push_back(std::move(key));
      } else {
        fetching_.erase(key);
      }
    }
    arrived_.SignalAll();
    for (size_t i = 0; i < awaited.size() && status.ok(); ++i) {
      const std::string& key = awaited[i];
      const absl::Time give_up = absl::Now() + absl::Minutes(10);
      while (fetching_.count(key) && absl::Now() < give_up)
        arrived_.WaitWithDeadline(&mu_, give_up);
      auto it = entries_.find(key);
      if (it == entries_.end()) {
        status = absl::UnavailableError(
            absl::StrCat("input blob ", key.substr(1),
                         " could not be fetched by another slot"));
        break;
      }
      if (it->second.pins++ == 0) lru_.erase(it->second.lru);
      ++stats_.hits;
      pinned.push_back(key);
    }
    if (!status.ok()) {
      for (const std::string& key : pinned) UnpinLocked(key);
      EvictLocked();
      return status;
    }
  }
  return Pin(this, std::move(pinned));
}

int FileCache::DropChanged(const std::vector<TreeFile>& files) {
  int dropped = 0;
  absl::MutexLock lock(&mu_);
  for (const TreeFile& file : files) {
    const std::string key = KeyOf(file);
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    const std::string path = PathOfKey(key);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && st.st_size == it->second.size &&
        MtimeNs(st) == it->second.mtime_ns &&
        (st.st_mode & 07777) == ModeOf(file.executable)) {
      continue;
    }
    unlink(path.c_str());
    if (it->second.pins == 0) lru_.erase(it->second.lru);
    stats_.bytes -= it->second.size;
    --stats_.files;
    ++stats_.damaged;
    entries_.erase(it);
    ++dropped;
  }
  return dropped;
}

FileCache::Stats FileCache::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

}  // namespace testfleet
