// The inter-purchase intervals a CustomerState carries (OrderIntervals: the mean in O(1), the
// standard deviation kept until an order opens a new day) against the reference two-pass
// computation over the orders (ComputeIntervalStatistics, the code that defined the trait
// values before): equal bit for bit after every update of random order streams with
// out-of-order arrivals, same-day orders, returns, merges in both orders, copies and round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/time.h"
#include "traits/catalogue.h"
#include "traits/customer_state.h"

namespace shoal {
namespace {

constexpr TimeMicros kHourMicros = 3600LL * 1'000'000;
constexpr TimeMicros kDayMicros = 24 * kHourMicros;

bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; }

// Checks the carried statistics against the reference over the state's own orders.
void ExpectEqualsReference(const CustomerState& state, const std::string& label) {
  const IntervalStatistics want = ComputeIntervalStatistics(state.orders());
  const IntervalStatistics got = state.OrderIntervals();
  EXPECT_TRUE(SameBits(got.mean_days, want.mean_days))
      << label << ": mean " << got.mean_days << " want " << want.mean_days;
  EXPECT_TRUE(SameBits(got.std_days, want.std_days))
      << label << ": std " << got.std_days << " want " << want.std_days;
  uint32_t days = 0;
  for (size_t i = 0; i < state.orders().size(); ++i) {
    if (i == 0 || DayOf(state.orders()[i].timestamp) != DayOf(state.orders()[i - 1].timestamp)) {
      ++days;
    }
  }
  EXPECT_EQ(state.NumOrderDays(), days) << label;
}

// Random orders and returns of one customer: mostly in time order, some late (up to 60 days),
// several on one day (sometimes the same microsecond), gaps from a day to years; pre-1970
// times too when `include_old` (DayOf floors).
class StreamGenerator {
 public:
  explicit StreamGenerator(uint64_t seed, bool include_old = false)
      : rng_(seed), include_old_(include_old) {
    clock_ = include_old_ ? -400 * kDayMicros : DaysFromCivil(2023, 1, 1) * kDayMicros;
  }

  Event Next() {
    Event e;
    const int kind = Uniform(20);
    if (kind == 0) {
      e.type = static_cast<uint16_t>(EventType::kReturn);
    } else {
      e.type = static_cast<uint16_t>(EventType::kOrder);
    }
    const int step = Uniform(10);
    if (step < 3) {
      // same day or the very same time
      if (Uniform(2) == 0) clock_ += static_cast<TimeMicros>(Uniform(3)) * kHourMicros;
    } else if (step < 8) {
      clock_ += static_cast<TimeMicros>(1 + Uniform(40)) * kDayMicros +
                static_cast<TimeMicros>(Uniform(1'000'000));
    } else if (step < 9) {
      clock_ += static_cast<TimeMicros>(100 + Uniform(900)) * kDayMicros;
    }
    e.timestamp = clock_;
    if (Uniform(6) == 0) {  // a late arrival
      e.timestamp -= static_cast<TimeMicros>(Uniform(60 * 24)) * kHourMicros;
    }
    e.total = static_cast<double>(1 + Uniform(5000)) / 100.0;
    return e;
  }

 private:
  int Uniform(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  std::mt19937_64 rng_;
  bool include_old_;
  TimeMicros clock_;
};

TEST(OrderIntervalsTest, EqualReferenceBitForBitAfterEveryUpdate) {
  TraitConfig config;
  PopulationState population;
  EventBatch batch;  // no lines: the events carry their totals
  size_t checks_with_gaps = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    StreamGenerator gen(seed, /*include_old=*/seed % 4 == 0);
    CustomerState state;
    std::mt19937_64 reads(seed);
    const int n = 1 + static_cast<int>(seed * 7 % 400);
    for (int i = 0; i < n; ++i) {
      state.Update(gen.Next(), batch, population, config);
      // Read after some updates only: the kept deviation then meets later orders both filled
      // and empty.
      if (reads() % 3 == 0 || i + 1 == n) {
        ExpectEqualsReference(state, "seed " + std::to_string(seed) + " event " + std::to_string(i));
        if (state.NumOrderDays() >= 2) ++checks_with_gaps;
        if (HasFailure()) return;
      }
    }
  }
  EXPECT_GT(checks_with_gaps, 1000u) << "the streams exercise the statistics";
}

// Combine merges two halves (with filled kept values) in both orders; copies keep the value and
// a copy updated afterwards does not disturb the original; a round trip rebuilds it from the
// stored orders (the stored bytes carry none of it).
TEST(OrderIntervalsTest, CombineCopyAndRoundTripEqualReference) {
  TraitConfig config;
  PopulationState population;
  EventBatch batch;
  for (uint64_t seed = 100; seed < 140; ++seed) {
    StreamGenerator gen(seed);
    std::vector<Event> events;
    for (int i = 0; i < 150; ++i) events.push_back(gen.Next());
    std::mt19937_64 rng(seed);
    std::shuffle(events.begin(), events.end(), rng);  // any arrival order
    CustomerState a, b, whole;
    for (size_t i = 0; i < events.size(); ++i) {
      (i % 3 == 0 ? a : b).Update(events[i], batch, population, config);
      whole.Update(events[i], batch, population, config);
    }
    const std::string label = "seed " + std::to_string(seed);
    ExpectEqualsReference(a, label + " a");  // fills the kept values before the merges
    ExpectEqualsReference(b, label + " b");
    CustomerState ab = a, ba = b;
    ab.Combine(b);
    ba.Combine(a);
    ExpectEqualsReference(ab, label + " a+b");
    ExpectEqualsReference(ba, label + " b+a");
    EXPECT_TRUE(ab == whole && ba == whole) << label;
    EXPECT_TRUE(SameBits(ab.OrderIntervals().std_days, whole.OrderIntervals().std_days)) << label;

    const IntervalStatistics before = whole.OrderIntervals();
    CustomerState copy = whole;
    Event late;
    late.type = static_cast<uint16_t>(EventType::kOrder);
    late.timestamp = whole.orders().front().timestamp - 3 * kDayMicros;  // a new first day
    late.total = 5;
    copy.Update(late, batch, population, config);
    ExpectEqualsReference(copy, label + " copy + earlier order");
    EXPECT_TRUE(SameBits(whole.OrderIntervals().std_days, before.std_days)) << label;
    ExpectEqualsReference(whole, label + " original after the copy changed");

    std::string bytes;
    whole.Serialize(&bytes);
    CustomerState decoded;
    ASSERT_TRUE(decoded.Deserialize(bytes).ok());
    ExpectEqualsReference(decoded, label + " decoded");
    std::string again;
    decoded.Serialize(&again);
    EXPECT_EQ(again, bytes) << label << ": the stored form is unchanged";
    if (HasFailure()) return;
  }
}

// Hand-made histories where the answer is known: one day, two days, the same day inserted
// before, between and after, and a new day inserted between two others.
TEST(OrderIntervalsTest, KnownHistories) {
  TraitConfig config;
  PopulationState population;
  EventBatch batch;
  const TimeMicros day0 = DaysFromCivil(2024, 3, 1) * kDayMicros;
  auto order = [&](CustomerState* s, int day, int hour, double total) {
    Event e;
    e.type = static_cast<uint16_t>(EventType::kOrder);
    e.timestamp = day0 + day * kDayMicros + hour * kHourMicros;
    e.total = total;
    s->Update(e, batch, population, config);
  };
  CustomerState s;
  order(&s, 0, 10, 3);
  order(&s, 0, 10, 1);  // the same time, a smaller total: sorted before
  EXPECT_EQ(s.NumOrderDays(), 1u);
  EXPECT_TRUE(std::isnan(s.OrderIntervals().mean_days));
  EXPECT_TRUE(std::isnan(s.OrderIntervals().std_days));
  order(&s, 10, 1, 2);
  EXPECT_EQ(s.NumOrderDays(), 2u);
  EXPECT_EQ(s.OrderIntervals().mean_days, 10.0);
  EXPECT_EQ(s.OrderIntervals().std_days, 0.0);
  order(&s, 4, 23, 2);  // between: gaps 4 and 6
  EXPECT_EQ(s.NumOrderDays(), 3u);
  EXPECT_EQ(s.OrderIntervals().mean_days, 5.0);
  EXPECT_EQ(s.OrderIntervals().std_days, 1.0);
  order(&s, 4, 0, 9);   // an earlier time on a known day
  order(&s, 10, 0, 9);  // and on the last day
  order(&s, 0, 0, 9);   // and on the first
  EXPECT_EQ(s.NumOrderDays(), 3u);
  EXPECT_EQ(s.orders().size(), 7u);
  EXPECT_EQ(s.OrderIntervals().std_days, 1.0);
  ExpectEqualsReference(s, "known");
  Event refund;  // returns do not touch the orders
  refund.type = static_cast<uint16_t>(EventType::kReturn);
  refund.timestamp = day0 + 20 * kDayMicros;
  refund.total = 4;
  s.Update(refund, batch, population, config);
  EXPECT_EQ(s.NumOrderDays(), 3u);
  EXPECT_EQ(s.OrderIntervals().std_days, 1.0);
}

// The catalogue's ipi traits are the carried values, at any as-of date, in ComputeOne,
// ComputeSelected and Compute alike; readers on two threads fill the kept value safely.
TEST(OrderIntervalsTest, CatalogueReadsTheCarriedValues) {
  TraitConfig config;
  TraitCatalogue catalogue(config);
  PopulationState population;
  EventBatch batch;
  const size_t mean_idx = static_cast<size_t>(catalogue.Find("ipi_mean_days"));
  const size_t std_idx = static_cast<size_t>(catalogue.Find("ipi_std_days"));
  const int wanted[] = {static_cast<int>(std_idx)};
  const TraitSelection selection = catalogue.Select(wanted);
  std::vector<CustomerState> states(30);
  for (size_t c = 0; c < states.size(); ++c) {
    StreamGenerator gen(500 + c);
    for (int i = 0; i < 200; ++i) states[c].Update(gen.Next(), batch, population, config);
  }
  std::vector<const CustomerState*> pointers;
  for (const CustomerState& s : states) pointers.push_back(&s);
  Context ctx;
  ctx.threads = 2;
  TraitMatrix matrix;
  catalogue.Compute(pointers, population, states[0].LastEventTime(), ctx, &matrix);
  std::vector<double> row(catalogue.traits().size()), selected(row.size());
  for (size_t c = 0; c < states.size(); ++c) {
    const IntervalStatistics want = ComputeIntervalStatistics(states[c].orders());
    for (TimeMicros as_of : {states[c].LastEventTime(), states[c].LastEventTime() + 400 * kDayMicros}) {
      catalogue.ComputeOne(states[c], population, as_of, row);
      EXPECT_TRUE(SameBits(row[mean_idx], want.mean_days)) << c;
      EXPECT_TRUE(SameBits(row[std_idx], want.std_days)) << c;
      catalogue.ComputeSelected(states[c], population, as_of, selection, selected);
      EXPECT_TRUE(SameBits(selected[std_idx], want.std_days)) << c;
    }
    EXPECT_TRUE(SameBits(matrix.Column(std_idx)[c], want.std_days)) << c;
  }
  // Two readers of one state whose kept value is empty.
  CustomerState shared = states[0];
  Event e;
  e.type = static_cast<uint16_t>(EventType::kOrder);
  e.timestamp = shared.orders().back().timestamp + 30 * kDayMicros;
  e.total = 1;
  shared.Update(e, batch, population, config);
  const IntervalStatistics want = ComputeIntervalStatistics(shared.orders());
  double got[2];
  std::thread t0([&] { got[0] = shared.OrderIntervals().std_days; });
  std::thread t1([&] { got[1] = shared.OrderIntervals().std_days; });
  t0.join();
  t1.join();
  EXPECT_TRUE(SameBits(got[0], want.std_days));
  EXPECT_TRUE(SameBits(got[1], want.std_days));
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// Orders arriving in any order land sorted by (time, total): long histories with many orders
// at one time (the insertion point is found by total) and late orders, against std::sort.
TEST(OrderIntervalsTest, OutOfOrderInsertsKeepTheOrdersSorted) {
  TraitConfig config;
  PopulationState population;
  EventBatch batch;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    std::mt19937_64 rng(seed);
    CustomerState state;
    std::vector<CustomerState::Order> want;
    const TimeMicros base = DaysFromCivil(2024, 3, 5) * kDayMicros;
    for (int i = 0; i < 1500; ++i) {
      Event e;
      e.type = static_cast<uint16_t>(EventType::kOrder);
      // one fixed time (seed 1, 2), or a few hours, or any of 400 days
      const uint64_t spread = seed <= 2 ? 1 : seed <= 4 ? 5 : 400 * 24;
      e.timestamp = base + static_cast<TimeMicros>(rng() % spread) * kHourMicros;
      e.total = static_cast<double>(1 + rng() % 50);
      state.Update(e, batch, population, config);
      want.push_back({e.timestamp, static_cast<int64_t>(e.total * kFixedScale)});
    }
    std::sort(want.begin(), want.end());
    ASSERT_EQ(state.orders().size(), want.size());
    EXPECT_TRUE(std::equal(want.begin(), want.end(), state.orders().begin())) << seed;
    ExpectEqualsReference(state, "seed " + std::to_string(seed));
  }
}

}  // namespace
}  // namespace shoal
