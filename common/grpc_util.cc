#include "common/grpc_util.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/security.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/client_interceptor.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

// Adds "authorization: Bearer TOKEN" to every call of a channel.
class BearerToken : public grpc::experimental::Interceptor {
 public:
  explicit BearerToken(const std::string* header) : header_(header) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* header_;
};

class BearerTokenFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenFactory(std::string header)
      : header_(std::move(header)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerToken(&header_);
  }

 private:
  std::string header_;
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& what,
                            const std::string& address) {
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the ", what, " at ", address, " (",
                     status.error_message(),
                     "); check that it is running and the address is right"));
  }
  return FromGrpcStatus(status);
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

void SetSmallCallArguments(grpc::ChannelArguments& args) {
  // At 1,000 simulated workers, BDP pings cost the coordinator 3 to 18% of
  // its CPU a test (BENCHMARKS.md, issue 19).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 4 << 20);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           Traffic traffic) {
  grpc::ChannelArguments args;
  if (traffic == Traffic::kSmallCalls) SetSmallCallArguments(args);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  // Keep idle workers' connections alive through NAT and proxies, within the
  // server's permitted ping rate (ConfigureServerBuilder).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  const ClientSecurity& security = GetClientSecurity();
  // Checked by SetClientSecurity already; a failure here cannot happen.
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      MakeChannelCredentials(security.tls)
          .value_or(grpc::InsecureChannelCredentials());
  if (security.token.empty()) {
    return grpc::CreateCustomChannel(address, credentials, args);
  }
  const bool plaintext =
      security.tls.ca_file.empty() && security.tls.cert_file.empty();
  if (plaintext && !IsLoopbackAddress(address)) {
    spdlog::error(
        "not sending the token in plaintext to {}: connect with --tls-ca",
        address);
    return grpc::CreateCustomChannel(address, credentials, args);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<BearerTokenFactory>("Bearer " + security.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, args, std::move(interceptors));
}

constexpr int kIdleServerThreads = 16;

void ConfigureServerBuilder(grpc::ServerBuilder& builder) {
  // gRPC sets SO_REUSEPORT by default: a second server on a port in use
  // would share it and split the clients. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // The sync server keeps at most MAX_POLLERS idle threads (default 2) and
  // starts a thread whenever fewer than MIN_POLLERS wait; with workers' long
  // polls holding threads, each call then cost a thread start and exit (350
  // a second measured under load). Idle threads are cheap; churn is not.
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, kIdleServerThreads);
}

std::unique_ptr<grpc::Server> ServeOnLoopback(grpc::Service* service,
                                              int* port) {
  grpc::ServerBuilder builder;
  ConfigureServerBuilder(builder);
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           port);
  builder.RegisterService(service);
  return builder.BuildAndStart();
}

std::string PullTimingStampNow() {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count());
}

std::optional<std::chrono::steady_clock::time_point> PullTimingStampOf(
    const grpc::ClientContext& context, const char* key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto found = trailers.find(key);
  int64_t ns = 0;
  if (found == trailers.end() ||
      !absl::SimpleAtoi(
          absl::string_view(found->second.data(), found->second.size()), &ns)) {
    return std::nullopt;
  }
  return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
}

}  // namespace testfleet
