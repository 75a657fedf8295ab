#include "cache/cas_client.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <future>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

namespace bytestream = google::bytestream;

constexpr int kDigestsPerRequest = 10'000;
constexpr size_t kStreamChunk = 1 << 20;
// Requests in flight at once: enough to hide a round trip on loopback and
// on a LAN without flooding the server.
constexpr size_t kParallel = 4;

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

absl::StatusOr<std::string> Content(const BlobSource& source) {
  if (source.path.empty()) return source.content;
  std::ifstream in(source.path, std::ios::binary);
  std::string content(static_cast<size_t>(source.digest.size), '\0');
  if (!in.read(content.data(), source.digest.size)) {
    return absl::NotFoundError(absl::StrCat("cannot read ", source.path, " (",
                                            source.digest.size,
                                            " bytes expected)"));
  }
  return content;
}

// Runs `work` on each item, at most kParallel at a time; the first error.
template <typename Item, typename Work>
absl::Status InParallel(const std::vector<Item>& items, Work work) {
  absl::Status first;
  for (size_t begin = 0; begin < items.size(); begin += kParallel) {
    std::vector<std::future<absl::Status>> running;
    for (size_t i = begin; i < std::min(items.size(), begin + kParallel); ++i)
      running.push_back(
          std::async(std::launch::async, work, std::cref(items[i])));
    for (auto& done : running) {
      absl::Status status = done.get();
      if (first.ok()) first = status;
    }
    if (!first.ok()) return first;
  }
  return first;
}

// Splits `items` into batches whose blobs, with their framing, stay under
// `limit` bytes, and those too large for any batch (sent by ByteStream).
template <typename Item, typename SizeOf>
void SplitIntoBatches(const std::vector<Item>& items, int64_t limit,
                      SizeOf size_of, std::vector<std::vector<Item>>& batches,
                      std::vector<Item>& streamed) {
  constexpr int64_t kOverhead = 100;  // the digest and field tags
  int64_t batch_bytes = limit;        // no open batch yet
  for (const Item& item : items) {
    const int64_t cost = size_of(item) + kOverhead;
    if (cost > limit) {
      streamed.push_back(item);
      continue;
    }
    if (batch_bytes + cost > limit) {
      batches.emplace_back();
      batch_bytes = 0;
    }
    batches.back().push_back(item);
    batch_bytes += cost;
  }
}

}  // namespace

CasClient::CasClient(std::shared_ptr<grpc::Channel> channel,
                     std::string instance)
    : channel_(std::move(channel)),
      instance_(std::move(instance)),
      capabilities_(reapi::Capabilities::NewStub(channel_)),
      cas_(reapi::ContentAddressableStorage::NewStub(channel_)),
      byte_stream_(bytestream::ByteStream::NewStub(channel_)) {}

absl::StatusOr<int64_t> CasClient::MaxBatchBytes() {
  if (max_batch_bytes_ > 0) return max_batch_bytes_;
  grpc::ClientContext context;
  reapi::GetCapabilitiesRequest request;
  request.set_instance_name(instance_);
  reapi::ServerCapabilities capabilities;
  RETURN_IF_ERROR(
      FromGrpc(capabilities_->GetCapabilities(&context, request, &capabilities),
               "REAPI Capabilities"));
  const int64_t advertised =
      capabilities.cache_capabilities().max_batch_total_size_bytes();
  // 0 means "no limit", but gRPC's default message limit still applies.
  max_batch_bytes_ = advertised > 0 ? advertised : (4 << 20) - (64 << 10);
  return max_batch_bytes_;
}

absl::StatusOr<std::vector<BlobDigest>> CasClient::FindMissing(
    absl::Span<const BlobDigest> digests) {
  std::vector<absl::Span<const BlobDigest>> slices;
  for (size_t at = 0; at < digests.size(); at += kDigestsPerRequest)
    slices.push_back(digests.subspan(at, kDigestsPerRequest));
  std::vector<std::vector<BlobDigest>> missing(slices.size());
  std::vector<size_t> order(slices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  RETURN_IF_ERROR(InParallel(order, [&](size_t i) -> absl::Status {
    reapi::FindMissingBlobsRequest request;
    request.set_instance_name(instance_);
    for (const BlobDigest& digest : slices[i])
      *request.add_blob_digests() = digest.ToProto();
    reapi::FindMissingBlobsResponse response;
    grpc::ClientContext context;
    RETURN_IF_ERROR(
        FromGrpc(cas_->FindMissingBlobs(&context, request, &response),
                 "REAPI FindMissingBlobs"));
    for (const reapi::Digest& digest : response.missing_blob_digests()) {
      ASSIGN_OR_RETURN(missing[i].emplace_back(), ParseDigest(digest));
    }
    return absl::OkStatus();
  }));
  std::vector<BlobDigest> all;
  for (auto& part : missing) all.insert(all.end(), part.begin(), part.end());
  return all;
}

absl::Status CasClient::UploadBatch(
    const std::vector<const BlobSource*>& batch) {
  reapi::BatchUpdateBlobsRequest request;
  request.set_instance_name(instance_);
  for (const BlobSource* source : batch) {
    auto* blob = request.add_requests();
    *blob->mutable_digest() = source->digest.ToProto();
    ASSIGN_OR_RETURN(*blob->mutable_data(), Content(*source));
  }
  reapi::BatchUpdateBlobsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(FromGrpc(cas_->BatchUpdateBlobs(&context, request, &response),
                           "REAPI BatchUpdateBlobs"));
  for (const auto& answer : response.responses()) {
    if (answer.status().code() != 0) {
      return absl::Status(
          static_cast<absl::StatusCode>(answer.status().code()),
          absl::StrCat("uploading blob ", answer.digest().hash(), "/",
                       answer.digest().size_bytes(), ": ",
                       answer.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Uploaded> CasClient::UploadMissing(
    const std::vector<BlobSource>& blobs) {
  std::vector<BlobDigest> digests;
  digests.reserve(blobs.size());
  for (const BlobSource& blob : blobs) digests.push_back(blob.digest);
  ASSIGN_OR_RETURN(std::vector<BlobDigest> missing, FindMissing(digests));
  ASSIGN_OR_RETURN(const int64_t limit, MaxBatchBytes());
  absl::flat_hash_set<std::string> wanted;
  for (const BlobDigest& digest : missing) wanted.insert(digest.ToString());
  std::vector<const BlobSource*> to_send;
  Uploaded sent;
  for (size_t i = 0; i < blobs.size(); ++i) {
    const BlobSource& blob = blobs[i];
    if (!wanted.erase(blob.digest.ToString())) continue;  // present, or twice
    sent.bytes += blob.digest.size;
    sent.sent.push_back(i);
    to_send.push_back(&blob);
  }
  std::vector<std::vector<const BlobSource*>> batches;
  std::vector<const BlobSource*> streamed;
  SplitIntoBatches(
      to_send, limit, [](const BlobSource* blob) { return blob->digest.size; },
      batches, streamed);
  RETURN_IF_ERROR(InParallel(
      batches, [&](const auto& batch) { return UploadBatch(batch); }));
  RETURN_IF_ERROR(InParallel(
      streamed, [&](const BlobSource* source) { return Write(*source); }));
  return sent;
}

absl::Status CasClient::Write(const BlobSource& source) {
  const std::string name =
      absl::StrCat(instance_.empty() ? "" : instance_ + "/", "uploads/",
                   RandomHex(16), "/blobs/", source.digest.ToString());
  grpc::ClientContext context;
  bytestream::WriteResponse response;
  auto writer = byte_stream_->Write(&context, &response);
  bytestream::WriteRequest request;
  request.set_resource_name(name);
  std::ifstream in;
  if (!source.path.empty()) {
    in.open(source.path, std::ios::binary);
    if (!in)
      return absl::NotFoundError(absl::StrCat("cannot read ", source.path));
  }
  int64_t offset = 0;
  bool streaming = true;
  do {
    const size_t n = static_cast<size_t>(
        std::min<int64_t>(kStreamChunk, source.digest.size - offset));
    std::string* data = request.mutable_data();
    if (source.path.empty()) {
      data->assign(source.content, static_cast<size_t>(offset), n);
    } else {
      data->resize(n);
      if (n > 0 && !in.read(data->data(), static_cast<std::streamsize>(n))) {
        return absl::DataLossError(absl::StrCat(
            source.path, " is shorter than ", source.digest.size, " bytes"));
      }
    }
    request.set_write_offset(offset);
    offset += static_cast<int64_t>(n);
    request.set_finish_write(offset == source.digest.size);
    streaming = writer->Write(request);
    request.clear_resource_name();  // only the first message names it
  } while (streaming && offset < source.digest.size);
  writer->WritesDone();
  RETURN_IF_ERROR(FromGrpc(writer->Finish(), "REAPI ByteStream.Write"));
  if (response.committed_size() != source.digest.size) {
    return absl::DataLossError(
        absl::StrCat("ByteStream.Write of ", source.digest.ToString(),
                     " committed ", response.committed_size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::Status CasClient::ReadBatch(const std::vector<BlobDigest>& digests,
                                  const std::vector<size_t>& indexes,
                                  std::vector<std::string>& out) {
  reapi::BatchReadBlobsRequest request;
  request.set_instance_name(instance_);
  for (size_t index : indexes)
    *request.add_digests() = digests[index].ToProto();
  reapi::BatchReadBlobsResponse response;
  grpc::ClientContext context;
  RETURN_IF_ERROR(FromGrpc(cas_->BatchReadBlobs(&context, request, &response),
                           "REAPI BatchReadBlobs"));
  if (response.responses_size() != static_cast<int>(indexes.size())) {
    return absl::DataLossError(absl::StrCat("BatchReadBlobs answered ",
                                            response.responses_size(), " of ",
                                            indexes.size(), " blobs"));
  }
  for (size_t i = 0; i < indexes.size(); ++i) {
    auto* answer = response.mutable_responses(static_cast<int>(i));
    const BlobDigest& wanted = digests[indexes[i]];
    if (answer->status().code() != 0) {
      return absl::Status(
          static_cast<absl::StatusCode>(answer->status().code()),
          absl::StrCat("reading blob ", wanted.ToString(), ": ",
                       answer->status().message()));
    }
    if (!(BlobDigest::Of(answer->data()) == wanted)) {
      return absl::DataLossError(absl::StrCat(
          "BatchReadBlobs gave other bytes for ", wanted.ToString()));
    }
    out[indexes[i]] = std::move(*answer->mutable_data());
  }
  return absl::OkStatus();
}

absl::StatusOr<BlobDigest> CasClient::StreamRead(
    const BlobDigest& digest,
    const std::function<bool(absl::string_view)>& sink) {
  grpc::ClientContext context;
  bytestream::ReadRequest request;
  request.set_resource_name(absl::StrCat(
      instance_.empty() ? "" : instance_ + "/", "blobs/", digest.ToString()));
  auto reader = byte_stream_->Read(&context, request);
  Sha256Hasher hasher;
  BlobDigest got;
  bytestream::ReadResponse response;
  // More than the digest's size is already wrong: stop there.
  bool stopped = false;
  while (!stopped && reader->Read(&response)) {
    hasher.Update(response.data());
    got.size += static_cast<int64_t>(response.data().size());
    stopped = got.size > digest.size || !sink(response.data());
  }
  if (stopped) context.TryCancel();
  const grpc::Status finished = reader->Finish();
  // Stopped here, the caller judges what came; else the server's word.
  if (!stopped) RETURN_IF_ERROR(FromGrpc(finished, "REAPI ByteStream.Read"));
  const std::string raw = hasher.FinishRaw();
  std::copy(raw.begin(), raw.end(), got.hash.begin());
  return got;
}

absl::StatusOr<std::string> CasClient::ReadStreamed(const BlobDigest& digest) {
  std::string content;
  ASSIGN_OR_RETURN(const BlobDigest got,
                   StreamRead(digest, [&](absl::string_view data) {
                     content.append(data.data(), data.size());
                     return true;
                   }));
  if (!(got == digest)) {
    return absl::DataLossError(absl::StrCat(
        "ByteStream.Read of ", digest.ToString(), " gave other bytes"));
  }
  return content;
}

absl::StatusOr<std::vector<std::string>> CasClient::ReadBlobs(
    const std::vector<BlobDigest>& digests) {
  std::vector<std::string> out(digests.size());
  ASSIGN_OR_RETURN(const int64_t limit, MaxBatchBytes());
  std::vector<size_t> indexes(digests.size());
  for (size_t i = 0; i < indexes.size(); ++i) indexes[i] = i;
  std::vector<std::vector<size_t>> batches;
  std::vector<size_t> streamed;
  SplitIntoBatches(
      indexes, limit, [&](size_t i) { return digests[i].size; }, batches,
      streamed);
  RETURN_IF_ERROR(InParallel(batches, [&](const std::vector<size_t>& batch) {
    return ReadBatch(digests, batch, out);
  }));
  RETURN_IF_ERROR(InParallel(streamed, [&](size_t index) -> absl::Status {
    ASSIGN_OR_RETURN(out[index], ReadStreamed(digests[index]));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status CasClient::ReadToFile(const BlobDigest& digest,
                                   const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  absl::StatusOr<BlobDigest> got =
      StreamRead(digest, [&](absl::string_view data) {
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        return static_cast<bool>(out);
      });
  out.close();
  if (!got.ok() || !out || !(*got == digest)) {
    std::remove(path.c_str());
    if (!got.ok()) return got.status();
    return absl::DataLossError(!out ? absl::StrCat("cannot write ", path)
                                    : absl::StrCat("ByteStream.Read of ",
                                                   digest.ToString(), " gave ",
                                                   got->ToString()));
  }
  return absl::OkStatus();
}

}  // namespace testfleet
