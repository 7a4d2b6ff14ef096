// StateSlots: the CustomerState of every profile slot, where a slot without a state (a profile
// absorbed by a merge, forgotten, or not yet fed) costs a 4-byte index entry instead of a whole
// CustomerState. At the benchmark's 10M events, 27k of 188k slots are absorbed profiles: as
// states they were 5% of the resident memory.
#pragma once

#include <cstdint>
#include <vector>

#include "traits/customer_state.h"

namespace shoal {

// Not thread-safe for writers; const methods may run concurrently with each other. References
// returned by Mutable() and operator[] stay valid until the next Mutable(), Release(),
// ShrinkToFit() or resize() (states move when their storage grows or is compacted).
class StateSlots {
 public:
  // Slots (alive and dead profiles), not states.
  size_t size() const { return index_.size(); }
  // Grows (or shrinks) to n slots; new slots have no state.
  void resize(size_t n);
  void clear();
  // Room for n states without moving them as they are added (opening a workspace knows how
  // many profiles it will load: growing by an eighth moved every state ~20 times).
  void ReserveStates(size_t n) { states_.reserve(n); }

  // The slot's state; a shared empty state when it has none. slot < size().
  const CustomerState& operator[](uint32_t slot) const {
    const uint32_t pos = index_[slot];
    return pos == kNone ? Empty() : states_[pos];
  }
  // The slot's state for writing: an empty state is placed there first when it has none
  // (reusing a released one when there is). slot < size().
  CustomerState& Mutable(uint32_t slot);
  // Folds the state of `absorbed` into `survivor` (CustomerState::Combine) and releases
  // `absorbed`: the merge of two profiles. Both < size(), distinct.
  void Absorb(uint32_t survivor, uint32_t absorbed);
  // The slot has no state afterwards; its storage is reused by the next slot that needs one.
  void Release(uint32_t slot);
  // Slots holding a state.
  size_t num_states() const { return states_.size() - free_.size(); }

  // Calls fn(state) for every state stored, in storage order, for writing: the slots' states
  // and the released ones, which are empty (CustomerState()).
  template <typename Fn> void ForEachState(Fn&& fn) {
    for (CustomerState& state : states_) fn(state);
  }
  // Moves the states into a contiguous prefix without holes and releases spare capacity
  // (after a bulk load). Every slot keeps its state.
  void ShrinkToFit();
  // Bytes of the slot index and the state array (sizeof(CustomerState) per entry, capacity
  // included), not the states' own heap.
  size_t InlineBytes() const;
  // The states' own heap bytes (CustomerState::MemoryBytes beyond sizeof).
  size_t HeapBytes() const;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static const CustomerState& Empty();

  std::vector<uint32_t> index_;         // slot -> position in states_, or kNone
  std::vector<CustomerState> states_;   // held and released states
  std::vector<uint32_t> free_;          // released positions (their states are empty)
};

}  // namespace shoal
