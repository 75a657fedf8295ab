#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// SHA-256 of files, memoized by (path, size, mtime, ctime, inode, device) so
/// an unchanged file is hashed once, across runs when the memo is saved.
/// A file hashed within two seconds of its last write is memoized for this
/// process only, never saved: a write within the timestamp granularity could
/// otherwise go unseen by a later run.
/// Thread-safe.
///   FileDigester digester;
///   digester.Load(memo_path).IgnoreError();
///   ASSIGN_OR_RETURN(auto d, digester.Digest("/src/suite", "bin/test"));
class FileDigester {
 public:
  explicit FileDigester(const Clock* clock = RealClock::Get())
      : clock_(clock) {}

  /// Digest of `root`/`relative_path`; the result's path is `relative_path`.
  absl::StatusOr<v1::InputDigest> Digest(const std::string& root,
                                         const std::string& relative_path);

  /// Reads a memo written by Save; a missing file is not an error.
  absl::Status Load(const std::string& memo_path);
  /// Writes the memo atomically (temporary file and rename).
  absl::Status Save(const std::string& memo_path) const;

  int64_t files_hashed() const;
  int64_t memo_hits() const;

 private:
  const Clock* clock_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, v1::FileDigestMemo::Entry> memo_
      ABSL_GUARDED_BY(mu_);
  int64_t files_hashed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t memo_hits_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace testfleet
