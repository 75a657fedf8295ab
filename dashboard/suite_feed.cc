#include "dashboard/suite_feed.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "dashboard/json_views.h"
#include "report/reports.h"

namespace testfleet {

SuiteFeed::SuiteFeed(Coordinator& coordinator, std::string suite_id,
                     absl::Duration batch_interval)
    : coordinator_(coordinator),
      suite_id_(std::move(suite_id)),
      batch_interval_(batch_interval) {
  // What is there now, before the first page asks; then the rest as it comes.
  if (Read(absl::ZeroDuration())) follower_ = std::thread([this] { Follow(); });
}

SuiteFeed::~SuiteFeed() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  if (follower_.joinable()) follower_.join();
}

void SuiteFeed::Follow() {
  while (true) {
    {
      // Batches: pages hear of a busy suite a few times a second, not per
      // test.
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), batch_interval_);
      if (stopping_) return;
    }
    if (!Read(absl::Seconds(1))) return;
  }
}

bool SuiteFeed::Read(absl::Duration wait) {
  v1::WatchEvent event;
  // Access was checked when the feed was asked for; it serves only those.
  absl::StatusOr<bool> ended = coordinator_.NextEvent(
      suite_id_, &cursor_, wait, &event, Principal::Anyone());
  absl::MutexLock lock(&mu_);
  if (!ended.ok()) {
    status_ = ended.status();
    ended_ = true;
    changed_.SignalAll();
    return false;
  }
  for (const v1::TestResult& result : event.finished()) {
    Row row{
        result.status(),
        result.cached(),
        result.wall_ms(),
        result.peak_rss_kb(),
        -1,
        result.started_at_unix_ms(),
        result.finished_at_unix_ms(),
        ResultRowJson(result, rows_.size())
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
    if (!result.cached() && !result.worker().empty()) {
      const std::string lane =
          absl::StrCat(result.worker(), "/", result.slot());
      auto [it, added] =
          lane_of_.emplace(lane, static_cast<int>(lanes_.size()));
      if (added) lanes_.push_back(lane);
      row.lane = it->second;
    }
    rows_.push_back(std::move(row));
  }
  for (const v1::PerformanceChange& change : event.changes()) {
    changes_.push_back(ChangeJson(change));
  }
  progress_ = ProgressJson(event.progress());
  ++progress_version_;
  ended_ = *ended;
  changed_.SignalAll();
  return !ended_;
}

nlohmann::json SuiteFeed::Rows(size_t offset, size_t limit,
                               const std::string& filter,
                               const std::string& sort) const {
  absl::MutexLock lock(&mu_);
  std::vector<const Row*> matching;
  for (const Row& row : rows_) {
    const bool keep = filter == "failed"     ? IsFailure(row.status)
                      : filter == "cached"   ? row.cached
                      : filter == "executed" ? !row.cached
                                             : true;
    if (keep) matching.push_back(&row);
  }
  if (sort == "wall" || sort == "memory") {
    const bool by_wall = sort == "wall";
    std::stable_sort(matching.begin(), matching.end(),
                     [by_wall](const Row* a, const Row* b) {
                       return by_wall ? a->wall_ms > b->wall_ms
                                      : a->peak_rss_kb > b->peak_rss_kb;
                     });
  }
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = offset; i < matching.size() && i < offset + limit; ++i) {
    rows.push_back(nlohmann::json::parse(matching[i]->json));
  }
  return {{"total", matching.size()}, {"rows", std::move(rows)}};
}

nlohmann::json SuiteFeed::Timeline() const {
  absl::MutexLock lock(&mu_);
  int64_t first = 0;
  for (const Row& row : rows_) {
    if (row.lane >= 0 && (first == 0 || row.started < first))
      first = row.started;
  }
  nlohmann::json bars = nlohmann::json::array();
  for (size_t i = 0; i < rows_.size(); ++i) {
    const Row& row = rows_[i];
    if (row.lane < 0) continue;
    bars.push_back({row.lane, row.started - first,
                    std::max<int64_t>(0, row.finished - row.started),
                    StatusName(row.status), i});
  }
  return {
      {"lanes", lanes_}, {"start_unix_ms", first}, {"bars", std::move(bars)}};
}

nlohmann::json SuiteFeed::StateLocked() const {
  return {{"progress", progress_},
          {"changes", changes_},
          {"rows", rows_.size()},
          {"ended", ended_},
          {"error", status_.ok() ? "" : std::string(status_.message())}};
}

nlohmann::json SuiteFeed::State() const {
  absl::MutexLock lock(&mu_);
  return StateLocked();
}

bool SuiteFeed::NextUpdate(Cursor* cursor, absl::Duration wait, size_t max_rows,
                           std::string* update) {
  absl::MutexLock lock(&mu_);
  auto news = [this, cursor]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stopping_ || rows_.size() > cursor->rows ||
           progress_version_ != cursor->version;
  };
  mu_.AwaitWithTimeout(absl::Condition(&news), wait);
  if (!news() || stopping_) return false;
  const size_t end = std::min(rows_.size(), cursor->rows + max_rows);
  std::string rows = "[";
  for (size_t i = cursor->rows; i < end; ++i) {
    if (i > cursor->rows) rows.push_back(',');
    rows += rows_[i].json;
  }
  rows.push_back(']');
  // The rows are JSON already: spliced in, not parsed and written again.
  *update =
      absl::StrCat("event: update\ndata: {\"state\":",
                   StateLocked().dump(-1, ' ', false,
                                      nlohmann::json::error_handler_t::replace),
                   ",\"rows\":", rows, "}\n\n");
  cursor->rows = end;
  cursor->version = progress_version_;
  return true;
}

bool SuiteFeed::ended() const {
  absl::MutexLock lock(&mu_);
  return ended_;
}

absl::Status SuiteFeed::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace testfleet
