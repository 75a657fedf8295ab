#pragma once

namespace testfleet {

/// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and every thread
/// it starts afterwards. Call first thing in main().
void BlockTerminationSignals();

/// Waits for one of the blocked signals and returns its number.
int WaitForTerminationSignal();

}  // namespace testfleet
