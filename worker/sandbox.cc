#include "worker/sandbox.h"

#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

namespace fs = std::filesystem;

// Pristine sandboxes kept for reuse, in all.
constexpr int kMaxIdle = 8;
// Directory blobs kept between tests.
constexpr int64_t kDirectoryMemoBytes = 64 << 20;
// What one test may leave as outputs.
constexpr int64_t kMaxOutputBytes = 4LL << 30;

bool Under(const std::string& path, const std::string& folder) {
  return folder == "/" || path == folder ||
         absl::StartsWith(path, folder + "/");
}

// Folders every program needs from the worker itself: the system's, except
// where projects and CI workspaces commonly live inside them.
bool Reserved(const std::string& path) {
  static const char* const kSystem[] = {
      "/bin",    "/boot", "/dev", "/etc",  "/lib", "/lib32", "/lib64",
      "/libx32", "/proc", "/run", "/sbin", "/sys", "/usr",   "/var"};
  static const char* const kProjects[] = {"/usr/src", "/usr/local/src",
                                          "/var/lib", "/var/tmp"};
  if (path == "/" || path == "/tmp") return true;
  for (const char* project : kProjects) {
    if (path != project && Under(path, project)) return false;
  }
  for (const char* system : kSystem) {
    if (Under(path, system)) return true;
  }
  return false;
}

absl::Status MakeFolder(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot make ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Removes a folder a test may have taken the write bits off.
void RemoveTree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!ec) return;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec))
      chmod(it->path().c_str(), 0700);
  }
  fs::remove_all(dir, ec);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SandboxRoots(
    const v1::TestSpec& spec) {
  const std::string& exec_root = spec.exec_root();
  if (exec_root.empty() || exec_root[0] != '/' || !IsNormalPath(exec_root)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the test's folder \"", exec_root, "\" is not an absolute path"));
  }
  std::set<std::string> candidates = {exec_root};
  const std::string cwd = ResolveIn(exec_root, spec.cwd());
  if (!Under(cwd, exec_root)) candidates.insert(cwd);
  for (const v1::InputDigest& input : spec.inputs()) {
    const std::string path = ResolveIn(exec_root, input.path());
    if (!Under(path, exec_root))
      candidates.insert(fs::path(path).parent_path().string());
  }
  std::vector<std::string> roots;
  for (const std::string& candidate : candidates) {  // parents sort first
    if (!roots.empty() && Under(candidate, roots.back())) continue;
    if (Reserved(candidate)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the test needs its own ", candidate,
          ", which would hide the worker's system files from it; keep "
          "inputs and working directories in project folders"));
    }
    roots.push_back(candidate);
  }
  return roots;
}

Sandbox::~Sandbox() {
  if (kept_) return;
  if (maker_ != nullptr) {
    maker_->Discard(dir_);
  } else {
    RemoveTree(dir_);
  }
}

SandboxMaker::SandboxMaker(std::string dir, FileCache* files,
                           std::shared_ptr<grpc::Channel> cas)
    : dir_(std::move(dir)),
      files_(files),
      cas_(std::move(cas)),
      remover_([this] { RemoverLoop(); }) {}

bool Sandbox::Pristine() const { return Stamps() == made_; }

std::map<std::string, Sandbox::Stamp> Sandbox::Stamps() const {
  std::map<std::string, Stamp> stamps;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir_, ec), end; !ec && it != end;
       it.increment(ec)) {
    struct stat st {};
    if (lstat(it->path().c_str(), &st) != 0) continue;
    Stamp& stamp = stamps[it->path().string()];
    stamp.inode = st.st_ino;
    stamp.size = S_ISDIR(st.st_mode) ? 0 : st.st_size;
    stamp.mode = st.st_mode;
    stamp.mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (S_ISDIR(st.st_mode))
      stamp.ctime_ns = st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
  }
  if (ec) stamps["?"] = Stamp();  // unreadable: never pristine
  return stamps;
}

SandboxMaker::~SandboxMaker() {
  std::map<std::string, std::vector<std::unique_ptr<Sandbox>>> idle;
  {
    absl::MutexLock lock(&mu_);
    idle.swap(idle_);
  }
  idle.clear();  // discarded: the remover takes them
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  remover_.join();
}

void SandboxMaker::Finish(std::unique_ptr<Sandbox> sandbox) {
  if (sandbox == nullptr || sandbox->kept_ || !sandbox->Pristine()) return;
  std::unique_ptr<Sandbox> evicted;  // removed once the lock is released
  absl::MutexLock lock(&mu_);
  if (idle_count_ >= kMaxIdle) {
    // Room for this one: the oldest of the fullest key goes.
    auto fullest = idle_.begin();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->second.size() > fullest->second.size()) fullest = it;
    }
    evicted = std::move(fullest->second.front());
    fullest->second.erase(fullest->second.begin());
    if (fullest->second.empty()) idle_.erase(fullest);
    --idle_count_;
  }
  idle_[sandbox->reuse_key_].push_back(std::move(sandbox));
  ++idle_count_;
}

int SandboxMaker::idle() {
  absl::MutexLock lock(&mu_);
  return idle_count_;
}

void SandboxMaker::Discard(const std::string& dir) {
  absl::MutexLock lock(&mu_);
  discarded_.push_back(dir);
}

int SandboxMaker::pending_removals() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(discarded_.size()) + removing_;
}

void SandboxMaker::RemoverLoop() {
  while (true) {
    std::vector<std::string> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !discarded_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (discarded_.empty()) return;  // stopping, nothing left
      batch.swap(discarded_);
      removing_ = static_cast<int>(batch.size());
    }
    for (const std::string& dir : batch) RemoveTree(dir);
    absl::MutexLock lock(&mu_);
    removing_ = 0;
  }
}

absl::Status SandboxMaker::Clean() {
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end;
       it.increment(ec)) {
    RemoveTree(it->path().string());
  }
  return MakeFolder(dir_);
}

absl::StatusOr<std::vector<std::string>> SandboxMaker::FetchDirectories(
    const std::vector<BlobDigest>& digests) {
  std::vector<std::string> out(digests.size());
  std::vector<BlobDigest> missing;
  std::vector<size_t> missing_at;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < digests.size(); ++i) {
      auto it = directories_.find(digests[i].ToString());
      if (it != directories_.end()) {
        out[i] = it->second;
      } else {
        missing.push_back(digests[i]);
        missing_at.push_back(i);
      }
    }
  }
  if (missing.empty()) return out;
  ASSIGN_OR_RETURN(std::vector<std::string> fetched, cas_.ReadBlobs(missing));
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < missing.size(); ++i) {
    if (directory_bytes_ > kDirectoryMemoBytes) {
      directories_.clear();
      directory_bytes_ = 0;
    }
    directory_bytes_ += static_cast<int64_t>(fetched[i].size());
    directories_[missing[i].ToString()] = fetched[i];
    out[missing_at[i]] = std::move(fetched[i]);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Sandbox>> SandboxMaker::Make(
    const v1::TestSpec& spec) {
  // Everything the sandbox's making depends on.
  Sha256Hasher key;
  for (const std::string* part :
       {&spec.input_root(), &spec.exec_root(), &spec.cwd(), &spec.argv(0)}) {
    key.Update(*part);
    key.Update(absl::string_view("\0", 1));
  }
  for (const v1::InputDigest& input : spec.inputs()) {
    key.Update(input.path());
    key.Update(absl::string_view("\0", 1));
    key.Update(input.sha256());
  }
  const std::string reuse_key = key.FinishHex();
  {
    absl::MutexLock lock(&mu_);
    auto it = idle_.find(reuse_key);
    if (it != idle_.end()) {
      std::unique_ptr<Sandbox> reused = std::move(it->second.back());
      it->second.pop_back();
      if (it->second.empty()) idle_.erase(it);
      --idle_count_;
      return reused;
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> roots, SandboxRoots(spec));
  absl::StatusOr<BlobDigest> root = ParseDigestString(spec.input_root());
  if (!root.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input root \"", spec.input_root(),
                     "\" is not HASH/SIZE: ", root.status().message()));
  }
  ASSIGN_OR_RETURN(
      FlatTree tree,
      FlattenTree(*root, [this](const std::vector<BlobDigest>& digests) {
        return FetchDirectories(digests);
      }));

  // The tree must be what the key describes: the declared inputs, with
  // their digests, plus the program.
  const std::string exec_root = spec.exec_root();
  const std::string cwd = ResolveIn(exec_root, spec.cwd());
  absl::flat_hash_map<std::string, const TreeFile*> in_tree;
  for (const TreeFile& file : tree.files) in_tree[file.path] = &file;
  absl::flat_hash_set<std::string> declared;
  for (const v1::InputDigest& input : spec.inputs()) {
    const std::string path = ResolveIn(exec_root, input.path());
    auto it = in_tree.find(path);
    ASSIGN_OR_RETURN(BlobDigest digest,
                     DigestOfInput(input.sha256(), input.size_bytes()));
    if (it == in_tree.end() || !(it->second->digest == digest)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input ", input.path(), " is not in the test's input tree ",
          spec.input_root(), " as submitted; submit the suite again"));
    }
    declared.insert(path);
  }
  const std::string& program = spec.argv(0);
  if (program.find('/') != std::string::npos)
    declared.insert(ResolveIn(cwd, program));
  for (const TreeFile& file : tree.files) {
    if (!declared.count(file.path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the input tree ", spec.input_root(), " holds ",
                       file.path, ", which the test does not declare"));
    }
    bool covered = false;
    for (const std::string& folder : roots) covered |= Under(file.path, folder);
    if (!covered) {
      return absl::InvalidArgumentError(
          absl::StrCat("the input tree holds ", file.path,
                       ", outside the test's folders (", exec_root, ")"));
    }
  }

  std::string dir;
  {
    absl::MutexLock lock(&mu_);
    dir = absl::StrCat(dir_, "/", ++made_);
  }
  // From here on the folder goes with the sandbox, made or not.
  std::error_code ec;
  fs::remove_all(dir, ec);
  auto sandbox = std::make_unique<Sandbox>(dir, tree.files, this);
  Isolation& isolation = sandbox->isolation_;
  RETURN_IF_ERROR(MakeFolder(dir + "/stage/root"));
  RETURN_IF_ERROR(MakeFolder(sandbox->HostPath(cwd)));
  for (const std::string& folder : roots) {
    RETURN_IF_ERROR(MakeFolder(sandbox->HostPath(folder)));
    isolation.binds.push_back({sandbox->HostPath(folder), folder});
  }
  for (const std::string& folder : tree.folders) {
    bool covered = false;
    for (const std::string& root_folder : roots)
      covered |= Under(folder, root_folder);
    if (covered) RETURN_IF_ERROR(MakeFolder(sandbox->HostPath(folder)));
  }
  ASSIGN_OR_RETURN(FileCache::Pin pin, files_->Fetch(tree.files, cas_));
  for (const TreeFile& file : tree.files) {
    const std::string from = files_->PathOf(file);
    const std::string to = sandbox->HostPath(file.path);
    if (link(from.c_str(), to.c_str()) == 0) continue;
    // Another file system, or the inode's link limit: a copy then.
    std::error_code copied;
    fs::copy_file(from, to, copied);
    if (copied) {
      return absl::InternalError(absl::StrCat(
          "cannot link or copy ", from, " to ", to, ": ", copied.message()));
    }
  }
  sandbox->reuse_key_ = reuse_key;
  sandbox->made_ = sandbox->Stamps();
  return sandbox;
}

absl::StatusOr<std::vector<v1::OutputFile>> CollectOutputs(
    const std::string& cwd, const std::vector<std::string>& patterns,
    const std::string& confine, CasClient& cas) {
  const absl::StatusOr<std::string> real_confine = ResolvePath(confine);
  if (!real_confine.ok()) return real_confine.status();
  std::set<std::string> paths;  // relative to cwd
  for (const std::string& pattern : patterns) {
    glob_t matches{};
    const std::string full = cwd + "/" + pattern;
    if (glob(full.c_str(), GLOB_NOSORT, nullptr, &matches) == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) {
        const fs::path match = matches.gl_pathv[i];
        std::error_code ec;
        if (fs::is_symlink(match, ec)) continue;  // may lead anywhere
        if (fs::is_directory(match, ec)) {
          for (fs::recursive_directory_iterator it(match, ec), end;
               !ec && it != end; it.increment(ec)) {
            if (it->is_regular_file(ec) && !it->is_symlink(ec))
              paths.insert(it->path().lexically_relative(cwd).string());
          }
        } else if (fs::is_regular_file(match, ec)) {
          paths.insert(match.lexically_relative(cwd).string());
        }
      }
    }
    globfree(&matches);
  }
  std::vector<v1::OutputFile> outputs;
  std::vector<BlobSource> sources;
  int64_t total = 0;
  for (const std::string& path : paths) {
    if (path.empty() || absl::StartsWith(path, "..")) continue;
    const std::string full = cwd + "/" + path;
    absl::StatusOr<std::optional<std::string>> outside =
        RealPathOutside(*real_confine, full);
    if (!outside.ok() || outside->has_value()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "output ", path, " leads outside the test's folder; refused"));
    }
    struct stat st {};
    if (stat(full.c_str(), &st) != 0) continue;
    total += st.st_size;
    if (total > kMaxOutputBytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the test's outputs exceed ", kMaxOutputBytes >> 30,
                       " GiB; declare fewer"));
    }
    ASSIGN_OR_RETURN(std::string sha256, Sha256FileHex(full));
    ASSIGN_OR_RETURN(BlobDigest digest, DigestOfInput(sha256, st.st_size));
    v1::OutputFile& output = outputs.emplace_back();
    output.set_path(path);
    output.set_sha256(sha256);
    output.set_size_bytes(st.st_size);
    output.set_executable((st.st_mode & S_IXUSR) != 0);
    sources.push_back({digest, full, ""});
  }
  RETURN_IF_ERROR(cas.UploadMissing(sources).status());
  return outputs;
}

}  // namespace testfleet
