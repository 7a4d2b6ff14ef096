#include "affinity/fpgrowth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace shoal::affinity {
namespace {

const std::string kGroceries = std::string(SHOAL_SHARED_DATA) + "/groceries/groceries.csv";

using ItemsetCounts = std::map<std::vector<ItemId>, uint64_t>;

ItemsetCounts ToMap(const FrequentItemsets& sets) {
  ItemsetCounts map;
  for (size_t k = 0; k < sets.size(); ++k) {
    std::span<const ItemId> set = sets.Itemset(k);
    EXPECT_TRUE(std::is_sorted(set.begin(), set.end()));
    auto [it, inserted] = map.emplace(std::vector<ItemId>(set.begin(), set.end()), sets.counts[k]);
    EXPECT_TRUE(inserted) << "itemset reported twice";
  }
  return map;
}

// Reference: level-wise candidate generation (join on a common (k-1)-prefix, prune candidates
// with an infrequent k-subset) and exact counting with one bitset per item.
ItemsetCounts BruteForce(const BasketStore& baskets, uint64_t min_count, size_t max_length) {
  const size_t num_baskets = baskets.num_baskets();
  const size_t words = (num_baskets + 63) / 64;
  const size_t num_items = baskets.dictionary().size();
  std::vector<std::vector<uint64_t>> bits(num_items, std::vector<uint64_t>(words, 0));
  for (size_t b = 0; b < num_baskets; ++b) {
    for (ItemId id : baskets.Basket(b)) bits[id][b / 64] |= uint64_t{1} << (b % 64);
  }
  auto count = [&](const std::vector<ItemId>& set) {
    uint64_t total = 0;
    for (size_t w = 0; w < words; ++w) {
      uint64_t word = ~uint64_t{0};
      for (ItemId id : set) word &= bits[id][w];
      total += static_cast<uint64_t>(__builtin_popcountll(word));
    }
    return total;
  };
  ItemsetCounts result;
  std::set<std::vector<ItemId>> level;
  for (ItemId id = 0; id < num_items; ++id) {
    uint64_t c = count({id});
    if (c >= min_count) {
      result[{id}] = c;
      level.insert({id});
    }
  }
  for (size_t length = 2; !level.empty() && (max_length == 0 || length <= max_length); ++length) {
    std::set<std::vector<ItemId>> next;
    std::vector<std::vector<ItemId>> sets(level.begin(), level.end());
    for (size_t a = 0; a < sets.size(); ++a) {
      for (size_t b = a + 1; b < sets.size(); ++b) {
        if (!std::equal(sets[a].begin(), sets[a].end() - 1, sets[b].begin())) break;
        std::vector<ItemId> candidate = sets[a];
        candidate.push_back(sets[b].back());
        bool all_subsets = true;
        for (size_t drop = 0; drop + 2 < candidate.size() && all_subsets; ++drop) {
          std::vector<ItemId> subset = candidate;
          subset.erase(subset.begin() + static_cast<std::ptrdiff_t>(drop));
          all_subsets = level.count(subset) > 0;
        }
        if (!all_subsets) continue;
        uint64_t c = count(candidate);
        if (c >= min_count) {
          result[candidate] = c;
          next.insert(candidate);
        }
      }
    }
    level = std::move(next);
  }
  return result;
}

FrequentItemsets Mine(const BasketStore& baskets, double support, int threads,
                      uint32_t max_length = 0) {
  FpGrowthOptions options;
  options.min_support = support;
  options.max_length = max_length;
  Context ctx;
  ctx.threads = threads;
  Result<FrequentItemsets> sets = MineFrequentItemsets(baskets, options, ctx);
  EXPECT_TRUE(sets.ok()) << sets.status().ToString();
  return std::move(sets).value();
}

TEST(MinSupportCountTest, IsCeilingOfFractionTimesBaskets) {
  EXPECT_EQ(MinSupportCount(0.001, 9835), 10u);  // 9.835 -> 10, as arules' effective threshold
  EXPECT_EQ(MinSupportCount(0.005, 9835), 50u);  // 49.175
  EXPECT_EQ(MinSupportCount(0.006, 9835), 60u);  // 59.01
  EXPECT_EQ(MinSupportCount(0.01, 100), 1u);     // 1.0000000000000002 in doubles
  EXPECT_EQ(MinSupportCount(0.07, 100), 7u);     // 7.000000000000001 in doubles
  EXPECT_EQ(MinSupportCount(0.0, 100), 1u);
  EXPECT_EQ(MinSupportCount(1.0, 9835), 9835u);
}

TEST(FpGrowthTest, RejectsBadSupport) {
  BasketStore baskets;
  FpGrowthOptions options;
  options.min_support = 0.0;
  EXPECT_FALSE(MineFrequentItemsets(baskets, options, Context{}).ok());
  options.min_support = 1.5;
  EXPECT_FALSE(MineFrequentItemsets(baskets, options, Context{}).ok());
  options.min_support_count = 3;  // a count overrides the fraction
  EXPECT_TRUE(MineFrequentItemsets(baskets, options, Context{}).ok());
}

TEST(FpGrowthTest, GroceriesEqualsBruteForceAtThreeSupports) {
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  ASSERT_TRUE(baskets.ok());
  for (double support : {0.01, 0.005, 0.003}) {
    FrequentItemsets sets = Mine(*baskets, support, 2);
    ItemsetCounts expected = BruteForce(*baskets, MinSupportCount(support, 9835), 0);
    EXPECT_EQ(sets.size(), expected.size()) << support;
    EXPECT_TRUE(ToMap(sets) == expected) << "itemsets or counts differ at " << support;
  }
}

// Counts in shared/data/groceries/README.md (arules, mlxtend and Borgelt agree on them).
TEST(FpGrowthTest, GroceriesItemsetCountsMatchPublished) {
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  ASSERT_TRUE(baskets.ok());
  EXPECT_EQ(Mine(*baskets, 0.001, 2).size(), 13492u);
  EXPECT_EQ(Mine(*baskets, 0.005, 2).size(), 1001u);
  EXPECT_EQ(Mine(*baskets, 0.006, 2).size(), 747u);
  EXPECT_EQ(Mine(*baskets, 0.01, 2).size(), 333u);
  FrequentItemsets singles = Mine(*baskets, 0.001, 2, 1);
  EXPECT_EQ(singles.size(), 157u);  // "frequent items" of the 0.001 row
}

TEST(FpGrowthTest, SameOutputWithOneAndTwoThreads) {
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  ASSERT_TRUE(baskets.ok());
  for (double support : {0.001, 0.0005}) {
    FrequentItemsets one = Mine(*baskets, support, 1);
    FrequentItemsets two = Mine(*baskets, support, 2);
    FrequentItemsets four = Mine(*baskets, support, 4);
    EXPECT_EQ(one.offsets, two.offsets);
    EXPECT_EQ(one.items, two.items);
    EXPECT_EQ(one.counts, two.counts);
    EXPECT_EQ(one.items, four.items);
    EXPECT_EQ(one.counts, four.counts);
  }
}

TEST(FpGrowthTest, MaxLengthCutsLongerItemsets) {
  Result<BasketStore> baskets = LoadBasketFile(kGroceries);
  ASSERT_TRUE(baskets.ok());
  FrequentItemsets sets = Mine(*baskets, 0.002, 2, 3);
  ItemsetCounts expected = BruteForce(*baskets, MinSupportCount(0.002, 9835), 3);
  EXPECT_TRUE(ToMap(sets) == expected);
  std::vector<uint64_t> by_length = sets.CountByLength();
  EXPECT_EQ(by_length.size(), 4u);  // lengths 1..3 only
}

// Random baskets with planted bundles, so that long itemsets and deep conditional trees occur.
BasketStore RandomBaskets(uint64_t seed, size_t num_baskets, uint32_t num_items) {
  std::mt19937_64 rng(seed);
  BasketStore baskets;
  for (uint32_t id = 0; id < num_items; ++id) {
    std::string label = "i";
    label += std::to_string(id);
    baskets.mutable_dictionary().Intern(label);
  }
  std::vector<std::vector<ItemId>> bundles = {{0, 1, 2, 3, 4, 5}, {2, 7, 9}, {10, 11, 12, 13}};
  std::vector<ItemId> basket;
  for (size_t b = 0; b < num_baskets; ++b) {
    basket.clear();
    size_t size = rng() % 7;
    for (size_t k = 0; k < size; ++k) basket.push_back(static_cast<ItemId>(rng() % num_items));
    if (rng() % 3 == 0) {
      for (ItemId id : bundles[rng() % bundles.size()]) {
        if (rng() % 10 < 8) basket.push_back(id);
      }
    }
    baskets.AddBasket(basket);
  }
  return baskets;
}

TEST(FpGrowthTest, RandomBasketsEqualBruteForce) {
  for (uint64_t seed : {1, 2, 3, 4}) {
    BasketStore baskets = RandomBaskets(seed, 300 + 200 * seed, 12 + 4 * static_cast<uint32_t>(seed));
    for (uint64_t min_count : {2, 5, 20}) {
      FpGrowthOptions options;
      options.min_support_count = min_count;
      for (int threads : {1, 2}) {
        Context ctx;
        ctx.threads = threads;
        Result<FrequentItemsets> sets = MineFrequentItemsets(baskets, options, ctx);
        ASSERT_TRUE(sets.ok());
        EXPECT_EQ(sets->min_count, min_count);
        EXPECT_TRUE(ToMap(*sets) == BruteForce(baskets, min_count, 0))
            << "seed " << seed << " min_count " << min_count << " threads " << threads;
      }
    }
  }
}

// Enough baskets for the preparation step to split across two workers.
TEST(FpGrowthTest, LargeRandomBasketsEqualBruteForceWithOneAndTwoThreads) {
  BasketStore baskets = RandomBaskets(11, 150000, 30);
  FpGrowthOptions options;
  options.min_support_count = 400;
  Context one, two;
  one.threads = 1;
  two.threads = 2;
  Result<FrequentItemsets> a = MineFrequentItemsets(baskets, options, one);
  Result<FrequentItemsets> b = MineFrequentItemsets(baskets, options, two);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->items, b->items);
  EXPECT_EQ(a->counts, b->counts);
  EXPECT_GT(a->CountByLength().size(), 5u);  // the planted 6-item bundle makes long itemsets
  EXPECT_TRUE(ToMap(*b) == BruteForce(baskets, 400, 0));
}

// Many items, few per basket: conditional bases touch a small part of the item range (the
// sparse counting path).
TEST(FpGrowthTest, ManySparseItemsEqualBruteForce) {
  BasketStore baskets = RandomBaskets(5, 4000, 300);
  for (uint64_t min_count : {2, 4}) {
    FpGrowthOptions options;
    options.min_support_count = min_count;
    Context two;
    two.threads = 2;
    Result<FrequentItemsets> sets = MineFrequentItemsets(baskets, options, two);
    ASSERT_TRUE(sets.ok());
    EXPECT_TRUE(ToMap(*sets) == BruteForce(baskets, min_count, 0)) << min_count;
  }
}

TEST(FpGrowthTest, SortCanonicalOrdersByLengthThenItems) {
  BasketStore baskets = RandomBaskets(9, 400, 14);
  FpGrowthOptions options;
  options.min_support_count = 10;
  Result<FrequentItemsets> sets = MineFrequentItemsets(baskets, options, Context{});
  ASSERT_TRUE(sets.ok());
  ItemsetCounts before = ToMap(*sets);
  sets->SortCanonical();
  EXPECT_TRUE(ToMap(*sets) == before);
  for (size_t k = 1; k < sets->size(); ++k) {
    std::span<const ItemId> a = sets->Itemset(k - 1), b = sets->Itemset(k);
    ASSERT_TRUE(a.size() < b.size() ||
                (a.size() == b.size() &&
                 std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end())));
  }
}

}  // namespace
}  // namespace shoal::affinity
