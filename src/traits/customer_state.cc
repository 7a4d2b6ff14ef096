#include "traits/customer_state.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common/time.h"
#include "traits/coding.h"
#include "traits/user_trait_values.h"

namespace shoal {

using traits_internal::PutSigned;
using traits_internal::StateReader;

namespace {

constexpr uint8_t kCustomerFormat = 1;
constexpr double kMaxFixedUnits = 9e12;

// Merges two vectors sorted by `key` (unique keys within each): equal keys are folded with
// merge(into_item, from_item).
template <typename Vec, typename KeyFn, typename MergeFn>
void MergeByKey(Vec* into, const Vec& from, KeyFn key, MergeFn merge) {
  using T = typename Vec::value_type;
  if (from.empty()) return;
  if (into->empty()) {
    *into = from;
    return;
  }
  Vec out;
  out.reserve(into->size() + from.size());
  size_t a = 0, b = 0;
  while (a < into->size() && b < from.size()) {
    auto ka = key((*into)[a]);
    auto kb = key(from[b]);
    if (ka < kb) {
      out.push_back((*into)[a++]);
    } else if (kb < ka) {
      out.push_back(from[b++]);
    } else {
      T item = (*into)[a++];
      merge(item, from[b++]);
      out.push_back(item);
    }
  }
  out.insert(out.end(), into->begin() + static_cast<ptrdiff_t>(a), into->end());
  out.insert(out.end(), from.begin() + static_cast<ptrdiff_t>(b), from.end());
  into->swap(out);
}

// Finds or inserts the element with key `k` in a vector sorted by key; fast when k is the
// largest key so far (events arriving in time order).
template <typename Vec, typename K, typename KeyFn, typename MakeFn>
typename Vec::value_type& FindOrInsert(Vec* v, K k, KeyFn key, MakeFn make) {
  using T = typename Vec::value_type;
  if (v->empty() || key(v->back()) < k) {
    v->push_back(make());
    return v->back();
  }
  if (key(v->back()) == k) return v->back();
  auto it = std::lower_bound(v->begin(), v->end(), k,
                             [&key](const T& item, K value) { return key(item) < value; });
  if (it != v->end() && key(*it) == k) return *it;
  return *v->insert(it, make());
}

// std::upper_bound over a sorted array that is likely not in cache (a long order history of
// a customer not seen for a while): rounds of 15 evenly spaced probes whose loads do not
// depend on each other, so the memory latencies overlap (a binary search waits for one per
// halving: ~7 for 400 orders, one round trip to memory each), then a binary search of the last
// short range. O(log n) comparisons as well.
constexpr size_t kColdProbes = 15;
constexpr size_t kColdSearchMin = 4 * (kColdProbes + 1);  // shorter ranges: a binary search

template <typename T>
size_t UpperBoundOfCold(const CompactVector<T>& v, const T& value) {
  constexpr size_t kProbes = kColdProbes;
  size_t lo = 0, hi = v.size();  // the answer is in [lo, hi]
  while (hi - lo > kColdSearchMin) {
    const size_t step = (hi - lo) / (kProbes + 1);
    size_t at_most = 0;  // probes <= value: a prefix of them, the array being sorted
    for (size_t k = 1; k <= kProbes; ++k) at_most += !(value < v[lo + k * step]);
    const size_t new_lo = at_most == 0 ? lo : lo + at_most * step + 1;
    hi = at_most == kProbes ? hi : lo + (at_most + 1) * step;
    lo = new_lo;
  }
  return static_cast<size_t>(std::upper_bound(v.begin() + lo, v.begin() + hi, value) - v.begin());
}

void KeepLater(TimeMicros t, double v, TimeMicros* last_time, double* last_value) {
  if (t > *last_time || (t == *last_time && v > *last_value)) {
    *last_time = t;
    *last_value = v;
  }
}

bool SameDouble(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

}  // namespace

int64_t ToFixed(double value) {
  if (!std::isfinite(value)) return 0;
  return std::llround(std::clamp(value, -kMaxFixedUnits, kMaxFixedUnits) * kFixedScale);
}

bool operator==(const CustomerState::UserTraitState& a, const CustomerState::UserTraitState& b) {
  return a.trait_idx == b.trait_idx && a.aggregate == b.aggregate &&
         a.window_days == b.window_days && a.count == b.count && a.value == b.value &&
         SameDouble(a.last_value, b.last_value) && a.days == b.days && a.distinct == b.distinct;
}

int64_t CustomerState::InitialValue(TraitAggregate aggregate) {
  switch (aggregate) {
    case TraitAggregate::kMin:
      return INT64_MAX;
    case TraitAggregate::kMax:
    case TraitAggregate::kLast:
    case TraitAggregate::kTimeSince:
      return INT64_MIN;
    default:
      return 0;
  }
}

void CustomerState::FoldValue(TraitAggregate aggregate, int64_t x, int64_t* value) {
  switch (aggregate) {
    case TraitAggregate::kSum:
    case TraitAggregate::kMean:
      *value += x;
      break;
    case TraitAggregate::kMin:
      *value = std::min(*value, x);
      break;
    case TraitAggregate::kMax:
    case TraitAggregate::kTimeSince:
      *value = std::max(*value, x);
      break;
    default:
      break;  // count, distinct: no value; last: KeepLater
  }
}

namespace {
// Two's-complement addition without signed-overflow UB (a corrupt or extreme input may hold
// totals whose sum leaves int64).
int64_t WrappingAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
}  // namespace

bool operator==(const CustomerState& a, const CustomerState& b) {
  // Serialize is canonical (sorted items, live buckets only, raw double bits).
  std::string x, y;
  a.Serialize(&x);
  b.Serialize(&y);
  return x == y;
}

int32_t CustomerState::LastDay() const {
  return num_events_ == 0 ? INT32_MIN : static_cast<int32_t>(DayOf(last_event_));
}

void CustomerState::Touch(TimeMicros t) {
  ++num_events_;
  first_event_ = std::min(first_event_, t);
  if (t > last_event_) {
    last_event_ = t;
  }
}

std::span<const CustomerState::ActivityDay> CustomerState::activity_days() const {
  auto it = std::find_if(activity_.begin(), activity_.end(), [this](const ActivityDay& d) {
    return !Expired(d.day, kActivityWindowDays);
  });
  return {activity_.data() + (it - activity_.begin()), static_cast<size_t>(activity_.end() - it)};
}

namespace {
// Drops the expired buckets of one user trait (days <= last_day - window).
void PruneUserTrait(CustomerState::UserTraitState& u, int64_t last_day) {
  if (u.window_days <= 0) return;
  const int64_t cut = last_day - u.window_days;
  if (!u.days.empty() && u.days.front().day <= cut) {
    auto it = std::find_if(u.days.begin(), u.days.end(),
                           [&](const CustomerState::UserDay& d) { return d.day > cut; });
    u.days.erase(u.days.begin(), it);
  }
  std::erase_if(u.distinct,
                [&](const CustomerState::DistinctValue& d) { return d.last_day <= cut; });
}
}  // namespace

void CustomerState::PruneWindows(int32_t last_day) {
  // A bucket of day d is in some future window only if d > day(as_of) - W >= last_day - W.
  const int64_t activity_cut = static_cast<int64_t>(last_day) - kActivityWindowDays;
  if (!activity_.empty() && activity_.front().day <= activity_cut) {
    auto it = std::find_if(activity_.begin(), activity_.end(),
                           [&](const ActivityDay& d) { return d.day > activity_cut; });
    activity_.erase(activity_.begin(), it);
  }
  for (UserTraitState& u : MutableUserTraits()) PruneUserTrait(u, last_day);
}

const CustomerState::UserTraitState* CustomerState::UserTrait(size_t trait_idx) const {
  const std::span<const UserTraitState> states = user_traits();
  auto it = std::lower_bound(states.begin(), states.end(), trait_idx,
                             [](const UserTraitState& u, size_t idx) { return u.trait_idx < idx; });
  return it != states.end() && it->trait_idx == trait_idx ? &*it : nullptr;
}

CustomerState::UserTraitState& CustomerState::UserTraitFor(uint32_t trait_idx,
                                                           const UserTraitSpec& spec) {
  auto make = [&] {
    UserTraitState u;
    u.trait_idx = static_cast<uint16_t>(trait_idx);
    u.aggregate = static_cast<uint8_t>(spec.aggregate);
    u.window_days = spec.window_days;
    u.value = InitialValue(spec.aggregate);
    return u;
  };
  RareState& rare = Rare();
  std::vector<UserTraitState>& states = rare.user;
  if (trait_idx < 64) {
    const uint64_t bit = uint64_t{1} << trait_idx;
    const auto pos = static_cast<size_t>(std::popcount(rare.user_present & (bit - 1)));
    if (rare.user_present & bit) return states[pos];
    rare.user_present |= bit;
    // Grow by one: a customer matches each trait at most once here, and doubling would leave
    // up to half of these records unused.
    if (states.size() == states.capacity()) states.reserve(states.size() + 1);
    return *states.insert(states.begin() + static_cast<ptrdiff_t>(pos), make());
  }
  return FindOrInsert(
      &states, static_cast<uint16_t>(trait_idx), [](const UserTraitState& u) { return u.trait_idx; },
      make);
}

void CustomerState::RebuildUserIndex() {
  if (!rare_) return;
  rare_->user_present = 0;
  for (const UserTraitState& u : rare_->user) {
    if (u.trait_idx < 64) rare_->user_present |= uint64_t{1} << u.trait_idx;
  }
  DropRareIfEmpty();
}

CustomerState::CategoryStats& CustomerState::Category(uint32_t id, int32_t day) {
  CategoryStats& c = FindOrInsert(
      &categories_, id, [](const CategoryStats& s) { return s.category_id; },
      [&] {
        return CategoryStats{id, 0, 0, 0, day};
      });
  c.first_day = std::min(c.first_day, day);
  return c;
}

void CustomerState::AddOrder(const Event& e, const EventBatch& batch, PopulationState& population,
                             int32_t day) {
  auto lines = batch.Lines(e);
  double order_discount = std::isfinite(e.discount) ? e.discount : 0.0;
  double line_discounts = 0, line_gross = 0;
  for (const OrderLine& line : lines) {
    if (std::isfinite(line.discount)) line_discounts += line.discount;
    if (std::isfinite(line.quantity) && std::isfinite(line.unit_price)) {
      line_gross += line.quantity * line.unit_price;
    }
  }
  double total = std::isfinite(e.total) ? e.total : line_gross - line_discounts - order_discount;
  Order order{e.timestamp, ToFixed(total)};
  orders_total_fixed_ = WrappingAdd(orders_total_fixed_, order.total_fixed);
  size_t pos = orders_.size();
  if (pos > 0 && order < orders_.back()) pos = UpperBoundOfCold(orders_, order);
  if (pos == orders_.size()) {
    orders_.push_back(order);
  } else {
    orders_.insert(orders_.begin() + pos, order);
  }
  // Orders of one day are adjacent: the order opens a new order day unless a neighbour has
  // its day.
  const int64_t order_day = DayOf(order.timestamp);
  const bool known_day =
      (pos > 0 && DayOf(orders_[pos - 1].timestamp) == order_day) ||
      (pos + 1 < orders_.size() && DayOf(orders_[pos + 1].timestamp) == order_day);
  if (!known_day) {
    ++order_days_;
    ipi_std_days_.Clear();
  }
  discount_fixed_ += ToFixed(order_discount + line_discounts);
  for (const OrderLine& line : lines) {
    if (line.category.empty()) continue;
    uint32_t id = population.CategoryId(line.category);
    CategoryStats& c = Category(id, day);
    ++c.order_lines;
    if (line.unit_price > 0 && std::isfinite(line.unit_price)) {
      ++c.priced_lines;
      ++priced_lines_;
      sum_log_price_nano_ += std::llround(std::log(line.unit_price) * 1e9);
      population.AddUnitPrice(id, line.unit_price);
    }
  }
}

void CustomerState::Update(const Event& e, const EventBatch& batch, PopulationState& population,
                           const TraitConfig& config) {
  Touch(e.timestamp);
  const auto day = static_cast<int32_t>(DayOf(e.timestamp));
  if (e.IsBuiltin()) ++type_counts_[e.type];
  ++channel_counts_[static_cast<size_t>(e.channel)];
  ++device_counts_[static_cast<size_t>(e.device)];
  const bool recent =
      static_cast<int64_t>(day) > static_cast<int64_t>(LastDay()) - kActivityWindowDays;
  auto activity_day = [&]() -> ActivityDay& {
    if (activity_.size() == activity_.capacity() && !activity_.empty() &&
        Expired(activity_.front().day, kActivityWindowDays)) {
      PruneWindows(LastDay());
    }
    return FindOrInsert(
        &activity_, day, [](const ActivityDay& d) { return d.day; },
        [&] {
          return ActivityDay{day, 0, 0};
        });
  };
  switch (static_cast<EventType>(e.type)) {
    case EventType::kOrder:
      AddOrder(e, batch, population, day);
      break;
    case EventType::kReturn: {
      double total = e.total;
      if (!std::isfinite(total)) {
        total = 0;
        for (const OrderLine& line : batch.Lines(e)) {
          if (std::isfinite(line.quantity) && std::isfinite(line.unit_price)) {
            total += line.quantity * line.unit_price;
          }
        }
      }
      refunded_fixed_ += ToFixed(total);
      break;
    }
    case EventType::kProductView:
      if (recent) ++activity_day().product_views;
      if (!e.category.empty()) ++Category(population.CategoryId(e.category), day).product_views;
      break;
    case EventType::kSessionStart:
      if (recent) ++activity_day().sessions;
      break;
    case EventType::kCartAdd:
    case EventType::kCheckoutStart:
      FindOrInsert(
          &cart_days_, day, [](int32_t d) { return d; }, [&] { return day; });
      break;
    case EventType::kEmailSend:
    case EventType::kEmailOpen: {
      if (e.campaign_id.empty()) break;
      uint64_t hash = EventIdHash(e.campaign_id);
      if (!ExactCampaigns()) {
        uint32_t packed;
        if (PackTime(e.timestamp, &packed)) {
          PackedCampaign& c = FindOrInsert(
              &campaigns_, hash, [](const PackedCampaign& x) { return x.campaign_hash; },
              [&] {
                return PackedCampaign{hash, kNoPackedTime, kNoPackedTime};
              });
          uint32_t& slot = e.Is(EventType::kEmailSend) ? c.first_send : c.first_open;
          slot = std::min(slot, packed);
          break;
        }
        MakeCampaignsExact();
      }
      Campaign& c = FindOrInsert(
          ExactCampaigns(), hash, [](const Campaign& x) { return x.campaign_hash; },
          [&] {
            return Campaign{hash, kNoTime, kNoTime};
          });
      TimeMicros& slot = e.Is(EventType::kEmailSend) ? c.first_send : c.first_open;
      slot = std::min(slot, e.timestamp);
      break;
    }
    case EventType::kConsent:
      if (e.consent >= 0 &&
          (e.timestamp > consent_time_ || (e.timestamp == consent_time_ && e.consent < consent_))) {
        consent_time_ = e.timestamp;
        consent_ = e.consent;
      }
      break;
    default:
      break;
  }
  for (size_t i = 0; i < config.user_traits.size(); ++i) {
    UpdateUserTrait(i, config.user_traits[i], e, batch, day);
  }
}

void CustomerState::UpdateUserTrait(size_t trait_idx, const UserTraitSpec& spec, const Event& e,
                                    const EventBatch& batch, int32_t day) {
  if (!spec.event_types.empty() && std::find(spec.event_types.begin(), spec.event_types.end(),
                                             e.type) == spec.event_types.end()) {
    return;
  }
  if (!spec.where_property.empty()) {
    std::optional<std::string_view> text = UserTraitTextValue(spec.where_property, e, batch);
    if (!text || *text != spec.where_equals) return;
  }
  double value = 0;
  uint64_t value_hash = 0;
  switch (spec.aggregate) {
    case TraitAggregate::kCount:
    case TraitAggregate::kTimeSince:
      break;
    case TraitAggregate::kDistinct: {
      std::optional<uint64_t> hash = UserTraitValueHash(spec.property, e, batch);
      if (!hash) return;
      value_hash = *hash;
      break;
    }
    default:
      value = UserTraitNumericValue(spec.property, e, batch);
      if (!std::isfinite(value)) return;
      break;
  }
  UserTraitState& u = UserTraitFor(static_cast<uint32_t>(trait_idx), spec);
  const TraitAggregate aggregate = spec.aggregate;
  const int64_t fixed = ToFixed(value);
  ++u.count;
  if (aggregate == TraitAggregate::kLast) {
    KeepLater(e.timestamp, value, &u.value, &u.last_value);
  } else if (aggregate == TraitAggregate::kTimeSince) {
    FoldValue(aggregate, e.timestamp, &u.value);
  } else {
    FoldValue(aggregate, fixed, &u.value);
  }
  const bool windowed = u.window_days > 0;
  const bool in_kept_window = windowed && !Expired(day, u.window_days);
  const bool bucketed = aggregate != TraitAggregate::kLast &&
                        aggregate != TraitAggregate::kTimeSince &&
                        aggregate != TraitAggregate::kDistinct;
  if (in_kept_window && bucketed) {
    if (u.days.size() == u.days.capacity() && !u.days.empty() &&
        Expired(u.days.front().day, u.window_days)) {
      PruneUserTrait(u, LastDay());  // lazily, instead of growing
    }
    UserDay& d = FindOrInsert(
        &u.days, day, [](const UserDay& x) { return x.day; },
        [&] {
          return UserDay{day, 0, InitialValue(aggregate)};
        });
    ++d.count;
    FoldValue(aggregate, fixed, &d.value);
  }
  if (aggregate == TraitAggregate::kDistinct && (!windowed || in_kept_window)) {
    if (windowed && u.distinct.size() == u.distinct.capacity()) PruneUserTrait(u, LastDay());
    DistinctValue& d = FindOrInsert(
        &u.distinct, value_hash, [](const DistinctValue& x) { return x.value_hash; },
        [&] {
          return DistinctValue{value_hash, day};
        });
    d.last_day = std::max(d.last_day, day);
  }
}

void CustomerState::Combine(const CustomerState& other) {
  if (other.Empty()) return;
  num_events_ += other.num_events_;
  first_event_ = std::min(first_event_, other.first_event_);
  last_event_ = std::max(last_event_, other.last_event_);
  for (size_t i = 0; i < std::size(type_counts_); ++i) type_counts_[i] += other.type_counts_[i];
  for (size_t i = 0; i < std::size(channel_counts_); ++i) {
    channel_counts_[i] += other.channel_counts_[i];
  }
  for (size_t i = 0; i < std::size(device_counts_); ++i) {
    device_counts_[i] += other.device_counts_[i];
  }
  discount_fixed_ += other.discount_fixed_;
  refunded_fixed_ += other.refunded_fixed_;
  sum_log_price_nano_ += other.sum_log_price_nano_;
  priced_lines_ += other.priced_lines_;
  if (other.consent_ >= 0 &&
      (other.consent_time_ > consent_time_ ||
       (other.consent_time_ == consent_time_ && other.consent_ < consent_))) {
    consent_time_ = other.consent_time_;
    consent_ = other.consent_;
  }
  if (!other.orders_.empty()) {
    CompactVector<Order> merged;
    merged.resize(orders_.size() + other.orders_.size());
    std::merge(orders_.begin(), orders_.end(), other.orders_.begin(), other.orders_.end(),
               merged.begin());
    orders_.swap(merged);
    orders_total_fixed_ = WrappingAdd(orders_total_fixed_, other.orders_total_fixed_);
    RecountOrderDays();
  }
  MergeByKey(
      &activity_, other.activity_, [](const ActivityDay& d) { return d.day; },
      [](ActivityDay& a, const ActivityDay& b) {
        a.product_views += b.product_views;
        a.sessions += b.sessions;
      });
  MergeByKey(
      &cart_days_, other.cart_days_, [](int32_t d) { return d; }, [](int32_t&, int32_t) {});
  MergeByKey(
      &categories_, other.categories_, [](const CategoryStats& c) { return c.category_id; },
      [](CategoryStats& a, const CategoryStats& b) {
        a.order_lines += b.order_lines;
        a.priced_lines += b.priced_lines;
        a.product_views += b.product_views;
        a.first_day = std::min(a.first_day, b.first_day);
      });
  if (!ExactCampaigns() && !other.ExactCampaigns()) {
    MergeByKey(
        &campaigns_, other.campaigns_, [](const PackedCampaign& c) { return c.campaign_hash; },
        [](PackedCampaign& a, const PackedCampaign& b) {
          a.first_send = std::min(a.first_send, b.first_send);
          a.first_open = std::min(a.first_open, b.first_open);
        });
  } else {
    MakeCampaignsExact();
    CompactVector<Campaign> theirs;
    theirs.reserve(other.num_campaigns());
    for (size_t i = 0; i < other.num_campaigns(); ++i) theirs.push_back(other.campaign(i));
    MergeByKey(
        ExactCampaigns(), theirs, [](const Campaign& c) { return c.campaign_hash; },
        [](Campaign& a, const Campaign& b) {
          a.first_send = std::min(a.first_send, b.first_send);
          a.first_open = std::min(a.first_open, b.first_open);
        });
  }
  if (!other.user_traits().empty()) {
    MergeByKey(
        &Rare().user, other.rare_->user, [](const UserTraitState& u) { return u.trait_idx; },
        [](UserTraitState& a, const UserTraitState& b) {
          const TraitAggregate aggregate = a.Aggregate();
          a.count += b.count;
          if (aggregate == TraitAggregate::kLast) {
            KeepLater(b.value, b.last_value, &a.value, &a.last_value);
          } else {
            FoldValue(aggregate, b.value, &a.value);
          }
          MergeByKey(
              &a.days, b.days, [](const UserDay& d) { return d.day; },
              [aggregate](UserDay& x, const UserDay& y) {
                x.count += y.count;
                FoldValue(aggregate, y.value, &x.value);
              });
          MergeByKey(
              &a.distinct, b.distinct, [](const DistinctValue& d) { return d.value_hash; },
              [](DistinctValue& x, const DistinctValue& y) {
                x.last_day = std::max(x.last_day, y.last_day);
              });
        });
  }
  RebuildUserIndex();
  PruneWindows(LastDay());
}

void CustomerState::RemapCategories(std::span<const uint32_t> old_to_new) {
  for (CategoryStats& c : categories_) {
    if (c.category_id < old_to_new.size()) c.category_id = old_to_new[c.category_id];
  }
  std::sort(
      categories_.begin(), categories_.end(),
      [](const CategoryStats& a, const CategoryStats& b) { return a.category_id < b.category_id; });
  // Two old ids mapped to one new id (cannot happen for a Combine mapping) are folded.
  CompactVector<CategoryStats> folded;
  folded.reserve(categories_.size());
  for (const CategoryStats& c : categories_) {
    if (!folded.empty() && folded.back().category_id == c.category_id) {
      CategoryStats& f = folded.back();
      f.order_lines += c.order_lines;
      f.priced_lines += c.priced_lines;
      f.product_views += c.product_views;
      f.first_day = std::min(f.first_day, c.first_day);
    } else {
      folded.push_back(c);
    }
  }
  categories_.swap(folded);
}

// ---- Serialization ----
// Layout (format 1): format byte; num_events; [first, last event time]; counters; sums;
// consent; then each vector as a count followed by delta-coded sorted items.

void CustomerState::Serialize(std::string* out) const {
  out->push_back(static_cast<char>(kCustomerFormat));
  PutVarint(out, num_events_);
  if (num_events_ == 0) return;
  PutSigned(out, first_event_);
  PutSigned(out, last_event_);
  for (uint32_t c : type_counts_) PutVarint(out, c);
  for (uint32_t c : channel_counts_) PutVarint(out, c);
  for (uint32_t c : device_counts_) PutVarint(out, c);
  PutSigned(out, discount_fixed_);
  PutSigned(out, refunded_fixed_);
  PutSigned(out, sum_log_price_nano_);
  PutVarint(out, priced_lines_);
  PutSigned(out, consent_);
  PutSigned(out, consent_time_);

  PutVarint(out, orders_.size());
  TimeMicros prev_time = 0;
  for (const Order& o : orders_) {
    PutSigned(out, o.timestamp - prev_time);
    prev_time = o.timestamp;
    PutSigned(out, o.total_fixed);
  }
  const auto live_activity = activity_days();
  PutVarint(out, live_activity.size());
  int64_t prev_day = 0;
  for (const ActivityDay& d : live_activity) {
    PutSigned(out, d.day - prev_day);
    prev_day = d.day;
    PutVarint(out, d.product_views);
    PutVarint(out, d.sessions);
  }
  PutVarint(out, cart_days_.size());
  prev_day = 0;
  for (int32_t d : cart_days_) {
    PutSigned(out, d - prev_day);
    prev_day = d;
  }
  PutVarint(out, categories_.size());
  int64_t prev_id = 0;
  for (const CategoryStats& c : categories_) {
    PutVarint(out, static_cast<uint64_t>(c.category_id - prev_id));
    prev_id = c.category_id;
    PutVarint(out, c.order_lines);
    PutVarint(out, c.priced_lines);
    PutVarint(out, c.product_views);
    PutSigned(out, c.first_day);
  }
  PutVarint(out, num_campaigns());
  for (size_t i = 0; i < num_campaigns(); ++i) {
    const Campaign c = campaign(i);
    PutFixed64(out, c.campaign_hash);
    PutSigned(out, c.first_send);
    PutSigned(out, c.first_open);
  }
  PutVarint(out, user_traits().size());
  uint32_t prev_trait = 0;
  for (const UserTraitState& u : user_traits()) {
    PutVarint(out, u.trait_idx - prev_trait);
    prev_trait = u.trait_idx;
    out->push_back(static_cast<char>(u.aggregate));
    PutVarint(out, static_cast<uint64_t>(u.window_days));
    PutVarint(out, u.count);
    PutSigned(out, u.value);
    if (u.Aggregate() == TraitAggregate::kLast) PutDouble(out, u.last_value);
    auto live_day = std::find_if(u.days.begin(), u.days.end(), [&](const UserDay& d) {
      return u.window_days <= 0 || !Expired(d.day, u.window_days);
    });
    PutVarint(out, static_cast<uint64_t>(u.days.end() - live_day));
    prev_day = 0;
    for (const UserDay& d : std::span(live_day, u.days.end())) {
      PutSigned(out, d.day - prev_day);
      prev_day = d.day;
      PutVarint(out, d.count);
      PutSigned(out, d.value);
    }
    auto live = [&](const DistinctValue& d) {
      return u.window_days <= 0 || !Expired(d.last_day, u.window_days);
    };
    PutVarint(out,
              static_cast<uint64_t>(std::count_if(u.distinct.begin(), u.distinct.end(), live)));
    for (const DistinctValue& d : u.distinct) {
      if (!live(d)) continue;
      PutFixed64(out, d.value_hash);
      PutSigned(out, d.last_day);
    }
  }
}

namespace {
bool GetDay(StateReader& r, int64_t* prev, bool first, int32_t* day) {
  int64_t delta;
  if (!r.Signed(&delta)) return false;
  int64_t d = *prev + delta;
  if ((!first && delta <= 0) || d < INT32_MIN || d > INT32_MAX) return false;  // strictly sorted
  *prev = d;
  *day = static_cast<int32_t>(d);
  return true;
}
}  // namespace

Status CustomerState::Deserialize(std::string_view in) {
  *this = CustomerState();
  StateReader r(in);
  auto bad = [this](const char* what) {
    *this = CustomerState();
    return Status::Corruption(std::string("customer state: ") + what);
  };
  uint8_t format;
  if (!r.Byte(&format) || format != kCustomerFormat) return bad("unknown format");
  if (!r.Varint(&num_events_)) return bad("truncated header");
  if (num_events_ == 0) return r.done() ? Status::OK() : bad("trailing bytes");
  if (!r.Signed(&first_event_) || !r.Signed(&last_event_) || first_event_ > last_event_) {
    return bad("bad event times");
  }
  for (uint32_t& c : type_counts_) {
    if (!r.Varint32(&c)) return bad("truncated counters");
  }
  for (uint32_t& c : channel_counts_) {
    if (!r.Varint32(&c)) return bad("truncated counters");
  }
  for (uint32_t& c : device_counts_) {
    if (!r.Varint32(&c)) return bad("truncated counters");
  }
  int64_t consent;
  if (!r.Signed(&discount_fixed_) || !r.Signed(&refunded_fixed_) ||
      !r.Signed(&sum_log_price_nano_) || !r.Varint(&priced_lines_) || !r.Signed(&consent) ||
      !r.Signed(&consent_time_) || consent < -1 || consent > 1) {
    return bad("truncated sums");
  }
  consent_ = static_cast<int8_t>(consent);

  uint64_t n;
  if (!r.Count(&n, 2)) return bad("bad order count");
  orders_.resize(n);
  TimeMicros prev_time = 0;
  for (uint64_t i = 0; i < n; ++i) {
    int64_t delta;
    if (!r.Signed(&delta) || !r.Signed(&orders_[i].total_fixed)) return bad("truncated orders");
    orders_[i].timestamp = prev_time + delta;
    prev_time = orders_[i].timestamp;
    if (i > 0 && orders_[i] < orders_[i - 1]) return bad("unsorted orders");
    orders_total_fixed_ = WrappingAdd(orders_total_fixed_, orders_[i].total_fixed);
  }
  RecountOrderDays();
  if (!r.Count(&n, 3)) return bad("bad activity count");
  activity_.resize(n);
  int64_t prev_day = 0;
  for (uint64_t i = 0; i < n; ++i) {
    ActivityDay& d = activity_[i];
    if (!GetDay(r, &prev_day, i == 0, &d.day) || !r.Varint32(&d.product_views) ||
        !r.Varint32(&d.sessions)) {
      return bad("bad activity days");
    }
  }
  if (!r.Count(&n, 1)) return bad("bad cart day count");
  cart_days_.resize(n);
  prev_day = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (!GetDay(r, &prev_day, i == 0, &cart_days_[i])) return bad("bad cart days");
  }
  if (!r.Count(&n, 5)) return bad("bad category count");
  categories_.resize(n);
  int64_t prev_id = 0;
  for (uint64_t i = 0; i < n; ++i) {
    CategoryStats& c = categories_[i];
    uint64_t delta;
    int64_t first_day;
    if (!r.Varint(&delta) || (i > 0 && delta == 0) || prev_id + delta > UINT32_MAX ||
        !r.Varint32(&c.order_lines) || !r.Varint32(&c.priced_lines) ||
        !r.Varint32(&c.product_views) || !r.Signed(&first_day) || first_day < INT32_MIN ||
        first_day > INT32_MAX) {
      return bad("bad categories");
    }
    prev_id += static_cast<int64_t>(delta);
    c.category_id = static_cast<uint32_t>(prev_id);
    c.first_day = static_cast<int32_t>(first_day);
  }
  if (!r.Count(&n, 10)) return bad("bad campaign count");
  {
    CompactVector<Campaign> exact;
    exact.resize(n);
    bool packable = true;
    for (uint64_t i = 0; i < n; ++i) {
      Campaign& c = exact[i];
      if (!r.Fixed64(&c.campaign_hash) || !r.Signed(&c.first_send) || !r.Signed(&c.first_open) ||
          (i > 0 && c.campaign_hash <= exact[i - 1].campaign_hash)) {
        return bad("bad campaigns");
      }
      uint32_t unused;
      packable = packable && PackTime(c.first_send, &unused) && PackTime(c.first_open, &unused);
    }
    campaigns_ = CompactVector<PackedCampaign>();
    if (rare_) rare_->exact_campaigns.reset();
    if (packable) {
      campaigns_.resize(n);
      for (uint64_t i = 0; i < n; ++i) {
        campaigns_[i].campaign_hash = exact[i].campaign_hash;
        PackTime(exact[i].first_send, &campaigns_[i].first_send);
        PackTime(exact[i].first_open, &campaigns_[i].first_open);
      }
    } else {
      Rare().exact_campaigns = std::move(exact);
    }
  }
  if (!r.Count(&n, 7)) return bad("bad user trait count");
  if (rare_) rare_->user.clear();
  if (n > 0) Rare().user.resize(n);
  uint64_t trait_idx = 0;
  for (size_t ui = 0; ui < n; ++ui) {
    UserTraitState& u = rare_->user[ui];
    uint64_t trait_delta, window;
    if (!r.Varint(&trait_delta) || (ui > 0 && trait_delta == 0) ||
        trait_idx + trait_delta > UINT16_MAX) {
      return bad("bad user trait index");
    }
    trait_idx += trait_delta;
    u.trait_idx = static_cast<uint16_t>(trait_idx);
    uint8_t aggregate;
    if (!r.Byte(&aggregate) || aggregate > static_cast<uint8_t>(TraitAggregate::kTimeSince) ||
        !r.Varint(&window) || window > 100000 || !r.Varint(&u.count) || !r.Signed(&u.value) ||
        (aggregate == static_cast<uint8_t>(TraitAggregate::kLast) && !r.Double(&u.last_value))) {
      return bad("truncated user trait");
    }
    u.aggregate = aggregate;
    u.window_days = static_cast<int32_t>(window);
    uint64_t days;
    if (!r.Count(&days, 3)) return bad("bad user trait day count");
    u.days.resize(days);
    prev_day = 0;
    for (uint64_t i = 0; i < days; ++i) {
      UserDay& d = u.days[i];
      if (!GetDay(r, &prev_day, i == 0, &d.day) || !r.Varint32(&d.count) || !r.Signed(&d.value)) {
        return bad("bad user trait days");
      }
    }
    uint64_t distinct;
    if (!r.Count(&distinct, 9)) return bad("bad distinct count");
    u.distinct.resize(distinct);
    for (uint64_t i = 0; i < distinct; ++i) {
      DistinctValue& d = u.distinct[i];
      int64_t last_day;
      if (!r.Fixed64(&d.value_hash) || !r.Signed(&last_day) || last_day < INT32_MIN ||
          last_day > INT32_MAX || (i > 0 && d.value_hash <= u.distinct[i - 1].value_hash)) {
        return bad("bad distinct values");
      }
      d.last_day = static_cast<int32_t>(last_day);
    }
  }
  if (!r.done()) return bad("trailing bytes");
  RebuildUserIndex();
  return Status::OK();
}

namespace {
constexpr int64_t kCampaignEpochSeconds = 946684800;  // 2000-01-01T00:00:00Z
}  // namespace

bool CustomerState::PackTime(TimeMicros t, uint32_t* packed) {
  if (t == kNoTime) {
    *packed = kNoPackedTime;
    return true;
  }
  if (t % kMicrosPerSecond != 0) return false;
  const int64_t seconds = t / kMicrosPerSecond - kCampaignEpochSeconds;
  if (seconds < 0 || seconds >= static_cast<int64_t>(kNoPackedTime)) return false;
  *packed = static_cast<uint32_t>(seconds);
  return true;
}

TimeMicros CustomerState::UnpackTime(uint32_t packed) {
  if (packed == kNoPackedTime) return kNoTime;
  return (static_cast<int64_t>(packed) + kCampaignEpochSeconds) * kMicrosPerSecond;
}

CustomerState::Campaign CustomerState::campaign(size_t i) const {
  if (const CompactVector<Campaign>* exact = ExactCampaigns()) return (*exact)[i];
  const PackedCampaign& c = campaigns_[i];
  return Campaign{c.campaign_hash, UnpackTime(c.first_send), UnpackTime(c.first_open)};
}

void CustomerState::MakeCampaignsExact() {
  if (ExactCampaigns()) return;
  CompactVector<Campaign> exact;
  exact.reserve(campaigns_.size());
  for (size_t i = 0; i < campaigns_.size(); ++i) exact.push_back(campaign(i));
  Rare().exact_campaigns = std::move(exact);
  campaigns_ = CompactVector<PackedCampaign>();
}

size_t CustomerState::MemoryBytes() const {
  size_t bytes =
      sizeof(*this) + orders_.capacity() * sizeof(Order) +
      activity_.capacity() * sizeof(ActivityDay) + cart_days_.capacity() * sizeof(int32_t) +
      categories_.capacity() * sizeof(CategoryStats) + campaigns_.capacity() * sizeof(PackedCampaign) +
      (rare_ ? sizeof(RareState) + rare_->user.capacity() * sizeof(UserTraitState) : 0) +
      (ExactCampaigns() ? ExactCampaigns()->capacity() * sizeof(Campaign) : 0);
  for (const UserTraitState& u : user_traits()) {
    bytes += u.days.capacity() * sizeof(UserDay) + u.distinct.capacity() * sizeof(DistinctValue);
  }
  return bytes;
}

void CustomerState::ShrinkToFit() {
  if (num_events_ > 0) PruneWindows(LastDay());
  orders_.shrink_to_fit();
  activity_.shrink_to_fit();
  cart_days_.shrink_to_fit();
  categories_.shrink_to_fit();
  campaigns_.shrink_to_fit();
  if (CompactVector<Campaign>* exact = ExactCampaigns()) exact->shrink_to_fit();
  for (UserTraitState& u : MutableUserTraits()) {
    u.days.shrink_to_fit();
    u.distinct.shrink_to_fit();
  }
  if (rare_) rare_->user.shrink_to_fit();
}

static_assert(std::is_nothrow_move_constructible_v<CustomerState> &&
                  std::is_nothrow_move_assignable_v<CustomerState>,
              "vectors of states must move them on growth, not copy them");

bool CustomerState::CachedDouble::Get(double* value) const {
  const uint64_t bits = bits_.load(std::memory_order_relaxed);
  if (bits == kEmpty) return false;
  *value = std::bit_cast<double>(bits);
  return true;
}

void CustomerState::CachedDouble::Set(double value) const {
  bits_.store(std::bit_cast<uint64_t>(value), std::memory_order_relaxed);
}

void CustomerState::Prefetch(int stage) const {
  if (stage == 0) {
    const char* bytes = reinterpret_cast<const char*>(this);
    for (size_t offset = 0; offset < sizeof(*this); offset += 64) __builtin_prefetch(bytes + offset);
    return;
  }
  if (!orders_.empty()) {
    __builtin_prefetch(&orders_.back());
    __builtin_prefetch(orders_.data());
  }
  if (!categories_.empty()) __builtin_prefetch(categories_.data());
  if (!cart_days_.empty()) __builtin_prefetch(cart_days_.data());
}

void CustomerState::PrefetchOrderAt(TimeMicros timestamp) const {
  const size_t n = orders_.size();
  if (n <= kColdSearchMin || timestamp > orders_.back().timestamp) return;  // appended
  const size_t step = n / (kColdProbes + 1);  // UpperBoundOfCold's first round
  for (size_t k = 1; k <= kColdProbes; ++k) __builtin_prefetch(&orders_[k * step]);
}

void CustomerState::RecountOrderDays() {
  order_days_ = 0;
  int64_t prev_day = 0;
  for (const Order& o : orders_) {
    const int64_t day = DayOf(o.timestamp);
    if (order_days_ == 0 || day != prev_day) ++order_days_;
    prev_day = day;
  }
  ipi_std_days_.Clear();
}

IntervalStatistics CustomerState::OrderIntervals() const {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  if (order_days_ < 2) return {kNaN, kNaN};
  // The reference adds the whole-day gaps as doubles: every partial sum is an integer far
  // below 2^53, so the sum is exactly last day - first day, and its mean is this division.
  const int64_t span_days = DayOf(orders_.back().timestamp) - DayOf(orders_.front().timestamp);
  const double mean = static_cast<double>(span_days) / static_cast<double>(order_days_ - 1);
  double std_days;
  if (!ipi_std_days_.Get(&std_days)) {
    std_days = ComputeIntervalStatistics(orders_).std_days;
    ipi_std_days_.Set(std_days);
  }
  return {mean, std_days};
}

IntervalStatistics ComputeIntervalStatistics(std::span<const CustomerState::Order> orders) {
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  IntervalStatistics out{kNaN, kNaN};
  if (orders.empty()) return out;
  int64_t prev_day = DayOf(orders.front().timestamp);
  double gap_sum = 0;
  int64_t gaps = 0;
  for (const auto& o : orders) {
    const int64_t day = DayOf(o.timestamp);
    if (day != prev_day) {
      gap_sum += static_cast<double>(day - prev_day);
      ++gaps;
    }
    prev_day = day;
  }
  if (gaps == 0) return out;
  const double mean = gap_sum / static_cast<double>(gaps);
  double squares = 0;  // second pass: no cancellation
  prev_day = DayOf(orders.front().timestamp);
  for (const auto& o : orders) {
    const int64_t day = DayOf(o.timestamp);
    if (day == prev_day) continue;
    double deviation = static_cast<double>(day - prev_day) - mean;
    squares += deviation * deviation;
    prev_day = day;
  }
  out.mean_days = mean;
  out.std_days = std::sqrt(squares / static_cast<double>(gaps));
  return out;
}

std::vector<OrderRecord> OrderHistory(const CustomerState& state) {
  std::vector<OrderRecord> out;
  out.reserve(state.orders().size());
  for (const CustomerState::Order& o : state.orders()) out.push_back({o.timestamp, o.total()});
  return out;
}

}  // namespace shoal
