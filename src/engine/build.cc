#include "engine/build.h"
#include "engine/live_model.h"

#include <simdjson.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <toml++/toml.h>
#include <unordered_map>

#include "affinity/baskets.h"
#include "affinity/fpgrowth.h"
#include "affinity/recommend.h"
#include "affinity/rules.h"
#include "common/coding.h"
#include "common/json_writer.h"
#include "common/parallel.h"
#include "common/time.h"
#include "engine/feature_scaler.h"
#include "engine/propensity_stage.h"
#include "predict/bgnbd.h"
#include "predict/btyd_clv.h"
#include "predict/btyd_data.h"
#include "predict/btyd_fit.h"
#include "predict/gamma_gamma.h"
#include "predict/pareto_nbd.h"
#include "segment/kmeans.h"
#include "segment/naming.h"
#include "segment/profile.h"
#include "segment/rules.h"
#include "segment/stability.h"

namespace shoal {

namespace {

constexpr std::string_view kBuildProfilesKey = "build/profiles";
constexpr std::string_view kBuildSegmentsKey = "build/segments.json";
constexpr std::string_view kBuildModelsKey = "build/models.json";
constexpr std::string_view kBuildScalerKey = "build/scaler";
constexpr std::string_view kBuildPropensityReportKey = "build/propensity.txt";

void Say(bool quiet, const char* fmt, const std::string& a, double secs) {
  if (!quiet) std::fprintf(stderr, fmt, a.c_str(), secs);
}

// Settings from the workspace TOML, with defaults.
struct BuildSettings {
  int k = 0, k_min = 3, k_max = 10, n_init = 3;
  double hysteresis = 0.1;
  double shrinkage = 4;           // pseudo-observations pulling a rate toward its population mean
  double winsor = 0.01;           // each feature clipped to its [winsor, 1 - winsor] quantiles
  KMeansOptions::KCriterion k_criterion = KMeansOptions::KCriterion::kCalinskiHarabasz;
  std::vector<std::string> features;
  std::string time_unit = "week";
  double horizon_days = 90;       // expected_orders horizon
  int clv_months = 12;
  double margin = 1.0;
  double annual_discount_rate = 0.10;
  std::string affinity_level = "category";
  double min_support = 0.005, min_confidence = 0.2;
  size_t recommend_top = 3;
  size_t replenish_orders = 3;    // bought in this many orders: a replenishment item
  bool fit_pareto_nbd = true;     // also fit Pareto/NBD (reported; BG/NBD drives the scores)
};

Result<BuildSettings> ReadSettings(const toml::table& root) {
  BuildSettings s;
  auto bad = [](std::string key, std::string want) {
    return Status::InvalidArgument("workspace config: " + key + " must be " + want);
  };
  if (const toml::table* seg = root["segments"].as_table()) {
    s.k = static_cast<int>(seg->get("k") ? (*seg)["k"].value_or<int64_t>(-1) : 0);
    s.k_min = static_cast<int>((*seg)["k_min"].value_or<int64_t>(s.k_min));
    s.k_max = static_cast<int>((*seg)["k_max"].value_or<int64_t>(s.k_max));
    s.n_init = static_cast<int>((*seg)["n_init"].value_or<int64_t>(s.n_init));
    s.hysteresis = (*seg)["hysteresis"].value_or(s.hysteresis);
    s.shrinkage = (*seg)["shrinkage"].value_or(s.shrinkage);
    s.winsor = (*seg)["winsor"].value_or(s.winsor);
    std::string criterion = (*seg)["k_criterion"].value_or(std::string("calinski_harabasz"));
    if (criterion == "silhouette") {
      s.k_criterion = KMeansOptions::KCriterion::kSilhouette;
    } else if (criterion != "calinski_harabasz") {
      return bad("segments.k_criterion", "\"calinski_harabasz\" or \"silhouette\"");
    }
    if (!(s.shrinkage >= 0)) return bad("segments.shrinkage", ">= 0");
    if (!(s.winsor >= 0 && s.winsor < 0.5)) return bad("segments.winsor", "in [0, 0.5)");
    if (s.k < 0 || s.k == 1) return bad("segments.k", "0 (automatic) or an integer >= 2");
    if (s.k_min < 2 || s.k_max < s.k_min) return bad("segments.k_min/k_max", "2 <= k_min <= k_max");
    if (const toml::array* f = (*seg)["features"].as_array()) {
      for (const auto& item : *f) {
        auto v = item.value<std::string>();
        if (!v) return bad("segments.features", "an array of trait names");
        s.features.push_back(*v);
      }
    }
  }
  if (s.features.empty()) s.features = DefaultClusteringFeatures();
  if (const toml::table* m = root["models"].as_table()) {
    s.time_unit = (*m)["time_unit"].value_or(s.time_unit);
    s.horizon_days = (*m)["horizon_days"].value_or(s.horizon_days);
    s.clv_months = static_cast<int>((*m)["clv_months"].value_or<int64_t>(s.clv_months));
    s.margin = (*m)["margin"].value_or(s.margin);
    s.annual_discount_rate = (*m)["annual_discount_rate"].value_or(s.annual_discount_rate);
    s.fit_pareto_nbd = (*m)["pareto_nbd"].value_or(s.fit_pareto_nbd);
    if (s.time_unit != "day" && s.time_unit != "week") return bad("models.time_unit", "\"day\" or \"week\"");
    if (s.margin <= 0 || s.margin > 1) return bad("models.margin", "in (0, 1]");
    if (s.clv_months < 1) return bad("models.clv_months", ">= 1");
  }
  if (const toml::table* a = root["affinity"].as_table()) {
    s.affinity_level = (*a)["level"].value_or(s.affinity_level);
    s.min_support = (*a)["min_support"].value_or(s.min_support);
    s.min_confidence = (*a)["min_confidence"].value_or(s.min_confidence);
    s.recommend_top = static_cast<size_t>((*a)["top"].value_or<int64_t>(3));
    s.replenish_orders = static_cast<size_t>((*a)["replenish_orders"].value_or<int64_t>(3));
    if (s.affinity_level != "category" && s.affinity_level != "product") {
      return bad("affinity.level", "\"category\" or \"product\"");
    }
  }
  return s;
}



std::string Join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out.push_back(sep);
    out += items[i];
  }
  return out;
}

// The previous build's segments, for stable ids and names.
struct PreviousBuild {
  segment::PreviousClusters clusters;
  std::unordered_map<std::string, int64_t> segment_of_customer;
  bool present = false;
};

}  // namespace

const std::vector<std::string>& BuildExportColumns() {
  static const std::vector<std::string> kColumns = {
      "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "segment_id", "segment_name", "audiences",
      "p_alive", "expected_orders_90d", "expected_order_value", "clv", "next_order_date",
      "recommendations", "p_purchase_30d", "p_churn_90d", "p_upgrade", "p_referral"};
  return kColumns;
}

void AppendBuildCells(const BuildResult& b, size_t row, std::string* line) {
  auto num = [&](double v) { line->push_back(','); AppendCsvNumber(line, v); };
  line->push_back(',');
  if (b.rfm.r[row]) *line += std::to_string(b.rfm.r[row]);
  line->push_back(',');
  if (b.rfm.f[row]) *line += std::to_string(b.rfm.f[row]);
  line->push_back(',');
  if (b.rfm.m[row]) *line += std::to_string(b.rfm.m[row]);
  line->push_back(',');
  AppendCsvText(line, b.rfm.segment_names[static_cast<size_t>(b.rfm.segment[row])]);
  line->push_back(',');
  std::string seg_name;
  if (b.segment_id[row] >= 0) {
    *line += std::to_string(b.segment_id[row]);
    for (const SegmentInfo& s : b.segments) if (s.id == b.segment_id[row]) seg_name = s.name;
  }
  line->push_back(',');
  AppendCsvText(line, seg_name);
  line->push_back(',');
  std::vector<std::string> names;
  for (uint32_t a : b.audiences[row]) names.push_back(b.audience_names[a]);
  AppendCsvText(line, Join(names, ';'));
  num(b.p_alive[row]);
  num(b.expected_orders_90d[row]);
  num(b.expected_order_value[row]);
  num(b.clv[row]);
  line->push_back(',');
  if (!std::isnan(b.next_order_time[row])) *line += FormatDate(static_cast<TimeMicros>(b.next_order_time[row]));
  line->push_back(',');
  AppendCsvText(line, b.recommendations[row]);
  num(b.p_purchase_30d[row]);
  num(b.p_churn_90d[row]);
  num(b.p_upgrade[row]);
  num(b.p_referral[row]);
}

namespace {

void SerializeBuild(const BuildResult& b, std::string* out) {
  PutVarint(out, 2);  // format version (2 added the propensities)
  PutVarint(out, b.rfm.segment_names.size());
  for (const auto& n : b.rfm.segment_names) PutString(out, n);
  PutVarint(out, b.audience_names.size());
  for (const auto& n : b.audience_names) PutString(out, n);
  PutVarint(out, b.segments.size());
  for (const auto& s : b.segments) {
    PutZigZag(out, s.id);
    PutString(out, s.name);
    PutVarint(out, static_cast<uint64_t>(s.size));
    PutDouble(out, s.share_customers);
    PutDouble(out, s.share_revenue);
  }
  PutVarint(out, b.profiles.size());
  for (size_t row = 0; row < b.profiles.size(); ++row) {
    PutVarint(out, b.profiles[row]);
    PutString(out, b.customer_ids[row]);
    out->push_back(static_cast<char>(b.rfm.r[row]));
    out->push_back(static_cast<char>(b.rfm.f[row]));
    out->push_back(static_cast<char>(b.rfm.m[row]));
    PutVarint(out, static_cast<uint64_t>(b.rfm.segment[row]));
    PutZigZag(out, b.segment_id[row]);
    PutVarint(out, b.audiences[row].size());
    for (uint32_t a : b.audiences[row]) PutVarint(out, a);
    PutDouble(out, b.p_alive[row]);
    PutDouble(out, b.expected_orders_90d[row]);
    PutDouble(out, b.expected_order_value[row]);
    PutDouble(out, b.clv[row]);
    PutDouble(out, b.next_order_time[row]);
    PutString(out, b.recommendations[row]);
    PutDouble(out, b.p_purchase_30d[row]);
    PutDouble(out, b.p_churn_90d[row]);
    PutDouble(out, b.p_upgrade[row]);
    PutDouble(out, b.p_referral[row]);
  }
}

Status DeserializeBuild(std::string_view in, BuildResult* b) {
  Reader r(in);
  const uint64_t version = r.Varint();
  if (version != 1 && version != 2) return Status::Corruption("stored build: unknown format");
  size_t n = r.Varint();
  for (size_t i = 0; i < n && r.ok(); ++i) b->rfm.segment_names.emplace_back(r.String());
  n = r.Varint();
  for (size_t i = 0; i < n && r.ok(); ++i) b->audience_names.emplace_back(r.String());
  n = r.Varint();
  for (size_t i = 0; i < n && r.ok(); ++i) {
    SegmentInfo s;
    s.id = r.ZigZag();
    s.name = std::string(r.String());
    s.size = static_cast<int64_t>(r.Varint());
    s.share_customers = r.Double();
    s.share_revenue = r.Double();
    b->segments.push_back(std::move(s));
  }
  n = r.Varint();
  if (n > r.Remaining()) return Status::Corruption("stored build: bad row count");
  for (size_t row = 0; row < n && r.ok(); ++row) {
    b->profiles.push_back(static_cast<uint32_t>(r.Varint()));
    b->customer_ids.emplace_back(r.String());
    b->rfm.r.push_back(r.Byte());
    b->rfm.f.push_back(r.Byte());
    b->rfm.m.push_back(r.Byte());
    b->rfm.segment.push_back(static_cast<int32_t>(r.Varint()));
    b->segment_id.push_back(r.ZigZag());
    size_t na = r.Varint();
    std::vector<uint32_t> aud;
    for (size_t a = 0; a < na && r.ok(); ++a) aud.push_back(static_cast<uint32_t>(r.Varint()));
    b->audiences.push_back(std::move(aud));
    b->p_alive.push_back(r.Double());
    b->expected_orders_90d.push_back(r.Double());
    b->expected_order_value.push_back(r.Double());
    b->clv.push_back(r.Double());
    b->next_order_time.push_back(r.Double());
    b->recommendations.emplace_back(r.String());
    for (std::vector<double>* col : {&b->p_purchase_30d, &b->p_churn_90d, &b->p_upgrade, &b->p_referral}) {
      col->push_back(version >= 2 ? r.Double() : std::nan(""));
    }
  }
  return r.ok() ? Status::OK() : Status::Corruption("stored build truncated");
}

Result<PreviousBuild> LoadPrevious(const Engine& engine, const std::vector<std::string>& features, FeatureScaler* scaler) {
  PreviousBuild prev;
  std::string value;
  if (!engine.const_store().Get(Column::kModels, kBuildScalerKey, &value).ok()) return prev;
  FeatureScaler stored;
  if (!stored.Deserialize(value) || stored.features != features) return prev;  // new feature set: start over
  *scaler = stored;
  if (!engine.const_store().Get(Column::kModels, kBuildSegmentsKey, &value).ok()) return prev;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(value).get(doc)) return Status::Corruption("stored segments report is not JSON");
  int64_t next_id = 0;
  if (doc["next_segment_id"].get(next_id)) return prev;
  prev.clusters.next_segment_id = next_id;
  simdjson::dom::array segs;
  if (doc["segments"].get(segs)) return prev;
  for (simdjson::dom::element s : segs) {
    int64_t id;
    std::string_view name;
    simdjson::dom::array centroid;
    if (s["id"].get(id) || s["name"].get(name) || s["centroid"].get(centroid)) {
      return Status::Corruption("stored segments report: a segment lacks id, name or centroid");
    }
    prev.clusters.segment_ids.push_back(id);
    prev.clusters.names.emplace_back(name);
    for (simdjson::dom::element c : centroid) {
      double v;
      if (c.get(v)) return Status::Corruption("stored segments report: bad centroid");
      prev.clusters.centroids.push_back(v);
    }
  }
  auto stored_build = LoadBuild(engine);
  if (stored_build.ok()) {
    for (size_t row = 0; row < stored_build->customer_ids.size(); ++row) {
      prev.segment_of_customer[stored_build->customer_ids[row]] = stored_build->segment_id[row];
    }
  }
  prev.present = !prev.clusters.segment_ids.empty();
  return prev;
}


Status CollectBaskets(const Engine& engine, bool by_category, TimeMicros before,
                      affinity::BasketStore* baskets, std::vector<uint32_t>* basket_profile) {
  std::vector<std::string_view> labels;
  return engine.ForEachStoredBatch([&](const EventBatch& batch) {
    for (const Event& e : batch.events) {
      if (!e.Is(EventType::kOrder) || e.timestamp >= before) continue;
      labels.clear();
      for (const OrderLine& l : batch.Lines(e)) {
        std::string_view item = by_category ? l.category : l.product_id;
        if (!item.empty() && std::find(labels.begin(), labels.end(), item) == labels.end()) labels.push_back(item);
      }
      if (labels.empty()) continue;
      baskets->AddBasketLabels(labels);
      uint32_t profile = kNoProfile;
      if (!e.customer_id.empty()) profile = engine.identity().Find(IdKind::kCustomerId, e.customer_id);
      if (profile == kNoProfile && !e.email.empty()) profile = engine.identity().Find(IdKind::kEmail, e.email);
      if (profile == kNoProfile && !e.anonymous_id.empty()) {
        profile = engine.identity().Find(IdKind::kAnonymousId, e.anonymous_id);
      }
      basket_profile->push_back(profile);
    }
    return Status::OK();
  });
}


// The columns audiences are written over: every trait, the segment, RFM and the scores, for rows
// [first, first + count) of a build (traits from `m`, whose rows align with the build's).
struct RuleTable {
  segment::RuleSchema schema;
  segment::RuleData data;
  std::vector<std::vector<double>> owned;
  std::vector<std::string> segment_dictionary;
  std::vector<int32_t> segment_codes, rfm_codes;

  RuleTable(const TraitMatrix& m, const BuildResult& b, std::span<const int32_t> codes, size_t first, size_t count) {
    data.rows = count;
    owned.reserve(m.traits.size() + 10);
    for (size_t t = 0; t < m.traits.size(); ++t) {
      schema.push_back({m.traits[t].name, segment::RuleType::kNumber});
      data.columns.push_back({m.Column(t).subspan(first, count), {}, {}});
    }
    for (const SegmentInfo& seg : b.segments) segment_dictionary.push_back(seg.name);
    segment_codes.assign(codes.begin() + static_cast<ptrdiff_t>(first), codes.begin() + static_cast<ptrdiff_t>(first + count));
    rfm_codes.assign(b.rfm.segment.begin() + static_cast<ptrdiff_t>(first), b.rfm.segment.begin() + static_cast<ptrdiff_t>(first + count));
    schema.push_back({"segment", segment::RuleType::kString});
    data.columns.push_back({{}, segment_codes, segment_dictionary});
    schema.push_back({"rfm_segment", segment::RuleType::kString});
    data.columns.push_back({{}, rfm_codes, b.rfm.segment_names});
    auto add = [&](const char* name, auto value_of) {
      std::vector<double> col(count);
      for (size_t r = 0; r < count; ++r) col[r] = value_of(first + r);
      owned.push_back(std::move(col));
      schema.push_back({name, segment::RuleType::kNumber});
      data.columns.push_back({owned.back(), {}, {}});
    };
    add("segment_id", [&](size_t r) { return static_cast<double>(b.segment_id[r]); });
    add("rfm_r", [&](size_t r) { return static_cast<double>(b.rfm.r[r]); });
    add("rfm_f", [&](size_t r) { return static_cast<double>(b.rfm.f[r]); });
    add("rfm_m", [&](size_t r) { return static_cast<double>(b.rfm.m[r]); });
    add("p_alive", [&](size_t r) { return b.p_alive[r]; });
    add("expected_orders_90d", [&](size_t r) { return b.expected_orders_90d[r]; });
    add("expected_order_value", [&](size_t r) { return b.expected_order_value[r]; });
    add("clv", [&](size_t r) { return b.clv[r]; });
    add("p_purchase_30d", [&](size_t r) { return b.p_purchase_30d[r]; });
    add("p_churn_90d", [&](size_t r) { return b.p_churn_90d[r]; });
    add("p_upgrade", [&](size_t r) { return b.p_upgrade[r]; });
    add("p_referral", [&](size_t r) { return b.p_referral[r]; });
  }
};

}  // namespace

Result<BuildResult> LoadBuild(const Engine& engine) {
  std::string value;
  Status st = engine.const_store().Get(Column::kModels, kBuildProfilesKey, &value);
  if (st.IsNotFound()) return Status::NotFound("no build yet: run `shoal build --db DIR`");
  SHOAL_RETURN_IF_ERROR(st);
  BuildResult b;
  SHOAL_RETURN_IF_ERROR(DeserializeBuild(value, &b));
  engine.const_store().Get(Column::kModels, kBuildSegmentsKey, &b.segments_json).ok();
  engine.const_store().Get(Column::kModels, kBuildModelsKey, &b.models_json).ok();
  // The segments' key traits live in the report (`shoal segments` prints them).
  simdjson::dom::parser parser;
  simdjson::dom::element report;
  simdjson::dom::array segments;
  if (!b.segments_json.empty() && !parser.parse(b.segments_json).get(report) && !report["segments"].get(segments)) {
    for (simdjson::dom::element seg : segments) {
      int64_t id = 0;
      simdjson::dom::object key_traits;
      if (seg["id"].get(id) || seg["key_traits"].get(key_traits)) continue;
      for (SegmentInfo& info : b.segments) {
        if (info.id != id) continue;
        for (auto field : key_traits) {
          double z = 0;
          if (!field.value.get(z)) info.key_traits.emplace_back(std::string(field.key), z);
        }
      }
    }
  }
  engine.const_store().Get(Column::kModels, kBuildPropensityReportKey, &b.propensity_report).ok();
  return b;
}

Result<BuildResult> RunBuild(Engine& engine, const BuildOptions& options) {
  auto t_start = std::chrono::steady_clock::now();
  const Context& ctx = engine.context();
  SHOAL_ASSIGN_OR_RETURN(BuildSettings settings, ReadSettings(*engine.config().table));
  if (options.k >= 0) settings.k = options.k;
  if (!options.time_unit.empty()) settings.time_unit = options.time_unit;
  if (settings.time_unit != "day" && settings.time_unit != "week") {
    return Status::InvalidArgument("--time-unit must be day or week");
  }
  const TimeMicros as_of = options.as_of.value_or(engine.DefaultAsOf());
  BuildResult b;

  // 1. Traits.
  auto t0 = std::chrono::steady_clock::now();
  TraitTable table;
  // With --as-of the profiles come from a replay of the events before it: keep that replay's
  // states (the BTYD step reads their orders) and report each row under the profile that holds
  // its identifiers now, so exports, explain and the server join it to the right customer.
  std::vector<CustomerState> as_of_states;
  if (options.as_of) {
    const TimeMicros at = *options.as_of;
    SHOAL_RETURN_IF_ERROR(engine.ReplayAsOf(std::span<const TimeMicros>(&at, 1), [&](const AsOfSnapshot& snap) {
      for (size_t row = 0; row < snap.table.profiles.size(); ++row) {
        if (snap.current_profiles[row] == kNoProfile) continue;  // forgotten since
        table.profiles.push_back(snap.current_profiles[row]);
        table.customer_ids.push_back(snap.table.customer_ids[row]);
        as_of_states.push_back(*snap.states[row]);
      }
      // Column-major: keep the rows whose customer still exists.
      const TraitMatrix& all = snap.table.matrix;
      table.matrix.traits = all.traits;
      table.matrix.num_customers = table.profiles.size();
      table.matrix.values.reserve(all.traits.size() * table.profiles.size());
      for (size_t t = 0; t < all.traits.size(); ++t) {
        std::span<const double> column = all.Column(t);
        for (size_t row = 0; row < column.size(); ++row) {
          if (snap.current_profiles[row] != kNoProfile) table.matrix.values.push_back(column[row]);
        }
      }
      return Status::OK();
    }));
  } else {
    SHOAL_ASSIGN_OR_RETURN(table, engine.ComputeTraits(std::nullopt));
  }
  const size_t n = table.profiles.size();
  if (n == 0) return Status::FailedPrecondition("the workspace has no profiles: ingest events first");
  b.profiles = table.profiles;
  b.customer_ids = table.customer_ids;
  const TraitMatrix& m = table.matrix;
  auto column = [&](std::string_view name) -> Result<std::span<const double>> {
    int idx = m.Find(name);
    if (idx < 0) return Status::InvalidArgument("unknown trait '" + std::string(name) + "' (see docs/traits.md)");
    return m.Column(static_cast<size_t>(idx));
  };
  Say(options.quiet, "build: %s traits for the profiles (%.2f s)\n", std::to_string(m.traits.size()), SecondsSince(t0));

  // 2. RFM.
  t0 = std::chrono::steady_clock::now();
  SHOAL_ASSIGN_OR_RETURN(segment::RfmOptions rfm_options, segment::ParseRfmOptions(engine.config().text));
  SHOAL_ASSIGN_OR_RETURN(auto recency, column("recency_days"));
  SHOAL_ASSIGN_OR_RETURN(auto frequency, column("frequency"));
  SHOAL_ASSIGN_OR_RETURN(auto monetary, column("monetary_total"));
  SHOAL_ASSIGN_OR_RETURN(b.rfm, segment::ComputeRfm(recency, frequency, monetary, rfm_options, ctx));
  Say(options.quiet, "build: RFM scores%s (%.2f s)\n", "", SecondsSince(t0));

  // 3. Behavioural clusters: scaled features, k-means, stable ids, names.
  t0 = std::chrono::steady_clock::now();
  std::vector<std::span<const double>> feature_cols;
  for (const std::string& f : settings.features) {
    SHOAL_ASSIGN_OR_RETURN(auto col, column(f));
    feature_cols.push_back(col);
  }
  const size_t d = settings.features.size();
  FeatureScaler scaler;
  SHOAL_ASSIGN_OR_RETURN(PreviousBuild previous, LoadPrevious(engine, settings.features, &scaler));
  std::vector<std::string> support_names;
  std::vector<std::span<const double>> support_cols;
  for (const std::string& f : settings.features) {
    std::string_view support = RateSupport(f);
    support_names.emplace_back(support);
    if (support.empty() || m.Find(support) < 0) {
      support_names.back().clear();
      support_cols.emplace_back();
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(auto col, column(std::string(support)));
    support_cols.push_back(col);
  }
  if (!previous.present) {
    scaler = FitFeatureScaler(settings.features, feature_cols, support_names, support_cols, settings.shrinkage,
                       settings.winsor);
  }
  std::vector<float> points(n * d);  // n x d, row-major, scaled
  for (size_t row = 0; row < n; ++row) {
    for (size_t f = 0; f < d; ++f) {
      double support = support_cols[f].empty() ? 0.0 : support_cols[f][row];
      points[row * d + f] = static_cast<float>(scaler.Transform(f, feature_cols[f][row], support));
    }
  }
  KMeansOptions km;
  km.n_init = settings.n_init;
  km.k_criterion = settings.k_criterion;
  int k = settings.k;
  std::vector<double> k_scores;
  if (k == 0) {
    int k_max = std::min<int>(settings.k_max, static_cast<int>(n));
    int k_min = std::min(settings.k_min, k_max);
    if (k_max >= 2) {
      SHOAL_ASSIGN_OR_RETURN(k, ChooseK(points, n, d, std::max(2, k_min), k_max, km, ctx, &k_scores));
    } else {
      k = 1;
    }
  }
  k = std::min<int>(k, static_cast<int>(n));
  km.k = k;
  SHOAL_ASSIGN_OR_RETURN(KMeansResult clusters, KMeans(points, n, d, km, ctx));
  std::vector<int64_t> previous_ids(n, -1);
  if (previous.present) {
    for (size_t row = 0; row < n; ++row) {
      auto it = previous.segment_of_customer.find(b.customer_ids[row]);
      if (it != previous.segment_of_customer.end()) previous_ids[row] = it->second;
    }
  }
  segment::StabilityOptions stability;
  stability.hysteresis = settings.hysteresis;
  SHOAL_ASSIGN_OR_RETURN(segment::StableClusters stable,
                         segment::StabiliseClusters(points, clusters.centroids, d, previous_ids, previous.clusters,
                                                    stability, ctx));
  b.segment_id = stable.customer_segment_ids;
  b.moved = stable.moved;
  // Profiles and names over every trait, labelled by the stable assignment.
  // Names and profiles describe behaviour: the clustering traits plus a few that explain them
  // (seasonality and channel mix would otherwise dominate the adjectives of small segments).
  segment::ProfileInput profile_input;
  std::vector<std::string> described = settings.features;
  for (const char* extra : {"monetary_total", "orders_365d", "spend_365d", "email_click_rate", "referrals", "returns",
                            "support_tickets", "searches", "view_to_order", "ipi_mean_days", "tenure_days"}) {
    if (std::find(described.begin(), described.end(), extra) == described.end()) described.emplace_back(extra);
  }
  for (const std::string& name : described) {
    int idx = m.Find(name);
    if (idx < 0) continue;
    profile_input.trait_names.push_back(name);
    profile_input.traits.push_back(m.Column(static_cast<size_t>(idx)));
  }
  profile_input.labels = stable.assignment;
  SHOAL_ASSIGN_OR_RETURN(segment::ProfileResult profiles, segment::ProfileClusters(profile_input, ctx));
  // ProfileClusters sizes its output by the largest label: a last cluster left without members
  // by the stabilisation would be missing (and read out of range below). It gets an empty profile.
  for (size_t c = profiles.clusters.size(); c < static_cast<size_t>(k); ++c) {
    profiles.clusters.emplace_back().cluster = static_cast<int32_t>(c);
  }
  // Matched clusters keep their previous names; new ones get generated names clear of those.
  std::vector<segment::ClusterName> generated =
      segment::NameClusters(profiles.clusters, segment::NamingOptions(), stable.names);
  std::vector<std::string> names(static_cast<size_t>(k));
  for (int c = 0; c < k; ++c) names[c] = stable.names[c].empty() ? generated[c].name : stable.names[c];
  for (int c = 0; c < k; ++c) {
    SegmentInfo info;
    info.id = stable.segment_ids[c];
    info.name = names[c];
    const segment::ClusterProfile& cp = profiles.clusters[c];
    info.size = cp.size;
    info.share_customers = cp.share_customers;
    info.share_revenue = cp.share_revenue;
    info.reasons = generated[c].reasons;
    std::vector<std::pair<std::string, double>> zs;
    for (const auto& tp : cp.traits) {
      if (std::isfinite(tp.robust_z)) zs.emplace_back(tp.name, tp.robust_z);
      for (const auto& f : settings.features) if (f == tp.name) info.trait_means.emplace_back(tp.name, tp.mean);
    }
    std::stable_sort(zs.begin(), zs.end(), [](const auto& a, const auto& c2) { return std::fabs(a.second) > std::fabs(c2.second); });
    zs.resize(std::min<size_t>(zs.size(), 5));
    info.key_traits = zs;
    b.segments.push_back(std::move(info));
  }
  Say(options.quiet, "build: %s behavioural segments (%.2f s)\n", std::to_string(k), SecondsSince(t0));

  // 4. BTYD: (x, t_x, T) from each profile's orders up to the calibration end.
  t0 = std::chrono::steady_clock::now();
  LiveModel live;  // what the server needs to score one profile as this build did (stored below)
  const int64_t cal_end_day = options.calibration_end_day.value_or(DayOf(as_of) - 1);
  const double unit_days = settings.time_unit == "week" ? 7.0 : 1.0;
  live.unit_days = unit_days;
  live.horizon_days = settings.horizon_days;
  std::vector<double> xs(n, std::nan("")), txs(n, std::nan("")), Ts(n, std::nan("")), means(n, std::nan(""));
  std::vector<double> fit_x, fit_tx, fit_T, fit_mean;
  uint64_t excluded_spend = 0;
  for (size_t row = 0; row < n; ++row) {
    const CustomerState& st = options.as_of ? as_of_states[row] : engine.state(b.profiles[row]);
    const OrderDaySummary summary = SummarizeOrderDays(st, cal_end_day, unit_days);
    if (!summary.has_orders) continue;
    xs[row] = summary.x;
    txs[row] = summary.t_x;
    Ts[row] = summary.T;
    means[row] = summary.mean_repeat_value;
    const bool repeat_buyer = summary.x > 0;
    if (!(Ts[row] > 0)) continue;  // first order on the last calibration day: scored, not fitted
    fit_x.push_back(xs[row]);
    fit_tx.push_back(txs[row]);
    fit_T.push_back(Ts[row]);
    if (repeat_buyer && !(means[row] > 0)) ++excluded_spend;
    fit_mean.push_back(repeat_buyer && means[row] > 0 ? means[row] : 0);
  }
  b.p_alive.assign(n, std::nan(""));
  b.expected_orders_90d.assign(n, std::nan(""));
  b.expected_order_value.assign(n, std::nan(""));
  b.clv.assign(n, std::nan(""));
  b.next_order_time.assign(n, std::nan(""));
  std::string models = "{\"calibration_end\":";
  AppendJsonString(&models, FormatDate(cal_end_day * kMicrosPerDay));
  models += ",\"time_unit\":";
  AppendJsonString(&models, settings.time_unit);
  models += ",\"customers\":" + std::to_string(fit_x.size());
  if (fit_x.size() >= 10) {
    SHOAL_ASSIGN_OR_RETURN(CompressedRfm data, CompressRfm(fit_x, fit_tx, fit_T, fit_mean, ctx));
    // Parameters are kept within [1e-4, 1e4]: beyond, BG/NBD's a and b only say "dropout is the
    // same for everyone" (a/(a+b) fixed), and scoring with 1e9-sized parameters costs seconds
    // per customer. A fit stopped at the bound is reported as not converged.
    BtydFitOptions fit_options;
    fit_options.max_abs_log_parameter = std::log(1e4);
    BtydModelsOptions models_options;
    models_options.fit = fit_options;
    models_options.pareto_nbd = settings.fit_pareto_nbd;
    BtydModelFits fits = FitBtydModels(data, models_options, ctx);
    SHOAL_ASSIGN_OR_RETURN(BgNbdFit bg, std::move(fits.bgnbd));
    Result<ParetoNbdFit> pareto =
        settings.fit_pareto_nbd
            ? std::move(fits.pareto_nbd)
            : Result<ParetoNbdFit>(
                  Status::FailedPrecondition("disabled by [models] pareto_nbd = false"));
    Result<GammaGammaFit>& gg = fits.gamma_gamma;
    auto param = [&](const char* name, double v, double se, bool last_one = false) {
      models += "\"" + std::string(name) + "\":";
      AppendJsonNumber(&models, v);
      models += ",\"" + std::string(name) + "_se\":";
      AppendJsonNumber(&models, se);
      if (!last_one) models += ",";
    };
    models += ",\"bgnbd\":{";
    param("r", bg.params.r, bg.std_errors[0]);
    param("alpha", bg.params.alpha, bg.std_errors[1]);
    param("a", bg.params.a, bg.std_errors[2]);
    param("b", bg.params.b, bg.std_errors[3]);
    models += "\"loglik\":";
    AppendJsonNumber(&models, bg.log_likelihood);
    models += ",\"converged\":" + std::string(bg.converged ? "true" : "false") +
              ",\"iterations\":" + std::to_string(bg.iterations) + ",\"message\":";
    AppendJsonString(&models, bg.optimizer_message);
    models += "}";
    if (pareto.ok()) {
      models += ",\"pareto_nbd\":{";
      param("r", pareto->params.r, pareto->std_errors[0]);
      param("alpha", pareto->params.alpha, pareto->std_errors[1]);
      param("s", pareto->params.s, pareto->std_errors[2]);
      param("beta", pareto->params.beta, pareto->std_errors[3]);
      models += "\"loglik\":";
      AppendJsonNumber(&models, pareto->log_likelihood);
      models += ",\"converged\":" + std::string(pareto->converged ? "true" : "false") +
                ",\"iterations\":" + std::to_string(pareto->iterations) + ",\"message\":";
      AppendJsonString(&models, pareto->optimizer_message);
      models += "}";
    } else {
      models += ",\"pareto_nbd\":{\"error\":";
      AppendJsonString(&models, pareto.status().message());
      models += "}";
    }
    GammaGammaParams gg_params{};
    bool have_gg = gg.ok();
    if (have_gg) {
      gg_params = gg->params;
      models += ",\"gamma_gamma\":{";
      param("p", gg->params.p, gg->std_errors[0]);
      param("q", gg->params.q, gg->std_errors[1]);
      param("gamma", gg->params.gamma, gg->std_errors[2]);
      models += "\"loglik\":";
      AppendJsonNumber(&models, gg->log_likelihood);
      models += ",\"converged\":" + std::string(gg->converged ? "true" : "false") +
                ",\"iterations\":" + std::to_string(gg->iterations) + ",\"message\":";
      AppendJsonString(&models, gg->optimizer_message);
      models += ",\"repeat_customers\":" + std::to_string(static_cast<int64_t>(gg->input.customers));
      models += ",\"excluded_nonpositive_spend\":" + std::to_string(excluded_spend) + "}";
    } else {
      models += ",\"gamma_gamma\":{\"error\":";
      AppendJsonString(&models, gg.status().message());
      models += "}";
    }
    ClvOptions clv;
    clv.periods = settings.clv_months;
    clv.period_length = (365.25 / 12.0) / unit_days;
    clv.margin = settings.margin;
    clv.discount_rate = std::pow(1.0 + settings.annual_discount_rate, 1.0 / 12.0) - 1.0;
    live.have_bgnbd = true;
    live.bgnbd = bg.params;
    live.have_gamma_gamma = have_gg;
    live.gamma_gamma = gg_params;
    live.clv = clv;
    // Every customer's scores, on all cores (each row writes only its own entries).
    ParallelFor(
        n, ctx.Threads(),
        [&](size_t begin, size_t end, int) {
          for (size_t row = begin; row < end; ++row) {
            if (std::isnan(xs[row])) continue;
            LiveScores scores;
            ScoreBtydSummary(live, OrderDaySummary{true, xs[row], txs[row], Ts[row], means[row]},
                             &scores);
            b.p_alive[row] = scores.p_alive;
            b.expected_orders_90d[row] = scores.expected_orders_90d;
            b.expected_order_value[row] = scores.expected_order_value;
            b.clv[row] = scores.clv;
            double next = BgNbdNextPurchaseTime(bg.params, xs[row], txs[row], Ts[row]);
            if (std::isfinite(next)) {
              b.next_order_time[row] = static_cast<double>(cal_end_day * kMicrosPerDay) +
                                       next * unit_days * kMicrosPerDay;
            }
          }
        },
        1024);
  }
  models += "}";
  b.models_json = models;
  Say(options.quiet, "build: BTYD models%s (%.2f s)\n", "", SecondsSince(t0));

  // 4b. Propensity models (engine/propensity_stage.h).
  SHOAL_ASSIGN_OR_RETURN(PropensityStageResult propensity,
                         RunPropensityStage(engine, as_of, b.customer_ids, settings.time_unit, options.quiet));
  b.p_purchase_30d = std::move(propensity.scores[0]);
  b.p_churn_90d = std::move(propensity.scores[1]);
  b.p_upgrade = std::move(propensity.scores[2]);
  b.p_referral = std::move(propensity.scores[3]);
  b.models_json.pop_back();
  b.models_json += ",\"propensity\":" + propensity.json + "}";
  b.propensity_report = std::move(propensity.report);

  // 5. Audiences over traits, segments and scores.
  t0 = std::chrono::steady_clock::now();
  std::vector<int32_t> segment_codes(n, -1);
  {
    std::unordered_map<int64_t, int32_t> code_of_id;
    for (size_t seg = 0; seg < b.segments.size(); ++seg) code_of_id[b.segments[seg].id] = static_cast<int32_t>(seg);
    for (size_t row = 0; row < n; ++row) {
      auto it = code_of_id.find(b.segment_id[row]);
      if (it != code_of_id.end()) segment_codes[row] = it->second;
    }
  }
  RuleTable rules_table(m, b, segment_codes, 0, n);
  const segment::RuleSchema& schema = rules_table.schema;
  const segment::RuleData& data = rules_table.data;
  SHOAL_ASSIGN_OR_RETURN(std::vector<segment::AudienceSpec> specs, segment::ParseAudiences(engine.config().text));
  SHOAL_ASSIGN_OR_RETURN(std::vector<segment::Audience> audiences, segment::CompileAudiences(specs, schema));
  b.audiences.assign(n, {});
  for (size_t a = 0; a < audiences.size(); ++a) {
    b.audience_names.push_back(audiences[a].name);
    SHOAL_ASSIGN_OR_RETURN(segment::BoundRule bound, segment::BoundRule::Bind(audiences[a].rule, data));
    std::vector<uint8_t> match = bound.MatchAll(ctx);
    for (size_t row = 0; row < n; ++row) if (match[row]) b.audiences[row].push_back(static_cast<uint32_t>(a));
  }
  Say(options.quiet, "build: %s audiences (%.2f s)\n", std::to_string(audiences.size()), SecondsSince(t0));

  // 6. Cross-sell: baskets of stored orders, FP-growth, rules, recommendations.
  t0 = std::chrono::steady_clock::now();
  affinity::BasketStore baskets;
  std::vector<uint32_t> basket_profile;
  SHOAL_RETURN_IF_ERROR(CollectBaskets(engine, settings.affinity_level == "category", as_of, &baskets, &basket_profile));
  std::vector<uint32_t> row_of_profile(engine.identity().num_slots(), UINT32_MAX);
  for (size_t row = 0; row < n; ++row) row_of_profile[b.profiles[row]] = static_cast<uint32_t>(row);
  std::vector<uint32_t> basket_row(basket_profile.size(), UINT32_MAX);
  for (size_t bi = 0; bi < basket_profile.size(); ++bi) {
    if (basket_profile[bi] < row_of_profile.size()) basket_row[bi] = row_of_profile[basket_profile[bi]];
  }
  b.recommendations.assign(n, "");
  size_t num_rules = 0;
  if (baskets.num_baskets() > 0) {
    affinity::FpGrowthOptions fp;
    fp.min_support = settings.min_support;
    SHOAL_ASSIGN_OR_RETURN(affinity::FrequentItemsets itemsets, affinity::MineFrequentItemsets(baskets, fp, ctx));
    affinity::RuleOptions ro;
    ro.min_confidence = settings.min_confidence;
    ro.min_lift = 1.0;
    SHOAL_ASSIGN_OR_RETURN(affinity::RuleSet rules, affinity::GenerateRules(itemsets, ro, ctx));
    affinity::SortRules(&rules, affinity::RuleMeasure::kLift);
    num_rules = rules.support.size();
    // Per row: items bought, and how many orders held each.
    std::vector<std::vector<std::pair<affinity::ItemId, uint32_t>>> history(n);
    for (size_t bi = 0; bi < baskets.num_baskets(); ++bi) {
      uint32_t row = basket_row[bi];
      if (row == UINT32_MAX) continue;
      for (affinity::ItemId item : baskets.Basket(bi)) {
        auto& h = history[row];
        auto it = std::find_if(h.begin(), h.end(), [&](const auto& p) { return p.first == item; });
        if (it == h.end()) h.emplace_back(item, 1);
        else ++it->second;
      }
    }
    affinity::RuleRecommender recommender(rules);
    affinity::RecommendOptions rec_options;
    rec_options.top_n = settings.recommend_top;
    std::vector<affinity::ItemId> items, replenish;
    for (size_t row = 0; row < n; ++row) {
      items.clear();
      replenish.clear();
      for (const auto& [item, count] : history[row]) {
        items.push_back(item);
        if (count >= settings.replenish_orders) replenish.push_back(item);
      }
      std::sort(items.begin(), items.end());
      std::sort(replenish.begin(), replenish.end());
      std::vector<affinity::Recommendation> recs = recommender.Recommend(items, replenish, rec_options);
      std::string cell;
      for (size_t r = 0; r < recs.size(); ++r) {
        if (r) cell.push_back(';');
        cell += baskets.dictionary().Label(recs[r].item);
      }
      b.recommendations[row] = std::move(cell);
    }
    // Per segment: items that over-index against the population.
    std::vector<uint32_t> basket_segment(baskets.num_baskets(), affinity::kNoSegment);
    for (size_t bi = 0; bi < baskets.num_baskets(); ++bi) {
      uint32_t row = basket_row[bi];
      if (row != UINT32_MAX && segment_codes[row] >= 0) basket_segment[bi] = static_cast<uint32_t>(segment_codes[row]);
    }
    affinity::OverIndexOptions oi;
    oi.top_n = 5;
    auto over = affinity::OverIndexedItems(baskets, basket_segment, static_cast<uint32_t>(b.segments.size()), oi, ctx);
    if (!over.ok()) return over.status().WithContext("segment cross-sell");
    // Each segment's best rules: mined within its own baskets (support relative to them), by lift.
    for (size_t seg = 0; seg < b.segments.size(); ++seg) {
      affinity::BasketStore own;
      std::vector<std::string_view> labels;
      for (size_t bi = 0; bi < baskets.num_baskets(); ++bi) {
        if (basket_segment[bi] != seg) continue;
        labels.clear();
        for (affinity::ItemId item : baskets.Basket(bi)) labels.push_back(baskets.dictionary().Label(item));
        own.AddBasketLabels(labels);
      }
      if (own.num_baskets() < 20) continue;
      // Support relative to the segment's baskets, and at least 10 baskets, so a small segment
      // does not report rules seen once or twice.
      affinity::FpGrowthOptions seg_fp;
      seg_fp.min_support_count = std::max<uint64_t>(
          10, static_cast<uint64_t>(std::ceil(settings.min_support * static_cast<double>(own.num_baskets()))));
      auto seg_sets = affinity::MineFrequentItemsets(own, seg_fp, ctx);
      if (!seg_sets.ok()) return seg_sets.status().WithContext("segment rules");
      auto seg_rules = affinity::GenerateRules(*seg_sets, ro, ctx);
      if (!seg_rules.ok()) return seg_rules.status().WithContext("segment rules");
      affinity::SortRules(&*seg_rules, affinity::RuleMeasure::kLift);
      for (size_t r = 0; r < seg_rules->support.size() && r < 3; ++r) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " (lift %.2f, confidence %.2f)", seg_rules->lift[r], seg_rules->confidence[r]);
        b.segments[seg].cross_sell_rules.push_back(affinity::FormatRule(*seg_rules, r, own.dictionary()) + buf);
      }
    }
    for (const affinity::OverIndexedItem& item : *over) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " (lift %.2f)", item.lift);
      b.segments[item.segment].cross_sell.push_back(baskets.dictionary().Label(item.item) + buf);
    }
  }
  b.affinity_summary = std::to_string(baskets.num_baskets()) + " baskets, " + std::to_string(num_rules) +
                       " rules at " + settings.affinity_level + " level";
  Say(options.quiet, "build: cross-sell, %s (%.2f s)\n", b.affinity_summary, SecondsSince(t0));

  // 7. The segments report and persistence.
  std::string js = "{\"as_of\":";
  AppendJsonString(&js, FormatIso8601(as_of));
  js += ",\"k\":" + std::to_string(k) + ",\"k_criterion\":\"";
  js += settings.k_criterion == KMeansOptions::KCriterion::kSilhouette ? "silhouette" : "calinski_harabasz";
  js += "\",\"k_scores\":[";
  for (size_t i = 0; i < k_scores.size(); ++i) {
    if (i) js += ',';
    AppendJsonNumber(&js, k_scores[i]);
  }
  js += "],\"features\":[";
  for (size_t f = 0; f < d; ++f) {
    if (f) js += ',';
    AppendJsonString(&js, settings.features[f]);
  }
  js += "],\"inertia\":";
  AppendJsonNumber(&js, clusters.inertia);
  js += ",\"moved\":" + std::to_string(b.moved) + ",\"next_segment_id\":" + std::to_string(stable.next_segment_id);
  js += ",\"segments\":[";
  for (int c = 0; c < k; ++c) {
    const SegmentInfo& s = b.segments[c];
    if (c) js += ',';
    js += "{\"id\":" + std::to_string(s.id) + ",\"name\":";
    AppendJsonString(&js, s.name);
    js += ",\"size\":" + std::to_string(s.size) + ",\"share_customers\":";
    AppendJsonNumber(&js, s.share_customers);
    js += ",\"share_revenue\":";
    AppendJsonNumber(&js, s.share_revenue);
    js += ",\"reasons\":[";
    for (size_t r = 0; r < s.reasons.size(); ++r) {
      if (r) js += ',';
      AppendJsonString(&js, s.reasons[r]);
    }
    js += "],\"key_traits\":{";
    for (size_t t = 0; t < s.key_traits.size(); ++t) {
      if (t) js += ',';
      AppendJsonString(&js, s.key_traits[t].first);
      js += ':';
      AppendJsonNumber(&js, s.key_traits[t].second);
    }
    js += "},\"trait_means\":{";
    for (size_t t = 0; t < s.trait_means.size(); ++t) {
      if (t) js += ',';
      AppendJsonString(&js, s.trait_means[t].first);
      js += ':';
      AppendJsonNumber(&js, s.trait_means[t].second);
    }
    js += "},\"cross_sell\":[";
    for (size_t t = 0; t < s.cross_sell.size(); ++t) {
      if (t) js += ',';
      AppendJsonString(&js, s.cross_sell[t]);
    }
    js += "],\"cross_sell_rules\":[";
    for (size_t t = 0; t < s.cross_sell_rules.size(); ++t) {
      if (t) js += ',';
      AppendJsonString(&js, s.cross_sell_rules[t]);
    }
    js += "],\"centroid\":[";
    for (size_t f = 0; f < d; ++f) {
      if (f) js += ',';
      AppendJsonNumber(&js, clusters.centroids[static_cast<size_t>(c) * d + f]);
    }
    js += "]}";
  }
  js += "],\"transitions\":{\"from\":[";
  const auto& tm = stable.transitions;
  for (size_t i = 0; i < tm.from_ids.size(); ++i) js += (i ? "," : "") + std::to_string(tm.from_ids[i]);
  js += "],\"to\":[";
  for (size_t i = 0; i < tm.to_ids.size(); ++i) js += (i ? "," : "") + std::to_string(tm.to_ids[i]);
  js += "],\"counts\":[";
  for (size_t i = 0; i < tm.counts.size(); ++i) js += (i ? "," : "") + std::to_string(tm.counts[i]);
  js += "]}}";
  b.segments_json = js;

  if (!engine.read_only()) {
    WriteGroup g;
    std::string blob;
    SerializeBuild(b, &blob);
    g.Put(Column::kModels, kBuildProfilesKey, blob);
    g.Put(Column::kModels, kBuildSegmentsKey, b.segments_json);
    g.Put(Column::kModels, kBuildModelsKey, b.models_json);
    g.Put(Column::kModels, kBuildPropensityReportKey, b.propensity_report);
    for (const auto& [key, bytes] : propensity.stored_models) {
      if (bytes.empty()) g.Delete(Column::kModels, key);
      else g.Put(Column::kModels, key, bytes);
    }
    std::string scaler_blob;
    scaler.Serialize(&scaler_blob);
    g.Put(Column::kModels, kBuildScalerKey, scaler_blob);
    live.as_of = as_of;
    live.rfm_bins = rfm_options.bins;
    live.rfm_default_table = rfm_options.segments.empty();
    live.rfm_table = live.rfm_default_table ? segment::DefaultRfmSegments() : rfm_options.segments;
    live.rfm_names = b.rfm.segment_names;
    live.recency_cuts = b.rfm.recency_cuts;
    live.frequency_cuts = b.rfm.frequency_cuts;
    live.monetary_cuts = b.rfm.monetary_cuts;
    live.features = scaler.features;
    live.scaler = scaler;
    live.hysteresis = settings.hysteresis;
    live.centroids = clusters.centroids;
    live.segment_ids = stable.segment_ids;
    for (const SegmentInfo& seg : b.segments) live.segment_names.push_back(seg.name);
    std::string live_blob;
    live.Serialize(&live_blob);
    g.Put(Column::kModels, kLiveModelKey, live_blob);
    SHOAL_RETURN_IF_ERROR(engine.store().Write(g, true));
  }
  b.seconds = SecondsSince(t_start);
  return b;
}

}  // namespace shoal

namespace shoal {

Result<std::string> ExplainProfile(const Engine& engine, std::string_view identifier) {
  uint32_t profile = engine.FindProfile(identifier);
  if (profile == kNoProfile) return Status::NotFound("no profile has the identifier '" + std::string(identifier) + "'");
  SHOAL_ASSIGN_OR_RETURN(BuildResult b, LoadBuild(engine));
  auto it = std::find(b.profiles.begin(), b.profiles.end(), profile);
  if (it == b.profiles.end()) {
    return Status::FailedPrecondition("profile '" + std::string(identifier) + "' is newer than the last build: run `shoal build`");
  }
  const size_t row = static_cast<size_t>(it - b.profiles.begin());
  // The build's time, so traits are the ones it clustered.
  simdjson::dom::parser parser;
  simdjson::dom::element report;
  if (parser.parse(b.segments_json).get(report)) return Status::Corruption("stored segments report is not JSON");
  std::string_view as_of_text;
  TimeMicros as_of = engine.DefaultAsOf();
  if (!report["as_of"].get(as_of_text)) {
    auto t = ParseIso8601(as_of_text);
    if (t.ok()) as_of = *t;
  }
  TraitMatrix one;
  one.num_customers = 1;
  one.traits = engine.catalogue().traits();
  one.values.resize(one.traits.size());
  engine.catalogue().ComputeOne(engine.state(profile), engine.population(), as_of, one.values);

  std::string out = "customer " + b.customer_ids[row] + " (profile " + std::to_string(profile) + "), build as of " +
                    std::string(as_of_text) + "\n\n";
  out += "RFM: R=" + std::to_string(b.rfm.r[row]) + " F=" + std::to_string(b.rfm.f[row]) + " M=" +
         std::to_string(b.rfm.m[row]) + " -> " + b.rfm.segment_names[static_cast<size_t>(b.rfm.segment[row])];
  auto trait = [&](const char* name) {
    int idx = one.Find(name);
    return idx < 0 ? std::nan("") : one.values[static_cast<size_t>(idx)];
  };
  char buf[256];
  std::snprintf(buf, sizeof buf, "  (recency %.1f days, %g orders, %.2f spent)\n", trait("recency_days"),
                trait("frequency"), trait("monetary_total"));
  out += buf;

  // Behavioural segment: distances in the scaled space to every centroid.
  std::string scaler_blob;
  FeatureScaler scaler;
  simdjson::dom::array segs;
  if (engine.const_store().Get(Column::kModels, kBuildScalerKey, &scaler_blob).ok() && scaler.Deserialize(scaler_blob) &&
      !report["segments"].get(segs)) {
    std::vector<double> point;
    for (size_t f = 0; f < scaler.features.size(); ++f) {
      int idx = one.Find(scaler.features[f]);
      int support_idx = scaler.support[f].empty() ? -1 : one.Find(scaler.support[f]);
      point.push_back(scaler.Transform(f, idx < 0 ? std::nan("") : one.values[static_cast<size_t>(idx)],
                                       support_idx < 0 ? 0.0 : one.values[static_cast<size_t>(support_idx)]));
    }
    std::vector<std::pair<double, std::string>> distances;
    for (simdjson::dom::element seg : segs) {
      std::string_view name;
      int64_t id = 0;
      simdjson::dom::array centroid;
      if (seg["name"].get(name) || seg["id"].get(id) || seg["centroid"].get(centroid)) continue;
      double d2 = 0;
      size_t f = 0;
      for (simdjson::dom::element c : centroid) {
        double v = 0;
        if (c.get(v) || f >= point.size()) break;
        d2 += (point[f] - v) * (point[f] - v);
        ++f;
      }
      distances.emplace_back(std::sqrt(d2), std::string(name) + " (id " + std::to_string(id) + ")");
    }
    std::sort(distances.begin(), distances.end());
    std::string assigned;
    for (const SegmentInfo& seg : b.segments) if (seg.id == b.segment_id[row]) assigned = seg.name;
    out += "segment: " + assigned + " (id " + std::to_string(b.segment_id[row]) + ")\n  distance to each centroid (scaled traits):\n";
    for (const auto& [dist, label] : distances) {
      std::snprintf(buf, sizeof buf, "    %-50s %.3f\n", label.c_str(), dist);
      out += buf;
    }
    if (!distances.empty() && distances[0].second.rfind(assigned + " (", 0) != 0) {
      out += "  kept in its previous segment by hysteresis (the nearest centroid is not closer by the margin)\n";
    }
  }

  // Audiences: each rule evaluated on this one customer, clause by clause.
  SHOAL_ASSIGN_OR_RETURN(std::vector<segment::AudienceSpec> specs, segment::ParseAudiences(engine.config().text));
  if (!specs.empty()) {
    std::vector<int32_t> code(b.profiles.size(), -1);
    for (size_t seg = 0; seg < b.segments.size(); ++seg) if (b.segments[seg].id == b.segment_id[row]) code[row] = static_cast<int32_t>(seg);
    // A one-row view: traits of this customer, build columns of its row.
    BuildResult single;
    single.segments = b.segments;
    single.rfm.segment_names = b.rfm.segment_names;
    single.rfm.r = {b.rfm.r[row]};
    single.rfm.f = {b.rfm.f[row]};
    single.rfm.m = {b.rfm.m[row]};
    single.rfm.segment = {b.rfm.segment[row]};
    single.segment_id = {b.segment_id[row]};
    single.p_alive = {b.p_alive[row]};
    single.expected_orders_90d = {b.expected_orders_90d[row]};
    single.expected_order_value = {b.expected_order_value[row]};
    single.clv = {b.clv[row]};
    single.p_purchase_30d = {b.p_purchase_30d[row]};
    single.p_churn_90d = {b.p_churn_90d[row]};
    single.p_upgrade = {b.p_upgrade[row]};
    single.p_referral = {b.p_referral[row]};
    std::vector<int32_t> single_code = {code[row]};
    RuleTable table(one, single, single_code, 0, 1);
    SHOAL_ASSIGN_OR_RETURN(std::vector<segment::Audience> audiences, segment::CompileAudiences(specs, table.schema));
    out += "\naudiences:\n";
    for (const segment::Audience& audience : audiences) {
      SHOAL_ASSIGN_OR_RETURN(segment::BoundRule bound, segment::BoundRule::Bind(audience.rule, table.data));
      segment::RuleExplanation why = bound.Explain(0);
      out += "  " + audience.name + ": " + (why.matched ? "member" : "not a member") + "\n";
      out += segment::FormatExplanation(why);
      if (!out.empty() && out.back() != '\n') out += '\n';
    }
  }
  if (!b.recommendations[row].empty()) out += "\nrecommendations: " + b.recommendations[row] + "\n";
  return out;
}

Result<std::string> AffinityReport(const Engine& engine, const AffinityOptions& options) {
  if (options.level != "category" && options.level != "product") {
    return Status::InvalidArgument("--level must be category or product");
  }
  affinity::BasketStore baskets;
  std::vector<uint32_t> basket_profile;
  SHOAL_RETURN_IF_ERROR(CollectBaskets(engine, options.level == "category", INT64_MAX, &baskets, &basket_profile));
  if (baskets.num_baskets() == 0) return Status::FailedPrecondition("no stored order has " + options.level + " lines");
  affinity::FpGrowthOptions fp;
  if (options.min_support >= 1) fp.min_support_count = static_cast<uint64_t>(options.min_support);
  else fp.min_support = options.min_support;
  SHOAL_ASSIGN_OR_RETURN(affinity::FrequentItemsets itemsets, affinity::MineFrequentItemsets(baskets, fp, engine.context()));
  affinity::RuleOptions ro;
  ro.min_confidence = options.min_confidence;
  SHOAL_ASSIGN_OR_RETURN(affinity::RuleSet rules, affinity::GenerateRules(itemsets, ro, engine.context()));
  affinity::SortRules(&rules, affinity::RuleMeasure::kLift);
  const size_t total = rules.support.size();
  const size_t shown = options.top == 0 ? total : std::min(total, options.top);
  std::string out;
  if (!options.json) {
    out = std::to_string(baskets.num_baskets()) + " baskets, " + std::to_string(itemsets.size()) +
          " frequent itemsets (min count " + std::to_string(itemsets.min_count) + "), " + std::to_string(total) +
          " rules; top " + std::to_string(shown) + " by lift:\n";
  }
  for (size_t r = 0; r < shown; ++r) {
    if (options.json) {
      out += "{\"antecedent\":[";
      auto a = rules.Antecedent(r);
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        AppendJsonString(&out, baskets.dictionary().Label(a[i]));
      }
      out += "],\"consequent\":[";
      auto c = rules.Consequent(r);
      for (size_t i = 0; i < c.size(); ++i) {
        if (i) out += ',';
        AppendJsonString(&out, baskets.dictionary().Label(c[i]));
      }
      out += "],\"support\":";
      AppendJsonNumber(&out, rules.support[r]);
      out += ",\"confidence\":";
      AppendJsonNumber(&out, rules.confidence[r]);
      out += ",\"lift\":";
      AppendJsonNumber(&out, rules.lift[r]);
      out += ",\"leverage\":";
      AppendJsonNumber(&out, rules.leverage[r]);
      out += ",\"conviction\":";
      if (std::isinf(rules.conviction[r])) out += "\"inf\"";
      else AppendJsonNumber(&out, rules.conviction[r]);
      out += "}\n";
    } else {
      char buf[160];
      std::snprintf(buf, sizeof buf, "  support %.4f  confidence %.3f  lift %.2f  leverage %.4f  conviction %s   ",
                    rules.support[r], rules.confidence[r], rules.lift[r], rules.leverage[r],
                    affinity::FormatMeasure(rules.conviction[r], 3).c_str());
      out += buf + affinity::FormatRule(rules, r, baskets.dictionary()) + "\n";
    }
  }
  return out;
}

}  // namespace shoal
