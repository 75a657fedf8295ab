#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cache/result_cache.h"
#include "common/clock.h"
#include "common/security.h"
#include "coordinator/coordinator.h"
#include "coordinator/server.h"
#include "dashboard/http_server.h"
#include "dashboard/sessions.h"
#include "dashboard/suite_feed.h"

namespace testfleet {

struct DashboardOptions {
  std::string listen;  // HOST:PORT; port 0 picks one
  /// The address people open (what `coordctl submit` prints); empty: made
  /// from `listen` and this host's name.
  std::string public_url;
  /// Without tokens the dashboard serves loopback only, unless this is set.
  bool allow_remote_without_tokens = false;
  TlsConfig tls;                       // cert_file and key_file: HTTPS only
  Coordinator* coordinator = nullptr;  // not owned
  ResultCache* cache = nullptr;        // for its stats; may be null
  /// Who may look: tokens with the view, submit or admin role. Null or
  /// without a token file: everyone (on loopback). Not owned.
  const TokenAuthority* tokens = nullptr;
  /// testfleet_desired_workers, for the fleet page; may be empty.
  std::function<int()> desired_workers;
  const Clock* clock = RealClock::Get();
  /// Pages following a suite hear of it at most this often.
  absl::Duration batch_interval = absl::Milliseconds(250);
  /// Requests at once; each open page's live stream holds one.
  int threads = 128;
  size_t max_feeds = 32;  // suites followed at once (idle ones are dropped)
};

/// The coordinator's web dashboard (`coordinator --http-listen`): the fleet,
/// each suite live while it runs (Server-Sent Events), each test's history,
/// search, and the JSON API under /api/ that the pages use (see
/// docs/dashboard.md). Pages and assets are compiled in; nothing is fetched
/// from elsewhere.
///
///   ASSIGN_OR_RETURN(auto dashboard, Dashboard::Start(options));
///   coordinator.SetDashboardUrl(dashboard->url());
class Dashboard {
 public:
  static absl::StatusOr<std::unique_ptr<Dashboard>> Start(
      DashboardOptions options);
  ~Dashboard();

  int port() const { return server_->port(); }
  /// "http(s)://HOST:PORT", no trailing slash.
  const std::string& url() const { return url_; }

 private:
  struct Viewer {
    Principal principal;
    std::string csrf;     // what a state-changing request must echo
    bool bearer = false;  // authenticated by header: no cookie to forge
  };
  explicit Dashboard(const Clock* clock) : sessions_(clock) {}
  void Handle(const HttpRequest& request, HttpResponder& responder);
  absl::StatusOr<Viewer> Authenticate(const HttpRequest& request) const;
  /// A cross-site request: wrong or missing CSRF token, foreign Origin.
  absl::Status CheckSameSite(const HttpRequest& request,
                             const Viewer& viewer) const;
  void Login(const HttpRequest& request, HttpResponder& responder);
  void Api(const HttpRequest& request, const Viewer& viewer,
           HttpResponder& responder);
  void SuiteApi(const HttpRequest& request, const Viewer& viewer,
                const std::string& suite_id, const std::string& rest,
                HttpResponder& responder);
  void StreamSuite(const HttpRequest& request, std::shared_ptr<SuiteFeed> feed,
                   HttpResponder& responder);
  void StreamFleet(const Viewer& viewer, HttpResponder& responder);
  /// 503 when the live streams would take the threads other requests need.
  bool RefuseStream(HttpResponder& responder);
  nlohmann::json Fleet(const Principal& viewer);
  nlohmann::json Search(const std::string& query, const Principal& viewer);
  nlohmann::json TestPage(const HttpRequest& request, const Principal& viewer);
  std::shared_ptr<SuiteFeed> Feed(const std::string& suite_id);
  std::string CookieAttributes(bool tls) const;
  bool stopping() const { return stopping_.load(); }

  DashboardOptions options_;
  std::string url_;
  std::string open_csrf_;  // without tokens: one for everyone
  SessionStore sessions_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> streams_{0};
  absl::Mutex feeds_mu_;
  struct FeedEntry {
    std::shared_ptr<SuiteFeed> feed;
    absl::Time last_used;
  };
  std::map<std::string, FeedEntry> feeds_ ABSL_GUARDED_BY(feeds_mu_);
  std::unique_ptr<HttpServer> server_;  // last: stopped first
};

/// Starts a dashboard over a running coordinator server (its coordinator,
/// cache, tokens and TLS certificate; the desired workers for its target
/// drain) and has submissions answer with their suite's page.
absl::StatusOr<std::unique_ptr<Dashboard>> ServeDashboard(
    CoordinatorServer& server, const CoordinatorServerConfig& config,
    DashboardOptions options);

}  // namespace testfleet
