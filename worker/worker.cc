#include "worker/worker.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/action_key.h"
#include "common/grpc_util.h"
#include "common/platform.h"
#include "common/spec_rules.h"
#include "common/status_macros.h"
#include "common/test_status.h"
#include "common/text.h"
#include "spdlog/spdlog.h"
#include "worker/executor.h"

namespace testfleet {
namespace {

// One report at most: results held through an outage go in several, each
// well under the coordinator's message limit (kMaxMessageBytes).
constexpr size_t kMaxResultsPerReport = 1000;
constexpr size_t kMaxReportBytes = 64 << 20;

int64_t AvailableMemoryKb() {
  std::ifstream meminfo("/proc/meminfo");
  std::string name;
  int64_t value = 0;
  std::string unit;
  while (meminfo >> name >> value >> unit) {
    if (name == "MemAvailable:") return value;
  }
  return 0;
}

std::string JoinPath(const std::string& root, const std::string& relative) {
  if (!relative.empty() && relative[0] == '/') return relative;
  return std::filesystem::path(root + "/" + relative)
      .lexically_normal()
      .string();
}

}  // namespace

Worker::Worker(WorkerConfig config, std::shared_ptr<grpc::Channel> coordinator,
               ResultCache* local_cache, std::unique_ptr<ResultSpool> spool,
               SandboxMaker* sandboxes)
    : config_(std::move(config)),
      channel_(std::move(coordinator)),
      stub_(v1::Coordinator::NewStub(channel_)),
      local_cache_(local_cache),
      sandboxes_(sandboxes),
      cas_(channel_),
      platform_(HostPlatform(config_.platform_tag)),
      real_workspace_(ResolvePath(config_.workspace).value_or("")),
      spool_(std::move(spool)) {}

absl::Status Worker::CheckInWorkspace(const std::string& path) const {
  // Absolute paths were allowed by the coordinator's --allow-outside-paths;
  // one that does not resolve is left to the caller (a missing input, a
  // missing folder).
  if (path.empty() || path[0] == '/' || real_workspace_.empty()) {
    return absl::OkStatus();
  }
  absl::StatusOr<std::optional<std::string>> outside =
      RealPathOutside(real_workspace_, real_workspace_ + "/" + path);
  if (!outside.ok() || !outside->has_value()) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat(path, " leads outside the workspace ", config_.workspace,
                   " through a symbolic link; refused"));
}

Worker::~Worker() { Stop(); }

WorkerStats Worker::Stats() {
  WorkerStats stats;
  stats.slots = config_.slots;
  stats.running_tests = running_tests_.load();
  stats.spooled_bytes = spooled_bytes_.load();
  absl::MutexLock lock(&mu_);
  stats.busy_slots = busy_slots_;
  stats.finished = finished_;
  stats.cached = cached_;
  return stats;
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  if (pull_ != nullptr) pull_->TryCancel();
  changed_.SignalAll();
}

absl::Status Worker::Register() {
  v1::RegisterWorkerRequest request;
  request.set_name(config_.name);
  request.set_slots(config_.slots);
  *request.mutable_platform() = platform_;
  absl::Duration backoff = absl::Milliseconds(100);
  for (int attempt = 0;; ++attempt) {
    v1::RegisterWorkerResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(absl::Seconds(10)));
    grpc::Status status = stub_->RegisterWorker(&context, request, &response);
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      worker_id_ = response.worker_id();
      lease_ms_ = std::max<int64_t>(response.lease_ms(), 300);
      advised_report_interval_ =
          absl::Milliseconds(response.report_interval_ms());
      if (cache_ == nullptr) {
        std::vector<CacheClient*> tiers;
        if (local_cache_ != nullptr) {
          local_client_ = NewLocalCacheClient(local_cache_);
          tiers.push_back(local_client_.get());
        }
        if (response.cache_service()) {
          shared_client_ =
              response.cache_endpoint().empty()
                  ? NewGrpcCacheClient(channel_, config_.coordinator_address)
                  : NewGrpcCacheClient(response.cache_endpoint());
          tiers.push_back(shared_client_.get());
        }
        cache_ = NewFleetCacheClient(tiers, config_.cache_signing_key);
        spdlog::info("worker {}: {} slots, {}, cache: {}", worker_id_,
                     config_.slots, PlatformString(platform_),
                     cache_ ? cache_->Describe() : "none");
      }
      return absl::OkStatus();
    }
    absl::Status error =
        FromGrpcStatus(status, "coordinator", config_.coordinator_address);
    // Retrying cannot fix a refused name or token; a full coordinator or an
    // unreachable one may change.
    if (absl::IsInvalidArgument(error) || absl::IsPermissionDenied(error) ||
        absl::IsUnauthenticated(error)) {
      return error;
    }
    if (attempt == 0) spdlog::warn("{}; retrying", error.ToString());
    absl::MutexLock lock(&mu_);
    if (stopping_) return error;
    changed_.WaitWithTimeout(&mu_, backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::Status Worker::Run() {
  spdlog::info(
      "memory limits: enforced from the process tree's RSS sampled every {} "
      "(cgroup "
      "memory.max is not used)",
      absl::FormatDuration(config_.sample_interval));
  if (absl::Status registered = Register(); !registered.ok()) return registered;
  std::vector<std::thread> threads;
  for (int slot = 0; slot < config_.slots; ++slot) {
    threads.emplace_back([this, slot] { SlotLoop(slot); });
  }
  std::thread reporter([this] { ReporterLoop(); });
  std::thread heartbeat([this] { HeartbeatLoop(); });

  absl::Time idle_since = absl::Now();
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    int free_slots = 0;
    std::string worker_id;
    {
      absl::MutexLock lock(&mu_);
      auto can_pull = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ ||
               busy_slots_ + static_cast<int>(queued_.size()) < config_.slots;
      };
      mu_.Await(absl::Condition(&can_pull));
      if (stopping_) break;
      free_slots =
          config_.slots - busy_slots_ - static_cast<int>(queued_.size());
      worker_id = worker_id_;
      if (busy_slots_ > 0 || !queued_.empty()) idle_since = absl::Now();
    }
    if (config_.exit_when_idle &&
        absl::Now() - idle_since >= *config_.exit_when_idle) {
      spdlog::info("worker {}: idle for {}; exiting", worker_id,
                   absl::FormatDuration(absl::Now() - idle_since));
      break;
    }
    v1::PullWorkRequest request;
    request.set_worker_id(worker_id);
    request.set_free_slots(free_slots);
    absl::Duration wait = config_.pull_wait;
    if (config_.exit_when_idle) wait = std::min(wait, *config_.exit_when_idle);
    request.set_wait_ms(absl::ToInt64Milliseconds(wait));
    v1::PullWorkResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(wait + absl::Seconds(10)));
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) break;
      pull_ = &context;
    }
    grpc::Status status = stub_->PullWork(&context, request, &response);
    {
      absl::MutexLock lock(&mu_);
      pull_ = nullptr;
    }
    if (!status.ok()) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) break;  // cancelled by Stop, or the server went away
      }
      spdlog::warn(
          "{}; retrying in {}",
          FromGrpcStatus(status, "coordinator", config_.coordinator_address)
              .ToString(),
          absl::FormatDuration(backoff));
      absl::MutexLock lock(&mu_);
      changed_.WaitWithTimeout(&mu_, backoff);
      backoff = std::min(backoff * 2, absl::Seconds(5));
      continue;
    }
    backoff = absl::Milliseconds(100);
    if (response.unknown_worker()) {
      spdlog::warn("coordinator does not know worker {}; registering again",
                   worker_id);
      if (!Register().ok()) break;
      continue;
    }
    if (response.shards_size() > 0) idle_since = absl::Now();
    absl::MutexLock lock(&mu_);
    for (v1::Shard& shard : *response.mutable_shards()) {
      auto active = std::make_shared<ActiveShard>();
      active->shard = std::move(shard);
      active_[active->shard.lease_id()] = active;
      queued_.push_back(std::move(active));
    }
    changed_.SignalAll();
  }

  Stop();
  for (auto& thread : threads) thread.join();
  {
    // Slots are done: let the reporter deliver what is left, then end.
    absl::MutexLock lock(&mu_);
    reporter_done_ = true;
    changed_.SignalAll();
  }
  reporter.join();
  heartbeat.join();
  return absl::OkStatus();
}

void Worker::SlotLoop(int index) {
  Slot slot;
  slot.index = index;
  while (true) {
    std::shared_ptr<ActiveShard> active;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queued_.empty();
      };
      mu_.Await(absl::Condition(&ready));
      if (queued_.empty()) return;  // stopping, and nothing handed to us
      active = std::move(queued_.front());
      queued_.pop_front();
      ++busy_slots_;
    }
    RunShard(active, slot);
    absl::MutexLock lock(&mu_);
    --busy_slots_;
    active_.erase(active->shard.lease_id());
    changed_.SignalAll();
  }
}

void Worker::RunShard(const std::shared_ptr<ActiveShard>& shared, Slot& slot) {
  ActiveShard& active = *shared;
  const v1::Shard& shard = active.shard;
  // The key is recomputed here from what this worker will run, on its own
  // platform: a result is never stored under a key that does not describe it.
  std::vector<v1::ActionKey> action_keys;
  std::vector<std::string> keys;
  for (const v1::TestAssignment& assignment : shard.tests()) {
    action_keys.push_back(ComputeActionKey(assignment.spec(), platform_));
    keys.push_back(action_keys.back().hex());
  }
  std::vector<std::optional<v1::CachedResult>> hits(keys.size());
  if (cache_) {
    auto looked_up = cache_->Lookup(keys);
    if (looked_up.ok()) hits = std::move(*looked_up);
  }
  for (int i = 0; i < shard.tests_size(); ++i) {
    if (active.cancelled.load())
      break;  // the coordinator already recorded them
    const v1::TestAssignment& assignment = shard.tests(i);
    PendingReport pending;
    pending.shard = shared;
    pending.reported.set_suite_id(shard.suite_id());
    pending.reported.set_lease_id(shard.lease_id());
    v1::TestResult& result = *pending.reported.mutable_result();
    // A cached failure serves only a test that asked for failures to be
    // cached, whatever a shared cache holds.
    if (hits[i].has_value() &&
        Cacheable(assignment.spec(), hits[i]->result())) {
      result = std::move(*hits[i]->mutable_result());
      result.set_cached(true);
    } else {
      result = RunOne(assignment, keys[i], active, slot);
      if (cache_ && Cacheable(assignment.spec(), result)) {
        v1::CachedResult entry;
        *entry.mutable_result() = result;
        *entry.mutable_key() = std::move(action_keys[i]);
        entry.set_stored_at_unix_ms(absl::ToUnixMillis(absl::Now()));
        entry.set_writer(config_.name);
        pending.cache_entry.emplace(keys[i], std::move(entry));
      }
    }
    result.set_test_id(assignment.spec().id());
    result.set_attempt(assignment.attempt());
    result.set_cache_key(keys[i]);
    absl::MutexLock lock(&mu_);
    ++finished_[result.status()];
    cached_ += result.cached();
    if (config_.max_tests > 0 && ++tests_done_ == config_.max_tests) {
      spdlog::info("worker {}: {} tests done (--max-tests); finishing",
                   worker_id_, tests_done_);
      stopping_ = true;
    }
    failure_pending_ = failure_pending_ || IsFailure(result.status());
    pending_.push_back(std::move(pending));
    changed_.SignalAll();
  }
}

v1::TestResult Worker::RunOne(const v1::TestAssignment& assignment,
                              const std::string& key, ActiveShard& active,
                              Slot& slot) {
  const v1::TestSpec& spec = assignment.spec();
  auto error = [&](const std::string& why) {
    v1::TestResult result;
    const int64_t now = absl::ToUnixMillis(absl::Now());
    result.set_status(v1::TEST_STATUS_ERROR);
    result.set_error_message(why);
    result.set_started_at_unix_ms(now);
    result.set_finished_at_unix_ms(now);
    result.set_worker(config_.name);
    result.set_slot(slot.index);
    return result;
  };
  if (!assignment.cache_key().empty() && assignment.cache_key() != key) {
    return error(absl::StrCat("worker ", config_.name, " computes cache key ",
                              key, " but the coordinator sent ",
                              assignment.cache_key(),
                              " (different platform or Testfleet version)"));
  }
  ExecSpec exec;
  exec.argv.assign(spec.argv().begin(), spec.argv().end());
  exec.env.insert(spec.env().begin(), spec.env().end());
  exec.timeout = absl::Milliseconds(spec.timeout_ms());
  exec.memory_limit_bytes = spec.memory_limit_bytes();
  exec.sample_interval = config_.sample_interval;
  exec.tail_bytes = config_.tail_bytes;
  exec.cancelled = &active.cancelled;
  std::unique_ptr<Sandbox> sandbox;
  std::string outputs_folder;  // where the worker finds the test's cwd
  if (sandboxes_ != nullptr) {
    if (spec.input_root().empty()) {
      return error(absl::StrCat(
          "worker ", config_.name,
          " has no workspace and the test came without its input tree "
          "(submitted with --no-upload); submit without --no-upload, or run "
          "it on workers started with --workspace"));
    }
    absl::StatusOr<std::unique_ptr<Sandbox>> made = sandboxes_->Make(spec);
    if (!made.ok()) {
      return error(absl::StrCat("cannot make the sandbox on worker ",
                                config_.name, ": ", made.status().message()));
    }
    sandbox = *std::move(made);
    exec.cwd = ResolveIn(spec.exec_root(), spec.cwd());
    outputs_folder = sandbox->HostPath(exec.cwd);
    exec.isolation = &sandbox->isolation();
    exec.env.emplace("TMPDIR", "/tmp");  // its own /tmp, unless it says
  } else {
    if (std::string bad = CheckWorkspaceInputs(spec); !bad.empty())
      return error(bad);
    exec.cwd = JoinPath(config_.workspace, spec.cwd());
    outputs_folder = exec.cwd;
  }
  ++running_tests_;
  absl::StatusOr<v1::TestResult> result = absl::UnavailableError("no launcher");
  // A launcher that died (killed, out of memory) is replaced once.
  for (int attempt = 0; attempt < 2 && !result.ok(); ++attempt) {
    if (slot.launcher == nullptr || attempt > 0) {
      slot.launcher.reset();
      auto started = ProcessLauncher::Start(DefaultLauncherPath());
      if (!started.ok()) {
        result = started.status();
        continue;
      }
      slot.launcher = std::move(*started);
    }
    result = RunTestProcess(exec, *slot.launcher);
  }
  --running_tests_;
  if (!result.ok()) return error(std::string(result.status().message()));
  result->set_worker(config_.name);
  result->set_slot(slot.index);
  if (spec.outputs_size() > 0) {
    absl::StatusOr<std::vector<v1::OutputFile>> outputs = CollectOutputs(
        outputs_folder, {spec.outputs().begin(), spec.outputs().end()},
        sandbox != nullptr ? sandbox->dir() : config_.workspace, cas_);
    if (outputs.ok()) {
      for (auto& output : *outputs) *result->add_outputs() = std::move(output);
    } else {
      result->set_status(v1::TEST_STATUS_ERROR);
      result->set_error_message(absl::StrCat("cannot keep the outputs: ",
                                             outputs.status().message()));
    }
  }
  if (sandbox != nullptr) {
    if (int dropped = sandboxes_->files().DropChanged(sandbox->files())) {
      spdlog::warn(
          "test {} changed {} of its input files; dropped from the "
          "file cache",
          LogSafe(spec.id()), dropped);
    }
    if (config_.keep_failed_sandboxes &&
        result->status() != v1::TEST_STATUS_PASSED) {
      sandbox->Keep();
      spdlog::info("sandbox of failed test {} kept in {}", LogSafe(spec.id()),
                   sandbox->dir());
    }
    // Only a passed test's sandbox may serve again; any other goes.
    if (result->status() == v1::TEST_STATUS_PASSED)
      sandboxes_->Finish(std::move(sandbox));
  }
  return *std::move(result);
}

std::string Worker::CheckWorkspaceInputs(const v1::TestSpec& spec) {
  // The inputs here must be the ones the submitter hashed, inside the
  // workspace once links are followed. Errors say which input, never what
  // this machine's file holds.
  for (const v1::InputDigest& input : spec.inputs()) {
    if (absl::Status inside = CheckInWorkspace(input.path()); !inside.ok()) {
      return std::string(inside.message());
    }
    auto digest = digester_.Digest(config_.workspace, input.path());
    if (!digest.ok()) {
      return absl::StrCat("input ", input.path(),
                          " is missing or unreadable on worker ", config_.name,
                          " (workspace ", config_.workspace, ")");
    }
    if (digest->sha256() != input.sha256()) {
      return absl::StrCat("input ", input.path(), " on worker ", config_.name,
                          " differs from the submitted one (submitted sha256 ",
                          input.sha256().substr(0, 12),
                          "); sync the workspace ", config_.workspace);
    }
  }
  if (absl::Status inside = CheckInWorkspace(spec.cwd()); !inside.ok()) {
    return std::string(inside.message());
  }
  return "";
}

void Worker::ReporterLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  // Results not yet delivered nor spooled: a spool that is full or on a full
  // disk leaves them here until delivery works again.
  std::vector<PendingReport> batch;
  std::optional<absl::Time> give_up_at;
  // Something waits for delivery: retry after the backoff even if no new
  // result arrives (an earlier worker's spooled batches, at start).
  bool undelivered = spool_ != nullptr && spool_->batches() > 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return reporter_done_ || !pending_.empty();
      };
      if (undelivered) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), backoff);
      } else {
        mu_.Await(absl::Condition(&ready));
      }
      // Gather for a moment: one round trip carries many results. A
      // failure goes at once: it is what the submitter waits to hear. So
      // do the results of a worker with nothing left to run (no later
      // result would join them: often a suite's last), and a full batch.
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return reporter_done_ || failure_pending_ ||
               (busy_slots_ == 0 && queued_.empty()) ||
               pending_.size() >= kMaxResultsPerReport;
      };
      if (!pending_.empty()) {
        mu_.AwaitWithTimeout(
            absl::Condition(&done),
            std::max(config_.report_interval, advised_report_interval_));
      }
      for (auto& p : pending_) batch.push_back(std::move(p));
      pending_.clear();
      failure_pending_ = false;
      if (reporter_done_ && !give_up_at)
        give_up_at = absl::Now() + config_.final_delivery_timeout;
    }
    absl::Status delivered = DeliverSpooled();
    if (!batch.empty()) {
      v1::ReportResultsRequest request;
      for (const PendingReport& p : batch) *request.add_results() = p.reported;
      if (delivered.ok()) delivered = Deliver(request);
      // Cached once delivered (or spooled), unless the delivery said the
      // suite was cancelled: a cancelled test's result is no one's to reuse.
      CacheEntries entries;
      for (PendingReport& p : batch) {
        if (p.cache_entry && !p.shard->cancelled.load())
          entries.push_back(std::move(*p.cache_entry));
        p.cache_entry.reset();
      }
      if (cache_ && !entries.empty()) (void)cache_->Put(entries);
      if (delivered.ok()) {
        batch.clear();
      } else if (spool_ != nullptr) {
        absl::Status spooled = spool_->Append(request);
        if (spooled.ok()) {
          batch.clear();
        } else {
          spdlog::error("keeping {} results in memory: {}", batch.size(),
                        spooled.ToString());
        }
      }
    }
    const size_t spooled = spool_ ? spool_->batches() : 0;
    spooled_bytes_ = spool_ ? spool_->bytes() : 0;
    if (delivered.ok() && batch.empty() && spooled == 0) {
      if (undelivered) spdlog::info("all results delivered");
      undelivered = false;
      backoff = absl::Milliseconds(100);
      if (give_up_at) return;
      continue;
    }
    if (give_up_at && absl::Now() >= *give_up_at) {
      if (spooled > 0) {
        spdlog::warn(
            "stopping with {} undelivered result batches in {}; a worker "
            "started with --spool-dir={} delivers them",
            spooled, spool_->dir(), spool_->dir());
      }
      if (!batch.empty()) {
        spdlog::error("stopping: {} results were never delivered",
                      batch.size());
      }
      return;
    }
    if (!undelivered) {
      spdlog::warn("delivering results: {}; {} retrying with backoff",
                   delivered.ToString(),
                   spool_ ? absl::StrCat("spooled in ", spool_->dir(), ",")
                          : std::string("kept in memory,"));
    }
    undelivered = true;
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

absl::Status Worker::Deliver(v1::ReportResultsRequest& batch) {
  {
    absl::MutexLock lock(&mu_);
    batch.set_worker_id(worker_id_);
  }
  if (static_cast<size_t>(batch.results_size()) <= kMaxResultsPerReport &&
      batch.ByteSizeLong() <= kMaxReportBytes) {
    return DeliverPart(batch);
  }
  // Parts taken before one fails are sent again with the rest: the
  // coordinator ignores results it already has.
  for (const v1::ReportResultsRequest& part :
       SplitReport(batch, kMaxResultsPerReport, kMaxReportBytes)) {
    RETURN_IF_ERROR(DeliverPart(part));
  }
  return absl::OkStatus();
}

absl::Status Worker::DeliverPart(const v1::ReportResultsRequest& part) {
  v1::ReportResultsResponse response;
  grpc::ClientContext context;
  // A report takes milliseconds; one that hangs (a dead link) goes to the
  // spool soon instead of holding the results in memory.
  context.set_deadline(DeadlineIn(absl::Seconds(5)));
  grpc::Status status = stub_->ReportResults(&context, part, &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, "coordinator", config_.coordinator_address);
  }
  absl::MutexLock lock(&mu_);
  MarkCancelled(response.cancelled_lease_ids());
  return absl::OkStatus();
}

absl::Status Worker::DeliverSpooled() {
  if (spool_ == nullptr) return absl::OkStatus();
  int delivered_results = 0;
  absl::Status status;
  while (std::optional<ResultSpool::Entry> oldest = spool_->Oldest()) {
    status = Deliver(oldest->batch);
    if (!status.ok()) break;
    delivered_results += oldest->batch.results_size();
    status = spool_->Remove(oldest->sequence);
    if (!status.ok()) {
      // Delivering it again later is harmless: duplicates are ignored.
      spdlog::warn("{}", status.ToString());
      status = absl::OkStatus();
      break;
    }
  }
  if (delivered_results > 0) {
    spdlog::info("delivered {} spooled results", delivered_results);
  }
  return status;
}

void Worker::HeartbeatLoop() {
  bool first_beat = true;
  while (true) {
    v1::HeartbeatRequest request;
    {
      absl::MutexLock lock(&mu_);
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return reporter_done_;
      };
      // The first beat goes at once: the coordinator places work by the
      // load and free memory it reports.
      if (!first_beat &&
          mu_.AwaitWithTimeout(absl::Condition(&done),
                               absl::Milliseconds(lease_ms_ / 3))) {
        return;
      }
      first_beat = false;
      if (reporter_done_) return;
      request.set_worker_id(worker_id_);
      for (const auto& [lease_id, active] : active_)
        request.add_lease_ids(lease_id);
    }
    double load[1] = {0};
    if (getloadavg(load, 1) == 1) request.set_load_average(load[0]);
    request.set_free_memory_kb(AvailableMemoryKb());
    request.set_running_tests(running_tests_.load());
    v1::HeartbeatResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(absl::Seconds(10)));
    if (!stub_->Heartbeat(&context, request, &response).ok()) continue;
    absl::MutexLock lock(&mu_);
    MarkCancelled(response.cancelled_lease_ids());
    advised_report_interval_ =
        absl::Milliseconds(response.report_interval_ms());
  }
}

void Worker::MarkCancelled(
    const google::protobuf::RepeatedPtrField<std::string>& lease_ids) {
  for (const std::string& lease_id : lease_ids) {
    auto it = active_.find(lease_id);
    if (it != active_.end()) it->second->cancelled = true;
  }
}

}  // namespace testfleet
