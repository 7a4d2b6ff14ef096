#include "server/build_source.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>

#include "common/json_writer.h"
#include "common/time.h"
#include "engine/build.h"
#include "engine/engine.h"

namespace shoal {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Extra rule columns after the traits, in the build's order (engine/build.cc RuleTable).
constexpr const char* kStringColumns[] = {"segment", "rfm_segment"};
constexpr const char* kNumberColumns[] = {
    "segment_id",           "rfm_r", "rfm_f", "rfm_m", "p_alive", "expected_orders_90d",
    "expected_order_value", "clv", "p_purchase_30d", "p_churn_90d", "p_upgrade", "p_referral"};
constexpr size_t kNumExtra = 14;
constexpr size_t kFirstScoreColumn = 6;        // p_alive, offset from the first extra column
constexpr size_t kFirstPropensityColumn = 10;  // p_purchase_30d: the build's values, fixed

bool IsDayWindowedTrait(std::string_view name) {
  static const char* const kWindowed[] = {"orders_7d",
                                          "orders_30d",
                                          "orders_90d",
                                          "orders_365d",
                                          "spend_7d",
                                          "spend_30d",
                                          "spend_90d",
                                          "spend_365d",
                                          "views_30d",
                                          "sessions_30d",
                                          "trend_orders",
                                          "trend_spend",
                                          "new_categories_30d",
                                          "cart_abandonment_count",
                                          "cart_abandonment_rate"};
  for (const char* w : kWindowed) {
    if (name == w) return true;
  }
  return false;
}

// The moment a clock trait (t - origin) / day first exceeds `days`: the first whole microsecond
// after the crossing flips strict and inclusive comparisons alike.
std::optional<TimeMicros> Crossing(TimeMicros origin, double days) {
  double crossing = static_cast<double>(origin) + days * static_cast<double>(kMicrosPerDay);
  if (!(crossing < 9.0e18) || !(crossing > -9.0e18)) return std::nullopt;
  return static_cast<TimeMicros>(std::floor(crossing)) + 1;
}

}  // namespace

BuildMembershipSource::Clock BuildMembershipSource::ClockOf(std::string_view trait) {
  if (trait == "recency_days") return Clock::kLastOrder;
  if (trait == "first_order_days_ago") return Clock::kFirstOrder;
  if (trait == "days_since_last_event") return Clock::kLastEvent;
  if (trait == "tenure_days") return Clock::kFirstEvent;
  return Clock::kNone;
}

std::optional<TimeMicros> BuildMembershipSource::Origin(const CustomerState& s, Clock clock) {
  switch (clock) {
    case Clock::kNone:
      return std::nullopt;
    case Clock::kLastOrder:
      if (s.orders().empty()) return std::nullopt;
      return s.orders().back().timestamp;
    case Clock::kFirstOrder:
      if (s.orders().empty()) return std::nullopt;
      return s.orders().front().timestamp;
    case Clock::kLastEvent:
      if (s.Empty()) return std::nullopt;
      return s.LastEventTime();
    case Clock::kFirstEvent:
      if (s.Empty()) return std::nullopt;
      return s.FirstEventTime();
  }
  return std::nullopt;
}

Result<std::unique_ptr<BuildMembershipSource>> BuildMembershipSource::Load(const Engine& engine) {
  auto source = std::unique_ptr<BuildMembershipSource>(new BuildMembershipSource());
  BuildMembershipSource& s = *source;
  SHOAL_ASSIGN_OR_RETURN(s.model_, LoadLiveModel(engine));
  SHOAL_ASSIGN_OR_RETURN(BuildResult build, LoadBuild(engine));
  for (size_t row = 0; row < build.profiles.size(); ++row) {
    const uint32_t p = build.profiles[row];
    if (p >= s.built_segment_.size()) {
      s.built_segment_.resize(p + 1, -1);
      s.recommendations_.resize(p + 1);
      s.propensities_.resize(p + 1, {kNaN, kNaN, kNaN, kNaN});
    }
    s.built_segment_[p] = build.segment_id[row];
    if (row < build.p_purchase_30d.size()) {
      s.propensities_[p] = {build.p_purchase_30d[row], build.p_churn_90d[row], build.p_upgrade[row],
                            build.p_referral[row]};
    }
    s.recommendations_[p] = std::move(build.recommendations[row]);
  }
  const TraitCatalogue& cat = engine.catalogue();
  s.num_traits_ = cat.traits().size();
  auto is_windowed = [&](size_t trait_idx) {
    const std::string& name = cat.traits()[trait_idx].name;
    if (trait_idx >= BuiltinTraits().size()) {
      const UserTraitSpec& spec = cat.config().user_traits[trait_idx - BuiltinTraits().size()];
      return spec.window_days > 0;
    }
    return IsDayWindowedTrait(name);
  };
  auto is_user_time_since = [&](size_t trait_idx) {
    if (trait_idx < BuiltinTraits().size()) return false;
    return cat.config().user_traits[trait_idx - BuiltinTraits().size()].aggregate ==
           TraitAggregate::kTimeSince;
  };
  for (size_t f = 0; f < s.model_.features.size(); ++f) {
    int idx = cat.Find(s.model_.features[f]);
    const std::string& support = s.model_.scaler.support[f];
    s.support_traits_.push_back(support.empty() ? -1 : cat.Find(support));
    s.feature_traits_.push_back(idx);
    s.feature_clock_.push_back(ClockOf(s.model_.features[f]));
    if (idx >= 0 && is_windowed(static_cast<size_t>(idx))) s.midnight_ = true;
    if (idx >= 0 && is_user_time_since(static_cast<size_t>(idx))) s.fallback_ = true;
  }
  static std::atomic<uint64_t> next_id{0};
  s.id_ = ++next_id;
  s.recency_trait_ = cat.Find("recency_days");
  s.frequency_trait_ = cat.Find("frequency");
  s.monetary_trait_ = cat.Find("monetary_total");
  if (s.recency_trait_ < 0 || s.frequency_trait_ < 0 || s.monetary_trait_ < 0) {
    return Status::Internal("the catalogue lacks the RFM traits");
  }

  // The build's rule columns: every trait, segment, RFM, scores.
  for (const TraitInfo& t : cat.traits()) s.schema_.push_back({t.name, segment::RuleType::kNumber});
  for (const char* name : kStringColumns) s.schema_.push_back({name, segment::RuleType::kString});
  for (const char* name : kNumberColumns) s.schema_.push_back({name, segment::RuleType::kNumber});
  s.segment_dictionary_ = s.model_.segment_names;
  SHOAL_ASSIGN_OR_RETURN(std::vector<segment::AudienceSpec> specs,
                         segment::ParseAudiences(engine.config().text));
  SHOAL_ASSIGN_OR_RETURN(s.audiences_, segment::CompileAudiences(specs, s.schema_));
  for (const segment::Audience& audience : s.audiences_) {
    s.audience_names_.push_back(audience.name);
    for (const segment::RuleInstruction& ins : audience.rule.program()) {
      for (int32_t column : {ins.column, ins.column2}) {
        if (column < 0) continue;
        const auto col = static_cast<size_t>(column);
        if (col >= s.num_traits_) {
          if (col >= s.num_traits_ + kFirstScoreColumn && col < s.num_traits_ + kFirstPropensityColumn) {
            s.audiences_read_scores_ = true;
            s.midnight_ = true;  // the calibration period ends the day before now
          }
          continue;  // segment and RFM columns change when their own candidates say
        }
        if (is_windowed(col)) s.midnight_ = true;
        if (is_user_time_since(col)) s.fallback_ = true;
        const Clock clock = ClockOf(cat.traits()[col].name);
        if (clock == Clock::kNone) continue;
        const bool comparison = ins.operands == segment::RuleOperands::kColumnConst &&
                                ins.op >= segment::RuleOp::kLt && ins.op <= segment::RuleOp::kNe;
        if (comparison) {
          s.clock_comparisons_.push_back({clock, ins.value});
        } else {
          s.fallback_ = true;  // arithmetic on a clock trait: not analysed
        }
      }
    }
  }
  std::vector<int> needed = s.feature_traits_;
  needed.insert(needed.end(), s.support_traits_.begin(), s.support_traits_.end());
  needed.insert(needed.end(), {s.recency_trait_, s.frequency_trait_, s.monetary_trait_});
  for (const segment::Audience& audience : s.audiences_) {
    for (int32_t column : audience.rule.columns_used()) {
      if (static_cast<size_t>(column) < s.num_traits_) needed.push_back(column);
    }
  }
  s.needed_traits_ = cat.Select(needed);
  for (const std::string& name : s.audience_names_) s.audience_memberships_.push_back("audience:" + name);
  for (const std::string& name : s.model_.rfm_names) s.rfm_memberships_.push_back("rfm:" + name);
  for (const std::string& name : s.model_.segment_names) s.segment_memberships_.push_back("segment:" + name);
  return source;
}

struct BuildMembershipSource::Scratch {
  uint64_t owner = 0;  // the id_ of the source the bindings are for; 0 = none
  std::vector<double> values;
  int32_t segment_code = -1, rfm_code = -1;
  segment::RuleData data;
  std::vector<std::optional<segment::BoundRule>> bound;  // per audience; nullopt: no match
  Evaluation evaluation;
};

BuildMembershipSource::Scratch& BuildMembershipSource::ThreadScratch() const {
  thread_local Scratch scratch;
  if (scratch.owner == id_) return scratch;
  scratch.owner = id_;
  // Sized once: the rule data below points into it.
  scratch.values.assign(num_traits_ + kNumExtra - 2, kNaN);
  segment::RuleData& data = scratch.data;
  data.rows = 1;
  data.columns.clear();
  data.columns.reserve(schema_.size());
  const double* values = scratch.values.data();
  for (size_t t = 0; t < num_traits_; ++t) data.columns.push_back({{values + t, 1}, {}, {}});
  data.columns.push_back({{}, {&scratch.segment_code, 1}, segment_dictionary_});
  data.columns.push_back({{}, {&scratch.rfm_code, 1}, model_.rfm_names});
  for (size_t e = 0; e < kNumExtra - 2; ++e) data.columns.push_back({{values + num_traits_ + e, 1}, {}, {}});
  scratch.bound.clear();
  for (const segment::Audience& audience : audiences_) {
    auto bound = segment::BoundRule::Bind(audience.rule, data);
    if (bound.ok()) scratch.bound.emplace_back(std::move(*bound));
    else scratch.bound.emplace_back(std::nullopt);
  }
  return scratch;
}

void BuildMembershipSource::ComputeTraits(const Engine& engine, uint32_t profile, TimeMicros now,
                                          Scratch& scratch) const {
  std::fill(scratch.values.begin(), scratch.values.end(), kNaN);
  engine.catalogue().ComputeSelected(engine.state(profile), engine.population(), now,
                                     needed_traits_,
                                     std::span<double>(scratch.values.data(), num_traits_));
}

BuildMembershipSource::Evaluation BuildMembershipSource::Evaluate(const Engine& engine,
                                                                  uint32_t profile, TimeMicros now,
                                                                  bool with_btyd) const {
  Scratch& scratch = ThreadScratch();
  ComputeTraits(engine, profile, now, scratch);
  EvaluateTraits(engine, profile, now, with_btyd, scratch, &scratch.evaluation);
  return scratch.evaluation;
}

void BuildMembershipSource::EvaluateTraits(const Engine& engine, uint32_t profile, TimeMicros now,
                                           bool with_btyd, Scratch& scratch, Evaluation* out) const {
  std::vector<double>& values = scratch.values;
  const std::span<const double> traits(values.data(), num_traits_);
  out->audiences.clear();
  out->scores = ScoreLive(model_, engine, profile, traits, feature_traits_, support_traits_,
                          {recency_trait_, frequency_trait_, monetary_trait_}, BuiltSegment(profile),
                          now, /*with_btyd=*/false);
  if (with_btyd || audiences_read_scores_) CachedBtyd(engine, profile, now, &out->scores);
  if (audiences_.empty()) return;
  const LiveScores& sc = out->scores;
  double* extra = values.data() + num_traits_;
  extra[0] = sc.cluster >= 0
                 ? static_cast<double>(model_.segment_ids[static_cast<size_t>(sc.cluster)])
                 : -1.0;
  extra[1] = sc.rfm_r;
  extra[2] = sc.rfm_f;
  extra[3] = sc.rfm_m;
  extra[4] = sc.p_alive;
  extra[5] = sc.expected_orders_90d;
  extra[6] = sc.expected_order_value;
  extra[7] = sc.clv;
  for (size_t m = 0; m < 4; ++m) {
    extra[8 + m] = profile < propensities_.size() ? propensities_[profile][m] : kNaN;
  }
  scratch.segment_code = sc.cluster;
  scratch.rfm_code = sc.rfm_segment;
  for (size_t a = 0; a < audiences_.size(); ++a) {
    if (scratch.bound[a] && scratch.bound[a]->Matches(0)) out->audiences.push_back(static_cast<uint32_t>(a));
  }
}

void BuildMembershipSource::CachedBtyd(const Engine& engine, uint32_t profile, TimeMicros now,
                                       LiveScores* out) const {
  const CustomerState& state = engine.state(profile);
  if (!model_.have_bgnbd || state.orders().empty()) {
    ScoreLiveBtyd(model_, state, now, out);
    return;
  }
  // What the scores read: the orders (count, first and last time, total) and the day of now.
  uint64_t key = 0x9e3779b97f4a7c15ULL;
  auto mix = [&key](uint64_t v) { key = (key ^ v) * 0x100000001b3ULL + (key >> 29); };
  mix(state.orders().size());
  mix(static_cast<uint64_t>(state.orders().front().timestamp));
  mix(static_cast<uint64_t>(state.orders().back().timestamp));
  mix(static_cast<uint64_t>(state.OrdersTotalFixed()));
  mix(static_cast<uint64_t>(DayOf(now)));
  CacheStripe& stripe = btyd_cache_[profile % btyd_cache_.size()];
  {
    std::lock_guard lock(stripe.mu);
    auto it = stripe.scores.find(profile);
    if (it != stripe.scores.end() && it->second.key == key) {
      out->p_alive = it->second.p_alive;
      out->expected_orders_90d = it->second.expected_orders_90d;
      out->expected_order_value = it->second.expected_order_value;
      out->clv = it->second.clv;
      return;
    }
  }
  ScoreLiveBtyd(model_, state, now, out);
  std::lock_guard lock(stripe.mu);
  stripe.scores[profile] = {key, out->p_alive, out->expected_orders_90d, out->expected_order_value,
                            out->clv};
}

void BuildMembershipSource::NamesInto(const Evaluation& e, std::vector<std::string>* out) const {
  size_t n = 0;
  auto put = [&](const std::string& membership) {
    if (n < out->size()) (*out)[n].assign(membership);
    else out->push_back(membership);
    ++n;
  };
  for (uint32_t a : e.audiences) put(audience_memberships_[a]);
  put(rfm_memberships_[static_cast<size_t>(e.scores.rfm_segment)]);
  if (e.scores.cluster >= 0) put(segment_memberships_[static_cast<size_t>(e.scores.cluster)]);
  out->resize(n);
  std::sort(out->begin(), out->end());
  out->erase(std::unique(out->begin(), out->end()), out->end());
}

std::vector<std::string> BuildMembershipSource::Memberships(const Engine& engine, uint32_t profile,
                                                            TimeMicros now) const {
  std::vector<std::string> out;
  NamesInto(Evaluate(engine, profile, now, /*with_btyd=*/false), &out);
  return out;
}

std::optional<TimeMicros> BuildMembershipSource::MembershipsAndNextChange(
    const Engine& engine, uint32_t profile, TimeMicros now,
    std::vector<std::string>* memberships) const {
  Scratch& scratch = ThreadScratch();
  ComputeTraits(engine, profile, now, scratch);
  EvaluateTraits(engine, profile, now, /*with_btyd=*/false, scratch, &scratch.evaluation);
  NamesInto(scratch.evaluation, memberships);
  return NextChangeTraits(engine, profile, now,
                          std::span<const double>(scratch.values.data(), num_traits_));
}

std::optional<TimeMicros> BuildMembershipSource::NextChange(const Engine& engine, uint32_t profile,
                                                            TimeMicros now) const {
  Scratch& scratch = ThreadScratch();
  ComputeTraits(engine, profile, now, scratch);
  return NextChangeTraits(engine, profile, now,
                          std::span<const double>(scratch.values.data(), num_traits_));
}

std::optional<TimeMicros> BuildMembershipSource::NextChangeTraits(
    const Engine& engine, uint32_t profile, TimeMicros now, std::span<const double> values) const {
  const CustomerState& state = engine.state(profile);
  std::optional<TimeMicros> best;
  auto consider = [&](std::optional<TimeMicros> t) {
    if (t && *t > now && (!best || *t < *best)) best = t;
  };
  if (midnight_) consider((DayOf(now) + 1) * kMicrosPerDay);
  if (fallback_) consider(now + kFallbackMinutes * 60 * 1'000'000);
  for (const ClockComparison& c : clock_comparisons_) {
    if (auto origin = Origin(state, c.clock)) consider(Crossing(*origin, c.days));
  }
  // RFM: recency passing a cut lowers R by one.
  if (!state.orders().empty()) {
    const TimeMicros last_order = state.orders().back().timestamp;
    for (double cut : model_.recency_cuts) consider(Crossing(last_order, cut));
  }
  // Clusters: the point moves along the one clock feature's axis; every moment the chosen
  // centroid can change is a root of D_i = D_j (linear in that coordinate) or, for the build's
  // segment A under hysteresis, of D_A = (1 + h)^2 D_j (quadratic).
  const size_t k = model_.num_clusters();
  const size_t d = model_.features.size();
  if (k == 0) return best;
  size_t moving = d;
  TimeMicros origin = 0;
  int num_moving = 0;
  for (size_t f = 0; f < d; ++f) {
    if (feature_traits_[f] < 0) continue;
    if (auto o = Origin(state, feature_clock_[f])) {
      moving = f;
      origin = *o;
      ++num_moving;
    }
  }
  if (num_moving == 0) return best;
  if (num_moving > 1) {
    consider(now + kFallbackMinutes * 60 * 1'000'000);
    return best;
  }
  std::vector<double> rest(k, 0.0), axis(k);
  double x_now = 0;
  for (size_t f = 0; f < d; ++f) {
    const int idx = feature_traits_[f];
    const int support = support_traits_[f];
    const double x = ScaleFeature(model_, f, idx < 0 ? kNaN : values[static_cast<size_t>(idx)],
                                  support < 0 ? 0.0 : values[static_cast<size_t>(support)]);
    if (f == moving) {
      x_now = x;
      continue;
    }
    for (size_t c = 0; c < k; ++c) {
      const double diff = x - static_cast<double>(model_.centroids[c * d + f]);
      rest[c] += diff * diff;
    }
  }
  for (size_t c = 0; c < k; ++c) axis[c] = static_cast<double>(model_.centroids[c * d + moving]);
  auto at_coordinate = [&](double x) {
    if (!(x > x_now) || !std::isfinite(x)) return;
    // The value of the moving trait at which its coordinate reaches x (none beyond the scaler's
    // clipping bounds); 1 ms late at most: the coordinate is inverted in floating point.
    std::optional<double> days = model_.scaler.Invert(moving, x);
    if (!days) return;
    if (auto t = Crossing(origin, *days)) consider(*t + 1000);
  };
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = i + 1; j < k; ++j) {
      if (axis[i] == axis[j]) continue;
      at_coordinate((rest[i] - rest[j] + axis[i] * axis[i] - axis[j] * axis[j]) /
                    (2 * (axis[i] - axis[j])));
    }
  }
  const int64_t built = BuiltSegment(profile);
  size_t anchor = k;
  for (size_t c = 0; c < k; ++c) {
    if (model_.segment_ids[c] == built) anchor = c;
  }
  if (anchor < k) {
    const double m2 = (1 + model_.hysteresis) * (1 + model_.hysteresis);
    const double ra = rest[anchor], aa = axis[anchor];
    for (size_t j = 0; j < k; ++j) {
      if (j == anchor) continue;
      const double qa = 1 - m2;
      const double qb = -2 * (aa - m2 * axis[j]);
      const double qc = ra + aa * aa - m2 * (rest[j] + axis[j] * axis[j]);
      if (std::fabs(qa) < 1e-15) {
        if (qb != 0) at_coordinate(-qc / qb);
        continue;
      }
      const double disc = qb * qb - 4 * qa * qc;
      if (disc < 0) continue;
      const double root = std::sqrt(disc);
      at_coordinate((-qb - root) / (2 * qa));
      at_coordinate((-qb + root) / (2 * qa));
    }
  }
  return best;
}

std::vector<std::string> BuildMembershipSource::Definitions() const {
  std::vector<std::string> out = segment_memberships_;
  out.insert(out.end(), rfm_memberships_.begin(), rfm_memberships_.end());
  out.insert(out.end(), audience_memberships_.begin(), audience_memberships_.end());
  return out;
}

void BuildMembershipSource::AppendProfileJson(const Engine& engine, uint32_t profile,
                                              TimeMicros now, std::string* out) const {
  Evaluation e = Evaluate(engine, profile, now, /*with_btyd=*/true);
  const LiveScores& sc = e.scores;
  *out += ",\"build_as_of\":";
  AppendJsonString(out, FormatIso8601(model_.as_of));
  *out += ",\"rfm\":{\"r\":" + std::to_string(sc.rfm_r) + ",\"f\":" + std::to_string(sc.rfm_f) +
          ",\"m\":" + std::to_string(sc.rfm_m) + ",\"segment\":";
  AppendJsonString(out, model_.rfm_names[static_cast<size_t>(sc.rfm_segment)]);
  *out += "},\"segment\":";
  if (sc.cluster >= 0) {
    const auto c = static_cast<size_t>(sc.cluster);
    *out += "{\"id\":" + std::to_string(model_.segment_ids[c]) + ",\"name\":";
    AppendJsonString(out, model_.segment_names[c]);
    *out += "}";
  } else {
    *out += "null";
  }
  *out += ",\"audiences\":[";
  for (size_t i = 0; i < e.audiences.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonString(out, audience_names_[e.audiences[i]]);
  }
  *out += "],\"scores\":{\"p_alive\":";
  AppendJsonNumber(out, sc.p_alive);
  *out += ",\"expected_orders_90d\":";
  AppendJsonNumber(out, sc.expected_orders_90d);
  *out += ",\"expected_order_value\":";
  AppendJsonNumber(out, sc.expected_order_value);
  *out += ",\"clv\":";
  AppendJsonNumber(out, sc.clv);
  static constexpr const char* kPropensityKeys[] = {"p_purchase_30d", "p_churn_90d", "p_upgrade",
                                                    "p_referral"};
  for (size_t m = 0; m < 4; ++m) {
    *out += ",\"";
    *out += kPropensityKeys[m];
    *out += "\":";
    AppendJsonNumber(out, profile < propensities_.size() ? propensities_[profile][m] : kNaN);
  }
  *out += "},\"recommendations\":[";
  std::string_view recs =
      profile < recommendations_.size() ? recommendations_[profile] : std::string_view();
  bool first = true;
  while (!recs.empty()) {
    const size_t semi = recs.find(';');
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(out, recs.substr(0, semi));
    recs = semi == std::string_view::npos ? std::string_view() : recs.substr(semi + 1);
  }
  *out += "]";
}

}  // namespace shoal
