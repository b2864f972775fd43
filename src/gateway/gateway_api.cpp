#include "gateway/gateway_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <optional>
#include <tuple>
#include <utility>

#include "core/text.h"
#include "gateway/assets.h"
#include "gateway/durable_wait.h"
#include "gateway/event_stream.h"
#include "gateway/json_codec.h"
#include "gateway/logging.h"
#include "http/query.h"

namespace tau::gateway {

namespace asio = boost::asio;
namespace json = boost::json;
namespace beast_http = boost::beast::http;
using beast_http::verb;

namespace {

constexpr std::int64_t kMaxDrainLimit = 1000000;
constexpr std::int64_t kDefaultDrainLimit = 64;

// The key failed credentials are counted under, and the login route's rate limit: the client's
// address.
std::string address_key(const RequestContext& context) {
  const auto address = context.exchange.remote().address();
  std::string key = "address:";
  if (!address.is_v4())
    return key + address.to_string();
  // What to_string writes for IPv4, without inet_ntop's sprintf: every authenticated request
  // asks the throttle under this key.
  const auto bytes = address.to_v4().to_bytes();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0)
      key += '.';
    append_integer(key, static_cast<unsigned>(bytes[i]));
  }
  return key;
}

// Sleeps on the request's executor (a throttled attempt waiting for its turn).
asio::awaitable<void> pause(const asio::any_io_executor& executor, std::chrono::milliseconds wait) {
  asio::steady_timer timer(executor, wait);
  co_await timer.async_wait(asio::use_awaitable);
}

// The throttle's clock: steady, so a wall-clock jump neither frees nor stalls attempts.
std::int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<std::uint64_t> parse_cursor(std::string_view text) {
  auto cursor = http::parse_unsigned(text);
  if (!cursor)
    throw ApiError(400, "invalid_cursor", "cursor must be a non-negative integer");
  return cursor;
}

}  // namespace

http::StringResponse json_response(unsigned status, const json::object& body) {
  return json_response(status, json::serialize(body));
}

http::StringResponse json_response(unsigned status, std::string body) {
  http::StringResponse response{static_cast<beast_http::status>(status), 11};
  response.set(beast_http::field::content_type, "application/json");
  response.set(beast_http::field::cache_control, "no-store");
  response.body() = std::move(body);
  return response;
}

http::StringResponse error_response(unsigned status, std::string_view code,
                                    std::string_view message) {
  return json_response(status, error_envelope(status, code, message));
}

http::ServerOptions server_options(const GatewayConfig& config) {
  http::ServerOptions options;
  options.header_timeout = std::chrono::milliseconds(config.http.header_timeout_ms);
  options.body_timeout = std::chrono::milliseconds(config.http.body_timeout_ms);
  options.idle_timeout = std::chrono::milliseconds(config.http.idle_timeout_ms);
  options.max_header_bytes = config.http.max_header_bytes;
  options.max_target_bytes = config.http.max_target_bytes;
  options.max_connections = config.http.max_connections;
  options.connection_strands = config.http.threads > 1;
  options.refusal = [](unsigned status, std::string_view code, std::string_view message) {
    return error_response(status, code, message);
  };
  return options;
}

http::BrowserPolicy browser_policy(const GatewayConfig& config, std::uint16_t listening_port) {
  return http::BrowserPolicy::make(http::BrowserPolicyOptions{
      .bind_host = config.http.bind_host,
      .bind_port = listening_port,
      .allowed_hosts = config.http.allowed_hosts,
      .cors_origins = config.http.cors_origins,
      .localhost_dev = config.auth.mode == auth::AuthMode::localhost_dev,
  });
}

std::optional<bridge::ListQuery::Position> parse_list_cursor(std::string_view text) {
  const auto dot = text.find('.');
  const auto activity =
      dot == std::string_view::npos ? std::nullopt : http::parse_unsigned(text.substr(0, dot));
  if (!activity || dot + 1 == text.size() ||
      *activity > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return bridge::ListQuery::Position{static_cast<std::int64_t>(*activity),
                                     std::string(text.substr(dot + 1))};
}

GatewayApi::GatewayApi(const GatewayConfig& config, bridge::SessionService& pool,
                       auth::Authenticator& authenticator, auth::RateLimiter& rate_limiter,
                       WorkerSupervisor& workers, AgentSessions& agents)
    : config_(config),
      pool_(pool),
      max_events_per_session_(pool.limits().max_events_per_session),
      authenticator_(authenticator),
      rate_limiter_(rate_limiter),
      agents_(agents),
      launcher_(pool, config.agents, workers, agents),
      stream_settings_{
          config.sse.retry_ms,
          config.sse.heartbeat_ms,
          config.sse.max_buffered_bytes,
          config.sse.stream_max_ms,
          config.sse.max_streams,
          [&agents](std::string_view session_id) { return agents.agent_json(session_id); }},
      status_page_(pool, authenticator, rate_limiter, workers, agents, streams_),
      metrics_page_(pool, authenticator, rate_limiter, workers, streams_),
      admit_blocks_(authenticator.calls_block() || rate_limiter.calls_block()),
      blocking_(pool.calls_block() || admit_blocks_),
      store_reads_(!blocking_.hops() && pool.reads_block(), 2) {
  add_routes();
  std::vector<RequestMetrics::Route> series;
  for (const auto& [method, path] : routes())
    series.push_back(RequestMetrics::Route{method, path});
  request_metrics_ = std::make_unique<RequestMetrics>(series);
}

void GatewayApi::add_routes() {
  auto route = [this](verb method, const char* path, RouteSpec spec) {
    router_.add(method, path, std::move(spec));
  };
  route(verb::post, paths::auth_session,
        {.json_handler = &GatewayApi::issue_auth_session,
         .authenticated = false,
         .body = RequestBody::required,
         // Failed passwords slow the next attempts instead (wait_for_turn): a request count
         // would lock the right password out along with the guesses.
         .rate_limited = false,
         .checks_password = true});
  route(verb::get, paths::status, {.json_handler = &GatewayApi::status});
  // Probes, scrapes and static pages are never rate limited: a monitor must not be turned away.
  route(verb::get, paths::healthz,
        {.json_handler = &GatewayApi::healthz,
         .authenticated = false,
         .rate_limited = false,
         .calls_pool = false});
  route(verb::get, paths::readyz,
        {.json_handler = &GatewayApi::readyz, .authenticated = false, .rate_limited = false});
  route(verb::get, paths::metrics,
        {.raw_handler = &GatewayApi::metrics,
         .authenticated = !config_.auth.metrics_public,
         .rate_limited = false});
  auto asset = [](std::string_view content_type, std::string_view body) {
    return RouteSpec{.raw_handler =
                         [content_type, body](GatewayApi&, RequestContext&) {
                           return RawBody{content_type, std::string(body)};
                         },
                     .authenticated = false,
                     .rate_limited = false,
                     .calls_pool = false};
  };
  route(verb::get, paths::openapi, asset("application/json", assets::openapi_json));
  // The page asks for the token itself; everything it shows comes from the authenticated API.
  route(verb::get, paths::dashboard, asset("text/html; charset=utf-8", assets::dashboard_html));
  route(verb::get, paths::dashboard_js,
        asset("text/javascript; charset=utf-8", assets::dashboard_js));
  route(verb::get, paths::dashboard_css, asset("text/css; charset=utf-8", assets::dashboard_css));
  route(verb::post, paths::sessions,
        {.json_handler = &GatewayApi::open_session, .body = RequestBody::required});
  route(verb::get, paths::sessions, {.json_handler = &GatewayApi::list_sessions});
  route(verb::get, paths::session_detail, {.json_text_handler = &GatewayApi::session_detail});
  route(verb::post, paths::progress,
        {.json_handler = &GatewayApi::append_progress,
         .json_handler_without_thread = &GatewayApi::append_progress_without_thread,
         .body = RequestBody::required});
  route(verb::post, paths::followups,
        {.json_handler = &GatewayApi::append_followup, .body = RequestBody::required});
  route(verb::post, paths::followups_drain,
        {.json_handler = &GatewayApi::drain_followups, .body = RequestBody::optional});
  route(verb::get, paths::stream,
        {.stream_handler = &GatewayApi::stream, .accepts_query_token = true});
  route(verb::post, paths::close, {.json_handler = &GatewayApi::close_session});
  route(verb::post, paths::cancel,
        {.json_handler = &GatewayApi::cancel_turn, .body = RequestBody::optional});
  route(verb::get, paths::permissions, {.json_handler = &GatewayApi::list_permissions});
  route(verb::post, paths::permission_answer,
        {.json_handler = &GatewayApi::answer_permission, .body = RequestBody::required});
  route(verb::post, paths::reap,
        {.json_handler = &GatewayApi::reap, .body = RequestBody::optional});
}

std::vector<std::pair<std::string, std::string>> GatewayApi::routes() const {
  std::vector<std::pair<std::string, std::string>> result;
  for (const auto& route : router_.routes())
    result.emplace_back(std::string(beast_http::to_string(route.method)), route.route_template);
  return result;
}

// A follow stream keeps the frames of handle(), dispatch() and the stream's coroutines for as
// long as it is open, and g++ gives every local of a coroutine a slot in its frame. So these
// coroutines hold little: routing, auth and answers are built in plain functions or in short
// coroutines of their own.

asio::awaitable<void> GatewayApi::handle(http::Exchange& exchange) {
  RequestContext context(exchange);
  // Counted and logged however the exchange ends, also when the connection fails mid-answer; a
  // detached stream (a live follow stream) when the stream ends.
  struct Recorder {
    GatewayApi& api;
    const RequestContext& context;
    const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    ~Recorder() { api.record_request(context, started); }
  } recorder{*this, context};

  // On the heap: an optional would hold an ApiError's worth of this frame for a stream's life.
  std::unique_ptr<ApiError> failure;
  try {
    co_await dispatch(exchange, context);
  } catch (const ApiError& error) {
    failure = std::make_unique<ApiError>(error);
  } catch (const http::BadRequest& error) {
    failure = std::make_unique<ApiError>(400, "malformed_request", error.what());
  } catch (const core::Error& error) {
    failure = std::make_unique<ApiError>(to_api_error(error));
  } catch (const boost::system::system_error&) {
    throw;  // the connection failed; there is no one to answer
  } catch (const std::exception& error) {
    spdlog::error("request failed: {}", error.what());
    failure = std::make_unique<ApiError>(500, "internal_error",
                                         "the gateway failed to handle the request");
  }
  if (failure && !exchange.responded())
    co_await send_error(exchange, *failure);
}

asio::awaitable<void> GatewayApi::send_error(http::Exchange& exchange, const ApiError& error) {
  auto response = error_response(error.status(), error.code(), error.what());
  if (const auto& header = error.header())
    response.set(header->first, header->second);
  co_await exchange.send(std::move(response));
}

asio::awaitable<void> GatewayApi::dispatch(http::Exchange& exchange, RequestContext& context) {
  const RouteSpec* routed = route(context);
  if (!routed) {
    co_await answer_preflight(context);
    co_return;
  }
  const RouteSpec& spec = *routed;
  if (const auto wait = wait_for_turn(spec, context); wait.count() > 0)
    co_await pause(context.exchange.executor(), wait);
  // Tokens and rate limits shared through Redis are checked on the API's own threads, unless
  // they can be decided here (a rate limit lease at hand).
  if (!admit(spec, context, !admit_blocks_))
    co_await blocking_.run([&] { return admit(spec, context, true); });
  context.body_rule = spec.body;
  if (spec.body != RequestBody::absent)
    co_await read_request_body(exchange, context);
  // Branches rather than one more coroutine: each awaited coroutine is a frame per request.
  if (spec.stream_handler)
    co_await spec.stream_handler(*this, context);
  else if (spec.raw_handler)
    co_await answer_raw(spec, context);
  else
    co_await answer_json(spec, context);
}

const GatewayApi::RouteSpec* GatewayApi::route(RequestContext& context) {
  const auto& header = context.exchange.header();
  const http::OriginVerdict origin = admit_browser(context);
  auto target = http::parse_request_target(header.target());
  if (!target)
    throw ApiError(400, "invalid_target", "request target is not a valid path and query");
  context.target = std::move(*target);
  auto match = router_.match(header.method(), context.target.path_segments);
  using Kind = decltype(match)::Kind;
  if (match.kind == Kind::not_found) {
    throw ApiError(404, "not_found", "no route for this path");
  }
  if (match.kind == Kind::method_not_allowed && origin == http::OriginVerdict::cors_allowed &&
      http::is_cors_preflight(header)) {
    context.preflight_methods = std::move(match.allow);
    return nullptr;
  }
  if (match.kind == Kind::method_not_allowed) {
    throw ApiError(405, "method_not_allowed", "method not allowed here; allowed: " + match.allow)
        .with_header("Allow", match.allow);
  }
  const RouteSpec& spec = match.route->value;
  context.params = std::move(match.params);
  context.route_index = static_cast<std::size_t>(match.route - router_.routes().data());
  return &spec;
}

bool GatewayApi::checks_credentials(const RouteSpec& spec) const {
  return authenticator_.checks_credentials() && (spec.authenticated || spec.checks_password);
}

std::chrono::milliseconds GatewayApi::wait_for_turn(const RouteSpec& spec,
                                                    RequestContext& context) {
  if (!checks_credentials(spec))
    return std::chrono::milliseconds(0);
  const auth::AttemptThrottle::Turn turn =
      authenticator_.throttle().reserve(address_key(context), steady_now_ms());
  if (turn.refused) {
    throw ApiError(429, "rate_limited",
                   "too many failed credentials from here or from everyone; retry later")
        .with_header("Retry-After", std::to_string((turn.retry_after_ms + 999) / 1000));
  }
  return std::chrono::milliseconds(turn.wait_ms);
}

bool GatewayApi::admit(const RouteSpec& spec, RequestContext& context, bool may_wait) {
  if (!may_wait && authenticator_.calls_block())
    return false;
  const auto& header = context.exchange.header();
  const std::string principal_key = authorize(spec, context);
  std::optional<auth::RateDecision> decision = auth::RateDecision{true, 0};
  if (spec.rate_limited)
    decision =
        may_wait ? rate_limiter_.check(principal_key) : rate_limiter_.try_check(principal_key);
  if (!decision)
    return false;
  if (!decision->allowed) {
    throw ApiError(429, "rate_limited", "too many requests; retry later")
        .with_header("Retry-After", std::to_string(decision->retry_after_seconds));
  }
  // No body but JSON is read: a cross-site page can send text/plain or a form without asking.
  if (const auto refusal = http::check_body_media_type(header))
    throw ApiError(refusal->status, refusal->code, refusal->message);
  return true;
}

http::OriginVerdict GatewayApi::admit_browser(RequestContext& context) const {
  if (!browser_policy_)
    throw ApiError(503, "not_ready", "the listener is not accepting connections");
  const auto& header = context.exchange.header();
  if (const auto refusal = browser_policy_->check_host(header))
    throw ApiError(refusal->status, refusal->code, refusal->message);
  http::OriginCheck origin = browser_policy_->check_origin(header);
  if (origin.refusal)
    throw ApiError(origin.refusal->status, origin.refusal->code, origin.refusal->message);
  if (origin.verdict == http::OriginVerdict::cors_allowed) {
    for (auto& [name, value] : http::cors_response_headers(origin.origin))
      context.exchange.add_response_header(std::move(name), std::move(value));
  }
  return origin.verdict;
}

asio::awaitable<void> GatewayApi::answer_preflight(RequestContext& context) {
  const auto origin = context.exchange.header()[beast_http::field::origin];
  const http::PreflightAnswer preflight = http::cors_preflight_answer(
      std::string_view(origin.data(), origin.size()), context.preflight_methods);
  http::StringResponse response{static_cast<beast_http::status>(preflight.status), 11};
  http::apply_headers(preflight.headers, response.base());
  co_await context.exchange.send(std::move(response));
}

std::string GatewayApi::authorize(const RouteSpec& spec, RequestContext& context) {
  if (!spec.authenticated) {
    // The login endpoint has no principal yet; it is limited per client address.
    return address_key(context);
  }
  std::string authorization_value(context.exchange.header()[beast_http::field::authorization]);
  // EventSource cannot set headers, so the stream also takes the token from its query.
  if (authorization_value.empty() && spec.accepts_query_token) {
    if (auto token = context.target.query_value("access_token"))
      authorization_value = "Bearer " + std::string(*token);
  }
  auto authorization = authenticator_.authorize(authorization_value);
  if (auto* failure = std::get_if<auth::AuthFailure>(&authorization)) {
    // A request without credentials guesses nothing (a page before its login, a probe).
    if (!authorization_value.empty())
      authenticator_.throttle().record_failure(address_key(context), steady_now_ms());
    throw ApiError(401, std::string(auth::to_string(*failure)), "missing or invalid bearer token");
  }
  const auto& principal = std::get<auth::Principal>(authorization);
  context.principal_kind = principal.kind;
  return principal.key;
}

asio::awaitable<void> GatewayApi::read_request_body(http::Exchange& exchange,
                                                    RequestContext& context) {
  const auto limit = static_cast<std::size_t>(config_.http.max_body_bytes());
  auto body = co_await exchange.read_body(limit);
  if (!body) {
    throw ApiError(413, "input_too_large",
                   "request body is larger than " + std::to_string(limit) + " bytes");
  }
  context.body = std::move(*body);
}

asio::awaitable<void> GatewayApi::answer_raw(const RouteSpec& spec, RequestContext& context) {
  RawBody answer;
  // Whether the handler's calls must leave the I/O thread (see BlockingCalls).
  if (blocking_.hops() && spec.calls_pool)
    answer = co_await blocking_.run([&] { return spec.raw_handler(*this, context); });
  else
    answer = spec.raw_handler(*this, context);
  http::StringResponse response{beast_http::status::ok, 11};
  response.set(beast_http::field::content_type, answer.content_type);
  response.set(beast_http::field::cache_control, "no-store");
  // Documents and the page are what a browser renders: no type sniffing, no referrer (the
  // page's stream URLs carry a token), and the page may not be framed or load anything from
  // another origin.
  response.set("X-Content-Type-Options", "nosniff");
  response.set("Referrer-Policy", "no-referrer");
  if (answer.content_type.starts_with("text/html")) {
    response.set("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'");
  }
  response.body() = std::move(answer.body);
  co_await context.exchange.send(std::move(response));
}

asio::awaitable<void> GatewayApi::answer_json(const RouteSpec& spec, RequestContext& context) {
  auto render = [&] {
    return spec.json_text_handler ? spec.json_text_handler(*this, context)
                                  : json::serialize(spec.json_handler(*this, context));
  };
  // Nothing is acknowledged before it is durable.
  std::string answer;
  bool durable = false;
  std::optional<json::object> answered;
  if (blocking_.hops() && spec.calls_pool && spec.json_handler_without_thread)
    answered = co_await spec.json_handler_without_thread(*this, context);
  if (answered) {
    answer = json::serialize(*answered);
    durable = context.commit_ticket == 0;
    if (!durable)
      durable = co_await wait_until_durable(pool_, context.commit_ticket);
  } else if (blocking_.hops() && spec.calls_pool) {
    // The handler and the wait for its change, in one trip to a thread that may wait.
    std::tie(answer, durable) = co_await blocking_.run([&] {
      std::string body = render();
      return std::pair(std::move(body), block_until_durable(pool_, context.commit_ticket));
    });
  } else {
    answer = render();
    // A read changed nothing: no wait, and no coroutine frame for one.
    durable = context.commit_ticket == 0;
    if (!durable)
      durable = co_await wait_until_durable(pool_, context.commit_ticket);
  }
  if (!durable) {
    throw ApiError(503, "store_unavailable",
                   "the change could not be made durable; the gateway's store has failed");
  }
  co_await context.exchange.send(json_response(200, std::move(answer)));
}

void GatewayApi::record_request(const RequestContext& context,
                                std::chrono::steady_clock::time_point started) {
  // Called from a destructor: a failure to build the record must not escape it.
  try {
    const http::Exchange& exchange = context.exchange;
    const auto method = exchange.header().method_string();
    RequestRecord record{
        .series = context.route_index.value_or(request_metrics_->unmatched()),
        .method = std::string(method.data(), method.size()),
        .route = context.route_index ? router_.routes()[*context.route_index].route_template
                                     : std::string_view("unmatched"),
        .principal = context.principal_kind,
        .started = started,
    };
    if (const auto& detached = exchange.detached()) {
      detached->on_end([this, record = std::move(record), executor = detached->executor()](
                           unsigned status, std::uint64_t bytes) {
        record_request(record, status, bytes, executor);
      });
      return;
    }
    record_request(record, exchange.status(), exchange.body_bytes(), exchange.executor());
  } catch (const std::exception& error) {
    spdlog::warn("cannot record a request: {}", error.what());
  }
}

void GatewayApi::record_request(const RequestRecord& record, unsigned status, std::uint64_t bytes,
                                const boost::asio::any_io_executor& executor) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - record.started).count();
  try {
    request_metrics_->record(record.series, status, seconds);
    log_access(
        AccessRecord{
            .method = record.method,
            .route = record.route,
            .status = status,
            .duration_ms = seconds * 1000,
            .bytes = bytes,
            .principal = record.principal,
        },
        executor);
  } catch (const std::exception& error) {
    spdlog::warn("cannot record a request: {}", error.what());
  }
}

GatewayApi::RawBody GatewayApi::metrics(RequestContext& /*context*/) {
  metrics::Exposition out;
  request_metrics_->write(out);
  metrics_page_.write(out);
  return RawBody{metrics::Exposition::kContentType, out.text()};
}

json::object GatewayApi::issue_auth_session(RequestContext& context) {
  if (authenticator_.mode() != auth::AuthMode::password_session) {
    throw ApiError(400, "auth_mode_mismatch",
                   "the gateway is not in password-session mode; it runs in " +
                       std::string(auth::to_string(authenticator_.mode())) + " mode");
  }
  const std::string_view password = required_string(context.json_body(), "password");
  auto issued = authenticator_.issue_session(password);
  if (std::holds_alternative<auth::AuthFailure>(issued)) {
    authenticator_.throttle().record_failure(address_key(context), steady_now_ms());
    throw ApiError(401, "invalid_credentials", "wrong password");
  }
  authenticator_.throttle().record_success(address_key(context));
  const auto& token = std::get<auth::IssuedToken>(issued);
  context.commit_ticket = token.commit_ticket;
  return json::object{
      {"access_token", token.access_token},
      {"token_type", "bearer"},
      {"expires_unix_ms", token.expires_unix_ms},
      {"expires_in_seconds", token.expires_in_seconds},
  };
}

json::object GatewayApi::status(RequestContext& /*context*/) {
  return status_page_.render();
}

json::object GatewayApi::healthz(RequestContext& /*context*/) {
  return json::object{{"status", "ok"}};
}

json::object GatewayApi::readyz(RequestContext& /*context*/) {
  if (!listening_)
    throw ApiError(503, "not_ready", "the listener is not accepting connections");
  if (pool_.store_failed())
    throw ApiError(503, "not_ready", "the store has failed; see the log");
  return json::object{{"status", "ready"}};
}

namespace {

// GET .../sessions?status=&workspace_id=&limit=&cursor=
bridge::ListQuery list_query(const http::RequestTarget& target) {
  constexpr std::uint64_t kMaxListLimit = 1000;
  constexpr std::uint64_t kDefaultListLimit = 100;
  bridge::ListQuery query;
  query.limit = kDefaultListLimit;
  if (auto text = target.query_value("status")) {
    query.status = core::session_status_from_string(*text);
    if (!query.status) {
      throw ApiError(400, "invalid_status",
                     "status must be running, completed, failed, timed_out or closed");
    }
  }
  if (auto text = target.query_value("workspace_id"))
    query.workspace_id = std::string(core::trim_ascii_whitespace(*text));
  if (auto text = target.query_value("limit")) {
    const auto parsed = http::parse_unsigned(*text);
    if (!parsed || *parsed == 0 || *parsed > kMaxListLimit)
      throw ApiError(400, "invalid_limit", "limit must be an integer from 1 to 1000");
    query.limit = static_cast<std::size_t>(*parsed);
  }
  // A cursor names the last session of the previous page.
  if (auto text = target.query_value("cursor")) {
    query.after = parse_list_cursor(*text);
    if (!query.after)
      throw ApiError(400, "invalid_cursor", "cursor must be a next_cursor this endpoint returned");
  }
  return query;
}

}  // namespace

json::object GatewayApi::session_json(const core::SessionSnapshot& session) const {
  json::object result = to_json(session);
  result["agent"] = agents_.agent_json(session.session_id);
  return result;
}

json::array GatewayApi::sessions_json(const std::vector<core::SessionSnapshot>& sessions) const {
  json::array result;
  for (const auto& session : sessions)
    result.emplace_back(session_json(session));
  return result;
}

json::object GatewayApi::appended_json(const bridge::AppendResult& result) const {
  return json::object{{"event", to_json(result.event)}, {"session", session_json(result.session)}};
}

json::object GatewayApi::list_sessions(RequestContext& context) {
  const bridge::ListPage page = pool_.list(list_query(context.target));
  json::value next_cursor = nullptr;
  if (page.more) {
    const auto& last = page.sessions.back();
    next_cursor = std::to_string(last.last_activity_unix_ms) + "." + last.session_id;
  }
  return json::object{{"sessions", sessions_json(page.sessions)},
                      {"next_cursor", std::move(next_cursor)}};
}

json::object GatewayApi::open_session(RequestContext& context) {
  const json::object& body = context.json_body();
  LaunchRequest request;
  request.workspace_id = required_string(body, "workspace_id");
  if (auto agent = optional_string(body, "agent"))
    request.agent = std::string(*agent);
  if (auto prompt = optional_string(body, "prompt"))
    request.prompt = std::string(*prompt);
  const LaunchResult launched = launcher_.launch(request);
  context.commit_ticket = launched.commit_ticket;
  return json::object{{"session", session_json(launched.session)}};
}

std::string GatewayApi::session_detail(RequestContext& context) {
  // {"session": session_json(...)}, rendered without building the objects.
  const core::SessionSnapshot session = pool_.get(context.session_id());
  std::string body;
  body.reserve(256);  // a session's detail, without an agent, in one allocation
  body += R"({"session":)";
  append_session_json(body, session, agents_.agent_json(session.session_id));
  body += '}';
  return body;
}

json::object GatewayApi::append_progress(RequestContext& context) {
  const std::string_view message = required_string(context.json_body(), "message");
  const auto result = pool_.append_progress(context.session_id(), message);
  context.commit_ticket = result.commit_ticket;
  return appended_json(result);
}

asio::awaitable<std::optional<json::object>> GatewayApi::append_progress_without_thread(
    RequestContext& context) {
  const std::string_view message = required_string(context.json_body(), "message");
  const std::optional<bridge::AppendResult> result =
      co_await blocking_.run_without_thread<bridge::AppendResult>(
          [&](bridge::SessionService::AppendDone done) {
            return pool_.append_progress_async(context.session_id(), message, std::move(done));
          });
  if (!result)
    co_return std::nullopt;
  context.commit_ticket = result->commit_ticket;
  co_return appended_json(*result);
}

json::object GatewayApi::append_followup(RequestContext& context) {
  const std::string_view message = required_string(context.json_body(), "message");
  const auto result = launcher_.deliver_followup(context.session_id(), message);
  context.commit_ticket = result.commit_ticket;
  return appended_json(result);
}

json::object GatewayApi::drain_followups(RequestContext& context) {
  const auto limit = optional_integer(context.json_body(), "limit", 1, kMaxDrainLimit)
                         .value_or(kDefaultDrainLimit);
  const auto result = pool_.drain_followups(context.session_id(), static_cast<std::size_t>(limit));
  context.commit_ticket = result.commit_ticket;
  json::array followups;
  for (const auto& message : result.followups)
    followups.emplace_back(message);
  return json::object{
      {"session_id", result.session.session_id},
      {"drained_count", result.followups.size()},
      {"followups", std::move(followups)},
      {"session", session_json(result.session)},
  };
}

StreamRequest GatewayApi::stream_request(const RequestContext& context) const {
  StreamRequest request;
  request.session_id = context.session_id();
  // Cursor precedence: the query parameters (browsers cannot set headers on a first connect),
  // then the Last-Event-ID header an EventSource sends when it reconnects.
  if (auto after = context.target.query_value("after_sequence_id")) {
    request.cursor = parse_cursor(*after);
  } else if (auto last_event_id = context.target.query_value("last_event_id")) {
    request.cursor = parse_cursor(*last_event_id);
  } else if (auto header = context.exchange.header()["Last-Event-ID"]; !header.empty()) {
    request.cursor = parse_cursor(header);
  }
  const std::size_t max_events = max_events_per_session_;
  request.limit = max_events;
  if (auto text = context.target.query_value("limit")) {
    const auto parsed = http::parse_unsigned(*text);
    if (!parsed || *parsed == 0) {
      throw ApiError(400, "invalid_limit", "limit must be an integer >= 1");
    }
    request.limit = static_cast<std::size_t>(std::min<std::uint64_t>(*parsed, max_events));
  }
  if (auto follow = context.target.query_value("follow")) {
    if (*follow == "true" || *follow == "1") {
      request.follow = true;
    } else if (*follow != "false" && *follow != "0") {
      throw ApiError(400, "invalid_follow", "follow must be true, 1, false or 0");
    }
  }
  return request;
}

// Not a coroutine: a follow stream would keep its frame for as long as it is open.
asio::awaitable<void> GatewayApi::stream(RequestContext& context) {
  StreamRequest request = stream_request(context);
  // The stream may stay open for hours with this context: the parsed target's strings, which the
  // stream request took what it needs from, are let go now.
  context.target = {};
  return write_event_stream(context.exchange, pool_, std::move(request), stream_settings_, streams_,
                            blocking_.hops() ? blocking_ : store_reads_);
}

json::object GatewayApi::close_session(RequestContext& context) {
  const auto result = pool_.close(context.session_id());
  context.commit_ticket = result.commit_ticket;
  return json::object{{"session", session_json(result.session)}};
}

json::object GatewayApi::cancel_turn(RequestContext& context) {
  context.json_body();              // takes no fields, but must be a JSON object when present
  pool_.get(context.session_id());  // 404 for a session that does not exist
  const bool cancelled = agents_.cancel(context.session_id());
  return json::object{{"cancelled", cancelled},
                      {"session", session_json(pool_.get(context.session_id()))}};
}

json::object GatewayApi::list_permissions(RequestContext& context) {
  const core::SessionSnapshot session = pool_.get(context.session_id());
  return json::object{{"permissions", agents_.pending_permissions(context.session_id())},
                      {"session", session_json(session)}};
}

json::object GatewayApi::answer_permission(RequestContext& context) {
  const std::string_view option_id = required_string(context.json_body(), "option_id");
  pool_.get(context.session_id());
  const std::string& request_id = context.params.at(1);
  agents_.answer_permission(context.session_id(), request_id, option_id);
  return json::object{{"request_id", request_id},
                      {"outcome", "selected"},
                      {"option_id", option_id},
                      {"session", session_json(pool_.get(context.session_id()))}};
}

json::object GatewayApi::reap(RequestContext& context) {
  const auto now = optional_integer(context.json_body(), "now_unix_ms", 0,
                                    std::numeric_limits<std::int64_t>::max())
                       .value_or(pool_.now());
  const auto result = pool_.reap(now);
  context.commit_ticket = result.commit_ticket;
  return json::object{
      {"reaped_count", result.reaped.size()},
      {"sessions", sessions_json(result.reaped)},
      {"runtime", status_page_.runtime_json(result.runtime)},
  };
}

}  // namespace tau::gateway
