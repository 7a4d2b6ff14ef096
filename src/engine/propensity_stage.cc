#include "engine/propensity_stage.h"

#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "common/json_writer.h"
#include "common/parallel.h"
#include "engine/live_model.h"
#include "common/time.h"
#include "predict/bgnbd.h"
#include "predict/btyd_data.h"
#include "predict/evaluation.h"

namespace shoal {

namespace {

constexpr const char* kModelNames[kNumPropensityModels] = {"purchase", "churn", "upgrade",
                                                           "referral"};
constexpr float kNoLabel = __builtin_nanf("");
// Fewest labelled training rows, and positives/negatives on each side, for a model to be fitted.
constexpr size_t kMinTrainingRows = 50;
constexpr size_t kMinClassRows = 5;

uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Per current profile, what the label windows read: orders (time, mean unit price of the priced
// lines, NaN when none), priced lines (time, unit price) and referral events (time), each sorted
// by (profile, time) and indexed by CSR offsets.
struct LabelRecords {
  struct Order {
    TimeMicros t;
    double mean_unit_price;
  };
  struct Price {
    TimeMicros t;
    double unit_price;
  };
  std::vector<uint64_t> order_offsets, price_offsets, referral_offsets;  // num_profiles + 1
  std::vector<Order> orders;
  std::vector<Price> prices;
  std::vector<TimeMicros> referrals;
  TimeMicros first_event = INT64_MAX;

  std::span<const Order> OrdersOf(uint32_t p) const {
    return {orders.data() + order_offsets[p], orders.data() + order_offsets[p + 1]};
  }
  std::span<const Price> PricesOf(uint32_t p) const {
    return {prices.data() + price_offsets[p], prices.data() + price_offsets[p + 1]};
  }
  std::span<const TimeMicros> ReferralsOf(uint32_t p) const {
    return {referrals.data() + referral_offsets[p], referrals.data() + referral_offsets[p + 1]};
  }
};

template <typename T>
void Csr(std::vector<std::pair<uint32_t, T>>& items, size_t num_profiles,
         std::vector<uint64_t>* offsets, std::vector<T>* out) {
  std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second.t < b.second.t;
  });
  offsets->assign(num_profiles + 1, 0);
  for (const auto& item : items) ++(*offsets)[item.first + 1];
  for (size_t p = 0; p < num_profiles; ++p) (*offsets)[p + 1] += (*offsets)[p];
  out->clear();
  out->reserve(items.size());
  for (const auto& item : items) out->push_back(item.second);
}

Result<LabelRecords> CollectLabelRecords(const Engine& engine, TimeMicros as_of) {
  struct TimeOnly {
    TimeMicros t;
  };
  std::vector<std::pair<uint32_t, LabelRecords::Order>> orders;
  std::vector<std::pair<uint32_t, LabelRecords::Price>> prices;
  std::vector<std::pair<uint32_t, TimeOnly>> referrals;
  LabelRecords out;
  const IdentityGraph& identity = engine.identity();
  SHOAL_RETURN_IF_ERROR(engine.ForEachStoredBatch([&](const EventBatch& batch) {
    for (const Event& e : batch.events) {
      if (e.timestamp >= as_of) continue;
      out.first_event = std::min(out.first_event, e.timestamp);
      const bool is_order = e.Is(EventType::kOrder), is_referral = e.Is(EventType::kReferral);
      if (!is_order && !is_referral) continue;
      uint32_t profile = kNoProfile;
      if (!e.customer_id.empty()) profile = identity.Find(IdKind::kCustomerId, e.customer_id);
      if (profile == kNoProfile && !e.email.empty())
        profile = identity.Find(IdKind::kEmail, e.email);
      if (profile == kNoProfile && !e.anonymous_id.empty())
        profile = identity.Find(IdKind::kAnonymousId, e.anonymous_id);
      if (profile == kNoProfile) continue;
      if (is_referral) {
        referrals.push_back({profile, {e.timestamp}});
        continue;
      }
      double sum = 0;
      size_t priced = 0;
      for (const OrderLine& line : batch.Lines(e)) {
        if (!(line.unit_price > 0) || !std::isfinite(line.unit_price)) continue;
        sum += line.unit_price;
        ++priced;
        prices.push_back({profile, {e.timestamp, line.unit_price}});
      }
      orders.push_back(
          {profile, {e.timestamp, priced ? sum / static_cast<double>(priced) : std::nan("")}});
    }
    return Status::OK();
  }));
  const size_t slots = identity.num_slots();
  Csr(orders, slots, &out.order_offsets, &out.orders);
  Csr(prices, slots, &out.price_offsets, &out.prices);
  std::vector<TimeOnly> times;
  Csr(referrals, slots, &out.referral_offsets, &times);
  for (const TimeOnly& t : times) out.referrals.push_back(t.t);
  return out;
}

// Linear-interpolated quantile (numpy's default) of the values; v is reordered.
double QuantileOf(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(v.size() - 1, lo + 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// Distinct horizons of the models, ascending: one pair of BG/NBD features per horizon.
std::vector<int> DistinctHorizons(const PropensitySettings& s) {
  std::set<int> h(s.horizon_days.begin(), s.horizon_days.end());
  return {h.begin(), h.end()};
}

std::string HorizonFeature(const char* stem, int days) {
  return std::string(stem) + std::to_string(days) + "d";
}

// Fills rows x d features of the snapshot rows `selected`: traits, then BG/NBD P(alive) and per
// horizon the expected orders and P(at least one order), from a BG/NBD fitted on the orders
// before the snapshot time only.
void FillFeatures(const AsOfSnapshot& snap, std::span<const uint32_t> selected,
                  const std::vector<int>& horizons, size_t d, double unit_days, const Context& ctx,
                  std::vector<float>* features) {
  const size_t rows = selected.size();
  const size_t num_traits = snap.table.matrix.traits.size();
  features->assign(rows * d, kNoLabel);
  const size_t n_all = snap.table.profiles.size();
  for (size_t t = 0; t < num_traits; ++t) {
    const double* col = snap.table.matrix.values.data() + t * n_all;
    for (size_t r = 0; r < rows; ++r) {
      double v = col[selected[r]];
      (*features)[r * d + t] = std::isfinite(v) ? static_cast<float>(v) : kNoLabel;
    }
  }
  // (x, t_x, T) per row, calibration ending the day before the snapshot (all its orders).
  const int64_t cal_end_day = DayOf(snap.as_of - 1);
  std::vector<double> xs(rows, std::nan("")), txs(rows, std::nan("")), Ts(rows, std::nan(""));
  std::vector<double> fit_x, fit_tx, fit_T;
  for (size_t r = 0; r < rows; ++r) {
    const OrderDaySummary summary =
        SummarizeOrderDays(*snap.states[selected[r]], cal_end_day, unit_days);
    if (!summary.has_orders) continue;
    xs[r] = summary.x;
    txs[r] = summary.t_x;
    Ts[r] = summary.T;
    if (Ts[r] > 0) {
      fit_x.push_back(xs[r]);
      fit_tx.push_back(txs[r]);
      fit_T.push_back(Ts[r]);
    }
  }
  if (fit_x.size() < 10) return;
  auto data = CompressRfm(fit_x, fit_tx, fit_T, {});
  if (!data.ok()) return;
  BtydFitOptions fit_options;
  fit_options.max_abs_log_parameter = std::log(1e4);
  auto fit = FitBgNbd(*data, fit_options, ctx);
  if (!fit.ok()) return;
  const BgNbdParams params = fit->params;
  ParallelFor(
      rows, ctx.Threads(),
      [&](size_t begin, size_t end, int) {
        for (size_t r = begin; r < end; ++r) {
          if (std::isnan(xs[r])) continue;
          float* out = features->data() + r * d + num_traits;
          out[0] = static_cast<float>(BgNbdProbabilityAlive(params, xs[r], txs[r], Ts[r]));
          for (size_t h = 0; h < horizons.size(); ++h) {
            double t = horizons[h] / unit_days;
            out[1 + 2 * h] =
                static_cast<float>(BgNbdExpectedPurchases(params, xs[r], txs[r], Ts[r], t));
            out[2 + 2 * h] =
                static_cast<float>(BgNbdProbabilityPurchaseWithin(params, xs[r], txs[r], Ts[r], t));
          }
        }
      },
      256);
}

}  // namespace

const char* PropensityModelName(size_t model_idx) { return kModelNames[model_idx]; }

Result<PropensitySettings> ParsePropensitySettings(const toml::table& root) {
  PropensitySettings s;
  const toml::table* p = root["predictions"].as_table();
  if (!p) return s;
  auto bad = [](const std::string& key, const std::string& want) {
    return Status::InvalidArgument("workspace config: predictions." + key + " must be " + want);
  };
  s.enabled = (*p)["enabled"].value_or(s.enabled);
  s.cutoffs = static_cast<int>((*p)["cutoffs"].value_or<int64_t>(s.cutoffs));
  s.cutoff_spacing_days =
      static_cast<int>((*p)["cutoff_spacing_days"].value_or<int64_t>(s.cutoff_spacing_days));
  if (s.cutoffs < 2 || s.cutoffs > 60) return bad("cutoffs", "an integer in [2, 60]");
  if (s.cutoff_spacing_days < 1) return bad("cutoff_spacing_days", ">= 1");
  if (auto text = (*p)["holdout_cutoff"].value<std::string>()) {
    auto t = ParseIso8601(*text);
    if (!t.ok() || text->size() != 10) return bad("holdout_cutoff", "a date YYYY-MM-DD");
    s.holdout_day = DayOf(*t);
  }
  const char* horizon_keys[kNumPropensityModels] = {"purchase_horizon_days", "churn_horizon_days",
                                                    "upgrade_horizon_days",
                                                    "referral_horizon_days"};
  for (size_t m = 0; m < kNumPropensityModels; ++m) {
    s.horizon_days[m] =
        static_cast<int>((*p)[horizon_keys[m]].value_or<int64_t>(s.horizon_days[m]));
    if (s.horizon_days[m] < 1 || s.horizon_days[m] > 3660)
      return bad(horizon_keys[m], "in [1, 3660] days");
  }
  s.upgrade_quantile = (*p)["upgrade_quantile"].value_or(s.upgrade_quantile);
  if (!(s.upgrade_quantile > 0 && s.upgrade_quantile < 1))
    return bad("upgrade_quantile", "in (0, 1)");
  int64_t max_rows =
      (*p)["max_rows_per_cutoff"].value_or<int64_t>(static_cast<int64_t>(s.max_rows_per_cutoff));
  if (max_rows < 0) return bad("max_rows_per_cutoff", ">= 0");
  s.max_rows_per_cutoff = static_cast<size_t>(max_rows);
  PropensityOptions& x = s.xgboost;
  x.max_depth = static_cast<int>((*p)["max_depth"].value_or<int64_t>(x.max_depth));
  x.learning_rate = (*p)["learning_rate"].value_or(x.learning_rate);
  x.max_rounds = static_cast<int>((*p)["max_rounds"].value_or<int64_t>(x.max_rounds));
  x.early_stopping_rounds =
      static_cast<int>((*p)["early_stopping_rounds"].value_or<int64_t>(x.early_stopping_rounds));
  x.validation_fraction = (*p)["validation_fraction"].value_or(x.validation_fraction);
  x.subsample = (*p)["subsample"].value_or(x.subsample);
  x.colsample_bytree = (*p)["colsample_bytree"].value_or(x.colsample_bytree);
  x.min_child_weight = (*p)["min_child_weight"].value_or(x.min_child_weight);
  x.l2_regularization = (*p)["l2_regularization"].value_or(x.l2_regularization);
  if (x.max_depth < 1 || x.max_depth > 20) return bad("max_depth", "in [1, 20]");
  if (!(x.learning_rate > 0 && x.learning_rate <= 1)) return bad("learning_rate", "in (0, 1]");
  if (x.max_rounds < 1) return bad("max_rounds", ">= 1");
  if (x.early_stopping_rounds < 0) return bad("early_stopping_rounds", ">= 0");
  if (!(x.validation_fraction >= 0 && x.validation_fraction <= 0.5))
    return bad("validation_fraction", "in [0, 0.5]");
  if (!(x.subsample > 0 && x.subsample <= 1)) return bad("subsample", "in (0, 1]");
  if (!(x.colsample_bytree > 0 && x.colsample_bytree <= 1))
    return bad("colsample_bytree", "in (0, 1]");
  if (!(x.min_child_weight >= 0)) return bad("min_child_weight", ">= 0");
  if (!(x.l2_regularization >= 0)) return bad("l2_regularization", ">= 0");
  return s;
}

Result<PropensityData> BuildPropensityData(const Engine& engine, TimeMicros as_of,
                                           const PropensitySettings& settings, double unit_days) {
  const Context& ctx = engine.context();
  PropensityData data;
  SHOAL_ASSIGN_OR_RETURN(LabelRecords records, CollectLabelRecords(engine, as_of));
  data.referral_events = records.referrals.size();
  const bool any_event = records.first_event != INT64_MAX;
  const int64_t first_day = any_event ? DayOf(records.first_event) : 0;
  // Each model's cut-off days: the held-out one, then back by the spacing; a cut-off needs a day of
  // data before it and its window must end at or before the build time.
  std::array<std::vector<int64_t>, kNumPropensityModels> model_days;
  std::set<int64_t> all_days;
  for (size_t m = 0; m < kNumPropensityModels; ++m) {
    const int64_t h = settings.horizon_days[m];
    if (!any_event) {
      data.skipped[m] = "no events before the build time";
      continue;
    }
    if (static_cast<PropensityModelKind>(m) == PropensityModelKind::kReferral &&
        data.referral_events == 0) {
      data.skipped[m] = "no referral events in the data";
      continue;
    }
    const int64_t latest = settings.holdout_day.value_or(DayOf(as_of) - h);
    if ((latest + h) * kMicrosPerDay > as_of) {
      data.skipped[m] = "the held-out cut-off " + FormatDate(latest * kMicrosPerDay) +
                        " plus the " + std::to_string(h) + "-day window ends after the build time";
      continue;
    }
    for (int i = settings.cutoffs - 1; i >= 0; --i) {
      int64_t day = latest - static_cast<int64_t>(i) * settings.cutoff_spacing_days;
      if (day > first_day) model_days[m].push_back(day);
    }
    if (model_days[m].size() < 2) {
      data.skipped[m] =
          "the data span too few cut-offs (need 2 with a " + std::to_string(h) + "-day window)";
      model_days[m].clear();
      continue;
    }
    all_days.insert(model_days[m].begin(), model_days[m].end());
  }
  std::vector<TimeMicros> times;
  for (int64_t day : all_days) times.push_back(day * kMicrosPerDay);
  const bool score_separately = times.empty() || times.back() < as_of;
  if (score_separately) times.push_back(as_of);
  std::vector<int64_t> day_list(all_days.begin(), all_days.end());
  for (size_t m = 0; m < kNumPropensityModels; ++m) {
    for (int64_t day : model_days[m]) {
      data.model_cutoffs[m].push_back(static_cast<size_t>(
          std::lower_bound(day_list.begin(), day_list.end(), day) - day_list.begin()));
    }
  }

  const std::vector<int> horizons = DistinctHorizons(settings);
  bool names_done = false;
  size_t d = 0;
  std::vector<double> prior;  // scratch: a customer's unit prices before a cut-off
  SHOAL_RETURN_IF_ERROR(engine.ReplayAsOf(times, [&](const AsOfSnapshot& snap) -> Status {
    if (!names_done) {
      for (const TraitInfo& t : snap.table.matrix.traits) data.feature_names.push_back(t.name);
      data.feature_names.emplace_back("bgnbd_p_alive");
      for (int h : horizons) {
        data.feature_names.push_back(HorizonFeature("bgnbd_expected_orders_", h));
        data.feature_names.push_back(HorizonFeature("bgnbd_p_order_", h));
      }
      d = data.feature_names.size();
      names_done = true;
    }
    const bool scoring = snap.as_of == as_of && score_separately;
    const size_t n = snap.table.profiles.size();
    std::vector<uint32_t> selected;
    selected.reserve(n);
    // Training rows: a deterministic sample (by current profile and cut-off) when there are many.
    const double keep =
        !scoring && settings.max_rows_per_cutoff > 0 && n > settings.max_rows_per_cutoff
            ? static_cast<double>(settings.max_rows_per_cutoff) / static_cast<double>(n)
            : 1.0;
    for (uint32_t row = 0; row < n; ++row) {
      if (snap.current_profiles[row] == kNoProfile) continue;
      if (keep < 1.0) {
        uint64_t h = Mix64(ctx.seed ^ Mix64(snap.current_profiles[row] ^
                                            (static_cast<uint64_t>(snap.as_of) << 20)));
        if (static_cast<double>(h >> 11) * 0x1.0p-53 >= keep) continue;
      }
      selected.push_back(row);
    }
    PropensityCutoffRows rows;
    rows.cutoff = snap.as_of;
    for (uint32_t row : selected) {
      rows.current_profiles.push_back(snap.current_profiles[row]);
      rows.customer_ids.push_back(snap.table.customer_ids[row]);
    }
    FillFeatures(snap, selected, horizons, d, unit_days, ctx, &rows.features);
    if (scoring) {
      data.scoring = std::move(rows);
      return Status::OK();
    }
    const size_t cutoff_idx = data.cutoffs.size();
    const TimeMicros c = snap.as_of;
    for (size_t m = 0; m < kNumPropensityModels; ++m) {
      const auto& mine = data.model_cutoffs[m];
      if (std::find(mine.begin(), mine.end(), cutoff_idx) == mine.end()) continue;
      const TimeMicros end = c + static_cast<TimeMicros>(settings.horizon_days[m]) * kMicrosPerDay;
      std::vector<float>& labels = rows.labels[m];
      labels.assign(selected.size(), kNoLabel);
      for (size_t r = 0; r < selected.size(); ++r) {
        const uint32_t p = rows.current_profiles[r];
        const bool customer = !snap.states[selected[r]]->orders().empty();
        auto orders = records.OrdersOf(p);
        auto after = std::lower_bound(orders.begin(), orders.end(), c,
                                      [](const auto& o, TimeMicros t) { return o.t < t; });
        const bool ordered = after != orders.end() && after->t < end;
        switch (static_cast<PropensityModelKind>(m)) {
          case PropensityModelKind::kPurchase:
            if (customer) labels[r] = ordered ? 1.f : 0.f;
            break;
          case PropensityModelKind::kChurn:
            if (customer) labels[r] = ordered ? 0.f : 1.f;
            break;
          case PropensityModelKind::kUpgrade: {
            // The first order in the window with priced lines, against the prices before c.
            auto next = after;
            while (next != orders.end() && next->t < end && std::isnan(next->mean_unit_price))
              ++next;
            if (next == orders.end() || next->t >= end) break;
            prior.clear();
            for (const auto& price : records.PricesOf(p)) {
              if (price.t >= c) break;
              prior.push_back(price.unit_price);
            }
            if (prior.empty()) break;
            labels[r] =
                next->mean_unit_price > QuantileOf(prior, settings.upgrade_quantile) ? 1.f : 0.f;
            break;
          }
          case PropensityModelKind::kReferral: {
            auto refs = records.ReferralsOf(p);
            auto it = std::lower_bound(refs.begin(), refs.end(), c);
            labels[r] = it != refs.end() && *it < end ? 1.f : 0.f;
            break;
          }
        }
      }
    }
    data.cutoffs.push_back(std::move(rows));
    return Status::OK();
  }));
  if (!score_separately) {
    return Status::Internal("propensity: the build time is not after every cut-off");
  }
  // Scoring populations: purchase and churn need an order before the build time (BG/NBD's
  // customers), upgrade a priced line; referral scores everyone. Kept as 0/1 in labels.
  PropensityCutoffRows& s = data.scoring;
  for (size_t m = 0; m < kNumPropensityModels; ++m) s.labels[m].assign(s.rows(), 0.f);
  for (size_t r = 0; r < s.rows(); ++r) {
    const uint32_t p = s.current_profiles[r];
    auto orders = records.OrdersOf(p);
    const bool customer = !orders.empty();
    s.labels[0][r] = s.labels[1][r] = customer ? 1.f : 0.f;
    s.labels[2][r] = records.PricesOf(p).empty() ? 0.f : 1.f;
    s.labels[3][r] = 1.f;
  }
  return data;
}

namespace {

struct ModelOutcome {
  std::string json, report;
  std::vector<double> scores;  // per scoring row, NaN outside the population
  std::string model_bytes;
};

// Rows (cut-off idx, row) with a label for the model, stacked into a matrix.
struct Stacked {
  std::vector<float> features, labels;
  std::vector<uint32_t> cutoff_of_row, row_of_row;
  size_t rows = 0;
};

Stacked Stack(const PropensityData& data, size_t m, std::span<const size_t> cutoff_indices,
              size_t d) {
  Stacked s;
  for (size_t ci : cutoff_indices) {
    const PropensityCutoffRows& c = data.cutoffs[ci];
    for (size_t r = 0; r < c.rows(); ++r) {
      float y = c.labels[m][r];
      if (std::isnan(y)) continue;
      s.features.insert(s.features.end(), c.features.begin() + static_cast<ptrdiff_t>(r * d),
                        c.features.begin() + static_cast<ptrdiff_t>((r + 1) * d));
      s.labels.push_back(y);
      s.cutoff_of_row.push_back(static_cast<uint32_t>(ci));
      s.row_of_row.push_back(static_cast<uint32_t>(r));
      ++s.rows;
    }
  }
  return s;
}

size_t Positives(const std::vector<float>& labels) {
  size_t n = 0;
  for (float y : labels) n += y > 0.5f;
  return n;
}

int FeatureIndex(const std::vector<std::string>& names, const std::string& name) {
  auto it = std::find(names.begin(), names.end(), name);
  return it == names.end() ? -1 : static_cast<int>(it - names.begin());
}

// Log-odds of BG/NBD's P(at least one order in the window) per row (of 1 - it for churn): what
// the purchase and churn trees start from. Rows without a BG/NBD score start from `fallback`.
std::vector<float> BgNbdMargins(std::span<const float> features, size_t rows, size_t d,
                                int p_order_col, bool churn, double fallback) {
  std::vector<float> margin(rows);
  for (size_t r = 0; r < rows; ++r) {
    double p = features[r * d + static_cast<size_t>(p_order_col)];
    if (!std::isfinite(p)) {
      margin[r] = static_cast<float>(fallback);
      continue;
    }
    if (churn) p = 1.0 - p;
    p = std::clamp(p, 1e-6, 1.0 - 1e-6);
    margin[r] = static_cast<float>(std::log(p / (1.0 - p)));
  }
  return margin;
}

double LogOdds(size_t positives, size_t rows) {
  double p = (static_cast<double>(positives) + 0.5) / (static_cast<double>(rows) + 1.0);
  return std::log(p / (1.0 - p));
}

// XGBoost's OpenMP threads spin while they wait; on a loaded 2-core machine a small training set
// then takes 30x longer with 2 threads than with 1 (measured on CDNOW: 43 s against 1.3 s). Below
// this many matrix cells one thread is used.
constexpr size_t kMinCellsForThreads = 4'000'000;
Context XgbContext(const Context& ctx, size_t rows, size_t d) {
  Context c = ctx;
  if (rows * d < kMinCellsForThreads) c.threads = 1;
  return c;
}

void AppendEvaluation(std::string* js, std::string* report, const char* label,
                      const BinaryEvaluation& e) {
  *js += '"';
  *js += label;
  *js += "\":" + BinaryEvaluationToJson(e);
  char buf[200];
  std::snprintf(
      buf, sizeof buf, "    %-9s AUC %.4f  log-loss %s  lift@%g%% %.2f  (%zu rows, %zu positive)\n",
      label, e.auc,
      std::isnan(e.log_loss) ? "  -   " : (std::to_string(e.log_loss).substr(0, 6)).c_str(),
      e.top_fraction * 100, e.lift_at_top, e.rows, e.positives);
  *report += buf;
}

Result<ModelOutcome> FitOne(const PropensityData& data, size_t m,
                            const PropensitySettings& settings, const Context& ctx) {
  ModelOutcome out;
  const size_t d = data.feature_names.size();
  const int horizon = settings.horizon_days[m];
  out.scores.assign(data.scoring.rows(), std::nan(""));
  out.json = "{\"horizon_days\":" + std::to_string(horizon);
  out.report =
      std::string("  ") + kModelNames[m] + " (" + std::to_string(horizon) + "-day window): ";
  auto skip = [&](const std::string& why) {
    out.json += ",\"status\":\"skipped\",\"message\":";
    AppendJsonString(&out.json, why);
    out.json += "}";
    out.report += "skipped: " + why + "\n";
    return out;
  };
  if (!data.skipped[m].empty()) return skip(data.skipped[m]);
  const std::vector<size_t>& cutoffs = data.model_cutoffs[m];
  const size_t test_idx = cutoffs.back();
  const TimeMicros test_cutoff = data.cutoffs[test_idx].cutoff;
  // Training cut-offs for the evaluation: windows that end by the held-out cut-off, so no
  // training label saw the test period.
  std::vector<size_t> train_idx;
  for (size_t ci : cutoffs) {
    if (data.cutoffs[ci].cutoff + static_cast<TimeMicros>(horizon) * kMicrosPerDay <= test_cutoff)
      train_idx.push_back(ci);
  }
  out.json += ",\"cutoffs\":[";
  for (size_t i = 0; i < cutoffs.size(); ++i) {
    if (i) out.json += ',';
    AppendJsonString(&out.json, FormatDate(data.cutoffs[cutoffs[i]].cutoff));
  }
  out.json += "],\"holdout_cutoff\":";
  AppendJsonString(&out.json, FormatDate(test_cutoff));
  if (train_idx.empty())
    return skip("no cut-off's window ends by the held-out cut-off " + FormatDate(test_cutoff) +
                " (add cut-offs)");
  Stacked train = Stack(data, m, train_idx, d);
  Stacked test = Stack(data, m, std::span<const size_t>(&test_idx, 1), d);
  const size_t train_pos = Positives(train.labels), test_pos = Positives(test.labels);
  if (train.rows < kMinTrainingRows || train_pos < kMinClassRows ||
      train.rows - train_pos < kMinClassRows || test_pos < kMinClassRows ||
      test.rows - test_pos < kMinClassRows) {
    return skip("too few labelled rows: " + std::to_string(train.rows) + " training (" +
                std::to_string(train_pos) + " positive), " + std::to_string(test.rows) +
                " held out (" + std::to_string(test_pos) + " positive)");
  }
  // Held-out evaluation by time. Purchase and churn trees boost from BG/NBD's log-odds, so they
  // start where BG/NBD is and add only what the traits explain beyond it.
  const PropensityOptions& xo = settings.xgboost;
  const int p_order_col =
      FeatureIndex(data.feature_names, HorizonFeature("bgnbd_p_order_", horizon));
  const int recency_col = FeatureIndex(data.feature_names, "recency_days");
  const bool has_bgnbd = (m == 0 || m == 1) && p_order_col >= 0;
  const double fallback = LogOdds(train_pos, train.rows);
  std::vector<float> train_margin, test_margin;
  if (has_bgnbd) {
    train_margin = BgNbdMargins(train.features, train.rows, d, p_order_col, m == 1, fallback);
    test_margin = BgNbdMargins(test.features, test.rows, d, p_order_col, m == 1, fallback);
  }
  SHOAL_ASSIGN_OR_RETURN(
      PropensityModel eval_model,
      TrainPropensity(FeatureMatrixView(std::span<const float>(train.features), train.rows, d),
                      train.labels, data.feature_names, xo, XgbContext(ctx, train.rows, d), nullptr,
                      train_margin));
  const FeatureMatrixView test_view(std::span<const float>(test.features), test.rows, d);
  SHOAL_ASSIGN_OR_RETURN(std::vector<float> test_scores,
                         has_bgnbd ? eval_model.PredictWithBaseMargin(test_view, test_margin, ctx)
                                   : eval_model.Predict(test_view, ctx));
  SHOAL_ASSIGN_OR_RETURN(BinaryEvaluation model_eval, EvaluateBinary(test_scores, test.labels));
  // Baselines on the same rows: BG/NBD's P(at least one order in the window) (purchase; 1 - it
  // for churn) and recency (days since the last order; fewer = more likely to act, except churn).
  std::optional<BinaryEvaluation> bgnbd_eval, recency_eval;
  std::vector<double> baseline(test.rows);
  if (has_bgnbd) {
    bool complete = true;
    for (size_t r = 0; r < test.rows; ++r) {
      double p = test.features[r * d + static_cast<size_t>(p_order_col)];
      complete &= std::isfinite(p);
      baseline[r] = m == 1 ? 1.0 - p : p;
    }
    if (complete) {
      SHOAL_ASSIGN_OR_RETURN(BinaryEvaluation e, EvaluateBinary(baseline, test.labels));
      bgnbd_eval = e;
    }
  }
  if (recency_col >= 0) {
    double longest = 0;
    for (size_t r = 0; r < test.rows; ++r) {
      double v = test.features[r * d + static_cast<size_t>(recency_col)];
      if (std::isfinite(v)) longest = std::max(longest, v);
    }
    for (size_t r = 0; r < test.rows; ++r) {
      double v = test.features[r * d + static_cast<size_t>(recency_col)];
      if (!std::isfinite(v)) v = longest + 1;  // never ordered: as long ago as anyone, and more
      baseline[r] = m == 1 ? v : -v;
    }
    BinaryEvaluationOptions eo;
    eo.scores_are_probabilities = false;
    SHOAL_ASSIGN_OR_RETURN(BinaryEvaluation e, EvaluateBinary(baseline, test.labels, eo));
    recency_eval = e;
  }
  // The exported score: the model, unless BG/NBD ranks the held-out customers better (AUC).
  const bool use_bgnbd = bgnbd_eval && bgnbd_eval->auc > model_eval.auc;
  out.json += ",\"status\":\"ok\",\"evaluation_rounds\":" + std::to_string(eval_model.rounds()) +
              ",\"training_rows\":" + std::to_string(train.rows) +
              ",\"training_positives\":" + std::to_string(train_pos) + ",\"evaluation\":{";
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "held-out cut-off %s, trained on %zu rows of %zu earlier cut-offs\n",
                FormatDate(test_cutoff).c_str(), train.rows, train_idx.size());
  out.report += buf;
  AppendEvaluation(&out.json, &out.report, "model", model_eval);
  if (bgnbd_eval) {
    out.json += ',';
    AppendEvaluation(&out.json, &out.report, "bgnbd", *bgnbd_eval);
  }
  if (recency_eval) {
    out.json += ',';
    AppendEvaluation(&out.json, &out.report, "recency", *recency_eval);
  }
  out.json += "},\"scorer\":";
  AppendJsonString(&out.json, use_bgnbd ? "bgnbd" : "model");
  if (use_bgnbd) {
    out.report +=
        "    BG/NBD ranks the held-out rows better than the model: the exported score is "
        "BG/NBD's\n";
  }
  // Final model: every cut-off of the model (the held-out one included), as much recent data as
  // there is.
  Stacked all = Stack(data, m, cutoffs, d);
  const double all_fallback = LogOdds(Positives(all.labels), all.rows);
  std::vector<float> all_margin;
  if (has_bgnbd)
    all_margin = BgNbdMargins(all.features, all.rows, d, p_order_col, m == 1, all_fallback);
  PropensityTrainingSummary summary;
  // The refit on every cut-off trains on all its rows for the number of rounds early stopping
  // chose in the evaluation (no second validation split: that data is the most recent).
  PropensityOptions final_options = xo;
  final_options.max_rounds = std::max(1, eval_model.rounds());
  final_options.validation_fraction = 0;
  final_options.early_stopping_rounds = 0;
  SHOAL_ASSIGN_OR_RETURN(
      PropensityModel final_model,
      TrainPropensity(FeatureMatrixView(std::span<const float>(all.features), all.rows, d),
                      all.labels, data.feature_names, final_options, XgbContext(ctx, all.rows, d),
                      &summary, all_margin));
  SHOAL_ASSIGN_OR_RETURN(out.model_bytes, final_model.Serialize());
  SHOAL_ASSIGN_OR_RETURN(std::vector<FeatureImportanceEntry> importance,
                         final_model.FeatureImportance());
  std::stable_sort(importance.begin(), importance.end(),
                   [](const auto& a, const auto& b) { return a.total_gain > b.total_gain; });
  out.json += ",\"final_rows\":" + std::to_string(all.rows) +
              ",\"rounds\":" + std::to_string(final_model.rounds()) + ",\"feature_importance\":[";
  out.report += "    top features (total gain):";
  for (size_t i = 0; i < importance.size() && i < 10; ++i) {
    if (importance[i].split_count == 0) break;
    if (i) out.json += ',';
    out.json += "{\"feature\":";
    AppendJsonString(&out.json, importance[i].feature_name);
    out.json += ",\"total_gain\":";
    AppendJsonNumber(&out.json, importance[i].total_gain);
    out.json += ",\"splits\":" + std::to_string(importance[i].split_count) + "}";
    if (i < 5) out.report += " " + importance[i].feature_name;
  }
  out.json += "]}";
  out.report += "\n";
  // Scores as of the build time for the model's population.
  const PropensityCutoffRows& s = data.scoring;
  const FeatureMatrixView score_view(std::span<const float>(s.features), s.rows(), d);
  std::vector<float> score_margin;
  if (has_bgnbd)
    score_margin = BgNbdMargins(s.features, s.rows(), d, p_order_col, m == 1, all_fallback);
  SHOAL_ASSIGN_OR_RETURN(std::vector<float> p, has_bgnbd ? final_model.PredictWithBaseMargin(
                                                               score_view, score_margin, ctx)
                                                         : final_model.Predict(score_view, ctx));
  for (size_t r = 0; r < s.rows(); ++r) {
    if (!(s.labels[m][r] > 0.5f)) continue;
    if (use_bgnbd) {
      double q = s.features[r * d + static_cast<size_t>(p_order_col)];
      out.scores[r] = m == 1 ? 1.0 - q : q;
    } else {
      out.scores[r] = p[r];
    }
  }
  return out;
}

}  // namespace

Result<PropensityStageResult> RunPropensityStage(const Engine& engine, TimeMicros as_of,
                                                 const std::vector<std::string>& build_customer_ids,
                                                 const std::string& time_unit, bool quiet) {
  auto t0 = std::chrono::steady_clock::now();
  SHOAL_ASSIGN_OR_RETURN(PropensitySettings settings,
                         ParsePropensitySettings(*engine.config().table));
  PropensityStageResult result;
  for (auto& s : result.scores) s.assign(build_customer_ids.size(), std::nan(""));
  if (!settings.enabled) {
    result.json = "{\"enabled\":false}";
    result.report = "propensity models: disabled ([predictions] enabled = false)\n";
    return result;
  }
  const double unit_days = time_unit == "day" ? 1.0 : 7.0;
  SHOAL_ASSIGN_OR_RETURN(PropensityData data,
                         BuildPropensityData(engine, as_of, settings, unit_days));
  const double data_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Build rows -> scoring rows, through the current profile of each build row's customer id.
  std::vector<uint32_t> scoring_row(engine.identity().num_slots(), UINT32_MAX);
  for (size_t r = 0; r < data.scoring.rows(); ++r)
    scoring_row[data.scoring.current_profiles[r]] = static_cast<uint32_t>(r);
  std::vector<uint32_t> row_map(build_customer_ids.size(), UINT32_MAX);
  for (size_t row = 0; row < build_customer_ids.size(); ++row) {
    uint32_t p = engine.FindProfile(build_customer_ids[row]);
    if (p < scoring_row.size()) row_map[row] = scoring_row[p];
  }
  result.json = "{\"cutoff_spacing_days\":" + std::to_string(settings.cutoff_spacing_days) +
                ",\"cutoffs_per_model\":" + std::to_string(settings.cutoffs) +
                ",\"features\":" + std::to_string(data.feature_names.size()) +
                ",\"referral_events\":" + std::to_string(data.referral_events) + ",\"models\":{";
  result.report = "propensity models (held-out evaluation by time; baselines on the same rows):\n";
  for (size_t m = 0; m < kNumPropensityModels; ++m) {
    auto t_model = std::chrono::steady_clock::now();
    SHOAL_ASSIGN_OR_RETURN(ModelOutcome outcome, FitOne(data, m, settings, engine.context()));
    if (!quiet) {
      std::fprintf(
          stderr, "build: propensity %s (%.2f s)\n", kModelNames[m],
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_model).count());
    }
    if (m) result.json += ',';
    AppendJsonString(&result.json, kModelNames[m]);
    result.json += ':' + outcome.json;
    result.report += outcome.report;
    const bool fitted = !outcome.model_bytes.empty();
    result.stored_models.emplace_back(std::string("build/propensity/") + kModelNames[m],
                                      std::move(outcome.model_bytes));
    if (fitted) {
      for (size_t row = 0; row < row_map.size(); ++row) {
        if (row_map[row] != UINT32_MAX) result.scores[m][row] = outcome.scores[row_map[row]];
      }
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char buf[128];
  std::snprintf(buf, sizeof buf, "},\"data_seconds\":%.3f,\"seconds\":%.3f}", data_seconds,
                seconds);
  result.json += buf;
  if (!quiet)
    std::fprintf(stderr, "build: propensity data %.2f s, models %.2f s\n", data_seconds,
                 seconds - data_seconds);
  return result;
}

}  // namespace shoal
