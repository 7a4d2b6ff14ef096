#include "predict/evaluation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace shoal {
namespace {

// O(n^2) reference: share of (positive, negative) pairs ordered correctly, ties one half.
double BruteForceAuc(const std::vector<double>& scores, const std::vector<float>& labels) {
  double wins = 0.0, pairs = 0.0;
  for (size_t pos_idx = 0; pos_idx < scores.size(); ++pos_idx) {
    if (labels[pos_idx] != 1.0f) continue;
    for (size_t neg_idx = 0; neg_idx < scores.size(); ++neg_idx) {
      if (labels[neg_idx] != 0.0f) continue;
      pairs += 1.0;
      if (scores[pos_idx] > scores[neg_idx]) wins += 1.0;
      if (scores[pos_idx] == scores[neg_idx]) wins += 0.5;
    }
  }
  return wins / pairs;
}

TEST(AucTest, HandExampleWithTies) {
  // Pairs (pos, neg): positives 0.8, 0.4, 0.4; negatives 0.4, 0.1.
  // 0.8 beats both (2); each 0.4 ties 0.4 (0.5) and beats 0.1 (1) -> 2 + 1.5 + 1.5 = 5 of 6.
  std::vector<double> scores = {0.8, 0.4, 0.4, 0.4, 0.1};
  std::vector<float> labels = {1, 1, 1, 0, 0};
  Result<double> auc = Auc(scores, labels);
  ASSERT_TRUE(auc.ok()) << auc.status().ToString();
  EXPECT_DOUBLE_EQ(*auc, 5.0 / 6.0);
}

TEST(AucTest, PerfectReversedAndAllTied) {
  std::vector<float> labels = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(*Auc(std::vector<double>{1, 2, 3, 4}, labels), 1.0);
  EXPECT_DOUBLE_EQ(*Auc(std::vector<double>{4, 3, 2, 1}, labels), 0.0);
  EXPECT_DOUBLE_EQ(*Auc(std::vector<double>{7, 7, 7, 7}, labels), 0.5);
}

TEST(AucTest, MatchesBruteForceOnRandomDataWithManyTies) {
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int trial = 0; trial < 20; ++trial) {
    size_t n = 50 + static_cast<size_t>(next() % 400);
    std::vector<double> scores(n);
    std::vector<float> labels(n);
    for (size_t row_idx = 0; row_idx < n; ++row_idx) {
      scores[row_idx] = static_cast<double>(next() % 13) / 4.0;  // 13 levels: heavy ties
      labels[row_idx] = (next() % 3 == 0) ? 1.0f : 0.0f;
    }
    labels[0] = 1.0f;
    labels[1] = 0.0f;
    Result<double> auc = Auc(scores, labels);
    ASSERT_TRUE(auc.ok());
    EXPECT_NEAR(*auc, BruteForceAuc(scores, labels), 1e-12) << "trial " << trial;
    std::vector<float> float_scores(scores.begin(), scores.end());
    EXPECT_NEAR(*Auc(float_scores, labels), *auc, 1e-12);
  }
}

TEST(AucTest, RejectsBadInput) {
  std::vector<double> scores = {0.1, 0.2};
  EXPECT_EQ(Auc(scores, std::vector<float>{1, 1}).status().code(),
            Status::Code::kInvalidArgument);  // one class
  EXPECT_EQ(Auc(scores, std::vector<float>{1}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Auc(scores, std::vector<float>{1, 2}).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Auc(std::vector<double>{NAN, 0.2}, std::vector<float>{1, 0}).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(LogLossTest, HandExample) {
  std::vector<double> probabilities = {0.9, 0.2, 0.6};
  std::vector<float> labels = {1, 0, 0};
  double expected = -(std::log(0.9) + std::log(0.8) + std::log(0.4)) / 3.0;
  EXPECT_NEAR(*LogLoss(probabilities, labels), expected, 1e-15);
  // A confident miss is clipped, not infinite: -log(1e-15).
  EXPECT_NEAR(*LogLoss(std::vector<double>{0.0}, std::vector<float>{1}), -std::log(1e-15), 1e-9);
  EXPECT_EQ(LogLoss(std::vector<double>{1.5}, std::vector<float>{1}).status().code(),
            Status::Code::kInvalidArgument);
  EXPECT_EQ(LogLoss(std::vector<double>{}, std::vector<float>{}).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(BrierScoreTest, HandExample) {
  EXPECT_NEAR(*BrierScore(std::vector<double>{0.9, 0.2, 0.6}, std::vector<float>{1, 0, 0}),
              (0.01 + 0.04 + 0.36) / 3.0, 1e-15);
}

TEST(CalibrationTableTest, EqualCountBinsInScoreOrder) {
  // 7 rows into 3 bins: sizes 3, 2, 2 (earlier bins take the extra row).
  std::vector<double> scores = {0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8};
  std::vector<float> labels = {1, 0, 1, 0, 1, 0, 0};
  Result<std::vector<CalibrationBin>> table = CalibrationTable(scores, labels, 3);
  ASSERT_TRUE(table.ok());
  ASSERT_EQ(table->size(), 3u);
  // Sorted: 0.1(0) 0.2(0) 0.3(0) | 0.5(1) 0.7(1) | 0.8(0) 0.9(1)
  EXPECT_EQ((*table)[0].count, 3u);
  EXPECT_DOUBLE_EQ((*table)[0].min_score, 0.1);
  EXPECT_DOUBLE_EQ((*table)[0].max_score, 0.3);
  EXPECT_NEAR((*table)[0].mean_predicted, 0.2, 1e-15);
  EXPECT_DOUBLE_EQ((*table)[0].observed_rate, 0.0);
  EXPECT_EQ((*table)[1].count, 2u);
  EXPECT_NEAR((*table)[1].mean_predicted, 0.6, 1e-15);
  EXPECT_DOUBLE_EQ((*table)[1].observed_rate, 1.0);
  EXPECT_EQ((*table)[2].count, 2u);
  EXPECT_NEAR((*table)[2].mean_predicted, 0.85, 1e-15);
  EXPECT_DOUBLE_EQ((*table)[2].observed_rate, 0.5);
  // Fewer rows than bins: one bin per row.
  EXPECT_EQ(CalibrationTable(std::vector<double>{0.2, 0.4}, std::vector<float>{0, 1}, 10)->size(),
            2u);
  EXPECT_EQ(CalibrationTable(scores, labels, 0).status().code(), Status::Code::kInvalidArgument);
}

TEST(LiftAtTopTest, HandExamples) {
  // 10 rows, 3 positives (base rate 0.3). Top 20% = 2 rows: scores 0.9 (1) and 0.8 (1).
  std::vector<double> scores = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05};
  std::vector<float> labels = {1, 1, 0, 0, 1, 0, 0, 0, 0, 0};
  EXPECT_NEAR(*LiftAtTop(scores, labels, 0.2), 1.0 / 0.3, 1e-12);
  // Top 30% = 3 rows -> 2 positives: (2/3)/0.3.
  EXPECT_NEAR(*LiftAtTop(scores, labels, 0.3), (2.0 / 3.0) / 0.3, 1e-12);
  EXPECT_NEAR(*LiftAtTop(scores, labels, 1.0), 1.0, 1e-12);
}

TEST(LiftAtTopTest, TiesAtTheCutCountByTheirMeanRate) {
  // Top 1 row of 4; the top two rows tie (one positive, one negative): expected 0.5 positives.
  std::vector<double> scores = {0.9, 0.9, 0.1, 0.1};
  std::vector<float> labels = {0, 1, 1, 0};
  EXPECT_NEAR(*LiftAtTop(scores, labels, 0.25), 0.5 / 0.5, 1e-12);
  // Swapping the tied rows' order does not change it.
  std::vector<float> swapped = {1, 0, 1, 0};
  EXPECT_NEAR(*LiftAtTop(scores, swapped, 0.25), 1.0, 1e-12);
  EXPECT_EQ(LiftAtTop(scores, labels, 0.0).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(LiftAtTop(scores, std::vector<float>{0, 0, 0, 0}, 0.5).status().code(),
            Status::Code::kInvalidArgument);
}

TEST(EvaluateBinaryTest, BundlesTheMeasuresAndWritesJson) {
  std::vector<double> scores = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05};
  std::vector<float> labels = {1, 1, 0, 0, 1, 0, 0, 0, 0, 0};
  BinaryEvaluationOptions options;
  options.calibration_bins = 5;
  options.top_fraction = 0.2;
  Result<BinaryEvaluation> evaluation = EvaluateBinary(scores, labels, options);
  ASSERT_TRUE(evaluation.ok());
  EXPECT_EQ(evaluation->rows, 10u);
  EXPECT_EQ(evaluation->positives, 3u);
  EXPECT_DOUBLE_EQ(evaluation->auc, *Auc(scores, labels));
  EXPECT_DOUBLE_EQ(evaluation->log_loss, *LogLoss(scores, labels));
  EXPECT_NEAR(evaluation->lift_at_top, 1.0 / 0.3, 1e-12);
  EXPECT_EQ(evaluation->calibration.size(), 5u);
  std::string json = BinaryEvaluationToJson(*evaluation);
  EXPECT_NE(json.find("\"rows\":10,\"positives\":3,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"calibration\":[{\"min_score\":0.050000000000000003"), std::string::npos)
      << json;
  EXPECT_NE(FormatBinaryEvaluation(*evaluation).find("AUC 0.9048"), std::string::npos)
      << FormatBinaryEvaluation(*evaluation);

  // A non-probability score (e.g. days since last order, negated) skips log-loss and Brier.
  options.scores_are_probabilities = false;
  std::vector<double> days = {-3, -5, -40, -60, -9, -80, -90, -100, -120, -200};
  Result<BinaryEvaluation> baseline = EvaluateBinary(days, labels, options);
  ASSERT_TRUE(baseline.ok());
  EXPECT_TRUE(std::isnan(baseline->log_loss));
  EXPECT_NE(BinaryEvaluationToJson(*baseline).find("\"log_loss\":null"), std::string::npos);
}

}  // namespace
}  // namespace shoal
