#include "predict/evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace shoal {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Checks lengths, labels and scores once at the entry; returns the number of positives.
template <typename Score>
Result<size_t> ValidateScored(std::span<const Score> scores, std::span<const float> labels,
                              bool require_probability) {
  if (scores.size() != labels.size()) {
    return Status::InvalidArgument("got " + std::to_string(scores.size()) + " scores and " +
                                   std::to_string(labels.size()) + " labels");
  }
  if (scores.empty()) return Status::InvalidArgument("no scores to evaluate");
  size_t positives = 0;
  for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
    float label = labels[row_idx];
    if (label != 0.0f && label != 1.0f) {
      return Status::InvalidArgument("label at row " + std::to_string(row_idx) + " is not 0 or 1");
    }
    positives += (label == 1.0f);
    double score = static_cast<double>(scores[row_idx]);
    if (!std::isfinite(score)) {
      return Status::InvalidArgument("score at row " + std::to_string(row_idx) + " is not finite");
    }
    if (require_probability && (score < 0.0 || score > 1.0)) {
      return Status::InvalidArgument("probability at row " + std::to_string(row_idx) +
                                     " is outside [0, 1]");
    }
  }
  return positives;
}

struct ScoredRow {
  double score;
  size_t row_idx;
  float label;
};

// Rows sorted by ascending score, ties by ascending row index (a total, deterministic order).
template <typename Score>
std::vector<ScoredRow> SortByScore(std::span<const Score> scores, std::span<const float> labels) {
  std::vector<ScoredRow> rows(scores.size());
  for (size_t row_idx = 0; row_idx < scores.size(); ++row_idx) {
    rows[row_idx] = {static_cast<double>(scores[row_idx]), row_idx, labels[row_idx]};
  }
  std::sort(rows.begin(), rows.end(), [](const ScoredRow& a, const ScoredRow& b) {
    return a.score < b.score || (a.score == b.score && a.row_idx < b.row_idx);
  });
  return rows;
}

template <typename Score>
Result<double> AucImpl(std::span<const Score> scores, std::span<const float> labels) {
  SHOAL_ASSIGN_OR_RETURN(size_t positives, ValidateScored(scores, labels, false));
  size_t negatives = labels.size() - positives;
  if (positives == 0 || negatives == 0) {
    return Status::InvalidArgument("AUC needs both classes; got " + std::to_string(positives) +
                                   " positives of " + std::to_string(labels.size()));
  }
  std::vector<ScoredRow> rows = SortByScore(scores, labels);
  // Per group of tied scores: each positive beats every negative below the group and ties with
  // the negatives inside it (one half each). Counts stay exact in double below 2^53.
  double wins = 0.0;
  double negatives_below = 0.0;
  for (size_t group_begin = 0; group_begin < rows.size();) {
    size_t group_end = group_begin;
    double group_positives = 0.0, group_negatives = 0.0;
    while (group_end < rows.size() && rows[group_end].score == rows[group_begin].score) {
      (rows[group_end].label == 1.0f ? group_positives : group_negatives) += 1.0;
      ++group_end;
    }
    wins += group_positives * negatives_below + 0.5 * group_positives * group_negatives;
    negatives_below += group_negatives;
    group_begin = group_end;
  }
  return wins / (static_cast<double>(positives) * static_cast<double>(negatives));
}

template <typename Score>
Result<double> LogLossImpl(std::span<const Score> probabilities, std::span<const float> labels,
                           double epsilon) {
  if (!(epsilon >= 0.0 && epsilon < 0.5)) {
    return Status::InvalidArgument("log-loss epsilon must be in [0, 0.5)");
  }
  SHOAL_RETURN_IF_ERROR(ValidateScored(probabilities, labels, true).status());
  double total = 0.0;
  for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
    double p = std::clamp(static_cast<double>(probabilities[row_idx]), epsilon, 1.0 - epsilon);
    total -= labels[row_idx] == 1.0f ? std::log(p) : std::log1p(-p);
  }
  return total / static_cast<double>(labels.size());
}

template <typename Score>
Result<double> BrierImpl(std::span<const Score> probabilities, std::span<const float> labels) {
  SHOAL_RETURN_IF_ERROR(ValidateScored(probabilities, labels, true).status());
  double total = 0.0;
  for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
    double diff = static_cast<double>(probabilities[row_idx]) - labels[row_idx];
    total += diff * diff;
  }
  return total / static_cast<double>(labels.size());
}

template <typename Score>
Result<std::vector<CalibrationBin>> CalibrationImpl(std::span<const Score> scores,
                                                    std::span<const float> labels, size_t bins) {
  if (bins < 1) return Status::InvalidArgument("calibration needs at least one bin");
  SHOAL_RETURN_IF_ERROR(ValidateScored(scores, labels, false).status());
  std::vector<ScoredRow> rows = SortByScore(scores, labels);
  size_t bin_count = std::min(bins, rows.size());
  size_t base_size = rows.size() / bin_count, extra = rows.size() % bin_count;
  std::vector<CalibrationBin> table(bin_count);
  size_t row_pos = 0;
  for (size_t bin_idx = 0; bin_idx < bin_count; ++bin_idx) {
    size_t size = base_size + (bin_idx < extra ? 1 : 0);
    CalibrationBin& bin = table[bin_idx];
    double score_sum = 0.0, positive_count = 0.0;
    bin.min_score = rows[row_pos].score;
    for (size_t taken = 0; taken < size; ++taken, ++row_pos) {
      score_sum += rows[row_pos].score;
      positive_count += rows[row_pos].label;
    }
    bin.max_score = rows[row_pos - 1].score;
    bin.count = size;
    bin.mean_predicted = score_sum / static_cast<double>(size);
    bin.observed_rate = positive_count / static_cast<double>(size);
  }
  return table;
}

template <typename Score>
Result<double> LiftImpl(std::span<const Score> scores, std::span<const float> labels,
                        double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    return Status::InvalidArgument("lift fraction must be in (0, 1]");
  }
  SHOAL_ASSIGN_OR_RETURN(size_t positives, ValidateScored(scores, labels, false));
  if (positives == 0) return Status::InvalidArgument("lift needs at least one positive");
  std::vector<ScoredRow> rows = SortByScore(scores, labels);
  const double n = static_cast<double>(rows.size());
  // The small relative slack keeps e.g. 0.3 * 10 = 3.0000000000000004 at 3 rows.
  size_t top_rows = static_cast<size_t>(std::ceil(fraction * n * (1.0 - 1e-12)));
  top_rows = std::clamp<size_t>(top_rows, 1, rows.size());
  double top_positives = 0.0;
  size_t taken = 0;
  // Walk tie groups from the highest score down.
  for (size_t group_end = rows.size(); taken < top_rows;) {
    size_t group_begin = group_end;
    double group_positives = 0.0;
    while (group_begin > 0 && rows[group_begin - 1].score == rows[group_end - 1].score) {
      --group_begin;
      group_positives += rows[group_begin].label;
    }
    size_t group_size = group_end - group_begin;
    size_t use = std::min(group_size, top_rows - taken);
    top_positives += group_positives * static_cast<double>(use) / static_cast<double>(group_size);
    taken += use;
    group_end = group_begin;
  }
  double top_rate = top_positives / static_cast<double>(top_rows);
  double base_rate = static_cast<double>(positives) / n;
  return top_rate / base_rate;
}

template <typename Score>
Result<BinaryEvaluation> EvaluateImpl(std::span<const Score> scores, std::span<const float> labels,
                                      const BinaryEvaluationOptions& options) {
  BinaryEvaluation evaluation;
  SHOAL_ASSIGN_OR_RETURN(evaluation.positives, ValidateScored(scores, labels, false));
  evaluation.rows = labels.size();
  evaluation.base_rate =
      static_cast<double>(evaluation.positives) / static_cast<double>(evaluation.rows);
  SHOAL_ASSIGN_OR_RETURN(evaluation.auc, AucImpl(scores, labels));
  if (options.scores_are_probabilities) {
    SHOAL_ASSIGN_OR_RETURN(evaluation.log_loss, LogLossImpl(scores, labels, 1e-15));
    SHOAL_ASSIGN_OR_RETURN(evaluation.brier_score, BrierImpl(scores, labels));
  } else {
    evaluation.log_loss = kNaN;
    evaluation.brier_score = kNaN;
  }
  evaluation.top_fraction = options.top_fraction;
  SHOAL_ASSIGN_OR_RETURN(evaluation.lift_at_top, LiftImpl(scores, labels, options.top_fraction));
  SHOAL_ASSIGN_OR_RETURN(evaluation.calibration,
                         CalibrationImpl(scores, labels, options.calibration_bins));
  return evaluation;
}

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

}  // namespace

Result<double> Auc(std::span<const double> scores, std::span<const float> labels) {
  return AucImpl(scores, labels);
}
Result<double> Auc(std::span<const float> scores, std::span<const float> labels) {
  return AucImpl(scores, labels);
}
Result<double> LogLoss(std::span<const double> probabilities, std::span<const float> labels,
                       double epsilon) {
  return LogLossImpl(probabilities, labels, epsilon);
}
Result<double> LogLoss(std::span<const float> probabilities, std::span<const float> labels,
                       double epsilon) {
  return LogLossImpl(probabilities, labels, epsilon);
}
Result<double> BrierScore(std::span<const double> probabilities, std::span<const float> labels) {
  return BrierImpl(probabilities, labels);
}
Result<double> BrierScore(std::span<const float> probabilities, std::span<const float> labels) {
  return BrierImpl(probabilities, labels);
}
Result<std::vector<CalibrationBin>> CalibrationTable(std::span<const double> scores,
                                                     std::span<const float> labels, size_t bins) {
  return CalibrationImpl(scores, labels, bins);
}
Result<std::vector<CalibrationBin>> CalibrationTable(std::span<const float> scores,
                                                     std::span<const float> labels, size_t bins) {
  return CalibrationImpl(scores, labels, bins);
}
Result<double> LiftAtTop(std::span<const double> scores, std::span<const float> labels,
                         double fraction) {
  return LiftImpl(scores, labels, fraction);
}
Result<double> LiftAtTop(std::span<const float> scores, std::span<const float> labels,
                         double fraction) {
  return LiftImpl(scores, labels, fraction);
}
Result<BinaryEvaluation> EvaluateBinary(std::span<const double> scores,
                                        std::span<const float> labels,
                                        const BinaryEvaluationOptions& options) {
  return EvaluateImpl(scores, labels, options);
}
Result<BinaryEvaluation> EvaluateBinary(std::span<const float> scores,
                                        std::span<const float> labels,
                                        const BinaryEvaluationOptions& options) {
  return EvaluateImpl(scores, labels, options);
}

std::string FormatBinaryEvaluation(const BinaryEvaluation& evaluation) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "rows %zu, positives %zu (base rate %.4f)\n", evaluation.rows,
                evaluation.positives, evaluation.base_rate);
  out += line;
  std::snprintf(line, sizeof(line), "AUC %.4f  log-loss %.4f  Brier %.4f  lift@%.0f%% %.3f\n",
                evaluation.auc, evaluation.log_loss, evaluation.brier_score,
                evaluation.top_fraction * 100.0, evaluation.lift_at_top);
  out += line;
  out += "bin  count      min score  max score  mean predicted  observed rate\n";
  for (size_t bin_idx = 0; bin_idx < evaluation.calibration.size(); ++bin_idx) {
    const CalibrationBin& bin = evaluation.calibration[bin_idx];
    std::snprintf(line, sizeof(line), "%3zu  %-9zu  %9.4f  %9.4f  %14.4f  %13.4f\n", bin_idx + 1,
                  bin.count, bin.min_score, bin.max_score, bin.mean_predicted, bin.observed_rate);
    out += line;
  }
  return out;
}

std::string BinaryEvaluationToJson(const BinaryEvaluation& evaluation) {
  std::string out = "{\"rows\":" + std::to_string(evaluation.rows) +
                    ",\"positives\":" + std::to_string(evaluation.positives) +
                    ",\"base_rate\":" + JsonNumber(evaluation.base_rate) +
                    ",\"auc\":" + JsonNumber(evaluation.auc) +
                    ",\"log_loss\":" + JsonNumber(evaluation.log_loss) +
                    ",\"brier_score\":" + JsonNumber(evaluation.brier_score) +
                    ",\"top_fraction\":" + JsonNumber(evaluation.top_fraction) +
                    ",\"lift_at_top\":" + JsonNumber(evaluation.lift_at_top) + ",\"calibration\":[";
  for (size_t bin_idx = 0; bin_idx < evaluation.calibration.size(); ++bin_idx) {
    const CalibrationBin& bin = evaluation.calibration[bin_idx];
    if (bin_idx > 0) out += ",";
    out += "{\"min_score\":" + JsonNumber(bin.min_score) +
           ",\"max_score\":" + JsonNumber(bin.max_score) +
           ",\"mean_predicted\":" + JsonNumber(bin.mean_predicted) +
           ",\"observed_rate\":" + JsonNumber(bin.observed_rate) +
           ",\"count\":" + std::to_string(bin.count) + "}";
  }
  out += "]}";
  return out;
}

}  // namespace shoal
