#include "common/spec_rules.h"

#include <cmath>
#include <filesystem>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

bool HasControl(absl::string_view text) {
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(what);
}

// Prefixes a rule's message with the field it applies to, whose name is
// made of `name`'s parts only then: a suite of 10,000 tests passes over
// 100,000 rules, and naming each field up front made a string for each.
template <typename... Parts>
absl::Status At(absl::Status status, const Parts&... name) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(name..., ": ", status.message()));
}

bool IsSha256Hex(absl::string_view hex) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckTestId(absl::string_view id) {
  if (id.empty()) return Invalid("is empty");
  if (id.size() > kMaxIdBytes) {
    return Invalid(absl::StrCat("is longer than ", kMaxIdBytes, " characters"));
  }
  if (HasControl(id)) return Invalid("contains a control character");
  return absl::OkStatus();
}

absl::Status CheckSuiteName(absl::string_view name) {
  if (name.empty()) return Invalid("is empty");
  if (name.size() > kMaxNameBytes) {
    return Invalid(
        absl::StrCat("is longer than ", kMaxNameBytes, " characters"));
  }
  if (HasControl(name)) return Invalid("contains a control character");
  return absl::OkStatus();
}

absl::Status CheckNoNul(absl::string_view value) {
  if (value.find('\0') != absl::string_view::npos) {
    return Invalid("contains a NUL character");
  }
  return absl::OkStatus();
}

absl::Status CheckEnvName(absl::string_view name) {
  if (name.empty() || HasControl(name) ||
      name.find('=') != absl::string_view::npos) {
    return Invalid("is not a valid variable name");
  }
  return absl::OkStatus();
}

absl::Status CheckTag(absl::string_view tag) {
  if (tag.size() > kMaxNameBytes) {
    return Invalid(
        absl::StrCat("is longer than ", kMaxNameBytes, " characters"));
  }
  if (HasControl(tag)) return Invalid("contains a control character");
  return absl::OkStatus();
}

absl::Status CheckRetries(int64_t retries) {
  if (retries < 0 || retries > kMaxRetries) {
    return Invalid(
        absl::StrCat(retries, " is out of range [0, ", kMaxRetries, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckPriority(int64_t priority) {
  if (priority < -kMaxPriority || priority > kMaxPriority) {
    return Invalid(absl::StrCat(priority, " is out of range [", -kMaxPriority,
                                ", ", kMaxPriority, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckTimeoutMs(int64_t ms) {
  if (ms < 0) return Invalid(absl::StrCat(ms, " ms is negative"));
  if (ms > kMaxTimeoutMs) {
    return Invalid(absl::StrCat(ms, " ms is longer than a week"));
  }
  return absl::OkStatus();
}

absl::Status CheckTolerance(double fraction) {
  if (!(fraction > 0 && fraction <= 10)) {
    return Invalid(absl::StrCat(
        fraction,
        " is not a tolerance; write a fraction such as 0.2 or a percentage "
        "such as \"20%\""));
  }
  return absl::OkStatus();
}

std::string NormalizePath(absl::string_view path) {
  std::string normal = std::filesystem::path(std::string(path))
                           .lexically_normal()
                           .generic_string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  if (normal.empty()) normal = ".";
  return normal;
}

bool IsNormalPath(absl::string_view path) {
  if (path == "." || path == "/") return true;
  if (path.empty()) return false;
  const bool absolute = path[0] == '/';
  bool named = false;  // a component other than ".." came before
  for (absl::string_view part :
       absl::StrSplit(absolute ? path.substr(1) : path, '/')) {
    // "//", "./", "/." or a trailing "/"
    if (part.empty() || part == ".") return false;
    if (part == "..") {
      if (absolute || named) return false;  // "/.." is "/", "a/.." is "."
    } else {
      named = true;
    }
  }
  return true;
}

std::string ResolveIn(const std::string& folder, const std::string& path) {
  if (!path.empty() && path[0] == '/') return NormalizePath(path);
  return NormalizePath(folder + "/" + path);
}

absl::StatusOr<std::string> ResolvePath(const std::string& path) {
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(path, ec);
  if (ec) return absl::NotFoundError(ec.message());
  return real.string();
}

absl::StatusOr<std::optional<std::string>> RealPathOutside(
    const std::string& real_root, const std::string& path) {
  ASSIGN_OR_RETURN(std::string real, ResolvePath(path));
  const std::string relative = std::filesystem::path(real)
                                   .lexically_relative(real_root)
                                   .generic_string();
  if (relative.empty() || relative == ".." ||
      absl::StartsWith(relative, "../")) {
    return real;
  }
  return std::nullopt;
}

absl::Status CheckInsidePath(absl::string_view path, absl::string_view shown,
                             bool allow_outside) {
  if (path.empty()) return Invalid("is an empty path");
  RETURN_IF_ERROR(CheckNoNul(path));
  if (!IsNormalPath(path)) {
    return Invalid(absl::StrCat("\"", shown, "\" is not a normalized path"));
  }
  if (allow_outside) return absl::OkStatus();
  if (path[0] == '/' || path == ".." || absl::StartsWith(path, "../")) {
    return Invalid(
        absl::StrCat("\"", shown,
                     "\" is outside the suite folder; move it in, or pass "
                     "--allow-outside-paths"));
  }
  return absl::OkStatus();
}

absl::Status CheckOutputFile(const v1::OutputFile& output) {
  RETURN_IF_ERROR(CheckInsidePath(output.path(), output.path(), false));
  if (!IsSha256Hex(output.sha256()) || output.size_bytes() < 0) {
    return Invalid(absl::StrCat("output \"", output.path(),
                                "\" has no valid SHA-256 digest and size"));
  }
  return absl::OkStatus();
}

absl::Status CheckTestSpec(const v1::TestSpec& test, int index,
                           bool allow_outside) {
  const std::string field = absl::StrCat("tests[", index, "]");
  RETURN_IF_ERROR(At(CheckTestId(test.id()), field, ".id"));
  // A test that travels with its input tree reads nothing of the worker's:
  // its paths may lead anywhere in the sandbox.
  if (!test.input_root().empty()) {
    const size_t slash = test.input_root().find('/');
    if (slash != 64 || !IsSha256Hex(test.input_root().substr(0, 64)) ||
        test.input_root().find_first_not_of("0123456789", slash + 1) !=
            std::string::npos ||
        test.input_root().size() == slash + 1 ||
        test.input_root().size() > slash + 19) {
      return At(Invalid("is not HASH/SIZE"), field, ".input_root");
    }
    allow_outside = true;
  }
  if (!test.exec_root().empty() &&
      (test.exec_root()[0] != '/' || !IsNormalPath(test.exec_root()) ||
       !CheckNoNul(test.exec_root()).ok())) {
    return At(Invalid("is not an absolute, normalized path"), field,
              ".exec_root");
  }
  for (int i = 0; i < test.outputs_size(); ++i) {
    const std::string& output = test.outputs(i);
    RETURN_IF_ERROR(
        At(CheckInsidePath(output, output, false), field, ".outputs[", i, "]"));
  }
  if (test.argv_size() == 0) return At(Invalid("is empty"), field, ".cmd");
  if (test.argv(0).empty()) {
    return At(Invalid("is an empty program name"), field, ".cmd[0]");
  }
  for (int i = 0; i < test.argv_size(); ++i) {
    RETURN_IF_ERROR(At(CheckNoNul(test.argv(i)), field, ".cmd[", i, "]"));
  }
  if (!test.cwd().empty()) {  // empty: the suite folder
    RETURN_IF_ERROR(At(CheckInsidePath(test.cwd(), test.cwd(), allow_outside),
                       field, ".cwd"));
  }
  for (const auto& [name, value] : test.env()) {
    RETURN_IF_ERROR(At(CheckEnvName(name), field, ".env.", name));
    RETURN_IF_ERROR(At(CheckNoNul(value), field, ".env.", name));
  }
  RETURN_IF_ERROR(At(CheckTimeoutMs(test.timeout_ms()), field, ".timeout"));
  RETURN_IF_ERROR(At(CheckTimeoutMs(test.expected_ms()), field, ".expected"));
  if (test.memory_limit_bytes() < 0) {
    return At(Invalid("is negative"), field, ".memory_limit");
  }
  RETURN_IF_ERROR(At(CheckRetries(test.retries()), field, ".retries"));
  RETURN_IF_ERROR(At(CheckPriority(test.priority()), field, ".priority"));
  if (test.regression_tolerance() != 0) {
    RETURN_IF_ERROR(At(CheckTolerance(test.regression_tolerance()), field,
                       ".regression_tolerance"));
  }
  for (int i = 0; i < test.tags_size(); ++i) {
    RETURN_IF_ERROR(At(CheckTag(test.tags(i)), field, ".tags[", i, "]"));
  }
  for (int i = 0; i < test.inputs_size(); ++i) {
    const v1::InputDigest& input = test.inputs(i);
    RETURN_IF_ERROR(
        At(CheckInsidePath(input.path(), input.path(), allow_outside), field,
           ".inputs[", i, "]"));
    if (!IsSha256Hex(input.sha256()) || input.size_bytes() < 0) {
      return At(
          Invalid(absl::StrCat("\"", input.path(),
                               "\" has no valid SHA-256 digest and size")),
          field, ".inputs[", i, "]");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSuiteSpec(const v1::SuiteSpec& suite, bool allow_outside) {
  RETURN_IF_ERROR(At(CheckSuiteName(suite.name()), "name"));
  RETURN_IF_ERROR(At(CheckPriority(suite.priority()), "priority"));
  if (suite.fail_fast() < 0) {
    return At(Invalid(absl::StrCat(suite.fail_fast(),
                                   " is negative: give a number of failures "
                                   "(1 or more), or 0 for no fail-fast")),
              "fail_fast");
  }
  if (suite.tests_size() == 0) {
    return At(Invalid("is empty: the suite has no tests"), "tests");
  }
  absl::flat_hash_map<absl::string_view, int> seen;
  seen.reserve(suite.tests_size());
  for (int i = 0; i < suite.tests_size(); ++i) {
    const v1::TestSpec& test = suite.tests(i);
    RETURN_IF_ERROR(CheckTestSpec(test, i, allow_outside));
    auto [it, inserted] = seen.emplace(test.id(), i);
    if (!inserted) {
      return At(Invalid(absl::StrCat("duplicate id \"", test.id(),
                                     "\" (also tests[", it->second, "])")),
                "tests[", i, "].id");
    }
  }
  return absl::OkStatus();
}

}  // namespace testfleet
