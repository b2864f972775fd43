#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "redis/redis_client.h"

#include "auth/authenticator.h"

namespace tau::gateway {

struct GatewayConfig {
  std::string bind_host = "127.0.0.1";
  std::uint16_t bind_port = 8787;
  unsigned threads = 1;
  std::string state_dir = ".tau/gateway";
  auth::AuthMode auth_mode = auth::AuthMode::token;
  std::string auth_token;
  std::string auth_password;
  std::int64_t session_ttl_seconds = 3600;
  std::int64_t rate_limit_window_seconds = 60;
  std::uint64_t rate_limit_max_requests = 120;
  std::uint64_t max_input_chars = 32000;
  std::int64_t inactivity_timeout_ms = 600000;
  std::uint64_t max_active_sessions = 16;
  std::uint64_t max_events_per_session = 256;
  std::int64_t sse_retry_ms = 3000;
  std::int64_t sse_heartbeat_ms = 15000;
  std::uint64_t sse_max_buffered_bytes = 1024 * 1024;
  std::uint64_t max_streams = 10000;
  std::int64_t sse_stream_max_ms = 0;  // 0: follow streams stay open until the session ends

  // Storage: "sqlite" (a journal at <state-dir>/gateway.db), "memory" (nothing survives) or
  // "redis" (a pool shared by several gateways, at `redis_address`).
  std::string store = "sqlite";
  redis::RedisAddress redis_address;
  std::string redis_prefix = "tau:gw:";
  std::int64_t owner_lease_ms = 15000;
  std::string durability = "normal";  // sqlite: normal | full
  std::int64_t session_retention_hours = 168;
  std::string database_path() const { return state_dir + "/gateway.db"; }

  // Worker mode: with a command, each new session starts one supervised process.
  std::string worker_command;
  std::vector<std::string> worker_args;
  std::vector<std::pair<std::string, std::string>> worker_env;
  std::string workspace_root;  // default: <state-dir>/workspaces
  std::int64_t worker_kill_grace_ms = 5000;
  std::uint64_t worker_max_line_bytes = 65536;
  bool workers_enabled() const { return !worker_command.empty(); }

  // Connection hygiene (see http::ServerOptions).
  std::uint64_t max_connections = 20000;
  std::int64_t header_timeout_ms = 10000;
  std::int64_t body_timeout_ms = 30000;
  std::int64_t idle_timeout_ms = 60000;
  std::uint64_t max_header_bytes = 16 * 1024;
  std::uint64_t max_target_bytes = 8 * 1024;

  // Operator surfaces.
  std::string log_level = "info";   // trace | debug | info | warn | error | critical | off
  std::string log_format = "json";  // json | text
  bool metrics_public = false;      // GET /metrics without a bearer token

  // Request bodies larger than this are refused with 413.
  std::uint64_t max_body_bytes() const { return max_input_chars * 8; }
};

// What parsing the command line decided: run with a config, or exit with a code (after --help
// or an error, both already printed).
struct ExitRequest {
  int code = 0;
};

// Parses flags, with TAU_GATEWAY_<FLAG> environment variables as fallbacks (a flag wins), and
// checks the combinations (e.g. token mode needs a token). Errors are printed as one line on
// stderr naming the flag.
std::variant<GatewayConfig, ExitRequest> parse_config(int argc, const char* const* argv);

// The effective configuration as one line, with secrets redacted.
std::string describe(const GatewayConfig& config);

}  // namespace tau::gateway
