#pragma once
// Shared by the coordctl commands; not a public header.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/grpc_util.h"
#include "coordctl/commands.h"
#include "coordctl/progress.h"
#include "coordinator/server.h"
#include "testfleet/v1/services.grpc.pb.h"

namespace testfleet {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInfrastructure = 3;

/// Prints "coordctl: <message>" and returns `code`.
int Fail(int code, const absl::Status& status);
/// Bad input and missing rights are the user's to fix (2); the rest is
/// infrastructure (3).
int CodeFor(const absl::Status& status);
/// --cache-dir, else $XDG_CACHE_HOME/testfleet, ~/.cache/testfleet, /tmp.
std::string CacheRoot(const std::string& flag);

/// A coordinator to call: a server at an address, or the history and
/// reports `coordctl run` keeps under the cache dir, opened in this process.
struct Connection {
  std::string address;  // for messages
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<CoordinatorServer> embedded;
};
Connection Remote(const std::string& address);
/// `coordinator` when given, else the local history under `cache_dir`.
absl::StatusOr<Connection> Connect(const std::string& coordinator,
                                   const std::string& cache_dir);

/// One unary call with a deadline; failures become the one-line message
/// users see.
template <typename Request, typename Response>
absl::Status CallCoordinator(
    const Connection& connection,
    grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                  const Request&, Response*),
    const Request& request, Response* response) {
  auto stub = v1::Coordinator::NewStub(connection.channel);
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(60)));
  return FromGrpcStatus(((*stub).*method)(&context, request, response),
                        "coordinator", connection.address);
}

v1::SuiteRef Ref(const std::string& suite_id);

/// Writes the reports and outputs `outputs` asks for; `channel` reaches the
/// blob store holding the tests' outputs.
absl::Status WriteReports(const v1::SuiteReport& report,
                          const ReportOutputs& outputs,
                          const std::shared_ptr<grpc::Channel>& channel);
/// Follows the suite to its end, showing progress, and returns its report.
/// A broken stream (coordinator restarting) is resumed with backoff.
absl::StatusOr<v1::SuiteReport> WatchToEnd(v1::Coordinator::Stub& stub,
                                           const std::string& suite_id,
                                           const std::string& address,
                                           ProgressPrinter* printer);
/// Prints the summary, writes the reports; returns the exit code.
int Finish(const v1::SuiteReport& report, const ReportOutputs& outputs,
           const std::shared_ptr<grpc::Channel>& channel,
           bool fail_on_regression = false);
/// Ctrl-C while following a suite leaves it running: says so, and how to
/// cancel it.
void DetachOnInterrupt(const std::string& suite_id,
                       const std::string& coordinator);

}  // namespace testfleet
