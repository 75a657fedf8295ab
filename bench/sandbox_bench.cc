// Materializing a test's sandbox from a REAPI store (bench/run_sandbox.py
// starts the server and times cp -r / cp -al of the same tree beside it).
// Prints one JSON object.
//   sandbox_bench --cas=HOST:PORT --tree=DIR --work=DIR [--rounds=5]
#include <cstdio>
#include <filesystem>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cache/input_tree.h"
#include "common/digest.h"
#include "common/grpc_util.h"
#include "nlohmann/json.hpp"
#include "worker/sandbox.h"

namespace testfleet {
namespace {

namespace fs = std::filesystem;

template <typename T>
T Check(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "sandbox_bench: %s\n",
                 value.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(value);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The tree as one test's inputs, under /bench-tree; uploaded.
v1::TestSpec UploadTree(const std::string& tree, CasClient& cas) {
  v1::TestSpec spec;
  spec.set_id("materialize");
  spec.add_argv("true");
  spec.set_exec_root("/bench-tree");
  std::vector<TreeFile> files;
  std::vector<BlobSource> blobs;
  for (const auto& entry : fs::recursive_directory_iterator(tree)) {
    if (!entry.is_regular_file()) continue;
    const std::string relative = fs::relative(entry.path(), tree).string();
    const std::string sha = Check(Sha256FileHex(entry.path().string()));
    const BlobDigest digest =
        Check(DigestOfInput(sha, static_cast<int64_t>(entry.file_size())));
    v1::InputDigest* input = spec.add_inputs();
    input->set_path(relative);
    input->set_sha256(sha);
    input->set_size_bytes(digest.size);
    files.push_back({"/bench-tree/" + relative, digest, false});
    blobs.push_back({digest, entry.path().string(), ""});
  }
  InputTreeBuilder builder;
  spec.set_input_root(Check(builder.Add(files, {"/bench-tree"})).ToString());
  for (const auto& [name, bytes] : builder.directories())
    blobs.push_back({BlobDigest::Of(bytes), "", bytes});
  Check(cas.UploadMissing(blobs));
  return spec;
}

}  // namespace
}  // namespace testfleet

int main(int argc, char** argv) {
  using namespace testfleet;
  CLI::App app{"sandbox materialization benchmark"};
  std::string address, tree, work;
  int rounds = 5;
  app.add_option("--cas", address)->required();
  app.add_option("--tree", tree)->required();
  app.add_option("--work", work)->required();
  app.add_option("--rounds", rounds);
  CLI11_PARSE(app, argc, argv);
  auto channel = MakeChannel(address);
  CasClient cas(channel);
  const v1::TestSpec spec = UploadTree(tree, cas);
  std::vector<double> cold, warm, removal;
  // Cold: an empty file cache each round, so every file is downloaded.
  for (int round = 0; round < rounds; ++round) {
    const std::string dir = absl::StrCat(work, "/cold-", round);
    auto files = Check(FileCache::Open(dir, 64LL << 30));
    {
      SandboxMaker maker(dir + "/sandboxes", files.get(), channel);
      const absl::Time start = absl::Now();
      auto sandbox = Check(maker.Make(spec));
      cold.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    }  // the maker waits for its remover
    files.reset();
    fs::remove_all(dir);
  }
  // Warm: every file already in the cache; only folders and links made.
  auto files = Check(FileCache::Open(work + "/warm", 64LL << 30));
  SandboxMaker maker(work + "/warm/sandboxes", files.get(), channel);
  Check(maker.Make(spec)).reset();
  for (int round = 0; round < rounds; ++round) {
    const absl::Time start = absl::Now();
    auto sandbox = Check(maker.Make(spec));
    warm.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    sandbox.reset();
  }
  // How long the remover takes, off the tests' path.
  const absl::Time removing = absl::Now();
  for (int i = 0; i < 60000 && maker.pending_removals() > 0; ++i)
    absl::SleepFor(absl::Milliseconds(1));
  removal.push_back(absl::ToDoubleSeconds(absl::Now() - removing) / rounds);
  const nlohmann::json out = {{"files", spec.inputs_size()},
                              {"cold_s", cold},
                              {"warm_s", warm},
                              {"removal_s", removal},
                              {"cold_median_s", Median(cold)},
                              {"warm_median_s", Median(warm)},
                              {"removal_median_s", Median(removal)}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
