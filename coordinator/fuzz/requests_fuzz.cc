// libFuzzer target: the coordinator's request handlers (the logic behind the
// gRPC service) fed a sequence of arbitrary requests: each record is one op
// byte, a 2-byte length and that many bytes of a serialized request. A valid
// suite and worker exist first, so the fuzzer starts from a live state.
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "coordinator/coordinator.h"

namespace {

using namespace testfleet;

v1::SuiteSpec Seed() {
  v1::SuiteSpec suite;
  suite.set_name("seed");
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeClock clock;
  CoordinatorOptions options;
  options.clock = &clock;
  Coordinator coordinator(options);
  auto seeded = coordinator.Submit(Seed());
  v1::RegisterWorkerRequest hello;
  hello.set_name("fuzz");
  hello.set_slots(2);
  const std::string worker = coordinator.RegisterWorker(hello).worker_id();
  const std::string suite = seeded.ok() ? seeded->suite_id() : "";

  size_t at = 0;
  while (at + 3 <= size) {
    const uint8_t op = data[at];
    const size_t length = data[at + 1] | (size_t{data[at + 2]} << 8);
    at += 3;
    const std::string bytes(reinterpret_cast<const char*>(data + at),
                            std::min(length, size - at));
    at += bytes.size();
    switch (op % 9) {
      case 0: {
        v1::SuiteSpec spec;
        if (Parse(bytes, &spec)) (void)coordinator.Submit(spec);
        break;
      }
      case 1: {
        v1::RegisterWorkerRequest request;
        if (Parse(bytes, &request)) (void)coordinator.RegisterWorker(request);
        break;
      }
      case 2: {
        v1::PullWorkRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        request.set_wait_ms(0);  // never block the fuzzer
        (void)coordinator.PullWork(request);
        break;
      }
      case 3: {
        v1::ReportResultsRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        for (auto& reported : *request.mutable_results()) {
          if (reported.suite_id().empty()) reported.set_suite_id(suite);
        }
        (void)coordinator.ReportResults(request);
        break;
      }
      case 4: {
        v1::HeartbeatRequest request;
        if (!Parse(bytes, &request)) break;
        if (request.worker_id().empty()) request.set_worker_id(worker);
        (void)coordinator.Heartbeat(request);
        break;
      }
      case 5:
        (void)coordinator.Cancel(bytes.empty() ? suite : bytes);
        break;
      case 6:
        (void)coordinator.Report(bytes.empty() ? suite : bytes);
        (void)coordinator.Progress(bytes.empty() ? suite : bytes);
        break;
      case 7:
        (void)coordinator.Explain(suite, bytes);
        break;
      case 8:
        clock.Advance(absl::Seconds(bytes.size()));
        coordinator.ExpireLeases();
        break;
    }
  }
  return 0;
}
