// Start-up: flag parsing, environment fallbacks and the refusals, against the real binary.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

void expect_refusal(const std::vector<std::string>& args, const std::string& names,
                    const std::map<std::string, std::string>& env = {}) {
  const auto result = run_gateway_to_exit(args, env);
  std::string joined;
  for (const auto& arg : args)
    joined += arg + " ";
  EXPECT_NE(result.exit_code, 0) << joined;
  EXPECT_NE(result.stderr_text.find(names), std::string::npos)
      << joined << "\nstderr: " << result.stderr_text;
  // One line, so it reads well in a terminal and in logs.
  EXPECT_EQ(std::count(result.stderr_text.begin(), result.stderr_text.end(), '\n'), 1)
      << result.stderr_text;
}

TEST(Startup, RefusesBadCommandLines) {
  expect_refusal({}, "--auth-token");
  expect_refusal({"--auth-mode", "password-session"}, "--auth-password");
  expect_refusal({"--auth-mode", "localhost-dev", "--bind", "0.0.0.0:8787"}, "loopback");
  expect_refusal({"--auth-mode", "banana"}, "--auth-mode");
  expect_refusal({"--auth-mode", "localhost-dev", "--no-such-flag"}, "--no-such-flag");
  expect_refusal({"--auth-mode", "localhost-dev", "--threads"}, "--threads");
  expect_refusal({"--auth-mode", "localhost-dev", "--threads", "0"}, "--threads");
  expect_refusal({"--auth-mode", "localhost-dev", "--max-active-sessions", "many"},
                 "--max-active-sessions");
  expect_refusal({"--auth-mode", "localhost-dev", "--max-events-per-session", "-1"},
                 "--max-events-per-session");
  expect_refusal({"--auth-mode", "localhost-dev", "--bind", "localhost"}, "--bind");
  expect_refusal({"--auth-mode", "localhost-dev", "--bind", "127.0.0.1:70000"}, "--bind");
  // A malformed --worker-env is named, but its text (perhaps a secret) is not echoed.
  expect_refusal({"--auth-mode", "localhost-dev", "--worker-env", "SECRET-WITHOUT-KEY"},
                 "--worker-env");
  EXPECT_EQ(run_gateway_to_exit({"--auth-mode", "localhost-dev", "--worker-env", "s3cr3t-value"})
                .stderr_text.find("s3cr3t-value"),
            std::string::npos);
  expect_refusal({"--auth-mode", "localhost-dev", "--worker-kill-grace-ms", "-5"},
                 "--worker-kill-grace-ms");
  expect_refusal({"--auth-mode", "localhost-dev"}, "--inactivity-timeout-ms",
                 {{"TAU_GATEWAY_INACTIVITY_TIMEOUT_MS", "soon"}});
}

TEST(Startup, HelpListsEveryFlagWithItsDefault) {
  const auto result = run_gateway_to_exit({"--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const std::string flag :
       {"--bind", "--threads", "--state-dir", "--auth-mode", "--auth-token", "--auth-password",
        "--session-ttl-seconds", "--rate-limit-window-seconds", "--rate-limit-max-requests",
        "--max-input-chars", "--inactivity-timeout-ms", "--max-active-sessions",
        "--max-events-per-session", "127.0.0.1:8787", "600000", "32000", "TAU_GATEWAY_BIND"}) {
    EXPECT_NE(result.stdout_text.find(flag), std::string::npos) << flag;
  }
}

TEST(Startup, EnvironmentVariablesBackEveryFlagAndFlagsWin) {
  GatewayProcess from_env(
      {}, {{"TAU_GATEWAY_AUTH_TOKEN", "env-token"}, {"TAU_GATEWAY_MAX_ACTIVE_SESSIONS", "3"}});
  EXPECT_EQ(HttpClient(from_env.port(), "env-token").get("/gateway/status").status, 200u);
  EXPECT_EQ(
      status_runtime(HttpClient(from_env.port(), "env-token")).at("max_active_sessions").as_int64(),
      3);

  GatewayProcess flag_wins({"--auth-token", "flag-token"},
                           {{"TAU_GATEWAY_AUTH_TOKEN", "env-token"}});
  EXPECT_EQ(HttpClient(flag_wins.port(), "flag-token").get("/gateway/status").status, 200u);
  EXPECT_EQ(HttpClient(flag_wins.port(), "env-token").get("/gateway/status").status, 401u);
  EXPECT_EQ(flag_wins.stderr_text().find("flag-token"), std::string::npos);
  EXPECT_EQ(flag_wins.stderr_text().find("env-token"), std::string::npos);
}

TEST(Startup, ConfigFileSetsFlagsBelowTheEnvironment) {
  TempDir dir;
  const std::string path = dir.path() + "/gateway.toml";
  std::ofstream(path) << "auth-token = \"file-token\"\nmax-active-sessions = 3\n"
                         "[agents.opencode]\nprotocol = \"acp\"\ncommand = \"opencode\"\n";
  GatewayProcess gateway({"--config", path}, {{"TAU_GATEWAY_MAX_ACTIVE_SESSIONS", "4"}});
  const HttpClient client(gateway.port(), "file-token");
  EXPECT_EQ(client.get("/gateway/status").status, 200u);
  EXPECT_EQ(status_runtime(client).at("max_active_sessions").as_int64(), 4);
  EXPECT_NE(gateway.stderr_text().find("agents=opencode:acp"), std::string::npos);
}

TEST(Startup, BadConfigFileExitsWithTwoNamingTheFileAndLine) {
  TempDir dir;
  const std::string path = dir.path() + "/gateway.toml";
  std::ofstream(path) << "auth-mode = \"localhost-dev\"\n\n[agents.x]\n"
                         "protocol = \"telepathy\"\ncommand = \"x\"\n";
  const auto result = run_gateway_to_exit({"--config", path});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.stderr_text.find(path + ":4: agents.x.protocol"), std::string::npos)
      << result.stderr_text;
  EXPECT_EQ(std::count(result.stderr_text.begin(), result.stderr_text.end(), '\n'), 1)
      << result.stderr_text;
}

TEST(Startup, CreatesTheStateDirectory) {
  TempDir parent;
  const std::string state_dir = parent.path() + "/nested/state";
  GatewayProcess gateway({"--auth-mode", "localhost-dev", "--state-dir", state_dir});
  EXPECT_TRUE(std::filesystem::is_directory(state_dir));
}

TEST(Startup, ExitsWithOneWhenTheStateDirectoryCannotBeCreated) {
  TempDir parent;
  std::ofstream(parent.path() + "/file") << "not a directory";
  const auto result = run_gateway_to_exit(
      {"--auth-mode", "localhost-dev", "--state-dir", parent.path() + "/file/state"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.stderr_text.find("\"level\":\"critical\""), std::string::npos)
      << result.stderr_text;
  EXPECT_NE(result.stderr_text.find("cannot create --state-dir " + parent.path() + "/file/state"),
            std::string::npos)
      << result.stderr_text;
}

TEST(Startup, ExitsWithOneWhenThePortIsTaken) {
  GatewayProcess first;
  TempDir state;
  const std::string port = std::to_string(first.port());
  const auto second =
      run_gateway_to_exit({"--auth-mode", "localhost-dev", "--store", "memory", "--state-dir",
                           state.path(), "--bind", "127.0.0.1:" + port});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.stderr_text.find("cannot listen on 127.0.0.1 port " + port), std::string::npos)
      << second.stderr_text;
  // Every line queued before the exit is written.
  EXPECT_NE(second.stderr_text.find("configuration:"), std::string::npos) << second.stderr_text;
  EXPECT_EQ(HttpClient(first.port()).get("/healthz").status, 200u);
}

TEST(Startup, SigintStopsTheGatewayLikeSigterm) {
  TempDir state;
  int err[2];
  ASSERT_EQ(::pipe2(err, O_CLOEXEC), 0);
  const pid_t pid = spawn_process({TAU_GATEWAY_BINARY, "--auth-mode", "localhost-dev", "--bind",
                                   "127.0.0.1:0", "--store", "memory", "--state-dir", state.path()},
                                  {}, -1, err[1]);
  ::close(err[1]);
  // Interrupted once it listens (its signal handling is in place by then); stderr ends when it
  // exits.
  std::string text;
  bool interrupted = false;
  char buffer[4096];
  for (ssize_t n; (n = ::read(err[0], buffer, sizeof buffer)) > 0;) {
    text.append(buffer, static_cast<std::size_t>(n));
    if (!interrupted && text.find("listening on") != std::string::npos)
      interrupted = ::kill(pid, SIGINT) == 0;
  }
  ::close(err[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(interrupted) << text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << text;
  EXPECT_NE(text.find("signal 2 received; stopping"), std::string::npos) << text;
}

}  // namespace
}  // namespace tau::test
