// coordctl: the user's command line for Testfleet.
#include <unistd.h>

#include "CLI/CLI.hpp"
#include "common/flags.h"
#include "common/runtime.h"
#include "coordctl/commands.h"
#include "spdlog/spdlog.h"

namespace {

void AddReportOutputs(CLI::App* command, testfleet::ReportOutputs& outputs,
                      bool html) {
  command->add_option("--json", outputs.json, "write the JSON report here");
  command->add_option("--junit", outputs.junit, "write JUnit XML here");
  if (html)
    command->add_option("--html", outputs.html, "write the HTML report here");
  command->add_option("--outputs", outputs.files,
                      "download the tests' declared outputs into DIR/TEST/");
}

// SUITE, or an importer, and the filters: shared by run, submit and import.
void AddSuiteSource(CLI::App* command, testfleet::SuiteSource& source,
                    bool suite_file) {
  if (suite_file)
    command->add_option("SUITE", source.suite, "suite file (JSON)");
  command->add_option(
      "--from-ctest", source.from_ctest,
      "import the tests of a CTest build tree (ctest --show-only=json-v1)");
  command->add_option("--from-gtest", source.from_gtest,
                      "import one test per test case of a GoogleTest binary");
  command->add_option("--tag", source.filter.tags,
                      "keep tests with this tag (repeatable)");
  command->add_option("--id", source.filter.ids,
                      "keep tests whose id matches this glob");
  command->add_option("--exclude", source.filter.excludes,
                      "drop tests whose id matches this glob");
  if (suite_file) {
    command->add_flag("--allow-outside-paths", source.allow_outside_paths,
                      "let inputs and cwd leave the suite's folder");
    command
        ->add_flag("--fail-fast{1}", source.fail_fast,
                   "after N failures (--fail-fast=N; default 1) cancel the "
                   "rest, reported as not run")
        ->check(CLI::PositiveNumber);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace testfleet;
  DisableMutexDeadlockDetection();
  spdlog::set_pattern("[%H:%M:%S.%e] %^%l%$ %v");
  spdlog::set_level(spdlog::level::warn);
  CLI::App app{
      "coordctl: run test suites on Testfleet.\n\n"
      "  coordctl run suite.json                  everything on this machine\n"
      "  coordctl submit suite.json --coordinator=HOST:PORT --wait\n"
      "Exit codes: 0 all passed, 1 a test failed, 2 bad usage or input, "
      "3 infrastructure error."};
  app.set_version_flag("--version", "coordctl (Testfleet) 0.1.0");
  app.require_subcommand(1);
  // Security flags belong to the program; they may follow any subcommand.
  app.fallthrough();
  ClientSecurity security;
  std::string token_file;
  AddClientSecurityFlags(app, security, token_file);
  const bool terminal = isatty(STDERR_FILENO) == 1;

  RunOptions run;
  run.terminal = terminal;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "run a suite on this machine: embedded coordinator, local workers, local "
      "cache\n"
      "  coordctl run examples/suite.json --workers=4 --junit=report.xml");
  AddSuiteSource(run_cmd, run.source, true);
  run_cmd
      ->add_option("--workers", run.workers,
                   "local workers (default: one per core)")
      ->check(CLI::Range(1, 1024));
  run_cmd->add_option(
      "--cache-dir", run.cache_dir,
      "local cache and history (default $XDG_CACHE_HOME/testfleet)");
  run_cmd->add_option(
      "--remote-cache", run.remote_cache,
      "HOST:PORT of a shared cache to look results up in first");
  run_cmd->add_option("--platform-tag", run.platform_tag,
                      "extra platform key part");
  run_cmd
      ->add_option("--sample-interval", run.sample_interval,
                   "memory sampling period; 0: off")
      ->check(DurationValidator())
      ->capture_default_str();
  AddReportOutputs(run_cmd, run.outputs, true);
  run_cmd->add_option("--cache-signing-key", run.signing_key_file,
                      "fleet key file: sign cache entries, ignore unsigned "
                      "ones (also those of --remote-cache)");
  run_cmd->add_flag("--fail-on-regression", run.fail_on_regression,
                    "exit 1 when a test got significantly slower or bigger");
  run_cmd->add_option("--http-listen", run.http_listen,
                      "HOST:PORT (loopback) to serve the web dashboard on "
                      "while the run lasts");

  SubmitOptions submit;
  submit.terminal = terminal;
  int priority = 0;
  CLI::App* submit_cmd = app.add_subcommand(
      "submit",
      "submit a suite to a coordinator; prints the suite id\n"
      "  coordctl submit suite.json --coordinator=ci-coord:7070 --wait "
      "--junit=r.xml");
  AddSuiteSource(submit_cmd, submit.source, true);
  submit_cmd->add_option("--coordinator", submit.coordinator, "HOST:PORT")
      ->required();
  submit_cmd->add_flag("--wait", submit.wait,
                       "follow progress; exit with the suite's result");
  CLI::Option* priority_option = submit_cmd->add_option(
      "--priority", priority, "override the suite's priority");
  submit_cmd->add_option("--cache-dir", submit.cache_dir,
                         "where the input digest memo lives");
  submit_cmd->add_option("--platform-tag", submit.platform_tag,
                         "extra platform key part");
  AddReportOutputs(submit_cmd, submit.outputs, true);
  submit_cmd->add_flag("--fail-on-regression", submit.fail_on_regression,
                       "with --wait: exit 1 on a performance regression");
  submit_cmd->add_flag(
      "--no-upload", submit.no_upload,
      "send no inputs: workers run the tests in their --workspace checkout");

  std::string suite_id, coordinator;
  auto suite_command = [&](const char* name, const char* help) {
    CLI::App* command = app.add_subcommand(name, help);
    command->add_option("SUITE_ID", suite_id, "as printed by submit")
        ->required();
    command->add_option("--coordinator", coordinator, "HOST:PORT")->required();
    return command;
  };
  CLI::App* status_cmd =
      suite_command("status", "one line of a suite's progress");
  CLI::App* watch_cmd = suite_command("watch", "follow a suite until it ends");
  CLI::App* cancel_cmd =
      suite_command("cancel", "cancel a suite's remaining tests");
  ReportOutputs report_outputs;
  CLI::App* report_cmd =
      suite_command("report", "print and write a suite's report");
  AddReportOutputs(report_cmd, report_outputs, true);

  SuiteSource import_source;
  std::string import_output;
  CLI::App* import_cmd = app.add_subcommand(
      "import",
      "write a suite file from a CTest build tree or a GoogleTest binary\n"
      "  coordctl import --from-ctest=build -o suite.json");
  AddSuiteSource(import_cmd, import_source, false);
  import_cmd->add_option("-o,--output", import_output, "suite file to write")
      ->required();

  std::string test_id;
  CLI::App* explain_cmd = suite_command(
      "explain",
      "why a test ran instead of coming from the cache: what changed in its "
      "key\n"
      "  coordctl explain SUITE_ID math.add --coordinator=HOST:PORT");
  explain_cmd->add_option("TEST_ID", test_id, "the test's id")->required();

  CLI::App* workers_cmd =
      app.add_subcommand("workers", "list the coordinator's workers");
  workers_cmd->add_option("--coordinator", coordinator, "HOST:PORT")
      ->required();

  // History commands: a coordinator's, or without one the local history of
  // `coordctl run`.
  LocalOrRemote where;
  auto add_where = [&](CLI::App* command) {
    CLI::Option* remote = command->add_option(
        "--coordinator", where.coordinator,
        "HOST:PORT (default: the local history of coordctl run)");
    command
        ->add_option("--cache-dir", where.cache_dir,
                     "coordctl run's cache and history folder")
        ->excludes(remote);
  };
  std::string suite_name, history_json;
  CLI::App* history_cmd = app.add_subcommand(
      "history",
      "a suite's test history: medians, trends, flips, leaks; with TEST_ID, "
      "its runs\n"
      "  coordctl history example math.add --coordinator=HOST:PORT");
  history_cmd->add_option("SUITE_NAME", suite_name, "the suite's name")
      ->required();
  history_cmd->add_option("TEST_ID", test_id, "one test's runs");
  history_cmd->add_option("--json", history_json, "write it all as JSON");
  add_where(history_cmd);
  CLI::App* regressions_cmd = app.add_subcommand(
      "regressions",
      "a suite's performance regressions and improvements (exit 1 if it has "
      "regressions)");
  regressions_cmd->add_option("SUITE_ID", suite_id, "the suite")->required();
  add_where(regressions_cmd);
  std::string baseline_operation, baseline_from;
  CLI::App* baseline_cmd = app.add_subcommand(
      "baseline",
      "pin the baseline regressions are measured against\n"
      "  coordctl baseline set example --from=SUITE_ID   that suite's runs\n"
      "  coordctl baseline clear example                 back to rolling");
  baseline_cmd
      ->add_option("OPERATION", baseline_operation, "set, clear or show")
      ->required()
      ->check(CLI::IsMember({"set", "clear", "show"}));
  baseline_cmd->add_option("SUITE_NAME", suite_name, "the suite's name")
      ->required();
  baseline_cmd->add_option("--from", baseline_from,
                           "pin the history as of this finished suite");
  add_where(baseline_cmd);

  std::string cache_operation, cache_address;
  CLI::App* cache_cmd =
      app.add_subcommand("cache", "result cache statistics and cleanup");
  cache_cmd->add_option("OPERATION", cache_operation, "stats or gc")
      ->required()
      ->check(CLI::IsMember({"stats", "gc"}));
  CLI::Option* via_coordinator = cache_cmd->add_option(
      "--coordinator", cache_address, "a coordinator serving the cache");
  cache_cmd->add_option("--cache", cache_address, "a cache_server")
      ->excludes(via_coordinator);
  std::string gc_writer;
  cache_cmd->add_option("--writer", gc_writer,
                        "gc: also remove every entry this writer stored");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (cache_cmd->parsed() && cache_address.empty()) {
    std::fprintf(
        stderr,
        "coordctl: cache needs --coordinator=HOST:PORT or --cache=HOST:PORT\n");
    return 2;
  }
  if (priority_option->count() > 0) submit.priority = priority;
  if (absl::Status installed = InstallClientSecurity(security, token_file);
      !installed.ok()) {
    std::fprintf(stderr, "coordctl: %s\n",
                 std::string(installed.message()).c_str());
    return 2;
  }

  if (run_cmd->parsed()) return RunCommand(run);
  if (submit_cmd->parsed()) return SubmitCommand(submit);
  if (status_cmd->parsed()) return StatusCommand(suite_id, coordinator);
  if (watch_cmd->parsed()) return WatchCommand(suite_id, coordinator, terminal);
  if (cancel_cmd->parsed()) return CancelCommand(suite_id, coordinator);
  if (report_cmd->parsed())
    return ReportCommand(suite_id, coordinator, report_outputs);
  if (workers_cmd->parsed()) return WorkersCommand(coordinator);
  if (explain_cmd->parsed())
    return ExplainCommand(suite_id, test_id, coordinator);
  if (import_cmd->parsed()) return ImportCommand(import_source, import_output);
  if (cache_cmd->parsed())
    return CacheCommand(cache_operation, cache_address, gc_writer);
  if (history_cmd->parsed())
    return HistoryCommand(suite_name, test_id, where, history_json);
  if (regressions_cmd->parsed()) return RegressionsCommand(suite_id, where);
  if (baseline_cmd->parsed()) {
    return BaselineCommand(baseline_operation, suite_name, baseline_from,
                           where);
  }
  return 2;
}
