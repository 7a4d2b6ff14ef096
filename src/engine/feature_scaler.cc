#include "engine/feature_scaler.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/coding.h"

namespace shoal {

namespace {

constexpr uint64_t kFormat = 2;

// The clustering traits shoal knows: `log` marks skewed counts, money and durations;
// `by_default` the default feature set. monetary_total is not a default: in log space it is
// log(frequency) + log(aov), and with both of those present it would count spend twice.
struct FeatureSpec {
  const char* name;
  bool log;
  bool by_default;
};
constexpr FeatureSpec kKnownFeatures[] = {
    {"frequency", true, true},           {"monetary_total", true, false},
    {"aov", true, true},                 {"recency_days", true, true},
    {"discount_share", false, true},     {"premium_index", false, true},
    {"distinct_categories", true, true}, {"new_categories_30d", true, true},
    {"cart_abandonment_rate", false, true}, {"cart_abandonment_count", true, true},
    {"product_views", true, true},       {"sessions", true, true},
    {"email_open_rate", false, true},    {"ipi_std_days", true, true},
    {"return_rate", false, true},
};

// Rates estimated from few observations are noise (one order says little about a discount
// habit): each is shrunk toward its population mean by its denominator.
constexpr std::pair<std::string_view, std::string_view> kRateSupport[] = {
    {"discount_share", "frequency"},      {"premium_index", "frequency"},
    {"return_rate", "frequency"},         {"category_entropy", "frequency"},
    {"season_q1", "frequency"},           {"season_q2", "frequency"},
    {"season_q3", "frequency"},           {"season_q4", "frequency"},
    {"peak_week_share", "frequency"},     {"cart_abandonment_rate", "cart_adds"},
    {"view_to_cart", "product_views"},    {"view_to_order", "product_views"},
    {"cart_to_checkout", "cart_adds"},    {"checkout_to_order", "checkout_starts"},
    {"email_open_rate", "email_sends"},   {"email_click_rate", "email_sends"},
    {"email_click_to_open", "email_opens"}, {"pages_per_session", "sessions"},
    {"share_web", "events_total"},        {"share_app", "events_total"},
    {"share_email", "events_total"},      {"share_pos", "events_total"},
    {"share_support", "events_total"},
};

// The q-quantile (lower order statistic) of v; v is reordered.
double Quantile(std::vector<double>& v, double q) {
  size_t k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

std::vector<std::string> DefaultClusteringFeatures() {
  std::vector<std::string> out;
  for (const FeatureSpec& f : kKnownFeatures) {
    if (f.by_default) out.emplace_back(f.name);
  }
  return out;
}

bool IsLogTrait(std::string_view name) {
  for (const FeatureSpec& f : kKnownFeatures) {
    if (f.name == name) return f.log;
  }
  return name.ends_with("_days") || name.ends_with("_count") ||
         name.find("orders") != std::string_view::npos ||
         name.find("spend") != std::string_view::npos || name == "sessions" || name == "page_views";
}

std::string_view RateSupport(std::string_view name) {
  for (const auto& [rate, support] : kRateSupport) {
    if (rate == name) return support;
  }
  return {};
}

double FeatureScaler::Prepare(size_t f, double v, double support_value) const {
  if (!support[f].empty() && shrinkage > 0) {
    double n = std::isnan(support_value) ? 0.0 : std::max(0.0, support_value);
    double x = std::isnan(v) ? prior[f] : v;
    v = (n * x + shrinkage * prior[f]) / (n + shrinkage);
  } else if (std::isnan(v)) {
    v = impute[f];
  }
  return log[f] ? std::log1p(std::max(0.0, v)) : v;
}

double FeatureScaler::Transform(size_t f, double v, double support_value) const {
  v = std::clamp(Prepare(f, v, support_value), lo[f], hi[f]);
  return std::clamp((v - center[f]) / scale[f], -kClip, kClip);
}

std::optional<double> FeatureScaler::Invert(size_t f, double scaled) const {
  auto standardise = [&](double g) { return std::clamp((g - center[f]) / scale[f], -kClip, kClip); };
  if (!(scaled >= standardise(lo[f]) && scaled <= standardise(hi[f]))) return std::nullopt;
  const double g = std::clamp(scaled * scale[f] + center[f], lo[f], hi[f]);
  return log[f] ? std::expm1(g) : g;
}

void FeatureScaler::Serialize(std::string* out) const {
  PutVarint(out, kFormat);
  PutDouble(out, shrinkage);
  PutVarint(out, features.size());
  for (size_t f = 0; f < features.size(); ++f) {
    PutString(out, features[f]);
    PutString(out, support[f]);
    out->push_back(static_cast<char>(log[f]));
    for (double v : {impute[f], prior[f], lo[f], hi[f], center[f], scale[f]}) PutDouble(out, v);
  }
}

bool FeatureScaler::Deserialize(std::string_view in) {
  *this = FeatureScaler();
  Reader r(in);
  if (r.Varint() != kFormat) return false;
  shrinkage = r.Double();
  size_t n = r.Varint();
  if (n > r.Remaining()) return false;
  for (size_t f = 0; f < n && r.ok(); ++f) {
    features.emplace_back(r.String());
    support.emplace_back(r.String());
    log.push_back(r.Byte());
    for (auto* v : {&impute, &prior, &lo, &hi, &center, &scale}) v->push_back(r.Double());
  }
  return r.ok();
}

FeatureScaler FitFeatureScaler(const std::vector<std::string>& features,
                               const std::vector<std::span<const double>>& columns,
                               const std::vector<std::string>& support_names,
                               const std::vector<std::span<const double>>& support_columns,
                               double shrinkage, double winsor) {
  FeatureScaler s;
  s.features = features;
  s.support = support_names;
  s.shrinkage = shrinkage;
  std::vector<double> t;
  for (size_t f = 0; f < features.size(); ++f) {
    const std::span<const double> column = columns[f];
    s.log.push_back(IsLogTrait(features[f]) ? 1 : 0);
    // Undefined means "none of it": 0, except recency, where never is as long ago as anyone.
    double impute = 0;
    if (features[f] == "recency_days" || features[f] == "ipi_std_days") {
      for (double v : column) {
        if (!std::isnan(v)) impute = std::max(impute, v);
      }
    }
    s.impute.push_back(impute);
    double sum = 0;
    size_t defined = 0;
    for (double v : column) {
      if (!std::isnan(v)) sum += v, ++defined;
    }
    s.prior.push_back(defined ? sum / static_cast<double>(defined) : 0.0);
    t.clear();
    for (size_t row = 0; row < column.size(); ++row) {
      t.push_back(s.Prepare(f, column[row], support_columns[f].empty() ? 0.0 : support_columns[f][row]));
    }
    double lo = 0, hi = 0;
    if (!t.empty()) {
      lo = winsor > 0 ? Quantile(t, winsor) : *std::min_element(t.begin(), t.end());
      hi = winsor > 0 ? Quantile(t, 1 - winsor) : *std::max_element(t.begin(), t.end());
    }
    double mean = 0;
    for (double& x : t) {
      x = std::clamp(x, lo, hi);
      mean += x;
    }
    mean /= static_cast<double>(std::max<size_t>(1, t.size()));
    double var = 0;
    for (double x : t) var += (x - mean) * (x - mean);
    double sd = std::sqrt(var / static_cast<double>(std::max<size_t>(1, t.size())));
    s.lo.push_back(lo);
    s.hi.push_back(hi);
    s.center.push_back(mean);
    s.scale.push_back(sd > 1e-12 ? sd : 1.0);
  }
  return s;
}

}  // namespace shoal
