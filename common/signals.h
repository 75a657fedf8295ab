#pragma once

#include <functional>

namespace testfleet {

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread
/// it starts afterwards. Call first thing in main().
void BlockTerminationSignals();

/// Waits for one of the blocked signals and returns its number.
int WaitForTerminationSignal();
/// Waits for SIGINT or SIGTERM and returns it; each SIGHUP before it calls
/// `on_hangup` (servers reload their token file).
int WaitForTerminationSignal(const std::function<void()>& on_hangup);

}  // namespace testfleet
