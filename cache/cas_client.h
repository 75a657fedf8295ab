#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cache/reapi_names.h"
#include "google/bytestream/bytestream.grpc.pb.h"
#include "grpcpp/channel.h"

namespace testfleet {

/// A blob to upload: its digest and where its bytes are (a file, or
/// `content` when `path` is empty).
struct BlobSource {
  BlobDigest digest;
  std::string path;
  std::string content;
};

/// What UploadMissing sent.
struct Uploaded {
  int64_t bytes = 0;
  std::vector<size_t> sent;  // indexes into the blobs given
};

/// Testfleet's client of a REAPI content-addressable store. It makes only
/// standard calls (FindMissingBlobs, BatchUpdateBlobs, ByteStream), so it
/// works against any REAPI server, not just ours.
///
///   CasClient cas(MakeChannel("cache:7071"));
///   ASSIGN_OR_RETURN(Uploaded sent, cas.UploadMissing(sources));
class CasClient {
 public:
  explicit CasClient(std::shared_ptr<grpc::Channel> channel,
                     std::string instance = "");

  /// The digests among `digests` that the store lacks, in order; asked in
  /// requests of at most 10,000 digests, several at a time.
  absl::StatusOr<std::vector<BlobDigest>> FindMissing(
      absl::Span<const BlobDigest> digests);
  /// Uploads those of `blobs` the store lacks: small ones in batches under
  /// the server's limit (Capabilities), large ones by ByteStream, several
  /// requests at a time. Returns what was sent.
  absl::StatusOr<Uploaded> UploadMissing(const std::vector<BlobSource>& blobs);
  /// One blob by ByteStream, read from `source` a chunk at a time.
  absl::Status Write(const BlobSource& source);
  /// One blob by ByteStream into a file (replaced), its digest checked.
  absl::Status ReadToFile(const BlobDigest& digest, const std::string& path);
  /// The contents of `digests`, in order, each checked against its digest:
  /// in batches under the server's limit, several at a time; a blob too
  /// large for a batch by ByteStream. NOT_FOUND names a blob the store lacks.
  absl::StatusOr<std::vector<std::string>> ReadBlobs(
      const std::vector<BlobDigest>& digests);

 private:
  absl::StatusOr<int64_t> MaxBatchBytes();
  absl::Status UploadBatch(const std::vector<const BlobSource*>& batch);
  absl::Status ReadBatch(const std::vector<BlobDigest>& digests,
                         const std::vector<size_t>& indexes,
                         std::vector<std::string>& out);
  absl::StatusOr<std::string> ReadStreamed(const BlobDigest& digest);
  // Reads a blob by ByteStream into `sink` a message at a time (a false
  // return stops it), at most a message past the digest's size; the
  // digest of what came.
  absl::StatusOr<BlobDigest> StreamRead(
      const BlobDigest& digest,
      const std::function<bool(absl::string_view)>& sink);

  std::shared_ptr<grpc::Channel> channel_;
  std::string instance_;
  std::unique_ptr<build::bazel::remote::execution::v2::Capabilities::Stub>
      capabilities_;
  std::unique_ptr<
      build::bazel::remote::execution::v2::ContentAddressableStorage::Stub>
      cas_;
  std::unique_ptr<google::bytestream::ByteStream::Stub> byte_stream_;
  int64_t max_batch_bytes_ = 0;  // from Capabilities, asked once
};

}  // namespace testfleet
