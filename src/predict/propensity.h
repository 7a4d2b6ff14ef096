// Propensity models: gradient-boosted trees (XGBoost, binary:logistic) over a dense feature
// matrix, predicting P(event in the window after a cut-off) per customer. The engine builds the
// matrix (traits as of a past cut-off) and the 0/1 labels (what happened in the window after it);
// this library trains, predicts, serialises and explains. docs/predictions-propensity.md is the
// prose contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

// A read-only view of a dense, row-major rows x cols matrix of float or double. NaN = missing;
// +-infinity is rejected by the functions that take it. The view does not own the values: they
// must outlive every call that receives the view.
class FeatureMatrixView {
 public:
  FeatureMatrixView(std::span<const float> values, size_t rows, size_t cols)
      : data_(values.data()), size_(values.size()), rows_(rows), cols_(cols), is_double_(false) {}
  FeatureMatrixView(std::span<const double> values, size_t rows, size_t cols)
      : data_(values.data()), size_(values.size()), rows_(rows), cols_(cols), is_double_(true) {}

  size_t rows() const { return rows_; }
  size_t cols() const { return cols_; }
  // Number of values in the span (must equal rows * cols to be valid).
  size_t size() const { return size_; }
  bool is_double() const { return is_double_; }
  const void* data() const { return data_; }
  // Value at (row_idx, col_idx) as double; the caller guarantees the indices are in range.
  double At(size_t row_idx, size_t col_idx) const {
    size_t offset = row_idx * cols_ + col_idx;
    return is_double_ ? static_cast<const double*>(data_)[offset]
                      : static_cast<double>(static_cast<const float*>(data_)[offset]);
  }

 private:
  const void* data_;
  size_t size_;
  size_t rows_;
  size_t cols_;
  bool is_double_;
};

// How a model is written by Serialize().
enum class ModelFormat {
  kUbj,   // XGBoost's Universal Binary JSON: compact, the default for storage.
  kJson,  // XGBoost's JSON model: readable, about twice the size.
};

// Training hyper-parameters. The defaults suit 10k-10M rows of a few dozen traits.
struct PropensityOptions {
  // Maximum depth of each tree (XGBoost max_depth).
  int max_depth = 6;
  // Shrinkage per round (XGBoost eta).
  double learning_rate = 0.1;
  // Upper bound on boosting rounds; early stopping usually ends much earlier.
  int max_rounds = 1000;
  // Stop when validation log-loss has not improved for this many rounds; the model keeps the
  // rounds up to the best one. 0 = no early stopping (train max_rounds rounds).
  int early_stopping_rounds = 20;
  // Share of training rows held out (stratified by label, chosen by Context::seed) for early
  // stopping, in [0, 0.5]. 0 = no validation split and no early stopping.
  double validation_fraction = 0.2;
  // Row subsampling per tree (XGBoost subsample), in (0, 1].
  double subsample = 0.8;
  // Column subsampling per tree (XGBoost colsample_bytree), in (0, 1].
  double colsample_bytree = 0.8;
  // Minimum hessian sum in a leaf (XGBoost min_child_weight).
  double min_child_weight = 1.0;
  // L2 regularisation on leaf weights (XGBoost lambda).
  double l2_regularization = 1.0;
  // Histogram bins per feature (XGBoost max_bin, tree_method hist).
  int max_bin = 256;
};

// Importance of one feature in a trained model. Features never used in a split have zeros.
struct FeatureImportanceEntry {
  std::string feature_name;
  // Total loss reduction over all splits on this feature (XGBoost total_gain).
  double total_gain = 0.0;
  // Mean loss reduction per split on this feature (XGBoost gain).
  double mean_gain = 0.0;
  // Number of splits on this feature (XGBoost weight).
  int64_t split_count = 0;
};

// What training did, for logs and model cards.
struct PropensityTrainingSummary {
  size_t training_rows = 0;    // rows the trees were grown on
  size_t validation_rows = 0;  // rows held out for early stopping
  int rounds_trained = 0;      // rounds run before stopping
  int rounds_kept = 0;         // rounds in the final model (best iteration + 1)
  // Validation log-loss at the kept round; NaN without a validation split.
  double best_validation_log_loss = 0.0;
};

// A trained binary propensity model. Owns one XGBoost booster (freed on destruction); movable,
// not copyable. Const methods may be called from several threads at once (they use XGBoost's
// in-place prediction and read-only queries, which XGBoost documents as thread-safe).
class PropensityModel {
 public:
  PropensityModel(PropensityModel&&) noexcept;
  PropensityModel& operator=(PropensityModel&&) noexcept;
  ~PropensityModel();

  // Probabilities P(label = 1), one per row of `features`, in row order. Uses ctx.Threads()
  // threads; results do not depend on the thread count. InvalidArgument if the column count
  // differs from feature_names().size() or a value is infinite; Internal for an XGBoost error.
  Result<std::vector<float>> Predict(const FeatureMatrixView& features, const Context& ctx) const;
  // For a model trained with a base margin: P = sigmoid(base_margin[row] + the trees' margin).
  // `base_margin` holds one finite log-odds per row. Same errors as Predict.
  Result<std::vector<float>> PredictWithBaseMargin(const FeatureMatrixView& features,
                                                   std::span<const float> base_margin,
                                                   const Context& ctx) const;

  // The model as bytes (XGBoost's own model format, including the feature names), for storage.
  // Deserialize() reads either format back.
  Result<std::string> Serialize(ModelFormat format = ModelFormat::kUbj) const;

  // Reads bytes written by Serialize(). Corruption if XGBoost cannot load them or the model
  // carries no feature names.
  static Result<PropensityModel> Deserialize(std::string_view bytes);

  // Gain-based importance for every feature, in feature order. Internal for an XGBoost error.
  Result<std::vector<FeatureImportanceEntry>> FeatureImportance() const;

  const std::vector<std::string>& feature_names() const { return feature_names_; }
  // Boosting rounds the model uses for prediction.
  int rounds() const { return rounds_; }

 private:
  friend Result<PropensityModel> TrainPropensity(const FeatureMatrixView&, std::span<const float>,
                                                 std::span<const std::string>,
                                                 const PropensityOptions&, const Context&,
                                                 PropensityTrainingSummary*,
                                                 std::span<const float>);
  struct BoosterDeleter {
    void operator()(void* handle) const;
  };
  using BoosterPtr = std::unique_ptr<void, BoosterDeleter>;

  PropensityModel(BoosterPtr booster, std::vector<std::string> feature_names, int rounds);
  Result<std::vector<float>> PredictRaw(const FeatureMatrixView& features, const Context& ctx,
                                        bool output_margin) const;

  BoosterPtr booster_;
  std::vector<std::string> feature_names_;
  int rounds_ = 0;
};

// Trains a binary:logistic model with tree_method hist on `features` (n x d) and `labels`
// (n values, each exactly 0 or 1). `feature_names` (d unique, non-empty names without
// '[', ']', '<' or ',') are stored in the model. A stratified validation split of
// options.validation_fraction, drawn with ctx.seed, drives early stopping on log-loss; the
// returned model keeps the rounds up to the best validation round. Uses ctx.Threads() threads;
// for a given seed and thread count the model is bit-for-bit reproducible (see the docs for the
// thread-count dependence). Copies the rows once (split into training and validation sets).
// InvalidArgument for size mismatches, labels other than 0/1, a single class, infinite values,
// bad names or options; Internal for an XGBoost error. `summary` may be null.
// `base_margin`, when not empty, holds one finite log-odds per row that the trees start from
// (XGBoost's base_margin): the model learns corrections to a prior scorer, e.g. BG/NBD, and
// must then be used with PredictWithBaseMargin.
Result<PropensityModel> TrainPropensity(const FeatureMatrixView& features,
                                        std::span<const float> labels,
                                        std::span<const std::string> feature_names,
                                        const PropensityOptions& options, const Context& ctx,
                                        PropensityTrainingSummary* summary = nullptr,
                                        std::span<const float> base_margin = {});

}  // namespace shoal
