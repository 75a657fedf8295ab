#include "common/platform.h"

#include <sys/utsname.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace testfleet {

v1::Platform HostPlatform(const std::string& tag) {
  v1::Platform platform;
  struct utsname names {};
  if (uname(&names) == 0) {
    platform.set_os(absl::AsciiStrToLower(names.sysname));
    platform.set_arch(names.machine);
  }
  platform.set_tag(tag);
  return platform;
}

std::string PlatformString(const v1::Platform& platform) {
  std::string s = absl::StrCat(platform.os(), "/", platform.arch());
  if (!platform.tag().empty()) absl::StrAppend(&s, "/", platform.tag());
  return s;
}

bool PlatformsMatch(const v1::Platform& wanted, const v1::Platform& worker) {
  return wanted.os() == worker.os() && wanted.arch() == worker.arch() &&
         wanted.tag() == worker.tag();
}

}  // namespace testfleet
