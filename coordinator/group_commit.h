#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace testfleet {

/// Group commit: batches are written in the order of their tickets, and the
/// batches that queue up while one write is under way are written together,
/// as one, by the caller whose ticket comes next. One synced write then
/// carries the results of every report that arrived during the last one,
/// not one write each. Thread-safe.
///
/// Tickets are taken by the caller (under the lock that orders what the
/// batches hold), from 1 up; every ticket must be committed exactly once, or
/// the ones after it wait forever.
template <typename Batch>
class GroupCommit {
 public:
  /// Writes a group of batches of consecutive tickets, oldest first.
  using WriteFn = std::function<void(const std::vector<Batch*>& group)>;
  explicit GroupCommit(WriteFn write) : write_(std::move(write)) {}

  /// Returns once `batch` was written, by this call or by another's.
  void Commit(uint64_t ticket, Batch* batch) {
    absl::MutexLock lock(&mu_);
    waiting_[ticket] = batch;
    auto written_or_next = [this, ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ticket <= committed_ ||
             (!writing_ && !waiting_.empty() &&
              waiting_.begin()->first == committed_ + 1);
    };
    while (ticket > committed_) {
      mu_.Await(absl::Condition(&written_or_next));
      if (ticket <= committed_) break;
      std::vector<Batch*> group;
      for (auto it = waiting_.begin();
           it != waiting_.end() && it->first == committed_ + 1 + group.size();
           it = waiting_.erase(it)) {
        group.push_back(it->second);
      }
      writing_ = true;
      mu_.Unlock();
      write_(group);
      mu_.Lock();
      writing_ = false;
      committed_ += group.size();
    }
  }

  /// Batches handed to Commit whose write has not started.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return waiting_.size();
  }

 private:
  const WriteFn write_;
  mutable absl::Mutex mu_;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;  // every ticket up to it
  std::map<uint64_t, Batch*> waiting_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace testfleet
