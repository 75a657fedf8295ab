// libFuzzer target: Directory and Tree messages decoded from arbitrary bytes
// and checked. A directory that passes names only single path components,
// sorted and unique, so that materializing it can never leave its root.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "cache/reapi_names.h"

namespace {

void CheckNames(const testfleet::reapi::Directory& directory) {
  auto check = [](const std::string& name) {
    if (name.empty() || name == "." || name == ".." ||
        name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos)
      abort();
  };
  for (const auto& file : directory.files()) check(file.name());
  for (const auto& dir : directory.directories()) check(dir.name());
  for (const auto& link : directory.symlinks()) check(link.name());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  testfleet::reapi::Directory directory;
  if (directory.ParseFromArray(data, static_cast<int>(size))) {
    absl::Status checked = testfleet::CheckDirectory(directory);
    if (checked.ok()) CheckNames(directory);
    if (!checked.ok() &&
        (checked.code() != absl::StatusCode::kInvalidArgument ||
         std::string(checked.message()).find('\n') != std::string::npos))
      abort();
  }
  testfleet::reapi::Tree tree;
  if (tree.ParseFromArray(data, static_cast<int>(size)) &&
      testfleet::CheckTree(tree).ok()) {
    CheckNames(tree.root());
    for (const auto& child : tree.children()) CheckNames(child);
  }
  return 0;
}
