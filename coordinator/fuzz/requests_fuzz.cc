// libFuzzer target: the coordinator's request handlers (the logic behind the
// gRPC service) fed a sequence of arbitrary requests, each made by one of the
// callers of a real token table: two submitters, a viewer and a worker
// token. Each record is one op byte, a caller byte, a 2-byte length and that
// many bytes of a serialized request. A suite of each submitter and a worker
// exist first, so the fuzzer starts from a live state.
//
// Besides not crashing, two invariants are checked after every op:
// - no result is accepted unless the worker reporting it was given exactly
//   that suite's test, for that attempt, under the lease it names;
// - no suite is read or changed by a submitter other than its owner.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <tuple>

#include "common/clock.h"
#include "common/security.h"
#include "coordinator/coordinator.h"

namespace {

using namespace testfleet;

v1::SuiteSpec Seed(const std::string& owner) {
  v1::SuiteSpec suite;
  suite.set_name("seed-" + owner);
  suite.set_owner(owner);
  for (int i = 0; i < 3; ++i) {
    v1::TestSpec* test = suite.add_tests();
    test->set_id("t" + std::to_string(i));
    test->add_argv("true");
    test->set_retries(1);
  }
  return suite;
}

template <typename Message>
bool Parse(const std::string& bytes, Message* message) {
  return message->ParseFromString(bytes);
}

void Check(bool invariant, const char* what) {
  if (invariant) return;
  std::fprintf(stderr, "invariant broken: %s\n", what);
  std::abort();
}

// The callers, authorized by a real token table written once per process.
struct Callers {
  Principal alice, bob, viewer, worker;
};
const Callers& LoadCallers() {
  static const Callers callers = [] {
    char path[] = "/tmp/fuzz-tokens-XXXXXX";
    const int fd = mkstemp(path);
    const std::string table =
        "aaaaaaaaaaaaaaaaaaaa alice submit\n"
        "bbbbbbbbbbbbbbbbbbbb bob submit\n"
        "vvvvvvvvvvvvvvvvvvvv carol view\n"
        "wwwwwwwwwwwwwwwwwwww fleet worker\n";
    Check(fd >= 0 && write(fd, table.data(), table.size()) ==
                         static_cast<ssize_t>(table.size()),
          "token file written");
    close(fd);
    auto authority = TokenAuthority::Load(path);
    unlink(path);
    Check(authority.ok(), "token file loads");
    auto as = [&](const std::string& token, Role role) {
      auto principal =
          (*authority)
              ->Authorize("Bearer " + token, "ipv4:127.0.0.1:1", false, role);
      Check(principal.ok(), "seed tokens authorize");
      return *principal;
    };
    return Callers{as("aaaaaaaaaaaaaaaaaaaa", Role::kSubmit),
                   as("bbbbbbbbbbbbbbbbbbbb", Role::kSubmit),
                   as("vvvvvvvvvvvvvvvvvvvv", Role::kView),
                   as("wwwwwwwwwwwwwwwwwwww", Role::kWorker)};
  }();
  return callers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Callers& callers = LoadCallers();
  FakeClock clock;
  CoordinatorOptions options;
  options.clock = &clock;
  Coordinator coordinator(options);
  auto alices = coordinator.Submit(Seed(callers.alice.name));
  auto bobs = coordinator.Submit(Seed(callers.bob.name));
  Check(alices.ok() && bobs.ok(), "seed suites are accepted");
  const std::string owned_by[2][2] = {{alices->suite_id(), "alice"},
                                      {bobs->suite_id(), "bob"}};
  v1::RegisterWorkerRequest hello;
  hello.set_name("fuzz");
  hello.set_slots(2);
  auto registered = coordinator.RegisterWorker(hello, callers.worker.name);
  Check(registered.ok(), "the seed worker registers");
  const std::string worker = registered->worker_id();
  // (suite, lease, test, attempt, worker) handed out by PullWork.
  std::set<std::tuple<std::string, std::string, std::string, int, std::string>>
      grants;

  size_t at = 0;
  while (at + 4 <= size) {
    const uint8_t op = data[at];
    const Principal& caller = data[at + 1] % 3 == 0   ? callers.alice
                              : data[at + 1] % 3 == 1 ? callers.bob
                                                      : callers.viewer;
    const size_t length = data[at + 2] | (size_t{data[at + 3]} << 8);
    at += 4;
    const std::string bytes(reinterpret_cast<const char*>(data + at),
                            std::min(length, size - at));
    at += bytes.size();
    const std::string& suite = owned_by[bytes.size() % 2][0];
    const std::string& owner = owned_by[bytes.size() % 2][1];
    const bool foreign = caller.name != owner && !caller.Has(Role::kView);
    switch (op % 9) {
      case 0: {
        v1::SuiteSpec spec;
        if (!Parse(bytes, &spec)) break;
        spec.set_owner(caller.name);
        (void)coordinator.Submit(spec);
        break;
      }
      case 1: {
        v1::RegisterWorkerRequest request;
        if (Parse(bytes, &request))
          (void)coordinator.RegisterWorker(request, callers.worker.name);
        break;
      }
      case 2: {
        v1::PullWorkRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        request.set_wait_ms(0);  // never block the fuzzer
        v1::PullWorkResponse response = coordinator.PullWork(request);
        for (const v1::Shard& shard : response.shards()) {
          for (const v1::TestAssignment& test : shard.tests()) {
            grants.emplace(shard.suite_id(), shard.lease_id(), test.spec().id(),
                           test.attempt(), request.worker_id());
          }
        }
        break;
      }
      case 3: {
        v1::ReportResultsRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        int granted = 0;
        for (auto& reported : *request.mutable_results()) {
          if (reported.suite_id().empty()) reported.set_suite_id(suite);
          granted += grants.count({reported.suite_id(), reported.lease_id(),
                                   reported.result().test_id(),
                                   reported.result().attempt(),
                                   request.worker_id()}) > 0;
        }
        auto answer = coordinator.ReportResults(request);
        Check(!answer.ok() || answer->accepted() <= granted,
              "no result is accepted without its lease");
        break;
      }
      case 4: {
        v1::HeartbeatRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        (void)coordinator.Heartbeat(request);
        break;
      }
      case 5: {
        auto cancelled = coordinator.Cancel(suite, caller);
        Check(!(cancelled.ok() && caller.name != owner),
              "only the owner cancels a suite");
        break;
      }
      case 6: {
        auto report = coordinator.Report(suite, caller);
        auto progress = coordinator.Progress(suite, caller);
        Check(!(foreign && (report.ok() || progress.ok())),
              "no suite is visible to another owner");
        break;
      }
      case 7: {
        auto explained = coordinator.Explain(suite, bytes, caller);
        Check(!(foreign && explained.ok()),
              "no suite is explained to another owner");
        break;
      }
      case 8:
        clock.Advance(absl::Seconds(bytes.size()));
        coordinator.ExpireLeases();
        break;
    }
  }
  return 0;
}
