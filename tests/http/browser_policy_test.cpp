#include "http/browser_policy.h"

#include <gtest/gtest.h>

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tau::http {
namespace {

using boost::beast::http::field;
using boost::beast::http::verb;

BrowserPolicy policy(std::string bind_host, std::uint16_t bind_port,
                     std::vector<std::string> allowed_hosts = {},
                     std::vector<std::string> cors_origins = {}, bool localhost_dev = false) {
  return BrowserPolicy::make(BrowserPolicyOptions{std::move(bind_host), bind_port,
                                                  std::move(allowed_hosts), std::move(cors_origins),
                                                  localhost_dev});
}

// The default: a loopback bind on 8787.
BrowserPolicy loopback() {
  return policy("127.0.0.1", 8787);
}

bool allowed(const BrowserPolicy& policy, std::string_view host) {
  return !policy.check_host(host).has_value();
}

unsigned refusal_status(const BrowserPolicy& policy, std::string_view host) {
  const auto refusal = policy.check_host(host);
  return refusal ? refusal->status : 0;
}

// --- Host: the DNS-rebinding attack and the loopback defaults -----------------------------------

TEST(BrowserPolicyHost, RebindingHostsAreRefusedOnALoopbackBind) {
  const auto gateway = loopback();
  for (const std::string_view host : {"evil.example", "evil.example:8787"}) {
    const auto refusal = gateway.check_host(host);
    ASSERT_TRUE(refusal.has_value()) << host;
    EXPECT_EQ(refusal->status, 421u) << host;
    EXPECT_EQ(refusal->code, "host_not_allowed") << host;
    EXPECT_NE(refusal->message.find(std::string(host)), std::string::npos) << refusal->message;
  }
}

TEST(BrowserPolicyHost, LoopbackNamesWithThePortAreAllowed) {
  const auto gateway = loopback();
  for (const std::string_view host :
       {"localhost:8787", "127.0.0.1:8787", "[::1]:8787", "LOCALHOST:8787", "LocalHost:8787",
        "[0:0:0:0:0:0:0:1]:8787", "127.0.0.1:08787"}) {
    EXPECT_TRUE(allowed(gateway, host)) << host;
  }
}

TEST(BrowserPolicyHost, AnotherPortIsRefused) {
  const auto gateway = loopback();
  for (const std::string_view host :
       {"localhost:8788", "127.0.0.1:80", "[::1]:1", "127.0.0.1:3000", "localhost:878"}) {
    EXPECT_EQ(refusal_status(gateway, host), 421u) << host;
  }
}

TEST(BrowserPolicyHost, AHostWithoutAPortIsPort80) {
  EXPECT_EQ(refusal_status(loopback(), "localhost"), 421u);
  EXPECT_EQ(refusal_status(loopback(), "127.0.0.1"), 421u);
  const auto on_80 = policy("127.0.0.1", 80);
  EXPECT_TRUE(allowed(on_80, "localhost"));
  EXPECT_TRUE(allowed(on_80, "127.0.0.1"));
  EXPECT_TRUE(allowed(on_80, "[::1]"));
  EXPECT_TRUE(allowed(on_80, "localhost:80"));
  EXPECT_EQ(refusal_status(on_80, "localhost:8787"), 421u);
}

TEST(BrowserPolicyHost, OtherLoopbackAddressesAndNamesAreNotTheGateway) {
  const auto gateway = loopback();
  for (const std::string_view host :
       {"127.0.0.2:8787", "0.0.0.0:8787", "[::]:8787", "localhost.:8787",
        "localhost.localdomain:8787", "[::ffff:127.0.0.1]:8787", "127.1:8787", "2130706433:8787",
        "local%68ost:8787"}) {
    EXPECT_EQ(refusal_status(gateway, host), 421u) << host;
  }
}

TEST(BrowserPolicyHost, TheBindAddressItselfIsAllowed) {
  const auto other_loopback = policy("127.0.0.5", 9000);
  EXPECT_TRUE(allowed(other_loopback, "127.0.0.5:9000"));
  EXPECT_TRUE(allowed(other_loopback, "localhost:9000"));
  EXPECT_TRUE(allowed(other_loopback, "127.0.0.1:9000"));

  const auto v6 = policy("::1", 8787);
  EXPECT_TRUE(allowed(v6, "[::1]:8787"));
  EXPECT_TRUE(allowed(v6, "localhost:8787"));
  EXPECT_TRUE(allowed(v6, "127.0.0.1:8787"));
  EXPECT_TRUE(allowed(policy("[::1]", 8787), "[::1]:8787"));
  EXPECT_TRUE(allowed(policy("localhost", 8787), "127.0.0.1:8787"));

  // A LAN address: only itself, no loopback names.
  const auto lan = policy("10.0.0.11", 8787);
  EXPECT_TRUE(allowed(lan, "10.0.0.11:8787"));
  EXPECT_EQ(refusal_status(lan, "localhost:8787"), 421u);
  EXPECT_EQ(refusal_status(lan, "127.0.0.1:8787"), 421u);
  EXPECT_EQ(refusal_status(lan, "gateway.example.com"), 421u);
  EXPECT_EQ(lan.allowed_hosts(), (std::vector<std::string>{"10.0.0.11:8787"}));
}

TEST(BrowserPolicyHost, DefaultsAreListedForTheLog) {
  EXPECT_EQ(loopback().allowed_hosts(),
            (std::vector<std::string>{"127.0.0.1:8787", "localhost:8787", "[::1]:8787"}));
  EXPECT_EQ(loopback().describe(),
            "allowed hosts: 127.0.0.1:8787, localhost:8787, [::1]:8787; CORS origins: none");
}

// --- Host: wildcard binds ------------------------------------------------------------------------

TEST(BrowserPolicyHost, AWildcardBindWithoutAListAcceptsAnyHost) {
  for (const char* bind : {"0.0.0.0", "::", "[::]"}) {
    const auto gateway = policy(bind, 8787);
    EXPECT_TRUE(gateway.accepts_any_host()) << bind;
    for (const std::string_view host : {"gateway.example.com", "gateway.example.com:443",
                                        "10.0.0.11:8787", "tau_gateways", "evil.example", ""}) {
      EXPECT_TRUE(allowed(gateway, host)) << bind << " " << host;
    }
    EXPECT_EQ(gateway.describe(), "allowed hosts: any; CORS origins: none");
  }
}

TEST(BrowserPolicyHost, AWildcardBindWithAListAcceptsItAndLoopbackOnly) {
  const auto gateway = policy("0.0.0.0", 8787, {"gateway.example.com"});
  EXPECT_FALSE(gateway.accepts_any_host());
  EXPECT_TRUE(allowed(gateway, "gateway.example.com"));
  EXPECT_TRUE(allowed(gateway, "GATEWAY.example.com:443"));
  EXPECT_TRUE(allowed(gateway, "localhost:8787"));
  EXPECT_TRUE(allowed(gateway, "127.0.0.1:8787"));
  EXPECT_EQ(refusal_status(gateway, "evil.example"), 421u);
  EXPECT_EQ(refusal_status(gateway, "10.0.0.11:8787"), 421u);
  // The wildcard address is not a name to reach the gateway by.
  EXPECT_EQ(refusal_status(gateway, "0.0.0.0:8787"), 421u);
  EXPECT_EQ(gateway.allowed_hosts(),
            (std::vector<std::string>{"localhost:8787", "127.0.0.1:8787", "[::1]:8787",
                                      "gateway.example.com"}));
}

TEST(BrowserPolicyHost, LocalhostDevNeverAcceptsAnyHost) {
  // The configuration refuses localhost-dev on a wildcard bind; should one get here anyway, it
  // still answers to loopback names only.
  const auto gateway = policy("0.0.0.0", 8787, {}, {}, /*localhost_dev=*/true);
  EXPECT_FALSE(gateway.accepts_any_host());
  EXPECT_TRUE(allowed(gateway, "localhost:8787"));
  EXPECT_EQ(refusal_status(gateway, "evil.example:8787"), 421u);
  EXPECT_EQ(refusal_status(gateway, ""), 421u);

  const auto dev = policy("127.0.0.1", 8787, {}, {}, /*localhost_dev=*/true);
  EXPECT_TRUE(allowed(dev, "localhost:8787"));
  EXPECT_EQ(refusal_status(dev, "evil.example:8787"), 421u);
}

// --- Host: --allowed-host
// -------------------------------------------------------------------------

TEST(BrowserPolicyHost, AnAllowedHostWithoutAPortMatchesAnyPort) {
  const auto gateway = policy("127.0.0.1", 8787, {"gateway.example.com"});
  EXPECT_TRUE(allowed(gateway, "gateway.example.com"));
  EXPECT_TRUE(allowed(gateway, "gateway.example.com:443"));
  EXPECT_TRUE(allowed(gateway, "gateway.example.com:8787"));
  EXPECT_TRUE(allowed(gateway, "Gateway.Example.COM"));
  EXPECT_EQ(refusal_status(gateway, "other.example.com"), 421u);
  EXPECT_EQ(refusal_status(gateway, "gateway.example.com.evil.example"), 421u);
  // The defaults stay.
  EXPECT_TRUE(allowed(gateway, "localhost:8787"));
}

TEST(BrowserPolicyHost, AnAllowedHostWithAPortMatchesThatPortOnly) {
  const auto gateway =
      policy("127.0.0.1", 8787, {"gateway.example.com:8443", "[2001:db8::1]:9000", "192.0.2.7:80"});
  EXPECT_TRUE(allowed(gateway, "gateway.example.com:8443"));
  EXPECT_EQ(refusal_status(gateway, "gateway.example.com:443"), 421u);
  EXPECT_EQ(refusal_status(gateway, "gateway.example.com"), 421u);  // port 80
  EXPECT_TRUE(allowed(gateway, "[2001:DB8:0::1]:9000"));
  EXPECT_EQ(refusal_status(gateway, "[2001:db8::1]:9001"), 421u);
  EXPECT_TRUE(allowed(gateway, "192.0.2.7"));  // no port: 80
  EXPECT_TRUE(allowed(gateway, "192.0.2.7:80"));
}

TEST(BrowserPolicyHost, AllowedHostValuesAreNormalized) {
  EXPECT_EQ(normalize_allowed_host("Gateway.Example.com"), "gateway.example.com");
  EXPECT_EQ(normalize_allowed_host("gateway.example.com:08443"), "gateway.example.com:8443");
  EXPECT_EQ(normalize_allowed_host("[0:0:0:0:0:0:0:1]:8787"), "[::1]:8787");
  EXPECT_EQ(normalize_allowed_host("[::1]"), "[::1]");
  EXPECT_EQ(normalize_allowed_host("10.0.0.11:8787"), "10.0.0.11:8787");
  EXPECT_EQ(normalize_allowed_host("tau_gateways"), "tau_gateways");
}

TEST(BrowserPolicyHost, BadAllowedHostValuesAreRefused) {
  for (const std::string_view value :
       {"", "*", "*.example.com", "gateway.example.com:", "gateway.example.com:0",
        "gateway.example.com:65536", "user@gateway.example.com", "https://gateway.example.com",
        "gateway.example.com/", "::1", "[::1", "gate way", "gate%77ay.example.com", "a;b",
        "[v1.x]:80", "gateway.example.com:80:80", "gateway.example.com\r\n"}) {
    EXPECT_FALSE(normalize_allowed_host(value).has_value()) << value;
  }
  EXPECT_THROW(policy("127.0.0.1", 8787, {"*"}), std::invalid_argument);
}

TEST(BrowserPolicyHost, TheFactoryRefusesABadBind) {
  EXPECT_THROW(policy("127.0.0.1", 0), std::invalid_argument);
  EXPECT_THROW(policy("not an address", 8787), std::invalid_argument);
  EXPECT_THROW(policy("", 8787), std::invalid_argument);
  EXPECT_THROW(policy("127.0.0.1", 8787, {}, {"null"}), std::invalid_argument);
}

// --- Host: values that are not host[:port] ---------------------------------------------------

TEST(BrowserPolicyHost, AMalformedHostIs400InEveryMode) {
  for (const auto& gateway : {loopback(), policy("0.0.0.0", 8787)}) {
    for (const std::string_view host :
         {"evil.example:8787/path", "user@localhost:8787", "localhost:", "localhost:99999",
          "localhost:0", "local host", "[::1", "localhost:8787 ", "a\r\nX-Injected: 1",
          "localhost:8787:1", "[v1.x]:8787"}) {
      const auto refusal = gateway.check_host(host);
      ASSERT_TRUE(refusal.has_value()) << host;
      EXPECT_EQ(refusal->status, 400u) << host;
      EXPECT_EQ(refusal->code, "malformed_request") << host;
    }
  }
}

TEST(BrowserPolicyHost, AnEmptyHostIsRefusedUnlessAnyHostIsAccepted) {
  const auto refusal = loopback().check_host("");
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->status, 421u);
  EXPECT_EQ(refusal->code, "host_not_allowed");
  EXPECT_TRUE(allowed(policy("0.0.0.0", 8787), ""));
}

TEST(BrowserPolicyHost, TheMessageNeverEchoesControlCharacters) {
  for (const std::string_view host :
       {std::string_view("evil.example\x1b[31m"), std::string_view("evil\x01.example\x7f:8787"),
        std::string_view("evil.example\0:8787", 18), std::string_view("\xc3\xa9vil.example")}) {
    const auto refusal = loopback().check_host(host);
    ASSERT_TRUE(refusal.has_value());
    EXPECT_EQ(refusal->status, 400u);
    EXPECT_NE(refusal->message.find("vil"), std::string::npos) << refusal->message;
    for (const char c : refusal->message) {
      const auto byte = static_cast<unsigned char>(c);
      EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << static_cast<int>(byte);
    }
  }
  const auto long_host = loopback().check_host(std::string(5000, 'a'));
  ASSERT_TRUE(long_host.has_value());
  EXPECT_EQ(long_host->status, 421u);
  EXPECT_LT(long_host->message.size(), 300u);
}

// --- Origin -----------------------------------------------------------------------------------

OriginVerdict verdict(const BrowserPolicy& policy, std::optional<std::string_view> origin,
                      std::string_view host) {
  return policy.check_origin(origin, host).verdict;
}

TEST(BrowserPolicyOrigin, ACrossSiteOriginIsRefused403) {
  const auto check = loopback().check_origin("https://evil.example", "127.0.0.1:8787");
  EXPECT_EQ(check.verdict, OriginVerdict::refused);
  ASSERT_TRUE(check.refusal.has_value());
  EXPECT_EQ(check.refusal->status, 403u);
  EXPECT_EQ(check.refusal->code, "origin_not_allowed");
  EXPECT_NE(check.refusal->message.find("https://evil.example"), std::string::npos);
}

TEST(BrowserPolicyOrigin, NullIsRefused) {
  const auto check = loopback().check_origin("null", "127.0.0.1:8787");
  EXPECT_EQ(check.verdict, OriginVerdict::refused);
  ASSERT_TRUE(check.refusal.has_value());
  EXPECT_EQ(check.refusal->status, 403u);
  // Even when someone lists it: normalize_origin refuses it, so it can never be listed.
  EXPECT_FALSE(normalize_origin("null").has_value());
}

TEST(BrowserPolicyOrigin, NoOriginIsNoOrigin) {
  const auto check = loopback().check_origin(std::nullopt, "127.0.0.1:8787");
  EXPECT_EQ(check.verdict, OriginVerdict::no_origin);
  EXPECT_FALSE(check.refusal.has_value());
  EXPECT_EQ(check.origin, "");
}

TEST(BrowserPolicyOrigin, TheGatewaysOwnOriginIsSameOrigin) {
  const auto gateway = loopback();
  EXPECT_EQ(verdict(gateway, "http://127.0.0.1:8787", "127.0.0.1:8787"),
            OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "http://localhost:8787", "localhost:8787"),
            OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "http://[::1]:8787", "[::1]:8787"), OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "http://localhost:8787", "LOCALHOST:8787"),
            OriginVerdict::same_origin);
  // Behind a TLS proxy that passes the client's Host: https on the default port.
  EXPECT_EQ(verdict(gateway, "https://gateway.example.com", "gateway.example.com"),
            OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "https://gateway.example.com", "gateway.example.com:443"),
            OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "http://gateway.example.com", "gateway.example.com:80"),
            OriginVerdict::same_origin);
  EXPECT_EQ(verdict(gateway, "https://gateway.example.com:8443", "gateway.example.com:8443"),
            OriginVerdict::same_origin);
}

TEST(BrowserPolicyOrigin, AnotherPortOrNameOfTheSameMachineIsCrossOrigin) {
  const auto gateway = loopback();
  // A dev server on another port of the same machine.
  EXPECT_EQ(verdict(gateway, "http://localhost:3000", "localhost:8787"), OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "http://127.0.0.1:8787", "localhost:8787"), OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "http://127.0.0.1", "127.0.0.1:8787"), OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "https://gateway.example.com", "gateway.example.com:8787"),
            OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "http://gateway.example.com", "gateway.example.com:443"),
            OriginVerdict::refused);
  // Only http and https pages can be the gateway's own.
  EXPECT_EQ(verdict(gateway, "ftp://127.0.0.1:8787", "127.0.0.1:8787"), OriginVerdict::refused);
  // A Host the policy would not have allowed gives no same origin either.
  EXPECT_EQ(verdict(gateway, "http://localhost:8787", ""), OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "http://localhost:8787", "user@localhost:8787"),
            OriginVerdict::refused);
}

TEST(BrowserPolicyOrigin, AListedOriginIsCorsAllowed) {
  const auto gateway = policy("127.0.0.1", 8787, {}, {"https://dash.example.com"});
  const auto check = gateway.check_origin("https://dash.example.com", "127.0.0.1:8787");
  EXPECT_EQ(check.verdict, OriginVerdict::cors_allowed);
  EXPECT_EQ(check.origin, "https://dash.example.com");
  EXPECT_FALSE(check.refusal.has_value());
  // Compared as serialized origins.
  EXPECT_EQ(verdict(gateway, "https://dash.example.com:443", "127.0.0.1:8787"),
            OriginVerdict::cors_allowed);
  EXPECT_EQ(verdict(gateway, "https://DASH.example.com", "127.0.0.1:8787"),
            OriginVerdict::cors_allowed);
  // Not another scheme, port or subdomain.
  EXPECT_EQ(verdict(gateway, "http://dash.example.com", "127.0.0.1:8787"), OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "https://dash.example.com:8443", "127.0.0.1:8787"),
            OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "https://evil.dash.example.com", "127.0.0.1:8787"),
            OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "https://dash.example.com.evil.example", "127.0.0.1:8787"),
            OriginVerdict::refused);
  EXPECT_EQ(verdict(gateway, "https://dash.example.com/", "127.0.0.1:8787"),
            OriginVerdict::refused);
  EXPECT_EQ(gateway.describe(),
            "allowed hosts: 127.0.0.1:8787, localhost:8787, [::1]:8787; CORS origins: "
            "https://dash.example.com");
}

TEST(BrowserPolicyOrigin, SeveralListedOrigins) {
  const auto gateway = policy("0.0.0.0", 8787, {}, {"https://a.example", "http://localhost:3000"});
  EXPECT_EQ(verdict(gateway, "https://a.example", "gw.example"), OriginVerdict::cors_allowed);
  EXPECT_EQ(verdict(gateway, "http://localhost:3000", "gw.example"), OriginVerdict::cors_allowed);
  EXPECT_EQ(verdict(gateway, "https://b.example", "gw.example"), OriginVerdict::refused);
  EXPECT_EQ(gateway.cors_origins(),
            (std::vector<std::string>{"https://a.example", "http://localhost:3000"}));
}

TEST(BrowserPolicyOrigin, GarbageOriginsAreRefused) {
  const auto gateway = policy("127.0.0.1", 8787, {}, {"https://dash.example.com"});
  for (const std::string_view origin :
       {"", " ", "dash.example.com", "https://", "https://dash.example.com/path",
        "https://user@dash.example.com", "https://dash.example.com?x", "https://dash.example.com#x",
        "https://dash.example.com, https://evil.example", "https://dash.example.com\r\n", "*",
        "null "}) {
    const auto check = gateway.check_origin(origin, "127.0.0.1:8787");
    EXPECT_EQ(check.verdict, OriginVerdict::refused) << origin;
    ASSERT_TRUE(check.refusal.has_value()) << origin;
    for (const char c : check.refusal->message) {
      const auto byte = static_cast<unsigned char>(c);
      EXPECT_TRUE(byte >= 0x20 && byte < 0x7f) << origin;
    }
  }
}

TEST(BrowserPolicyOrigin, NormalizeOrigin) {
  EXPECT_EQ(normalize_origin("https://dash.example.com"), "https://dash.example.com");
  EXPECT_EQ(normalize_origin("HTTPS://Dash.Example.COM"), "https://dash.example.com");
  EXPECT_EQ(normalize_origin("https://dash.example.com:443"), "https://dash.example.com");
  EXPECT_EQ(normalize_origin("http://dash.example.com:80"), "http://dash.example.com");
  EXPECT_EQ(normalize_origin("https://dash.example.com:80"), "https://dash.example.com:80");
  EXPECT_EQ(normalize_origin("http://dash.example.com:443"), "http://dash.example.com:443");
  EXPECT_EQ(normalize_origin("http://localhost:03000"), "http://localhost:3000");
  EXPECT_EQ(normalize_origin("http://[0:0::1]:8080"), "http://[::1]:8080");
  EXPECT_EQ(normalize_origin("http://127.0.0.1:8787"), "http://127.0.0.1:8787");
  EXPECT_EQ(normalize_origin("chrome-extension://abcdef"), "chrome-extension://abcdef");
  for (const std::string_view value :
       {"null", "", "https://dash.example.com/", "https://dash.example.com/app",
        "https://dash.example.com?q", "https://dash.example.com#f", "https://u:p@dash.example.com",
        "https://@dash.example.com", "https://dash.example.com:", "https://dash.example.com:0",
        "https://dash.example.com:70000", "dash.example.com", "//dash.example.com", "https:",
        "https://", "https://dash%2eexample.com", "https://*.example.com", "https://[v1.x]"}) {
    EXPECT_FALSE(normalize_origin(value).has_value()) << value;
  }
}

// --- The header adapters ---------------------------------------------------------------------

boost::beast::http::request_header<> request(verb method,
                                             std::vector<std::pair<field, std::string>> headers) {
  boost::beast::http::request_header<> header;
  header.method(method);
  header.target("/gateway/external-coding-agent/sessions");
  header.version(11);
  for (const auto& [name, value] : headers)
    header.insert(name, value);
  return header;
}

TEST(BrowserPolicyHeaders, HostFromTheHeader) {
  const auto gateway = loopback();
  EXPECT_FALSE(gateway.check_host(request(verb::get, {{field::host, "localhost:8787"}})));
  const auto evil = gateway.check_host(request(verb::get, {{field::host, "evil.example:8787"}}));
  ASSERT_TRUE(evil.has_value());
  EXPECT_EQ(evil->status, 421u);
  const auto none = gateway.check_host(request(verb::get, {}));
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->status, 421u);
  const auto two = gateway.check_host(
      request(verb::get, {{field::host, "localhost:8787"}, {field::host, "localhost:8787"}}));
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->status, 400u);
  EXPECT_EQ(two->code, "malformed_request");
}

TEST(BrowserPolicyHeaders, OriginFromTheHeader) {
  const auto gateway = policy("127.0.0.1", 8787, {}, {"https://dash.example.com"});
  EXPECT_EQ(gateway.check_origin(request(verb::get, {{field::host, "127.0.0.1:8787"}})).verdict,
            OriginVerdict::no_origin);
  EXPECT_EQ(gateway
                .check_origin(request(verb::post, {{field::host, "127.0.0.1:8787"},
                                                   {field::origin, "http://127.0.0.1:8787"}}))
                .verdict,
            OriginVerdict::same_origin);
  const auto listed = gateway.check_origin(request(
      verb::post, {{field::host, "127.0.0.1:8787"}, {field::origin, "https://dash.example.com"}}));
  EXPECT_EQ(listed.verdict, OriginVerdict::cors_allowed);
  EXPECT_EQ(listed.origin, "https://dash.example.com");
  EXPECT_EQ(gateway
                .check_origin(request(verb::post, {{field::host, "127.0.0.1:8787"},
                                                   {field::origin, "https://evil.example"}}))
                .verdict,
            OriginVerdict::refused);
  // An empty Origin header is not "no Origin".
  EXPECT_EQ(
      gateway
          .check_origin(request(verb::post, {{field::host, "127.0.0.1:8787"}, {field::origin, ""}}))
          .verdict,
      OriginVerdict::refused);
  const auto two =
      gateway.check_origin(request(verb::post, {{field::host, "127.0.0.1:8787"},
                                                {field::origin, "https://dash.example.com"},
                                                {field::origin, "https://dash.example.com"}}));
  EXPECT_EQ(two.verdict, OriginVerdict::refused);
  ASSERT_TRUE(two.refusal.has_value());
  EXPECT_EQ(two.refusal->status, 403u);
}

// --- CORS answers -----------------------------------------------------------------------------

TEST(BrowserPolicyCors, ResponseHeadersNameTheOriginAndVary) {
  EXPECT_EQ(cors_response_headers("https://dash.example.com"),
            (HeaderList{{"Access-Control-Allow-Origin", "https://dash.example.com"},
                        {"Vary", "Origin"},
                        {"Access-Control-Expose-Headers", "Retry-After"}}));
}

TEST(BrowserPolicyCors, PreflightAnswer) {
  const auto answer = cors_preflight_answer("https://dash.example.com", "GET, POST");
  EXPECT_EQ(answer.status, 204u);
  EXPECT_EQ(
      answer.headers,
      (HeaderList{{"Access-Control-Allow-Origin", "https://dash.example.com"},
                  {"Access-Control-Allow-Methods", "GET, POST"},
                  {"Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID"},
                  {"Access-Control-Max-Age", "600"},
                  {"Vary", "Origin"}}));
}

TEST(BrowserPolicyCors, PreflightIsOptionsWithOriginAndRequestMethod) {
  EXPECT_TRUE(
      is_cors_preflight(request(verb::options, {{field::origin, "https://dash.example.com"},
                                                {field::access_control_request_method, "POST"}})));
  EXPECT_FALSE(
      is_cors_preflight(request(verb::options, {{field::origin, "https://dash.example.com"}})));
  EXPECT_FALSE(
      is_cors_preflight(request(verb::options, {{field::access_control_request_method, "POST"}})));
  EXPECT_FALSE(
      is_cors_preflight(request(verb::post, {{field::origin, "https://dash.example.com"},
                                             {field::access_control_request_method, "POST"}})));
}

TEST(BrowserPolicyCors, ApplyHeadersSetsThemOnAResponse) {
  boost::beast::http::response_header<> response;
  response.set(field::vary, "Accept");
  apply_headers(cors_response_headers("https://dash.example.com"), response);
  EXPECT_EQ(response[field::access_control_allow_origin], "https://dash.example.com");
  EXPECT_EQ(response[field::vary], "Origin");
  EXPECT_EQ(response.count(field::vary), 1u);
  EXPECT_EQ(response[field::access_control_expose_headers], "Retry-After");
}

// --- Request bodies ---------------------------------------------------------------------------

TEST(BrowserPolicyBody, JsonMediaTypes) {
  for (const std::string_view type :
       {"application/json", "application/json; charset=utf-8", "Application/JSON",
        "APPLICATION/JSON; CHARSET=UTF-8", "application/json;charset=utf-8",
        "application/json ; charset=utf-8", " application/json ", "application/json\t",
        "application/json; charset=\"utf-8\"", "application/json; foo=bar",
        "application/json; foo=\"a;b\"; charset=utf-8", "application/json; foo=\"\"",
        "application/json; foo=\"a\\\"b\"; charset=UTF-8", "application/json; foo=\"x\" ",
        // A quoted-pair stands for its character (RFC 9110 5.6.4).
        "application/json; charset=\"utf\\-8\""}) {
    EXPECT_TRUE(is_json_media_type(type)) << type;
  }
}

TEST(BrowserPolicyBody, OtherMediaTypes) {
  for (const std::string_view type : {"",
                                      " ",
                                      "text/plain",
                                      "text/plain; charset=utf-8",
                                      "application/x-www-form-urlencoded",
                                      "multipart/form-data; boundary=x",
                                      "application/json-seq",
                                      "application/jsonx",
                                      "application/json+x",
                                      "application/ld+json",
                                      "application / json",
                                      "application/ json",
                                      "application/json;",
                                      "application/json; charset=",
                                      "application/json; charset=latin1",
                                      "application/json; charset=\"utf-8",
                                      "application/json, text/plain",
                                      "application/json x",
                                      "application/json; foo=\"x\" y",
                                      "application/json; charset=\"utf-8\" ;",
                                      "application/json; foo=\"x\"\"",
                                      "text/plain; x=application/json",
                                      "application/javascript",
                                      "json",
                                      "application/*",
                                      "*/*"}) {
    EXPECT_FALSE(is_json_media_type(type)) << type;
  }
}

TEST(BrowserPolicyBody, ABodyAnnouncedWithoutJsonIs415) {
  // The cross-site "simple" POST: text/plain, no preflight.
  const auto refusal = check_body_media_type(
      request(verb::post, {{field::content_type, "text/plain"}, {field::content_length, "27"}}));
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->status, 415u);
  EXPECT_EQ(refusal->code, "unsupported_media_type");
  EXPECT_NE(refusal->message.find("text/plain"), std::string::npos);

  for (const auto& headers : std::vector<std::vector<std::pair<field, std::string>>>{
           {{field::content_length, "2"}},
           {{field::transfer_encoding, "chunked"}},
           {{field::transfer_encoding, "chunked"},
            {field::content_type, "application/x-www-form-urlencoded"}},
           {{field::content_length, "2"},
            {field::content_type, "application/json"},
            {field::content_type, "application/json"}}}) {
    const auto other = check_body_media_type(request(verb::post, headers));
    ASSERT_TRUE(other.has_value());
    EXPECT_EQ(other->status, 415u);
  }
}

TEST(BrowserPolicyBody, NoBodyOrAJsonBodyPasses) {
  EXPECT_FALSE(check_body_media_type(request(verb::post, {})));
  EXPECT_FALSE(check_body_media_type(request(verb::post, {{field::content_length, "0"}})));
  EXPECT_FALSE(check_body_media_type(
      request(verb::post, {{field::content_length, "0"}, {field::content_type, "text/plain"}})));
  EXPECT_FALSE(check_body_media_type(request(
      verb::post,
      {{field::content_length, "27"}, {field::content_type, "application/json; charset=utf-8"}})));
  EXPECT_FALSE(
      check_body_media_type(request(verb::post, {{field::transfer_encoding, "chunked"},
                                                 {field::content_type, "application/json"}})));
}

TEST(BrowserPolicyBody, AnnouncesBody) {
  EXPECT_FALSE(announces_body(request(verb::post, {})));
  EXPECT_FALSE(announces_body(request(verb::post, {{field::content_length, "0"}})));
  EXPECT_TRUE(announces_body(request(verb::post, {{field::content_length, "1"}})));
  EXPECT_TRUE(announces_body(request(verb::post, {{field::transfer_encoding, "chunked"}})));
}

}  // namespace
}  // namespace tau::http
