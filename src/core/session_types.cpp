#include "core/session_types.h"

#include <array>
#include <utility>

#include "core/errors.h"
#include "core/text.h"

namespace tau::core {

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

std::string_view checked_workspace_id(std::string_view workspace_id) {
  const std::string_view trimmed = trim_ascii_whitespace(workspace_id);
  if (trimmed.empty())
    throw errors::empty_workspace_id();
  return trimmed;
}

std::string_view checked_message(std::string_view message) {
  const std::string_view trimmed = trim_ascii_whitespace(message);
  if (trimmed.empty())
    throw errors::empty_message();
  return trimmed;
}

}  // namespace tau::core
