#include "generate/shop_model.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "common/time.h"

namespace shoal {

namespace {

constexpr std::string_view kSegmentNames[kNumShopSegments] = {
    "price_sensitive_replenishment", "premium_trend_explorers", "cart_abandoners",
    "lapsed_big_spenders",           "one_time_buyers",         "window_shoppers"};

// name, median price, group (0 everyday, 1 home, 2 fashion & personal care, 3 leisure),
// launch fraction of the window (new categories arrive late).
constexpr ShopCategory kCategories[] = {
    {"eco cleaning", 9, 0, 0},
    {"laundry care", 11, 0, 0},
    {"paper goods", 7, 0, 0},
    {"pet food", 26, 0, 0},
    {"baby care", 16, 0, 0},
    {"vitamins", 21, 0, 0},
    {"coffee beans", 13, 0, 0},
    {"herbal tea", 8, 0, 0},
    {"oral care", 6, 0, 0},
    {"healthy snacks", 5, 0, 0},
    {"refill packs", 10, 0, 0.60},
    {"organic bedding", 85, 1, 0},
    {"bath linen", 38, 1, 0},
    {"designer lighting", 140, 1, 0},
    {"ceramic tableware", 45, 1, 0},
    {"cookware", 70, 1, 0},
    {"kitchen gadgets", 28, 1, 0},
    {"home fragrance", 24, 1, 0},
    {"rugs", 160, 1, 0},
    {"storage baskets", 30, 1, 0},
    {"indoor plants", 22, 1, 0.45},
    {"vintage furniture", 320, 1, 0.70},
    {"skin care", 32, 2, 0},
    {"hair care", 18, 2, 0},
    {"makeup", 20, 2, 0},
    {"shaving", 15, 2, 0},
    {"perfume", 75, 2, 0},
    {"activewear", 55, 2, 0},
    {"outerwear", 150, 2, 0},
    {"footwear", 95, 2, 0},
    {"accessories", 35, 2, 0},
    {"jewellery", 120, 2, 0},
    {"yoga gear", 40, 3, 0.35},
    {"camping", 80, 3, 0},
    {"cycling", 65, 3, 0},
    {"board games", 30, 3, 0},
    {"books", 16, 3, 0},
    {"stationery", 9, 3, 0},
    {"kids toys", 25, 3, 0},
    {"smart home", 90, 3, 0.55},
};

constexpr PlantedAffinity kAffinities[] = {
    {"organic bedding", "eco cleaning", 0.50},
    {"cookware", "kitchen gadgets", 0.45},
    {"yoga gear", "activewear", 0.45},
    {"camping", "outerwear", 0.40},
    {"skin care", "makeup", 0.40},
    {"designer lighting", "home fragrance", 0.40},
    {"board games", "books", 0.40},
    {"pet food", "paper goods", 0.35},
    {"baby care", "laundry care", 0.35},
    {"coffee beans", "ceramic tableware", 0.25},
};

// Seed of the fixed catalogue (independent of options.seed, so docs can describe it).
constexpr uint64_t kCatalogueSeed = 0x5ea5011ca7a1095ULL;

}  // namespace

std::span<const std::string_view> ShopSegmentNames() { return kSegmentNames; }
std::span<const ShopCategory> ShopCategories() { return kCategories; }
std::span<const PlantedAffinity> PlantedAffinities() { return kAffinities; }

namespace generate_internal {

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

std::string CsvField(std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

int32_t ShopModel::AdvanceSeasonal(int32_t from, double busy_days) const {
  double target = season_cum[static_cast<size_t>(std::clamp(from, 0, days))] + busy_days;
  if (target >= season_cum.back()) {
    return days + static_cast<int32_t>(target - season_cum.back());
  }
  auto it = std::upper_bound(season_cum.begin(), season_cum.end(), target);
  return static_cast<int32_t>(it - season_cum.begin()) - 1;
}

namespace {

// Monday-based ISO week number of an epoch day.
int IsoWeek(int64_t epoch_day) {
  int64_t weekday = ((epoch_day + 3) % 7 + 7) % 7;  // 1970-01-01 was a Thursday; Monday = 0
  int64_t thursday = epoch_day - weekday + 3;
  int64_t y;
  unsigned m, d;
  CivilFromDays(thursday, &y, &m, &d);
  return static_cast<int>((thursday - DaysFromCivil(y, 1, 1)) / 7 + 1);
}

std::string Slug(std::string_view name) {
  std::string s(name);
  for (char& c : s) {
    if (c == ' ') c = '-';
  }
  return s;
}

Result<int64_t> ParseDay(const std::string& text, const char* what) {
  auto t = ParseIso8601(text);
  if (!t.ok() || text.size() != 10) {
    return Status::InvalidArgument(std::string(what) + " must be a date YYYY-MM-DD, got '" + text +
                                   "'");
  }
  return DayOf(*t);
}

}  // namespace

Result<std::unique_ptr<ShopModel>> BuildShopModel(const GenerateOptions& options) {
  SHOAL_ASSIGN_OR_RETURN(int64_t start_day, ParseDay(options.start_date, "start_date"));
  SHOAL_ASSIGN_OR_RETURN(int64_t end_day, ParseDay(options.end_date, "end_date"));
  if (end_day - start_day + 1 < 730) {
    return Status::InvalidArgument(
        "the history window (start_date..end_date) must span at least 730 days");
  }
  if (end_day - start_day + 1 > 36500) {
    return Status::InvalidArgument("the history window must span at most 100 years");
  }
  auto in_unit = [](double x) { return x >= 0 && x <= 1; };
  if (!in_unit(options.anonymous_share) || !in_unit(options.messy_share) ||
      !in_unit(options.referral_share)) {
    return Status::InvalidArgument(
        "anonymous_share, messy_share and referral_share must lie in [0, 1]");
  }
  if (!(options.opt_out_scale >= 0 && options.opt_out_scale <= 10)) {
    return Status::InvalidArgument("opt_out_scale must lie in [0, 10]");
  }
  double share_sum = 0;
  for (double s : options.segment_shares) {
    if (!(s >= 0 && std::isfinite(s))) {
      return Status::InvalidArgument("segment shares must be finite and >= 0");
    }
    share_sum += s;
  }
  if (share_sum <= 0) return Status::InvalidArgument("at least one segment share must be > 0");
  if (options.products_per_category < 4 || options.products_per_category > 10000) {
    return Status::InvalidArgument("products_per_category must lie in [4, 10000]");
  }
  if (options.chunk_customers == 0) {
    return Status::InvalidArgument("chunk_customers must be > 0");
  }
  if (options.customers > 4'000'000'000ULL) {
    return Status::InvalidArgument("customers must be at most 4e9");
  }
  if (options.currency.empty() || options.currency.size() > 8) {
    return Status::InvalidArgument("currency must be a short code such as EUR");
  }

  auto model = std::make_unique<ShopModel>();
  ShopModel& m = *model;
  m.options = options;
  m.start_epoch_day = start_day;
  m.days = static_cast<int32_t>(end_day - start_day + 1);
  m.currency_json = JsonEscape(options.currency);
  m.currency_csv = CsvField(options.currency);

  // Calendar: day strings and seasonal weights (Q4 peak, ISO weeks 47-51).
  m.day_text.resize(static_cast<size_t>(m.days));
  m.season_weight.resize(static_cast<size_t>(m.days));
  m.season_cum.assign(static_cast<size_t>(m.days) + 1, 0.0);
  for (int32_t day = 0; day < m.days; ++day) {
    int64_t y;
    unsigned mo, d;
    CivilFromDays(start_day + day, &y, &mo, &d);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(y), mo, d);
    m.day_text[static_cast<size_t>(day)] = buf;
    int week = IsoWeek(start_day + day);
    double w = (week >= 47 && week <= 51) ? 2.2 : 1.0;
    m.season_weight[static_cast<size_t>(day)] = w;
    m.season_cum[static_cast<size_t>(day) + 1] = m.season_cum[static_cast<size_t>(day)] + w;
  }
  // Hours of the day: quiet nights, busy evenings.
  constexpr double kHourWeights[24] = {0.4, 0.25, 0.15, 0.1, 0.1, 0.2, 0.5, 1.0,
                                       1.4, 1.6,  1.7,  1.8, 2.0, 1.9, 1.7, 1.6,
                                       1.7, 1.9,  2.3,  2.6, 2.7, 2.4, 1.6, 0.9};
  double acc = 0;
  for (double w : kHourWeights) m.hour_cum.push_back(acc += w);
  acc = 0;
  for (double s : options.segment_shares) m.segment_cum.push_back(acc += s);

  // Catalogue: fixed categories, products with log-normal prices around the category median.
  Rng rng(kCatalogueSeed);
  m.categories_of_group.resize(4);
  uint32_t product_number = 1;
  for (size_t cat_idx = 0; cat_idx < std::size(kCategories); ++cat_idx) {
    const ShopCategory& spec = kCategories[cat_idx];
    Category cat;
    cat.name = std::string(spec.name);
    cat.json_name = JsonEscape(spec.name);
    cat.csv_name = CsvField(spec.name);
    cat.slug = Slug(spec.name);
    cat.group = spec.group;
    cat.launch_day = static_cast<int32_t>(spec.launch_fraction * m.days);
    cat.median_cents = static_cast<int64_t>(std::llround(spec.median_price * 100));
    int n = options.products_per_category;
    std::vector<uint32_t> members;
    for (int k = 0; k < n; ++k) {
      Product p;
      char id[16];
      std::snprintf(id, sizeof id, "P%05u", product_number++);
      p.id = id;
      p.category = static_cast<uint16_t>(cat_idx);
      // Evenly spread quantiles of a log-normal (sigma 0.45) plus jitter: the category median
      // stays at median_price whatever the product count.
      double q = (k + 0.5) / n;
      // Inverse normal CDF by bisection on erfc (cheap: runs once per product).
      double lo = -8, hi = 8;
      for (int it = 0; it < 60; ++it) {
        double mid = 0.5 * (lo + hi);
        double cdf = 0.5 * std::erfc(-mid / std::sqrt(2.0));
        (cdf < q ? lo : hi) = mid;
      }
      double price = spec.median_price * std::exp(0.45 * 0.5 * (lo + hi) + 0.03 * rng.Normal());
      // Shop prices end in .99 / .49 / .00.
      int64_t cents = std::max<int64_t>(99, std::llround(price) * 100);
      int64_t ending = static_cast<int64_t>(rng.Below(3));
      cents = ending == 0 ? cents - 1 : (ending == 1 ? cents - 51 : cents);
      p.price_cents = std::max<int64_t>(49, cents);
      // A quarter of products arrive after the category launch ("new products").
      p.launch_day = cat.launch_day;
      if (rng.Chance(0.25)) {
        p.launch_day =
            cat.launch_day +
            static_cast<int32_t>(rng.Below(static_cast<uint64_t>(m.days - cat.launch_day)));
      }
      members.push_back(static_cast<uint32_t>(m.products.size()));
      m.products.push_back(std::move(p));
    }
    std::stable_sort(members.begin(), members.end(), [&](uint32_t a, uint32_t b) {
      return m.products[a].price_cents < m.products[b].price_cents;
    });
    cat.by_price = std::move(members);
    m.categories_of_group[static_cast<size_t>(spec.group)].push_back(static_cast<int>(cat_idx));
    if (cat.launch_day > 0) m.new_categories.push_back(static_cast<int>(cat_idx));
    m.categories.push_back(std::move(cat));
  }
  auto find_category = [&](std::string_view name) {
    for (size_t i = 0; i < m.categories.size(); ++i) {
      if (m.categories[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  for (const PlantedAffinity& rule : kAffinities) {
    Category& a = m.categories[static_cast<size_t>(find_category(rule.antecedent))];
    a.affinity_target = find_category(rule.consequent);
    a.affinity_probability = rule.probability;
  }

  // Campaigns: a newsletter or promotion every 60 days, plus Black Friday (the Friday of ISO
  // week 47) and a Christmas promotion (December 12) each year.
  Rng campaign_rng(Mix64(options.seed ^ 0xca3a16e5ULL));
  std::vector<Campaign> campaigns;
  int serial = 0;
  for (int32_t day = 10 + static_cast<int32_t>(campaign_rng.Below(10)); day < m.days; day += 60) {
    campaigns.push_back({"", day, serial++ % 2 == 1});
  }
  for (int32_t day = 0; day < m.days; ++day) {
    int64_t y;
    unsigned mo, d;
    CivilFromDays(start_day + day, &y, &mo, &d);
    int64_t weekday = ((start_day + day + 3) % 7 + 7) % 7;
    if ((IsoWeek(start_day + day) == 47 && weekday == 4) || (mo == 12 && d == 12)) {
      campaigns.push_back({"", day, true});
    }
  }
  std::stable_sort(campaigns.begin(), campaigns.end(),
                   [](const Campaign& a, const Campaign& b) { return a.day < b.day; });
  for (Campaign& c : campaigns) {
    c.id = std::string(c.promo ? "promo-" : "news-") + m.day_text[static_cast<size_t>(c.day)];
  }
  campaigns.erase(std::unique(campaigns.begin(), campaigns.end(),
                              [](const Campaign& a, const Campaign& b) { return a.id == b.id; }),
                  campaigns.end());
  m.campaigns = std::move(campaigns);

  // Search queries: what people type, some with commas and quotes (CSV quoting is exercised).
  constexpr std::string_view kAdjectives[] = {"cheap", "best", "organic", "new",   "gift",
                                              "sale",  "eco",  "premium", "large", "small"};
  for (size_t cat_idx = 0; cat_idx < m.categories.size(); ++cat_idx) {
    const std::string& name = m.categories[cat_idx].name;
    std::vector<std::string> texts = {name};
    for (int k = 0; k < 3; ++k) {
      std::string_view adj = kAdjectives[(cat_idx * 3 + static_cast<size_t>(k)) % 10];
      texts.push_back(std::string(adj) + " " + name);
    }
    texts.push_back(name + ", " + std::string(kAdjectives[cat_idx % 10]));
    texts.push_back("\"" + name + "\" under " +
                    std::to_string(m.categories[cat_idx].median_cents / 100) + " eur");
    for (const std::string& text : texts) {
      m.queries.push_back({JsonEscape(text), CsvField(text), static_cast<int>(cat_idx)});
    }
  }
  return model;
}

}  // namespace generate_internal
}  // namespace shoal
