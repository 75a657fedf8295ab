#include "cache/input_tree.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

struct Folder {
  std::map<std::string, std::unique_ptr<Folder>> folders;
  std::map<std::string, const TreeFile*> files;
};

absl::StatusOr<std::vector<std::string>> Components(const std::string& path) {
  if (path.empty() || path[0] != '/' || !IsNormalPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input tree path \"", path, "\" is not absolute and normal"));
  }
  if (path == "/") return std::vector<std::string>();
  return std::vector<std::string>(absl::StrSplit(path.substr(1), '/'));
}

// The folder at `parts` below `root`, made as needed.
absl::StatusOr<Folder*> Descend(Folder* folder,
                                const std::vector<std::string>& parts,
                                size_t count, const std::string& path) {
  for (size_t i = 0; i < count; ++i) {
    if (folder->files.count(parts[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input tree: ", path, " lies under a file of the same tree"));
    }
    auto& child = folder->folders[parts[i]];
    if (!child) child = std::make_unique<Folder>();
    folder = child.get();
  }
  return folder;
}

// Serializes `folder` and its children bottom-up into `out`; its digest.
BlobDigest Seal(const Folder& folder, std::map<std::string, std::string>& out) {
  reapi::Directory directory;
  for (const auto& [name, file] : folder.files) {
    auto* node = directory.add_files();
    node->set_name(name);
    *node->mutable_digest() = file->digest.ToProto();
    node->set_is_executable(file->executable);
  }
  for (const auto& [name, child] : folder.folders) {
    auto* node = directory.add_directories();
    node->set_name(name);
    *node->mutable_digest() = Seal(*child, out).ToProto();
  }
  std::string bytes = directory.SerializeAsString();
  BlobDigest digest = BlobDigest::Of(bytes);
  out.emplace(digest.ToString(), std::move(bytes));
  return digest;
}

}  // namespace

absl::StatusOr<BlobDigest> InputTreeBuilder::Add(
    const std::vector<TreeFile>& files,
    const std::vector<std::string>& folders) {
  Folder root;
  for (const std::string& path : folders) {
    ASSIGN_OR_RETURN(std::vector<std::string> parts, Components(path));
    RETURN_IF_ERROR(Descend(&root, parts, parts.size(), path).status());
  }
  for (const TreeFile& file : files) {
    ASSIGN_OR_RETURN(std::vector<std::string> parts, Components(file.path));
    if (parts.empty()) {
      return absl::InvalidArgumentError("input tree: \"/\" is not a file");
    }
    ASSIGN_OR_RETURN(Folder * parent,
                     Descend(&root, parts, parts.size() - 1, file.path));
    if (parent->folders.count(parts.back())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input tree: ", file.path, " is both a file and a folder"));
    }
    auto [it, added] = parent->files.emplace(parts.back(), &file);
    if (!added && !(it->second->digest == file.digest &&
                    it->second->executable == file.executable)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input tree: ", file.path, " is given twice with different content"));
    }
  }
  return Seal(root, directories_);
}

absl::StatusOr<FlatTree> FlattenTree(const BlobDigest& root,
                                     const DirectoryFetcher& fetch,
                                     size_t max_entries) {
  constexpr int kMaxDepth = 256;
  FlatTree tree;
  tree.folders.push_back("/");
  std::vector<std::pair<std::string, BlobDigest>> level = {{"/", root}};
  for (int depth = 0; !level.empty(); ++depth) {
    if (depth > kMaxDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("input tree ", root.ToString(), " is deeper than ",
                       kMaxDepth, " levels"));
    }
    std::vector<BlobDigest> digests;
    for (const auto& [path, digest] : level) digests.push_back(digest);
    ASSIGN_OR_RETURN(std::vector<std::string> blobs, fetch(digests));
    std::vector<std::pair<std::string, BlobDigest>> next;
    for (size_t i = 0; i < level.size(); ++i) {
      const std::string& path = level[i].first;
      const std::string prefix = path == "/" ? "/" : path + "/";
      reapi::Directory directory;
      if (!directory.ParseFromString(blobs[i])) {
        return absl::InvalidArgumentError(
            absl::StrCat("input tree: ", path, " is not a Directory message"));
      }
      if (absl::Status valid = CheckDirectory(directory); !valid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("input tree: ", path, ": ", valid.message()));
      }
      if (directory.symlinks_size() > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("input tree: ", prefix, directory.symlinks(0).name(),
                         " is a symbolic link; send the file it names"));
      }
      for (const auto& file : directory.files()) {
        ASSIGN_OR_RETURN(BlobDigest digest, ParseDigest(file.digest()));
        tree.files.push_back(
            {prefix + file.name(), digest, file.is_executable()});
        tree.file_bytes += digest.size;
      }
      for (const auto& folder : directory.directories()) {
        ASSIGN_OR_RETURN(BlobDigest digest, ParseDigest(folder.digest()));
        tree.folders.push_back(prefix + folder.name());
        next.emplace_back(prefix + folder.name(), digest);
      }
      if (tree.files.size() + tree.folders.size() > max_entries) {
        return absl::InvalidArgumentError(
            absl::StrCat("input tree ", root.ToString(), " has more than ",
                         max_entries, " entries"));
      }
    }
    level = std::move(next);
  }
  return tree;
}

absl::StatusOr<BlobDigest> DigestOfInput(const std::string& sha256_hex,
                                         int64_t size_bytes) {
  return ParseDigest(sha256_hex, absl::StrCat(size_bytes));
}

}  // namespace testfleet
