// CustomerState + TraitCatalogue against a brute-force recomputation from the raw events, and
// the merge laws: order independence, Combine in both orders, Serialize round trips.
#include "traits/customer_state.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

#include "test_events.h"
#include "traits/catalogue.h"

namespace shoal::traits_test {
namespace {

struct Workspace {
  EventTypeRegistry registry;
  TraitConfig config;
};

Workspace MakeWorkspace() {
  Workspace w;
  toml::table table = toml::parse(kWorkspaceToml);
  for (auto&& node : *table["event_types"].as_array()) {
    const toml::table& t = *node.as_table();
    EventTypeRegistry::CustomType type;
    type.name = *t["name"].value<std::string>();
    for (auto&& n : *t["numeric"].as_array())
      type.numeric_properties.push_back(*n.value<std::string>());
    for (auto&& n : *t["text"].as_array()) type.text_properties.push_back(*n.value<std::string>());
    EXPECT_TRUE(w.registry.Declare(type).ok());
  }
  Result<TraitConfig> config = ParseTraitConfig(table, w.registry);
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  w.config = *config;
  return w;
}

// Registers every category in a fixed order so ids do not depend on event order.
PopulationState MakePopulation() {
  PopulationState pop;
  for (const std::string& c : Categories()) pop.CategoryId(c);
  return pop;
}

CustomerState Feed(const std::vector<const Event*>& events, const EventBatch& batch,
                   PopulationState& pop, const TraitConfig& config) {
  CustomerState s;
  for (const Event* e : events) s.Update(*e, batch, pop, config);
  return s;
}

std::vector<const Event*> Pointers(const EventBatch& batch) {
  std::vector<const Event*> out;
  for (const Event& e : batch.events) out.push_back(&e);
  return out;
}

std::string Bytes(const CustomerState& s) {
  std::string out;
  s.Serialize(&out);
  return out;
}

void ExpectMatchesBruteForce(const TraitCatalogue& catalogue, const CustomerState& state,
                             const std::vector<const Event*>& events, const EventBatch& batch,
                             const PopulationState& pop, TimeMicros as_of,
                             const std::string& label) {
  std::vector<double> got(catalogue.traits().size());
  catalogue.ComputeOne(state, pop, as_of, got);
  BruteForce::Values want = BruteForce::Compute(events, batch, pop, catalogue.config(), as_of);
  ASSERT_EQ(want.size(), catalogue.traits().size()) << "reference covers every trait";
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string& name = catalogue.traits()[i].name;
    ASSERT_TRUE(want.count(name)) << "no reference for " << name;
    double w = want[name], g = got[i];
    if (std::isnan(w)) {
      EXPECT_TRUE(std::isnan(g)) << label << " " << name << " = " << g << ", want NaN";
    } else {
      EXPECT_NEAR(g, w, 1e-6 + 1e-9 * std::fabs(w)) << label << " " << name;
    }
  }
}

TEST(CustomerStateTest, EveryTraitMatchesBruteForce) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  // Population from all customers first (premium_index compares with shop-wide medians).
  std::vector<EventBatch> batches(300);
  PopulationState pop = MakePopulation();
  std::vector<CustomerState> states(batches.size());
  for (size_t c = 0; c < batches.size(); ++c) {
    EventGenerator gen(1000 + c);
    gen.Generate(static_cast<int>(c % 90), &batches[c]);
    states[c] = Feed(Pointers(batches[c]), batches[c], pop, w.config);
  }
  std::vector<std::set<double>> seen(catalogue.traits().size());
  std::vector<double> row(catalogue.traits().size());
  for (size_t c = 0; c < batches.size(); ++c) {
    ExpectMatchesBruteForce(catalogue, states[c], Pointers(batches[c]), batches[c], pop, AsOf(),
                            "customer " + std::to_string(c));
    if (HasFailure()) return;
    catalogue.ComputeOne(states[c], pop, AsOf(), row);
    for (size_t t = 0; t < row.size(); ++t) {
      if (!std::isnan(row[t])) seen[t].insert(row[t]);
    }
  }
  // The random streams exercise every trait: each takes several values.
  for (size_t t = 0; t < seen.size(); ++t) {
    EXPECT_GE(seen[t].size(), 2u) << catalogue.traits()[t].name;
    if (catalogue.traits()[t].unit != "flag") {
      EXPECT_GE(seen[t].size(), 3u) << catalogue.traits()[t].name;
    }
  }
}

TEST(CustomerStateTest, AsOfOnPrefixMatchesBruteForce) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  for (int c = 0; c < 60; ++c) {
    EventBatch batch;
    EventGenerator(5000 + c).Generate(80, &batch);
    PopulationState pop = MakePopulation();
    for (const Event& e : batch.events) {  // population of everything, as the engine would
      CustomerState scratch;
      scratch.Update(e, batch, pop, w.config);
    }
    for (int days_back : {0, 3, 29, 100, 250}) {
      TimeMicros as_of = AsOf() - days_back * kDay - (c % 7) * kHour;
      std::vector<const Event*> prefix;
      for (const Event& e : batch.events) {
        if (e.timestamp <= as_of) prefix.push_back(&e);
      }
      PopulationState scratch_pop = pop;
      CustomerState state = Feed(prefix, batch, scratch_pop, w.config);
      ExpectMatchesBruteForce(
          catalogue, state, prefix, batch, pop, as_of,
          "customer " + std::to_string(c) + " as_of -" + std::to_string(days_back) + "d");
      if (HasFailure()) return;
    }
  }
}

TEST(CustomerStateTest, OrderOfEventsDoesNotMatter) {
  Workspace w = MakeWorkspace();
  std::mt19937_64 rng(7);
  for (int c = 0; c < 100; ++c) {
    EventBatch batch;
    EventGenerator(200 + c).Generate(1 + c, &batch);
    std::vector<const Event*> events = Pointers(batch);
    std::sort(events.begin(), events.end(),
              [](const Event* a, const Event* b) { return a->timestamp < b->timestamp; });
    PopulationState pop = MakePopulation();
    CustomerState sorted = Feed(events, batch, pop, w.config);
    std::shuffle(events.begin(), events.end(), rng);
    CustomerState shuffled = Feed(events, batch, pop, w.config);
    std::reverse(events.begin(), events.end());
    std::stable_sort(events.begin(), events.end(),
                     [](const Event* a, const Event* b) { return a->timestamp > b->timestamp; });
    CustomerState reversed = Feed(events, batch, pop, w.config);
    EXPECT_TRUE(sorted == shuffled) << "customer " << c;
    EXPECT_TRUE(sorted == reversed) << "customer " << c;
    EXPECT_EQ(Bytes(sorted), Bytes(shuffled)) << "customer " << c;
    EXPECT_EQ(Bytes(sorted), Bytes(reversed)) << "customer " << c;
  }
}

TEST(CustomerStateTest, CombineEqualsSingleStreamInBothOrders) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  std::mt19937_64 rng(11);
  for (int c = 0; c < 150; ++c) {
    EventBatch batch;
    EventGenerator(9000 + c).Generate(c % 70, &batch);
    std::vector<const Event*> events = Pointers(batch);
    std::shuffle(events.begin(), events.end(), rng);
    PopulationState pop = MakePopulation();
    CustomerState single = Feed(events, batch, pop, w.config);
    // Random split into 3 parts (some possibly empty), each fed in its own order.
    std::vector<std::vector<const Event*>> parts(3);
    for (const Event* e : events) parts[rng() % 3].push_back(e);
    std::vector<CustomerState> states;
    for (auto& part : parts) states.push_back(Feed(part, batch, pop, w.config));
    CustomerState forward = states[0];
    forward.Combine(states[1]);
    forward.Combine(states[2]);
    CustomerState backward = states[2];
    CustomerState middle = states[1];
    middle.Combine(states[0]);
    backward.Combine(middle);
    EXPECT_TRUE(forward == single) << "customer " << c;
    EXPECT_TRUE(backward == single) << "customer " << c;
    EXPECT_EQ(Bytes(forward), Bytes(single)) << "customer " << c;
    EXPECT_EQ(Bytes(backward), Bytes(single)) << "customer " << c;
    std::vector<double> a(catalogue.traits().size()), b(a.size());
    catalogue.ComputeOne(single, pop, AsOf(), a);
    catalogue.ComputeOne(backward, pop, AsOf(), b);
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))
          << catalogue.traits()[i].name;
    }
  }
}

TEST(CustomerStateTest, SerializeRoundTripAndCorruption) {
  Workspace w = MakeWorkspace();
  for (int c = 0; c < 40; ++c) {
    EventBatch batch;
    EventGenerator(300 + c).Generate(c * 2, &batch);
    PopulationState pop = MakePopulation();
    CustomerState state = Feed(Pointers(batch), batch, pop, w.config);
    std::string bytes = "prefix";
    state.Serialize(&bytes);  // appends
    ASSERT_EQ(bytes.substr(0, 6), "prefix");
    std::string_view encoded = std::string_view(bytes).substr(6);
    CustomerState back;
    ASSERT_TRUE(back.Deserialize(encoded).ok());
    EXPECT_TRUE(back == state);
    EXPECT_EQ(Bytes(back), std::string(encoded));
    for (size_t len = 0; len < encoded.size(); ++len) {
      CustomerState truncated;
      Status st = truncated.Deserialize(encoded.substr(0, len));
      ASSERT_EQ(st.code(), Status::Code::kCorruption) << "prefix of " << len << " bytes";
      EXPECT_TRUE(truncated.Empty());
    }
    std::string trailing(encoded);
    trailing.push_back('\0');
    EXPECT_EQ(back.Deserialize(trailing).code(), Status::Code::kCorruption);
    // Random byte flips never crash (they may or may not decode).
    std::mt19937_64 rng(c);
    for (int flip = 0; flip < 50 && !encoded.empty(); ++flip) {
      std::string damaged(encoded);
      damaged[rng() % damaged.size()] ^= static_cast<char>(1 + rng() % 255);
      CustomerState d;
      (void)d.Deserialize(damaged);
    }
  }
  CustomerState empty, back;
  ASSERT_TRUE(back.Deserialize(Bytes(empty)).ok());
  EXPECT_TRUE(back.Empty());
}

TEST(CustomerStateTest, TypicalCustomerFitsInOneKiB) {
  Workspace w;  // built-in traits only
  EventBatch batch;
  EventGenerator(42).Generate(30, &batch);
  PopulationState pop = MakePopulation();
  std::vector<const Event*> events = Pointers(batch);
  std::sort(events.begin(), events.end(),
            [](const Event* a, const Event* b) { return a->timestamp < b->timestamp; });
  CustomerState state = Feed(events, batch, pop, w.config);
  std::printf("[ memory ] 30-event customer: %zu bytes in memory, %zu serialized\n",
              state.MemoryBytes(), Bytes(state).size());
  EXPECT_LE(state.MemoryBytes(), 1024u);
  EXPECT_GT(state.MemoryBytes(), sizeof(CustomerState));
}

// ShrinkToFit releases memory and changes nothing observable: every trait value and the
// serialized bytes stay identical, and the state keeps updating as before afterwards.
TEST(CustomerStateTest, ShrinkToFitKeepsEveryValueAndByte) {
  Workspace w = MakeWorkspace();  // user traits too (windowed days, distinct values)
  TraitCatalogue catalogue(w.config);
  for (int c = 0; c < 40; ++c) {
    EventBatch batch;
    EventGenerator(7000 + c).Generate(20 + c * 3, &batch);
    PopulationState pop = MakePopulation();
    std::vector<const Event*> events = Pointers(batch);
    size_t half = events.size() / 2;
    CustomerState shrunk = Feed({events.begin(), events.begin() + static_cast<ptrdiff_t>(half)}, batch, pop, w.config);
    CustomerState plain = shrunk;
    size_t before = shrunk.MemoryBytes();
    shrunk.ShrinkToFit();
    EXPECT_LE(shrunk.MemoryBytes(), before);
    EXPECT_EQ(Bytes(shrunk), Bytes(plain));
    for (size_t i = half; i < events.size(); ++i) {
      shrunk.Update(*events[i], batch, pop, w.config);
      plain.Update(*events[i], batch, pop, w.config);
    }
    ASSERT_EQ(Bytes(shrunk), Bytes(plain)) << "customer " << c;
    std::vector<double> a(catalogue.traits().size()), b(catalogue.traits().size());
    catalogue.ComputeOne(shrunk, pop, AsOf(), a);
    catalogue.ComputeOne(plain, pop, AsOf(), b);
    for (size_t t = 0; t < a.size(); ++t) {
      if (std::isnan(b[t])) EXPECT_TRUE(std::isnan(a[t])) << catalogue.traits()[t].name;
      else EXPECT_EQ(a[t], b[t]) << catalogue.traits()[t].name;
    }
  }
}

TEST(CustomerStateTest, RemapCategoriesAfterPopulationCombine) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  EventBatch batch;
  EventGenerator(77).Generate(120, &batch);
  std::vector<const Event*> events = Pointers(batch);
  std::vector<const Event*> first(events.begin(), events.begin() + 60),
      second(events.begin() + 60, events.end());
  // Two shards with their own populations; categories registered in different orders.
  PopulationState pop_a, pop_b;
  std::vector<std::string> reversed(Categories().rbegin(), Categories().rend());
  for (const std::string& c : reversed) pop_b.CategoryId(c);
  CustomerState a = Feed(first, batch, pop_a, w.config);
  CustomerState b = Feed(second, batch, pop_b, w.config);
  std::vector<uint32_t> b_to_a;
  pop_a.Combine(pop_b, &b_to_a);
  b.RemapCategories(b_to_a);
  a.Combine(b);
  PopulationState pop_single;
  CustomerState single = Feed(events, batch, pop_single, w.config);
  std::vector<double> x(catalogue.traits().size()), y(x.size());
  catalogue.ComputeOne(a, pop_a, AsOf(), x);
  catalogue.ComputeOne(single, pop_single, AsOf(), y);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(y[i])) {
      EXPECT_TRUE(std::isnan(x[i])) << catalogue.traits()[i].name;
    } else {
      EXPECT_NEAR(x[i], y[i], 1e-9 * (1 + std::fabs(y[i]))) << catalogue.traits()[i].name;
    }
  }
}

TEST(CustomerStateTest, OrderHistoryIsSortedWithTotals) {
  Workspace w;
  EventBatch batch;
  EventGenerator(5).Generate(200, &batch);
  PopulationState pop;
  CustomerState state = Feed(Pointers(batch), batch, pop, w.config);
  std::vector<OrderRecord> history = OrderHistory(state);
  size_t orders = 0;
  for (const Event& e : batch.events) orders += e.Is(EventType::kOrder);
  ASSERT_EQ(history.size(), orders);
  ASSERT_GT(orders, 10u);
  for (size_t i = 1; i < history.size(); ++i) {
    EXPECT_LE(history[i - 1].timestamp, history[i].timestamp);
  }
}

TEST(CatalogueTest, NamesUniqueSnakeCaseAndComputeMatchesComputeOne) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  std::set<std::string> names;
  for (const TraitInfo& t : catalogue.traits()) {
    EXPECT_TRUE(names.insert(t.name).second) << t.name;
    EXPECT_FALSE(t.unit.empty()) << t.name;
    EXPECT_FALSE(t.description.empty()) << t.name;
    for (char ch : t.name) EXPECT_TRUE(std::islower(ch) || std::isdigit(ch) || ch == '_') << t.name;
  }
  EXPECT_EQ(catalogue.Find("recency_days"), 0);
  EXPECT_EQ(catalogue.Find("no_such_trait"), -1);
  EXPECT_EQ(catalogue.Find("reviews"), static_cast<int>(BuiltinTraits().size()));

  std::vector<EventBatch> batches(3000);
  std::vector<CustomerState> states(batches.size());
  PopulationState pop = MakePopulation();
  for (size_t c = 0; c < batches.size(); ++c) {
    EventGenerator(c).Generate(static_cast<int>(c % 25), &batches[c]);
    states[c] = Feed(Pointers(batches[c]), batches[c], pop, w.config);
  }
  std::vector<const CustomerState*> pointers;
  for (const auto& s : states) pointers.push_back(&s);
  TraitMatrix one_thread, two_threads;
  Context ctx1, ctx2;
  ctx1.threads = 1;
  ctx2.threads = 2;
  catalogue.Compute(pointers, pop, AsOf(), ctx1, &one_thread);
  catalogue.Compute(pointers, pop, AsOf(), ctx2, &two_threads);
  ASSERT_EQ(one_thread.values.size(), catalogue.traits().size() * states.size());
  EXPECT_EQ(0, std::memcmp(one_thread.values.data(), two_threads.values.data(),
                           one_thread.values.size() * sizeof(double)));
  EXPECT_EQ(one_thread.Find("frequency"), catalogue.Find("frequency"));
  std::vector<double> row(catalogue.traits().size());
  for (size_t c = 0; c < states.size(); c += 97) {
    catalogue.ComputeOne(states[c], pop, AsOf(), row);
    for (size_t t = 0; t < row.size(); ++t) {
      double m = one_thread.Column(t)[c];
      EXPECT_TRUE(m == row[t] || (std::isnan(m) && std::isnan(row[t])))
          << catalogue.traits()[t].name;
    }
  }
}

TEST(CatalogueTest, IsoWeeks) {
  EXPECT_EQ(IsoWeekOfDay(DaysFromCivil(2024, 3, 5)), 10);
  EXPECT_EQ(IsoWeekOfDay(DaysFromCivil(2024, 12, 30)), 1);  // belongs to 2025-W01
  EXPECT_EQ(IsoWeekOfDay(DaysFromCivil(2021, 1, 3)), 53);   // 2020-W53
  EXPECT_EQ(IsoWeekOfDay(DaysFromCivil(2026, 11, 23)), 48);
  for (int64_t day = DaysFromCivil(1999, 1, 1); day < DaysFromCivil(2031, 1, 1); ++day) {
    ASSERT_EQ(IsoWeekOfDay(day), BruteForce::SlowIsoWeek(day)) << day;
  }
}

// Update throughput, single thread: run with --gtest_also_run_disabled_tests. Events of all
// customers sit in one batch in time order (as a file would deliver them after identity
// resolution), so states are touched in an interleaved order.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

TEST(CustomerStateTest, DISABLED_UpdateThroughput) {
  constexpr int kCustomers = 40000, kEventsPerCustomer = 30;
  EventBatch batch;
  std::vector<uint32_t> owner;
  for (int c = 0; c < kCustomers; ++c) {
    EventGenerator(c).Generate(kEventsPerCustomer, &batch);
    owner.resize(batch.size(), static_cast<uint32_t>(c));
  }
  std::vector<uint32_t> order(batch.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return batch.events[a].timestamp < batch.events[b].timestamp;
  });
  std::vector<Event> events;
  std::vector<uint32_t> customer_of;
  for (uint32_t idx : order) {
    events.push_back(batch.events[idx]);
    customer_of.push_back(owner[idx]);
  }
  const TraitConfig all_user_traits = MakeWorkspace().config;
  TraitConfig four_user_traits;  // a more typical workspace
  for (const UserTraitSpec& spec : all_user_traits.user_traits) {
    if (spec.name == "reviews" || spec.name == "rating_mean_90d" ||
        spec.name == "products_viewed_90d" || spec.name == "bedding_dwell") {
      four_user_traits.user_traits.push_back(spec);
    }
  }
  ASSERT_EQ(four_user_traits.user_traits.size(), 4u);
  for (int num_user_traits : {0, 4, 22}) {
    const TraitConfig config = num_user_traits == 0   ? TraitConfig()
                               : num_user_traits == 4 ? four_user_traits
                                                      : all_user_traits;
    for (int pass = 0; pass < 2; ++pass) {
      PopulationState pop = MakePopulation();
      std::vector<CustomerState> states(kCustomers);
      // Thread CPU time: the machine is shared, wall time would measure the neighbours.
      double start = ThreadCpuSeconds();
      for (size_t i = 0; i < events.size(); ++i) {
        states[customer_of[i]].Update(events[i], batch, pop, config);
      }
      double seconds = ThreadCpuSeconds() - start;
      size_t memory = 0;
      for (const CustomerState& s : states) memory += s.MemoryBytes();
      std::printf(
          "[ throughput ] Update (%s, pass %d): %.2f M events/s (%zu events, %.3f CPU s), "
          "%.0f bytes/customer\n",
          (std::to_string(num_user_traits) + " user traits").c_str(), pass,
          events.size() / seconds / 1e6, events.size(), seconds, double(memory) / kCustomers);
      EXPECT_GT(states[0].num_events(), 0u);
      if (pass == 1) {
        TraitCatalogue catalogue(config);
        std::vector<const CustomerState*> pointers;
        for (const CustomerState& s : states) pointers.push_back(&s);
        Context ctx;
        ctx.threads = 1;
        TraitMatrix matrix;
        double compute_start = ThreadCpuSeconds();
        catalogue.Compute(pointers, pop, AsOf(), ctx, &matrix);
        double compute_seconds = ThreadCpuSeconds() - compute_start;
        std::printf(
            "[ throughput ] Compute (%d user traits, 1 thread): %.2f M customers/s, "
            "%zu traits\n",
            num_user_traits, kCustomers / compute_seconds / 1e6, matrix.traits.size());
        EXPECT_EQ(matrix.values.size(), matrix.traits.size() * kCustomers);
      }
    }
  }
}

}  // namespace
}  // namespace shoal::traits_test

namespace shoal::traits_test {
namespace {
TEST(CatalogueTest, DocsDefineEveryBuiltinTrait) {
  std::ifstream in(std::string(SHOAL_SOURCE_DIR) + "/docs/traits.md");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  for (const TraitInfo& t : BuiltinTraits()) {
    EXPECT_NE(text.str().find("| `" + t.name + "` | " + t.unit + " |"), std::string::npos)
        << t.name << " is missing from docs/traits.md";
  }
}
}  // namespace
}  // namespace shoal::traits_test

namespace shoal::traits_test {
namespace {

TEST(CustomerStateTest, EmptyStateHasZeroCountsAndNaNRecencies) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  PopulationState pop;
  CustomerState empty;
  EXPECT_TRUE(empty.Empty());
  std::vector<double> row(catalogue.traits().size());
  catalogue.ComputeOne(empty, pop, AsOf(), row);
  EXPECT_EQ(row[catalogue.Find("frequency")], 0);
  EXPECT_EQ(row[catalogue.Find("monetary_total")], 0);
  EXPECT_EQ(row[catalogue.Find("trend_orders")], 0);
  EXPECT_EQ(row[catalogue.Find("reviews")], 0);
  EXPECT_EQ(row[catalogue.Find("tiers")], 0);
  EXPECT_TRUE(std::isnan(row[catalogue.Find("recency_days")]));
  EXPECT_TRUE(std::isnan(row[catalogue.Find("days_since_last_event")]));
  EXPECT_TRUE(std::isnan(row[catalogue.Find("aov")]));
  EXPECT_TRUE(std::isnan(row[catalogue.Find("rating_mean")]));
  EXPECT_TRUE(std::isnan(row[catalogue.Find("days_since_review")]));
  EXPECT_TRUE(std::isnan(row[catalogue.Find("consent_marketing")]));
}

TEST(CustomerStateTest, TieRulesAreOrderFree) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  EventBatch batch;
  auto add = [&](uint16_t type, TimeMicros t) -> Event& {
    Event e;
    e.type = type;
    e.timestamp = t;
    e.first_prop = static_cast<uint32_t>(batch.props.size());
    batch.events.push_back(e);
    return batch.events.back();
  };
  const TimeMicros t = AsOf() - kDay;
  add(static_cast<uint16_t>(EventType::kConsent), t).consent = 1;
  add(static_cast<uint16_t>(EventType::kConsent), t).consent = 0;
  add(static_cast<uint16_t>(EventType::kConsent), t - kHour).consent = 1;
  for (double rating : {4.0, 2.0, 5.0, 3.0}) {
    Event& e = add(kFirstCustomType, t);
    batch.props.push_back({batch.Intern("rating"), {}, rating, true});
    e.num_props = 1;
  }
  std::vector<const Event*> events = Pointers(batch);
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 20; ++trial) {
    std::shuffle(events.begin(), events.end(), rng);
    PopulationState pop;
    CustomerState s = Feed(events, batch, pop, w.config);
    std::vector<double> row(catalogue.traits().size());
    catalogue.ComputeOne(s, pop, AsOf(), row);
    EXPECT_EQ(row[catalogue.Find("consent_marketing")], 0) << "opt-out wins a tie";
    EXPECT_EQ(row[catalogue.Find("rating_last")], 5) << "largest value wins a tie";
    EXPECT_EQ(row[catalogue.Find("rating_min")], 2);
    EXPECT_EQ(row[catalogue.Find("rating_mean")], 3.5);
    EXPECT_DOUBLE_EQ(row[catalogue.Find("days_since_review")], 1.0);
  }
}

// More than 64 user traits: the states of traits >= 64 use the searched path.
TEST(CustomerStateTest, ManyUserTraitsMatchBruteForceAndMerge) {
  Workspace w = MakeWorkspace();
  TraitConfig config;
  for (int copy = 0; copy < 4; ++copy) {
    for (UserTraitSpec spec : w.config.user_traits) {
      spec.name.append("_").append(std::to_string(copy));
      if (copy % 2 == 1 && spec.window_days > 0) spec.window_days += copy;
      config.user_traits.push_back(spec);
    }
  }
  ASSERT_GT(config.user_traits.size(), 80u);
  ASSERT_TRUE(ValidateTraitConfig(config).ok());
  TraitCatalogue catalogue(config);
  std::mt19937_64 rng(9);
  for (int c = 0; c < 30; ++c) {
    EventBatch batch;
    EventGenerator(700 + c).Generate(60, &batch);
    std::vector<const Event*> events = Pointers(batch);
    PopulationState pop = MakePopulation();
    CustomerState single = Feed(events, batch, pop, config);
    ExpectMatchesBruteForce(catalogue, single, events, batch, pop, AsOf(),
                            "customer " + std::to_string(c));
    std::shuffle(events.begin(), events.end(), rng);
    size_t split = rng() % (events.size() + 1);
    std::vector<const Event*> a(events.begin(), events.begin() + split),
        b(events.begin() + split, events.end());
    CustomerState left = Feed(a, batch, pop, config), right = Feed(b, batch, pop, config);
    CustomerState ab = left, ba = right;
    ab.Combine(right);
    ba.Combine(left);
    EXPECT_EQ(Bytes(ab), Bytes(single));
    EXPECT_EQ(Bytes(ba), Bytes(single));
    CustomerState round_trip;
    ASSERT_TRUE(round_trip.Deserialize(Bytes(ab)).ok());
    round_trip.Update(*events[0], batch, pop, config);  // index rebuilt after Deserialize
    CustomerState plus_one = single;
    plus_one.Update(*events[0], batch, pop, config);
    EXPECT_EQ(Bytes(round_trip), Bytes(plus_one));
    if (HasFailure()) return;
  }
}

// ComputeSelected equals ComputeOne bit for bit on every selected trait and leaves the rest NaN:
// each trait alone, random subsets, all traits, on random states (long histories included, so
// the per-quarter / per-week lookups of the seasonality cross many boundaries).
TEST(CatalogueTest, ComputeSelectedIsBitIdenticalToComputeOne) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  const size_t num_traits = catalogue.traits().size();
  PopulationState pop = MakePopulation();
  std::vector<EventBatch> batches(300);
  std::vector<CustomerState> states(batches.size());
  for (size_t c = 0; c < batches.size(); ++c) {
    EventGenerator(40'000 + c).Generate(static_cast<int>(c % 10 == 0 ? 600 : c % 120), &batches[c]);
    states[c] = Feed(Pointers(batches[c]), batches[c], pop, w.config);
  }
  std::vector<std::vector<int>> subsets;
  for (size_t t = 0; t < num_traits; ++t) subsets.push_back({static_cast<int>(t)});
  std::mt19937_64 rng(77);
  for (int s = 0; s < 40; ++s) {
    std::vector<int> subset;
    for (size_t t = 0; t < num_traits; ++t) {
      if (rng() % 4 == 0) subset.push_back(static_cast<int>(t));
    }
    subset.push_back(-1);                             // ignored
    subset.push_back(static_cast<int>(num_traits));  // ignored
    subsets.push_back(subset);
  }
  subsets.emplace_back();
  for (size_t t = 0; t < num_traits; ++t) subsets.back().push_back(static_cast<int>(t));

  std::vector<double> full(num_traits), some(num_traits);
  const TimeMicros as_ofs[] = {AsOf(), AsOf() + 45 * kDay + 3 * kHour};
  std::vector<const CustomerState*> state_rows;
  for (const CustomerState& state : states) state_rows.push_back(&state);
  Context two_threads;
  two_threads.threads = 2;
  for (const std::vector<int>& subset : subsets) {
    const TraitSelection selection = catalogue.Select(subset);
    size_t selected = 0;
    for (size_t t = 0; t < num_traits; ++t) selected += selection.Contains(t);
    EXPECT_EQ(selected, selection.size());
    // The whole-population Compute with the same selection gives the same columns.
    TraitMatrix all, chosen;
    catalogue.Compute(state_rows, pop, as_ofs[0], two_threads, &all);
    catalogue.Compute(state_rows, pop, as_ofs[0], two_threads, &chosen, &selection);
    for (size_t t = 0; t < num_traits; ++t) {
      for (size_t c = 0; c < states.size(); ++c) {
        if (selection.Contains(t)) {
          ASSERT_EQ(0, std::memcmp(&all.Column(t)[c], &chosen.Column(t)[c], sizeof(double)))
              << catalogue.traits()[t].name;
        } else {
          ASSERT_TRUE(std::isnan(chosen.Column(t)[c])) << catalogue.traits()[t].name;
        }
      }
    }
    for (size_t c = 0; c < states.size(); ++c) {
      for (TimeMicros as_of : as_ofs) {
        catalogue.ComputeOne(states[c], pop, as_of, full);
        std::fill(some.begin(), some.end(), 12345.0);
        catalogue.ComputeSelected(states[c], pop, as_of, selection, some);
        for (size_t t = 0; t < num_traits; ++t) {
          if (selection.Contains(t)) {
            ASSERT_EQ(0, std::memcmp(&full[t], &some[t], sizeof(double)))
                << catalogue.traits()[t].name << " customer " << c << ": " << some[t]
                << " != " << full[t];
          } else {
            ASSERT_TRUE(std::isnan(some[t])) << catalogue.traits()[t].name;
          }
        }
      }
    }
  }
}

// Long histories (hundreds of orders over 14 months) against the brute force, which looks up
// the quarter and ISO week of every order on its own.
TEST(CatalogueTest, SeasonalityOfLongHistoriesMatchesBruteForce) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  PopulationState pop = MakePopulation();
  for (int c = 0; c < 12; ++c) {
    EventBatch batch;
    EventGenerator(60'000 + static_cast<uint64_t>(c)).Generate(900, &batch);
    CustomerState state = Feed(Pointers(batch), batch, pop, w.config);
    ASSERT_GT(state.orders().size(), 50u);
    ExpectMatchesBruteForce(catalogue, state, Pointers(batch), batch, pop, AsOf(),
                            "long history " + std::to_string(c));
  }
}

// The window traits scan the orders from the newest back and stop past the longest window: on
// long histories, at as-of dates inside the history (so later orders are skipped first), they
// equal the brute force over the events up to the as-of date.
TEST(CatalogueTest, WindowsOfLongHistoriesAtPastDatesMatchBruteForce) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  PopulationState pop = MakePopulation();
  const char* const kWindowTraits[] = {"orders_7d", "orders_30d", "orders_90d", "orders_365d",
                                       "spend_7d",  "spend_30d",  "spend_90d",  "spend_365d",
                                       "trend_orders", "trend_spend"};
  std::vector<double> got(catalogue.traits().size());
  for (int c = 0; c < 8; ++c) {
    EventBatch batch;
    EventGenerator(61'000 + static_cast<uint64_t>(c)).Generate(900, &batch);
    CustomerState state = Feed(Pointers(batch), batch, pop, w.config);
    for (int days_back : {0, 45, 200}) {
      // The last microsecond of a day: the windows count whole days, and an as-of computation
      // sees no event after its date (ReplayAsOf), so no order of the as-of day comes later.
      const TimeMicros as_of = (DayOf(AsOf() - days_back * kDay) + 1) * kDay - 1;
      std::vector<const Event*> prefix;
      for (const Event& e : batch.events) {
        if (e.timestamp <= as_of) prefix.push_back(&e);
      }
      BruteForce::Values want = BruteForce::Compute(prefix, batch, pop, catalogue.config(), as_of);
      catalogue.ComputeOne(state, pop, as_of, got);
      double nonzero = 0;
      for (const char* name : kWindowTraits) {
        const double g = got[static_cast<size_t>(catalogue.Find(name))];
        EXPECT_NEAR(g, want[name], 1e-9 * (1 + std::fabs(want[name])))
            << "customer " << c << " as_of -" << days_back << "d " << name;
        nonzero += g != 0;
      }
      EXPECT_GT(nonzero, 0) << "customer " << c << ": the windows hold orders";
    }
  }
}

// The carried order total equals the sum over the orders after Update, Combine and Deserialize.
TEST(CustomerStateTest, CarriedOrderTotalEqualsSumOfOrders) {
  Workspace w = MakeWorkspace();
  PopulationState pop = MakePopulation();
  auto sum = [](const CustomerState& s) {
    int64_t total = 0;
    for (const auto& o : s.orders()) total += o.total_fixed;
    return total;
  };
  for (int c = 0; c < 40; ++c) {
    EventBatch batch;
    EventGenerator(70'000 + static_cast<uint64_t>(c)).Generate(5 + 7 * c, &batch);
    std::vector<const Event*> events = Pointers(batch);
    const size_t half = events.size() / 2;
    CustomerState a = Feed({events.begin(), events.begin() + static_cast<std::ptrdiff_t>(half)},
                           batch, pop, w.config);
    CustomerState b = Feed({events.begin() + static_cast<std::ptrdiff_t>(half), events.end()},
                           batch, pop, w.config);
    EXPECT_EQ(a.OrdersTotalFixed(), sum(a));
    a.Combine(b);
    EXPECT_EQ(a.OrdersTotalFixed(), sum(a));
    CustomerState decoded;
    ASSERT_TRUE(decoded.Deserialize(Bytes(a)).ok());
    EXPECT_EQ(decoded.OrdersTotalFixed(), sum(a));
    if (c > 0) {
      EXPECT_NE(sum(a), 0) << c;
    }
  }
}


// Campaign times in whole seconds are kept in 16 bytes a campaign; one time with a fraction of
// a second switches that customer to exact times, and both forms give the same state, bytes
// and open latency whichever order the events and merges come in.
TEST(CustomerStateTest, CampaignTimesArePackedWhenWholeSecondsAndExactOtherwise) {
  Workspace w = MakeWorkspace();
  TraitCatalogue catalogue(w.config);
  EventBatch batch;
  auto email = [&](EventType type, const char* campaign, TimeMicros t) {
    Event e;
    e.type = static_cast<uint16_t>(type);
    e.timestamp = t;
    e.customer_id = batch.Intern("c1");
    e.campaign_id = batch.Intern(campaign);
    batch.events.push_back(e);
  };
  const TimeMicros t0 = AsOf() - 30 * kDay;
  for (int c = 0; c < 40; ++c) {
    std::string name = "camp" + std::to_string(c);
    email(EventType::kEmailSend, batch.Intern(name).data(), t0 + c * kDay);
    email(EventType::kEmailOpen, batch.Intern(name).data(), t0 + c * kDay + 3 * kHour);
  }
  PopulationState pop = MakePopulation();
  std::vector<const Event*> whole = Pointers(batch);
  CustomerState packed = Feed(whole, batch, pop, w.config);
  packed.ShrinkToFit();
  ASSERT_EQ(packed.num_campaigns(), 40u);
  EXPECT_EQ(packed.campaign(7).first_open - packed.campaign(7).first_send, 3 * kHour);

  // One open 0.5 s later than a whole second (and earlier than the campaign's other open).
  email(EventType::kEmailOpen, "camp3", t0 + 3 * kDay + kHour + 500'000);
  std::vector<const Event*> all = Pointers(batch);
  CustomerState single = Feed(all, batch, pop, w.config);
  std::vector<const Event*> reversed(all.rbegin(), all.rend());
  CustomerState reverse = Feed(reversed, batch, pop, w.config);
  CustomerState fraction = Feed({all.back()}, batch, pop, w.config);
  CustomerState merged = packed;       // packed + exact
  merged.Combine(fraction);
  CustomerState merged_other = fraction;  // exact + packed
  merged_other.Combine(packed);
  EXPECT_EQ(Bytes(single), Bytes(reverse));
  single.ShrinkToFit();  // exact: 24 bytes a campaign where packed took 16
  EXPECT_GE(single.MemoryBytes(), packed.MemoryBytes() + 40 * 8);
  EXPECT_EQ(Bytes(single), Bytes(merged));
  EXPECT_EQ(Bytes(single), Bytes(merged_other));
  CustomerState decoded;
  ASSERT_TRUE(decoded.Deserialize(Bytes(single)).ok());
  EXPECT_EQ(Bytes(decoded), Bytes(single));
  bool found = false;
  for (size_t i = 0; i < single.num_campaigns(); ++i) {
    if (single.campaign(i).first_open == t0 + 3 * kDay + kHour + 500'000) found = true;
  }
  EXPECT_TRUE(found);
  std::vector<double> a(catalogue.traits().size()), b(a.size());
  catalogue.ComputeOne(single, pop, AsOf(), a);
  catalogue.ComputeOne(merged_other, pop, AsOf(), b);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i] == b[i] || (a[i] != a[i] && b[i] != b[i])) << i;
}

}  // namespace
}  // namespace shoal::traits_test

namespace shoal::traits_test {
namespace {

// User trait states and exact campaign times sit behind one pointer allocated on first use:
// the slot stays small, and a state without them combines, copies, round-trips and keeps
// updating exactly like one with them.
TEST(CustomerStateTest, RareStateLivesBehindOnePointer) {
  // 272 + 16: the carried order-day count and inter-purchase deviation (OrderIntervals).
  EXPECT_LE(sizeof(CustomerState), 288u);
  Workspace w = MakeWorkspace();
  ASSERT_FALSE(w.config.user_traits.empty());
  EventBatch batch;
  EventGenerator(77).Generate(80, &batch);
  Event open;  // an open at a fraction of a second: every campaign time kept exact
  open.type = static_cast<uint16_t>(EventType::kEmailOpen);
  open.timestamp = AsOf() - 3 * kDay + 250'000;
  open.customer_id = batch.Intern("c1");
  open.campaign_id = batch.Intern("spring");
  batch.events.push_back(open);
  std::vector<const Event*> events = Pointers(batch);
  PopulationState pop = MakePopulation();
  CustomerState with_user = Feed(events, batch, pop, w.config);
  ASSERT_FALSE(with_user.user_traits().empty());
  bool exact_open = false;
  for (size_t i = 0; i < with_user.num_campaigns(); ++i) {
    exact_open |= with_user.campaign(i).first_open == open.timestamp;
  }
  EXPECT_TRUE(exact_open);
  CustomerState decoded;
  ASSERT_TRUE(decoded.Deserialize(Bytes(with_user)).ok());
  EXPECT_EQ(Bytes(decoded), Bytes(with_user));
  CustomerState into_empty;
  into_empty.Combine(with_user);
  EXPECT_EQ(Bytes(into_empty), Bytes(with_user));
  CustomerState plus_empty = with_user;
  plus_empty.Combine(CustomerState());
  EXPECT_EQ(Bytes(plus_empty), Bytes(with_user));
  // The popcount index is rebuilt by Combine: one more event lands in the same places.
  into_empty.Update(*events[3], batch, pop, w.config);
  plus_empty.Update(*events[3], batch, pop, w.config);
  CustomerState reference = with_user;
  reference.Update(*events[3], batch, pop, w.config);
  EXPECT_EQ(Bytes(into_empty), Bytes(reference));
  EXPECT_EQ(Bytes(plus_empty), Bytes(reference));
  // Built-in traits only and whole-second times: no rare state, and the bytes round-trip
  // to a state without one.
  Workspace builtin;
  events.pop_back();
  CustomerState plain = Feed(events, batch, pop, builtin.config);
  EXPECT_TRUE(plain.user_traits().empty());
  CustomerState round_trip = with_user;  // Deserialize replaces the user states too
  ASSERT_TRUE(round_trip.Deserialize(Bytes(plain)).ok());
  EXPECT_TRUE(round_trip.user_traits().empty());
  EXPECT_EQ(Bytes(round_trip), Bytes(plain));
  round_trip.ShrinkToFit();
  plain.ShrinkToFit();
  EXPECT_EQ(round_trip.MemoryBytes(), plain.MemoryBytes());  // no rare state left behind
  EXPECT_LT(plain.MemoryBytes(), with_user.MemoryBytes());
}

}  // namespace
}  // namespace shoal::traits_test
