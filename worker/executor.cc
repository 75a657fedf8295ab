#include "worker/executor.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/text.h"

extern char** environ;

namespace testfleet {
namespace {

// Keeps the last `limit` bytes written and counts all of them.
class Tail {
 public:
  explicit Tail(size_t limit) : limit_(limit) {}
  void Append(const char* data, size_t n) {
    total_ += static_cast<int64_t>(n);
    if (n >= limit_) {
      buffer_.assign(data + n - limit_, limit_);
      return;
    }
    buffer_.append(data, n);
    if (buffer_.size() > 2 * limit_) buffer_.erase(0, buffer_.size() - limit_);
  }
  std::string Take() {
    if (buffer_.size() > limit_) buffer_.erase(0, buffer_.size() - limit_);
    return std::move(buffer_);
  }
  int64_t total() const { return total_; }

 private:
  size_t limit_;
  std::string buffer_;
  int64_t total_ = 0;
};

// From /proc/PID/stat: resident pages and thread count.
struct ProcStat {
  int64_t rss_pages = 0;
  int64_t threads = 1;
};

bool ReadProcStat(pid_t pid, ProcStat& stat) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // The command name may hold spaces and parentheses: fields follow the last
  // ')'. After it, field k of proc(5) is token k - 3: num_threads (20) is
  // token 17, rss (24) token 21.
  char* p = strrchr(buf, ')');
  if (p == nullptr) return false;
  p += 2;
  for (int token = 0; token <= 21 && *p; ++token) {
    char* end = nullptr;
    long long value = strtoll(p, &end, 10);
    if (token == 17) stat.threads = value;
    if (token == 21) stat.rss_pages = value;
    p = strchr(p, ' ');
    if (p == nullptr) break;
    ++p;
  }
  return true;
}

// Appends the children of every thread of `pid` (CONFIG_PROC_CHILDREN).
bool AppendChildren(pid_t pid, int64_t threads, std::vector<pid_t>& out) {
  auto read_children = [&](const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[4096];
    ssize_t n;
    std::string text;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
      text.append(buf, static_cast<size_t>(n));
    close(fd);
    for (const char* c = text.c_str(); *c;) {
      char* end = nullptr;
      long child = strtol(c, &end, 10);
      if (end == c) break;
      out.push_back(static_cast<pid_t>(child));
      c = end;
    }
    return true;
  };
  char path[384];
  if (threads <= 1) {
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
    return read_children(path);
  }
  snprintf(path, sizeof(path), "/proc/%d/task", pid);
  DIR* tasks = opendir(path);
  if (tasks == nullptr) return false;
  while (struct dirent* task = readdir(tasks)) {
    if (task->d_name[0] < '0' || task->d_name[0] > '9') continue;
    snprintf(path, sizeof(path), "/proc/%d/task/%s/children", pid,
             task->d_name);
    read_children(path);
  }
  closedir(tasks);
  return true;
}

// Sum of the RSS of every descendant of `root` (the launcher: the test and
// whatever it left, which the launcher adopts as subreaper), in KiB. Reads
// only the tree's own /proc entries.
int64_t TreeRssKb(pid_t root) {
  static const long page_kb = sysconf(_SC_PAGESIZE) / 1024;
  std::vector<pid_t> pending;
  if (!AppendChildren(root, 1, pending)) return 0;
  int64_t total = 0;
  for (size_t visited = 0; !pending.empty() && visited < 100000; ++visited) {
    pid_t pid = pending.back();
    pending.pop_back();
    ProcStat stat;
    if (!ReadProcStat(pid, stat)) continue;  // already gone
    total += stat.rss_pages * page_kb;
    AppendChildren(pid, stat.threads, pending);
  }
  return total;
}

void AddSample(std::vector<v1::MemorySample>& curve, size_t max_samples,
               int64_t offset_ms, int64_t rss_kb) {
  v1::MemorySample sample;
  sample.set_offset_ms(offset_ms);
  sample.set_rss_kb(rss_kb);
  curve.push_back(sample);
  if (curve.size() > max_samples) {  // downsample: keep every other point
    size_t kept = 0;
    for (size_t i = 0; i < curve.size(); i += 2) curve[kept++] = curve[i];
    curve.resize(kept);
  }
}

}  // namespace

double MemorySlopeKbPerSecond(const std::vector<v1::MemorySample>& curve) {
  // Start-up allocation is not growth: from ten samples on, the first fifth
  // of the curve is left out.
  const size_t skip = curve.size() >= 10 ? curve.size() / 5 : 0;
  if (curve.size() - skip < 3) return 0;
  double n = static_cast<double>(curve.size() - skip), sx = 0, sy = 0, sxx = 0,
         sxy = 0;
  for (size_t i = skip; i < curve.size(); ++i) {
    const v1::MemorySample& sample = curve[i];
    double x = static_cast<double>(sample.offset_ms()) / 1000.0;
    double y = static_cast<double>(sample.rss_kb());
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  double denominator = n * sxx - sx * sx;
  if (denominator <= 0) return 0;
  return (n * sxy - sx * sy) / denominator;
}

bool MemoryGrowing(const std::vector<v1::MemorySample>& curve,
                   double slope_kb_per_s, int64_t peak_kb) {
  if (curve.size() < 10) return false;
  const double seconds = static_cast<double>(curve.back().offset_ms() -
                                             curve.front().offset_ms()) /
                         1000.0;
  const double growth_kb = slope_kb_per_s * seconds;
  return growth_kb >= 4096 && growth_kb >= 0.25 * static_cast<double>(peak_kb);
}

absl::StatusOr<v1::TestResult> RunTestProcess(const ExecSpec& spec,
                                              ProcessLauncher& launcher) {
  v1::TestResult result;
  const absl::Time started = absl::Now();
  const auto started_steady = std::chrono::steady_clock::now();
  result.set_started_at_unix_ms(absl::ToUnixMillis(started));
  auto fail = [&](const std::string& why) {
    result.set_status(v1::TEST_STATUS_ERROR);
    result.set_error_message(why);
    result.set_finished_at_unix_ms(absl::ToUnixMillis(absl::Now()));
    return result;
  };
  if (spec.argv.empty()) return fail("empty command");

  // The environment: the worker's, with the test's declared variables on top.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* equals = std::strchr(*e, '=');
    std::string name(
        *e, equals ? static_cast<size_t>(equals - *e) : std::strlen(*e));
    if (spec.env.count(name) == 0) env.emplace_back(*e);
  }
  for (const auto& [name, value] : spec.env) env.push_back(name + "=" + value);

  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      if (fd >= 0) close(fd);
    }
    return fail(absl::StrCat("cannot create pipes: ", strerror(errno)));
  }
  absl::StatusOr<LaunchStarted> launched = launcher.Spawn(
      spec.argv, env, spec.cwd, out_pipe[1], err_pipe[1], spec.isolation);
  close(out_pipe[1]);
  close(err_pipe[1]);
  auto close_reads = [&] {
    close(out_pipe[0]);
    close(err_pipe[0]);
  };
  if (!launched.ok()) {
    close_reads();
    return launched.status();
  }
  if (launched->test_pid < 0) {
    close_reads();
    if (launched->isolation_errno != 0) {
      launched->isolation_step[sizeof(launched->isolation_step) - 1] = '\0';
      return fail(absl::StrCat(
          "cannot give the test its own mount namespace (",
          launched->isolation_step, ": ", strerror(launched->isolation_errno),
          "); a worker without --workspace needs mount namespaces (root, or "
          "unprivileged user namespaces enabled) - or start it with "
          "--workspace"));
    }
    if (launched->chdir_errno != 0) {
      return fail(absl::StrCat("cannot start ", spec.argv[0],
                               ": working directory ", spec.cwd, ": ",
                               strerror(launched->chdir_errno)));
    }
    return fail(absl::StrCat("cannot start ", spec.argv[0], ": ",
                             strerror(launched->exec_errno)));
  }
  const pid_t test = launched->test_pid;

  Tail out_tail(spec.tail_bytes), err_tail(spec.tail_bytes);
  std::vector<v1::MemorySample> curve;
  int64_t peak_tree_kb = 0;
  bool out_open = true, err_open = true, ended = false;
  enum class Kill {
    kNone,
    kTimeout,
    kMemory,
    kCancel
  } kill_reason = Kill::kNone;
  absl::Time term_sent = absl::InfiniteFuture();
  // Zero interval: no sampling (peak RSS is then the test's own ru_maxrss).
  const bool sampling = spec.sample_interval > absl::ZeroDuration();
  absl::Time next_sample =
      sampling ? started + spec.sample_interval : absl::InfiniteFuture();
  const absl::Time deadline = spec.timeout > absl::ZeroDuration()
                                  ? started + spec.timeout
                                  : absl::InfiniteFuture();
  char buffer[65536];

  auto terminate = [&](Kill reason) {
    if (kill_reason != Kill::kNone) return;
    kill_reason = reason;
    // Over its memory limit a test gets no grace: it would only grow.
    kill(-test, reason == Kill::kMemory ? SIGKILL : SIGTERM);
    term_sent = absl::Now();
  };

  absl::Time ended_at = absl::InfiniteFuture();
  while (!ended || out_open || err_open) {
    absl::Time now = absl::Now();
    // A process that left the session may hold the pipes open forever.
    if (now > ended_at + absl::Seconds(1)) break;
    if (!ended) {
      if (now >= deadline) terminate(Kill::kTimeout);
      if (spec.cancelled != nullptr && spec.cancelled->load())
        terminate(Kill::kCancel);
      if (now >= term_sent + spec.kill_grace) kill(-test, SIGKILL);
      if (now >= next_sample) {
        int64_t rss_kb = TreeRssKb(launcher.pid());
        peak_tree_kb = std::max(peak_tree_kb, rss_kb);
        // Zero: the test has just exited and is not yet reaped.
        if (rss_kb > 0) {
          AddSample(curve, spec.max_curve_samples,
                    absl::ToInt64Milliseconds(now - started), rss_kb);
        }
        if (spec.memory_limit_bytes > 0 &&
            rss_kb * 1024 > spec.memory_limit_bytes) {
          terminate(Kill::kMemory);
        }
        next_sample = now + spec.sample_interval;
      }
    }
    struct pollfd fds[3];
    int nfds = 0;
    int out_index = -1, err_index = -1, end_index = -1;
    if (out_open) {
      out_index = nfds;
      fds[nfds++] = {out_pipe[0], POLLIN, 0};
    }
    if (err_open) {
      err_index = nfds;
      fds[nfds++] = {err_pipe[0], POLLIN, 0};
    }
    if (!ended) {
      end_index = nfds;
      fds[nfds++] = {launcher.finished_fd(), POLLIN, 0};
    }
    absl::Time wake =
        std::min({next_sample, deadline, term_sent + spec.kill_grace});
    if (ended) wake = now + absl::Milliseconds(100);
    int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(wake - now) + 1, 1, 1000));
    int ready = poll(fds, static_cast<nfds_t>(nfds), timeout_ms);
    if (ready < 0 && errno != EINTR) break;
    auto drain = [&](int index, int fd, Tail& tail, bool& open_flag) {
      if (index < 0 || !(fds[index].revents & (POLLIN | POLLHUP | POLLERR)))
        return;
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n > 0) {
        tail.Append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        open_flag = false;
      }
    };
    drain(out_index, out_pipe[0], out_tail, out_open);
    drain(err_index, err_pipe[0], err_tail, err_open);
    if (end_index >= 0 &&
        (fds[end_index].revents & (POLLIN | POLLHUP | POLLERR))) {
      ended = true;
      ended_at = absl::Now();
    }
  }
  close_reads();
  if (!ended) kill(-test, SIGKILL);
  absl::StatusOr<LaunchFinished> finished = launcher.ReadFinished();
  if (!finished.ok()) return finished.status();

  result.set_finished_at_unix_ms(absl::ToUnixMillis(absl::Now()));
  result.set_wall_ms(std::chrono::duration<double, std::milli>(
                         std::chrono::steady_clock::now() - started_steady)
                         .count());
  const int status = finished->wait_status;
  result.set_user_cpu_ms(static_cast<double>(finished->user_us) / 1000.0);
  result.set_sys_cpu_ms(static_cast<double>(finished->sys_us) / 1000.0);
  result.set_peak_rss_kb(std::max<int64_t>(finished->max_rss_kb, peak_tree_kb));
  result.set_stdout_bytes(out_tail.total());
  result.set_stderr_bytes(err_tail.total());
  // Valid UTF-8 from here on: every report, cache entry and terminal
  // downstream can take it (ill-formed bytes become U+FFFD).
  result.set_stdout_tail(ValidUtf8(out_tail.Take()));
  result.set_stderr_tail(ValidUtf8(err_tail.Take()));
  if (WIFEXITED(status)) result.set_exit_code(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) result.set_signal(WTERMSIG(status));
  result.set_memory_slope_kb_per_s(MemorySlopeKbPerSecond(curve));
  result.set_memory_growing(MemoryGrowing(curve, result.memory_slope_kb_per_s(),
                                          result.peak_rss_kb()));
  for (auto& sample : curve) *result.add_memory_curve() = std::move(sample);
  switch (kill_reason) {
    case Kill::kTimeout:
      result.set_status(v1::TEST_STATUS_TIMED_OUT);
      result.set_error_message(
          absl::StrCat("timed out after ", absl::FormatDuration(spec.timeout)));
      break;
    case Kill::kMemory:
      result.set_status(v1::TEST_STATUS_MEMORY_EXCEEDED);
      result.set_error_message(absl::StrCat(
          "exceeded its memory limit of ", spec.memory_limit_bytes / 1024,
          " KiB (peak ", result.peak_rss_kb(), " KiB)"));
      break;
    case Kill::kCancel:
      result.set_status(v1::TEST_STATUS_CANCELLED);
      break;
    case Kill::kNone:
      result.set_status(WIFEXITED(status) && WEXITSTATUS(status) == 0
                            ? v1::TEST_STATUS_PASSED
                            : v1::TEST_STATUS_FAILED);
      break;
  }
  return result;
}

}  // namespace testfleet
