#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// The coordinator's workers and their waiting pulls: who registered, with
/// how many slots and how much free memory, which leases each holds, and
/// the long polls waiting for work. Bookkeeping only: what a pull is given
/// is the queue's business (Coordinator). Not thread-safe: the coordinator
/// holds its lock around every call.
class Fleet {
 public:
  struct Worker {
    v1::WorkerInfo info;
    absl::Time last_seen;                // steady clock
    std::map<std::string, bool> leases;  // lease id -> cancelled
  };
  /// How a pull is answered: exactly once.
  using PullAnswer = std::function<void(v1::PullWorkResponse)>;
  struct WaitingPull {
    std::string worker_id;
    int free_slots = 0;
    absl::Time deadline;  // steady clock
    PullAnswer answer;
  };

  /// `max_workers`: registered at once (0: no limit); `max_worker_slots`:
  /// what one worker may claim.
  Fleet(int max_workers, int max_worker_slots)
      : max_workers_(max_workers), max_worker_slots_(max_worker_slots) {}

  /// A new worker named after the request (ids are "name#N"), its slots
  /// clamped to [1, max_worker_slots]. INVALID_ARGUMENT for a name that is
  /// not printable or too long; RESOURCE_EXHAUSTED past max_workers.
  absl::StatusOr<Worker*> Register(const v1::RegisterWorkerRequest& request,
                                   const std::string& owner, absl::Time steady,
                                   absl::Time now);
  /// Null when no such worker is registered.
  Worker* Find(const std::string& worker_id);
  /// Forgets the workers last seen before `cutoff` (steady clock) and
  /// returns them (with the leases they held).
  std::vector<Worker> ForgetSilent(absl::Time cutoff);
  const std::map<std::string, Worker>& workers() const { return workers_; }
  size_t size() const { return workers_.size(); }
  /// Slots of every registered worker.
  int64_t slots() const { return slots_; }
  /// Whether some worker reports at least `kb` of free memory.
  bool SomeoneHasFreeMemory(int64_t kb) const;
  /// How long each worker should gather results so that the whole fleet
  /// sends about `reports_per_second` reports, at most `longest`; zero when
  /// `reports_per_second` is not positive (or not a number).
  absl::Duration ReportInterval(double reports_per_second,
                                absl::Duration longest) const;

  /// Keeps `pull` until Serve answers it, StopWaiting or TakeExpired takes
  /// it; returns its id (never 0).
  uint64_t Wait(WaitingPull pull);
  /// The pull's answer, taken with the pull; empty when it is not waiting.
  PullAnswer StopWaiting(uint64_t pull_id);
  /// Takes the pulls whose deadline is not after `now`; their workers count
  /// as seen (a waiting pull is a live connection).
  std::vector<PullAnswer> TakeExpired(absl::Time now);
  /// No waiting pull is due before this (InfiniteFuture: none waits); after
  /// TakeExpired, the next deadline itself.
  absl::Time NextDeadline() const { return earliest_deadline_; }
  /// Offers every waiting pull to `serve`, oldest first; a pull for which
  /// it returns true was answered and is dropped.
  void Serve(const std::function<bool(WaitingPull&)>& serve);
  /// Takes every waiting pull (shutdown).
  std::vector<PullAnswer> TakeAllWaiting();
  size_t waiting() const { return waiting_.size(); }

 private:
  const int max_workers_;
  const int max_worker_slots_;
  std::map<std::string, Worker> workers_;
  int64_t slots_ = 0;
  uint64_t next_worker_ = 1;
  std::map<uint64_t, WaitingPull> waiting_;  // by id: oldest first
  uint64_t next_pull_ = 1;
  // No waiting pull is due before this: most ticks look at nothing.
  absl::Time earliest_deadline_ = absl::InfiniteFuture();
};

}  // namespace testfleet
