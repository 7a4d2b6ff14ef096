#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "predict/evaluation.h"
#include "predict/propensity.h"

namespace shoal {
namespace {

// A prior scorer that already holds the signal (log-odds = 2 * x0) plus a second signal the prior
// misses (1.5 * x1). Trees boosted from the prior's log-odds must learn the second part: their
// held-out AUC beats the prior's, and their probabilities stay on the label scale.
TEST(PropensityBaseMarginTest, TreesLearnWhatThePriorMisses) {
  const size_t rows = 6000, cols = 4;
  std::vector<float> features(rows * cols), labels(rows), margin(rows);
  uint64_t state = 99;
  auto uniform = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (static_cast<double>(state >> 11) + 0.5) / 9007199254740992.0;
  };
  for (size_t row = 0; row < rows; ++row) {
    for (size_t col = 0; col < cols; ++col)
      features[row * cols + col] = static_cast<float>(uniform() * 2 - 1);
    double prior = 2.0 * features[row * cols];
    double truth = prior + 1.5 * features[row * cols + 1];
    margin[row] = static_cast<float>(prior);
    labels[row] = uniform() < 1.0 / (1.0 + std::exp(-truth)) ? 1.f : 0.f;
  }
  const size_t train_rows = 4000, test_rows = rows - train_rows;
  std::vector<std::string> names = {"x0", "x1", "x2", "x3"};
  PropensityOptions options;
  options.max_depth = 2;
  Context ctx;
  ctx.threads = 1;
  auto model =
      TrainPropensity(FeatureMatrixView(std::span<const float>(features.data(), train_rows * cols),
                                        train_rows, cols),
                      std::span<const float>(labels.data(), train_rows), names, options, ctx,
                      nullptr, std::span<const float>(margin.data(), train_rows));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  FeatureMatrixView test(
      std::span<const float>(features.data() + train_rows * cols, test_rows * cols), test_rows,
      cols);
  std::span<const float> test_labels(labels.data() + train_rows, test_rows);
  std::span<const float> test_margin(margin.data() + train_rows, test_rows);
  auto boosted = model->PredictWithBaseMargin(test, test_margin, ctx);
  ASSERT_TRUE(boosted.ok());
  std::vector<double> prior(test_rows);
  for (size_t row = 0; row < test_rows; ++row)
    prior[row] = 1.0 / (1.0 + std::exp(-test_margin[row]));
  double boosted_auc = *Auc(*boosted, test_labels), prior_auc = *Auc(prior, test_labels);
  EXPECT_GT(boosted_auc, prior_auc + 0.03) << boosted_auc << " vs " << prior_auc;
  // Calibrated: the mean prediction is close to the observed rate.
  double mean_p = 0, rate = 0;
  for (size_t row = 0; row < test_rows; ++row) {
    mean_p += (*boosted)[row];
    rate += test_labels[row];
  }
  EXPECT_NEAR(mean_p / test_rows, rate / test_rows, 0.03);
  // Without the prior the same trees miss the x0 part: Predict alone ranks worse.
  auto bare = model->Predict(test, ctx);
  ASSERT_TRUE(bare.ok());
  EXPECT_LT(*Auc(*bare, test_labels), boosted_auc);
  // Bad margins are rejected.
  std::vector<float> short_margin(3, 0.f);
  EXPECT_FALSE(model->PredictWithBaseMargin(test, short_margin, ctx).ok());
  std::vector<float> bad(test_rows, 0.f);
  bad[5] = std::nanf("");
  EXPECT_FALSE(model->PredictWithBaseMargin(test, bad, ctx).ok());
}

}  // namespace
}  // namespace shoal
