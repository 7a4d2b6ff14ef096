// The recipes of recipes/ on the real shared datasets (SHOAL_SHARED_DATA).
#include <gtest/gtest.h>

#include <set>
#include <unordered_set>

#include "common/time.h"
#include "ingest/reader.h"
#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadAll;

const std::string kData = SHOAL_SHARED_DATA;

Mapping Recipe(const std::string& name) {
  auto m = Mapping::FromTomlFile(std::string(SHOAL_SOURCE_DIR) + "/recipes/" + name);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return *m;
}

SourceSpec Spec(const std::string& path, const Mapping& mapping) {
  SourceSpec s;
  s.path = path;
  s.mapping = mapping;
  return s;
}

TEST(RecipesTest, CdnowMaster) {
  EventTypeRegistry registry;
  Quarantine q;
  auto r = ReadAll(Spec(kData + "/cdnow/CDNOW_master.txt", Recipe("cdnow.toml")), registry, &q, 8192);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(q.total(), 0u) << q.Summary();
  ASSERT_EQ(r.events.size(), 69659u);
  EXPECT_EQ(r.stats.records, 69659u);
  std::unordered_set<std::string_view> customers;
  std::unordered_set<std::string_view> ids;
  double dollars = 0, cds = 0;
  TimeMicros first = INT64_MAX, last = INT64_MIN;
  for (const Event& e : r.events.events) {
    EXPECT_TRUE(e.Is(EventType::kOrder));
    customers.insert(e.customer_id);
    ids.insert(e.event_id);
    dollars += e.total;
    cds += e.quantity;
    first = std::min(first, e.timestamp);
    last = std::max(last, e.timestamp);
  }
  EXPECT_EQ(customers.size(), 23570u);
  EXPECT_NEAR(dollars, 2500315.63, 0.005);
  EXPECT_EQ(ids.size(), 69659u);  // identical rows stay distinct events (k)
  EXPECT_EQ(FormatDate(first), "1997-01-01");
  EXPECT_EQ(FormatDate(last), "1998-06-30");
  const Event& e0 = r.events.events[0];
  EXPECT_EQ(e0.customer_id, "00001");
  EXPECT_EQ(e0.quantity, 1);
  EXPECT_EQ(e0.total, 11.77);
  EXPECT_EQ(e0.source_line, 2u);
  EXPECT_EQ(e0.currency, "USD");

  // Derived ids are the same on a second read.
  auto again = ReadAll(Spec(kData + "/cdnow/CDNOW_master.txt", Recipe("cdnow.toml")), registry, &q, 1000);
  ASSERT_EQ(again.events.size(), r.events.size());
  for (size_t i = 0; i < r.events.size(); ++i) {
    ASSERT_EQ(again.events.events[i].event_id, r.events.events[i].event_id) << i;
  }
}

TEST(RecipesTest, CdnowSampleHeaderlessWithACommandLineMapping) {
  auto m = Mapping::FromSpec("header=no,delimiter=whitespace,type=order,customer_id=$1,"
                             "timestamp=$3:%Y%m%d,quantity=$4,total=$5");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EventTypeRegistry registry;
  Quarantine q;
  auto r = ReadAll(Spec(kData + "/cdnow/CDNOW_sample.txt", *m), registry, &q);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.events.size(), 6919u);
  EXPECT_EQ(q.total(), 0u);
  EXPECT_EQ(r.events.events[0].customer_id, "00004");
  EXPECT_EQ(r.events.events[0].source_line, 1u);
}

TEST(RecipesTest, CdnowElog) {
  EventTypeRegistry registry;
  Quarantine q;
  auto r = ReadAll(Spec(kData + "/cdnow/cdnowElog.csv", Recipe("cdnow-elog.toml")), registry, &q);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(q.total(), 0u) << q.Summary();
  ASSERT_EQ(r.events.size(), 6919u);
  std::set<std::string_view> customers;
  for (const Event& e : r.events.events) customers.insert(e.customer_id);
  EXPECT_EQ(customers.size(), 2357u);
  const Event& e0 = r.events.events[0];
  EXPECT_EQ(e0.customer_id, "4");
  EXPECT_EQ(e0.timestamp, *ParseIso8601("1997-01-01"));
  EXPECT_EQ(e0.quantity, 2);
  EXPECT_EQ(e0.total, 29.33);
  EXPECT_EQ(r.events.FindProp(e0, "sampleid")->text, "1");
}

TEST(RecipesTest, Groceries) {
  EventTypeRegistry registry;
  Quarantine q;
  auto r = ReadAll(Spec(kData + "/groceries/groceries.csv", Recipe("groceries.toml")), registry, &q);
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(q.total(), 0u) << q.Summary();
  ASSERT_EQ(r.events.size(), 9835u);
  EXPECT_EQ(r.events.lines.size(), 43367u);
  std::set<std::string_view> items;
  for (const OrderLine& l : r.events.lines) {
    items.insert(l.product_id);
    EXPECT_EQ(l.product_id, l.category);
  }
  EXPECT_EQ(items.size(), 169u);
  EXPECT_EQ(items.count("cream cheese "), 1u);
  EXPECT_EQ(items.count("cream cheese"), 0u);
  const Event& e0 = r.events.events[0];
  EXPECT_TRUE(e0.Is(EventType::kOrder));
  EXPECT_TRUE(e0.customer_id.empty());
  ASSERT_EQ(e0.num_lines, 4u);
  EXPECT_EQ(r.events.Lines(e0)[0].product_id, "citrus fruit");
  EXPECT_EQ(r.events.Lines(e0)[3].product_id, "ready soups");
}

}  // namespace
}  // namespace shoal
