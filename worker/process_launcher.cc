#include "worker/process_launcher.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace testfleet {
namespace {

absl::Status LauncherGone(const char* what) {
  return absl::UnavailableError(absl::StrCat("the test launcher failed (", what,
                                             ": ", std::strerror(errno), ")"));
}

}  // namespace

std::string DefaultLauncherPath() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return "testfleet-launch";
  self[n] = '\0';
  std::string path(self);
  return path.substr(0, path.rfind('/') + 1) + "testfleet-launch";
}

absl::StatusOr<std::unique_ptr<ProcessLauncher>> ProcessLauncher::Start(
    const std::string& path) {
  int sockets[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    return LauncherGone("socketpair");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sockets[1], kLauncherSocketFd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group: a Ctrl-C at the terminal is the worker's to handle.
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t no_signals, all_signals;
  sigemptyset(&no_signals);
  sigfillset(&all_signals);
  posix_spawnattr_setsigmask(&attr, &no_signals);
  posix_spawnattr_setsigdefault(&attr, &all_signals);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  std::string program = path;
  char* argv[] = {program.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, program.c_str(), &actions, &attr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(sockets[1]);
  if (rc != 0) {
    close(sockets[0]);
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start the test launcher ", path, ": ", std::strerror(rc),
        " (it is built beside the worker binary)"));
  }
  return std::unique_ptr<ProcessLauncher>(new ProcessLauncher(pid, sockets[0]));
}

ProcessLauncher::~ProcessLauncher() {
  close(socket_);  // the launcher exits on EOF
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

absl::StatusOr<LaunchStarted> ProcessLauncher::Spawn(
    const std::vector<std::string>& argv, const std::vector<std::string>& env,
    const std::string& cwd, int stdout_fd, int stderr_fd,
    const Isolation* isolation) {
  std::string payload;
  auto add = [&payload](const std::string& s) {
    payload.append(s.c_str(), s.size() + 1);
  };
  add(cwd);
  for (const std::string& s : argv) add(s);
  for (const std::string& s : env) add(s);
  if (isolation != nullptr) {
    add(isolation->stage);
    for (const BindMount& bind : isolation->binds) {
      add(bind.source);
      add(bind.target);
    }
  }
  LaunchRequestHeader header{
      static_cast<uint32_t>(payload.size()), static_cast<uint32_t>(argv.size()),
      static_cast<uint32_t>(env.size()), isolation != nullptr,
      static_cast<uint32_t>(isolation ? isolation->binds.size() : 0)};
  int fds[2] = {stdout_fd, stderr_fd};
  char control[CMSG_SPACE(sizeof(fds))] = {};
  struct iovec iov = {&header, sizeof(header)};
  struct msghdr message =
      testfleet::OneBufferMessage(&iov, control, sizeof(control));
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(fds));
  std::memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
  ssize_t sent;
  while ((sent = sendmsg(socket_, &message, MSG_NOSIGNAL)) < 0 &&
         errno == EINTR) {
  }
  if (sent != static_cast<ssize_t>(sizeof(header))) return LauncherGone("send");
  for (size_t done = 0; done < payload.size();) {
    ssize_t n = send(socket_, payload.data() + done, payload.size() - done,
                     MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return LauncherGone("send");
    done += static_cast<size_t>(n);
  }
  LaunchStarted started{};
  if (!testfleet::ReadFully(socket_, &started, sizeof(started)))
    return LauncherGone("read");
  return started;
}

absl::StatusOr<LaunchFinished> ProcessLauncher::ReadFinished() {
  LaunchFinished finished{};
  if (!testfleet::ReadFully(socket_, &finished, sizeof(finished)))
    return LauncherGone("read");
  return finished;
}

}  // namespace testfleet
