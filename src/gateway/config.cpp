#include "gateway/config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <iostream>
#include <limits>
#include <optional>
#include <string_view>
#include <thread>

#include "gateway/config_file.h"
#include "http/browser_policy.h"
#include "http/query.h"

namespace tau::gateway {

namespace {

constexpr std::string_view kProgram = "tau-gateway";

// "--max-input-chars" -> "TAU_GATEWAY_MAX_INPUT_CHARS"
std::string env_name(std::string_view flag) {
  std::string name = "TAU_GATEWAY_";
  for (char c : flag.substr(2)) {
    name.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return name;
}

struct BindAddress {
  std::string host;
  std::uint16_t port = 0;
};

// "HOST:PORT" with an IPv4 literal, or "[IPv6]:PORT".
std::optional<BindAddress> parse_bind(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find("]:");
    if (close == std::string_view::npos)
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(host), ec);
  if (ec || (text.front() == '[') != address.is_v6())
    return std::nullopt;
  if (port.empty() || port.size() > 5)
    return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535)
    return std::nullopt;
  return BindAddress{std::string(host), static_cast<std::uint16_t>(value)};
}

// Flags whose text is checked and converted once the whole command line is read (validate).
struct RawFlags {
  std::string config_file;
  std::string bind = "127.0.0.1:8787";
  std::string auth_mode = "token";
  std::string store = "sqlite";
  std::string redis_password;
  std::string durability = "normal";
  std::string log_level = "info";
  std::string log_format = "json";
  std::vector<std::string> worker_env;
  std::vector<std::string> worker_rlimits;
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> cors_origins;
};

using Problem = std::optional<std::string>;  // a one-line message naming the flag

constexpr auto kMaxInt = std::numeric_limits<std::int64_t>::max() / 1000;
constexpr auto kMaxHalf = std::numeric_limits<std::int64_t>::max() / 2;

// Declares `flag` with its environment variable and its default shown in --help.
template <typename T>
CLI::Option* add(CLI::App& app, const std::string& flag, T& target, std::string help) {
  return app.add_option(flag, target, std::move(help))
      ->envname(env_name(flag))
      ->capture_default_str();
}

// The end of --help: the config file's format (docs/api.md has the whole of it).
constexpr const char* kConfigFileHelp =
    "Config file (--config FILE, TOML): any flag above as `name = value` (an array for a\n"
    "repeatable flag, a boolean for an on/off flag), default_agent = \"NAME\", and one table per\n"
    "agent:\n"
    "  [agents.NAME]\n"
    "  protocol = \"acp\"                # acp | claude-stream-json | lines (required)\n"
    "  command = \"opencode\"            # a path or a name in PATH (required)\n"
    "  args = [\"acp\"]\n"
    "  env = { KEY = \"value\" }\n"
    "  permission = \"ask\"              # ask | allow | deny\n"
    "  permission_timeout_ms = 600000  # an unanswered request is rejected after this\n"
    "  startup_timeout_ms = 30000      # acp: from the start until ready for a first prompt\n"
    "  max_events = 10000              # events kept per session\n"
    "--worker-command, --worker-arg and --worker-env are the profile named default (lines).\n"
    "A bad file, key or value exits with status 2 naming the file, line and key.";

// The declare_* functions run in this order, which is the order of --help.

void declare_config_flag(CLI::App& app, RawFlags& raw) {
  add(app, "--config", raw.config_file,
      "a TOML file: any flag below by its name (the flag and its environment variable win), "
      "default_agent and [agents.NAME] profiles (docs/api.md, examples/agents/)")
      ->type_name("FILE");
}

void declare_listen_flags(CLI::App& app, GatewayConfig& config, RawFlags& raw) {
  add(app, "--bind", raw.bind,
      "listen address, HOST:PORT (IPv4) or [IPv6]:PORT; port 0 picks a free one");
  add(app, "--threads", config.http.threads, "I/O threads (default: number of cores)")
      ->check(CLI::Range(1U, 1024U));
  add(app, "--state-dir", config.store.state_dir, "state directory, created if missing");
  add(app, "--allowed-host", raw.allowed_hosts,
      "a Host the gateway answers to besides the bind address (and localhost on loopback): "
      "NAME or NAME:PORT (repeatable)");
  add(app, "--cors-origin", raw.cors_origins,
      "an origin (scheme://host[:port]) whose pages may call the API, answered with CORS "
      "(repeatable)");
}

void declare_auth_flags(CLI::App& app, AuthSettings& auth, RawFlags& raw) {
  add(app, "--auth-mode", raw.auth_mode, "token | password-session | localhost-dev")
      ->check(CLI::IsMember({"token", "password-session", "localhost-dev"}));
  add(app, "--auth-token", auth.token, "bearer token; required in token mode");
  add(app, "--auth-password", auth.password, "password; required in password-session mode");
  add(app, "--session-ttl-seconds", auth.session_ttl_seconds, "lifetime of password-session tokens")
      ->check(CLI::Range(std::int64_t{1}, kMaxInt));
  add(app, "--rate-limit-window-seconds", auth.rate_limit_window_seconds, "rate-limit window")
      ->check(CLI::Range(std::int64_t{1}, kMaxInt));
  add(app, "--rate-limit-max-requests", auth.rate_limit_max_requests,
      "requests per principal per window")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add(app, "--auth-failures-free", auth.failures_free_per_address,
      "failed passwords or tokens per client address per window before attempts are slowed")
      ->check(CLI::Range(0U, 1000000U));
  add(app, "--auth-failures-free-global", auth.failures_free_global,
      "failed passwords or tokens from all addresses per window before every attempt is slowed")
      ->check(CLI::Range(0U, 1000000U));
}

void declare_session_flags(CLI::App& app, GatewayConfig& config) {
  add(app, "--max-input-chars", config.http.max_input_chars,
      "input size limit; bodies over 8x this many bytes are refused")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add(app, "--inactivity-timeout-ms", config.sessions.inactivity_timeout_ms,
      "running sessions idle longer than this are timed out")
      ->check(CLI::Range(std::int64_t{1}, kMaxHalf));
  add(app, "--max-active-sessions", config.sessions.max_active, "running sessions at once")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  add(app, "--max-events-per-session", config.sessions.max_events,
      "events kept for replay per session")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  add(app, "--max-event-memory-bytes", config.sessions.max_event_memory_bytes,
      "what the events held in memory may take, all sessions together; past it, events the "
      "store keeps are let go from memory, and appends are refused (503) when none can be")
      ->check(CLI::Range(std::uint64_t{1} << 20, std::uint64_t{1} << 46));
}

void declare_sse_flags(CLI::App& app, SseSettings& sse) {
  add(app, "--sse-retry-ms", sse.retry_ms, "reconnect delay sent to stream clients (retry:)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  add(app, "--sse-heartbeat-ms", sse.heartbeat_ms,
      "comment heartbeat interval on open follow streams")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add(app, "--sse-max-buffered-bytes", sse.max_buffered_bytes,
      "a follow stream whose unsent backlog exceeds this is disconnected")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add(app, "--max-streams", sse.max_streams, "open follow streams at once")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  add(app, "--sse-stream-max-ms", sse.stream_max_ms,
      "end follow streams after this long so clients reconnect and resume (0: never)")
      ->check(CLI::Range(std::int64_t{0}, kMaxHalf));
}

void declare_store_flags(CLI::App& app, GatewayConfig& config, RawFlags& raw) {
  add(app, "--store", raw.store,
      "sqlite (durable, at <state-dir>/gateway.db) | memory (lost on restart) | "
      "redis://[:password@]HOST:PORT[/DB] (shared by several gateways)");
  add(app, "--redis-password", raw.redis_password,
      "Redis password (prefer the environment variable to the flag); overrides the URL's");
  add(app, "--redis-prefix", config.store.redis_prefix, "prefix of every Redis key and channel");
  add(app, "--owner-lease-ms", config.store.owner_lease_ms,
      "with Redis: a gateway that stops renewing its lease this long has its workers' sessions "
      "failed by the others")
      ->check(CLI::Range(std::int64_t{300}, std::int64_t{3600000}));
  add(app, "--durability", raw.durability,
      "sqlite: normal (survives a gateway crash) | full (also a power loss: fsync per commit)")
      ->check(CLI::IsMember({"normal", "full"}));
  add(app, "--session-retention-hours", config.sessions.retention_hours,
      "ended sessions are deleted with their events this long after they end")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{24} * 365 * 100));
}

void declare_connection_flags(CLI::App& app, HttpSettings& http) {
  add(app, "--max-connections", http.max_connections,
      "open connections at once; more are closed as soon as they are accepted")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 24));
  add(app, "--header-timeout-ms", http.header_timeout_ms,
      "a request header must be complete this long after its first byte")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3600000}));
  add(app, "--body-timeout-ms", http.body_timeout_ms,
      "a request body must be complete this long after its header")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3600000}));
  add(app, "--idle-timeout-ms", http.idle_timeout_ms,
      "a keep-alive connection may wait this long for its next request (not while streaming)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add(app, "--max-header-bytes", http.max_header_bytes, "larger request headers are answered 431")
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 20));
  add(app, "--max-target-bytes", http.max_target_bytes, "longer request targets are answered 414")
      ->check(CLI::Range(std::uint64_t{64}, std::uint64_t{1} << 20));
}

void declare_operator_flags(CLI::App& app, GatewayConfig& config, RawFlags& raw) {
  add(app, "--log-level", raw.log_level,
      "trace | debug | info | warn | error | critical | off (access lines are info)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  add(app, "--log-format", raw.log_format, "json (one object per line) | text")
      ->check(CLI::IsMember({"json", "text"}));
  app.add_flag("--metrics-public", config.auth.metrics_public,
               "serve GET /metrics without a bearer token (e.g. to a scraper on a private network)")
      ->envname(env_name("--metrics-public"));
}

void declare_worker_flags(CLI::App& app, WorkerSettings& worker, RawFlags& raw) {
  add(app, "--worker-command", worker.command,
      "worker mode: the agent to start for each new session (a path or a name in PATH; no shell)");
  add(app, "--worker-arg", worker.args, "an argument for the worker (repeatable, in order)");
  add(app, "--worker-env", raw.worker_env,
      "KEY=VALUE added to the worker's environment (repeatable)");
  add(app, "--workspace-root", worker.workspace_root,
      "workers run in <workspace-root>/<workspace_id> (default: <state-dir>/workspaces)");
  add(app, "--worker-kill-grace-ms", worker.kill_grace_ms,
      "after SIGTERM, how long a worker may take to exit before SIGKILL")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}));
  add(app, "--worker-max-line-bytes", worker.max_line_bytes,
      "longer output lines are split into pieces of this size")
      ->check(CLI::Range(std::uint64_t{16}, std::uint64_t{1} << 30));
  app.add_flag("--worker-env-clear", worker.clear_environment,
               "start workers from an empty environment (plus PATH, HOME and LANG) instead of the "
               "gateway's; TAU_GATEWAY_* and the gateway's secrets are withheld either way")
      ->envname(env_name("--worker-env-clear"));
  add(app, "--worker-rlimit", raw.worker_rlimits,
      "NAME=VALUE, a limit set on each worker before it starts (repeatable): as=BYTES (address "
      "space), nofile=COUNT (open files), nproc=COUNT (processes of the worker's user)");
}

// One --worker-rlimit value into `limits`; names as prlimit(1) spells them.
Problem parse_worker_rlimit(std::string_view text, worker::ResourceLimits& limits) {
  const auto equals = text.find('=');
  const std::string_view name = text.substr(0, equals);
  std::optional<std::uint64_t>* slot = name == "as"       ? &limits.address_space_bytes
                                       : name == "nofile" ? &limits.open_files
                                       : name == "nproc"  ? &limits.processes
                                                          : nullptr;
  if (equals == std::string_view::npos || !slot)
    return "--worker-rlimit: '" + std::string(text) + "' is not as=, nofile= or nproc=VALUE";
  const auto value = http::parse_unsigned(text.substr(equals + 1));
  if (!value || *value == 0)
    return "--worker-rlimit: " + std::string(name) + " needs a positive integer, not '" +
           std::string(text.substr(equals + 1)) + "'";
  *slot = *value;
  return std::nullopt;
}

// --- validation: each step converts its group's raw text and checks it ----------------------

Problem validate_worker(WorkerSettings& worker, const RawFlags& raw, const std::string& state_dir) {
  for (const auto& pair : raw.worker_env) {
    const auto equals = pair.find('=');
    if (equals == std::string::npos || equals == 0) {
      // The value is not echoed: it may be a secret.
      return "--worker-env: each value must be KEY=VALUE with a non-empty KEY";
    }
    worker.env.emplace_back(pair.substr(0, equals), pair.substr(equals + 1));
  }
  for (const auto& limit : raw.worker_rlimits) {
    if (auto problem = parse_worker_rlimit(limit, worker.rlimits))
      return problem;
  }
  if (worker.workspace_root.empty())
    worker.workspace_root = state_dir + "/workspaces";
  return std::nullopt;
}

Problem validate_store(StoreSettings& store, const RawFlags& raw) {
  // Checked by --durability's IsMember.
  store.durability = *store::durability_from_string(raw.durability);
  if (raw.store == "sqlite" || raw.store == "memory") {
    store.kind = raw.store == "sqlite" ? StoreKind::sqlite : StoreKind::memory;
    return std::nullopt;
  }
  if (!raw.store.starts_with("redis://"))
    return "--store: must be sqlite, memory or a redis:// URL";
  auto address = redis::parse_redis_url(raw.store);
  // The URL is not echoed: it may hold a password.
  if (auto* reason = std::get_if<std::string>(&address))
    return "--store: the Redis URL " + *reason;
  store.kind = StoreKind::redis;
  store.redis = std::get<redis::RedisAddress>(std::move(address));
  if (!raw.redis_password.empty())
    store.redis.password = raw.redis_password;
  if (store.redis_prefix.empty())
    return "--redis-prefix must not be empty";
  return std::nullopt;
}

Problem validate_bind(HttpSettings& http, const std::string& bind) {
  const auto address = parse_bind(bind);
  if (!address)
    return "--bind: '" + bind + "' is not HOST:PORT or [IPv6]:PORT";
  http.bind_host = address->host;
  http.bind_port = address->port;
  return std::nullopt;
}

Problem validate_browser(HttpSettings& http, const RawFlags& raw) {
  for (const auto& value : raw.allowed_hosts) {
    const auto host = http::normalize_allowed_host(value);
    if (!host)
      return "--allowed-host: '" + value + "' is not NAME, NAME:PORT, IPv4[:PORT] or [IPv6][:PORT]";
    http.allowed_hosts.push_back(*host);
  }
  for (const auto& value : raw.cors_origins) {
    const auto origin = http::normalize_origin(value);
    if (!origin)
      return "--cors-origin: '" + value + "' is not an origin such as https://app.example:8443";
    http.cors_origins.push_back(*origin);
  }
  return std::nullopt;
}

// After validate_bind: localhost-dev mode depends on the bind address.
Problem validate_auth(AuthSettings& auth, const RawFlags& raw, const HttpSettings& http) {
  auth.mode = *auth::auth_mode_from_string(raw.auth_mode);  // checked by --auth-mode's IsMember
  switch (auth.mode) {
    case auth::AuthMode::token:
      if (auth.token.empty())
        return "--auth-token is required in token mode (or set TAU_GATEWAY_AUTH_TOKEN)";
      break;
    case auth::AuthMode::password_session:
      if (auth.password.empty()) {
        return "--auth-password is required in password-session mode (or set "
               "TAU_GATEWAY_AUTH_PASSWORD)";
      }
      break;
    case auth::AuthMode::localhost_dev:
      if (!boost::asio::ip::make_address(http.bind_host).is_loopback())
        return "--auth-mode localhost-dev needs a loopback --bind address, not " + http.bind_host;
      break;
  }
  return std::nullopt;
}

void validate_logging(LoggingSettings& logging, const RawFlags& raw) {
  // Both checked by their flags' IsMember.
  logging.level = spdlog::level::from_str(raw.log_level);
  logging.format = *log_format_from_string(raw.log_format);
}

// In this order, so that with several mistakes the same one is reported first as always.
Problem validate(GatewayConfig& config, const RawFlags& raw) {
  if (auto problem = validate_worker(config.worker, raw, config.store.state_dir))
    return problem;
  if (auto problem = validate_store(config.store, raw))
    return problem;
  if (auto problem = validate_bind(config.http, raw.bind))
    return problem;
  if (auto problem = validate_browser(config.http, raw))
    return problem;
  if (auto problem = validate_auth(config.auth, raw, config.http))
    return problem;
  validate_logging(config.logging, raw);
  return std::nullopt;
}

// When `problem` is about a flag the config file set, it names the file and line too.
std::string naming_file_source(std::string problem, const std::optional<ConfigFile>& file) {
  if (!file)
    return problem;
  for (const auto& [flag, source] : file->flag_sources) {
    const bool names_flag = problem.starts_with(flag) && problem.size() > flag.size() &&
                            (problem[flag.size()] == ':' || problem[flag.size()] == ' ');
    if (names_flag)
      return source + ": " + problem;
  }
  return problem;
}

std::string profile_names(const AgentSettings& agents) {
  std::string names;
  for (const auto& profile : agents.profiles)
    names += (names.empty() ? "" : ", ") + profile.name;
  return names.empty() ? "none" : names;
}

// The file's profiles after `default` (from --worker-command), each with its max_events.
Problem add_file_profiles(AgentSettings& agents, const ConfigFile& file,
                          std::uint64_t lines_events) {
  for (const auto& [profile, source] : file.profiles) {
    if (agents.find(profile.name)) {
      return source + ": agents." + profile.name +
             ": --worker-command already defines the profile named default";
    }
    agents.profiles.push_back(profile);
    auto& events = agents.profiles.back().max_events;
    if (events == 0) {
      events = profile.protocol == AgentProtocol::lines
                   ? lines_events
                   : std::max(lines_events, kAgentSessionMinEvents);
    }
  }
  return std::nullopt;
}

// After validate: the profile named default comes from --worker-command, and a profile's
// max_events defaults to --max-events-per-session (at least 10,000 for agent protocols).
Problem resolve_agents(GatewayConfig& config, const std::optional<ConfigFile>& file) {
  AgentSettings& agents = config.agents;
  const std::uint64_t lines_events = config.sessions.max_events;
  if (config.worker.enabled()) {
    agents.profiles.push_back({.name = "default",
                               .protocol = AgentProtocol::lines,
                               .command = config.worker.command,
                               .args = config.worker.args,
                               .env = config.worker.env,
                               .max_events = lines_events});
  }
  if (file) {
    if (auto problem = add_file_profiles(agents, *file, lines_events))
      return problem;
  }
  if (file && file->default_agent) {
    if (!agents.find(*file->default_agent)) {
      return file->default_agent_source + ": default_agent: '" + *file->default_agent +
             "' names no profile (defined: " + profile_names(agents) + ")";
    }
    agents.default_agent = *file->default_agent;
  } else if (agents.find("default")) {
    agents.default_agent = "default";
  } else if (agents.profiles.size() == 1) {
    agents.default_agent = agents.profiles.front().name;
  }
  return std::nullopt;
}

ExitRequest fail(const std::string& message) {
  std::cerr << kProgram << ": error: " << message << '\n';
  return ExitRequest{2};
}

// Reads the command line and the environment into what `app` declared; asks to exit after
// --help or a parse error.
std::optional<ExitRequest> parse_command_line(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return ExitRequest{0};
  } catch (const CLI::ParseError& error) {
    std::string message = error.what();
    for (char& c : message) {
      if (c == '\n')
        c = ' ';
    }
    return fail(message);
  }
  return std::nullopt;
}

// The words --log-level accepts (spdlog's own names differ: "warning").
std::string_view log_level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

std::string_view log_format_name(LogFormat format) {
  return format == LogFormat::text ? "text" : "json";
}

// Names and protocols only: a profile's environment may hold secrets.
std::string describe_agents(const AgentSettings& agents) {
  std::string text =
      " default_agent=" + (agents.default_agent.empty() ? "none" : agents.default_agent);
  text += " agents=";
  for (const auto& profile : agents.profiles)
    text += profile.name + ":" + std::string(to_string(profile.protocol)) + ",";
  return text;
}

}  // namespace

std::string_view to_string(StoreKind kind) {
  switch (kind) {
    case StoreKind::memory:
      return "memory";
    case StoreKind::sqlite:
      return "sqlite";
    case StoreKind::redis:
      return "redis";
  }
  return "unknown";
}

std::variant<GatewayConfig, ExitRequest> parse_config(int argc, const char* const* argv) {
  GatewayConfig config;
  config.http.threads = std::max(1U, std::thread::hardware_concurrency());
  RawFlags raw;

  CLI::App app{
      "tau-gateway: authenticated HTTP gateway for external coding agents.\n"
      "Every flag can also be set with the environment variable shown, or by its name in the\n"
      "--config file (a flag wins over its variable, which wins over the file).",
      std::string(kProgram)};
  app.get_formatter()->column_width(44);
  app.footer(kConfigFileHelp);
  declare_config_flag(app, raw);
  declare_listen_flags(app, config, raw);
  declare_auth_flags(app, config.auth, raw);
  declare_session_flags(app, config);
  declare_sse_flags(app, config.sse);
  declare_store_flags(app, config, raw);
  declare_connection_flags(app, config.http);
  declare_operator_flags(app, config, raw);
  declare_worker_flags(app, config.worker, raw);

  if (auto exit = parse_command_line(app, argc, argv))
    return *exit;
  std::optional<ConfigFile> file;
  if (!raw.config_file.empty()) {
    auto read = read_config_file(raw.config_file, app);
    if (const auto* problem = std::get_if<std::string>(&read))
      return fail(*problem);
    file = std::get<ConfigFile>(std::move(read));
  }
  if (auto problem = validate(config, raw))
    return fail(naming_file_source(*problem, file));
  if (auto problem = resolve_agents(config, file))
    return fail(*problem);
  return config;
}

std::string describe(const GatewayConfig& config) {
  const auto& [http, auth, sessions, sse, store, worker, logging, agents] = config;
  const bool v6 = http.bind_host.find(':') != std::string::npos;
  std::string text;
  text += "bind=" + (v6 ? "[" + http.bind_host + "]" : http.bind_host) + ":" +
          std::to_string(http.bind_port);
  text += " threads=" + std::to_string(http.threads);
  text += " state_dir=" + store.state_dir;
  text += " auth_mode=" + std::string(auth::to_string(auth.mode));
  text += std::string(" auth_token=") + (auth.token.empty() ? "unset" : "<redacted>");
  text += std::string(" auth_password=") + (auth.password.empty() ? "unset" : "<redacted>");
  text += " session_ttl_seconds=" + std::to_string(auth.session_ttl_seconds);
  text += " rate_limit_window_seconds=" + std::to_string(auth.rate_limit_window_seconds);
  text += " rate_limit_max_requests=" + std::to_string(auth.rate_limit_max_requests);
  text += " auth_failures_free=" + std::to_string(auth.failures_free_per_address);
  text += " auth_failures_free_global=" + std::to_string(auth.failures_free_global);
  text += " max_input_chars=" + std::to_string(http.max_input_chars);
  text += " inactivity_timeout_ms=" + std::to_string(sessions.inactivity_timeout_ms);
  text += " max_active_sessions=" + std::to_string(sessions.max_active);
  text += " max_events_per_session=" + std::to_string(sessions.max_events);
  text += " max_event_memory_bytes=" + std::to_string(sessions.max_event_memory_bytes);
  text += " sse_retry_ms=" + std::to_string(sse.retry_ms);
  text += " sse_heartbeat_ms=" + std::to_string(sse.heartbeat_ms);
  text += " sse_max_buffered_bytes=" + std::to_string(sse.max_buffered_bytes);
  text += " max_streams=" + std::to_string(sse.max_streams);
  text += " sse_stream_max_ms=" + std::to_string(sse.stream_max_ms);
  text += " store=" + std::string(to_string(store.kind));
  if (store.kind == StoreKind::sqlite) {
    text += " database=" + store.database_path() +
            " durability=" + std::string(store::to_string(store.durability));
  }
  if (store.kind == StoreKind::redis) {
    text += " redis=" + store.redis.describe() + " redis_prefix=" + store.redis_prefix;
    text += " owner_lease_ms=" + std::to_string(store.owner_lease_ms);
    text +=
        std::string(" redis_password=") + (store.redis.password.empty() ? "unset" : "<redacted>");
  }
  text += " session_retention_hours=" + std::to_string(sessions.retention_hours);
  text += " max_connections=" + std::to_string(http.max_connections);
  text += " header_timeout_ms=" + std::to_string(http.header_timeout_ms);
  text += " body_timeout_ms=" + std::to_string(http.body_timeout_ms);
  text += " idle_timeout_ms=" + std::to_string(http.idle_timeout_ms);
  text += " max_header_bytes=" + std::to_string(http.max_header_bytes);
  text += " max_target_bytes=" + std::to_string(http.max_target_bytes);
  text += " log_level=" + std::string(log_level_name(logging.level)) +
          " log_format=" + std::string(log_format_name(logging.format));
  text += std::string(" metrics_public=") + (auth.metrics_public ? "true" : "false");
  text += " worker_command=" + (worker.enabled() ? worker.command : "none");
  text += " worker_args=" + std::to_string(worker.args.size());
  // Worker environment values may be secrets: only their names are shown.
  text += " worker_env=";
  for (const auto& [name, value] : worker.env)
    text += name + "=<redacted>,";
  text += " workspace_root=" + worker.workspace_root;
  text += " worker_kill_grace_ms=" + std::to_string(worker.kill_grace_ms);
  text += " worker_max_line_bytes=" + std::to_string(worker.max_line_bytes);
  text += std::string(" worker_env_clear=") + (worker.clear_environment ? "true" : "false");
  text += " worker_rlimits=";
  for (const auto& [name, limit] : {std::pair{"as", worker.rlimits.address_space_bytes},
                                    std::pair{"nofile", worker.rlimits.open_files},
                                    std::pair{"nproc", worker.rlimits.processes}}) {
    if (limit)
      text += std::string(name) + "=" + std::to_string(*limit) + ",";
  }
  return text + describe_agents(agents);
}

}  // namespace tau::gateway
