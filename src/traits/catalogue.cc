#include "traits/catalogue.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

#include "common/parallel.h"
#include "common/time.h"

namespace shoal {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMicrosPerHour = 3600.0 * 1e6;

// The built-in traits: enum name, trait name, unit, definition. docs/traits.md mirrors this.
#define SHOAL_BUILTIN_TRAITS(X)                                                                    \
  X(kRecencyDays, "recency_days", "days", "as_of minus the last order's time; NaN without orders") \
  X(kDaysSinceLastEvent, "days_since_last_event", "days", "as_of minus the last event's time")     \
  X(kTenureDays, "tenure_days", "days", "as_of minus the first event's time")                      \
  X(kFirstOrderDaysAgo, "first_order_days_ago", "days",                                            \
    "as_of minus the first order's time; NaN without orders")                                      \
  X(kFrequency, "frequency", "count", "number of orders")                                          \
  X(kRepeatOrders, "repeat_orders", "count", "orders after the first: max(0, orders - 1)")         \
  X(kMonetaryTotal, "monetary_total", "currency", "sum of order totals")                           \
  X(kAov, "aov", "currency", "average order value: monetary_total / orders; NaN without orders")   \
  X(kNetSpend, "net_spend", "currency", "monetary_total minus refunded_amount")                    \
  X(kIpiMeanDays, "ipi_mean_days", "days",                                                         \
    "mean gap between consecutive distinct order days; NaN with fewer than 2 order days")          \
  X(kIpiStdDays, "ipi_std_days", "days",                                                           \
    "population standard deviation of those gaps; NaN with fewer than 2 order days")               \
  X(kDistinctCategories, "distinct_categories", "count", "distinct categories of order lines")     \
  X(kCategoryEntropy, "category_entropy", "nats",                                                  \
    "Shannon entropy (natural log) of order lines over categories; NaN without categorised lines") \
  X(kNewCategories30d, "new_categories_30d", "count",                                              \
    "categories first viewed or ordered within the last 30 days")                                  \
  X(kDiscountShare, "discount_share", "share",                                                     \
    "discounts / (monetary_total + discounts); NaN when that gross is <= 0")                       \
  X(kPremiumIndex, "premium_index", "log ratio",                                                   \
    "mean over priced, categorised order lines of log(unit_price / category median unit price); "  \
    "0 = pays the median, 0.1 = about 10% above; NaN without such lines")                          \
  X(kProductViews, "product_views", "count", "product_view events")                                \
  X(kCartAdds, "cart_adds", "count", "cart_add events")                                            \
  X(kCheckoutStarts, "checkout_starts", "count", "checkout_start events")                          \
  X(kViewToCart, "view_to_cart", "ratio", "cart_adds / product_views; NaN without views")          \
  X(kCartToCheckout, "cart_to_checkout", "ratio",                                                  \
    "checkout_starts / cart_adds; NaN without cart adds")                                          \
  X(kCheckoutToOrder, "checkout_to_order", "ratio",                                                \
    "orders / checkout_starts; NaN without checkouts")                                             \
  X(kViewToOrder, "view_to_order", "ratio", "orders / product_views; NaN without views")           \
  X(kCartAbandonmentCount, "cart_abandonment_count", "count",                                      \
    "days D with a cart_add or checkout_start, no order on D or D+1, and D+1 <= day(as_of)")       \
  X(kCartAbandonmentRate, "cart_abandonment_rate", "share",                                        \
    "abandoned cart days / cart days with D+1 <= day(as_of); NaN when none")                       \
  X(kSessions, "sessions", "count", "session_start events")                                        \
  X(kPageViews, "page_views", "count", "page_view events")                                         \
  X(kPagesPerSession, "pages_per_session", "ratio", "page_views / sessions; NaN without sessions") \
  X(kSearches, "searches", "count", "search events")                                               \
  X(kEmailSends, "email_sends", "count", "email_send events")                                      \
  X(kEmailOpens, "email_opens", "count", "email_open events")                                      \
  X(kEmailClicks, "email_clicks", "count", "email_click events")                                   \
  X(kEmailOpenRate, "email_open_rate", "ratio", "email_opens / email_sends; NaN without sends")    \
  X(kEmailClickRate, "email_click_rate", "ratio",                                                  \
    "email_clicks / email_sends (per send); NaN without sends")                                    \
  X(kEmailClickToOpen, "email_click_to_open", "ratio",                                             \
    "email_clicks / email_opens; NaN without opens")                                               \
  X(kEmailOpenLatencyHours, "email_open_latency_hours", "hours",                                   \
    "mean over campaigns with a send and a later-or-equal open of (first open - first send); "     \
    "NaN when none")                                                                               \
  X(kSupportTickets, "support_tickets", "count", "support_ticket events")                          \
  X(kReturns, "returns", "count", "return events")                                                 \
  X(kReturnRate, "return_rate", "ratio", "returns / orders; NaN without orders")                   \
  X(kRefundedAmount, "refunded_amount", "currency", "sum of return totals")                        \
  X(kShareWeb, "share_web", "share", "share of events with a known channel that are web")          \
  X(kShareApp, "share_app", "share", "share of events with a known channel that are app")          \
  X(kShareEmail, "share_email", "share", "share of events with a known channel that are email")    \
  X(kSharePos, "share_pos", "share", "share of events with a known channel that are pos")          \
  X(kShareSupport, "share_support", "share",                                                       \
    "share of events with a known channel that are support")                                       \
  X(kShareDesktop, "share_desktop", "share",                                                       \
    "share of events with a known device that are desktop")                                        \
  X(kShareMobile, "share_mobile", "share", "share of events with a known device that are mobile")  \
  X(kShareTablet, "share_tablet", "share", "share of events with a known device that are tablet")  \
  X(kOrders7d, "orders_7d", "count", "orders in the last 7 days")                                  \
  X(kOrders30d, "orders_30d", "count", "orders in the last 30 days")                               \
  X(kOrders90d, "orders_90d", "count", "orders in the last 90 days")                               \
  X(kOrders365d, "orders_365d", "count", "orders in the last 365 days")                            \
  X(kSpend7d, "spend_7d", "currency", "order totals in the last 7 days")                           \
  X(kSpend30d, "spend_30d", "currency", "order totals in the last 30 days")                        \
  X(kSpend90d, "spend_90d", "currency", "order totals in the last 90 days")                        \
  X(kSpend365d, "spend_365d", "currency", "order totals in the last 365 days")                     \
  X(kViews30d, "views_30d", "count", "product views in the last 30 days")                          \
  X(kSessions30d, "sessions_30d", "count", "session starts in the last 30 days")                   \
  X(kTrendOrders, "trend_orders", "ratio",                                                         \
    "(r30 - r90) / (r30 + r90), r30 = orders in the last 30 days / 30, r90 = orders in the 90 "    \
    "days before those / 90; 0 when both are 0")                                                   \
  X(kTrendSpend, "trend_spend", "ratio", "trend_orders with order totals instead of counts")       \
  X(kSeasonQ1, "season_q1", "share", "share of orders in January-March (UTC); NaN without orders") \
  X(kSeasonQ2, "season_q2", "share", "share of orders in April-June; NaN without orders")          \
  X(kSeasonQ3, "season_q3", "share", "share of orders in July-September; NaN without orders")      \
  X(kSeasonQ4, "season_q4", "share", "share of orders in October-December; NaN without orders")    \
  X(kPeakWeekShare, "peak_week_share", "share",                                                    \
    "share of orders in the configured peak ISO weeks; NaN without orders")                        \
  X(kReferrals, "referrals", "count", "referral events")                                           \
  X(kConsentMarketing, "consent_marketing", "flag",                                                \
    "latest consent event: 1 opt-in, 0 opt-out (opt-out wins a tie); NaN without consent events")  \
  X(kEventsTotal, "events_total", "count", "events of every type, custom ones included")

enum BuiltinTrait : size_t {
#define SHOAL_TRAIT_ENUM(id, name, unit, description) id,
  SHOAL_BUILTIN_TRAITS(SHOAL_TRAIT_ENUM)
#undef SHOAL_TRAIT_ENUM
      kNumBuiltinTraits
};

std::string UserTraitUnit(const UserTraitSpec& spec) {
  switch (spec.aggregate) {
    case TraitAggregate::kCount:
    case TraitAggregate::kDistinct:
      return "count";
    case TraitAggregate::kTimeSince:
      return "days";
    default:
      return "value";
  }
}

std::string UserTraitDescription(const UserTraitSpec& spec) {
  std::string d = "user trait: " + std::string(TraitAggregateName(spec.aggregate));
  if (!spec.property.empty()) d += " of " + spec.property;
  if (spec.window_days > 0) d += " over the last " + std::to_string(spec.window_days) + " days";
  if (!spec.where_property.empty()) {
    d += " where " + spec.where_property + " = '" + spec.where_equals + "'";
  }
  return d;
}

double Ratio(double num, double den) { return den > 0 ? num / den : kNaN; }

bool InWindow(int64_t day, int64_t as_of_day, int window_days) {
  return day <= as_of_day && day > as_of_day - window_days;
}

// Sections of ComputeWith that a subset of traits may skip; the traits outside every section
// (counts, ratios, recencies, order totals) cost O(1) and are always computed.
enum Section : uint32_t {
  kSectionIntervals = 1u << 0,   // inter-purchase intervals: two passes over every order
  kSectionWindows = 1u << 8,     // order windows and trends: the orders of the last 365 days
  kSectionSeasons = 1u << 1,     // calendar quarter and ISO week of the orders
  kSectionCategories = 1u << 2,  // distinct categories, entropy, new categories
  kSectionPremium = 1u << 3,     // the population's category medians
  kSectionCartDays = 1u << 4,    // cart abandonment
  kSectionCampaigns = 1u << 5,   // email open latency
  kSectionActivity = 1u << 6,    // views_30d, sessions_30d
  kSectionUser = 1u << 7,        // the user traits
};

uint32_t SectionOf(size_t trait_idx) {
  switch (trait_idx) {
    case kIpiMeanDays:
    case kIpiStdDays:
      return kSectionIntervals;
    case kOrders7d:
    case kOrders30d:
    case kOrders90d:
    case kOrders365d:
    case kSpend7d:
    case kSpend30d:
    case kSpend90d:
    case kSpend365d:
    case kTrendOrders:
    case kTrendSpend:
      return kSectionWindows;
    case kSeasonQ1:
    case kSeasonQ2:
    case kSeasonQ3:
    case kSeasonQ4:
    case kPeakWeekShare:
      return kSectionSeasons;
    case kDistinctCategories:
    case kCategoryEntropy:
    case kNewCategories30d:
      return kSectionCategories;
    case kPremiumIndex:
      return kSectionPremium;
    case kCartAbandonmentCount:
    case kCartAbandonmentRate:
      return kSectionCartDays;
    case kEmailOpenLatencyHours:
      return kSectionCampaigns;
    case kViews30d:
    case kSessions30d:
      return kSectionActivity;
    default:
      return trait_idx >= kNumBuiltinTraits ? uint32_t{kSectionUser} : uint32_t{0};
  }
}

}  // namespace

const std::vector<TraitInfo>& BuiltinTraits() {
  static const std::vector<TraitInfo> kTraits = {
#define SHOAL_TRAIT_INFO(id, name, unit, description) TraitInfo{name, description, unit},
      SHOAL_BUILTIN_TRAITS(SHOAL_TRAIT_INFO)
#undef SHOAL_TRAIT_INFO
  };
  return kTraits;
}

bool IsBuiltinTraitName(std::string_view name) {
  for (const TraitInfo& t : BuiltinTraits()) {
    if (t.name == name) return true;
  }
  return false;
}

int IsoWeekOfDay(int64_t day) {
  int64_t weekday = ((day + 3) % 7 + 7) % 7;  // Monday = 0; 1970-01-01 was a Thursday
  int64_t thursday = day - weekday + 3;       // the ISO year is the year of this Thursday
  int64_t year;
  unsigned month, mday;
  CivilFromDays(thursday, &year, &month, &mday);
  return static_cast<int>((thursday - DaysFromCivil(year, 1, 1)) / 7 + 1);
}

int TraitMatrix::Find(std::string_view name) const {
  for (size_t i = 0; i < traits.size(); ++i) {
    if (traits[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

TraitCatalogue::TraitCatalogue(TraitConfig config) : config_(std::move(config)) {
  traits_ = BuiltinTraits();
  for (const UserTraitSpec& spec : config_.user_traits) {
    traits_.push_back({spec.name, UserTraitDescription(spec), UserTraitUnit(spec)});
  }
  peak_week_.assign(54, false);
  for (int week : config_.peak_iso_weeks) {
    if (week >= 1 && week <= 53) peak_week_[static_cast<size_t>(week)] = true;
  }
}

int TraitCatalogue::Find(std::string_view name) const {
  for (size_t i = 0; i < traits_.size(); ++i) {
    if (traits_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

namespace {
template <typename LogMedianFn>
double PremiumIndex(const CustomerState& state, LogMedianFn log_median) {
  // mean(log p - log m_c) = (sum log p - sum_c n_c log m_c) / n over lines whose category has a
  // median (it always has one: the line's own price is in the population).
  double sum_log_median = 0;
  uint64_t lines = 0;
  for (const CustomerState::CategoryStats& c : state.categories()) {
    if (c.priced_lines == 0) continue;
    double m = log_median(c.category_id);
    if (!std::isfinite(m)) return kNaN;  // population lacks this state's prices: not comparable
    sum_log_median += static_cast<double>(c.priced_lines) * m;
    lines += c.priced_lines;
  }
  if (lines == 0) return kNaN;
  return (state.SumLogUnitPrice() - sum_log_median) / static_cast<double>(lines);
}
}  // namespace

void TraitCatalogue::ComputeOne(const CustomerState& state, const PopulationState& population,
                                TimeMicros as_of, std::span<double> out) const {
  double premium = PremiumIndex(
      state, [&](uint32_t id) { return std::log(population.CategoryMedianPrice(id)); });
  ComputeWith(state, premium, as_of, kAllSections, out);
}

TraitSelection TraitCatalogue::Select(std::span<const int> trait_indices) const {
  TraitSelection selection;
  selection.wanted_.assign(traits_.size(), 0);
  for (int idx : trait_indices) {
    if (idx < 0 || static_cast<size_t>(idx) >= traits_.size()) continue;
    const auto trait_idx = static_cast<size_t>(idx);
    if (selection.wanted_[trait_idx]) continue;
    selection.wanted_[trait_idx] = 1;
    selection.sections_ |= SectionOf(trait_idx);
    ++selection.count_;
  }
  return selection;
}

void TraitCatalogue::ComputeSelected(const CustomerState& state,
                                     const PopulationState& population, TimeMicros as_of,
                                     const TraitSelection& selection,
                                     std::span<double> out) const {
  assert(selection.wanted_.size() == traits_.size());
  double premium = kNaN;
  if (selection.sections_ & kSectionPremium) {
    premium = PremiumIndex(
        state, [&](uint32_t id) { return std::log(population.CategoryMedianPrice(id)); });
  }
  ComputeWith(state, premium, as_of, selection.sections_, out);
  for (size_t trait_idx = 0; trait_idx < out.size(); ++trait_idx) {
    if (!selection.Contains(trait_idx)) out[trait_idx] = kNaN;
  }
}

void TraitCatalogue::Compute(std::span<const CustomerState* const> states,
                             const PopulationState& population, TimeMicros as_of,
                             const Context& ctx, TraitMatrix* out,
                             const TraitSelection* selection) const {
  assert(selection == nullptr || selection->wanted_.size() == traits_.size());
  const uint32_t sections = selection != nullptr ? selection->sections_ : kAllSections;
  const bool premium_needed = (sections & kSectionPremium) != 0;
  const std::vector<double> log_medians =
      premium_needed ? population.CategoryLogMedians() : std::vector<double>();
  const size_t n = states.size();
  out->num_customers = n;
  out->traits = traits_;
  out->values.assign(traits_.size() * n, kNaN);
  ParallelFor(
      n, ctx.Threads(),
      [&](size_t begin, size_t end, int) {
        std::vector<double> row(traits_.size());
        for (size_t customer_idx = begin; customer_idx < end; ++customer_idx) {
          const CustomerState& s = *states[customer_idx];
          double premium = kNaN;
          if (premium_needed) {
            premium = PremiumIndex(
                s, [&](uint32_t id) { return id < log_medians.size() ? log_medians[id] : kNaN; });
          }
          ComputeWith(s, premium, as_of, sections, row);
          for (size_t trait_idx = 0; trait_idx < row.size(); ++trait_idx) {
            if (selection == nullptr || selection->Contains(trait_idx)) {
              out->values[trait_idx * n + customer_idx] = row[trait_idx];
            }
          }
        }
      },
      256);
}

void TraitCatalogue::ComputeWith(const CustomerState& s, double premium_index, TimeMicros as_of,
                                 uint32_t sections, std::span<double> out) const {
  assert(out.size() == traits_.size());
  std::fill(out.begin(), out.end(), kNaN);
  const int64_t as_of_day = DayOf(as_of);
  const double day_us = static_cast<double>(kMicrosPerDay);
  auto days_to = [&](TimeMicros t) { return static_cast<double>(as_of - t) / day_us; };
  auto count = [&](EventType t) { return static_cast<double>(s.TypeCount(t)); };
  const auto orders = s.orders();
  const double num_orders = static_cast<double>(orders.size());

  // Recency, tenure, order totals.
  if (!s.Empty()) {
    out[kDaysSinceLastEvent] = days_to(s.LastEventTime());
    out[kTenureDays] = days_to(s.FirstEventTime());
  }
  const int64_t monetary_fixed = s.OrdersTotalFixed();
  const double monetary = static_cast<double>(monetary_fixed) / kFixedScale;
  if (!orders.empty()) {
    out[kRecencyDays] = days_to(orders.back().timestamp);
    out[kFirstOrderDaysAgo] = days_to(orders.front().timestamp);
    out[kAov] = monetary / num_orders;
  }
  out[kFrequency] = num_orders;
  out[kRepeatOrders] = std::max(0.0, num_orders - 1);
  out[kMonetaryTotal] = monetary;
  out[kNetSpend] = monetary - s.RefundedTotal();

  // Inter-purchase intervals over distinct order days (carried by the state: O(1) unless an
  // order opened a new order day since they were last read).
  if ((sections & kSectionIntervals) && !orders.empty()) {
    const IntervalStatistics intervals = s.OrderIntervals();
    out[kIpiMeanDays] = intervals.mean_days;
    out[kIpiStdDays] = intervals.std_days;
  }

  // Windows and trends: the orders are sorted by time, so the scan goes from the newest back
  // and stops at the first order older than the longest window (a customer with years of
  // orders costs what the last year's cost). Spend is summed in fixed point, exactly.
  if (sections & kSectionWindows) {
    constexpr int kWindows[4] = {7, 30, 90, 365};
    constexpr int kTrendRecent = 30, kTrendEarlier = 90;
    constexpr int kLongest = std::max(kWindows[3], kTrendRecent + kTrendEarlier);
    double window_orders[4] = {};
    uint64_t window_spend_fixed[4] = {};  // unsigned: wraps like the order totals, never UB
    double recent_orders = 0, earlier_orders = 0;
    uint64_t recent_spend = 0, earlier_spend = 0;
    for (size_t i = orders.size(); i-- > 0;) {
      const int64_t day = DayOf(orders[i].timestamp);
      if (day > as_of_day) continue;  // after the as-of date
      if (day <= as_of_day - kLongest) break;
      const auto total = static_cast<uint64_t>(orders[i].total_fixed);
      for (int w = 0; w < 4; ++w) {
        if (InWindow(day, as_of_day, kWindows[w])) {
          window_orders[w] += 1;
          window_spend_fixed[w] += total;
        }
      }
      if (InWindow(day, as_of_day, kTrendRecent)) {
        recent_orders += 1;
        recent_spend += total;
      } else if (InWindow(day, as_of_day - kTrendRecent, kTrendEarlier)) {
        earlier_orders += 1;
        earlier_spend += total;
      }
    }
    const BuiltinTrait kOrderWindows[4] = {kOrders7d, kOrders30d, kOrders90d, kOrders365d};
    const BuiltinTrait kSpendWindows[4] = {kSpend7d, kSpend30d, kSpend90d, kSpend365d};
    for (int w = 0; w < 4; ++w) {
      out[kOrderWindows[w]] = window_orders[w];
      out[kSpendWindows[w]] = static_cast<double>(static_cast<int64_t>(window_spend_fixed[w])) / kFixedScale;
    }
    auto trend = [](double recent, double earlier) {
      double r30 = recent / 30, r90 = earlier / 90;
      return r30 + r90 > 0 ? (r30 - r90) / (r30 + r90) : 0.0;
    };
    out[kTrendOrders] = trend(recent_orders, earlier_orders);
    out[kTrendSpend] = trend(static_cast<double>(static_cast<int64_t>(recent_spend)),
                             static_cast<double>(static_cast<int64_t>(earlier_spend)));
  }

  // Seasonality. The calendar quarter and the ISO week of a day are looked up only when the day
  // leaves the quarter / week (Monday to Sunday) of the previous order: orders are sorted by
  // time, so that is once per quarter and week spanned, not once per order.
  if ((sections & kSectionSeasons) && !orders.empty()) {
    double quarter[4] = {}, peak = 0;
    int64_t quarter_begin = 1, quarter_end = 0;  // empty: the first order looks up
    int64_t week_begin = 1, week_end = 0;
    size_t quarter_idx = 0;
    bool peak_week = false;
    for (const auto& o : orders) {
      const int64_t day = DayOf(o.timestamp);
      if (day < quarter_begin || day >= quarter_end) {
        int64_t year;
        unsigned month, mday;
        CivilFromDays(day, &year, &month, &mday);
        quarter_idx = (month - 1) / 3;
        const auto first_month = static_cast<unsigned>(quarter_idx * 3 + 1);
        quarter_begin = DaysFromCivil(year, first_month, 1);
        quarter_end = quarter_idx == 3 ? DaysFromCivil(year + 1, 1, 1)
                                       : DaysFromCivil(year, first_month + 3, 1);
      }
      if (day < week_begin || day >= week_end) {
        week_begin = day - ((day + 3) % 7 + 7) % 7;  // Monday; 1970-01-01 was a Thursday
        week_end = week_begin + 7;
        peak_week = peak_week_[static_cast<size_t>(IsoWeekOfDay(day))];
      }
      quarter[quarter_idx] += 1;
      if (peak_week) peak += 1;
    }
    out[kSeasonQ1] = quarter[0] / num_orders;
    out[kSeasonQ2] = quarter[1] / num_orders;
    out[kSeasonQ3] = quarter[2] / num_orders;
    out[kSeasonQ4] = quarter[3] / num_orders;
    out[kPeakWeekShare] = peak / num_orders;
  }

  // Categories.
  if (sections & kSectionCategories) {
    double categorised_lines = 0, distinct = 0, new_categories = 0;
    for (const auto& c : s.categories()) {
      if (c.order_lines > 0) {
        distinct += 1;
        categorised_lines += c.order_lines;
      }
      if (InWindow(c.first_day, as_of_day, 30)) new_categories += 1;
    }
    out[kDistinctCategories] = distinct;
    if (categorised_lines > 0) {
      double entropy = 0;
      for (const auto& c : s.categories()) {
        if (c.order_lines == 0) continue;
        double p = c.order_lines / categorised_lines;
        entropy -= p * std::log(p);
      }
      out[kCategoryEntropy] = entropy;
    }
    out[kNewCategories30d] = new_categories;
  }
  double discounts = s.DiscountTotal();
  double gross = monetary + discounts;
  out[kDiscountShare] = gross > 0 ? discounts / gross : kNaN;
  out[kPremiumIndex] = premium_index;

  // Funnel.
  const double views = count(EventType::kProductView), carts = count(EventType::kCartAdd),
               checkouts = count(EventType::kCheckoutStart);
  out[kProductViews] = views;
  out[kCartAdds] = carts;
  out[kCheckoutStarts] = checkouts;
  out[kViewToCart] = Ratio(carts, views);
  out[kCartToCheckout] = Ratio(checkouts, carts);
  out[kCheckoutToOrder] = Ratio(num_orders, checkouts);
  out[kViewToOrder] = Ratio(num_orders, views);
  if (sections & kSectionCartDays) {
    double abandoned = 0, cart_days = 0;
    size_t order_idx = 0;
    for (int32_t cart_day : s.cart_days()) {
      if (static_cast<int64_t>(cart_day) + 1 > as_of_day) break;
      cart_days += 1;
      while (order_idx < orders.size() && DayOf(orders[order_idx].timestamp) < cart_day) {
        ++order_idx;
      }
      bool ordered =
          order_idx < orders.size() && DayOf(orders[order_idx].timestamp) <= cart_day + 1;
      if (!ordered) abandoned += 1;
    }
    out[kCartAbandonmentCount] = abandoned;
    out[kCartAbandonmentRate] = Ratio(abandoned, cart_days);
  }

  // Sessions and email.
  const double sessions = count(EventType::kSessionStart), pages = count(EventType::kPageView);
  out[kSessions] = sessions;
  out[kPageViews] = pages;
  out[kPagesPerSession] = Ratio(pages, sessions);
  out[kSearches] = count(EventType::kSearch);
  const double sends = count(EventType::kEmailSend), opens = count(EventType::kEmailOpen),
               clicks = count(EventType::kEmailClick);
  out[kEmailSends] = sends;
  out[kEmailOpens] = opens;
  out[kEmailClicks] = clicks;
  out[kEmailOpenRate] = Ratio(opens, sends);
  out[kEmailClickRate] = Ratio(clicks, sends);
  out[kEmailClickToOpen] = Ratio(clicks, opens);
  if (sections & kSectionCampaigns) {
    double latency_sum = 0, latencies = 0;
    for (size_t i = 0; i < s.num_campaigns(); ++i) {
      const CustomerState::Campaign c = s.campaign(i);
      if (c.first_send == CustomerState::kNoTime || c.first_open == CustomerState::kNoTime ||
          c.first_open < c.first_send) {
        continue;
      }
      latency_sum += static_cast<double>(c.first_open - c.first_send) / kMicrosPerHour;
      latencies += 1;
    }
    out[kEmailOpenLatencyHours] = Ratio(latency_sum, latencies);
  }

  // Service, returns.
  out[kSupportTickets] = count(EventType::kSupportTicket);
  out[kReturns] = count(EventType::kReturn);
  out[kReturnRate] = Ratio(count(EventType::kReturn), num_orders);
  out[kRefundedAmount] = s.RefundedTotal();

  // Channel and device shares.
  double known_channel = 0;
  for (size_t c = 1; c < static_cast<size_t>(Channel::kNumChannels); ++c) {
    known_channel += s.ChannelCount(static_cast<Channel>(c));
  }
  out[kShareWeb] = Ratio(s.ChannelCount(Channel::kWeb), known_channel);
  out[kShareApp] = Ratio(s.ChannelCount(Channel::kApp), known_channel);
  out[kShareEmail] = Ratio(s.ChannelCount(Channel::kEmail), known_channel);
  out[kSharePos] = Ratio(s.ChannelCount(Channel::kPos), known_channel);
  out[kShareSupport] = Ratio(s.ChannelCount(Channel::kSupport), known_channel);
  double known_device = 0;
  for (size_t d = 1; d < static_cast<size_t>(DeviceClass::kNumDevices); ++d) {
    known_device += s.DeviceCount(static_cast<DeviceClass>(d));
  }
  out[kShareDesktop] = Ratio(s.DeviceCount(DeviceClass::kDesktop), known_device);
  out[kShareMobile] = Ratio(s.DeviceCount(DeviceClass::kMobile), known_device);
  out[kShareTablet] = Ratio(s.DeviceCount(DeviceClass::kTablet), known_device);

  // Recent activity.
  if (sections & kSectionActivity) {
    double views_30d = 0, sessions_30d = 0;
    for (const auto& d : s.activity_days()) {
      if (!InWindow(d.day, as_of_day, 30)) continue;
      views_30d += d.product_views;
      sessions_30d += d.sessions;
    }
    out[kViews30d] = views_30d;
    out[kSessions30d] = sessions_30d;
  }
  out[kReferrals] = count(EventType::kReferral);
  if (s.consent() >= 0) out[kConsentMarketing] = s.consent();
  out[kEventsTotal] = static_cast<double>(s.num_events());

  // User traits.
  if (!(sections & kSectionUser)) return;
  const auto user = s.user_traits();  // sparse, sorted by trait_idx
  size_t user_pos = 0;
  for (size_t i = 0; i < config_.user_traits.size(); ++i) {
    const UserTraitSpec& spec = config_.user_traits[i];
    double& value = out[kNumBuiltinTraits + i];
    const bool zero_default = spec.aggregate == TraitAggregate::kCount ||
                              spec.aggregate == TraitAggregate::kSum ||
                              spec.aggregate == TraitAggregate::kDistinct;
    value = zero_default ? 0.0 : kNaN;
    while (user_pos < user.size() && user[user_pos].trait_idx < i) ++user_pos;
    if (user_pos >= user.size() || user[user_pos].trait_idx != i) continue;
    const CustomerState::UserTraitState& u = user[user_pos];
    const TraitAggregate aggregate = spec.aggregate;
    uint64_t n = u.count;
    int64_t folded = u.value;  // sum or extreme (fixed point), or latest time
    uint64_t distinct_values = u.distinct.size();
    bool latest_in_window = n > 0;
    if (spec.window_days > 0) {
      n = 0;
      folded = CustomerState::InitialValue(aggregate);
      for (const auto& d : u.days) {
        if (!InWindow(d.day, as_of_day, spec.window_days)) continue;
        n += d.count;
        CustomerState::FoldValue(aggregate, d.value, &folded);
      }
      distinct_values = 0;
      for (const auto& d : u.distinct) {
        if (InWindow(d.last_day, as_of_day, spec.window_days)) ++distinct_values;
      }
      latest_in_window = u.count > 0 && InWindow(DayOf(u.value), as_of_day, spec.window_days);
    }
    const double fixed_value = static_cast<double>(folded) / kFixedScale;
    switch (aggregate) {
      case TraitAggregate::kCount:
        value = static_cast<double>(n);
        break;
      case TraitAggregate::kSum:
        value = fixed_value;
        break;
      case TraitAggregate::kMean:
      case TraitAggregate::kMin:
      case TraitAggregate::kMax:
        if (n > 0) {
          value = aggregate == TraitAggregate::kMean ? fixed_value / static_cast<double>(n)
                                                     : fixed_value;
        }
        break;
      case TraitAggregate::kLast:
        if (latest_in_window) value = u.last_value;
        break;
      case TraitAggregate::kDistinct:
        value = static_cast<double>(distinct_values);
        break;
      case TraitAggregate::kTimeSince:
        if (latest_in_window) value = days_to(u.value);
        break;
    }
  }
}

}  // namespace shoal
