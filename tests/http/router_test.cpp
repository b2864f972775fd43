#include "http/router.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "http/query.h"

namespace tau::http {
namespace {

using Segments = std::vector<std::string>;
using TestRouter = Router<std::string>;
using Kind = TestRouter::Match::Kind;

// The router of the gateway's API, with each route's value naming its handler.
TestRouter api_router() {
  TestRouter router;
  router.add(verb::get, "/gateway/status", "status");
  router.add(verb::post, "/gateway/auth/session", "auth_session");
  router.add(verb::post, "/gateway/external-coding-agent/sessions", "open");
  router.add(verb::get, "/gateway/external-coding-agent/sessions/{session_id}", "detail");
  router.add(verb::post, "/gateway/external-coding-agent/sessions/{session_id}/progress",
             "progress");
  router.add(verb::post, "/gateway/external-coding-agent/sessions/{session_id}/followups",
             "followups");
  router.add(verb::post, "/gateway/external-coding-agent/sessions/{session_id}/followups/drain",
             "drain");
  router.add(verb::get, "/gateway/external-coding-agent/sessions/{session_id}/stream", "stream");
  router.add(verb::post, "/gateway/external-coding-agent/sessions/{session_id}/close", "close");
  router.add(verb::post, "/gateway/external-coding-agent/reap", "reap");
  return router;
}

// Matches a raw request target, as the server does: parse, then route the decoded segments.
TestRouter::Match match_target(const TestRouter& router, verb method, std::string_view target) {
  const auto parsed = parse_request_target(target);
  EXPECT_TRUE(parsed.has_value()) << target;
  return router.match(method, parsed ? parsed->path_segments : Segments{});
}

TEST(SplitTemplateTest, SplitsOnSlashesAfterTheLeadingOne) {
  EXPECT_EQ(split_template("/a/{id}/b"), (Segments{"a", "{id}", "b"}));
  EXPECT_EQ(split_template("a/b"), (Segments{"a", "b"}));
  EXPECT_EQ(split_template("/a/"), (Segments{"a", ""}));
  EXPECT_EQ(split_template("/"), (Segments{""}));
}

TEST(MatchSegmentsTest, CapturesParamsInOrder) {
  Segments params{"stale"};

  EXPECT_TRUE(match_segments({"a", "{x}", "b", "{y}"}, {"a", "1", "b", "2"}, params));
  EXPECT_EQ(params, (Segments{"1", "2"}));
}

TEST(MatchSegmentsTest, RefusesOtherLengthsLiteralsAndEmptyParams) {
  Segments params;
  EXPECT_FALSE(match_segments({"a", "{x}"}, {"a"}, params));
  EXPECT_FALSE(match_segments({"a", "{x}"}, {"a", "1", "b"}, params));
  EXPECT_FALSE(match_segments({"a", "{x}"}, {"A", "1"}, params));
  EXPECT_FALSE(match_segments({"a", "{x}"}, {"a", ""}, params));
  // Only a whole segment in braces is a parameter.
  EXPECT_FALSE(match_segments({"a{x}"}, {"a1"}, params));
  EXPECT_TRUE(match_segments({"a{x}"}, {"a{x}"}, params));
  EXPECT_TRUE(params.empty());
}

TEST(RouterTest, FindsLiteralRoute) {
  const TestRouter router = api_router();

  const auto match = match_target(router, verb::get, "/gateway/status");

  ASSERT_EQ(match.kind, Kind::found);
  ASSERT_NE(match.route, nullptr);
  EXPECT_EQ(match.route->value, "status");
  EXPECT_EQ(match.route->method, verb::get);
  EXPECT_EQ(match.route->route_template, "/gateway/status");
  EXPECT_TRUE(match.params.empty());
  EXPECT_TRUE(match.allow.empty());
}

TEST(RouterTest, CapturesPathParameters) {
  const TestRouter router = api_router();

  const auto detail =
      match_target(router, verb::get, "/gateway/external-coding-agent/sessions/eca_123");
  ASSERT_EQ(detail.kind, Kind::found);
  EXPECT_EQ(detail.route->value, "detail");
  EXPECT_EQ(detail.params, Segments{"eca_123"});

  const auto drain = match_target(router, verb::post,
                                  "/gateway/external-coding-agent/sessions/eca_9/followups/drain");
  ASSERT_EQ(drain.kind, Kind::found);
  EXPECT_EQ(drain.route->value, "drain");
  EXPECT_EQ(drain.params, Segments{"eca_9"});
}

TEST(RouterTest, ParameterIsPercentDecodedAndMayContainAnEncodedSlash) {
  const TestRouter router = api_router();

  const auto match =
      match_target(router, verb::post, "/gateway/external-coding-agent/sessions/a%2Fb%20c/close");

  ASSERT_EQ(match.kind, Kind::found);
  EXPECT_EQ(match.route->value, "close");
  EXPECT_EQ(match.params, Segments{"a/b c"});
}

TEST(RouterTest, QueryDoesNotAffectMatching) {
  const TestRouter router = api_router();

  const auto match = match_target(
      router, verb::get, "/gateway/external-coding-agent/sessions/s1/stream?after_sequence_id=3");

  ASSERT_EQ(match.kind, Kind::found);
  EXPECT_EQ(match.route->value, "stream");
  EXPECT_EQ(match.params, Segments{"s1"});
}

TEST(RouterTest, UnknownPathsAreNotFound) {
  const TestRouter router = api_router();

  for (const char* target : {
           "/",
           "/gateway",
           "/gateway/statuses",
           "/Gateway/status",
           "/gateway/status/extra",
           "/gateway/external-coding-agent/sessions/s1/unknown",
           "/gateway/external-coding-agent/sessions/s1/followups/drain/more",
       }) {
    SCOPED_TRACE(target);
    const auto match = match_target(router, verb::get, target);
    EXPECT_EQ(match.kind, Kind::not_found);
    EXPECT_EQ(match.route, nullptr);
    EXPECT_TRUE(match.allow.empty());
  }
}

TEST(RouterTest, TrailingSlashIsNotFound) {
  const TestRouter router = api_router();

  EXPECT_EQ(match_target(router, verb::get, "/gateway/status/").kind, Kind::not_found);
  EXPECT_EQ(match_target(router, verb::post, "/gateway/external-coding-agent/sessions/").kind,
            Kind::not_found);
  EXPECT_EQ(match_target(router, verb::get, "/gateway/external-coding-agent/sessions/s1/").kind,
            Kind::not_found);
}

TEST(RouterTest, EmptySegmentDoesNotMatchAParameter) {
  const TestRouter router = api_router();

  EXPECT_EQ(match_target(router, verb::post, "/gateway/external-coding-agent/sessions//close").kind,
            Kind::not_found);
  EXPECT_EQ(
      match_target(router, verb::post, "/gateway/external-coding-agent/sessions//progress").kind,
      Kind::not_found);
}

TEST(RouterTest, DoubleSlashIsNotFound) {
  const TestRouter router = api_router();

  EXPECT_EQ(match_target(router, verb::get, "//gateway/status").kind, Kind::not_found);
  EXPECT_EQ(match_target(router, verb::get, "/gateway//status").kind, Kind::not_found);
}

TEST(RouterTest, KnownPathWithOtherMethodIsMethodNotAllowedWithAllow) {
  const TestRouter router = api_router();

  const auto status = match_target(router, verb::post, "/gateway/status");
  EXPECT_EQ(status.kind, Kind::method_not_allowed);
  EXPECT_EQ(status.route, nullptr);
  EXPECT_EQ(status.allow, "GET, HEAD");

  const auto close =
      match_target(router, verb::get, "/gateway/external-coding-agent/sessions/s1/close");
  EXPECT_EQ(close.kind, Kind::method_not_allowed);
  EXPECT_EQ(close.allow, "POST");

  const auto detail =
      match_target(router, verb::delete_, "/gateway/external-coding-agent/sessions/s1");
  EXPECT_EQ(detail.kind, Kind::method_not_allowed);
  EXPECT_EQ(detail.allow, "GET, HEAD");
}

TEST(RouterTest, AllowListsEveryMethodOfThePathInRegistrationOrder) {
  TestRouter router;
  router.add(verb::get, "/items/{id}", "get");
  router.add(verb::put, "/items/{id}", "put");
  router.add(verb::delete_, "/items/{id}", "delete");
  router.add(verb::post, "/items", "create");

  const auto match = router.match(verb::patch, {"items", "7"});

  EXPECT_EQ(match.kind, Kind::method_not_allowed);
  EXPECT_EQ(match.allow, "GET, HEAD, PUT, DELETE");
  EXPECT_TRUE(match.params.empty());

  const auto put = router.match(verb::put, {"items", "7"});
  ASSERT_EQ(put.kind, Kind::found);
  EXPECT_EQ(put.route->value, "put");
  EXPECT_EQ(put.params, Segments{"7"});
}

TEST(RouterTest, HeadMatchesEveryGetRouteWithItsParams) {
  const TestRouter router = api_router();

  const auto status = match_target(router, verb::head, "/gateway/status");
  ASSERT_EQ(status.kind, Kind::found);
  EXPECT_EQ(status.route->value, "status");
  EXPECT_EQ(status.route->method, verb::get);  // the GET route itself answers

  const auto detail =
      match_target(router, verb::head, "/gateway/external-coding-agent/sessions/s1");
  ASSERT_EQ(detail.kind, Kind::found);
  EXPECT_EQ(detail.route->value, "detail");
  EXPECT_EQ(detail.params, Segments{"s1"});

  const auto stream =
      match_target(router, verb::head, "/gateway/external-coding-agent/sessions/s1/stream");
  ASSERT_EQ(stream.kind, Kind::found);
  EXPECT_EQ(stream.route->value, "stream");
}

TEST(RouterTest, HeadIsNotAllowedWhereGetIsNot) {
  const TestRouter router = api_router();

  const auto close =
      match_target(router, verb::head, "/gateway/external-coding-agent/sessions/s1/close");
  EXPECT_EQ(close.kind, Kind::method_not_allowed);
  EXPECT_EQ(close.route, nullptr);
  EXPECT_EQ(close.allow, "POST");
  EXPECT_EQ(match_target(router, verb::head, "/nope").kind, Kind::not_found);
  // Only HEAD follows GET: no other method reaches a GET route.
  EXPECT_EQ(match_target(router, verb::options, "/gateway/status").kind, Kind::method_not_allowed);
}

TEST(RouterTest, AllowListsHeadOnceAndTheFirstFittingRouteAnswersHead) {
  TestRouter router;
  router.add(verb::post, "/items", "create");
  router.add(verb::get, "/items", "list");
  router.add(verb::head, "/items", "explicit head");
  router.add(verb::head, "/probe", "probe");

  EXPECT_EQ(router.match(verb::delete_, {"items"}).allow, "POST, GET, HEAD");
  EXPECT_EQ(router.match(verb::get, {"probe"}).allow, "HEAD");
  // The first route that fits wins: here the GET route registered before the HEAD one.
  EXPECT_EQ(router.match(verb::head, {"items"}).route->value, "list");
  EXPECT_EQ(router.match(verb::head, {"probe"}).route->value, "probe");
}

TEST(RouterTest, MethodMatchingRouteIsFoundEvenAfterOthersMatchedThePath) {
  TestRouter router;
  router.add(verb::get, "/items/{id}", "get by id");
  router.add(verb::post, "/items/special", "post special");

  const auto match = router.match(verb::post, {"items", "special"});

  ASSERT_EQ(match.kind, Kind::found);
  EXPECT_EQ(match.route->value, "post special");
  EXPECT_TRUE(match.params.empty());
}

TEST(RouterTest, FirstRegisteredRouteWinsWhenSeveralFit) {
  TestRouter router;
  router.add(verb::get, "/items/new", "literal");
  router.add(verb::get, "/items/{id}", "param");

  EXPECT_EQ(router.match(verb::get, {"items", "new"}).route->value, "literal");
  EXPECT_EQ(router.match(verb::get, {"items", "old"}).route->value, "param");
}

TEST(RouterTest, EmptyRouterFindsNothing) {
  const TestRouter router;

  EXPECT_EQ(router.match(verb::get, {}).kind, Kind::not_found);
  EXPECT_EQ(router.match(verb::get, {"a"}).kind, Kind::not_found);
  EXPECT_TRUE(router.routes().empty());
}

TEST(RouterTest, KeepsRoutesInRegistrationOrder) {
  const TestRouter router = api_router();

  ASSERT_EQ(router.routes().size(), 10u);
  EXPECT_EQ(router.routes().front().value, "status");
  EXPECT_EQ(router.routes().back().value, "reap");
  EXPECT_EQ(router.routes()[3].segments,
            (Segments{"gateway", "external-coding-agent", "sessions", "{session_id}"}));
}

}  // namespace
}  // namespace tau::http
