#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "cache/reapi_names.h"

namespace testfleet {

/// One file of a test's input tree, at the absolute path the test sees it.
struct TreeFile {
  std::string path;  // absolute and lexically normal
  BlobDigest digest;
  bool executable = false;
};

/// Builds tests' input trees as REAPI Directory messages (a Merkle tree
/// rooted at "/"), the form in which inputs travel to workers that have no
/// checkout. The same folder in two tests is one Directory blob.
///
///   InputTreeBuilder builder;
///   ASSIGN_OR_RETURN(BlobDigest root, builder.Add(files, {cwd}));
///   for (const auto& [digest, bytes] : builder.directories()) upload(...);
class InputTreeBuilder {
 public:
  /// The root of the tree holding `files` and the (possibly empty) folders
  /// `folders`; an error when a path is not absolute and normal, or names a
  /// file and a folder at once.
  absl::StatusOr<BlobDigest> Add(const std::vector<TreeFile>& files,
                                 const std::vector<std::string>& folders);
  /// Every Directory blob built so far, keyed by "HASH/SIZE".
  const std::map<std::string, std::string>& directories() const {
    return directories_;
  }

 private:
  std::map<std::string, std::string> directories_;
};

/// What a tree holds once walked: files and every folder, with absolute
/// paths.
struct FlatTree {
  std::vector<TreeFile> files;
  std::vector<std::string> folders;  // parents before children
  int64_t file_bytes = 0;
};

/// Fetches the Directory blobs of the given digests, in order.
using DirectoryFetcher = std::function<absl::StatusOr<std::vector<std::string>>(
    const std::vector<BlobDigest>&)>;

/// Walks the tree under `root` a level at a time (one fetch per level),
/// checking every Directory (CheckDirectory) and refusing symbolic links,
/// trees deeper than 256 levels or larger than `max_entries`.
absl::StatusOr<FlatTree> FlattenTree(const BlobDigest& root,
                                     const DirectoryFetcher& fetch,
                                     size_t max_entries = 1'000'000);

/// The digest of an input as its InputDigest states it.
absl::StatusOr<BlobDigest> DigestOfInput(const std::string& sha256_hex,
                                         int64_t size_bytes);

}  // namespace testfleet
