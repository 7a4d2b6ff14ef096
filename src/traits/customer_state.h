// CustomerState: one customer's mergeable trait state (STYLE habit 9). Update folds one event,
// Combine merges two profiles exactly, and the state is a function of the MULTISET of events
// fed: any arrival order and any split + Combine give the same state (money is kept in
// fixed point so sums are exact; sequences are kept sorted; windowed buckets are pruned
// relative to the customer's own last event, which only grows). TraitCatalogue turns a state
// into trait values as of a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"
#include "ingest/event.h"
#include "traits/compact_vector.h"
#include "traits/population_state.h"
#include "traits/trait_config.h"

namespace shoal {

// Money and user-trait sums are kept as int64 multiples of 1/kFixedScale (exact, associative).
constexpr double kFixedScale = 1e6;
// Days of view/session history kept for views_30d and sessions_30d.
constexpr int kActivityWindowDays = 30;

// Inter-purchase intervals of a customer: the gaps in days between consecutive distinct UTC
// days with an order, their mean and population standard deviation (both NaN with fewer than
// two order days).
struct IntervalStatistics {
  double mean_days;
  double std_days;
};

class CustomerState {
 public:
  // One order, sorted by (timestamp, total_fixed).
  struct Order {
    TimeMicros timestamp;
    int64_t total_fixed;  // order total * kFixedScale, rounded
    double total() const { return static_cast<double>(total_fixed) / kFixedScale; }
    friend bool operator==(const Order&, const Order&) = default;
    friend auto operator<=>(const Order&, const Order&) = default;
  };
  // Product views and session starts of one UTC day (only the last kActivityWindowDays days
  // before the customer's last event are kept).
  struct ActivityDay {
    int32_t day;
    uint32_t product_views;
    uint32_t sessions;
    friend bool operator==(const ActivityDay&, const ActivityDay&) = default;
  };
  // Per category (PopulationState id), sorted by id.
  struct CategoryStats {
    uint32_t category_id;
    uint32_t order_lines;    // order lines in this category
    uint32_t priced_lines;   // of which with a unit price > 0 (premium_index)
    uint32_t product_views;  // product views in this category
    int32_t first_day;       // first UTC day this category was viewed or ordered
    friend bool operator==(const CategoryStats&, const CategoryStats&) = default;
  };
  // Per email campaign (hash of campaign_id), sorted by hash.
  struct Campaign {
    uint64_t campaign_hash;
    TimeMicros first_send;  // kNoTime when never sent
    TimeMicros first_open;  // kNoTime when never opened
    friend bool operator==(const Campaign&, const Campaign&) = default;
  };
  static constexpr TimeMicros kNoTime = INT64_MAX;

  // One user trait's state: all-time scalars plus, for windowed traits, per-day buckets
  // (pruned like ActivityDay) and, for distinct, the value hashes with their last day seen.
  // One UTC day of a windowed count/sum/mean/min/max trait.
  struct UserDay {
    int32_t day;
    uint32_t count;
    int64_t value;  // fixed-point sum (count/sum/mean) or extreme (min/max) of the day
    friend bool operator==(const UserDay&, const UserDay&) = default;
  };
  struct DistinctValue {
    uint64_t value_hash;
    int32_t last_day;
    friend bool operator==(const DistinctValue&, const DistinctValue&) = default;
  };
  // An event matches a user trait when its type and where-filter match and, for aggregates of
  // a property, it carries a value (numeric for sum/mean/min/max/last; any for distinct).
  // Kept only for the traits a customer has matched (sparse), sorted by trait_idx. Numbers are
  // fixed point (1/kFixedScale): sums are exact, min/max are the values rounded to 1e-6.
  struct UserTraitState {
    uint16_t trait_idx = 0;   // index into TraitConfig::user_traits
    uint8_t aggregate = 0;    // TraitAggregate, copied from the spec
    int32_t window_days = 0;  // copied from the spec: how far back `days`/`distinct` are kept
    uint64_t count = 0;       // matching events
    // count: unused (0); sum/mean: fixed-point sum; min/max: fixed-point extreme;
    // last/time_since: time of the latest matching event.
    int64_t value = 0;
    double last_value = Event::kNaN;      // last: value at that time (largest on ties)
    std::vector<UserDay> days;            // windowed count/sum/mean/min/max only, sorted by day
    std::vector<DistinctValue> distinct;  // distinct only, sorted by hash
    TraitAggregate Aggregate() const { return static_cast<TraitAggregate>(aggregate); }
    friend bool operator==(const UserTraitState&, const UserTraitState&);
  };
  // Initial `value` of a state or day bucket of `aggregate` (identity of its fold).
  static int64_t InitialValue(TraitAggregate aggregate);
  // Folds fixed-point/time `x` into `*value` as `aggregate` does.
  static void FoldValue(TraitAggregate aggregate, int64_t x, int64_t* value);
  static constexpr double kInf = __builtin_inf();

  CustomerState() = default;

  // Folds one event in: this customer's counters and, for orders and product views, the
  // population's category dictionary and unit prices. O(1) amortised for events arriving in
  // time order (O(k) for an out-of-order one, k = this customer's records); allocates only to
  // grow this customer's own vectors. `batch` owns e's lines and properties. The same
  // `config` (same user traits) must be passed for every event of every state that is later
  // combined. Not thread-safe.
  void Update(const Event& e, const EventBatch& batch, PopulationState& population,
              const TraitConfig& config);

  // Merges `other` (a state of the same customer's other events, built against the same
  // PopulationState ids and config) into this one. Exact: equals the state fed both event sets.
  void Combine(const CustomerState& other);

  // Applies a PopulationState::Combine mapping to this state's category ids (for a state built
  // against a population that was merged into another one).
  void RemapCategories(std::span<const uint32_t> old_to_new);

  // Compact binary form (varints, fixed-width doubles), appended to *out. Equal states give
  // equal bytes.
  void Serialize(std::string* out) const;
  // Replaces this state; Corruption on truncated or malformed input (state then empty).
  Status Deserialize(std::string_view in);

  // Asks the processor to bring parts of this state into cache, without waiting for them and
  // without observable effect: stage 0 the state's own bytes; stage 1 (once those are in
  // cache, or it stalls on them) the first lines a trait computation reads of its vectors (the
  // newest and the oldest order, the categories, the cart days). For loops over many states
  // not touched lately (the server's evaluation of a group's profiles), a few states ahead.
  void Prefetch(int stage) const;
  // After Prefetch(1): when an order at `timestamp` would land inside a long history rather
  // than after its newest order, asks for the lines the search for its place reads first.
  void PrefetchOrderAt(TimeMicros timestamp) const;

  // Heap + inline bytes held.
  size_t MemoryBytes() const;
  // Drops expired window buckets and releases spare vector capacity (after a bulk load, when
  // growth has slowed). The observable state (values, Serialize bytes) does not change.
  void ShrinkToFit();
  bool Empty() const { return num_events_ == 0; }
  uint64_t num_events() const { return num_events_; }
  TimeMicros FirstEventTime() const { return first_event_; }
  TimeMicros LastEventTime() const { return last_event_; }

  // Read access for TraitCatalogue and for other modules.
  std::span<const Order> orders() const { return orders_; }
  // Sum of the orders' total_fixed, carried (O(1)); equals summing orders().
  int64_t OrdersTotalFixed() const { return orders_total_fixed_; }
  // Distinct UTC days with an order, carried (O(1)); equals counting them in orders().
  uint32_t NumOrderDays() const { return order_days_; }
  // Equals ComputeIntervalStatistics(orders()) bit for bit, without its passes over the orders
  // in the common cases: the mean is (last - first order day) / (order days - 1), which is what
  // the reference's sum of whole-day gaps telescopes to exactly; the standard deviation is the
  // reference's own result, computed on first read and kept until an order opens a new order
  // day (an order on a day that already has one changes no gap) or the state is combined or
  // loaded. So O(1) per read after an order on a known day, one pass after a new day. Safe for
  // concurrent readers of a const state (the kept value is a relaxed atomic; readers racing to
  // fill it store the same bits).
  IntervalStatistics OrderIntervals() const;
  std::span<const ActivityDay> activity_days() const;  // live buckets only
  std::span<const int32_t> cart_days() const { return cart_days_; }
  std::span<const CategoryStats> categories() const { return categories_; }
  // Email campaigns, sorted by hash: campaign(i) for i < num_campaigns().
  size_t num_campaigns() const {
    return ExactCampaigns() ? ExactCampaigns()->size() : campaigns_.size();
  }
  Campaign campaign(size_t i) const;
  // States of the user traits this customer has matched, sorted by trait_idx.
  std::span<const UserTraitState> user_traits() const {
    return rare_ ? std::span<const UserTraitState>(rare_->user) : std::span<const UserTraitState>();
  }
  // State of user trait `trait_idx`, nullptr when no event has matched it.
  const UserTraitState* UserTrait(size_t trait_idx) const;
  // Events per built-in type, per channel, per device class.
  uint32_t TypeCount(EventType type) const { return type_counts_[static_cast<size_t>(type)]; }
  uint32_t ChannelCount(Channel channel) const {
    return channel_counts_[static_cast<size_t>(channel)];
  }
  uint32_t DeviceCount(DeviceClass device) const {
    return device_counts_[static_cast<size_t>(device)];
  }
  double DiscountTotal() const { return static_cast<double>(discount_fixed_) / kFixedScale; }
  double RefundedTotal() const { return static_cast<double>(refunded_fixed_) / kFixedScale; }
  // Sum over priced order lines of log(unit_price) (fixed point 1e-9) and their count.
  double SumLogUnitPrice() const { return static_cast<double>(sum_log_price_nano_) * 1e-9; }
  uint64_t PricedLines() const { return priced_lines_; }
  // Latest consent: 1 opt-in, 0 opt-out, -1 none (opt-out wins a tie at the same time).
  int8_t consent() const { return consent_; }
  TimeMicros consent_time() const { return consent_time_; }

  // Equal observable state (equal Serialize bytes).
  friend bool operator==(const CustomerState&, const CustomerState&);

 private:
  void Touch(TimeMicros t);
  // Drops day buckets no window ending at or after `last_day` can read (buckets of days
  // <= last_day - W). Pruning is lazy: Update prunes a vector only when it is full (so no
  // per-event work and no reallocation while old buckets can be dropped), Combine prunes all.
  // Serialize, operator== and the accessors ignore prunable buckets, so the observable state
  // does not depend on when pruning ran.
  void PruneWindows(int32_t last_day);
  // True when a bucket of `day` in a `window`-day structure can never be read again.
  bool Expired(int64_t day, int32_t window) const {
    return day <= static_cast<int64_t>(LastDay()) - window;
  }
  UserTraitState& UserTraitFor(uint32_t trait_idx, const UserTraitSpec& spec);
  void AddOrder(const Event& e, const EventBatch& batch, PopulationState& population, int32_t day);
  CategoryStats& Category(uint32_t id, int32_t day);
  void UpdateUserTrait(size_t trait_idx, const UserTraitSpec& spec, const Event& e,
                       const EventBatch& batch, int32_t day);
  int32_t LastDay() const;

  uint64_t num_events_ = 0;
  TimeMicros first_event_ = INT64_MAX;
  TimeMicros last_event_ = INT64_MIN;
  uint32_t type_counts_[static_cast<size_t>(EventType::kNumBuiltin)] = {};
  uint32_t channel_counts_[static_cast<size_t>(Channel::kNumChannels)] = {};
  uint32_t device_counts_[static_cast<size_t>(DeviceClass::kNumDevices)] = {};
  int8_t consent_ = -1;  // here, not beside consent_time_: it fills the 4 bytes of padding
  int64_t discount_fixed_ = 0;  // order-level + line discounts of all orders
  int64_t refunded_fixed_ = 0;  // totals of return events
  int64_t sum_log_price_nano_ = 0;
  uint64_t priced_lines_ = 0;
  TimeMicros consent_time_ = INT64_MIN;
  CompactVector<Order> orders_;
  CompactVector<ActivityDay> activity_;
  CompactVector<int32_t> cart_days_;  // distinct days with a cart_add or checkout_start
  CompactVector<CategoryStats> categories_;
  // Campaigns in 16 bytes: times as whole seconds since 2000-01-01 (kNoPackedTime = never),
  // which email events nearly always are. A customer with any campaign time that is not (a
  // fraction of a second, or out of range) keeps them all exact in RareState instead
  // (campaigns_ then empty). min() of packed times is min() of the times, so merging works on
  // either form; Serialize writes the times, so the form never shows.
  struct PackedCampaign {
    uint64_t campaign_hash;
    uint32_t first_send;
    uint32_t first_open;
  };
  static constexpr uint32_t kNoPackedTime = UINT32_MAX;
  static bool PackTime(TimeMicros t, uint32_t* packed);
  static TimeMicros UnpackTime(uint32_t packed);
  // Moves every campaign to the exact form (creating it).
  void MakeCampaignsExact();
  CompactVector<PackedCampaign> campaigns_;
  // What most customers never need, behind one pointer allocated on first use: user trait
  // states (most customers under most configurations match none) and exact campaign times.
  // An 8-byte pointer per slot where the user traits' vector and index and the exact
  // campaigns' pointer took 40. Null and an empty RareState are the same state.
  struct RareState {
    std::vector<UserTraitState> user;  // sorted by trait_idx
    // Derived index, not state: bit i set when `user` holds trait i (i < 64), so a trait's
    // position is a popcount instead of a search. Rebuilt by Combine and Deserialize.
    uint64_t user_present = 0;
    // Set when the campaigns are kept exact (campaigns_ then empty).
    std::optional<CompactVector<Campaign>> exact_campaigns;
  };
  CopyablePtr<RareState> rare_;
  RareState& Rare() {
    if (!rare_) rare_.Emplace();
    return *rare_;
  }
  // Frees rare_ when it holds nothing.
  void DropRareIfEmpty() {
    if (rare_ && rare_->user.empty() && !rare_->exact_campaigns) rare_.Reset();
  }
  const CompactVector<Campaign>* ExactCampaigns() const {
    return rare_ && rare_->exact_campaigns ? &*rare_->exact_campaigns : nullptr;
  }
  CompactVector<Campaign>* ExactCampaigns() {
    return rare_ && rare_->exact_campaigns ? &*rare_->exact_campaigns : nullptr;
  }
  std::span<UserTraitState> MutableUserTraits() {
    return rare_ ? std::span<UserTraitState>(rare_->user) : std::span<UserTraitState>();
  }
  // Derived, not state: the sum of orders_[].total_fixed (exact integer sum, so the order of
  // additions does not matter). Kept by AddOrder and Combine, rebuilt by Deserialize.
  int64_t orders_total_fixed_ = 0;
  // Derived, not state: distinct UTC days of orders_ (kept like orders_total_fixed_), and the
  // standard deviation of the gaps between them (OrderIntervals), filled on first read and
  // emptied when the order days change.
  uint32_t order_days_ = 0;
  // A double computed from a const state on first read and kept until the state changes.
  class CachedDouble {
   public:
    CachedDouble() = default;
    // noexcept: CustomerState stays nothrow-movable (vectors of states move, not copy, on growth).
    CachedDouble(const CachedDouble& other) noexcept
        : bits_(other.bits_.load(std::memory_order_relaxed)) {}
    CachedDouble& operator=(const CachedDouble& other) noexcept {
      bits_.store(other.bits_.load(std::memory_order_relaxed), std::memory_order_relaxed);
      return *this;
    }
    // False when empty.
    bool Get(double* value) const;
    void Set(double value) const;
    void Clear() { bits_.store(kEmpty, std::memory_order_relaxed); }

   private:
    // A NaN payload no arithmetic produces (the kept values are never NaN anyway).
    static constexpr uint64_t kEmpty = 0x7ff0'dead'beef'0001ULL;
    mutable std::atomic<uint64_t> bits_{kEmpty};
  };
  CachedDouble ipi_std_days_;
  // Recounts order_days_ from orders_ and empties ipi_std_days_ (after Combine, Deserialize).
  void RecountOrderDays();
  void RebuildUserIndex();
};

// The reference computation of the inter-purchase intervals over `orders` (sorted by time): a
// pass for the mean of the gaps, a second for their squared deviations (no cancellation). Its
// order of operations defines the trait values (ipi_mean_days, ipi_std_days);
// CustomerState::OrderIntervals returns the same bits without the passes.
IntervalStatistics ComputeIntervalStatistics(std::span<const CustomerState::Order> orders);

// A customer's orders as (timestamp, total), sorted by time: the input of BTYD models
// ((x, t_x, T) per customer).
struct OrderRecord {
  TimeMicros timestamp;
  double total;
};
std::vector<OrderRecord> OrderHistory(const CustomerState& state);

// Fixed-point conversion used by the states (rounded, clamped to +-9e12 units).
int64_t ToFixed(double value);

}  // namespace shoal
