// What users and CI tools read: JUnit XML checked against the common schema,
// and the progress line on a real terminal (a pty).
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include "absl/strings/str_cat.h"
#include "common/tests/test_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "integration_tests/harness.h"

namespace testfleet {
namespace {

using ::testing::HasSubstr;

TEST(ReportTest, JunitWithHostileOutputValidatesAgainstTheJunitSchema) {
  if (system("command -v xmllint >/dev/null 2>&1") != 0) {
    GTEST_SKIP()
        << "xmllint is missing: scripts/install-deps.sh installs libxml2-utils";
  }
  TestDir dir;
  // Control characters, invalid UTF-8, markup and a CDATA terminator in the
  // output; quotes and markup in the names.
  const std::string suite =
      dir.Write("suite.json", R"({"name": "xml <&> \"edge\"", "tests": [
      {"id": "ok", "cmd": ["sh", "-c", "printf 'ctrl \\001\\033[31m red \\377 <b>&amp;</b>'"]},
      {"id": "fails <1>", "cmd": ["sh", "-c", "echo 'bad ]]> thing' >&2; exit 3"]},
      {"id": "missing", "cmd": ["/nonexistent/binary"]},
      {"id": "slow", "cmd": ["sleep", "5"], "timeout": "200ms"}]})");
  std::string output;
  ASSERT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir.Join("cache"),
                      "--junit=" + dir.Join("junit.xml")},
                     dir.Join("run.log"), &output),
            1)
      << output;
  const std::string schema = std::string(TESTFLEET_SOURCE_DIR) +
                             "/integration_tests/fixtures/junit.xsd";
  const std::string validate = absl::StrCat("xmllint --noout --schema ", schema,
                                            " ", dir.Join("junit.xml"), " > ",
                                            dir.Join("xmllint.log"), " 2>&1");
  EXPECT_EQ(system(validate.c_str()), 0) << ReadFile(dir.Join("xmllint.log"));
  const std::string xml = ReadFile(dir.Join("junit.xml"));
  EXPECT_THAT(xml, HasSubstr("failures=\"2\" errors=\"1\""));
  EXPECT_THAT(xml, HasSubstr("ctrl \\x01\\x1b[31m red"));
}

TEST(ReportTest, IllFormedOutputAndTerminalEscapesReachNoReportRaw) {
  if (system("command -v xmllint >/dev/null 2>&1") != 0) {
    GTEST_SKIP()
        << "xmllint is missing: scripts/install-deps.sh installs libxml2-utils";
  }
  TestDir dir;
  // An overlong NUL and U+FFFE (the outputs that aborted coordctl and broke
  // JUnit), from a passing test, so the second run serves it from the
  // cache; and a failing test that tries to drive the terminal.
  const std::string suite = dir.Write("suite.json", R"({"tests": [
      {"id": "odd", "cmd": ["sh", "-c", "printf 'over\\300\\200long \\357\\277\\276 end'"]},
      {"id": "escapes", "cmd": ["sh", "-c",
        "printf '\\033[2J\\033]0;pwned\\007ALL TESTS PASSED\\n' >&2; exit 1"]}]})");
  for (int run = 0; run < 2; ++run) {
    SCOPED_TRACE(run == 0 ? "first run" : "from the cache");
    std::string output;
    ASSERT_EQ(Coordctl({"run", suite, "--cache-dir=" + dir.Join("cache"),
                        "--json=" + dir.Join("report.json"),
                        "--junit=" + dir.Join("junit.xml")},
                       dir.Join("run.log"), &output),
              1)
        << output;
    EXPECT_EQ(output.find('\x1b'), std::string::npos) << output;
    EXPECT_EQ(output.find('\x07'), std::string::npos) << output;
    EXPECT_THAT(output, HasSubstr("  | \\x1b[2J\\x1b]0;pwned\\x07ALL TESTS"));
    const nlohmann::json report = ReadJson(dir.Join("report.json"));
    ASSERT_EQ(report["tests"].size(), 2u);
    const std::string validate =
        absl::StrCat("xmllint --noout ", dir.Join("junit.xml"), " > ",
                     dir.Join("xmllint.log"), " 2>&1");
    EXPECT_EQ(system(validate.c_str()), 0) << ReadFile(dir.Join("xmllint.log"));
  }
}

TEST(ReportTest, ProgressLineUpdatesInPlaceOnATerminal) {
  TestDir dir;
  std::string tests;
  for (int i = 0; i < 6; ++i) {
    absl::StrAppend(&tests, i ? ", " : "", "{\"id\": \"t", i,
                    "\", \"cmd\": [\"sleep\", \"0.3\"]}");
  }
  const std::string suite =
      dir.Write("suite.json", "{\"tests\": [" + tests + "]}");
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string coordctl = BinDir() + "/coordctl";
    const std::string cache = "--cache-dir=" + dir.Join("cache");
    execl(coordctl.c_str(), coordctl.c_str(), "run", suite.c_str(),
          "--workers=1", cache.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string screen;
  const absl::Time until = absl::Now() + absl::Seconds(60);
  while (absl::Now() < until) {
    struct pollfd fd = {master, POLLIN, 0};
    if (poll(&fd, 1, 200) <= 0) continue;
    char buffer[4096];
    ssize_t n = read(master, buffer, sizeof(buffer));
    if (n <= 0) break;  // the child closed the terminal
    screen.append(buffer, static_cast<size_t>(n));
  }
  close(master);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << screen;
  // Several distinct progress states, each drawn over the last with '\r'.
  std::regex progress("\r\\[(\\d)/6\\]");
  std::set<std::string> states;
  for (std::sregex_iterator it(screen.begin(), screen.end(), progress), end;
       it != end; ++it) {
    states.insert((*it)[1]);
  }
  EXPECT_GE(states.size(), 3u) << screen;
  // No newline between two progress updates: the line is rewritten in place.
  const size_t first = screen.find("\r[");
  const size_t last = screen.rfind("\r[");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(screen.substr(first, last - first).find('\n'), std::string::npos)
      << screen;
  EXPECT_THAT(screen, HasSubstr("6 tests, 6 passed"));
}

}  // namespace
}  // namespace testfleet

namespace testfleet {
namespace {

TEST(ReportTest, HtmlReportLoadsInHeadlessChromium) {
  if (system("command -v chromium >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "chromium is missing: scripts/install-deps.sh installs it";
  }
  TestDir dir;
  const std::string suite =
      dir.Write("suite.json", R"({"name": "browser", "tests": [
      {"id": "quick", "cmd": ["true"]},
      {"id": "sleeper", "cmd": ["sleep", "0.4"]},
      {"id": "broken", "cmd": ["sh", "-c", "echo '<script>alert(1)</script>' >&2; exit 1"]}]})");
  std::string output;
  ASSERT_EQ(
      Coordctl({"run", suite, "--workers=2", "--cache-dir=" + dir.Join("cache"),
                "--html=" + dir.Join("report.html")},
               dir.Join("run.log"), &output),
      1)
      << output;
  // The flags keep Chromium off the network this machine does not have.
  const std::string chromium = absl::StrCat(
      "timeout 120 chromium --headless --no-sandbox --disable-gpu "
      "--disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update "
      "--disable-sync "
      "--user-data-dir=",
      dir.Join("profile"), " --window-size=1280,1400 ");
  ASSERT_EQ(
      system(absl::StrCat(chromium, "--dump-dom file://",
                          dir.Join("report.html"), " > ", dir.Join("dom.html"),
                          " 2>", dir.Join("chromium.log"))
                 .c_str()),
      0)
      << ReadFile(dir.Join("chromium.log"));
  const std::string dom = ReadFile(dir.Join("dom.html"));
  EXPECT_THAT(
      dom,
      HasSubstr("class=\"timeline\""));  // the slot timeline was parsed as SVG
  EXPECT_THAT(dom, HasSubstr("broken: failed"));
  // The test's output is text, not markup: no script element made it in.
  EXPECT_THAT(dom, ::testing::Not(HasSubstr("<script>")));
  ASSERT_EQ(system(absl::StrCat("cd ", dir.path(), " && ", chromium,
                                "--screenshot=", dir.Join("report.png"),
                                " file://", dir.Join("report.html"), " 2>>",
                                dir.Join("chromium.log"))
                       .c_str()),
            0);
  EXPECT_GT(ReadFile(dir.Join("report.png")).size(), 10000u);
}

}  // namespace
}  // namespace testfleet
