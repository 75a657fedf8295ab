#pragma once

#include <string>

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// This machine's platform (OS and CPU architecture from uname) with the
/// user's --platform-tag.
v1::Platform HostPlatform(const std::string& tag);

/// "linux/x86_64" or "linux/x86_64/tag", for logs and matching.
std::string PlatformString(const v1::Platform& platform);

/// Whether a worker of platform `worker` may run work submitted for `wanted`.
bool PlatformsMatch(const v1::Platform& wanted, const v1::Platform& worker);

}  // namespace testfleet
