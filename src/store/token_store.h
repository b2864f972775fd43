#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/ticket.h"

namespace tau::store {

// A password-session token as stored: only its SHA-256 hex digest, never the token.
struct StoredAuthSession {
  std::string token_sha256;
  std::int64_t expires_unix_ms = 0;
};

// Where password-session tokens are kept across restarts. The local stores implement it beside
// SessionStore, in the same journal (one ticket sequence), so a token is durable in the same
// commit as the session writes around it. Thread-safe; never waits for I/O.
class TokenStore {
 public:
  virtual ~TokenStore() = default;

  // Every token stored, for start-up.
  virtual std::vector<StoredAuthSession> load_tokens() = 0;
  // Saves (or replaces) a token's expiry; the token may be handed out once the ticket is durable.
  virtual Ticket save_token(const std::string& token_sha256, std::int64_t expires_unix_ms) = 0;
  virtual Ticket delete_token(const std::string& token_sha256) = 0;
};

}  // namespace tau::store
