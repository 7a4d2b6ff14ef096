// Association rules X => Y from frequent itemsets, with arules semantics by default: one item
// on the right, rule support = support of X u Y, rule length = |X| + |Y|, and rules with an empty
// left side ({} => {y}, confidence = support of y) when min_length <= 1.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "affinity/baskets.h"
#include "affinity/fpgrowth.h"
#include "common/context.h"
#include "common/status.h"

namespace shoal::affinity {

// The interest measures a rule carries; also the sort keys.
enum class RuleMeasure { kSupport, kConfidence, kLift, kLeverage, kConviction };

struct RuleOptions {
  // Keep rules with confidence >= this (arules' default is 0.8). A relative tolerance of 1e-12
  // absorbs floating rounding at exact ratios.
  double min_confidence = 0.8;
  // Keep rules with lift >= this; 0 = no lift filter.
  double min_lift = 0.0;
  // Shortest rule, counted as |X| + |Y| (arules minlen). 1 admits {} => {y}.
  uint32_t min_length = 1;
  // Longest rule, |X| + |Y| (arules maxlen).
  uint32_t max_length = 10;
  // Largest consequent: 1 = arules (one item on the right); k > 1 also emits every consequent of
  // 2..k items whose antecedent is non-empty (mlxtend-style multi-item consequents).
  uint32_t max_consequent_length = 1;
};

// Rules in CSR layout with their measures (one entry per rule in each measure array):
// rule r's antecedent is antecedent_items[antecedent_offsets[r] .. antecedent_offsets[r + 1]),
// its consequent likewise; both sorted by ascending ItemId.
//   support    = count(X u Y) / N           confidence = count(X u Y) / count(X)
//   lift       = confidence / supp(Y)      leverage   = supp(X u Y) - supp(X) supp(Y)
//   conviction = (1 - supp(Y)) / (1 - confidence), +infinity when confidence = 1.
// count(X) of the empty antecedent is N.
struct RuleSet {
  uint64_t num_baskets = 0;
  std::vector<uint64_t> antecedent_offsets = {0};
  std::vector<uint64_t> consequent_offsets = {0};
  std::vector<ItemId> antecedent_items;
  std::vector<ItemId> consequent_items;
  std::vector<uint64_t> counts;             // count(X u Y)
  std::vector<uint64_t> antecedent_counts;  // count(X)
  std::vector<uint64_t> consequent_counts;  // count(Y)
  std::vector<double> support, confidence, lift, leverage, conviction;

  size_t size() const { return counts.size(); }
  std::span<const ItemId> Antecedent(size_t rule) const {
    return {antecedent_items.data() + antecedent_offsets[rule],
            antecedent_items.data() + antecedent_offsets[rule + 1]};
  }
  std::span<const ItemId> Consequent(size_t rule) const {
    return {consequent_items.data() + consequent_offsets[rule],
            consequent_items.data() + consequent_offsets[rule + 1]};
  }
  // |X| + |Y|.
  size_t Length(size_t rule) const {
    return Antecedent(rule).size() + Consequent(rule).size();
  }
  double Measure(RuleMeasure measure, size_t rule) const;
  // Number of rules of each length (index = length).
  std::vector<uint64_t> CountByLength() const;
  // Appends rule `rule` of `other` (same num_baskets) to this set.
  void AppendFrom(const RuleSet& other, size_t rule);
};

// Derives every rule of `itemsets` that passes `options`. The itemsets must be closed under
// subsets (as MineFrequentItemsets returns them); InvalidArgument names a missing subset or
// a bad option. Work is split over ctx.Threads() workers in contiguous ranges and merged in
// order: rules come out itemset by itemset, in itemset order, whatever the thread count.
Result<RuleSet> GenerateRules(const FrequentItemsets& itemsets, const RuleOptions& options,
                              const Context& ctx);

// Reorders rules by `measure`, descending. Ties: higher count(X u Y), then higher confidence,
// then shorter rule, then antecedent and consequent ids lexicographically ascending -- a total
// order, so the result is deterministic.
void SortRules(RuleSet* rules, RuleMeasure measure);

// "{citrus fruit, margarine}": labels from `dictionary` in byte order (as arules prints them,
// independent of id order); "{}" for an empty set.
std::string FormatItemset(std::span<const ItemId> items, const ItemDictionary& dictionary);
// "{a, b} => {c}".
std::string FormatRule(const RuleSet& rules, size_t rule, const ItemDictionary& dictionary);
// A measure for printing: "inf" for +infinity (conviction of a confidence-1 rule), otherwise
// up to `digits` significant digits.
std::string FormatMeasure(double value, int digits = 6);

}  // namespace shoal::affinity
