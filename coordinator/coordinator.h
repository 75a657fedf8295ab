#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache/cache_client.h"
#include "cache/result_cache.h"
#include "common/clock.h"
#include "common/security.h"
#include "coordinator/fleet.h"
#include "coordinator/group_commit.h"
#include "coordinator/metrics.h"
#include "coordinator/store.h"
#include "coordinator/suite_queue.h"
#include "testfleet/v1/services.pb.h"

namespace testfleet {

struct CoordinatorOptions {
  const Clock* clock = RealClock::Get();
  /// A shard not reported or renewed within this is given back to the queue.
  absl::Duration lease = absl::Seconds(30);
  /// A worker silent this long is forgotten and its leases expire.
  absl::Duration worker_timeout = absl::Seconds(60);
  /// Looked up at submit so cached tests never reach a worker. Not owned;
  /// may be null.
  CacheClient* cache = nullptr;
  /// Where a suite's blobs (SuiteSpec.blobs) are pinned while it is queued
  /// or running: the embedded cache. Not owned; null: not pinned.
  ResultCache* blob_store = nullptr;
  /// History and reports. Not owned; may be null (nothing remembered).
  CoordinatorStore* store = nullptr;
  /// Also keep running suites in the store, so a restart resumes them (the
  /// coordinator server); off for `coordctl run`, whose suites end with it.
  bool persist_running = true;
  /// What RegisterWorker tells workers about the shared cache.
  std::string cache_endpoint;
  bool cache_service = true;
  /// Shards hold at most this many tests (each shard costs a pull, a cache
  /// lookup and their thread hand-offs: at 64, 10,000 tests of a few ms
  /// took a fifth more coordinator CPU; BENCHMARKS.md, issue 19)...
  int max_shard_tests = 256;
  /// ...and about this much expected work, shrinking toward the end of a
  /// suite so the last shards finish together.
  absl::Duration max_shard_duration = absl::Seconds(10);
  /// Expected duration of a test with no history in a suite with none.
  absl::Duration default_expected = absl::Seconds(1);
  /// Reports the whole fleet should send a second: workers are told to
  /// gather passing results for (workers / this) seconds (at most a sixth
  /// of the lease; their own 20 ms if longer), so a fleet of thousands does
  /// not make one call per result. 0: no advice.
  double fleet_reports_per_second = 1000;
  /// Within a priority, tests that failed recently go first, then those
  /// whose action key changed since they last passed; off: longest first.
  bool failures_first = true;
  /// Limits against runaway or hostile clients (0: none).
  int max_suite_tests = 1'000'000;
  int max_suites_per_owner = 0;  // unfinished suites of one token
  /// Unfinished tests of one token, over all its suites.
  int64_t max_tests_per_owner = 2'000'000;
  size_t max_output_tail_bytes = 1 << 20;  // per stream, in reports
  int max_workers = 10'000;                // registered at once
  int max_worker_slots = 1024;             // what one worker may claim
  /// Ended suites stay in memory for watchers while they hold at most this
  /// many tests in all (and are at most 64); older ones are read from the
  /// store.
  int64_t max_ended_tests_in_memory = 200'000;
  /// Accept absolute and climbing paths (cwd, inputs) in submitted suites:
  /// for `coordctl run` and fleets that share one file system.
  bool allow_outside_paths = false;
  /// Dispatch waits and results are observed here. Not owned; may be null.
  CoordinatorMetrics* metrics = nullptr;
};

/// The scheduler and bookkeeper behind the Coordinator service, free of gRPC
/// so it can be tested with a fake clock. Thread-safe.
///
/// Work flows as leases: PullWork hands a worker shards (tests one slot runs
/// in order) under a lease that ReportResults and Heartbeat renew; an expired
/// lease's unreported tests go back to the front of their suite's queue.
/// Every test is reported exactly once: the first result for its current
/// attempt wins, later and duplicate reports are acknowledged and ignored.
class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();

  // ---- clients ----
  // Every call names its caller: a suite is read by its owner and by tokens
  // with the view or admin role, changed by its owner and admins (see
  // Principal). A suite name belongs to the token that first submitted it:
  // its history and baseline are that owner's, and other tokens may not
  // submit under it. Without tokens everyone is Principal::Anyone().

  /// Checks every field (CheckSuiteSpec) before anything is queued.
  absl::StatusOr<v1::SubmitSuiteResponse> Submit(v1::SuiteSpec suite);
  absl::StatusOr<v1::SuiteProgress> Progress(
      const std::string& suite_id,
      const Principal& caller = Principal::Anyone());
  absl::StatusOr<v1::SuiteReport> Report(
      const std::string& suite_id,
      const Principal& caller = Principal::Anyone());
  /// A running suite's results are copied for Report this many at a time,
  /// each slice under the lock (about half a millisecond).
  static constexpr int kReportResultsPerLock = 1000;
  /// A test's history (or every test's of a suite name) with its insight.
  absl::StatusOr<v1::HistoryResponse> History(
      const v1::HistoryRequest& request,
      const Principal& caller = Principal::Anyone());
  /// Pins (or clears) the baseline of a suite name.
  absl::StatusOr<v1::Baseline> SetBaseline(
      const v1::SetBaselineRequest& request,
      const Principal& caller = Principal::Anyone());
  absl::StatusOr<int> Cancel(const std::string& suite_id,
                             const Principal& caller = Principal::Anyone());
  /// How far a watcher has read a suite's results and performance changes.
  struct WatchCursor {
    size_t results = 0;
    size_t changes = 0;
  };
  /// Waits up to `max_wait` for results past `*cursor` (or the suite's end),
  /// fills `event` (with the changes found meanwhile) and advances the
  /// cursor. Returns true once the suite has ended and everything was
  /// delivered.
  absl::StatusOr<bool> NextEvent(const std::string& suite_id,
                                 WatchCursor* cursor, absl::Duration max_wait,
                                 v1::WatchEvent* event,
                                 const Principal& caller = Principal::Anyone());
  /// Every worker with what each busy slot runs now.
  v1::ListWorkersResponse ListWorkers();
  /// One suite's listing, from memory or (ended) from the store.
  absl::StatusOr<v1::SuiteListing> Listing(
      const std::string& suite_id,
      const Principal& caller = Principal::Anyone());
  /// Where the dashboard shows suites ("https://host:port"); Submit answers
  /// with the suite's page under it. Empty: no dashboard.
  void SetDashboardUrl(const std::string& base_url);
  /// The suites held in memory that `caller` may read: unfinished ones by
  /// priority (highest first), then age; then ended ones, newest first.
  std::vector<v1::SuiteListing> ListSuites(
      const Principal& caller = Principal::Anyone());
  struct TestMatch {
    std::string suite_id;
    std::string suite_name;
    std::string test_id;
  };
  /// Tests of the suites in memory (that `caller` may read) whose id
  /// contains `query`, newest suites first, at most `limit`.
  std::vector<TestMatch> FindTests(
      const std::string& query, size_t limit,
      const Principal& caller = Principal::Anyone());
  /// Why a test of a suite ran or came from the cache: its key against the
  /// last earlier passing run's, part by part.
  absl::StatusOr<v1::ExplainResponse> Explain(
      const std::string& suite_id, const std::string& test_id,
      const Principal& caller = Principal::Anyone());

  // ---- workers ----
  /// `owner`: the registering token's name (empty without tokens); only
  /// that token may then act as this worker. RESOURCE_EXHAUSTED past
  /// max_workers; INVALID_ARGUMENT for a name that is not printable.
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request, const std::string& owner = "");
  /// PERMISSION_DENIED when `worker_id` was registered by another token than
  /// `owner` (an unknown worker passes: it is told to register).
  absl::Status CheckWorkerOwner(const std::string& worker_id,
                                const std::string& owner);
  /// Queue, workers and work left, for metrics and autoscaling.
  CoordinatorSnapshot Snapshot();
  /// How a pull is answered: exactly once, never under the coordinator's
  /// lock, maybe on another caller's thread.
  using PullAnswer = Fleet::PullAnswer;
  /// Answers at once with shards when work is queued for the worker (or
  /// when the request waits for none); otherwise the pull waits, holding no
  /// thread, until work arrives, its wait_ms passes (ExpirePulls),
  /// AbandonPull or Shutdown. Returns the waiting pull's id, 0 when it was
  /// answered already.
  uint64_t PullWork(const v1::PullWorkRequest& request, PullAnswer answer);
  /// Answers a waiting pull with no work (its caller left); a pull answered
  /// already is left alone.
  void AbandonPull(uint64_t pull_id);
  /// Answers the waiting pulls whose wait has passed; returns how long at
  /// least until another's does (InfiniteDuration: none waits). Called by the
  /// server's housekeeping, which sleeps until then; directly by tests.
  absl::Duration ExpirePulls();
  /// PullWork that blocks its caller up to the request's wait_ms (tests and
  /// tools; the service answers without a thread per pull).
  v1::PullWorkResponse PullWork(const v1::PullWorkRequest& request);
  /// A result is accepted only from the registered worker that was given
  /// exactly that suite's test, for that attempt, under the lease it names
  /// (an expired lease still counts: a slow worker's late result is kept).
  /// Anything else, and results with impossible numbers (negative or
  /// non-finite times, unknown statuses), is rejected and counted.
  ///
  /// `answer` is called once the accepted results are durable (on the
  /// store's writer thread), or at once when nothing needs writing; the
  /// caller's thread does not wait through the write.
  using ReportAnswer =
      absl::AnyInvocable<void(absl::StatusOr<v1::ReportResultsResponse>) &&>;
  void ReportResults(const v1::ReportResultsRequest& request,
                     ReportAnswer answer);
  /// ReportResults that blocks its caller until the answer (tests, tools).
  absl::StatusOr<v1::ReportResultsResponse> ReportResults(
      const v1::ReportResultsRequest& request);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& request);

  /// Requeues the work of expired leases, forgets silent workers and
  /// retries store writes that failed. Called periodically by the server,
  /// directly by tests.
  void ExpireLeases();
  /// Resumes the suites a previous run of the coordinator left unfinished
  /// (their finished results kept, everything else queued again); returns
  /// how many. Call once, before serving.
  absl::StatusOr<int> Recover();
  /// Wakes every waiting PullWork and NextEvent so the server can stop.
  void Shutdown();

 private:
  // Pins the suite's blobs (SuiteSpec.blobs) for `suite_id`;
  // FAILED_PRECONDITION naming the first missing one (nothing stays pinned
  // then).
  absl::Status PinSuiteBlobs(const std::string& suite_id,
                             const v1::SuiteSpec& spec);
  enum class Phase { kQueued, kLeased, kDone };
  // What a test's history says of its chance to fail, most likely first.
  enum class Urgency { kFailedRecently, kChanged, kUnchanged };
  // A test given to a worker: who may report which attempt, under which
  // lease.
  struct Grant {
    std::string lease_id;
    std::string worker_id;
    int32_t attempt = 0;
  };
  struct Test {
    v1::TestSpec spec;
    std::string cache_key;
    int64_t expected_peak_kb = 0;  // 0: unknown
    Urgency urgency = Urgency::kUnchanged;
    int32_t attempt = 1;
    bool failed_before = false;
    Phase phase = Phase::kQueued;
    // Every lease it was given under, in order; while kLeased the last one
    // is the lease that holds it.
    std::vector<Grant> grants;
    absl::Time queued_at;  // steady clock, for the dispatch latency
  };
  struct Suite {
    std::string id;
    v1::SuiteSpec spec;  // tests moved out into `tests`
    uint64_t sequence = 0;
    std::vector<Test> tests;
    absl::flat_hash_map<std::string, int> index_of;
    SuiteQueue queue;  // the tests in phase kQueued
    int leased = 0;
    // The leased tests' expected work: their own expectations, and how
    // many take the queue's guess (which may change meanwhile).
    double leased_known_ms = 0;
    int leased_guessed = 0;
    double LeasedExpectedMs() const {
      return leased_known_ms + leased_guessed * queue.guess_ms();
    }
    // A test was leased (MakeShard), or left its lease (Requeue, Finish).
    void StartLease(int index) { CountLease(index, 1); }
    void EndLease(int index) { CountLease(index, -1); }
    void CountLease(int index, int sign) {
      leased += sign;
      if (queue.Guessed(index)) {
        leased_guessed += sign;
      } else {
        leased_known_ms += sign * queue.ExpectedOf(index);
      }
    }
    // Results in completion order. Once the suite ends it no longer
    // changes, and the store's writer shares it (EndSuite): a report of
    // 200,000 results took 120 ms to copy, all calls waiting on mu_.
    std::shared_ptr<v1::SuiteReport> report =
        std::make_shared<v1::SuiteReport>();
    bool ended = false;
    bool report_saved = false;             // in the store: may leave memory
    std::optional<v1::Baseline> baseline;  // pinned; else rolling
  };
  struct Lease {
    std::string id;
    std::string worker_id;
    std::string suite_id;
    std::vector<int> outstanding;  // test indices not yet reported
    absl::Time deadline;           // steady clock
    // When its first outstanding test started: at the grant, then at each
    // result (a slot runs a shard's tests in order).
    int64_t current_since_unix_ms = 0;
  };
  using Worker = Fleet::Worker;
  // What a call changed that the store must hold, written by Commit after
  // the lock is released: no I/O under mu_. Commits are written in the order
  // their tickets were taken (GroupCommit), so a later history never lands
  // under an earlier one, and those waiting together are written as one.
  struct Writes {
    uint64_t ticket = 0;
    std::vector<CoordinatorStore::FinishedTest> finished;
    CoordinatorStore::SerializedHistories histories;  // emptied by the write
    std::vector<std::string> run_keys;                // what `histories` held
    std::vector<std::shared_ptr<const v1::SuiteReport>> reports;
    // Set by the group that wrote them (this call's or another's).
    absl::Status results_saved;  // histories and finished results, one write
    std::vector<bool> report_saved;
  };
  // Writes `group` (consecutive tickets) as one; fills in what was saved.
  // What failed to be saved is left in the first of the group.
  void WriteGroup(const std::vector<Writes*>& group)
      ABSL_LOCKS_EXCLUDED(mu_, store_health_mu_);

  absl::Time Now() const { return options_.clock->Now(); }
  absl::Time Steady() const { return options_.clock->Steady(); }
  /// Whether `caller` may read (or, with `change`, change) the suite; the
  /// error names who may.
  /// PERMISSION_DENIED unless `caller` may read (or, with `change`,
  /// change) what `owner` owns; `what` and `action` say it in the message.
  static absl::Status CheckOwner(const Principal& caller,
                                 const std::string& owner, bool change,
                                 const std::string& what,
                                 const std::string& action);
  static absl::Status CheckAccess(const std::string& suite_id,
                                  const std::string& owner,
                                  const Principal& caller, bool change);
  /// The owner of `suite_name` once `owner` submitted under it (claims an
  /// unowned name); PERMISSION_DENIED when it is another's.
  absl::Status ClaimSuiteName(const std::string& suite_name,
                              const std::string& owner);
  absl::Status CheckNameOwner(const std::string& suite_name,
                              const Principal& caller, bool change);
  /// A result a worker sent is possible: known status, finite non-negative
  /// figures, bounded curve. Timestamps far from now are replaced by now.
  absl::Status SanitizeReported(v1::TestResult& result) const;
  /// Takes what the calls so far staged (failed writes included) into
  /// `writes` with a ticket. Call under mu_, then Commit without it.
  void TakeWrites(Writes& writes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Writes `writes` in ticket order; what fails is staged again for the
  /// next commit. Returns the status of the finished results (what a
  /// report's acknowledgement rests on).
  absl::Status Commit(Writes& writes) ABSL_LOCKS_EXCLUDED(mu_);
  /// Commit without waiting: `saved` gets that status on the writer thread.
  void CommitThen(std::unique_ptr<Writes> writes,
                  absl::AnyInvocable<void(absl::Status) &&> saved)
      ABSL_LOCKS_EXCLUDED(mu_);
  /// After `writes` was written: stages again what failed, lets go of what
  /// the store now holds. Returns the finished results' status.
  absl::Status Settle(Writes& writes) ABSL_LOCKS_EXCLUDED(mu_);
  /// Forgets the oldest ended suites whose reports are saved.
  void TrimEndedSuites() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Tests, keys, expectations and order from a spec.
  std::unique_ptr<Suite> BuildSuite(v1::SuiteSpec spec);
  Suite& Install(std::unique_ptr<Suite> suite, const std::string& id,
                 uint64_t sequence, int64_t submitted_at_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether `worker_id` (a registered worker) was given this test of
  // `suite`, for the result's attempt, under the lease the report names.
  bool HeldBy(const Suite& suite, const v1::ReportedResult& reported,
              const std::string& worker_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Regressions and insights of a test's newest run, into the report.
  void Analyze(Suite& suite, const Test& test, const v1::TestHistory& history)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteStoreWrite(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(store_health_mu_);
  // Holds mu_; on release, delivers the pull answers staged meanwhile
  // (outside the lock: an answer finishes an RPC).
  class ABSL_SCOPED_LOCKABLE Locked {
   public:
    explicit Locked(Coordinator* c) ABSL_EXCLUSIVE_LOCK_FUNCTION(c->mu_)
        : c_(c) {
      c_->mu_.Lock();
    }
    ~Locked() ABSL_UNLOCK_FUNCTION();

   private:
    Coordinator* c_;
  };
  // Fills `response` when a pull can be answered now: an unknown worker, a
  // coordinator shutting down, or shards. False: it should wait.
  bool ServePull(const std::string& worker_id, int free_slots,
                 v1::PullWorkResponse& response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Work may have been queued (or a worker left): serves the waiting pulls
  // it suits, oldest first.
  void ServeWaitingPulls() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Answer(PullAnswer answer, v1::PullWorkResponse response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static bool HasQueuedWorkFor(const Suite& suite, const Worker& worker);
  bool HasWorkFor(const Worker& worker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Suite* PickSuite(const Worker& worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Whether `worker` should take `test`: it has the memory the test is
  /// known to peak at, or no worker has.
  bool HasRoomFor(const Test& test, const Worker& worker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Back to the queue: lost work `first`, retries after what is queued.
  void Requeue(Suite& suite, int index, bool first)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Shard MakeShard(Suite& suite, Worker& worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int TotalSlots() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// How long workers gather passing results before reporting them.
  absl::Duration ReportInterval() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return fleet_.ReportInterval(options_.fleet_reports_per_second,
                                 options_.lease / 6);
  }
  /// Records a test's final result (taking it out of the queue if it was
  /// still there) and ends the suite when it was the last.
  void Finish(Suite& suite, int index, v1::TestResult result, bool persist)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Accept(Suite& suite, Lease* lease, v1::TestResult result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Adds the worker's cancelled leases to `told` and forgets them.
  void TellCancelled(Worker& worker,
                     google::protobuf::RepeatedPtrField<std::string>& told)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseLease(const std::string& lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLease(const std::string& lease_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int> CancelLocked(const std::string& suite_id,
                                   const Principal& caller)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Ends every unfinished test of `suite` as cancelled, with `reason` (if
  /// any) in its error message, and tells their workers; returns how many.
  int CancelRest(Suite& suite, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndSuite(Suite& suite, v1::SuiteState state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::SuiteProgress ProgressOf(const Suite& suite) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::SuiteListing ListingOf(const Suite& suite) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// `view(suite)` when the suite is in memory and `caller` may read it (an
  /// error when not); nullopt when only the store may hold it.
  template <typename View>
  std::optional<
      absl::StatusOr<std::invoke_result_t<View, const Coordinator::Suite&>>>
  InMemory(const std::string& suite_id, const Principal& caller, View view)
      ABSL_LOCKS_EXCLUDED(mu_);

  const CoordinatorOptions options_;
  absl::Mutex mu_;
  absl::CondVar suite_changed_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::string dashboard_url_ ABSL_GUARDED_BY(mu_);
  uint64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, std::unique_ptr<Suite>> suites_ ABSL_GUARDED_BY(mu_);
  // Hashed, not ordered: ids share a long prefix that every comparison of an
  // ordered map reads again. Nodes, for Lease pointers held across a shard
  // being made.
  absl::node_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  Fleet fleet_ ABSL_GUARDED_BY(mu_){options_.max_workers,
                                    options_.max_worker_slots};
  // Served pulls, answered when the lock is released (Locked).
  std::vector<std::pair<PullAnswer, v1::PullWorkResponse>> answers_
      ABSL_GUARDED_BY(mu_);
  // Staged for the next Commit: results finished (and failed writes to
  // retry), ended suites' reports, and histories changed since their last
  // write (`staged_runs_` also answers reads of a history whose write is
  // still under way).
  std::vector<CoordinatorStore::FinishedTest> unsaved_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<const v1::SuiteReport>> unsaved_reports_
      ABSL_GUARDED_BY(mu_);
  CoordinatorStore::PendingRuns staged_runs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> run_tickets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> dirty_runs_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  // Lease ids: this process's random half, then a count. Unique, not
  // secret (a result counts only from the worker its lease was given to),
  // so no call to the kernel's random source under mu_ for each shard.
  const std::string lease_id_prefix_;
  uint64_t leases_made_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Mutex store_health_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool store_failing_ ABSL_GUARDED_BY(store_health_mu_) = false;
  // Last: its destructor writes what is queued, which needs all of the above.
  GroupCommit<Writes> committer_{
      [this](const std::vector<Writes*>& group) { WriteGroup(group); },
      "tf-writer"};
};

}  // namespace testfleet
