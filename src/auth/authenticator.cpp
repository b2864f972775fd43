#include "auth/authenticator.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "bridge/random_id.h"

namespace tau::auth {

namespace {
constexpr std::array<std::pair<AuthMode, std::string_view>, 3> kModeNames{{
    {AuthMode::token, "token"},
    {AuthMode::password_session, "password-session"},
    {AuthMode::localhost_dev, "localhost-dev"},
}};
// 256 random bits per issued token.
constexpr std::size_t kTokenBytes = 32;
}  // namespace

std::string_view to_string(AuthMode mode) {
  for (const auto& [value, name] : kModeNames) {
    if (value == mode)
      return name;
  }
  return "unknown";
}

std::optional<AuthMode> auth_mode_from_string(std::string_view text) {
  for (const auto& [value, name] : kModeNames) {
    if (name == text)
      return value;
  }
  return std::nullopt;
}

std::string_view to_string(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::unauthorized:
      return "unauthorized";
    case AuthFailure::invalid_credentials:
      return "invalid_credentials";
    case AuthFailure::auth_mode_mismatch:
      return "auth_mode_mismatch";
  }
  return "unknown";
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  const std::size_t length = std::max(a.size(), b.size());
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < length; ++i) {
    const auto x = static_cast<unsigned char>(i < a.size() ? a[i] : 0);
    const auto y = static_cast<unsigned char>(i < b.size() ? b[i] : 0);
    difference |= static_cast<unsigned char>(x ^ y);
  }
  return difference == 0;
}

Authenticator::Authenticator(AuthConfig config, bridge::Clock clock)
    : config_(std::move(config)),
      clock_(clock ? std::move(clock) : bridge::Clock(bridge::system_clock_unix_ms)) {}

std::optional<std::string_view> Authenticator::bearer_token(std::string_view authorization) const {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size())
    return std::nullopt;
  // The scheme name is case-insensitive (RFC 9110 section 11.1).
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    const char c = authorization[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != kScheme[i])
      return std::nullopt;
  }
  const std::string_view token =
      bridge::trim_ascii_whitespace(authorization.substr(kScheme.size()));
  if (token.empty())
    return std::nullopt;
  return token;
}

std::variant<Principal, AuthFailure> Authenticator::authorize(std::string_view authorization) {
  switch (config_.mode) {
    case AuthMode::localhost_dev:
      return Principal{"localhost-dev", "localhost-dev"};
    case AuthMode::token: {
      const auto token = bearer_token(authorization);
      if (token && constant_time_equals(*token, config_.token)) {
        return Principal{"token", "token"};
      }
      break;
    }
    case AuthMode::password_session: {
      const auto token = bearer_token(authorization);
      if (!token)
        break;
      const std::int64_t now = clock_();
      std::lock_guard lock(mutex_);
      auto found = session_expiry_unix_ms_.find(std::string(*token));
      if (found != session_expiry_unix_ms_.end()) {
        if (now < found->second)
          return Principal{"session:" + found->first, "session"};
        session_expiry_unix_ms_.erase(found);
      }
      break;
    }
  }
  ++auth_failures_;
  return AuthFailure::unauthorized;
}

std::variant<IssuedToken, AuthFailure> Authenticator::issue_session(std::string_view password) {
  if (config_.mode != AuthMode::password_session)
    return AuthFailure::auth_mode_mismatch;
  if (!constant_time_equals(password, config_.password)) {
    ++auth_failures_;
    return AuthFailure::invalid_credentials;
  }
  const std::int64_t now = clock_();
  IssuedToken issued;
  issued.access_token = bridge::random_hex(kTokenBytes);
  issued.expires_in_seconds = config_.session_ttl_seconds;
  // Saturate: a TTL near the configurable maximum would otherwise overflow into the past.
  constexpr std::int64_t kMaxMs = std::numeric_limits<std::int64_t>::max();
  const std::int64_t ttl_ms =
      config_.session_ttl_seconds > kMaxMs / 1000 ? kMaxMs : config_.session_ttl_seconds * 1000;
  issued.expires_unix_ms = ttl_ms > kMaxMs - now ? kMaxMs : now + ttl_ms;
  std::lock_guard lock(mutex_);
  purge_expired_locked(now);
  session_expiry_unix_ms_.emplace(issued.access_token, issued.expires_unix_ms);
  ++total_sessions_issued_;
  return issued;
}

AuthStats Authenticator::stats() {
  const std::int64_t now = clock_();
  std::lock_guard lock(mutex_);
  purge_expired_locked(now);
  return AuthStats{session_expiry_unix_ms_.size(), total_sessions_issued_, auth_failures_.load()};
}

void Authenticator::purge_expired_locked(std::int64_t now) {
  std::erase_if(session_expiry_unix_ms_, [now](const auto& entry) { return entry.second <= now; });
}

}  // namespace tau::auth
