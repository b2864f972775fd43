#include "bridge/session_types.h"

#include <array>
#include <chrono>
#include <utility>

namespace tau::bridge {

std::int64_t system_clock_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
constexpr std::array<std::pair<SessionStatus, std::string_view>, 5> kStatusNames{{
    {SessionStatus::running, "running"},
    {SessionStatus::completed, "completed"},
    {SessionStatus::failed, "failed"},
    {SessionStatus::timed_out, "timed_out"},
    {SessionStatus::closed, "closed"},
}};
}  // namespace

std::string_view to_string(SessionStatus status) {
  for (const auto& [value, name] : kStatusNames) {
    if (value == status)
      return name;
  }
  return "unknown";
}

std::optional<SessionStatus> session_status_from_string(std::string_view text) {
  for (const auto& [value, name] : kStatusNames) {
    if (name == text)
      return value;
  }
  return std::nullopt;
}

std::string_view to_string(BridgeErrorCode code) {
  switch (code) {
    case BridgeErrorCode::invalid_workspace_id:
      return "invalid_workspace_id";
    case BridgeErrorCode::invalid_message:
      return "invalid_message";
    case BridgeErrorCode::session_not_found:
      return "external_coding_agent_session_not_found";
    case BridgeErrorCode::session_not_running:
      return "external_coding_agent_session_not_running";
    case BridgeErrorCode::session_limit_reached:
      return "external_coding_agent_session_limit_reached";
    case BridgeErrorCode::store_unavailable:
      return "store_unavailable";
  }
  return "unknown";
}

std::string_view trim_ascii_whitespace(std::string_view text) {
  constexpr std::string_view kWhitespace = " \t\n\r\f\v";
  const auto first = text.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos)
    return {};
  const auto last = text.find_last_not_of(kWhitespace);
  return text.substr(first, last - first + 1);
}

std::string_view checked_workspace_id(std::string_view workspace_id) {
  const std::string_view trimmed = trim_ascii_whitespace(workspace_id);
  if (trimmed.empty())
    throw BridgeError(BridgeErrorCode::invalid_workspace_id, "workspace_id must not be empty");
  return trimmed;
}

std::string_view checked_message(std::string_view message) {
  const std::string_view trimmed = trim_ascii_whitespace(message);
  if (trimmed.empty())
    throw BridgeError(BridgeErrorCode::invalid_message, "message must not be empty");
  return trimmed;
}

}  // namespace tau::bridge
