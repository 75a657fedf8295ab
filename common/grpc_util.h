#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace testfleet {

/// Largest gRPC message we send or accept: big enough for a 100,000-test
/// suite and its report.
inline constexpr int kMaxMessageBytes = 256 << 20;

/// absl::Status <-> grpc::Status, the only place they are converted.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

/// Like FromGrpcStatus, but an unreachable server becomes one line telling
/// the user what to check: "cannot reach the coordinator at HOST:PORT ...".
absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& what,
                            const std::string& address);

/// A sync handler's request, to take parts out of rather than copy them:
/// gRPC hands it over as const, but the message is the handler's alone and is
/// dropped when the handler returns.
template <typename Request>
Request& TakeRequest(const Request* request) {
  return *const_cast<Request*>(request);
}

/// A gRPC deadline `d` from now.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration d);

/// What a channel mostly carries.
enum class Traffic {
  kGeneral,
  /// Many small calls (a worker's pulls, reports and heartbeats): no
  /// HTTP/2 BDP probing, whose pings the server answers on every burst of
  /// data, but a fixed 4 MiB window (SetSmallCallArguments).
  kSmallCalls,
};

/// A channel with our message limits and keepalive settings, secured as
/// SetClientSecurity said (TLS, bearer token; plaintext by default).
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           Traffic traffic = Traffic::kGeneral);

/// The channel arguments of Traffic::kSmallCalls.
void SetSmallCallArguments(grpc::ChannelArguments& args);

/// Applies our message limits, keepalive policy and thread pool sizes to a
/// server.
void ConfigureServerBuilder(grpc::ServerBuilder& builder);

/// Serves `service` (not owned) in plaintext on a free loopback port, set in
/// `port`; null if it cannot start. For tests and benchmarks.
std::unique_ptr<grpc::Server> ServeOnLoopback(grpc::Service* service,
                                              int* port);

}  // namespace testfleet
