// Evaluation of binary scores (propensities, P(alive), recency baselines) against 0/1 outcomes:
// exact AUC, log-loss, Brier score, calibration by quantile bins and lift at the top. Every
// function validates its inputs (equal lengths, labels exactly 0 or 1, finite scores) and is
// deterministic; the sorting ones are O(n log n). docs/predictions-propensity.md explains how to
// read them.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace shoal {

// Area under the ROC curve: the probability that a random positive scores above a random
// negative, ties counting one half (Mann-Whitney U with midranks). Exact, O(n log n).
// InvalidArgument for mismatched lengths, labels other than 0/1, non-finite scores, or when
// either class is absent.
Result<double> Auc(std::span<const double> scores, std::span<const float> labels);
Result<double> Auc(std::span<const float> scores, std::span<const float> labels);

// Mean negative log-likelihood of the labels under `probabilities`, natural log. Probabilities
// are clipped to [epsilon, 1 - epsilon] (as scikit-learn does) so a confident miss is finite.
// InvalidArgument for mismatched lengths, empty input, labels other than 0/1, or a probability
// outside [0, 1] or NaN.
Result<double> LogLoss(std::span<const double> probabilities, std::span<const float> labels,
                       double epsilon = 1e-15);
Result<double> LogLoss(std::span<const float> probabilities, std::span<const float> labels,
                       double epsilon = 1e-15);

// Mean squared difference between probability and label. Same validation as LogLoss.
Result<double> BrierScore(std::span<const double> probabilities, std::span<const float> labels);
Result<double> BrierScore(std::span<const float> probabilities, std::span<const float> labels);

// One row of a calibration table.
struct CalibrationBin {
  double min_score = 0.0;       // lowest score in the bin
  double max_score = 0.0;       // highest score in the bin
  double mean_predicted = 0.0;  // mean score in the bin
  double observed_rate = 0.0;   // share of positives in the bin
  size_t count = 0;             // rows in the bin
};

// Rows sorted by score (ties by row index, so the result is deterministic) and cut into `bins`
// groups of equal size (sizes differ by at most one; the earlier bins take the extra rows), from
// the lowest scores to the highest. With bins = 10 these are the deciles of predicted
// probability. Fewer rows than bins gives one bin per row. InvalidArgument for mismatched lengths,
// empty input, bins < 1, labels other than 0/1 or non-finite scores.
Result<std::vector<CalibrationBin>> CalibrationTable(std::span<const double> scores,
                                                     std::span<const float> labels,
                                                     size_t bins = 10);
Result<std::vector<CalibrationBin>> CalibrationTable(std::span<const float> scores,
                                                     std::span<const float> labels,
                                                     size_t bins = 10);

// Lift at the top: positive rate among the top ceil(fraction * n) rows by score divided by the
// overall positive rate. When tied scores straddle the cut, the tied group counts with its mean
// positive rate (the expectation over random tie-breaking), so the result does not depend on row
// order. 1 = no better than random. InvalidArgument for fraction outside (0, 1], no positives,
// mismatched lengths, labels other than 0/1 or non-finite scores.
Result<double> LiftAtTop(std::span<const double> scores, std::span<const float> labels,
                         double fraction = 0.1);
Result<double> LiftAtTop(std::span<const float> scores, std::span<const float> labels,
                         double fraction = 0.1);

// Options of EvaluateBinary.
struct BinaryEvaluationOptions {
  // Calibration bins (10 = deciles).
  size_t calibration_bins = 10;
  // Share of rows counted as "the top" for lift.
  double top_fraction = 0.1;
  // Whether scores are probabilities; if false, log-loss and Brier score are skipped (NaN), e.g.
  // for a recency baseline whose scores are days.
  bool scores_are_probabilities = true;
};

// Every measure for one set of scores on one set of outcomes.
struct BinaryEvaluation {
  size_t rows = 0;
  size_t positives = 0;
  double base_rate = 0.0;  // positives / rows
  double auc = 0.0;
  double log_loss = 0.0;     // NaN when scores are not probabilities
  double brier_score = 0.0;  // NaN when scores are not probabilities
  double top_fraction = 0.0;
  double lift_at_top = 0.0;
  std::vector<CalibrationBin> calibration;
};

// Computes every measure. Needs both classes. Same validation as the functions above.
Result<BinaryEvaluation> EvaluateBinary(std::span<const double> scores,
                                        std::span<const float> labels,
                                        const BinaryEvaluationOptions& options = {});
Result<BinaryEvaluation> EvaluateBinary(std::span<const float> scores,
                                        std::span<const float> labels,
                                        const BinaryEvaluationOptions& options = {});

// A human-readable report: headline measures, then the calibration table.
std::string FormatBinaryEvaluation(const BinaryEvaluation& evaluation);

// One JSON object: {"rows":..,"positives":..,"base_rate":..,"auc":..,"log_loss":..,
// "brier_score":..,"top_fraction":..,"lift_at_top":..,"calibration":[{"min_score":..,
// "max_score":..,"mean_predicted":..,"observed_rate":..,"count":..},..]}. NaN is written as null.
std::string BinaryEvaluationToJson(const BinaryEvaluation& evaluation);

}  // namespace shoal
