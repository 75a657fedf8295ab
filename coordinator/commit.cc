// Coordinator: what the store must hold, staged under the lock and
// written after it (TakeWrites, Commit), and ended suites leaving memory.
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
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_internal.h"
#include "coordinator/perf_analysis.h"
#include "report/reports.h"
#include "spdlog/spdlog.h"

namespace testfleet {

using coordinator_internal::kEndedSuitesInMemory;

void Coordinator::TakeWrites(Writes& writes) {
  writes.ticket = next_ticket_++;
  writes.finished.swap(unsaved_);
  writes.reports.swap(unsaved_reports_);
  for (const std::string& key : dirty_runs_) {
    auto staged = staged_runs_.histories.find(key);
    if (staged == staged_runs_.histories.end()) continue;
    writes.histories.emplace(key, staged->second.SerializeAsString());
    writes.run_keys.push_back(key);
    run_tickets_[key] = writes.ticket;
  }
  dirty_runs_.clear();
}

void Coordinator::WriteGroup(const std::vector<Writes*>& group) {
  Writes& first = *group.front();
  // Later tickets hold newer histories of the same test: they win.
  for (size_t i = 1; i < group.size(); ++i) {
    for (auto& [key, history] : group[i]->histories)
      first.histories.insert_or_assign(key, std::move(history));
    group[i]->histories.clear();
    first.finished.insert(first.finished.end(),
                          std::make_move_iterator(group[i]->finished.begin()),
                          std::make_move_iterator(group[i]->finished.end()));
    group[i]->finished.clear();
  }
  const bool tried = !first.histories.empty() || !first.finished.empty();
  const absl::Status results_saved =
      options_.store->SaveResults(first.histories, first.finished);
  absl::Status all = results_saved;
  bool any_report = false;
  for (Writes* member : group) {
    member->results_saved = results_saved;
    member->report_saved.assign(member->reports.size(), false);
    for (size_t i = 0; i < member->reports.size(); ++i) {
      any_report = true;
      const v1::SuiteReport& report = *member->reports[i];
      absl::Status saved = options_.store->SaveReport(report);
      if (saved.ok() && options_.persist_running)
        saved = options_.store->EndRunningSuite(report.suite_id());
      if (!saved.ok()) {
        spdlog::error("saving the report of {}: {}; retried", report.suite_id(),
                      saved.ToString());
        all.Update(saved);
      }
      member->report_saved[i] = saved.ok();
    }
  }
  // Only a write tried tells whether writes work: an empty commit would
  // otherwise say "working again" between two failures.
  if (tried || any_report) {
    absl::MutexLock health(&store_health_mu_);
    NoteStoreWrite(all);
  }
}

absl::Status Coordinator::Commit(Writes& writes) {
  if (options_.store == nullptr) return absl::OkStatus();
  committer_.Commit(writes.ticket, &writes);
  return Settle(writes);
}

void Coordinator::CommitThen(std::unique_ptr<Writes> writes,
                             absl::AnyInvocable<void(absl::Status) &&> saved) {
  if (options_.store == nullptr) {
    std::move(saved)(absl::OkStatus());
    return;
  }
  Writes* batch = writes.get();
  committer_.CommitThen(
      batch->ticket, batch,
      [this, writes = std::move(writes), saved = std::move(saved)]() mutable {
        std::move(saved)(Settle(*writes));
      });
}

absl::Status Coordinator::Settle(Writes& writes) {
  const absl::Status& saved = writes.results_saved;
  const std::vector<bool>& report_saved = writes.report_saved;
  Locked lock(this);
  for (const std::string& key : writes.run_keys) {
    auto ticket = run_tickets_.find(key);
    if (!saved.ok()) {
      dirty_runs_.insert(key);  // written again by the next commit
    } else if (ticket != run_tickets_.end() &&
               ticket->second == writes.ticket && dirty_runs_.count(key) == 0) {
      // Nothing newer staged: the store answers for it from now on.
      run_tickets_.erase(ticket);
      staged_runs_.histories.erase(key);
    }
  }
  if (!saved.ok()) {
    unsaved_.insert(unsaved_.end(),
                    std::make_move_iterator(writes.finished.begin()),
                    std::make_move_iterator(writes.finished.end()));
  }
  bool trim = false;
  for (size_t i = 0; i < writes.reports.size(); ++i) {
    if (!report_saved[i]) {
      unsaved_reports_.push_back(std::move(writes.reports[i]));
      continue;
    }
    auto suite = suites_.find(writes.reports[i]->suite_id());
    if (suite != suites_.end()) suite->second->report_saved = true;
    trim = true;
  }
  if (trim) TrimEndedSuites();
  return saved;
}

void Coordinator::TrimEndedSuites() {
  if (options_.store == nullptr) return;  // nowhere else to read them from
  size_t ended = 0;
  int64_t ended_tests = 0;
  for (const auto& [id, suite] : suites_) {
    if (!suite->ended) continue;
    ++ended;
    ended_tests += static_cast<int64_t>(suite->tests.size());
  }
  // Oldest first: suites_ is ordered by id, which starts with the time.
  for (auto it = suites_.begin();
       it != suites_.end() &&
       (ended > kEndedSuitesInMemory ||
        ended_tests > options_.max_ended_tests_in_memory);) {
    Suite& suite = *it->second;
    if (suite.ended && suite.report_saved) {
      --ended;
      ended_tests -= static_cast<int64_t>(suite.tests.size());
      it = suites_.erase(it);
    } else {
      ++it;
    }
  }
}

void Coordinator::NoteStoreWrite(const absl::Status& status) {
  // Said when writes start failing and when they work again, not per write.
  if (!status.ok() && !store_failing_) {
    spdlog::error(
        "store writes failing: {}; finished results stay in memory, workers "
        "resend theirs",
        status.ToString());
  } else if (status.ok() && store_failing_) {
    spdlog::info("store writes work again");
  }
  store_failing_ = !status.ok();
}

}  // namespace testfleet
