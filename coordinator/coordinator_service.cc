#include "coordinator/coordinator_service.h"

#include "common/grpc_util.h"

namespace testfleet {
namespace {

// Copies a StatusOr's value into the response, or returns its status.
template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status CoordinatorService::SubmitSuite(
    grpc::ServerContext*, const v1::SubmitSuiteRequest* request,
    v1::SubmitSuiteResponse* response) {
  return Answer(coordinator_->Submit(request->suite()), response);
}

grpc::Status CoordinatorService::WatchSuite(
    grpc::ServerContext* context, const v1::SuiteRef* request,
    grpc::ServerWriter<v1::WatchEvent>* writer) {
  size_t cursor = 0;
  while (!context->IsCancelled()) {
    v1::WatchEvent event;
    absl::StatusOr<bool> ended = coordinator_->NextEvent(
        request->suite_id(), &cursor, absl::Seconds(1), &event);
    if (!ended.ok()) return ToGrpcStatus(ended.status());
    if (!writer->Write(event)) return grpc::Status::OK;  // the client left
    if (*ended) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetStatus(grpc::ServerContext*,
                                           const v1::SuiteRef* request,
                                           v1::SuiteProgress* response) {
  return Answer(coordinator_->Progress(request->suite_id()), response);
}

grpc::Status CoordinatorService::CancelSuite(grpc::ServerContext*,
                                             const v1::SuiteRef* request,
                                             v1::CancelResponse* response) {
  absl::StatusOr<int> cancelled = coordinator_->Cancel(request->suite_id());
  if (!cancelled.ok()) return ToGrpcStatus(cancelled.status());
  response->set_cancelled(*cancelled);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetReport(grpc::ServerContext*,
                                           const v1::SuiteRef* request,
                                           v1::SuiteReport* response) {
  return Answer(coordinator_->Report(request->suite_id()), response);
}

grpc::Status CoordinatorService::ListWorkers(
    grpc::ServerContext*, const v1::ListWorkersRequest*,
    v1::ListWorkersResponse* response) {
  *response = coordinator_->ListWorkers();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Explain(grpc::ServerContext*,
                                         const v1::ExplainRequest* request,
                                         v1::ExplainResponse* response) {
  return Answer(coordinator_->Explain(request->suite_id(), request->test_id()),
                response);
}

grpc::Status CoordinatorService::RegisterWorker(
    grpc::ServerContext*, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  *response = coordinator_->RegisterWorker(*request);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::PullWork(grpc::ServerContext*,
                                          const v1::PullWorkRequest* request,
                                          v1::PullWorkResponse* response) {
  *response = coordinator_->PullWork(*request);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetHistory(grpc::ServerContext*,
                                            const v1::HistoryRequest* request,
                                            v1::HistoryResponse* response) {
  return Answer(coordinator_->History(*request), response);
}

grpc::Status CoordinatorService::SetBaseline(
    grpc::ServerContext*, const v1::SetBaselineRequest* request,
    v1::Baseline* response) {
  return Answer(coordinator_->SetBaseline(*request), response);
}

grpc::Status CoordinatorService::ReportResults(
    grpc::ServerContext*, const v1::ReportResultsRequest* request,
    v1::ReportResultsResponse* response) {
  return Answer(coordinator_->ReportResults(*request), response);
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext*,
                                           const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  *response = coordinator_->Heartbeat(*request);
  return grpc::Status::OK;
}

}  // namespace testfleet
