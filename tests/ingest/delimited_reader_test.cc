#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "common/time.h"
#include "ingest/reader.h"
#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadAll;
using testing_util::ReadQuarantine;
using testing_util::WriteTemp;

const char* kCanonicalHeader =
    "event_id,type,timestamp,customer_id,email,anonymous_id,phone,channel,device,order_id,"
    "currency,product_id,category,quantity,unit_price,discount,total,price,dwell_seconds,"
    "campaign_id,session_id,query,referee,topic,marketing";

std::string CanonicalRow(const std::map<std::string, std::string>& values) {
  static const std::vector<std::string> kColumns = {
      "event_id", "type", "timestamp", "customer_id", "email", "anonymous_id", "phone", "channel",
      "device", "order_id", "currency", "product_id", "category", "quantity", "unit_price",
      "discount", "total", "price", "dwell_seconds", "campaign_id", "session_id", "query",
      "referee", "topic", "marketing"};
  std::string row;
  for (size_t i = 0; i < kColumns.size(); ++i) {
    if (i > 0) row += ",";
    auto it = values.find(kColumns[i]);
    if (it != values.end()) row += it->second;
  }
  return row + "\n";
}

SourceSpec Spec(const std::string& path, std::optional<Mapping> mapping = std::nullopt) {
  SourceSpec s;
  s.path = path;
  s.mapping = std::move(mapping);
  return s;
}

Mapping MustMap(const std::string& toml) {
  auto m = Mapping::FromToml(toml, "test.toml");
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return *m;
}

Mapping Recipe(const std::string& name) {
  auto m = Mapping::FromTomlFile(std::string(SHOAL_SOURCE_DIR) + "/recipes/" + name);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return *m;
}

TEST(DelimitedReaderTest, CanonicalCsvLoadsWithoutMapping) {
  std::string content = std::string(kCanonicalHeader) + "\n";
  content += CanonicalRow({{"event_id", "o1"}, {"type", "order"}, {"timestamp", "2024-01-01T10:00:00Z"},
                           {"customer_id", "C1"}, {"channel", "web"}, {"order_id", "1001"},
                           {"currency", "EUR"}, {"product_id", "P1"}, {"category", "cat1"},
                           {"quantity", "2"}, {"unit_price", "10"}, {"discount", "1"}});
  content += CanonicalRow({{"event_id", "o1"}, {"type", "order"}, {"timestamp", "2024-01-01T10:00:00Z"},
                           {"customer_id", "C1"}, {"order_id", "1001"}, {"product_id", "P2"},
                           {"category", "cat2"}, {"quantity", "1"}, {"unit_price", "5"}});
  content += CanonicalRow({{"event_id", "v1"}, {"type", "product_view"}, {"timestamp", "2024-01-01T09:00:00Z"},
                           {"anonymous_id", "anon1"}, {"device", "mobile"}, {"product_id", "P1"},
                           {"category", "cat1"}, {"price", "10"}, {"dwell_seconds", "30"}});
  content += CanonicalRow({{"event_id", "c1"}, {"type", "cart_add"}, {"timestamp", "2024-01-01T09:05:00Z"},
                           {"customer_id", "C1"}, {"product_id", "P1"}, {"quantity", "2"},
                           {"unit_price", "10"}});
  content += CanonicalRow({{"type", "order"}, {"timestamp", "2024-01-02T10:00:00Z"},
                           {"customer_id", "C2"}, {"order_id", "1002"}, {"product_id", "P3"},
                           {"quantity", "1"}, {"unit_price", "7.5"}});
  content += CanonicalRow({{"event_id", "k1"}, {"type", "consent"}, {"timestamp", "2024-01-02"},
                           {"email", "A@B.C"}, {"marketing", "true"}});
  content += CanonicalRow({{"event_id", "o1"}, {"type", "order"}, {"timestamp", "2024-01-01T10:00:00Z"},
                           {"customer_id", "C1"}, {"order_id", "1001"}, {"product_id", "P9"}});
  std::string path = WriteTemp("events.csv", content);
  std::string qpath = WriteTemp("q.jsonl", "");
  EventTypeRegistry registry;
  auto q = Quarantine::Open(qpath);
  ASSERT_TRUE(q.ok());
  for (size_t batch_size : {1, 2, 1000}) {
    auto r = ReadAll(Spec(path), registry, q->get(), batch_size);
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_EQ(r.events.size(), 5u) << batch_size;
    const auto& ev = r.events.events;
    EXPECT_EQ(ev[0].event_id, "o1");
    ASSERT_EQ(ev[0].num_lines, 2u);
    EXPECT_DOUBLE_EQ(ev[0].total, 2 * 10 - 1 + 5);
    EXPECT_EQ(r.events.Lines(ev[0])[1].product_id, "P2");
    EXPECT_EQ(r.events.Lines(ev[0])[0].discount, 1);
    EXPECT_TRUE(ev[0].product_id.empty());  // line fields of an order are not event fields
    EXPECT_EQ(ev[0].channel, Channel::kWeb);
    EXPECT_EQ(ev[0].source_line, 2u);
    EXPECT_TRUE(ev[1].Is(EventType::kProductView));
    EXPECT_EQ(ev[1].device, DeviceClass::kMobile);
    EXPECT_EQ(ev[1].dwell_seconds, 30);
    EXPECT_TRUE(ev[2].Is(EventType::kCartAdd));
    EXPECT_EQ(ev[2].product_id, "P1");
    EXPECT_EQ(ev[2].quantity, 2);
    EXPECT_EQ(ev[2].price, 10);  // unit_price of a cart event
    EXPECT_EQ(ev[3].event_id, "order:1002:C2");
    EXPECT_EQ(ev[3].total, 7.5);
    EXPECT_EQ(ev[4].consent, 1);
    EXPECT_EQ(ev[4].email, "a@b.c");
    EXPECT_EQ(r.stats.quarantined, 1u);
    EXPECT_EQ(r.stats.records, 7u);
  }
  ASSERT_TRUE((*q)->Flush().ok());
  auto qs = ReadQuarantine(qpath);
  ASSERT_EQ(qs.size(), 3u);
  EXPECT_EQ(qs[0].line, 8u);
  EXPECT_EQ(qs[0].field, "order_id");
  EXPECT_NE(qs[0].reason.find("rows of one order must be adjacent"), std::string::npos);
}

TEST(DelimitedReaderTest, SingleByteEncodingsAreDecoded) {
  // "Caf\xe9" and a pound sign in Latin-1; a euro sign (0x80) in Windows-1252.
  std::string content = "c,t,note\nCaf\xe9,2024-01-01,\xa3 5\nb,2024-01-02,\x80 7\n";
  EventTypeRegistry registry;
  for (const char* encoding : {"latin1", "cp1252", "utf-8"}) {
    Quarantine q;
    auto m = Mapping::FromSpec(std::string("type=search,customer_id=c,timestamp=t,prop.note=note,encoding=") +
                               encoding);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    auto r = ReadAll(Spec(WriteTemp("enc.csv", content), *m), registry, &q);
    ASSERT_TRUE(r.status.ok());
    if (std::string(encoding) == "utf-8") {
      EXPECT_EQ(r.events.size(), 0u);  // invalid UTF-8: both rows quarantined
      EXPECT_EQ(q.total(), 2u);
      continue;
    }
    ASSERT_EQ(r.events.size(), 2u) << encoding;
    EXPECT_EQ(r.events.events[0].customer_id, "Caf\xC3\xA9");
    EXPECT_EQ(r.events.FindProp(r.events.events[0], "note")->text, "\xC2\xA3 5");
    std::string euro(r.events.FindProp(r.events.events[1], "note")->text);
    EXPECT_EQ(euro, std::string(encoding) == "cp1252" ? "\xE2\x82\xAC 7" : "\xC2\x80 7");
  }
}

TEST(DelimitedReaderTest, EmptyAndHeaderOnlyFiles) {
  EventTypeRegistry registry;
  Quarantine q;
  auto m = Mapping::FromSpec("customer_id=c,timestamp=t,type=order");
  ASSERT_TRUE(m.ok());
  for (const char* content : {"", "\r\n\n", "c,t\r\n"}) {
    auto r = ReadAll(Spec(WriteTemp("e.csv", content), *m), registry, &q);
    EXPECT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_EQ(r.events.size(), 0u);
    EXPECT_EQ(r.stats.records, 0u);
  }
  auto canonical = ReadAll(Spec(WriteTemp("e.csv", std::string(kCanonicalHeader) + "\n")), registry, &q);
  EXPECT_TRUE(canonical.status.ok());
  EXPECT_EQ(canonical.events.size(), 0u);
  EXPECT_EQ(q.total(), 0u);
  auto missing = EventReader::Open(Spec("/no/such/dir/x.csv"), registry, &q);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Status::Code::kIOError);
}

TEST(DelimitedReaderTest, NonCanonicalHeaderNeedsAMapping) {
  EventTypeRegistry registry;
  std::string path = WriteTemp("x.csv", "CustomerID,Date\n1,2024-01-01\n");
  auto r = EventReader::Open(Spec(path), registry, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("unknown columns: CustomerID, Date"), std::string::npos);
  auto m = Mapping::FromSpec("customer_id=CustomerID,timestamp=When,type=order");
  ASSERT_TRUE(m.ok());
  auto r2 = EventReader::Open(Spec(path, *m), registry, nullptr);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("unknown column 'When'; the header has: CustomerID, Date"),
            std::string::npos)
      << r2.status().message();
}

TEST(DelimitedReaderTest, SeparatorsQuotesBomAndHeaderless) {
  EventTypeRegistry registry;
  Quarantine q;
  const char* fields = "[fields]\ntype = { value = \"page_view\" }\ncustomer_id = \"c\"\n"
                       "timestamp = \"t\"\n[properties]\nnote = \"n\"\n";
  struct Case { const char* name; const char* delimiter; std::string content; };
  std::vector<Case> cases = {
      {"comma.csv", "", "c,t,n\r\na,2024-01-01,\"x, \"\"y\"\"\"\r\nb,2024-01-02,plain\r\n"},
      {"tab.tsv", "tab", "\xEF\xBB\xBF" "c\tt\tn\na\t2024-01-01\tx, \"y\"\nb\t2024-01-02\tplain\n"},
      {"semi.csv", "", "c;t;n\na;2024-01-01;\"x, \"\"y\"\"\"\nb;2024-01-02;plain"},
      {"pipe.txt", "", "c|t|n\na|2024-01-01|x, \"y\"\n\nb|2024-01-02|plain\n"},
      {"ws.txt", "whitespace", "  c   t  n\r\n  a 2024-01-01   x,\"y\"\r\n b\t2024-01-02 plain\r\n"},
  };
  for (const Case& c : cases) {
    std::string toml = std::string("[source]\ndelimiter = \"") + c.delimiter + "\"\n" + fields;
    if (std::string(c.delimiter).empty()) toml = fields;
    auto r = ReadAll(Spec(WriteTemp(c.name, c.content), MustMap(toml)), registry, &q);
    ASSERT_TRUE(r.status.ok()) << c.name << ": " << r.status.ToString();
    ASSERT_EQ(r.events.size(), 2u) << c.name;
    EXPECT_EQ(r.events.events[0].customer_id, "a") << c.name;
    std::string note(r.events.FindProp(r.events.events[0], "note")->text);
    if (std::string(c.name) == "ws.txt") {
      EXPECT_EQ(note, "x,\"y\"");
    } else {
      EXPECT_EQ(note, "x, \"y\"") << c.name;
    }
    EXPECT_EQ(r.events.FindProp(r.events.events[1], "note")->text, "plain") << c.name;
    EXPECT_EQ(r.events.events[1].timestamp, *ParseIso8601("2024-01-02")) << c.name;
  }
  EXPECT_EQ(q.total(), 0u);

  // Headerless with names, skipped preamble, comments, a quoted newline keeps line numbers right.
  std::string content = "exported by X\n# comment\n\"a\nb\",2024-01-01\n# another\nc,2024-01-02\n";
  auto m = MustMap("[source]\nheader = false\ncolumns = [\"who\", \"when\"]\nskip_lines = 1\n"
                   "comment = \"#\"\n[fields]\ntype = { value = \"search\" }\n"
                   "customer_id = \"who\"\ntimestamp = 2\n");
  auto r = ReadAll(Spec(WriteTemp("h.csv", content), m), registry, &q);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events.events[0].customer_id, "a\nb");
  EXPECT_EQ(r.events.events[0].source_line, 3u);
  EXPECT_EQ(r.events.events[1].source_line, 6u);
  // Headerless without names: columns are $1, $2, ...
  auto m2 = MustMap("[source]\nheader = false\n[fields]\ntype = { value = \"search\" }\n"
                    "customer_id = \"$2\"\ntimestamp = 1\n");
  auto r2 = ReadAll(Spec(WriteTemp("h2.csv", "2024-01-01,x\n2024-01-02,y\n"), m2), registry, &q);
  ASSERT_EQ(r2.events.size(), 2u);
  EXPECT_EQ(r2.events.events[1].customer_id, "y");
}

TEST(DelimitedReaderTest, BadRowsAreQuarantinedWithLineFieldAndReason) {
  EventTypeRegistry registry;
  auto m = MustMap("[fields]\ntype = \"kind\"\ncustomer_id = \"c\"\ntimestamp = \"t\"\n"
                   "price = \"p\"\n");
  std::string content = "kind,c,t,p\n";
  content += "page_view,a,2024-01-01,1\n";                    // 2 good
  content += "teleport,a,2024-01-01,1\n";                     // 3 unknown type
  content += "page_view,a,soon,1\n";                          // 4 bad time
  content += "page_view,a,2024-01-01,lots\n";                 // 5 bad number
  content += "page_view,\xff\xfe,2024-01-01,1\n";             // 6 utf-8
  content += "page_view,a\n";                                 // 7 short row
  content += "page_view,a,2024-01-01,\"unterminated\n";       // 8 quote never closes
  content += "page_view," + std::string(3 << 20, 'x') + ",2024-01-01,1\n";  // 9 too long
  content += ",a,2024-01-01,1\n";                             // 10 missing type
  content += "page_view,,2024-01-01,1\n";                     // 11 no identifier
  content += "PAGE_VIEW,b,2024-01-01,2";                      // 12 good, no newline at the end
  std::string path = WriteTemp("bad.csv", content);
  std::string qpath = WriteTemp("q.jsonl", "");
  auto q = Quarantine::Open(qpath);
  ASSERT_TRUE(q.ok());
  auto r = ReadAll(Spec(path, m), registry, q->get(), 3);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events.events[1].customer_id, "b");
  EXPECT_EQ(r.events.events[1].source_line, 12u);
  ASSERT_TRUE((*q)->Flush().ok());
  auto qs = ReadQuarantine(qpath);
  struct Want { uint64_t line; const char* field; const char* reason; };
  const Want want[] = {
      {3, "kind", "unknown event type 'teleport'"},
      {4, "t", "unparsable timestamp 'soon'"},
      {5, "p", "not a finite number: 'lots'"},
      {6, "c", "not valid UTF-8"},
      {7, "p", "row has 2 columns; the mapping reads column 4 ('p')"},
      {8, "", "unterminated quote"},
      {9, "", "record too long"},
      {10, "kind", "missing type"},
      {11, "customer_id", "no identifier"},
  };
  ASSERT_EQ(qs.size(), std::size(want));
  for (size_t i = 0; i < qs.size(); ++i) {
    EXPECT_EQ(qs[i].line, want[i].line) << i;
    EXPECT_EQ(qs[i].field, want[i].field) << i;
    EXPECT_EQ(qs[i].reason.rfind(want[i].reason, 0), 0u) << i << ": " << qs[i].reason;
  }
  EXPECT_EQ(r.stats.quarantined, std::size(want));
  EXPECT_EQ(r.stats.records, 11u);
}

TEST(DelimitedReaderTest, OnlineRetailRecipeOnAMessyFile) {
  std::string content =
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\r\n"
      "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\r\n"
      "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850.0,United Kingdom\r\n"
      "536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850.0,United Kingdom\r\n"
      "C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527.0,United Kingdom\r\n"
      "536380,22961,\"JAM MAKING SET, PRINTED\",-24,12/1/2010 9:45,1.45,,United Kingdom\r\n"
      "536381,22139,RETROSPOT TEA SET,2,12/1/2010 9:49,4.95,,United Kingdom\r\n"
      "C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,12/1/2010 9:49,4.65,,United Kingdom\r\n"
      "536384,82484,\"WOOD BLACK BOARD \"\"ANT\"\" WHITE\",3,13/45/2010 9:53,6.45,18074.0,United Kingdom\r\n"
      "A563185,B,Adjust bad debt,1,8/12/2011 14:50,-11062.06,,United Kingdom\r\n"
      "536385,22783,SET 3 WICKER OVAL BASKETS,four,12/1/2010 9:56,19.95,17420.0,United Kingdom\r\n"
      "536386,84880,WHITE WIRE EGG HOLDER,36,12/1/2010 9:57,4.95,16029.0\r\n"
      "536365,22752,SET 7 BABUSHKA NESTING BOXES,2,12/1/2010 8:26,7.65,17850.0,United Kingdom\r\n"
      "536387,79321,CHILLI LIGHTS,192,12/1/2010 9:58,3.82,16029.0,United Kingdom\r\n";
  std::string path = WriteTemp("online_retail.csv", content);
  std::string qpath = WriteTemp("q.jsonl", "");
  EventTypeRegistry registry;
  ReadStats stats;
  EventBatch events;
  {
    auto q = Quarantine::Open(qpath);
    ASSERT_TRUE(q.ok());
    auto r = ReadAll(Spec(path, Recipe("online-retail.toml")), registry, q->get());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    stats = r.stats;
    events = std::move(r.events);
  }
  ASSERT_EQ(events.size(), 5u);
  const auto& ev = events.events;
  EXPECT_EQ(ev[0].order_id, "536365");
  EXPECT_EQ(ev[0].customer_id, "17850");
  EXPECT_EQ(ev[0].event_id, "order:536365:17850");
  EXPECT_EQ(ev[0].currency, "GBP");
  ASSERT_EQ(ev[0].num_lines, 2u);
  EXPECT_NEAR(ev[0].total, 6 * 2.55 + 6 * 3.39, 1e-9);
  EXPECT_EQ(ev[0].timestamp, *ParseIso8601("2010-12-01T08:26:00Z"));
  EXPECT_EQ(events.FindProp(ev[0], "country")->text, "United Kingdom");
  EXPECT_EQ(ev[1].order_id, "536366");
  EXPECT_TRUE(ev[2].Is(EventType::kReturn));
  EXPECT_EQ(ev[2].order_id, "C536379");
  EXPECT_EQ(events.Lines(ev[2])[0].quantity, 1);  // made positive
  EXPECT_EQ(ev[2].total, 27.5);
  ASSERT_NE(events.FindProp(ev[2], "cancelled"), nullptr);
  EXPECT_TRUE(ev[3].customer_id.empty());  // anonymous order kept for cross-sell
  EXPECT_EQ(ev[3].order_id, "536381");
  EXPECT_EQ(ev[4].order_id, "536387");
  EXPECT_EQ(stats.skipped, 1u);       // cancellation without customer
  EXPECT_EQ(stats.quarantined, 6u);
  EXPECT_EQ(stats.records, 13u);
  auto qs = ReadQuarantine(qpath);
  ASSERT_EQ(qs.size(), 6u);
  struct Want { uint64_t line; const char* field; const char* reason; };
  const Want want[] = {
      {6, "Quantity", "negative quantity on a non-cancelled invoice"},
      {9, "InvoiceDate", "unparsable timestamp '13/45/2010 9:53'"},
      {10, "UnitPrice", "negative unit price"},
      {11, "Quantity", "not a finite number: 'four'"},
      {12, "Country", "row has 7 columns; the mapping reads column 8 ('Country')"},
      {13, "InvoiceNo", "order '536365' continues after rows of other orders"},
  };
  for (size_t i = 0; i < qs.size(); ++i) {
    EXPECT_EQ(qs[i].line, want[i].line) << i;
    EXPECT_EQ(qs[i].field, want[i].field) << i;
    EXPECT_EQ(qs[i].reason.rfind(want[i].reason, 0), 0u) << i << ": " << qs[i].reason;
  }
}

TEST(DelimitedReaderTest, ShopifyRecipeGroupsLineItemRows) {
  std::string content =
      "Name,Email,Financial Status,Currency,Total,Discount Code,Discount Amount,Created at,"
      "Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku\n"
      "#1001,ann@example.com,paid,EUR,49.00,WELCOME,5.00,2024-03-05 14:23:11 +0100,2,Linen sheet,20.00,LS-1\n"
      "#1001,ann@example.com,,,,,,,1,Pillow case,14.00,PC-2\n"
      "#1002,Bob@Example.com,refunded,EUR,10.00,,0.00,2024-03-06 10:00:00 +0100,1,Candle,10.00,C-1\n"
      "#1003,,paid,EUR,8.00,,,2024-03-06 11:00:00 +0100,1,Soap,8.00,\n";
  EventTypeRegistry registry;
  Quarantine q;
  auto r = ReadAll(Spec(WriteTemp("orders_export.csv", content), Recipe("shopify-orders.toml")),
                   registry, &q);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.events.size(), 3u) << q.Summary();
  const auto& ev = r.events.events;
  EXPECT_EQ(ev[0].order_id, "#1001");
  ASSERT_EQ(ev[0].num_lines, 2u);
  EXPECT_EQ(r.events.Lines(ev[0])[1].product_id, "PC-2");
  EXPECT_EQ(r.events.Lines(ev[0])[1].category, "Pillow case");
  EXPECT_EQ(ev[0].total, 49);
  EXPECT_EQ(ev[0].discount, 5);
  EXPECT_EQ(ev[0].timestamp, *ParseIso8601("2024-03-05T13:23:11Z"));
  EXPECT_EQ(ev[1].email, "bob@example.com");
  EXPECT_NE(r.events.FindProp(ev[1], "refunded"), nullptr);
  EXPECT_EQ(r.events.FindProp(ev[1], "financial_status")->text, "refunded");
  EXPECT_EQ(ev[2].event_id, "order:#1003:");
  EXPECT_EQ(q.total(), 0u);
}

TEST(DelimitedReaderTest, BasketModeAndDerivedIdsAreDeterministic) {
  std::string content = "whole milk,yogurt\nbread,cream cheese \nwhole milk,yogurt\n\n";
  EventTypeRegistry registry;
  Quarantine q;
  auto r1 = ReadAll(Spec(WriteTemp("b.csv", content), Recipe("groceries.toml")), registry, &q);
  auto r2 = ReadAll(Spec(WriteTemp("other-name.txt", content), Recipe("groceries.toml")), registry, &q);
  ASSERT_EQ(r1.events.size(), 3u);
  ASSERT_EQ(r2.events.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(r1.events.events[i].event_id, r2.events.events[i].event_id);
  const auto& ev = r1.events.events;
  EXPECT_EQ(ev[0].event_id.substr(0, 4), "csv:");
  EXPECT_EQ(ev[0].event_id.substr(ev[0].event_id.size() - 2), ":0");
  EXPECT_EQ(ev[2].event_id.substr(ev[2].event_id.size() - 2), ":1");
  EXPECT_EQ(ev[0].event_id.substr(0, 21), ev[2].event_id.substr(0, 21));
  EXPECT_EQ(r1.events.Lines(ev[1])[1].product_id, "cream cheese ");
  EXPECT_EQ(r1.events.Lines(ev[1])[1].category, "cream cheese ");
  EXPECT_TRUE(ev[0].customer_id.empty());
  EXPECT_TRUE(std::isnan(ev[0].total));
  EXPECT_EQ(q.total(), 0u);
}

TEST(DelimitedReaderTest, ReusedBatchStopsGrowingAfterWarmUp) {
  std::string content = std::string(kCanonicalHeader) + "\n";
  for (int i = 0; i < 30000; ++i) {
    std::string id = std::string("e").append(std::to_string(i / 3));
    content += CanonicalRow({{"event_id", id}, {"type", i % 3 == 2 ? "page_view" : "order"},
                             {"timestamp", "2024-01-01T00:00:00Z"},
                             {"customer_id", std::string("c").append(std::to_string(i / 3 % 101))},
                             {"product_id", std::string("p").append(std::to_string(i % 7))}, {"quantity", "1"},
                             {"unit_price", "2.5"}});
  }
  EventTypeRegistry registry;
  Quarantine q;
  auto reader = EventReader::Open(Spec(WriteTemp("big.csv", content)), registry, &q);
  ASSERT_TRUE(reader.ok());
  EventBatch batch;
  size_t batches = 0, events_cap = 0, lines_cap = 0, arena = 0;
  uint64_t total = 0;
  while (true) {
    auto more = (*reader)->Next(&batch, 1000);
    ASSERT_TRUE(more.ok());
    if (!*more) break;
    total += batch.size();
    if (++batches == 2) {
      events_cap = batch.events.capacity();
      lines_cap = batch.lines.capacity();
      arena = batch.ArenaBytes();
    } else if (batches > 2) {
      EXPECT_EQ(batch.events.capacity(), events_cap);
      EXPECT_EQ(batch.lines.capacity(), lines_cap);
      EXPECT_EQ(batch.ArenaBytes(), arena);
    }
  }
  EXPECT_EQ(total, 20000u);  // 10000 two-line orders + 10000 page views
  EXPECT_EQ(q.total(), 0u);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// A recipe for the export below, with `number_options` added to its [source].
std::string GermanRecipe(const std::string& number_options) {
  return "[source]\ndelimiter = \";\"\n" + number_options +
      "[fields]\ntype = { value = \"order\" }\norder_id = \"Bestellung\"\n"
      "customer_id = \"Kunde\"\ntimestamp = { column = \"Datum\", format = \"%d.%m.%Y %H:%M\" }\n"
      "[lines]\nproduct_id = \"Artikel\"\nquantity = \"Menge\"\nunit_price = \"Preis\"\n";
}

// A European shop export: semicolons, decimal commas, dot-grouped thousands, day-first dates.
TEST(DelimitedReaderNumbers, DecimalCommaAndThousandsSeparator) {
  std::string path = WriteTemp("de.csv",
                               "Bestellung;Kunde;Datum;Artikel;Menge;Preis\n"
                               "1001;K1;23.11.2026 14:05;Tasse;2;12,50\n"
                               "1002;K2;24.11.2026 09:10;Sofa;1;1.234,56\n"
                               "1003;K3;24.11.2026 09:11;Teller;1;3.5\n");
  const std::string recipe =
      GermanRecipe("decimal = \",\"\nthousands = \".\"\n") +
      "[[rules]]\nwhen = \"Preis > 1000\"\nthen = \"flag big\"\n";
  std::string qpath = WriteTemp("q-de.jsonl", "");
  auto q = Quarantine::Open(qpath);
  ASSERT_TRUE(q.ok());
  EventTypeRegistry registry;
  auto r = ReadAll(Spec(path, MustMap(recipe)), registry, q->get(), 100);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  ASSERT_EQ(r.events.size(), 3u);
  EXPECT_DOUBLE_EQ(r.events.events[0].total, 25.0);
  EXPECT_DOUBLE_EQ(r.events.events[1].total, 1234.56);
  // With thousands = "." a point only groups digits: "3.5" is 35, as the file's notation says.
  EXPECT_DOUBLE_EQ(r.events.events[2].total, 35.0);
  // The rule compared 1.234,56 as 1234.56 (read with a decimal point it would not be a number).
  ASSERT_NE(r.events.FindProp(r.events.events[1], "big"), nullptr);
  EXPECT_EQ(r.events.FindProp(r.events.events[0], "big"), nullptr);
  EXPECT_EQ(r.stats.quarantined, 0u);

  const std::string comma_only = GermanRecipe("decimal = \"comma\"\n");
  std::string qpath2 = WriteTemp("q-de2.jsonl", "");
  auto q2 = Quarantine::Open(qpath2);
  ASSERT_TRUE(q2.ok());
  auto r2 = ReadAll(Spec(path, MustMap(comma_only)), registry, q2->get(), 100);
  ASSERT_TRUE(r2.status.ok());
  ASSERT_EQ(r2.events.size(), 1u);  // 12,50 reads; 1.234,56 and 3.5 have a point
  EXPECT_DOUBLE_EQ(r2.events.events[0].total, 25.0);
  EXPECT_EQ(r2.stats.quarantined, 2u);

  // Without the option the comma is refused, with a hint.
  const std::string plain = GermanRecipe("");
  std::string qpath3 = WriteTemp("q-de3.jsonl", "");
  auto q3 = Quarantine::Open(qpath3);
  ASSERT_TRUE(q3.ok());
  auto r3 = ReadAll(Spec(path, MustMap(plain)), registry, q3->get(), 100);
  ASSERT_TRUE(r3.status.ok());
  ASSERT_TRUE((*q3)->Flush().ok());
  auto qs = ReadQuarantine(qpath3);
  ASSERT_FALSE(qs.empty());
  EXPECT_EQ(qs[0].field, "Preis");
  EXPECT_NE(qs[0].reason.find("decimal = \",\""), std::string::npos) << qs[0].reason;
}

TEST(DelimitedReaderNumbers, NumberFormatOptionsAreChecked) {
  EXPECT_FALSE(Mapping::FromToml("[source]\ndecimal = \";\"\n[fields]\ntype = \"t\"\n"
                                 "timestamp = \"ts\"\n", "bad.toml").ok());
  auto same = Mapping::FromToml("[source]\ndecimal = \",\"\nthousands = \",\"\n[fields]\n"
                                "type = \"t\"\ntimestamp = \"ts\"\n", "same.toml");
  ASSERT_FALSE(same.ok());
  EXPECT_NE(same.status().message().find("must differ"), std::string::npos);
  auto spec = Mapping::FromSpec("decimal=comma,thousands=space,type=order,timestamp=ts");
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  EXPECT_EQ(spec->source().decimal, ',');
  EXPECT_EQ(spec->source().thousands, ' ');
  // --map may refine one of the two over a recipe's other; the merged mapping is checked.
  auto recipe = Mapping::FromToml("[source]\ndecimal = \",\"\n[fields]\ntype = \"t\"\n"
                                  "timestamp = \"ts\"\n", "recipe.toml");
  ASSERT_TRUE(recipe.ok()) << recipe.status().ToString();
  auto refine = Mapping::FromSpec("thousands=dot");
  ASSERT_TRUE(refine.ok()) << refine.status().ToString();
  Mapping merged = *recipe;
  merged.MergeFrom(*refine);
  EXPECT_EQ(merged.source().decimal, ',');
  EXPECT_EQ(merged.source().thousands, '.');
  EXPECT_TRUE(merged.Compile({"t", "ts"}).ok());
  auto clash = Mapping::FromSpec("thousands=comma");
  ASSERT_TRUE(clash.ok());
  Mapping clashing = *recipe;
  clashing.MergeFrom(*clash);
  auto compiled = clashing.Compile({"t", "ts"});
  ASSERT_FALSE(compiled.ok());
  EXPECT_NE(compiled.status().message().find("must differ"), std::string::npos);
  EXPECT_FALSE(Mapping::FromSpec("decimal=comma,thousands=comma").ok());
  EXPECT_EQ(ParseNumber("1 234,5", ',', ' '), 1234.5);
  EXPECT_EQ(ParseNumber("1'234.5", '.', '\''), 1234.5);
  EXPECT_FALSE(ParseNumber("1.5", ',', 0).has_value());
  EXPECT_EQ(ParseNumber("-0,25", ',', '.'), -0.25);
}

TEST(DelimitedReaderNumbers, MoneyCastReadsAmountsWithCurrencies) {
  EXPECT_EQ(ParseMoney("$12.50"), 12.5);
  EXPECT_EQ(ParseMoney("-$5.00"), -5.0);
  EXPECT_EQ(ParseMoney("$-5.00"), -5.0);
  EXPECT_EQ(ParseMoney("(5.00)"), -5.0);
  EXPECT_EQ(ParseMoney("($5.00)"), -5.0);
  EXPECT_EQ(ParseMoney("5.00-"), -5.0);
  EXPECT_EQ(ParseMoney("US$ 1,234.50", '.', ','), 1234.5);
  EXPECT_EQ(ParseMoney("12,50 \xe2\x82\xac", ','), 12.5);  // euro sign, 3 bytes
  EXPECT_EQ(ParseMoney("EUR 7"), 7.0);
  EXPECT_EQ(ParseMoney("42"), 42.0);
  EXPECT_FALSE(ParseMoney("price on request").has_value());
  EXPECT_FALSE(ParseMoney("$").has_value());
  EXPECT_FALSE(ParseMoney("$5 USD").has_value());   // a symbol on both sides
  EXPECT_FALSE(ParseMoney("dollars 5").has_value());  // longer than a symbol or code
  EXPECT_FALSE(ParseMoney("--5").has_value());

  std::string path = WriteTemp("money.csv",
                               "order,customer,date,sku,price\n"
                               "A1,C1,2024-01-01,P1,$10.00\n"
                               "A2,C2,2024-01-02,P1,\"$1,200.00\"\n"
                               "A3,C3,2024-01-03,P1,n/a\n");
  const std::string recipe =
      "[source]\nthousands = \",\"\n"
      "[fields]\ntype = { value = \"order\" }\norder_id = \"order\"\ncustomer_id = \"customer\"\n"
      "timestamp = \"date\"\n[lines]\nproduct_id = \"sku\"\n"
      "unit_price = { column = \"price\", cast = \"money\" }\n";
  EventTypeRegistry registry;
  auto r = ReadAll(Spec(path, MustMap(recipe)), registry, nullptr, 100);
  ASSERT_TRUE(r.status.ok());
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_DOUBLE_EQ(r.events.events[0].total, 10.0);
  EXPECT_DOUBLE_EQ(r.events.events[1].total, 1200.0);
  EXPECT_EQ(r.stats.quarantined, 1u);
  // Without the cast the amount is refused with a hint to add it.
  std::string plain = recipe;
  plain.replace(plain.find("{ column = \"price\", cast = \"money\" }"),
                std::string("{ column = \"price\", cast = \"money\" }").size(), "\"price\"");
  std::string qpath = WriteTemp("q-money.jsonl", "");
  auto q = Quarantine::Open(qpath);
  ASSERT_TRUE(q.ok());
  auto r2 = ReadAll(Spec(path, MustMap(plain)), registry, q->get(), 100);
  ASSERT_TRUE((*q)->Flush().ok());
  auto qs = ReadQuarantine(qpath);
  ASSERT_EQ(qs.size(), 3u);
  EXPECT_NE(qs[0].reason.find("cast = \"money\""), std::string::npos) << qs[0].reason;
}

// An order is stored whole or not at all: a bad line quarantines every row of its order (so the
// corrected file, ingested again, stores the complete order instead of a duplicate of a part).
TEST(DelimitedReaderOrders, BadLineQuarantinesItsWholeOrder) {
  const std::string recipe =
      "[fields]\ntype = { value = \"order\" }\norder_id = \"order\"\ncustomer_id = \"customer\"\n"
      "timestamp = \"date\"\n[lines]\nproduct_id = \"sku\"\nquantity = \"qty\"\n"
      "unit_price = \"price\"\n"
      "[[rules]]\nwhen = \"sku equals 'BROKEN'\"\nthen = \"quarantine 'broken sku'\"\n";
  const std::string header = "order,customer,date,sku,qty,price\n";
  std::string bad = header +
                    "A1,C1,2024-01-01,P1,1,10\n"     // line 2: a good order
                    "B2,C2,2024-01-02,P1,1,10\n"     // line 3: order B2, first row fine
                    "B2,C2,2024-01-02,P2,x,5\n"      // line 4: bad quantity
                    "B2,C2,2024-01-02,P3,1,2\n"      // line 5: after the bad row
                    "D4,C4,bad-date,P1,1,10\n"       // line 6: bad first row
                    "D4,C4,,P2,1,10\n"               // line 7: its continuation
                    "E5,C5,2024-01-03,P1,1,10\n"     // line 8: rule quarantine in the middle
                    "E5,C5,2024-01-03,BROKEN,1,1\n"  // line 9
                    "F6,C6,2024-01-04,P1,2,3\n";     // line 10: good
  std::string path = WriteTemp("orders-bad.csv", bad);
  std::string qpath = WriteTemp("q-orders.jsonl", "");
  auto q = Quarantine::Open(qpath);
  ASSERT_TRUE(q.ok());
  EventTypeRegistry registry;
  for (size_t batch_size : {1, 1000}) {
    auto r = ReadAll(Spec(path, MustMap(recipe)), registry, nullptr, batch_size);
    ASSERT_TRUE(r.status.ok());
    ASSERT_EQ(r.events.size(), 2u) << batch_size;
    EXPECT_EQ(r.events.events[0].order_id, "A1");
    EXPECT_EQ(r.events.events[1].order_id, "F6");
    EXPECT_EQ(r.stats.quarantined, 7u);
  }
  auto r = ReadAll(Spec(path, MustMap(recipe)), registry, q->get(), 1000);
  ASSERT_TRUE((*q)->Flush().ok());
  std::map<uint64_t, std::pair<std::string, std::string>> by_line;  // line -> field, reason
  for (const auto& rec : ReadQuarantine(qpath)) by_line[rec.line] = {rec.field, rec.reason};
  ASSERT_EQ(by_line.size(), 7u);
  EXPECT_EQ(by_line[4].first, "qty");
  for (uint64_t line : {3, 5}) {
    EXPECT_EQ(by_line[line].first, "order");
    EXPECT_EQ(by_line[line].second.rfind("another row of its order is bad: 'B2' line 4 (qty:", 0),
              0u) << by_line[line].second;
  }
  EXPECT_EQ(by_line[6].first, "date");
  EXPECT_NE(by_line[7].second.find("'D4' line 6"), std::string::npos) << by_line[7].second;
  EXPECT_EQ(by_line[9].second, "broken sku");
  EXPECT_NE(by_line[8].second.find("'E5' line 9"), std::string::npos) << by_line[8].second;

  // The corrected file stores B2 complete, under the id a partial B2 would have taken.
  std::string fixed = header + "B2,C2,2024-01-02,P1,1,10\nB2,C2,2024-01-02,P2,2,5\n"
                               "B2,C2,2024-01-02,P3,1,2\n";
  auto r2 = ReadAll(Spec(WriteTemp("orders-fixed.csv", fixed), MustMap(recipe)), registry,
                    nullptr, 1000);
  ASSERT_EQ(r2.events.size(), 1u);
  EXPECT_EQ(r2.events.events[0].event_id, "order:B2:C2");
  EXPECT_EQ(r2.events.events[0].num_lines, 3u);
  EXPECT_DOUBLE_EQ(r2.events.events[0].total, 10 + 2 * 5 + 2);
}

}  // namespace
}  // namespace shoal
