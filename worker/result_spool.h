#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// Results a worker could not deliver, kept on disk until the coordinator
/// takes them: one file per batch (written to a temporary name, synced, then
/// renamed, so a batch is whole or absent after a crash), delivered oldest
/// first, bounded in bytes. A worker started on the same folder delivers what
/// an earlier one left behind; a lock file keeps two workers out of one spool.
/// An empty spool removes its folder when closed. Used by one thread.
///
///   auto spool = ResultSpool::Open("/var/tmp/testfleet/spool", 1 << 30);
///   if (!deliver(batch).ok()) (*spool)->Append(batch);
///   while (auto oldest = (*spool)->Oldest())
///     if (deliver(oldest->batch).ok()) (*spool)->Remove(oldest->sequence);
class ResultSpool {
 public:
  struct Entry {
    uint64_t sequence = 0;
    v1::ReportResultsRequest batch;
  };

  static absl::StatusOr<std::unique_ptr<ResultSpool>> Open(
      const std::string& dir, int64_t max_bytes);
  ~ResultSpool();

  /// Durable once this returns OK; ResourceExhausted when the spool is full
  /// or the disk is.
  absl::Status Append(const v1::ReportResultsRequest& batch);
  /// The oldest batch; nullopt when empty. A file that does not parse is
  /// logged and removed: it can only be a torn write that was never renamed.
  std::optional<Entry> Oldest();
  absl::Status Remove(uint64_t sequence);

  int64_t bytes() const { return bytes_; }
  size_t batches() const { return sizes_.size(); }
  const std::string& dir() const { return dir_; }

 private:
  ResultSpool(std::string dir, int64_t max_bytes, int lock_fd);
  std::string PathOf(uint64_t sequence) const;

  const std::string dir_;
  const int64_t max_bytes_;
  const int lock_fd_;
  std::map<uint64_t, int64_t> sizes_;  // sequence -> file bytes
  int64_t bytes_ = 0;
  uint64_t next_sequence_ = 1;
};

/// `batch` as requests of at most `max_results` results and, unless one
/// result alone is larger, `max_bytes` serialized bytes, in order: results
/// held through a long outage must not grow one request past the message
/// limit, which would refuse it forever. Empty for an empty batch.
std::vector<v1::ReportResultsRequest> SplitReport(
    const v1::ReportResultsRequest& batch, size_t max_results,
    size_t max_bytes);

}  // namespace testfleet
