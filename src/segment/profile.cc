#include "segment/profile.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "common/parallel.h"

namespace shoal::segment {

namespace {

// z scores need the trait defined for at least 1/kMinDefinedShareInverse of the cluster.
constexpr size_t kMinDefinedShareInverse = 10;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Median of `values` (reordered in place); NaN when empty.
double MedianInPlace(std::vector<double>& values) {
  if (values.empty()) return kNaN;
  const size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  const double upper = values[mid];
  if (values.size() % 2 == 1) return upper;
  const double lower =
      *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
  return 0.5 * (lower + upper);
}

double Mean(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

}  // namespace

double DistinguishingScore(const TraitProfile& trait) {
  return trait.robust_z != 0 ? trait.robust_z : trait.z;
}

const TraitProfile* FindTrait(const ClusterProfile& profile, std::string_view name) {
  for (const TraitProfile& trait : profile.traits) {
    if (trait.name == name) return &trait;
  }
  return nullptr;
}

Result<ProfileResult> ProfileClusters(const ProfileInput& input, const Context& context) {
  const size_t n = input.labels.size();
  const size_t trait_count = input.traits.size();
  if (input.trait_names.size() != trait_count) {
    return Status::InvalidArgument("profile: " + std::to_string(input.trait_names.size()) +
                                   " trait names for " + std::to_string(trait_count) + " columns");
  }
  for (size_t t = 0; t < trait_count; ++t) {
    if (input.traits[t].size() != n) {
      return Status::InvalidArgument("profile: trait '" + input.trait_names[t] + "' has " +
                                     std::to_string(input.traits[t].size()) + " values for " +
                                     std::to_string(n) + " labels");
    }
  }
  const bool with_categories = !input.category_codes.empty();
  if (with_categories) {
    if (input.category_codes.size() != n) {
      return Status::InvalidArgument("profile: category_codes must have one entry per customer");
    }
    for (int32_t code : input.category_codes) {
      if (code >= static_cast<int32_t>(input.category_names.size())) {
        return Status::InvalidArgument("profile: a category code is beyond category_names");
      }
    }
  }
  int32_t max_label = -1;
  for (int32_t label : input.labels) max_label = std::max(max_label, label);
  const size_t k = static_cast<size_t>(max_label + 1);

  // Customers grouped by cluster (counting sort): members[offsets[c] .. offsets[c + 1]).
  std::vector<size_t> offsets(k + 1, 0);
  for (int32_t label : input.labels)
    if (label >= 0) ++offsets[static_cast<size_t>(label) + 1];
  for (size_t c = 0; c < k; ++c) offsets[c + 1] += offsets[c];
  std::vector<size_t> members(offsets[k]);
  {
    std::vector<size_t> cursor(offsets.begin(), offsets.end() - 1);
    for (size_t idx = 0; idx < n; ++idx) {
      if (input.labels[idx] >= 0) members[cursor[static_cast<size_t>(input.labels[idx])]++] = idx;
    }
  }

  ProfileResult result;
  result.population.resize(trait_count);
  result.clusters.resize(k);
  for (size_t c = 0; c < k; ++c) {
    ClusterProfile& cluster = result.clusters[c];
    cluster.cluster = static_cast<int32_t>(c);
    cluster.size = static_cast<int64_t>(offsets[c + 1] - offsets[c]);
    cluster.share_customers =
        n == 0 ? 0 : static_cast<double>(cluster.size) / static_cast<double>(n);
    cluster.traits.resize(trait_count);
  }

  // Each worker owns whole traits: it writes population[t] and clusters[*].traits[t] only.
  ParallelFor(
      trait_count, context.Threads(),
      [&](size_t begin, size_t end, int) {
        std::vector<double> values, deviations;
        for (size_t t = begin; t < end; ++t) {
          const std::span<const double> column = input.traits[t];
          values.clear();
          for (double v : column)
            if (!std::isnan(v)) values.push_back(v);
          PopulationTrait& population = result.population[t];
          population.name = input.trait_names[t];
          population.defined = static_cast<int64_t>(values.size());
          population.mean = Mean(values);
          double variance = 0;
          for (double v : values) variance += (v - population.mean) * (v - population.mean);
          const double std_dev =
              values.empty() ? 0 : std::sqrt(variance / static_cast<double>(values.size()));
          population.std_dev = std_dev;
          population.median = MedianInPlace(values);
          deviations.clear();
          double absolute_sum = 0;
          for (double v : values) {
            deviations.push_back(std::abs(v - population.median));
            absolute_sum += deviations.back();
          }
          const double mad = MedianInPlace(deviations);
          if (mad > 0) {
            population.scale = 1.4826 * mad;
          } else if (absolute_sum > 0) {
            population.scale = 1.2533 * absolute_sum / static_cast<double>(values.size());
          } else {
            population.scale = std_dev;
          }
          for (size_t c = 0; c < k; ++c) {
            values.clear();
            for (size_t m = offsets[c]; m < offsets[c + 1]; ++m) {
              const double v = column[members[m]];
              if (!std::isnan(v)) values.push_back(v);
            }
            TraitProfile& trait = result.clusters[c].traits[t];
            trait.name = input.trait_names[t];
            trait.defined = static_cast<int64_t>(values.size());
            trait.mean = Mean(values);
            trait.median = MedianInPlace(values);
            // A trait defined for only a sliver of the cluster (discount_share of a few
            // misplaced buyers among window shoppers) does not describe the cluster.
            const size_t size = offsets[c + 1] - offsets[c];
            if (values.empty() || values.size() * kMinDefinedShareInverse < size) {
              trait.z = trait.robust_z = kNaN;
              continue;
            }
            trait.z =
                population.std_dev > 0 ? (trait.mean - population.mean) / population.std_dev : 0;
            trait.robust_z =
                population.scale > 0 ? (trait.median - population.median) / population.scale : 0;
          }
        }
      },
      1);

  // Revenue shares from the revenue trait, if present.
  const auto revenue_it =
      std::find(input.trait_names.begin(), input.trait_names.end(), input.revenue_trait);
  if (revenue_it == input.trait_names.end()) {
    for (ClusterProfile& cluster : result.clusters) cluster.share_revenue = kNaN;
  } else {
    const std::span<const double> revenue =
        input.traits[static_cast<size_t>(revenue_it - input.trait_names.begin())];
    double total = 0;
    for (double v : revenue)
      if (!std::isnan(v)) total += v;
    for (size_t c = 0; c < k; ++c) {
      double sum = 0;
      for (size_t m = offsets[c]; m < offsets[c + 1]; ++m) {
        const double v = revenue[members[m]];
        if (!std::isnan(v)) sum += v;
      }
      result.clusters[c].share_revenue = total > 0 ? sum / total : 0;
    }
  }

  if (with_categories) {
    std::vector<int64_t> counts(input.category_names.size());
    std::vector<size_t> order(input.category_names.size());
    for (size_t c = 0; c < k; ++c) {
      std::fill(counts.begin(), counts.end(), 0);
      for (size_t m = offsets[c]; m < offsets[c + 1]; ++m) {
        const int32_t code = input.category_codes[members[m]];
        if (code >= 0) ++counts[static_cast<size_t>(code)];
      }
      std::iota(order.begin(), order.end(), 0);
      // Most frequent first; ties by category code so the order is deterministic.
      std::stable_sort(order.begin(), order.end(),
                       [&](size_t a, size_t b) { return counts[a] > counts[b]; });
      ClusterProfile& cluster = result.clusters[c];
      for (size_t rank = 0; rank < order.size() && rank < input.top_categories; ++rank) {
        if (counts[order[rank]] == 0) break;
        cluster.top_categories.push_back(CategoryShare{
            input.category_names[order[rank]],
            static_cast<double>(counts[order[rank]]) / static_cast<double>(cluster.size)});
      }
    }
  }
  return result;
}

}  // namespace shoal::segment
