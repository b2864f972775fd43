#include "auth/authenticator.h"
#include "store/memory_store.h"

#include <gtest/gtest.h>

#include "support/manual_clock.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <variant>

namespace tau::auth {
namespace {

using test::ManualClock;

constexpr std::int64_t kStartMs = 1'700'000'000'000;
constexpr std::int64_t kTtlSeconds = 60;

AuthConfig token_config(std::string token) {
  AuthConfig config;
  config.mode = AuthMode::token;
  config.token = std::move(token);
  return config;
}

AuthConfig password_config(std::string password) {
  AuthConfig config;
  config.mode = AuthMode::password_session;
  config.password = std::move(password);
  config.session_ttl_seconds = kTtlSeconds;
  return config;
}

AuthConfig localhost_dev_config() {
  AuthConfig config;
  config.mode = AuthMode::localhost_dev;
  return config;
}

bool is_lower_hex(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool authorized(const std::variant<Principal, AuthFailure>& result) {
  return std::holds_alternative<Principal>(result);
}

// --- constant_time_equals ---------------------------------------------------------------------

TEST(ConstantTimeEqualsTest, EqualStringsMatch) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("s3cret", "s3cret"));
}

TEST(ConstantTimeEqualsTest, AnyDifferenceIsAMismatch) {
  EXPECT_FALSE(constant_time_equals("s3cret", "S3cret"));  // first byte
  EXPECT_FALSE(constant_time_equals("s3cret", "s3creT"));  // last byte
  EXPECT_FALSE(constant_time_equals("s3cret", "s3cre"));   // prefix
  EXPECT_FALSE(constant_time_equals("s3cre", "s3cret"));
  EXPECT_FALSE(constant_time_equals("", "x"));
  EXPECT_FALSE(constant_time_equals("x", ""));
}

TEST(ConstantTimeEqualsTest, TrailingNulBytesAreNotPadding) {
  const std::string_view with_nul("abc\0", 4);
  EXPECT_FALSE(constant_time_equals("abc", with_nul));
  EXPECT_FALSE(constant_time_equals(with_nul, "abc"));
  EXPECT_FALSE(constant_time_equals("", std::string_view("\0", 1)));
  EXPECT_TRUE(constant_time_equals(with_nul, std::string_view("abc\0", 4)));
}

// --- mode names -------------------------------------------------------------------------------

TEST(AuthModeTest, NamesRoundTrip) {
  EXPECT_EQ(to_string(AuthMode::token), "token");
  EXPECT_EQ(to_string(AuthMode::password_session), "password-session");
  EXPECT_EQ(to_string(AuthMode::localhost_dev), "localhost-dev");
  for (AuthMode mode : {AuthMode::token, AuthMode::password_session, AuthMode::localhost_dev}) {
    EXPECT_EQ(auth_mode_from_string(to_string(mode)), mode);
  }
  EXPECT_EQ(auth_mode_from_string("password_session"), std::nullopt);
  EXPECT_EQ(auth_mode_from_string("Token"), std::nullopt);
  EXPECT_EQ(auth_mode_from_string(""), std::nullopt);
}

TEST(AuthFailureTest, Names) {
  EXPECT_EQ(to_string(AuthFailure::unauthorized), "unauthorized");
  EXPECT_EQ(to_string(AuthFailure::invalid_credentials), "invalid_credentials");
  EXPECT_EQ(to_string(AuthFailure::auth_mode_mismatch), "auth_mode_mismatch");
}

// --- token mode -------------------------------------------------------------------------------

TEST(TokenModeTest, AcceptsTheBearerTokenWithAnySchemeCase) {
  ManualClock clock{kStartMs};
  Authenticator auth(token_config("tok-123"), clock.as_clock());

  for (const char* header :
       {"Bearer tok-123", "bearer tok-123", "BEARER tok-123", "bEaReR tok-123"}) {
    SCOPED_TRACE(header);
    const auto result = auth.authorize(header);
    ASSERT_TRUE(authorized(result));
    EXPECT_EQ(std::get<Principal>(result).kind, "token");
  }
  EXPECT_EQ(auth.stats().auth_failures, 0u);
  EXPECT_EQ(auth.mode(), AuthMode::token);
}

TEST(TokenModeTest, RefusesWrongOrMissingCredentialsAndCountsFailures) {
  ManualClock clock{kStartMs};
  Authenticator auth(token_config("tok-123"), clock.as_clock());
  const std::vector<std::string> headers{
      "",                 // no Authorization header
      "Bearer",           // scheme only
      "Bearer ",          // empty token
      "Bearer    ",       // blank token
      "Bearer tok-12",    // prefix of the token
      "Bearer tok-1234",  // token plus more
      "Bearer TOK-123",   // tokens are case-sensitive
      "Bearer wrong",     // another token
      "Basic tok-123",    // another scheme
      "Bearertok-123",    // no space after the scheme
      "tok-123",          // no scheme
      "Token tok-123",    // unknown scheme
      "Bearer: tok-123",  // not the scheme syntax
  };

  for (const std::string& header : headers) {
    SCOPED_TRACE("Authorization: [" + header + "]");
    const auto result = auth.authorize(header);
    ASSERT_FALSE(authorized(result));
    EXPECT_EQ(std::get<AuthFailure>(result), AuthFailure::unauthorized);
  }
  EXPECT_EQ(auth.stats().auth_failures, headers.size());
  EXPECT_EQ(auth.stats().total_sessions_issued, 0u);
}

TEST(TokenModeTest, IssuingSessionsIsAModeMismatch) {
  ManualClock clock{kStartMs};
  Authenticator auth(token_config("tok-123"), clock.as_clock());

  const auto result = auth.issue_session("tok-123");

  ASSERT_TRUE(std::holds_alternative<AuthFailure>(result));
  EXPECT_EQ(std::get<AuthFailure>(result), AuthFailure::auth_mode_mismatch);
  EXPECT_EQ(auth.stats().total_sessions_issued, 0u);
  EXPECT_EQ(auth.stats().active_sessions, 0u);
}

// --- localhost-dev mode -----------------------------------------------------------------------

TEST(LocalhostDevModeTest, AuthorizesEveryRequestAsOnePrincipal) {
  ManualClock clock{kStartMs};
  Authenticator auth(localhost_dev_config(), clock.as_clock());

  for (const char* header : {"", "Bearer anything", "garbage"}) {
    SCOPED_TRACE(header);
    const auto result = auth.authorize(header);
    ASSERT_TRUE(authorized(result));
    EXPECT_EQ(std::get<Principal>(result).kind, "localhost-dev");
    EXPECT_EQ(std::get<Principal>(result).key, "localhost-dev");
  }
  EXPECT_EQ(auth.stats().auth_failures, 0u);
}

TEST(LocalhostDevModeTest, IssuingSessionsIsAModeMismatch) {
  ManualClock clock{kStartMs};
  Authenticator auth(localhost_dev_config(), clock.as_clock());

  const auto result = auth.issue_session("");

  ASSERT_TRUE(std::holds_alternative<AuthFailure>(result));
  EXPECT_EQ(std::get<AuthFailure>(result), AuthFailure::auth_mode_mismatch);
  EXPECT_EQ(auth.stats().total_sessions_issued, 0u);
}

// --- password-session mode --------------------------------------------------------------------

class PasswordSessionTest : public ::testing::Test {
 protected:
  // Issues a token with the right password, failing the test if that does not work.
  IssuedToken issue() {
    auto result = auth_.issue_session("hunter2");
    EXPECT_TRUE(std::holds_alternative<IssuedToken>(result));
    if (!std::holds_alternative<IssuedToken>(result))
      return {};
    return std::get<IssuedToken>(result);
  }

  ManualClock clock_{kStartMs};
  Authenticator auth_{password_config("hunter2"), clock_.as_clock()};
};

TEST_F(PasswordSessionTest, WrongPasswordIsInvalidCredentials) {
  for (const char* password : {"", "hunter", "hunter22", "Hunter2", "Bearer hunter2"}) {
    SCOPED_TRACE(password);
    const auto result = auth_.issue_session(password);
    ASSERT_TRUE(std::holds_alternative<AuthFailure>(result));
    EXPECT_EQ(std::get<AuthFailure>(result), AuthFailure::invalid_credentials);
  }
  const AuthStats stats = auth_.stats();
  EXPECT_EQ(stats.auth_failures, 5u);
  EXPECT_EQ(stats.total_sessions_issued, 0u);
  EXPECT_EQ(stats.active_sessions, 0u);
}

TEST_F(PasswordSessionTest, IssuedTokensAreDistinct64HexCharsWithExpiry) {
  const IssuedToken first = issue();
  const IssuedToken second = issue();

  for (const IssuedToken& token : {first, second}) {
    EXPECT_EQ(token.access_token.size(), 64u) << token.access_token;
    EXPECT_TRUE(is_lower_hex(token.access_token)) << token.access_token;
    EXPECT_EQ(token.expires_in_seconds, kTtlSeconds);
    EXPECT_EQ(token.expires_unix_ms, kStartMs + kTtlSeconds * 1000);
  }
  EXPECT_NE(first.access_token, second.access_token);
  EXPECT_EQ(auth_.session_ttl_seconds(), kTtlSeconds);
  EXPECT_EQ(auth_.mode(), AuthMode::password_session);
}

TEST_F(PasswordSessionTest, ManyIssuedTokensAreAllDistinct) {
  std::set<std::string> tokens;
  for (int i = 0; i < 200; ++i)
    tokens.insert(issue().access_token);

  EXPECT_EQ(tokens.size(), 200u);
}

TEST_F(PasswordSessionTest, ExpiryIsMeasuredFromIssueTime) {
  clock_.set(kStartMs + 12'345);

  EXPECT_EQ(issue().expires_unix_ms, kStartMs + 12'345 + kTtlSeconds * 1000);
}

TEST_F(PasswordSessionTest, TokenWorksUntilItsExpiryAndNotAtOrAfterIt) {
  const IssuedToken token = issue();
  const std::string header = "Bearer " + token.access_token;

  clock_.set(token.expires_unix_ms - 1);
  const auto before = auth_.authorize(header);
  ASSERT_TRUE(authorized(before));
  EXPECT_EQ(std::get<Principal>(before).kind, "session");

  clock_.set(token.expires_unix_ms);
  const auto at_expiry = auth_.authorize(header);
  ASSERT_FALSE(authorized(at_expiry));
  EXPECT_EQ(std::get<AuthFailure>(at_expiry), AuthFailure::unauthorized);

  clock_.set(token.expires_unix_ms + 1);
  EXPECT_FALSE(authorized(auth_.authorize(header)));
  EXPECT_EQ(auth_.stats().auth_failures, 2u);
}

TEST_F(PasswordSessionTest, ExpiredTokenStaysInvalidEvenIfTheClockGoesBack) {
  const IssuedToken token = issue();
  const std::string header = "Bearer " + token.access_token;
  clock_.set(token.expires_unix_ms);
  ASSERT_FALSE(authorized(auth_.authorize(header)));

  clock_.set(kStartMs);

  EXPECT_FALSE(authorized(auth_.authorize(header)));
}

TEST_F(PasswordSessionTest, SchemeIsCaseInsensitiveForSessionTokensToo) {
  const IssuedToken token = issue();

  EXPECT_TRUE(authorized(auth_.authorize("bearer " + token.access_token)));
  EXPECT_TRUE(authorized(auth_.authorize("BEARER " + token.access_token)));
}

TEST_F(PasswordSessionTest, OnlyIssuedTokensAuthorize) {
  const IssuedToken token = issue();
  std::string altered = token.access_token;
  altered.back() = altered.back() == '0' ? '1' : '0';

  for (const std::string& header :
       {std::string(), std::string("Bearer hunter2"), "Bearer " + altered,
        "Bearer " + token.access_token + "0", "Bearer " + token.access_token.substr(1),
        "Basic " + token.access_token, token.access_token}) {
    SCOPED_TRACE("Authorization: [" + header + "]");
    const auto result = auth_.authorize(header);
    ASSERT_FALSE(authorized(result));
    EXPECT_EQ(std::get<AuthFailure>(result), AuthFailure::unauthorized);
  }
  EXPECT_EQ(auth_.stats().auth_failures, 7u);
}

TEST_F(PasswordSessionTest, EachTokenIsItsOwnPrincipal) {
  const IssuedToken first = issue();
  const IssuedToken second = issue();

  const auto a = auth_.authorize("Bearer " + first.access_token);
  const auto b = auth_.authorize("Bearer " + second.access_token);

  ASSERT_TRUE(authorized(a));
  ASSERT_TRUE(authorized(b));
  EXPECT_NE(std::get<Principal>(a).key, std::get<Principal>(b).key);
  EXPECT_EQ(std::get<Principal>(a).key,
            std::get<Principal>(auth_.authorize("Bearer " + first.access_token)).key);
}

TEST_F(PasswordSessionTest, StatsCountActiveAndIssuedSessions) {
  EXPECT_EQ(auth_.stats().active_sessions, 0u);
  issue();
  clock_.set(kStartMs + 30'000);
  issue();
  issue();

  AuthStats stats = auth_.stats();
  EXPECT_EQ(stats.active_sessions, 3u);
  EXPECT_EQ(stats.total_sessions_issued, 3u);
  EXPECT_EQ(stats.auth_failures, 0u);

  // The first token expires; the two later ones live 30 s longer.
  clock_.set(kStartMs + kTtlSeconds * 1000);
  stats = auth_.stats();
  EXPECT_EQ(stats.active_sessions, 2u);
  EXPECT_EQ(stats.total_sessions_issued, 3u);

  clock_.set(kStartMs + 30'000 + kTtlSeconds * 1000);
  stats = auth_.stats();
  EXPECT_EQ(stats.active_sessions, 0u);
  EXPECT_EQ(stats.total_sessions_issued, 3u);
}

TEST(PasswordSessionLongTtlTest, LongestConfigurableTtlDoesNotOverflowTheExpiry) {
  // The configuration accepts TTLs up to INT64_MAX / 1000 seconds; adding that to the current
  // time must not wrap around into the past.
  ManualClock clock{kStartMs};
  AuthConfig config = password_config("hunter2");
  config.session_ttl_seconds = std::numeric_limits<std::int64_t>::max() / 1000;
  Authenticator auth(config, clock.as_clock());

  const auto issued = auth.issue_session("hunter2");

  ASSERT_TRUE(std::holds_alternative<IssuedToken>(issued));
  const IssuedToken& token = std::get<IssuedToken>(issued);
  EXPECT_GT(token.expires_unix_ms, kStartMs);
  EXPECT_TRUE(authorized(auth.authorize("Bearer " + token.access_token)));
  EXPECT_EQ(auth.stats().active_sessions, 1u);
}

TEST(PasswordSessionStoreTest, IssuedTokensSurviveARestartUntilTheyExpire) {
  ManualClock clock{kStartMs};
  auto store = std::make_shared<store::MemoryStore>();
  std::string token;
  {
    Authenticator before(password_config("hunter2"), clock.as_clock(),
                         std::make_shared<LocalTokenRegistry>(store));
    const auto issued = before.issue_session("hunter2");
    ASSERT_TRUE(std::holds_alternative<IssuedToken>(issued));
    token = std::get<IssuedToken>(issued).access_token;
    EXPECT_GT(std::get<IssuedToken>(issued).commit_ticket, 0u);
  }
  // The store keeps a digest of the token, never the token itself.
  const auto stored = store->load_tokens();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].token_sha256, token_digest(token));
  EXPECT_EQ(stored[0].token_sha256.find(token), std::string::npos);

  auto restored = std::make_shared<LocalTokenRegistry>(store);
  restored->restore(stored, clock.now());
  Authenticator after(password_config("hunter2"), clock.as_clock(), restored);
  EXPECT_TRUE(authorized(after.authorize("Bearer " + token)));
  EXPECT_FALSE(authorized(after.authorize("Bearer " + token + "x")));

  // Once expired it is refused and deleted from the store as well.
  clock.set(kStartMs + kTtlSeconds * 1000);
  EXPECT_FALSE(authorized(after.authorize("Bearer " + token)));
  EXPECT_TRUE(store->load_tokens().empty());
  auto old_copy = std::make_shared<LocalTokenRegistry>(store);
  old_copy->restore(stored, clock.now());  // an expired token restored from an old copy is dropped
  Authenticator later(password_config("hunter2"), clock.as_clock(), old_copy);
  EXPECT_EQ(later.stats().active_sessions, 0u);
}

TEST(TokenDigestTest, IsTheSha256OfTheToken) {
  EXPECT_EQ(token_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace tau::auth
