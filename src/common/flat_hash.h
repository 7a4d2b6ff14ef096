// Open-addressing hash containers keyed by 64-bit hashes: one flat array, linear probing, no
// allocation per insert (the table doubles at 50% load). Key 0 is reserved for "empty"; callers
// pass hashes, which are remapped from 0 to 1 (a harmless collision of two hash values).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace shoal {

// Map from a 64-bit key to a uint32 value. Not thread-safe.
class FlatMapU64 {
 public:
  static constexpr uint32_t kAbsent = 0xffffffffu;

  explicit FlatMapU64(size_t expected = 16) { Rehash(Capacity(expected)); }
  // Value for key, or kAbsent.
  uint32_t Find(uint64_t key) const {
    key = Fix(key);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == 0) return kAbsent;
    }
  }
  // Inserts or overwrites.
  void Put(uint64_t key, uint32_t value) {
    if ((size_ + 1) * 2 > keys_.size()) Rehash(keys_.size() * 2);
    key = Fix(key);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) { values_[i] = value; return; }
      if (keys_[i] == 0) { keys_[i] = key; values_[i] = value; ++size_; return; }
    }
  }
  // Removes key if present (backward-shift deletion keeps probing correct).
  void Erase(uint64_t key) {
    key = Fix(key);
    size_t i = Slot(key);
    for (;; i = (i + 1) & mask_) {
      if (keys_[i] == 0) return;
      if (keys_[i] == key) break;
    }
    size_t j = i;
    for (;;) {
      keys_[i] = 0;
      for (;;) {
        j = (j + 1) & mask_;
        if (keys_[j] == 0) { --size_; return; }
        size_t home = Slot(keys_[j]);
        // keys_[j] may move to i if its home is cyclically outside (i, j].
        if ((i <= j) ? (home <= i || home > j) : (home <= i && home > j)) break;
      }
      keys_[i] = keys_[j];
      values_[i] = values_[j];
      i = j;
    }
  }
  size_t size() const { return size_; }
  size_t MemoryBytes() const { return keys_.size() * (sizeof(uint64_t) + sizeof(uint32_t)); }
  void Reserve(size_t n) { if (n * 2 > keys_.size()) Rehash(Capacity(n)); }
  template <typename Fn> void ForEach(Fn&& fn) const {
    for (size_t i = 0; i < keys_.size(); ++i) if (keys_[i]) fn(keys_[i], values_[i]);
  }

 private:
  static uint64_t Fix(uint64_t key) { return key == 0 ? 1 : key; }
  static size_t Capacity(size_t expected) {
    size_t c = 16;
    while (c < expected * 2) c *= 2;
    return c;
  }
  size_t Slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull >> 7) & mask_; }
  void Rehash(size_t capacity) {
    std::vector<uint64_t> old_keys(capacity, 0);
    std::vector<uint32_t> old_values(capacity, 0);
    old_keys.swap(keys_);
    old_values.swap(values_);
    mask_ = capacity - 1;
    size_ = 0;
    for (size_t i = 0; i < old_keys.size(); ++i) {
      if (old_keys[i]) Put(old_keys[i], old_values[i]);
    }
  }
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> values_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Set of 64-bit keys (event-id hashes). Not thread-safe.
class FlatSetU64 {
 public:
  explicit FlatSetU64(size_t expected = 16) { Rehash(Capacity(expected)); }
  bool Contains(uint64_t key) const {
    key = Fix(key);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return true;
      if (keys_[i] == 0) return false;
    }
  }
  // Returns true if inserted, false if already present.
  bool Insert(uint64_t key) {
    if ((size_ + 1) * 2 > keys_.size()) Rehash(keys_.size() * 2);
    key = Fix(key);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return false;
      if (keys_[i] == 0) { keys_[i] = key; ++size_; return true; }
    }
  }
  size_t size() const { return size_; }
  size_t MemoryBytes() const { return keys_.size() * sizeof(uint64_t); }
  void Reserve(size_t n) { if (n * 2 > keys_.size()) Rehash(Capacity(n)); }
  // Starts loading key's first slot into the cache (a batch of inserts overlaps its misses).
  void Prefetch(uint64_t key) const { __builtin_prefetch(&keys_[Slot(Fix(key))]); }
  // Calls fn(key) for every key (0 was stored as 1), in table order.
  template <typename Fn> void ForEach(Fn&& fn) const {
    for (uint64_t k : keys_) if (k) fn(k);
  }
  // Removes every key, keeping the table's capacity.
  void Clear() {
    std::fill(keys_.begin(), keys_.end(), 0);
    size_ = 0;
  }

 private:
  static uint64_t Fix(uint64_t key) { return key == 0 ? 1 : key; }
  static size_t Capacity(size_t expected) {
    size_t c = 16;
    while (c < expected * 2) c *= 2;
    return c;
  }
  size_t Slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull >> 7) & mask_; }
  void Rehash(size_t capacity) {
    std::vector<uint64_t> old(capacity, 0);
    old.swap(keys_);
    mask_ = capacity - 1;
    size_ = 0;
    for (uint64_t k : old) if (k) Insert(k);
  }
  std::vector<uint64_t> keys_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace shoal
