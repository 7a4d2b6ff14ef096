// The propensity stage of `shoal build` (docs/predictions-propensity.md): training sets from
// traits as of past cut-off dates with labels from the window after each, BG/NBD features fitted
// on the data before each cut-off, a held-out evaluation by time against the BG/NBD and recency
// baselines, and XGBoost models that score every profile as of the build time.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/engine.h"
#include "predict/propensity.h"

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace shoal {

// The four models, in this order everywhere (labels, settings, results).
enum class PropensityModelKind { kPurchase = 0, kChurn = 1, kUpgrade = 2, kReferral = 3 };
constexpr size_t kNumPropensityModels = 4;
// "purchase", "churn", "upgrade", "referral".
const char* PropensityModelName(size_t model_idx);

// [predictions] settings of the workspace config (docs/config.md), with their defaults.
struct PropensitySettings {
  bool enabled = true;           // fit the models in `shoal build`
  int cutoffs = 6;               // cut-off dates per model; the latest is the held-out one
  int cutoff_spacing_days = 30;  // days between consecutive cut-offs
  // The held-out (latest) cut-off as a UTC day; default per model: the build day minus its horizon.
  std::optional<int64_t> holdout_day;
  // Label windows in days: purchase, churn, upgrade, referral.
  std::array<int, kNumPropensityModels> horizon_days = {30, 90, 90, 90};
  double upgrade_quantile = 0.75;      // the customer's own unit-price quantile an upgrade beats
  size_t max_rows_per_cutoff = 20000;  // rows sampled per cut-off for training (0 = all)
  // XGBoost options (docs/config.md); the library's defaults except shallow, well-populated trees
  // (max_depth 2, min_child_weight 20): purchase and churn trees correct BG/NBD rather than
  // replace it, and deeper trees lost to it on CDNOW's held-out quarter. At most 300 rounds:
  // with 1000 the models of a 50,000-customer shop took 2 minutes and ran to the limit for
  // ~0.004 AUC (learning rate 0.3 was faster still but lost to BG/NBD on CDNOW).
  PropensityOptions xgboost = [] {
    PropensityOptions o;
    o.max_depth = 2;
    o.min_child_weight = 20;
    o.learning_rate = 0.1;
    o.max_rounds = 300;
    return o;
  }();
};

// Reads [predictions]; InvalidArgument naming the key for a bad value.
Result<PropensitySettings> ParsePropensitySettings(const toml::table& root);

// One cut-off's rows: the profiles alive as of `cutoff`, their features as of it and their labels
// from the window after it.
struct PropensityCutoffRows {
  TimeMicros cutoff = 0;
  std::vector<uint32_t> current_profiles;  // per row: the profile holding it now
  std::vector<std::string> customer_ids;   // per row: display id as of the cut-off
  std::vector<float> features;             // rows x feature_names.size(), row-major, NaN = missing
  // Per model and row: 1, 0, or NaN when the row is outside the model's population at this
  // cut-off (or the cut-off is not one of the model's).
  std::array<std::vector<float>, kNumPropensityModels> labels;
  size_t rows() const { return current_profiles.size(); }
};

// Every cut-off's rows plus the rows to score (as of the build time, no labels).
struct PropensityData {
  std::vector<std::string> feature_names;     // traits, then bgnbd_* features
  std::vector<PropensityCutoffRows> cutoffs;  // ascending
  // Per model: its cut-offs (indices into `cutoffs`, ascending); the last is held out.
  std::array<std::vector<size_t>, kNumPropensityModels> model_cutoffs;
  PropensityCutoffRows scoring;  // as of the build time; labels empty
  uint64_t referral_events = 0;  // stored referral events before the build time
  std::array<std::string, kNumPropensityModels> skipped;  // why a model cannot be built ("" = ok)
};

// Builds the training and scoring rows. Features at a cut-off c come from the events before c
// only (Engine::ReplayAsOf, one growing replay); labels come from the events in [c, c + horizon)
// read through the current identity graph, and every window ends at or before `as_of`. Events
// at or after `as_of` are never read. `unit_days` is the BG/NBD time unit (1 or 7).
Result<PropensityData> BuildPropensityData(const Engine& engine, TimeMicros as_of,
                                           const PropensitySettings& settings, double unit_days);

// What the stage computed, per build row (rows of `build_customer_ids`).
struct PropensityStageResult {
  std::array<std::vector<double>, kNumPropensityModels> scores;  // NaN = not scored
  std::string json;    // the "propensity" object of models.json
  std::string report;  // the same, readable (`shoal models`)
  // (kModels key, model bytes) per model; empty bytes for a skipped model (delete the key).
  std::vector<std::pair<std::string, std::string>> stored_models;
};

// Runs the stage: data, held-out evaluation, final models on every cut-off, scores for the build's
// rows (matched by customer id through the current identity). FailedPrecondition never: a model
// that cannot be built is skipped with the reason in the report.
Result<PropensityStageResult> RunPropensityStage(const Engine& engine, TimeMicros as_of,
                                                 const std::vector<std::string>& build_customer_ids,
                                                 const std::string& time_unit, bool quiet);

}  // namespace shoal
