#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache/cas_client.h"
#include "cache/input_tree.h"
#include "testfleet/v1/testfleet.pb.h"
#include "worker/file_cache.h"
#include "worker/isolation.h"

namespace testfleet {

/// The folders of the test's own view that its sandbox covers: the
/// submitter's suite folder (exec_root) and, for each input or working
/// directory outside it, that folder; none inside another. An error when
/// one would hide what every program needs ("/", /usr, /proc, ...).
absl::StatusOr<std::vector<std::string>> SandboxRoots(const v1::TestSpec& spec);

/// One test's sandbox on the worker: `dir`/root mirrors the test's view of
/// "/" for the folders the test owns (SandboxRoots), its input files hard
/// linked from the file cache; its /tmp is a tmpfs of its own. Removed when
/// destroyed unless kept: by its maker's remover thread, off the test's path.
class SandboxMaker;
class Sandbox {
 public:
  Sandbox(std::string dir, std::vector<TreeFile> files, SandboxMaker* maker)
      : dir_(std::move(dir)), files_(std::move(files)), maker_(maker) {
    isolation_.stage = dir_ + "/stage";
  }
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  /// Where the worker finds what the test sees at `absolute`.
  std::string HostPath(const std::string& absolute) const {
    return dir_ + "/root" + absolute;
  }
  const Isolation& isolation() const { return isolation_; }
  const std::vector<TreeFile>& files() const { return files_; }
  const std::string& dir() const { return dir_; }
  /// Leaves the folder in place (for debugging a failed test).
  void Keep() { kept_ = true; }
  /// Whether nothing in the folder changed since it was made: the same
  /// entries, each with the same inode, size, mode and times (folders also
  /// their status-change time, which no test can set back).
  bool Pristine() const;

 private:
  friend class SandboxMaker;
  struct Stamp {
    uint64_t inode = 0;
    int64_t size = 0;
    uint32_t mode = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;  // folders only: links change a file's
    bool operator==(const Stamp& other) const {
      return inode == other.inode && size == other.size && mode == other.mode &&
             mtime_ns == other.mtime_ns && ctime_ns == other.ctime_ns;
    }
  };
  // Every entry below the folder, by path.
  std::map<std::string, Stamp> Stamps() const;

  const std::string dir_;
  const std::vector<TreeFile> files_;
  SandboxMaker* const maker_;
  Isolation isolation_;
  bool kept_ = false;
  std::string reuse_key_;              // what a test must be to reuse it
  std::map<std::string, Stamp> made_;  // as made
};

/// Makes sandboxes under `dir` from tests' input trees (TestSpec.input_root)
/// fetched from a REAPI CAS through `files`. Thread-safe.
class SandboxMaker {
 public:
  SandboxMaker(std::string dir, FileCache* files,
               std::shared_ptr<grpc::Channel> cas);
  /// Waits for the removal of every finished sandbox.
  ~SandboxMaker();

  /// Removes what a killed worker left under `dir`.
  absl::Status Clean();
  /// The test's sandbox. The tree must hold exactly the test's declared
  /// inputs, with their submitted digests, and its program when that is a
  /// file under its folders: a tree that says otherwise is refused, since
  /// the result is stored under a key computed from the declared inputs.
  /// A sandbox a finished test left untouched is reused by the next test
  /// of the same tree, inputs and folders (hermetic, and no folders to make
  /// and remove: on this kind of disk that is most of a sandbox's cost).
  absl::StatusOr<std::unique_ptr<Sandbox>> Make(const v1::TestSpec& spec);
  /// Takes back a passed test's sandbox: kept for reuse when pristine, else
  /// removed in the background (as any other sandbox when destroyed).
  void Finish(std::unique_ptr<Sandbox> sandbox);
  /// Sandboxes kept for reuse.
  int idle();
  CasClient& cas() { return cas_; }
  FileCache& files() { return *files_; }
  /// Sandboxes finished and not yet removed.
  int pending_removals();

 private:
  friend class Sandbox;
  // Queues a finished sandbox's folder for the remover thread.
  void Discard(const std::string& dir);
  void RemoverLoop();

  absl::StatusOr<std::vector<std::string>> FetchDirectories(
      const std::vector<BlobDigest>& digests);

  const std::string dir_;
  FileCache* const files_;
  CasClient cas_;
  absl::Mutex mu_;
  int64_t made_ ABSL_GUARDED_BY(mu_) = 0;
  // Directory blobs seen lately: the same tree comes with every test.
  absl::flat_hash_map<std::string, std::string> directories_
      ABSL_GUARDED_BY(mu_);
  int64_t directory_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> discarded_ ABSL_GUARDED_BY(mu_);
  // Pristine sandboxes by reuse key, newest last; at most kMaxIdle in all.
  std::map<std::string, std::vector<std::unique_ptr<Sandbox>>> idle_
      ABSL_GUARDED_BY(mu_);
  int idle_count_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int removing_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread remover_;
};

/// Uploads the files that `patterns` (files, globs or folders relative to
/// `cwd`, a folder of the worker's) name, and lists them with their paths
/// relative to `cwd`. A pattern that matches nothing is not an error: a
/// failed test may not have written its report. Only files whose real path
/// lies inside `confine` (the sandbox, or the workspace) are taken: a test
/// that swapped a folder for a link to the worker's files gets none.
absl::StatusOr<std::vector<v1::OutputFile>> CollectOutputs(
    const std::string& cwd, const std::vector<std::string>& patterns,
    const std::string& confine, CasClient& cas);

}  // namespace testfleet
