#include "generate/customer_synth.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace shoal::generate_internal {

namespace {

constexpr int64_t kDay = 86400;

constexpr std::string_view kFirstNames[] = {
    "anna",  "ben",  "clara", "david", "emma",  "felix", "greta", "hugo", "ida",   "jonas",
    "karla", "leon", "mia",   "noah",  "olga",  "paul",  "rosa",  "sven", "tina",  "umar",
    "vera",  "wim",  "xenia", "yusuf", "zoe",   "amir",  "bea",   "carl", "dora",  "elif",
    "finn",  "hana", "igor",  "jana",  "kemal", "lina",  "marco", "nora", "oskar", "pia"};
constexpr std::string_view kDomains[] = {"example.com", "example.org", "example.net",
                                         "mail.example", "post.example"};

// Per-segment behaviour knobs that are plain numbers (the schedules are code below).
struct SegmentTraits {
  double uses_app;                  // probability the customer uses the app
  double open_promo, open_news;     // email open probabilities
  double click_promo, click_news;   // click given open
  double opt_out;                   // probability of a marketing opt-out at some point
  double return_rate;               // per order
  double quantile_lo, quantile_hi;  // price position inside the category (0 cheapest)
};
constexpr SegmentTraits kTraits[kNumShopSegments] = {
    {0.55, 0.60, 0.25, 0.45, 0.15, 0.02, 0.02, 0.00, 0.40},  // price_sensitive_replenishment
    {0.45, 0.20, 0.45, 0.20, 0.40, 0.03, 0.18, 0.80, 1.00},  // premium_trend_explorers
    {0.50, 0.35, 0.30, 0.35, 0.25, 0.05, 0.08, 0.10, 0.90},  // cart_abandoners
    {0.35, 0.15, 0.12, 0.15, 0.15, 0.06, 0.05, 0.25, 0.85},  // lapsed_big_spenders
    {0.30, 0.08, 0.06, 0.10, 0.10, 0.06, 0.10, 0.00, 1.00},  // one_time_buyers
    {0.45, 0.30, 0.35, 0.30, 0.30, 0.04, 0.00, 0.00, 1.00},  // window_shoppers
};
// Days of history each segment needs before "today" (signup is at least this long ago).
constexpr int32_t kMinHistoryDays[kNumShopSegments] = {240, 150, 120, 0, 10, 30};

void AppendHex(std::string& out, uint64_t v, int digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int k = digits - 1; k >= 0; --k) out += kHex[(v >> (4 * k)) & 15];
}

}  // namespace

const char* const kTicketTopics[] = {"delivery", "return", "payment", "product question",
                                     "account"};
enum TicketTopic { kTopicDelivery = 0, kTopicReturn, kTopicPayment, kTopicProduct, kTopicAccount };

void Identity::Build(uint64_t seed, uint64_t customer_idx) {
  uint64_t h = StreamSeed(seed, customer_idx, 7);
  std::string number = std::to_string(customer_idx + 1);
  customer_id = "C" + number;
  std::string_view first = kFirstNames[h % std::size(kFirstNames)];
  std::string_view domain = kDomains[(h >> 8) % std::size(kDomains)];
  email.assign(first).append(".").append(number).append("@").append(domain);
  email_mixed = email;
  email_mixed[0] = static_cast<char>(email_mixed[0] - 'a' + 'A');
  size_t at = email_mixed.find('@');
  email_mixed[at + 1] = static_cast<char>(email_mixed[at + 1] - 'a' + 'A');
  phone.clear();
  if (((h >> 16) & 0xff) < 115) {  // ~45 % gave a phone number
    phone = "+4915";
    uint64_t digits = (h >> 24) % 1000000000ULL;
    std::string d = std::to_string(digits);
    phone.append(9 - d.size(), '0').append(d);
  }
  for (int dev = 0; dev < 2; ++dev) {
    std::string& a = anonymous[dev];
    a.assign(dev == 0 ? "w-" : "m-");
    AppendHex(a, customer_idx, 8);
    a += '-';
    AppendHex(a, Mix64(h + static_cast<uint64_t>(dev)), 8);
  }
}

CustomerHeader MakeCustomerHeader(const ShopModel& model, uint64_t customer_idx) {
  Rng rng(StreamSeed(model.options.seed, customer_idx, 1));
  CustomerHeader h;
  h.segment = static_cast<int>(rng.Pick(model.segment_cum.data(), model.segment_cum.size()));
  int32_t last_day = model.days - 1;
  if (h.segment == kLapsed) {
    int32_t lapse = static_cast<int32_t>(rng.Range(220, 480));
    int32_t latest_signup = last_day - lapse - 120;
    h.signup_day = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(latest_signup) + 1));
    h.active_end_day = last_day - lapse;
  } else {
    // A growing shop: signups get more frequent over time (density rising quadratically).
    int32_t latest_signup = last_day - kMinHistoryDays[h.segment];
    h.signup_day = static_cast<int32_t>(latest_signup * std::cbrt(rng.Uniform()));
    h.active_end_day = last_day;
  }
  return h;
}

GenEvent& CustomerSynth::Add(EventType type, int64_t t) {
  events_.emplace_back();
  GenEvent& e = events_.back();
  e.type = type;
  e.time = t;
  e.seq = static_cast<uint32_t>(events_.size() - 1);
  return e;
}

int64_t CustomerSynth::TimeOfDay() {
  int64_t hour = static_cast<int64_t>(rng_.Pick(model_.hour_cum.data(), 24));
  return hour * 3600 + static_cast<int64_t>(rng_.Below(3600));
}

// A time on `day`, after the signup when the day is the signup day.
int64_t CustomerSynth::SessionTime(int32_t day) {
  int64_t t = day * kDay + TimeOfDay();
  if (t < signup_t_ + 60) t = signup_t_ + 60 + static_cast<int64_t>(rng_.Below(7200));
  return t;
}

int32_t CustomerSynth::Clock(int32_t day) const { return std::min(day, model_.days - 1); }

CustomerSynth::Session CustomerSynth::StartSession(int64_t t, bool may_be_anonymous,
                                                   bool pre_signup) {
  Session s;
  s.id = sessions_++;
  s.t = t;
  bool app = uses_app_ && rng_.Chance(0.6);
  s.channel = app ? Channel::kApp : Channel::kWeb;
  if (app) {
    s.device = rng_.Chance(0.85) ? DeviceClass::kMobile : DeviceClass::kTablet;
  } else if (rng_.Chance(0.8)) {
    s.device = primary_device_;
  } else {
    s.device = rng_.Chance(0.5) ? DeviceClass::kDesktop : DeviceClass::kMobile;
  }
  if (pre_signup || (may_be_anonymous && rng_.Chance(model_.options.anonymous_share))) {
    s.anon = app ? 1 : 0;
  }
  GenEvent& e = Add(EventType::kSessionStart, s.t);
  Tag(e, s);
  return s;
}

void CustomerSynth::Tag(GenEvent& e, const Session& s) const {
  e.channel = s.channel;
  e.device = s.device;
  e.session = s.id;
  if (s.anon >= 0) {
    e.ids = kIdAnonymous;
    e.anon = s.anon;
  } else {
    e.ids = kIdCustomer;
  }
}

// An anonymous session whose device was never linked ends with a login (identify).
void CustomerSynth::EndSession(Session& s) {
  if (s.anon < 0 || linked_[s.anon]) return;
  s.t += rng_.Range(5, 90);
  GenEvent& e = Add(EventType::kIdentify, s.t);
  e.channel = s.channel;
  e.device = s.device;
  e.session = s.id;
  e.ids = kIdCustomer | kIdEmail | kIdAnonymous;
  e.anon = s.anon;
  linked_[s.anon] = true;
}

void CustomerSynth::PageView(Session& s, PageKind kind, int32_t category, int32_t product) {
  s.t += rng_.Range(2, 20);
  GenEvent& e = Add(EventType::kPageView, s.t);
  Tag(e, s);
  e.page_kind = kind;
  e.category = category;
  e.product = product;
  e.dwell = static_cast<int32_t>(rng_.Range(4, 90));
  s.t += e.dwell;
}

void CustomerSynth::ProductView(Session& s, uint32_t product, int dwell_lo, int dwell_hi) {
  s.t += rng_.Range(2, 20);
  GenEvent& e = Add(EventType::kProductView, s.t);
  Tag(e, s);
  e.product = static_cast<int32_t>(product);
  e.money = model_.products[product].price_cents;
  e.dwell = static_cast<int32_t>(rng_.Range(dwell_lo, dwell_hi));
  s.t += e.dwell;
}

void CustomerSynth::Search(Session& s, int category) {
  s.t += rng_.Range(3, 30);
  GenEvent& e = Add(EventType::kSearch, s.t);
  Tag(e, s);
  constexpr int kQueriesPerCategory = 6;
  e.query = category * kQueriesPerCategory + static_cast<int32_t>(rng_.Below(kQueriesPerCategory));
}

void CustomerSynth::CartAdd(Session& s, uint32_t product, int quantity, bool remove) {
  s.t += rng_.Range(5, 60);
  GenEvent& e = Add(remove ? EventType::kCartRemove : EventType::kCartAdd, s.t);
  Tag(e, s);
  e.product = static_cast<int32_t>(product);
  e.money = model_.products[product].price_cents;
  e.quantity = quantity;
}

int32_t CustomerSynth::CheckoutStart(Session& s, int64_t total) {
  s.t += rng_.Range(10, 120);
  GenEvent& e = Add(EventType::kCheckoutStart, s.t);
  Tag(e, s);
  e.order = orders_++;
  e.money = total;
  return e.order;
}

double CustomerSynth::Quantile() {
  const SegmentTraits& tr = kTraits[header_.segment];
  return rng_.Uniform(tr.quantile_lo, tr.quantile_hi);
}

// A product of `category` near price position `quantile`, already on sale on `day`.
uint32_t CustomerSynth::PickProduct(int category, double quantile, int32_t day) {
  const std::vector<uint32_t>& by_price = model_.categories[static_cast<size_t>(category)].by_price;
  int n = static_cast<int>(by_price.size());
  int pos = std::clamp(static_cast<int>(quantile * n), 0, n - 1);
  for (int step = 0; step < n; ++step) {
    int up = pos + step, down = pos - step;
    if (up < n && model_.products[by_price[static_cast<size_t>(up)]].launch_day <= day) {
      return by_price[static_cast<size_t>(up)];
    }
    if (down >= 0 && model_.products[by_price[static_cast<size_t>(down)]].launch_day <= day) {
      return by_price[static_cast<size_t>(down)];
    }
  }
  return by_price[0];  // the cheapest is always on sale from the category launch
}

int CustomerSynth::RandomLaunchedCategory(int group, int32_t day) {
  const std::vector<int>& cats = model_.categories_of_group[static_cast<size_t>(group)];
  for (int attempt = 0; attempt < 16; ++attempt) {
    int c = cats[rng_.Below(cats.size())];
    if (model_.categories[static_cast<size_t>(c)].launch_day <= day) return c;
  }
  return cats[0];  // group founders are launched from day 0
}

int CustomerSynth::PickCategoryForBrowsing(int32_t day) {
  if (!favourite_categories_.empty() && rng_.Chance(0.7)) {
    int c = favourite_categories_[rng_.Below(favourite_categories_.size())];
    if (model_.categories[static_cast<size_t>(c)].launch_day <= day) return c;
  }
  return RandomLaunchedCategory(static_cast<int>(rng_.Below(4)), day);
}

void CustomerSynth::AddLine(std::vector<int>& basket_categories, uint32_t product, int quantity) {
  GenLine line;
  line.product = product;
  line.quantity = quantity;
  line.unit_cents = model_.products[product].price_cents;
  lines_.push_back(line);
  basket_categories.push_back(model_.products[product].category);
}

// The lines of one order on `day`, by segment; planted affinities add consequent lines.
CustomerSynth::Basket CustomerSynth::BuildBasket(int32_t day) {
  Basket basket;
  basket.first_line = static_cast<uint32_t>(lines_.size());
  thread_local std::vector<int> cats;
  cats.clear();
  auto has = [&](int c) { return std::find(cats.begin(), cats.end(), c) != cats.end(); };
  const int seg = header_.segment;
  bool promo = false;
  double promo_rate_lo = 0.10, promo_rate_hi = 0.20;
  switch (seg) {
    case kReplenishment: {
      static constexpr double kCum[] = {0.35, 0.80, 1.0};
      int n = static_cast<int>(rng_.Pick(kCum, 3)) + 1;
      for (int k = 0; k < n; ++k) {
        uint32_t product;
        if (rng_.Chance(0.85)) {
          product = favourite_products_[rng_.Below(favourite_products_.size())];
        } else {
          int c = favourite_categories_[rng_.Below(favourite_categories_.size())];
          product = PickProduct(c, Quantile(), day);
        }
        bool dup = false;
        for (uint32_t l = basket.first_line; l < lines_.size(); ++l)
          dup |= lines_[l].product == product;
        if (dup) continue;
        AddLine(cats, product, std::min(4, 1 + rng_.Poisson(0.8)));
      }
      promo = rng_.Chance(promo_share_);
      promo_rate_lo = 0.10;
      promo_rate_hi = 0.30;
      break;
    }
    case kExplorer: {
      static constexpr double kCum[] = {0.35, 0.75, 1.0};
      int n = static_cast<int>(rng_.Pick(kCum, 3)) + 1;
      for (int k = 0; k < n; ++k) {
        int c = -1;
        if (rng_.Chance(0.75)) {  // something new to them, preferably a newly launched category
          if (rng_.Chance(0.5)) {
            for (int attempt = 0; attempt < 4 && c < 0; ++attempt) {
              int nc = model_.new_categories[rng_.Below(model_.new_categories.size())];
              if (model_.categories[static_cast<size_t>(nc)].launch_day <= day &&
                  std::find(bought_categories_.begin(), bought_categories_.end(), nc) ==
                      bought_categories_.end()) {
                c = nc;
              }
            }
          }
          for (int attempt = 0; attempt < 8 && c < 0; ++attempt) {
            int group = rng_.Chance(0.1) ? 0 : 1 + static_cast<int>(rng_.Below(3));
            int nc = RandomLaunchedCategory(group, day);
            if (std::find(bought_categories_.begin(), bought_categories_.end(), nc) ==
                bought_categories_.end()) {
              c = nc;
            }
          }
        }
        if (c < 0) {
          c = bought_categories_.empty()
                  ? RandomLaunchedCategory(1 + static_cast<int>(rng_.Below(3)), day)
                  : bought_categories_[rng_.Below(bought_categories_.size())];
        }
        if (has(c)) continue;
        uint32_t product = 0;
        bool found_new = false;
        if (rng_.Chance(0.5)) {  // the latest arrivals, upper price half
          const auto& by_price = model_.categories[static_cast<size_t>(c)].by_price;
          size_t start = by_price.size() / 2;
          size_t offset = rng_.Below(by_price.size() - start);
          for (size_t step = 0; step < by_price.size() - start && !found_new; ++step) {
            uint32_t p = by_price[start + (offset + step) % (by_price.size() - start)];
            int32_t launch = model_.products[p].launch_day;
            if (launch <= day && launch > day - 180) {
              product = p;
              found_new = true;
            }
          }
        }
        if (!found_new) product = PickProduct(c, Quantile(), day);
        AddLine(cats, product, rng_.Chance(0.85) ? 1 : 2);
      }
      promo = rng_.Chance(0.06);
      promo_rate_lo = promo_rate_hi = 0.10;
      break;
    }
    case kLapsed: {
      static constexpr double kCum[] = {0.25, 0.55, 0.80, 1.0};
      int n = static_cast<int>(rng_.Pick(kCum, 4)) + 3;
      for (int k = 0; k < n; ++k) {
        int c = rng_.Chance(0.9) ? favourite_categories_[rng_.Below(favourite_categories_.size())]
                                 : RandomLaunchedCategory(1 + static_cast<int>(rng_.Below(2)), day);
        if (has(c) || model_.categories[static_cast<size_t>(c)].launch_day > day) continue;
        AddLine(cats, PickProduct(c, Quantile(), day), std::min(5, 1 + rng_.Poisson(1.2)));
      }
      promo = rng_.Chance(0.12);
      promo_rate_lo = promo_rate_hi = 0.15;
      break;
    }
    default: {  // abandoners' and one-time buyers' occasional orders
      int n = rng_.Chance(0.7) ? 1 : 2;
      for (int k = 0; k < n; ++k) {
        int c = PickCategoryForBrowsing(day);
        if (has(c)) continue;
        AddLine(cats, PickProduct(c, Quantile(), day), rng_.Chance(0.85) ? 1 : 2);
      }
      promo = rng_.Chance(seg == kOneTime ? 0.40 : 0.30);
      promo_rate_lo = promo_rate_hi = seg == kOneTime ? 0.10 : 0.15;
      break;
    }
  }
  if (lines_.size() == basket.first_line) {  // all draws were duplicates: keep one line
    int c =
        favourite_categories_.empty() ? RandomLaunchedCategory(0, day) : favourite_categories_[0];
    AddLine(cats,
            PickProduct(c, Quantile(),
                        std::max(day, model_.categories[static_cast<size_t>(c)].launch_day)),
            1);
  }
  // Planted cross-sell: an antecedent category in the basket pulls in its consequent.
  size_t primary_end = cats.size();
  for (size_t k = 0; k < primary_end && cats.size() < 5; ++k) {
    const Category& cat = model_.categories[static_cast<size_t>(cats[k])];
    if (cat.affinity_target < 0 || has(cat.affinity_target)) continue;
    const Category& target = model_.categories[static_cast<size_t>(cat.affinity_target)];
    if (target.launch_day > day || !rng_.Chance(cat.affinity_probability)) continue;
    AddLine(cats, PickProduct(cat.affinity_target, Quantile(), day), 1);
  }
  for (uint32_t l = basket.first_line; l < lines_.size(); ++l) {
    GenLine& line = lines_[l];
    int64_t amount = line.unit_cents * line.quantity;
    if (promo) {
      line.discount_cents =
          static_cast<int64_t>(std::llround(amount * rng_.Uniform(promo_rate_lo, promo_rate_hi)));
    }
    basket.total += amount - line.discount_cents;
  }
  basket.num_lines = static_cast<uint32_t>(lines_.size()) - basket.first_line;
  for (int c : cats) {
    if (std::find(bought_categories_.begin(), bought_categories_.end(), c) ==
        bought_categories_.end()) {
      bought_categories_.push_back(c);
    }
  }
  return basket;
}

void CustomerSynth::PlaceOrder(int64_t t, const Session* s, const Basket& basket, int32_t order_no,
                               int32_t day) {
  GenEvent& e = Add(EventType::kOrder, t);
  if (s != nullptr) {
    Tag(e, *s);
    e.ids = kIdCustomer | kIdEmail;
    if (s->anon >= 0) {  // an anonymous session logs in at checkout: the order links the device
      e.ids |= kIdAnonymous;
      e.anon = s->anon;
      linked_[s->anon] = true;
    }
  } else {
    e.channel = Channel::kPos;
    e.ids = kIdCustomer | kIdEmail;
  }
  e.mixed_case_email = rng_.Chance(0.03);
  e.order = order_no;
  e.money = basket.total;
  e.first_line = basket.first_line;
  e.num_lines = basket.num_lines;
  last_order_day_ = day;
  MaybeReturn(t, basket, order_no);
  if (rng_.Chance(0.05)) Ticket(t + rng_.Range(2, 6) * kDay + TimeOfDay() % kDay, kTopicDelivery);
}

void CustomerSynth::MaybeReturn(int64_t order_t, const Basket& basket, int32_t order_no) {
  if (!rng_.Chance(kTraits[header_.segment].return_rate)) return;
  int64_t t = order_t + rng_.Range(5, 30) * kDay + rng_.Range(0, 8 * 3600);
  if (rng_.Chance(0.4)) Ticket(t - rng_.Range(3600, 2 * kDay), kTopicReturn);
  uint32_t first = static_cast<uint32_t>(lines_.size());
  bool whole = rng_.Chance(0.3);
  uint32_t chosen = basket.first_line + static_cast<uint32_t>(rng_.Below(basket.num_lines));
  int64_t refund = 0;
  for (uint32_t l = basket.first_line; l < basket.first_line + basket.num_lines; ++l) {
    if (!whole && l != chosen) continue;
    GenLine line = lines_[l];
    int returned = line.quantity > 1 && rng_.Chance(0.5) ? 1 : line.quantity;
    line.discount_cents = line.discount_cents * returned / line.quantity;
    line.quantity = returned;
    refund += line.unit_cents * returned - line.discount_cents;
    lines_.push_back(line);
  }
  GenEvent& e = Add(EventType::kReturn, t);
  double r = rng_.Uniform();
  e.channel = r < 0.6 ? Channel::kWeb : (r < 0.8 ? Channel::kPos : Channel::kSupport);
  e.ids = kIdCustomer | kIdEmail;
  e.order = order_no;
  e.money = refund;
  e.first_line = first;
  e.num_lines = static_cast<uint32_t>(lines_.size()) - first;
}

void CustomerSynth::Ticket(int64_t t, int topic) {
  GenEvent& e = Add(EventType::kSupportTicket, t);
  e.channel = Channel::kSupport;
  e.ids = kIdCustomer | kIdEmail;
  if (!identity_.phone.empty()) e.ids |= kIdPhone;
  e.topic = topic;
  e.ticket = tickets_++;
}

void CustomerSynth::OnlineOrder(int32_t day, int views, double search_p) {
  Session s = StartSession(SessionTime(day), true);
  Basket basket = BuildBasket(day);
  const GenLine* first_line = &lines_[basket.first_line];
  int first_category = model_.products[first_line->product].category;
  if (rng_.Chance(header_.segment == kReplenishment ? 0.1 : 0.5)) {
    PageView(s, kPageCategory, first_category, -1);
  }
  if (rng_.Chance(search_p)) Search(s, first_category);
  int dwell_hi = header_.segment == kExplorer ? 240 : 90;
  for (int v = 0; v < views; ++v) {
    uint32_t product;
    if (v < static_cast<int>(basket.num_lines)) {
      product = lines_[basket.first_line + static_cast<uint32_t>(v)].product;
    } else {
      int c = model_
                  .products[lines_[basket.first_line + static_cast<uint32_t>(v) % basket.num_lines]
                                .product]
                  .category;
      product = PickProduct(c, Quantile(), day);
    }
    ProductView(s, product, 8, dwell_hi);
  }
  for (uint32_t l = 0; l < basket.num_lines; ++l) {
    const GenLine& line = lines_[basket.first_line + l];
    CartAdd(s, line.product, line.quantity, false);
  }
  int32_t order_no = CheckoutStart(s, basket.total);
  s.t += rng_.Range(30, 400);
  PlaceOrder(s.t, &s, basket, order_no, day);
}

void CustomerSynth::StoreOrder(int32_t day) {
  int64_t t = day * kDay + (9 + rng_.Range(0, 9)) * 3600 + rng_.Range(0, 3599);
  if (t < signup_t_ + 60) t = signup_t_ + 60 + rng_.Range(0, 3600);
  Basket basket = BuildBasket(day);
  int32_t order_no = orders_++;
  PlaceOrder(t, nullptr, basket, order_no, day);
}

// A browsing session without an order; its content depends on the segment.
void CustomerSynth::BrowseSession(int32_t day) {
  Session s = StartSession(SessionTime(day), true);
  const int seg = header_.segment;
  int page_views = 0, views = 1, searches = 0;
  double cart_p = 0.0, dwell_hi = 90;
  switch (seg) {
    case kWindowShopper:
      page_views = static_cast<int>(rng_.Range(1, 2));
      views = static_cast<int>(rng_.Range(2, 4));
      searches = rng_.Chance(0.5) ? static_cast<int>(rng_.Range(1, 2)) : 0;
      cart_p = 0.12;
      dwell_hi = 150;
      break;
    case kExplorer:
      views = static_cast<int>(rng_.Range(3, 5));
      searches = rng_.Chance(0.4) ? 1 : 0;
      dwell_hi = 240;
      break;
    case kAbandoner:
      views = static_cast<int>(rng_.Range(1, 2));
      cart_p = 0.92;
      break;
    default:
      views = static_cast<int>(rng_.Range(1, 2));
      page_views = rng_.Chance(0.3) ? 1 : 0;
      break;
  }
  for (int k = 0; k < page_views; ++k) {
    double r = rng_.Uniform();
    if (r < 0.3) {
      PageView(s, kPageHome, -1, -1);
    } else if (r < 0.75) {
      PageView(s, kPageCategory, PickCategoryForBrowsing(day), -1);
    } else {
      PageView(s, kPageBlog, -1, static_cast<int32_t>(rng_.Below(40)));
    }
  }
  int category = PickCategoryForBrowsing(day);
  for (int k = 0; k < searches; ++k) Search(s, category);
  uint32_t last_product = 0;
  for (int k = 0; k < views; ++k) {
    if (k > 0 && rng_.Chance(0.3)) category = PickCategoryForBrowsing(day);
    last_product = PickProduct(category, Quantile(), day);
    ProductView(s, last_product, 5, static_cast<int>(dwell_hi));
  }
  if (rng_.Chance(cart_p)) {
    int adds = seg == kAbandoner ? static_cast<int>(rng_.Range(1, 2)) : 1;
    int64_t total = 0;
    for (int k = 0; k < adds; ++k) {
      uint32_t product = k == 0 ? last_product : PickProduct(category, Quantile(), day);
      int quantity = rng_.Chance(0.85) ? 1 : 2;
      CartAdd(s, product, quantity, false);
      total += model_.products[product].price_cents * quantity;
      if (rng_.Chance(seg == kAbandoner ? 0.2 : 0.5)) {
        CartAdd(s, product, quantity, true);
        total -= model_.products[product].price_cents * quantity;
      }
    }
    if (seg == kAbandoner && total > 0 && rng_.Chance(0.75)) {
      CheckoutStart(s, total);
      if (rng_.Chance(0.03)) Ticket(s.t + rng_.Range(600, kDay), kTopicPayment);
    }
  }
  EndSession(s);
}

void CustomerSynth::Emails(int32_t opt_out_day) {
  const SegmentTraits& tr = kTraits[header_.segment];
  int32_t stop = std::min(opt_out_day, model_.days);
  for (size_t c = 0; c < model_.campaigns.size(); ++c) {
    const Campaign& campaign = model_.campaigns[c];
    if (campaign.day < header_.signup_day || campaign.day >= stop) continue;
    if (campaign.day == header_.signup_day) continue;  // sent before this customer existed
    int64_t t = campaign.day * kDay + 9 * 3600 + rng_.Range(0, 3 * 3600);
    GenEvent& send = Add(EventType::kEmailSend, t);
    send.channel = Channel::kEmail;
    send.ids = kIdEmail;
    send.campaign = static_cast<int32_t>(c);
    bool lapsed = campaign.day > header_.active_end_day;
    double open_p = campaign.promo ? tr.open_promo : tr.open_news;
    double click_p = campaign.promo ? tr.click_promo : tr.click_news;
    if (lapsed) {
      open_p = 0.04;
      click_p = 0.1;
    }
    if (!rng_.Chance(open_p)) continue;
    t += 60 + static_cast<int64_t>(std::min(rng_.Exponential(6 * 3600.0), 3.0 * kDay));
    DeviceClass device = rng_.Chance(0.6) ? DeviceClass::kMobile : primary_device_;
    GenEvent& open = Add(EventType::kEmailOpen, t);
    open.channel = Channel::kEmail;
    open.device = device;
    open.ids = kIdEmail;
    open.campaign = static_cast<int32_t>(c);
    if (!rng_.Chance(click_p)) continue;
    GenEvent& click = Add(EventType::kEmailClick, t + rng_.Range(5, 300));
    click.channel = Channel::kEmail;
    click.device = device;
    click.ids = kIdEmail;
    click.campaign = static_cast<int32_t>(c);
  }
}

void CustomerSynth::Replenishment() {
  // 2-3 everyday categories, two cheap favourite products in each, reordered like clockwork.
  int n_cats = static_cast<int>(rng_.Range(2, 3));
  while (static_cast<int>(favourite_categories_.size()) < n_cats) {
    int c = RandomLaunchedCategory(0, header_.signup_day);
    if (std::find(favourite_categories_.begin(), favourite_categories_.end(), c) ==
        favourite_categories_.end()) {
      favourite_categories_.push_back(c);
    }
  }
  for (int c : favourite_categories_) {
    for (int k = 0; k < 2; ++k) {
      uint32_t p = PickProduct(c, Quantile(), header_.signup_day);
      if (std::find(favourite_products_.begin(), favourite_products_.end(), p) ==
          favourite_products_.end()) {
        favourite_products_.push_back(p);
      }
    }
  }
  promo_share_ = rng_.Chance(0.1) ? rng_.Uniform(0.35, 0.6) : rng_.Uniform(0.65, 0.95);
  double period = rng_.Uniform(40, 65);
  double spread = rng_.Uniform(0.03, 0.09);
  bool store_shopper = rng_.Chance(0.3);
  for (int32_t day = header_.signup_day + static_cast<int32_t>(rng_.Range(0, 7));
       day < model_.days;) {
    if (store_shopper && rng_.Chance(0.6)) {
      StoreOrder(day);
    } else {
      OnlineOrder(day, static_cast<int>(rng_.Range(0, 1)), 0.05);
    }
    day += std::max<int32_t>(
        7, static_cast<int32_t>(std::lround(period * (1 + spread * rng_.Normal()))));
  }
}

void CustomerSynth::Explorer() {
  double mean_gap = rng_.Uniform(60, 95);
  for (int32_t day = header_.signup_day + static_cast<int32_t>(rng_.Range(0, 14));
       day < model_.days;) {
    OnlineOrder(day, static_cast<int>(rng_.Range(2, 4)), 0.5);
    int32_t next = model_.AdvanceSeasonal(day, std::max(5.0, rng_.Gamma(2.0) * mean_gap / 2.0));
    // Explorers are current customers: the latest order is never long ago.
    if (next >= model_.days && day < model_.days - 60) {
      next = model_.days - 1 - static_cast<int32_t>(rng_.Range(0, 45));
    }
    int extra = rng_.Poisson(0.4);
    for (int k = 0; k < extra; ++k) {
      int32_t browse_day =
          day + 1 +
          static_cast<int32_t>(rng_.Below(static_cast<uint64_t>(std::max(1, next - day - 1))));
      if (browse_day < model_.days) BrowseSession(browse_day);
    }
    day = next;
  }
}

void CustomerSynth::Abandoner() {
  double mean_gap = rng_.Uniform(25, 45);
  std::vector<int32_t> days;
  for (int32_t day = header_.signup_day + static_cast<int32_t>(rng_.Range(0, 5)); day < model_.days;
       day = model_.AdvanceSeasonal(day, std::max(1.0, rng_.Gamma(1.5) * mean_gap / 1.5))) {
    days.push_back(day);
  }
  // Many sessions even for recent signups: at least five, spread over their time with us.
  while (days.size() < 5) {
    int32_t span = model_.days - header_.signup_day;
    days.push_back(header_.signup_day +
                   static_cast<int32_t>(rng_.Below(static_cast<uint64_t>(span))));
  }
  std::sort(days.begin(), days.end());
  static constexpr double kOrdersCum[] = {0.25, 0.70, 0.95, 1.0};
  size_t n_orders = std::min(days.size(), rng_.Pick(kOrdersCum, 4));
  std::vector<char> converts(days.size(), 0);
  for (size_t k = 0; k < n_orders; ++k) {
    size_t pick = rng_.Below(days.size());
    while (converts[pick]) pick = (pick + 1) % days.size();
    converts[pick] = 1;
  }
  for (size_t k = 0; k < days.size(); ++k) {
    if (converts[k]) {
      OnlineOrder(days[k], static_cast<int>(rng_.Range(1, 3)), 0.2);
    } else {
      BrowseSession(days[k]);
    }
  }
}

void CustomerSynth::Lapsed() {
  int n_cats = static_cast<int>(rng_.Range(3, 5));
  for (int attempt = 0; attempt < 40 && static_cast<int>(favourite_categories_.size()) < n_cats;
       ++attempt) {
    int c = RandomLaunchedCategory(1 + static_cast<int>(rng_.Below(2)), header_.signup_day);
    if (std::find(favourite_categories_.begin(), favourite_categories_.end(), c) ==
        favourite_categories_.end()) {
      favourite_categories_.push_back(c);
    }
  }
  double mean_gap = rng_.Uniform(80, 130);
  bool store_shopper = rng_.Chance(0.5);
  std::vector<int32_t> days;
  for (int32_t day = header_.signup_day + static_cast<int32_t>(rng_.Range(0, 20));
       day <= header_.active_end_day;
       day = model_.AdvanceSeasonal(day, std::max(7.0, rng_.Gamma(3.0) * mean_gap / 3.0))) {
    days.push_back(day);
  }
  // The last order falls on the lapse start, so recency is exactly the planted lapse.
  if (days.empty() || days.back() < header_.active_end_day - 10) {
    days.push_back(header_.active_end_day);
  } else {
    days.back() = header_.active_end_day;
  }
  for (size_t k = 0; k < days.size(); ++k) {
    if (store_shopper && rng_.Chance(0.5)) {
      StoreOrder(days[k]);
    } else {
      OnlineOrder(days[k], static_cast<int>(rng_.Range(1, 3)), 0.2);
    }
    if (k + 1 < days.size() && rng_.Chance(0.3)) {
      BrowseSession(days[k] + 1 +
                    static_cast<int32_t>(
                        rng_.Below(static_cast<uint64_t>(std::max(1, days[k + 1] - days[k] - 1)))));
    }
  }
  // Little after the lapse: now and then one look around.
  if (rng_.Chance(0.35)) {
    int32_t from = header_.active_end_day + 30;
    if (from < model_.days) {
      BrowseSession(from +
                    static_cast<int32_t>(rng_.Below(static_cast<uint64_t>(model_.days - from))));
    }
  }
}

void CustomerSynth::OneTime() {
  int32_t order_day = Clock(header_.signup_day + static_cast<int32_t>(rng_.Range(0, 10)));
  OnlineOrder(order_day, static_cast<int>(rng_.Range(1, 4)), 0.3);
  int extra = rng_.Poisson(0.8);
  for (int k = 0; k < extra; ++k) {
    int32_t day = order_day + 1 + static_cast<int32_t>(rng_.Below(400));
    if (day < model_.days) BrowseSession(day);
  }
}

void CustomerSynth::WindowShopper() {
  int n_cats = static_cast<int>(rng_.Range(3, 6));
  for (int k = 0; k < n_cats; ++k) {
    favourite_categories_.push_back(RandomLaunchedCategory(static_cast<int>(rng_.Below(4)), 0));
  }
  double mean_gap = rng_.Uniform(55, 85);
  for (int32_t day = header_.signup_day + static_cast<int32_t>(rng_.Range(0, 5)); day < model_.days;
       day = model_.AdvanceSeasonal(day, std::max(1.0, rng_.Gamma(1.5) * mean_gap / 1.5))) {
    BrowseSession(day);
  }
}

void CustomerSynth::Generate(uint64_t customer_idx) {
  header_ = MakeCustomerHeader(model_, customer_idx);
  identity_.Build(model_.options.seed, customer_idx);
  rng_ = Rng(StreamSeed(model_.options.seed, customer_idx, 2));
  events_.clear();
  lines_.clear();
  favourite_categories_.clear();
  favourite_products_.clear();
  bought_categories_.clear();
  sessions_ = orders_ = tickets_ = 0;
  linked_[0] = linked_[1] = false;
  last_order_day_ = -1;
  const SegmentTraits& tr = kTraits[header_.segment];
  uses_app_ = rng_.Chance(tr.uses_app);
  double r = rng_.Uniform();
  primary_device_ =
      r < 0.45 ? DeviceClass::kDesktop : (r < 0.9 ? DeviceClass::kMobile : DeviceClass::kTablet);

  // Signup: a first anonymous look around now and then, then the account (identify + consent).
  signup_t_ = header_.signup_day * kDay + TimeOfDay();
  int8_t signup_device = uses_app_ && rng_.Chance(0.5) ? 1 : 0;
  if (rng_.Chance(std::min(1.0, 2 * model_.options.anonymous_share))) {
    int64_t t = signup_t_ - rng_.Range(600, 3 * kDay);
    if (t >= 0) {
      Session s = StartSession(t, true, true);
      int views = static_cast<int>(rng_.Range(1, 3));
      for (int k = 0; k < views; ++k) {
        int c = RandomLaunchedCategory(static_cast<int>(rng_.Below(4)), header_.signup_day);
        ProductView(s, PickProduct(c, rng_.Uniform(), header_.signup_day), 5, 90);
      }
      signup_device = s.anon;
    }
  }
  GenEvent& signup = Add(EventType::kIdentify, signup_t_);
  signup.channel = signup_device == 1 ? Channel::kApp : Channel::kWeb;
  signup.device = signup_device == 1 ? DeviceClass::kMobile : primary_device_;
  signup.ids = kIdCustomer | kIdEmail | kIdAnonymous;
  if (!identity_.phone.empty()) signup.ids |= kIdPhone;
  signup.anon = signup_device;
  linked_[signup_device] = true;
  const Channel signup_channel = signup.channel;
  GenEvent& consent = Add(EventType::kConsent, signup_t_ + rng_.Range(1, 30));
  consent.channel = signup_channel;
  consent.ids = kIdCustomer | kIdEmail;
  consent.marketing = 1;
  consent.topic = 0;

  // Referred by an earlier customer who was active then: the referrer's event names our email.
  if (customer_idx > 0 && rng_.Chance(model_.options.referral_share)) {
    int64_t t = signup_t_ - rng_.Range(3600, 10 * kDay);
    for (int attempt = 0; attempt < 4 && t >= 0; ++attempt) {
      uint64_t referrer = customer_idx - 1 - rng_.Below(std::min<uint64_t>(customer_idx, 5000));
      CustomerHeader rh = MakeCustomerHeader(model_, referrer);
      if (rh.signup_day * kDay < t - kDay && rh.active_end_day * kDay >= t) {
        GenEvent& e = Add(EventType::kReferral, t);
        e.channel = rng_.Chance(0.5) ? Channel::kWeb : Channel::kApp;
        e.ids = kIdCustomer | kIdEmail;
        e.about_other = true;
        e.other = referrer;
        break;
      }
    }
  }

  switch (header_.segment) {
    case kReplenishment:
      Replenishment();
      break;
    case kExplorer:
      Explorer();
      break;
    case kAbandoner:
      Abandoner();
      break;
    case kLapsed:
      Lapsed();
      break;
    case kOneTime:
      OneTime();
      break;
    default:
      WindowShopper();
      break;
  }

  int32_t opt_out_day = model_.days;
  if (rng_.Chance(std::min(1.0, tr.opt_out * model_.options.opt_out_scale))) {
    opt_out_day = header_.signup_day + 7 +
                  static_cast<int32_t>(rng_.Below(
                      static_cast<uint64_t>(std::max(1, model_.days - header_.signup_day - 7))));
    if (opt_out_day < model_.days) {
      GenEvent& e = Add(EventType::kConsent, opt_out_day * kDay + TimeOfDay());
      e.channel = Channel::kEmail;
      e.ids = kIdCustomer | kIdEmail;
      e.marketing = 0;
      e.topic = 0;
    }
  }
  Emails(opt_out_day);
  if (rng_.Chance(0.03)) {
    int32_t day =
        header_.signup_day +
        static_cast<int32_t>(rng_.Below(static_cast<uint64_t>(model_.days - header_.signup_day)));
    Ticket(day * kDay + TimeOfDay(), kTopicAccount);
  }
  if (header_.segment == kExplorer && rng_.Chance(0.2) && last_order_day_ >= 0) {
    Ticket(last_order_day_ * kDay + TimeOfDay(), kTopicProduct);
  }

  // Keep what falls inside the window, in time order.
  const int64_t end = static_cast<int64_t>(model_.days) * kDay;
  events_.erase(std::remove_if(events_.begin(), events_.end(),
                               [end](const GenEvent& e) { return e.time < 0 || e.time >= end; }),
                events_.end());
  std::sort(events_.begin(), events_.end(), [](const GenEvent& a, const GenEvent& b) {
    return a.time != b.time ? a.time < b.time : a.seq < b.seq;
  });
}

}  // namespace shoal::generate_internal
