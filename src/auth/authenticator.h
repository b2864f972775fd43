#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "auth/attempt_throttle.h"
#include "core/clock.h"
#include "store/token_store.h"

namespace tau::auth {

enum class AuthMode { token, password_session, localhost_dev };

std::string_view to_string(AuthMode mode);
std::optional<AuthMode> auth_mode_from_string(std::string_view text);

struct AuthConfig {
  AuthMode mode = AuthMode::token;
  std::string token;     // token mode
  std::string password;  // password-session mode
  std::int64_t session_ttl_seconds = 3600;
  ThrottleSettings throttle;  // how failed credentials slow the next attempts
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
  store::Ticket commit_ticket = 0;  // the token may be handed out once this is durable
};

struct AuthStats {
  std::uint64_t active_sessions = 0;  // live password-session tokens
  std::uint64_t total_sessions_issued = 0;
  std::uint64_t auth_failures = 0;
  std::uint64_t attempts_delayed = 0;  // attempts that waited for their turn (AttemptThrottle)
  std::uint64_t attempts_refused = 0;  // attempts refused 429: their turn was too far off
};

// Compares two secrets in time that depends only on their lengths' maximum, not on where
// they first differ.
bool constant_time_equals(std::string_view a, std::string_view b);

// The hex SHA-256 digest of a token: what is kept of password-session tokens, in memory and in
// the store, so neither holds a usable credential.
std::string token_digest(std::string_view token);

// Where password-session tokens are kept, as SHA-256 digests with their expiry: in this process
// (LocalTokenRegistry, mirrored to its store) or in a Redis shared by several gateways, so a
// token issued by one works on all. Thread-safe.
class TokenRegistry {
 public:
  struct Counts {
    std::uint64_t live = 0;    // tokens not yet expired
    std::uint64_t issued = 0;  // tokens issued (by this process, or by all gateways)
  };

  virtual ~TokenRegistry() = default;
  // Records a new token; it may be handed out once the returned store ticket is durable.
  virtual store::Ticket add(const std::string& digest, std::int64_t expires_unix_ms,
                            std::int64_t now) = 0;
  // Whether the digest names a token that has not expired at `now`.
  virtual bool valid(const std::string& digest, std::int64_t now) = 0;
  virtual Counts counts(std::int64_t now) = 0;
  // Whether calls may wait on the network.
  virtual bool calls_block() const = 0;
};

// Tokens in this process's memory, recorded in its store (when given) to survive a restart.
class LocalTokenRegistry final : public TokenRegistry {
 public:
  explicit LocalTokenRegistry(std::shared_ptr<store::TokenStore> store = nullptr);

  // Takes in the tokens the store held at start-up (expired ones are dropped).
  void restore(const std::vector<store::StoredAuthSession>& stored, std::int64_t now);

  store::Ticket add(const std::string& digest, std::int64_t expires_unix_ms,
                    std::int64_t now) override;
  bool valid(const std::string& digest, std::int64_t now) override;
  Counts counts(std::int64_t now) override;
  bool calls_block() const override { return false; }

 private:
  void purge_expired_locked(std::int64_t now);

  const std::shared_ptr<store::TokenStore> store_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::int64_t> expiry_unix_ms_;  // digest -> expiry
  std::uint64_t issued_ = 0;
};

// Checks credentials for each auth mode and issues password-session tokens into a token
// registry (by default this process's own, without a store). Thread-safe.
class Authenticator {
 public:
  Authenticator(AuthConfig config, core::Clock clock,
                std::shared_ptr<TokenRegistry> tokens = nullptr);

  // `authorization` is the raw Authorization header value (empty when absent).
  std::variant<Principal, AuthFailure> authorize(std::string_view authorization);
  // POST /gateway/auth/session: exchanges the password for a bearer token.
  std::variant<IssuedToken, AuthFailure> issue_session(std::string_view password);

  AuthStats stats();
  // Where the gateway spaces out attempts after failed credentials, per client address and
  // globally; it records the failures and successes it sees.
  AttemptThrottle& throttle() { return throttle_; }
  // Whether requests carry credentials to check (not in localhost-dev mode).
  bool checks_credentials() const { return config_.mode != AuthMode::localhost_dev; }
  AuthMode mode() const { return config_.mode; }
  std::int64_t session_ttl_seconds() const { return config_.session_ttl_seconds; }
  // Whether authorizing may wait on the network (tokens shared through Redis).
  bool calls_block() const {
    return config_.mode == AuthMode::password_session && tokens_->calls_block();
  }

 private:
  std::optional<std::string_view> bearer_token(std::string_view authorization) const;

  const AuthConfig config_;
  const core::Clock clock_;
  const std::shared_ptr<TokenRegistry> tokens_;
  std::atomic<std::uint64_t> auth_failures_{0};
  AttemptThrottle throttle_;
};

}  // namespace tau::auth
