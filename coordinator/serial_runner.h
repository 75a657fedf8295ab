#pragma once

#include <cstddef>
#include <deque>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace testfleet {

/// Runs tasks one at a time, in the order they were handed over, on a thread
/// of its own. Thread-safe.
///
/// The coordinator's service hands it each report: a report's results are
/// settled under the coordinator's lock, and at the end of a suite a fleet
/// sends tens of thousands of them a second (the shortest tests come last).
/// Settled on gRPC's few callback threads, they kept those threads from
/// reading and answering pulls; here they queue on one thread while gRPC's
/// threads stay free.
class SerialRunner {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  SerialRunner() : runner_([this] { RunInOrder(); }) {}
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

  void Run(Task task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }

  /// Tasks handed over that have not started.
  size_t queued() const {
    absl::MutexLock lock(&mu_);
    return tasks_.size();
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
      {
        Task task = std::move(tasks_.front());
        tasks_.pop_front();
        mu_.Unlock();
        std::move(task)();
      }  // destroyed unlocked too
      mu_.Lock();
    }
  }

  mutable absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread runner_;  // last: starts once the rest is built
};

}  // namespace testfleet
