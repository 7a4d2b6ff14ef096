#include "common/time.h"

#include <gtest/gtest.h>

namespace shoal {
namespace {

TimeMicros Secs(int64_t s) { return s * kMicrosPerSecond; }

TEST(TimeTest, CivilRoundTrip) {
  for (int64_t days = -800000; days < 800000; days += 997) {
    int64_t y; unsigned m, d;
    CivilFromDays(days, &y, &m, &d);
    EXPECT_EQ(DaysFromCivil(y, m, d), days);
  }
  EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
  EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
}

TEST(TimeTest, Iso8601) {
  EXPECT_EQ(*ParseIso8601("1970-01-02"), Secs(86400));
  EXPECT_EQ(*ParseIso8601("2024-03-05T14:23:11Z"), Secs(1709648591));
  EXPECT_EQ(*ParseIso8601("2024-03-05T16:23:11+02:00"), Secs(1709648591));
  EXPECT_EQ(*ParseIso8601("2024-03-05 09:23:11-0500"), Secs(1709648591));
  EXPECT_EQ(*ParseIso8601("2024-03-05T14:23:11.25Z"), Secs(1709648591) + 250000);
  EXPECT_FALSE(ParseIso8601("2024-02-30").ok());
  EXPECT_FALSE(ParseIso8601("2024-03-05T14:23:11Zjunk").ok());
  EXPECT_FALSE(ParseIso8601("yesterday").ok());
}

TEST(TimeTest, Patterns) {
  EXPECT_EQ(*ParseTimeFormat("19970101", "%Y%m%d"), Secs(852076800));
  EXPECT_EQ(*ParseTimeFormat("12/1/2010 8:26", "%m/%d/%Y %H:%M"), *ParseIso8601("2010-12-01T08:26:00Z"));
  EXPECT_EQ(*ParseTimeFormat("01-Dec-2010 08:26 PM", "%d-%b-%Y %I:%M %p"),
            *ParseIso8601("2010-12-01T20:26:00Z"));
  EXPECT_FALSE(ParseTimeFormat("13/1/2010 8:26", "%m/%d/%Y %H:%M").ok());
  EXPECT_FALSE(TimeParser::Make("%Q").ok());
  EXPECT_FALSE(TimeParser::Make("dd/mm").ok());
}

TEST(TimeTest, AutoDetectsEpochUnits) {
  auto p = *TimeParser::Make("auto");
  EXPECT_EQ(*p.Parse("1709648591"), Secs(1709648591));
  EXPECT_EQ(*p.Parse("1709648591000"), Secs(1709648591));
  EXPECT_EQ(*p.Parse("2024-03-05T14:23:11Z"), Secs(1709648591));
  EXPECT_EQ(*p.Parse("19970101"), Secs(852076800));
  EXPECT_FALSE(p.Parse("3/5/2024").ok());
}

TEST(TimeTest, Format) {
  EXPECT_EQ(FormatIso8601(Secs(1709648591)), "2024-03-05T14:23:11Z");
  EXPECT_EQ(FormatDate(Secs(1709648591)), "2024-03-05");
  EXPECT_EQ(DayOf(-1), -1);
}

}  // namespace
}  // namespace shoal
