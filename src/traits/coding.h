// Internal: varint / fixed-width encoding for the traits module's compact binary states.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/coding.h"

namespace shoal::traits_internal {

// The states are written with common/coding.h's writers (PutVarint, PutFixed64, PutDouble)
// and PutSigned below; StateReader reports a truncated or malformed field as false, which the
// states' decoders check field by field.
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}
inline void PutSigned(std::string* out, int64_t v) { PutZigZag(out, v); }

// Reads from a byte range; every getter returns false on truncated or malformed input and
// then leaves the reader failed.
class StateReader {
 public:
  explicit StateReader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (p_ >= end_) return false;
      uint64_t byte = static_cast<unsigned char>(*p_++);
      if (shift == 63 && byte > 1) return false;
      result |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  bool Varint32(uint32_t* v) {
    uint64_t x;
    if (!Varint(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool Signed(int64_t* v) {
    uint64_t x;
    if (!Varint(&x)) return false;
    *v = UnZigZag(x);
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (end_ - p_ < 8) return false;
    std::memcpy(v, p_, 8);
    p_ += 8;
    return true;
  }
  bool Double(double* v) {
    uint64_t bits;
    if (!Fixed64(&bits)) return false;
    std::memcpy(v, &bits, 8);
    return true;
  }
  bool Byte(uint8_t* v) {
    if (p_ >= end_) return false;
    *v = static_cast<uint8_t>(*p_++);
    return true;
  }
  bool Bytes(size_t n, std::string_view* v) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    *v = std::string_view(p_, n);
    p_ += n;
    return true;
  }
  // A count of following items each at least `min_item_bytes` long: rejects counts the input
  // cannot hold, so corrupt input never triggers a huge allocation.
  bool Count(uint64_t* n, size_t min_item_bytes = 1) {
    if (!Varint(n)) return false;
    return *n <= remaining() / (min_item_bytes ? min_item_bytes : 1);
  }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool done() const { return p_ == end_; }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace shoal::traits_internal
