#include "gateway/metrics_page.h"

#include <string_view>

namespace tau::gateway {

namespace {

void counter(metrics::Exposition& out, std::string_view name, std::string_view help, double value) {
  out.family(name, "counter", help);
  out.sample(name, {}, value);
}

void gauge(metrics::Exposition& out, std::string_view name, std::string_view help, double value) {
  out.family(name, "gauge", help);
  out.sample(name, {}, value);
}

}  // namespace

void MetricsPage::write(metrics::Exposition& out) const {
  const bridge::PoolCounters pool = pool_.counters();
  write_sessions(out, pool);
  write_streams(out);
  write_pool_counters(out, pool);
  write_refusals(out);
  write_workers(out);
  write_store(out);
}

void MetricsPage::write_sessions(metrics::Exposition& out, const bridge::PoolCounters& pool) {
  out.family("tau_gateway_sessions", "gauge", "Sessions held, by status.");
  for (std::size_t i = 0; i < core::kSessionStatusCount; ++i) {
    const auto status = core::to_string(static_cast<core::SessionStatus>(i));
    out.sample("tau_gateway_sessions", {{"status", status}},
               static_cast<double>(pool.sessions_by_status[i]));
  }
}

void MetricsPage::write_streams(metrics::Exposition& out) const {
  gauge(out, "tau_gateway_open_streams", "Open stream responses (replays and follows).",
        static_cast<double>(streams_.open.load()));
  gauge(out, "tau_gateway_follow_streams", "Open follow streams (limited by --max-streams).",
        static_cast<double>(streams_.follow.load()));
}

void MetricsPage::write_pool_counters(metrics::Exposition& out, const bridge::PoolCounters& pool) {
  counter(out, "tau_gateway_events_appended_total", "Events appended to sessions.",
          static_cast<double>(pool.events_appended));
  counter(out, "tau_gateway_followups_queued_total", "Follow-ups queued for agents.",
          static_cast<double>(pool.followups_queued));
  counter(out, "tau_gateway_followups_drained_total", "Follow-ups drained by agents.",
          static_cast<double>(pool.followups_drained));
  counter(out, "tau_gateway_sessions_reaped_total", "Running sessions timed out for inactivity.",
          static_cast<double>(pool.sessions_reaped));
  gauge(out, "tau_gateway_event_memory_bytes",
        "What the events held in memory take, all sessions together.",
        static_cast<double>(pool.event_memory_bytes));
  gauge(out, "tau_gateway_event_memory_budget_bytes",
        "What they may take (--max-event-memory-bytes).",
        static_cast<double>(pool.event_memory_budget_bytes));
  counter(out, "tau_gateway_events_let_go_total",
          "Events let go from memory to keep within the budget (read back from the store).",
          static_cast<double>(pool.events_let_go));
  counter(out, "tau_gateway_appends_refused_for_memory_total",
          "Appends refused 503 event_memory_full: nothing could be let go.",
          static_cast<double>(pool.appends_refused_for_memory));
}

void MetricsPage::write_refusals(metrics::Exposition& out) const {
  const auto auth = authenticator_.stats();
  counter(out, "tau_gateway_auth_failures_total",
          "Requests refused for missing or invalid credentials.",
          static_cast<double>(auth.auth_failures));
  counter(out, "tau_gateway_auth_attempts_delayed_total",
          "Requests with credentials that waited their turn after failed credentials.",
          static_cast<double>(auth.attempts_delayed));
  counter(out, "tau_gateway_auth_attempts_refused_total",
          "Requests with credentials refused 429 because their turn was too far off.",
          static_cast<double>(auth.attempts_refused));
  counter(out, "tau_gateway_rate_limited_requests_total", "Requests refused with 429 rate_limited.",
          static_cast<double>(rate_limiter_.rejected_requests()));
}

void MetricsPage::write_workers(metrics::Exposition& out) const {
  const WorkerSupervisor::Counts workers = workers_.counts();
  gauge(out, "tau_gateway_worker_processes", "Worker processes running now.",
        static_cast<double>(workers.running));
  counter(out, "tau_gateway_worker_exits_total", "Worker processes that exited.",
          static_cast<double>(workers.exited));
  counter(out, "tau_gateway_worker_start_failures_total", "Worker processes that could not start.",
          static_cast<double>(workers.failed_to_start));
}

void MetricsPage::write_store(metrics::Exposition& out) const {
  out.family("tau_gateway_store_commit_duration_seconds", "histogram",
             "Time each store commit (one transaction of grouped writes) took.");
  out.histogram("tau_gateway_store_commit_duration_seconds", {}, pool_.commit_seconds().snapshot());
  gauge(out, "tau_gateway_store_failed", "1 once a store commit failed (nothing more is durable).",
        pool_.store_failed() ? 1 : 0);
}

}  // namespace tau::gateway
