#pragma once

#include <string>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// One self-contained HTML page (no network, no scripts): summary, failures
/// with their output tails, a timeline of every worker slot as inline SVG
/// (cached tests marked), the slowest tests, peak memory per test with the
/// heaviest tests' memory curves, the cache hit ratio and the tests'
/// outputs, linked under `outputs_link` (the --outputs folder relative to
/// the page) when they were downloaded.
std::string HtmlReport(const v1::SuiteReport& report,
                       const std::string& outputs_link = "");

}  // namespace testfleet
