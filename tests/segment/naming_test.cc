#include "segment/naming.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "segment/kmeans.h"
#include "segment/metrics.h"
#include "segment/profile.h"
#include "segment/stability.h"

namespace shoal::segment {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Profile, HandComputedStatistics) {
  // Two clusters and one unlabelled customer.
  std::vector<double> monetary = {10, 20, 30, 100, 200, kNaN};
  std::vector<double> frequency = {1, 1, 1, 4, 6, 1};
  std::vector<int32_t> labels = {0, 0, 0, 1, 1, -1};
  std::vector<std::string> category_names = {"shoes", "bags", "hats"};
  std::vector<int32_t> categories = {0, 0, 1, 2, 2, -1};
  ProfileInput input;
  input.trait_names = {"monetary_total", "frequency"};
  input.traits = {monetary, frequency};
  input.labels = labels;
  input.category_codes = categories;
  input.category_names = category_names;
  input.top_categories = 2;
  auto result = ProfileClusters(input, Context{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->clusters.size(), 2u);
  const ClusterProfile& small = result->clusters[0];
  const ClusterProfile& big = result->clusters[1];
  EXPECT_EQ(small.size, 3);
  EXPECT_DOUBLE_EQ(small.share_customers, 0.5);
  EXPECT_DOUBLE_EQ(small.share_revenue, 60.0 / 360.0);
  EXPECT_DOUBLE_EQ(big.share_revenue, 300.0 / 360.0);
  EXPECT_DOUBLE_EQ(small.traits[0].mean, 20);
  EXPECT_DOUBLE_EQ(small.traits[0].median, 20);
  EXPECT_DOUBLE_EQ(big.traits[0].median, 150);
  EXPECT_EQ(big.traits[0].defined, 2);
  // Population monetary: {10, 20, 30, 100, 200}: mean 72, median 30, MAD = median{20,10,0,70,170}
  // = 20, scale 1.4826 * 20.
  const PopulationTrait& population = result->population[0];
  EXPECT_DOUBLE_EQ(population.mean, 72);
  EXPECT_DOUBLE_EQ(population.median, 30);
  EXPECT_DOUBLE_EQ(population.scale, 1.4826 * 20);
  EXPECT_DOUBLE_EQ(small.traits[0].robust_z, (20 - 30) / (1.4826 * 20));
  const double std_dev = std::sqrt((62.0 * 62 + 52 * 52 + 42 * 42 + 28 * 28 + 128 * 128) / 5);
  EXPECT_NEAR(population.std_dev, std_dev, 1e-9);
  EXPECT_NEAR(small.traits[0].z, (20 - 72) / std_dev, 1e-12);
  // Size-weighted classic z's sum to zero.
  EXPECT_NEAR(3 * small.traits[1].z + 2 * big.traits[1].z +
                  1 * (1 - 14.0 / 6) / result->population[1].std_dev,
              0, 1e-12);
  // Frequency {1,1,1,4,6,1}: median 1, MAD 0 -> 1.2533 * mean |x - 1| = 1.2533 * 8 / 6.
  EXPECT_DOUBLE_EQ(result->population[1].scale, 1.2533 * 8.0 / 6.0);
  ASSERT_EQ(small.top_categories.size(), 2u);
  EXPECT_EQ(small.top_categories[0].name, "shoes");
  EXPECT_DOUBLE_EQ(small.top_categories[0].share, 2.0 / 3.0);
  ASSERT_EQ(big.top_categories.size(), 1u);
  EXPECT_EQ(big.top_categories[0].name, "hats");
  EXPECT_DOUBLE_EQ(big.top_categories[0].share, 1.0);
}

TEST(Profile, RejectsMisalignedInput) {
  std::vector<double> values = {1, 2};
  std::vector<int32_t> labels = {0, 1, 1};
  ProfileInput input;
  input.trait_names = {"x"};
  input.traits = {values};
  input.labels = labels;
  EXPECT_FALSE(ProfileClusters(input, Context{}).ok());
  input.trait_names = {};
  EXPECT_FALSE(ProfileClusters(input, Context{}).ok());
}

// A synthetic population: every cluster draws baseline traits from the same distributions and
// overrides the traits of its planted signature.
class Population {
 public:
  static constexpr const char* kTraits[] = {
      "recency_days",     "frequency",     "monetary_total",      "aov",
      "discount_share",   "premium_index", "distinct_categories", "new_categories_30d",
      "category_entropy", "ipi_mean_days", "ipi_std_days",        "cart_abandonment_rate",
      "sessions",         "product_views", "email_open_rate",     "return_rate"};

  explicit Population(uint64_t seed) : rng_(seed) {
    for (const char* trait : kTraits) columns_[trait];
  }

  // Adds `count` customers of cluster `label`; `plant` overrides baseline traits.
  template <typename Plant>
  void Add(int32_t label, int count, Plant plant) {
    for (int idx = 0; idx < count; ++idx) {
      std::map<std::string, double> row;
      row["frequency"] = Int(1, 4);
      row["recency_days"] = Uniform(20, 120);
      row["monetary_total"] = row["frequency"] * std::exp(Uniform(3.8, 4.3));
      row["discount_share"] = Uniform(0, 0.3);
      row["premium_index"] = Uniform(0.2, 0.5);
      row["distinct_categories"] = Int(1, 4);
      row["new_categories_30d"] = Int(0, 1);
      row["category_entropy"] = Uniform(0.5, 1.5);
      row["ipi_mean_days"] = Uniform(30, 90);
      row["ipi_std_days"] = row["ipi_mean_days"] * Uniform(0.6, 1.2);
      row["cart_abandonment_rate"] = Uniform(0, 0.3);
      row["sessions"] = Int(5, 15);
      row["product_views"] = row["sessions"] * Uniform(2, 4);
      row["email_open_rate"] = Uniform(0.1, 0.4);
      row["return_rate"] = Uniform(0, 0.15);
      plant(row, *this);
      if (row["frequency"] <= 1) row["ipi_mean_days"] = row["ipi_std_days"] = kNaN;
      row["aov"] = row["frequency"] > 0 ? row["monetary_total"] / row["frequency"] : kNaN;
      for (auto& [name, column] : columns_) column.push_back(row[name]);
      labels_.push_back(label);
    }
  }

  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  double Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  const std::map<std::string, std::vector<double>>& columns() const { return columns_; }
  const std::vector<int32_t>& labels() const { return labels_; }

  std::vector<ClusterProfile> Profiles() {
    ProfileInput input;
    for (auto& [name, column] : columns_) {
      input.trait_names.push_back(name);
      input.traits.emplace_back(column);
    }
    input.labels = labels_;
    auto result = ProfileClusters(input, Context{});
    EXPECT_TRUE(result.ok());
    return result->clusters;
  }

 private:
  std::mt19937_64 rng_;
  std::map<std::string, std::vector<double>> columns_;
  std::vector<int32_t> labels_;
};

using Row = std::map<std::string, double>;

bool HasWord(const std::string& name, const std::string& word) {
  return name.find(word) != std::string::npos;
}

// Seven clusters, each with one planted behaviour (labels 0..6 in this order): window shoppers,
// cart abandoners, one-time buyers, lapsed big spenders, price-sensitive replenishment buyers,
// premium trend explorers, loyal champions.
void AddPlantedClusters(Population& population, int per_cluster) {
  population.Add(0, per_cluster, [](Row& r, Population& p) {  // window shoppers
    r["frequency"] = 0;
    r["monetary_total"] = 0;
    r["recency_days"] = kNaN;
    r["discount_share"] = r["premium_index"] = kNaN;
    r["distinct_categories"] = r["new_categories_30d"] = r["category_entropy"] = 0;
    r["sessions"] = p.Int(25, 40);
    r["product_views"] = r["sessions"] * p.Uniform(4, 6);
  });
  population.Add(1, per_cluster, [](Row& r, Population& p) {  // cart abandoners
    r["cart_abandonment_rate"] = p.Uniform(0.6, 0.9);
  });
  population.Add(2, per_cluster, [](Row& r, Population&) {  // one-time buyers
    r["frequency"] = 1;
    r["monetary_total"] = std::min(r["monetary_total"], 80.0);
  });
  population.Add(3, per_cluster, [](Row& r, Population& p) {  // lapsed big spenders
    r["monetary_total"] = r["frequency"] * std::exp(p.Uniform(6.3, 6.8));
    r["recency_days"] = p.Uniform(300, 500);
  });
  population.Add(4, per_cluster,
                 [](Row& r, Population& p) {  // price-sensitive replenishment buyers
                   r["frequency"] = p.Int(8, 12);
                   r["monetary_total"] = r["frequency"] * std::exp(p.Uniform(2.8, 3.2));
                   r["discount_share"] = p.Uniform(0.6, 0.8);
                   r["ipi_mean_days"] = p.Uniform(25, 35);
                   r["ipi_std_days"] = r["ipi_mean_days"] * p.Uniform(0.1, 0.2);
                 });
  population.Add(5, per_cluster, [](Row& r, Population& p) {  // premium trend explorers
    r["premium_index"] = p.Uniform(0.8, 0.95);
    r["new_categories_30d"] = p.Int(3, 5);
    r["distinct_categories"] = p.Int(8, 12);
    r["category_entropy"] = p.Uniform(2, 3);
  });
  population.Add(6, per_cluster, [](Row& r, Population& p) {  // loyal champions
    r["frequency"] = p.Int(12, 20);
    r["monetary_total"] = r["frequency"] * std::exp(p.Uniform(3.8, 4.3));
    r["recency_days"] = p.Uniform(1, 10);
  });
}

TEST(Naming, PlantedSignaturesGetDescriptiveNames) {
  Population population(17);
  AddPlantedClusters(population, 400);
  std::vector<ClusterProfile> profiles = population.Profiles();
  std::vector<ClusterName> names = NameClusters(profiles);
  ASSERT_EQ(names.size(), 7u);
  for (const ClusterName& name : names) std::cout << "  " << name.name << "\n";
  EXPECT_EQ(names[0].noun, "window shoppers");
  EXPECT_EQ(names[1].noun, "cart abandoners");
  EXPECT_EQ(names[2].noun, "one-time buyers");
  EXPECT_EQ(names[3].noun, "big spenders");
  EXPECT_TRUE(HasWord(names[3].name, "lapsed big spenders")) << names[3].name;
  EXPECT_EQ(names[4].noun, "replenishment buyers");
  EXPECT_TRUE(HasWord(names[4].name, "price-sensitive")) << names[4].name;
  EXPECT_EQ(names[5].name, "premium trend explorers");
  EXPECT_TRUE(HasWord(names[6].name, "loyal champions")) << names[6].name;
  std::set<std::string> unique;
  for (const ClusterName& name : names) unique.insert(name.name);
  EXPECT_EQ(unique.size(), names.size());
  // The reasons say which traits drove the name.
  ASSERT_GE(names[5].reasons.size(), 3u);
  EXPECT_TRUE(HasWord(names[5].reasons[0], "noun 'explorers'")) << names[5].reasons[0];
  EXPECT_TRUE(HasWord(names[5].reasons[1], "premium: premium_index z=+")) << names[5].reasons[1];
}

// k-means features from the trait columns: log1p of skewed counts and amounts, NaN imputed with
// the population median, every column z-scored. Row-major float32, rows in `order`.
std::vector<float> Features(const Population& population, const std::vector<size_t>& order,
                            size_t* dimensions) {
  const std::vector<std::string> used = {
      "recency_days",     "frequency",     "monetary_total",      "aov",
      "discount_share",   "premium_index", "distinct_categories", "new_categories_30d",
      "category_entropy", "ipi_mean_days", "ipi_std_days",        "cart_abandonment_rate",
      "sessions",         "product_views", "email_open_rate",     "return_rate"};
  const std::set<std::string> logged = {"recency_days", "frequency",     "monetary_total",
                                        "aov",          "ipi_mean_days", "ipi_std_days",
                                        "sessions",     "product_views"};
  const size_t n = order.size(), d = used.size();
  std::vector<float> out(n * d);
  for (size_t dim = 0; dim < d; ++dim) {
    std::vector<double> column = population.columns().at(used[dim]);
    for (double& v : column)
      if (!std::isnan(v) && logged.count(used[dim])) v = std::log1p(v);
    std::vector<double> defined;
    for (double v : column)
      if (!std::isnan(v)) defined.push_back(v);
    std::sort(defined.begin(), defined.end());
    const double median = defined[defined.size() / 2];
    double mean = 0, sq = 0;
    for (double& v : column) {
      if (std::isnan(v)) v = median;
      mean += v;
    }
    mean /= static_cast<double>(n);
    for (double v : column) sq += (v - mean) * (v - mean);
    const double sd = std::sqrt(sq / static_cast<double>(n));
    for (size_t row = 0; row < n; ++row) {
      out[row * d + dim] = static_cast<float>((column[order[row]] - mean) / sd);
    }
  }
  *dimensions = d;
  return out;
}

// The whole path: planted behaviours -> k-means -> profiles -> names, then a rebuild on shuffled
// rows with another seed that must keep every segment id and name.
TEST(Pipeline, KMeansProfilesNamesAndStableRebuild) {
  Population population(29);
  AddPlantedClusters(population, 300);
  const size_t n = population.labels().size();
  std::vector<size_t> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  size_t d = 0;
  std::vector<float> features = Features(population, identity, &d);
  KMeansOptions options;
  options.k = 7;
  options.n_init = 10;
  Context context;
  context.threads = 2;
  auto first = KMeans(features, n, d, options, context);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_GT(AdjustedRandIndex(first->labels, population.labels()), 0.95);

  // Profile and name the k-means clusters.
  ProfileInput input;
  for (const auto& [name, column] : population.columns()) {
    input.trait_names.push_back(name);
    input.traits.emplace_back(column);
  }
  input.labels = first->labels;
  auto profiles = ProfileClusters(input, context);
  ASSERT_TRUE(profiles.ok());
  std::vector<ClusterName> names = NameClusters(profiles->clusters);
  // The cluster holding most of each planted group is named for that group's behaviour.
  const std::vector<std::string> planted_noun = {
      "window shoppers",      "cart abandoners", "one-time buyers", "big spenders",
      "replenishment buyers", "explorers",       "champions"};
  for (int32_t group = 0; group < 7; ++group) {
    std::map<int32_t, int> votes;
    for (size_t idx = 0; idx < n; ++idx)
      if (population.labels()[idx] == group) ++votes[first->labels[idx]];
    const int32_t cluster = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) {
                              return a.second < b.second;
                            })->first;
    EXPECT_EQ(names[cluster].noun, planted_noun[group]) << names[cluster].name;
  }

  // Rebuild: the same customers in another order, another seed.
  std::vector<size_t> shuffled = identity;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(3));
  std::vector<float> features2 = Features(population, shuffled, &d);
  context.seed = 4242;
  auto second = KMeans(features2, n, d, options, context);
  ASSERT_TRUE(second.ok());
  PreviousClusters previous;
  previous.centroids.assign(first->centroids.begin(), first->centroids.end());
  for (int c = 0; c < 7; ++c) {
    previous.segment_ids.push_back(100 + c);
    previous.names.push_back(names[c].name);
  }
  previous.next_segment_id = 107;
  std::vector<int64_t> before(n);
  for (size_t row = 0; row < n; ++row) before[row] = 100 + first->labels[shuffled[row]];
  auto stable = StabiliseClusters(std::span<const float>(features2), second->centroids, d, before,
                                  previous, StabilityOptions{}, context);
  ASSERT_TRUE(stable.ok()) << stable.status().ToString();
  std::set<int64_t> ids(stable->segment_ids.begin(), stable->segment_ids.end());
  EXPECT_EQ(ids, (std::set<int64_t>{100, 101, 102, 103, 104, 105, 106}));
  EXPECT_EQ(stable->next_segment_id, 107);
  for (int c = 0; c < 7; ++c) {
    EXPECT_EQ(stable->names[c], names[stable->segment_ids[c] - 100].name);
  }
  EXPECT_LT(stable->moved, static_cast<int64_t>(n / 100));
}

TEST(Naming, CollisionsAreBrokenByTheNextDistinguishingTrait) {
  Population population(23);
  population.Add(0, 600, [](Row&, Population&) {});
  population.Add(1, 300, [](Row& r, Population& p) {  // one-time buyers who open emails
    r["frequency"] = 1;
    r["email_open_rate"] = p.Uniform(0.7, 0.9);
  });
  population.Add(2, 300, [](Row& r, Population& p) {  // one-time buyers who return things
    r["frequency"] = 1;
    r["return_rate"] = p.Uniform(0.5, 0.7);
  });
  NamingOptions options;
  options.max_adjectives = 0;  // force the collision: both start as "one-time buyers"
  std::vector<ClusterName> names = NameClusters(population.Profiles(), options);
  ASSERT_EQ(names.size(), 3u);
  EXPECT_EQ(names[1].noun, "one-time buyers");
  EXPECT_EQ(names[2].noun, "one-time buyers");
  EXPECT_NE(names[1].name, names[2].name);
  EXPECT_TRUE(HasWord(names[1].name, "email-engaged")) << names[1].name;
  EXPECT_TRUE(HasWord(names[2].name, "return-prone")) << names[2].name;
  for (const ClusterName& name : names) {
    EXPECT_EQ(name.name.find_first_of("0123456789"), std::string::npos) << name.name;
  }
}

TEST(Naming, IdenticalClustersFallBackToNumbers) {
  ClusterProfile profile;
  profile.traits.push_back(TraitProfile{"frequency", 10, 1, 1, 0, 0});
  std::vector<ClusterName> names = NameClusters({profile, profile});
  EXPECT_EQ(names[0].name, "one-time buyers");
  EXPECT_EQ(names[1].name, "one-time buyers 2");
}

TEST(Naming, UnknownTraitsDescribeThemselves) {
  ClusterProfile profile;
  profile.traits.push_back(TraitProfile{"frequency", 10, 3, 3, 0, 0});
  profile.traits.push_back(TraitProfile{"push_clicks", 10, 9, 9, 0.4, 2.5});
  std::vector<ClusterName> names = NameClusters({profile});
  EXPECT_EQ(names[0].name, "high push clicks shoppers");
}

TEST(Naming, KeptNamesStayAndNewNamesAvoidThem) {
  ClusterProfile one_time;
  one_time.traits.push_back(TraitProfile{"frequency", 10, 1, 1, 0, 0});
  one_time.traits.push_back(TraitProfile{"email_open_rate", 10, 0.8, 0.8, 0.1, 0.5});
  ClusterProfile drifted = one_time;
  drifted.traits[0] = TraitProfile{"frequency", 10, 4, 4, 1.2, 1.5};
  // Cluster 0 keeps its old name although it now looks different; cluster 1 would be called
  // "one-time buyers", the name cluster 2 keeps, so it takes its next adjective.
  std::vector<std::string> kept = {"loyal regulars", "", "one-time buyers"};
  std::vector<ClusterName> names = NameClusters({drifted, one_time, one_time}, {}, kept);
  EXPECT_EQ(names[0].name, "loyal regulars");
  EXPECT_TRUE(names[0].kept);
  EXPECT_EQ(names[0].noun, "regulars");  // the current profile still speaks through the noun
  EXPECT_EQ(names[2].name, "one-time buyers");
  EXPECT_FALSE(names[1].kept);
  EXPECT_EQ(names[1].name, "email-engaged one-time buyers");
}

TEST(Naming, NounTableIsDescribed) {
  std::vector<NounRuleDescription> rules = DescribeNounRules();
  ASSERT_FALSE(rules.empty());
  EXPECT_EQ(rules.back().noun, "shoppers");
  EXPECT_EQ(rules[3].noun, "lapsed big spenders");
}

}  // namespace
}  // namespace shoal::segment
