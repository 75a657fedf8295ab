#include "common/suite_loader.h"

#include <glob.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "common/units.h"
#include "nlohmann/json.hpp"

namespace testfleet {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Settings a test inherits from the suite's "defaults".
struct TestDefaults {
  int64_t timeout_ms = kDefaultTimeoutMs;
  int64_t memory_limit_bytes = kDefaultMemoryLimitBytes;
  int32_t retries = 0;
  std::string cwd = ".";
  std::map<std::string, std::string> env;
  bool cache_failures = false;
  double regression_tolerance = 0;  // 0: the coordinator's default
  std::vector<std::string> outputs;
};

class SuiteParser {
 public:
  SuiteParser(std::string display_name, std::string dir, FileDigester& digester,
              const SuiteLoadOptions& options)
      : display_(std::move(display_name)),
        dir_(std::move(dir)),
        real_dir_(ResolvePath(dir_).value_or(dir_)),
        digester_(digester),
        options_(options) {}

  absl::StatusOr<LoadedSuite> Parse(const std::string& text);

 private:
  absl::Status Error(const std::string& field, const std::string& what) const {
    // One line whatever the suite holds: control characters from its
    // strings are shown escaped.
    std::string message =
        absl::StrCat(display_, ": ", field.empty() ? "" : field + ": ", what);
    std::string line;
    for (char c : message) {
      if (static_cast<unsigned char>(c) < 0x20) {
        absl::StrAppend(&line,
                        c == '\n' ? "\\n" : absl::StrFormat("\\x%02x", c));
      } else {
        line.push_back(c);
      }
    }
    return absl::InvalidArgumentError(line);
  }
  absl::Status CheckKeys(const json& object, const std::string& field,
                         const std::set<std::string>& allowed) const;
  absl::StatusOr<std::string> String(const json& value,
                                     const std::string& field) const;
  absl::StatusOr<int64_t> Integer(const json& value, const std::string& field,
                                  int64_t min, int64_t max) const;
  absl::StatusOr<bool> Bool(const json& value, const std::string& field) const;
  // A fraction: 0.2 or "20%".
  // An `outputs` list: paths or globs inside the working directory.
  absl::StatusOr<std::vector<std::string>> Outputs(
      const json& value, const std::string& field) const;
  absl::StatusOr<double> Tolerance(const json& value,
                                   const std::string& field) const;
  absl::StatusOr<int64_t> DurationMs(const json& value,
                                     const std::string& field) const;
  absl::StatusOr<int64_t> SizeBytes(const json& value,
                                    const std::string& field) const;
  // `normal` (a normalized path) stays inside the suite folder, or the
  // options allow it not to; so does what it really is once symbolic links
  // are followed (`full` exists by then).
  absl::Status CheckInside(const std::string& normal, const std::string& text,
                           const std::string& field) const;
  absl::Status CheckRealInside(const std::string& full, const std::string& text,
                               const std::string& field) const;
  // A rule's verdict on a field, as this parser's error.
  absl::Status Rule(const std::string& field,
                    const absl::Status& verdict) const {
    return verdict.ok() ? verdict
                        : Error(field, std::string(verdict.message()));
  }
  absl::StatusOr<std::string> RelativeDir(const json& value,
                                          const std::string& field) const;
  absl::Status Env(const json& value, const std::string& field,
                   std::map<std::string, std::string>& env) const;
  absl::Status Defaults(const json& value, TestDefaults& defaults) const;
  absl::Status Inputs(const json& value, const std::string& field,
                      std::map<std::string, v1::InputDigest>& out);
  absl::Status Test(const json& value, const std::string& field,
                    const TestDefaults& defaults,
                    const std::map<std::string, v1::InputDigest>& suite_inputs,
                    v1::TestSpec& spec);

  std::string display_;
  std::string dir_;
  const std::string real_dir_;  // dir_ with its links resolved
  FileDigester& digester_;
  const SuiteLoadOptions options_;
};

// Finds the first key given twice in one object; nothing else is kept.
class DuplicateKeyFinder : public nlohmann::json_sax<json> {
 public:
  const std::string& duplicate() const { return duplicate_; }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    open_.emplace_back(std::set<std::string>());
    return true;
  }
  bool key(string_t& name) override {
    if (!open_.empty() && open_.back() && !open_.back()->insert(name).second) {
      duplicate_ = name;
      return false;  // found: stop
    }
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override {
    open_.emplace_back(std::nullopt);
    return true;
  }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) override {
    return false;  // reported by the parse that builds the document
  }

 private:
  bool Close() {
    if (!open_.empty()) open_.pop_back();
    return true;
  }
  // The keys of each open object; nullopt for an open array.
  std::vector<std::optional<std::set<std::string>>> open_;
  std::string duplicate_;
};

std::string TypeName(const json& value) {
  return std::string(value.type_name());
}

absl::Status SuiteParser::CheckKeys(
    const json& object, const std::string& field,
    const std::set<std::string>& allowed) const {
  if (!object.is_object()) {
    return Error(field,
                 absl::StrCat("expected an object, found ", TypeName(object)));
  }
  for (const auto& item : object.items()) {
    if (allowed.count(item.key()) == 0) {
      std::string prefix = field.empty() ? "" : field + ".";
      // A name with control characters is shown quoted and escaped, so the
      // message stays one line (found by fuzz_suite_parser: "\nputs").
      const bool plain = std::none_of(
          item.key().begin(), item.key().end(),
          [](char c) { return static_cast<unsigned char>(c) < 0x20; });
      return Error(prefix + (plain ? item.key() : json(item.key()).dump()),
                   absl::StrCat("unknown field (allowed: ",
                                absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SuiteParser::String(
    const json& value, const std::string& field) const {
  if (!value.is_string()) {
    return Error(field,
                 absl::StrCat("expected a string, found ", TypeName(value)));
  }
  std::string s = value.get<std::string>();
  RETURN_IF_ERROR(Rule(field, CheckNoNul(s)));
  return s;
}

absl::StatusOr<int64_t> SuiteParser::Integer(const json& value,
                                             const std::string& field,
                                             int64_t min, int64_t max) const {
  if (!value.is_number_integer()) {
    return Error(field,
                 absl::StrCat("expected an integer, found ", value.dump()));
  }
  if (value.is_number_unsigned() &&
      value.get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Error(field, absl::StrCat(value.dump(), " is out of range [", min,
                                     ", ", max, "]"));
  }
  int64_t n = value.get<int64_t>();
  if (n < min || n > max) {
    return Error(field,
                 absl::StrCat(n, " is out of range [", min, ", ", max, "]"));
  }
  return n;
}

absl::StatusOr<bool> SuiteParser::Bool(const json& value,
                                       const std::string& field) const {
  if (!value.is_boolean()) {
    return Error(field,
                 absl::StrCat("expected true or false, found ", value.dump()));
  }
  return value.get<bool>();
}

absl::StatusOr<double> SuiteParser::Tolerance(const json& value,
                                              const std::string& field) const {
  double fraction = -1;
  if (value.is_number()) {
    fraction = value.get<double>();
  } else if (value.is_string()) {
    const std::string stored = value.get<std::string>();
    absl::string_view text = stored;
    double percent = 0;
    if (absl::ConsumeSuffix(&text, "%") && absl::SimpleAtod(text, &percent)) {
      fraction = percent / 100;
    }
  }
  if (!(fraction > 0 && fraction <= 10)) {
    return Error(field, absl::StrCat(value.dump(),
                                     " is not a tolerance; write a fraction "
                                     "such as 0.2 or a percentage such as "
                                     "\"20%\""));
  }
  return fraction;
}

absl::StatusOr<int64_t> SuiteParser::DurationMs(
    const json& value, const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text, String(value, field));
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) return Error(field, std::string(d.status().message()));
  const int64_t ms = absl::ToInt64Milliseconds(*d);
  RETURN_IF_ERROR(Rule(field, CheckTimeoutMs(ms)));
  return ms;
}

absl::StatusOr<int64_t> SuiteParser::SizeBytes(const json& value,
                                               const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text, String(value, field));
  absl::StatusOr<int64_t> size = ParseSize(text);
  if (!size.ok()) return Error(field, std::string(size.status().message()));
  return *size;
}

absl::Status SuiteParser::CheckInside(const std::string& normal,
                                      const std::string& text,
                                      const std::string& field) const {
  return Rule(field,
              CheckInsidePath(normal, text, options_.allow_outside_paths));
}

absl::Status SuiteParser::CheckRealInside(const std::string& full,
                                          const std::string& text,
                                          const std::string& field) const {
  if (options_.allow_outside_paths) return absl::OkStatus();
  absl::StatusOr<std::optional<std::string>> outside =
      RealPathOutside(real_dir_, full);
  if (!outside.ok()) {
    return Error(field, absl::StrCat("\"", text, "\" cannot be resolved: ",
                                     outside.status().message()));
  }
  if (outside->has_value()) {
    return Error(field,
                 absl::StrCat("\"", text, "\" leads outside the suite folder ",
                              "through a symbolic link (to ", **outside,
                              "); move it in, or pass --allow-outside-paths"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> SuiteParser::RelativeDir(
    const json& value, const std::string& field) const {
  ASSIGN_OR_RETURN(std::string text, String(value, field));
  if (text.empty())
    return Error(field, "is empty (use \".\" for the suite folder)");
  std::string normal = NormalizePath(text);
  RETURN_IF_ERROR(CheckInside(normal, text, field));
  std::string full =
      normal[0] == '/' ? normal : absl::StrCat(dir_, "/", normal);
  struct stat st {};
  if (stat(full.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(field,
                 absl::StrCat("\"", text, "\" is not a folder (", full, ")"));
  }
  RETURN_IF_ERROR(CheckRealInside(full, text, field));
  return normal;
}

absl::Status SuiteParser::Env(const json& value, const std::string& field,
                              std::map<std::string, std::string>& env) const {
  if (!value.is_object()) {
    return Error(field, absl::StrCat("expected an object of strings, found ",
                                     TypeName(value)));
  }
  for (const auto& item : value.items()) {
    const std::string& name = item.key();
    std::string item_field = absl::StrCat(field, ".", name);
    RETURN_IF_ERROR(Rule(item_field, CheckEnvName(name)));
    ASSIGN_OR_RETURN(env[name], String(item.value(), item_field));
  }
  return absl::OkStatus();
}

absl::Status SuiteParser::Defaults(const json& value,
                                   TestDefaults& defaults) const {
  RETURN_IF_ERROR(
      CheckKeys(value, "defaults",
                {"timeout", "memory_limit", "retries", "cwd", "env",
                 "cache_failures", "regression_tolerance", "outputs"}));
  for (const auto& item : value.items()) {
    const std::string field = "defaults." + item.key();
    const json& v = item.value();
    if (item.key() == "timeout") {
      ASSIGN_OR_RETURN(defaults.timeout_ms, DurationMs(v, field));
    } else if (item.key() == "memory_limit") {
      ASSIGN_OR_RETURN(defaults.memory_limit_bytes, SizeBytes(v, field));
    } else if (item.key() == "retries") {
      ASSIGN_OR_RETURN(int64_t retries, Integer(v, field, 0, kMaxRetries));
      defaults.retries = static_cast<int32_t>(retries);
    } else if (item.key() == "cwd") {
      ASSIGN_OR_RETURN(defaults.cwd, RelativeDir(v, field));
    } else if (item.key() == "env") {
      RETURN_IF_ERROR(Env(v, field, defaults.env));
    } else if (item.key() == "cache_failures") {
      ASSIGN_OR_RETURN(defaults.cache_failures, Bool(v, field));
    } else if (item.key() == "regression_tolerance") {
      ASSIGN_OR_RETURN(defaults.regression_tolerance, Tolerance(v, field));
    } else if (item.key() == "outputs") {
      ASSIGN_OR_RETURN(defaults.outputs, Outputs(v, field));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SuiteParser::Outputs(
    const json& value, const std::string& field) const {
  if (!value.is_array()) {
    return Error(field, absl::StrCat("expected an array of paths, found ",
                                     TypeName(value)));
  }
  std::vector<std::string> outputs;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item = absl::StrCat(field, "[", i, "]");
    ASSIGN_OR_RETURN(std::string path, String(value[i], item));
    // Relative to the working directory and inside it: outputs are what
    // the test leaves in its own folder.
    RETURN_IF_ERROR(Rule(item, CheckInsidePath(path, path, false)));
    outputs.push_back(std::move(path));
  }
  return outputs;
}

// Every regular file below `dir` (relative to the suite folder), sorted. A
// folder that cannot be read is an error: silently skipping it would leave
// its files out of the cache key.
absl::Status ListFilesBelow(const std::string& root, const std::string& dir,
                            std::vector<std::string>& files) {
  std::error_code ec;
  fs::path base = dir[0] == '/' ? fs::path(dir) : fs::path(root) / dir;
  fs::recursive_directory_iterator it(base, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_regular_file(type_ec)) {
      std::string relative =
          dir[0] == '/'
              ? it->path().string()
              : fs::path(it->path()).lexically_relative(root).string();
      files.push_back(relative);
    }
  }
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot list ", base.string(), ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());
  return absl::OkStatus();
}

absl::Status SuiteParser::Inputs(const json& value, const std::string& field,
                                 std::map<std::string, v1::InputDigest>& out) {
  if (!value.is_array()) {
    return Error(field, absl::StrCat("expected an array of paths, found ",
                                     TypeName(value)));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string item_field = absl::StrCat(field, "[", i, "]");
    ASSIGN_OR_RETURN(std::string pattern, String(value[i], item_field));
    if (pattern.empty()) return Error(item_field, "is an empty path");
    std::string normal = NormalizePath(pattern);
    RETURN_IF_ERROR(CheckInside(normal, pattern, item_field));
    std::vector<std::string> candidates;
    if (pattern.find_first_of("*?[") != std::string::npos) {
      std::string full =
          normal[0] == '/' ? normal : absl::StrCat(dir_, "/", normal);
      glob_t matches{};
      int rc = glob(full.c_str(), 0, nullptr, &matches);
      if (rc == 0) {
        for (size_t m = 0; m < matches.gl_pathc; ++m) {
          std::string match = matches.gl_pathv[m];
          candidates.push_back(
              normal[0] == '/'
                  ? match
                  : fs::path(match).lexically_relative(dir_).string());
        }
      }
      globfree(&matches);
      if (candidates.empty()) {
        return Error(item_field, absl::StrCat("\"", pattern,
                                              "\" matches no file in ", dir_));
      }
    } else {
      candidates.push_back(normal);
    }
    for (const std::string& candidate : candidates) {
      std::string full =
          candidate[0] == '/' ? candidate : absl::StrCat(dir_, "/", candidate);
      struct stat st {};
      if (stat(full.c_str(), &st) != 0) {
        return Error(item_field,
                     absl::StrCat("\"", candidate,
                                  "\" cannot be read: ", std::strerror(errno)));
      }
      std::vector<std::string> files;
      if (S_ISDIR(st.st_mode)) {
        if (absl::Status listed = ListFilesBelow(dir_, candidate, files);
            !listed.ok()) {
          return Error(item_field, std::string(listed.message()));
        }
      } else {
        files.push_back(candidate);
      }
      for (const std::string& file : files) {
        if (out.count(file)) continue;
        RETURN_IF_ERROR(CheckRealInside(
            file[0] == '/' ? file : absl::StrCat(dir_, "/", file), file,
            item_field));
        absl::StatusOr<v1::InputDigest> digest = digester_.Digest(dir_, file);
        if (!digest.ok()) {
          return Error(item_field, std::string(digest.status().message()));
        }
        out[file] = *std::move(digest);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status SuiteParser::Test(
    const json& value, const std::string& field, const TestDefaults& defaults,
    const std::map<std::string, v1::InputDigest>& suite_inputs,
    v1::TestSpec& spec) {
  RETURN_IF_ERROR(
      CheckKeys(value, field,
                {"id", "cmd", "priority", "timeout", "memory_limit", "retries",
                 "cwd", "env", "inputs", "tags", "cache_failures", "expected",
                 "regression_tolerance", "outputs", "disabled"}));
  if (!value.contains("id")) return Error(field, "missing \"id\"");
  if (!value.contains("cmd")) return Error(field, "missing \"cmd\"");
  spec.set_timeout_ms(defaults.timeout_ms);
  spec.set_memory_limit_bytes(defaults.memory_limit_bytes);
  spec.set_retries(defaults.retries);
  spec.set_cwd(defaults.cwd);
  spec.set_cache_failures(defaults.cache_failures);
  spec.set_regression_tolerance(defaults.regression_tolerance);
  std::map<std::string, std::string> env = defaults.env;
  std::map<std::string, v1::InputDigest> inputs = suite_inputs;
  std::vector<std::string> outputs = defaults.outputs;
  for (const auto& item : value.items()) {
    const std::string f = field + "." + item.key();
    const json& v = item.value();
    const std::string& key = item.key();
    if (key == "id") {
      ASSIGN_OR_RETURN(std::string id, String(v, f));
      RETURN_IF_ERROR(Rule(f, CheckTestId(id)));
      spec.set_id(id);
    } else if (key == "cmd") {
      if (!v.is_array()) {
        return Error(f,
                     absl::StrCat("expected an argv array of strings, found ",
                                  TypeName(v),
                                  " (write [\"sh\", \"-c\", \"...\"] for a "
                                  "shell command)"));
      }
      if (v.empty()) return Error(f, "is empty: give at least the program");
      for (size_t i = 0; i < v.size(); ++i) {
        ASSIGN_OR_RETURN(*spec.add_argv(),
                         String(v[i], absl::StrCat(f, "[", i, "]")));
      }
      if (spec.argv(0).empty())
        return Error(f + "[0]", "is an empty program name");
    } else if (key == "priority") {
      ASSIGN_OR_RETURN(int64_t p, Integer(v, f, -kMaxPriority, kMaxPriority));
      spec.set_priority(static_cast<int32_t>(p));
    } else if (key == "timeout") {
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(v, f));
      spec.set_timeout_ms(ms);
    } else if (key == "memory_limit") {
      ASSIGN_OR_RETURN(int64_t bytes, SizeBytes(v, f));
      spec.set_memory_limit_bytes(bytes);
    } else if (key == "retries") {
      ASSIGN_OR_RETURN(int64_t r, Integer(v, f, 0, kMaxRetries));
      spec.set_retries(static_cast<int32_t>(r));
    } else if (key == "cwd") {
      ASSIGN_OR_RETURN(std::string cwd, RelativeDir(v, f));
      spec.set_cwd(cwd);
    } else if (key == "env") {
      RETURN_IF_ERROR(Env(v, f, env));
    } else if (key == "inputs") {
      RETURN_IF_ERROR(Inputs(v, f, inputs));
    } else if (key == "tags") {
      if (!v.is_array()) {
        return Error(f, absl::StrCat("expected an array of strings, found ",
                                     TypeName(v)));
      }
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string tag_field = absl::StrCat(f, "[", i, "]");
        ASSIGN_OR_RETURN(*spec.add_tags(), String(v[i], tag_field));
        RETURN_IF_ERROR(
            Rule(tag_field, CheckTag(spec.tags(spec.tags_size() - 1))));
      }
    } else if (key == "cache_failures") {
      ASSIGN_OR_RETURN(bool cache_failures, Bool(v, f));
      spec.set_cache_failures(cache_failures);
    } else if (key == "expected") {
      ASSIGN_OR_RETURN(int64_t ms, DurationMs(v, f));
      spec.set_expected_ms(ms);
    } else if (key == "regression_tolerance") {
      ASSIGN_OR_RETURN(double tolerance, Tolerance(v, f));
      spec.set_regression_tolerance(tolerance);
    } else if (key == "outputs") {
      ASSIGN_OR_RETURN(outputs, Outputs(v, f));
    } else if (key == "disabled") {
      ASSIGN_OR_RETURN(bool disabled, Bool(v, f));
      spec.set_disabled(disabled);
    }
  }
  for (std::string& output : outputs) spec.add_outputs(std::move(output));
  spec.mutable_env()->insert(env.begin(), env.end());
  for (auto& [path, digest] : inputs) *spec.add_inputs() = digest;
  return absl::OkStatus();
}

absl::StatusOr<LoadedSuite> SuiteParser::Parse(const std::string& text) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based; report line and column for editors.
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    size_t colon = what.rfind(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    return Error("", absl::StrCat("invalid JSON at line ", line, ", column ",
                                  column, ": ", what));
  } catch (const json::exception& e) {
    // Not a syntax error but a value nlohmann cannot hold, such as a number
    // beyond a double (found by fuzz_suite_parser).
    return Error("", absl::StrCat("invalid JSON: ", e.what()));
  }
  // A key given twice in one object would silently take the last value.
  // (A SAX pass of its own: nlohmann's parser callbacks cost quadratic time
  // in an array of objects, 12x on 100,000 tests.)
  DuplicateKeyFinder finder;
  json::sax_parse(text, &finder);
  if (!finder.duplicate().empty()) {
    return Error("", absl::StrCat("the field ", json(finder.duplicate()).dump(),
                                  " appears twice in one object; keep one"));
  }
  RETURN_IF_ERROR(CheckKeys(root, "",
                            {"name", "priority", "defaults", "inputs", "tests",
                             "cache_failures", "regression_tolerance"}));
  LoadedSuite loaded;
  loaded.dir = dir_;
  v1::SuiteSpec& suite = loaded.spec;
  if (root.contains("name")) {
    ASSIGN_OR_RETURN(std::string name, String(root["name"], "name"));
    RETURN_IF_ERROR(Rule("name", CheckSuiteName(name)));
    suite.set_name(name);
  } else {
    suite.set_name(fs::path(display_).stem().string());
  }
  if (root.contains("priority")) {
    ASSIGN_OR_RETURN(int64_t p, Integer(root["priority"], "priority",
                                        -kMaxPriority, kMaxPriority));
    suite.set_priority(static_cast<int32_t>(p));
  }
  TestDefaults defaults;
  if (root.contains("defaults")) {
    RETURN_IF_ERROR(Defaults(root["defaults"], defaults));
  }
  if (root.contains("cache_failures")) {
    ASSIGN_OR_RETURN(defaults.cache_failures,
                     Bool(root["cache_failures"], "cache_failures"));
  }
  if (root.contains("regression_tolerance")) {
    ASSIGN_OR_RETURN(
        defaults.regression_tolerance,
        Tolerance(root["regression_tolerance"], "regression_tolerance"));
  }
  std::map<std::string, v1::InputDigest> suite_inputs;
  if (root.contains("inputs")) {
    RETURN_IF_ERROR(Inputs(root["inputs"], "inputs", suite_inputs));
  }
  if (!root.contains("tests")) return Error("tests", "is missing");
  const json& tests = root["tests"];
  if (!tests.is_array()) {
    return Error("tests",
                 absl::StrCat("expected an array, found ", TypeName(tests)));
  }
  if (tests.empty()) return Error("tests", "is empty: the suite has no tests");
  std::map<std::string, size_t> seen_ids;
  for (size_t i = 0; i < tests.size(); ++i) {
    const std::string field = absl::StrCat("tests[", i, "]");
    v1::TestSpec& spec = *suite.add_tests();
    RETURN_IF_ERROR(Test(tests[i], field, defaults, suite_inputs, spec));
    auto [it, inserted] = seen_ids.emplace(spec.id(), i);
    if (!inserted) {
      return Error(field + ".id",
                   absl::StrCat("duplicate id \"", spec.id(), "\" (also tests[",
                                it->second, "])"));
    }
  }
  return loaded;
}

}  // namespace

absl::StatusOr<LoadedSuite> ParseSuite(const std::string& json_text,
                                       const std::string& display_name,
                                       const std::string& dir,
                                       FileDigester& digester,
                                       const SuiteLoadOptions& options) {
  return SuiteParser(display_name, dir, digester, options).Parse(json_text);
}

absl::StatusOr<LoadedSuite> LoadSuiteFile(const std::string& path,
                                          FileDigester& digester,
                                          const SuiteLoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": cannot read the suite file: ", std::strerror(errno)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  std::string dir = fs::weakly_canonical(absolute.parent_path(), ec).string();
  return ParseSuite(buffer.str(), path, dir, digester, options);
}

}  // namespace testfleet
