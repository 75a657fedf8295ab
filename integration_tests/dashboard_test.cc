// The dashboard of a real coordinator binary: driven by Debian's Chromium
// (puppeteer-core) while a suite runs, and over HTTPS with tokens.
#include <filesystem>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tests/test_dir.h"
#include "dashboard/tests/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using ::testfleet::testing::Fetch;
using ::testing::HasSubstr;

const std::string kBrowserDir =
    std::string(TESTFLEET_SOURCE_DIR) + "/integration_tests/browser";

// What the browser test needs; in CI its absence is a failure, elsewhere a
// skip with the command that installs it.
std::string MissingBrowser() {
  if (system("command -v chromium >/dev/null 2>&1") != 0) return "chromium";
  if (system("command -v node >/dev/null 2>&1") != 0) return "node";
  if (!std::filesystem::exists(kBrowserDir + "/node_modules/puppeteer-core"))
    return "integration_tests/browser/node_modules (npm ci)";
  return "";
}

// The dashboard's port from the coordinator's log ("dashboard on http://...").
int DashboardPort(const Process& coordinator) {
  int port = 0;
  WaitFor(
      [&] {
        std::smatch match;
        const std::string log = coordinator.Log();
        if (std::regex_search(
                log, match, std::regex("dashboard on https?://[^:]+:(\\d+)"))) {
          port = std::stoi(match[1]);
        }
        return port > 0;
      },
      absl::Seconds(20));
  return port;
}

// A suite whose tests wait for `gate` to exist, except the first four: one
// of the held tests fails with "boom" on stderr. `run` changes every key so
// nothing comes from the cache.
std::string GatedSuite(const TestDir& dir, const std::string& gate, int run) {
  std::string tests;
  const std::string wait = absl::StrCat("for i in $(seq 600); do [ -e ", gate,
                                        " ] && break; sleep 0.05; done; ");
  for (int i = 0; i < 12; ++i) {
    const bool held = i >= 4;
    const bool fails = i == 9;
    // ": tI" makes each command (and so each cache key) the test's own.
    const std::string script = absl::StrCat(
        ": t", i, "; ", held ? wait : "", "sleep 0.", 2 + i % 3,
        fails ? "; echo 'assertion failed: boom' >&2; exit 1" : "");
    absl::StrAppend(&tests, i ? ",\n" : "", "{\"id\": \"web.t", i,
                    "\", \"cmd\": [\"sh\", \"-c\", \"", script,
                    "\"], \"env\": {\"RUN\": \"", run, "\"}}");
  }
  return dir.Write(
      absl::StrCat("suite", run, ".json"),
      "{\"name\": \"dashboard-demo\", \"tests\": [\n" + tests + "]}");
}

TEST(DashboardBrowserTest, ASuiteRunsLiveInChromiumAndATestShowsItsHistory) {
  if (const std::string missing = MissingBrowser(); !missing.empty()) {
    if (std::getenv("CI") != nullptr) FAIL() << missing << " is missing";
    GTEST_SKIP() << missing
                 << " is missing: scripts/install-deps.sh installs it";
  }
  TestDir dir;
  std::unique_ptr<Process> coordinator, worker;
  const std::string address =
      StartServer(coordinator, "coordinator",
                  {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data"),
                   "--http-listen=127.0.0.1:0"},
                  dir.Join("coordinator.log"));
  const int http_port = DashboardPort(*coordinator);
  ASSERT_GT(http_port, 0) << coordinator->Log();
  worker = std::make_unique<Process>(
      "worker",
      std::vector<std::string>{"--coordinator=" + address, "--slots=2",
                               "--workspace=" + dir.path(), "--name=w1"},
      dir.Join("worker.log"));

  // A first run (gate open) gives every test one run of history.
  const std::string gate = dir.Join("gate");
  dir.Write("gate", "");
  std::string output;
  ASSERT_EQ(Coordctl({"submit", GatedSuite(dir, gate, 1),
                      "--coordinator=" + address, "--no-upload", "--wait"},
                     dir.Join("first.log"), &output),
            1)
      << output;
  std::filesystem::remove(gate);

  ASSERT_EQ(Coordctl({"submit", GatedSuite(dir, gate, 2),
                      "--coordinator=" + address, "--no-upload"},
                     dir.Join("second.log"), &output),
            0)
      << output;
  const std::string suite_id = output.substr(0, output.find('\n'));
  EXPECT_THAT(output, HasSubstr(absl::StrCat("dashboard: http://127.0.0.1:",
                                             http_port, "/suites/", suite_id)));

  const std::string screens = dir.Join("screens");
  std::filesystem::create_directories(screens);
  const std::string log = dir.Join("browser.log");
  const std::string command = absl::StrCat(
      "cd ", kBrowserDir,
      " && timeout 180 node dashboard.mjs --url=http://127.0.0.1:", http_port,
      " --suite=", suite_id, " --gate=", gate, " --screens=", screens,
      " --runs=2 > ", log, " 2>&1");
  const int status = system(command.c_str());
  EXPECT_EQ(status, 0) << ReadFile(log);
  for (const char* screen : {"fleet.png", "suite.png", "test.png"}) {
    std::error_code missing;
    EXPECT_GT(std::filesystem::file_size(screens + "/" + screen, missing),
              10'000u)
        << screen << ": " << missing.message();
  }
  // Screenshots for docs/: scripts/dashboard-screenshots.sh sets this.
  if (const char* keep = std::getenv("TESTFLEET_SCREENSHOTS_DIR");
      keep != nullptr && status == 0) {
    for (const char* screen : {"fleet.png", "suite.png", "test.png"}) {
      std::filesystem::copy_file(
          screens + "/" + screen, std::string(keep) + "/dashboard-" + screen,
          std::filesystem::copy_options::overwrite_existing);
    }
  }
}

TEST(DashboardTlsTest, OverHttpsWithTokensOnlyAValidTokenSeesAnything) {
  TestDir dir;
  ASSERT_TRUE(MakeTestCertificates(dir.path()))
      << ReadFile(dir.Join("openssl.log"));
  dir.Write("tokens",
            "viewtoken-0123456789abcdef viewer view\n"
            "oldtoken-0123456789abcdefg old view 2020-01-01\n");
  std::unique_ptr<Process> coordinator;
  const std::string address = StartServer(
      coordinator, "coordinator",
      {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data"),
       "--http-listen=127.0.0.1:0", "--tls-cert=" + dir.Join("server.pem"),
       "--tls-key=" + dir.Join("server.key"),
       "--token-file=" + dir.Join("tokens")},
      dir.Join("coordinator.log"));
  const int port = DashboardPort(*coordinator);
  ASSERT_GT(port, 0) << coordinator->Log();
  EXPECT_THAT(coordinator->Log(), HasSubstr("dashboard on https://"));
  const bool tls = true;
  EXPECT_EQ(Fetch(port, "GET", "/api/fleet", {}, "", tls).status, 401);
  EXPECT_EQ(
      Fetch(port, "GET", "/api/fleet",
            {{"Authorization", "Bearer oldtoken-0123456789abcdefg"}}, "", tls)
          .status,
      401);
  EXPECT_EQ(
      Fetch(port, "GET", "/api/fleet",
            {{"Authorization", "Bearer viewtoken-0123456789abcdef"}}, "", tls)
          .status,
      200);
  // A session cookie from the login page, marked Secure over HTTPS.
  const auto login =
      Fetch(port, "POST", "/login",
            {{"Content-Type", "application/x-www-form-urlencoded"}},
            "token=viewtoken-0123456789abcdef", tls);
  EXPECT_EQ(login.status, 303);
  EXPECT_THAT(login.Header("set-cookie"), HasSubstr("; Secure"));
  // No plaintext on the TLS port.
  EXPECT_NE(Fetch(port, "GET", "/api/fleet").status, 200);
  // The coordinator goes on serving gRPC beside it.
  std::string output;
  EXPECT_EQ(
      Coordctl({"workers", "--coordinator=" + address,
                "--tls-ca=" + dir.Join("ca.pem"),
                "--token-file=" +
                    dir.Write("viewer.token", "viewtoken-0123456789abcdef\n")},
               dir.Join("workers.log"), &output),
      0)
      << output;
}

TEST(DashboardTlsTest, WithoutTokensARemoteAddressIsRefusedAtStart) {
  TestDir dir;
  Process coordinator("coordinator",
                      {"--listen=127.0.0.1:0", "--data-dir=" + dir.Join("data"),
                       "--http-listen=0.0.0.0:0"},
                      dir.Join("coordinator.log"));
  ASSERT_EQ(coordinator.Wait(absl::Seconds(30)), 2);
  EXPECT_THAT(coordinator.Log(), HasSubstr("not a loopback address"));
}

}  // namespace
}  // namespace testfleet
