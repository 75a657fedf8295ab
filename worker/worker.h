#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/cache_client.h"
#include "cache/result_cache.h"
#include "common/file_digester.h"
#include "grpcpp/channel.h"
#include "testfleet/v1/services.grpc.pb.h"
#include "worker/process_launcher.h"
#include "worker/result_spool.h"
#include "worker/sandbox.h"

namespace testfleet {

struct WorkerConfig {
  std::string name = "worker";
  int slots = 1;
  std::string workspace = ".";  // where a suite's relative paths resolve
  std::string platform_tag;
  std::string coordinator_address;  // for messages
  /// Exit after this long with no work and nothing running; nullopt: never.
  std::optional<absl::Duration> exit_when_idle;
  absl::Duration pull_wait = absl::Seconds(2);  // long-poll budget
  /// How long passing results gather before one report: reports cost the
  /// coordinator per call, and a quarter second is still live progress.
  absl::Duration report_interval = absl::Milliseconds(250);
  absl::Duration sample_interval = absl::Milliseconds(100);
  size_t tail_bytes = 64 * 1024;
  /// How long a stopping worker keeps trying to deliver; what is left stays
  /// in the spool for the next worker started on it.
  absl::Duration final_delivery_timeout = absl::Seconds(30);
  /// Stop pulling work after this many tests (0: never), finish what is
  /// held and exit: a CI job's worker that must end.
  int64_t max_tests = 0;
  /// Fleet key: cache entries are signed with it, and unsigned or forged
  /// ones are misses. Empty: entries are neither signed nor checked.
  std::string cache_signing_key;
  /// Sandboxed workers: leave the sandboxes of failed tests in place.
  bool keep_failed_sandboxes = false;
};

/// A worker: registers with the coordinator, pulls shards for its free slots,
/// runs each test (or answers it from the cache), writes results to the
/// cache and reports them. One thread per slot, one reporter batching
/// results, one heartbeat renewing leases.
///
///   Worker worker(config, MakeChannel("coord:7070"), local_cache.get());
///   absl::Status status = worker.Run();  // until Stop() or idle
/// What a worker is doing, for its metrics.
struct WorkerStats {
  int slots = 0;
  int busy_slots = 0;
  int running_tests = 0;
  std::map<v1::TestStatus, int64_t> finished;  // tests done, by status
  int64_t cached = 0;                          // of them, from the cache
  int64_t spooled_bytes = 0;  // results waiting for the coordinator
};

class Worker {
 public:
  /// `local_cache` (not owned, may be null) is the first cache tier; the
  /// coordinator's registration answer names the shared one. Results the
  /// coordinator cannot take wait in `spool`, or in memory without one (an
  /// embedded coordinator is never unreachable). With `sandboxes` (not
  /// owned) each test runs in a sandbox made from its input tree, and
  /// `config.workspace` is not used.
  Worker(WorkerConfig config, std::shared_ptr<grpc::Channel> coordinator,
         ResultCache* local_cache, std::unique_ptr<ResultSpool> spool = nullptr,
         SandboxMaker* sandboxes = nullptr);
  ~Worker();

  /// Runs until Stop() or the idle limit; then finishes the running shards,
  /// delivers every result (or leaves it in the spool after
  /// `final_delivery_timeout`) and returns.
  absl::Status Run();
  /// Asks Run to return (safe from any thread, not from a signal handler).
  void Stop();
  WorkerStats Stats();

 private:
  struct ActiveShard {
    v1::Shard shard;
    std::atomic<bool> cancelled{false};
  };
  struct PendingReport {
    v1::ReportedResult reported;
    std::shared_ptr<ActiveShard> shard;  // cancelled: nothing is cached
    std::optional<std::pair<std::string, v1::CachedResult>> cache_entry;
  };

  absl::Status Register();
  // Per slot: its number and its launcher, started on first use.
  struct Slot {
    int index = 0;
    std::unique_ptr<ProcessLauncher> launcher;
  };
  void SlotLoop(int index);
  void RunShard(const std::shared_ptr<ActiveShard>& active, Slot& slot);
  // Marks the shards of these leases cancelled: their slots stop them.
  void MarkCancelled(
      const google::protobuf::RepeatedPtrField<std::string>& lease_ids)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::TestResult RunOne(const v1::TestAssignment& assignment,
                        const std::string& key, ActiveShard& active,
                        Slot& slot);
  // Checks the test's inputs in the workspace: an error message, or "".
  std::string CheckWorkspaceInputs(const v1::TestSpec& spec);
  void ReporterLoop();
  // Sends one batch, in parts when it is large; OK once the coordinator
  // has all of it durably.
  absl::Status Deliver(v1::ReportResultsRequest& batch);
  absl::Status DeliverPart(const v1::ReportResultsRequest& part);
  // Sends spooled batches, oldest first, until one fails.
  absl::Status DeliverSpooled();
  void HeartbeatLoop();
  // A relative input or cwd that leads outside the workspace through a
  // symbolic link: PERMISSION_DENIED naming it.
  absl::Status CheckInWorkspace(const std::string& path) const;

  const WorkerConfig config_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Coordinator::Stub> stub_;
  ResultCache* const local_cache_;
  SandboxMaker* const sandboxes_;
  CasClient cas_;  // the coordinator's: outputs go there
  FileDigester digester_;
  v1::Platform platform_;
  // The workspace with its links resolved ("" when it does not resolve).
  const std::string real_workspace_;

  std::unique_ptr<CacheClient> local_client_;
  std::unique_ptr<CacheClient> shared_client_;
  std::unique_ptr<CacheClient> cache_;  // the tiers together, maybe signed

  absl::Mutex mu_;
  absl::CondVar changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool reporter_done_ ABSL_GUARDED_BY(mu_) = false;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  int64_t lease_ms_ ABSL_GUARDED_BY(mu_) = 30000;
  int busy_slots_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<ActiveShard>> queued_ ABSL_GUARDED_BY(mu_);
  // The long poll in flight, so Stop can cancel it rather than wait it out.
  grpc::ClientContext* pull_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::map<std::string, std::shared_ptr<ActiveShard>> active_
      ABSL_GUARDED_BY(mu_);
  std::vector<PendingReport> pending_ ABSL_GUARDED_BY(mu_);
  // A failure is pending: report it without gathering more.
  bool failure_pending_ ABSL_GUARDED_BY(mu_) = false;
  // What the coordinator advises for its fleet's size (see
  // RegisterWorkerResponse.report_interval_ms); the longer one is used.
  absl::Duration advised_report_interval_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ResultSpool> spool_;  // the reporter's alone
  std::atomic<int> running_tests_{0};
  std::map<v1::TestStatus, int64_t> finished_ ABSL_GUARDED_BY(mu_);
  int64_t cached_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t tests_done_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int64_t> spooled_bytes_{0};
};

}  // namespace testfleet
