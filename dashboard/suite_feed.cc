#include "dashboard/suite_feed.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/test_status.h"
#include "dashboard/json_views.h"
#include "report/reports.h"

namespace testfleet {
namespace {

// A row's timeline bar: [lane, start (Unix ms), duration ms, status, row].
template <typename Row>
nlohmann::json Bar(const Row& row, size_t index) {
  return {row.lane, row.started,
          std::max<int64_t>(0, row.finished - row.started),
          StatusName(row.status), index};
}

}  // namespace

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
    state_text_ = JsonText(StateLocked());
    changed_.SignalAll();
    return false;
  }
  for (const v1::TestResult& result : event.finished()) {
    Row row{result.status(),
            result.cached(),
            result.wall_ms(),
            result.peak_rss_kb(),
            -1,
            result.started_at_unix_ms(),
            result.finished_at_unix_ms(),
            JsonText(ResultRowJson(result, rows_.size())),
            ""};
    if (!result.cached() && !result.worker().empty()) {
      const std::string lane =
          absl::StrCat(result.worker(), "/", result.slot());
      auto [it, added] =
          lane_of_.emplace(lane, static_cast<int>(lanes_.size()));
      if (added) lanes_.push_back(lane);
      row.lane = it->second;
      row.bar = JsonText(Bar(row, rows_.size()));
    }
    rows_.push_back(std::move(row));
  }
  for (const v1::PerformanceChange& change : event.changes()) {
    changes_.push_back(ChangeJson(change));
  }
  progress_ = ProgressJson(event.progress());
  ++progress_version_;
  ended_ = *ended;
  state_text_ = JsonText(StateLocked());
  changed_.SignalAll();
  return !ended_;
}

std::string SuiteFeed::Rows(size_t offset, size_t limit,
                            const std::string& filter,
                            const std::string& sort) const {
  absl::MutexLock lock(&mu_);
  const bool by_wall = sort == "wall";
  if (filter != "failed" && filter != "cached" && filter != "executed" &&
      !by_wall && sort != "memory") {
    // Every row in completion order, what a page asks most: no copy.
    return PageOf(rows_.size(), offset, limit,
                  [this](size_t i) -> const Row& { return rows_[i]; });
  }
  std::vector<const Row*> matching;
  for (const Row& row : rows_) {
    const bool keep = filter == "failed"     ? IsFailure(row.status)
                      : filter == "cached"   ? row.cached
                      : filter == "executed" ? !row.cached
                                             : true;
    if (keep) matching.push_back(&row);
  }
  if (by_wall || sort == "memory") {
    std::stable_sort(matching.begin(), matching.end(),
                     [by_wall](const Row* a, const Row* b) {
                       return by_wall ? a->wall_ms > b->wall_ms
                                      : a->peak_rss_kb > b->peak_rss_kb;
                     });
  }
  return PageOf(matching.size(), offset, limit,
                [&matching](size_t i) -> const Row& { return *matching[i]; });
}

template <typename RowAt>
std::string SuiteFeed::PageOf(size_t total, size_t offset, size_t limit,
                              RowAt row_at) {
  // The rows are JSON already: spliced in, not parsed and written again.
  std::string page = absl::StrCat("{\"total\":", total, ",\"rows\":[");
  for (size_t i = offset; i < total && i - offset < limit; ++i) {
    absl::StrAppend(&page, i > offset ? "," : "", row_at(i).json);
  }
  page += "]}";
  return page;
}

nlohmann::json SuiteFeed::Timeline() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json bars = nlohmann::json::array();
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].lane >= 0) bars.push_back(Bar(rows_[i], i));
  }
  return {{"lanes", lanes_}, {"bars", std::move(bars)}};
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
  // Rows are JSON already: spliced in, not parsed and written again.
  std::string bars = "[", failures = "[";
  for (size_t i = cursor->rows; i < end; ++i) {
    const Row& row = rows_[i];
    if (!row.bar.empty()) {
      absl::StrAppend(&bars, bars.size() > 1 ? "," : "", row.bar);
    }
    if (IsFailure(row.status)) {
      absl::StrAppend(&failures, failures.size() > 1 ? "," : "", row.json);
    }
  }
  const nlohmann::json lanes = std::vector<std::string>(
      lanes_.begin() + static_cast<std::ptrdiff_t>(cursor->lanes),
      lanes_.end());
  *update = absl::StrCat("event: update\ndata: {\"state\":", state_text_,
                         ",\"lanes_from\":", cursor->lanes,
                         ",\"lanes\":", JsonText(lanes), ",\"bars\":", bars,
                         "],\"failures\":", failures, "]}\n\n");
  cursor->rows = end;
  cursor->lanes = lanes_.size();
  cursor->version = progress_version_;
  return true;
}

bool SuiteFeed::ended() const {
  absl::MutexLock lock(&mu_);
  return ended_;
}

}  // namespace testfleet
