#pragma once

#include <map>

#include "absl/synchronization/mutex.h"
#include "cache/cache_client.h"

namespace testfleet {

/// An in-memory CacheClient whose failures the test decides.
class FakeCacheClient : public CacheClient {
 public:
  void FailWith(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  absl::StatusOr<std::vector<std::optional<v1::CachedResult>>> Lookup(
      const std::vector<std::string>& keys) override {
    absl::MutexLock lock(&mu_);
    ++lookups_;
    if (!failure_.ok()) return failure_;
    std::vector<std::optional<v1::CachedResult>> results;
    for (const auto& key : keys) {
      auto it = entries_.find(key);
      results.push_back(it == entries_.end()
                            ? std::nullopt
                            : std::optional<v1::CachedResult>(it->second));
    }
    return results;
  }
  absl::Status Put(const CacheEntries& entries) override {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    for (const auto& [key, value] : entries) entries_[key] = value;
    return absl::OkStatus();
  }
  absl::StatusOr<v1::CacheStats> Stats() override {
    absl::MutexLock lock(&mu_);
    v1::CacheStats stats;
    stats.set_entries(static_cast<int64_t>(entries_.size()));
    return stats;
  }
  absl::StatusOr<v1::CacheGcResponse> Gc(const std::string&) override {
    return v1::CacheGcResponse();
  }
  std::string Describe() const override { return "fake cache"; }

  /// Replaces a stored entry behind the client's back.
  void Tamper(const std::string& key, const v1::CachedResult& value) {
    absl::MutexLock lock(&mu_);
    entries_[key] = value;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }
  int lookups() {
    absl::MutexLock lock(&mu_);
    return lookups_;
  }

 private:
  absl::Mutex mu_;
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, v1::CachedResult> entries_ ABSL_GUARDED_BY(mu_);
  int lookups_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace testfleet
