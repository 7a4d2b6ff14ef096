// Little binary encoding helpers: varints, zig-zag, fixed-width, length-prefixed strings.
// Writers append to a std::string; Reader decodes with bounds checks (a truncated or corrupt
// buffer makes ok() false; callers then return Status::Corruption).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace shoal {

constexpr size_t kMaxVarintBytes = 10;

// Writes v as a varint at p (room for kMaxVarintBytes); returns the end of what it wrote.
inline char* EncodeVarint(char* p, uint64_t v) {
  while (v >= 0x80) { *p++ = static_cast<char>(v | 0x80); v >>= 7; }
  *p++ = static_cast<char>(v);
  return p;
}
inline uint64_t ZigZagEncode(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline void PutVarint(std::string* out, uint64_t v) {
  char buf[kMaxVarintBytes];
  out->append(buf, static_cast<size_t>(EncodeVarint(buf, v) - buf));
}
inline void PutZigZag(std::string* out, int64_t v) { PutVarint(out, ZigZagEncode(v)); }
inline void PutFixed64(std::string* out, uint64_t v) { out->append(reinterpret_cast<const char*>(&v), 8); }
inline void PutDouble(std::string* out, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  PutFixed64(out, bits);
}
inline void PutString(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : p_(in.data()), end_(in.data() + in.size()) {}
  bool ok() const { return ok_; }
  bool AtEnd() const { return p_ >= end_; }
  size_t Remaining() const { return static_cast<size_t>(end_ - p_); }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) { ok_ = false; return 0; }
      uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }
  int64_t ZigZag() {
    uint64_t u = Varint();
    return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
  }
  uint64_t Fixed64() {
    if (Remaining() < 8) { ok_ = false; p_ = end_; return 0; }
    uint64_t v;
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  double Double() {
    uint64_t bits = Fixed64();
    double v;
    std::memcpy(&v, &bits, 8);
    return v;
  }
  std::string_view String() {
    uint64_t n = Varint();
    if (!ok_ || n > Remaining()) { ok_ = false; p_ = end_; return {}; }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  uint8_t Byte() {
    if (p_ >= end_) { ok_ = false; return 0; }
    return static_cast<uint8_t>(*p_++);
  }

 private:
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

}  // namespace shoal
