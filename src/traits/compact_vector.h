// CompactVector<T>: a growable array of trivially copyable T in 16 bytes (pointer, 32-bit size
// and capacity) where std::vector takes 24. CustomerState holds five per customer slot, so at
// ~190k slots for 160k customers this is ~47 bytes per customer. The subset of std::vector's
// interface CustomerState uses, with the same growth (doubling) and the same meaning; iterators
// are pointers (so std::span, std::lower_bound and range-for work on it).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace shoal {

template <typename T>
class CompactVector {
  static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>,
                "CompactVector moves its elements with memcpy");

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;
  using size_type = size_t;

  CompactVector() = default;
  CompactVector(const CompactVector& other) { Assign(other.data_, other.size_); }
  CompactVector(CompactVector&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  CompactVector& operator=(const CompactVector& other) {
    if (this != &other) Assign(other.data_, other.size_);
    return *this;
  }
  CompactVector& operator=(CompactVector&& other) noexcept {
    swap(other);
    other.clear();
    other.shrink_to_fit();
    return *this;
  }
  ~CompactVector() { std::free(data_); }

  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& front() { return data_[0]; }
  const T& front() const { return data_[0]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }

  void reserve(size_t n) {
    if (n > capacity_) Reallocate(n);
  }
  void push_back(const T& value) {
    T copy = value;  // value may live in this array
    if (size_ == capacity_) Grow(size_ + 1);
    data_[size_++] = copy;
  }
  // Inserts before pos; returns the inserted element.
  T* insert(const T* pos, const T& value) {
    const size_t i = static_cast<size_t>(pos - data_);
    T copy = value;
    if (size_ == capacity_) Grow(size_ + 1);
    std::memmove(static_cast<void*>(data_ + i + 1), data_ + i, (size_ - i) * sizeof(T));
    data_[i] = copy;
    ++size_;
    return data_ + i;
  }
  // Inserts [first, last) (not inside this array) before pos.
  T* insert(const T* pos, const T* first, const T* last) {
    const size_t i = static_cast<size_t>(pos - data_);
    const size_t n = static_cast<size_t>(last - first);
    if (size_ + n > capacity_) Grow(size_ + n);
    std::memmove(static_cast<void*>(data_ + i + n), data_ + i, (size_ - i) * sizeof(T));
    if (n > 0) std::memcpy(static_cast<void*>(data_ + i), first, n * sizeof(T));
    size_ = static_cast<uint32_t>(size_ + n);
    return data_ + i;
  }
  T* erase(const T* first, const T* last) {
    const size_t i = static_cast<size_t>(first - data_);
    const size_t n = static_cast<size_t>(last - first);
    std::memmove(static_cast<void*>(data_ + i), data_ + i + n, (size_ - i - n) * sizeof(T));
    size_ = static_cast<uint32_t>(size_ - n);
    return data_ + i;
  }
  // New elements are value-initialised (T{}).
  void resize(size_t n) {
    reserve(n);
    for (size_t i = size_; i < n; ++i) data_[i] = T{};
    size_ = static_cast<uint32_t>(n);
  }
  void clear() { size_ = 0; }
  void shrink_to_fit() {
    if (capacity_ > size_) Reallocate(size_);
  }
  void swap(CompactVector& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  void Grow(size_t need) { Reallocate(std::max<size_t>(need, 2 * static_cast<size_t>(capacity_))); }
  void Reallocate(size_t capacity) {
    if (capacity > UINT32_MAX) throw std::length_error("CompactVector: more than 2^32 elements");
    if (capacity == 0) {
      std::free(data_);
      data_ = nullptr;
    } else {
      void* p = std::realloc(data_, capacity * sizeof(T));
      if (p == nullptr) throw std::bad_alloc();
      data_ = static_cast<T*>(p);
    }
    capacity_ = static_cast<uint32_t>(capacity);
  }
  void Assign(const T* from, size_t n) {
    if (n > capacity_) Reallocate(n);
    if (n > 0) std::memcpy(static_cast<void*>(data_), from, n * sizeof(T));
    size_ = static_cast<uint32_t>(n);
  }

  T* data_ = nullptr;
  uint32_t size_ = 0;
  uint32_t capacity_ = 0;
};

// An owning pointer that copies what it points to (so a class holding one stays copyable):
// 8 bytes for an object most instances never need.
template <typename T>
class CopyablePtr {
 public:
  CopyablePtr() = default;
  CopyablePtr(const CopyablePtr& other) : p_(other.p_ ? std::make_unique<T>(*other.p_) : nullptr) {}
  CopyablePtr(CopyablePtr&&) noexcept = default;
  CopyablePtr& operator=(const CopyablePtr& other) {
    if (this != &other) p_ = other.p_ ? std::make_unique<T>(*other.p_) : nullptr;
    return *this;
  }
  CopyablePtr& operator=(CopyablePtr&&) noexcept = default;
  explicit operator bool() const { return p_ != nullptr; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  void Emplace() { p_ = std::make_unique<T>(); }
  void Reset() { p_.reset(); }

 private:
  std::unique_ptr<T> p_;
};

}  // namespace shoal
