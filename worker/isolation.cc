#include "worker/isolation.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

namespace testfleet {
namespace {

bool Fail(IsolationError& error, const char* step, const std::string& path) {
  error.error = errno;
  error.step = step;
  error.path = path;
  return false;
}

bool WriteProcFile(const char* path, const std::string& text,
                   IsolationError& error) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Fail(error, "open", path);
  const bool written =
      write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return written || Fail(error, "write", path);
}

bool SetReadOnly(const std::string& path, bool read_only, bool recursive,
                 IsolationError& error) {
  struct mount_attr attr {};
  (read_only ? attr.attr_set : attr.attr_clr) = MOUNT_ATTR_RDONLY;
  if (mount_setattr(AT_FDCWD, path.c_str(), recursive ? AT_RECURSIVE : 0, &attr,
                    sizeof(attr)) != 0) {
    return Fail(error, read_only ? "make read-only" : "make writable", path);
  }
  return true;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Join(const std::string& folder, const std::string& name) {
  return folder == "/" ? "/" + name : folder + "/" + name;
}

bool IsFolder(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

// Fills the tmpfs mounted at `into` with what `from` holds: a bind of each
// folder and file, a copy of each symbolic link.
bool MirrorEntries(const std::string& from, const std::string& into,
                   IsolationError& error) {
  DIR* dir = opendir(from.c_str());
  if (dir == nullptr) return Fail(error, "opendir", from);
  bool ok = true;
  while (struct dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string source = Join(from, name);
    const std::string target = Join(into, name);
    struct stat st {};
    if (lstat(source.c_str(), &st) != 0) continue;  // gone meanwhile
    if (S_ISLNK(st.st_mode)) {
      char link[4096];
      const ssize_t n = readlink(source.c_str(), link, sizeof(link) - 1);
      if (n < 0) continue;
      link[n] = '\0';
      if (symlink(link, target.c_str()) != 0) {
        ok = Fail(error, "symlink", target);
        break;
      }
      continue;
    }
    if (S_ISDIR(st.st_mode) ? mkdir(target.c_str(), 0755) != 0
                            : mknod(target.c_str(), S_IFREG | 0644, 0) != 0) {
      ok = Fail(error, "make mount point", target);
      break;
    }
    if (mount(source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC,
              nullptr) != 0) {
      ok = Fail(error, "bind", source);
      break;
    }
  }
  closedir(dir);
  return ok;
}

}  // namespace

bool IsolateFilesystem(const std::vector<BindMount>& binds,
                       const std::string& stage, IsolationError& error) {
  const uid_t uid = getuid();
  const gid_t gid = getgid();
  if (geteuid() == 0) {
    if (unshare(CLONE_NEWNS) != 0) return Fail(error, "unshare", "mount");
  } else {
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
      return Fail(error, "unshare", "user+mount");
    // The test keeps its own ids; it gains no privilege outside.
    if (!WriteProcFile("/proc/self/setgroups", "deny", error) ||
        !WriteProcFile("/proc/self/uid_map",
                       std::to_string(uid) + " " + std::to_string(uid) + " 1",
                       error) ||
        !WriteProcFile("/proc/self/gid_map",
                       std::to_string(gid) + " " + std::to_string(gid) + " 1",
                       error)) {
      return false;
    }
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return Fail(error, "make private", "/");
  if (!SetReadOnly("/", true, true, error)) return false;

  // Shallow targets first: a deeper one may sit inside a shallower one.
  std::vector<const BindMount*> order;
  for (const BindMount& bind : binds) order.push_back(&bind);
  std::sort(order.begin(), order.end(),
            [](const auto* a, const auto* b) { return a->target < b->target; });
  const std::string stage_root = stage + "/root";
  // Sources by descriptor: a bind below may cover the path they have now
  // (a worker whose sandboxes live under /tmp).
  std::vector<std::string> sources;
  for (const BindMount* bind : order) {
    const int fd = open(bind->source.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Fail(error, "open", bind->source);
    sources.push_back("/proc/self/fd/" + std::to_string(fd));
  }
  std::string root = "/";  // the new root once "/" itself needed a folder
  auto view = [&root](const std::string& path) {
    return root == "/" ? path : (path == "/" ? root : root + path);
  };
  std::set<std::string> ours;       // folders we made: writable for now
  std::vector<std::string> covers;  // our tmpfs, read-only once done
  // The test's own /tmp: a tmpfs that stays writable, with the host's
  // entries bound back read-only (a checkout or build tree under /tmp must
  // stay visible), gone with the test.
  if (IsFolder("/tmp")) {
    const int fd = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Fail(error, "open", "/tmp");
    const bool mirrored =
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") == 0
            ? MirrorEntries("/proc/self/fd/" + std::to_string(fd), "/tmp",
                            error)
            : Fail(error, "mount tmpfs", "/tmp");
    close(fd);
    if (!mirrored) return false;
    ours.insert("/tmp");
  }
  for (size_t b = 0; b < order.size(); ++b) {
    const BindMount* bind = order[b];
    const std::string& target = bind->target;
    if (!Exists(view(target))) {
      std::string existing = Parent(target);
      while (!Exists(view(existing))) existing = Parent(existing);
      if (ours.count(existing) == 0) {
        if (existing == "/") {
          // "/" cannot be covered in place: a new root, entered at the end.
          if (mount("tmpfs", stage_root.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    "mode=0755") != 0) {
            return Fail(error, "mount tmpfs", stage_root);
          }
          if (!MirrorEntries("/", stage_root, error)) return false;
          root = stage_root;
          covers.push_back(root);
        } else {
          // Held by a descriptor, its content stays in reach once covered.
          const std::string covered = view(existing);
          const int fd =
              open(covered.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
          if (fd < 0) return Fail(error, "open", existing);
          const bool mirrored =
              mount("tmpfs", covered.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
                    "mode=0755") == 0
                  ? MirrorEntries("/proc/self/fd/" + std::to_string(fd),
                                  covered, error)
                  : Fail(error, "mount tmpfs", existing);
          close(fd);
          if (!mirrored) return false;
          covers.push_back(covered);
        }
        ours.insert(existing);
      }
      // The missing folders, each one ours.
      std::vector<std::string> missing;
      for (std::string p = target; p != existing; p = Parent(p))
        missing.push_back(p);
      for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (mkdir(view(*it).c_str(), 0755) != 0 && errno != EEXIST)
          return Fail(error, "mkdir", *it);
        ours.insert(*it);
      }
    }
    const std::string at = view(target);
    if (!IsFolder(at)) {
      errno = ENOTDIR;
      return Fail(error, "bind onto", target);
    }
    if (mount(sources[b].c_str(), at.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      return Fail(error, "bind", bind->source);
    }
    if (!SetReadOnly(at, false, false, error)) return false;
  }
  for (const std::string& cover : covers) {
    if (!SetReadOnly(cover, true, false, error)) return false;
  }
  if (root != "/") {
    if (chroot(root.c_str()) != 0) return Fail(error, "chroot", root);
    if (chdir("/") != 0) return Fail(error, "chdir", "/");
  }
  if (IsFolder("/dev/shm") && mount("tmpfs", "/dev/shm", "tmpfs",
                                    MS_NOSUID | MS_NODEV, "mode=1777") != 0) {
    return Fail(error, "mount tmpfs", "/dev/shm");
  }
  return true;
}

}  // namespace testfleet
