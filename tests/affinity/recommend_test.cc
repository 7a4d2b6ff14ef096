#include "affinity/recommend.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace shoal::affinity {
namespace {

// Same hand example as rules_test: {a,b} {a,b,c} {a,c} {b} {a,b}. Scores (confidence x lift):
//   a=>b .703125  b=>a .703125  a=>c .625  c=>a 1.25  b=>c .15625  c=>b .3125
//   ab=>c .2777..  ac=>b .3125  bc=>a 1.25;  {}=>a .8  {}=>b .8  {}=>c .4
class RecommendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<BasketStore> baskets = ParseBaskets("a,b\na,b,c\na,c\nb\na,b\n");
    ASSERT_TRUE(baskets.ok());
    baskets_ = std::move(baskets).value();
    a_ = *baskets_.dictionary().Find("a");
    b_ = *baskets_.dictionary().Find("b");
    c_ = *baskets_.dictionary().Find("c");
    FpGrowthOptions fp;
    fp.min_support_count = 1;
    Result<FrequentItemsets> sets = MineFrequentItemsets(baskets_, fp, Context{});
    ASSERT_TRUE(sets.ok());
    RuleOptions options;
    options.min_confidence = 0.0;
    Result<RuleSet> rules = GenerateRules(*sets, options, Context{});
    ASSERT_TRUE(rules.ok());
    rules_ = std::move(rules).value();
  }
  std::string Justification(const Recommendation& recommendation) {
    return FormatRule(rules_, recommendation.rule, baskets_.dictionary());
  }
  BasketStore baskets_;
  RuleSet rules_;
  ItemId a_ = 0, b_ = 0, c_ = 0;
};

TEST_F(RecommendTest, FiresContainedAntecedentsAndRanksByScore) {
  RuleRecommender recommender(rules_);
  std::vector<Recommendation> got = recommender.Recommend(std::vector<ItemId>{a_}, {});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].item, b_);
  EXPECT_DOUBLE_EQ(got[0].score, 0.703125);
  EXPECT_EQ(Justification(got[0]), "{a} => {b}");
  EXPECT_EQ(got[1].item, c_);
  EXPECT_DOUBLE_EQ(got[1].score, 0.625);
  EXPECT_EQ(Justification(got[1]), "{a} => {c}");

  RecommendOptions by_lift;
  by_lift.score = RecommendScore::kLift;
  got = recommender.Recommend(std::vector<ItemId>{a_}, {}, by_lift);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].item, c_);  // lift 1.25 beats 0.9375
  EXPECT_DOUBLE_EQ(got[0].score, 1.25);

  RecommendOptions top_one;
  top_one.top_n = 1;
  got = recommender.Recommend(std::vector<ItemId>{c_, c_}, {}, top_one);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].item, a_);
  EXPECT_EQ(Justification(got[0]), "{c} => {a}");
}

TEST_F(RecommendTest, ExcludesBoughtItemsUnlessReplenished) {
  RuleRecommender recommender(rules_);
  // History {a, b}: only c is new; best rule for it is a=>c (.625 > ab=>c .278 > b=>c .156).
  std::vector<Recommendation> got = recommender.Recommend(std::vector<ItemId>{b_, a_}, {});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].item, c_);
  EXPECT_EQ(Justification(got[0]), "{a} => {c}");
  // b is a replenishment item: recommended again through a=>b.
  got = recommender.Recommend(std::vector<ItemId>{b_, a_}, std::vector<ItemId>{b_});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].item, b_);
  EXPECT_EQ(Justification(got[0]), "{a} => {b}");
  EXPECT_EQ(got[1].item, c_);
  // Nothing fires for an empty history; unknown ids are ignored.
  EXPECT_TRUE(recommender.Recommend({}, {}).empty());
  EXPECT_TRUE(recommender.Recommend(std::vector<ItemId>{999}, {}).empty());
}

TEST_F(RecommendTest, EmptyAntecedentRulesOnlyWhenAsked) {
  RuleRecommender recommender(rules_);
  std::vector<Recommendation> got = recommender.Recommend(std::vector<ItemId>{c_}, {});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].item, b_);
  EXPECT_DOUBLE_EQ(got[1].score, 0.3125);  // c=>b (ac=>b needs a)
  RecommendOptions popular;
  popular.use_empty_antecedent = true;
  got = recommender.Recommend(std::vector<ItemId>{c_}, {}, popular);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].item, a_);
  EXPECT_DOUBLE_EQ(got[0].score, 1.25);
  EXPECT_EQ(got[1].item, b_);
  EXPECT_DOUBLE_EQ(got[1].score, 0.8);
  EXPECT_EQ(Justification(got[1]), "{} => {b}");
}

TEST(RecommendGroceriesTest, InstantFoodAndSodaSuggestHamburgerMeat) {
  Result<BasketStore> baskets =
      LoadBasketFile(std::string(SHOAL_SHARED_DATA) + "/groceries/groceries.csv");
  ASSERT_TRUE(baskets.ok());
  FpGrowthOptions fp;
  fp.min_support = 0.001;
  Result<FrequentItemsets> sets = MineFrequentItemsets(*baskets, fp, Context{});
  ASSERT_TRUE(sets.ok());
  RuleOptions options;
  options.min_confidence = 0.5;
  Result<RuleSet> rules = GenerateRules(*sets, options, Context{});
  ASSERT_TRUE(rules.ok());
  RuleRecommender recommender(*rules);
  const ItemDictionary& dictionary = baskets->dictionary();
  std::vector<ItemId> history = {*dictionary.Find("soda"),
                                 *dictionary.Find("Instant food products")};
  std::vector<Recommendation> got = recommender.Recommend(history, {});
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(dictionary.Label(got[0].item), "hamburger meat");
  EXPECT_EQ(FormatRule(*rules, got[0].rule, dictionary),
            "{Instant food products, soda} => {hamburger meat}");
  EXPECT_NEAR(got[0].score, 0.6316 * 18.9957, 0.01);
}

// Items x, y, z. Segment 0: {x} {x,y} {x}; segment 1: {y} {y,z} {z}; no segment: {x,y,z}.
TEST(OverIndexTest, HandExample) {
  Result<BasketStore> baskets = ParseBaskets("x\nx,y\nx\ny\ny,z\nz\nx,y,z\n");
  ASSERT_TRUE(baskets.ok());
  const ItemDictionary& dictionary = baskets->dictionary();
  std::vector<uint32_t> segments = {0, 0, 0, 1, 1, 1, kNoSegment};
  OverIndexOptions options;
  options.min_count = 1;
  Result<std::vector<OverIndexedItem>> got =
      OverIndexedItems(*baskets, segments, 2, options, Context{});
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 4u);
  EXPECT_EQ((*got)[0].segment, 0u);
  EXPECT_EQ(dictionary.Label((*got)[0].item), "x");
  EXPECT_DOUBLE_EQ((*got)[0].lift, 1.0 / (4.0 / 7.0));
  EXPECT_EQ((*got)[0].segment_count, 3u);
  EXPECT_EQ((*got)[0].segment_baskets, 3u);
  EXPECT_EQ((*got)[0].population_count, 4u);
  EXPECT_EQ(dictionary.Label((*got)[1].item), "y");
  EXPECT_NEAR((*got)[1].lift, 7.0 / 12.0, 1e-15);
  EXPECT_EQ((*got)[2].segment, 1u);
  EXPECT_EQ(dictionary.Label((*got)[2].item), "z");
  EXPECT_NEAR((*got)[2].lift, 14.0 / 9.0, 1e-15);
  EXPECT_EQ(dictionary.Label((*got)[3].item), "y");
  EXPECT_NEAR((*got)[3].lift, 14.0 / 12.0, 1e-15);

  options.min_count = 2;  // drops y from segment 0 (1 basket)
  EXPECT_EQ(OverIndexedItems(*baskets, segments, 2, options, Context{})->size(), 3u);
  options.top_n = 1;
  got = OverIndexedItems(*baskets, segments, 2, options, Context{});
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ(dictionary.Label((*got)[1].item), "z");

  std::vector<uint32_t> short_labels = {0, 1};
  EXPECT_FALSE(OverIndexedItems(*baskets, short_labels, 2, options, Context{}).ok());
  segments[0] = 5;
  EXPECT_FALSE(OverIndexedItems(*baskets, segments, 2, options, Context{}).ok());
}

TEST(OverIndexTest, SameResultWithOneAndTwoThreads) {
  std::mt19937_64 rng(7);
  BasketStore baskets;
  for (int id = 0; id < 50; ++id) {
    std::string label = "p";
    label += std::to_string(id);
    baskets.mutable_dictionary().Intern(label);
  }
  std::vector<uint32_t> segments;
  std::vector<ItemId> basket;
  for (int b = 0; b < 200000; ++b) {
    const uint32_t segment = static_cast<uint32_t>(rng() % 4);
    basket.clear();
    for (int k = 0; k < 4; ++k) {
      basket.push_back(static_cast<ItemId>((rng() % 40) + (segment == 2 && k == 0 ? 10 : 0)));
    }
    baskets.AddBasket(basket);
    segments.push_back(segment);
  }
  Context one, two;
  one.threads = 1;
  two.threads = 2;
  Result<std::vector<OverIndexedItem>> a = OverIndexedItems(baskets, segments, 4, {}, one);
  Result<std::vector<OverIndexedItem>> b = OverIndexedItems(baskets, segments, 4, {}, two);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->size(), b->size());
  for (size_t k = 0; k < a->size(); ++k) {
    EXPECT_EQ((*a)[k].item, (*b)[k].item);
    EXPECT_EQ((*a)[k].segment_count, (*b)[k].segment_count);
    EXPECT_EQ((*a)[k].lift, (*b)[k].lift);
  }
  // Segment 2 alone buys items 40..49 (its first item is shifted): they over-index most.
  for (const OverIndexedItem& entry : *a) {
    if (entry.segment == 2 && entry.lift > 2.0) {
      EXPECT_GE(entry.item, 40u);
    }
  }
  EXPECT_EQ((*a)[40].segment, 2u);
  EXPECT_GE((*a)[40].item, 40u);
}

}  // namespace
}  // namespace shoal::affinity
