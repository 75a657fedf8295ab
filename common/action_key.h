#pragma once

#include "testfleet/v1/testfleet.pb.h"

namespace testfleet {

/// The content-addressed key of a test's result (CONTRACT.md, "Cache key"):
/// SHA-256 over a canonical, length-prefixed encoding of argv, cwd, the
/// declared env (sorted by name), every input's path and SHA-256 (sorted by
/// path) and the platform. Independent of map and input ordering, stable
/// across machines and releases of the same encoding version.
///   v1::ActionKey key = ComputeActionKey(spec, HostPlatform(""));
///   cache.Lookup(key.hex());
v1::ActionKey ComputeActionKey(const v1::TestSpec& spec,
                               const v1::Platform& platform);

}  // namespace testfleet
