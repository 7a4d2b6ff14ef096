// Frequent itemsets with FP-growth (Han, Pei & Yin 2000), array-based.
//
// Items are relabelled by descending support. The first level's conditional pattern bases are
// read straight from the rank-sorted baskets (a flat array plus a per-item index of positions);
// deeper levels use FP-trees stored as arrays of 24-byte node records (item, parent, count,
// child/sibling/same-item links) rather than node objects, rebuilt into per-depth workspaces that
// are reused, so mining allocates nothing per node. Top-level items are
// shared among the Context's workers and each item's itemsets are kept apart and concatenated in
// a fixed item order, so the output (content and order) does not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "affinity/baskets.h"
#include "common/context.h"
#include "common/status.h"

namespace shoal::affinity {

struct FpGrowthOptions {
  // Minimum support as a fraction of baskets, in (0, 1]. An itemset is frequent when its count
  // >= ceil(min_support x baskets) (see MinSupportCount). Ignored when min_support_count > 0.
  double min_support = 0.01;
  // Minimum support as an absolute basket count; > 0 overrides min_support.
  uint64_t min_support_count = 0;
  // Longest itemset reported; 0 = no limit.
  uint32_t max_length = 0;
};

// Frequent itemsets with their basket counts, CSR: itemset k holds
// items[offsets[k] .. offsets[k + 1]), sorted by ascending ItemId.
struct FrequentItemsets {
  uint64_t num_baskets = 0;
  // The absolute threshold that was applied (count >= min_count).
  uint64_t min_count = 0;
  std::vector<uint64_t> offsets = {0};
  std::vector<ItemId> items;
  std::vector<uint64_t> counts;

  size_t size() const { return counts.size(); }
  std::span<const ItemId> Itemset(size_t k) const {
    return {items.data() + offsets[k], items.data() + offsets[k + 1]};
  }
  double Support(size_t k) const {
    return num_baskets == 0 ? 0.0 : static_cast<double>(counts[k]) / num_baskets;
  }
  // Number of itemsets of each length (index = length; index 0 unused).
  std::vector<uint64_t> CountByLength() const;
  // Reorders into the canonical order: by length, then lexicographically by item ids.
  void SortCanonical();
};

// The absolute count threshold for a fractional support: ceil(fraction x baskets), computed with a
// relative tolerance of 1e-9 so that e.g. 0.01 x 100 gives 1 and not 2; at least 1.
// Groceries: 0.001 x 9,835 = 9.835 -> 10 (arules' smallest rule support is 10/9835).
uint64_t MinSupportCount(double fraction, uint64_t num_baskets);

// Mines every itemset whose count reaches the threshold (and whose length is within max_length).
// Uses ctx.Threads() workers. InvalidArgument when min_support is outside (0, 1] and no count is
// given. The itemset order is deterministic for a given store and options, whatever the threads.
Result<FrequentItemsets> MineFrequentItemsets(const BasketStore& baskets,
                                              const FpGrowthOptions& options, const Context& ctx);

}  // namespace shoal::affinity
