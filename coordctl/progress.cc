#include "coordctl/progress.h"

#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/text.h"
#include "report/reports.h"

namespace testfleet {

ProgressPrinter::ProgressPrinter(FILE* out, bool terminal,
                                 absl::Duration plain_interval)
    : out_(out), terminal_(terminal), plain_interval_(plain_interval) {}

std::string ProgressPrinter::Line(const v1::SuiteProgress& progress) const {
  const v1::SuiteSummary& s = progress.summary();
  const int failed = FailedCount(s);
  std::string eta =
      progress.eta_ms() > 0
          ? absl::StrFormat(", ETA %.0fs", progress.eta_ms() / 1000.0)
          : "";
  const std::string first_failure =
      s.has_first_failure_ms() ? absl::StrFormat(" (first after %.1fs)",
                                                 s.first_failure_ms() / 1000.0)
                               : "";
  return absl::StrFormat(
      "[%d/%d] %d passed, %d failed%s, %d cached, %d in flight on %d "
      "workers%s",
      s.done(), s.total(), s.passed(), failed, first_failure, s.cached(),
      s.running(), progress.workers_busy(), eta);
}

void ProgressPrinter::Update(const v1::WatchEvent& event) {
  for (const v1::TestResult& r : event.finished()) {
    if (!IsFailure(r.status())) continue;
    if (terminal_ && line_width_ > 0)
      std::fprintf(out_, "\r%*s\r", static_cast<int>(line_width_), "");
    line_width_ = 0;
    // A test's words are escaped and indented under its name: output cannot
    // move the cursor, retitle the window or pass for coordctl's own lines.
    std::fprintf(out_, "FAIL %s (%s%s%s)\n", LogSafe(r.test_id()).c_str(),
                 StatusName(r.status()).c_str(),
                 r.error_message().empty() ? "" : ": ",
                 LogSafe(r.error_message()).c_str());
    const std::string& stderr_tail = r.stderr_tail();
    std::string tail = TerminalSafe(
        stderr_tail.size() > 2000
            ? absl::string_view(stderr_tail).substr(stderr_tail.size() - 2000)
            : absl::string_view(stderr_tail));
    if (!tail.empty() && tail.back() == '\n') tail.pop_back();
    if (!tail.empty()) {
      std::fprintf(out_, "  | %s\n",
                   absl::StrReplaceAll(tail, {{"\n", "\n  | "}}).c_str());
    }
  }
  std::string line = Line(event.progress());
  if (terminal_) {
    std::fprintf(out_, "\r%s", line.c_str());
    if (line.size() < line_width_) {
      std::fprintf(out_, "%*s", static_cast<int>(line_width_ - line.size()),
                   "");
    }
    line_width_ = line.size();
  } else if (absl::Now() - last_plain_ >= plain_interval_) {
    std::fprintf(out_, "%s\n", line.c_str());
    last_plain_ = absl::Now();
  }
  std::fflush(out_);
}

void ProgressPrinter::Finish() {
  if (terminal_ && line_width_ > 0) {
    std::fprintf(out_, "\r%*s\r", static_cast<int>(line_width_), "");
    line_width_ = 0;
  }
  std::fflush(out_);
}

}  // namespace testfleet
