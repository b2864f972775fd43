#include "http/query.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace tau::http {
namespace {

using Segments = std::vector<std::string>;
using Query = std::vector<std::pair<std::string, std::string>>;

// --- parse_request_target ---------------------------------------------------------------------

TEST(ParseRequestTargetTest, SplitsPathIntoSegments) {
  const auto target = parse_request_target("/gateway/external-coding-agent/sessions/s1");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->path_segments,
            (Segments{"gateway", "external-coding-agent", "sessions", "s1"}));
  EXPECT_TRUE(target->query.empty());
}

TEST(ParseRequestTargetTest, RootHasNoSegments) {
  const auto target = parse_request_target("/");

  ASSERT_TRUE(target.has_value());
  EXPECT_TRUE(target->path_segments.empty());
}

TEST(ParseRequestTargetTest, TrailingAndDoubleSlashesGiveEmptySegments) {
  EXPECT_EQ(parse_request_target("/a/b/")->path_segments, (Segments{"a", "b", ""}));
  EXPECT_EQ(parse_request_target("/a//b")->path_segments, (Segments{"a", "", "b"}));
}

// Found by fuzz/fuzz_query (corpus: fuzz/corpus/fuzz_query/dot-prefix): Boost.URL's segments()
// hides a leading "/." (its escape for paths starting with "//"), so "/./healthz" routed as
// "/healthz" while "/a/./b" kept its ".". Dot segments are never resolved, wherever they are.
TEST(ParseRequestTargetTest, DotSegmentsAreKeptAsWrittenEvenAtTheStart) {
  EXPECT_EQ(parse_request_target("/./")->path_segments, (Segments{".", ""}));
  EXPECT_EQ(parse_request_target("/./healthz")->path_segments, (Segments{".", "healthz"}));
  EXPECT_EQ(parse_request_target("/.//a")->path_segments, (Segments{".", "", "a"}));
  EXPECT_EQ(parse_request_target("/a/./b")->path_segments, (Segments{"a", ".", "b"}));
  EXPECT_EQ(parse_request_target("/a/../b")->path_segments, (Segments{"a", "..", "b"}));
  EXPECT_EQ(parse_request_target("/%2e/x")->path_segments, (Segments{".", "x"}));
}

// Plain paths skip Boost.URL's parse; the answer must be the one that parse gives, for every
// character a plain path may hold and for the targets just outside it.
TEST(ParseRequestTargetTest, ThePlainPathFastPathAnswersAsBoostUrlDoes) {
  const std::vector<std::string> targets = {
      "/",
      "//",
      "///",
      "/a",
      "/a/",
      "/a//b",
      "/./a",
      "/..",
      "/.//a",
      "/gateway/external-coding-agent/sessions/eca_0123456789abcdef",
      "/a-b._~c/!$&'()*+,;=/:@x/A9",
      "/a:b@c",
      "/%41",
      "/a%2Fb",
      "/a?",
      "/a?b=c",
      "/a#b",
      "/a b",
      "/a\\b",
      "/a\"b",
      "/a<b>",
      "/a[b]",
      "/a{b}",
      "/a|b",
      "/a^b",
      "/a`b",
      std::string("/a\0b", 4),
      "/caf\xc3\xa9",
      "a",
      "",
      "*",
      "http://x/a",
      "/%",
      "/%4",
      "/%zz"};
  for (const std::string& target : targets) {
    const auto fast = parse_request_target(target);
    const auto reference = parse_request_target_by_boost_url(target);
    ASSERT_EQ(fast.has_value(), reference.has_value()) << target;
    if (fast) {
      EXPECT_EQ(fast->path_segments, reference->path_segments) << target;
      EXPECT_EQ(fast->query, reference->query) << target;
    }
  }
  EXPECT_EQ(parse_request_target("/a-b._~c/!$&'()*+,;=/:@x/A9")->path_segments,
            (Segments{"a-b._~c", "!$&'()*+,;=", ":@x", "A9"}));
  EXPECT_FALSE(parse_request_target("/a b").has_value());
}

TEST(ParseRequestTargetTest, OneSegmentPerSlash) {
  EXPECT_EQ(parse_request_target("//")->path_segments, (Segments{"", ""}));
  EXPECT_EQ(parse_request_target("/./a/?q=/b/c")->path_segments, (Segments{".", "a", ""}));
}

TEST(ParseRequestTargetTest, EncodedSlashStaysInsideItsSegment) {
  const auto target = parse_request_target("/sessions/a%2Fb/close");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->path_segments, (Segments{"sessions", "a/b", "close"}));
}

TEST(ParseRequestTargetTest, PathSegmentsArePercentDecoded) {
  const auto target = parse_request_target("/a%20b/%C3%A9/%25/%3F");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->path_segments, (Segments{"a b", "\xc3\xa9", "%", "?"}));
}

TEST(ParseRequestTargetTest, QueryIsDecodedAndKeepsOrderAndDuplicates) {
  const auto target =
      parse_request_target("/s/stream?after_sequence_id=3&limit=10&note=a%20b%26c%3Dd&limit=20");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->path_segments, (Segments{"s", "stream"}));
  EXPECT_EQ(
      target->query,
      (Query{{"after_sequence_id", "3"}, {"limit", "10"}, {"note", "a b&c=d"}, {"limit", "20"}}));
}

TEST(ParseRequestTargetTest, QueryValueGivesTheFirstValueOfAName) {
  const auto target = parse_request_target("/s?limit=10&flag&empty=&limit=20&a%20b=decoded");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->query_value("limit"), "10");
  EXPECT_EQ(target->query_value("flag"), "");
  EXPECT_EQ(target->query_value("empty"), "");
  EXPECT_EQ(target->query_value("a b"), "decoded");
  EXPECT_EQ(target->query_value("missing"), std::nullopt);
  EXPECT_EQ(target->query_value("LIMIT"), std::nullopt);
}

TEST(ParseRequestTargetTest, EmptyQueryHasNoParameters) {
  const auto target = parse_request_target("/s?");

  ASSERT_TRUE(target.has_value());
  EXPECT_EQ(target->path_segments, Segments{"s"});
  EXPECT_EQ(target->query_value("s"), std::nullopt);
}

TEST(ParseRequestTargetTest, InvalidTargetsAreRefused) {
  for (const char* target : {
           "",                     // empty
           "gateway/status",       // relative
           "*",                    // asterisk form
           "http://host/gateway",  // absolute form
           "/a b",                 // raw space
           "/%zz",                 // bad percent escape in the path
           "/%2",                  // truncated percent escape
           "/s?limit=%zz",         // bad percent escape in the query
           "/s#fragment",          // fragments are not sent in requests
       }) {
    SCOPED_TRACE(target);
    EXPECT_EQ(parse_request_target(target), std::nullopt);
  }
}

// --- parse_unsigned ---------------------------------------------------------------------------

TEST(ParseUnsignedTest, AcceptsPlainDecimalDigits) {
  EXPECT_EQ(parse_unsigned("0"), 0u);
  EXPECT_EQ(parse_unsigned("7"), 7u);
  EXPECT_EQ(parse_unsigned("42"), 42u);
  EXPECT_EQ(parse_unsigned("007"), 7u);
  EXPECT_EQ(parse_unsigned("18446744073709551615"), std::numeric_limits<std::uint64_t>::max());
}

TEST(ParseUnsignedTest, RefusesAnythingElse) {
  for (const char* text : {
           "", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "1_000", "1,000", "abc", "1a", "-0",
           "\xd9\xa1",  // ARABIC-INDIC DIGIT ONE
       }) {
    SCOPED_TRACE(testing::Message() << "text=[" << text << "]");
    EXPECT_EQ(parse_unsigned(text), std::nullopt);
  }
}

TEST(ParseUnsignedTest, RefusesValuesAbove64Bits) {
  EXPECT_EQ(parse_unsigned("18446744073709551616"), std::nullopt);
  EXPECT_EQ(parse_unsigned("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_unsigned("100000000000000000000000000000"), std::nullopt);
}

TEST(ParseUnsignedTest, StopsAtTheViewsEnd) {
  const std::string text = "12345";

  EXPECT_EQ(parse_unsigned(std::string_view(text).substr(0, 2)), 12u);
}

}  // namespace
}  // namespace tau::http
