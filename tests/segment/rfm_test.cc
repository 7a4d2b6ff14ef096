#include "segment/rfm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <unordered_map>

namespace shoal::segment {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(RfmCuts, EqualCountOnDistinctData) {
  std::vector<double> values;
  for (int v = 1; v <= 100; ++v) values.push_back(v);
  std::vector<double> cuts = TieAwareQuantileCuts(values, 5);
  EXPECT_EQ(cuts, (std::vector<double>{20, 40, 60, 80}));
  EXPECT_EQ(ScoreFromCuts(1, cuts, 5), 1);
  EXPECT_EQ(ScoreFromCuts(20, cuts, 5), 1);
  EXPECT_EQ(ScoreFromCuts(21, cuts, 5), 2);
  EXPECT_EQ(ScoreFromCuts(100, cuts, 5), 5);
}

TEST(RfmCuts, SkewedFrequencyStillFillsEveryBin) {
  // 60% one order, 20% two, 10% three, 5% four, 5% between 5 and 9.
  std::vector<double> values;
  for (int i = 0; i < 600; ++i) values.push_back(1);
  for (int i = 0; i < 200; ++i) values.push_back(2);
  for (int i = 0; i < 100; ++i) values.push_back(3);
  for (int i = 0; i < 50; ++i) values.push_back(4);
  for (int i = 0; i < 50; ++i) values.push_back(5 + i % 5);
  std::vector<double> cuts = TieAwareQuantileCuts(values, 5);
  ASSERT_EQ(cuts.size(), 4u);
  EXPECT_EQ(cuts, (std::vector<double>{1, 2, 3, 4}));
  std::map<int, int> per_score;
  for (double v : values) ++per_score[ScoreFromCuts(v, cuts, 5)];
  EXPECT_EQ(per_score.size(), 5u);
  EXPECT_EQ(per_score[1], 600);  // ties never split
  EXPECT_EQ(per_score[5], 50);
}

TEST(RfmCuts, FewerDistinctValuesThanBinsSpreadOverScale) {
  std::vector<double> values = {1, 1, 1, 2, 2, 3};
  std::vector<double> cuts = TieAwareQuantileCuts(values, 5);
  EXPECT_EQ(cuts, (std::vector<double>{1, 2}));
  EXPECT_EQ(ScoreFromCuts(1, cuts, 5), 1);
  EXPECT_EQ(ScoreFromCuts(2, cuts, 5), 3);
  EXPECT_EQ(ScoreFromCuts(3, cuts, 5), 5);
  std::vector<double> constant = {7, 7, 7};
  EXPECT_TRUE(TieAwareQuantileCuts(constant, 5).empty());
  EXPECT_EQ(ScoreFromCuts(7, {}, 5), 3);
  EXPECT_EQ(ScoreFromCuts(7, {}, 4), 2);
}

TEST(RfmCuts, ExactlyBinsDistinctValuesGiveAllScores) {
  std::vector<double> values = {5, 5, 5, 5, 5, 5, 5, 5, 6, 7, 8, 9};
  std::vector<double> cuts = TieAwareQuantileCuts(values, 5);
  EXPECT_EQ(cuts, (std::vector<double>{5, 6, 7, 8}));
}

TEST(RfmDefaultTable, CoversEveryCell) {
  for (int r = 1; r <= 5; ++r) {
    for (int fm = 1; fm <= 5; ++fm) {
      bool matched = false;
      for (const RfmSegmentRule& rule : DefaultRfmSegments()) {
        if (rule.r.Contains(r) && rule.fm.Contains(fm)) matched = true;
      }
      EXPECT_TRUE(matched) << "R=" << r << " FM=" << fm;
    }
  }
  EXPECT_EQ(DefaultRfmSegments().size(), 11u);
}

TEST(Rfm, HandComputedCustomers) {
  // Fixed cuts make the expected scores hand-checkable.
  RfmOptions options;
  options.recency_cuts = {10, 30, 90, 180};
  options.frequency_cuts = {1, 2, 4, 8};
  options.monetary_cuts = {50, 100, 250, 500};
  std::vector<double> recency = {5, 400, 20, 200, 5, kNaN, 100};
  std::vector<double> frequency = {12, 10, 1, 1, 1, 0, 3};
  std::vector<double> monetary = {900, 800, 30, 20, 40, 0, 150};
  Context context;
  auto result = ComputeRfm(recency, frequency, monetary, options, context);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  auto name = [&](size_t idx) { return result->segment_names[result->segment[idx]]; };
  EXPECT_EQ(result->r[0], 5);
  EXPECT_EQ(result->f[0], 5);
  EXPECT_EQ(result->m[0], 5);
  EXPECT_EQ(name(0), "Champions");
  EXPECT_EQ(result->r[1], 1);
  EXPECT_EQ(name(1), "Can't Lose Them");
  EXPECT_EQ(result->r[2], 4);
  EXPECT_EQ(name(2), "Promising");  // R4, F1, M1
  EXPECT_EQ(name(3), "Lost");       // R1, F1, M1
  EXPECT_EQ(name(4), "New");        // R5, F1, M1
  EXPECT_EQ(result->r[5], 0);
  EXPECT_EQ(name(5), "No Orders");
  EXPECT_EQ(result->r[6], 2);  // 100 days: above 90, at most 180
  EXPECT_EQ(result->f[6], 3);
  EXPECT_EQ(result->m[6], 3);
  EXPECT_EQ(name(6), "At Risk");
}

TEST(Rfm, RecentIsHighAndSkewedDataUsesAllScores) {
  std::mt19937_64 rng(7);
  std::geometric_distribution<int> orders(0.55);
  std::exponential_distribution<double> days(1.0 / 60);
  std::lognormal_distribution<double> spend(4, 1);
  const size_t n = 5000;
  std::vector<double> recency(n), frequency(n), monetary(n);
  for (size_t idx = 0; idx < n; ++idx) {
    frequency[idx] = idx % 10 == 0 ? 0 : 1 + orders(rng);
    recency[idx] = std::floor(days(rng));
    monetary[idx] = frequency[idx] * spend(rng);
  }
  Context context;
  context.threads = 2;
  auto result = ComputeRfm(recency, frequency, monetary, RfmOptions{}, context);
  ASSERT_TRUE(result.ok());
  std::map<int, int> f_counts, r_counts;
  double min_recency_r5 = 1e9, max_recency_r5 = -1, min_recency_r1 = 1e9;
  for (size_t idx = 0; idx < n; ++idx) {
    ++f_counts[result->f[idx]];
    ++r_counts[result->r[idx]];
    if (result->r[idx] == 5) max_recency_r5 = std::max(max_recency_r5, recency[idx]);
    if (result->r[idx] == 5) min_recency_r5 = std::min(min_recency_r5, recency[idx]);
    if (result->r[idx] == 1) min_recency_r1 = std::min(min_recency_r1, recency[idx]);
  }
  EXPECT_EQ(f_counts[0], 500);
  for (int score = 1; score <= 5; ++score) {
    EXPECT_GT(f_counts[score], 0) << score;
    EXPECT_GT(r_counts[score], 0) << score;
  }
  EXPECT_EQ(min_recency_r5, 0);
  EXPECT_LT(max_recency_r5, min_recency_r1);
  // The thread count does not change anything.
  context.threads = 1;
  auto serial = ComputeRfm(recency, frequency, monetary, RfmOptions{}, context);
  ASSERT_TRUE(serial.ok());
  EXPECT_EQ(serial->segment, result->segment);
  EXPECT_EQ(serial->m, result->m);
}

TEST(Rfm, ThreeBinsRescaleForDefaultTable) {
  RfmOptions options;
  options.bins = 3;
  options.recency_cuts = {30, 90};
  options.frequency_cuts = {1, 3};
  options.monetary_cuts = {100, 300};
  std::vector<double> recency = {10, 200};
  std::vector<double> frequency = {5, 5};
  std::vector<double> monetary = {500, 500};
  auto result = ComputeRfm(recency, frequency, monetary, options, Context{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->r[0], 3);
  EXPECT_EQ(result->segment_names[result->segment[0]], "Champions");
  EXPECT_EQ(result->segment_names[result->segment[1]], "Can't Lose Them");
}

TEST(Rfm, RejectsBadOptions) {
  std::vector<double> col = {1, 2};
  RfmOptions options;
  options.bins = 6;
  EXPECT_FALSE(ComputeRfm(col, col, col, options, Context{}).ok());
  options.bins = 5;
  options.frequency_cuts = {1, 2, 3};
  EXPECT_FALSE(ComputeRfm(col, col, col, options, Context{}).ok());
  options.frequency_cuts = {1, 3, 2, 4};
  EXPECT_FALSE(ComputeRfm(col, col, col, options, Context{}).ok());
  std::vector<double> shorter = {1};
  EXPECT_FALSE(ComputeRfm(col, shorter, col, RfmOptions{}, Context{}).ok());
}

TEST(RfmToml, ReadsBinsCutsAndSegments) {
  auto options = ParseRfmOptions(R"(
[rfm]
bins = 4
frequency_cuts = [1, 2, 5]

[[rfm.segments]]
name = "Best"
r = [3, 4]
f = 4

[[rfm.segments]]
name = "Rest"
)");
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->bins, 4);
  EXPECT_EQ(options->frequency_cuts, (std::vector<double>{1, 2, 5}));
  ASSERT_EQ(options->segments.size(), 2u);
  EXPECT_EQ(options->segments[0].r.lo, 3);
  EXPECT_EQ(options->segments[0].f.lo, 4);
  EXPECT_EQ(options->segments[0].f.hi, 4);
  std::vector<double> recency = {1, 1000, 1, 5};
  std::vector<double> frequency = {9, 9, 1, 9};
  std::vector<double> monetary = {1, 2, 3, 4};
  auto result = ComputeRfm(recency, frequency, monetary, *options, Context{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->segment_names[result->segment[0]], "Best");
  EXPECT_EQ(result->segment_names[result->segment[1]], "Rest");  // R too low
  EXPECT_EQ(result->segment_names[result->segment[2]], "Rest");  // F = 1
}

TEST(RfmToml, ErrorsNameTheKey) {
  auto bad_bins = ParseRfmOptions("[rfm]\nbins = 9\n");
  ASSERT_FALSE(bad_bins.ok());
  EXPECT_NE(bad_bins.status().message().find("bins"), std::string::npos);
  auto bad_range = ParseRfmOptions("[[rfm.segments]]\nname = \"X\"\nr = [5, 1]\n");
  ASSERT_FALSE(bad_range.ok());
  EXPECT_NE(bad_range.status().message().find("'X'"), std::string::npos);
  EXPECT_FALSE(ParseRfmOptions("[rfm\n").ok());
  auto empty = ParseRfmOptions("");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->bins, 5);
}

// Real data: the CDNOW cohort (23,570 customers, about half of whom bought once). Frequency is the
// number of distinct purchase days, recency the days from the last one to 1998-07-01.
TEST(RfmCdnow, SkewedRealFrequencyUsesEveryScoreWithoutSplittingTies) {
  std::ifstream file(std::string(SHOAL_SHARED_DATA) + "/cdnow/CDNOW_master.txt");
  ASSERT_TRUE(file.is_open()) << "CDNOW data missing";
  std::string line;
  std::getline(file, line);  // header
  struct Customer {
    int last_day = std::numeric_limits<int>::min();
    double orders = 0;
    double spend = 0;
  };
  std::unordered_map<int, Customer> customers;
  using namespace std::chrono;
  const sys_days end = year{1998} / July / 1;
  while (std::getline(file, line)) {
    std::istringstream fields(line);
    int id = 0, date = 0, cds = 0;
    double dollars = 0;
    ASSERT_TRUE(fields >> id >> date >> cds >> dollars) << line;
    const sys_days day = year{date / 10000} / month{static_cast<unsigned>(date / 100 % 100)} /
                         std::chrono::day{static_cast<unsigned>(date % 100)};
    const int day_number = static_cast<int>((day - end).count());
    Customer& customer = customers[id];
    if (day_number != customer.last_day) customer.orders += 1;  // records are sorted by date
    customer.last_day = std::max(customer.last_day, day_number);
    customer.spend += dollars;
  }
  ASSERT_EQ(customers.size(), 23570u);
  std::vector<double> recency, frequency, monetary;
  for (const auto& [id, customer] : customers) {
    recency.push_back(-customer.last_day);
    frequency.push_back(customer.orders);
    monetary.push_back(customer.spend);
  }
  Context context;
  context.threads = 2;
  auto result = ComputeRfm(recency, frequency, monetary, RfmOptions{}, context);
  ASSERT_TRUE(result.ok());
  std::map<int, int> f_counts;
  std::map<double, std::set<int>> scores_of_value;
  size_t one_order = 0;
  for (size_t idx = 0; idx < frequency.size(); ++idx) {
    if (frequency[idx] == 1) ++one_order;
    ++f_counts[result->f[idx]];
    scores_of_value[frequency[idx]].insert(result->f[idx]);
  }
  EXPECT_GT(one_order, frequency.size() * 45 / 100);  // heavily skewed
  for (int score = 1; score <= 5; ++score) EXPECT_GT(f_counts[score], 0) << score;
  EXPECT_EQ(f_counts[1], static_cast<int>(one_order));  // the tie at 1 is one score
  for (const auto& [value, scores] : scores_of_value) EXPECT_EQ(scores.size(), 1u) << value;
  // Scores are monotone in the value.
  int previous_score = 0;
  for (const auto& [value, scores] : scores_of_value) {
    EXPECT_GE(*scores.begin(), previous_score);
    previous_score = *scores.begin();
  }
  std::map<std::string, int> segments;
  for (int32_t segment : result->segment) ++segments[result->segment_names[segment]];
  EXPECT_EQ(segments["No Orders"], 0);
  EXPECT_GT(segments["Champions"], 0);
  EXPECT_GT(segments["Lost"] + segments["Hibernating"], static_cast<int>(customers.size() / 4));
}

}  // namespace
}  // namespace shoal::segment
