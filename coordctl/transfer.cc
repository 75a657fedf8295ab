#include "coordctl/transfer.h"

#include <sys/stat.h>

#include <filesystem>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "cache/input_tree.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "report/reports.h"

namespace testfleet {

absl::StatusOr<UploadSummary> UploadInputs(LoadedSuite& suite,
                                           FileDigester& digester,
                                           CasClient& cas) {
  InputTreeBuilder builder;
  // Every file once, by where it is on this machine.
  absl::flat_hash_map<std::string, BlobSource> files;
  const std::string& root = suite.dir;
  for (v1::TestSpec& test : *suite.spec.mutable_tests()) {
    test.set_exec_root(root);
    const std::string cwd = ResolveIn(root, test.cwd());
    std::vector<TreeFile> tree;
    for (const v1::InputDigest& input : test.inputs()) {
      ASSIGN_OR_RETURN(BlobDigest digest,
                       DigestOfInput(input.sha256(), input.size_bytes()));
      tree.push_back(
          {ResolveIn(root, input.path()), digest, input.executable()});
    }
    const std::string& program = test.argv(0);
    const std::string program_path = ResolveIn(cwd, program);
    struct stat st {};
    if (program.find('/') != std::string::npos &&
        program_path.rfind(root + "/", 0) == 0 &&
        stat(program_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      ASSIGN_OR_RETURN(v1::InputDigest hashed,
                       digester.Digest(root, program_path));
      ASSIGN_OR_RETURN(BlobDigest digest,
                       DigestOfInput(hashed.sha256(), hashed.size_bytes()));
      tree.push_back({program_path, digest, hashed.executable()});
    }
    for (const TreeFile& file : tree)
      files.try_emplace(file.path, BlobSource{file.digest, file.path, ""});
    ASSIGN_OR_RETURN(BlobDigest tree_root, builder.Add(tree, {cwd}));
    test.set_input_root(tree_root.ToString());
  }
  std::vector<BlobSource> blobs;
  blobs.reserve(files.size() + builder.directories().size());
  for (auto& [path, source] : files) blobs.push_back(std::move(source));
  const size_t file_count = blobs.size();
  for (const auto& [digest, bytes] : builder.directories())
    blobs.push_back({BlobDigest::Of(bytes), "", bytes});
  UploadSummary summary;
  summary.files = static_cast<int64_t>(file_count);
  summary.directories = static_cast<int64_t>(blobs.size() - file_count);
  ASSIGN_OR_RETURN(Uploaded uploaded, cas.UploadMissing(blobs));
  summary.bytes_sent = uploaded.bytes;
  for (size_t index : uploaded.sent)
    ++(index < file_count ? summary.files_sent : summary.directories_sent);
  suite.spec.clear_blobs();
  absl::flat_hash_set<std::string> listed;
  for (const BlobSource& blob : blobs) {
    std::string name = blob.digest.ToString();
    if (listed.insert(name).second) suite.spec.add_blobs(std::move(name));
  }
  return summary;
}

absl::StatusOr<int> DownloadOutputs(const v1::SuiteReport& report,
                                    const std::string& dir, CasClient& cas) {
  int written = 0;
  for (const v1::TestResult& result : report.results()) {
    for (const v1::OutputFile& output : result.outputs()) {
      // The worker said so: it may not lead anywhere but into the folder.
      if (absl::Status inside = CheckOutputFile(output); !inside.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("test ", result.test_id(), " lists output \"",
                         output.path(), "\": ", inside.message()));
      }
      ASSIGN_OR_RETURN(BlobDigest digest,
                       DigestOfInput(output.sha256(), output.size_bytes()));
      const std::filesystem::path path = std::filesystem::path(dir) /
                                         SafeFileName(result.test_id()) /
                                         output.path();
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec) {
        return absl::PermissionDeniedError(absl::StrCat(
            "cannot make ", path.parent_path().string(), ": ", ec.message()));
      }
      RETURN_IF_ERROR(cas.ReadToFile(digest, path.string()));
      if (output.executable()) chmod(path.c_str(), 0755);
      ++written;
    }
  }
  return written;
}

}  // namespace testfleet
