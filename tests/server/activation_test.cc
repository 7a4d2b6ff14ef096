#include <gtest/gtest.h>
#include <toml++/toml.h>

#include "common/time.h"
#include "ingest/json_events.h"
#include "server/activation.h"
#include "server/membership.h"
#include "server/server_config.h"

namespace shoal {
namespace {

TEST(ActivationTest, Sha256AndHmacMatchPublishedVectors) {
  // FIPS 180-2 "abc" and RFC 4231 test case 2.
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(ActivationTest, AdPlatformNormalisation) {
  EXPECT_EQ(NormalizeEmailForAds("  Ann.Lee@Example.COM "), "ann.lee@example.com");
  EXPECT_EQ(NormalizeEmailForAds("not-an-email"), "");
  EXPECT_EQ(NormalizePhoneE164("+44 (20) 7946-0958", ""), "+442079460958");
  EXPECT_EQ(NormalizePhoneE164("0044 20 7946 0958", ""), "+442079460958");
  EXPECT_EQ(NormalizePhoneE164("020 7946 0958", "44"), "+442079460958");
  EXPECT_EQ(NormalizePhoneE164("020 7946 0958", ""), "");   // no country code known
  EXPECT_EQ(NormalizePhoneE164("12ab34", "44"), "");        // letters
  EXPECT_EQ(NormalizePhoneE164("+1 23", ""), "");           // too short
}

TEST(ActivationTest, CustomerListHashesNormalisedValuesAndSkipsEmptyRows) {
  std::vector<ExportRow> rows = {{"C1", " Ann@Example.com", "020 7946 0958"},
                                 {"C2", "", ""},
                                 {"C3", "bob@example.com", ""}};
  ExportOptions o;
  o.format = ExportFormat::kCustomerList;
  o.default_country_code = "44";
  std::string text = FormatAudienceExport(rows, o);
  std::string expected = "Email,Phone\n" + Sha256Hex("ann@example.com") + "," + Sha256Hex("+442079460958") +
                         "\n" + Sha256Hex("bob@example.com") + ",\n";
  EXPECT_EQ(text, expected);
  o.format = ExportFormat::kCsv;
  EXPECT_EQ(FormatAudienceExport({{"C,1", "a@b.c", ""}}, o), "customer_id,email,phone\n\"C,1\",a@b.c,\n");
  o.format = ExportFormat::kJsonl;
  EXPECT_EQ(FormatAudienceExport({{"C1", "", "1"}}, o), "{\"customer_id\":\"C1\",\"email\":null,\"phone\":\"1\"}\n");
}

TEST(JsonEventsTest, PerItemResultsNameTheFieldAndGoodEventsPass) {
  EventTypeRegistry registry;
  EventBatch batch;
  std::vector<ItemResult> items;
  std::string body = R"([
    {"event_id":"a","type":"order","timestamp":"2024-03-05T14:23:11Z","customer_id":"C1","total":10},
    {"type":"order","customer_id":"C2"},
    {"type":"page_view","timestamp":1709648000,"customer_id":"C3"},
    {"type":"page_view","timestamp":1709648000,"customer_id":"C3"},
    {"type":"teleport","timestamp":1709648000,"customer_id":"C4"},
    {"type":"order","timestamp":1709648000,"customer_id":"C5","total":"lots"},
    7])";
  ASSERT_TRUE(ParseJsonEvents(body, registry, &batch, &items).ok());
  ASSERT_EQ(items.size(), 7u);
  EXPECT_EQ(batch.size(), 3u);
  EXPECT_TRUE(items[0].ok);
  EXPECT_EQ(items[0].event_id, "a");
  EXPECT_FALSE(items[1].ok);
  EXPECT_EQ(items[1].field, "timestamp");
  EXPECT_TRUE(items[2].ok);
  EXPECT_TRUE(items[3].ok);
  // Identical items get ids differing only by k; a re-sent body gets the same ids.
  EXPECT_EQ(items[2].event_id.substr(0, 5), "http:");
  EXPECT_EQ(items[2].event_id.back(), '0');
  EXPECT_EQ(items[3].event_id.back(), '1');
  EXPECT_EQ(items[2].event_id.substr(0, items[2].event_id.size() - 1),
            items[3].event_id.substr(0, items[3].event_id.size() - 1));
  EXPECT_EQ(items[4].field, "type");
  EXPECT_EQ(items[5].field, "total");
  EXPECT_FALSE(items[6].ok);
  std::vector<ItemResult> again;
  ASSERT_TRUE(ParseJsonEvents(body, registry, &batch, &again).ok());
  EXPECT_EQ(again[2].event_id, items[2].event_id);
}

TEST(JsonEventsTest, BodyLevelErrors) {
  EventTypeRegistry registry;
  EventBatch batch;
  std::vector<ItemResult> items;
  EXPECT_FALSE(ParseJsonEvents("{\"type\":", registry, &batch, &items).ok());
  EXPECT_FALSE(ParseJsonEvents("\"order\"", registry, &batch, &items).ok());
  JsonEventsOptions o;
  o.max_events = 2;
  Status st = ParseJsonEvents("[{},{},{}]", registry, &batch, &items, o);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("limit is 2"), std::string::npos);
}

TEST(MembershipTest, ThresholdRulesParseAndRejectOtherShapes) {
  auto t = ParseThresholdRule("days_since_last_event >= 30");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->trait, "days_since_last_event");
  EXPECT_EQ(t->op, TraitThreshold::Op::kGreaterEqual);
  EXPECT_EQ(t->value, 30);
  EXPECT_FALSE(ParseThresholdRule("frequency > 3 and aov > 10").ok());
  EXPECT_FALSE(ParseThresholdRule("> 3").ok());
  auto table = toml::parse(R"(
    [[audiences]]
    name = "lapsed"
    rule = "recency_days > 90"
    [[audiences]]
    name = "big"
    trait = "monetary_total"
    op = ">="
    value = 500
  )");
  auto specs = ParseTraitThresholds(table);
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[1].trait, "monetary_total");
  EXPECT_EQ((*specs)[1].value, 500);
  auto bad = TraitThresholdSource::Make(*specs, {"recency_days"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("monetary_total"), std::string::npos);
}

TEST(ServerConfigTest, ParsesTokensDestinationsExportsAndNamesBadKeys) {
  auto table = toml::parse(R"(
    [server]
    port = 0
    max_batch_events = 50
    [[server.tokens]]
    token = "0123456789abcdef-reader"
    scopes = ["read"]
    [[destinations]]
    name = "crm"
    url = "http://127.0.0.1:9/hook"
    secret = "s"
    audiences = ["big"]
    marketing = false
    [[exports]]
    audience = "big"
    format = "customer_list"
    path = "exports/big.csv"
    every_minutes = 5
  )");
  auto c = ParseServerConfig(table);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->max_batch_events, 50u);
  ASSERT_EQ(c->tokens.size(), 1u);
  EXPECT_TRUE(c->tokens[0].read);
  EXPECT_FALSE(c->tokens[0].write);
  ASSERT_EQ(c->destinations.size(), 1u);
  EXPECT_EQ(c->destinations[0].memberships, std::vector<std::string>{"audience:big"});
  EXPECT_FALSE(c->destinations[0].marketing);
  ASSERT_EQ(c->exports.size(), 1u);
  EXPECT_EQ(c->exports[0].format, ExportFormat::kCustomerList);
  auto bad = ParseServerConfig(toml::parse("[[server.tokens]]\ntoken = \"short\"\nscopes = [\"read\"]\n"));
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("token"), std::string::npos);
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
}

}  // namespace
}  // namespace shoal
