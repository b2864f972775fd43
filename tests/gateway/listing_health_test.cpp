// Session listing and the health probes, against the real binary.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

namespace json = boost::json;

std::vector<std::string> listed_ids(const HttpResponse& response) {
  std::vector<std::string> ids;
  const json::value body = response.json();  // kept alive for the loop
  for (const auto& session : body.at("sessions").as_array())
    ids.emplace_back(session.at("session_id").as_string());
  return ids;
}

TEST(Listing, NewestActivityFirstWithFiltersAndCursorPages) {
  GatewayProcess gateway;
  HttpClient client(gateway.port());
  const std::string first = open_session(client, "repo-a");
  const std::string second = open_session(client, "repo-b");
  const std::string third = open_session(client, "repo-c");
  ASSERT_EQ(client.post(session_path(second, "/close"), "").status, 200u);
  ASSERT_EQ(client.post(session_path(first, "/progress"), json_body({{"message", "hi"}})).status,
            200u);

  const auto all = client.get(kSessions);
  ASSERT_EQ(all.status, 200u) << all.body;
  const auto ids = listed_ids(all);
  ASSERT_EQ(ids.size(), 3u);
  // Newest activity first; sessions active in the same millisecond by descending id.
  const json::value body = all.json();
  const auto& sessions = body.at("sessions").as_array();
  for (std::size_t i = 1; i < sessions.size(); ++i) {
    const auto newer = sessions[i - 1].at("last_activity_unix_ms").as_int64();
    const auto older = sessions[i].at("last_activity_unix_ms").as_int64();
    EXPECT_GE(newer, older);
    if (newer == older) {
      EXPECT_GT(sessions[i - 1].at("session_id").as_string(),
                sessions[i].at("session_id").as_string());
    }
  }
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()),
            (std::set<std::string>{first, second, third}));
  EXPECT_TRUE(all.json().at("next_cursor").is_null());

  EXPECT_EQ(listed_ids(client.get(kSessions + "?status=closed")), std::vector<std::string>{second});
  EXPECT_EQ(listed_ids(client.get(kSessions + "?workspace_id=repo-c")),
            std::vector<std::string>{third});
  EXPECT_TRUE(listed_ids(client.get(kSessions + "?workspace_id=nope")).empty());

  // Pages of one, following next_cursor, give every session once and in the same order.
  std::vector<std::string> paged;
  std::string target = kSessions + "?limit=1";
  for (int page = 0; page < 10; ++page) {
    const auto response = client.get(target);
    ASSERT_EQ(response.status, 200u) << response.body;
    for (const auto& id : listed_ids(response))
      paged.push_back(id);
    const json::value next = response.json().at("next_cursor");
    if (next.is_null())
      break;
    target = kSessions + "?limit=1&cursor=" + std::string(next.as_string());
  }
  EXPECT_EQ(paged, ids);
}

TEST(Listing, RefusesBadQueriesAndNeedsAuth) {
  GatewayProcess gateway({"--auth-token", "secret-token"});
  HttpClient client(gateway.port(), "secret-token");
  EXPECT_EQ(client.get(kSessions + "?status=sleeping").error_code(), "invalid_status");
  EXPECT_EQ(client.get(kSessions + "?limit=0").error_code(), "invalid_limit");
  EXPECT_EQ(client.get(kSessions + "?limit=1001").error_code(), "invalid_limit");
  EXPECT_EQ(client.get(kSessions + "?cursor=abc").error_code(), "invalid_cursor");
  EXPECT_EQ(client.get(kSessions + "?cursor=12.").error_code(), "invalid_cursor");
  EXPECT_EQ(HttpClient(gateway.port()).get(kSessions).status, 401u);
  EXPECT_EQ(client.get(kSessions).status, 200u);
}

TEST(Health, ProbesNeedNoTokenAndAreNeverRateLimited) {
  GatewayProcess gateway({"--auth-token", "secret-token", "--rate-limit-max-requests", "1"});
  HttpClient anonymous(gateway.port());
  for (int i = 0; i < 3; ++i) {
    const auto health = anonymous.get("/healthz");
    EXPECT_EQ(health.status, 200u) << health.body;
    EXPECT_EQ(health.json().at("status"), "ok");
    const auto ready = anonymous.get("/readyz");
    EXPECT_EQ(ready.status, 200u) << ready.body;
    EXPECT_EQ(ready.json().at("status"), "ready");
  }
  EXPECT_EQ(anonymous.get("/gateway/status").status, 401u);
  EXPECT_EQ(anonymous.post("/healthz", "").status, 405u);
}

}  // namespace
}  // namespace tau::test
