#include "common/metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/server_interceptor.h"

namespace testfleet {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

class ErrorCounting : public grpc::experimental::Interceptor {
 public:
  ErrorCounting(prometheus::Family<prometheus::Counter>* errors,
                std::string method)
      : errors_(errors), method_(std::move(method)) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      if (!status.ok()) {
        errors_
            ->Add(
                {{"method", method_}, {"code", CodeName(status.error_code())}})
            .Increment();
      }
    }
    methods->Proceed();
  }

 private:
  prometheus::Family<prometheus::Counter>* errors_;
  std::string method_;
};

class ErrorCountingFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ErrorCountingFactory(prometheus::Registry& registry)
      : errors_(&prometheus::BuildCounter()
                     .Name("testfleet_rpc_errors_total")
                     .Help("RPCs answered with an error, by method and code")
                     .Register(registry)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ErrorCounting(errors_, info->method());
  }

 private:
  prometheus::Family<prometheus::Counter>* errors_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry,
    std::function<void()> refresh) {
  auto server = std::unique_ptr<MetricsServer>(new MetricsServer());
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, " (", e.what(),
                     "); choose another --metrics-listen"));
  }
  server->registry_ = std::move(registry);
  server->exposer_->RegisterCollectable(server->registry_);
  server->refresh_ = std::move(refresh);
  if (server->refresh_) {
    server->refresh_();
    server->refresher_ = std::thread([s = server.get()] {
      while (!s->stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
        s->refresh_();
      }
    });
  }
  return server;
}

MetricsServer::~MetricsServer() {
  stop_.Notify();
  if (refresher_.joinable()) refresher_.join();
}

int MetricsServer::port() const {
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void CountRpcErrors(grpc::ServerBuilder& builder,
                    prometheus::Registry& registry) {
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<ErrorCountingFactory>(registry));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry,
                            const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(
      {});
}

}  // namespace testfleet
