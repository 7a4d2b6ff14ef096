#include "engine/live_model.h"

#include <limits>

#include "common/coding.h"
#include "common/time.h"
#include "engine/engine.h"

namespace shoal {

namespace {

constexpr uint64_t kLiveFormat = 1;

void PutRange(std::string* out, const segment::ScoreRange& r) {
  PutZigZag(out, r.lo);
  PutZigZag(out, r.hi);
}
segment::ScoreRange ReadRange(Reader& r) {
  segment::ScoreRange range;
  range.lo = static_cast<int>(r.ZigZag());
  range.hi = static_cast<int>(r.ZigZag());
  return range;
}
void PutDoubles(std::string* out, const std::vector<double>& v) {
  PutVarint(out, v.size());
  for (double x : v) PutDouble(out, x);
}
std::vector<double> ReadDoubles(Reader& r) {
  std::vector<double> v(std::min<size_t>(r.Varint(), r.Remaining()));
  for (double& x : v) x = r.Double();
  return v;
}


}  // namespace

void LiveModel::Serialize(std::string* out) const {
  PutVarint(out, kLiveFormat);
  PutZigZag(out, as_of);
  PutVarint(out, static_cast<uint64_t>(rfm_bins));
  out->push_back(rfm_default_table ? 1 : 0);
  PutVarint(out, rfm_table.size());
  for (const auto& rule : rfm_table) {
    PutString(out, rule.name);
    PutRange(out, rule.r);
    PutRange(out, rule.f);
    PutRange(out, rule.m);
    PutRange(out, rule.fm);
  }
  PutVarint(out, rfm_names.size());
  for (const auto& n : rfm_names) PutString(out, n);
  PutDoubles(out, recency_cuts);
  PutDoubles(out, frequency_cuts);
  PutDoubles(out, monetary_cuts);
  std::string scaler_blob;
  scaler.Serialize(&scaler_blob);
  PutString(out, scaler_blob);
  PutDouble(out, hysteresis);
  PutVarint(out, segment_ids.size());
  for (size_t c = 0; c < segment_ids.size(); ++c) {
    PutZigZag(out, segment_ids[c]);
    PutString(out, segment_names[c]);
    for (size_t f = 0; f < features.size(); ++f) PutDouble(out, centroids[c * features.size() + f]);
  }
  out->push_back(have_bgnbd ? 1 : 0);
  PutDouble(out, bgnbd.r);
  PutDouble(out, bgnbd.alpha);
  PutDouble(out, bgnbd.a);
  PutDouble(out, bgnbd.b);
  out->push_back(have_gamma_gamma ? 1 : 0);
  PutDouble(out, gamma_gamma.p);
  PutDouble(out, gamma_gamma.q);
  PutDouble(out, gamma_gamma.gamma);
  PutDouble(out, unit_days);
  PutDouble(out, horizon_days);
  PutVarint(out, static_cast<uint64_t>(clv.periods));
  PutDouble(out, clv.period_length);
  PutDouble(out, clv.margin);
  PutDouble(out, clv.discount_rate);
}

Status LiveModel::Deserialize(std::string_view in) {
  Reader r(in);
  if (r.Varint() != kLiveFormat) return Status::Corruption("stored live model: unknown format");
  as_of = r.ZigZag();
  rfm_bins = static_cast<int>(r.Varint());
  rfm_default_table = r.Byte() != 0;
  size_t n = r.Varint();
  for (size_t i = 0; i < n && r.ok(); ++i) {
    segment::RfmSegmentRule rule;
    rule.name = std::string(r.String());
    rule.r = ReadRange(r);
    rule.f = ReadRange(r);
    rule.m = ReadRange(r);
    rule.fm = ReadRange(r);
    rfm_table.push_back(std::move(rule));
  }
  n = r.Varint();
  for (size_t i = 0; i < n && r.ok(); ++i) rfm_names.emplace_back(r.String());
  recency_cuts = ReadDoubles(r);
  frequency_cuts = ReadDoubles(r);
  monetary_cuts = ReadDoubles(r);
  if (!scaler.Deserialize(r.String())) return Status::Corruption("stored live model: bad feature scaler");
  features = scaler.features;
  hysteresis = r.Double();
  n = r.Varint();
  for (size_t c = 0; c < n && r.ok(); ++c) {
    segment_ids.push_back(r.ZigZag());
    segment_names.emplace_back(r.String());
    for (size_t f = 0; f < features.size(); ++f)
      centroids.push_back(static_cast<float>(r.Double()));
  }
  have_bgnbd = r.Byte() != 0;
  bgnbd.r = r.Double();
  bgnbd.alpha = r.Double();
  bgnbd.a = r.Double();
  bgnbd.b = r.Double();
  have_gamma_gamma = r.Byte() != 0;
  gamma_gamma.p = r.Double();
  gamma_gamma.q = r.Double();
  gamma_gamma.gamma = r.Double();
  unit_days = r.Double();
  horizon_days = r.Double();
  clv.periods = static_cast<int>(r.Varint());
  clv.period_length = r.Double();
  clv.margin = r.Double();
  clv.discount_rate = r.Double();
  if (!r.ok()) return Status::Corruption("stored live model truncated");
  if (rfm_names.size() != rfm_table.size() + 3 || rfm_bins < 3 || rfm_bins > 5) {
    return Status::Corruption("stored live model: inconsistent RFM table");
  }
  return Status::OK();
}

Result<LiveModel> LoadLiveModel(const Engine& engine) {
  std::string value;
  Status st = engine.const_store().Get(Column::kModels, kLiveModelKey, &value);
  if (st.IsNotFound()) return Status::NotFound("no build with live models yet: run `shoal build`");
  SHOAL_RETURN_IF_ERROR(st);
  LiveModel model;
  SHOAL_RETURN_IF_ERROR(model.Deserialize(value));
  return model;
}

void ScoreRfmOne(const LiveModel& model, double recency_days, double frequency, double monetary,
                 LiveScores* out) {
  const segment::RfmRowScore row = segment::ScoreRfmRow(
      recency_days, frequency, monetary, model.rfm_bins, model.recency_cuts, model.frequency_cuts,
      model.monetary_cuts, model.rfm_table, model.rfm_default_table);
  out->rfm_r = row.r;
  out->rfm_f = row.f;
  out->rfm_m = row.m;
  out->rfm_segment = row.segment;
}

LiveScores ScoreLive(const LiveModel& model, const Engine& engine, uint32_t profile,
                     std::span<const double> traits, std::span<const int> trait_index,
                     std::span<const int> support_index, const std::array<int, 3>& rfm_index,
                     int64_t built_segment, TimeMicros now, bool with_btyd) {
  LiveScores out;
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  auto trait = [&](size_t f) {
    int idx = trait_index[f];
    return idx < 0 ? kNaN : traits[static_cast<size_t>(idx)];
  };
  const CustomerState& state = engine.state(profile);
  // RFM from the three traits the build used.
  auto at = [&](int idx) { return idx < 0 ? kNaN : traits[static_cast<size_t>(idx)]; };
  ScoreRfmOne(model, at(rfm_index[0]), at(rfm_index[1]), at(rfm_index[2]), &out);

  // Nearest centroid in the scaled space (distances in double), hysteresis against the build's.
  const size_t d = model.features.size();
  const size_t k = model.num_clusters();
  if (k > 0) {
    double point[64];
    std::vector<double> big;
    double* x = point;
    if (d > 64) {
      big.resize(d);
      x = big.data();
    }
    for (size_t f = 0; f < d; ++f) {
      const int support = support_index[f];
      x[f] = ScaleFeature(model, f, trait(f), support < 0 ? 0.0 : traits[static_cast<size_t>(support)]);
    }
    size_t nearest = 0, kept = k;
    double nearest_sq = std::numeric_limits<double>::infinity(), kept_sq = 0;
    for (size_t c = 0; c < k; ++c) {
      double sq = 0;
      for (size_t f = 0; f < d; ++f) {
        const double diff = x[f] - static_cast<double>(model.centroids[c * d + f]);
        sq += diff * diff;
      }
      if (sq < nearest_sq) {
        nearest_sq = sq;
        nearest = c;
      }
      if (model.segment_ids[c] == built_segment) {
        kept = c;
        kept_sq = sq;
      }
    }
    size_t chosen = nearest;
    if (kept < k && kept != nearest &&
        std::sqrt(kept_sq) <= (1 + model.hysteresis) * std::sqrt(nearest_sq)) {
      chosen = kept;
    }
    out.cluster = static_cast<int32_t>(chosen);
  }

  out.p_alive = out.expected_orders_90d = out.expected_order_value = out.clv = kNaN;
  if (with_btyd) ScoreLiveBtyd(model, state, now, &out);
  return out;
}

OrderDaySummary SummarizeOrderDays(const CustomerState& state, int64_t cal_end_day, double unit_days) {
  OrderDaySummary out;
  int64_t first = INT64_MAX, last = INT64_MIN, current = INT64_MIN, days = 0;
  double day_total = 0, repeat_sum = 0;
  for (const auto& order : state.orders()) {  // sorted by time
    int64_t day = DayOf(order.timestamp);
    if (day > cal_end_day) break;
    if (day != current) {
      if (current != INT64_MIN && days > 1) repeat_sum += day_total;
      current = day;
      day_total = 0;
      ++days;
      first = std::min(first, day);
      last = day;
    }
    day_total += order.total();
  }
  if (current != INT64_MIN && days > 1) repeat_sum += day_total;
  if (days == 0) return out;
  out.has_orders = true;
  out.x = static_cast<double>(days - 1);
  out.t_x = static_cast<double>(last - first) / unit_days;
  out.T = static_cast<double>(cal_end_day - first) / unit_days;
  out.mean_repeat_value = days > 1 ? repeat_sum / static_cast<double>(days - 1) : 0;
  return out;
}

void ScoreBtydSummary(const LiveModel& model, const OrderDaySummary& summary, LiveScores* out) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  out->p_alive = out->expected_orders_90d = out->expected_order_value = out->clv = kNaN;
  if (!model.have_bgnbd || !summary.has_orders) return;
  const double xs = summary.x, txs = summary.t_x, Ts = summary.T;
  const double mean = summary.mean_repeat_value;
  const GammaGammaParams& gg = model.gamma_gamma;
  const double population_value =
      model.have_gamma_gamma && gg.q > 1 ? gg.p * gg.gamma / (gg.q - 1) : kNaN;
  out->p_alive = BgNbdProbabilityAlive(model.bgnbd, xs, txs, Ts);
  out->expected_orders_90d =
      BgNbdExpectedPurchases(model.bgnbd, xs, txs, Ts, model.horizon_days / model.unit_days);
  out->expected_order_value = xs > 0 && mean > 0 && model.have_gamma_gamma
                                  ? GammaGammaExpectedValue(gg, xs, mean)
                                  : population_value;
  if (model.have_gamma_gamma) {
    out->clv = BgNbdClv(model.bgnbd, gg, xs, txs, Ts, xs > 0 && mean > 0 ? mean : population_value,
                        model.clv);
  }
}

void ScoreLiveBtyd(const LiveModel& model, const CustomerState& state, TimeMicros now,
                   LiveScores* out) {
  // (x, t_x, T) from the orders up to the day before `now`, as the build computes them.
  const OrderDaySummary summary = model.have_bgnbd
                                      ? SummarizeOrderDays(state, DayOf(now) - 1, model.unit_days)
                                      : OrderDaySummary();
  ScoreBtydSummary(model, summary, out);
}

}  // namespace shoal
