// tf_reapi_bad_inputs: sends every kind of bad Remote Execution API request
// we know of to a cache server, checks each answer's status code and that
// nothing was stored, and that the server still answers afterwards. Prints
// one Markdown table row per case (for docs/bad-inputs.md); exits 0 when
// every case got its expected answer, 1 otherwise, 2 on bad usage.
//   tf_reapi_bad_inputs HOST:PORT [CA_FILE TOKEN]   (TLS and a bearer token)
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "build/bazel/remote/execution/v2/remote_execution.grpc.pb.h"
#include "cache/reapi_names.h"
#include "common/grpc_util.h"
#include "common/security.h"
#include "google/bytestream/bytestream.grpc.pb.h"

namespace {

using namespace testfleet;
namespace bytestream = google::bytestream;

struct Stubs {
  std::unique_ptr<reapi::Capabilities::Stub> capabilities;
  std::unique_ptr<reapi::ContentAddressableStorage::Stub> cas;
  std::unique_ptr<reapi::ActionCache::Stub> action_cache;
  std::unique_ptr<bytestream::ByteStream::Stub> byte_stream;
};

// One upload over ByteStream: the given messages, then the stream's end.
grpc::Status Write(Stubs& stubs,
                   const std::vector<bytestream::WriteRequest>& messages) {
  grpc::ClientContext context;
  bytestream::WriteResponse response;
  auto writer = stubs.byte_stream->Write(&context, &response);
  for (const auto& message : messages) {
    if (!writer->Write(message)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

bytestream::WriteRequest Chunk(const std::string& name, int64_t offset,
                               const std::string& data, bool finish) {
  bytestream::WriteRequest request;
  request.set_resource_name(name);
  request.set_write_offset(offset);
  request.set_data(data);
  request.set_finish_write(finish);
  return request;
}

grpc::Status Read(Stubs& stubs, const std::string& name, int64_t offset) {
  grpc::ClientContext context;
  bytestream::ReadRequest request;
  request.set_resource_name(name);
  request.set_read_offset(offset);
  auto reader = stubs.byte_stream->Read(&context, request);
  bytestream::ReadResponse response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

bool Missing(Stubs& stubs, const BlobDigest& digest) {
  grpc::ClientContext context;
  reapi::FindMissingBlobsRequest request;
  *request.add_blob_digests() = digest.ToProto();
  reapi::FindMissingBlobsResponse response;
  grpc::Status status =
      stubs.cas->FindMissingBlobs(&context, request, &response);
  return status.ok() && response.missing_blob_digests_size() == 1;
}

grpc::Status Upload(Stubs& stubs, const std::string& content,
                    const BlobDigest& digest) {
  grpc::ClientContext context;
  reapi::BatchUpdateBlobsRequest request;
  auto* blob = request.add_requests();
  *blob->mutable_digest() = digest.ToProto();
  blob->set_data(content);
  reapi::BatchUpdateBlobsResponse response;
  grpc::Status status =
      stubs.cas->BatchUpdateBlobs(&context, request, &response);
  if (!status.ok()) return status;
  const auto& item = response.responses(0).status();
  return grpc::Status(static_cast<grpc::StatusCode>(item.code()),
                      item.message());
}

grpc::Status GetTree(Stubs& stubs, const BlobDigest& root) {
  grpc::ClientContext context;
  reapi::GetTreeRequest request;
  *request.mutable_root_digest() = root.ToProto();
  auto reader = stubs.cas->GetTree(&context, request);
  reapi::GetTreeResponse response;
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

std::string UploadName(const BlobDigest& digest) {
  return absl::StrCat("uploads/3f1a6c2e-0000-4000-8000-000000000001/blobs/",
                      digest.ToString());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    std::cerr << "usage: tf_reapi_bad_inputs HOST:PORT [CA_FILE TOKEN]\n";
    return 2;
  }
  if (argc == 4) {
    ClientSecurity security;
    security.tls.ca_file = argv[2];
    security.token = argv[3];
    if (absl::Status set = SetClientSecurity(security); !set.ok()) {
      std::cerr << "tf_reapi_bad_inputs: " << set.message() << "\n";
      return 2;
    }
  }
  auto channel = MakeChannel(argv[1]);
  Stubs stubs{reapi::Capabilities::NewStub(channel),
              reapi::ContentAddressableStorage::NewStub(channel),
              reapi::ActionCache::NewStub(channel),
              bytestream::ByteStream::NewStub(channel)};
  const std::string hello = "hello";
  const BlobDigest hello_digest = BlobDigest::Of(hello);
  if (!Upload(stubs, hello, hello_digest).ok()) {
    std::cerr << "tf_reapi_bad_inputs: cannot store a first blob at " << argv[1]
              << "\n";
    return 1;
  }
  const BlobDigest fresh = BlobDigest::Of("never stored");
  const BlobDigest huge = [] {
    BlobDigest d = BlobDigest::Of("claims 2 GiB");
    d.size = 2LL << 30;
    return d;
  }();
  auto directory_named = [&](const std::string& name) {
    reapi::Directory directory;
    auto* file = directory.add_files();
    file->set_name(name);
    *file->mutable_digest() = hello_digest.ToProto();
    const std::string bytes = directory.SerializeAsString();
    const BlobDigest digest = BlobDigest::Of(bytes);
    Upload(stubs, bytes, digest);
    return digest;
  };

  struct Case {
    std::string name;
    grpc::StatusCode expected;
    std::function<grpc::Status()> call;
    // A blob the case must not have stored.
    std::optional<BlobDigest> not_stored = std::nullopt;
  };
  const std::vector<Case> cases = {
      {"ByteStream read: malformed resource name",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] { return Read(stubs, "blobs/not-a-hash/5", 0); }},
      {"ByteStream read: no `blobs/` in the name",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] { return Read(stubs, "instance/things/x", 0); }},
      {"ByteStream read: offset past the end", grpc::StatusCode::OUT_OF_RANGE,
       [&] { return Read(stubs, "blobs/" + hello_digest.ToString(), 6); }},
      {"ByteStream read: blob not stored", grpc::StatusCode::NOT_FOUND,
       [&] { return Read(stubs, "blobs/" + fresh.ToString(), 0); }},
      {"ByteStream write: content does not match the digest",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         BlobDigest lie = fresh;
         lie.size = 5;
         return Write(stubs, {Chunk(UploadName(lie), 0, "HELLO", true)});
       },
       [&] {
         BlobDigest lie = fresh;
         lie.size = 5;
         return lie;
       }()},
      {"ByteStream write: more bytes than the digest's size",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         return Write(stubs, {Chunk(UploadName(fresh), 0,
                                    "never stored, and then some", true)});
       },
       fresh},
      {"ByteStream write: stops halfway (no finish_write)",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         return Write(stubs, {Chunk(UploadName(fresh), 0, "never", false)});
       },
       fresh},
      {"ByteStream write: claims 2 GiB, sends 10 bytes",
       grpc::StatusCode::RESOURCE_EXHAUSTED,
       [&] {
         return Write(stubs, {Chunk(UploadName(huge), 0, "0123456789", false)});
       },
       huge},
      {"ByteStream write: offset skips ahead",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         return Write(stubs, {Chunk(UploadName(fresh), 0, "never", false),
                              Chunk("", 9, " stored", true)});
       },
       fresh},
      {"ByteStream write: malformed resource name",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         return Write(stubs, {Chunk("uploads/blobs/" + fresh.ToString(), 0,
                                    "never stored", true)});
       },
       fresh},
      {"BatchUpdateBlobs: data shorter than the digest's size",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         BlobDigest lie = fresh;
         lie.size = 100;
         return Upload(stubs, "never stored", lie);
       }},
      {"BatchUpdateBlobs: content does not match the digest",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         BlobDigest lie = fresh;
         lie.size = 5;
         return Upload(stubs, "HELLO", lie);
       }},
      {"digest hash in upper case", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         grpc::ClientContext context;
         reapi::FindMissingBlobsRequest request;
         auto* digest = request.add_blob_digests();
         digest->set_hash(absl::AsciiStrToUpper(hello_digest.HashHex()));
         digest->set_size_bytes(5);
         reapi::FindMissingBlobsResponse response;
         return stubs.cas->FindMissingBlobs(&context, request, &response);
       }},
      {"digest with a negative size", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         grpc::ClientContext context;
         reapi::FindMissingBlobsRequest request;
         auto* digest = request.add_blob_digests();
         digest->set_hash(hello_digest.HashHex());
         digest->set_size_bytes(-1);
         reapi::FindMissingBlobsResponse response;
         return stubs.cas->FindMissingBlobs(&context, request, &response);
       }},
      {"GetTree: a Directory with a file named `..`",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] { return GetTree(stubs, directory_named("..")); }},
      {"GetTree: a Directory with `/` in a name",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] { return GetTree(stubs, directory_named("etc/passwd")); }},
      {"GetTree: root not stored", grpc::StatusCode::NOT_FOUND,
       [&] { return GetTree(stubs, fresh); }},
      {"GetTree: root claiming 2^60 bytes", grpc::StatusCode::NOT_FOUND,
       [&] {
         BlobDigest claim = fresh;
         claim.size = int64_t{1} << 60;
         return GetTree(stubs, claim);
       }},
      {"unknown instance name", grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         grpc::ClientContext context;
         reapi::FindMissingBlobsRequest request;
         request.set_instance_name("someone-else");
         reapi::FindMissingBlobsResponse response;
         return stubs.cas->FindMissingBlobs(&context, request, &response);
       }},
      {"BatchReadBlobs over the batch size limit",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         grpc::ClientContext context;
         reapi::BatchReadBlobsRequest request;
         BlobDigest big = fresh;
         big.size = 5 << 20;
         *request.add_digests() = big.ToProto();
         reapi::BatchReadBlobsResponse response;
         return stubs.cas->BatchReadBlobs(&context, request, &response);
       }},
      {"UpdateActionResult: malformed output digest",
       grpc::StatusCode::INVALID_ARGUMENT,
       [&] {
         grpc::ClientContext context;
         reapi::UpdateActionResultRequest request;
         *request.mutable_action_digest() = fresh.ToProto();
         auto* file = request.mutable_action_result()->add_output_files();
         file->set_path("out");
         file->mutable_digest()->set_hash("xyz");
         reapi::ActionResult response;
         return stubs.action_cache->UpdateActionResult(&context, request,
                                                       &response);
       }},
      {"GetActionResult: action never stored", grpc::StatusCode::NOT_FOUND,
       [&] {
         grpc::ClientContext context;
         reapi::GetActionResultRequest request;
         *request.mutable_action_digest() = fresh.ToProto();
         reapi::ActionResult response;
         return stubs.action_cache->GetActionResult(&context, request,
                                                    &response);
       }},
  };
  std::cout << "| request | status | what the server says | nothing stored, "
               "still serving |\n| --- | --- | --- | --- |\n";
  int wrong = 0;
  for (const Case& c : cases) {
    const grpc::Status status = c.call();
    const bool clean =
        !c.not_stored.has_value() || Missing(stubs, *c.not_stored);
    grpc::ClientContext context;
    reapi::ServerCapabilities capabilities;
    const bool serving =
        stubs.capabilities
            ->GetCapabilities(&context, reapi::GetCapabilitiesRequest(),
                              &capabilities)
            .ok();
    const bool right = status.error_code() == c.expected && clean && serving;
    if (!right) ++wrong;
    std::cout << "| " << c.name << " | "
              << absl::StatusCodeToString(
                     static_cast<absl::StatusCode>(status.error_code()))
              << (right ? "" : " (UNEXPECTED)") << " | "
              << absl::StrReplaceAll(status.error_message(), {{"|", "\\|"}})
              << " | " << (clean && serving ? "yes" : "NO") << " |\n";
  }
  return wrong == 0 ? 0 : 1;
}
