#include "cache/reapi_service.h"

#include <algorithm>
#include <deque>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_util.h"
#include "common/text.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

namespace bytestream = google::bytestream;

// GetTree pages: a client's page_size is capped to this many directories.
constexpr int kMaxTreePage = 10'000;

grpc::Status Fail(absl::Status status) {
  return ToGrpcStatus(std::move(status));
}

google::rpc::Status RpcStatus(const absl::Status& status) {
  google::rpc::Status out;
  out.set_code(static_cast<int>(status.code()));
  out.set_message(std::string(status.message()));
  return out;
}

}  // namespace

struct ReapiServices::Shared {
  ResultCache* cache;
  const TokenAuthority open;
  const TokenAuthority* auth;
  ReapiOptions options;

  absl::Status CheckInstance(const std::string& instance) const {
    if (std::find(options.instances.begin(), options.instances.end(),
                  instance) != options.instances.end())
      return absl::OkStatus();
    const std::string asked =
        absl::StrCat("instance name \"", LogSafe(instance.substr(0, 80)), "\"");
    if (options.instances == std::vector<std::string>{""}) {
      return absl::InvalidArgumentError(
          absl::StrCat(asked,
                       " is not served here: this server has only the empty "
                       "instance name; drop the client's instance name (Bazel: "
                       "--remote_instance_name)"));
    }
    std::vector<std::string> quoted;
    for (const std::string& served : options.instances)
      quoted.push_back(absl::StrCat("\"", served, "\""));
    return absl::InvalidArgumentError(absl::StrCat(
        asked, " is not served here (served: ", absl::StrJoin(quoted, ", "),
        "); set the client's instance name to one of those"));
  }

  // The caller may do `role` on `instance`.
  absl::Status Admit(const grpc::ServerContext& context, Role role,
                     const std::string& instance) const {
    auto caller = auth->Authorize(context, role);
    if (!caller.ok()) return caller.status();
    return CheckInstance(instance);
  }
  // The same, where submitters may do it too: ask what the store lacks and
  // add blobs, which are checked against their digests (so nobody can
  // poison them), as `coordctl submit` does with a suite's inputs. Action
  // results stay for cache writers.
  absl::Status AdmitOrSubmitter(const grpc::ServerContext& context, Role role,
                                const std::string& instance) const {
    auto caller = auth->Authorize(context, role);
    if (!caller.ok() && absl::IsPermissionDenied(caller.status()))
      caller = auth->Authorize(context, Role::kSubmit);
    if (!caller.ok()) return caller.status();
    return CheckInstance(instance);
  }
};

class ReapiServices::Capabilities final : public reapi::Capabilities::Service {
 public:
  explicit Capabilities(const Shared* shared) : shared_(shared) {}

  grpc::Status GetCapabilities(grpc::ServerContext* context,
                               const reapi::GetCapabilitiesRequest* request,
                               reapi::ServerCapabilities* response) override {
    absl::Status admitted = shared_->AdmitOrSubmitter(
        *context, Role::kCacheRead, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    auto* cache = response->mutable_cache_capabilities();
    cache->add_digest_function(reapi::DigestFunction::SHA256);
    // Writes are checked per call: a reader's upload is refused then, and
    // a client goes on with its build.
    cache->mutable_action_cache_update_capabilities()->set_update_enabled(true);
    cache->set_max_batch_total_size_bytes(kMaxBatchTotalBytes);
    cache->set_symlink_absolute_path_strategy(
        reapi::SymlinkAbsolutePathStrategy::ALLOWED);
    auto* exec = response->mutable_execution_capabilities();
    exec->set_digest_function(reapi::DigestFunction::SHA256);
    exec->set_exec_enabled(false);
    response->mutable_low_api_version()->set_major(2);
    response->mutable_high_api_version()->set_major(2);
    return grpc::Status::OK;
  }

 private:
  const Shared* shared_;
};

class ReapiServices::Cas final
    : public reapi::ContentAddressableStorage::Service {
 public:
  explicit Cas(const Shared* shared) : shared_(shared) {}

  grpc::Status FindMissingBlobs(
      grpc::ServerContext* context,
      const reapi::FindMissingBlobsRequest* request,
      reapi::FindMissingBlobsResponse* response) override {
    absl::Status admitted = shared_->AdmitOrSubmitter(
        *context, Role::kCacheRead, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    std::vector<BlobDigest> digests;
    digests.reserve(request->blob_digests_size());
    for (const reapi::Digest& digest : request->blob_digests()) {
      auto parsed = ParseDigest(digest);
      if (!parsed.ok()) return Fail(parsed.status());
      digests.push_back(*parsed);
    }
    std::vector<bool> missing = shared_->cache->FindMissingBlobs(digests);
    for (size_t i = 0; i < missing.size(); ++i) {
      if (missing[i])
        *response->add_missing_blob_digests() =
            request->blob_digests(static_cast<int>(i));
    }
    return grpc::Status::OK;
  }

  grpc::Status BatchUpdateBlobs(
      grpc::ServerContext* context,
      const reapi::BatchUpdateBlobsRequest* request,
      reapi::BatchUpdateBlobsResponse* response) override {
    absl::Status admitted = shared_->AdmitOrSubmitter(
        *context, Role::kCacheWrite, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    for (const auto& blob : request->requests()) {
      auto* answer = response->add_responses();
      *answer->mutable_digest() = blob.digest();
      absl::Status stored = Store(blob);
      *answer->mutable_status() = RpcStatus(stored);
    }
    return grpc::Status::OK;
  }

  grpc::Status BatchReadBlobs(
      grpc::ServerContext* context, const reapi::BatchReadBlobsRequest* request,
      reapi::BatchReadBlobsResponse* response) override {
    absl::Status admitted =
        shared_->Admit(*context, Role::kCacheRead, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    std::vector<BlobDigest> digests;
    int64_t total = 0;
    for (const reapi::Digest& digest : request->digests()) {
      auto parsed = ParseDigest(digest);
      if (!parsed.ok()) return Fail(parsed.status());
      digests.push_back(*parsed);
      total += parsed->size;
    }
    if (total > kMaxBatchTotalBytes) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "batch read asks for ", total, " bytes, over the ",
          kMaxBatchTotalBytes,
          " bytes a batch may carry (Capabilities); read large blobs with "
          "ByteStream")));
    }
    for (size_t i = 0; i < digests.size(); ++i) {
      auto* answer = response->add_responses();
      *answer->mutable_digest() = request->digests(static_cast<int>(i));
      auto content = shared_->cache->ReadBlob(digests[i]);
      if (!content.ok()) {
        *answer->mutable_status() = RpcStatus(content.status());
      } else if (!content->has_value()) {
        *answer->mutable_status() = RpcStatus(absl::NotFoundError(absl::StrCat(
            "blob ", digests[i].ToString(), " is not in the cache")));
      } else {
        *answer->mutable_data() = std::move(**content);
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status GetTree(
      grpc::ServerContext* context, const reapi::GetTreeRequest* request,
      grpc::ServerWriter<reapi::GetTreeResponse>* writer) override {
    absl::Status admitted =
        shared_->Admit(*context, Role::kCacheRead, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    auto root = ParseDigest(request->root_digest());
    if (!root.ok()) return Fail(root.status());
    int64_t skip = 0;
    if (!request->page_token().empty() &&
        (!absl::SimpleAtoi(request->page_token(), &skip) || skip < 0)) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "page token \"", LogSafe(request->page_token().substr(0, 40)),
          "\" is not one this server gave")));
    }
    const int page = request->page_size() > 0
                         ? std::min(request->page_size(), kMaxTreePage)
                         : kMaxTreePage;
    // Breadth first from the root, each directory once; a directory that is
    // missing is left out with what is under it (the spec's partial tree).
    std::deque<BlobDigest> queue{*root};
    absl::flat_hash_set<std::string> seen{root->ToString()};
    int64_t index = 0;
    reapi::GetTreeResponse response;
    bool root_found = false;
    while (!queue.empty()) {
      const BlobDigest digest = queue.front();
      queue.pop_front();
      auto content = shared_->cache->ReadBlob(digest);
      if (!content.ok()) return Fail(content.status());
      if (!content->has_value()) continue;
      if (digest == *root) root_found = true;
      reapi::Directory directory;
      if (!directory.ParseFromString(**content)) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "blob ", digest.ToString(), " is not a Directory message")));
      }
      if (absl::Status checked = CheckDirectory(directory); !checked.ok()) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "directory ", digest.ToString(), ": ", checked.message())));
      }
      for (const auto& sub : directory.directories()) {
        auto child = ParseDigest(sub.digest());
        if (child.ok() && seen.insert(child->ToString()).second)
          queue.push_back(*child);
      }
      if (index++ < skip) continue;
      *response.add_directories() = std::move(directory);
      if (response.directories_size() == page) {
        if (!queue.empty()) response.set_next_page_token(absl::StrCat(index));
        writer->Write(response);
        return grpc::Status::OK;
      }
    }
    if (!root_found) {
      return Fail(absl::NotFoundError(absl::StrCat(
          "root directory ", root->ToString(), " is not in the cache")));
    }
    writer->Write(response);
    return grpc::Status::OK;
  }

 private:
  absl::Status Store(const reapi::BatchUpdateBlobsRequest::Request& blob) {
    auto digest = ParseDigest(blob.digest());
    if (!digest.ok()) return digest.status();
    if (static_cast<int64_t>(blob.data().size()) != digest->size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "blob ", digest->ToString(), " came with ", blob.data().size(),
          " bytes, not the digest's ", digest->size, "; nothing stored"));
    }
    return shared_->cache->PutBlob(*digest, blob.data());
  }

  const Shared* shared_;
};

class ReapiServices::ActionCache final : public reapi::ActionCache::Service {
 public:
  explicit ActionCache(const Shared* shared) : shared_(shared) {}

  grpc::Status GetActionResult(grpc::ServerContext* context,
                               const reapi::GetActionResultRequest* request,
                               reapi::ActionResult* response) override {
    absl::Status admitted =
        shared_->Admit(*context, Role::kCacheRead, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    auto action = ParseDigest(request->action_digest());
    if (!action.ok()) return Fail(action.status());
    auto result = shared_->cache->GetActionResult(*action);
    if (!result.ok()) return Fail(result.status());
    if (!result->has_value()) {
      return Fail(absl::NotFoundError(absl::StrCat(
          "no result for action ", action->ToString(), " in the cache")));
    }
    *response = std::move(**result);
    return grpc::Status::OK;
  }

  grpc::Status UpdateActionResult(
      grpc::ServerContext* context,
      const reapi::UpdateActionResultRequest* request,
      reapi::ActionResult* response) override {
    absl::Status admitted =
        shared_->Admit(*context, Role::kCacheWrite, request->instance_name());
    if (!admitted.ok()) return Fail(admitted);
    auto action = ParseDigest(request->action_digest());
    if (!action.ok()) return Fail(action.status());
    if (absl::Status checked = CheckActionResult(request->action_result());
        !checked.ok())
      return Fail(checked);
    absl::Status stored =
        shared_->cache->PutActionResult(*action, request->action_result());
    if (!stored.ok()) return Fail(stored);
    *response = request->action_result();
    return grpc::Status::OK;
  }

 private:
  static absl::Status CheckActionResult(const reapi::ActionResult& result) {
    auto check = [](const reapi::Digest& digest,
                    absl::string_view what) -> absl::Status {
      auto parsed = ParseDigest(digest);
      if (parsed.ok()) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrCat(
          "action result's ", what, ": ", parsed.status().message()));
    };
    for (const auto& file : result.output_files()) {
      if (absl::Status s = check(file.digest(), "output file"); !s.ok())
        return s;
    }
    for (const auto& dir : result.output_directories()) {
      if (absl::Status s = check(dir.tree_digest(), "output directory");
          !s.ok())
        return s;
    }
    if (result.has_stdout_digest()) {
      if (absl::Status s = check(result.stdout_digest(), "stdout"); !s.ok())
        return s;
    }
    if (result.has_stderr_digest()) {
      if (absl::Status s = check(result.stderr_digest(), "stderr"); !s.ok())
        return s;
    }
    return absl::OkStatus();
  }

  const Shared* shared_;
};

class ReapiServices::ByteStream final : public bytestream::ByteStream::Service {
 public:
  explicit ByteStream(const Shared* shared) : shared_(shared) {}

  grpc::Status Read(
      grpc::ServerContext* context, const bytestream::ReadRequest* request,
      grpc::ServerWriter<bytestream::ReadResponse>* writer) override {
    auto name = ParseReadResourceName(request->resource_name());
    if (!name.ok()) return Fail(name.status());
    absl::Status admitted =
        shared_->Admit(*context, Role::kCacheRead, name->instance);
    if (!admitted.ok()) return Fail(admitted);
    bytestream::ReadResponse response;
    absl::Status read = shared_->cache->StreamBlob(
        name->digest, request->read_offset(), request->read_limit(),
        [&](absl::string_view bytes) {
          response.mutable_data()->assign(bytes.data(), bytes.size());
          return writer->Write(response);
        });
    return Fail(read);
  }

  grpc::Status Write(grpc::ServerContext* context,
                     grpc::ServerReader<bytestream::WriteRequest>* reader,
                     bytestream::WriteResponse* response) override {
    bytestream::WriteRequest request;
    if (!reader->Read(&request)) {
      return Fail(absl::InvalidArgumentError(
          "write stream ended before its first message"));
    }
    auto name = ParseWriteResourceName(request.resource_name());
    if (!name.ok()) return Fail(name.status());
    absl::Status admitted =
        shared_->AdmitOrSubmitter(*context, Role::kCacheWrite, name->instance);
    if (!admitted.ok()) return Fail(admitted);
    const BlobDigest digest = name->digest;
    const std::string resource_name = request.resource_name();
    // Already here (or empty): the bytes are read and dropped.
    const bool present = !shared_->cache->FindMissingBlobs({&digest, 1})[0];
    std::unique_ptr<ResultCache::BlobWriter> blob;
    if (!present) {
      auto started = shared_->cache->StartBlobWrite(digest);
      if (!started.ok()) return Fail(started.status());
      blob = *std::move(started);
    }
    int64_t received = 0;
    while (true) {
      if (request.write_offset() != received) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "write of blob ", digest.ToString(), " at offset ",
            request.write_offset(), ", but ", received,
            " bytes are committed; resume from there (QueryWriteStatus)")));
      }
      if (!request.resource_name().empty() &&
          request.resource_name() != resource_name) {
        return Fail(absl::InvalidArgumentError(
            "write stream changed its resource name midway"));
      }
      if (static_cast<int64_t>(request.data().size()) >
          digest.size - received) {
        return Fail(absl::InvalidArgumentError(
            absl::StrCat("upload of blob ", digest.ToString(),
                         " sent more than its ", digest.size, " bytes")));
      }
      if (blob != nullptr) {
        absl::Status appended = blob->Append(request.data());
        if (!appended.ok()) return Fail(appended);
      }
      received += static_cast<int64_t>(request.data().size());
      if (request.finish_write()) break;
      if (!reader->Read(&request)) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "upload of blob ", digest.ToString(), " ended after ", received,
            " of its ", digest.size,
            " bytes without finish_write; nothing stored, upload it again")));
      }
    }
    if (received != digest.size) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "upload of blob ", digest.ToString(), " finished after ", received,
          " of its ", digest.size, " bytes; nothing stored")));
    }
    if (blob != nullptr) {
      absl::Status finished = blob->Finish();
      if (!finished.ok()) return Fail(finished);
    }
    response->set_committed_size(digest.size);
    return grpc::Status::OK;
  }

  grpc::Status QueryWriteStatus(
      grpc::ServerContext* context,
      const bytestream::QueryWriteStatusRequest* request,
      bytestream::QueryWriteStatusResponse* response) override {
    auto name = ParseWriteResourceName(request->resource_name());
    if (!name.ok()) return Fail(name.status());
    absl::Status admitted =
        shared_->AdmitOrSubmitter(*context, Role::kCacheWrite, name->instance);
    if (!admitted.ok()) return Fail(admitted);
    // Uploads are not resumed: an unfinished one starts again from 0.
    const bool present =
        !shared_->cache->FindMissingBlobs({&name->digest, 1})[0];
    response->set_committed_size(present ? name->digest.size : 0);
    response->set_complete(present);
    return grpc::Status::OK;
  }

 private:
  const Shared* shared_;
};

ReapiServices::ReapiServices(ResultCache* cache, const TokenAuthority* auth,
                             ReapiOptions options)
    : shared_(
          new Shared{cache, TokenAuthority(), nullptr, std::move(options)}) {
  shared_->auth = auth != nullptr ? auth : &shared_->open;
  capabilities_ = std::make_unique<Capabilities>(shared_.get());
  cas_ = std::make_unique<Cas>(shared_.get());
  action_cache_ = std::make_unique<ActionCache>(shared_.get());
  byte_stream_ = std::make_unique<ByteStream>(shared_.get());
}

ReapiServices::~ReapiServices() = default;

void ReapiServices::Register(grpc::ServerBuilder& builder) {
  builder.RegisterService(capabilities_.get());
  builder.RegisterService(cas_.get());
  builder.RegisterService(action_cache_.get());
  builder.RegisterService(byte_stream_.get());
}

}  // namespace testfleet
