#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace testfleet {

/// Largest gRPC message we send or accept: big enough for a 100,000-test
/// suite and its report.
inline constexpr int kMaxMessageBytes = 256 << 20;

/// A PullWork call that carries the metadata kPullTimingRequest (any value)
/// is answered with two trailing entries: when the coordinator's handler got
/// it and when it answered, in nanoseconds of std::chrono::steady_clock
/// (CLOCK_MONOTONIC). A client on the coordinator's host, which reads the
/// same clock, splits a slow pull into the time before the coordinator, in
/// it and after it (bench/fleet_sim). Across hosts the stamps mean nothing.
inline constexpr char kPullTimingRequest[] = "testfleet-timing";
inline constexpr char kPullReceivedNs[] = "testfleet-received-ns";
inline constexpr char kPullAnsweredNs[] = "testfleet-answered-ns";
/// Now, as the value of a kPullReceivedNs or kPullAnsweredNs entry.
std::string PullTimingStampNow();
/// The stamp `key` of a finished call's trailing metadata; nullopt when the
/// server sent none (or not a number).
std::optional<std::chrono::steady_clock::time_point> PullTimingStampOf(
    const grpc::ClientContext& context, const char* key);

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
