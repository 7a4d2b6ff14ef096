#include "affinity/rules.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace shoal::affinity {
namespace {

const std::string kGroceries = std::string(SHOAL_SHARED_DATA) + "/groceries/groceries.csv";

struct Mined {
  BasketStore baskets;
  RuleSet rules;
};

Mined MineRules(double support, double confidence, uint32_t min_length = 1, int threads = 2) {
  Mined mined;
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  EXPECT_TRUE(baskets.ok());
  mined.baskets = std::move(baskets).value();
  FpGrowthOptions fp;
  fp.min_support = support;
  Context ctx;
  ctx.threads = threads;
  Result<FrequentItemsets> sets = MineFrequentItemsets(mined.baskets, fp, ctx);
  EXPECT_TRUE(sets.ok());
  RuleOptions options;
  options.min_confidence = confidence;
  options.min_length = min_length;
  Result<RuleSet> rules = GenerateRules(*sets, options, ctx);
  EXPECT_TRUE(rules.ok()) << rules.status().ToString();
  mined.rules = std::move(rules).value();
  return mined;
}

// Finds the rule printed as `text`, or returns size().
size_t FindRule(const Mined& mined, const std::string& text) {
  for (size_t rule = 0; rule < mined.rules.size(); ++rule) {
    if (FormatRule(mined.rules, rule, mined.baskets.dictionary()) == text) return rule;
  }
  return mined.rules.size();
}

// arulesViz vignette: apriori(Groceries, support = 0.001, confidence = 0.5).
TEST(GroceriesRulesTest, Support0001Confidence05MatchesArules) {
  Mined mined = MineRules(0.001, 0.5);
  EXPECT_EQ(mined.rules.size(), 5668u);
  EXPECT_EQ(mined.rules.CountByLength(),
            (std::vector<uint64_t>{0, 0, 11, 1461, 3211, 939, 46}));
  SortRules(&mined.rules, RuleMeasure::kLift);
  const ItemDictionary& dictionary = mined.baskets.dictionary();
  EXPECT_EQ(FormatRule(mined.rules, 0, dictionary),
            "{Instant food products, soda} => {hamburger meat}");
  EXPECT_NEAR(mined.rules.lift[0], 18.996, 0.0005);
  EXPECT_NEAR(mined.rules.lift[0], 18.9957, 0.00005);
  EXPECT_EQ(mined.rules.counts[0], 12u);
  EXPECT_NEAR(mined.rules.support[0], 0.001220, 5e-7);
  EXPECT_NEAR(mined.rules.confidence[0], 0.6316, 5e-5);
  EXPECT_EQ(FormatRule(mined.rules, 1, dictionary), "{popcorn, soda} => {salty snack}");
  EXPECT_NEAR(mined.rules.lift[1], 16.6978, 0.00005);
  EXPECT_EQ(FormatRule(mined.rules, 2, dictionary), "{baking powder, flour} => {sugar}");
  EXPECT_NEAR(mined.rules.lift[2], 16.4081, 0.00005);
  size_t honey = FindRule(mined, "{honey} => {whole milk}");
  ASSERT_LT(honey, mined.rules.size());
  EXPECT_NEAR(mined.rules.support[honey], 0.001118454, 1e-9);
  EXPECT_NEAR(mined.rules.confidence[honey], 0.7333333, 1e-7);
  EXPECT_NEAR(mined.rules.lift[honey], 2.870009, 1e-6);
}

// mlxtend association_rules(metric="confidence", min_threshold=0.5) keeps every split with a
// non-empty antecedent and consequent: 5,829 rules at support 0.001 (shared/peers tables).
TEST(GroceriesRulesTest, MultiItemConsequentsMatchMlxtendCount) {
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  ASSERT_TRUE(baskets.ok());
  FpGrowthOptions fp;
  fp.min_support = 0.001;
  Result<FrequentItemsets> sets = MineFrequentItemsets(*baskets, fp, Context{});
  ASSERT_TRUE(sets.ok());
  RuleOptions options;
  options.min_confidence = 0.5;
  options.min_length = 2;
  options.max_consequent_length = 10;
  Result<RuleSet> rules = GenerateRules(*sets, options, Context{});
  ASSERT_TRUE(rules.ok());
  EXPECT_EQ(rules->size(), 5829u);
  size_t multi = 0;
  for (size_t rule = 0; rule < rules->size(); ++rule) multi += rules->Consequent(rule).size() > 1;
  EXPECT_EQ(multi, 5829u - 5668u);
}

TEST(GroceriesRulesTest, Support0005Confidence05Gives120Rules) {
  Mined mined = MineRules(0.005, 0.5);
  EXPECT_EQ(mined.rules.size(), 120u);
  EXPECT_EQ(mined.rules.CountByLength(), (std::vector<uint64_t>{0, 0, 1, 98, 21}));
  SortRules(&mined.rules, RuleMeasure::kLift);
  EXPECT_EQ(FormatRule(mined.rules, 0, mined.baskets.dictionary()),
            "{curd, tropical fruit} => {yogurt}");
  EXPECT_NEAR(mined.rules.lift[0], 3.6906, 0.00005);
}

// Lantz, "Machine Learning with R": support 0.006, confidence 0.25, minlen 2 -> 463 rules.
TEST(GroceriesRulesTest, Support0006Confidence025Minlen2Gives463Rules) {
  Mined mined = MineRules(0.006, 0.25, 2);
  EXPECT_EQ(mined.rules.size(), 463u);
  EXPECT_EQ(mined.rules.CountByLength(), (std::vector<uint64_t>{0, 0, 150, 297, 16}));
  SortRules(&mined.rules, RuleMeasure::kLift);
  EXPECT_EQ(FormatRule(mined.rules, 0, mined.baskets.dictionary()),
            "{herbs} => {root vegetables}");
  EXPECT_EQ(mined.rules.counts[0], 69u);
  EXPECT_NEAR(mined.rules.lift[0], 3.9565, 0.00005);
  size_t plants = FindRule(mined, "{pot plants} => {whole milk}");
  ASSERT_LT(plants, mined.rules.size());
  EXPECT_EQ(mined.rules.counts[plants], 68u);
  EXPECT_NEAR(mined.rules.confidence[plants], 0.4, 1e-12);
  EXPECT_NEAR(mined.rules.lift[plants], 1.5654596, 1e-7);
}

TEST(GroceriesRulesTest, Support0001Confidence08Gives410Rules) {
  Mined mined = MineRules(0.001, 0.8);
  EXPECT_EQ(mined.rules.size(), 410u);
  EXPECT_EQ(mined.rules.CountByLength(), (std::vector<uint64_t>{0, 0, 0, 29, 229, 140, 12}));
}

// arules emits {} => {y} when minlen = 1 and supp(y) >= minconf; whole milk is in 25.6%.
TEST(GroceriesRulesTest, EmptyAntecedentFollowsArules) {
  Mined with_empty = MineRules(0.01, 0.25, 1);
  size_t milk = FindRule(with_empty, "{} => {whole milk}");
  ASSERT_LT(milk, with_empty.rules.size());
  EXPECT_NEAR(with_empty.rules.confidence[milk], 2513.0 / 9835.0, 1e-12);
  EXPECT_DOUBLE_EQ(with_empty.rules.lift[milk], 1.0);
  EXPECT_EQ(with_empty.rules.antecedent_counts[milk], 9835u);
  EXPECT_EQ(with_empty.rules.CountByLength()[1], 1u);  // only whole milk reaches 0.25
  Mined without = MineRules(0.01, 0.25, 2);
  EXPECT_EQ(FindRule(without, "{} => {whole milk}"), without.rules.size());
  EXPECT_EQ(without.rules.size() + 1, with_empty.rules.size());
}

TEST(GroceriesRulesTest, SameRulesWithOneAndTwoThreads) {
  Mined one = MineRules(0.001, 0.1, 1, 1);
  Mined two = MineRules(0.001, 0.1, 1, 2);
  ASSERT_GT(one.rules.size(), 4096u);  // large enough for the parallel split
  EXPECT_EQ(one.rules.antecedent_items, two.rules.antecedent_items);
  EXPECT_EQ(one.rules.consequent_items, two.rules.consequent_items);
  EXPECT_EQ(one.rules.counts, two.rules.counts);
  EXPECT_EQ(one.rules.lift, two.rules.lift);
  SortRules(&one.rules, RuleMeasure::kConfidence);
  SortRules(&two.rules, RuleMeasure::kConfidence);
  EXPECT_EQ(one.rules.antecedent_items, two.rules.antecedent_items);
  EXPECT_EQ(one.rules.consequent_offsets, two.rules.consequent_offsets);
  for (size_t rule = 1; rule < one.rules.size(); ++rule) {
    ASSERT_GE(one.rules.confidence[rule - 1], one.rules.confidence[rule]);
  }
}

// Hand example: 5 baskets {a,b} {a,b,c} {a,c} {b} {a,b}.
//   count: a 4, b 4, c 2, ab 3, ac 2, bc 1, abc 1.
class HandRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<BasketStore> baskets = ParseBaskets("a,b\na,b,c\na,c\nb\na,b\n");
    ASSERT_TRUE(baskets.ok());
    baskets_ = std::move(baskets).value();
    FpGrowthOptions fp;
    fp.min_support_count = 1;
    Result<FrequentItemsets> sets = MineFrequentItemsets(baskets_, fp, Context{});
    ASSERT_TRUE(sets.ok());
    EXPECT_EQ(sets->size(), 7u);
    sets_ = std::move(sets).value();
  }
  RuleSet Rules(RuleOptions options) {
    Result<RuleSet> rules = GenerateRules(sets_, options, Context{});
    EXPECT_TRUE(rules.ok());
    return std::move(rules).value();
  }
  size_t Find(const RuleSet& rules, const std::string& text) {
    for (size_t rule = 0; rule < rules.size(); ++rule) {
      if (FormatRule(rules, rule, baskets_.dictionary()) == text) return rule;
    }
    ADD_FAILURE() << "no rule " << text;
    return 0;
  }
  BasketStore baskets_;
  FrequentItemsets sets_;
};

TEST_F(HandRulesTest, MeasuresAreExact) {
  RuleOptions options;
  options.min_confidence = 0.0;
  RuleSet rules = Rules(options);
  // 3 empty-antecedent rules + 6 of the pairs + 3 of abc.
  EXPECT_EQ(rules.size(), 12u);
  size_t ab = Find(rules, "{a} => {b}");
  EXPECT_DOUBLE_EQ(rules.support[ab], 0.6);
  EXPECT_DOUBLE_EQ(rules.confidence[ab], 0.75);
  EXPECT_DOUBLE_EQ(rules.lift[ab], 0.9375);
  EXPECT_NEAR(rules.leverage[ab], 0.6 - 0.8 * 0.8, 1e-15);
  EXPECT_NEAR(rules.conviction[ab], (1 - 0.8) / (1 - 0.75), 1e-15);
  size_t ca = Find(rules, "{c} => {a}");
  EXPECT_DOUBLE_EQ(rules.confidence[ca], 1.0);
  EXPECT_DOUBLE_EQ(rules.lift[ca], 1.25);
  EXPECT_NEAR(rules.leverage[ca], 0.4 - 0.4 * 0.8, 1e-15);
  EXPECT_TRUE(std::isinf(rules.conviction[ca]) && rules.conviction[ca] > 0);
  EXPECT_EQ(FormatMeasure(rules.conviction[ca]), "inf");
  EXPECT_EQ(FormatMeasure(0.9375), "0.9375");
  size_t bc_a = Find(rules, "{b, c} => {a}");
  EXPECT_EQ(rules.counts[bc_a], 1u);
  EXPECT_EQ(rules.antecedent_counts[bc_a], 1u);
  EXPECT_EQ(rules.consequent_counts[bc_a], 4u);
  size_t empty_c = Find(rules, "{} => {c}");
  EXPECT_DOUBLE_EQ(rules.confidence[empty_c], 0.4);
  EXPECT_DOUBLE_EQ(rules.leverage[empty_c], 0.0);
}

TEST_F(HandRulesTest, FiltersAndMultiItemConsequents) {
  RuleOptions options;
  options.min_confidence = 0.5;
  options.min_length = 2;
  RuleSet rules = Rules(options);
  // a=>b .75, b=>a .75, a=>c .5, c=>a 1, b=>c .25 (out), c=>b .5, ab=>c 1/3 (out),
  // ac=>b .5, bc=>a 1.
  EXPECT_EQ(rules.size(), 7u);
  options.min_lift = 1.0;  // drops a=>b, b=>a (0.9375), c=>b (0.625), ac=>b (0.625)
  EXPECT_EQ(Rules(options).size(), 3u);
  options.min_lift = 0.0;
  options.max_length = 2;
  EXPECT_EQ(Rules(options).size(), 5u);

  RuleOptions multi;
  multi.min_confidence = 0.0;
  multi.min_length = 2;
  multi.max_consequent_length = 2;
  RuleSet with_pairs = Rules(multi);
  EXPECT_EQ(with_pairs.size(), 6u + 6u);  // pairs: 6; abc: 3 single + 3 double consequents
  size_t a_bc = Find(with_pairs, "{a} => {b, c}");
  EXPECT_DOUBLE_EQ(with_pairs.confidence[a_bc], 0.25);
  EXPECT_DOUBLE_EQ(with_pairs.lift[a_bc], 1.25);  // 0.25 / supp(bc) = 0.25 / 0.2
  EXPECT_EQ(with_pairs.consequent_counts[a_bc], 1u);
}

TEST_F(HandRulesTest, SortIsTotalAndDeterministic) {
  RuleOptions options;
  options.min_confidence = 0.0;
  RuleSet rules = Rules(options);
  SortRules(&rules, RuleMeasure::kLift);
  for (size_t rule = 1; rule < rules.size(); ++rule) {
    ASSERT_GE(rules.lift[rule - 1], rules.lift[rule]);
  }
  // Lift 1.25 ties: c=>a (count 2, conf 1), a=>c (count 2, conf 0.5), bc=>a (count 1, conf 1),
  // a=>bc is not generated (one-item consequents): count first, then confidence.
  EXPECT_EQ(FormatRule(rules, 0, baskets_.dictionary()), "{c} => {a}");
  EXPECT_EQ(FormatRule(rules, 1, baskets_.dictionary()), "{a} => {c}");
  EXPECT_EQ(FormatRule(rules, 2, baskets_.dictionary()), "{b, c} => {a}");
  RuleSet again = Rules(options);
  SortRules(&again, RuleMeasure::kLift);
  EXPECT_EQ(rules.antecedent_items, again.antecedent_items);
  EXPECT_EQ(rules.consequent_items, again.consequent_items);
  SortRules(&rules, RuleMeasure::kConviction);
  EXPECT_TRUE(std::isinf(rules.conviction[0]));
}

TEST_F(HandRulesTest, RejectsBadOptionsAndOpenItemsets) {
  RuleOptions options;
  options.min_confidence = 1.5;
  EXPECT_FALSE(GenerateRules(sets_, options, Context{}).ok());
  FrequentItemsets missing = sets_;
  missing.SortCanonical();  // singles first: drop them so pairs lack their subsets
  FrequentItemsets only_long;
  only_long.num_baskets = missing.num_baskets;
  for (size_t k = 0; k < missing.size(); ++k) {
    if (missing.Itemset(k).size() < 2) continue;
    std::span<const ItemId> set = missing.Itemset(k);
    only_long.items.insert(only_long.items.end(), set.begin(), set.end());
    only_long.offsets.push_back(only_long.items.size());
    only_long.counts.push_back(missing.counts[k]);
  }
  Result<RuleSet> rules = GenerateRules(only_long, RuleOptions{}, Context{});
  EXPECT_FALSE(rules.ok());
  EXPECT_EQ(rules.status().code(), Status::Code::kInvalidArgument);
}

}  // namespace
}  // namespace shoal::affinity
