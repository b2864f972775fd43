#include "gateway/config.h"

#include <CLI/CLI.hpp>
#include <boost/asio/ip/address.hpp>
#include <cctype>
#include <iostream>
#include <limits>
#include <string_view>
#include <thread>

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

}  // namespace

std::variant<GatewayConfig, ExitRequest> parse_config(int argc, const char* const* argv) {
  GatewayConfig config;
  config.threads = std::max(1u, std::thread::hardware_concurrency());
  std::string bind = "127.0.0.1:8787";
  std::string auth_mode = "token";

  CLI::App app{
      "tau-gateway: authenticated HTTP gateway for external coding agents.\n"
      "Every flag can also be set with the environment variable shown (the flag wins).",
      std::string(kProgram)};
  app.get_formatter()->column_width(44);
  constexpr auto kMaxInt = std::numeric_limits<std::int64_t>::max() / 1000;

  auto add = [&](std::string flag, auto& target, std::string help) {
    return app.add_option(flag, target, std::move(help))
        ->envname(env_name(flag))
        ->capture_default_str();
  };
  add("--bind", bind, "listen address, HOST:PORT (IPv4) or [IPv6]:PORT; port 0 picks a free one");
  add("--threads", config.threads, "I/O threads (default: number of cores)")
      ->check(CLI::Range(1u, 1024u));
  add("--state-dir", config.state_dir, "state directory, created if missing");
  add("--auth-mode", auth_mode, "token | password-session | localhost-dev")
      ->check(CLI::IsMember({"token", "password-session", "localhost-dev"}));
  add("--auth-token", config.auth_token, "bearer token; required in token mode");
  add("--auth-password", config.auth_password, "password; required in password-session mode");
  add("--session-ttl-seconds", config.session_ttl_seconds, "lifetime of password-session tokens")
      ->check(CLI::Range(std::int64_t{1}, kMaxInt));
  add("--rate-limit-window-seconds", config.rate_limit_window_seconds, "rate-limit window")
      ->check(CLI::Range(std::int64_t{1}, kMaxInt));
  add("--rate-limit-max-requests", config.rate_limit_max_requests,
      "requests per principal per window")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add("--max-input-chars", config.max_input_chars,
      "input size limit; bodies over 8x this many bytes are refused")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add("--inactivity-timeout-ms", config.inactivity_timeout_ms,
      "running sessions idle longer than this are timed out")
      ->check(CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max() / 2));
  add("--max-active-sessions", config.max_active_sessions, "running sessions at once")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  add("--max-events-per-session", config.max_events_per_session,
      "events kept for replay per session")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));

  add("--sse-retry-ms", config.sse_retry_ms, "reconnect delay sent to stream clients (retry:)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  add("--sse-heartbeat-ms", config.sse_heartbeat_ms,
      "comment heartbeat interval on open follow streams")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add("--sse-max-buffered-bytes", config.sse_max_buffered_bytes,
      "a follow stream whose unsent backlog exceeds this is disconnected")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  add("--max-streams", config.max_streams, "open follow streams at once")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
  add("--sse-stream-max-ms", config.sse_stream_max_ms,
      "end follow streams after this long so clients reconnect and resume (0: never)")
      ->check(CLI::Range(std::int64_t{0}, std::numeric_limits<std::int64_t>::max() / 2));

  std::string store = config.store;
  add("--store", store,
      "sqlite (durable, at <state-dir>/gateway.db) | memory (lost on restart) | "
      "redis://[:password@]HOST:PORT[/DB] (shared by several gateways)");
  std::string redis_password;
  add("--redis-password", redis_password,
      "Redis password (prefer the environment variable to the flag); overrides the URL's");
  add("--redis-prefix", config.redis_prefix, "prefix of every Redis key and channel");
  add("--owner-lease-ms", config.owner_lease_ms,
      "with Redis: a gateway that stops renewing its lease this long has its workers' sessions "
      "failed by the others")
      ->check(CLI::Range(std::int64_t{300}, std::int64_t{3600000}));
  add("--durability", config.durability,
      "sqlite: normal (survives a gateway crash) | full (also a power loss: fsync per commit)")
      ->check(CLI::IsMember({"normal", "full"}));
  add("--session-retention-hours", config.session_retention_hours,
      "ended sessions are deleted with their events this long after they end")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{24} * 365 * 100));

  add("--max-connections", config.max_connections,
      "open connections at once; more are closed as soon as they are accepted")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 24));
  add("--header-timeout-ms", config.header_timeout_ms,
      "a request header must be complete this long after its first byte")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3600000}));
  add("--body-timeout-ms", config.body_timeout_ms,
      "a request body must be complete this long after its header")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{3600000}));
  add("--idle-timeout-ms", config.idle_timeout_ms,
      "a keep-alive connection may wait this long for its next request (not while streaming)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86400000}));
  add("--max-header-bytes", config.max_header_bytes, "larger request headers are answered 431")
      ->check(CLI::Range(std::uint64_t{1024}, std::uint64_t{1} << 20));
  add("--max-target-bytes", config.max_target_bytes, "longer request targets are answered 414")
      ->check(CLI::Range(std::uint64_t{64}, std::uint64_t{1} << 20));

  add("--log-level", config.log_level,
      "trace | debug | info | warn | error | critical | off (access lines are info)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  add("--log-format", config.log_format, "json (one object per line) | text")
      ->check(CLI::IsMember({"json", "text"}));
  app.add_flag("--metrics-public", config.metrics_public,
               "serve GET /metrics without a bearer token (e.g. to a scraper on a private network)")
      ->envname(env_name("--metrics-public"));

  std::vector<std::string> worker_env;
  add("--worker-command", config.worker_command,
      "worker mode: the agent to start for each new session (a path or a name in PATH; no shell)");
  add("--worker-arg", config.worker_args, "an argument for the worker (repeatable, in order)");
  add("--worker-env", worker_env, "KEY=VALUE added to the worker's environment (repeatable)");
  add("--workspace-root", config.workspace_root,
      "workers run in <workspace-root>/<workspace_id> (default: <state-dir>/workspaces)");
  add("--worker-kill-grace-ms", config.worker_kill_grace_ms,
      "after SIGTERM, how long a worker may take to exit before SIGKILL")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600000}));
  add("--worker-max-line-bytes", config.worker_max_line_bytes,
      "longer output lines are split into pieces of this size")
      ->check(CLI::Range(std::uint64_t{16}, std::uint64_t{1} << 30));

  auto fail = [](const std::string& message) {
    std::cerr << kProgram << ": error: " << message << '\n';
    return ExitRequest{2};
  };

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

  for (const auto& pair : worker_env) {
    const auto equals = pair.find('=');
    if (equals == std::string::npos || equals == 0) {
      // The value is not echoed: it may be a secret.
      return fail("--worker-env: each value must be KEY=VALUE with a non-empty KEY");
    }
    config.worker_env.emplace_back(pair.substr(0, equals), pair.substr(equals + 1));
  }
  if (config.workspace_root.empty())
    config.workspace_root = config.state_dir + "/workspaces";

  if (store == "sqlite" || store == "memory") {
    config.store = store;
  } else if (store.starts_with("redis://")) {
    auto address = redis::parse_redis_url(store);
    // The URL is not echoed: it may hold a password.
    if (auto* reason = std::get_if<std::string>(&address))
      return fail("--store: the Redis URL " + *reason);
    config.store = "redis";
    config.redis_address = std::get<redis::RedisAddress>(std::move(address));
    if (!redis_password.empty())
      config.redis_address.password = redis_password;
    if (config.redis_prefix.empty())
      return fail("--redis-prefix must not be empty");
  } else {
    return fail("--store: must be sqlite, memory or a redis:// URL");
  }

  const auto address = parse_bind(bind);
  if (!address)
    return fail("--bind: '" + bind + "' is not HOST:PORT or [IPv6]:PORT");
  config.bind_host = address->host;
  config.bind_port = address->port;
  config.auth_mode = *auth::auth_mode_from_string(auth_mode);

  switch (config.auth_mode) {
    case auth::AuthMode::token:
      if (config.auth_token.empty()) {
        return fail("--auth-token is required in token mode (or set TAU_GATEWAY_AUTH_TOKEN)");
      }
      break;
    case auth::AuthMode::password_session:
      if (config.auth_password.empty()) {
        return fail(
            "--auth-password is required in password-session mode (or set "
            "TAU_GATEWAY_AUTH_PASSWORD)");
      }
      break;
    case auth::AuthMode::localhost_dev:
      if (!boost::asio::ip::make_address(config.bind_host).is_loopback()) {
        return fail("--auth-mode localhost-dev needs a loopback --bind address, not " +
                    config.bind_host);
      }
      break;
  }
  return config;
}

std::string describe(const GatewayConfig& config) {
  const bool v6 = config.bind_host.find(':') != std::string::npos;
  std::string text;
  text += "bind=" + (v6 ? "[" + config.bind_host + "]" : config.bind_host) + ":" +
          std::to_string(config.bind_port);
  text += " threads=" + std::to_string(config.threads);
  text += " state_dir=" + config.state_dir;
  text += " auth_mode=" + std::string(auth::to_string(config.auth_mode));
  text += std::string(" auth_token=") + (config.auth_token.empty() ? "unset" : "<redacted>");
  text += std::string(" auth_password=") + (config.auth_password.empty() ? "unset" : "<redacted>");
  text += " session_ttl_seconds=" + std::to_string(config.session_ttl_seconds);
  text += " rate_limit_window_seconds=" + std::to_string(config.rate_limit_window_seconds);
  text += " rate_limit_max_requests=" + std::to_string(config.rate_limit_max_requests);
  text += " max_input_chars=" + std::to_string(config.max_input_chars);
  text += " inactivity_timeout_ms=" + std::to_string(config.inactivity_timeout_ms);
  text += " max_active_sessions=" + std::to_string(config.max_active_sessions);
  text += " max_events_per_session=" + std::to_string(config.max_events_per_session);
  text += " sse_retry_ms=" + std::to_string(config.sse_retry_ms);
  text += " sse_heartbeat_ms=" + std::to_string(config.sse_heartbeat_ms);
  text += " sse_max_buffered_bytes=" + std::to_string(config.sse_max_buffered_bytes);
  text += " max_streams=" + std::to_string(config.max_streams);
  text += " sse_stream_max_ms=" + std::to_string(config.sse_stream_max_ms);
  text += " store=" + config.store;
  if (config.store == "sqlite")
    text += " database=" + config.database_path() + " durability=" + config.durability;
  if (config.store == "redis") {
    text += " redis=" + config.redis_address.describe() + " redis_prefix=" + config.redis_prefix;
    text += " owner_lease_ms=" + std::to_string(config.owner_lease_ms);
    text += std::string(" redis_password=") +
            (config.redis_address.password.empty() ? "unset" : "<redacted>");
  }
  text += " session_retention_hours=" + std::to_string(config.session_retention_hours);
  text += " max_connections=" + std::to_string(config.max_connections);
  text += " header_timeout_ms=" + std::to_string(config.header_timeout_ms);
  text += " body_timeout_ms=" + std::to_string(config.body_timeout_ms);
  text += " idle_timeout_ms=" + std::to_string(config.idle_timeout_ms);
  text += " max_header_bytes=" + std::to_string(config.max_header_bytes);
  text += " max_target_bytes=" + std::to_string(config.max_target_bytes);
  text += " log_level=" + config.log_level + " log_format=" + config.log_format;
  text += std::string(" metrics_public=") + (config.metrics_public ? "true" : "false");
  text += " worker_command=" + (config.workers_enabled() ? config.worker_command : "none");
  text += " worker_args=" + std::to_string(config.worker_args.size());
  // Worker environment values may be secrets: only their names are shown.
  text += " worker_env=";
  for (const auto& [name, value] : config.worker_env)
    text += name + "=<redacted>,";
  text += " workspace_root=" + config.workspace_root;
  text += " worker_kill_grace_ms=" + std::to_string(config.worker_kill_grace_ms);
  text += " worker_max_line_bytes=" + std::to_string(config.worker_max_line_bytes);
  return text;
}

}  // namespace tau::gateway
