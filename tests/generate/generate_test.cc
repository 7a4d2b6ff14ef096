#include "generate/generate.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/time.h"
#include "ingest/event.h"
#include "ingest/quarantine.h"
#include "ingest/reader.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

fs::path ProcessTempRoot() {
  return fs::temp_directory_path() / ("shoal_generate_test_" + std::to_string(::getpid()));
}

std::string TempDir(const std::string& name) {
  fs::path dir = ProcessTempRoot() / name;
  fs::remove_all(dir);
  return dir.string();
}

// Removes this process's generated shops when the tests end (ctest runs each test in its own
// process, each writing a few shops).
class RemoveTempShops : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(ProcessTempRoot(), ec);
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveTempShops =
    ::testing::AddGlobalTestEnvironment(new RemoveTempShops);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

GenerateOptions SmallOptions(uint64_t customers = 2000) {
  GenerateOptions o;
  o.customers = customers;
  o.seed = 7;
  return o;
}

Context Threads(int n) {
  Context ctx;
  ctx.threads = n;
  return ctx;
}

// RFC 4180 split of one physical line (the generator never writes newlines inside fields).
std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t k = 0; k < line.size(); ++k) {
    char c = line[k];
    if (quoted) {
      if (c == '"' && k + 1 < line.size() && line[k + 1] == '"') {
        fields.back() += '"';
        ++k;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  return fields;
}

enum Col {
  kEventId = 0,
  kType,
  kTimestamp,
  kCustomerId,
  kEmail,
  kAnonymousId,
  kPhone,
  kChannel,
  kDevice,
  kOrderId,
  kCurrency,
  kProductId,
  kCategory,
  kQuantity,
  kUnitPrice,
  kDiscount,
  kTotal,
  kPrice,
  kDwell,
  kCampaign,
  kSession,
  kQuery,
  kReferee,
  kTopic,
  kMarketing,
  kNumCols
};

// Per-customer behaviour computed straight from events.csv.
struct Behaviour {
  int orders = 0, lines = 0, discounted_lines = 0, checkouts = 0, product_views = 0, page_views = 0,
      searches = 0, sessions = 0;
  double spend = 0, premium_sum = 0;
  std::vector<int64_t> order_days;
  std::set<std::string> categories;
  int64_t last_order_day = -1;
};

struct Shop {
  std::string dir;
  GenerateStats stats;
  std::map<std::string, std::string> segment_of;  // customer_id -> segment
  std::map<std::string, Behaviour> behaviour;     // customer_id -> behaviour
  std::set<std::string> csv_event_ids;
  uint64_t csv_rows = 0, csv_order_rows = 0;
  int64_t csv_order_total_cents = 0, csv_return_total_cents = 0;
  std::vector<std::vector<std::string>> baskets_categories;  // per order
  int64_t end_day = 0;
};

int64_t Cents(const std::string& s) { return std::llround(std::stod(s) * 100); }

// Generates a shop once per test binary (3,000 customers) and parses its CSV.
const Shop& TheShop() {
  static Shop* shop = [] {
    auto* s = new Shop;
    s->dir = TempDir("shop");
    GenerateOptions o = SmallOptions(3000);
    auto r = GenerateShop(o, s->dir, Threads(2));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    s->stats = *r;
    s->end_day = DaysFromCivil(2025, 12, 31);
    std::ifstream truth(s->dir + "/truth.csv");
    std::string line;
    std::getline(truth, line);
    while (std::getline(truth, line)) {
      size_t comma = line.find(',');
      s->segment_of[line.substr(0, comma)] = line.substr(comma + 1);
    }
    std::map<std::string, double> catalogue_median;
    for (const ShopCategory& c : ShopCategories())
      catalogue_median[std::string(c.name)] = c.median_price;
    std::unordered_map<std::string, std::string> owner;  // anonymous id / email -> customer id
    std::ifstream csv(s->dir + "/events.csv");
    std::getline(csv, line);
    std::vector<std::vector<std::string>> rows;
    while (std::getline(csv, line)) rows.push_back(SplitCsv(line));
    s->csv_rows = rows.size();
    for (const auto& f : rows) {
      s->csv_order_rows += f.size() == kNumCols && f[kType] == "order";
      if (f.size() != kNumCols || f[kCustomerId].empty() || f[kType] == "referral") continue;
      if (!f[kAnonymousId].empty()) owner[f[kAnonymousId]] = f[kCustomerId];
    }
    std::string last_event;
    for (const auto& f : rows) {
      if (f.size() != kNumCols) continue;
      bool first_row = s->csv_event_ids.insert(f[kEventId]).second;
      std::string who = f[kCustomerId];
      if (who.empty() && !f[kAnonymousId].empty()) who = owner[f[kAnonymousId]];
      if (f[kType] == "referral") continue;
      Behaviour& b = s->behaviour[who];
      int64_t day = DayOf(*ParseIso8601(f[kTimestamp]));
      const std::string& type = f[kType];
      if (type == "order") {
        if (first_row) {
          ++b.orders;
          b.order_days.push_back(day);
          b.last_order_day = std::max(b.last_order_day, day);
          b.spend += std::stod(f[kTotal]);
          s->csv_order_total_cents += Cents(f[kTotal]);
          s->baskets_categories.emplace_back();
        }
        ++b.lines;
        b.discounted_lines += std::stod(f[kDiscount]) > 0;
        b.premium_sum += std::stod(f[kUnitPrice]) / catalogue_median[f[kCategory]];
        b.categories.insert(f[kCategory]);
        s->baskets_categories.back().push_back(f[kCategory]);
      } else if (type == "return") {
        if (first_row) s->csv_return_total_cents += Cents(f[kTotal]);
      } else if (type == "checkout_start") {
        ++b.checkouts;
      } else if (type == "product_view") {
        ++b.product_views;
      } else if (type == "page_view") {
        ++b.page_views;
      } else if (type == "search") {
        ++b.searches;
      } else if (type == "session_start") {
        ++b.sessions;
      }
    }
    return s;
  }();
  return *shop;
}

double Median(std::vector<double> v) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median over the customers of `segment` of metric(behaviour); customers without a value
// (metric returns NaN) are skipped.
template <typename Metric>
double SegmentMedian(const Shop& shop, std::string_view segment, Metric metric) {
  std::vector<double> values;
  for (const auto& [customer, seg] : shop.segment_of) {
    if (seg != segment) continue;
    auto it = shop.behaviour.find(customer);
    Behaviour empty;
    double v = metric(it == shop.behaviour.end() ? empty : it->second);
    if (!std::isnan(v)) values.push_back(v);
  }
  return Median(values);
}

TEST(GenerateTest, SameOptionsGiveIdenticalBytesWhateverTheThreads) {
  GenerateOptions o = SmallOptions(1500);
  std::string a = TempDir("det_a"), b = TempDir("det_b"), c = TempDir("det_c");
  ASSERT_TRUE(GenerateShop(o, a, Threads(1)).ok());
  ASSERT_TRUE(GenerateShop(o, b, Threads(2)).ok());
  GenerateOptions small_chunks = o;
  small_chunks.chunk_customers = 37;
  ASSERT_TRUE(GenerateShop(small_chunks, c, Threads(3)).ok());
  for (const char* file : {"/events.jsonl", "/events.csv", "/truth.csv", "/README.txt"}) {
    std::string bytes = ReadFile(a + file);
    EXPECT_GT(bytes.size(), 100u) << file;
    EXPECT_EQ(bytes, ReadFile(b + file)) << file;
    EXPECT_EQ(bytes, ReadFile(c + file)) << file;
  }
}

TEST(GenerateTest, DifferentSeedGivesDifferentShop) {
  GenerateOptions o = SmallOptions(500);
  std::string a = TempDir("seed_a"), b = TempDir("seed_b");
  ASSERT_TRUE(GenerateShop(o, a, Threads(2)).ok());
  o.seed = 8;
  ASSERT_TRUE(GenerateShop(o, b, Threads(2)).ok());
  EXPECT_NE(ReadFile(a + "/events.jsonl"), ReadFile(b + "/events.jsonl"));
  EXPECT_NE(ReadFile(a + "/truth.csv"), ReadFile(b + "/truth.csv"));
}

TEST(GenerateTest, EveryBuiltinEventTypeIsPresent) {
  const Shop& shop = TheShop();
  ASSERT_EQ(shop.stats.per_type.size(), static_cast<size_t>(EventType::kNumBuiltin));
  std::string jsonl = ReadFile(shop.dir + "/events.jsonl");
  for (size_t t = 0; t < shop.stats.per_type.size(); ++t) {
    std::string name(EventTypeName(static_cast<EventType>(t)));
    EXPECT_GT(shop.stats.per_type[t], 0u) << name;
    EXPECT_NE(jsonl.find("\"type\":\"" + name + "\""), std::string::npos) << name;
  }
  EXPECT_EQ(shop.stats.customers, 3000u);
  // ~30-70 events per customer: the documented volume.
  double per_customer = static_cast<double>(shop.stats.events) / shop.stats.customers;
  EXPECT_GT(per_customer, 30);
  EXPECT_LT(per_customer, 80);
}

TEST(GenerateTest, SegmentSharesFollowTheOptions) {
  const Shop& shop = TheShop();
  GenerateOptions o;
  ASSERT_EQ(shop.segment_of.size(), 3000u);
  std::map<std::string, int> counts;
  for (const auto& [customer, segment] : shop.segment_of) ++counts[segment];
  for (int k = 0; k < kNumShopSegments; ++k) {
    std::string name(ShopSegmentNames()[k]);
    double share = counts[name] / 3000.0;
    EXPECT_NEAR(share, o.segment_shares[static_cast<size_t>(k)], 0.03) << name;
    EXPECT_EQ(static_cast<uint64_t>(counts[name]), shop.stats.per_segment[static_cast<size_t>(k)]);
  }
}

TEST(GenerateTest, OneTimeBuyersOrderOnceAndWindowShoppersNever) {
  const Shop& shop = TheShop();
  for (const auto& [customer, segment] : shop.segment_of) {
    auto it = shop.behaviour.find(customer);
    int orders = it == shop.behaviour.end() ? 0 : it->second.orders;
    if (segment == "one_time_buyers") {
      EXPECT_EQ(orders, 1) << customer;
    }
    if (segment == "window_shoppers") {
      EXPECT_EQ(orders, 0) << customer;
      EXPECT_EQ(it == shop.behaviour.end() ? 0 : it->second.checkouts, 0) << customer;
    }
  }
}

TEST(GenerateTest, LapsedBigSpendersStoppedLongAgoAfterSpendingMuch) {
  const Shop& shop = TheShop();
  for (const auto& [customer, segment] : shop.segment_of) {
    if (segment != "lapsed_big_spenders") continue;
    const Behaviour& b = shop.behaviour.at(customer);
    ASSERT_GE(b.orders, 1) << customer;
    EXPECT_LT(b.last_order_day, shop.end_day - 200) << customer;
  }
  auto spend = [](const Behaviour& b) { return b.spend; };
  auto aov = [](const Behaviour& b) { return b.orders ? b.spend / b.orders : kNaN; };
  double lapsed_spend = SegmentMedian(shop, "lapsed_big_spenders", spend);
  for (std::string_view other :
       {"price_sensitive_replenishment", "cart_abandoners", "one_time_buyers"}) {
    EXPECT_GT(lapsed_spend, 3 * SegmentMedian(shop, other, spend)) << other;
  }
  double lapsed_aov = SegmentMedian(shop, "lapsed_big_spenders", aov);
  for (int k = 0; k < kNumShopSegments; ++k) {
    std::string_view other = ShopSegmentNames()[k];
    if (other == "lapsed_big_spenders" || other == "window_shoppers") continue;
    EXPECT_GT(lapsed_aov, SegmentMedian(shop, other, aov)) << other;
  }
}

TEST(GenerateTest, ReplenishersBuyOnPromotionOftenAndRegularly) {
  const Shop& shop = TheShop();
  auto discount_share = [](const Behaviour& b) {
    return b.lines ? static_cast<double>(b.discounted_lines) / b.lines : kNaN;
  };
  double psr = SegmentMedian(shop, "price_sensitive_replenishment", discount_share);
  EXPECT_GT(psr, 0.6);
  for (int k = 1; k < kNumShopSegments - 1; ++k) {
    EXPECT_LT(SegmentMedian(shop, ShopSegmentNames()[k], discount_share), psr / 3)
        << ShopSegmentNames()[k];
  }
  // Inter-purchase regularity: coefficient of variation of the gaps between orders.
  auto gap_cv = [](const Behaviour& b) {
    if (b.order_days.size() < 4) return kNaN;
    std::vector<int64_t> days = b.order_days;
    std::sort(days.begin(), days.end());
    double mean = 0, sq = 0;
    size_t n = days.size() - 1;
    for (size_t k = 0; k < n; ++k) mean += static_cast<double>(days[k + 1] - days[k]);
    mean /= static_cast<double>(n);
    for (size_t k = 0; k < n; ++k) {
      double d = static_cast<double>(days[k + 1] - days[k]) - mean;
      sq += d * d;
    }
    return std::sqrt(sq / static_cast<double>(n)) / mean;
  };
  double psr_cv = SegmentMedian(shop, "price_sensitive_replenishment", gap_cv);
  EXPECT_LT(psr_cv, 0.15);
  EXPECT_LT(psr_cv * 3, SegmentMedian(shop, "premium_trend_explorers", gap_cv));
  EXPECT_LT(psr_cv * 3, SegmentMedian(shop, "lapsed_big_spenders", gap_cv));
  // The most frequent buyers, with few categories.
  auto orders = [](const Behaviour& b) { return static_cast<double>(b.orders); };
  double psr_orders = SegmentMedian(shop, "price_sensitive_replenishment", orders);
  for (int k = 1; k < kNumShopSegments; ++k) {
    EXPECT_GT(psr_orders, SegmentMedian(shop, ShopSegmentNames()[k], orders))
        << ShopSegmentNames()[k];
  }
}

TEST(GenerateTest, ExplorersPayPremiumPricesAcrossManyCategories) {
  const Shop& shop = TheShop();
  auto premium = [](const Behaviour& b) { return b.lines ? b.premium_sum / b.lines : kNaN; };
  auto diversity = [](const Behaviour& b) {
    return b.orders ? static_cast<double>(b.categories.size()) : kNaN;
  };
  double explorer_premium = SegmentMedian(shop, "premium_trend_explorers", premium);
  double explorer_diversity = SegmentMedian(shop, "premium_trend_explorers", diversity);
  EXPECT_GT(explorer_premium, 1.3);
  for (int k = 0; k < kNumShopSegments - 1; ++k) {
    std::string_view other = ShopSegmentNames()[k];
    if (other == "premium_trend_explorers") continue;
    EXPECT_GT(explorer_premium, SegmentMedian(shop, other, premium) + 0.2) << other;
    EXPECT_GT(explorer_diversity, SegmentMedian(shop, other, diversity)) << other;
  }
  EXPECT_LT(SegmentMedian(shop, "price_sensitive_replenishment", premium), 0.9);
}

TEST(GenerateTest, AbandonersStartCheckoutsTheyDoNotFinish) {
  const Shop& shop = TheShop();
  auto abandonment = [](const Behaviour& b) {
    return b.checkouts ? 1.0 - static_cast<double>(b.orders) / b.checkouts : kNaN;
  };
  auto checkouts = [](const Behaviour& b) { return static_cast<double>(b.checkouts); };
  double abandoners = SegmentMedian(shop, "cart_abandoners", abandonment);
  EXPECT_GT(abandoners, 0.6);
  EXPECT_GE(SegmentMedian(shop, "cart_abandoners", checkouts), 4);
  for (std::string_view other : {"price_sensitive_replenishment", "premium_trend_explorers",
                                 "lapsed_big_spenders", "one_time_buyers"}) {
    EXPECT_LT(SegmentMedian(shop, other, abandonment), 0.2) << other;
  }
}

TEST(GenerateTest, WindowShoppersBrowseAndSearchMost) {
  const Shop& shop = TheShop();
  auto pages = [](const Behaviour& b) { return static_cast<double>(b.page_views); };
  auto searches = [](const Behaviour& b) { return static_cast<double>(b.searches); };
  double window_pages = SegmentMedian(shop, "window_shoppers", pages);
  for (int k = 0; k < kNumShopSegments - 1; ++k) {
    EXPECT_GT(window_pages, SegmentMedian(shop, ShopSegmentNames()[k], pages))
        << ShopSegmentNames()[k];
  }
  EXPECT_GT(SegmentMedian(shop, "window_shoppers", searches),
            SegmentMedian(shop, "one_time_buyers", searches));
}

// The segments are separable on traits computed from the records: standardised trait vectors
// assigned to the nearest true-segment centroid recover the truth for the vast majority.
TEST(GenerateTest, SegmentsAreSeparableOnBehaviouralTraits) {
  const Shop& shop = TheShop();
  std::vector<std::vector<double>> rows;
  std::vector<int> labels;
  for (const auto& [customer, segment] : shop.segment_of) {
    auto it = shop.behaviour.find(customer);
    Behaviour empty;
    const Behaviour& b = it == shop.behaviour.end() ? empty : it->second;
    std::vector<int64_t> days = b.order_days;
    std::sort(days.begin(), days.end());
    double cv = 2;
    if (days.size() >= 3) {
      double mean =
          static_cast<double>(days.back() - days.front()) / static_cast<double>(days.size() - 1);
      double sq = 0;
      for (size_t k = 0; k + 1 < days.size(); ++k) {
        double d = static_cast<double>(days[k + 1] - days[k]) - mean;
        sq += d * d;
      }
      cv = std::sqrt(sq / static_cast<double>(days.size() - 1)) / std::max(mean, 1.0);
    }
    double recency = b.orders ? static_cast<double>(shop.end_day - b.last_order_day) : 1500;
    rows.push_back({std::log1p(b.orders), std::log1p(b.spend),
                    std::log1p(b.orders ? b.spend / b.orders : 0), std::log1p(recency), cv,
                    b.lines ? static_cast<double>(b.discounted_lines) / b.lines : 0,
                    b.lines ? b.premium_sum / b.lines : 0, std::log1p(b.categories.size()),
                    std::log1p(b.sessions), std::log1p(b.product_views), std::log1p(b.page_views),
                    std::log1p(b.searches), std::log1p(b.checkouts),
                    b.checkouts ? 1.0 - static_cast<double>(b.orders) / b.checkouts : 0});
    int label = 0;
    while (ShopSegmentNames()[label] != segment) ++label;
    labels.push_back(label);
  }
  size_t dims = rows[0].size();
  for (size_t d = 0; d < dims; ++d) {
    double mean = 0, sq = 0;
    for (const auto& r : rows) mean += r[d];
    mean /= static_cast<double>(rows.size());
    for (const auto& r : rows) sq += (r[d] - mean) * (r[d] - mean);
    double sd = std::sqrt(sq / static_cast<double>(rows.size()));
    for (auto& r : rows) r[d] = sd > 0 ? (r[d] - mean) / sd : 0;
  }
  std::vector<std::vector<double>> centroid(kNumShopSegments, std::vector<double>(dims, 0));
  std::vector<double> count(kNumShopSegments, 0);
  for (size_t k = 0; k < rows.size(); ++k) {
    for (size_t d = 0; d < dims; ++d) centroid[static_cast<size_t>(labels[k])][d] += rows[k][d];
    count[static_cast<size_t>(labels[k])] += 1;
  }
  for (int c = 0; c < kNumShopSegments; ++c) {
    for (double& v : centroid[static_cast<size_t>(c)]) v /= count[static_cast<size_t>(c)];
  }
  size_t correct = 0;
  for (size_t k = 0; k < rows.size(); ++k) {
    int best = 0;
    double best_dist = 1e300;
    for (int c = 0; c < kNumShopSegments; ++c) {
      double dist = 0;
      for (size_t d = 0; d < dims; ++d) {
        double diff = rows[k][d] - centroid[static_cast<size_t>(c)][d];
        dist += diff * diff;
      }
      if (dist < best_dist) {
        best_dist = dist;
        best = c;
      }
    }
    correct += best == labels[k];
  }
  double accuracy = static_cast<double>(correct) / static_cast<double>(rows.size());
  EXPECT_GT(accuracy, 0.93);
  EXPECT_LT(accuracy, 0.9995);  // realistic overlap: not a trivially separable toy
}

TEST(GenerateTest, PlantedAffinitiesHaveLiftAboveOne) {
  const Shop& shop = TheShop();
  size_t n = shop.baskets_categories.size();
  ASSERT_GT(n, 1000u);
  for (const PlantedAffinity& rule : PlantedAffinities()) {
    double a = 0, b = 0, ab = 0;
    for (const auto& basket : shop.baskets_categories) {
      bool has_a = std::find(basket.begin(), basket.end(), rule.antecedent) != basket.end();
      bool has_b = std::find(basket.begin(), basket.end(), rule.consequent) != basket.end();
      a += has_a;
      b += has_b;
      ab += has_a && has_b;
    }
    ASSERT_GT(a, 5) << rule.antecedent;
    double lift = (ab / a) / (b / static_cast<double>(n));
    EXPECT_GT(lift, 1.5) << rule.antecedent << " -> " << rule.consequent;
  }
}

TEST(GenerateTest, CsvAndJsonlDescribeTheSameEvents) {
  const Shop& shop = TheShop();
  EXPECT_EQ(shop.csv_event_ids.size(), shop.stats.events);
  EXPECT_EQ(shop.csv_rows, shop.stats.csv_rows);
  EXPECT_EQ(shop.csv_order_rows, shop.stats.order_lines);  // one row per order line
  std::ifstream jsonl(shop.dir + "/events.jsonl");
  std::string line;
  uint64_t lines = 0;
  int64_t order_cents = 0, return_cents = 0;
  while (std::getline(jsonl, line)) {
    ++lines;
    ASSERT_EQ(line.rfind("{\"event_id\":\"", 0), 0u) << line;
    ASSERT_EQ(line.back(), '}') << line;
    bool order = line.find("\"type\":\"order\"") != std::string::npos;
    bool ret = line.find("\"type\":\"return\"") != std::string::npos;
    if (!order && !ret) continue;
    size_t pos = line.find("\"total\":");
    ASSERT_NE(pos, std::string::npos) << line;
    int64_t cents = Cents(line.substr(pos + 8, line.find(',', pos) - pos - 8));
    (order ? order_cents : return_cents) += cents;
  }
  EXPECT_EQ(lines, shop.stats.events);
  EXPECT_EQ(order_cents, shop.csv_order_total_cents);
  EXPECT_EQ(return_cents, shop.csv_return_total_cents);
  EXPECT_GT(order_cents, 0);
  EXPECT_GT(return_cents, 0);
}

// Reads a file with the engine's own reader; returns good events and counts quarantined ones.
struct ReadBack {
  uint64_t events = 0, quarantined = 0, orders = 0;
  double order_total = 0;
};
ReadBack ReadWithIngest(const std::string& path) {
  EventTypeRegistry registry;
  Quarantine quarantine;
  SourceSpec spec;
  spec.path = path;
  ReadBack out;
  auto reader = EventReader::Open(spec, registry, &quarantine);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return out;
  EventBatch batch;
  for (;;) {
    auto more = (*reader)->Next(&batch, 4096);
    EXPECT_TRUE(more.ok()) << more.status().ToString();
    if (!more.ok() || !*more) break;
    for (const Event& e : batch.events) {
      ++out.events;
      if (e.Is(EventType::kOrder)) {
        ++out.orders;
        out.order_total += e.total;
      }
    }
  }
  out.quarantined = quarantine.total();
  return out;
}

TEST(GenerateTest, IngestReadersLoadBothFilesWithoutMapping) {
  const Shop& shop = TheShop();
  ReadBack jsonl = ReadWithIngest(shop.dir + "/events.jsonl");
  ReadBack csv = ReadWithIngest(shop.dir + "/events.csv");
  EXPECT_EQ(jsonl.quarantined, 0u);
  EXPECT_EQ(csv.quarantined, 0u);
  EXPECT_EQ(jsonl.events, shop.stats.events);
  EXPECT_EQ(csv.events, shop.stats.events);
  EXPECT_EQ(jsonl.orders, shop.stats.orders);
  EXPECT_EQ(csv.orders, shop.stats.orders);
  EXPECT_NEAR(jsonl.order_total, shop.csv_order_total_cents / 100.0, 0.01);
  EXPECT_NEAR(csv.order_total, shop.csv_order_total_cents / 100.0, 0.01);
}

TEST(GenerateTest, EveryEventResolvesToATruthCustomer) {
  const Shop& shop = TheShop();
  // Identify events and orders link emails and anonymous ids to customer ids.
  std::unordered_map<std::string, std::string> owner;
  std::ifstream csv(shop.dir + "/events.csv");
  std::string line;
  std::getline(csv, line);
  std::vector<std::vector<std::string>> rows;
  while (std::getline(csv, line)) rows.push_back(SplitCsv(line));
  for (const auto& f : rows) {
    if (f[kCustomerId].empty() || f[kType] == "referral") continue;
    if (!f[kEmail].empty()) owner[f[kEmail]] = f[kCustomerId];
    if (!f[kAnonymousId].empty()) owner[f[kAnonymousId]] = f[kCustomerId];
  }
  uint64_t unresolved = 0, referrals = 0;
  int64_t first_day = DaysFromCivil(2023, 1, 1);
  for (const auto& f : rows) {
    ASSERT_EQ(f.size(), static_cast<size_t>(kNumCols));
    int64_t day = DayOf(*ParseIso8601(f[kTimestamp]));
    EXPECT_GE(day, first_day);
    EXPECT_LE(day, shop.end_day);
    std::string who = f[kCustomerId];
    if (who.empty() && !f[kEmail].empty()) who = owner[f[kEmail]];
    if (who.empty() && !f[kAnonymousId].empty()) who = owner[f[kAnonymousId]];
    unresolved += shop.segment_of.count(who) == 0;
    if (f[kType] == "referral") {
      ++referrals;
      EXPECT_TRUE(owner.count(f[kReferee])) << "referee " << f[kReferee];
      EXPECT_NE(owner[f[kReferee]], f[kCustomerId]);
    }
  }
  EXPECT_EQ(unresolved, 0u);
  EXPECT_GT(referrals, 50u);
}

TEST(GenerateTest, MessyShareProducesQuarantinedRecords) {
  GenerateOptions o = SmallOptions(400);
  o.messy_share = 0.02;
  std::string dir = TempDir("messy");
  auto r = GenerateShop(o, dir, Threads(2));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_GT(r->messy_events, r->events / 100);
  EXPECT_LT(r->messy_events, r->events / 25);
  ReadBack jsonl = ReadWithIngest(dir + "/events.jsonl");
  EXPECT_EQ(jsonl.quarantined, r->messy_events);
  EXPECT_EQ(jsonl.events + jsonl.quarantined, r->events);
  ReadBack csv = ReadWithIngest(dir + "/events.csv");
  EXPECT_GE(csv.quarantined, r->messy_events / 2);
  EXPECT_LT(csv.events, r->events);
}

TEST(GenerateTest, RejectsBadOptions) {
  std::string dir = TempDir("bad");
  GenerateOptions o = SmallOptions(10);
  o.start_date = "2023-13-01";
  EXPECT_EQ(GenerateShop(o, dir, Threads(1)).status().code(), Status::Code::kInvalidArgument);
  o = SmallOptions(10);
  o.end_date = "2023-06-01";  // window under 730 days
  EXPECT_EQ(GenerateShop(o, dir, Threads(1)).status().code(), Status::Code::kInvalidArgument);
  o = SmallOptions(10);
  o.messy_share = 1.5;
  EXPECT_EQ(GenerateShop(o, dir, Threads(1)).status().code(), Status::Code::kInvalidArgument);
  o = SmallOptions(10);
  o.segment_shares = {0, 0, 0, 0, 0, 0};
  EXPECT_EQ(GenerateShop(o, dir, Threads(1)).status().code(), Status::Code::kInvalidArgument);
  o = SmallOptions(10);
  std::string file = TempDir("not_a_dir");
  fs::create_directories(fs::path(file).parent_path());
  std::ofstream(file) << "x";
  EXPECT_EQ(GenerateShop(o, file + "/sub", Threads(1)).status().code(), Status::Code::kIOError);
}

TEST(GenerateTest, ZeroCustomersGiveHeaderOnlyFiles) {
  GenerateOptions o = SmallOptions(0);
  std::string dir = TempDir("empty");
  auto r = GenerateShop(o, dir, Threads(2));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->events, 0u);
  EXPECT_EQ(ReadFile(dir + "/events.jsonl"), "");
  EXPECT_EQ(ReadFile(dir + "/truth.csv"), "customer_id,segment\n");
  std::string csv = ReadFile(dir + "/events.csv");
  EXPECT_EQ(csv.rfind("event_id,type,timestamp,customer_id,email,anonymous_id,phone,channel,", 0),
            0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1);
}

TEST(GenerateTest, SegmentOptionsShapeTheShop) {
  GenerateOptions o = SmallOptions(300);
  o.segment_shares = {0, 0, 0, 0, 0, 1};  // window shoppers only: no orders at all
  o.write_jsonl = false;
  std::string dir = TempDir("only_window");
  auto r = GenerateShop(o, dir, Threads(2));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->orders, 0u);
  EXPECT_EQ(r->per_segment[5], 300u);
  EXPECT_FALSE(fs::exists(dir + "/events.jsonl"));
  uint64_t last_done = 0, calls = 0;
  o.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_EQ(total, 300u);
    EXPECT_GE(done, last_done);
    last_done = done;
    ++calls;
  };
  o.chunk_customers = 50;
  ASSERT_TRUE(GenerateShop(o, dir, Threads(2)).ok());
  EXPECT_EQ(last_done, 300u);
  EXPECT_GE(calls, 2u);
  EXPECT_TRUE(fs::exists(dir + "/events.csv"));
}

}  // namespace
}  // namespace shoal
