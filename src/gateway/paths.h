#pragma once

// Path templates of the API, also reported by the status endpoint.
namespace tau::gateway::paths {
inline constexpr const char* status = "/gateway/status";
inline constexpr const char* healthz = "/healthz";
inline constexpr const char* readyz = "/readyz";
inline constexpr const char* auth_session = "/gateway/auth/session";
inline constexpr const char* sessions = "/gateway/external-coding-agent/sessions";
inline constexpr const char* session_detail =
    "/gateway/external-coding-agent/sessions/{session_id}";
inline constexpr const char* progress =
    "/gateway/external-coding-agent/sessions/{session_id}/progress";
inline constexpr const char* followups =
    "/gateway/external-coding-agent/sessions/{session_id}/followups";
inline constexpr const char* followups_drain =
    "/gateway/external-coding-agent/sessions/{session_id}/followups/drain";
inline constexpr const char* stream = "/gateway/external-coding-agent/sessions/{session_id}/stream";
inline constexpr const char* close = "/gateway/external-coding-agent/sessions/{session_id}/close";
inline constexpr const char* cancel = "/gateway/external-coding-agent/sessions/{session_id}/cancel";
inline constexpr const char* permissions =
    "/gateway/external-coding-agent/sessions/{session_id}/permissions";
inline constexpr const char* permission_answer =
    "/gateway/external-coding-agent/sessions/{session_id}/permissions/{request_id}";
inline constexpr const char* reap = "/gateway/external-coding-agent/reap";
inline constexpr const char* metrics = "/metrics";
inline constexpr const char* openapi = "/gateway/openapi.json";
inline constexpr const char* dashboard = "/dashboard";
inline constexpr const char* dashboard_js = "/dashboard/app.js";
inline constexpr const char* dashboard_css = "/dashboard/app.css";
}  // namespace tau::gateway::paths
