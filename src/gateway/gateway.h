#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <stdexcept>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_service.h"
#include "gateway/agent_sessions.h"
#include "gateway/config.h"
#include "gateway/gateway_api.h"
#include "gateway/logging.h"
#include "gateway/session_launcher.h"
#include "gateway/worker_supervisor.h"
#include "http/server.h"
#include "store/session_store.h"

namespace tau::redis {
class RedisClient;
}  // namespace tau::redis

namespace tau::gateway {

// The gateway could not start (state directory, store or listening socket); the reason has
// already been logged as critical. The process exits with code 1.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where the gateway keeps its sessions, password-session tokens and rate-limit counts: in this
// process over its own store (sqlite or memory), or in a Redis shared with other gateways.
struct SessionBackend {
  std::shared_ptr<store::SessionStore> local_store;  // null with Redis
  std::unique_ptr<bridge::SessionService> sessions;
  std::shared_ptr<auth::TokenRegistry> tokens;
  std::unique_ptr<auth::RateLimiter> rate_limiter;
  std::shared_ptr<redis::RedisClient> redis_client;  // null with a local store
  // Running sessions whose agent or worker process the last run left behind (local store).
  std::vector<std::string> lost_workers;
};

// The whole gateway process: logging, the store and session pool, authentication, workers, the
// API and its HTTP server, and the signals that stop it. Constructing it opens the store and
// the listening socket (throwing StartupError when either fails); run() serves until SIGINT,
// SIGTERM or stop(), then winds down in the order the members below are declared, reversed.
class Gateway {
 public:
  explicit Gateway(GatewayConfig config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Announces the port ("listening on ..."), serves on `http.threads` threads (this one
  // included) until stopped, and returns the process's exit code. Call once.
  int run();
  // What SIGINT and SIGTERM do: stop accepting, stop the workers (SIGTERM, then SIGKILL after
  // the grace period) and return from run() once all are reaped, or after the grace period
  // plus two seconds at most. Safe from any thread; later calls do nothing.
  void stop();

 private:
  // An io_context whose unfinished handlers can be destroyed on demand. Suspended coroutines
  // (open connections, streams) refer to the API and the server; destroying them is what the
  // io_context's destructor would do, but by then those objects, declared after it because
  // they need it, are gone.
  class IoContext : public boost::asio::io_context {
   public:
    using boost::asio::io_context::io_context;
    void destroy_pending_handlers() { shutdown(); }
  };

  // Hands the pool's session ends and routed follow-ups to the worker supervisor for as long
  // as it is hooked. A shared store's feed thread calls these listeners until told otherwise,
  // so they are unhooked before the supervisor goes.
  class WorkerHooks {
   public:
    WorkerHooks(bridge::SessionService& pool, WorkerSupervisor& workers, AgentSessions& agents,
                SessionLauncher& launcher);
    ~WorkerHooks() { unhook(); }
    WorkerHooks(const WorkerHooks&) = delete;
    WorkerHooks& operator=(const WorkerHooks&) = delete;
    void unhook();

   private:
    bridge::SessionService& pool_;
  };

  void start_serving();
  void begin_stop();  // on an I/O thread
  void run_io_threads();
  void wind_down();

  // Declaration order is construction order; destruction runs in reverse. Each member needs
  // only those above it.
  const GatewayConfig config_;  // read by everything below, by reference
  // Second, so that it goes last: the other members log until they are gone. Its destructor
  // writes every queued line and joins the logging thread before the loggers go.
  LoggingGuard logging_;
  // The state directory is created and the configuration logged before the store is opened.
  // Everything below holds the sessions only through the bridge::SessionService interface.
  SessionBackend backend_;
  auth::Authenticator authenticator_;  // over backend_.tokens
  IoContext io_;
  WorkerSupervisor workers_;  // io_, the pool
  AgentSessions agents_;      // io_, the pool
  GatewayApi api_;            // the pool, authenticator_, the rate limiter, workers_, agents_
  // The pool -> workers_, agents_ and api_'s launcher (routed follow-ups); goes before them.
  WorkerHooks worker_hooks_;
  std::unique_ptr<http::Server> server_;         // io_, api_; listening once constructed
  boost::asio::signal_set signals_;              // io_: SIGINT, SIGTERM
  boost::asio::steady_timer shutdown_deadline_;  // io_: bounds the wait for workers to exit
  std::atomic<bool> stopping_{false};
  bool wound_down_ = false;
};

}  // namespace tau::gateway
