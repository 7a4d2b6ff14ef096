#include "predict/propensity.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_set>
#include <utility>

namespace shoal {
namespace {

// Every XGBoost call goes through this: a non-zero return becomes a Status naming the call.
Status CheckXgb(int return_code, std::string_view call) {
  if (return_code == 0) return Status::OK();
  const char* message = XGBGetLastError();
  return Status::Internal("XGBoost " + std::string(call) +
                          " failed: " + (message != nullptr ? message : "(no message)"));
}

struct DMatrixDeleter {
  void operator()(void* handle) const {
    if (handle != nullptr) XGDMatrixFree(handle);
  }
};
using DMatrixPtr = std::unique_ptr<void, DMatrixDeleter>;

// JSON __array_interface__ (version 3) describing a dense row-major matrix at `data`.
std::string ArrayInterface(const void* data, size_t rows, size_t cols, bool is_double) {
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer),
                "{\"data\": [%llu, true], \"shape\": [%zu, %zu], \"typestr\": \"%s\", "
                "\"version\": 3}",
                static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(data)), rows, cols,
                is_double ? "<f8" : "<f4");
  return buffer;
}

std::string MissingNanConfig(int threads) {
  return "{\"missing\": NaN, \"nthread\": " + std::to_string(threads) + "}";
}

Status CheckFinite(const FeatureMatrixView& features) {
  auto scan = [&](const auto* values) -> Status {
    for (size_t offset = 0; offset < features.size(); ++offset) {
      if (std::isinf(values[offset])) {
        return Status::InvalidArgument(
            "feature value at row " + std::to_string(offset / features.cols()) + ", column " +
            std::to_string(offset % features.cols()) + " is infinite; use NaN for missing");
      }
    }
    return Status::OK();
  };
  if (features.is_double()) return scan(static_cast<const double*>(features.data()));
  return scan(static_cast<const float*>(features.data()));
}

Status CheckShape(const FeatureMatrixView& features) {
  if (features.cols() == 0) return Status::InvalidArgument("feature matrix has no columns");
  if (features.rows() > std::numeric_limits<size_t>::max() / features.cols() ||
      features.rows() * features.cols() != features.size()) {
    return Status::InvalidArgument(
        "feature matrix holds " + std::to_string(features.size()) +
        " values, expected rows x cols = " + std::to_string(features.rows()) + " x " +
        std::to_string(features.cols()));
  }
  return Status::OK();
}

Status ValidateOptions(const PropensityOptions& options) {
  if (options.max_depth < 1) return Status::InvalidArgument("max_depth must be >= 1");
  if (!(options.learning_rate > 0.0 && options.learning_rate <= 1.0))
    return Status::InvalidArgument("learning_rate must be in (0, 1]");
  if (options.max_rounds < 1) return Status::InvalidArgument("max_rounds must be >= 1");
  if (options.early_stopping_rounds < 0)
    return Status::InvalidArgument("early_stopping_rounds must be >= 0");
  if (!(options.validation_fraction >= 0.0 && options.validation_fraction <= 0.5))
    return Status::InvalidArgument("validation_fraction must be in [0, 0.5]");
  if (!(options.subsample > 0.0 && options.subsample <= 1.0))
    return Status::InvalidArgument("subsample must be in (0, 1]");
  if (!(options.colsample_bytree > 0.0 && options.colsample_bytree <= 1.0))
    return Status::InvalidArgument("colsample_bytree must be in (0, 1]");
  if (!(options.min_child_weight >= 0.0))
    return Status::InvalidArgument("min_child_weight must be >= 0");
  if (!(options.l2_regularization >= 0.0))
    return Status::InvalidArgument("l2_regularization must be >= 0");
  if (options.max_bin < 2) return Status::InvalidArgument("max_bin must be >= 2");
  return Status::OK();
}

Status ValidateNames(std::span<const std::string> feature_names, size_t cols) {
  if (feature_names.size() != cols) {
    return Status::InvalidArgument("got " + std::to_string(feature_names.size()) +
                                   " feature names for " + std::to_string(cols) + " columns");
  }
  std::unordered_set<std::string_view> seen;
  for (const std::string& name : feature_names) {
    if (name.empty()) return Status::InvalidArgument("a feature name is empty");
    if (name.find_first_of("[]<,") != std::string::npos) {
      return Status::InvalidArgument("feature name '" + name +
                                     "' contains one of '[', ']', '<', ','");
    }
    if (!seen.insert(name).second) {
      return Status::InvalidArgument("feature name '" + name + "' appears twice");
    }
  }
  return Status::OK();
}

// SplitMix64: a small, portable generator, so the validation split is the same on every
// platform and standard library for a given seed.
uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Marks validation rows: per class, a seeded Fisher-Yates shuffle of that class's rows and the
// first floor(fraction * count) of them. Stratifying keeps the base rate equal in both parts.
std::vector<uint8_t> ChooseValidationRows(std::span<const float> labels, double fraction,
                                          uint64_t seed) {
  std::vector<uint8_t> is_validation(labels.size(), 0);
  if (fraction <= 0.0) return is_validation;
  uint64_t state = seed ^ 0x5A17C0DEULL;
  for (float label_value : {0.0f, 1.0f}) {
    std::vector<size_t> rows;
    for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
      if (labels[row_idx] == label_value) rows.push_back(row_idx);
    }
    size_t take = static_cast<size_t>(std::floor(fraction * static_cast<double>(rows.size())));
    for (size_t pick = 0; pick < take; ++pick) {
      size_t remaining = rows.size() - pick;
      size_t other = pick + static_cast<size_t>(SplitMix64(state) % remaining);
      std::swap(rows[pick], rows[other]);
      is_validation[rows[pick]] = 1;
    }
  }
  return is_validation;
}

// Copies the rows with is_validation == want into a contiguous buffer of the input type, and
// their labels into `labels_out`, preserving row order.
template <typename T>
std::vector<T> GatherRows(const T* values, size_t cols, std::span<const float> labels,
                          const std::vector<uint8_t>& is_validation, uint8_t want,
                          std::vector<float>& labels_out) {
  size_t count = 0;
  for (uint8_t flag : is_validation) count += (flag == want);
  std::vector<T> out;
  out.reserve(count * cols);
  labels_out.clear();
  labels_out.reserve(count);
  for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
    if (is_validation[row_idx] != want) continue;
    out.insert(out.end(), values + row_idx * cols, values + (row_idx + 1) * cols);
    labels_out.push_back(labels[row_idx]);
  }
  return out;
}

Result<DMatrixPtr> MakeDMatrix(const void* data, size_t rows, size_t cols, bool is_double,
                               const std::vector<float>& labels,
                               std::span<const std::string> feature_names, int threads) {
  DMatrixHandle handle = nullptr;
  std::string array = ArrayInterface(data, rows, cols, is_double);
  std::string config = MissingNanConfig(threads);
  SHOAL_RETURN_IF_ERROR(CheckXgb(XGDMatrixCreateFromDense(array.c_str(), config.c_str(), &handle),
                                 "XGDMatrixCreateFromDense"));
  DMatrixPtr matrix(handle);
  SHOAL_RETURN_IF_ERROR(CheckXgb(
      XGDMatrixSetFloatInfo(handle, "label", labels.data(), static_cast<bst_ulong>(labels.size())),
      "XGDMatrixSetFloatInfo(label)"));
  std::vector<const char*> names;
  names.reserve(feature_names.size());
  for (const std::string& name : feature_names) names.push_back(name.c_str());
  SHOAL_RETURN_IF_ERROR(CheckXgb(XGDMatrixSetStrFeatureInfo(handle, "feature_name", names.data(),
                                                            static_cast<bst_ulong>(names.size())),
                                 "XGDMatrixSetStrFeatureInfo(feature_name)"));
  return matrix;
}

std::string FormatDouble(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", value);
  return buffer;
}

// Reads "<name>-logloss:<value>" out of XGBoosterEvalOneIter's "[iter]\tvalid-logloss:0.123".
Result<double> ParseEvalLogLoss(const char* eval_text) {
  std::string_view text(eval_text != nullptr ? eval_text : "");
  size_t pos = text.find("-logloss:");
  if (pos == std::string_view::npos) {
    return Status::Internal("unexpected XGBoost evaluation output: " + std::string(text));
  }
  std::string number(text.substr(pos + 9));
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end == number.c_str()) {
    return Status::Internal("unexpected XGBoost evaluation output: " + std::string(text));
  }
  return value;
}

Status SetParam(BoosterHandle booster, const char* name, const std::string& value) {
  return CheckXgb(XGBoosterSetParam(booster, name, value.c_str()),
                  std::string("XGBoosterSetParam(") + name + ")");
}

}  // namespace

void PropensityModel::BoosterDeleter::operator()(void* handle) const {
  if (handle != nullptr) XGBoosterFree(handle);
}

PropensityModel::PropensityModel(BoosterPtr booster, std::vector<std::string> feature_names,
                                 int rounds)
    : booster_(std::move(booster)), feature_names_(std::move(feature_names)), rounds_(rounds) {}
PropensityModel::PropensityModel(PropensityModel&&) noexcept = default;
PropensityModel& PropensityModel::operator=(PropensityModel&&) noexcept = default;
PropensityModel::~PropensityModel() = default;

Result<std::vector<float>> PropensityModel::PredictWithBaseMargin(
    const FeatureMatrixView& features, std::span<const float> base_margin, const Context& ctx) const {
  if (base_margin.size() != features.rows()) {
    return Status::InvalidArgument("got " + std::to_string(base_margin.size()) + " base margins for " +
                                   std::to_string(features.rows()) + " rows");
  }
  for (float m : base_margin) {
    if (!std::isfinite(m)) return Status::InvalidArgument("a base margin is not finite");
  }
  SHOAL_ASSIGN_OR_RETURN(std::vector<float> margin, PredictRaw(features, ctx, /*output_margin=*/true));
  for (size_t row_idx = 0; row_idx < margin.size(); ++row_idx) {
    double z = static_cast<double>(margin[row_idx]) + static_cast<double>(base_margin[row_idx]);
    margin[row_idx] = static_cast<float>(1.0 / (1.0 + std::exp(-z)));
  }
  return margin;
}

Result<std::vector<float>> PropensityModel::Predict(const FeatureMatrixView& features,
                                                    const Context& ctx) const {
  return PredictRaw(features, ctx, /*output_margin=*/false);
}

Result<std::vector<float>> PropensityModel::PredictRaw(const FeatureMatrixView& features,
                                                       const Context& ctx, bool output_margin) const {
  SHOAL_RETURN_IF_ERROR(CheckShape(features));
  if (features.cols() != feature_names_.size()) {
    return Status::InvalidArgument("feature matrix has " + std::to_string(features.cols()) +
                                   " columns, the model expects " +
                                   std::to_string(feature_names_.size()));
  }
  SHOAL_RETURN_IF_ERROR(CheckFinite(features));
  if (features.rows() == 0) return std::vector<float>();
  std::string array =
      ArrayInterface(features.data(), features.rows(), features.cols(), features.is_double());
  std::string config =
      std::string("{\"type\": ") + (output_margin ? "1" : "0") + ", \"training\": false, \"iteration_begin\": 0, "
      "\"iteration_end\": 0, \"strict_shape\": false, \"cache_id\": 0, "
      "\"missing\": NaN, "
      "\"nthread\": " +
      std::to_string(ctx.Threads()) + "}";
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterPredictFromDense(booster_.get(), array.c_str(), config.c_str(), nullptr,
                                         &shape, &dims, &result),
               "XGBoosterPredictFromDense"));
  bst_ulong total = 1;
  for (bst_ulong dim_idx = 0; dim_idx < dims; ++dim_idx) total *= shape[dim_idx];
  if (total != features.rows()) {
    return Status::Internal("XGBoost returned " + std::to_string(total) + " predictions for " +
                            std::to_string(features.rows()) + " rows");
  }
  return std::vector<float>(result, result + total);
}

Result<std::string> PropensityModel::Serialize(ModelFormat format) const {
  const char* config =
      format == ModelFormat::kJson ? "{\"format\": \"json\"}" : "{\"format\": \"ubj\"}";
  bst_ulong length = 0;
  const char* bytes = nullptr;
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterSaveModelToBuffer(booster_.get(), config, &length, &bytes),
               "XGBoosterSaveModelToBuffer"));
  return std::string(bytes, length);
}

Result<PropensityModel> PropensityModel::Deserialize(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("propensity model bytes are empty");
  BoosterHandle handle = nullptr;
  SHOAL_RETURN_IF_ERROR(CheckXgb(XGBoosterCreate(nullptr, 0, &handle), "XGBoosterCreate"));
  BoosterPtr booster(handle);
  Status loaded = CheckXgb(
      XGBoosterLoadModelFromBuffer(handle, bytes.data(), static_cast<bst_ulong>(bytes.size())),
      "XGBoosterLoadModelFromBuffer");
  if (!loaded.ok()) return Status::Corruption("cannot load propensity model: " + loaded.message());
  bst_ulong name_count = 0;
  const char** names = nullptr;
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterGetStrFeatureInfo(handle, "feature_name", &name_count, &names),
               "XGBoosterGetStrFeatureInfo(feature_name)"));
  if (name_count == 0) return Status::Corruption("propensity model carries no feature names");
  std::vector<std::string> feature_names(names, names + name_count);
  int rounds = 0;
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterBoostedRounds(handle, &rounds), "XGBoosterBoostedRounds"));
  // Loading leaves nthread unset (= all cores); Predict passes its own thread count.
  return PropensityModel(std::move(booster), std::move(feature_names), rounds);
}

Result<std::vector<FeatureImportanceEntry>> PropensityModel::FeatureImportance() const {
  std::vector<FeatureImportanceEntry> entries(feature_names_.size());
  for (size_t feature_idx = 0; feature_idx < entries.size(); ++feature_idx) {
    entries[feature_idx].feature_name = feature_names_[feature_idx];
  }
  if (rounds_ == 0) return entries;
  for (const char* importance_type : {"total_gain", "gain", "weight"}) {
    std::string config = std::string("{\"importance_type\": \"") + importance_type + "\"}";
    bst_ulong feature_count = 0;
    const char** features = nullptr;
    bst_ulong dims = 0;
    const bst_ulong* shape = nullptr;
    const float* scores = nullptr;
    SHOAL_RETURN_IF_ERROR(
        CheckXgb(XGBoosterFeatureScore(booster_.get(), config.c_str(), &feature_count, &features,
                                       &dims, &shape, &scores),
                 "XGBoosterFeatureScore"));
    // XGBoost lists only features used in some split, by name; map them back to columns.
    for (bst_ulong listed_idx = 0; listed_idx < feature_count; ++listed_idx) {
      auto it = std::find(feature_names_.begin(), feature_names_.end(), features[listed_idx]);
      if (it == feature_names_.end()) {
        return Status::Internal(std::string("XGBoost reported importance for unknown feature '") +
                                features[listed_idx] + "'");
      }
      FeatureImportanceEntry& entry = entries[static_cast<size_t>(it - feature_names_.begin())];
      double score = scores[listed_idx];
      if (importance_type[0] == 't') {
        entry.total_gain = score;
      } else if (importance_type[0] == 'g') {
        entry.mean_gain = score;
      } else {
        entry.split_count = static_cast<int64_t>(std::llround(score));
      }
    }
  }
  return entries;
}

Result<PropensityModel> TrainPropensity(const FeatureMatrixView& features,
                                        std::span<const float> labels,
                                        std::span<const std::string> feature_names,
                                        const PropensityOptions& options, const Context& ctx,
                                        PropensityTrainingSummary* summary,
                                        std::span<const float> base_margin) {
  SHOAL_RETURN_IF_ERROR(ValidateOptions(options));
  SHOAL_RETURN_IF_ERROR(CheckShape(features));
  if (labels.size() != features.rows()) {
    return Status::InvalidArgument("got " + std::to_string(labels.size()) + " labels for " +
                                   std::to_string(features.rows()) + " rows");
  }
  SHOAL_RETURN_IF_ERROR(ValidateNames(feature_names, features.cols()));
  size_t positives = 0;
  for (size_t row_idx = 0; row_idx < labels.size(); ++row_idx) {
    float label = labels[row_idx];
    if (label != 0.0f && label != 1.0f) {
      return Status::InvalidArgument("label at row " + std::to_string(row_idx) + " is " +
                                     FormatDouble(label) + ", expected 0 or 1");
    }
    positives += (label == 1.0f);
  }
  if (positives == 0 || positives == labels.size()) {
    return Status::InvalidArgument("labels hold a single class (" + std::to_string(positives) +
                                   " positives of " + std::to_string(labels.size()) +
                                   " rows); a propensity model needs both");
  }
  SHOAL_RETURN_IF_ERROR(CheckFinite(features));
  if (!base_margin.empty()) {
    if (base_margin.size() != labels.size()) {
      return Status::InvalidArgument("got " + std::to_string(base_margin.size()) + " base margins for " +
                                     std::to_string(labels.size()) + " rows");
    }
    for (float m : base_margin) {
      if (!std::isfinite(m)) return Status::InvalidArgument("a base margin is not finite");
    }
  }

  const int threads = ctx.Threads();
  const size_t cols = features.cols();
  std::vector<uint8_t> is_validation =
      ChooseValidationRows(labels, options.validation_fraction, ctx.seed);
  std::vector<float> train_labels, valid_labels;
  DMatrixPtr train_matrix, valid_matrix;
  // The gathered buffers only need to live until the DMatrix copies them in.
  auto build = [&](const auto* values) -> Status {
    auto train_values = GatherRows(values, cols, labels, is_validation, 0, train_labels);
    SHOAL_ASSIGN_OR_RETURN(train_matrix,
                           MakeDMatrix(train_values.data(), train_labels.size(), cols,
                                       features.is_double(), train_labels, feature_names, threads));
    auto valid_values = GatherRows(values, cols, labels, is_validation, 1, valid_labels);
    if (!valid_labels.empty()) {
      SHOAL_ASSIGN_OR_RETURN(
          valid_matrix, MakeDMatrix(valid_values.data(), valid_labels.size(), cols,
                                    features.is_double(), valid_labels, feature_names, threads));
    }
    return Status::OK();
  };
  if (features.is_double()) {
    SHOAL_RETURN_IF_ERROR(build(static_cast<const double*>(features.data())));
  } else {
    SHOAL_RETURN_IF_ERROR(build(static_cast<const float*>(features.data())));
  }
  if (!base_margin.empty()) {
    std::vector<float> train_margin, valid_margin;
    for (size_t row_idx = 0; row_idx < base_margin.size(); ++row_idx) {
      (is_validation[row_idx] ? valid_margin : train_margin).push_back(base_margin[row_idx]);
    }
    SHOAL_RETURN_IF_ERROR(CheckXgb(XGDMatrixSetFloatInfo(train_matrix.get(), "base_margin", train_margin.data(),
                                                         static_cast<bst_ulong>(train_margin.size())),
                                   "XGDMatrixSetFloatInfo(base_margin)"));
    if (valid_matrix) {
      SHOAL_RETURN_IF_ERROR(CheckXgb(XGDMatrixSetFloatInfo(valid_matrix.get(), "base_margin", valid_margin.data(),
                                                           static_cast<bst_ulong>(valid_margin.size())),
                                     "XGDMatrixSetFloatInfo(base_margin)"));
    }
  }

  BoosterHandle handle = nullptr;
  DMatrixHandle cache[2] = {train_matrix.get(), valid_matrix.get()};
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterCreate(cache, valid_matrix ? 2 : 1, &handle), "XGBoosterCreate"));
  PropensityModel::BoosterPtr booster(handle);
  // XGBoost's seed is a 32-bit int; fold the 64-bit seed into its non-negative range.
  int xgb_seed = static_cast<int>((ctx.seed ^ (ctx.seed >> 32)) & 0x7FFFFFFFULL);
  const std::pair<const char*, std::string> params[] = {
      {"objective", "binary:logistic"},
      {"eval_metric", "logloss"},
      {"tree_method", "hist"},
      {"max_depth", std::to_string(options.max_depth)},
      {"eta", FormatDouble(options.learning_rate)},
      {"subsample", FormatDouble(options.subsample)},
      {"colsample_bytree", FormatDouble(options.colsample_bytree)},
      {"min_child_weight", FormatDouble(options.min_child_weight)},
      {"lambda", FormatDouble(options.l2_regularization)},
      {"max_bin", std::to_string(options.max_bin)},
      {"nthread", std::to_string(threads)},
      {"seed", std::to_string(xgb_seed)},
      {"verbosity", "0"},
  };
  for (const auto& [name, value] : params) SHOAL_RETURN_IF_ERROR(SetParam(handle, name, value));

  const bool early_stopping = valid_matrix != nullptr && options.early_stopping_rounds > 0;
  double best_loss = std::numeric_limits<double>::infinity();
  int best_round = options.max_rounds - 1;
  int rounds_trained = 0;
  for (int round_idx = 0; round_idx < options.max_rounds; ++round_idx) {
    SHOAL_RETURN_IF_ERROR(CheckXgb(XGBoosterUpdateOneIter(handle, round_idx, train_matrix.get()),
                                   "XGBoosterUpdateOneIter"));
    rounds_trained = round_idx + 1;
    if (!valid_matrix) continue;
    DMatrixHandle eval_sets[1] = {valid_matrix.get()};
    const char* eval_names[1] = {"valid"};
    const char* eval_text = nullptr;
    SHOAL_RETURN_IF_ERROR(
        CheckXgb(XGBoosterEvalOneIter(handle, round_idx, eval_sets, eval_names, 1, &eval_text),
                 "XGBoosterEvalOneIter"));
    SHOAL_ASSIGN_OR_RETURN(double loss, ParseEvalLogLoss(eval_text));
    if (loss < best_loss) {
      best_loss = loss;
      best_round = round_idx;
    } else if (early_stopping && round_idx - best_round >= options.early_stopping_rounds) {
      break;
    }
  }
  if (!early_stopping) best_round = rounds_trained - 1;
  int rounds_kept = best_round + 1;
  if (rounds_kept < rounds_trained) {
    // Keep only the trees up to the best validation round.
    BoosterHandle sliced = nullptr;
    SHOAL_RETURN_IF_ERROR(
        CheckXgb(XGBoosterSlice(handle, 0, rounds_kept, 1, &sliced), "XGBoosterSlice"));
    booster.reset(sliced);
    handle = sliced;
  }
  // The names travel inside the serialized model; set them on the final booster explicitly.
  std::vector<const char*> name_pointers;
  for (const std::string& name : feature_names) name_pointers.push_back(name.c_str());
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterSetStrFeatureInfo(handle, "feature_name", name_pointers.data(),
                                          static_cast<bst_ulong>(name_pointers.size())),
               "XGBoosterSetStrFeatureInfo(feature_name)"));
  SHOAL_RETURN_IF_ERROR(
      CheckXgb(XGBoosterSetAttr(handle, "best_iteration", std::to_string(best_round).c_str()),
               "XGBoosterSetAttr(best_iteration)"));
  if (summary != nullptr) {
    summary->training_rows = train_labels.size();
    summary->validation_rows = valid_labels.size();
    summary->rounds_trained = rounds_trained;
    summary->rounds_kept = rounds_kept;
    summary->best_validation_log_loss =
        valid_matrix ? best_loss : std::numeric_limits<double>::quiet_NaN();
  }
  return PropensityModel(std::move(booster),
                         std::vector<std::string>(feature_names.begin(), feature_names.end()),
                         rounds_kept);
}

}  // namespace shoal
