#include "gateway/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

extern char** environ;

namespace tau::gateway {
namespace {

constexpr std::string_view kEnvPrefix = "TAU_GATEWAY_";

// Names and values of every TAU_GATEWAY_* variable currently set.
std::vector<std::pair<std::string, std::string>> gateway_environment() {
  std::vector<std::pair<std::string, std::string>> variables;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (!text.starts_with(kEnvPrefix))
      continue;
    const auto equals = text.find('=');
    variables.emplace_back(
        std::string(text.substr(0, equals)),
        equals == std::string_view::npos ? std::string() : std::string(text.substr(equals + 1)));
  }
  return variables;
}

// Runs each test with no TAU_GATEWAY_* variables but those it sets, and puts the caller's
// environment back afterwards.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    saved_ = gateway_environment();
    clear_gateway_environment();
  }

  void TearDown() override {
    clear_gateway_environment();
    for (const auto& [name, value] : saved_)
      ::setenv(name.c_str(), value.c_str(), 1);
  }

  static void set_env(const char* name, const char* value) {
    ASSERT_EQ(::setenv(name, value, 1), 0);
  }

  // Parses `args` as if given after the program name.
  static std::variant<GatewayConfig, ExitRequest> parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv{"tau-gateway"};
    argv.insert(argv.end(), args.begin(), args.end());
    return parse_config(static_cast<int>(argv.size()), argv.data());
  }

  // The config `args` parse to; fails the test when they do not parse.
  static std::optional<GatewayConfig> parse_ok(std::initializer_list<const char*> args) {
    auto result = parse(args);
    if (auto* exit = std::get_if<ExitRequest>(&result)) {
      ADD_FAILURE() << "parse_config asked to exit with code " << exit->code;
      return std::nullopt;
    }
    return std::get<GatewayConfig>(std::move(result));
  }

  // The exit code `args` lead to, or -1 when they parse to a config.
  static int exit_code(std::initializer_list<const char*> args) {
    const auto result = parse(args);
    if (const auto* exit = std::get_if<ExitRequest>(&result))
      return exit->code;
    return -1;
  }

  // Success when `args` are refused with a nonzero exit code and one line on stderr that
  // names `flag`.
  static testing::AssertionResult refused_naming(std::initializer_list<const char*> args,
                                                 std::string_view flag) {
    testing::internal::CaptureStderr();
    const int code = exit_code(args);
    const std::string error = testing::internal::GetCapturedStderr();
    if (code <= 0)
      return testing::AssertionFailure() << "exit code " << code << ", stderr: " << error;
    if (error.find(flag) == std::string::npos)
      return testing::AssertionFailure() << "stderr does not name " << flag << ": " << error;
    if (std::count(error.begin(), error.end(), '\n') != 1 || error.back() != '\n')
      return testing::AssertionFailure() << "stderr is not one line: " << error;
    return testing::AssertionSuccess();
  }

 private:
  static void clear_gateway_environment() {
    for (const auto& [name, value] : gateway_environment())
      ::unsetenv(name.c_str());
  }

  std::vector<std::pair<std::string, std::string>> saved_;
};

// --- defaults and explicit values -------------------------------------------------------------

TEST_F(ConfigTest, Defaults) {
  const auto config = parse_ok({"--auth-token", "tok"});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->http.bind_host, "127.0.0.1");
  EXPECT_EQ(config->http.bind_port, 8787);
  EXPECT_EQ(config->http.threads, std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(config->store.state_dir, ".tau/gateway");
  EXPECT_EQ(config->auth.mode, auth::AuthMode::token);
  EXPECT_EQ(config->auth.token, "tok");
  EXPECT_EQ(config->auth.password, "");
  EXPECT_EQ(config->auth.session_ttl_seconds, 3600);
  EXPECT_EQ(config->auth.rate_limit_window_seconds, 60);
  EXPECT_EQ(config->auth.rate_limit_max_requests, 120u);
  EXPECT_EQ(config->http.max_input_chars, 32000u);
  EXPECT_EQ(config->http.max_body_bytes(), 256000u);
  EXPECT_EQ(config->sessions.inactivity_timeout_ms, 600000);
  EXPECT_EQ(config->sessions.max_active, 16u);
  EXPECT_EQ(config->sessions.max_events, 256u);
}

TEST_F(ConfigTest, EveryFlagIsApplied) {
  const auto config = parse_ok({"--bind",
                                "127.0.0.1:9100",
                                "--threads",
                                "3",
                                "--state-dir",
                                "/tmp/tau-state",
                                "--auth-mode",
                                "password-session",
                                "--auth-password",
                                "pw",
                                "--session-ttl-seconds",
                                "120",
                                "--rate-limit-window-seconds",
                                "10",
                                "--rate-limit-max-requests",
                                "5",
                                "--max-input-chars",
                                "100",
                                "--inactivity-timeout-ms",
                                "2500",
                                "--max-active-sessions",
                                "2",
                                "--max-events-per-session",
                                "9"});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->http.bind_host, "127.0.0.1");
  EXPECT_EQ(config->http.bind_port, 9100);
  EXPECT_EQ(config->http.threads, 3u);
  EXPECT_EQ(config->store.state_dir, "/tmp/tau-state");
  EXPECT_EQ(config->auth.mode, auth::AuthMode::password_session);
  EXPECT_EQ(config->auth.password, "pw");
  EXPECT_EQ(config->auth.session_ttl_seconds, 120);
  EXPECT_EQ(config->auth.rate_limit_window_seconds, 10);
  EXPECT_EQ(config->auth.rate_limit_max_requests, 5u);
  EXPECT_EQ(config->http.max_input_chars, 100u);
  EXPECT_EQ(config->http.max_body_bytes(), 800u);
  EXPECT_EQ(config->sessions.inactivity_timeout_ms, 2500);
  EXPECT_EQ(config->sessions.max_active, 2u);
  EXPECT_EQ(config->sessions.max_events, 9u);
}

TEST_F(ConfigTest, EqualsSignSyntaxWorks) {
  const auto config = parse_ok({"--auth-token=tok", "--threads=2", "--bind=127.0.0.1:1"});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->auth.token, "tok");
  EXPECT_EQ(config->http.threads, 2u);
  EXPECT_EQ(config->http.bind_port, 1);
}

TEST_F(ConfigTest, RangeBoundsAreAccepted) {
  const auto low = parse_ok({"--auth-token", "tok", "--threads", "1", "--max-active-sessions", "1",
                             "--max-events-per-session", "1", "--inactivity-timeout-ms", "1",
                             "--session-ttl-seconds", "1", "--rate-limit-window-seconds", "1",
                             "--rate-limit-max-requests", "1", "--max-input-chars", "1"});
  ASSERT_TRUE(low);
  EXPECT_EQ(low->http.threads, 1u);
  EXPECT_EQ(low->sessions.max_active, 1u);

  const auto high = parse_ok({"--auth-token", "tok", "--threads", "1024", "--max-active-sessions",
                              "4294967296", "--session-ttl-seconds", "9223372036854775"});
  ASSERT_TRUE(high);
  EXPECT_EQ(high->http.threads, 1024u);
  EXPECT_EQ(high->sessions.max_active, 4294967296u);
  EXPECT_EQ(high->auth.session_ttl_seconds, 9223372036854775);
}

// --- environment fallback ---------------------------------------------------------------------

TEST_F(ConfigTest, EnvironmentVariablesAreFallbacks) {
  set_env("TAU_GATEWAY_AUTH_TOKEN", "env-token");
  set_env("TAU_GATEWAY_BIND", "127.0.0.1:9200");
  set_env("TAU_GATEWAY_THREADS", "5");
  set_env("TAU_GATEWAY_STATE_DIR", "/tmp/env-state");
  set_env("TAU_GATEWAY_MAX_INPUT_CHARS", "1000");
  set_env("TAU_GATEWAY_INACTIVITY_TIMEOUT_MS", "1234");
  set_env("TAU_GATEWAY_MAX_ACTIVE_SESSIONS", "7");
  set_env("TAU_GATEWAY_MAX_EVENTS_PER_SESSION", "11");
  set_env("TAU_GATEWAY_RATE_LIMIT_WINDOW_SECONDS", "30");
  set_env("TAU_GATEWAY_RATE_LIMIT_MAX_REQUESTS", "40");

  const auto config = parse_ok({});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->auth.token, "env-token");
  EXPECT_EQ(config->http.bind_port, 9200);
  EXPECT_EQ(config->http.threads, 5u);
  EXPECT_EQ(config->store.state_dir, "/tmp/env-state");
  EXPECT_EQ(config->http.max_input_chars, 1000u);
  EXPECT_EQ(config->sessions.inactivity_timeout_ms, 1234);
  EXPECT_EQ(config->sessions.max_active, 7u);
  EXPECT_EQ(config->sessions.max_events, 11u);
  EXPECT_EQ(config->auth.rate_limit_window_seconds, 30);
  EXPECT_EQ(config->auth.rate_limit_max_requests, 40u);
}

TEST_F(ConfigTest, EnvironmentSelectsPasswordSessionMode) {
  set_env("TAU_GATEWAY_AUTH_MODE", "password-session");
  set_env("TAU_GATEWAY_AUTH_PASSWORD", "env-password");
  set_env("TAU_GATEWAY_SESSION_TTL_SECONDS", "90");

  const auto config = parse_ok({});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->auth.mode, auth::AuthMode::password_session);
  EXPECT_EQ(config->auth.password, "env-password");
  EXPECT_EQ(config->auth.session_ttl_seconds, 90);
}

TEST_F(ConfigTest, FlagWinsOverEnvironment) {
  set_env("TAU_GATEWAY_AUTH_TOKEN", "env-token");
  set_env("TAU_GATEWAY_THREADS", "5");
  set_env("TAU_GATEWAY_BIND", "127.0.0.1:9200");

  const auto config =
      parse_ok({"--auth-token", "flag-token", "--threads", "2", "--bind", "127.0.0.1:9300"});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->auth.token, "flag-token");
  EXPECT_EQ(config->http.threads, 2u);
  EXPECT_EQ(config->http.bind_port, 9300);
}

TEST_F(ConfigTest, InvalidEnvironmentValueIsAnError) {
  set_env("TAU_GATEWAY_AUTH_TOKEN", "tok");

  set_env("TAU_GATEWAY_THREADS", "0");
  EXPECT_TRUE(refused_naming({}, "--threads"));
  ::unsetenv("TAU_GATEWAY_THREADS");

  set_env("TAU_GATEWAY_BIND", "nonsense");
  EXPECT_TRUE(refused_naming({}, "--bind"));
  ::unsetenv("TAU_GATEWAY_BIND");

  set_env("TAU_GATEWAY_AUTH_MODE", "none");
  EXPECT_TRUE(refused_naming({}, "--auth-mode"));
}

TEST_F(ConfigTest, EnvironmentTokenSatisfiesTokenMode) {
  set_env("TAU_GATEWAY_AUTH_TOKEN", "env-token");

  EXPECT_EQ(exit_code({"--auth-mode", "token"}), -1);
}

// --- command-line errors ----------------------------------------------------------------------

TEST_F(ConfigTest, UnknownFlagIsAnError) {
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--no-such-flag"}, "--no-such-flag"));
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--no-such-flag", "1"}, "--no-such-flag"));
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "stray-positional"}, "stray-positional"));
}

TEST_F(ConfigTest, MissingValueIsAnError) {
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--threads"}, "--threads"));
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--bind"}, "--bind"));
  EXPECT_TRUE(refused_naming({"--auth-token"}, "--auth-token"));
}

TEST_F(ConfigTest, OutOfRangeOrMalformedNumbersAreErrors) {
  const std::vector<std::pair<const char*, const char*>> cases{
      {"--threads", "0"},
      {"--threads", "1025"},
      {"--threads", "abc"},
      {"--threads", "2.5"},
      {"--max-active-sessions", "-1"},
      {"--max-active-sessions", "0"},
      {"--max-active-sessions", "4294967297"},
      {"--max-events-per-session", "0"},
      {"--inactivity-timeout-ms", "0"},
      {"--inactivity-timeout-ms", "-5"},
      {"--session-ttl-seconds", "0"},
      {"--session-ttl-seconds", "9223372036854776"},
      {"--rate-limit-window-seconds", "0"},
      {"--rate-limit-max-requests", "0"},
      {"--max-input-chars", "0"},
      {"--max-input-chars", "18446744073709551616"},
  };
  for (const auto& [flag, value] : cases) {
    SCOPED_TRACE(testing::Message() << flag << " " << value);
    EXPECT_TRUE(refused_naming({"--auth-token", "tok", flag, value}, flag));
  }
}

TEST_F(ConfigTest, WorkerEnvClearAndResourceLimits) {
  const auto config =
      parse_ok({"--auth-token", "tok", "--worker-env-clear", "--worker-rlimit", "as=1073741824",
                "--worker-rlimit", "nofile=256", "--worker-rlimit", "nproc=64"});
  ASSERT_TRUE(config);
  EXPECT_TRUE(config->worker.clear_environment);
  EXPECT_EQ(config->worker.rlimits.address_space_bytes, 1073741824u);
  EXPECT_EQ(config->worker.rlimits.open_files, 256u);
  EXPECT_EQ(config->worker.rlimits.processes, 64u);
  EXPECT_NE(describe(*config).find("worker_rlimits=as=1073741824,nofile=256,nproc=64,"),
            std::string::npos);
  const auto defaults = parse_ok({"--auth-token", "tok"});
  ASSERT_TRUE(defaults);
  EXPECT_FALSE(defaults->worker.clear_environment);
  EXPECT_FALSE(defaults->worker.rlimits.open_files);
  for (const char* bad :
       {"nofile", "nofile=", "nofile=0", "nofile=-1", "nofile=1k", "core=0", "=5", "AS=5"}) {
    SCOPED_TRACE(bad);
    EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--worker-rlimit", bad}, "--worker-rlimit"));
  }
}

TEST_F(ConfigTest, UnknownAuthModeIsAnError) {
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--auth-mode", "none"}, "--auth-mode"));
  EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--auth-mode", "Token"}, "--auth-mode"));
  EXPECT_TRUE(
      refused_naming({"--auth-token", "tok", "--auth-mode", "password_session"}, "--auth-mode"));
}

TEST_F(ConfigTest, HelpExitsWithZero) {
  testing::internal::CaptureStdout();
  const int code = exit_code({"--help"});
  const std::string help = testing::internal::GetCapturedStdout();

  EXPECT_EQ(code, 0);
  EXPECT_NE(help.find("--bind"), std::string::npos);
  EXPECT_NE(help.find("TAU_GATEWAY_BIND"), std::string::npos);
}

// --- bind addresses ---------------------------------------------------------------------------

TEST_F(ConfigTest, MalformedBindAddressesAreErrors) {
  for (const char* bind : {
           "nonsense",
           "",
           "127.0.0.1",
           "127.0.0.1:",
           ":8080",
           "127.0.0.1:65536",
           "127.0.0.1:123456",
           "127.0.0.1:-1",
           "127.0.0.1:+80",
           "127.0.0.1:80a",
           "127.0.0.1: 80",
           "localhost:80",
           "256.0.0.1:80",
           "::1:80",
           "[::1]",
           "[::1]:",
           "[::1]80",
           "[127.0.0.1]:80",
           "[nonsense]:80",
       }) {
    SCOPED_TRACE(testing::Message() << "--bind [" << bind << "]");
    EXPECT_TRUE(refused_naming({"--auth-token", "tok", "--bind", bind}, "--bind"));
  }
}

TEST_F(ConfigTest, Ipv4BindAddresses) {
  const auto any = parse_ok({"--auth-token", "tok", "--bind", "0.0.0.0:0"});
  ASSERT_TRUE(any);
  EXPECT_EQ(any->http.bind_host, "0.0.0.0");
  EXPECT_EQ(any->http.bind_port, 0);

  const auto highest_port = parse_ok({"--auth-token", "tok", "--bind", "10.1.2.3:65535"});
  ASSERT_TRUE(highest_port);
  EXPECT_EQ(highest_port->http.bind_host, "10.1.2.3");
  EXPECT_EQ(highest_port->http.bind_port, 65535);
}

TEST_F(ConfigTest, BracketedIpv6BindAddress) {
  const auto config = parse_ok({"--auth-token", "tok", "--bind", "[::1]:0"});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->http.bind_host, "::1");
  EXPECT_EQ(config->http.bind_port, 0);
  EXPECT_NE(describe(*config).find("bind=[::1]:0"), std::string::npos) << describe(*config);
}

// --- auth mode requirements -------------------------------------------------------------------

TEST_F(ConfigTest, TokenModeNeedsAToken) {
  EXPECT_TRUE(refused_naming({}, "--auth-token"));
  EXPECT_TRUE(refused_naming({"--auth-mode", "token"}, "--auth-token"));
  EXPECT_TRUE(refused_naming({"--auth-mode", "token", "--auth-token", ""}, "--auth-token"));
  // A password is no substitute.
  EXPECT_TRUE(refused_naming({"--auth-mode", "token", "--auth-password", "pw"}, "--auth-token"));
}

TEST_F(ConfigTest, PasswordSessionModeNeedsAPassword) {
  EXPECT_TRUE(refused_naming({"--auth-mode", "password-session"}, "--auth-password"));
  EXPECT_TRUE(refused_naming({"--auth-mode", "password-session", "--auth-password", ""},
                             "--auth-password"));
  EXPECT_TRUE(refused_naming({"--auth-mode", "password-session", "--auth-token", "tok"},
                             "--auth-password"));

  const auto config = parse_ok({"--auth-mode", "password-session", "--auth-password", "pw"});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->auth.mode, auth::AuthMode::password_session);
}

TEST_F(ConfigTest, LocalhostDevModeNeedsALoopbackBind) {
  EXPECT_TRUE(refused_naming({"--auth-mode", "localhost-dev", "--bind", "0.0.0.0:1"}, "--bind"));
  EXPECT_TRUE(
      refused_naming({"--auth-mode", "localhost-dev", "--bind", "10.0.0.1:8787"}, "--bind"));
  EXPECT_TRUE(refused_naming({"--auth-mode", "localhost-dev", "--bind", "[::]:1"}, "--bind"));

  const auto v4 = parse_ok({"--auth-mode", "localhost-dev", "--bind", "127.0.0.1:0"});
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->auth.mode, auth::AuthMode::localhost_dev);

  EXPECT_TRUE(parse_ok({"--auth-mode", "localhost-dev", "--bind", "[::1]:0"}));
  // The default bind address is loopback, and no credential is needed.
  EXPECT_TRUE(parse_ok({"--auth-mode", "localhost-dev"}));
}

// --- describe ---------------------------------------------------------------------------------

TEST_F(ConfigTest, DescribeRedactsTheToken) {
  const auto config = parse_ok({"--auth-token", "tok-Zq8Xv3-secret", "--threads", "2"});
  ASSERT_TRUE(config);

  const std::string text = describe(*config);

  EXPECT_EQ(text.find("tok-Zq8Xv3-secret"), std::string::npos) << text;
  EXPECT_EQ(text.find("Zq8Xv3"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_token=<redacted>"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_password=unset"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_mode=token"), std::string::npos) << text;
  EXPECT_NE(text.find("bind=127.0.0.1:8787"), std::string::npos) << text;
  EXPECT_NE(text.find("threads=2"), std::string::npos) << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
}

TEST_F(ConfigTest, DescribeRedactsThePassword) {
  const auto config =
      parse_ok({"--auth-mode", "password-session", "--auth-password", "pw-Kd93Lq-secret"});
  ASSERT_TRUE(config);

  const std::string text = describe(*config);

  EXPECT_EQ(text.find("pw-Kd93Lq-secret"), std::string::npos) << text;
  EXPECT_EQ(text.find("Kd93Lq"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_password=<redacted>"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_token=unset"), std::string::npos) << text;
  EXPECT_NE(text.find("auth_mode=password-session"), std::string::npos) << text;
}

TEST_F(ConfigTest, DescribeNeverShowsSecretsEvenWhenBothAreSet) {
  GatewayConfig config;
  config.auth.token = "token-7f3a9c";
  config.auth.password = "password-51be02";

  const std::string text = describe(config);

  EXPECT_EQ(text.find("token-7f3a9c"), std::string::npos) << text;
  EXPECT_EQ(text.find("password-51be02"), std::string::npos) << text;
  EXPECT_EQ(text.find("7f3a9c"), std::string::npos) << text;
  EXPECT_EQ(text.find("51be02"), std::string::npos) << text;
}

TEST_F(ConfigTest, DescribeListsEveryLimit) {
  GatewayConfig config;
  config.auth.session_ttl_seconds = 11;
  config.auth.rate_limit_window_seconds = 12;
  config.auth.rate_limit_max_requests = 13;
  config.http.max_input_chars = 14;
  config.sessions.inactivity_timeout_ms = 15;
  config.sessions.max_active = 16;
  config.sessions.max_events = 17;

  const std::string text = describe(config);

  for (const char* expected :
       {"session_ttl_seconds=11", "rate_limit_window_seconds=12", "rate_limit_max_requests=13",
        "max_input_chars=14", "inactivity_timeout_ms=15", "max_active_sessions=16",
        "max_events_per_session=17", "state_dir=.tau/gateway"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " in " << text;
  }
}

// --- the config file (--config) ---------------------------------------------------------------

// A TOML file in the test's temporary directory, removed afterwards.
class TomlFile {
 public:
  explicit TomlFile(const std::string& text) {
    static int count = 0;
    path_ = testing::TempDir() + "tau-config-" + std::to_string(::getpid()) + "-" +
            std::to_string(++count) + ".toml";
    std::ofstream(path_) << text;
  }
  ~TomlFile() { std::filesystem::remove(path_); }
  TomlFile(const TomlFile&) = delete;
  TomlFile& operator=(const TomlFile&) = delete;

  const char* path() const { return path_.c_str(); }
  // "FILE:LINE: KEY", as errors name a key.
  std::string at(int line, const std::string& key) const {
    return path_ + ":" + std::to_string(line) + ": " + key;
  }

 private:
  std::string path_;
};

TEST_F(ConfigTest, FileSetsFlagsByTheirNames) {
  const TomlFile file(
      "bind = \"127.0.0.1:9100\"\n"
      "auth-mode = \"password-session\"\n"
      "auth-password = \"pw\"\n"
      "max-active-sessions = 3\n"
      "max_events_per_session = 40\n"  // underscores spell the same flag
      "worker-command = \"/bin/cat\"\n"
      "worker-arg = [\"-u\", \"--\"]\n"
      "worker-env = [\"A=1\"]\n"
      "metrics-public = true\n"
      "worker-env-clear = false\n");
  const auto config = parse_ok({"--config", file.path()});
  ASSERT_TRUE(config);

  EXPECT_EQ(config->http.bind_host, "127.0.0.1");
  EXPECT_EQ(config->http.bind_port, 9100);
  EXPECT_EQ(config->auth.mode, auth::AuthMode::password_session);
  EXPECT_EQ(config->auth.password, "pw");
  EXPECT_EQ(config->sessions.max_active, 3u);
  EXPECT_EQ(config->sessions.max_events, 40u);
  EXPECT_EQ(config->worker.command, "/bin/cat");
  EXPECT_EQ(config->worker.args, (std::vector<std::string>{"-u", "--"}));
  ASSERT_EQ(config->worker.env.size(), 1u);
  EXPECT_EQ(config->worker.env[0], (std::pair<std::string, std::string>{"A", "1"}));
  EXPECT_TRUE(config->auth.metrics_public);
  EXPECT_FALSE(config->worker.clear_environment);
}

TEST_F(ConfigTest, TheFileIsNamedByTheEnvironmentToo) {
  const TomlFile file("auth-token = \"from-file\"\nmax-active-sessions = 5\n");
  set_env("TAU_GATEWAY_CONFIG", file.path());
  const auto config = parse_ok({});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->auth.token, "from-file");
  EXPECT_EQ(config->sessions.max_active, 5u);
}

TEST_F(ConfigTest, FlagsAndEnvironmentWinOverTheFile) {
  const TomlFile file(
      "auth-token = \"from-file\"\n"
      "max-active-sessions = 5\n"
      "worker-arg = [\"file\"]\n"
      "threads = 7\n");
  set_env("TAU_GATEWAY_MAX_ACTIVE_SESSIONS", "6");
  const auto config =
      parse_ok({"--config", file.path(), "--auth-token", "from-flag", "--worker-arg", "flag"});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->auth.token, "from-flag");
  EXPECT_EQ(config->sessions.max_active, 6u);
  EXPECT_EQ(config->worker.args, std::vector<std::string>{"flag"});
  EXPECT_EQ(config->http.threads, 7u);  // the file still sets what neither names
}

TEST_F(ConfigTest, ProfilesAreReadWithEveryField) {
  const TomlFile file(
      "auth-mode = \"localhost-dev\"\n"
      "default_agent = \"opencode\"\n"
      "[agents.opencode]\n"
      "protocol = \"acp\"\n"
      "command = \"opencode\"\n"
      "args = [\"acp\"]\n"
      "env = { OPENCODE_CONFIG = \"/etc/tau/opencode.json\", B = \"2\" }\n"
      "permission = \"deny\"\n"
      "permission_timeout_ms = 1234\n"
      "max_events = 777\n"
      "[agents.claude]\n"
      "protocol = \"claude-stream-json\"\n"
      "command = \"claude\"\n"
      "[agents.plain]\n"
      "protocol = \"lines\"\n"
      "command = \"/bin/cat\"\n");
  const auto config = parse_ok({"--config", file.path(), "--max-events-per-session", "300"});
  ASSERT_TRUE(config);
  const auto& agents = config->agents;
  EXPECT_EQ(agents.default_agent, "opencode");
  ASSERT_EQ(agents.profiles.size(), 3u);

  const auto* opencode = agents.find("opencode");
  ASSERT_NE(opencode, nullptr);
  EXPECT_EQ(opencode->protocol, AgentProtocol::acp);
  EXPECT_EQ(opencode->command, "opencode");
  EXPECT_EQ(opencode->args, std::vector<std::string>{"acp"});
  EXPECT_EQ(opencode->env, (std::vector<std::pair<std::string, std::string>>{
                               {"B", "2"}, {"OPENCODE_CONFIG", "/etc/tau/opencode.json"}}));
  EXPECT_EQ(opencode->permission, PermissionPolicy::deny);
  EXPECT_EQ(opencode->permission_timeout_ms, 1234);
  EXPECT_EQ(opencode->max_events, 777u);

  // Defaults: ask, ten minutes, at least 10,000 events for an agent protocol and
  // --max-events-per-session for lines.
  const auto* claude = agents.find("claude");
  ASSERT_NE(claude, nullptr);
  EXPECT_EQ(claude->protocol, AgentProtocol::claude_stream_json);
  EXPECT_TRUE(claude->args.empty());
  EXPECT_EQ(claude->permission, PermissionPolicy::ask);
  EXPECT_EQ(claude->permission_timeout_ms, 600000);
  EXPECT_EQ(claude->max_events, 10000u);
  EXPECT_EQ(agents.find("plain")->max_events, 300u);

  const std::string text = describe(*config);
  EXPECT_NE(text.find("default_agent=opencode"), std::string::npos) << text;
  EXPECT_NE(text.find("opencode:acp"), std::string::npos) << text;
  EXPECT_NE(text.find("claude:claude-stream-json"), std::string::npos) << text;
  EXPECT_EQ(text.find("/etc/tau/opencode.json"), std::string::npos) << text;
}

TEST_F(ConfigTest, WorkerFlagsAreTheProfileNamedDefault) {
  const auto config = parse_ok({"--auth-token", "tok", "--worker-command", "/bin/cat",
                                "--worker-arg", "-u", "--worker-env", "K=secret-v"});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->agents.default_agent, "default");
  ASSERT_EQ(config->agents.profiles.size(), 1u);
  const auto& profile = config->agents.profiles[0];
  EXPECT_EQ(profile.name, "default");
  EXPECT_EQ(profile.protocol, AgentProtocol::lines);
  EXPECT_EQ(profile.command, "/bin/cat");
  EXPECT_EQ(profile.args, std::vector<std::string>{"-u"});
  EXPECT_EQ(profile.env, (std::vector<std::pair<std::string, std::string>>{{"K", "secret-v"}}));
  EXPECT_EQ(profile.max_events, 256u);
  EXPECT_EQ(describe(*config).find("secret-v"), std::string::npos);

  // Without a worker or a file there are no profiles.
  const auto plain = parse_ok({"--auth-token", "tok"});
  ASSERT_TRUE(plain);
  EXPECT_TRUE(plain->agents.profiles.empty());
  EXPECT_EQ(plain->agents.default_agent, "");
}

TEST_F(ConfigTest, DefaultProfileStaysDefaultBesideFileProfiles) {
  const TomlFile file("[agents.gemini]\nprotocol = \"acp\"\ncommand = \"gemini\"\n");
  const auto config =
      parse_ok({"--auth-token", "tok", "--config", file.path(), "--worker-command", "/bin/cat"});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->agents.profiles.size(), 2u);
  EXPECT_EQ(config->agents.default_agent, "default");
}

TEST_F(ConfigTest, FileErrorsNameTheFileLineAndKey) {
  const char* token = "--auth-token";
  const TomlFile syntax("bind = \"127.0.0.1:1\"\nthreads = \n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", syntax.path()}, syntax.at(2, "")));
  const TomlFile unknown("threads = 2\nbogus = 1\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", unknown.path()}, unknown.at(2, "bogus")));
  const TomlFile range("\nthreads = 0\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", range.path()}, range.at(2, "threads")));
  // Checked after the whole command line, still traced to the file.
  const TomlFile bind("\n\nbind = \"nowhere\"\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", bind.path()}, bind.at(3, "--bind")));
  const TomlFile array("threads = [1, 2]\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", array.path()}, array.at(1, "threads")));
  const TomlFile twice("max-streams = 1\nmax_streams = 2\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", twice.path()}, "max"));
  const TomlFile itself("config = \"other.toml\"\n");
  EXPECT_TRUE(refused_naming({token, "t", "--config", itself.path()}, itself.at(1, "config")));
  EXPECT_TRUE(
      refused_naming({token, "t", "--config", "/nonexistent/tau.toml"}, "/nonexistent/tau.toml"));
}

TEST_F(ConfigTest, ProfileErrorsNameTheFileLineAndKey) {
  const std::string head = "[agents.a]\nprotocol = \"acp\"\ncommand = \"x\"\n";
  const std::vector<std::pair<std::string, std::string>> cases{
      {head + "colour = \"blue\"\n", "4: agents.a.colour"},
      {"[agents.a]\nprotocol = \"acpx\"\ncommand = \"x\"\n", "2: agents.a.protocol"},
      {head + "permission = \"maybe\"\n", "4: agents.a.permission"},
      {head + "permission_timeout_ms = 0\n", "4: agents.a.permission_timeout_ms"},
      {head + "max_events = 0\n", "4: agents.a.max_events"},
      {head + "args = [\"ok\", 3]\n", "4: agents.a.args"},
      {head + "env = { K = 1 }\n", "4: agents.a.env.K"},
      {"default_agent = \"nobody\"\n" + head, "1: default_agent"},
      {"\n[agents.a]\nprotocol = \"acp\"\n", "2: agents.a.command"},
      {"[agents.a]\ncommand = \"x\"\n", "1: agents.a.protocol"},
      {"[agents.a]\nprotocol = \"acp\"\ncommand = \"\"\n", "3: agents.a.command"},
      {"[agents.\"a b\"]\nprotocol = \"acp\"\ncommand = \"x\"\n", "1: agents.a b"},
      {"agents = 3\n", "1: agents"},
  };
  for (const auto& [text, names] : cases) {
    const TomlFile file(text);
    EXPECT_TRUE(refused_naming({"--auth-token", "t", "--config", file.path()},
                               std::string(file.path()) + ":" + names))
        << text;
  }
}

TEST_F(ConfigTest, ProfileNamedDefaultConflictsWithTheWorkerFlags) {
  const TomlFile file("\n[agents.default]\nprotocol = \"acp\"\ncommand = \"x\"\n");
  EXPECT_TRUE(
      refused_naming({"--auth-token", "t", "--config", file.path(), "--worker-command", "/bin/cat"},
                     file.at(2, "agents.default")));
  // Alone it is an ordinary profile.
  const auto config = parse_ok({"--auth-token", "t", "--config", file.path()});
  ASSERT_TRUE(config);
  EXPECT_EQ(config->agents.default_agent, "default");
}

TEST_F(ConfigTest, ProfileEnvironmentValuesAreNeverEchoed) {
  const TomlFile file(
      "[agents.a]\nprotocol = \"acp\"\ncommand = \"x\"\nenv = { \"=K\" = \"s3cr3t\" }\n");
  testing::internal::CaptureStderr();
  EXPECT_EQ(exit_code({"--auth-token", "t", "--config", file.path()}), 2);
  EXPECT_EQ(testing::internal::GetCapturedStderr().find("s3cr3t"), std::string::npos);
}

// examples/agents/*.toml are read as they are shipped, so they stay valid.
TEST_F(ConfigTest, ExampleProfilesAreValid) {
  const std::filesystem::path dir = std::filesystem::path(TAU_SOURCE_DIR) / "examples/agents";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".toml")
      continue;
    ++files;
    const std::string path = entry.path().string();
    const auto config = parse_ok({"--auth-token", "t", "--config", path.c_str()});
    ASSERT_TRUE(config) << path;
    EXPECT_EQ(config->agents.profiles.size(), 1u) << path;
    EXPECT_EQ(config->agents.default_agent, config->agents.profiles.at(0).name) << path;
  }
  EXPECT_EQ(files, 5);
}

}  // namespace
}  // namespace tau::gateway
