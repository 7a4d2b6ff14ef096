// Turning rules and baskets into per-customer and per-segment suggestions: rule-based
// recommendations from a customer's purchase history, and the items a segment buys more often
// than the population (over-indexing).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "affinity/baskets.h"
#include "affinity/rules.h"
#include "common/context.h"
#include "common/status.h"

namespace shoal::affinity {

// How a firing rule scores the items of its consequent.
enum class RecommendScore {
  kConfidenceTimesLift,  // confidence x lift: likely and better than chance (default)
  kConfidence,           // the conditional probability alone
  kLift,                 // how much the antecedent raises the item's probability
};

struct RecommendOptions {
  // Most items returned.
  size_t top_n = 10;
  // The score of one rule; an item's score is the best over the rules that fire for it.
  RecommendScore score = RecommendScore::kConfidenceTimesLift;
  // Let rules with an empty antecedent ({} => {y}, pure popularity) fire for every customer.
  bool use_empty_antecedent = false;
};

struct Recommendation {
  ItemId item = 0;
  double score = 0.0;
  // Index into the RuleSet of the rule that gave the best score (the justification).
  size_t rule = 0;
};

// Recommends items from a fixed rule set. A rule fires when its whole antecedent is in the
// customer's history; every item of its consequent becomes a candidate unless already bought
// (replenishment items stay candidates). Candidates are ranked by score, then the justifying
// rule's confidence, then its count, then ascending item id; the justifying rule of an item is
// the best one in that same order (ties: lower rule index).
class RuleRecommender {
 public:
  // Indexes `rules` by antecedent. `rules` must outlive the recommender and stay unchanged.
  explicit RuleRecommender(const RuleSet& rules);

  // `history`: items the customer bought (any order, repeats allowed). `replenishment`: items
  // that may be recommended even when in the history (consumables bought again). Returns at
  // most options.top_n items, best first. Thread-safe; allocates only per call.
  std::vector<Recommendation> Recommend(std::span<const ItemId> history,
                                        std::span<const ItemId> replenishment,
                                        const RecommendOptions& options = {}) const;

 private:
  const RuleSet& rules_;
  // Rules keyed by their smallest antecedent item: rules of item i are
  // bucket_rules_[bucket_offsets_[i] .. bucket_offsets_[i + 1]).
  std::vector<uint64_t> bucket_offsets_;
  std::vector<uint32_t> bucket_rules_;
  std::vector<uint32_t> empty_antecedent_rules_;
};

// A segment label for a basket that belongs to no segment (it still counts in the population).
inline constexpr uint32_t kNoSegment = 0xFFFFFFFFu;

struct OverIndexOptions {
  // Keep an item for a segment only if at least this many of the segment's baskets hold it.
  uint64_t min_count = 10;
  // Most items kept per segment.
  size_t top_n = 20;
};

struct OverIndexedItem {
  uint32_t segment = 0;
  ItemId item = 0;
  uint64_t segment_count = 0;     // baskets of the segment holding the item
  uint64_t segment_baskets = 0;   // baskets of the segment
  uint64_t population_count = 0;  // all baskets holding the item
  double segment_share = 0.0;     // segment_count / segment_baskets
  double population_share = 0.0;  // population_count / all baskets
  double lift = 0.0;              // segment_share / population_share
};

// For each segment 0 .. num_segments - 1, the items with the highest lift of their share of the
// segment's baskets over their share of all baskets (the population includes the segment
// itself and kNoSegment baskets). Per segment: lift descending, then segment_count descending,
// then ascending item id; segments in ascending order. InvalidArgument when basket_segment's
// size differs from the number of baskets or a label is >= num_segments (and not kNoSegment).
// Counting is split over ctx.Threads() workers; integer counts make it thread-count independent.
Result<std::vector<OverIndexedItem>> OverIndexedItems(const BasketStore& baskets,
                                                      std::span<const uint32_t> basket_segment,
                                                      uint32_t num_segments,
                                                      const OverIndexOptions& options,
                                                      const Context& ctx);

}  // namespace shoal::affinity
