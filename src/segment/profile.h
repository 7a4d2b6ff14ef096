// Cluster profiles: per cluster its size, share of customers and of revenue, the mean, median and
// z-score of each trait against the population, and optionally its top categories. The input is a
// dense trait matrix given as columns plus cluster labels, so this does not depend on how either
// was computed. docs/segments.md "Cluster profiles" is the prose contract.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal::segment {

struct ProfileInput {
  // Trait names and columns (one value per customer, NaN = undefined), aligned.
  std::vector<std::string> trait_names;
  std::vector<std::span<const double>> traits;
  // Per customer: its cluster 0 .. k-1, or negative to leave it out of every cluster (it still
  // counts in the population statistics).
  std::span<const int32_t> labels;
  // The trait whose sum is revenue for share_revenue; absent = share_revenue is NaN.
  std::string revenue_trait = "monetary_total";
  // Optional: per customer a category code (negative = none) into category_names, e.g. the
  // customer's most bought category. Empty = no top categories.
  std::span<const int32_t> category_codes;
  std::span<const std::string> category_names;
  // How many categories to list per cluster.
  size_t top_categories = 3;
};

// The population statistics of one trait over defined values.
struct PopulationTrait {
  std::string name;
  int64_t defined = 0;
  double mean = 0;
  double std_dev = 0;  // population standard deviation (divisor n)
  double median = 0;
  // The robust scale used by robust_z: 1.4826 * MAD, else 1.2533 * mean |x - median| when MAD is
  // 0 (over half the customers share one value), else the standard deviation; 0 only for a
  // constant trait. Both factors make the scale estimate sigma for normal data.
  double scale = 0;
};

struct TraitProfile {
  std::string name;
  int64_t defined = 0;  // customers of the cluster with a defined value
  double mean = 0;      // NaN when no value is defined
  double median = 0;
  // Classic z of the cluster mean: (cluster mean - population mean) / population std_dev.
  // Size-weighted z's of a trait sum to zero over a partition of the population. 0 for a constant
  // trait, NaN when fewer than a tenth of the cluster's customers have a defined value (the few
  // who do, e.g. the discount share of a handful of buyers among window shoppers, do not
  // describe the cluster).
  double z = 0;
  // Robust z of the cluster median: (cluster median - population median) / population scale. A
  // cluster of extreme customers moves neither the centre nor the scale, so it does not make
  // every other cluster look "low". 0 for a constant trait, NaN as for z.
  double robust_z = 0;
};

// The score naming ranks traits by: robust_z, or the classic z when robust_z is exactly 0 (the
// cluster median equals the population median, common for discrete traits such as counts).
double DistinguishingScore(const TraitProfile& trait);

struct CategoryShare {
  std::string name;
  double share = 0;  // of the cluster's customers
};

struct ClusterProfile {
  int32_t cluster = 0;
  int64_t size = 0;
  double share_customers = 0;                 // of all customers (labelled or not)
  double share_revenue = 0;                   // of the revenue trait's total over all customers
  std::vector<TraitProfile> traits;           // in input order
  std::vector<CategoryShare> top_categories;  // most frequent first
};

struct ProfileResult {
  std::vector<PopulationTrait> population;  // in input order
  std::vector<ClusterProfile> clusters;     // cluster 0 .. k-1, k = 1 + the largest label
};

// Profiles every cluster. InvalidArgument when columns differ in length from labels, names and
// columns are not aligned, or a category code is beyond its names. Parallel over traits with
// context.Threads(); the result does not depend on the thread count. O(n) per trait plus sorting
// work of O(n log n) for medians.
Result<ProfileResult> ProfileClusters(const ProfileInput& input, const Context& context);

// The TraitProfile called `name`, or nullptr.
const TraitProfile* FindTrait(const ClusterProfile& profile, std::string_view name);

}  // namespace shoal::segment
