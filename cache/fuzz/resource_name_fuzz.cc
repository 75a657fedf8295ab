// libFuzzer target: the ByteStream resource-name parser on arbitrary bytes.
// Every name is refused with a one-line InvalidArgument, or parses into a
// digest whose "HASH/SIZE" form appears in the name and round-trips.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cache/reapi_names.h"

namespace {

void Check(const absl::StatusOr<testfleet::ResourceName>& parsed,
           const std::string& name) {
  if (!parsed.ok()) {
    const std::string message(parsed.status().message());
    if (message.find('\n') != std::string::npos ||
        parsed.status().code() != absl::StatusCode::kInvalidArgument)
      abort();
    return;
  }
  const std::string digest = parsed->digest.ToString();
  if (name.find(digest) == std::string::npos) abort();
  auto again = testfleet::ParseDigest(parsed->digest.ToProto());
  if (!again.ok() || !(*again == parsed->digest)) abort();
  if (parsed->instance.size() > name.size()) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  Check(testfleet::ParseReadResourceName(name), name);
  Check(testfleet::ParseWriteResourceName(name), name);
  return 0;
}
