#include "cache/reapi_names.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/digest.h"
#include "common/text.h"

namespace testfleet {
namespace {

// Path segments that mark where an instance name ends (the spec forbids
// them inside instance names).
bool IsReservedSegment(absl::string_view segment) {
  return segment == "blobs" || segment == "uploads" ||
         segment == "compressed-blobs" || segment == "actions" ||
         segment == "actionResults" || segment == "operations" ||
         segment == "capabilities";
}

// A resource name quoted for an error message: printable, and short.
std::string Quote(absl::string_view name) {
  constexpr size_t kShown = 160;
  std::string shown(name.substr(0, kShown));
  return absl::StrCat("\"", LogSafe(shown), name.size() > kShown ? "..." : "",
                      "\"");
}

absl::StatusOr<ResourceName> ParseAfterInstance(
    absl::string_view name, const std::vector<absl::string_view>& segments,
    size_t blobs_at, std::string instance, std::string upload_id) {
  if (blobs_at + 2 >= segments.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource name ", Quote(name), " has no HASH/SIZE after \"blobs/\""));
  }
  auto digest = ParseDigest(segments[blobs_at + 1], segments[blobs_at + 2]);
  if (!digest.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource name ", Quote(name), ": ", digest.status().message()));
  }
  return ResourceName{std::move(instance), std::move(upload_id), *digest};
}

// The instance name: the segments before the first reserved one, which must
// be `expected`.
absl::StatusOr<size_t> FindReserved(absl::string_view name,
                                    const std::vector<absl::string_view>& segs,
                                    absl::string_view expected,
                                    absl::string_view form) {
  for (size_t i = 0; i < segs.size(); ++i) {
    if (!IsReservedSegment(segs[i])) continue;
    if (segs[i] != expected) break;
    return i;
  }
  return absl::InvalidArgumentError(absl::StrCat("resource name ", Quote(name),
                                                 " is not of the form ", form));
}

}  // namespace

std::string BlobDigest::HashHex() const {
  return BytesToHex(absl::string_view(hash.data(), hash.size()));
}

std::string BlobDigest::ToString() const {
  return absl::StrCat(HashHex(), "/", size);
}

reapi::Digest BlobDigest::ToProto() const {
  reapi::Digest digest;
  digest.set_hash(HashHex());
  digest.set_size_bytes(size);
  return digest;
}

BlobDigest BlobDigest::Of(absl::string_view content) {
  Sha256Hasher hasher;
  hasher.Update(content);
  BlobDigest digest;
  std::string raw = hasher.FinishRaw();
  std::memcpy(digest.hash.data(), raw.data(), digest.hash.size());
  digest.size = static_cast<int64_t>(content.size());
  return digest;
}

const BlobDigest& BlobDigest::Empty() {
  static const BlobDigest empty = Of("");
  return empty;
}

absl::StatusOr<BlobDigest> ParseDigest(absl::string_view hash,
                                       absl::string_view size) {
  BlobDigest digest;
  const bool lower_hex = std::all_of(hash.begin(), hash.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (hash.size() != 64 || !lower_hex || !DecodeHex(hash, digest.hash.data())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "digest hash \"", LogSafe(std::string(hash.substr(0, 80))),
        "\" is not 64 lowercase hex characters (only SHA-256 is served)"));
  }
  // Digits only, as the spec writes sizes: SimpleAtoi alone would take
  // " 42" or "+42" (found by fuzz_resource_names), names of no digest.
  const bool decimal =
      !size.empty() && size.size() <= 19 &&
      std::all_of(size.begin(), size.end(),
                  [](char c) { return c >= '0' && c <= '9'; }) &&
      (size.size() == 1 || size[0] != '0');
  if (!decimal || !absl::SimpleAtoi(size, &digest.size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest size \"", LogSafe(std::string(size.substr(0, 40))),
                     "\" is not a byte count"));
  }
  return digest;
}

absl::StatusOr<BlobDigest> ParseDigestString(absl::string_view text) {
  const size_t slash = text.find('/');
  return ParseDigest(text.substr(0, slash), slash == absl::string_view::npos
                                                ? absl::string_view()
                                                : text.substr(slash + 1));
}

absl::StatusOr<BlobDigest> ParseDigest(const reapi::Digest& digest) {
  if (digest.size_bytes() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest ", LogSafe(digest.hash().substr(0, 80)),
                     " has a negative size ", digest.size_bytes()));
  }
  return ParseDigest(digest.hash(), absl::StrCat(digest.size_bytes()));
}

absl::StatusOr<ResourceName> ParseReadResourceName(absl::string_view name) {
  std::vector<absl::string_view> segments = absl::StrSplit(name, '/');
  auto blobs_at =
      FindReserved(name, segments, "blobs", "[INSTANCE/]blobs/HASH/SIZE");
  if (!blobs_at.ok()) return blobs_at.status();
  std::string instance =
      absl::StrJoin(segments.begin(), segments.begin() + *blobs_at, "/");
  return ParseAfterInstance(name, segments, *blobs_at, std::move(instance), "");
}

absl::StatusOr<ResourceName> ParseWriteResourceName(absl::string_view name) {
  constexpr absl::string_view kForm = "[INSTANCE/]uploads/UUID/blobs/HASH/SIZE";
  std::vector<absl::string_view> segments = absl::StrSplit(name, '/');
  auto uploads_at = FindReserved(name, segments, "uploads", kForm);
  if (!uploads_at.ok()) return uploads_at.status();
  const size_t at = *uploads_at;
  if (at + 2 >= segments.size() || segments[at + 1].empty() ||
      segments[at + 2] != "blobs") {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource name ", Quote(name), " is not of the form ", kForm));
  }
  std::string instance =
      absl::StrJoin(segments.begin(), segments.begin() + at, "/");
  return ParseAfterInstance(name, segments, at + 2, std::move(instance),
                            std::string(segments[at + 1]));
}

absl::Status CheckDirectory(const reapi::Directory& directory) {
  // Names across files, directories and symlinks: one entry per name.
  std::vector<absl::string_view> all;
  auto check_names = [&](auto& nodes, absl::string_view what) -> absl::Status {
    absl::string_view previous;
    for (int i = 0; i < nodes.size(); ++i) {
      const std::string& name = nodes.Get(i).name();
      if (name.empty() || name == "." || name == ".." ||
          name.find('/') != std::string::npos ||
          name.find('\0') != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "directory ", what, " name \"", LogSafe(name.substr(0, 80)),
            "\" is not a single path component (empty, \".\", \"..\" or "
            "with \"/\")"));
      }
      if (i > 0 && !(previous < name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("directory ", what,
                         " names are not sorted and unique "
                         "(\"",
                         LogSafe(name.substr(0, 80)), "\")"));
      }
      previous = name;
      all.push_back(name);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check_names(directory.files(), "file"); !s.ok())
    return s;
  if (absl::Status s = check_names(directory.directories(), "subdirectory");
      !s.ok())
    return s;
  if (absl::Status s = check_names(directory.symlinks(), "symlink"); !s.ok())
    return s;
  std::sort(all.begin(), all.end());
  if (std::adjacent_find(all.begin(), all.end()) != all.end()) {
    return absl::InvalidArgumentError(
        "directory has a file, subdirectory or symlink of the same name");
  }
  for (const auto& file : directory.files()) {
    if (auto d = ParseDigest(file.digest()); !d.ok()) return d.status();
  }
  for (const auto& dir : directory.directories()) {
    if (auto d = ParseDigest(dir.digest()); !d.ok()) return d.status();
  }
  for (const auto& link : directory.symlinks()) {
    if (link.target().empty() || link.target().find('\0') != std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat(
          "symlink \"", LogSafe(link.name()), "\" has an empty target"));
  }
  return absl::OkStatus();
}

absl::Status CheckTree(const reapi::Tree& tree) {
  if (absl::Status s = CheckDirectory(tree.root()); !s.ok()) return s;
  for (const reapi::Directory& child : tree.children()) {
    if (absl::Status s = CheckDirectory(child); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace testfleet
