#include <gtest/gtest.h>

#include <cmath>

#include "common/time.h"
#include "ingest/reader.h"
#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadAll;
using testing_util::ReadQuarantine;
using testing_util::WriteTemp;

SourceSpec Jsonl(const std::string& path) {
  SourceSpec s;
  s.path = path;
  return s;
}

TEST(JsonlReaderTest, ReadsTheDocumentedExample) {
  EventTypeRegistry registry;
  ASSERT_TRUE(registry.Declare({"review_posted", {"rating"}, {"product_id"}}).ok());
  std::string path = WriteTemp("events.jsonl", R"({"event_id":"o-1001","type":"order","timestamp":"2024-03-05T14:23:11Z","customer_id":"C42","email":"Ann@Example.com","channel":"web","order_id":"1001","currency":"EUR","lines":[{"product_id":"P7","category":"bedding","quantity":2,"unit_price":39.5,"discount":5}]}
{"event_id":"v-77","type":"product_view","timestamp":1709648000,"anonymous_id":"dev-9","product_id":"P7","category":"bedding","price":39.5,"dwell_seconds":42}
{"event_id":"i-5","type":"identify","timestamp":"2024-03-05T14:20:00Z","anonymous_id":"dev-9","customer_id":"C42"}
{"event_id":"r-1","type":"review_posted","timestamp":"2024-03-09","customer_id":"C42","properties":{"rating":5,"product_id":"P7"}}
)");
  Quarantine q;
  auto r = ReadAll(Jsonl(path), registry, &q);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.events.size(), 4u);
  EXPECT_EQ(q.total(), 0u);
  const Event& o = r.events.events[0];
  EXPECT_TRUE(o.Is(EventType::kOrder));
  EXPECT_EQ(o.event_id, "o-1001");
  EXPECT_EQ(o.id_hash, EventIdHash("o-1001"));
  EXPECT_EQ(o.email, "ann@example.com");
  EXPECT_EQ(o.channel, Channel::kWeb);
  EXPECT_EQ(o.timestamp, *ParseIso8601("2024-03-05T14:23:11Z"));
  ASSERT_EQ(o.num_lines, 1u);
  EXPECT_EQ(r.events.Lines(o)[0].product_id, "P7");
  EXPECT_DOUBLE_EQ(o.total, 2 * 39.5 - 5);  // computed from the lines
  EXPECT_EQ(o.source_line, 1u);
  EXPECT_EQ(r.events.sources[o.source_idx], path);
  const Event& v = r.events.events[1];
  EXPECT_TRUE(v.Is(EventType::kProductView));
  EXPECT_EQ(v.timestamp, 1709648000LL * kMicrosPerSecond);
  EXPECT_EQ(v.dwell_seconds, 42);
  EXPECT_EQ(v.price, 39.5);
  const Event& rev = r.events.events[3];
  EXPECT_EQ(registry.Name(rev.type), "review_posted");
  const EventProperty* rating = r.events.FindProp(rev, "rating");
  ASSERT_NE(rating, nullptr);
  EXPECT_TRUE(rating->is_number);
  EXPECT_EQ(rating->number, 5);
  EXPECT_EQ(rev.product_id, "P7");  // built-in field given inside properties
  EXPECT_EQ(rev.source_line, 4u);
  EXPECT_EQ(r.stats.records, 4u);
  EXPECT_EQ(r.stats.events, 4u);
}

TEST(JsonlReaderTest, NormalisesIdsTimesAndExtras) {
  EventTypeRegistry registry;
  std::string path = WriteTemp("e.ndjson",
      "{\"type\":\"purchase\",\"timestamp\":1709648000123,\"customer_id\":17850.0,\"order_id\":\"536365.0\",\"total\":10,\"discount\":1,\"coupon\":\"X\",\"vip\":true,\"meta\":{\"a\":[1,2]}}\n"
      "{\"type\":\"session_start\",\"timestamp\":\"2024-03-05T16:23:11+02:00\",\"customer_id\":\"17850.0\",\"device\":\"iPhone\",\"channel\":\"ios\"}\n"
      "{\"type\":\"cart_add\",\"timestamp\":\"2024-03-05\",\"email\":\"  X@Y.COM \",\"product_id\":123,\"unit_price\":\"4.5\",\"quantity\":2}\n"
      "{\"type\":\"consent\",\"timestamp\":0,\"customer_id\":12345678901234,\"marketing\":\"opt_out\"}\n"
      "{\"type\":\"order\",\"timestamp\":\"2024-01-01\",\"product_id\":\"P1\",\"quantity\":3,\"unit_price\":2}\n");
  Quarantine q;
  auto r = ReadAll(Jsonl(path), registry, &q);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.events.size(), 5u) << q.Summary();
  const Event& a = r.events.events[0];
  EXPECT_TRUE(a.Is(EventType::kOrder));
  EXPECT_EQ(a.timestamp, 1709648000123LL * 1000);  // milliseconds above 10^10
  EXPECT_EQ(a.customer_id, "17850");
  EXPECT_EQ(a.order_id, "536365");
  EXPECT_EQ(a.total, 10);  // given totals are kept
  EXPECT_EQ(r.events.FindProp(a, "coupon")->text, "X");
  EXPECT_EQ(r.events.FindProp(a, "vip")->number, 1);
  EXPECT_EQ(r.events.FindProp(a, "meta")->text, "{\"a\":[1,2]}");
  // An anonymous order: allowed (basket), with a derived id.
  EXPECT_EQ(a.event_id.substr(0, 6), "jsonl:");
  const Event& b = r.events.events[1];
  EXPECT_EQ(b.customer_id, "17850");
  EXPECT_EQ(b.timestamp, *ParseIso8601("2024-03-05T14:23:11Z"));
  EXPECT_EQ(b.device, DeviceClass::kOther);
  EXPECT_EQ(b.channel, Channel::kApp);
  const Event& c = r.events.events[2];
  EXPECT_EQ(c.email, "x@y.com");
  EXPECT_EQ(c.product_id, "123");
  EXPECT_EQ(c.price, 4.5);
  EXPECT_EQ(c.quantity, 2);
  const Event& d = r.events.events[3];
  EXPECT_EQ(d.consent, 0);
  EXPECT_EQ(d.customer_id, "12345678901234");
  const Event& e = r.events.events[4];
  ASSERT_EQ(e.num_lines, 1u);  // a flat one-product order becomes a line
  EXPECT_EQ(e.total, 6);
}

// Every kind of bad record: good ones all come through, bad ones are quarantined with the
// right line, field and reason.
TEST(JsonlReaderTest, MessyFileQuarantinesEveryBadRecordAndKeepsEveryGoodOne) {
  EventTypeRegistry registry;
  std::string good = "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\"}";
  std::string content;
  content += good + "\n";                                                     // 1 good
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\n";  // 2 malformed
  content += "{\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\"}\n";        // 3 missing type
  content += "{\"type\":\"teleport\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\"}\n";  // 4 unknown type
  content += "{\"type\":\"page_view\",\"timestamp\":\"yesterday\",\"customer_id\":\"c\"}\n";  // 5 bad time
  content += "{\"type\":\"order\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\",\"lines\":[{\"product_id\":\"p\",\"quantity\":1},{\"product_id\":\"q\",\"quantity\":-2}]}\n";  // 6 negative
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\xff\"}\n";  // 7 utf8
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\",\"pad\":\"" +
             std::string(10 << 20, 'x') + "\"}\n";                                          // 8 10 MB
  content += "\n";                                                                          // 9 blank
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\"}\n";     // 10 no identifier
  content += "[1,2]\n";                                                    // 11 not an object
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"c\",\"price\":\"abc\"}\n";  // 12 number
  content += good + "\r\n";                                                // 13 CRLF good
  content += "{\"type\":\"page_view\",\"timestamp\":\"2024-01-01\",\"customer_id\":\"d\"}";  // 14 good, no newline
  std::string path = WriteTemp("messy.jsonl", content);
  std::string qpath = WriteTemp("quarantine.jsonl", "");
  ReadStats stats;
  EventBatch events;
  {
    auto q = Quarantine::Open(qpath);
    ASSERT_TRUE(q.ok());
    auto r = ReadAll(Jsonl(path), registry, q->get(), 2);
    ASSERT_TRUE(r.status.ok());
    stats = r.stats;
    events = std::move(r.events);
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events.events[0].source_line, 1u);
  EXPECT_EQ(events.events[1].source_line, 13u);
  EXPECT_EQ(events.events[2].source_line, 14u);
  EXPECT_EQ(events.events[2].customer_id, "d");
  EXPECT_EQ(stats.records, 13u);
  EXPECT_EQ(stats.quarantined, 10u);
  EXPECT_EQ(stats.bytes, content.size());
  auto qs = ReadQuarantine(qpath);
  ASSERT_EQ(qs.size(), 10u);
  struct Want { uint64_t line; const char* field; const char* reason_prefix; };
  const Want want[] = {
      {2, "", "malformed JSON"},
      {3, "type", "missing type"},
      {4, "type", "unknown event type 'teleport'"},
      {5, "timestamp", "unparsable timestamp 'yesterday'"},
      {6, "lines[1].quantity", "negative quantity -2"},
      {7, "", "not valid UTF-8"},
      {8, "", "record too long"},
      {10, "customer_id", "no identifier"},
      {11, "", "expected a JSON object"},
      {12, "price", "not a finite number"},
  };
  for (size_t i = 0; i < qs.size(); ++i) {
    EXPECT_EQ(qs[i].source, path);
    EXPECT_EQ(qs[i].line, want[i].line) << i;
    EXPECT_EQ(qs[i].field, want[i].field) << i;
    EXPECT_EQ(qs[i].reason.rfind(want[i].reason_prefix, 0), 0u) << qs[i].reason;
  }
  EXPECT_LE(qs[7].raw.size(), Quarantine::kMaxRawBytes);
}

TEST(JsonlReaderTest, EmptyFileUnreadableFileAndBom) {
  EventTypeRegistry registry;
  Quarantine q;
  auto empty = ReadAll(Jsonl(WriteTemp("empty.jsonl", "")), registry, &q);
  EXPECT_TRUE(empty.status.ok());
  EXPECT_EQ(empty.events.size(), 0u);
  auto missing = EventReader::Open(Jsonl("/no/such/file.jsonl"), registry, &q);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kIOError);
  EXPECT_NE(missing.status().message().find("/no/such/file.jsonl"), std::string::npos);
  auto bom = ReadAll(Jsonl(WriteTemp("bom.jsonl", "\xEF\xBB\xBF{\"type\":\"search\",\"timestamp\":1,\"customer_id\":\"a\",\"query\":\"q\"}\n")),
                     registry, &q);
  ASSERT_EQ(bom.events.size(), 1u);
  EXPECT_EQ(bom.events.events[0].query, "q");
  EXPECT_EQ(q.total(), 0u);
}

TEST(JsonlReaderTest, DerivedIdsAreDeterministicAndCountDuplicates) {
  EventTypeRegistry registry;
  std::string line = "{\"type\":\"page_view\",\"timestamp\":1,\"customer_id\":\"a\"}\n";
  std::string other = "{\"type\":\"page_view\",\"timestamp\":2,\"customer_id\":\"a\"}\n";
  std::string content = line + other + line + line;
  std::string p1 = WriteTemp("a.jsonl", content);
  std::string p2 = WriteTemp("renamed.json", content);
  Quarantine q;
  auto r1 = ReadAll(Jsonl(p1), registry, &q);
  auto r2 = ReadAll(Jsonl(p2), registry, &q);
  ASSERT_EQ(r1.events.size(), 4u);
  ASSERT_EQ(r2.events.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(r1.events.events[i].event_id, r2.events.events[i].event_id);
    EXPECT_EQ(r1.events.events[i].id_hash, EventIdHash(r1.events.events[i].event_id));
  }
  const auto& ev = r1.events.events;
  EXPECT_EQ(ev[0].event_id.size(), std::string("jsonl:").size() + 16 + 2);
  EXPECT_EQ(ev[0].event_id.substr(ev[0].event_id.size() - 2), ":0");
  EXPECT_EQ(ev[2].event_id.substr(ev[2].event_id.size() - 2), ":1");
  EXPECT_EQ(ev[3].event_id.substr(ev[3].event_id.size() - 2), ":2");
  EXPECT_EQ(ev[0].event_id.substr(0, 23), ev[3].event_id.substr(0, 23));
  EXPECT_NE(ev[0].event_id, ev[1].event_id);
}

TEST(JsonlReaderTest, ReusedBatchStopsGrowingAfterWarmUp) {
  EventTypeRegistry registry;
  std::string content;
  for (int i = 0; i < 20000; ++i) {
    content += "{\"event_id\":\"e" + std::to_string(i) +
               "\",\"type\":\"order\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"customer_id\":\"c" +
               std::to_string(i % 97) + "\",\"lines\":[{\"product_id\":\"p1\",\"quantity\":1,\"unit_price\":2}],\"coupon\":\"x\"}\n";
  }
  Quarantine q;
  auto reader = EventReader::Open(Jsonl(WriteTemp("big.jsonl", content)), registry, &q);
  ASSERT_TRUE(reader.ok());
  EventBatch batch;
  size_t batches = 0, events_cap = 0, lines_cap = 0, props_cap = 0, arena = 0;
  uint64_t total = 0;
  while (true) {
    auto more = (*reader)->Next(&batch, 1000);
    ASSERT_TRUE(more.ok());
    if (!*more) break;
    total += batch.size();
    if (++batches == 2) {
      events_cap = batch.events.capacity();
      lines_cap = batch.lines.capacity();
      props_cap = batch.props.capacity();
      arena = batch.ArenaBytes();
    } else if (batches > 2) {
      EXPECT_EQ(batch.events.capacity(), events_cap);
      EXPECT_EQ(batch.lines.capacity(), lines_cap);
      EXPECT_EQ(batch.props.capacity(), props_cap);
      EXPECT_EQ(batch.ArenaBytes(), arena);
    }
  }
  EXPECT_EQ(total, 20000u);
  EXPECT_EQ(batches, 20u);
  EXPECT_EQ((*reader)->bytes_total(), content.size());
}

}  // namespace
}  // namespace shoal
