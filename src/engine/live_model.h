// LiveModel: the models of the last build, frozen, with what it takes to score ONE profile the
// way the build scored every profile -- the RFM cut points and segment table, the clustering
// features' scaler, the centroids and hysteresis, the BTYD parameters. The server re-scores a
// profile with it after every event (docs/server.md "Memberships"); `shoal build` stores it
// under the models key build/live next to the build's per-profile results.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"
#include "engine/feature_scaler.h"
#include "predict/bgnbd.h"
#include "predict/btyd_clv.h"
#include "predict/gamma_gamma.h"
#include "segment/rfm.h"
#include "traits/customer_state.h"

namespace shoal {

class Engine;

// The build/live record. Filled by RunBuild; read by LoadLiveModel.
struct LiveModel {
  TimeMicros as_of = 0;  // the build's traits were computed at this time

  // RFM: ScoreFromCuts over these cuts, then the first matching rule of the table.
  int rfm_bins = 5;
  bool rfm_default_table = true;  // scores are rescaled to 1..5 before the default table
  std::vector<segment::RfmSegmentRule> rfm_table;
  std::vector<std::string> rfm_names;  // the table's names, then No Orders, Unscored, Other
  std::vector<double> recency_cuts, frequency_cuts, monetary_cuts;

  // Clusters: the feature vector scaled by the build's FeatureScaler (engine/feature_scaler.h),
  // nearest centroid by Euclidean distance; a profile keeps the segment the build gave it
  // unless the nearest centroid is closer by the factor (1 + hysteresis).
  std::vector<std::string> features;  // = scaler.features
  FeatureScaler scaler;
  double hysteresis = 0.1;
  std::vector<float> centroids;            // k x features, row-major
  std::vector<int64_t> segment_ids;        // per centroid
  std::vector<std::string> segment_names;  // per centroid

  // BTYD: BG/NBD (+ Gamma-Gamma) as the build fitted them; the calibration period of a score at
  // time t ends the day before t, like the build's.
  bool have_bgnbd = false, have_gamma_gamma = false;
  BgNbdParams bgnbd;
  GammaGammaParams gamma_gamma;
  double unit_days = 7;      // the model's time unit in days
  double horizon_days = 90;  // expected_orders_90d horizon
  ClvOptions clv;

  void Serialize(std::string* out) const;
  [[nodiscard]] Status Deserialize(std::string_view in);
  size_t num_clusters() const { return segment_ids.size(); }
};

// The key RunBuild stores the LiveModel under (column family models).
inline constexpr std::string_view kLiveModelKey = "build/live";

// The stored LiveModel of the last build: NotFound before the first build (or for a build made
// by a shoal that did not store it), Corruption on a damaged record.
Result<LiveModel> LoadLiveModel(const Engine& engine);

// One profile scored with a LiveModel at a time.
struct LiveScores {
  uint8_t rfm_r = 0, rfm_f = 0, rfm_m = 0;  // 0 = unscored (no orders)
  int32_t rfm_segment = 0;                  // index into rfm_names
  int32_t cluster = -1;                     // centroid index, -1 = none (k = 0)
  double p_alive = 0, expected_orders_90d = 0, expected_order_value = 0, clv = 0;  // NaN = none
};

// Scores one profile. `traits` are its traits at `now` (catalogue order, all of them);
// `trait_index` maps the model's features to catalogue indices (-1 = absent: NaN), and
// `support_index` their support traits (scaler.support) likewise;
// `rfm_index` the catalogue indices of recency_days, frequency and monetary_total (-1: NaN);
// `built_segment` is the segment id the build gave the profile (-1 = none: no hysteresis).
// `with_btyd` = false leaves the four scores NaN (they cost a few microseconds).
LiveScores ScoreLive(const LiveModel& model, const Engine& engine, uint32_t profile,
                     std::span<const double> traits, std::span<const int> trait_index,
                     std::span<const int> support_index, const std::array<int, 3>& rfm_index,
                     int64_t built_segment, TimeMicros now, bool with_btyd);

// The four BTYD scores of one customer at `now` (NaN without orders before today or without a
// BG/NBD fit). They change only with the customer's orders and the UTC day of `now`.
// A customer's BTYD summary from its orders (sorted by time) on UTC days up to `cal_end_day`:
// purchases are distinct order days, x = days - 1, t_x and T from the first order day to the last
// one and to `cal_end_day`, in units of `unit_days`; mean_repeat_value = mean order total of the
// repeat days (0 without any). `has_orders` is false (and the rest 0) without an order by then.
// The build, the server and the propensity stage all summarise customers this way.
struct OrderDaySummary {
  bool has_orders = false;
  double x = 0, t_x = 0, T = 0, mean_repeat_value = 0;
};
OrderDaySummary SummarizeOrderDays(const CustomerState& state, int64_t cal_end_day, double unit_days);

// p_alive, expected_orders_90d, expected_order_value and clv of a customer with `summary`
// under the model's BTYD fits (NaN without a BG/NBD fit or without orders; clv NaN without a
// Gamma-Gamma fit). The build scores every profile with it, the server one profile per event.
void ScoreBtydSummary(const LiveModel& model, const OrderDaySummary& summary, LiveScores* out);

void ScoreLiveBtyd(const LiveModel& model, const CustomerState& state, TimeMicros now,
                   LiveScores* out);

// RFM scores and the segment index of one customer (ComputeRfm's rule for one row).
void ScoreRfmOne(const LiveModel& model, double recency_days, double frequency, double monetary,
                 LiveScores* out);

// The scaled feature value of `value` for feature f (as the build's scaler transforms it);
// `support_value` is the value of the feature's support trait (ignored when it has none).
inline double ScaleFeature(const LiveModel& model, size_t f, double value, double support_value) {
  return model.scaler.Transform(f, value, support_value);
}

}  // namespace shoal
