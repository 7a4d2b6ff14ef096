#include "ingest/quarantine.h"

#include <gtest/gtest.h>

#include <thread>

#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadQuarantine;
using testing_util::WriteTemp;

TEST(QuarantineTest, WritesValidJsonEvenForInvalidUtf8AndTruncatesRaw) {
  std::string path = WriteTemp("q.jsonl", "");
  {
    auto q = Quarantine::Open(path);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    (*q)->Add("a.csv", 7, "email", "not valid UTF-8", std::string("ab\xff\xfe\"\\\n\tc", 9));
    (*q)->Add("a.csv", 9, "", "record too long (5000 bytes)", std::string(5000, 'x'));
    (*q)->Add("b.jsonl", 1, "type", "unknown event type 'foo'", "{\"type\":\"foo\"}");
    (*q)->Add("b.jsonl", 2, "type", "unknown event type 'bar'", "{}");
    EXPECT_TRUE((*q)->Flush().ok());
    EXPECT_EQ((*q)->total(), 4u);
    auto counts = (*q)->CountsByReason();
    ASSERT_EQ(counts.size(), 3u);
    EXPECT_EQ(counts[2].first, "unknown event type");
    EXPECT_EQ(counts[2].second, 2u);
    EXPECT_NE((*q)->Summary().find("4 records quarantined"), std::string::npos);
    // Numbers in a reason do not make kinds of their own.
    (*q)->Add("c.csv", 3, "qty", "negative quantity -3 on an order line", "");
    (*q)->Add("c.csv", 4, "qty", "negative quantity -2.5 on an order line", "");
    counts = (*q)->CountsByReason();
    ASSERT_EQ(counts.size(), 4u);
    EXPECT_EQ(counts[0].first, "negative quantity N on an order line");
    EXPECT_EQ(counts[0].second, 2u);
    EXPECT_EQ(counts[2].first, "record too long (N bytes)");
  }
  auto records = ReadQuarantine(path);
  ASSERT_EQ(records.size(), 6u);
  EXPECT_EQ(records[0].source, "a.csv");
  EXPECT_EQ(records[0].line, 7u);
  EXPECT_EQ(records[0].field, "email");
  EXPECT_EQ(records[0].raw, "ab\xEF\xBF\xBD\xEF\xBF\xBD\"\\\n\tc");  // U+FFFD twice
  EXPECT_EQ(records[1].raw.size(), Quarantine::kMaxRawBytes);
  EXPECT_EQ(records[2].reason, "unknown event type 'foo'");
}

TEST(QuarantineTest, AppendsAndCountsFromThreads) {
  std::string path = WriteTemp("q.jsonl", "{\"source\":\"old\",\"line\":1,\"field\":\"\",\"reason\":\"x\",\"raw\":\"\"}\n");
  {
    auto q = Quarantine::Open(path);
    ASSERT_TRUE(q.ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 5000; ++i) (*q)->Add("s", i + 1, "f", t == 0 ? "a" : "b", "raw");
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ((*q)->total(), 10000u);
  }
  EXPECT_EQ(ReadQuarantine(path).size(), 10001u);  // appended after the existing line
}

TEST(QuarantineTest, CountingOnlyAndUnopenablePath) {
  Quarantine q;
  q.Add("s", 1, "f", "why", "raw");
  EXPECT_EQ(q.total(), 1u);
  EXPECT_TRUE(q.Flush().ok());
  auto bad = Quarantine::Open("/nonexistent-dir/q.jsonl");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("/nonexistent-dir/q.jsonl"), std::string::npos);
}

TEST(QuarantineTest, Utf8Validation) {
  EXPECT_TRUE(IsValidUtf8("plain ascii text that is long enough"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("caf\xE9"));            // Latin-1
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));           // overlong
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));       // surrogate
  EXPECT_FALSE(IsValidUtf8("abc\xE2\x82"));        // truncated
}

}  // namespace
}  // namespace shoal
