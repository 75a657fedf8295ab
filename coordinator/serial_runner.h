#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <optional>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "common/runtime.h"

namespace testfleet {

/// Runs tasks one at a time, in the order they were handed over, on a thread
/// of its own. Thread-safe.
///
/// The coordinator's service hands it each report: a report's results are
/// settled under the coordinator's lock, and at the end of a suite a fleet
/// sends tens of thousands of them a second (the shortest tests come last).
/// Settled on gRPC's few callback threads, they kept those threads from
/// reading and answering pulls; here they queue on one thread while gRPC's
/// threads stay free. The queue is bounded by what its tasks hold (a
/// report's bytes): past the budget a caller runs its task itself, which
/// slows it down as before, rather than the queue growing without end.
class SerialRunner {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  /// Its thread is named `thread_name` (NameThisThread).
  explicit SerialRunner(int64_t budget = std::numeric_limits<int64_t>::max(),
                        const char* thread_name = "tf-serial")
      : budget_(budget), runner_([this, thread_name] {
          NameThisThread(thread_name);
          RunInOrder();
        }) {}
  /// Runs every task handed over, then stops the thread.
  ~SerialRunner() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    runner_.join();
  }
  SerialRunner(const SerialRunner&) = delete;
  SerialRunner& operator=(const SerialRunner&) = delete;

  /// Queues `task`, whatever the tasks queued hold.
  void Run(Task task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back({std::move(task), 0});
  }

  /// Queues `task`, which holds `cost` until it has run, unless the tasks
  /// queued and running already hold the budget: then `task` comes back for
  /// the caller to run. A task alone is always taken.
  std::optional<Task> RunWithin(Task task, int64_t cost) {
    absl::MutexLock lock(&mu_);
    if (held_ > 0 && held_ + cost > budget_) return task;
    held_ += cost;
    tasks_.push_back({std::move(task), cost});
    return std::nullopt;
  }

  /// Tasks handed over that have not started.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return tasks_.size();
  }
  /// What the tasks queued and running hold.
  int64_t held() const {
    absl::MutexLock lock(&mu_);
    return held_;
  }

 private:
  void RunInOrder() {
    absl::MutexLock lock(&mu_);
    auto task_or_stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !tasks_.empty() || stopping_;
    };
    while (true) {
      mu_.Await(absl::Condition(&task_or_stop));
      if (tasks_.empty()) return;  // stopping, all run
      Queued next = std::move(tasks_.front());
      tasks_.pop_front();
      mu_.Unlock();
      std::move(next.task)();
      next.task = nullptr;  // what it captured goes unlocked too
      mu_.Lock();
      held_ -= next.cost;
    }
  }

  struct Queued {
    Task task;
    int64_t cost = 0;
  };

  const int64_t budget_;
  mutable absl::Mutex mu_;
  std::deque<Queued> tasks_ ABSL_GUARDED_BY(mu_);
  int64_t held_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread runner_;  // last: starts once the rest is built
};

}  // namespace testfleet
