#include "coordinator/coordinator_service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_util.h"
#include "common/status_macros.h"

namespace testfleet {
namespace {

// Copies a StatusOr's value into the response, or returns its status.
template <typename T>
grpc::Status Answer(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

// One pull: finished when the coordinator answers it, which may be at once,
// when work arrives on another call's thread, at its wait's end or when its
// client leaves. gRPC calls OnCancel and OnDone only after the handler
// returned this reactor, so the constructor's answer cannot race them.
class PullReactor final : public grpc::ServerUnaryReactor {
 public:
  PullReactor(Coordinator* coordinator, grpc::CallbackServerContext* context,
              const v1::PullWorkRequest& request,
              v1::PullWorkResponse* response)
      : coordinator_(coordinator) {
    // The answer may come on another thread, after the coordinator's lock:
    // what the constructor added to `context` happened before it.
    const bool timed = context->client_metadata().count(kPullTimingRequest) > 0;
    if (timed) {
      context->AddTrailingMetadata(kPullReceivedNs, PullTimingStampNow());
    }
    pull_id_ = coordinator_->PullWork(
        request, [this, context, timed, response](v1::PullWorkResponse answer) {
          *response = std::move(answer);
          if (timed) {
            context->AddTrailingMetadata(kPullAnsweredNs, PullTimingStampNow());
          }
          Finish(grpc::Status::OK);
        });
  }
  void OnCancel() override { coordinator_->AbandonPull(pull_id_); }
  void OnDone() override { delete this; }

 private:
  Coordinator* const coordinator_;
  uint64_t pull_id_ = 0;
};

}  // namespace

absl::StatusOr<Principal> CoordinatorService::Caller(
    grpc::ServerContextBase* context, Role role, const std::string& worker_id) {
  absl::StatusOr<Principal> caller = auth_->Authorize(*context, role);
  if (caller.ok() && !worker_id.empty() && !caller->Has(Role::kAdmin)) {
    RETURN_IF_ERROR(coordinator_->CheckWorkerOwner(worker_id, caller->name));
  }
  return caller;
}

// Every handler starts by naming the role it needs.
#define TF_AUTHORIZE(caller, ...)                         \
  absl::StatusOr<Principal> caller = Caller(__VA_ARGS__); \
  if (!caller.ok()) return ToGrpcStatus(caller.status())
// Handlers that read suites: submit (its own) or view (all); the
// coordinator checks each suite against the caller.
#define TF_AUTHORIZE_READER(caller)                                    \
  absl::StatusOr<Principal> caller = auth_->AuthorizeReader(*context); \
  if (!caller.ok()) return ToGrpcStatus(caller.status())

grpc::Status CoordinatorService::SubmitSuite(
    grpc::ServerContext* context, const v1::SubmitSuiteRequest* request,
    v1::SubmitSuiteResponse* response) {
  TF_AUTHORIZE(caller, context, Role::kSubmit);
  // Taken, not copied: one copy of a suite of up to 256 MiB, not two.
  v1::SuiteSpec spec;
  spec.Swap(TakeRequest(request).mutable_suite());
  spec.set_owner(caller->name);
  return Answer(coordinator_->Submit(std::move(spec)), response);
}

grpc::Status CoordinatorService::WatchSuite(
    grpc::ServerContext* context, const v1::SuiteRef* request,
    grpc::ServerWriter<v1::WatchEvent>* writer) {
  TF_AUTHORIZE_READER(caller);
  Coordinator::WatchCursor cursor;
  while (!context->IsCancelled()) {
    v1::WatchEvent event;
    absl::StatusOr<bool> ended = coordinator_->NextEvent(
        request->suite_id(), &cursor, absl::Seconds(1), &event, *caller);
    if (!ended.ok()) return ToGrpcStatus(ended.status());
    if (!writer->Write(event)) return grpc::Status::OK;  // the client left
    if (*ended) return grpc::Status::OK;
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetStatus(grpc::ServerContext* context,
                                           const v1::SuiteRef* request,
                                           v1::SuiteProgress* response) {
  TF_AUTHORIZE_READER(caller);
  return Answer(coordinator_->Progress(request->suite_id(), *caller), response);
}

grpc::Status CoordinatorService::CancelSuite(grpc::ServerContext* context,
                                             const v1::SuiteRef* request,
                                             v1::CancelResponse* response) {
  TF_AUTHORIZE(caller, context, Role::kSubmit);
  absl::StatusOr<int> cancelled =
      coordinator_->Cancel(request->suite_id(), *caller);
  if (!cancelled.ok()) return ToGrpcStatus(cancelled.status());
  response->set_cancelled(*cancelled);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::GetReport(grpc::ServerContext* context,
                                           const v1::SuiteRef* request,
                                           v1::SuiteReport* response) {
  TF_AUTHORIZE_READER(caller);
  return Answer(coordinator_->Report(request->suite_id(), *caller), response);
}

grpc::Status CoordinatorService::ListWorkers(
    grpc::ServerContext* context, const v1::ListWorkersRequest*,
    v1::ListWorkersResponse* response) {
  TF_AUTHORIZE_READER(caller);
  *response = coordinator_->ListWorkers();
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Explain(grpc::ServerContext* context,
                                         const v1::ExplainRequest* request,
                                         v1::ExplainResponse* response) {
  TF_AUTHORIZE_READER(caller);
  return Answer(
      coordinator_->Explain(request->suite_id(), request->test_id(), *caller),
      response);
}

grpc::Status CoordinatorService::RegisterWorker(
    grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  TF_AUTHORIZE(caller, context, Role::kWorker);
  return Answer(coordinator_->RegisterWorker(*request, caller->name), response);
}

grpc::ServerUnaryReactor* CoordinatorService::RefuseWorker(
    grpc::CallbackServerContext* context, const std::string& worker_id) {
  absl::StatusOr<Principal> caller = Caller(context, Role::kWorker, worker_id);
  if (caller.ok()) return nullptr;
  grpc::ServerUnaryReactor* refused = context->DefaultReactor();
  refused->Finish(ToGrpcStatus(caller.status()));
  return refused;
}

grpc::ServerUnaryReactor* CoordinatorService::PullWork(
    grpc::CallbackServerContext* context, const v1::PullWorkRequest* request,
    v1::PullWorkResponse* response) {
  if (auto* refused = RefuseWorker(context, request->worker_id()))
    return refused;
  return new PullReactor(coordinator_, context, *request, response);
}

grpc::Status CoordinatorService::GetHistory(grpc::ServerContext* context,
                                            const v1::HistoryRequest* request,
                                            v1::HistoryResponse* response) {
  TF_AUTHORIZE_READER(caller);
  return Answer(coordinator_->History(*request, *caller), response);
}

grpc::Status CoordinatorService::SetBaseline(
    grpc::ServerContext* context, const v1::SetBaselineRequest* request,
    v1::Baseline* response) {
  TF_AUTHORIZE(caller, context, Role::kSubmit);
  return Answer(coordinator_->SetBaseline(*request, *caller), response);
}

grpc::ServerUnaryReactor* CoordinatorService::ReportResults(
    grpc::CallbackServerContext* context,
    const v1::ReportResultsRequest* request,
    v1::ReportResultsResponse* response) {
  if (auto* refused = RefuseWorker(context, request->worker_id()))
    return refused;
  // Settled on the intake's thread (here when its queue is full), finished
  // on the store's writer thread once the results are durable; the request
  // and response live until Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  SerialRunner::Task settle = [this, request, reactor, response] {
    coordinator_->ReportResults(
        *request,
        [reactor, response](absl::StatusOr<v1::ReportResultsResponse> answer) {
          reactor->Finish(Answer(std::move(answer), response));
        });
  };
  const auto bytes = static_cast<int64_t>(request->ByteSizeLong());
  if (auto refused = intake_.RunWithin(std::move(settle), bytes))
    std::move(refused.value())();
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(
    grpc::CallbackServerContext* context, const v1::HeartbeatRequest* request,
    v1::HeartbeatResponse* response) {
  if (auto* refused = RefuseWorker(context, request->worker_id()))
    return refused;
  *response = coordinator_->Heartbeat(*request);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace testfleet
