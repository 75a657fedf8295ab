// testfleet-launch: the fork server a worker slot starts its tests with (see
// launcher.h). Statically linked and free of libraries, so its RSS, which
// every test it forks inherits as a high-water floor, stays about 1 MiB.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "worker/isolation.h"
#include "worker/launcher.h"

namespace {

using testfleet::kLauncherSocketFd;

int64_t Micros(const struct timeval& tv) {
  return static_cast<int64_t>(tv.tv_sec) * 1000000 + tv.tv_usec;
}

// Reads one request: header and the two descriptors, then the strings.
bool ReadRequest(testfleet::LaunchRequestHeader& header, int fds[2],
                 std::string& payload) {
  char control[CMSG_SPACE(2 * sizeof(int))];
  struct iovec iov = {&header, sizeof(header)};
  struct msghdr message =
      testfleet::OneBufferMessage(&iov, control, sizeof(control));
  ssize_t n;
  while ((n = recvmsg(kLauncherSocketFd, &message, MSG_CMSG_CLOEXEC)) < 0 &&
         errno == EINTR) {
  }
  if (n <= 0) return false;
  if (static_cast<size_t>(n) < sizeof(header) &&
      !testfleet::ReadFully(kLauncherSocketFd,
                            reinterpret_cast<char*>(&header) + n,
                            sizeof(header) - n)) {
    return false;
  }
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  if (cmsg == nullptr || cmsg->cmsg_type != SCM_RIGHTS) return false;
  memcpy(fds, CMSG_DATA(cmsg), 2 * sizeof(int));
  payload.resize(header.payload_bytes);
  return testfleet::ReadFully(kLauncherSocketFd, payload.data(),
                              payload.size());
}

// Kills what a test left behind: its session, and any other child of ours
// (one test runs at a time, so every child is the test's).
void KillLeftovers(pid_t test) {
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return;
  while (struct dirent* entry = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(atoi(entry->d_name));
    if (pid <= 0 || pid == self) continue;
    char path[64], buffer[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    close(fd);
    if (n <= 0) continue;
    buffer[n] = '\0';
    const char* rest = strrchr(buffer, ')');
    int ppid = 0, pgrp = 0, session = 0;
    char state = 0;
    if (rest == nullptr ||
        sscanf(rest + 2, "%c %d %d %d", &state, &ppid, &pgrp, &session) != 4) {
      continue;
    }
    if (session == test || ppid == self) kill(pid, SIGKILL);
  }
  closedir(proc);
}

void RunOne(const testfleet::LaunchRequestHeader& header, const int fds[2],
            const std::string& payload) {
  std::vector<char*> strings;
  for (size_t i = 0; i < payload.size(); i += strlen(payload.data() + i) + 1) {
    strings.push_back(const_cast<char*>(payload.data() + i));
  }
  testfleet::LaunchStarted started{};
  started.test_pid = -1;
  const size_t isolation_strings =
      header.isolated ? 1 + 2 * static_cast<size_t>(header.bindc) : 0;
  if (strings.size() != 1 + header.argc + header.envc + isolation_strings ||
      header.argc == 0) {
    started.exec_errno = EINVAL;
    testfleet::WriteFully(kLauncherSocketFd, &started, sizeof(started));
    return;
  }
  const char* cwd = strings[0];
  std::vector<char*> argv(strings.begin() + 1,
                          strings.begin() + 1 + header.argc);
  argv.push_back(nullptr);
  std::vector<char*> envp(strings.begin() + 1 + header.argc,
                          strings.begin() + 1 + header.argc + header.envc);
  envp.push_back(nullptr);
  std::string stage;
  std::vector<testfleet::BindMount> binds;
  if (header.isolated) {
    size_t at = 1 + header.argc + header.envc;
    stage = strings[at++];
    for (uint32_t i = 0; i < header.bindc; ++i, at += 2)
      binds.push_back({strings[at], strings[at + 1]});
  }

  // The child's failure if isolation, chdir or exec fails; EOF on exec.
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    started.exec_errno = errno;
    testfleet::WriteFully(kLauncherSocketFd, &started, sizeof(started));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(fds[0], 1);
    dup2(fds[1], 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // exec keeps ignored signals ignored: give the test the defaults back.
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) signal(sig, SIG_DFL);
    testfleet::LaunchStarted failure{};
    testfleet::IsolationError isolation;
    if (header.isolated &&
        !testfleet::IsolateFilesystem(binds, stage, isolation)) {
      failure.isolation_errno = isolation.error == 0 ? EINVAL : isolation.error;
      snprintf(failure.isolation_step, sizeof(failure.isolation_step), "%s %s",
               isolation.step.c_str(), isolation.path.c_str());
    } else if (chdir(cwd) != 0) {
      failure.chdir_errno = errno;
    } else {
      if (strchr(argv[0], '/') != nullptr) {
        execve(argv[0], argv.data(), envp.data());
      } else {
        execvpe(argv[0], argv.data(), envp.data());
      }
      failure.exec_errno = errno;
    }
    testfleet::WriteFully(report[1], &failure, sizeof(failure));
    _exit(127);
  }
  const int fork_errno = errno;
  close(report[1]);
  close(fds[0]);
  close(fds[1]);
  const bool failed =
      pid < 0 || testfleet::ReadFully(report[0], &started, sizeof(started));
  close(report[0]);
  if (failed) {
    started.test_pid = -1;
    if (pid < 0) started.exec_errno = fork_errno;
    if (pid > 0) waitpid(pid, nullptr, 0);
    testfleet::WriteFully(kLauncherSocketFd, &started, sizeof(started));
    return;
  }
  started.test_pid = pid;
  testfleet::WriteFully(kLauncherSocketFd, &started, sizeof(started));

  testfleet::LaunchFinished finished{};
  struct rusage usage {};
  int status = 0;
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  finished.wait_status = status;
  finished.max_rss_kb = usage.ru_maxrss;
  finished.user_us = Micros(usage.ru_utime);
  finished.sys_us = Micros(usage.ru_stime);
  // Whatever the test left running is, or will be once its parent dies, a
  // child of ours (we are the subreaper): no children left means nothing
  // left, and the common case costs no scan of /proc.
  kill(-pid, SIGKILL);
  const struct timespec pause = {0, 5 * 1000 * 1000};
  for (int i = 0; i < 600; ++i) {  // at most ~3 s for SIGKILL to land
    int orphan_status = 0;
    struct rusage orphan {};
    pid_t reaped = wait4(-1, &orphan_status, WNOHANG, &orphan);
    if (reaped < 0) break;  // no children left
    if (reaped == 0) {
      if (i % 20 == 0) KillLeftovers(pid);
      nanosleep(&pause, nullptr);
      continue;
    }
    finished.user_us += Micros(orphan.ru_utime);
    finished.sys_us += Micros(orphan.ru_stime);
  }
  testfleet::WriteFully(kLauncherSocketFd, &finished, sizeof(finished));
}

}  // namespace

int main() {
  if (fcntl(kLauncherSocketFd, F_GETFD) < 0) {
    fprintf(stderr, "testfleet-launch is started by the worker, not by hand\n");
    return 2;
  }
  fcntl(kLauncherSocketFd, F_SETFD, FD_CLOEXEC);
  // Terminal signals are the worker's business; the launcher ends with its
  // socket, or with the worker (PR_SET_PDEATHSIG).
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0;  // the worker is already gone
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  testfleet::LaunchRequestHeader header{};
  int fds[2];
  std::string payload;
  while (ReadRequest(header, fds, payload)) RunOne(header, fds, payload);
  return 0;
}
