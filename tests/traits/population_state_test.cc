// PopulationState: dictionary, median accuracy, Combine with id remapping, serialization.
#include "traits/population_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace shoal {
namespace {

double ExactMedian(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

TEST(PopulationStateTest, DictionaryIsDenseAndStable) {
  PopulationState pop;
  EXPECT_EQ(pop.CategoryId("bedding"), 0u);
  EXPECT_EQ(pop.CategoryId("bath"), 1u);
  EXPECT_EQ(pop.CategoryId("bedding"), 0u);
  EXPECT_EQ(pop.CategoryName(1), "bath");
  EXPECT_EQ(pop.CategoryName(7), "");
  EXPECT_EQ(pop.FindCategory("bath"), 1);
  EXPECT_EQ(pop.FindCategory("garden"), -1);
  EXPECT_EQ(pop.num_categories(), 2u);
  EXPECT_TRUE(std::isnan(pop.CategoryMedianPrice(0)));
}

TEST(PopulationStateTest, MedianWithinOnePercent) {
  std::mt19937_64 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    PopulationState pop;
    uint32_t id = pop.CategoryId("c");
    std::lognormal_distribution<double> price(std::log(5 + trial), 0.3 + trial % 5);
    std::vector<double> prices;
    int n = 1 + trial * 7 % 301;
    for (int i = 0; i < n; ++i) {
      double p = std::round(price(rng) * 100) / 100 + 0.01;
      if (trial % 10 == 0) p = 9.99;  // all equal
      prices.push_back(p);
      pop.AddUnitPrice(id, p);
    }
    pop.AddUnitPrice(id, -1);  // ignored
    pop.AddUnitPrice(id, 0);   // ignored
    double exact = ExactMedian(prices);
    EXPECT_NEAR(pop.CategoryMedianPrice(id), exact, 0.01 * exact) << "trial " << trial;
    EXPECT_EQ(pop.CategoryPriceCount(id), prices.size());
  }
}

TEST(PopulationStateTest, CombineRemapsAndMergesHistograms) {
  PopulationState a, b, single;
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> price(1, 500);
  const char* kNames[] = {"x", "y", "z", "w"};
  for (int i = 0; i < 2000; ++i) {
    const char* name = kNames[rng() % 4];
    double p = std::round(price(rng) * 100) / 100;
    PopulationState& shard = (rng() % 2) ? a : b;
    shard.AddUnitPrice(shard.CategoryId(name), p);
    single.AddUnitPrice(single.CategoryId(name), p);
  }
  std::vector<uint32_t> b_to_a;
  a.Combine(b, &b_to_a);
  ASSERT_EQ(b_to_a.size(), b.num_categories());
  for (uint32_t id = 0; id < b.num_categories(); ++id) {
    EXPECT_EQ(a.CategoryName(b_to_a[id]), b.CategoryName(id));
  }
  for (const char* name : kNames) {
    auto ia = static_cast<uint32_t>(a.FindCategory(name));
    auto is = static_cast<uint32_t>(single.FindCategory(name));
    EXPECT_EQ(a.CategoryPriceCount(ia), single.CategoryPriceCount(is));
    EXPECT_EQ(a.CategoryMedianPrice(ia), single.CategoryMedianPrice(is)) << name;
  }
}

TEST(PopulationStateTest, ObserveOrderLinesRecordsCategorisedPrices) {
  EventBatch batch;
  Event order;
  order.type = static_cast<uint16_t>(EventType::kOrder);
  order.num_lines = 3;
  batch.lines.push_back({batch.Intern("P1"), batch.Intern("bath"), 1, 10.0, 0});
  batch.lines.push_back({batch.Intern("P2"), {}, 1, 99.0, 0});  // no category: skipped
  batch.lines.push_back({batch.Intern("P3"), batch.Intern("bath"), 2, 12.0, 0});
  batch.events.push_back(order);
  PopulationState pop;
  pop.ObserveOrderLines(batch.events[0], batch);
  ASSERT_EQ(pop.num_categories(), 1u);
  EXPECT_EQ(pop.CategoryPriceCount(0), 2u);
  EXPECT_NEAR(pop.CategoryMedianPrice(0), 11.0, 0.11);
}

TEST(PopulationStateTest, SerializeRoundTripAndCorruption) {
  PopulationState pop;
  for (int i = 0; i < 300; ++i) {
    uint32_t id = pop.CategoryId(i % 3 == 0 ? "alpha" : i % 3 == 1 ? "beta" : "gamma");
    pop.AddUnitPrice(id, 1.0 + i * 0.37);
  }
  std::string bytes;
  pop.Serialize(&bytes);
  PopulationState back;
  ASSERT_TRUE(back.Deserialize(bytes).ok());
  std::string again;
  back.Serialize(&again);
  EXPECT_EQ(again, bytes);
  EXPECT_EQ(back.CategoryMedianPrice(1), pop.CategoryMedianPrice(1));
  EXPECT_EQ(back.FindCategory("gamma"), 2);
  for (size_t len = 0; len < bytes.size(); ++len) {
    PopulationState t;
    EXPECT_EQ(t.Deserialize(std::string_view(bytes).substr(0, len)).code(),
              Status::Code::kCorruption)
        << len;
    EXPECT_EQ(t.num_categories(), 0u);
  }
  EXPECT_GT(pop.MemoryBytes(), bytes.size());
}

}  // namespace
}  // namespace shoal
