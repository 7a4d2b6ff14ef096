#include "traits/state_slots.h"

#include <algorithm>

namespace shoal {

const CustomerState& StateSlots::Empty() {
  static const CustomerState empty;
  return empty;
}

void StateSlots::resize(size_t n) {
  for (size_t slot = n; slot < index_.size(); ++slot) Release(static_cast<uint32_t>(slot));
  index_.resize(n, kNone);
}

void StateSlots::clear() {
  index_.clear();
  states_.clear();
  free_.clear();
}

CustomerState& StateSlots::Mutable(uint32_t slot) {
  uint32_t& pos = index_[slot];
  if (pos != kNone) return states_[pos];
  if (!free_.empty()) {
    pos = free_.back();
    free_.pop_back();
    return states_[pos];
  }
  // Grow by an eighth, not doubling: an entry is sizeof(CustomerState) (~280 bytes).
  if (states_.size() == states_.capacity()) states_.reserve(states_.size() * 9 / 8 + 1024);
  pos = static_cast<uint32_t>(states_.size());
  states_.emplace_back();
  return states_[pos];
}

void StateSlots::Absorb(uint32_t survivor, uint32_t absorbed) {
  CustomerState& into = Mutable(survivor);  // may move the states: before taking `absorbed`
  const uint32_t from = index_[absorbed];
  if (from != kNone) into.Combine(states_[from]);
  Release(absorbed);
}

void StateSlots::Release(uint32_t slot) {
  const uint32_t pos = index_[slot];
  if (pos == kNone) return;
  states_[pos] = CustomerState();
  free_.push_back(pos);
  index_[slot] = kNone;
}

void StateSlots::ShrinkToFit() {
  if (!free_.empty()) {
    // Fill each hole below the end with the last held state.
    std::vector<uint32_t> slot_of(states_.size(), kNone);
    for (uint32_t slot = 0; slot < index_.size(); ++slot) {
      if (index_[slot] != kNone) slot_of[index_[slot]] = slot;
    }
    std::sort(free_.begin(), free_.end());
    size_t end = states_.size();
    for (uint32_t hole : free_) {
      while (end > hole && slot_of[end - 1] == kNone) --end;
      if (end <= hole) break;
      const uint32_t last = static_cast<uint32_t>(end - 1);
      states_[hole] = std::move(states_[last]);
      index_[slot_of[last]] = hole;
      slot_of[hole] = slot_of[last];
      slot_of[last] = kNone;
      --end;
    }
    while (end > 0 && slot_of[end - 1] == kNone) --end;
    states_.resize(end);
    free_.clear();
  }
  free_.shrink_to_fit();
  states_.shrink_to_fit();
  index_.shrink_to_fit();
}

size_t StateSlots::InlineBytes() const {
  return index_.capacity() * sizeof(uint32_t) + states_.capacity() * sizeof(CustomerState) +
         free_.capacity() * sizeof(uint32_t);
}

size_t StateSlots::HeapBytes() const {
  size_t bytes = 0;
  for (const CustomerState& state : states_) bytes += state.MemoryBytes() - sizeof(CustomerState);
  return bytes;
}

}  // namespace shoal
