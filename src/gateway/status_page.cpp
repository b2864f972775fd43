#include "gateway/status_page.h"

#include <string>
#include <utility>

#include "gateway/json_codec.h"
#include "gateway/paths.h"

namespace tau::gateway {

namespace json = boost::json;

json::object StatusPage::render() const {
  json::object external_coding_agent{
      {"sessions_endpoint", paths::sessions},
      {"list_endpoint", paths::sessions},
      {"session_detail_endpoint", paths::session_detail},
      {"progress_endpoint", paths::progress},
      {"followups_endpoint", paths::followups},
      {"followups_drain_endpoint", paths::followups_drain},
      {"stream_endpoint", paths::stream},
      {"close_endpoint", paths::close},
      {"cancel_endpoint", paths::cancel},
      {"permissions_endpoint", paths::permissions},
      {"permission_answer_endpoint", paths::permission_answer},
      {"reap_endpoint", paths::reap},
      {"runtime", runtime_json(pool_.runtime())},
  };
  json::object gateway{
      {"status_endpoint", paths::status},
      {"auth_session_endpoint", paths::auth_session},
      {"metrics_endpoint", paths::metrics},
      {"openapi_endpoint", paths::openapi},
      {"dashboard_endpoint", paths::dashboard},
      {"external_coding_agent", std::move(external_coding_agent)},
  };
  return json::object{{"auth", auth_json()}, {"gateway", std::move(gateway)}};
}

json::object StatusPage::runtime_json(const bridge::RuntimeInfo& runtime) const {
  json::object result = to_json(runtime);
  result["open_streams"] = streams_.open.load();
  result["worker"] = workers_.status_json();
  result["agents"] = agents_.status_json();
  result["store"] = store_json();
  const bridge::PoolCounters counters = pool_.counters();
  result["event_memory"] = json::object{
      {"held_bytes", counters.event_memory_bytes},
      {"budget_bytes", counters.event_memory_budget_bytes},
      {"events_let_go", counters.events_let_go},
      {"appends_refused", counters.appends_refused_for_memory},
  };
  return result;
}

json::object StatusPage::auth_json() const {
  const auto stats = authenticator_.stats();
  return json::object{
      {"mode", auth::to_string(authenticator_.mode())},
      {"active_sessions", stats.active_sessions},
      {"total_sessions_issued", stats.total_sessions_issued},
      {"auth_failures", stats.auth_failures},
      {"auth_attempts_delayed", stats.attempts_delayed},
      {"auth_attempts_refused", stats.attempts_refused},
      {"rate_limited_requests", rate_limiter_.rejected_requests()},
      {"rate_limit_window_seconds", rate_limiter_.window_seconds()},
      {"rate_limit_max_requests", rate_limiter_.max_requests()},
      {"session_ttl_seconds", authenticator_.session_ttl_seconds()},
  };
}

json::object StatusPage::store_json() const {
  const store::StoreInfo store = pool_.store_info();
  return json::object{
      {"kind", store.kind},
      {"path", store.path},
      {"durability", store.durability},
      {"database_bytes", store.database_bytes},
      {"pending_writes", store.pending_writes},
      {"commits", store.commits},
      {"failed", store.failed},
  };
}

}  // namespace tau::gateway
