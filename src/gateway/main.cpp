#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <csignal>
#include <filesystem>
#include <thread>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_pool.h"
#include "bridge/session_service.h"
#include "gateway/blocking_calls.h"
#include "gateway/config.h"
#include "gateway/event_stream.h"
#include "gateway/gateway_api.h"
#include "gateway/logging.h"
#include "gateway/worker_supervisor.h"
#include "http/server.h"
#include "redis/redis_rate_limiter.h"
#include "redis/redis_session_pool.h"
#include "redis/redis_token_registry.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace asio = boost::asio;
using namespace tau;

namespace {

// Times out idle sessions even when no request arrives to trigger a reap, and deletes ended
// sessions past their retention.
void reap_once(bridge::SessionService& pool) {
  const auto result = pool.reap_now();
  for (const auto& session : result.reaped) {
    spdlog::info("session {} of workspace {} timed out", session.session_id, session.workspace_id);
  }
  if (const auto purged = pool.purge_ended(pool.now()); purged > 0)
    spdlog::info("deleted {} ended sessions past their retention", purged);
}

// Calls that may block are made through `blocking`, off the I/O threads.
asio::awaitable<void> reap_periodically(bridge::SessionService& pool,
                                        gateway::BlockingCalls& blocking,
                                        std::chrono::milliseconds every) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (true) {
    timer.expires_after(every);
    co_await timer.async_wait(asio::use_awaitable);
    try {
      co_await blocking.run([&pool] { reap_once(pool); });
    } catch (const core::Error& error) {
      // A shared store out of reach: the next round tries again.
      spdlog::warn("periodic reap failed: {}", error.what());
    }
  }
}

// An io_context whose unfinished handlers can be destroyed on demand. Suspended coroutines
// (open connections, streams) refer to the API and the server; destroying them is what the
// io_context's destructor would do, but by then those objects, declared after it because they
// need it, are gone.
class IoContext : public asio::io_context {
 public:
  using asio::io_context::io_context;
  void destroy_pending_handlers() { shutdown(); }
};

// Where the gateway keeps its sessions, password-session tokens and rate-limit counts: in this
// process over its own store (sqlite or memory), or in a Redis shared with other gateways.
struct Backend {
  std::shared_ptr<store::SessionStore> local_store;  // null with Redis
  std::unique_ptr<bridge::SessionService> sessions;
  std::shared_ptr<auth::TokenRegistry> tokens;
  std::unique_ptr<auth::RateLimiter> rate_limiter;
};

bridge::PoolLimits pool_limits(const gateway::GatewayConfig& config) {
  return bridge::PoolLimits{config.sessions.inactivity_timeout_ms, config.sessions.max_active,
                            config.sessions.max_events,
                            config.sessions.retention_hours * 3600 * 1000};
}

// The local backend: loads what the store holds. Throws StoreError when it cannot be read.
Backend open_local_backend(const gateway::GatewayConfig& config) {
  Backend backend;
  std::shared_ptr<store::TokenStore> token_store;
  if (config.store.kind == gateway::StoreKind::memory) {
    auto memory = std::make_shared<store::MemoryStore>();
    backend.local_store = memory;
    token_store = memory;
  } else {
    auto sqlite =
        std::make_shared<store::SqliteStore>(config.store.database_path(), config.store.durability);
    backend.local_store = sqlite;
    token_store = sqlite;
  }
  store::StoredState stored = backend.local_store->load();
  const std::vector<store::StoredAuthSession> stored_tokens = token_store->load_tokens();
  auto pool = std::make_unique<bridge::SessionPool>(pool_limits(config), core::system_clock_unix_ms,
                                                    nullptr, gateway::encode_event_frame,
                                                    backend.local_store);
  const std::size_t restored_sessions = stored.sessions.size();
  pool->restore(std::move(stored.sessions));
  auto tokens = std::make_shared<auth::LocalTokenRegistry>(token_store);
  tokens->restore(stored_tokens, core::system_clock_unix_ms());
  // What the restore changed (lost workers) is committed before anyone can ask.
  backend.local_store->flush();
  spdlog::info("store: {} restored {} sessions and {} auth sessions",
               backend.local_store->info().kind, restored_sessions, stored_tokens.size());
  backend.sessions = std::move(pool);
  backend.tokens = std::move(tokens);
  backend.rate_limiter = std::make_unique<auth::LocalRateLimiter>(
      config.auth.rate_limit_window_seconds, config.auth.rate_limit_max_requests,
      core::system_clock_unix_ms);
  return backend;
}

// The shared backend. Throws RedisUnavailable (or core::Error store_unavailable) when Redis
// cannot be reached at start-up.
Backend open_redis_backend(const gateway::GatewayConfig& config) {
  auto client =
      std::make_shared<redis::RedisClient>(config.store.redis, redis::RedisClient::Options{});
  auto script = std::make_shared<redis::RedisScript>(client);
  Backend backend;
  backend.sessions = std::make_unique<redis::RedisSessionPool>(
      script, redis::RedisPoolSettings{config.store.redis_prefix, "", config.store.owner_lease_ms},
      pool_limits(config), core::system_clock_unix_ms, gateway::encode_event_frame);
  backend.tokens = std::make_shared<redis::RedisTokenRegistry>(script, config.store.redis_prefix);
  backend.rate_limiter = std::make_unique<redis::RedisRateLimiter>(
      script, config.store.redis_prefix, config.auth.rate_limit_window_seconds,
      config.auth.rate_limit_max_requests, core::system_clock_unix_ms);
  spdlog::info("store: redis at {} with key prefix {}", config.store.redis.describe(),
               config.store.redis_prefix);
  return backend;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = gateway::parse_config(argc, argv);
  if (auto* exit = std::get_if<gateway::ExitRequest>(&parsed))
    return exit->code;
  const auto& config = std::get<gateway::GatewayConfig>(parsed);

  // Drains the log queue on every way out of main.
  const gateway::LoggingGuard logging(config.logging.format, config.logging.level);

  std::error_code fs_error;
  std::filesystem::create_directories(config.store.state_dir, fs_error);
  if (fs_error) {
    spdlog::critical("cannot create --state-dir {}: {}", config.store.state_dir,
                     fs_error.message());
    return 1;
  }
  spdlog::info("configuration: {}", gateway::describe(config));

  Backend backend;
  try {
    backend = config.store.kind == gateway::StoreKind::redis ? open_redis_backend(config)
                                                             : open_local_backend(config);
  } catch (const store::StoreError& error) {
    // Never reset or overwrite a database we cannot read: an operator has to look at it.
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  } catch (const redis::RedisUnavailable& error) {
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  } catch (const core::Error& error) {
    spdlog::critical("cannot start: {}", error.what());
    return 1;
  }
  // Everything from here on holds the sessions only through the interface.
  bridge::SessionService& pool = *backend.sessions;
  auth::Authenticator authenticator(config.auth.authenticator(), core::system_clock_unix_ms,
                                    backend.tokens);
  auth::RateLimiter& rate_limiter = *backend.rate_limiter;
  // Writing to a worker whose stdin is closed must fail with EPIPE, not kill the gateway.
  ::signal(SIGPIPE, SIG_IGN);
  IoContext io(static_cast<int>(config.http.threads));
  gateway::WorkerSupervisor workers(io, pool, config);
  pool.set_end_listener(
      [&workers](const core::SessionSnapshot& session) { workers.on_session_end(session); });
  pool.set_followup_listener([&workers](const std::string& session_id, const std::string& message) {
    workers.deliver_routed_followup(session_id, message);
  });
  gateway::GatewayApi api(config, pool, authenticator, rate_limiter, workers);

  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(config.http.bind_host),
                                         config.http.bind_port);
  std::unique_ptr<http::Server> server;
  try {
    server = std::make_unique<http::Server>(
        io, endpoint, [&api](http::Exchange& exchange) { return api.handle(exchange); },
        gateway::server_options(config));
  } catch (const boost::system::system_error& error) {
    spdlog::critical("cannot listen on {} port {}: {}", config.http.bind_host,
                     config.http.bind_port, error.code().message());
    return 1;
  }
  // Handle signals before announcing the port: whoever reads that line may stop us at once.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer shutdown_deadline(io);
  signals.async_wait([&](const boost::system::error_code&, int signal) {
    spdlog::info("signal {} received; stopping", signal);
    api.set_listening(false);
    server->stop();
    // Workers get SIGTERM, then SIGKILL after the grace period; the gateway exits once all are
    // reaped, so none is left behind.
    workers.shutdown([&io] { io.stop(); });
    // A worker stuck beyond SIGKILL (e.g. in uninterruptible sleep) must not keep us running.
    shutdown_deadline.expires_after(std::chrono::milliseconds(config.worker.kill_grace_ms + 2000));
    shutdown_deadline.async_wait([&io](const boost::system::error_code& error) {
      if (!error)
        io.stop();
    });
  });
  server->start();
  api.set_listening(true);
  const auto local = server->local_endpoint();
  // Tests and scripts read the port from this line when started with port 0.
  if (local.address().is_v6()) {
    spdlog::info("listening on http://[{}]:{}", local.address().to_string(), local.port());
  } else {
    spdlog::info("listening on http://{}:{}", local.address().to_string(), local.port());
  }

  const auto reap_every = std::chrono::milliseconds(
      std::clamp<std::int64_t>(config.sessions.inactivity_timeout_ms / 4, 10, 1000));
  asio::co_spawn(io, reap_periodically(pool, api.blocking_calls(), reap_every), asio::detached);

  std::vector<std::thread> io_threads;
  for (unsigned i = 1; i < config.http.threads; ++i)
    io_threads.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& thread : io_threads)
    thread.join();
  // A shared store's feed thread calls these until told otherwise; the supervisor is destroyed
  // before the store.
  pool.set_end_listener(nullptr);
  pool.set_followup_listener(nullptr);
  // Calls still being made for suspended requests finish before those requests are destroyed.
  api.blocking_calls().join();
  io.destroy_pending_handlers();
  return 0;
}
