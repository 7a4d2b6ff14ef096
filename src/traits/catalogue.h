// TraitCatalogue: the fixed list of built-in traits (docs/traits.md) plus the workspace's user
// traits, computed from CustomerStates as of a time into a dense matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "traits/customer_state.h"
#include "traits/population_state.h"
#include "traits/trait_config.h"

namespace shoal {

struct TraitInfo {
  std::string name;         // snake_case, unique
  std::string description;  // one line, the definition
  std::string unit;         // "days", "count", "currency", "ratio", "share", "nats", ...
};

// Dense, column-major: values[trait_idx * num_customers + customer_idx]. NaN = undefined.
struct TraitMatrix {
  size_t num_customers = 0;
  std::vector<TraitInfo> traits;
  std::vector<double> values;

  std::span<const double> Column(size_t trait_idx) const {
    return {values.data() + trait_idx * num_customers, num_customers};
  }
  // Index of the trait named `name`, -1 if absent.
  int Find(std::string_view name) const;
};

// The built-in traits, in catalogue order (user traits follow them).
const std::vector<TraitInfo>& BuiltinTraits();
// True when `name` is a built-in trait.
bool IsBuiltinTraitName(std::string_view name);

class TraitCatalogue;

// A subset of a catalogue's traits to compute (TraitCatalogue::Select). Holds which traits were
// asked for and which sections of the computation they need; plain value, cheap to copy.
class TraitSelection {
 public:
  TraitSelection() = default;
  // True when trait `trait_idx` is selected.
  bool Contains(size_t trait_idx) const {
    return trait_idx < wanted_.size() && wanted_[trait_idx] != 0;
  }
  size_t size() const { return count_; }

 private:
  friend class TraitCatalogue;
  std::vector<uint8_t> wanted_;  // per catalogue trait
  uint32_t sections_ = 0;        // TraitCatalogue's section bits
  size_t count_ = 0;
};

class TraitCatalogue {
 public:
  // `config` should have passed ValidateTraitConfig / ParseTraitConfig.
  explicit TraitCatalogue(TraitConfig config);

  // Built-ins then user traits, fixed order.
  const std::vector<TraitInfo>& traits() const { return traits_; }
  const TraitConfig& config() const { return config_; }
  // Index of `name` in traits(), -1 if absent.
  int Find(std::string_view name) const;

  // All traits of one customer as of `as_of`: windows are the last N UTC days ending with
  // day(as_of), recencies count to as_of. The state should hold only events <= as_of.
  // out.size() must equal traits().size(). NaN where undefined. Thread-safe (const).
  void ComputeOne(const CustomerState& state, const PopulationState& population, TimeMicros as_of,
                  std::span<double> out) const;

  // The traits `trait_indices` (catalogue indices; negative or out-of-range entries are
  // ignored, duplicates allowed) for ComputeSelected.
  TraitSelection Select(std::span<const int> trait_indices) const;

  // Like ComputeOne, but computes only the sections of the calculation the selected traits
  // need (the per-order seasonality, the category medians, the user traits, ... are skipped
  // when no selected trait reads them). Selected entries equal ComputeOne's bit for bit; every
  // other entry is NaN. `selection` must come from this catalogue's Select. Thread-safe (const).
  void ComputeSelected(const CustomerState& state, const PopulationState& population,
                       TimeMicros as_of, const TraitSelection& selection,
                       std::span<double> out) const;

  // Every customer into *out (resized; traits copied), parallel over customers with
  // ctx.Threads(); results do not depend on the thread count. With a `selection` (from Select)
  // only its traits are computed, as ComputeSelected does; the others are NaN.
  void Compute(std::span<const CustomerState* const> states, const PopulationState& population,
               TimeMicros as_of, const Context& ctx, TraitMatrix* out,
               const TraitSelection* selection = nullptr) const;

 private:
  // ComputeOne given the customer's premium_index (which needs the population's medians);
  // only the sections in the bit set `sections` (every section: kAllSections).
  void ComputeWith(const CustomerState& state, double premium_index, TimeMicros as_of,
                   uint32_t sections, std::span<double> out) const;
  static constexpr uint32_t kAllSections = ~uint32_t{0};

  TraitConfig config_;
  std::vector<TraitInfo> traits_;
  std::vector<bool> peak_week_;  // indexed by ISO week 0..53
};

// ISO-8601 week number (1..53) of a day since the epoch.
int IsoWeekOfDay(int64_t day);

}  // namespace shoal
