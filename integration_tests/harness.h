#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace testfleet {

/// build/bin, where the test binary and the real binaries live.
inline std::string BinDir() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  std::string path(self);
  return path.substr(0, path.rfind('/'));
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

/// A real binary (of build/bin, or an absolute path) started in the
/// background, its output in a file. Killed (SIGKILL) when the handle goes
/// away.
class Process {
 public:
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::string& log_path, const std::string& cwd = "")
      : log_path_(log_path) {
    pid_ = fork();
    if (pid_ == 0) {
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      int null = open("/dev/null", O_RDONLY);
      dup2(null, 0);
      if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
      std::vector<char*> argv;
      std::string path =
          binary.front() == '/' ? binary : BinDir() + "/" + binary;
      argv.push_back(path.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(path.c_str(), argv.data());
      _exit(127);
    }
  }
  ~Process() { Kill(SIGKILL); }
  Process(const Process&) = delete;

  void Kill(int signal) {
    if (pid_ > 0 && !exit_code_) {
      kill(pid_, signal);
      Wait(absl::Seconds(30));
    }
  }
  /// The exit code, or nullopt while it still runs after `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    while (!exit_code_) {
      int status = 0;
      pid_t done = waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        exit_code_ =
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (absl::Now() > until) break;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return exit_code_;
  }
  std::string Log() const { return ReadFile(log_path_); }
  pid_t pid() const { return pid_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

/// Polls `condition` every 20 ms for at most `timeout`.
template <typename Condition>
bool WaitFor(Condition condition, absl::Duration timeout) {
  const absl::Time until = absl::Now() + timeout;
  while (absl::Now() < until) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return condition();
}

/// The port a server wrote into its log ("listening on port N", or what
/// `pattern` names).
inline int ListeningPort(const Process& process,
                         const std::string& pattern = "listening on port") {
  int port = 0;
  WaitFor(
      [&] {
        std::smatch match;
        std::string log = process.Log();
        if (std::regex_search(log, match, std::regex(pattern + " (\\d+)"))) {
          port = std::stoi(match[1]);
        }
        return port > 0;
      },
      absl::Seconds(20));
  return port;
}

/// Starts a server binary with `args` into `slot` and returns its
/// "127.0.0.1:PORT" from its log (ports come from --listen=127.0.0.1:0).
inline std::string StartServer(std::unique_ptr<Process>& slot,
                               const std::string& binary,
                               const std::vector<std::string>& args,
                               const std::string& log_path) {
  slot = std::make_unique<Process>(binary, args, log_path);
  const int port = ListeningPort(*slot);
  if (port == 0) return "127.0.0.1:0 (" + binary + " did not start)";
  return "127.0.0.1:" + std::to_string(port);
}

/// Runs coordctl to completion; returns its exit code, output in `output`.
inline int Coordctl(const std::vector<std::string>& args,
                    const std::string& log_path, std::string* output = nullptr,
                    absl::Duration timeout = absl::Minutes(3)) {
  Process process("coordctl", args, log_path);
  std::optional<int> code = process.Wait(timeout);
  if (output != nullptr) *output = process.Log();
  return code.value_or(-1);
}

/// In `dir`: a CA (ca.pem), a server certificate for 127.0.0.1 and
/// localhost (server.pem, server.key) and a client certificate (client.pem,
/// client.key); openssl's output in openssl.log. False when openssl failed.
inline bool MakeTestCertificates(const std::string& dir) {
  const std::string script =
      "(cd " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ca "
      "-keyout ca.key -out ca.pem"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=server "
      "-keyout server.key -out server.csr"
      " && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > san.ext"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -days 2 -extfile san.ext -out server.pem"
      " && openssl req -newkey rsa:2048 -nodes -subj /CN=client "
      "-keyout client.key -out client.csr"
      " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
      "-CAcreateserial -days 2 -out client.pem) > " +
      dir + "/openssl.log 2>&1";
  return std::system(script.c_str()) == 0;
}

inline nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr, false);
}

}  // namespace testfleet
