#pragma once

#include <string>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// One self-contained HTML page (no network, no scripts): summary, failures
/// with their output tails, a timeline of every worker slot as inline SVG
/// (cached tests marked), the slowest tests, peak memory per test with the
/// heaviest tests' memory curves, and the cache hit ratio.
std::string HtmlReport(const v1::SuiteReport& report);

}  // namespace testfleet
