// Coordinator: dispatch. Which suite a worker serves next, the shards cut
// from its queue, the pulls that wait for work, leases, heartbeats and
// their expiry.
#include "coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/action_key.h"
#include "common/digest.h"
#include "common/platform.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "common/text.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {

using coordinator_internal::kIdBytes;
using coordinator_internal::kMaxPeakKb;

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)), lease_id_prefix_(RandomHex(kIdBytes / 2)) {}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::SetDashboardUrl(const std::string& base_url) {
  Locked lock(this);
  dashboard_url_ = base_url;
}

void Coordinator::Shutdown() {
  Locked lock(this);
  shutting_down_ = true;
  for (PullAnswer& answer : fleet_.TakeAllWaiting())
    Answer(std::move(answer), v1::PullWorkResponse());
  suite_changed_.SignalAll();
}

bool Coordinator::HasQueuedWorkFor(const Suite& suite, const Worker& worker) {
  return !suite.ended && suite.queue.size() > 0 &&
         PlatformsMatch(suite.spec.platform(), worker.info.platform());
}

bool Coordinator::HasWorkFor(const Worker& worker) const {
  for (const auto& [id, suite] : suites_) {
    if (HasQueuedWorkFor(*suite, worker)) return true;
  }
  return false;
}

Coordinator::Suite* Coordinator::PickSuite(const Worker& worker) {
  Suite* best = nullptr;
  for (auto& [id, suite] : suites_) {
    if (!HasQueuedWorkFor(*suite, worker)) continue;
    if (best == nullptr) {
      best = suite.get();
      continue;
    }
    const int p = suite->spec.priority(), bp = best->spec.priority();
    // Higher priority first; among equals, the suite with the fewest running
    // tests (fair share), then the oldest.
    if (p > bp || (p == bp && (suite->leased < best->leased ||
                               (suite->leased == best->leased &&
                                suite->sequence < best->sequence)))) {
      best = suite.get();
    }
  }
  return best;
}

void Coordinator::Requeue(Suite& suite, int index, bool first) {
  Test& test = suite.tests[index];
  if (test.phase == Phase::kLeased) suite.EndLease(index);
  test.phase = Phase::kQueued;
  test.queued_at = Steady();
  suite.queue.Return(index, first);
}

int Coordinator::TotalSlots() const {
  return std::max<int64_t>(fleet_.slots(), 1);
}

bool Coordinator::HasRoomFor(const Test& test, const Worker& worker) const {
  const int64_t need = test.expected_peak_kb;
  const int64_t free = worker.info.free_memory_kb();
  if (need == 0 || free == 0 || need <= free) return true;  // fits, or unknown
  // Too big for this worker: leave it for one with room, if there is one.
  return !fleet_.SomeoneHasFreeMemory(need);
}

v1::Shard Coordinator::MakeShard(Suite& suite, Worker& worker) {
  const double target_ms = suite.queue.ShardTargetMs(
      fleet_.slots(), absl::ToDoubleMilliseconds(options_.max_shard_duration));
  Lease lease;
  lease.id = absl::StrCat(lease_id_prefix_,
                          absl::Hex(++leases_made_, absl::kZeroPad16));
  lease.worker_id = worker.info.worker_id();
  lease.suite_id = suite.id;
  const absl::Time now = Steady();
  lease.deadline = now + options_.lease;
  lease.current_since_unix_ms = absl::ToUnixMillis(Now());
  v1::Shard shard;
  shard.set_lease_id(lease.id);
  shard.set_suite_id(suite.id);
  shard.set_suite_name(suite.spec.name());
  shard.set_lease_deadline_unix_ms(absl::ToUnixMillis(Now() + options_.lease));
  double shard_ms = 0;
  while (static_cast<int>(lease.outstanding.size()) <
         options_.max_shard_tests) {
    const int index = suite.queue.Pop();
    if (index < 0) break;
    Test& test = suite.tests[index];
    if ((!lease.outstanding.empty() &&
         shard_ms + suite.queue.ExpectedOf(index) > target_ms) ||
        !HasRoomFor(test, worker)) {
      suite.queue.Return(index, /*first=*/true);  // first for the next shard
      break;
    }
    shard_ms += suite.queue.ExpectedOf(index);
    test.phase = Phase::kLeased;
    test.grants.push_back({lease.id, lease.worker_id, test.attempt});
    if (options_.metrics) options_.metrics->Dispatched(now - test.queued_at);
    suite.StartLease(index);
    lease.outstanding.push_back(index);
    v1::TestAssignment* assignment = shard.add_tests();
    *assignment->mutable_spec() = test.spec;
    assignment->set_attempt(test.attempt);
    assignment->set_cache_key(test.cache_key);
  }
  if (lease.outstanding.empty()) return shard;
  if (suite.report->state() == v1::SUITE_STATE_QUEUED) {
    suite.report->set_state(v1::SUITE_STATE_RUNNING);
    suite.report->set_started_at_unix_ms(absl::ToUnixMillis(Now()));
  }
  worker.leases[lease.id] = false;
  worker.info.set_busy_slots(static_cast<int>(worker.leases.size()));
  leases_[lease.id] = std::move(lease);
  return shard;
}

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::RegisterWorkerRequest& request, const std::string& owner) {
  Locked lock(this);
  ASSIGN_OR_RETURN(Worker * worker,
                   fleet_.Register(request, owner, Steady(), Now()));
  v1::RegisterWorkerResponse response;
  response.set_worker_id(worker->info.worker_id());
  response.set_lease_ms(absl::ToInt64Milliseconds(options_.lease));
  response.set_cache_endpoint(options_.cache_endpoint);
  response.set_cache_service(options_.cache_service);
  response.set_report_interval_ms(absl::ToInt64Milliseconds(ReportInterval()));
  spdlog::info("worker {} registered: {} slots, {}", worker->info.worker_id(),
               worker->info.slots(),
               LogSafe(PlatformString(request.platform())));
  return response;
}

Coordinator::Locked::~Locked() {
  std::vector<std::pair<PullAnswer, v1::PullWorkResponse>> answers;
  answers.swap(c_->answers_);
  c_->mu_.Unlock();
  for (auto& [answer, response] : answers) answer(std::move(response));
}

void Coordinator::Answer(PullAnswer answer, v1::PullWorkResponse response) {
  answers_.emplace_back(std::move(answer), std::move(response));
}

bool Coordinator::ServePull(const std::string& worker_id, int free_slots,
                            v1::PullWorkResponse& response) {
  Worker* found = fleet_.Find(worker_id);
  if (found == nullptr) {
    response.set_unknown_worker(true);
    return true;
  }
  Worker& worker = *found;
  worker.last_seen = Steady();
  if (shutting_down_) return true;
  if (!HasWorkFor(worker)) return false;
  int shards = std::clamp(free_slots, 0, worker.info.slots());
  // An overloaded machine (load well above its slots) takes one shard at a
  // time until it recovers.
  if (worker.info.load_average() > 2.0 * worker.info.slots())
    shards = std::min(shards, 1);
  for (int i = 0; i < shards; ++i) {
    Suite* suite = PickSuite(worker);
    if (suite == nullptr) break;
    v1::Shard shard = MakeShard(*suite, worker);
    if (shard.tests_size() == 0) break;
    *response.add_shards() = std::move(shard);
  }
  // Work is queued but none suits this worker (memory): it waits rather
  // than ask again at once.
  return response.shards_size() > 0;
}

void Coordinator::ServeWaitingPulls() {
  const bool queued = std::any_of(
      suites_.begin(), suites_.end(),
      [](const auto& entry) { return entry.second->queue.size() > 0; });
  fleet_.Serve(
      [&](Fleet::WaitingPull& pull) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        v1::PullWorkResponse response;
        // Without queued work only the unknown are answered.
        if ((!queued && fleet_.Find(pull.worker_id) != nullptr) ||
            !ServePull(pull.worker_id, pull.free_slots, response)) {
          return false;
        }
        Answer(std::move(pull.answer), std::move(response));
        return true;
      });
}

uint64_t Coordinator::PullWork(const v1::PullWorkRequest& request,
                               PullAnswer answer) {
  Locked lock(this);
  v1::PullWorkResponse response;
  if (ServePull(request.worker_id(), request.free_slots(), response) ||
      request.wait_ms() <= 0) {
    Answer(std::move(answer), std::move(response));
    return 0;
  }
  // A waiting worker is alive: its wait ends well before it would be
  // forgotten.
  const absl::Duration wait = std::min(absl::Milliseconds(request.wait_ms()),
                                       options_.worker_timeout / 2);
  return fleet_.Wait({request.worker_id(), request.free_slots(),
                      Steady() + wait, std::move(answer)});
}

void Coordinator::AbandonPull(uint64_t pull_id) {
  Locked lock(this);
  if (PullAnswer answer = fleet_.StopWaiting(pull_id))
    Answer(std::move(answer), v1::PullWorkResponse());
}

absl::Duration Coordinator::ExpirePulls() {
  Locked lock(this);
  const absl::Time now = Steady();
  for (PullAnswer& answer : fleet_.TakeExpired(now))
    Answer(std::move(answer), v1::PullWorkResponse());
  return fleet_.NextDeadline() - now;
}

v1::PullWorkResponse Coordinator::PullWork(const v1::PullWorkRequest& request) {
  struct Answered {
    absl::Mutex mu;
    std::optional<v1::PullWorkResponse> response ABSL_GUARDED_BY(mu);
  };
  auto answered = std::make_shared<Answered>();
  const uint64_t id =
      PullWork(request, [answered](v1::PullWorkResponse response) {
        absl::MutexLock lock(&answered->mu);
        answered->response = std::move(response);
      });
  auto ready = [&answered]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answered->mu) {
    return answered->response.has_value();
  };
  absl::MutexLock lock(&answered->mu);
  if (!answered->mu.AwaitWithTimeout(
          absl::Condition(&ready),
          absl::Milliseconds(std::max<int64_t>(0, request.wait_ms())))) {
    answered->mu.Unlock();
    AbandonPull(id);
    answered->mu.Lock();
    answered->mu.Await(absl::Condition(&ready));
  }
  return *std::move(answered->response);
}

void Coordinator::ReleaseLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  if (Worker* worker = fleet_.Find(it->second.worker_id)) {
    worker->leases.erase(lease_id);
    worker->info.set_busy_slots(static_cast<int>(worker->leases.size()));
  }
  leases_.erase(it);
}

absl::Status Coordinator::CheckWorkerOwner(const std::string& worker_id,
                                           const std::string& owner) {
  Locked lock(this);
  const Worker* worker = fleet_.Find(worker_id);
  if (worker == nullptr || worker->info.owner() == owner) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrCat("worker ", worker_id, " was registered by another token"));
}

v1::HeartbeatResponse Coordinator::Heartbeat(
    const v1::HeartbeatRequest& request) {
  v1::HeartbeatResponse response;
  Locked lock(this);
  Worker* found = fleet_.Find(request.worker_id());
  if (found == nullptr) {
    response.set_unknown_worker(true);
    return response;
  }
  Worker& worker = *found;
  worker.last_seen = Steady();
  worker.info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(Now()));
  // Bounded: a rogue worker's figures steer placement, not arithmetic.
  const double load = request.load_average();
  worker.info.set_load_average(std::isfinite(load) ? std::clamp(load, 0.0, 1e6)
                                                   : 0.0);
  worker.info.set_free_memory_kb(
      std::clamp<int64_t>(request.free_memory_kb(), 0, kMaxPeakKb));
  for (const std::string& lease_id : request.lease_ids()) {
    auto lease = leases_.find(lease_id);
    if (lease != leases_.end() &&
        lease->second.worker_id == worker.info.worker_id()) {
      lease->second.deadline = Steady() + options_.lease;
    }
  }
  TellCancelled(worker, *response.mutable_cancelled_lease_ids());
  response.set_report_interval_ms(absl::ToInt64Milliseconds(ReportInterval()));
  return response;
}

void Coordinator::TellCancelled(
    Worker& worker, google::protobuf::RepeatedPtrField<std::string>& told) {
  std::vector<std::string> cancelled;
  for (const auto& [lease_id, is_cancelled] : worker.leases) {
    if (is_cancelled) cancelled.push_back(lease_id);
  }
  for (const std::string& lease_id : cancelled) {
    *told.Add() = lease_id;
    ReleaseLease(lease_id);
  }
}

void Coordinator::ExpireLease(const std::string& lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  Lease& lease = it->second;
  auto suite = suites_.find(lease.suite_id);
  if (suite != suites_.end() && !suite->second->ended) {
    Suite& s = *suite->second;
    for (int index : lease.outstanding) {
      Test& test = s.tests[index];
      if (test.phase == Phase::kLeased &&
          test.grants.back().lease_id == lease_id) {
        Requeue(s, index, /*first=*/true);
      }
    }
    spdlog::warn("lease {} of worker {} expired: {} tests of suite {} requeued",
                 lease_id, lease.worker_id, lease.outstanding.size(), s.id);
  }
  ReleaseLease(lease_id);
}

void Coordinator::ExpireLeases() {
  Writes writes;
  {
    Locked lock(this);
    ExpireLeasesLocked();
    TakeWrites(writes);  // and what failed to be written before
  }
  (void)Commit(writes);
}

void Coordinator::ExpireLeasesLocked() {
  const absl::Time now = Steady();
  std::vector<std::string> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline < now) expired.push_back(id);
  }
  // In the order they were made (ids end in a zero-padded count), as lost
  // work goes back to the queue in that order.
  std::sort(expired.begin(), expired.end());
  const std::vector<Worker> forgotten =
      fleet_.ForgetSilent(now - options_.worker_timeout);
  for (const Worker& worker : forgotten) {
    spdlog::warn("worker {} silent for {}; forgetting it",
                 worker.info.worker_id(),
                 absl::FormatDuration(now - worker.last_seen));
    for (const auto& [lease_id, cancelled] : worker.leases)
      expired.push_back(lease_id);
  }
  for (const std::string& id : expired) ExpireLease(id);
  // Their tests are queued again; a forgotten worker's pulls are told so.
  if (!expired.empty() || !forgotten.empty()) ServeWaitingPulls();
}

}  // namespace testfleet
