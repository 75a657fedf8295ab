#include "dashboard/dashboard.h"

#include <unistd.h>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/digest.h"
#include "common/status_macros.h"
#include "common/test_status.h"
#include "common/text.h"
#include "coordinator/metrics.h"
#include "dashboard/assets.h"
#include "dashboard/json_views.h"
#include "report/html_report.h"
#include "spdlog/spdlog.h"

namespace testfleet {
namespace {

constexpr char kSessionCookie[] = "tf_session";
constexpr char kJson[] = "application/json; charset=utf-8";
constexpr char kHtml[] = "text/html; charset=utf-8";
constexpr size_t kMaxPageRows = 1000;
constexpr size_t kMaxUpdateRows = 2000;
constexpr size_t kMaxListedSuites = 500;
constexpr size_t kSearchLimit = 50;
// A live stream says something this often, so proxies and the browser keep
// it open, and a page that left is noticed.
constexpr absl::Duration kKeepAlive = absl::Seconds(15);

// Pages run only their own scripts and styles and load nothing from
// elsewhere; no site may frame them.
const HttpResponder::Headers& PageHeaders() {
  static const auto* headers = new HttpResponder::Headers{
      {"Content-Security-Policy",
       "default-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"},
      {"X-Frame-Options", "DENY"}};
  return *headers;
}

// The HTML report has inline styles and no scripts; only the dashboard may
// frame it.
const HttpResponder::Headers& ReportHeaders() {
  static const auto* headers = new HttpResponder::Headers{
      {"Content-Security-Policy",
       "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       "frame-ancestors 'self'"}};
  return *headers;
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void SendError(HttpResponder& responder, const absl::Status& status) {
  responder.Send(HttpStatusOf(status), kJson,
                 JsonText({{"error", std::string(status.message())}}));
}

void SendJson(HttpResponder& responder, const nlohmann::json& json) {
  responder.Send(200, kJson, JsonText(json));
}

size_t SizeParam(const HttpRequest& request, const std::string& name,
                 size_t fallback, size_t max) {
  size_t value = 0;
  if (!absl::SimpleAtoi(request.Param(name), &value)) return fallback;
  return std::min(value, max);
}

// A place inside this site to return to after login: a path, never another
// site ("//evil.example", "/\evil.example").
std::string LocalPath(const std::string& next) {
  if (next.empty() || next[0] != '/' || next.size() > 2048 ||
      (next.size() > 1 && (next[1] == '/' || next[1] == '\\'))) {
    return "/";
  }
  for (char c : next) {
    if (static_cast<unsigned char>(c) < 0x20) return "/";
  }
  return next;
}

bool IsSuiteId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' &&
        c != '_') {
      return false;
    }
  }
  return true;
}

// Counts a live stream while it lasts.
class LiveStream {
 public:
  explicit LiveStream(std::atomic<int>& streams) : streams_(streams) {
    ++streams_;
  }
  ~LiveStream() { --streams_; }

 private:
  std::atomic<int>& streams_;
};

// No Origin (not sent by a browser), or this site's own.
bool FromThisSite(const HttpRequest& request) {
  const std::string origin = request.Header("origin");
  return origin.empty() ||
         origin == absl::StrCat(request.tls ? "https" : "http", "://",
                                request.Header("host"));
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0')
    return "localhost";
  return name;
}

// "http(s)://HOST:PORT" for people to open: a wildcard address becomes this
// host's name.
std::string BaseUrl(const std::string& listen, int port, bool tls) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    host = HostName();
  }
  return absl::StrCat(tls ? "https" : "http", "://", host, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dashboard>> Dashboard::Start(
    DashboardOptions options) {
  if (options.coordinator == nullptr) {
    return absl::InvalidArgumentError("the dashboard needs a coordinator");
  }
  const bool tokens_on = options.tokens != nullptr && options.tokens->enabled();
  if (!tokens_on && !options.allow_remote_without_tokens &&
      !IsLoopbackAddress(options.listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen=", options.listen,
        " is not a loopback address and no --token-file is set: anyone who "
        "reaches it could see every suite and cancel it. Listen on "
        "127.0.0.1 (a coordinator may also take --token-file or "
        "--http-allow-remote)"));
  }
  std::unique_ptr<Dashboard> dashboard(new Dashboard(options.clock));
  dashboard->options_ = std::move(options);
  dashboard->open_csrf_ = RandomHex(32);
  HttpServerOptions http;
  http.listen = dashboard->options_.listen;
  http.cert_file = dashboard->options_.tls.cert_file;
  http.key_file = dashboard->options_.tls.key_file;
  http.threads = dashboard->options_.threads;
  Dashboard* self = dashboard.get();
  auto server = HttpServer::Start(
      http, [self](const HttpRequest& request, HttpResponder& responder) {
        self->Handle(request, responder);
      });
  if (!server.ok()) return server.status();
  dashboard->server_ = *std::move(server);
  dashboard->url_ =
      !dashboard->options_.public_url.empty()
          ? std::string(absl::StripSuffix(dashboard->options_.public_url, "/"))
          : BaseUrl(dashboard->options_.listen, dashboard->server_->port(),
                    dashboard->server_->tls());
  return dashboard;
}

absl::StatusOr<std::unique_ptr<Dashboard>> ServeDashboard(
    CoordinatorServer& server, const CoordinatorServerConfig& config,
    DashboardOptions options) {
  options.coordinator = &server.coordinator();
  options.cache = server.cache();
  options.tokens = server.tokens();
  options.tls.cert_file = config.tls.cert_file;
  options.tls.key_file = config.tls.key_file;
  options.desired_workers = [&server, drain = config.target_drain] {
    return DesiredWorkers(server.coordinator().Snapshot(), drain);
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Dashboard> dashboard,
                   Dashboard::Start(std::move(options)));
  server.coordinator().SetDashboardUrl(dashboard->url());
  return dashboard;
}

Dashboard::~Dashboard() {
  stopping_ = true;
  server_.reset();  // waits for every request, streams included, to end
}

std::string Dashboard::CookieAttributes(bool tls) const {
  return absl::StrCat("; Path=/; HttpOnly; SameSite=Strict; Max-Age=",
                      absl::ToInt64Seconds(sessions_.lifetime()),
                      tls ? "; Secure" : "");
}

absl::StatusOr<Dashboard::Viewer> Dashboard::Authenticate(
    const HttpRequest& request) const {
  if (options_.tokens == nullptr || !options_.tokens->enabled()) {
    return Viewer{Principal::Anyone(), open_csrf_, false};
  }
  const std::string header = request.Header("authorization");
  if (!header.empty()) {
    ASSIGN_OR_RETURN(Principal principal,
                     options_.tokens->AuthorizeReader(
                         header, request.remote_address, request.tls));
    return Viewer{std::move(principal), "", true};
  }
  std::optional<SessionStore::Session> session =
      sessions_.Find(request.Cookie(kSessionCookie));
  if (!session) {
    return absl::UnauthenticatedError(
        "not logged in: open /login and give a token with the view or "
        "submit role");
  }
  // The token is checked again: one removed or expired ends its sessions.
  ASSIGN_OR_RETURN(
      Principal principal,
      options_.tokens->AuthorizeReader(absl::StrCat("Bearer ", session->token),
                                       request.remote_address, request.tls));
  return Viewer{std::move(principal), session->csrf, false};
}

absl::Status Dashboard::CheckSameSite(const HttpRequest& request,
                                      const Viewer& viewer) const {
  if (!FromThisSite(request)) {
    return absl::PermissionDeniedError(
        absl::StrCat("a request from ", request.Header("origin"),
                     " may not change anything"));
  }
  if (request.Header("sec-fetch-site") == "cross-site") {
    return absl::PermissionDeniedError(
        "a cross-site request may not change anything");
  }
  if (viewer.bearer) return absl::OkStatus();
  if (!ConstantTimeEquals(request.Header("x-csrf-token"), viewer.csrf)) {
    return absl::PermissionDeniedError(
        "missing or wrong X-CSRF-Token header (read it from /api/session)");
  }
  return absl::OkStatus();
}

void Dashboard::Handle(const HttpRequest& request, HttpResponder& responder) {
  const std::string& path = request.path;
  if (const Asset* asset = FindAsset(path); asset != nullptr) {
    responder.Send(200, std::string(asset->content_type),
                   std::string(asset->body), {{"Cache-Control", "no-cache"}});
    return;
  }
  if (path == "/login") {
    Login(request, responder);
    return;
  }
  absl::StatusOr<Viewer> viewer = Authenticate(request);
  const bool api = absl::StartsWith(path, "/api/");
  if (!viewer.ok()) {
    if (api || request.method != "GET") {
      SendError(responder, viewer.status());
    } else {
      const std::string next =
          request.query.empty() ? path : absl::StrCat(path, "?", request.query);
      responder.Send(
          303, kHtml, "",
          {{"Location", absl::StrCat("/login?next=", UrlEncode(next))}});
    }
    return;
  }
  if (api) {
    Api(request, *viewer, responder);
    return;
  }
  if (path == "/logout" && request.method == "POST") {
    if (absl::Status same = CheckSameSite(request, *viewer); !same.ok()) {
      SendError(responder, same);
      return;
    }
    sessions_.Remove(request.Cookie(kSessionCookie));
    responder.Send(303, kHtml, "",
                   {{"Location", "/login"},
                    {"Set-Cookie", absl::StrCat(kSessionCookie, "=",
                                                CookieAttributes(request.tls),
                                                "; Max-Age=0")}});
    return;
  }
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  if (parts.size() == 3 && parts[0] == "suites" && parts[2] == "report.html" &&
      IsSuiteId(parts[1])) {
    absl::StatusOr<v1::SuiteReport> report =
        options_.coordinator->Report(parts[1], viewer->principal);
    if (!report.ok()) {
      SendError(responder, report.status());
      return;
    }
    responder.Send(200, kHtml, HtmlReport(*report), ReportHeaders());
    return;
  }
  const bool page =
      path == "/" || path == "/search" || path == "/tests" ||
      (parts.size() == 2 && parts[0] == "suites" && IsSuiteId(parts[1]));
  if (page && request.method == "GET") {
    responder.Send(200, kHtml, std::string(FindAsset("/index.html")->body),
                   PageHeaders());
    return;
  }
  responder.Send(404, "text/plain; charset=utf-8", "no such page\n");
}

void Dashboard::Login(const HttpRequest& request, HttpResponder& responder) {
  if (options_.tokens == nullptr || !options_.tokens->enabled()) {
    responder.Send(303, kHtml, "", {{"Location", "/"}});
    return;
  }
  const Asset* page = FindAsset("/login.html");
  if (request.method == "GET") {
    responder.Send(200, kHtml, std::string(page->body), PageHeaders());
    return;
  }
  if (request.method != "POST") {
    responder.Send(405, "text/plain; charset=utf-8", "GET or POST\n");
    return;
  }
  if (!FromThisSite(request)) {
    responder.Send(403, "text/plain; charset=utf-8",
                   "log in from this site's own login page\n");
    return;
  }
  const std::string token =
      std::string(absl::StripAsciiWhitespace(request.FormField("token")));
  absl::StatusOr<Principal> principal = options_.tokens->AuthorizeReader(
      absl::StrCat("Bearer ", token), request.remote_address, request.tls);
  const std::string next = LocalPath(request.Param("next"));
  if (token.empty() || !principal.ok()) {
    spdlog::warn(
        "dashboard: refused a login from {}: {}", request.remote_address,
        token.empty() ? "no token" : std::string(principal.status().message()));
    responder.Send(
        303, kHtml, "",
        {{"Location", absl::StrCat("/login?failed=1&next=", UrlEncode(next))}});
    return;
  }
  const std::string session = sessions_.Create(token);
  spdlog::info("dashboard: {} logged in from {}", principal->name,
               request.remote_address);
  responder.Send(303, kHtml, "",
                 {{"Location", next},
                  {"Set-Cookie", absl::StrCat(kSessionCookie, "=", session,
                                              CookieAttributes(request.tls))}});
}

void Dashboard::Api(const HttpRequest& request, const Viewer& viewer,
                    HttpResponder& responder) {
  std::vector<std::string> parts =
      absl::StrSplit(request.path, '/', absl::SkipEmpty());
  parts.erase(parts.begin());  // "api"
  const bool get = request.method == "GET";
  if (parts.size() == 1 && parts[0] == "session" && get) {
    const Principal& who = viewer.principal;
    SendJson(responder, {{"name", who.anonymous() ? "" : who.name},
                         {"tokens", options_.tokens != nullptr &&
                                        options_.tokens->enabled()},
                         {"admin", who.Has(Role::kAdmin)},
                         {"csrf", viewer.csrf}});
    return;
  }
  if (parts.size() == 1 && parts[0] == "fleet" && get) {
    SendJson(responder, Fleet(viewer.principal));
    return;
  }
  if (parts.size() == 2 && parts[0] == "fleet" && parts[1] == "events" && get) {
    StreamFleet(viewer, responder);
    return;
  }
  if (parts.size() == 1 && parts[0] == "search" && get) {
    SendJson(responder, Search(request.Param("q"), viewer.principal));
    return;
  }
  if (parts.size() == 1 && parts[0] == "tests" && get) {
    SendJson(responder, TestPage(request, viewer.principal));
    return;
  }
  if (parts.size() >= 2 && parts[0] == "suites" && IsSuiteId(parts[1])) {
    SuiteApi(request, viewer, parts[1], parts.size() > 2 ? parts[2] : "",
             responder);
    return;
  }
  SendError(responder, absl::NotFoundError(absl::StrCat(
                           "no API ", request.method, " ", request.path,
                           "; see docs/dashboard.md")));
}

void Dashboard::SuiteApi(const HttpRequest& request, const Viewer& viewer,
                         const std::string& suite_id, const std::string& rest,
                         HttpResponder& responder) {
  if (rest == "cancel") {
    if (request.method != "POST") {
      SendError(responder, absl::InvalidArgumentError("cancel is a POST"));
      return;
    }
    if (absl::Status same = CheckSameSite(request, viewer); !same.ok()) {
      SendError(responder, same);
      return;
    }
    absl::StatusOr<int> cancelled =
        options_.coordinator->Cancel(suite_id, viewer.principal);
    if (!cancelled.ok()) {
      SendError(responder, cancelled.status());
      return;
    }
    spdlog::info(
        "dashboard: {} cancelled suite {} ({} tests)",
        viewer.principal.anonymous() ? "someone" : viewer.principal.name,
        suite_id, *cancelled);
    SendJson(responder, {{"cancelled", *cancelled}});
    return;
  }
  if (request.method != "GET") {
    SendError(responder, absl::InvalidArgumentError("only GET here"));
    return;
  }
  // Every read checks the viewer against the suite's owner first.
  absl::StatusOr<v1::SuiteListing> listing =
      options_.coordinator->Listing(suite_id, viewer.principal);
  if (!listing.ok()) {
    SendError(responder, listing.status());
    return;
  }
  std::shared_ptr<SuiteFeed> feed = Feed(suite_id);
  if (rest.empty()) {
    nlohmann::json suite = ListingJson(*listing);
    suite["feed"] = feed->State();
    suite["can_cancel"] = viewer.principal.CanChange(listing->owner());
    SendJson(responder, suite);
  } else if (rest == "results") {
    responder.Send(200, kJson,
                   feed->Rows(SizeParam(request, "offset", 0, SIZE_MAX),
                              SizeParam(request, "limit", 100, kMaxPageRows),
                              request.Param("filter"), request.Param("sort")));
  } else if (rest == "timeline") {
    SendJson(responder, feed->Timeline());
  } else if (rest == "events") {
    StreamSuite(request, std::move(feed), responder);
  } else {
    SendError(responder, absl::NotFoundError("no such suite API"));
  }
}

std::shared_ptr<SuiteFeed> Dashboard::Feed(const std::string& suite_id) {
  absl::MutexLock lock(&feeds_mu_);
  const absl::Time now = options_.clock->Now();
  auto it = feeds_.find(suite_id);
  if (it != feeds_.end()) {
    it->second.last_used = now;
    return it->second.feed;
  }
  // Room first: the least recently used feed no page holds goes.
  while (feeds_.size() >= options_.max_feeds) {
    auto idle = feeds_.end();
    for (auto f = feeds_.begin(); f != feeds_.end(); ++f) {
      if (f->second.feed.use_count() == 1 &&
          (idle == feeds_.end() ||
           f->second.last_used < idle->second.last_used))
        idle = f;
    }
    if (idle == feeds_.end()) break;  // all in use: grow past the limit
    feeds_.erase(idle);
  }
  auto feed = std::make_shared<SuiteFeed>(*options_.coordinator, suite_id,
                                          options_.batch_interval);
  feeds_[suite_id] = {feed, now};
  return feed;
}

bool Dashboard::RefuseStream(HttpResponder& responder) {
  // Each stream holds a request thread: keep some for everything else.
  if (streams_.load() < options_.threads - 8) return false;
  SendError(responder, absl::UnavailableError(
                           "too many live pages are open on this dashboard; "
                           "close some or raise its threads"));
  return true;
}

void Dashboard::StreamSuite(const HttpRequest& request,
                            std::shared_ptr<SuiteFeed> feed,
                            HttpResponder& responder) {
  if (RefuseStream(responder)) return;
  SuiteFeed::Cursor cursor;
  cursor.rows = SizeParam(request, "from", 0, SIZE_MAX);
  responder.Stream("text/event-stream", [this, feed = std::move(feed), cursor](
                                            const StreamWrite& write) mutable {
    LiveStream counted(streams_);
    absl::Time last_write = options_.clock->Now();
    bool open = write("retry: 2000\n\n");
    while (open && !stopping()) {
      std::string update;
      if (feed->NextUpdate(&cursor, absl::Seconds(1), kMaxUpdateRows,
                           &update)) {
        open = write(update);
        last_write = options_.clock->Now();
        continue;
      }
      if (feed->ended()) {
        write("event: end\ndata: {}\n\n");
        break;
      }
      if (options_.clock->Now() - last_write >= kKeepAlive) {
        open = write(": still here\n\n");
        last_write = options_.clock->Now();
      }
    }
  });
}

void Dashboard::StreamFleet(const Viewer& viewer, HttpResponder& responder) {
  if (RefuseStream(responder)) return;
  responder.Stream("text/event-stream", [this, principal = viewer.principal](
                                            const StreamWrite& write) {
    LiveStream counted(streams_);
    bool open = write("retry: 2000\n\n");
    std::string last;
    for (int quiet = 0; open && !stopping(); ++quiet) {
      nlohmann::json fleet = Fleet(principal);
      fleet.erase("now_unix_ms");  // unchanged fleets are not sent again
      std::string text = JsonText(fleet);
      if (text != last || quiet >= 15) {
        open = write(absl::StrCat("event: fleet\ndata: ", text, "\n\n"));
        last = std::move(text);
        quiet = 0;
      }
      absl::SleepFor(absl::Seconds(1));
    }
  });
}

nlohmann::json Dashboard::Fleet(const Principal& viewer) {
  nlohmann::json suites = nlohmann::json::array();
  size_t ended = 0;
  for (const v1::SuiteListing& listing :
       options_.coordinator->ListSuites(viewer)) {
    const bool done = listing.state() == v1::SUITE_STATE_FINISHED ||
                      listing.state() == v1::SUITE_STATE_CANCELLED;
    if (suites.size() >= kMaxListedSuites || (done && ++ended > 20)) break;
    suites.push_back(ListingJson(listing));
  }
  const int64_t now = absl::ToUnixMillis(options_.clock->Now());
  nlohmann::json workers = nlohmann::json::array();
  int slots = 0, busy = 0;
  const v1::ListWorkersResponse listed = options_.coordinator->ListWorkers();
  for (const v1::WorkerInfo& worker : listed.workers()) {
    slots += worker.slots();
    busy += worker.busy_slots();
    nlohmann::json json = WorkerJson(worker, now);
    // Another team's worker is shown, but not what it runs for others.
    if (!viewer.CanRead(worker.owner())) {
      for (nlohmann::json& slot : json["running"]) {
        slot["suite_id"] = "";
        slot["suite_name"] = "";
        slot["test_id"] = "";
      }
    }
    workers.push_back(std::move(json));
  }
  nlohmann::json fleet = {{"suites", std::move(suites)},
                          {"workers", std::move(workers)},
                          {"slots", slots},
                          {"busy_slots", busy},
                          {"now_unix_ms", now}};
  if (options_.desired_workers)
    fleet["desired_workers"] = options_.desired_workers();
  if (options_.cache != nullptr)
    fleet["cache"] = CacheJson(options_.cache->Stats());
  return fleet;
}

nlohmann::json Dashboard::Search(const std::string& query,
                                 const Principal& viewer) {
  const std::string needle =
      std::string(absl::StripAsciiWhitespace(query)).substr(0, 256);
  nlohmann::json suites = nlohmann::json::array();
  nlohmann::json tests = nlohmann::json::array();
  nlohmann::json history = nlohmann::json::array();
  if (needle.empty()) {
    return {{"suites", suites}, {"tests", tests}, {"history", history}};
  }
  const std::string lower_needle = absl::AsciiStrToLower(needle);
  std::set<std::string> listed;
  for (const v1::SuiteListing& listing :
       options_.coordinator->ListSuites(viewer)) {
    if (suites.size() >= kSearchLimit) break;
    if (absl::StartsWith(listing.suite_id(), needle) ||
        absl::StrContains(absl::AsciiStrToLower(listing.name()),
                          lower_needle)) {
      suites.push_back(ListingJson(listing));
      listed.insert(listing.suite_id());
    }
  }
  // An older suite's exact id: from the store.
  if (IsSuiteId(needle) && !listed.count(needle)) {
    absl::StatusOr<v1::SuiteListing> listing =
        options_.coordinator->Listing(needle, viewer);
    if (listing.ok()) suites.push_back(ListingJson(*listing));
  }
  for (const Coordinator::TestMatch& match :
       options_.coordinator->FindTests(needle, kSearchLimit, viewer)) {
    tests.push_back({{"suite_id", match.suite_id},
                     {"suite_name", ValidUtf8(match.suite_name)},
                     {"test_id", ValidUtf8(match.test_id)}});
  }
  // A suite name's tests as history knows them, past suites included.
  v1::HistoryRequest request;
  request.set_suite_name(needle);
  absl::StatusOr<v1::HistoryResponse> known =
      options_.coordinator->History(request, viewer);
  if (known.ok()) {
    for (const v1::HistoryResponse::Entry& entry : known->tests()) {
      if (history.size() >= 10 * kSearchLimit) break;
      const auto& runs = entry.history().runs();
      history.push_back(
          {{"suite_name", ValidUtf8(needle)},
           {"test_id", ValidUtf8(entry.test_id())},
           {"runs", runs.size()},
           {"last_status",
            runs.empty() ? "" : StatusName(runs.rbegin()->status())},
           {"median_wall_ms", entry.insight().median_wall_ms()}});
    }
  }
  return {{"suites", std::move(suites)},
          {"tests", std::move(tests)},
          {"history", std::move(history)}};
}

nlohmann::json Dashboard::TestPage(const HttpRequest& request,
                                   const Principal& viewer) {
  const std::string suite_name = request.Param("suite_name");
  const std::string test_id = request.Param("test_id");
  const std::string suite_id = request.Param("suite_id");
  nlohmann::json page = {{"suite_name", ValidUtf8(suite_name)},
                         {"test_id", ValidUtf8(test_id)},
                         {"suite_id", suite_id}};
  v1::HistoryRequest history_request;
  history_request.set_suite_name(suite_name);
  history_request.set_test_id(test_id);
  absl::StatusOr<v1::HistoryResponse> history =
      test_id.empty() ? absl::InvalidArgumentError("name a test (test_id=)")
                      : options_.coordinator->History(history_request, viewer);
  if (history.ok() && history->tests_size() == 1) {
    page["history"] = HistoryJson(history->tests(0));
  } else {
    page["history_error"] =
        history.ok() ? "no history" : std::string(history.status().message());
  }
  if (!suite_id.empty() && IsSuiteId(suite_id)) {
    absl::StatusOr<v1::ExplainResponse> explain =
        options_.coordinator->Explain(suite_id, test_id, viewer);
    if (explain.ok()) {
      page["explain"] = ExplainJson(*explain);
    } else {
      page["explain_error"] = std::string(explain.status().message());
    }
    if (options_.coordinator->Listing(suite_id, viewer).ok()) {
      nlohmann::json changes = nlohmann::json::array();
      for (const nlohmann::json& change : Feed(suite_id)->State()["changes"]) {
        if (change["id"] == test_id) changes.push_back(change);
      }
      page["changes"] = std::move(changes);
    }
  }
  return page;
}

}  // namespace testfleet
