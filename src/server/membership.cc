#include "server/membership.h"

#include <toml++/toml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "common/time.h"
#include "engine/engine.h"

namespace shoal {

MembershipSource::~MembershipSource() = default;

std::optional<TimeMicros> MembershipSource::MembershipsAndNextChange(
    const Engine& engine, uint32_t profile, TimeMicros now,
    std::vector<std::string>* memberships) const {
  *memberships = Memberships(engine, profile, now);
  return NextChange(engine, profile, now);
}

void MembershipSource::AppendProfileJson(const Engine&, uint32_t, TimeMicros, std::string*) const {}

namespace {

bool Compare(double v, TraitThreshold::Op op, double value) {
  if (std::isnan(v)) return false;
  switch (op) {
    case TraitThreshold::Op::kLess: return v < value;
    case TraitThreshold::Op::kLessEqual: return v <= value;
    case TraitThreshold::Op::kGreater: return v > value;
    case TraitThreshold::Op::kGreaterEqual: return v >= value;
    case TraitThreshold::Op::kEqual: return v == value;
    case TraitThreshold::Op::kNotEqual: return v != value;
  }
  return false;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool IsStaticTrait(std::string_view name) {
  static const char* const kStatic[] = {
      "frequency", "repeat_orders", "monetary_total", "aov", "net_spend", "ipi_mean_days",
      "ipi_std_days", "distinct_categories", "category_entropy", "discount_share",
      "premium_index", "product_views", "cart_adds", "checkout_starts", "view_to_cart",
      "cart_to_checkout", "checkout_to_order", "view_to_order", "sessions", "page_views",
      "pages_per_session", "searches", "email_sends", "email_opens", "email_clicks",
      "email_open_rate", "email_click_rate", "email_click_to_open", "email_open_latency_hours",
      "support_tickets", "returns", "return_rate", "refunded_amount", "share_web", "share_app",
      "share_email", "share_pos", "share_support", "share_desktop", "share_mobile",
      "share_tablet", "season_q1", "season_q2", "season_q3", "season_q4", "peak_week_share",
      "referrals", "consent_marketing", "events_total"};
  for (const char* s : kStatic) {
    if (name == s) return true;
  }
  return false;
}

}  // namespace

Result<TraitThreshold> ParseThresholdRule(std::string_view rule) {
  static const std::pair<std::string_view, TraitThreshold::Op> kOps[] = {
      {"<=", TraitThreshold::Op::kLessEqual}, {">=", TraitThreshold::Op::kGreaterEqual},
      {"==", TraitThreshold::Op::kEqual},     {"!=", TraitThreshold::Op::kNotEqual},
      {"<", TraitThreshold::Op::kLess},       {">", TraitThreshold::Op::kGreater},
      {"=", TraitThreshold::Op::kEqual}};
  for (const auto& [text, op] : kOps) {
    size_t pos = rule.find(text);
    if (pos == std::string_view::npos) continue;
    TraitThreshold t;
    t.trait = std::string(Trim(rule.substr(0, pos)));
    std::string_view number = Trim(rule.substr(pos + text.size()));
    t.op = op;
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), t.value);
    bool name_ok = !t.trait.empty() && std::all_of(t.trait.begin(), t.trait.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
    if (!name_ok || ec != std::errc() || ptr != number.data() + number.size() ||
        !std::isfinite(t.value)) {
      break;
    }
    return t;
  }
  return Status::ParseError("rule '" + std::string(rule) +
                            "' is not one comparison 'trait op number' (op: < <= > >= == !=), "
                            "the only form the built-in audience source evaluates");
}

Result<std::vector<TraitThreshold>> ParseTraitThresholds(const toml::table& root) {
  std::vector<TraitThreshold> out;
  const toml::node* node = root.get("audiences");
  if (node == nullptr) return out;
  const toml::array* list = node->as_array();
  if (list == nullptr) return Status::ParseError("[[audiences]] must be an array of tables");
  for (size_t i = 0; i < list->size(); ++i) {
    const toml::table* t = (*list)[i].as_table();
    if (t == nullptr) return Status::ParseError("[[audiences]] entry " + std::to_string(i) + " is not a table");
    auto name = (*t)["name"].value<std::string>();
    if (!name || name->empty()) {
      return Status::ParseError("[[audiences]] entry " + std::to_string(i) + ": missing name");
    }
    TraitThreshold spec;
    if (auto rule = (*t)["rule"].value<std::string>()) {
      auto parsed = ParseThresholdRule(*rule);
      if (!parsed.ok()) return parsed.status().WithContext("audience '" + *name + "'");
      spec = *parsed;
    } else {
      auto trait = (*t)["trait"].value<std::string>();
      auto op = (*t)["op"].value<std::string>();
      auto value = (*t)["value"].value<double>();
      if (!trait || !op || !value) {
        return Status::ParseError("audience '" + *name + "': needs rule = \"trait op number\" "
                                  "or trait, op and value");
      }
      auto parsed = ParseThresholdRule(*trait + " " + *op + " " + std::to_string(*value));
      if (!parsed.ok()) return parsed.status().WithContext("audience '" + *name + "'");
      spec = *parsed;
      spec.value = *value;
    }
    spec.audience = *name;
    for (const TraitThreshold& other : out) {
      if (other.audience == spec.audience) {
        return Status::ParseError("audience '" + *name + "' is defined twice");
      }
    }
    out.push_back(std::move(spec));
  }
  return out;
}

Result<std::unique_ptr<TraitThresholdSource>> TraitThresholdSource::Make(
    std::vector<TraitThreshold> audiences, const std::vector<std::string>& catalogue_traits) {
  auto source = std::unique_ptr<TraitThresholdSource>(new TraitThresholdSource());
  for (TraitThreshold& spec : audiences) {
    Bound b;
    auto it = std::find(catalogue_traits.begin(), catalogue_traits.end(), spec.trait);
    if (it == catalogue_traits.end()) {
      return Status::InvalidArgument("audience '" + spec.audience + "': unknown trait '" +
                                     spec.trait + "' (see docs/traits.md)");
    }
    b.trait_idx = static_cast<int>(it - catalogue_traits.begin());
    b.membership = "audience:" + spec.audience;
    if (spec.trait == "recency_days") b.clock = Bound::Clock::kSinceLastOrder;
    else if (spec.trait == "days_since_last_event") b.clock = Bound::Clock::kSinceLastEvent;
    else if (spec.trait == "tenure_days") b.clock = Bound::Clock::kSinceFirstEvent;
    else if (spec.trait == "first_order_days_ago") b.clock = Bound::Clock::kSinceFirstOrder;
    else if (IsStaticTrait(spec.trait)) b.clock = Bound::Clock::kNone;
    else b.clock = Bound::Clock::kMidnight;
    static const std::pair<std::string_view, Bound::Direct> kDirect[] = {
        {"recency_days", Bound::Direct::kRecencyDays},
        {"days_since_last_event", Bound::Direct::kDaysSinceLastEvent},
        {"tenure_days", Bound::Direct::kTenureDays},
        {"first_order_days_ago", Bound::Direct::kFirstOrderDaysAgo},
        {"frequency", Bound::Direct::kFrequency},
        {"monetary_total", Bound::Direct::kMonetaryTotal},
        {"events_total", Bound::Direct::kEventsTotal},
        {"consent_marketing", Bound::Direct::kConsentMarketing}};
    for (const auto& [name, direct] : kDirect) {
      if (spec.trait == name) b.direct = direct;
    }
    if (b.direct == Bound::Direct::kNone) source->all_direct_ = false;
    b.spec = std::move(spec);
    source->audiences_.push_back(std::move(b));
  }
  std::sort(source->audiences_.begin(), source->audiences_.end(),
            [](const Bound& a, const Bound& b) { return a.membership < b.membership; });
  return source;
}

std::vector<std::string> TraitThresholdSource::Memberships(const Engine& engine, uint32_t profile,
                                                           TimeMicros now) const {
  std::vector<std::string> out;
  if (audiences_.empty()) return out;
  const CustomerState& s = engine.state(profile);
  thread_local std::vector<double> values;
  if (!all_direct_) {
    values.assign(engine.catalogue().traits().size(), 0.0);
    engine.catalogue().ComputeOne(s, engine.population(), now, values);
  }
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  const double day_us = static_cast<double>(kMicrosPerDay);
  auto days_to = [&](TimeMicros t) { return static_cast<double>(now - t) / day_us; };
  for (const Bound& b : audiences_) {  // sorted by membership name
    double v = kNaN;
    switch (b.direct) {
      case Bound::Direct::kNone: v = values[static_cast<size_t>(b.trait_idx)]; break;
      case Bound::Direct::kRecencyDays:
        if (!s.orders().empty()) v = days_to(s.orders().back().timestamp);
        break;
      case Bound::Direct::kFirstOrderDaysAgo:
        if (!s.orders().empty()) v = days_to(s.orders().front().timestamp);
        break;
      case Bound::Direct::kDaysSinceLastEvent:
        if (!s.Empty()) v = days_to(s.LastEventTime());
        break;
      case Bound::Direct::kTenureDays:
        if (!s.Empty()) v = days_to(s.FirstEventTime());
        break;
      case Bound::Direct::kFrequency: v = static_cast<double>(s.orders().size()); break;
      case Bound::Direct::kMonetaryTotal: {
        int64_t fixed = 0;
        for (const auto& o : s.orders()) fixed += o.total_fixed;
        v = static_cast<double>(fixed) / kFixedScale;
        break;
      }
      case Bound::Direct::kEventsTotal: v = static_cast<double>(s.num_events()); break;
      case Bound::Direct::kConsentMarketing:
        if (s.consent() >= 0) v = s.consent();
        break;
    }
    if (Compare(v, b.spec.op, b.spec.value)) out.push_back(b.membership);
  }
  return out;
}

std::optional<TimeMicros> TraitThresholdSource::NextChange(const Engine& engine, uint32_t profile,
                                                           TimeMicros now) const {
  const CustomerState& s = engine.state(profile);
  std::optional<TimeMicros> best;
  auto consider = [&](TimeMicros t) {
    if (t > now && (!best || t < *best)) best = t;
  };
  for (const Bound& b : audiences_) {
    TimeMicros origin = 0;
    switch (b.clock) {
      case Bound::Clock::kNone: continue;
      case Bound::Clock::kMidnight: consider((DayOf(now) + 1) * kMicrosPerDay); continue;
      case Bound::Clock::kSinceLastOrder:
        if (s.orders().empty()) continue;
        origin = s.orders().back().timestamp;
        break;
      case Bound::Clock::kSinceFirstOrder:
        if (s.orders().empty()) continue;
        origin = s.orders().front().timestamp;
        break;
      case Bound::Clock::kSinceLastEvent:
        if (s.Empty()) continue;
        origin = s.LastEventTime();
        break;
      case Bound::Clock::kSinceFirstEvent:
        if (s.Empty()) continue;
        origin = s.FirstEventTime();
        break;
    }
    // The trait is (t - origin) / day; it crosses `value` at origin + value days. The first
    // whole microsecond after the crossing flips strict and inclusive comparisons alike (at most
    // one microsecond after an inclusive one's exact moment, never before it).
    double crossing = static_cast<double>(origin) + b.spec.value * static_cast<double>(kMicrosPerDay);
    if (!(crossing < 9.0e18) || !(crossing > -9.0e18)) continue;
    TimeMicros t = static_cast<TimeMicros>(std::floor(crossing)) + 1;
    consider(t);
  }
  return best;
}

std::vector<std::string> TraitThresholdSource::Definitions() const {
  std::vector<std::string> out;
  for (const Bound& b : audiences_) out.push_back(b.membership);
  return out;
}

}  // namespace shoal
