#include <gtest/gtest.h>

#include <boost/url/authority_view.hpp>
#include <boost/url/parse.hpp>
#include <string>
#include <vector>

#include "http/server.h"

namespace tau::http {
namespace {

bool refused_as_a_host(const std::string& host) {
  RequestHeader header;
  header.version(11);
  header.method(beast_http::verb::get);
  header.target("/healthz");
  header.set(beast_http::field::host, host);
  return framing_refusal(header).has_value();
}

// The Host check takes plain names and addresses without Boost.URL's parse; every Host must get
// the answer that parse gives (an authority without userinfo is valid), on both sides of the
// plain characters.
TEST(FramingRefusal, TheHostCheckAnswersAsBoostUrlsAuthorityParseDoes) {
  const std::vector<std::string> hosts = {"",
                                          "a",
                                          "localhost",
                                          "localhost:8787",
                                          "127.0.0.1:8787",
                                          "127.0.0.1:",
                                          ":8787",
                                          ":",
                                          "a-b.c_d~e",
                                          "LOCALHOST:08787",
                                          "a:http",
                                          "a:1:2",
                                          "a::1",
                                          "[::1]:8787",
                                          "[::1]",
                                          "[::1",
                                          "user@a",
                                          "a b",
                                          "a%20b",
                                          "a%2",
                                          "caf\xc3\xa9",
                                          "a!$&'()*+,;=b",
                                          "a/b",
                                          "a?b",
                                          "a#b",
                                          "a:-1",
                                          "a:+1",
                                          "[v1.x]:1",
                                          "1.2.3.4.5",
                                          "999.0.0.1:65536"};
  for (const std::string& host : hosts) {
    const auto authority = boost::urls::parse_authority(host);
    const bool valid = authority && !authority->has_userinfo();
    EXPECT_EQ(refused_as_a_host(host), !valid) << "Host: " << host;
  }
}

}  // namespace
}  // namespace tau::http
