#include "coordctl/importers.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "coordctl/transfer.h"
#include "report/reports.h"

extern char** environ;

namespace testfleet {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Runs `argv` in `cwd`; its stdout, or an error with the end of its stderr.
absl::StatusOr<std::string> CaptureOutput(const std::vector<std::string>& argv,
                                          const std::string& cwd) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return absl::InternalError(strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  close(err[1]);
  // Both pipes at once: a program that fills one pipe while we wait on the
  // other would otherwise block forever.
  std::string output, errors;
  char buffer[65536];
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&output, &errors};
  int open_pipes = 2;
  while (open_pipes > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
  }
  for (const pollfd& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot run ", argv[0], " in ", cwd, ": ", strerror(rc)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    if (errors.size() > 500) errors = errors.substr(errors.size() - 500);
    return absl::InvalidArgumentError(absl::StrCat(
        argv[0], " ", argv.size() > 1 ? argv[1] : "", " failed in ", cwd, ": ",
        absl::StripAsciiWhitespace(errors)));
  }
  return output;
}

// Absolute and normalized; never throws (an empty path stays empty).
fs::path Absolute(const std::string& path) {
  std::error_code ec;
  return path.empty() ? fs::path() : fs::absolute(path, ec).lexically_normal();
}

// `path` as the suite document should name it: relative to `suite_dir`
// when that works without leaving it, else absolute.
std::string SuitePath(const std::string& path, const std::string& suite_dir) {
  fs::path absolute = Absolute(path);
  fs::path relative = absolute.lexically_relative(Absolute(suite_dir));
  if (relative.empty() || *relative.begin() == "..") return absolute.string();
  return relative.string();
}

// The program as argv[0] must name it: relative to the test's working
// directory (with a '/' so it is not looked up in PATH) or absolute.
std::string ProgramPath(const std::string& program, const std::string& cwd,
                        const std::string& suite_dir) {
  // A working directory outside the suite folder is machine-specific anyway.
  if (SuitePath(cwd, suite_dir)[0] == '/') return Absolute(program).string();
  std::string path = SuitePath(program, cwd);
  if (path[0] != '/' && path.find('/') == std::string::npos) path = "./" + path;
  return path;
}

std::string Seconds(double seconds) {
  return absl::StrCat(static_cast<int64_t>(seconds * 1000 + 0.5), "ms");
}

// What the tool a suite came from imposes, not Testfleet's own defaults: a
// test that passes under ctest must not fail here for memory or time. Neither
// CTest nor a GoogleTest binary limits memory; CTest's default timeout is the
// build tree's DartConfiguration.tcl `TimeOut` (1500 s from include(CTest)).
json ImportedDefaults(const std::string& ctest_build_dir = "") {
  json defaults = {{"memory_limit", "0"}};
  if (ctest_build_dir.empty()) return defaults;
  std::ifstream dart(fs::path(ctest_build_dir) / "DartConfiguration.tcl");
  std::string line;
  while (std::getline(dart, line)) {
    absl::string_view text = line;
    double seconds = 0;
    if (absl::ConsumePrefix(&text, "TimeOut:") &&
        absl::SimpleAtod(absl::StripAsciiWhitespace(text), &seconds) &&
        seconds > 0) {
      defaults["timeout"] = Seconds(seconds);
    }
  }
  return defaults;
}

// What the tests of one import share: large folders already named, and
// each program's libraries (one `ldd` per program, not per test).
struct ImportMemo {
  std::set<std::string> warned;
  std::map<std::string, std::vector<fs::path>> libraries;
};

// What a test needs besides its program where no checkout exists: the
// project's files it names. `roots` are the project's folders (source and
// build trees): files elsewhere are the worker's own (a compiler's, the
// system's) and travel with no test.
class Needs {
 public:
  Needs(std::vector<fs::path> roots, std::string suite_dir, ImportMemo* memo)
      : roots_(std::move(roots)),
        suite_dir_(std::move(suite_dir)),
        memo_(memo) {}

  // `path` (absolute) when it is a file or folder under a root.
  void Add(const fs::path& path) {
    std::error_code ec;
    const fs::path normal = path.lexically_normal();
    if (!InRoots(normal) || !fs::exists(normal, ec)) return;
    if (fs::is_directory(normal, ec) && normal == Absolute(suite_dir_))
      return;  // the whole build tree: far too much
    paths_.insert(SuitePath(normal.string(), suite_dir_));
  }
  // The shared libraries of the project that `program` loads (ldd).
  void AddLibraries(const std::string& program, const std::string& cwd) {
    auto [known, added] = memo_->libraries.try_emplace(program);
    if (added) {
      absl::StatusOr<std::string> listing =
          CaptureOutput({"ldd", program}, cwd);
      // None for a static program, or one that is not an ELF file.
      for (absl::string_view line :
           absl::StrSplit(listing.ok() ? *listing : "", '\n')) {
        const size_t arrow = line.find("=> /");
        if (arrow == absl::string_view::npos) continue;
        absl::string_view rest = line.substr(arrow + 3);
        known->second.emplace_back(
            std::string(rest.substr(0, rest.find(" ("))));
      }
    }
    for (const fs::path& library : known->second) Add(library);
  }
  // Paths a command line names, also inside `sh -c` strings and `--x=PATH`.
  void AddNamedIn(const std::vector<std::string>& argv, const fs::path& cwd) {
    for (size_t i = 1; i < argv.size(); ++i) {
      for (absl::string_view word :
           absl::StrSplit(argv[i], absl::ByAnyChar(" \t\n;|&<>()'\"`="),
                          absl::SkipEmpty())) {
        if (word.find('/') == absl::string_view::npos) continue;
        const fs::path path{std::string(word)};
        Add(path.is_absolute() ? path : cwd / path);
      }
    }
  }
  // A folder's files, with a warning when that is a lot to send.
  void AddFolder(const fs::path& folder, const std::string& test) {
    std::error_code ec;
    if (!InRoots(folder) || !fs::is_directory(folder, ec)) return;
    int64_t files = 0, bytes = 0;
    for (fs::recursive_directory_iterator it(folder, ec), end;
         !ec && it != end && files <= 100000; it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      ++files;
      bytes += static_cast<int64_t>(it->file_size(ec));
    }
    if ((files > 1000 || bytes > (100 << 20)) &&
        memo_->warned.insert(folder.string()).second) {
      std::fprintf(stderr,
                   "coordctl: test %s (and any other working there) works "
                   "in %s, whose %lld files (%lld MiB) all become its "
                   "inputs; give it a smaller WORKING_DIRECTORY or "
                   "REQUIRED_FILES\n",
                   test.c_str(), folder.c_str(), static_cast<long long>(files),
                   static_cast<long long>(bytes >> 20));
    }
    Add(folder);
  }
  json List() const { return json(paths_); }
  bool empty() const { return paths_.empty(); }

 private:
  bool InRoots(const fs::path& path) const {
    for (const fs::path& root : roots_) {
      const fs::path relative = path.lexically_relative(root);
      if (!relative.empty() && *relative.begin() != "..") return true;
    }
    return false;
  }

  const std::vector<fs::path> roots_;
  const std::string suite_dir_;
  std::set<std::string> paths_;
  ImportMemo* const memo_;
};

// The source tree of a CMake build tree (CMakeCache.txt), when it says.
std::optional<fs::path> SourceTree(const std::string& build_dir) {
  std::ifstream cache(fs::path(build_dir) / "CMakeCache.txt");
  std::string line;
  while (std::getline(cache, line)) {
    absl::string_view text = line;
    if (absl::ConsumePrefix(&text, "CMAKE_HOME_DIRECTORY:INTERNAL="))
      return Absolute(std::string(text));
  }
  return std::nullopt;
}

// A GoogleTest program writes its XML report as an output, so the JUnit
// report can show each of its cases.
bool RunsGoogleTest(const std::vector<std::string>& argv) {
  for (const std::string& arg : argv) {
    if (absl::StartsWith(arg, "--gtest_")) return true;
  }
  return false;
}

void AddGtestReport(json& test, std::vector<std::string>& cmd) {
  const std::string report = absl::StrCat(
      "testfleet-gtest/", SafeFileName(test["id"].get<std::string>()), ".xml");
  cmd.push_back("--gtest_output=xml:" + report);
  test["outputs"] = {report};
}

}  // namespace

absl::StatusOr<json> SuiteFromCtest(const std::string& build_dir,
                                    const std::string& suite_dir) {
  std::error_code ec;
  if (!fs::is_directory(build_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--from-ctest: ", build_dir,
                     " is not a folder (give a CMake build tree)"));
  }
  absl::StatusOr<std::string> listing =
      CaptureOutput({"ctest", "--show-only=json-v1"}, build_dir);
  if (!listing.ok()) return listing.status();
  json info = json::parse(*listing, nullptr, false);
  if (info.is_discarded() || !info.contains("tests")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from-ctest: ctest in ", build_dir, " gave no test list"));
  }
  std::vector<fs::path> roots = {Absolute(build_dir)};
  if (std::optional<fs::path> source = SourceTree(build_dir))
    roots.push_back(*source);
  json tests = json::array();
  ImportMemo memo;
  for (const json& test : info["tests"]) {
    if (!test.contains("command") || !test["command"].is_array() ||
        test["command"].empty()) {
      continue;  // a test whose executable was not found at configure time
    }
    json out = {{"id", test.value("name", "")}};
    std::vector<std::string> cmd =
        test["command"].get<std::vector<std::string>>();
    std::string cwd = suite_dir;  // CTest's default: the test's build folder
    bool disabled = false;
    bool named_cwd = false;
    Needs needs(roots, suite_dir, &memo);
    for (const json& property : test.value("properties", json::array())) {
      const std::string name = property.value("name", "");
      const json& value = property["value"];
      if (name == "WORKING_DIRECTORY" && value.is_string()) {
        cwd = value.get<std::string>();
        out["cwd"] = SuitePath(cwd, suite_dir);
        named_cwd = true;
      } else if (name == "REQUIRED_FILES" && value.is_array()) {
        for (const json& file : value) {
          if (file.is_string())
            needs.Add(
                Absolute((fs::path(cwd) / file.get<std::string>()).string()));
        }
      } else if (name == "ENVIRONMENT" && value.is_array()) {
        json env = json::object();
        for (const json& assignment : value) {
          std::pair<std::string, std::string> kv = absl::StrSplit(
              assignment.get<std::string>(), absl::MaxSplits('=', 1));
          env[kv.first] = kv.second;
        }
        out["env"] = env;
      } else if (name == "TIMEOUT" && value.is_number() &&
                 value.get<double>() > 0) {
        out["timeout"] = Seconds(value.get<double>());
      } else if (name == "LABELS" && value.is_array()) {
        out["tags"] = value;
      } else if (name == "COST" && value.is_number() &&
                 value.get<double>() > 0) {
        out["expected"] = Seconds(value.get<double>());
      } else if (name == "DISABLED" && value.is_boolean()) {
        disabled = value.get<bool>();
      }
    }
    // Listed as ctest lists it, never run.
    if (disabled) out["disabled"] = true;
    // CTest names a test's own build folder when none was given: only a
    // folder the project chose is worth its files.
    if (named_cwd && Absolute(cwd) != Absolute(build_dir))
      needs.AddFolder(Absolute(cwd), out["id"]);
    needs.AddNamedIn(cmd, Absolute(cwd));
    if (fs::is_regular_file(cmd[0], ec)) {
      needs.Add(Absolute(cmd[0]));
      needs.AddLibraries(Absolute(cmd[0]).string(), cwd);
      cmd[0] = ProgramPath(cmd[0], cwd, suite_dir);
    }
    if (!needs.empty()) out["inputs"] = needs.List();
    // Its XML report lands in its working directory: only one of the build
    // tree's, never the source tree.
    const fs::path from_build = Absolute(cwd).lexically_relative(roots[0]);
    if (RunsGoogleTest(cmd) && !from_build.empty() &&
        *from_build.begin() != "..") {
      AddGtestReport(out, cmd);
    }
    out["cmd"] = cmd;
    tests.push_back(out);
  }
  if (tests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--from-ctest: ", build_dir, " has no tests"));
  }
  return json{{"name", Absolute(build_dir).parent_path().filename().string()},
              {"defaults", ImportedDefaults(build_dir)},
              {"tests", tests}};
}

absl::StatusOr<json> SuiteFromGtest(const std::string& binary,
                                    const std::string& suite_dir) {
  std::error_code ec;
  if (!fs::is_regular_file(binary, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from-gtest: ", binary, " is not a file (give a GoogleTest binary)"));
  }
  const std::string absolute = Absolute(binary).string();
  absl::StatusOr<std::string> listing =
      CaptureOutput({absolute, "--gtest_list_tests"}, suite_dir);
  if (!listing.ok()) return listing.status();
  const std::string program = ProgramPath(absolute, suite_dir, suite_dir);
  ImportMemo memo;
  Needs needs({fs::path(absolute).parent_path()}, suite_dir, &memo);
  needs.Add(absolute);
  needs.AddLibraries(absolute, suite_dir);
  json tests = json::array();
  std::string suite;  // "Math." or "Typed/0."
  for (absl::string_view line : absl::StrSplit(*listing, '\n')) {
    // Comments follow two spaces and '#': "Typed/0.  # TypeParam = int".
    absl::string_view text = line.substr(0, line.find("  #"));
    if (absl::StartsWith(text, "  ")) {
      absl::string_view name = absl::StripAsciiWhitespace(text);
      if (suite.empty() || name.empty()) continue;
      std::string id = absl::StrCat(suite, name);
      json test = {{"id", id}, {"inputs", needs.List()}};
      // Listed as GoogleTest lists them, never run.
      if (absl::StartsWith(name, "DISABLED_") ||
          absl::StrContains(suite, "DISABLED_"))
        test["disabled"] = true;
      std::vector<std::string> cmd = {program,
                                      absl::StrCat("--gtest_filter=", id)};
      AddGtestReport(test, cmd);
      test["cmd"] = cmd;
      tests.push_back(std::move(test));
    } else {
      text = absl::StripTrailingAsciiWhitespace(text);
      // Anything else the binary printed ("Running main() from ...") is not a
      // suite line: those end with a '.' and hold no space.
      suite = absl::EndsWith(text, ".") && !absl::StrContains(text, " ")
                  ? std::string(text)
                  : "";
    }
  }
  if (tests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--from-gtest: ", binary, " lists no tests"));
  }
  return json{{"name", fs::path(binary).filename().string()},
              {"defaults", ImportedDefaults()},
              {"tests", tests}};
}

absl::Status FilterTests(const TestFilter& filter, v1::SuiteSpec& suite) {
  if (filter.empty()) return absl::OkStatus();
  auto matches = [](const std::vector<std::string>& globs,
                    const std::string& id) {
    for (const std::string& glob : globs) {
      if (fnmatch(glob.c_str(), id.c_str(), 0) == 0) return true;
    }
    return false;
  };
  google::protobuf::RepeatedPtrField<v1::TestSpec> kept;
  for (v1::TestSpec& test : *suite.mutable_tests()) {
    bool tagged = filter.tags.empty();
    for (const std::string& tag : test.tags()) {
      for (const std::string& wanted : filter.tags) tagged |= tag == wanted;
    }
    if (!tagged || (!filter.ids.empty() && !matches(filter.ids, test.id())) ||
        matches(filter.excludes, test.id())) {
      continue;
    }
    *kept.Add() = std::move(test);
  }
  if (kept.empty()) {
    return absl::InvalidArgumentError(
        "no test of the suite passes --tag/--id/--exclude; nothing to run");
  }
  suite.mutable_tests()->Swap(&kept);
  return absl::OkStatus();
}

}  // namespace testfleet
