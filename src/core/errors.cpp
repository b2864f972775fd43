#include "core/errors.h"

namespace tau::core {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_workspace_id:
      return "invalid_workspace_id";
    case ErrorCode::invalid_message:
      return "invalid_message";
    case ErrorCode::session_not_found:
      return "external_coding_agent_session_not_found";
    case ErrorCode::session_not_running:
      return "external_coding_agent_session_not_running";
    case ErrorCode::session_limit_reached:
      return "external_coding_agent_session_limit_reached";
    case ErrorCode::store_unavailable:
      return "store_unavailable";
    case ErrorCode::event_memory_full:
      return "event_memory_full";
    case ErrorCode::unknown_agent:
      return "unknown_agent";
    case ErrorCode::not_an_agent_session:
      return "not_an_agent_session";
    case ErrorCode::permission_request_not_found:
      return "permission_request_not_found";
    case ErrorCode::permission_request_resolved:
      return "permission_request_resolved";
    case ErrorCode::invalid_option:
      return "invalid_option";
    // The Tau gateway's code for a runtime that failed under a request.
    case ErrorCode::worker_failed:
      return "gateway_runtime_error";
  }
  return "unknown";
}

namespace errors {

Error empty_workspace_id() {
  return Error(ErrorCode::invalid_workspace_id, "workspace_id must not be empty");
}

Error empty_message() {
  return Error(ErrorCode::invalid_message, "message must not be empty");
}

Error session_not_found() {
  return Error(ErrorCode::session_not_found, "no session with this session_id");
}

Error session_not_running(std::string_view status) {
  return Error(ErrorCode::session_not_running,
               "session is " + std::string(status) + ", not running");
}

Error session_limit_reached(std::size_t max_active_sessions) {
  return Error(ErrorCode::session_limit_reached, "the gateway already runs the maximum of " +
                                                     std::to_string(max_active_sessions) +
                                                     " active sessions");
}

Error store_unavailable(std::string_view detail) {
  return Error(ErrorCode::store_unavailable, std::string(detail));
}

Error worker_failed(std::string_view what, std::string_view detail) {
  return Error(ErrorCode::worker_failed, std::string(what) + ": " + std::string(detail));
}

Error event_memory_full(std::uint64_t budget_bytes) {
  return Error(ErrorCode::event_memory_full,
               "the events held in memory reached the gateway's budget of " +
                   std::to_string(budget_bytes) +
                   " bytes (--max-event-memory-bytes) and none can be let go yet; retry later");
}

Error unknown_agent(std::string_view name, std::string_view defined) {
  return Error(ErrorCode::unknown_agent, "no agent profile named '" + std::string(name) +
                                             "' (defined: " + std::string(defined) + ")");
}

Error not_an_agent_session() {
  return Error(ErrorCode::not_an_agent_session,
               "the session runs no agent of protocol acp or claude-stream-json on this gateway");
}

}  // namespace errors

}  // namespace tau::core
