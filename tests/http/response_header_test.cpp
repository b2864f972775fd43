#include "http/response_header.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

namespace tau::http {
namespace {

namespace beast = boost::beast;
namespace beast_http = boost::beast::http;
using Response = beast_http::response<beast_http::string_body>;

// What Beast's own serializer writes for the header.
std::string beast_header(Response& response) {
  beast_http::response_serializer<beast_http::string_body> serializer{response};
  serializer.split(true);
  std::string head;
  beast::error_code ec;
  while (!ec && !serializer.is_header_done()) {
    serializer.next(ec, [&](beast::error_code&, const auto& buffers) {
      head += beast::buffers_to_string(buffers);
      serializer.consume(beast::buffer_bytes(buffers));
    });
  }
  EXPECT_FALSE(ec);
  return head;
}

std::string rendered(const Response& response) {
  std::string out;
  render_response_header(response.base(), out);
  return out;
}

TEST(RenderResponseHeaderTest, WritesWhatBeastWritesForAJsonAnswer) {
  Response response{beast_http::status::ok, 11};
  response.set(beast_http::field::content_type, "application/json");
  response.set(beast_http::field::cache_control, "no-store");
  response.set(beast_http::field::server, "tau-gateway");
  response.set(beast_http::field::date, "Sat, 05 Dec 2026 19:00:00 GMT");
  response.body() = R"({"a":1})";
  response.keep_alive(true);
  response.prepare_payload();

  EXPECT_EQ(rendered(response), beast_header(response));
  EXPECT_EQ(rendered(response).substr(0, 17), "HTTP/1.1 200 OK\r\n");
}

TEST(RenderResponseHeaderTest, WritesWhatBeastWritesForErrorsCustomFieldsAndHttp10) {
  for (const auto status :
       {beast_http::status::not_found, beast_http::status::too_many_requests,
        beast_http::status::method_not_allowed, beast_http::status::service_unavailable}) {
    for (const unsigned version : {10U, 11U}) {
      Response response{status, version};
      response.set("X-Content-Type-Options", "nosniff");
      response.set(beast_http::field::allow, "GET, HEAD");
      response.insert("Vary", "Origin");
      response.insert("vary", "Accept");  // repeated, in another case: kept as stored
      response.set("Retry-After", "");    // an empty value
      response.keep_alive(false);
      response.prepare_payload();
      EXPECT_EQ(rendered(response), beast_header(response));
    }
  }
}

TEST(RenderResponseHeaderTest, UsesAReasonSetByHandAndStatusesBeastHasNoNameFor) {
  Response custom{beast_http::status::ok, 11};
  custom.reason("Fine");
  EXPECT_EQ(rendered(custom), beast_header(custom));
  EXPECT_EQ(rendered(custom), "HTTP/1.1 200 Fine\r\n\r\n");

  Response unknown;
  unknown.result(599);
  unknown.version(11);
  EXPECT_EQ(rendered(unknown), beast_header(unknown));
}

TEST(RenderResponseHeaderTest, Appends) {
  Response response{beast_http::status::no_content, 11};
  std::string out = "before";
  render_response_header(response.base(), out);
  EXPECT_EQ(out, "before" + beast_header(response));
}

}  // namespace
}  // namespace tau::http
