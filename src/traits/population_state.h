// PopulationState: the shop-wide, mergeable state the per-customer traits are relative to: the
// category dictionary (name <-> dense id) and each category's unit-price distribution (for
// premium_index). One instance per shop (or per ingest shard, merged with Combine).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "ingest/event.h"

namespace shoal {

class PopulationState {
 public:
  // Width of a unit-price histogram bin in natural-log units. A median is reported at bin
  // centres, so it is within +-0.5% of the exact median of the same prices.
  static constexpr double kLogPriceBinWidth = 0.01;

  PopulationState() = default;

  // Id of category `name`, adding it when new. Ids are dense (0, 1, ...) in order of first
  // sight. Not thread-safe (one writer); an empty name is a category like any other, callers
  // skip it.
  uint32_t CategoryId(std::string_view name);
  // Id of `name` if known, else -1. Thread-safe with other const calls.
  int64_t FindCategory(std::string_view name) const;
  // Name of category `id`; empty for an unknown id.
  std::string_view CategoryName(uint32_t id) const;
  size_t num_categories() const { return names_.size(); }

  // Records one order line's unit price in category `id` (an id from CategoryId). Prices that
  // are not finite and > 0 are ignored.
  void AddUnitPrice(uint32_t id, double unit_price);
  // Records the unit prices of an order's lines (the population side of CustomerState::Update
  // for an order), for orders that have no profile (anonymous baskets). Not thread-safe.
  void ObserveOrderLines(const Event& order, const EventBatch& batch);
  // Number of prices recorded for category `id`.
  uint64_t CategoryPriceCount(uint32_t id) const;
  // Median unit price of category `id` from its histogram (mean of the two middle bin centres
  // for an even count); NaN when the category has no prices.
  double CategoryMedianPrice(uint32_t id) const;
  // log(CategoryMedianPrice(id)) of every category, indexed by id (NaN where no prices).
  // O(total histogram bins); compute once per batch of trait computations.
  std::vector<double> CategoryLogMedians() const;

  // Adds `other` into this state: categories unknown here are appended in other's id order.
  // If `other_to_this` is given it receives, for every id of `other`, the id in this state
  // (CustomerState::RemapCategories applies it to states built against `other`).
  void Combine(const PopulationState& other, std::vector<uint32_t>* other_to_this = nullptr);

  // Compact binary form appended to *out; Deserialize replaces this state, Corruption on bad
  // input (this state is then empty).
  void Serialize(std::string* out) const;
  Status Deserialize(std::string_view in);
  size_t MemoryBytes() const;

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  struct PriceHistogram {
    int32_t first_bin = 0;         // bin index of counts[0]
    std::vector<uint32_t> counts;  // counts per bin, contiguous from first_bin
    uint64_t total = 0;
    void Add(int32_t bin, uint64_t n);
  };
  double HistogramQuantileValue(const PriceHistogram& h, uint64_t rank) const;

  std::vector<std::string> names_;
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> ids_;
  std::vector<PriceHistogram> prices_;  // by category id
};

}  // namespace shoal
