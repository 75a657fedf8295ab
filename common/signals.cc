#include "common/signals.h"

#include <pthread.h>
#include <signal.h>

namespace testfleet {
namespace {

sigset_t TerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t set = TerminationSignals();
  int signal = 0;
  sigwait(&set, &signal);
  return signal;
}

int WaitForTerminationSignal(const std::function<void()>& on_hangup) {
  int signal = WaitForTerminationSignal();
  for (; signal == SIGHUP; signal = WaitForTerminationSignal()) on_hangup();
  return signal;
}

}  // namespace testfleet
