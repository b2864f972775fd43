#include "gateway/gateway.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <thread>
#include <utility>
#include <vector>

#include "bridge/session_pool.h"
#include "gateway/blocking_calls.h"
#include "gateway/json_codec.h"
#include "redis/redis_client.h"
#include "redis/redis_rate_limiter.h"
#include "redis/redis_session_pool.h"
#include "redis/redis_token_registry.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace tau::gateway {

namespace asio = boost::asio;

namespace {

// Logs why the gateway cannot start and throws StartupError.
[[noreturn]] void refuse_to_start(const std::string& reason) {
  spdlog::critical("{}", reason);
  throw StartupError(reason);
}

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
asio::awaitable<void> reap_periodically(bridge::SessionService& pool, BlockingCalls& blocking,
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

// One retention for every session: the largest of --max-events-per-session and the profiles'
// max_events (agent sessions keep at least 10,000 by default).
bridge::PoolLimits pool_limits(const GatewayConfig& config) {
  const SessionSettings& sessions = config.sessions;
  std::uint64_t max_events = sessions.max_events;
  for (const auto& profile : config.agents.profiles)
    max_events = std::max(max_events, profile.max_events);
  return bridge::PoolLimits{
      sessions.inactivity_timeout_ms, sessions.max_active, static_cast<std::size_t>(max_events),
      sessions.retention_hours * 3600 * 1000, sessions.max_event_memory_bytes};
}

// The local backend: loads what the store holds. Throws StoreError when it cannot be read.
SessionBackend open_local_backend(const GatewayConfig& config) {
  SessionBackend backend;
  std::shared_ptr<store::TokenStore> token_store;
  if (config.store.kind == StoreKind::memory) {
    auto memory = std::make_shared<store::MemoryStore>();
    backend.local_store = memory;
    token_store = memory;
  } else {
    auto sqlite =
        std::make_shared<store::SqliteStore>(config.store.database_path(), config.store.durability);
    backend.local_store = sqlite;
    token_store = sqlite;
  }
  // Ended sessions' events stay on disk (a store that reads them back): only running sessions
  // keep their events in memory.
  store::StoredState stored = backend.local_store->load_sessions(store::LoadScope::running_events);
  const std::vector<store::StoredAuthSession> stored_tokens = token_store->load_tokens();
  auto pool =
      std::make_unique<bridge::SessionPool>(pool_limits(config), core::system_clock_unix_ms,
                                            nullptr, encode_event_frame, backend.local_store);
  const std::size_t restored_sessions = stored.sessions.size();
  pool->restore(std::move(stored.sessions), &backend.lost_workers);
  auto tokens = std::make_shared<auth::LocalTokenRegistry>(token_store);
  tokens->restore(stored_tokens, core::system_clock_unix_ms());
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
SessionBackend open_redis_backend(const GatewayConfig& config) {
  const StoreSettings& settings = config.store;
  auto client = std::make_shared<redis::RedisClient>(settings.redis, redis::RedisClient::Options{});
  auto script = std::make_shared<redis::RedisScript>(client);
  SessionBackend backend;
  backend.sessions = std::make_unique<redis::RedisSessionPool>(
      script, redis::RedisPoolSettings{settings.redis_prefix, "", settings.owner_lease_ms},
      pool_limits(config), core::system_clock_unix_ms, encode_event_frame);
  backend.tokens = std::make_shared<redis::RedisTokenRegistry>(script, settings.redis_prefix);
  backend.rate_limiter = std::make_unique<redis::RedisRateLimiter>(
      script, settings.redis_prefix, config.auth.rate_limit_window_seconds,
      config.auth.rate_limit_max_requests, core::system_clock_unix_ms);
  backend.redis_client = client;
  spdlog::info("store: redis at {} with key prefix {}", settings.redis.describe(),
               settings.redis_prefix);
  return backend;
}

// Creates the state directory, logs the configuration and opens the store. Throws StartupError.
SessionBackend open_backend(const GatewayConfig& config) {
  std::error_code fs_error;
  std::filesystem::create_directories(config.store.state_dir, fs_error);
  if (fs_error) {
    refuse_to_start(fmt::format("cannot create --state-dir {}: {}", config.store.state_dir,
                                fs_error.message()));
  }
  spdlog::info("configuration: {}", describe(config));
  try {
    return config.store.kind == StoreKind::redis ? open_redis_backend(config)
                                                 : open_local_backend(config);
  } catch (const store::StoreError& error) {
    // Never reset or overwrite a database we cannot read: an operator has to look at it.
    refuse_to_start(fmt::format("cannot start: {}", error.what()));
  } catch (const redis::RedisUnavailable& error) {
    refuse_to_start(fmt::format("cannot start: {}", error.what()));
  } catch (const core::Error& error) {
    refuse_to_start(fmt::format("cannot start: {}", error.what()));
  }
}

// Opens the listening socket (accepting starts with Server::start). Throws StartupError.
std::unique_ptr<http::Server> listen(asio::io_context& io, GatewayApi& api,
                                     const GatewayConfig& config) {
  const auto& http = config.http;
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address(http.bind_host), http.bind_port);
  try {
    return std::make_unique<http::Server>(
        io, endpoint, [&api](http::Exchange& exchange) { return api.handle(exchange); },
        server_options(config));
  } catch (const boost::system::system_error& error) {
    refuse_to_start(fmt::format("cannot listen on {} port {}: {}", http.bind_host, http.bind_port,
                                error.code().message()));
  }
}

}  // namespace

Gateway::WorkerHooks::WorkerHooks(bridge::SessionService& pool, WorkerSupervisor& workers,
                                  AgentSessions& agents, SessionLauncher& launcher)
    : pool_(pool) {
  pool_.set_end_listener([&workers, &agents](const core::SessionSnapshot& session) {
    workers.on_session_end(session);
    agents.on_session_end(session);
  });
  pool_.set_followup_listener(
      [&launcher](const std::string& session_id, const std::string& message) {
        launcher.deliver_routed_followup(session_id, message);
      });
}

void Gateway::WorkerHooks::unhook() {
  pool_.set_end_listener(nullptr);
  pool_.set_followup_listener(nullptr);
}

Gateway::Gateway(GatewayConfig config)
    : config_(std::move(config)),
      logging_(config_.logging.format, config_.logging.level),
      backend_(open_backend(config_)),
      authenticator_(config_.auth.authenticator(), core::system_clock_unix_ms, backend_.tokens),
      io_(static_cast<int>(config_.http.threads)),
      workers_(io_, *backend_.sessions, config_),
      agents_(io_, *backend_.sessions, config_),
      api_(config_, *backend_.sessions, authenticator_, *backend_.rate_limiter, workers_, agents_),
      worker_hooks_(*backend_.sessions, workers_, agents_, api_.launcher()),
      server_(listen(io_, api_, config_)),
      signals_(io_, SIGINT, SIGTERM),
      shutdown_deadline_(io_) {
  // Writing to a worker whose stdin is closed must fail with EPIPE, not kill the gateway.
  ::signal(SIGPIPE, SIG_IGN);
  // Sessions whose process the last run left: ACP agents that can load their session are
  // started again (their processes report once run() runs the I/O threads); the others end.
  agents_.recover(backend_.lost_workers);
  // What the restore and the recovery wrote (a lost worker's restart event and its session's
  // end) is committed before anyone can ask: readers see only the durable part of a log, so a
  // reader could otherwise find a failed session without the event that says why.
  if (backend_.local_store)
    backend_.local_store->flush();
  // The allowed Host names carry the port actually bound (--bind may say 0).
  auto policy = browser_policy(config_, server_->local_endpoint().port());
  spdlog::info("browser protections: {}", policy.describe());
  api_.set_browser_policy(std::move(policy));
  // Commands the I/O threads submit to Redis are written once the handlers already queued have
  // run: the commands of every request handled meanwhile go out in one write.
  if (backend_.redis_client) {
    backend_.redis_client->set_write_deferrer(
        [this](std::function<void()> write) { asio::post(io_, std::move(write)); });
  }
}

Gateway::~Gateway() {
  wind_down();
}

int Gateway::run() {
  start_serving();
  run_io_threads();
  wind_down();
  return 0;
}

void Gateway::stop() {
  asio::post(io_, [this] { begin_stop(); });
}

void Gateway::start_serving() {
  // Handle signals before announcing the port: whoever reads that line may stop us at once.
  signals_.async_wait([this](const boost::system::error_code& error, int signal) {
    if (error)
      return;
    spdlog::info("signal {} received; stopping", signal);
    begin_stop();
  });
  server_->start();
  api_.set_listening(true);
  const auto local = server_->local_endpoint();
  // Tests and scripts read the port from this line when started with port 0.
  if (local.address().is_v6()) {
    spdlog::info("listening on http://[{}]:{}", local.address().to_string(), local.port());
  } else {
    spdlog::info("listening on http://{}:{}", local.address().to_string(), local.port());
  }
  const auto reap_every = std::chrono::milliseconds(
      std::clamp<std::int64_t>(config_.sessions.inactivity_timeout_ms / 4, 10, 1000));
  asio::co_spawn(io_, reap_periodically(*backend_.sessions, api_.blocking_calls(), reap_every),
                 asio::detached);
}

void Gateway::begin_stop() {
  if (stopping_.exchange(true))
    return;
  api_.set_listening(false);
  server_->stop();
  // Workers get SIGTERM, then SIGKILL after the grace period; the gateway exits once all are
  // reaped, so none is left behind.
  // Agents are stopped too; their sessions stay running for the next start to resume or fail.
  auto remaining = std::make_shared<std::atomic<int>>(2);
  auto one_done = [this, remaining] {
    if (--*remaining == 0)
      io_.stop();
  };
  workers_.shutdown(one_done);
  agents_.shutdown(one_done);
  // A worker stuck beyond SIGKILL (e.g. in uninterruptible sleep) must not keep us running.
  shutdown_deadline_.expires_after(std::chrono::milliseconds(config_.worker.kill_grace_ms + 2000));
  shutdown_deadline_.async_wait([this](const boost::system::error_code& error) {
    if (!error)
      io_.stop();
  });
}

void Gateway::run_io_threads() {
  std::vector<std::thread> io_threads;
  for (unsigned i = 1; i < config_.http.threads; ++i)
    io_threads.emplace_back([this] { io_.run(); });
  io_.run();
  for (auto& thread : io_threads)
    thread.join();
}

// Right after the I/O threads stop (from run(), or from the destructor when run() was never
// called), before any member goes. Each step keeps an ordering docs/reliability.md records.
void Gateway::wind_down() {
  if (wound_down_)
    return;
  wound_down_ = true;
  // A shared store's feed thread calls the pool's listeners until told otherwise; the
  // supervisor they call is destroyed before the store.
  worker_hooks_.unhook();
  // Commands whose write was left to the stopped I/O threads go out now, so that their answers
  // come (join_blocking_calls waits for them).
  if (backend_.redis_client) {
    backend_.redis_client->set_write_deferrer(nullptr);
    backend_.redis_client->flush();
  }
  // Calls still being made for suspended requests finish before those requests are destroyed.
  api_.join_blocking_calls();
  // Suspended coroutines (connections, streams) refer to api_ and server_: destroy them now,
  // while those still exist, not in io_'s destructor after they are gone (a heap-use-after-free
  // AddressSanitizer found, fixed in 1fedada).
  io_.destroy_pending_handlers();
}

}  // namespace tau::gateway
