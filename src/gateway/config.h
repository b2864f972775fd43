#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "auth/authenticator.h"
#include "gateway/agent_profiles.h"
#include "gateway/logging.h"
#include "redis/redis_client.h"
#include "store/sqlite_store.h"
#include "worker/resource_limits.h"

namespace tau::gateway {

// The gateway's configuration, grouped by concern. Every value here has been checked once, by
// parse_config: kinds are enums, addresses are parsed and cross-checks (e.g. token mode has a
// token) have passed, so nothing downstream parses or re-checks a flag's text.
//
// Groups, and the flags that fill them:
//   http      listening and connection hygiene: --bind, --threads, --max-input-chars,
//             --max-connections, --*-timeout-ms, --max-header-bytes, --max-target-bytes
//   auth      who may call and how often: --auth-*, --session-ttl-seconds, --rate-limit-*
//             (the limit is per authenticated principal) and --metrics-public
//   sessions  limits of the session pool: --inactivity-timeout-ms, --max-active-sessions,
//             --max-events-per-session, --session-retention-hours
//   sse       follow streams: --sse-*, --max-streams
//   store     where state lives: --state-dir, --store (kind and Redis URL), --redis-*,
//             --owner-lease-ms, --durability
//   worker    worker mode: --worker-*, --workspace-root
//   logging   --log-level, --log-format
//   agents    the agents sessions may run: [agents.NAME] tables and default_agent of the config
//             file (--config), and `default` from --worker-command, --worker-arg, --worker-env
//
// Every flag may also be set in the config file under its name; a flag or its environment
// variable wins over the file.

struct HttpSettings {
  std::string bind_host = "127.0.0.1";
  std::uint16_t bind_port = 8787;
  unsigned threads = 1;  // I/O threads
  // Session input size limit; request bodies larger than 8x this many bytes are refused (413).
  std::uint64_t max_input_chars = 32000;
  std::uint64_t max_body_bytes() const { return max_input_chars * 8; }
  // Connection hygiene (see http::ServerOptions).
  std::uint64_t max_connections = 20000;
  std::int64_t header_timeout_ms = 10000;
  std::int64_t body_timeout_ms = 30000;
  std::int64_t idle_timeout_ms = 60000;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_target_bytes = 8 * 1024;
  // Browser protections (http::BrowserPolicy), in canonical form: Host names answered besides
  // the defaults, and origins answered with CORS.
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> cors_origins;
};

struct AuthSettings {
  auth::AuthMode mode = auth::AuthMode::token;
  std::string token;     // token mode; never empty there
  std::string password;  // password-session mode; never empty there
  std::int64_t session_ttl_seconds = 3600;
  std::int64_t rate_limit_window_seconds = 60;
  std::uint64_t rate_limit_max_requests = 120;
  bool metrics_public = false;  // GET /metrics without a bearer token
  // Failed passwords or bearer tokens judged at once, per client address and from all together,
  // within the rate-limit window; past them attempts are spaced out (auth::AttemptThrottle).
  std::uint32_t failures_free_per_address = 5;
  std::uint32_t failures_free_global = 50;

  // What the authenticator needs of this.
  auth::AuthConfig authenticator() const {
    auth::ThrottleSettings throttle;
    throttle.window_ms = rate_limit_window_seconds * 1000;
    throttle.free_failures_per_key = failures_free_per_address;
    throttle.free_failures_global = failures_free_global;
    return {mode, token, password, session_ttl_seconds, throttle};
  }
};

struct SessionSettings {
  std::int64_t inactivity_timeout_ms = 600000;
  std::uint64_t max_active = 16;
  std::uint64_t max_events = 256;  // events kept for replay per session
  std::int64_t retention_hours = 168;
  std::uint64_t max_event_memory_bytes = std::uint64_t{256} << 20;
};

struct SseSettings {
  std::int64_t retry_ms = 3000;
  std::int64_t heartbeat_ms = 15000;
  std::uint64_t max_buffered_bytes = 1024 * 1024;
  std::uint64_t max_streams = 10000;
  std::int64_t stream_max_ms = 0;  // 0: follow streams stay open until the session ends
};

// sqlite: a journal at <state-dir>/gateway.db; memory: nothing survives; redis: a pool shared by
// several gateways.
enum class StoreKind { memory, sqlite, redis };
std::string_view to_string(StoreKind kind);

struct StoreSettings {
  std::string state_dir = ".tau/gateway";
  StoreKind kind = StoreKind::sqlite;
  store::Durability durability = store::Durability::normal;  // sqlite only
  redis::RedisAddress redis;                                 // redis only, password included
  std::string redis_prefix = "tau:gw:";                      // redis only; never empty there
  std::int64_t owner_lease_ms = 15000;                       // redis only
  std::string database_path() const { return state_dir + "/gateway.db"; }
};

// With a command, each new session starts one supervised process.
struct WorkerSettings {
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string workspace_root;  // parse_config's default: <state-dir>/workspaces
  std::int64_t kill_grace_ms = 5000;
  std::uint64_t max_line_bytes = 65536;
  // tau-worker-supervisor, which runs each worker and ends its whole process tree; empty: the
  // one beside the running binary (worker::default_supervisor_path()).
  std::string supervisor_path;
  // --worker-env-clear: start from an empty environment (plus PATH, HOME and LANG).
  bool clear_environment = false;
  worker::ResourceLimits rlimits;  // --worker-rlimit as=|nofile=|nproc=
  bool enabled() const { return !command.empty(); }
};

struct LoggingSettings {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::json;
};

struct GatewayConfig {
  HttpSettings http;
  AuthSettings auth;
  SessionSettings sessions;
  SseSettings sse;
  StoreSettings store;
  WorkerSettings worker;
  LoggingSettings logging;
  AgentSettings agents;
};

// What parsing the command line decided: run with a config, or exit with a code (after --help
// or an error, both already printed).
struct ExitRequest {
  int code = 0;
};

// Parses flags, with TAU_GATEWAY_<FLAG> environment variables as fallbacks (a flag wins) and the
// config file (--config) below both, and checks the combinations (e.g. token mode needs a
// token). Errors are printed as one line on stderr naming the flag, or the file, line and key,
// with exit code 2.
std::variant<GatewayConfig, ExitRequest> parse_config(int argc, const char* const* argv);

// The effective configuration as one line, with secrets redacted.
std::string describe(const GatewayConfig& config);

}  // namespace tau::gateway
