// Internals of the shop generator: a fast counter-based random stream, an append-only text
// buffer with cheap number formatting, and the shared read-only model (catalogue, campaigns,
// calendar tables) every worker reads. Not part of the public API.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "generate/generate.h"

namespace shoal::generate_internal {

// SplitMix64 finaliser: a bijective 64-bit mix.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Seed of an independent stream `stream` for entity `idx` under `seed`.
inline uint64_t StreamSeed(uint64_t seed, uint64_t idx, uint64_t stream) {
  return Mix64(Mix64(seed ^ 0x5bd1e9955bd1e995ULL) ^ Mix64(idx * 0x9e3779b97f4a7c15ULL + stream));
}

// SplitMix64 generator: tiny state, passes BigCrush, and equal seeds give equal streams on every
// platform (only libm's log/exp/cos enter the derived distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [0, n); n > 0.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform integer in [lo, hi].
  int64_t Range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo + 1)));
  }
  bool Chance(double p) { return Uniform() < p; }
  double Normal() {
    double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  double Exponential(double mean) { return -mean * std::log(1.0 - Uniform()); }
  // Gamma(shape, 1) by Marsaglia-Tsang (shape < 1 via the U^(1/shape) boost).
  double Gamma(double shape) {
    if (shape < 1.0) return Gamma(shape + 1.0) * std::pow(1.0 - Uniform(), 1.0 / shape);
    double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x = Normal(), v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      double u = 1.0 - Uniform();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }
  // Poisson by inversion (small means only: the generator never asks for more than ~20).
  int Poisson(double mean) {
    double l = std::exp(-mean), p = 1.0;
    int k = 0;
    do {
      ++k;
      p *= Uniform();
    } while (p > l && k < 200);
    return k - 1;
  }
  // Index drawn from cumulative weights (last element = total).
  size_t Pick(const double* cumulative, size_t n) {
    double x = Uniform() * cumulative[n - 1];
    size_t idx = 0;
    while (idx + 1 < n && cumulative[idx] <= x) ++idx;
    return idx;
  }

 private:
  uint64_t state_;
};

// Append-only byte buffer: no per-field allocation, numbers via std::to_chars.
class TextBuffer {
 public:
  void Clear() { size_ = 0; }
  size_t size() const { return size_; }
  const char* data() const { return data_.get(); }
  std::string_view view() const { return {data_.get(), size_}; }
  void Reserve(size_t extra) {
    if (size_ + extra > capacity_) Grow(size_ + extra);
  }
  void Put(std::string_view s) {
    Reserve(s.size());
    std::memcpy(data_.get() + size_, s.data(), s.size());
    size_ += s.size();
  }
  void Put(char c) {
    Reserve(1);
    data_[size_++] = c;
  }
  void PutInt(int64_t v) {
    Reserve(24);
    auto res = std::to_chars(data_.get() + size_, data_.get() + size_ + 24, v);
    size_ = static_cast<size_t>(res.ptr - data_.get());
  }
  // Money held in cents, written as "12.34" (exact; "-0.50" for negatives).
  void PutCents(int64_t cents) {
    Reserve(26);
    if (cents < 0) {
      data_[size_++] = '-';
      cents = -cents;
    }
    PutInt(cents / 100);
    int64_t rem = cents % 100;
    data_[size_++] = '.';
    data_[size_++] = static_cast<char>('0' + rem / 10);
    data_[size_++] = static_cast<char>('0' + rem % 10);
  }
  void PutTwoDigits(int v) {
    Reserve(2);
    data_[size_++] = static_cast<char>('0' + v / 10);
    data_[size_++] = static_cast<char>('0' + v % 10);
  }
  // Drops everything after `new_size` (new_size <= size()).
  void Truncate(size_t new_size) { size_ = new_size; }

 private:
  void Grow(size_t need) {
    size_t cap = capacity_ ? capacity_ : 4096;
    while (cap < need) cap *= 2;
    std::unique_ptr<char[]> grown(new char[cap]);
    if (size_) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = cap;
  }
  std::unique_ptr<char[]> data_;
  size_t size_ = 0, capacity_ = 0;
};

// JSON string body escaping (quotes, backslashes, control characters).
std::string JsonEscape(std::string_view s);
// One CSV field per RFC 4180: quoted when it holds a comma, quote, CR or LF.
std::string CsvField(std::string_view s);

struct Product {
  std::string id;  // "P0001"
  uint16_t category = 0;
  int64_t price_cents = 0;
  int32_t launch_day = 0;  // window day from which it is sold
};

struct Category {
  std::string name, json_name, csv_name, slug;
  int group = 0;
  int32_t launch_day = 0;
  int64_t median_cents = 0;
  std::vector<uint32_t> by_price;  // product indices, cheapest first
  int affinity_target = -1;        // planted consequent category, or -1
  double affinity_probability = 0;
};

struct Campaign {
  std::string id;   // "promo-2024-11-29" / "news-2024-03-10"
  int32_t day = 0;  // window day it was sent
  bool promo = false;
};

struct SearchQuery {
  std::string json, csv;  // escaped forms
  int category = -1;      // category it looks for
};

// Everything shared and read-only during generation.
struct ShopModel {
  GenerateOptions options;
  int64_t start_epoch_day = 0;  // days since 1970-01-01 of window day 0
  int32_t days = 0;             // window length in days
  std::vector<Product> products;
  std::vector<Category> categories;
  std::vector<std::vector<int>> categories_of_group;  // [group] -> category indices
  std::vector<int> new_categories;                    // launched after day 0
  std::vector<Campaign> campaigns;                    // by day
  std::vector<SearchQuery> queries;
  std::vector<std::string> day_text;  // "YYYY-MM-DD" per window day
  std::vector<double> season_weight;  // per window day: 1, or higher in ISO weeks 47-51
  std::vector<double> season_cum;     // prefix sums of season_weight, size days + 1
  std::vector<double> hour_cum;       // cumulative weights of the 24 hours
  std::vector<double> segment_cum;    // cumulative normalised segment shares
  std::string currency_json, currency_csv;

  // Window day reached after `busy_days` of seasonally weighted time from day `from`
  // (a busy Q4 day counts more, so renewal processes run faster there). May exceed days-1.
  int32_t AdvanceSeasonal(int32_t from, double busy_days) const;
};

// Builds the model; InvalidArgument on bad options.
Result<std::unique_ptr<ShopModel>> BuildShopModel(const GenerateOptions& options);

}  // namespace shoal::generate_internal
