#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb.h"

namespace testfleet {

namespace reapi = build::bazel::remote::execution::v2;

/// A checked REAPI digest: a SHA-256 (the only digest function served) and
/// the blob's size.
struct BlobDigest {
  std::array<char, 32> hash{};  // raw bytes
  int64_t size = 0;

  std::string HashHex() const;
  /// "HASH/SIZE", as in resource names and messages.
  std::string ToString() const;
  reapi::Digest ToProto() const;
  static BlobDigest Of(absl::string_view content);
  static const BlobDigest& Empty();
  bool operator==(const BlobDigest& other) const {
    return hash == other.hash && size == other.size;
  }
};

/// The hash must be 64 lowercase hex characters and the size not negative.
absl::StatusOr<BlobDigest> ParseDigest(const reapi::Digest& digest);
absl::StatusOr<BlobDigest> ParseDigest(absl::string_view hash,
                                       absl::string_view size);
/// "HASH/SIZE", as BlobDigest::ToString writes it.
absl::StatusOr<BlobDigest> ParseDigestString(absl::string_view text);

/// A ByteStream resource name, split. Reads name
/// `{instance}/blobs/{hash}/{size}`, writes
/// `{instance}/uploads/{uuid}/blobs/{hash}/{size}`; either may carry more
/// path segments after the size (metadata the spec lets clients add), and
/// the instance name may be empty or have several segments.
struct ResourceName {
  std::string instance;
  std::string upload_id;  // writes only
  BlobDigest digest;
};
absl::StatusOr<ResourceName> ParseReadResourceName(absl::string_view name);
absl::StatusOr<ResourceName> ParseWriteResourceName(absl::string_view name);

/// A Directory as the spec requires it: every name a single non-empty path
/// component (no "/", not "." or ".."), names sorted and unique within each
/// of files, directories and symlinks and across them, every digest valid.
absl::Status CheckDirectory(const reapi::Directory& directory);
/// A Tree: its root and each child pass CheckDirectory.
absl::Status CheckTree(const reapi::Tree& tree);

}  // namespace testfleet
