#include "coordinator/fleet.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/spec_rules.h"
#include "common/text.h"

namespace testfleet {
namespace {

constexpr size_t kMaxWorkerNameBytes = 128;

}  // namespace

absl::StatusOr<Fleet::Worker*> Fleet::Register(
    const v1::RegisterWorkerRequest& request, const std::string& owner,
    absl::Time steady, absl::Time now) {
  const std::string name = request.name().empty() ? "worker" : request.name();
  if (name.size() > kMaxWorkerNameBytes ||
      !CheckTestId(name).ok()) {  // the same rule: printable, no newlines
    return absl::InvalidArgumentError(absl::StrCat(
        "worker name ", LogSafe(name), " is not printable or longer than ",
        kMaxWorkerNameBytes, " characters; choose another --name"));
  }
  if (max_workers_ > 0 && static_cast<int>(workers_.size()) >= max_workers_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this coordinator serves ", workers_.size(),
        " workers, its limit (--max-workers); start this one later or raise "
        "the limit"));
  }
  Worker worker;
  worker.info.set_owner(owner);
  worker.info.set_worker_id(absl::StrCat(name, "#", next_worker_++));
  worker.info.set_name(name);
  worker.info.set_slots(std::clamp(request.slots(), 1, max_worker_slots_));
  *worker.info.mutable_platform() = request.platform();
  worker.last_seen = steady;
  worker.info.set_last_heartbeat_unix_ms(absl::ToUnixMillis(now));
  slots_ += worker.info.slots();
  const std::string id = worker.info.worker_id();
  return &(workers_[id] = std::move(worker));
}

Fleet::Worker* Fleet::Find(const std::string& worker_id) {
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : &it->second;
}

std::vector<Fleet::Worker> Fleet::ForgetSilent(absl::Time cutoff) {
  std::vector<Worker> forgotten;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second.last_seen >= cutoff) {
      ++it;
      continue;
    }
    slots_ -= it->second.info.slots();
    forgotten.push_back(std::move(it->second));
    it = workers_.erase(it);
  }
  return forgotten;
}

bool Fleet::SomeoneHasFreeMemory(int64_t kb) const {
  return std::any_of(workers_.begin(), workers_.end(), [kb](const auto& w) {
    return w.second.info.free_memory_kb() >= kb;
  });
}

absl::Duration Fleet::ReportInterval(double reports_per_second,
                                     absl::Duration longest) const {
  if (!(reports_per_second > 0)) return absl::ZeroDuration();  // NaN too
  // Each worker reports about once an interval while it has results.
  return std::min(
      absl::Seconds(static_cast<double>(workers_.size()) / reports_per_second),
      longest);
}

uint64_t Fleet::Wait(WaitingPull pull) {
  const uint64_t id = next_pull_++;
  earliest_deadline_ = std::min(earliest_deadline_, pull.deadline);
  waiting_.emplace(id, std::move(pull));
  return id;
}

Fleet::PullAnswer Fleet::StopWaiting(uint64_t pull_id) {
  auto it = waiting_.find(pull_id);
  if (it == waiting_.end()) return nullptr;
  PullAnswer answer = std::move(it->second.answer);
  waiting_.erase(it);
  return answer;
}

std::vector<Fleet::PullAnswer> Fleet::TakeExpired(absl::Time now) {
  std::vector<PullAnswer> expired;
  if (now < earliest_deadline_) return expired;  // the usual tick
  earliest_deadline_ = absl::InfiniteFuture();
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second.deadline > now) {
      earliest_deadline_ = std::min(earliest_deadline_, it->second.deadline);
      ++it;
      continue;
    }
    if (Worker* worker = Find(it->second.worker_id)) worker->last_seen = now;
    expired.push_back(std::move(it->second.answer));
    it = waiting_.erase(it);
  }
  return expired;
}

void Fleet::Serve(const std::function<bool(WaitingPull&)>& serve) {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    it = serve(it->second) ? waiting_.erase(it) : std::next(it);
  }
}

std::vector<Fleet::PullAnswer> Fleet::TakeAllWaiting() {
  std::vector<PullAnswer> all;
  for (auto& [id, pull] : waiting_) all.push_back(std::move(pull.answer));
  waiting_.clear();
  return all;
}

}  // namespace testfleet
