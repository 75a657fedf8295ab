#pragma once

#include "common/security.h"
#include "coordinator/coordinator.h"
#include "coordinator/serial_runner.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {

/// The Coordinator gRPC service: checks the caller's token (`auth`, not
/// owned; null: everyone allowed), unpacks requests, calls Coordinator (not
/// owned), packs answers and statuses.
///
/// Roles: submit for suites, their progress and reports, history and
/// baselines (cancel: own suites only, or admin); worker for registering,
/// pulling, reporting and heartbeats, as the worker it registered.
///
/// A worker's calls are served with gRPC's callback API, on gRPC's own
/// threads: a long poll waiting for work holds a coordinator entry, not a
/// server thread, so thousands of workers can wait at once; a report is
/// settled on the intake's thread (SerialRunner) and waits for its group
/// commit the same way; a heartbeat is answered where it is read. At a
/// thousand workers that is thousands of calls a second that never wake a
/// sync-server thread.
class CoordinatorService final
    : public v1::Coordinator::WithCallbackMethod_PullWork<
          v1::Coordinator::WithCallbackMethod_ReportResults<
              v1::Coordinator::WithCallbackMethod_Heartbeat<
                  v1::Coordinator::Service>>> {
 public:
  explicit CoordinatorService(Coordinator* coordinator,
                              const TokenAuthority* auth = nullptr)
      : coordinator_(coordinator), auth_(auth != nullptr ? auth : &open_) {}

  grpc::Status SubmitSuite(grpc::ServerContext*,
                           const v1::SubmitSuiteRequest* request,
                           v1::SubmitSuiteResponse* response) override;
  grpc::Status WatchSuite(grpc::ServerContext* context,
                          const v1::SuiteRef* request,
                          grpc::ServerWriter<v1::WatchEvent>* writer) override;
  grpc::Status GetStatus(grpc::ServerContext*, const v1::SuiteRef* request,
                         v1::SuiteProgress* response) override;
  grpc::Status CancelSuite(grpc::ServerContext*, const v1::SuiteRef* request,
                           v1::CancelResponse* response) override;
  grpc::Status GetReport(grpc::ServerContext*, const v1::SuiteRef* request,
                         v1::SuiteReport* response) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*,
                           v1::ListWorkersResponse* response) override;
  grpc::Status Explain(grpc::ServerContext*, const v1::ExplainRequest* request,
                       v1::ExplainResponse* response) override;
  grpc::Status GetHistory(grpc::ServerContext*,
                          const v1::HistoryRequest* request,
                          v1::HistoryResponse* response) override;
  grpc::Status SetBaseline(grpc::ServerContext*,
                           const v1::SetBaselineRequest* request,
                           v1::Baseline* response) override;
  grpc::Status RegisterWorker(grpc::ServerContext*,
                              const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* PullWork(grpc::CallbackServerContext* context,
                                     const v1::PullWorkRequest* request,
                                     v1::PullWorkResponse* response) override;
  grpc::ServerUnaryReactor* ReportResults(
      grpc::CallbackServerContext* context,
      const v1::ReportResultsRequest* request,
      v1::ReportResultsResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;

 private:
  // The caller when it holds `role`, acting as `worker_id` if one is named.
  absl::StatusOr<Principal> Caller(grpc::ServerContextBase* context, Role role,
                                   const std::string& worker_id = "");
  // A worker's callback call: null when `worker_id`'s caller may make it,
  // else the reactor that refused it.
  grpc::ServerUnaryReactor* RefuseWorker(grpc::CallbackServerContext* context,
                                         const std::string& worker_id);

  Coordinator* coordinator_;
  const TokenAuthority open_;
  const TokenAuthority* auth_;
  // Reports, settled in arrival order; past this many bytes waiting, gRPC's
  // thread settles its report itself and so reads no faster than reports
  // are settled. Last: stopped (after settling what it holds) before the
  // rest goes.
  static constexpr int64_t kMaxQueuedReportBytes = 64 << 20;
  SerialRunner intake_{kMaxQueuedReportBytes, "tf-intake"};
};

}  // namespace testfleet
