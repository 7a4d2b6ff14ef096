// Random event streams for the traits tests, and an independent brute-force recomputation of
// every trait from the raw events (the reference the mergeable states are checked against).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/time.h"
#include "ingest/event.h"
#include "traits/population_state.h"
#include "traits/trait_config.h"

namespace shoal::traits_test {

constexpr TimeMicros kHour = 3600LL * 1'000'000;
constexpr TimeMicros kDay = 24 * kHour;
// 2024-06-15T12:00:00Z: windows start at midday, so day bucketing is exercised.
inline TimeMicros AsOf() { return DaysFromCivil(2024, 6, 15) * kDay + 12 * kHour; }

inline const std::vector<std::string>& Categories() {
  static const std::vector<std::string> k = {"bedding", "bath", "kitchen",
                                             "garden",  "toys", "books"};
  return k;
}

// The workspace used by most tests: one custom type and user traits of every aggregate.
inline const char* kWorkspaceToml = R"(
[[event_types]]
name = "review_posted"
numeric = ["rating"]
text = ["tier"]

[traits]
peak_iso_weeks = [22, 23, 47, 48]

[[traits.custom]]
name = "reviews"
event_types = ["review_posted"]
aggregate = "count"

[[traits.custom]]
name = "reviews_30d"
event_types = ["review_posted"]
aggregate = "count"
window_days = 30

[[traits.custom]]
name = "rating_sum"
event_types = ["review_posted"]
property = "rating"
aggregate = "sum"

[[traits.custom]]
name = "rating_sum_14d"
event_types = ["review_posted"]
property = "rating"
aggregate = "sum"
window_days = 14

[[traits.custom]]
name = "rating_mean"
event_types = ["review_posted"]
property = "rating"
aggregate = "mean"

[[traits.custom]]
name = "rating_mean_90d"
event_types = ["review_posted"]
property = "rating"
aggregate = "mean"
window_days = 90

[[traits.custom]]
name = "rating_min"
event_type = "review_posted"
property = "rating"
aggregate = "min"

[[traits.custom]]
name = "rating_min_60d"
event_type = "review_posted"
property = "rating"
aggregate = "min"
window_days = 60

[[traits.custom]]
name = "rating_max"
event_types = ["review_posted"]
property = "rating"
aggregate = "max"

[[traits.custom]]
name = "rating_max_7d"
event_types = ["review_posted"]
property = "rating"
aggregate = "max"
window_days = 7

[[traits.custom]]
name = "rating_last"
event_types = ["review_posted"]
property = "rating"
aggregate = "last"

[[traits.custom]]
name = "rating_last_30d"
event_types = ["review_posted"]
property = "rating"
aggregate = "last"
window_days = 30

[[traits.custom]]
name = "tiers"
event_types = ["review_posted"]
property = "tier"
aggregate = "distinct"

[[traits.custom]]
name = "tiers_30d"
event_types = ["review_posted"]
property = "tier"
aggregate = "distinct"
window_days = 30

[[traits.custom]]
name = "days_since_review"
event_types = ["review_posted"]
aggregate = "time_since"

[[traits.custom]]
name = "days_since_review_20d"
event_types = ["review_posted"]
aggregate = "time_since"
window_days = 20

[[traits.custom]]
name = "bedding_dwell"
event_types = ["product_view"]
property = "dwell_seconds"
aggregate = "sum"
where = { property = "category", equals = "bedding" }

[[traits.custom]]
name = "view_price_max_90d"
event_types = ["product_view", "cart_add"]
property = "price"
aggregate = "max"
window_days = 90

[[traits.custom]]
name = "products_viewed_90d"
event_types = ["product_view"]
property = "product_id"
aggregate = "distinct"
window_days = 90

[[traits.custom]]
name = "events_7d"
aggregate = "count"
window_days = 7

[[traits.custom]]
name = "web_order_mean"
event_types = ["order"]
property = "total"
aggregate = "mean"
where_property = "channel"
where_equals = "web"

[[traits.custom]]
name = "gold_ratings_mean_45d"
event_types = ["review_posted"]
property = "rating"
aggregate = "mean"
window_days = 45
where = { property = "tier", equals = "gold" }
)";

// Random events of one customer, all at or before AsOf(), appended to *batch.
class EventGenerator {
 public:
  explicit EventGenerator(uint64_t seed) : rng_(seed) {}

  void Generate(int num_events, EventBatch* batch) {
    for (int i = 0; i < num_events; ++i) AddOne(batch);
  }

  void AddOne(EventBatch* batch) {
    Event e;
    // Whole hours within 60 days (recent windows, ties) half the time; else up to 420 days.
    if (Uniform(2) == 0) {
      e.timestamp = AsOf() - static_cast<TimeMicros>(Uniform(60 * 24)) * kHour;
    } else {
      e.timestamp = AsOf() - static_cast<TimeMicros>(Uniform(420LL * 24 * 3600)) * 1'000'000 -
                    static_cast<TimeMicros>(Uniform(1'000'000));
    }
    e.channel = static_cast<Channel>(Uniform(static_cast<int>(Channel::kNumChannels)));
    e.device = static_cast<DeviceClass>(Uniform(static_cast<int>(DeviceClass::kNumDevices)));
    e.first_line = static_cast<uint32_t>(batch->lines.size());
    e.first_prop = static_cast<uint32_t>(batch->props.size());
    static const EventType kTypes[] = {
        EventType::kOrder,        EventType::kOrder,         EventType::kReturn,
        EventType::kSessionStart, EventType::kPageView,      EventType::kProductView,
        EventType::kProductView,  EventType::kSearch,        EventType::kCartAdd,
        EventType::kCartRemove,   EventType::kCheckoutStart, EventType::kEmailSend,
        EventType::kEmailOpen,    EventType::kEmailClick,    EventType::kSupportTicket,
        EventType::kReferral,     EventType::kIdentify,      EventType::kConsent};
    int pick = Uniform(static_cast<int>(std::size(kTypes)) + 2);
    if (pick >= static_cast<int>(std::size(kTypes))) {
      e.type = kFirstCustomType;  // review_posted
      if (Uniform(5) > 0) {
        batch->props.push_back({batch->Intern("rating"), {}, double(1 + Uniform(5)), true});
      }
      static const char* kTiers[] = {"gold", "silver", "bronze", "gold2"};
      if (Uniform(4) > 0) {
        batch->props.push_back(
            {batch->Intern("tier"), batch->Intern(kTiers[Uniform(4)]), 0, false});
      }
    } else {
      e.type = static_cast<uint16_t>(kTypes[pick]);
    }
    switch (static_cast<EventType>(e.type)) {
      case EventType::kOrder: {
        int lines = Uniform(4);
        double gross = 0, line_discounts = 0;
        for (int l = 0; l < lines; ++l) {
          OrderLine line;
          line.product_id = batch->Intern(Name("P", Uniform(20)));
          if (Uniform(6) > 0) line.category = batch->Intern(Categories()[Uniform(6)]);
          line.quantity = 1 + Uniform(3);
          line.unit_price = Uniform(10) == 0 ? 0.0 : 0.5 * (1 + Uniform(400));
          line.discount = Uniform(3) == 0 ? 0.25 * Uniform(20) : 0.0;
          gross += line.quantity * line.unit_price;
          line_discounts += line.discount;
          batch->lines.push_back(line);
        }
        e.num_lines = static_cast<uint32_t>(lines);
        e.discount = Uniform(3) == 0 ? 0.5 * Uniform(10) : Event::kNaN;
        double order_discount = std::isnan(e.discount) ? 0 : e.discount;
        e.total = Uniform(4) == 0
                      ? Event::kNaN
                      : (lines ? gross - line_discounts - order_discount : 0.01 * Uniform(100000));
        break;
      }
      case EventType::kReturn:
        e.total = 0.25 * Uniform(400);
        break;
      case EventType::kProductView:
      case EventType::kCartAdd:
        e.product_id = batch->Intern(Name("P", Uniform(20)));
        if (Uniform(5) > 0) e.category = batch->Intern(Categories()[Uniform(6)]);
        e.price = Uniform(5) == 0 ? Event::kNaN : 0.5 * (1 + Uniform(400));
        e.dwell_seconds = Uniform(3) == 0 ? Event::kNaN : double(Uniform(300));
        break;
      case EventType::kEmailSend:
      case EventType::kEmailOpen:
      case EventType::kEmailClick:
        if (Uniform(8) > 0) e.campaign_id = batch->Intern(Name("camp", Uniform(6)));
        break;
      case EventType::kSearch:
        e.query = batch->Intern(Uniform(2) ? "socks" : "sheets");
        break;
      case EventType::kConsent:
        e.consent = static_cast<int8_t>(Uniform(2));
        break;
      default:
        break;
    }
    e.num_props = static_cast<uint32_t>(batch->props.size()) - e.first_prop;
    batch->events.push_back(e);
  }

 private:
  static std::string Name(const char* prefix, int n) {
    std::string s(prefix);
    s += std::to_string(n);
    return s;
  }
  int Uniform(int64_t n) {
    return static_cast<int>(std::uniform_int_distribution<int64_t>(0, n - 1)(rng_));
  }
  std::mt19937_64 rng_;
};

// Independent recomputation of every built-in and user trait from raw events.
class BruteForce {
 public:
  using Values = std::map<std::string, double>;
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  static Values Compute(const std::vector<const Event*>& events, const EventBatch& batch,
                        const PopulationState& pop, const TraitConfig& config, TimeMicros as_of) {
    Values v;
    const int64_t A = DayOf(as_of);
    auto days_to = [&](TimeMicros t) { return double(as_of - t) / double(kDay); };
    auto in_window = [&](TimeMicros t, int w) { return DayOf(t) <= A && DayOf(t) > A - w; };
    auto ratio = [](double a, double b) { return b > 0 ? a / b : kNaN; };
    std::map<uint16_t, double> type_count;
    std::vector<std::pair<TimeMicros, double>> orders;
    double discounts = 0, refunded = 0;
    std::map<std::string, double> cat_lines;
    std::map<std::string, int64_t> cat_first_day;
    double premium_sum = 0, premium_n = 0;
    std::set<int64_t> cart_days;
    std::map<std::string, std::pair<TimeMicros, TimeMicros>> campaigns;
    std::map<int, double> channels, devices;
    double views_30 = 0, sessions_30 = 0;
    TimeMicros first = INT64_MAX, last = INT64_MIN, consent_time = INT64_MIN;
    int consent = -1;
    for (const Event* e : events) {
      first = std::min(first, e->timestamp);
      last = std::max(last, e->timestamp);
      type_count[e->type] += 1;
      channels[int(e->channel)] += 1;
      devices[int(e->device)] += 1;
      auto first_day = [&](std::string_view cat) {
        auto [it, fresh] = cat_first_day.emplace(std::string(cat), DayOf(e->timestamp));
        if (!fresh) it->second = std::min(it->second, DayOf(e->timestamp));
      };
      switch (static_cast<EventType>(e->type)) {
        case EventType::kOrder: {
          double gross = 0, line_disc = 0;
          for (const OrderLine& l : batch.Lines(*e)) {
            gross += l.quantity * l.unit_price;
            line_disc += l.discount;
            if (!l.category.empty()) {
              cat_lines[std::string(l.category)] += 1;
              first_day(l.category);
              if (l.unit_price > 0) {
                premium_sum += std::log(l.unit_price) -
                               std::log(pop.CategoryMedianPrice(
                                   static_cast<uint32_t>(pop.FindCategory(l.category))));
                premium_n += 1;
              }
            }
          }
          double od = std::isnan(e->discount) ? 0 : e->discount;
          double total = std::isnan(e->total) ? gross - line_disc - od : e->total;
          orders.push_back({e->timestamp, total});
          discounts += od + line_disc;
          break;
        }
        case EventType::kReturn:
          refunded += e->total;
          break;
        case EventType::kProductView:
          if (in_window(e->timestamp, 30)) views_30 += 1;
          if (!e->category.empty()) first_day(e->category);
          break;
        case EventType::kSessionStart:
          if (in_window(e->timestamp, 30)) sessions_30 += 1;
          break;
        case EventType::kCartAdd:
        case EventType::kCheckoutStart:
          cart_days.insert(DayOf(e->timestamp));
          break;
        case EventType::kEmailSend:
        case EventType::kEmailOpen:
          if (!e->campaign_id.empty()) {
            auto [it, fresh] = campaigns.emplace(std::string(e->campaign_id),
                                                 std::make_pair(INT64_MAX, INT64_MAX));
            TimeMicros& slot = e->Is(EventType::kEmailSend) ? it->second.first : it->second.second;
            slot = std::min(slot, e->timestamp);
          }
          break;
        case EventType::kConsent:
          if (e->timestamp > consent_time ||
              (e->timestamp == consent_time && e->consent < consent)) {
            consent_time = e->timestamp;
            consent = e->consent;
          }
          break;
        default:
          break;
      }
    }
    std::sort(orders.begin(), orders.end());
    auto count = [&](EventType t) { return type_count[uint16_t(t)]; };
    double n_orders = double(orders.size());
    double monetary = 0;
    for (auto& o : orders) monetary += o.second;
    v["recency_days"] = orders.empty() ? kNaN : days_to(orders.back().first);
    v["days_since_last_event"] = events.empty() ? kNaN : days_to(last);
    v["tenure_days"] = events.empty() ? kNaN : days_to(first);
    v["first_order_days_ago"] = orders.empty() ? kNaN : days_to(orders.front().first);
    v["frequency"] = n_orders;
    v["repeat_orders"] = std::max(0.0, n_orders - 1);
    v["monetary_total"] = monetary;
    v["aov"] = ratio(monetary, n_orders);
    v["net_spend"] = monetary - refunded;
    std::vector<int64_t> order_days;
    for (auto& o : orders) order_days.push_back(DayOf(o.first));
    order_days.erase(std::unique(order_days.begin(), order_days.end()), order_days.end());
    if (order_days.size() >= 2) {
      std::vector<double> gaps;
      for (size_t i = 1; i < order_days.size(); ++i)
        gaps.push_back(double(order_days[i] - order_days[i - 1]));
      double mean = 0;
      for (double g : gaps) mean += g;
      mean /= double(gaps.size());
      double var = 0;
      for (double g : gaps) var += (g - mean) * (g - mean);
      v["ipi_mean_days"] = mean;
      v["ipi_std_days"] = std::sqrt(var / double(gaps.size()));
    } else {
      v["ipi_mean_days"] = v["ipi_std_days"] = kNaN;
    }
    double cat_total = 0;
    for (auto& [c, n] : cat_lines) cat_total += n;
    v["distinct_categories"] = double(cat_lines.size());
    double entropy = 0;
    for (auto& [c, n] : cat_lines) entropy -= n / cat_total * std::log(n / cat_total);
    v["category_entropy"] = cat_total > 0 ? entropy : kNaN;
    double new_cats = 0;
    for (auto& [c, d] : cat_first_day) new_cats += (d <= A && d > A - 30) ? 1 : 0;
    v["new_categories_30d"] = new_cats;
    v["discount_share"] = monetary + discounts > 0 ? discounts / (monetary + discounts) : kNaN;
    v["premium_index"] = ratio(premium_sum, premium_n);
    v["product_views"] = count(EventType::kProductView);
    v["cart_adds"] = count(EventType::kCartAdd);
    v["checkout_starts"] = count(EventType::kCheckoutStart);
    v["view_to_cart"] = ratio(count(EventType::kCartAdd), count(EventType::kProductView));
    v["cart_to_checkout"] = ratio(count(EventType::kCheckoutStart), count(EventType::kCartAdd));
    v["checkout_to_order"] = ratio(n_orders, count(EventType::kCheckoutStart));
    v["view_to_order"] = ratio(n_orders, count(EventType::kProductView));
    double abandoned = 0, eligible = 0;
    std::set<int64_t> order_day_set(order_days.begin(), order_days.end());
    for (int64_t d : cart_days) {
      if (d + 1 > A) continue;
      eligible += 1;
      if (!order_day_set.count(d) && !order_day_set.count(d + 1)) abandoned += 1;
    }
    v["cart_abandonment_count"] = abandoned;
    v["cart_abandonment_rate"] = ratio(abandoned, eligible);
    v["sessions"] = count(EventType::kSessionStart);
    v["page_views"] = count(EventType::kPageView);
    v["pages_per_session"] = ratio(count(EventType::kPageView), count(EventType::kSessionStart));
    v["searches"] = count(EventType::kSearch);
    double sends = count(EventType::kEmailSend), opens = count(EventType::kEmailOpen),
           clicks = count(EventType::kEmailClick);
    v["email_sends"] = sends;
    v["email_opens"] = opens;
    v["email_clicks"] = clicks;
    v["email_open_rate"] = ratio(opens, sends);
    v["email_click_rate"] = ratio(clicks, sends);
    v["email_click_to_open"] = ratio(clicks, opens);
    double lat = 0, lat_n = 0;
    for (auto& [c, so] : campaigns) {
      if (so.first == INT64_MAX || so.second == INT64_MAX || so.second < so.first) continue;
      lat += double(so.second - so.first) / double(kHour);
      lat_n += 1;
    }
    v["email_open_latency_hours"] = ratio(lat, lat_n);
    v["support_tickets"] = count(EventType::kSupportTicket);
    v["returns"] = count(EventType::kReturn);
    v["return_rate"] = ratio(count(EventType::kReturn), n_orders);
    v["refunded_amount"] = refunded;
    double known_ch = 0, known_dev = 0;
    for (auto& [c, n] : channels) known_ch += c != 0 ? n : 0;
    for (auto& [d, n] : devices) known_dev += d != 0 ? n : 0;
    v["share_web"] = ratio(channels[int(Channel::kWeb)], known_ch);
    v["share_app"] = ratio(channels[int(Channel::kApp)], known_ch);
    v["share_email"] = ratio(channels[int(Channel::kEmail)], known_ch);
    v["share_pos"] = ratio(channels[int(Channel::kPos)], known_ch);
    v["share_support"] = ratio(channels[int(Channel::kSupport)], known_ch);
    v["share_desktop"] = ratio(devices[int(DeviceClass::kDesktop)], known_dev);
    v["share_mobile"] = ratio(devices[int(DeviceClass::kMobile)], known_dev);
    v["share_tablet"] = ratio(devices[int(DeviceClass::kTablet)], known_dev);
    for (int w : {7, 30, 90, 365}) {
      double n = 0, s = 0;
      for (auto& o : orders) {
        if (in_window(o.first, w)) {
          n += 1;
          s += o.second;
        }
      }
      v["orders_" + std::to_string(w) + "d"] = n;
      v["spend_" + std::to_string(w) + "d"] = s;
    }
    v["views_30d"] = views_30;
    v["sessions_30d"] = sessions_30;
    double n30 = 0, n90 = 0, s30 = 0, s90 = 0;
    for (auto& o : orders) {
      int64_t d = DayOf(o.first);
      if (d <= A && d > A - 30) {
        n30 += 1;
        s30 += o.second;
      } else if (d <= A - 30 && d > A - 120) {
        n90 += 1;
        s90 += o.second;
      }
    }
    auto trend = [](double a, double b) {
      a /= 30;
      b /= 90;
      return a + b > 0 ? (a - b) / (a + b) : 0.0;
    };
    v["trend_orders"] = trend(n30, n90);
    v["trend_spend"] = trend(s30, s90);
    double q[4] = {}, peak = 0;
    for (auto& o : orders) {
      int64_t y;
      unsigned m, d;
      CivilFromDays(DayOf(o.first), &y, &m, &d);
      q[(m - 1) / 3] += 1;
      if (std::count(config.peak_iso_weeks.begin(), config.peak_iso_weeks.end(),
                     SlowIsoWeek(DayOf(o.first)))) {
        peak += 1;
      }
    }
    for (int i = 0; i < 4; ++i) v["season_q" + std::to_string(i + 1)] = ratio(q[i], n_orders);
    v["peak_week_share"] = ratio(peak, n_orders);
    v["referrals"] = count(EventType::kReferral);
    v["consent_marketing"] = consent < 0 ? kNaN : consent;
    v["events_total"] = double(events.size());

    for (const UserTraitSpec& spec : config.user_traits) {
      v[spec.name] = UserTrait(spec, events, batch, as_of);
    }
    return v;
  }

  // ISO week by walking from the Monday of ISO week 1 (independent of IsoWeekOfDay).
  static int SlowIsoWeek(int64_t day) {
    int64_t y;
    unsigned m, d;
    CivilFromDays(day, &y, &m, &d);
    for (int64_t year : {y + 1, y, y - 1}) {
      int64_t jan4 = DaysFromCivil(year, 1, 4);
      int64_t weekday = ((jan4 + 3) % 7 + 7) % 7;  // Monday 0
      int64_t week1_monday = jan4 - weekday;
      if (day >= week1_monday) return int((day - week1_monday) / 7 + 1);
    }
    return -1;
  }

  static double UserTrait(const UserTraitSpec& spec, const std::vector<const Event*>& events,
                          const EventBatch& batch, TimeMicros as_of) {
    const int64_t A = DayOf(as_of);
    double n = 0, sum = 0, mn = INFINITY, mx = -INFINITY, last_v = kNaN;
    TimeMicros last_t = INT64_MIN;
    std::set<std::string> distinct;
    for (const Event* e : events) {
      if (!spec.event_types.empty() && std::find(spec.event_types.begin(), spec.event_types.end(),
                                                 e->type) == spec.event_types.end()) {
        continue;
      }
      if (spec.window_days > 0 &&
          !(DayOf(e->timestamp) <= A && DayOf(e->timestamp) > A - spec.window_days)) {
        continue;
      }
      if (!spec.where_property.empty() &&
          Text(spec.where_property, *e, batch) != spec.where_equals) {
        continue;
      }
      double value = 0;
      if (spec.aggregate == TraitAggregate::kDistinct) {
        std::string t = Text(spec.property, *e, batch);
        if (t.empty()) {
          double x = Number(spec.property, *e, batch);
          if (std::isnan(x)) continue;
          t = std::string("#").append(std::to_string(x));
        }
        distinct.insert(t);
      } else if (spec.aggregate != TraitAggregate::kCount &&
                 spec.aggregate != TraitAggregate::kTimeSince) {
        value = Number(spec.property, *e, batch);
        if (std::isnan(value)) continue;
      }
      n += 1;
      sum += value;
      mn = std::min(mn, value);
      mx = std::max(mx, value);
      if (e->timestamp > last_t || (e->timestamp == last_t && value > last_v)) {
        last_t = e->timestamp;
        last_v = value;
      }
    }
    switch (spec.aggregate) {
      case TraitAggregate::kCount:
        return n;
      case TraitAggregate::kSum:
        return sum;
      case TraitAggregate::kMean:
        return n > 0 ? sum / n : kNaN;
      case TraitAggregate::kMin:
        return n > 0 ? mn : kNaN;
      case TraitAggregate::kMax:
        return n > 0 ? mx : kNaN;
      case TraitAggregate::kLast:
        return n > 0 ? last_v : kNaN;
      case TraitAggregate::kDistinct:
        return double(distinct.size());
      case TraitAggregate::kTimeSince:
        return n > 0 ? double(as_of - last_t) / double(kDay) : kNaN;
    }
    return kNaN;
  }

  static std::string Text(const std::string& name, const Event& e, const EventBatch& batch) {
    if (name == "category") return std::string(e.category);
    if (name == "product_id") return std::string(e.product_id);
    if (name == "query") return std::string(e.query);
    if (name == "channel")
      return e.channel == Channel::kUnknown ? "" : std::string(ChannelName(e.channel));
    for (const EventProperty& p : batch.Props(e)) {
      if (p.name == name && !p.is_number) return std::string(p.text);
    }
    return "";
  }
  static double Number(const std::string& name, const Event& e, const EventBatch& batch) {
    if (name == "price") return e.price;
    if (name == "dwell_seconds") return e.dwell_seconds;
    if (name == "total") return e.total;
    for (const EventProperty& p : batch.Props(e)) {
      if (p.name == name && p.is_number) return p.number;
    }
    return kNaN;
  }
};

}  // namespace shoal::traits_test
