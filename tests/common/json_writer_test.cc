#include "common/json_writer.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

std::string Quoted(std::string_view s) {
  std::string out = "x";
  AppendJsonString(&out, s);
  return out;
}

TEST(JsonWriterTest, EscapesQuotesBackslashesAndControlsBetweenPlainRuns) {
  EXPECT_EQ(Quoted(""), "x\"\"");
  EXPECT_EQ(Quoted("plain text"), "x\"plain text\"");
  EXPECT_EQ(Quoted("a\"b\\c"), "x\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quoted("\"start"), "x\"\\\"start\"");
  EXPECT_EQ(Quoted("end\n"), "x\"end\\n\"");
  EXPECT_EQ(Quoted("t\tr\r\x01z"), "x\"t\\tr\\r\\u0001z\"");
  EXPECT_EQ(Quoted("caf\xc3\xa9"), "x\"caf\xc3\xa9\"");  // UTF-8 bytes pass through
}

}  // namespace
}  // namespace shoal
