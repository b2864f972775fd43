#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "bridge/session_types.h"

namespace tau::auth {

enum class AuthMode { token, password_session, localhost_dev };

std::string_view to_string(AuthMode mode);
std::optional<AuthMode> auth_mode_from_string(std::string_view text);

struct AuthConfig {
  AuthMode mode = AuthMode::token;
  std::string token;     // token mode
  std::string password;  // password-session mode
  std::int64_t session_ttl_seconds = 3600;
};

// Who made a request, as far as limits are concerned. `key` identifies the principal for rate
// limiting and may contain a credential, so it is never logged; `kind` is safe to show.
struct Principal {
  std::string key;
  std::string_view kind;
};

enum class AuthFailure { unauthorized, invalid_credentials, auth_mode_mismatch };
std::string_view to_string(AuthFailure failure);

struct IssuedToken {
  std::string access_token;
  std::int64_t expires_unix_ms = 0;
  std::int64_t expires_in_seconds = 0;
};

struct AuthStats {
  std::uint64_t active_sessions = 0;  // live password-session tokens
  std::uint64_t total_sessions_issued = 0;
  std::uint64_t auth_failures = 0;
};

// Compares two secrets in time that depends only on their lengths' maximum, not on where
// they first differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// Checks credentials for each auth mode and issues password-session tokens. Thread-safe.
class Authenticator {
 public:
  Authenticator(AuthConfig config, bridge::Clock clock);

  // `authorization` is the raw Authorization header value (empty when absent).
  std::variant<Principal, AuthFailure> authorize(std::string_view authorization);
  // POST /gateway/auth/session: exchanges the password for a bearer token.
  std::variant<IssuedToken, AuthFailure> issue_session(std::string_view password);

  AuthStats stats();
  AuthMode mode() const { return config_.mode; }
  std::int64_t session_ttl_seconds() const { return config_.session_ttl_seconds; }

 private:
  std::optional<std::string_view> bearer_token(std::string_view authorization) const;
  void purge_expired_locked(std::int64_t now);

  const AuthConfig config_;
  const bridge::Clock clock_;
  std::atomic<std::uint64_t> auth_failures_{0};

  std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> session_expiry_unix_ms_;  // token -> expiry
  std::uint64_t total_sessions_issued_ = 0;
};

}  // namespace tau::auth
