#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace testfleet {

/// Serves a Prometheus registry at http://ADDRESS/metrics (--metrics-listen)
/// and calls `refresh` every second, so gauges read from live state (queue
/// depth, cache size) stay current between scrapes.
///
///   auto registry = std::make_shared<prometheus::Registry>();
///   ASSIGN_OR_RETURN(auto metrics, MetricsServer::Start("0.0.0.0:9464",
///                                                      registry, refresh));
class MetricsServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address,
      std::shared_ptr<prometheus::Registry> registry,
      std::function<void()> refresh);
  ~MetricsServer();

  int port() const;

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::function<void()> refresh_;
  absl::Notification stop_;
  std::thread refresher_;
};

/// Has the server `builder` builds count its failed RPCs by method and code
/// (`testfleet_rpc_errors_total`) in `registry`.
void CountRpcErrors(grpc::ServerBuilder& builder,
                    prometheus::Registry& registry);

/// A gauge without labels, `name` in `registry`.
prometheus::Gauge& AddGauge(prometheus::Registry& registry,
                            const std::string& name, const std::string& help);

}  // namespace testfleet
