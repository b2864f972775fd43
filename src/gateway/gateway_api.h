#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "auth/rate_limiter.h"
#include "bridge/session_service.h"
#include "gateway/agent_sessions.h"
#include "gateway/blocking_calls.h"
#include "gateway/config.h"
#include "gateway/event_stream.h"
#include "gateway/json_codec.h"
#include "gateway/metrics_page.h"
#include "gateway/paths.h"
#include "gateway/request_context.h"
#include "gateway/request_metrics.h"
#include "gateway/session_launcher.h"
#include "gateway/status_page.h"
#include "gateway/stream_counts.h"
#include "gateway/worker_supervisor.h"
#include "http/browser_policy.h"
#include "http/router.h"
#include "http/server.h"

namespace tau::gateway {

// A JSON answer with the headers every JSON response carries; an error in the envelope.
http::StringResponse json_response(unsigned status, const boost::json::object& body);
// The same with the object already serialized.
http::StringResponse json_response(unsigned status, std::string body);
http::StringResponse error_response(unsigned status, std::string_view code,
                                    std::string_view message);

// The HTTP server's limits and refusals as the configuration sets them.
http::ServerOptions server_options(const GatewayConfig& config);
// The browser protections as the configuration sets them, for the port actually listened on.
http::BrowserPolicy browser_policy(const GatewayConfig& config, std::uint16_t listening_port);

// A list cursor, "<last_activity_unix_ms>.<session_id>" as `next_cursor` writes it; nullopt when
// the text does not have that shape.
std::optional<bridge::ListQuery::Position> parse_list_cursor(std::string_view text);

// The HTTP face of the gateway: routes each request, authorizes it, applies the rate limit and
// the body limit, and hands it to a thin handler over the bridge: the session service, the
// session launcher (sessions with their agents, follow-ups to them), the status page and the
// metrics page. A handler authorizes, parses, makes its call and renders the answer; errors of
// the layers below are core::Errors, answered through to_api_error.
//
// When the pool's calls may wait on the network (`calls_block()`), routing, authentication and
// the rate limit stay on the I/O thread, but the handlers, the wait for durability and a
// stream's opening read run on threads of the API's own (`blocking_calls()`); only a follow
// stream's live reads (`events_after`, `unfollow`) are made on the I/O thread.
class GatewayApi {
 public:
  GatewayApi(const GatewayConfig& config, bridge::SessionService& pool,
             auth::Authenticator& authenticator, auth::RateLimiter& rate_limiter,
             WorkerSupervisor& workers, AgentSessions& agents);

  boost::asio::awaitable<void> handle(http::Exchange& exchange);
  // Every registered route as (method, path template), in registration order.
  std::vector<std::pair<std::string, std::string>> routes() const;
  // Whether the listener serves: /readyz answers 503 before and after (e.g. while stopping).
  void set_listening(bool listening) { listening_ = listening; }
  // The Host, Origin and CORS rules, which name the port actually listened on: set once the
  // socket is bound and before it serves. Until then every request is refused (503).
  void set_browser_policy(http::BrowserPolicy policy) { browser_policy_ = std::move(policy); }
  // Where calls into the pool that may block are made (also for others, e.g. a periodic reap).
  // Join it before destroying the coroutines of requests still being answered.
  BlockingCalls& blocking_calls() { return blocking_; }
  // Where sessions and follow-ups are handed to their agents (also routed ones, from a store).
  SessionLauncher& launcher() { return launcher_; }
  // Joins the threads of blocking_calls() and those that read streams from the store.
  void join_blocking_calls() {
    blocking_.join();
    store_reads_.join();
  }

 private:
  // Most routes answer one JSON object; the stream route writes its response itself.
  // (JSON is built outside coroutines: g++ 12 miscompiles some brace-initialized JSON in them.)
  using JsonHandler = std::function<boost::json::object(GatewayApi&, RequestContext&)>;
  // The same answer rendered straight to its bytes, for a route read too often to build an
  // object for each answer.
  using JsonTextHandler = std::function<std::string(GatewayApi&, RequestContext&)>;
  using StreamHandler = std::function<boost::asio::awaitable<void>(GatewayApi&, RequestContext&)>;
  // Answers a body that is not a JSON object: metrics text, the API description, the dashboard.
  struct RawBody {
    std::string_view content_type;
    std::string body;
  };
  using RawHandler = std::function<RawBody(GatewayApi&, RequestContext&)>;
  // A JSON answer made without a thread that may wait (BlockingCalls::run_without_thread);
  // nullopt when the service could not make the call so: json_handler then answers.
  using JsonHandlerWithoutThread =
      std::function<boost::asio::awaitable<std::optional<boost::json::object>>(GatewayApi&,
                                                                               RequestContext&)>;
  struct RouteSpec {
    JsonHandler json_handler;
    // Where calls block, tried before json_handler: the hot path of a shared store.
    JsonHandlerWithoutThread json_handler_without_thread;
    JsonTextHandler json_text_handler;
    StreamHandler stream_handler;
    RawHandler raw_handler;
    bool authenticated = true;
    RequestBody body = RequestBody::absent;
    bool accepts_query_token = false;  // `access_token` in the query, for EventSource clients
    bool rate_limited = true;          // health probes are not: a monitor must never be turned away
    bool calls_pool = true;            // false: answered on the I/O thread even if calls block
    bool checks_password = false;      // the login route: failed passwords are throttled
  };

  void add_routes();
  boost::asio::awaitable<void> dispatch(http::Exchange& exchange, RequestContext& context);
  // Checks Host and Origin, parses the target and routes; throws ApiError to refuse. Null for a
  // CORS preflight, which answer_preflight answers.
  const RouteSpec* route(RequestContext& context);
  // Whether the route checks a password or a bearer token.
  bool checks_credentials(const RouteSpec& spec) const;
  // How long the request must wait for its turn when failed credentials from its address, or
  // from everyone, slow attempts down (auth::AttemptThrottle); throws 429 when the turn is too
  // far off. A plain function: nearly every request has no wait, and so no frame for one.
  std::chrono::milliseconds wait_for_turn(const RouteSpec& spec, RequestContext& context);
  // Authenticates, rate-limits and checks the body's media type; throws ApiError to refuse.
  // Returns false, with nothing counted, when that would wait on the network and `may_wait` is
  // false (a shared limit without a lease at hand, tokens kept in Redis).
  bool admit(const RouteSpec& spec, RequestContext& context, bool may_wait);
  // The browser protections (see http::BrowserPolicy): throws ApiError for a Host or an Origin
  // refused; for a listed origin, the exchange's answer will carry the CORS headers.
  http::OriginVerdict admit_browser(RequestContext& context) const;
  boost::asio::awaitable<void> answer_preflight(RequestContext& context);
  // The key the rate limit counts the request under: its principal's, or its client address's
  // on a route that needs no credentials.
  std::string authorize(const RouteSpec& spec, RequestContext& context);
  boost::asio::awaitable<void> read_request_body(http::Exchange& exchange, RequestContext& context);
  boost::asio::awaitable<void> answer_raw(const RouteSpec& spec, RequestContext& context);
  boost::asio::awaitable<void> answer_json(const RouteSpec& spec, RequestContext& context);
  static boost::asio::awaitable<void> send_error(http::Exchange& exchange, const ApiError& error);
  // Counts and logs a finished exchange.
  // What the metrics and the access log say of a request, apart from its answer.
  struct RequestRecord {
    std::size_t series = 0;  // the request metrics' series: the route's, or unmatched
    std::string method;
    std::string_view route;  // the route template
    std::string_view principal;
    std::chrono::steady_clock::time_point started;
  };
  // Records the request when its exchange ends, or when its detached stream does.
  void record_request(const RequestContext& context, std::chrono::steady_clock::time_point started);
  void record_request(const RequestRecord& record, unsigned status, std::uint64_t bytes,
                      const boost::asio::any_io_executor& executor);

  // The handlers: each authorizes what admission cannot, parses its input, makes one call and
  // renders the answer.
  RawBody metrics(RequestContext& context);
  boost::json::object issue_auth_session(RequestContext& context);
  boost::json::object status(RequestContext& context);
  boost::json::object healthz(RequestContext& context);
  boost::json::object readyz(RequestContext& context);
  boost::json::object list_sessions(RequestContext& context);
  boost::json::object open_session(RequestContext& context);
  std::string session_detail(RequestContext& context);
  boost::json::object append_progress(RequestContext& context);
  boost::asio::awaitable<std::optional<boost::json::object>> append_progress_without_thread(
      RequestContext& context);
  boost::json::object append_followup(RequestContext& context);
  boost::json::object drain_followups(RequestContext& context);
  boost::asio::awaitable<void> stream(RequestContext& context);
  StreamRequest stream_request(const RequestContext& context) const;
  boost::json::object close_session(RequestContext& context);
  boost::json::object cancel_turn(RequestContext& context);
  boost::json::object list_permissions(RequestContext& context);
  boost::json::object answer_permission(RequestContext& context);
  // A session as answers show it: the snapshot, with its agent (null without one).
  boost::json::object session_json(const core::SessionSnapshot& session) const;
  boost::json::array sessions_json(const std::vector<core::SessionSnapshot>& sessions) const;
  // One change's answer: the event it appended and the session after it.
  boost::json::object appended_json(const bridge::AppendResult& result) const;
  boost::json::object reap(RequestContext& context);

  const GatewayConfig& config_;
  bridge::SessionService& pool_;
  const std::size_t max_events_per_session_;
  auth::Authenticator& authenticator_;
  auth::RateLimiter& rate_limiter_;
  AgentSessions& agents_;
  SessionLauncher launcher_;
  const StreamSettings stream_settings_;
  StreamCounts streams_;
  const StatusPage status_page_;
  const MetricsPage metrics_page_;
  http::Router<RouteSpec> router_;
  std::unique_ptr<RequestMetrics> request_metrics_;  // one series per route of router_
  std::atomic<bool> listening_{false};
  std::optional<http::BrowserPolicy> browser_policy_;
  const bool admit_blocks_;  // authorizing or rate limiting may wait on the network
  // Last, so that they are joined first: their calls use the members above.
  BlockingCalls blocking_;
  // Streams' reads of events the pool let go of from memory, when blocking_ does not hop.
  BlockingCalls store_reads_;
};

}  // namespace tau::gateway
