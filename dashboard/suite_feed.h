#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/coordinator.h"
#include "nlohmann/json.hpp"

namespace testfleet {

/// One suite as the dashboard follows it. A thread reads the suite's results
/// from the coordinator as they finish (Coordinator::NextEvent, at most one
/// batch per `batch_interval`) and keeps each as a compact row rendered to
/// JSON once, so every page that follows the suite shares one reader and
/// one rendering: a page's update is a concatenation of rows already made.
class SuiteFeed {
 public:
  SuiteFeed(Coordinator& coordinator, std::string suite_id,
            absl::Duration batch_interval);
  ~SuiteFeed();  // stops following

  const std::string& suite_id() const { return suite_id_; }

  /// A page of rows: `filter` "all", "failed", "cached" or "executed";
  /// `sort` "finished" (completion order), "wall" or "memory" (largest
  /// first). {"total": matching rows, "rows": [...]}.
  /// (JSON text: the rows are spliced in as rendered.)
  std::string Rows(size_t offset, size_t limit, const std::string& filter,
                   const std::string& sort) const;
  /// Every executed row as a bar [lane, start (Unix ms), duration ms,
  /// status, row] with the lanes ("worker/slot"): the slot timeline.
  nlohmann::json Timeline() const;
  /// Progress, performance changes found, and the row count.
  nlohmann::json State() const;

  /// What a page has been sent.
  struct Cursor {
    size_t rows = 0;
    size_t lanes = 0;
    uint64_t version = 0;  // of the progress
  };
  /// Waits up to `wait` for rows past `*cursor`, a newer progress or the
  /// end; then sets `*update` to one Server-Sent Event and advances the
  /// cursor. An update carries what a following page draws, no more: the
  /// progress, new lanes, a bar per executed row and the whole row of each
  /// failure (at most `max_rows` rows). Returns false when nothing came.
  bool NextUpdate(Cursor* cursor, absl::Duration wait, size_t max_rows,
                  std::string* update);
  bool ended() const;

 private:
  struct Row {
    v1::TestStatus status;
    bool cached;
    double wall_ms;
    int64_t peak_rss_kb;
    int lane;  // -1: took no slot
    int64_t started;
    int64_t finished;
    std::string json;  // the row (ResultRowJson)
    std::string bar;   // its timeline bar; empty: took no slot
  };
  void Follow();
  // One NextEvent (waiting up to `wait`) into the rows; false once the suite
  // ended or cannot be followed.
  bool Read(absl::Duration wait);
  nlohmann::json StateLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // {"total": N, "rows": [rows row_at(offset)... (at most limit)]}.
  template <typename RowAt>
  static std::string PageOf(size_t total, size_t offset, size_t limit,
                            RowAt row_at);

  Coordinator& coordinator_;
  const std::string suite_id_;
  const absl::Duration batch_interval_;
  Coordinator::WatchCursor cursor_;  // the follower's (or constructor's) only
  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  std::vector<Row> rows_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> lanes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> lane_of_ ABSL_GUARDED_BY(mu_);
  nlohmann::json progress_ ABSL_GUARDED_BY(mu_) = nlohmann::json::object();
  nlohmann::json changes_ ABSL_GUARDED_BY(mu_) = nlohmann::json::array();
  uint64_t progress_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::string state_text_ ABSL_GUARDED_BY(mu_);  // StateLocked(), rendered
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::thread follower_;
};

}  // namespace testfleet
