// FeatureScaler: how `shoal build` turns a profile's clustering traits into the point k-means
// sees, and how the server places one profile in the same space between builds
// (docs/segments.md, "Behavioural clustering"). Per feature, in order:
//   1. a rate with a support trait (its number of observations n) is shrunk toward its population
//      mean mu by m pseudo-observations: (n x + m mu) / (n + m); undefined x with n = 0 gives mu;
//   2. other undefined values are imputed (0, or the largest value for recency_days and
//      ipi_std_days: never is as long ago as anyone);
//   3. log1p for skewed counts, money and durations;
//   4. clipped to the fitted [lo, hi] (the winsor quantiles);
//   5. standardised (x - center) / scale, then clipped to +-kClip.
// A scaler is fitted at the first build and kept while the feature set is unchanged, so the
// centroids of successive builds live in one space.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

// The default clustering traits, in order (docs/segments.md).
std::vector<std::string> DefaultClusteringFeatures();

// Whether `trait` is logged before scaling: the known skewed traits, and user-chosen traits whose
// names say they are counts, money or durations.
bool IsLogTrait(std::string_view trait);

// The trait counting the observations behind rate `trait` (e.g. "frequency" for
// "discount_share"), or "" for a trait that is not a shrunk rate.
std::string_view RateSupport(std::string_view trait);

struct FeatureScaler {
  static constexpr double kClip = 3;
  std::vector<std::string> features;
  std::vector<std::string> support;  // per feature: its support trait, or "" (no shrinkage)
  std::vector<uint8_t> log;          // per feature: 1 = log1p
  std::vector<double> impute, prior, lo, hi, center, scale;  // per feature
  double shrinkage = 0;              // m, pseudo-observations (0 = none)

  // The scaled value of feature f for a customer whose value is `value` (NaN = undefined) and
  // whose support trait has `support_value` (ignored when support[f] is "").
  double Transform(size_t f, double value, double support_value) const;
  // Steps 1-3 only: the value before clipping and standardising.
  double Prepare(size_t f, double value, double support_value) const;
  // For a feature without a support trait: the smallest defined value v with
  // Transform(f, v, .) == scaled (Transform is non-decreasing in v), or nullopt when no value
  // reaches `scaled` (beyond the winsor or +-kClip bounds). The server uses it to find when a
  // trait that grows with time (recency_days) moves a customer to another centroid.
  std::optional<double> Invert(size_t f, double scaled) const;

  void Serialize(std::string* out) const;
  // False for bytes that are not a scaler of the current format (an older build's: fit afresh).
  [[nodiscard]] bool Deserialize(std::string_view in);
};

// Fits a scaler on the population: `columns[f]` holds feature f of every customer,
// `support_columns[f]` its support trait's values (an empty span when support_names[f] is "").
// `shrinkage` >= 0 pseudo-observations; `winsor` in [0, 0.5): features are clipped to their
// [winsor, 1 - winsor] quantiles (0 = to their range). All spans have the same length.
FeatureScaler FitFeatureScaler(const std::vector<std::string>& features,
                               const std::vector<std::span<const double>>& columns,
                               const std::vector<std::string>& support_names,
                               const std::vector<std::span<const double>>& support_columns,
                               double shrinkage, double winsor);

}  // namespace shoal
