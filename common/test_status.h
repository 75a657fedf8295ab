#pragma once

#include <string>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// "passed", "failed", "timed_out", "memory_exceeded", "cancelled",
/// "skipped", or "error" (also for an unset status): the names of
/// CONTRACT.md, used in reports and as metric labels alike.
std::string StatusName(v1::TestStatus status);

}  // namespace testfleet
