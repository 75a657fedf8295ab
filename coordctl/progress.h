#pragma once

#include <cstdio>
#include <string>

#include "absl/time/time.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

/// Shows a suite's progress: on a terminal one line rewritten in place, each
/// failure printed as it happens with its stderr tail; elsewhere (CI logs)
/// plain lines at most every `plain_interval`.
class ProgressPrinter {
 public:
  ProgressPrinter(FILE* out, bool terminal,
                  absl::Duration plain_interval = absl::Seconds(5));
  void Update(const v1::WatchEvent& event);
  /// Clears the progress line before the final summary.
  void Finish();

 private:
  std::string Line(const v1::SuiteProgress& progress) const;
  FILE* out_;
  bool terminal_;
  absl::Duration plain_interval_;
  absl::Time last_plain_ = absl::InfinitePast();
  size_t line_width_ = 0;
};

}  // namespace testfleet
