#pragma once

#include <string>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// "passed", "failed", "timed_out", "memory_exceeded", "cancelled",
/// "skipped", or "error" (also for an unset status): the names of
/// CONTRACT.md, used in reports and as metric labels alike.
std::string StatusName(v1::TestStatus status);
/// Failed, timed out, over memory or could not run (anything but passed,
/// skipped or cancelled): what reports count as failed, what --fail-fast
/// counts and what workers report without delay.
bool IsFailure(v1::TestStatus status);

}  // namespace testfleet
