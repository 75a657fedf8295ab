// The REAPI blob store from a client's side, against a running server
// (bench/run_cas.py starts one). Each mode prints one JSON object.
//   cas_bench find-missing --cas=HOST:PORT --count=100000
//   cas_bench upload-tree  --cas=HOST:PORT --dir=DIR
//   cas_bench bytestream   --cas=HOST:PORT --file=FILE --out=FILE
//   cas_bench action-results --cas=HOST:PORT --count=N
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/cas_client.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "common/runtime.h"
#include "nlohmann/json.hpp"

namespace testfleet {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

double Seconds(absl::Time since) {
  return absl::ToDoubleSeconds(absl::Now() - since);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[std::min(
      values.size() - 1,
      static_cast<size_t>(p * static_cast<double>(values.size())))];
}

void Check(const absl::Status& status) {
  if (status.ok()) return;
  std::fprintf(stderr, "cas_bench: %s\n", status.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Check(absl::StatusOr<T> value) {
  Check(value.status());
  return *std::move(value);
}

json FindMissing(CasClient& cas, int count) {
  // `count` small blobs stored, then asked for with as many absent ones.
  std::vector<BlobSource> blobs(static_cast<size_t>(count));
  std::vector<BlobDigest> asked;
  for (int i = 0; i < count; ++i) {
    blobs[i].content = absl::StrCat("find-missing blob ", i, " ", RandomHex(8));
    blobs[i].digest = BlobDigest::Of(blobs[i].content);
    asked.push_back(blobs[i].digest);
    asked.push_back(BlobDigest::Of(absl::StrCat("absent ", i, RandomHex(8))));
  }
  Check(cas.UploadMissing(blobs));
  asked.resize(static_cast<size_t>(count));  // half present, half absent
  std::shuffle(asked.begin(), asked.end(), std::mt19937(7));
  std::vector<double> ms;
  size_t missing = 0;
  for (int round = 0; round < 5; ++round) {
    const absl::Time start = absl::Now();
    missing = Check(cas.FindMissing(asked)).size();
    ms.push_back(Seconds(start) * 1000);
  }
  return {{"digests", count},
          {"missing", missing},
          {"median_ms", Median(ms)},
          {"runs_ms", ms}};
}

json UploadTree(CasClient& cas, const std::string& dir) {
  const absl::Time start = absl::Now();
  std::vector<BlobSource> blobs;
  int64_t bytes = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    BlobSource& blob = blobs.emplace_back();
    blob.path = entry.path().string();
    blob.digest.size = static_cast<int64_t>(entry.file_size());
    const std::string hex = Check(Sha256FileHex(blob.path));
    DecodeHex(hex, blob.digest.hash.data());
    bytes += blob.digest.size;
  }
  const double hash_s = Seconds(start);
  const absl::Time upload = absl::Now();
  const int64_t sent = Check(cas.UploadMissing(blobs)).bytes;
  const double upload_s = Seconds(upload);
  // A second pass finds everything present and sends nothing.
  const absl::Time again = absl::Now();
  const int64_t resent = Check(cas.UploadMissing(blobs)).bytes;
  return {{"files", blobs.size()},
          {"bytes", bytes},
          {"sent_bytes", sent},
          {"hash_s", hash_s},
          {"upload_s", upload_s},
          {"total_s", hash_s + upload_s},
          {"second_pass_s", Seconds(again)},
          {"second_pass_sent", resent}};
}

json ByteStream(CasClient& cas, const std::string& file,
                const std::string& out) {
  BlobSource blob;
  blob.path = file;
  blob.digest.size = static_cast<int64_t>(fs::file_size(file));
  absl::Time start = absl::Now();
  DecodeHex(Check(Sha256FileHex(file)), blob.digest.hash.data());
  const double hash_s = Seconds(start);
  start = absl::Now();
  Check(cas.Write(blob));
  const double write_s = Seconds(start);
  start = absl::Now();
  Check(cas.ReadToFile(blob.digest, out));
  const double read_s = Seconds(start);
  const double mib = static_cast<double>(blob.digest.size) / (1 << 20);
  return {{"bytes", blob.digest.size},    {"hash_s", hash_s},
          {"write_s", write_s},           {"read_s", read_s},
          {"write_mib_s", mib / write_s}, {"read_mib_s", mib / read_s}};
}

json ActionResults(const std::string& address, int count) {
  auto channel = MakeChannel(address);
  auto cas = reapi::ContentAddressableStorage::NewStub(channel);
  auto ac = reapi::ActionCache::NewStub(channel);
  std::vector<BlobDigest> actions;
  for (int i = 0; i < count; ++i) {
    // Each result points at one stored output, as Bazel's do.
    const std::string output = absl::StrCat("output ", i, RandomHex(8));
    reapi::BatchUpdateBlobsRequest upload;
    auto* blob = upload.add_requests();
    *blob->mutable_digest() = BlobDigest::Of(output).ToProto();
    blob->set_data(output);
    reapi::BatchUpdateBlobsResponse uploaded;
    grpc::ClientContext upload_context;
    Check(cas->BatchUpdateBlobs(&upload_context, upload, &uploaded).ok()
              ? absl::OkStatus()
              : absl::UnavailableError("BatchUpdateBlobs failed"));
    reapi::UpdateActionResultRequest update;
    actions.push_back(BlobDigest::Of(absl::StrCat("action ", i, RandomHex(8))));
    *update.mutable_action_digest() = actions.back().ToProto();
    auto* file = update.mutable_action_result()->add_output_files();
    file->set_path("out/o.txt");
    *file->mutable_digest() = BlobDigest::Of(output).ToProto();
    update.mutable_action_result()->set_exit_code(0);
    reapi::ActionResult stored;
    grpc::ClientContext context;
    Check(ac->UpdateActionResult(&context, update, &stored).ok()
              ? absl::OkStatus()
              : absl::UnavailableError("UpdateActionResult failed"));
  }
  std::mt19937 random(11);
  std::uniform_int_distribution<int> pick(0, count - 1);
  std::vector<double> us;
  for (int i = 0; i < 10'000; ++i) {
    reapi::GetActionResultRequest request;
    *request.mutable_action_digest() = actions[pick(random)].ToProto();
    reapi::ActionResult result;
    grpc::ClientContext context;
    const absl::Time start = absl::Now();
    grpc::Status status = ac->GetActionResult(&context, request, &result);
    us.push_back(Seconds(start) * 1e6);
    if (!status.ok()) Check(absl::NotFoundError(status.error_message()));
  }
  return {{"entries", count},
          {"lookups", us.size()},
          {"p50_us", Percentile(us, 0.5)},
          {"p99_us", Percentile(us, 0.99)}};
}

}  // namespace
}  // namespace testfleet

int main(int argc, char** argv) {
  using namespace testfleet;
  KeepLargeBuffersInHeap();
  CLI::App app{"Client-side benchmarks of a REAPI blob store"};
  std::string mode, address, dir, file, out;
  int count = 100'000;
  app.add_option("mode", mode,
                 "find-missing|upload-tree|bytestream|action-results")
      ->required();
  app.add_option("--cas", address, "HOST:PORT of the REAPI server")->required();
  app.add_option("--count", count, "digests or action results");
  app.add_option("--dir", dir, "upload-tree: the folder to upload");
  app.add_option("--file", file, "bytestream: the file to write");
  app.add_option("--out", out, "bytestream: where to read it back");
  CLI11_PARSE(app, argc, argv);
  CasClient cas(MakeChannel(address));
  json result;
  if (mode == "find-missing") {
    result = FindMissing(cas, count);
  } else if (mode == "upload-tree") {
    result = UploadTree(cas, dir);
  } else if (mode == "bytestream") {
    result = ByteStream(cas, file, out);
  } else if (mode == "action-results") {
    result = ActionResults(address, count);
  } else {
    std::fprintf(stderr, "cas_bench: unknown mode %s\n", mode.c_str());
    return 2;
  }
  std::printf("%s\n", result.dump().c_str());
  return 0;
}
