#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/isolation.h"
#include "worker/launcher.h"

namespace testfleet {

/// A worker slot's handle on its `testfleet-launch` fork server (launcher.h).
/// Not thread-safe: one test at a time, as a slot runs them.
///   ASSIGN_OR_RETURN(auto launcher,
///   ProcessLauncher::Start(DefaultLauncherPath()));
///   ASSIGN_OR_RETURN(LaunchStarted started, launcher->Spawn(argv, env, cwd,
///   out, err));
///   ... poll(launcher->finished_fd()) ...
///   ASSIGN_OR_RETURN(LaunchFinished finished, launcher->ReadFinished());
class ProcessLauncher {
 public:
  /// Starts the launcher binary at `path`. Call it from a thread that lives
  /// as long as the handle: the launcher dies with the thread that made it.
  static absl::StatusOr<std::unique_ptr<ProcessLauncher>> Start(
      const std::string& path);
  ~ProcessLauncher();
  ProcessLauncher(const ProcessLauncher&) = delete;
  ProcessLauncher& operator=(const ProcessLauncher&) = delete;

  /// Starts a test: `env` as "NAME=value" strings, stdout/stderr to the given
  /// descriptors (the caller keeps and closes its copies). An error status
  /// means the launcher itself failed (restart it); a test that cannot start
  /// is a LaunchStarted with test_pid -1 and the errno. With `isolation`,
  /// the test runs in a mount namespace of its own (IsolateFilesystem).
  absl::StatusOr<LaunchStarted> Spawn(const std::vector<std::string>& argv,
                                      const std::vector<std::string>& env,
                                      const std::string& cwd, int stdout_fd,
                                      int stderr_fd,
                                      const Isolation* isolation = nullptr);
  /// The launcher's pid: the test and its leftovers are its descendants.
  pid_t pid() const { return pid_; }
  /// Readable once the started test has ended.
  int finished_fd() const { return socket_; }
  absl::StatusOr<LaunchFinished> ReadFinished();

 private:
  ProcessLauncher(pid_t pid, int socket) : pid_(pid), socket_(socket) {}
  pid_t pid_;
  int socket_;
};

/// testfleet-launch beside the running executable.
std::string DefaultLauncherPath();

}  // namespace testfleet
