#pragma once

#include <string>
#include <utility>
#include <vector>

namespace testfleet {

/// Where a test's sandbox folders appear in its own view of the filesystem.
struct BindMount {
  std::string source;  // a folder of the worker's
  std::string target;  // absolute; made when it does not exist
};

/// A test's own view of the filesystem (IsolateFilesystem).
struct Isolation {
  std::string stage;
  std::vector<BindMount> binds;
};

/// Why isolation failed: the step, the path it was at and the errno.
struct IsolationError {
  int error = 0;
  std::string step;
  std::string path;
};

/// Gives the calling process (a freshly forked test, before exec; single
/// threaded) a mount namespace of its own, in a user namespace of its own
/// when it is not root, in which:
///  - every mount of the host is read-only (device files stay usable);
///  - each of `binds` shows its source at its target, writable. A target
///    the host lacks is made: the nearest existing ancestor is replaced by a
///    tmpfs that holds binds of all its former entries plus the missing
///    folders (for "/" itself the process moves into such a root); these
///    tmpfs are read-only once done;
///  - /tmp is a private tmpfs showing the host's entries read-only, and
///    /dev/shm a private tmpfs.
/// `stage` is a folder holding an empty folder `root` that the process may
/// mount on. Nothing of this is
/// visible outside the process and its children, and it all goes with them.
/// Returns false with `error` set when a step fails.
bool IsolateFilesystem(const std::vector<BindMount>& binds,
                       const std::string& stage, IsolationError& error);

}  // namespace testfleet
