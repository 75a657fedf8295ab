// testfleet-launch ARGV...: runs one test for the worker and reports how it
// ended on fd 3 (see launcher.h). Kept free of libraries so its own RSS,
// which its child inherits as a high-water floor, stays about 1 MiB.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker/launcher.h"

namespace {

int64_t Micros(const struct timeval& tv) {
  return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// Kills every other process of our session: what the test left behind in
// process groups of its own.
void KillSession() {
  const pid_t self = getpid();
  const pid_t sid = getsid(0);
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (struct dirent* entry = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(atoi(entry->d_name));
    if (pid <= 0 || pid == self) continue;
    if (getsid(pid) == sid) kill(pid, SIGKILL);
  }
  closedir(proc);
}

}  // namespace

int main(int argc, char** argv) {
  using testfleet::kLauncherStatusFd;
  if (argc < 2) {
    fprintf(
        stderr,
        "usage: testfleet-launch PROGRAM [ARGS...] (started by the worker)\n");
    return 2;
  }
  fcntl(kLauncherStatusFd, F_SETFD, FD_CLOEXEC);
  // The worker stops a test by signalling its process group; the launcher
  // outlives it to report, and reaps the test's orphans as their subreaper.
  // Blocked across fork: a stop signal sent before the child has restored
  // the default action stays pending instead of being ignored.
  sigset_t stop_signals, original_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &stop_signals, &original_mask);
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) return 126;
  pid_t pid = fork();
  if (pid < 0) return 126;
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigprocmask(SIG_SETMASK, &original_mask, nullptr);
    if (strchr(argv[1], '/') != nullptr) {
      execv(argv[1], argv + 1);
    } else {
      execvp(argv[1], argv + 1);
    }
    int err = errno;
    (void)!write(exec_pipe[1], &err, sizeof(err));
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the worker may signal the group at once
  close(exec_pipe[1]);
  testfleet::LauncherStarted started{pid};
  (void)!write(kLauncherStatusFd, &started, sizeof(started));

  testfleet::LauncherFinished finished{};
  int err = 0;
  if (read(exec_pipe[0], &err, sizeof(err)) == sizeof(err))
    finished.exec_errno = err;
  close(exec_pipe[0]);
  struct rusage usage {};
  int status = 0;
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  finished.wait_status = status;
  finished.max_rss_kb = usage.ru_maxrss;
  finished.user_us = Micros(usage.ru_utime);
  finished.sys_us = Micros(usage.ru_stime);

  // Nothing the test started outlives it.
  kill(-pid, SIGKILL);
  KillSession();
  const struct timespec pause = {0, 10 * 1000 * 1000};
  for (int i = 0; i < 300;
       ++i) {  // at most ~3 s for the kernel to deliver SIGKILL
    int orphan_status = 0;
    struct rusage orphan {};
    pid_t reaped = wait4(-1, &orphan_status, WNOHANG, &orphan);
    if (reaped < 0) break;  // no children left
    if (reaped == 0) {
      nanosleep(&pause, nullptr);
      continue;
    }
    finished.user_us += Micros(orphan.ru_utime);
    finished.sys_us += Micros(orphan.ru_stime);
  }
  (void)!write(kLauncherStatusFd, &finished, sizeof(finished));
  return 0;
}
