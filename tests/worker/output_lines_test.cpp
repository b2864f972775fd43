#include "worker/output_lines.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tau::worker {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER

// True when `text` is well-formed UTF-8 (checked independently of the code under test).
bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (b0 <= 0x7F) {
      length = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      length = 2;
    } else if (b0 == 0xE0) {
      length = 3, low = 0xA0;
    } else if (b0 == 0xED) {
      length = 3, high = 0x9F;
    } else if (b0 >= 0xE1 && b0 <= 0xEF) {
      length = 3;
    } else if (b0 == 0xF0) {
      length = 4, low = 0x90;
    } else if (b0 == 0xF4) {
      length = 4, high = 0x8F;
    } else if (b0 >= 0xF1 && b0 <= 0xF3) {
      length = 4;
    } else {
      return false;
    }
    if (i + length > text.size())
      return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      const unsigned char lo = k == 1 ? low : 0x80;
      const unsigned char hi = k == 1 ? high : 0xBF;
      if (b < lo || b > hi)
        return false;
    }
    i += length;
  }
  return true;
}

std::string repeat(std::string_view piece, std::size_t times) {
  std::string result;
  for (std::size_t i = 0; i < times; ++i)
    result.append(piece);
  return result;
}

// --- sanitize_utf8 --------------------------------------------------------------------------

TEST(SanitizeUtf8, EmptyStaysEmpty) {
  EXPECT_EQ(sanitize_utf8(""), "");
}

TEST(SanitizeUtf8, AsciiIsKeptByteIdentical) {
  const std::string ascii = "hello, world! {\"json\": [1, 2, 3]}\t~\x01\x7F";
  EXPECT_EQ(sanitize_utf8(ascii), ascii);
}

TEST(SanitizeUtf8, NulBytesAreKept) {
  const std::string with_nul("a\0b", 3);
  EXPECT_EQ(sanitize_utf8(with_nul), with_nul);
}

TEST(SanitizeUtf8, MultibyteCharactersAreKeptByteIdentical) {
  const std::string text =
      "caf\xC3\xA9 "               // é (2 bytes)
      "\xE2\x82\xAC "              // € (3 bytes)
      "\xE6\x97\xA5\xE6\x9C\xAC "  // 日本 (3 bytes each)
      "\xF0\x9F\x98\x80 "          // 😀 (4 bytes)
      "\xF4\x8F\xBF\xBF";          // U+10FFFF, the largest code point
  EXPECT_EQ(sanitize_utf8(text), text);
}

TEST(SanitizeUtf8, BoundaryCodePointsAreKept) {
  const std::string text =
      "\xC2\x80"           // U+0080, smallest 2-byte
      "\xDF\xBF"           // U+07FF
      "\xE0\xA0\x80"       // U+0800, smallest 3-byte
      "\xED\x9F\xBF"       // U+D7FF, just below the surrogates
      "\xEE\x80\x80"       // U+E000, just above the surrogates
      "\xEF\xBF\xBD"       // U+FFFD itself
      "\xEF\xBF\xBF"       // U+FFFF
      "\xF0\x90\x80\x80";  // U+10000, smallest 4-byte
  EXPECT_EQ(sanitize_utf8(text), text);
}

TEST(SanitizeUtf8, LoneContinuationByteIsReplaced) {
  EXPECT_EQ(sanitize_utf8("a\x80z"), "a" + kFffd + "z");
  EXPECT_EQ(sanitize_utf8("\xBF"), kFffd);
  EXPECT_EQ(sanitize_utf8("\x80\x80ok"), kFffd + kFffd + "ok");
}

TEST(SanitizeUtf8, TruncatedSequenceAtEndIsReplacedBytewise) {
  EXPECT_EQ(sanitize_utf8("ab\xC3"), "ab" + kFffd);
  EXPECT_EQ(sanitize_utf8("ab\xE2\x82"), "ab" + kFffd + kFffd);
  EXPECT_EQ(sanitize_utf8("ab\xF0\x9F\x98"), "ab" + kFffd + kFffd + kFffd);
}

TEST(SanitizeUtf8, TruncatedSequenceFollowedByTextKeepsTheText) {
  EXPECT_EQ(sanitize_utf8("\xE2\x82z"), kFffd + kFffd + "z");
  EXPECT_EQ(sanitize_utf8("\xC3z\xC3\xA9"), kFffd + "z\xC3\xA9");
  // A new lead byte in place of a continuation byte: the broken one is replaced, the new kept.
  EXPECT_EQ(sanitize_utf8("\xE2\xE2\x82\xAC"), kFffd + "\xE2\x82\xAC");
}

TEST(SanitizeUtf8, OverlongFormsAreReplaced) {
  EXPECT_EQ(sanitize_utf8("\xC0\x80x"), kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xC1\xBFx"), kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xE0\x80\x80x"), kFffd + kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xE0\x9F\xBFx"), kFffd + kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xF0\x80\x80\x80x"), kFffd + kFffd + kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xF0\x8F\xBF\xBFx"), kFffd + kFffd + kFffd + kFffd + "x");
}

TEST(SanitizeUtf8, SurrogatesAreReplaced) {
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80x"), kFffd + kFffd + kFffd + "x");  // U+D800
  EXPECT_EQ(sanitize_utf8("\xED\xBF\xBFx"), kFffd + kFffd + kFffd + "x");  // U+DFFF
}

TEST(SanitizeUtf8, CodePointsAboveMaxAreReplaced) {
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80x"), kFffd + kFffd + kFffd + kFffd + "x");
  EXPECT_EQ(sanitize_utf8("\xF5\x80\x80\x80x"), kFffd + kFffd + kFffd + kFffd + "x");
}

TEST(SanitizeUtf8, InvalidLeadBytesAreReplaced) {
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a" + kFffd + "b");
  EXPECT_EQ(sanitize_utf8("\xFE\xF8\xC0"), kFffd + kFffd + kFffd);
}

TEST(SanitizeUtf8, ValidTextAroundBadBytesIsKept) {
  EXPECT_EQ(sanitize_utf8("\xE2\x82\xAC\xFF\xF0\x9F\x98\x80"),
            "\xE2\x82\xAC" + kFffd + "\xF0\x9F\x98\x80");
}

TEST(SanitizeUtf8, ResultIsAlwaysValidForEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b)
    all.push_back(static_cast<char>(b));
  const std::string sanitized = sanitize_utf8(all);
  EXPECT_TRUE(is_valid_utf8(sanitized));
  // 0x00..0x7F kept, each of the 128 other bytes (none starts a complete sequence here) replaced.
  EXPECT_EQ(sanitized, all.substr(0, 128) + repeat(kFffd, 128));
}

// --- LineSplitter ---------------------------------------------------------------------------

class LineSplitterTest : public ::testing::Test {
 protected:
  LineSplitter make(std::size_t max_line_bytes) {
    return LineSplitter(max_line_bytes,
                        [this](std::string line) { lines.push_back(std::move(line)); });
  }

  std::vector<std::string> lines;
};

using Lines = std::vector<std::string>;

TEST_F(LineSplitterTest, SplitsOnLf) {
  auto splitter = make(100);
  splitter.feed("one\ntwo\nthree\n");
  EXPECT_EQ(lines, (Lines{"one", "two", "three"}));
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"one", "two", "three"}));
}

TEST_F(LineSplitterTest, DropsCrBeforeLf) {
  auto splitter = make(100);
  splitter.feed("one\r\ntwo\r\n");
  EXPECT_EQ(lines, (Lines{"one", "two"}));
}

TEST_F(LineSplitterTest, KeepsCrInsideALine) {
  auto splitter = make(100);
  splitter.feed("a\rb\r\n");
  EXPECT_EQ(lines, (Lines{"a\rb"}));
}

TEST_F(LineSplitterTest, CrLfSplitAcrossFeeds) {
  auto splitter = make(100);
  splitter.feed("one\r");
  EXPECT_TRUE(lines.empty());
  splitter.feed("\ntwo");
  EXPECT_EQ(lines, (Lines{"one"}));
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"one", "two"}));
}

TEST_F(LineSplitterTest, SkipsEmptyLines) {
  auto splitter = make(100);
  splitter.feed("\n\na\n\n\nb\n\r\n\r\n\n");
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"a", "b"}));
}

TEST_F(LineSplitterTest, CrLfAloneIsAnEmptyLine) {
  auto splitter = make(100);
  splitter.feed("\r\n");
  splitter.finish();
  EXPECT_TRUE(lines.empty());
}

TEST_F(LineSplitterTest, PartialLinesAcrossFeeds) {
  auto splitter = make(100);
  splitter.feed("hel");
  splitter.feed("lo wo");
  EXPECT_TRUE(lines.empty());
  splitter.feed("rld\nsecond ");
  EXPECT_EQ(lines, (Lines{"hello world"}));
  splitter.feed("line\nthi");
  EXPECT_EQ(lines, (Lines{"hello world", "second line"}));
  splitter.feed("rd\n");
  EXPECT_EQ(lines, (Lines{"hello world", "second line", "third"}));
}

TEST_F(LineSplitterTest, ByteAtATime) {
  auto splitter = make(100);
  const std::string input = "ab\r\n\ncd\xE2\x82\xAC\nlast";
  for (char c : input)
    splitter.feed(std::string_view(&c, 1));
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"ab", "cd\xE2\x82\xAC", "last"}));
}

TEST_F(LineSplitterTest, FeedingNothingDoesNothing) {
  auto splitter = make(100);
  splitter.feed("");
  splitter.finish();
  EXPECT_TRUE(lines.empty());
}

TEST_F(LineSplitterTest, FinishEmitsTheUnterminatedRemainder) {
  auto splitter = make(100);
  splitter.feed("done\nno newline");
  EXPECT_EQ(lines, (Lines{"done"}));
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"done", "no newline"}));
}

TEST_F(LineSplitterTest, FinishDropsATrailingCr) {
  auto splitter = make(100);
  splitter.feed("tail\r");
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"tail"}));
}

TEST_F(LineSplitterTest, FinishTwiceEmitsOnce) {
  auto splitter = make(100);
  splitter.feed("tail");
  splitter.finish();
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"tail"}));
}

TEST_F(LineSplitterTest, LineOfExactlyMaxIsNotSplit) {
  auto splitter = make(8);
  splitter.feed("12345678\n");
  EXPECT_EQ(lines, (Lines{"12345678"}));
}

TEST_F(LineSplitterTest, LongLineIsSplitIntoPiecesOfAtMostMax) {
  auto splitter = make(8);
  splitter.feed("0123456789abcdefghijKLMN\nnext\n");
  EXPECT_EQ(lines, (Lines{"01234567", "89abcdef", "ghijKLMN", "next"}));
}

TEST_F(LineSplitterTest, LongLineWithRemainder) {
  auto splitter = make(10);
  splitter.feed("0123456789abcdefghijXYZ\n");
  EXPECT_EQ(lines, (Lines{"0123456789", "abcdefghij", "XYZ"}));
}

TEST_F(LineSplitterTest, LongLineIsEmittedBeforeItsEnd) {
  // A line that never ends must not grow memory: full pieces leave as soon as they exist.
  auto splitter = make(4);
  splitter.feed("abcde");
  EXPECT_EQ(lines, (Lines{"abcd"}));
  splitter.feed("fghij");
  EXPECT_EQ(lines, (Lines{"abcd", "efgh"}));
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"abcd", "efgh", "ij"}));
}

TEST_F(LineSplitterTest, LongLineEndingInCrLfLeavesNoCrPiece) {
  auto splitter = make(4);
  splitter.feed("abcd\r");
  splitter.feed("\nnext\n");
  EXPECT_EQ(lines, (Lines{"abcd", "next"}));
}

TEST_F(LineSplitterTest, SplitNeverCutsAThreeByteCharacter) {
  auto splitter = make(4);
  splitter.feed("aaa\xE2\x82\xAC\n");  // "aaa€": € would straddle the 4-byte cut
  EXPECT_EQ(lines, (Lines{"aaa", "\xE2\x82\xAC"}));
}

TEST_F(LineSplitterTest, SplitNeverCutsATwoByteCharacter) {
  auto splitter = make(4);
  splitter.feed("abc\xC3\xA9z\n");  // "abcéz"
  EXPECT_EQ(lines, (Lines{"abc", "\xC3\xA9z"}));
}

TEST_F(LineSplitterTest, SplitNeverCutsAFourByteCharacter) {
  auto splitter = make(4);
  splitter.feed("a\xF0\x9F\x98\x80\n");  // "a😀"
  EXPECT_EQ(lines, (Lines{"a", "\xF0\x9F\x98\x80"}));
}

TEST_F(LineSplitterTest, CharacterSplitAcrossFeedsIsKeptWhole) {
  auto splitter = make(4);
  splitter.feed("aa\xE2");
  splitter.feed("\x82");
  splitter.feed("\xAC");
  splitter.feed("b\n");
  EXPECT_EQ(lines, (Lines{"aa",
                          "\xE2\x82\xAC"
                          "b"}));
}

TEST_F(LineSplitterTest, MaxBelowFourIsRaisedToFour) {
  auto splitter = make(1);
  splitter.feed(
      "\xF0\x9F\x98\x80"
      "abcdef\n");
  EXPECT_EQ(lines, (Lines{"\xF0\x9F\x98\x80", "abcd", "ef"}));
}

TEST_F(LineSplitterTest, MultibyteTextSplitsIntoValidPiecesOfAtMostMax) {
  const std::string euros = repeat("\xE2\x82\xAC", 20);  // 60 bytes
  for (std::size_t max = 4; max <= 16; ++max) {
    lines.clear();
    auto splitter = make(max);
    splitter.feed("x" + euros + "\n");
    std::string joined;
    for (const auto& piece : lines) {
      EXPECT_LE(piece.size(), max) << "max " << max;
      EXPECT_TRUE(is_valid_utf8(piece)) << "max " << max;
      EXPECT_FALSE(piece.empty());
      joined += piece;
    }
    EXPECT_EQ(joined, "x" + euros) << "max " << max;
  }
}

TEST_F(LineSplitterTest, MixedWidthTextSplitsLosslessly) {
  const std::string text = repeat("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 25);  // 10 bytes each
  for (std::size_t max : {4u, 5u, 7u, 9u, 13u, 64u}) {
    lines.clear();
    auto splitter = make(max);
    // Fed in awkward chunks so cuts and chunk borders fall everywhere.
    for (std::size_t at = 0; at < text.size(); at += 7)
      splitter.feed(std::string_view(text).substr(at, 7));
    splitter.finish();
    std::string joined;
    for (const auto& piece : lines) {
      EXPECT_LE(piece.size(), max) << "max " << max;
      EXPECT_TRUE(is_valid_utf8(piece)) << "max " << max;
      joined += piece;
    }
    EXPECT_EQ(joined, text) << "max " << max;
  }
}

TEST_F(LineSplitterTest, InvalidBytesAreSanitizedInLines) {
  auto splitter = make(100);
  splitter.feed(
      "ok\xFF"
      "bad\n\xC0\x80\n");
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"ok" + kFffd + "bad", kFffd + kFffd}));
  for (const auto& line : lines)
    EXPECT_TRUE(is_valid_utf8(line));
}

TEST_F(LineSplitterTest, TruncatedCharacterAtEndOfStreamIsReplaced) {
  auto splitter = make(100);
  splitter.feed("end\xE2\x82");
  splitter.finish();
  EXPECT_EQ(lines, (Lines{"end" + kFffd + kFffd}));
}

TEST_F(LineSplitterTest, LongRunOfInvalidBytesStillProgressesAndIsValid) {
  auto splitter = make(4);
  splitter.feed(repeat("\x80", 10) + "\n");
  std::string joined;
  for (const auto& piece : lines) {
    EXPECT_TRUE(is_valid_utf8(piece));
    joined += piece;
  }
  EXPECT_EQ(joined, repeat(kFffd, 10));
}

TEST_F(LineSplitterTest, ManyLinesInOneFeed) {
  auto splitter = make(100);
  std::string input;
  for (int i = 1; i <= 1000; ++i)
    input += std::to_string(i) + "\n";
  splitter.feed(input);
  ASSERT_EQ(lines.size(), 1000u);
  for (int i = 1; i <= 1000; ++i)
    EXPECT_EQ(lines[static_cast<std::size_t>(i - 1)], std::to_string(i));
}

}  // namespace
}  // namespace tau::worker
