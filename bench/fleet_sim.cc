// fleet_sim: one process that plays a fleet of workers against a real
// coordinator. Each simulated worker speaks the worker protocol (register,
// pull, heartbeat, report) over its own connection and "runs" a test by
// waiting its duration (argv[1], in ms) instead of starting a process, so
// one machine can load a coordinator as thousands of workers would.
//
//   fleet_sim --coordinator=127.0.0.1:7070 --workers=1000 --slots=8
//             --tests=200000 --suites=1 [--coordinator-pid=PID]
//
// Prints one JSON object: dispatches per second, PullWork latency, the share
// of slot time idle while work was queued, RPC errors, the simulator's own
// CPU and (given its pid) the coordinator's CPU and memory. Against a
// coordinator on this host (a loopback address), each pull's latency is also
// split at the coordinator's stamps (kPullTimingRequest): before its handler
// got the call, in the handler, and after it answered.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc_util.h"
#include "common/platform.h"
#include "common/runtime.h"
#include "common/security.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {
namespace {

using Clock = std::chrono::steady_clock;
using Micros = std::chrono::microseconds;

struct Options {
  std::string coordinator;
  int workers = 100;
  int slots = 8;
  int tests = 200'000;
  int suites = 1;
  double mean_ms = 1000;
  double sigma = 1.0;  // of the log-normal durations
  // Of each run's log-normal factor on its expected duration (0: a test
  // takes exactly what its history says).
  double run_sigma = 0;
  int connections = 0;  // 0: one per worker
  int64_t pull_wait_ms = 2000;
  int64_t report_interval_ms = 250;  // the worker's default (or the advice)
  int64_t heartbeat_ms = 10'000;
  int coordinator_pid = 0;
  uint32_t seed = 1;
};

double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct CpuAndMemory {
  double cpu_s = 0;
  int64_t rss_kb = 0;
  int64_t peak_rss_kb = 0;
};

// A process's CPU time and memory from /proc.
CpuAndMemory Sample(int pid) {
  CpuAndMemory sample;
  if (pid <= 0) return sample;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)),
                   std::istreambuf_iterator<char>());
  // Fields after the command name (which may hold spaces): utime is the
  // 14th field of the line, stime the 15th.
  const size_t close = text.rfind(')');
  if (close != std::string::npos) {
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i) {
      if (i >= 14) ticks += std::stod(field);
    }
    sample.cpu_s = ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      sample.rss_kb = std::stoll(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0)
      sample.peak_rss_kb = std::stoll(line.substr(6));
  }
  return sample;
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t at = std::min(
      values.size() - 1, static_cast<size_t>(p * (values.size() - 1) + 0.5));
  return values[at];
}

class Fleet {
 public:
  explicit Fleet(const Options& options)
      : options_(options), workers_(options.workers) {
    const int connections =
        options.connections > 0 ? options.connections : options.workers;
    grpc::ChannelArguments args;
    // A channel of its own per worker, as a fleet of machines has, not one
    // connection shared by the whole process.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    SetSmallCallArguments(args);  // as the worker's channel
    args.SetMaxReceiveMessageSize(256 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    for (int i = 0; i < connections; ++i) {
      stubs_.push_back(v1::Coordinator::NewStub(grpc::CreateCustomChannel(
          options.coordinator, grpc::InsecureChannelCredentials(), args)));
    }
    for (int i = 0; i < options.workers; ++i) {
      workers_[i].index = i;
      workers_[i].stub = stubs_[i % connections].get();
      workers_[i].slots.resize(options.slots);
    }
  }

  // Registers every worker; false after the first failure.
  bool Register() {
    std::mutex mu;
    std::condition_variable done;
    int pending = options_.workers;
    for (Worker& worker : workers_) {
      auto call = std::make_shared<
          Call<v1::RegisterWorkerRequest, v1::RegisterWorkerResponse>>();
      call->request.set_name(absl::StrCat("sim-", worker.index));
      call->request.set_slots(options_.slots);
      *call->request.mutable_platform() = HostPlatform("");
      call->context.set_deadline(std::chrono::system_clock::now() +
                                 std::chrono::seconds(60));
      worker.stub->async()->RegisterWorker(
          &call->context, &call->request, &call->response,
          [&, call, w = &worker](grpc::Status status) {
            std::lock_guard<std::mutex> lock(mu);
            if (status.ok()) {
              w->id = call->response.worker_id();
              w->report_interval_ms =
                  std::max(options_.report_interval_ms,
                           call->response.report_interval_ms());
            } else {
              Error("RegisterWorker", status);
            }
            if (--pending == 0) done.notify_all();
          });
    }
    std::unique_lock<std::mutex> lock(mu);
    done.wait(lock, [&] { return pending == 0; });
    return errors_ == 0;
  }

  // Submits the suites, serves them to the end, and returns the figures.
  nlohmann::json Run() {
    std::thread timers([this] { TimerLoop(); });
    std::thread heartbeats([this] { HeartbeatLoop(); });
    std::thread sockets([this] { SocketLoop(); });
    for (Worker& worker : workers_) {
      std::lock_guard<std::mutex> lock(worker.mu);
      MaybePull(worker);
    }
    std::mt19937_64 random(options_.seed);
    const double mu =
        std::log(options_.mean_ms) - options_.sigma * options_.sigma / 2;
    std::lognormal_distribution<double> duration(mu, options_.sigma);
    std::lognormal_distribution<double> run_factor(0, options_.run_sigma);
    std::vector<v1::SubmitSuiteRequest> requests(options_.suites);
    for (int s = 0; s < options_.suites; ++s) {
      v1::SuiteSpec& suite = *requests[s].mutable_suite();
      suite.set_name(absl::StrCat("fleet-sim-", s));
      *suite.mutable_platform() = HostPlatform("");
      const int n = options_.tests / options_.suites;
      for (int t = 0; t < n; ++t) {
        const int64_t ms = std::max<int64_t>(1, std::llround(duration(random)));
        const int64_t run_ms =
            options_.run_sigma > 0
                ? std::max<int64_t>(1, std::llround(ms * run_factor(random)))
                : ms;
        v1::TestSpec& test = *suite.add_tests();
        test.set_id(absl::StrCat("t", t));
        test.add_argv("sim");
        test.add_argv(std::to_string(run_ms));
        test.add_argv(absl::StrCat(options_.seed, "-", s));  // a fresh key
        test.set_cwd(".");
        test.set_expected_ms(ms);  // as history would say
      }
      total_tests_ += n;
    }
    const CpuAndMemory before = Sample(options_.coordinator_pid);
    const CpuAndMemory sim_before = Sample(getpid());
    const Clock::time_point submit_start = Clock::now();
    std::vector<std::thread> submitters;
    for (int s = 0; s < options_.suites; ++s) {
      submitters.emplace_back([&, s] {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::minutes(5));
        v1::SubmitSuiteResponse response;
        grpc::Status status = stubs_[s % stubs_.size()]->SubmitSuite(
            &context, requests[s], &response);
        std::lock_guard<std::mutex> lock(mu_);
        if (!status.ok()) {
          Error("SubmitSuite", status);
          total_tests_ -= requests[s].suite().tests_size();
        } else {
          suite_ids_.push_back(response.suite_id());
        }
      });
    }
    for (std::thread& t : submitters) t.join();
    const Clock::time_point queued_at = Clock::now();
    {
      std::unique_lock<std::mutex> lock(mu_);
      queued_at_ = queued_at;
      submitted_ = true;  // after queued_at_: callbacks read it then
      // Every result accepted, or (a report that timed out here may have
      // been taken there) every suite ended as the coordinator says.
      const Clock::time_point give_up = Clock::now() + std::chrono::hours(2);
      while (reported_ < total_tests_ && errors_ <= 100 &&
             Clock::now() < give_up) {
        if (all_reported_.wait_for(lock, std::chrono::seconds(1),
                                   [&] { return reported_ >= total_tests_; })) {
          break;
        }
        lock.unlock();
        const bool ended = AllEnded();
        lock.lock();
        if (ended) break;
      }
      // A suite ends when its last report is taken, before that report's
      // answer is back here: wait for the answers to count them.
      all_reported_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return reports_in_flight_ == 0; });
      stopping_ = true;
      stopped_.notify_all();
    }
    {
      std::lock_guard<std::mutex> lock(timers_mu_);
      timer_wake_.notify_all();
    }
    const Clock::time_point end = Clock::now();
    const CpuAndMemory after = Sample(options_.coordinator_pid);
    const CpuAndMemory sim_after = Sample(getpid());
    timers.join();
    heartbeats.join();
    sockets.join();
    std::lock_guard<std::mutex> lock(mu_);
    return Figures(before, after, sim_before, sim_after, submit_start,
                   queued_at, end);
  }

 private:
  template <typename Request, typename Response>
  struct Call {
    grpc::ClientContext context;
    Request request;
    Response response;
    Clock::time_point started = Clock::now();
  };
  struct Slot {
    std::shared_ptr<v1::Shard> shard;  // null: free
    int next = 0;                      // the test running now
    Clock::time_point started;
  };
  // Each worker's state has a lock of its own, as each machine of a fleet
  // has its own process: one lock over the whole fleet held gRPC's
  // callback threads (and the answers they had not read) behind the timer
  // thread while it finished thousands of tests a second.
  struct Worker {
    std::mutex mu;  // guards the fields below but index and stub
    int index = 0;
    std::string id;
    v1::Coordinator::Stub* stub = nullptr;
    std::vector<Slot> slots;
    bool pulling = false;
    bool reporting = false;  // a report waits for its interval or its answer
    bool report_timer_set = false;
    // The coordinator's advice for its fleet's size, or ours if longer.
    int64_t report_interval_ms = 0;
    v1::ReportResultsRequest pending;
  };
  static constexpr int kReportTimer = -1;  // Timer::slot of a report's wait
  struct Timer {
    Clock::time_point at;
    int worker;
    int slot;
    bool operator>(const Timer& other) const { return at > other.at; }
  };

  bool AllEnded() {
    std::vector<std::string> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ids = suite_ids_;
    }
    for (const std::string& id : ids) {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::seconds(30));
      v1::SuiteRef ref;
      ref.set_suite_id(id);
      v1::SuiteProgress progress;
      if (!stubs_[0]->GetStatus(&context, ref, &progress).ok() ||
          progress.state() != v1::SUITE_STATE_FINISHED) {
        return false;
      }
    }
    return true;
  }

  void Error(const char* what, const grpc::Status& status) {
    if (++errors_ <= 5) {
      std::fprintf(stderr, "fleet_sim: %s: %s\n", what,
                   status.error_message().c_str());
    }
  }

  int FreeSlots(const Worker& worker) const {
    int free = 0;
    for (const Slot& slot : worker.slots) free += slot.shard == nullptr;
    return free;
  }

  void MaybePull(Worker& worker) {
    if (stopping_ || worker.pulling || worker.id.empty()) return;
    const int free = FreeSlots(worker);
    if (free == 0) return;
    worker.pulling = true;
    auto call =
        std::make_shared<Call<v1::PullWorkRequest, v1::PullWorkResponse>>();
    call->request.set_worker_id(worker.id);
    call->request.set_free_slots(free);
    call->request.set_wait_ms(options_.pull_wait_ms);
    call->context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::milliseconds(options_.pull_wait_ms + 10'000));
    if (split_pulls_) call->context.AddMetadata(kPullTimingRequest, "1");
    worker.stub->async()->PullWork(
        &call->context, &call->request, &call->response,
        [this, call, w = &worker](grpc::Status status) {
          // Timed before the simulator's own locks.
          const Clock::time_point arrived = Clock::now();
          std::lock_guard<std::mutex> lock(w->mu);
          w->pulling = false;
          if (!status.ok()) {
            if (!stopping_) Error("PullWork", status);
            return;
          }
          const Clock::time_point now = Clock::now();
          if (call->response.shards_size() > 0 && submitted_) {
            std::lock_guard<std::mutex> figures(mu_);
            if (call->started >= queued_at_) {
              pull_ms_.push_back(Ms(arrived - call->started));
              pull_started_s_.push_back(Seconds(call->started - queued_at_));
              const auto received =
                  PullTimingStampOf(call->context, kPullReceivedNs);
              const auto answered =
                  PullTimingStampOf(call->context, kPullAnsweredNs);
              if (received && answered) {
                pull_before_ms_.push_back(Ms(*received - call->started));
                pull_in_ms_.push_back(Ms(*answered - *received));
                pull_after_ms_.push_back(Ms(arrived - *answered));
              }
            }
          }
          for (v1::Shard& shard : *call->response.mutable_shards()) {
            if ((dispatched_ += shard.tests_size()) >= total_tests_) {
              std::lock_guard<std::mutex> figures(mu_);
              queue_emptied_ = now;
            }
            for (Slot& slot : w->slots) {
              if (slot.shard != nullptr) continue;
              slot.shard = std::make_shared<v1::Shard>(std::move(shard));
              slot.next = 0;
              Start(*w, static_cast<int>(&slot - w->slots.data()), now);
              break;
            }
          }
          MaybePull(*w);
        });
  }

  // Starts the slot's next test: its end is a timer.
  void Start(Worker& worker, int slot_index, Clock::time_point now) {
    Slot& slot = worker.slots[slot_index];
    slot.started = now;
    const int64_t ms = std::stoll(slot.shard->tests(slot.next).spec().argv(1));
    AddTimer({now + std::chrono::milliseconds(ms), worker.index, slot_index});
  }

  void AddTimer(const Timer& timer) {
    std::lock_guard<std::mutex> lock(timers_mu_);
    timers_.push(timer);
    timer_wake_.notify_one();
  }

  // Holds one worker's lock at a time, never the timers' with it.
  void TimerLoop() {
    std::unique_lock<std::mutex> lock(timers_mu_);
    while (!stopping_) {
      if (timers_.empty()) {
        timer_wake_.wait(lock);
        continue;
      }
      const Timer next = timers_.top();
      if (Clock::now() < next.at) {
        timer_wake_.wait_until(lock, next.at);
        continue;
      }
      timers_.pop();
      lock.unlock();
      // How late the simulator itself is: a fleet it cannot keep up with
      // would count its own delays as the coordinator's.
      if (submitted_) {
        timer_lag_ms_.push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - next.at)
                .count());
      }
      Worker& worker = workers_[next.worker];
      {
        std::lock_guard<std::mutex> worker_lock(worker.mu);
        if (next.slot == kReportTimer) {
          worker.reporting = false;
          MaybeReport(worker);
        } else {
          Finish(worker, next.slot, next.at);
        }
      }
      lock.lock();
    }
  }

  void Finish(Worker& worker, int slot_index, Clock::time_point at) {
    Slot& slot = worker.slots[slot_index];
    const v1::TestAssignment& test = slot.shard->tests(slot.next);
    busy_.push_back({slot.started, at});
    v1::ReportedResult& reported = *worker.pending.add_results();
    reported.set_suite_id(slot.shard->suite_id());
    reported.set_lease_id(slot.shard->lease_id());
    v1::TestResult& result = *reported.mutable_result();
    result.set_test_id(test.spec().id());
    result.set_attempt(test.attempt());
    result.set_status(v1::TEST_STATUS_PASSED);
    result.set_wall_ms(Seconds(at - slot.started) * 1000);
    result.set_cache_key(test.cache_key());
    result.set_worker(absl::StrCat("sim-", worker.index));
    result.set_slot(slot_index);
    if (++slot.next < slot.shard->tests_size()) {
      Start(worker, slot_index, at);
    } else {
      slot.shard.reset();
      MaybePull(worker);
    }
    MaybeReport(worker);
  }

  // As a real worker's reporter: results wait up to the report interval
  // for others to go with them, and one report is in flight at a time.
  void MaybeReport(Worker& worker) {
    if (worker.reporting || worker.pending.results_size() == 0) return;
    worker.reporting = true;
    if (!worker.report_timer_set) {
      worker.report_timer_set = true;
      AddTimer(
          {Clock::now() + std::chrono::milliseconds(worker.report_interval_ms),
           worker.index, kReportTimer});
      return;
    }
    worker.report_timer_set = false;
    ++reports_;
    {
      std::lock_guard<std::mutex> figures(mu_);
      ++reports_in_flight_;
    }
    auto call = std::make_shared<
        Call<v1::ReportResultsRequest, v1::ReportResultsResponse>>();
    call->request.Swap(&worker.pending);
    call->request.set_worker_id(worker.id);
    call->context.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::seconds(30));
    worker.stub->async()->ReportResults(
        &call->context, &call->request, &call->response,
        [this, call, w = &worker](grpc::Status status) {
          {
            std::lock_guard<std::mutex> lock(w->mu);
            w->reporting = false;
            MaybeReport(*w);
          }
          std::lock_guard<std::mutex> lock(mu_);
          --reports_in_flight_;
          if (!status.ok()) {
            Error("ReportResults", status);
          } else {
            reported_ += call->response.accepted();
            duplicates_ += call->response.ignored() + call->response.rejected();
          }
          // What Run waits for; not on every report (a thousand a second).
          if (reports_in_flight_ == 0 || reported_ >= total_tests_)
            all_reported_.notify_all();
        });
  }

  // Every worker beats once per heartbeat interval, spread over it.
  void HeartbeatLoop() {
    const int rounds = 20;
    for (int round = 0;; ++round) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stopped_.wait_for(
                lock, std::chrono::milliseconds(options_.heartbeat_ms / rounds),
                [&] { return stopping_.load(); })) {
          return;
        }
      }
      for (size_t i = round % rounds; i < workers_.size(); i += rounds) {
        Worker& worker = workers_[i];
        std::lock_guard<std::mutex> worker_lock(worker.mu);
        if (worker.id.empty()) continue;
        auto call = std::make_shared<
            Call<v1::HeartbeatRequest, v1::HeartbeatResponse>>();
        call->request.set_worker_id(worker.id);
        int running = 0;
        for (const Slot& slot : worker.slots) {
          if (slot.shard == nullptr) continue;
          call->request.add_lease_ids(slot.shard->lease_id());
          ++running;
        }
        call->request.set_running_tests(running);
        call->request.set_free_memory_kb(8 << 20);
        call->context.set_deadline(std::chrono::system_clock::now() +
                                   std::chrono::seconds(10));
        ++heartbeats_;
        worker.stub->async()->Heartbeat(
            &call->context, &call->request, &call->response,
            [this, call, w = &worker](grpc::Status status) {
              std::lock_guard<std::mutex> lock(w->mu);
              if (!status.ok() && !stopping_) Error("Heartbeat", status);
              if (status.ok()) {
                w->report_interval_ms =
                    std::max(options_.report_interval_ms,
                             call->response.report_interval_ms());
              }
            });
      }
    }
  }

  // Bytes received but not yet read, summed over the connections' two ends:
  // which side of the protocol falls behind (on this machine).
  struct Unread {
    int64_t coordinator = 0;
    int64_t fleet = 0;
  };
  Unread SampleUnread() const {
    const std::string port =
        options_.coordinator.substr(options_.coordinator.rfind(':') + 1);
    const std::string hex_port = absl::StrFormat(":%04X", std::stoi(port));
    Unread unread;
    // gRPC's sockets are IPv6 ones, IPv4 addresses mapped.
    for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
      std::ifstream table(path);
      std::string line;
      std::getline(table, line);  // the header
      while (std::getline(table, line)) {
        std::istringstream fields(line);
        std::string slot, local, remote, state, queues;
        if (!(fields >> slot >> local >> remote >> state >> queues)) continue;
        if (state != "01") continue;  // established
        const int64_t received =
            std::stoll(queues.substr(queues.find(':') + 1), nullptr, 16);
        if (absl::EndsWith(local, hex_port)) unread.coordinator += received;
        if (absl::EndsWith(remote, hex_port)) unread.fleet += received;
      }
    }
    return unread;
  }

  void SocketLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_.wait_for(lock, std::chrono::milliseconds(250),
                              [&] { return stopping_.load(); })) {
      if (!submitted_) continue;
      lock.unlock();
      const Unread unread = SampleUnread();
      lock.lock();
      unread_.push_back(unread);
    }
  }

  // The slow pulls' place in the window: the p99 of those started in each
  // whole second.
  std::vector<double> PullP99BySecond(double window_s) const {
    std::vector<std::vector<double>> by_second(static_cast<size_t>(window_s) +
                                               1);
    for (size_t i = 0; i < pull_ms_.size(); ++i) {
      const size_t second = static_cast<size_t>(pull_started_s_[i]);
      if (second < by_second.size()) by_second[second].push_back(pull_ms_[i]);
    }
    std::vector<double> p99s;
    for (const std::vector<double>& pulls : by_second)
      p99s.push_back(std::round(Percentile(pulls, 0.99) * 10) / 10);
    return p99s;
  }

  nlohmann::json Figures(const CpuAndMemory& before, const CpuAndMemory& after,
                         const CpuAndMemory& sim_before,
                         const CpuAndMemory& sim_after,
                         Clock::time_point submit_start,
                         Clock::time_point queued_at, Clock::time_point end) {
    // Slot time busy while work was queued: from the suites' acceptance to
    // the last test's dispatch.
    const Clock::time_point emptied =
        queue_emptied_ > queued_at ? queue_emptied_ : end;
    double busy_s = 0;
    const double window_s = Seconds(emptied - queued_at);
    // The same by whole second of the window: a start that fills the fleet
    // slowly and a steady state that leaves slots idle look alike in one sum.
    std::vector<double> busy_by_second(static_cast<size_t>(window_s), 0.0);
    for (const auto& [from, to] : busy_) {
      const Clock::time_point a = std::max(from, queued_at);
      const Clock::time_point b = std::min(to, emptied);
      if (b <= a) continue;
      busy_s += Seconds(b - a);
      const double a_s = Seconds(a - queued_at), b_s = Seconds(b - queued_at);
      for (size_t second = static_cast<size_t>(a_s);
           second < busy_by_second.size() && second < b_s; ++second) {
        busy_by_second[second] +=
            std::min<double>(b_s, second + 1) - std::max<double>(a_s, second);
      }
    }
    const double slots = static_cast<double>(options_.workers) * options_.slots;
    for (double& busy : busy_by_second)
      busy = std::round(busy / slots * 1000) / 1000;
    const double cpu_s = after.cpu_s - before.cpu_s;
    nlohmann::json out = {
        {"workers", options_.workers},
        {"slots", options_.workers * options_.slots},
        {"tests", total_tests_.load()},
        {"suites", options_.suites},
        {"reported", reported_},
        {"duplicates_or_rejected", duplicates_},
        {"errors", errors_.load()},
        {"heartbeats", heartbeats_.load()},
        {"reports", reports_.load()},
        {"submit_s", Seconds(queued_at - submit_start)},
        {"queued_window_s", window_s},
        {"makespan_s", Seconds(end - queued_at)},
        {"dispatches_per_s", window_s > 0 ? dispatched_.load() / window_s : 0},
        {"busy_while_queued", window_s > 0 ? busy_s / (slots * window_s) : 0},
        {"busy_by_second", busy_by_second},
        {"pull_with_work_p50_ms", Percentile(pull_ms_, 0.5)},
        {"pull_with_work_p99_ms", Percentile(pull_ms_, 0.99)},
        {"pulls_with_work", pull_ms_.size()},
        {"pull_p99_ms_by_second", PullP99BySecond(window_s)},
        {"sim_timer_lag_p50_ms", Percentile(timer_lag_ms_, 0.5)},
        {"sim_timer_lag_p99_ms", Percentile(timer_lag_ms_, 0.99)},
        // Over the same span as the coordinator's: both share the host.
        {"sim_cpu_s", sim_after.cpu_s - sim_before.cpu_s},
    };
    // Whose time a slow pull was: each part's own p50 and p99 (the parts'
    // p99s need not add up to the whole's).
    if (!pull_in_ms_.empty()) {
      for (const auto& [name, parts] : {std::pair{"before", &pull_before_ms_},
                                        std::pair{"in", &pull_in_ms_},
                                        std::pair{"after", &pull_after_ms_}}) {
        out[absl::StrCat("pull_", name, "_coordinator_p50_ms")] =
            Percentile(*parts, 0.5);
        out[absl::StrCat("pull_", name, "_coordinator_p99_ms")] =
            Percentile(*parts, 0.99);
      }
    }
    std::vector<double> coordinator_unread, fleet_unread;
    for (const Unread& u : unread_) {
      coordinator_unread.push_back(u.coordinator / 1024.0);
      fleet_unread.push_back(u.fleet / 1024.0);
    }
    out["coordinator_unread_kib_p50"] = Percentile(coordinator_unread, 0.5);
    out["coordinator_unread_kib_max"] = Percentile(coordinator_unread, 1);
    out["sim_unread_kib_p50"] = Percentile(fleet_unread, 0.5);
    out["sim_unread_kib_max"] = Percentile(fleet_unread, 1);
    if (options_.coordinator_pid > 0) {
      out["coordinator_cpu_s"] = cpu_s;
      out["coordinator_cpu_us_per_test"] =
          total_tests_ > 0 ? cpu_s * 1e6 / total_tests_ : 0;
      out["coordinator_rss_mib"] = after.rss_kb / 1024.0;
      out["coordinator_peak_rss_mib"] = after.peak_rss_kb / 1024.0;
    }
    return out;
  }

  const Options options_;
  std::vector<std::unique_ptr<v1::Coordinator::Stub>> stubs_;
  std::vector<Worker> workers_;  // built in place: each holds a mutex
  // The tests' and reports' ends, in time order.
  std::mutex timers_mu_;
  std::condition_variable timer_wake_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  // Written by the timer thread alone, read once it has stopped.
  std::vector<std::pair<Clock::time_point, Clock::time_point>> busy_;
  std::vector<double> timer_lag_ms_;
  // The figures the callbacks gather, and the run's progress.
  std::mutex mu_;  // taken last: after a worker's lock, never before
  std::condition_variable all_reported_;
  std::condition_variable stopped_;
  std::vector<double> pull_ms_;
  std::vector<double> pull_started_s_;  // when each of pull_ms_ started
  // pull_ms_ split at the coordinator's stamps: before its handler got the
  // call (our send, the network, its socket and gRPC), in its handler, and
  // after (its send, the network, our socket and gRPC).
  // The coordinator's steady clock is ours only on this host.
  const bool split_pulls_ = IsLoopbackAddress(options_.coordinator);
  std::vector<double> pull_before_ms_, pull_in_ms_, pull_after_ms_;

  std::vector<Unread> unread_;  // sampled every 250 ms
  std::vector<std::string> suite_ids_;
  Clock::time_point queued_at_;
  Clock::time_point queue_emptied_;
  int reports_in_flight_ = 0;
  int64_t reported_ = 0;
  int64_t duplicates_ = 0;
  // Counted without a lock, from any thread.
  std::atomic<bool> submitted_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> total_tests_{0};
  std::atomic<int64_t> dispatched_{0};
  std::atomic<int64_t> errors_{0};
  std::atomic<int64_t> heartbeats_{0};
  std::atomic<int64_t> reports_{0};  // ReportResults calls
};

}  // namespace
}  // namespace testfleet

int main(int argc, char** argv) {
  // As the real worker runs: Debian's Abseil checks every lock for deadlock
  // cycles by default, which took 6% of the simulator's CPU in `perf`.
  testfleet::DisableMutexDeadlockDetection();
  testfleet::Options options;
  CLI::App app{"fleet_sim: a fleet of simulated workers against a coordinator"};
  app.add_option("--coordinator", options.coordinator, "HOST:PORT")->required();
  app.add_option("--workers", options.workers)->capture_default_str();
  app.add_option("--slots", options.slots)->capture_default_str();
  app.add_option("--tests", options.tests, "in all, split over the suites")
      ->capture_default_str();
  app.add_option("--suites", options.suites, "submitted at once")
      ->capture_default_str();
  app.add_option("--mean-ms", options.mean_ms, "mean test duration")
      ->capture_default_str();
  app.add_option("--sigma", options.sigma, "of the log-normal durations")
      ->capture_default_str();
  app.add_option("--run-sigma", options.run_sigma,
                 "each run's duration is its expected one times a log-normal "
                 "factor of this sigma (0: exactly as expected)")
      ->capture_default_str();
  app.add_option("--connections", options.connections,
                 "gRPC connections the workers share (0: one each)");
  app.add_option("--pull-wait-ms", options.pull_wait_ms)->capture_default_str();
  app.add_option("--heartbeat-ms", options.heartbeat_ms)->capture_default_str();
  app.add_option("--report-interval-ms", options.report_interval_ms)
      ->capture_default_str();
  app.add_option("--coordinator-pid", options.coordinator_pid,
                 "read its CPU time and memory from /proc");
  app.add_option("--seed", options.seed, "durations, and the tests' keys")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (options.workers < 1 || options.slots < 1 ||
      options.tests < options.suites || options.suites < 1) {
    std::fprintf(stderr,
                 "fleet_sim: --workers, --slots and --suites must be at least "
                 "1 and --tests at least --suites\n");
    return 2;
  }
  // A connection per worker: thousands of descriptors.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  testfleet::Fleet fleet(options);
  if (!fleet.Register()) return 3;
  nlohmann::json figures = fleet.Run();
  std::printf("%s\n", figures.dump(2).c_str());
  std::fflush(stdout);
  // Calls still in flight (an overloaded coordinator's) would call back into
  // a fleet being destroyed: leave without destructors.
  std::_Exit(figures["errors"].get<int64_t>() == 0 &&
                     figures["reported"] == figures["tests"]
                 ? 0
                 : 1);
}
