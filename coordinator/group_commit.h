#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/runtime.h"

namespace testfleet {

/// Group commit: batches are written in the order of their tickets, one
/// write at a time, by a writer thread of its own; the batches that queue up
/// while one write is under way are written together, as one. One synced
/// write then carries the results of every report that arrived during the
/// last one, not one write each. Thread-safe.
///
/// A caller hands its batch over and is told when it is written (CommitThen),
/// so no thread of the caller's waits through the write: a gRPC callback
/// handler can stage a report and return.
///
/// Tickets are taken by the caller (under the lock that orders what the
/// batches hold), from 1 up; every ticket must be committed exactly once, or
/// the ones after it wait forever.
template <typename Batch>
class GroupCommit {
 public:
  /// Writes a group of batches of consecutive tickets, oldest first.
  using WriteFn = std::function<void(const std::vector<Batch*>& group)>;
  /// Runs on the writer thread once its batch was written.
  using DoneFn = absl::AnyInvocable<void() &&>;

  /// The writer thread is named `thread_name` (NameThisThread).
  explicit GroupCommit(WriteFn write, const char* thread_name = "tf-commit")
      : write_(std::move(write)), writer_([this, thread_name] {
          NameThisThread(thread_name);
          WriteInTicketOrder();
        }) {}
  /// Writes what was handed over, then stops the writer.
  ~GroupCommit() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    writer_.join();
  }
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  /// Hands `batch` (kept by the caller until `done` runs) to the writer.
  /// `done` runs after the write, in ticket order, before the next group is
  /// written.
  void CommitThen(uint64_t ticket, Batch* batch, DoneFn done) {
    absl::MutexLock lock(&mu_);
    waiting_.emplace(ticket, Waiting{batch, std::move(done)});
  }

  /// Returns once `batch` was written.
  void Commit(uint64_t ticket, Batch* batch) {
    absl::Notification written;
    CommitThen(ticket, batch, [&written] { written.Notify(); });
    written.WaitForNotification();
  }

  /// Batches handed over whose write has not started.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return waiting_.size();
  }

 private:
  struct Waiting {
    Batch* batch;
    DoneFn done;
  };

  void WriteInTicketOrder() {
    absl::MutexLock lock(&mu_);
    auto next_or_stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return (!waiting_.empty() && waiting_.begin()->first == committed_ + 1) ||
             (stopping_ && waiting_.empty());
    };
    while (true) {
      mu_.Await(absl::Condition(&next_or_stop));
      if (waiting_.empty()) return;  // stopping, all written
      std::vector<Batch*> group;
      std::vector<DoneFn> dones;
      for (auto it = waiting_.begin();
           it != waiting_.end() && it->first == committed_ + 1 + group.size();
           it = waiting_.erase(it)) {
        group.push_back(it->second.batch);
        dones.push_back(std::move(it->second.done));
      }
      mu_.Unlock();
      write_(group);
      for (DoneFn& done : dones) std::move(done)();
      mu_.Lock();
      committed_ += group.size();
    }
  }

  const WriteFn write_;
  mutable absl::Mutex mu_;
  uint64_t committed_ ABSL_GUARDED_BY(mu_) = 0;  // every ticket up to it
  std::map<uint64_t, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread writer_;  // last: starts once the rest is built
};

}  // namespace testfleet
