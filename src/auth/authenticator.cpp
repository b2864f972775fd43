#include "auth/authenticator.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include <openssl/evp.h>

#include "core/random_id.h"
#include "core/text.h"

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

std::string token_digest(std::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(), nullptr);
  constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

LocalTokenRegistry::LocalTokenRegistry(std::shared_ptr<store::TokenStore> store)
    : store_(std::move(store)) {}

void LocalTokenRegistry::restore(const std::vector<store::StoredAuthSession>& stored,
                                 std::int64_t now) {
  std::lock_guard lock(mutex_);
  for (const auto& session : stored)
    expiry_unix_ms_.emplace(session.token_sha256, session.expires_unix_ms);
  purge_expired_locked(now);
}

store::Ticket LocalTokenRegistry::add(const std::string& digest, std::int64_t expires_unix_ms,
                                      std::int64_t now) {
  std::lock_guard lock(mutex_);
  purge_expired_locked(now);
  expiry_unix_ms_.emplace(digest, expires_unix_ms);
  ++issued_;
  return store_ ? store_->save_token(digest, expires_unix_ms) : 0;
}

bool LocalTokenRegistry::valid(const std::string& digest, std::int64_t now) {
  std::lock_guard lock(mutex_);
  auto found = expiry_unix_ms_.find(digest);
  if (found == expiry_unix_ms_.end())
    return false;
  if (now < found->second)
    return true;
  purge_expired_locked(now);
  return false;
}

TokenRegistry::Counts LocalTokenRegistry::counts(std::int64_t now) {
  std::lock_guard lock(mutex_);
  purge_expired_locked(now);
  return Counts{expiry_unix_ms_.size(), issued_};
}

void LocalTokenRegistry::purge_expired_locked(std::int64_t now) {
  for (auto it = expiry_unix_ms_.begin(); it != expiry_unix_ms_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    if (store_)
      store_->delete_token(it->first);
    it = expiry_unix_ms_.erase(it);
  }
}

Authenticator::Authenticator(AuthConfig config, core::Clock clock,
                             std::shared_ptr<TokenRegistry> tokens)
    : config_(std::move(config)),
      clock_(clock ? std::move(clock) : core::Clock(core::system_clock_unix_ms)),
      tokens_(tokens ? std::move(tokens) : std::make_shared<LocalTokenRegistry>()),
      throttle_(config_.throttle) {}

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
  const std::string_view token = core::trim_ascii_whitespace(authorization.substr(kScheme.size()));
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
      // Digests are looked up, not compared byte by byte, so no timing leak arises here.
      std::string digest = token_digest(*token);
      if (tokens_->valid(digest, clock_()))
        return Principal{"session:" + digest, "session"};
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
  issued.access_token = core::random_hex(kTokenBytes);
  issued.expires_in_seconds = config_.session_ttl_seconds;
  // Saturate: a TTL near the configurable maximum would otherwise overflow into the past.
  constexpr std::int64_t kMaxMs = std::numeric_limits<std::int64_t>::max();
  const std::int64_t ttl_ms =
      config_.session_ttl_seconds > kMaxMs / 1000 ? kMaxMs : config_.session_ttl_seconds * 1000;
  issued.expires_unix_ms = ttl_ms > kMaxMs - now ? kMaxMs : now + ttl_ms;
  issued.commit_ticket =
      tokens_->add(token_digest(issued.access_token), issued.expires_unix_ms, now);
  return issued;
}

AuthStats Authenticator::stats() {
  const auto counts = tokens_->counts(clock_());
  return AuthStats{counts.live, counts.issued, auth_failures_.load(), throttle_.delayed(),
                   throttle_.refused()};
}

}  // namespace tau::auth
