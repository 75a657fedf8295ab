#pragma once

#include <string>
#include <vector>

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
/// ComputeActionKey(spec, platform).hex() without making the key's parts.
std::string ActionKeyHex(const v1::TestSpec& spec,
                         const v1::Platform& platform);
/// ComputeActionKey(spec, platform) from its hex, made before by
/// ActionKeyHex: the parts without hashing them again (the coordinator
/// keeps each test's hex from submit).
v1::ActionKey ActionKeyWithHex(const v1::TestSpec& spec,
                               const v1::Platform& platform, std::string hex);

/// Whether `result` may be stored under, or served from, the test's key:
/// a pass, or a failure of a test that caches its failures
/// (`cache_failures`, which is part of its key).
bool Cacheable(const v1::TestSpec& spec, const v1::TestResult& result);

/// What differs between two keys' parts, one line each, e.g.
/// `input data/add.txt changed (sha256 1a2b3c4d5e6f -> 9f8e7d6c5b4a)`,
/// `argv[1] changed: "--fast" -> "--slow"`, `env SEED changed`,
/// `platform tag changed: "" -> "gcc13"`. Env values are not shown: they
/// may be secrets.
std::vector<std::string> DescribeKeyChanges(const v1::ActionKey& before,
                                            const v1::ActionKey& after);

}  // namespace testfleet
