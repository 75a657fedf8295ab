#include "dashboard/dashboard.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/platform.h"
#include "common/tests/test_dir.h"
#include "coordinator/store.h"
#include "dashboard/json_views.h"
#include "dashboard/tests/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace testfleet {
namespace {

using ::testfleet::testing::Fetch;
using ::testfleet::testing::HttpAnswer;
using ::testfleet::testing::HttpStream;
using ::testing::HasSubstr;

v1::SuiteSpec MakeSuite(const std::string& name, int tests,
                        const std::string& owner = "") {
  v1::SuiteSpec suite;
  suite.set_name(name);
  suite.set_owner(owner);
  *suite.mutable_platform() = HostPlatform("");
  for (int i = 0; i < tests; ++i) {
    v1::TestSpec* test = suite.add_tests();
    test->set_id(absl::StrCat(name, ".t", i));
    test->add_argv("true");
    test->set_cwd(".");
  }
  return suite;
}

nlohmann::json Json(const HttpAnswer& answer) {
  return nlohmann::json::parse(answer.body, nullptr,
                               /*allow_exceptions=*/false);
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = CoordinatorStore::Open(dir_.Join("state")).value();
    CoordinatorOptions options;
    options.store = store_.get();
    coordinator_ = std::make_unique<Coordinator>(options);
  }
  void TearDown() override {
    dashboard_.reset();
    coordinator_->Shutdown();
  }
  void StartDashboard(const TokenAuthority* tokens = nullptr) {
    DashboardOptions options;
    options.listen = "127.0.0.1:0";
    options.coordinator = coordinator_.get();
    options.tokens = tokens;
    options.batch_interval = absl::Milliseconds(50);
    options.threads = 16;
    auto started = Dashboard::Start(std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    dashboard_ = *std::move(started);
    port_ = dashboard_->port();
  }
  std::string Worker() {
    v1::RegisterWorkerRequest request;
    request.set_name("w");
    request.set_slots(1);
    *request.mutable_platform() = HostPlatform("");
    return coordinator_->RegisterWorker(request).value().worker_id();
  }
  v1::Shard Pull(const std::string& worker) {
    v1::PullWorkRequest request;
    request.set_worker_id(worker);
    request.set_free_slots(1);
    v1::PullWorkResponse response = coordinator_->PullWork(request);
    return response.shards_size() > 0 ? response.shards(0) : v1::Shard();
  }
  // Reports the shard's tests [from, to): test `failing` fails with
  // "boom" on stderr, the others pass.
  void Report(const std::string& worker, const v1::Shard& shard, int from,
              int to, int failing = -1) {
    v1::ReportResultsRequest request;
    request.set_worker_id(worker);
    const int64_t now = absl::ToUnixMillis(absl::Now());
    for (int i = from; i < to && i < shard.tests_size(); ++i) {
      v1::ReportedResult* reported = request.add_results();
      reported->set_suite_id(shard.suite_id());
      reported->set_lease_id(shard.lease_id());
      v1::TestResult* result = reported->mutable_result();
      result->set_test_id(shard.tests(i).spec().id());
      result->set_attempt(shard.tests(i).attempt());
      result->set_status(i == failing ? v1::TEST_STATUS_FAILED
                                      : v1::TEST_STATUS_PASSED);
      if (i == failing) result->set_stderr_tail("assertion failed: boom\n");
      result->set_wall_ms(10 + i);
      result->set_worker(worker);
      result->set_started_at_unix_ms(now - 20);
      result->set_finished_at_unix_ms(now);
    }
    ASSERT_TRUE(coordinator_->ReportResults(request).ok());
  }

  TestDir dir_;
  std::unique_ptr<CoordinatorStore> store_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Dashboard> dashboard_;
  int port_ = 0;
};

TEST_F(DashboardTest, ShowsASuiteLiveFromQueuedToItsReport) {
  StartDashboard();
  const std::string id =
      coordinator_->Submit(MakeSuite("web", 6)).value().suite_id();

  nlohmann::json fleet = Json(Fetch(port_, "GET", "/api/fleet"));
  ASSERT_EQ(fleet["suites"].size(), 1u);
  EXPECT_EQ(fleet["suites"][0]["suite_id"], id);
  EXPECT_EQ(fleet["suites"][0]["state"], "queued");
  EXPECT_EQ(fleet["suites"][0]["summary"]["total"], 6);

  HttpStream events(port_, absl::StrCat("/api/suites/", id, "/events"));
  ASSERT_EQ(events.Head().status, 200);
  EXPECT_EQ(events.Head().Header("content-type"), "text/event-stream");

  const std::string worker = Worker();
  const v1::Shard shard = Pull(worker);
  ASSERT_GE(shard.tests_size(), 3);
  // While it runs, the fleet shows what the worker's slot runs.
  fleet = Json(Fetch(port_, "GET", "/api/fleet"));
  ASSERT_EQ(fleet["workers"].size(), 1u);
  EXPECT_EQ(fleet["workers"][0]["running"][0]["test_id"],
            shard.tests(0).spec().id());
  EXPECT_EQ(fleet["workers"][0]["running"][0]["tests_left"],
            shard.tests_size());

  Report(worker, shard, 0, 3, /*failing=*/1);
  // Pushed without asking: the failure and its stderr arrive on the stream.
  ASSERT_TRUE(events.ReadUntil("assertion failed: boom")) << events.body();
  EXPECT_THAT(events.body(), HasSubstr("event: update"));
  EXPECT_THAT(events.body(), HasSubstr("\"status\":\"failed\""));

  nlohmann::json failed =
      Json(Fetch(port_, "GET",
                 absl::StrCat("/api/suites/", id, "/results?filter=failed")));
  ASSERT_EQ(failed["total"], 1);
  EXPECT_EQ(failed["rows"][0]["id"], shard.tests(1).spec().id());
  EXPECT_EQ(failed["rows"][0]["stderr_tail"], "assertion failed: boom\n");
  nlohmann::json page = Json(Fetch(
      port_, "GET",
      absl::StrCat("/api/suites/", id, "/results?offset=1&limit=1&sort=wall")));
  EXPECT_EQ(page["total"], 3);
  ASSERT_EQ(page["rows"].size(), 1u);
  // 11 ms, after the third test's 12 ms
  EXPECT_EQ(page["rows"][0]["id"], shard.tests(1).spec().id());
  EXPECT_FALSE(page["rows"][0].contains("stdout_tail") &&
               page["rows"][0]["status"] == "PASSED");
  nlohmann::json timeline =
      Json(Fetch(port_, "GET", absl::StrCat("/api/suites/", id, "/timeline")));
  EXPECT_EQ(timeline["bars"].size(), 3u);
  EXPECT_EQ(timeline["lanes"].size(), 1u);

  Report(worker, shard, 3, shard.tests_size());
  for (int pulls = 0; pulls < 6; ++pulls) {
    const v1::Shard more = Pull(worker);
    if (more.tests_size() == 0) break;
    Report(worker, more, 0, more.tests_size());
  }
  ASSERT_TRUE(events.ReadUntil("event: end"));
  nlohmann::json suite = Json(Fetch(port_, "GET", "/api/suites/" + id));
  EXPECT_EQ(suite["state"], "finished");
  EXPECT_EQ(suite["feed"]["rows"], 6);
  EXPECT_EQ(suite["summary"]["failed"], 1);
  ASSERT_TRUE(suite["summary"]["first_failure_ms"].is_number());
  EXPECT_GE(suite["summary"]["first_failure_ms"].get<int64_t>(), 0);

  const HttpAnswer report =
      Fetch(port_, "GET", absl::StrCat("/suites/", id, "/report.html"));
  EXPECT_EQ(report.status, 200);
  EXPECT_THAT(report.body, HasSubstr(shard.tests(1).spec().id()));
  EXPECT_THAT(report.Header("content-security-policy"),
              HasSubstr("default-src 'none'"));

  // The test page: one history entry per run, and its cache key.
  nlohmann::json test = Json(Fetch(
      port_, "GET",
      absl::StrCat("/api/tests?suite_name=web&test_id=web.t2&suite_id=", id)));
  ASSERT_TRUE(test.contains("history")) << test.dump();
  EXPECT_EQ(test["history"]["runs"].size(), 1u);
  EXPECT_EQ(test["history"]["runs"][0]["suite_id"], id);
  EXPECT_EQ(test["explain"]["key"].get<std::string>().size(), 64u);
}

TEST_F(DashboardTest, SearchFindsSuitesByNameAndIdAndTestsById) {
  StartDashboard();
  const std::string id =
      coordinator_->Submit(MakeSuite("checkout-flow", 3)).value().suite_id();
  coordinator_->Submit(MakeSuite("other", 2)).value();

  nlohmann::json by_name = Json(Fetch(port_, "GET", "/api/search?q=CHECKOUT"));
  ASSERT_EQ(by_name["suites"].size(), 1u);
  EXPECT_EQ(by_name["suites"][0]["suite_id"], id);
  nlohmann::json by_id = Json(Fetch(port_, "GET", "/api/search?q=" + id));
  ASSERT_EQ(by_id["suites"].size(), 1u);
  nlohmann::json by_test =
      Json(Fetch(port_, "GET", "/api/search?q=checkout-flow.t2"));
  ASSERT_EQ(by_test["tests"].size(), 1u);
  EXPECT_EQ(by_test["tests"][0]["suite_id"], id);
  EXPECT_TRUE(
      Json(Fetch(port_, "GET", "/api/search?q=nothing-like-it"))["suites"]
          .empty());
}

TEST_F(DashboardTest, PagesComeWithAPolicyAndUnknownPathsAreNotFound) {
  StartDashboard();
  const HttpAnswer page = Fetch(port_, "GET", "/");
  EXPECT_EQ(page.status, 200);
  EXPECT_THAT(page.body, HasSubstr("/assets/app.js"));
  EXPECT_THAT(page.Header("content-security-policy"),
              HasSubstr("default-src 'self'"));
  EXPECT_EQ(page.Header("x-frame-options"), "DENY");
  const HttpAnswer script = Fetch(port_, "GET", "/assets/app.js");
  EXPECT_EQ(script.status, 200);
  EXPECT_THAT(script.Header("content-type"), HasSubstr("javascript"));
  EXPECT_EQ(Fetch(port_, "GET", "/etc/passwd").status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/api/nothing").status, 404);
  EXPECT_EQ(Fetch(port_, "GET", "/api/suites/nosuch").status, 404);
  // Without tokens there is no login; the page says so by going home.
  EXPECT_EQ(Fetch(port_, "GET", "/login").Header("location"), "/");
}

TEST_F(DashboardTest, WithoutTokensItServesOnlyLoopbackUnlessTold) {
  DashboardOptions options;
  options.listen = "0.0.0.0:0";
  options.coordinator = coordinator_.get();
  auto refused = Dashboard::Start(options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("--token-file"));
  options.allow_remote_without_tokens = true;
  EXPECT_TRUE(Dashboard::Start(options).ok());
}

TEST_F(DashboardTest, CancellingNeedsTheCsrfTokenFromTheSameSite) {
  StartDashboard();
  const std::string id =
      coordinator_->Submit(MakeSuite("cancel-me", 2)).value().suite_id();
  const std::string csrf =
      Json(Fetch(port_, "GET", "/api/session"))["csrf"].get<std::string>();
  const std::string target = absl::StrCat("/api/suites/", id, "/cancel");
  EXPECT_EQ(Fetch(port_, "POST", target).status, 403);
  EXPECT_EQ(Fetch(port_, "POST", target, {{"X-CSRF-Token", "0" + csrf}}).status,
            403);
  EXPECT_EQ(Fetch(port_, "POST", target,
                  {{"X-CSRF-Token", csrf}, {"Origin", "http://evil.example"}})
                .status,
            403);
  EXPECT_EQ(Fetch(port_, "GET", target).status, 400);
  const HttpAnswer cancelled =
      Fetch(port_, "POST", target,
            {{"X-CSRF-Token", csrf},
             {"Origin", absl::StrCat("http://127.0.0.1:", port_)}});
  EXPECT_EQ(cancelled.status, 200);
  EXPECT_EQ(Json(cancelled)["cancelled"], 2);
}

class DashboardTokensTest : public DashboardTest {
 protected:
  void SetUp() override {
    DashboardTest::SetUp();
    dir_.Write("tokens",
               "viewtoken-0123456789abcdef view-bot view\n"
               "alicetoken-0123456789abcde alice submit\n"
               "bobtoken-0123456789abcdefg bob submit\n"
               "oldtoken-0123456789abcdefg old view 2020-01-01\n");
    tokens_ = TokenAuthority::Load(dir_.Join("tokens")).value();
    StartDashboard(tokens_.get());
    suite_id_ = coordinator_->Submit(MakeSuite("alices", 2, "alice"))
                    .value()
                    .suite_id();
  }
  // Logs in with `token`; returns the cookie ("tf_session=...") or "".
  std::string Login(const std::string& token) {
    const HttpAnswer answer =
        Fetch(port_, "POST", "/login?next=%2Fsuites%2Fx",
              {{"Content-Type", "application/x-www-form-urlencoded"}},
              "token=" + token);
    EXPECT_EQ(answer.status, 303);
    const std::string cookie = answer.Header("set-cookie");
    if (cookie.empty()) {
      EXPECT_THAT(answer.Header("location"), HasSubstr("failed=1"));
      return "";
    }
    EXPECT_EQ(answer.Header("location"), "/suites/x");
    EXPECT_THAT(cookie, HasSubstr("HttpOnly"));
    EXPECT_THAT(cookie, HasSubstr("SameSite=Strict"));
    return cookie.substr(0, cookie.find(';'));
  }
  HttpAnswer Get(const std::string& cookie, const std::string& target) {
    return Fetch(port_, "GET", target, {{"Cookie", cookie}});
  }
  std::unique_ptr<TokenAuthority> tokens_;
  std::string suite_id_;
};

TEST_F(DashboardTokensTest, NothingIsShownWithoutAValidToken) {
  for (const char* target : {"/api/fleet", "/api/session", "/api/search?q=a",
                             "/api/suites/x/events"}) {
    EXPECT_EQ(Fetch(port_, "GET", target).status, 401) << target;
  }
  const HttpAnswer page = Fetch(port_, "GET", "/suites/abc?x=1");
  EXPECT_EQ(page.status, 303);
  // (cpp-httplib's client hands the Location header over decoded)
  EXPECT_EQ(page.Header("location"), "/login?next=/suites/abc?x=1");
  EXPECT_EQ(Fetch(port_, "GET", "/login").status, 200);
  EXPECT_EQ(Get("tf_session=forged", "/api/fleet").status, 401);
  EXPECT_EQ(Login("wrong-token-0123456789abc"), "");
  EXPECT_EQ(Login("oldtoken-0123456789abcdefg"), "");  // expired
  EXPECT_EQ(Fetch(port_, "GET", "/api/fleet",
                  {{"Authorization", "Bearer oldtoken-0123456789abcdefg"}})
                .status,
            401);
  EXPECT_EQ(Fetch(port_, "GET", "/api/fleet",
                  {{"Authorization", "Bearer viewtoken-0123456789abcdef"}})
                .status,
            200);
}

TEST_F(DashboardTokensTest, EachTokenSeesAndChangesOnlyWhatItMay) {
  const std::string alice = Login("alicetoken-0123456789abcde");
  const std::string bob = Login("bobtoken-0123456789abcdefg");
  const std::string viewer = Login("viewtoken-0123456789abcdef");
  ASSERT_FALSE(alice.empty() || bob.empty() || viewer.empty());
  EXPECT_EQ(Json(Get(alice, "/api/session"))["name"], "alice");
  EXPECT_EQ(Get(alice, "/api/suites/" + suite_id_).status, 200);
  EXPECT_EQ(Get(viewer, "/api/suites/" + suite_id_).status, 200);
  EXPECT_EQ(Get(bob, "/api/suites/" + suite_id_).status, 403);
  EXPECT_EQ(Get(bob, "/suites/" + suite_id_ + "/report.html").status, 403);
  EXPECT_TRUE(Json(Get(bob, "/api/fleet"))["suites"].empty());
  EXPECT_EQ(Json(Get(viewer, "/api/fleet"))["suites"].size(), 1u);

  const std::string target = absl::StrCat("/api/suites/", suite_id_, "/cancel");
  auto cancel = [&](const std::string& cookie, bool with_csrf) {
    const std::string csrf = Json(Get(cookie, "/api/session"))["csrf"];
    std::map<std::string, std::string> headers = {{"Cookie", cookie}};
    if (with_csrf) headers["X-CSRF-Token"] = csrf;
    return Fetch(port_, "POST", target, headers).status;
  };
  EXPECT_EQ(cancel(viewer, true), 403);  // view: looks, never changes
  EXPECT_EQ(cancel(bob, true), 403);     // not his suite
  EXPECT_EQ(cancel(alice, false), 403);  // no cross-site token
  EXPECT_EQ(cancel(alice, true), 200);

  // A session ends when its token leaves the token file, and at logout.
  dir_.Write("tokens",
             "alicetoken-0123456789abcde alice submit\n"
             "bobtoken-0123456789abcdefg bob submit\n");
  ASSERT_TRUE(tokens_->Reload().ok());
  EXPECT_EQ(Get(viewer, "/api/fleet").status, 401);
  const std::string csrf = Json(Get(bob, "/api/session"))["csrf"];
  EXPECT_EQ(
      Fetch(port_, "POST", "/logout", {{"Cookie", bob}, {"X-CSRF-Token", csrf}})
          .status,
      303);
  EXPECT_EQ(Get(bob, "/api/fleet").status, 401);
  EXPECT_EQ(Get(alice, "/api/fleet").status, 200);
}

TEST(JsonViewsTest, RowsCarryOutputTailsOnlyForFailuresAndOnlyTheirEnd) {
  v1::TestResult passed;
  passed.set_test_id("a");
  passed.set_status(v1::TEST_STATUS_PASSED);
  passed.set_stderr_tail("noise");
  EXPECT_FALSE(ResultRowJson(passed, 0).contains("stderr_tail"));
  v1::TestResult failed = passed;
  failed.set_status(v1::TEST_STATUS_TIMED_OUT);
  failed.set_stderr_tail(std::string(10000, 'x') + "the end");
  const nlohmann::json row = ResultRowJson(failed, 7);
  EXPECT_EQ(row["i"], 7);
  const std::string tail = row["stderr_tail"];
  EXPECT_EQ(tail.size(), kStderrTailBytes);
  EXPECT_TRUE(absl::EndsWith(tail, "the end"));
}

}  // namespace
}  // namespace testfleet
