#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// The rules every suite field obeys, in one place: `coordctl` applies them
/// while it reads a suite file, and the coordinator applies them again to
/// every submitted SuiteSpec, since it trusts no client. Each check returns
/// InvalidArgument whose message says what is wrong with the value alone
/// ("contains a control character"); the caller puts the field in front.

inline constexpr int kMaxRetries = 100;
inline constexpr int kMaxPriority = 1'000'000;
inline constexpr size_t kMaxIdBytes = 1024;
inline constexpr size_t kMaxNameBytes = 256;
/// A week: longer is a typo, and a test that runs that long is not a test.
inline constexpr int64_t kMaxTimeoutMs = 7LL * 24 * 3600 * 1000;

absl::Status CheckTestId(absl::string_view id);
absl::Status CheckSuiteName(absl::string_view name);
/// A program argument or an environment value: any bytes but NUL.
absl::Status CheckNoNul(absl::string_view value);
absl::Status CheckEnvName(absl::string_view name);
/// A tag: printable, at most kMaxNameBytes.
absl::Status CheckTag(absl::string_view tag);
absl::Status CheckRetries(int64_t retries);
absl::Status CheckPriority(int64_t priority);
absl::Status CheckTimeoutMs(int64_t ms);
/// `fraction` of a regression tolerance: (0, 10].
absl::Status CheckTolerance(double fraction);

/// `path` (relative to the suite folder, lexically normal: no ".", "..",
/// "//" or trailing "/") stays inside it. `shown` is what the user wrote.
/// With `allow_outside`, absolute and climbing paths pass too.
absl::Status CheckInsidePath(absl::string_view path, absl::string_view shown,
                             bool allow_outside);
/// The lexically normal form of `path` ("." for the folder itself).
std::string NormalizePath(absl::string_view path);
/// Whether NormalizePath(path) == path, without making a string.
bool IsNormalPath(absl::string_view path);
/// `path` (relative to the absolute `folder`, or absolute) as an absolute,
/// lexically normal path.
std::string ResolveIn(const std::string& folder, const std::string& path);

/// `path` with every symbolic link followed; an error saying why (only the
/// reason: the caller names the path) when it does not resolve.
absl::StatusOr<std::string> ResolvePath(const std::string& path);
/// Where `path` really leads when that is outside `real_root` (a folder
/// already resolved by ResolvePath); nullopt when it stays inside. The
/// check the lexical rules cannot make: "lnk/hostname" with lnk -> /etc.
absl::StatusOr<std::optional<std::string>> RealPathOutside(
    const std::string& real_root, const std::string& path);

/// A file a worker says a test left (TestResult.outputs): a normal path
/// inside the test's working directory, a SHA-256 and a size.
absl::Status CheckOutputFile(const v1::OutputFile& output);

/// Every field of a resolved test, as the coordinator receives it. Errors
/// are "tests[3].id: contains a control character".
absl::Status CheckTestSpec(const v1::TestSpec& test, int index,
                           bool allow_outside);
/// The whole suite: name, priority, every test, ids unique.
absl::Status CheckSuiteSpec(const v1::SuiteSpec& suite, bool allow_outside);

}  // namespace testfleet
