#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tau::core {

// What can go wrong in the session core, whoever holds the sessions. The HTTP layer maps each
// code to its status in one place (gateway/api_error.cpp); the core knows nothing of HTTP.
enum class ErrorCode {
  invalid_workspace_id,
  invalid_message,
  session_not_found,
  session_not_running,
  session_limit_reached,
  // A shared store (Redis) could not be reached: nothing was changed.
  store_unavailable,
  // The session's worker (agent process) could not be started or reached.
  worker_failed,
  // The events held in memory reached the gateway's budget and none could be let go.
  event_memory_full,
  // Agent sessions: the named agent profile does not exist; the session runs no agent of a
  // protocol the call needs (acp, claude-stream-json); a request for permission is unknown,
  // already answered, or answered with an option it did not offer.
  unknown_agent,
  not_an_agent_session,
  permission_request_not_found,
  permission_request_resolved,
  invalid_option,
};

// The API's stable error code string for each error.
std::string_view to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// One factory per error, so every implementation says the same thing.
namespace errors {
Error empty_workspace_id();
Error empty_message();
Error session_not_found();
Error session_not_running(std::string_view status);
Error session_limit_reached(std::size_t max_active_sessions);
Error store_unavailable(std::string_view detail);
Error worker_failed(std::string_view what, std::string_view detail);
Error event_memory_full(std::uint64_t budget_bytes);
Error unknown_agent(std::string_view name, std::string_view defined);
Error not_an_agent_session();
}  // namespace errors

}  // namespace tau::core
