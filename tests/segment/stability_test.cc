#include "segment/stability.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

namespace shoal::segment {
namespace {

double BruteForceCost(const std::vector<double>& cost, size_t rows, size_t cols) {
  std::vector<size_t> columns(cols);
  std::iota(columns.begin(), columns.end(), 0);
  double best = 1e300;
  do {
    double total = 0;
    for (size_t r = 0; r < rows; ++r) total += cost[r * cols + columns[r]];
    best = std::min(best, total);
  } while (std::next_permutation(columns.begin(), columns.end()));
  return best;
}

TEST(Hungarian, MatchesBruteForce) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0, 10);
  for (int trial = 0; trial < 50; ++trial) {
    const size_t rows = 2 + trial % 5, cols = rows + trial % 3;
    std::vector<double> cost(rows * cols);
    for (double& c : cost) c = trial % 4 == 0 ? std::floor(uniform(rng)) : uniform(rng);
    std::vector<int32_t> assignment = SolveAssignment(cost, rows, cols);
    ASSERT_EQ(assignment.size(), rows);
    std::vector<int32_t> sorted = assignment;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());  // distinct columns
    double total = 0;
    for (size_t r = 0; r < rows; ++r) total += cost[r * cols + assignment[r]];
    EXPECT_NEAR(total, BruteForceCost(cost, rows, cols), 1e-9) << trial;
  }
}

// Four well separated previous clusters in 2-D with ids 10..13.
PreviousClusters FourClusters() {
  PreviousClusters previous;
  previous.centroids = {0, 0, 10, 0, 0, 10, 10, 10};
  previous.segment_ids = {10, 11, 12, 13};
  previous.names = {"a", "b", "c", "d"};
  previous.next_segment_id = 14;
  return previous;
}

TEST(Stability, PermutedCentroidsKeepIdsAndNames) {
  PreviousClusters previous = FourClusters();
  // The same clusters in another order, slightly moved.
  std::vector<double> centroids = {10.3, 9.8, 0.2, 0.1, 9.9, -0.2, 0.1, 10.2};
  std::vector<double> points = {0, 0, 10, 10};
  auto result =
      StabiliseClusters(points, centroids, 2, {}, previous, StabilityOptions{}, Context{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->segment_ids, (std::vector<int64_t>{13, 10, 11, 12}));
  EXPECT_EQ(result->names, (std::vector<std::string>{"d", "a", "b", "c"}));
  EXPECT_EQ(result->matched_previous, (std::vector<int32_t>{3, 0, 1, 2}));
  EXPECT_EQ(result->next_segment_id, 14);
  EXPECT_DOUBLE_EQ(result->max_match_distance, 5.0);  // half the median nearest distance 10
  EXPECT_EQ(result->customer_segment_ids, (std::vector<int64_t>{10, 13}));
}

TEST(Stability, TrulyNewClusterGetsNewIdAndVanishedOneIsDropped) {
  PreviousClusters previous = FourClusters();
  // Cluster "b" (10, 0) vanished; one at (30, 30) is new; the others stay.
  std::vector<double> centroids = {0, 0, 0, 10, 10, 10, 30, 30, 5.5, 0};
  auto result = StabiliseClusters({}, centroids, 2, {}, previous, StabilityOptions{}, Context{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->segment_ids[0], 10);
  EXPECT_EQ(result->segment_ids[1], 12);
  EXPECT_EQ(result->segment_ids[2], 13);
  // (30, 30) is far from everything: new. (5.5, 0) is 4.5 from "b": within the threshold 5.
  EXPECT_EQ(result->segment_ids[3], 14);
  EXPECT_EQ(result->names[3], "");
  EXPECT_EQ(result->segment_ids[4], 11);
  EXPECT_EQ(result->next_segment_id, 15);
  // A tighter threshold turns the drifted cluster into a new segment too.
  StabilityOptions tight;
  tight.max_match_distance = 1.0;
  auto strict = StabiliseClusters({}, centroids, 2, {}, previous, tight, Context{});
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(strict->segment_ids[3], 14);
  EXPECT_EQ(strict->segment_ids[4], 15);
  EXPECT_EQ(strict->matched_previous[4], -1);
}

TEST(Stability, FirstBuildNumbersFromNextId) {
  PreviousClusters none;
  none.next_segment_id = 1;
  std::vector<double> centroids = {0, 5};
  auto result = StabiliseClusters({}, centroids, 1, {}, none, StabilityOptions{}, Context{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->segment_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(result->next_segment_id, 3);
}

TEST(Stability, TransitionMatrixCounts) {
  PreviousClusters previous;
  previous.centroids = {0, 10};
  previous.segment_ids = {1, 2};
  previous.names = {"low", "high"};
  previous.next_segment_id = 3;
  // New build: the same two clusters plus a new one at 20.
  std::vector<double> centroids = {0, 10, 20};
  std::vector<double> points = {0.5, 1, 9, 11, 19, 21, 2, 12};
  std::vector<int64_t> before = {1, 1, 1, 2, 2, -1, -1, 1};
  StabilityOptions options;
  options.hysteresis = 0;
  auto result = StabiliseClusters(points, centroids, 1, before, previous, options, Context{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->customer_segment_ids, (std::vector<int64_t>{1, 1, 2, 2, 3, 3, 1, 2}));
  const TransitionMatrix& t = result->transitions;
  EXPECT_EQ(t.from_ids, (std::vector<int64_t>{-1, 1, 2}));
  EXPECT_EQ(t.to_ids, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(t.Count(1, 1), 2);
  EXPECT_EQ(t.Count(1, 2), 2);
  EXPECT_EQ(t.Count(2, 2), 1);
  EXPECT_EQ(t.Count(2, 3), 1);
  EXPECT_EQ(t.Count(-1, 3), 1);
  EXPECT_EQ(t.Count(-1, 1), 1);
  EXPECT_EQ(t.Count(2, 1), 0);
  int64_t total = 0;
  for (int64_t c : t.counts) total += c;
  EXPECT_EQ(total, 8);
  EXPECT_EQ(result->moved, 3);
}

TEST(Stability, HysteresisPreventsFlappingOnTinyNoise) {
  PreviousClusters previous;
  previous.centroids = {0, 10};
  previous.segment_ids = {1, 2};
  previous.names = {"left", "right"};
  // Customers spread around the boundary at 5, assigned last time to the nearer side.
  std::vector<double> points;
  std::vector<int64_t> before;
  for (int step = 0; step <= 40; ++step) {
    const double x = (80 + step) / 20.0;  // 4.0 .. 6.0 in steps of 0.05
    points.push_back(x);
    before.push_back(x < 5 ? 1 : 2);
  }
  // The rebuild moves both centroids right by 0.12: the boundary moves to 5.12.
  std::vector<double> centroids = {0.12, 10.12};
  StabilityOptions no_hysteresis;
  no_hysteresis.hysteresis = 0;
  auto flapping =
      StabiliseClusters(points, centroids, 1, before, previous, no_hysteresis, Context{});
  ASSERT_TRUE(flapping.ok());
  EXPECT_EQ(flapping->moved, 3);  // 5.0, 5.05, 5.1 flip to the left
  auto stable =
      StabiliseClusters(points, centroids, 1, before, previous, StabilityOptions{}, Context{});
  ASSERT_TRUE(stable.ok());
  EXPECT_EQ(stable->moved, 0);
  int kept = 0;
  for (uint8_t flag : stable->kept_by_hysteresis) kept += flag;
  EXPECT_EQ(kept, 3);
  // A customer clearly on the other side still moves: 2.0 was "right" before.
  points.push_back(2.0);
  before.push_back(2);
  auto moved =
      StabiliseClusters(points, centroids, 1, before, previous, StabilityOptions{}, Context{});
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(moved->moved, 1);
  EXPECT_EQ(moved->customer_segment_ids.back(), 1);
}

TEST(Stability, ThreadCountDoesNotMatter) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> noise(0, 3);
  PreviousClusters previous = FourClusters();
  std::vector<double> points;
  std::vector<int64_t> before;
  for (int idx = 0; idx < 20000; ++idx) {
    points.push_back(5 + noise(rng));
    points.push_back(5 + noise(rng));
    before.push_back(10 + idx % 4);
  }
  std::vector<double> centroids = {0.5, 0, 10, 0.5, 0, 9.5, 9.5, 10};
  Context one, two;
  one.threads = 1;
  two.threads = 2;
  auto a = StabiliseClusters(points, centroids, 2, before, previous, StabilityOptions{}, one);
  auto b = StabiliseClusters(points, centroids, 2, before, previous, StabilityOptions{}, two);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->assignment, b->assignment);
  EXPECT_EQ(a->transitions.counts, b->transitions.counts);
}

TEST(Stability, FloatInputsAgreeWithDouble) {
  PreviousClusters previous = FourClusters();
  std::vector<double> centroids = {10.3, 9.8, 0.2, 0.1, 9.9, -0.2, 0.1, 10.2};
  std::vector<double> points = {0, 0, 10, 10, 4.9, 0.2, 9.7, 5.2};
  std::vector<int64_t> before = {10, 13, 11, 12};
  std::vector<float> centroids_f(centroids.begin(), centroids.end());
  std::vector<float> points_f(points.begin(), points.end());
  auto as_double = StabiliseClusters(points, centroids, 2, before, previous, {}, Context{});
  auto as_float = StabiliseClusters(points_f, centroids_f, 2, before, previous, {}, Context{});
  ASSERT_TRUE(as_double.ok() && as_float.ok());
  EXPECT_EQ(as_double->segment_ids, as_float->segment_ids);
  EXPECT_EQ(as_double->customer_segment_ids, as_float->customer_segment_ids);
  EXPECT_EQ(as_double->kept_by_hysteresis, as_float->kept_by_hysteresis);
}

TEST(Stability, RejectsBadInput) {
  PreviousClusters previous = FourClusters();
  std::vector<double> centroids = {0, 0, 1};
  EXPECT_FALSE(StabiliseClusters({}, centroids, 2, {}, previous, {}, Context{}).ok());
  previous.names.pop_back();
  std::vector<double> ok_centroids = {0, 0};
  EXPECT_FALSE(StabiliseClusters({}, ok_centroids, 2, {}, previous, {}, Context{}).ok());
  StabilityOptions negative;
  negative.hysteresis = -1;
  EXPECT_FALSE(
      StabiliseClusters({}, ok_centroids, 2, {}, FourClusters(), negative, Context{}).ok());
}

}  // namespace
}  // namespace shoal::segment
