// The API description and the dashboard, as the real binary serves them to anyone.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <regex>
#include <string>

#include "support/gateway_process.h"
#include "support/http_client.h"

namespace tau::test {
namespace {

TEST(StaticDocuments, ServedWithoutCredentialsWithTheirTypesAndBrowserHardening) {
  GatewayProcess gateway({"--auth-token", "secret"});
  HttpClient anonymous(gateway.port());

  const auto page = anonymous.get("/dashboard");
  ASSERT_EQ(page.status, 200u);
  EXPECT_EQ(page.headers.at("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(page.headers.at("content-security-policy").find("frame-ancestors 'none'"),
            std::string::npos);
  EXPECT_NE(page.headers.at("content-security-policy").find("default-src 'self'"),
            std::string::npos);
  EXPECT_EQ(page.headers.at("x-content-type-options"), "nosniff");
  EXPECT_EQ(page.headers.at("referrer-policy"), "no-referrer");
  EXPECT_NE(page.body.find("/dashboard/app.js"), std::string::npos);
  // Every response is dated (RFC 9110), so a browser can tell its clock from the gateway's.
  EXPECT_TRUE(std::regex_match(page.headers.at("date"),
                               std::regex(R"([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} )"
                                          R"(\d{2}:\d{2}:\d{2} GMT)")))
      << page.headers.at("date");

  const auto script = anonymous.get("/dashboard/app.js");
  ASSERT_EQ(script.status, 200u);
  EXPECT_EQ(script.headers.at("content-type"), "text/javascript; charset=utf-8");
  EXPECT_FALSE(script.body.empty());
  const auto style = anonymous.get("/dashboard/app.css");
  ASSERT_EQ(style.status, 200u);
  EXPECT_EQ(style.headers.at("content-type"), "text/css; charset=utf-8");

  const auto description = anonymous.get("/gateway/openapi.json");
  ASSERT_EQ(description.status, 200u);
  EXPECT_EQ(description.headers.at("content-type"), "application/json");
  EXPECT_EQ(description.json().at("openapi"), "3.1.0");

  // Nothing else opens without the token.
  EXPECT_EQ(anonymous.get("/dashboard/other.js").status, 404u);
  EXPECT_EQ(anonymous.get("/gateway/status").status, 401u);
}

}  // namespace
}  // namespace tau::test
