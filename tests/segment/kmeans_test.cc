#include "segment/kmeans.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <string>
#include <limits>
#include <random>
#include <vector>

#include "segment/kmeans_kernels.h"
#include "segment/metrics.h"

namespace shoal {
namespace {

using Algorithm = KMeansOptions::Algorithm;

struct Blobs {
  std::vector<float> data;
  std::vector<int32_t> truth;
  size_t n = 0, d = 0;
};

// n points around k centres drawn uniformly in [-box, box]^d, Gaussian noise of sd `spread`.
Blobs MakeBlobs(size_t n, size_t d, int k, double box, double spread, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-box, box);
  std::normal_distribution<double> normal(0.0, spread);
  std::vector<double> centres(static_cast<size_t>(k) * d);
  for (double& c : centres) c = uniform(rng);
  Blobs blobs;
  blobs.n = n;
  blobs.d = d;
  blobs.data.resize(n * d);
  blobs.truth.resize(n);
  for (size_t i = 0; i < n; ++i) {
    int32_t cluster = static_cast<int32_t>(i % static_cast<size_t>(k));
    blobs.truth[i] = cluster;
    for (size_t j = 0; j < d; ++j) {
      blobs.data[i * d + j] = static_cast<float>(centres[cluster * d + j] + normal(rng));
    }
  }
  return blobs;
}

// Blobs whose centres sit on distinct coordinate axes at distance `scale` from the origin, so
// every pair of centres is scale * sqrt(2) apart (requires k <= d).
Blobs AxisBlobs(size_t n, size_t d, int k, double scale, double spread, uint64_t seed) {
  Blobs blobs = MakeBlobs(n, d, k, 0.0, spread, seed);
  for (size_t i = 0; i < n; ++i) blobs.data[i * d + blobs.truth[i]] += static_cast<float>(scale);
  return blobs;
}

std::vector<float> UniformData(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::vector<float> data(n * d);
  for (float& v : data) v = uniform(rng);
  return data;
}

// k distinct rows chosen at random: the peers' usual initialisation.
std::vector<float> RandomRows(const std::vector<float>& data, size_t n, size_t d, int k,
                              uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<float> init;
  for (int c = 0; c < k; ++c) {
    init.insert(init.end(), data.begin() + order[c] * d, data.begin() + (order[c] + 1) * d);
  }
  return init;
}

struct Reference {
  std::vector<int32_t> labels;
  std::vector<float> centroids;
  double inertia = 0;
  int iterations = 0;
};

// Brute-force Lloyd in float64 distances, float centroids (means rounded to float), run until
// labels repeat. Assumes no cluster empties (checked).
Reference BruteForceLloyd(const std::vector<float>& data, size_t n, size_t d, int k,
                          std::vector<float> centroids) {
  Reference ref;
  std::vector<int32_t> previous(n, -1), labels(n, 0);
  for (int iteration = 0; iteration < 1000; ++iteration) {
    for (size_t i = 0; i < n; ++i) {
      double best = std::numeric_limits<double>::infinity();
      for (int c = 0; c < k; ++c) {
        double sq = 0;
        for (size_t j = 0; j < d; ++j) {
          double diff = static_cast<double>(data[i * d + j]) - centroids[c * d + j];
          sq += diff * diff;
        }
        if (sq < best) {
          best = sq;
          labels[i] = c;
        }
      }
    }
    ref.iterations = iteration + 1;
    if (labels == previous) break;
    std::vector<double> sum(static_cast<size_t>(k) * d, 0.0);
    std::vector<size_t> count(k, 0);
    for (size_t i = 0; i < n; ++i) {
      count[labels[i]]++;
      for (size_t j = 0; j < d; ++j) sum[labels[i] * d + j] += data[i * d + j];
    }
    for (int c = 0; c < k; ++c) {
      EXPECT_GT(count[c], 0u) << "reference hit an empty cluster; pick other test data";
      for (size_t j = 0; j < d; ++j) {
        centroids[c * d + j] = static_cast<float>(sum[c * d + j] / static_cast<double>(count[c]));
      }
    }
    previous = labels;
  }
  ref.labels = labels;
  ref.centroids = centroids;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) {
      double diff = static_cast<double>(data[i * d + j]) - centroids[labels[i] * d + j];
      ref.inertia += diff * diff;
    }
  }
  return ref;
}

Context Threads(int threads, uint64_t seed = 7) {
  Context ctx;
  ctx.threads = threads;
  ctx.seed = seed;
  return ctx;
}

constexpr Algorithm kExactAlgorithms[] = {Algorithm::kLloyd, Algorithm::kHamerly,
                                          Algorithm::kElkan, Algorithm::kAuto};

TEST(KMeansTest, EveryExactAlgorithmMatchesBruteForceLloyd) {
  struct Case {
    std::vector<float> data;
    size_t n, d;
    int k;
  };
  std::vector<Case> cases;
  cases.push_back({UniformData(3000, 5, 1), 3000, 5, 7});
  Blobs overlapping = MakeBlobs(6000, 16, 12, 4.0, 1.5, 2);
  cases.push_back({overlapping.data, 6000, 16, 16});
  cases.push_back({UniformData(4000, 2, 3), 4000, 2, 40});
  for (const Case& c : cases) {
    std::vector<float> init = RandomRows(c.data, c.n, c.d, c.k, 11);
    Reference ref = BruteForceLloyd(c.data, c.n, c.d, c.k, init);
    ASSERT_GT(ref.iterations, 3) << "case should need several iterations";
    for (Algorithm algorithm : kExactAlgorithms) {
      KMeansOptions options;
      options.k = c.k;
      options.tolerance = 0;
      options.max_iterations = 1000;
      options.algorithm = algorithm;
      auto result = KMeansFrom(c.data, c.n, c.d, init, options, Threads(2));
      ASSERT_TRUE(result.ok()) << result.status().ToString();
      SCOPED_TRACE("algorithm " + std::to_string(static_cast<int>(algorithm)) + " k " +
                   std::to_string(c.k));
      EXPECT_TRUE(result->converged);
      EXPECT_EQ(result->labels, ref.labels);
      EXPECT_EQ(result->iterations, ref.iterations);
      EXPECT_NEAR(result->inertia, ref.inertia, 1e-6 * ref.inertia);
      ASSERT_EQ(result->centroids.size(), ref.centroids.size());
      for (size_t i = 0; i < ref.centroids.size(); ++i) {
        EXPECT_NEAR(result->centroids[i], ref.centroids[i], 1e-5 * (1 + std::fabs(ref.centroids[i])));
      }
      // The trace ends at the final inertia (computed from moments instead of points).
      ASSERT_FALSE(result->inertia_trace.empty());
      EXPECT_NEAR(result->inertia_trace.back(), ref.inertia, 1e-6 * ref.inertia);
    }
  }
}

TEST(KMeansTest, AcceleratedAlgorithmsReproduceLloydBitForBit) {
  Blobs blobs = MakeBlobs(40000, 16, 24, 5.0, 1.2, 3);
  for (int k : {8, 32}) {
    std::vector<float> init = RandomRows(blobs.data, blobs.n, blobs.d, k, 5);
    KMeansOptions options;
    options.k = k;
    options.algorithm = Algorithm::kLloyd;
    auto lloyd = KMeansFrom(blobs.data, blobs.n, blobs.d, init, options, Threads(2));
    ASSERT_TRUE(lloyd.ok());
    EXPECT_GT(lloyd->iterations, 5);
    for (Algorithm algorithm : {Algorithm::kHamerly, Algorithm::kElkan}) {
      options.algorithm = algorithm;
      auto fast = KMeansFrom(blobs.data, blobs.n, blobs.d, init, options, Threads(2));
      ASSERT_TRUE(fast.ok());
      EXPECT_EQ(fast->iterations, lloyd->iterations);
      EXPECT_EQ(fast->labels, lloyd->labels);
      EXPECT_EQ(0, std::memcmp(fast->centroids.data(), lloyd->centroids.data(),
                               lloyd->centroids.size() * sizeof(float)));
      EXPECT_EQ(fast->inertia, lloyd->inertia);
      EXPECT_EQ(fast->inertia_trace, lloyd->inertia_trace);
    }
  }
}

TEST(KMeansTest, ToleranceStopsEarlyWithConsistentLabels) {
  Blobs blobs = MakeBlobs(20000, 8, 10, 3.0, 1.5, 4);
  std::vector<float> init = RandomRows(blobs.data, blobs.n, blobs.d, 10, 6);
  KMeansOptions strict;
  strict.k = 10;
  strict.tolerance = 0;
  KMeansOptions loose = strict;
  loose.tolerance = 1e-2;
  auto a = KMeansFrom(blobs.data, blobs.n, blobs.d, init, strict, Threads(2));
  auto b = KMeansFrom(blobs.data, blobs.n, blobs.d, init, loose, Threads(2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(b->iterations, a->iterations);
  EXPECT_TRUE(b->converged);
  // Returned labels are the nearest centroids of the returned centroids.
  std::vector<int32_t> labels(blobs.n);
  std::vector<float> sq(blobs.n);
  AssignNearest(blobs.data, blobs.n, blobs.d, b->centroids, 10, labels, sq, Threads(1));
  EXPECT_EQ(labels, b->labels);
  EXPECT_GE(b->inertia, a->inertia * (1 - 1e-9));
  // max_iterations caps the run and reports no convergence.
  KMeansOptions capped = strict;
  capped.max_iterations = 2;
  auto c = KMeansFrom(blobs.data, blobs.n, blobs.d, init, capped, Threads(2));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->iterations, 2);
  EXPECT_FALSE(c->converged);
}

TEST(KMeansTest, ResultsDoNotDependOnThreadsOrRepetition) {
  Blobs blobs = MakeBlobs(50000, 16, 16, 4.0, 1.5, 8);
  for (Algorithm algorithm :
       {Algorithm::kLloyd, Algorithm::kHamerly, Algorithm::kElkan, Algorithm::kMiniBatch}) {
    KMeansOptions options;
    options.k = 16;
    options.algorithm = algorithm;
    options.minibatch_size = 2048;
    auto one = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(1, 99));
    auto two = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2, 99));
    auto again = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2, 99));
    auto three = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(3, 99));
    ASSERT_TRUE(one.ok() && two.ok() && again.ok() && three.ok());
    for (const auto* other : {&two, &again, &three}) {
      EXPECT_EQ(0, std::memcmp(one->centroids.data(), (*other)->centroids.data(),
                               one->centroids.size() * sizeof(float)));
      EXPECT_EQ(one->labels, (*other)->labels);
      EXPECT_EQ(one->inertia, (*other)->inertia);
      EXPECT_EQ(one->iterations, (*other)->iterations);
    }
  }
}

TEST(KMeansPlusPlusTest, ReproducibleAndPicksDataRows) {
  Blobs blobs = MakeBlobs(30000, 6, 9, 10.0, 1.0, 9);
  auto a = KMeansPlusPlus(blobs.data, blobs.n, blobs.d, 9, Threads(1, 5));
  auto b = KMeansPlusPlus(blobs.data, blobs.n, blobs.d, 9, Threads(2, 5));
  auto c = KMeansPlusPlus(blobs.data, blobs.n, blobs.d, 9, Threads(2, 6));
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  ASSERT_EQ(a.size(), 9u * 6u);
  // Every centre is a data row, and on well separated blobs each blob receives one centre.
  std::vector<int> blob_hits(9, 0);
  for (int centre = 0; centre < 9; ++centre) {
    bool found = false;
    for (size_t i = 0; i < blobs.n && !found; ++i) {
      if (std::equal(a.begin() + centre * 6, a.begin() + (centre + 1) * 6,
                     blobs.data.begin() + i * 6)) {
        found = true;
        blob_hits[blobs.truth[i]]++;
      }
    }
    EXPECT_TRUE(found);
  }
  for (int hits : blob_hits) EXPECT_EQ(hits, 1);
}

TEST(KMeansTest, RecoversSeparatedBlobs) {
  Blobs blobs = MakeBlobs(20000, 10, 7, 20.0, 0.5, 10);
  KMeansOptions options;
  options.k = 7;
  auto result = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  ASSERT_TRUE(result.ok());
  EXPECT_TRUE(result->converged);
  EXPECT_DOUBLE_EQ(AdjustedRandIndex(result->labels, blobs.truth), 1.0);
  // Inertia is about n * d * spread^2.
  EXPECT_NEAR(result->inertia / (20000.0 * 10 * 0.25), 1.0, 0.05);
}

TEST(KMeansTest, NInitKeepsTheBestRun) {
  Blobs blobs = MakeBlobs(5000, 4, 12, 3.0, 0.8, 12);
  KMeansOptions options;
  options.k = 12;
  options.n_init = 1;
  auto single = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  options.n_init = 6;
  auto several = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  ASSERT_TRUE(single.ok() && several.ok());
  EXPECT_LE(several->inertia, single->inertia);
}

TEST(KMeansTest, MiniBatchIsCloseToExact) {
  Blobs blobs = MakeBlobs(100000, 8, 6, 10.0, 1.0, 13);
  KMeansOptions options;
  options.k = 6;
  auto exact = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  options.algorithm = Algorithm::kMiniBatch;
  options.minibatch_size = 1024;
  auto mini = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  ASSERT_TRUE(exact.ok() && mini.ok());
  EXPECT_LT(mini->inertia, exact->inertia * 1.01);
  EXPECT_GT(AdjustedRandIndex(mini->labels, blobs.truth), 0.99);
  EXPECT_TRUE(mini->converged);
  EXPECT_LT(mini->iterations, 100000 / 1024 * 300);
}

TEST(ChooseKTest, FindsTheTrueNumberOfBlobs) {
  for (int true_k : {3, 5}) {
    Blobs blobs = AxisBlobs(4000, 6, true_k, 10.0, 1.0, 20 + true_k);
    KMeansOptions options;
    options.n_init = 2;
    std::vector<double> scores;
    auto k = ChooseK(blobs.data, blobs.n, blobs.d, 2, 8, options, Threads(2), &scores);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(*k, true_k) << ::testing::PrintToString(scores);
    ASSERT_EQ(scores.size(), 7u);
    EXPECT_GT(scores[true_k - 2], 0.5);
  }
  // The sample path (n above the sample size) agrees.
  Blobs blobs = AxisBlobs(6000, 6, 4, 10.0, 1.0, 30);
  KMeansOptions options;
  options.silhouette_sample_size = 1500;
  auto k = ChooseK(blobs.data, blobs.n, blobs.d, 2, 6, options, Threads(2), nullptr);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, 4);
}

TEST(ChooseKTest, CalinskiHarabaszFindsTheTrueNumberOfBlobs) {
  for (int true_k : {3, 5, 6}) {
    Blobs blobs = AxisBlobs(4000, 6, true_k, 10.0, 1.0, 40 + true_k);
    KMeansOptions options;
    options.n_init = 2;
    options.k_criterion = KMeansOptions::KCriterion::kCalinskiHarabasz;
    std::vector<double> scores;
    auto k = ChooseK(blobs.data, blobs.n, blobs.d, 2, 9, options, Threads(2), &scores);
    ASSERT_TRUE(k.ok()) << k.status().ToString();
    EXPECT_EQ(*k, true_k) << ::testing::PrintToString(scores);
    ASSERT_EQ(scores.size(), 8u);
  }
}

// The index against its definition computed from the labels, cluster by cluster.
TEST(ChooseKTest, CalinskiHarabaszMatchesItsDefinition) {
  Blobs blobs = AxisBlobs(900, 3, 3, 4.0, 1.5, 7);
  KMeansOptions options;
  options.k = 3;
  auto result = KMeans(blobs.data, blobs.n, blobs.d, options, Threads(2));
  ASSERT_TRUE(result.ok());
  const size_t n = blobs.n, d = blobs.d;
  std::vector<double> grand(d, 0.0), sums(3 * d, 0.0);
  std::vector<double> counts(3, 0.0);
  for (size_t i = 0; i < n; ++i) {
    int c = result->labels[i];
    counts[c] += 1;
    for (size_t j = 0; j < d; ++j) {
      grand[j] += blobs.data[i * d + j] / static_cast<double>(n);
      sums[c * d + j] += blobs.data[i * d + j];
    }
  }
  double within = 0, between = 0;
  for (int c = 0; c < 3; ++c) {
    for (size_t j = 0; j < d; ++j) {
      double centre = sums[c * d + j] / counts[c];
      between += counts[c] * (centre - grand[j]) * (centre - grand[j]);
    }
  }
  for (size_t i = 0; i < n; ++i) {
    int c = result->labels[i];
    for (size_t j = 0; j < d; ++j) {
      double dev = blobs.data[i * d + j] - sums[c * d + j] / counts[c];
      within += dev * dev;
    }
  }
  double expected = (between / 2) / (within / static_cast<double>(n - 3));
  double got = CalinskiHarabasz(blobs.data, n, d, 3, result->inertia);
  EXPECT_NEAR(got, expected, 1e-6 * expected);
  EXPECT_EQ(CalinskiHarabasz(blobs.data, n, d, 1, result->inertia), 0.0);
}

TEST(SilhouetteTest, MatchesBruteForce) {
  const size_t n = 300, d = 3;
  std::vector<float> data = UniformData(n, d, 40);
  std::vector<int32_t> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = static_cast<int32_t>((i * 7) % 4);
  labels[5] = 3;  // keep every cluster populated with >1 members
  double expected = 0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<double> sum(4, 0.0), size(4, 0.0);
    for (size_t j = 0; j < n; ++j) {
      double sq = 0;
      for (size_t f = 0; f < d; ++f) {
        double diff = static_cast<double>(data[i * d + f]) - data[j * d + f];
        sq += diff * diff;
      }
      sum[labels[j]] += std::sqrt(sq);
      size[labels[j]] += 1;
    }
    double a = sum[labels[i]] / (size[labels[i]] - 1);
    double b = std::numeric_limits<double>::infinity();
    for (int c = 0; c < 4; ++c) {
      if (c != labels[i]) b = std::min(b, sum[c] / size[c]);
    }
    expected += (b - a) / std::max(a, b);
  }
  expected /= n;
  double got = Silhouette(data, n, d, labels, 4, {}, Threads(2));
  EXPECT_NEAR(got, expected, 1e-5);
}

TEST(KMeansTest, EmptyClustersAreReseededIdenticallyByAllAlgorithms) {
  Blobs blobs = MakeBlobs(12000, 4, 5, 10.0, 1.0, 50);
  // Two duplicated initial centroids and one far away from everything: clusters empty at once.
  std::vector<float> init = RandomRows(blobs.data, blobs.n, blobs.d, 6, 51);
  std::copy(init.begin(), init.begin() + 4, init.begin() + 4);
  for (size_t j = 0; j < 4; ++j) init[5 * 4 + j] = 1000.0f;
  KMeansOptions options;
  options.k = 6;
  options.tolerance = 0;
  std::vector<KMeansResult> results;
  for (Algorithm algorithm : {Algorithm::kLloyd, Algorithm::kHamerly, Algorithm::kElkan}) {
    options.algorithm = algorithm;
    auto result = KMeansFrom(blobs.data, blobs.n, blobs.d, init, options, Threads(2));
    ASSERT_TRUE(result.ok());
    std::vector<int> members(6, 0);
    for (int32_t label : result->labels) members[label]++;
    for (int count : members) EXPECT_GT(count, 0);
    for (float v : result->centroids) EXPECT_LT(std::fabs(v), 100.0f);
    results.push_back(std::move(*result));
  }
  for (size_t a = 1; a < results.size(); ++a) {
    EXPECT_EQ(results[a].labels, results[0].labels);
    EXPECT_EQ(results[a].centroids, results[0].centroids);
  }
}

TEST(KMeansTest, EdgeCases) {
  // k == n: every point its own cluster.
  std::vector<float> data = UniformData(50, 3, 60);
  KMeansOptions options;
  options.k = 50;
  for (Algorithm algorithm : kExactAlgorithms) {
    options.algorithm = algorithm;
    auto result = KMeans(data, 50, 3, options, Threads(2));
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(result->inertia, 0.0);
  }
  // Fewer distinct points than k: duplicates end up in their own clusters, inertia 0.
  std::vector<float> duplicated;
  for (int copy = 0; copy < 10; ++copy) duplicated.insert(duplicated.end(), data.begin(), data.begin() + 9);
  options.k = 5;
  options.algorithm = Algorithm::kAuto;
  auto dup = KMeans(duplicated, 30, 3, options, Threads(2));
  ASSERT_TRUE(dup.ok());
  EXPECT_NEAR(dup->inertia, 0.0, 1e-9);
  // k == 1: the mean.
  options.k = 1;
  auto one = KMeans(data, 50, 3, options, Threads(2));
  ASSERT_TRUE(one.ok());
  for (size_t j = 0; j < 3; ++j) {
    double mean = 0;
    for (size_t i = 0; i < 50; ++i) mean += data[i * 3 + j];
    EXPECT_NEAR(one->centroids[j], mean / 50, 1e-6);
  }
  // One dimension, one point.
  std::vector<float> single = {3.5f};
  auto tiny = KMeans(single, 1, 1, options, Threads(2));
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->centroids[0], 3.5f);
  EXPECT_EQ(tiny->labels, std::vector<int32_t>{0});
}

TEST(KMeansTest, RejectsBadInput) {
  std::vector<float> data = UniformData(20, 2, 70);
  KMeansOptions options;
  options.k = 3;
  Context ctx = Threads(1);
  auto expect_invalid = [](const Result<KMeansResult>& r, const char* needle) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  expect_invalid(KMeans(data, 0, 2, options, ctx), "n == 0");
  expect_invalid(KMeans({}, 20, 0, options, ctx), "d == 0");
  expect_invalid(KMeans(data, 21, 2, options, ctx), "expected n * d");
  options.k = 21;
  expect_invalid(KMeans(data, 20, 2, options, ctx), "k = 21");
  options.k = 0;
  expect_invalid(KMeans(data, 20, 2, options, ctx), "k = 0");
  options.k = 3;
  std::vector<float> bad = data;
  bad[13] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(KMeans(bad, 20, 2, options, ctx), "value 13 is not finite");
  bad[13] = std::numeric_limits<float>::infinity();
  expect_invalid(KMeans(bad, 20, 2, options, ctx), "not finite");
  std::vector<float> init(5, 0.0f);
  expect_invalid(KMeansFrom(data, 20, 2, init, options, ctx), "init_centroids has 5");
  init.assign(6, 0.0f);
  init[2] = std::numeric_limits<float>::infinity();
  expect_invalid(KMeansFrom(data, 20, 2, init, options, ctx), "init_centroids value 2");
  options.tolerance = -1;
  expect_invalid(KMeans(data, 20, 2, options, ctx), "tolerance");
  options.tolerance = 1e-4;
  options.max_iterations = 0;
  expect_invalid(KMeans(data, 20, 2, options, ctx), "max_iterations");
  options.max_iterations = 10;
  options.n_init = 0;
  expect_invalid(KMeans(data, 20, 2, options, ctx), "n_init");
  options.n_init = 1;
  EXPECT_FALSE(ChooseK(data, 20, 2, 1, 4, options, ctx, nullptr).ok());
  EXPECT_FALSE(ChooseK(data, 20, 2, 5, 4, options, ctx, nullptr).ok());
  EXPECT_FALSE(ChooseK(data, 20, 2, 2, 21, options, ctx, nullptr).ok());
}

TEST(AssignNearestTest, MatchesBruteForceWithLowestIndexOnTies) {
  const size_t n = 1001, d = 7, k = 19;
  std::vector<float> data = UniformData(n, d, 80);
  std::vector<float> centroids = UniformData(k, d, 81);
  // A duplicated centroid: ties must go to the lower index.
  std::copy(centroids.begin() + 3 * d, centroids.begin() + 4 * d, centroids.begin() + 10 * d);
  std::vector<int32_t> labels(n);
  std::vector<float> sq(n);
  AssignNearest(data, n, d, centroids, k, labels, sq, Threads(2));
  for (size_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    int32_t best_c = -1;
    for (size_t c = 0; c < k; ++c) {
      double s = 0;
      for (size_t j = 0; j < d; ++j) {
        double diff = static_cast<double>(data[i * d + j]) - centroids[c * d + j];
        s += diff * diff;
      }
      if (s < best) best = s, best_c = static_cast<int32_t>(c);
    }
    EXPECT_EQ(labels[i], best_c);
    EXPECT_NE(labels[i], 10);
    EXPECT_NEAR(sq[i], best, 1e-5 * best + 1e-7);
  }
}

// Every kernel set this CPU supports must return the generic kernel's values bit for bit, which
// is what keeps the algorithms on one trajectory.
TEST(KMeansKernelsTest, EveryInstructionSetMatchesGenericBitForBit) {
  namespace ki = kmeans_internal;
  std::vector<std::string> sets = {"avx2", "avx512"};
  for (size_t d : {1u, 5u, 16u, 17u}) {
    for (size_t k : {1u, 7u, 16u, 17u, 33u, 64u}) {
      std::vector<float> data = UniformData(64, d, 90 + d);
      std::vector<float> centroids = UniformData(k, d, 91 + k);
      if (k > 3) std::copy(centroids.begin(), centroids.begin() + d, centroids.begin() + 2 * d);
      ki::CentroidPanel panel;
      ki::BuildPanel(centroids.data(), k, d, &panel);
      auto evaluate = [&](std::vector<float>* out) {
        out->clear();
        std::vector<float> block(ki::kRowsPerBlock * panel.padded_k);
        for (size_t i = 0; i < 64; i += ki::kRowsPerBlock) {
          const float* rows[ki::kRowsPerBlock];
          const float* cs[ki::kRowsPerBlock];
          for (size_t r = 0; r < ki::kRowsPerBlock; ++r) {
            rows[r] = data.data() + (i + r) * d;
            cs[r] = centroids.data() + ((i + r) % k) * d;
          }
          ki::SquaredDistancesBlock(rows, panel, block.data());
          for (size_t r = 0; r < ki::kRowsPerBlock; ++r) {
            out->insert(out->end(), block.begin() + r * panel.padded_k,
                        block.begin() + r * panel.padded_k + k);
          }
          int32_t best[ki::kRowsPerBlock];
          float best_sq[ki::kRowsPerBlock], second_sq[ki::kRowsPerBlock], pair[ki::kRowsPerBlock];
          ki::NearestTwoBlock(rows, panel, best, best_sq, second_sq);
          ki::SquaredDistances4(rows, cs, d, pair);
          for (size_t r = 0; r < ki::kRowsPerBlock; ++r) {
            out->push_back(static_cast<float>(best[r]));
            out->push_back(best_sq[r]);
            out->push_back(second_sq[r]);
            out->push_back(pair[r]);
            out->push_back(ki::SquaredDistance(rows[r], cs[r], d));
          }
        }
      };
      ASSERT_TRUE(ki::UseKernelsForTesting("generic"));
      std::vector<float> expected, got;
      evaluate(&expected);
      for (const std::string& set : sets) {
        if (!ki::UseKernelsForTesting(set.c_str())) continue;
        evaluate(&got);
        ASSERT_EQ(got.size(), expected.size());
        EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)))
            << set << " d=" << d << " k=" << k;
      }
      ki::UseKernelsForTesting("best");
    }
  }
  // Whole runs agree too.
  Blobs blobs = MakeBlobs(6000, 9, 10, 5.0, 1.5, 92);
  std::vector<float> init = RandomRows(blobs.data, blobs.n, blobs.d, 10, 93);
  KMeansOptions options;
  options.k = 10;
  ASSERT_TRUE(ki::UseKernelsForTesting("generic"));
  auto reference = KMeansFrom(blobs.data, blobs.n, blobs.d, init, options, Threads(2));
  for (const std::string& set : sets) {
    if (!ki::UseKernelsForTesting(set.c_str())) continue;
    auto run = KMeansFrom(blobs.data, blobs.n, blobs.d, init, options, Threads(2));
    ASSERT_TRUE(reference.ok() && run.ok());
    EXPECT_EQ(run->centroids, reference->centroids) << set;
    EXPECT_EQ(run->labels, reference->labels) << set;
  }
  ki::UseKernelsForTesting("best");
  std::cout << "kernel in use: " << ki::KernelName() << "\n";
}

TEST(MetricsTest, AdjustedRandIndexKnownValues) {
  std::vector<int32_t> a = {0, 0, 1, 1}, b = {0, 0, 1, 2}, c = {0, 1, 0, 1}, p = {7, 7, -3, -3};
  // scikit-learn adjusted_rand_score reference values.
  EXPECT_NEAR(AdjustedRandIndex(a, b), 0.5714285714285715, 1e-12);
  EXPECT_NEAR(AdjustedRandIndex(a, c), -0.5, 1e-12);
  EXPECT_DOUBLE_EQ(AdjustedRandIndex(a, p), 1.0);
  std::vector<int32_t> x = {0, 0, 0, 1, 1, 1, 2, 2, 2, 2}, y = {0, 0, 1, 1, 1, 2, 2, 2, 2, 0};
  // Hand count: pairs-in-cells 5, rows 3+3+6=12, cols 3+3+6=12, C(10,2)=45.
  double expected = (5 - 12.0 * 12 / 45) / (12 - 12.0 * 12 / 45);
  EXPECT_NEAR(AdjustedRandIndex(x, y), expected, 1e-12);
  std::vector<int32_t> ones(5, 1), zeros(5, 0);
  EXPECT_DOUBLE_EQ(AdjustedRandIndex(ones, zeros), 1.0);
  EXPECT_DOUBLE_EQ(AdjustedRandIndex({}, {}), 1.0);
}

}  // namespace
}  // namespace shoal
