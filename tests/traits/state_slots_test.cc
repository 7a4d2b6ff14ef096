#include "traits/state_slots.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "test_events.h"

namespace shoal::traits_test {
namespace {

std::string StateBytes(const CustomerState& s) {
  std::string out;
  s.Serialize(&out);
  return out;
}

PopulationState AllCategories() {
  PopulationState pop;
  for (const std::string& c : Categories()) pop.CategoryId(c);
  return pop;
}

// Random updates, merges, releases, growth and compactions against a plain vector of states
// (the layout StateSlots replaces): every slot holds the same bytes throughout, released
// storage is reused, and compaction leaves no holes.
TEST(StateSlotsTest, MatchesVectorOfStatesThroughMergesReleasesAndCompaction) {
  const TraitConfig config;  // built-in traits
  EventBatch batch;
  EventGenerator(5).Generate(400, &batch);
  PopulationState pop_reference = AllCategories(), pop_slots = AllCategories();
  std::vector<CustomerState> reference(50);
  StateSlots slots;
  slots.resize(50);
  std::mt19937_64 rng(11);
  auto check_all = [&](int step) {
    ASSERT_EQ(slots.size(), reference.size());
    for (uint32_t slot = 0; slot < reference.size(); ++slot) {
      ASSERT_EQ(StateBytes(slots[slot]), StateBytes(reference[slot]))
          << "slot " << slot << " step " << step;
    }
  };
  for (int step = 0; step < 6000; ++step) {
    const auto n = static_cast<uint32_t>(reference.size());
    const uint32_t a = static_cast<uint32_t>(rng() % n), b = static_cast<uint32_t>(rng() % n);
    switch (rng() % 10) {
      case 0:
      case 1:
        if (a != b) {
          reference[a].Combine(reference[b]);
          reference[b] = CustomerState();
          slots.Absorb(a, b);
        }
        break;
      case 2:
        reference[a] = CustomerState();
        slots.Release(a);
        break;
      case 3:
        if (step % 50 == 3) {
          reference.resize(n + 20);
          slots.resize(n + 20);
        }
        break;
      default: {
        const Event& e = batch.events[rng() % batch.events.size()];
        reference[a].Update(e, batch, pop_reference, config);
        slots.Mutable(a).Update(e, batch, pop_slots, config);
      }
    }
    if (step % 1000 == 999) {
      check_all(step);
      const size_t states_before = slots.num_states();
      slots.ShrinkToFit();
      EXPECT_EQ(slots.num_states(), states_before);
      EXPECT_LE(slots.InlineBytes(),
                slots.size() * sizeof(uint32_t) + states_before * sizeof(CustomerState));
      check_all(step);
    }
    if (HasFailure()) return;
  }
  // A released slot reads as the empty state and its storage serves the next new state.
  slots.Mutable(0);
  const size_t held = slots.num_states();
  slots.Release(0);
  EXPECT_TRUE(slots[0].Empty());
  EXPECT_EQ(slots.num_states(), held - 1);
  const size_t inline_bytes = slots.InlineBytes();
  slots.Mutable(0);
  EXPECT_EQ(slots.num_states(), held);
  EXPECT_EQ(slots.InlineBytes(), inline_bytes);  // reused, not grown
}

}  // namespace
}  // namespace shoal::traits_test
