#include "traits/population_state.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ingest/event.h"
#include "traits/coding.h"

namespace shoal {

using traits_internal::PutSigned;
using traits_internal::StateReader;

namespace {
constexpr uint8_t kPopulationFormat = 1;
// Bins outside this range would be prices below e^-30 or above e^30: clamped (never in data).
constexpr int32_t kMinBin = -3000, kMaxBin = 3000;

int32_t BinOf(double price) {
  double bin = std::floor(std::log(price) / PopulationState::kLogPriceBinWidth);
  return static_cast<int32_t>(std::clamp(bin, double{kMinBin}, double{kMaxBin}));
}
}  // namespace

size_t PopulationState::StringHash::operator()(std::string_view s) const {
  return static_cast<size_t>(EventIdHash(s));
}

uint32_t PopulationState::CategoryId(std::string_view name) {
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  auto id = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ids_.emplace(names_.back(), id);
  prices_.emplace_back();
  return id;
}

int64_t PopulationState::FindCategory(std::string_view name) const {
  auto it = ids_.find(name);
  return it == ids_.end() ? -1 : static_cast<int64_t>(it->second);
}

std::string_view PopulationState::CategoryName(uint32_t id) const {
  return id < names_.size() ? std::string_view(names_[id]) : std::string_view();
}

void PopulationState::PriceHistogram::Add(int32_t bin, uint64_t n) {
  if (counts.empty()) {
    first_bin = bin;
    counts.assign(1, 0);
  } else if (bin < first_bin) {
    counts.insert(counts.begin(), static_cast<size_t>(first_bin - bin), 0);
    first_bin = bin;
  } else if (bin >= first_bin + static_cast<int32_t>(counts.size())) {
    counts.resize(static_cast<size_t>(bin - first_bin) + 1, 0);
  }
  counts[static_cast<size_t>(bin - first_bin)] += static_cast<uint32_t>(n);
  total += n;
}

void PopulationState::AddUnitPrice(uint32_t id, double unit_price) {
  if (id >= prices_.size() || !(unit_price > 0) || !std::isfinite(unit_price)) return;
  prices_[id].Add(BinOf(unit_price), 1);
}

void PopulationState::ObserveOrderLines(const Event& order, const EventBatch& batch) {
  for (const OrderLine& line : batch.Lines(order)) {
    if (!line.category.empty()) AddUnitPrice(CategoryId(line.category), line.unit_price);
  }
}

uint64_t PopulationState::CategoryPriceCount(uint32_t id) const {
  return id < prices_.size() ? prices_[id].total : 0;
}

double PopulationState::HistogramQuantileValue(const PriceHistogram& h, uint64_t rank) const {
  uint64_t seen = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    seen += h.counts[i];
    if (seen > rank) {
      return std::exp((static_cast<double>(h.first_bin + static_cast<int32_t>(i)) + 0.5) *
                      kLogPriceBinWidth);
    }
  }
  return std::numeric_limits<double>::quiet_NaN();  // unreachable for rank < total
}

double PopulationState::CategoryMedianPrice(uint32_t id) const {
  if (id >= prices_.size() || prices_[id].total == 0)
    return std::numeric_limits<double>::quiet_NaN();
  const PriceHistogram& h = prices_[id];
  double lo = HistogramQuantileValue(h, (h.total - 1) / 2);
  double hi = HistogramQuantileValue(h, h.total / 2);
  return 0.5 * (lo + hi);
}

std::vector<double> PopulationState::CategoryLogMedians() const {
  std::vector<double> out(prices_.size());
  for (uint32_t id = 0; id < prices_.size(); ++id) out[id] = std::log(CategoryMedianPrice(id));
  return out;
}

void PopulationState::Combine(const PopulationState& other, std::vector<uint32_t>* other_to_this) {
  if (other_to_this) other_to_this->assign(other.names_.size(), 0);
  for (uint32_t other_id = 0; other_id < other.names_.size(); ++other_id) {
    uint32_t id = CategoryId(other.names_[other_id]);
    if (other_to_this) (*other_to_this)[other_id] = id;
    const PriceHistogram& h = other.prices_[other_id];
    for (size_t i = 0; i < h.counts.size(); ++i) {
      if (h.counts[i]) prices_[id].Add(h.first_bin + static_cast<int32_t>(i), h.counts[i]);
    }
  }
}

void PopulationState::Serialize(std::string* out) const {
  out->push_back(static_cast<char>(kPopulationFormat));
  PutVarint(out, names_.size());
  for (uint32_t id = 0; id < names_.size(); ++id) {
    PutVarint(out, names_[id].size());
    out->append(names_[id]);
    const PriceHistogram& h = prices_[id];
    PutSigned(out, h.first_bin);
    PutVarint(out, h.counts.size());
    for (uint32_t c : h.counts) PutVarint(out, c);
  }
}

Status PopulationState::Deserialize(std::string_view in) {
  *this = PopulationState();
  StateReader r(in);
  auto bad = [this](const char* what) {
    *this = PopulationState();
    return Status::Corruption(std::string("population state: ") + what);
  };
  uint8_t format;
  if (!r.Byte(&format) || format != kPopulationFormat) return bad("unknown format");
  uint64_t n;
  if (!r.Count(&n, 3)) return bad("truncated category count");
  for (uint64_t id = 0; id < n; ++id) {
    uint64_t len;
    std::string_view name;
    if (!r.Varint(&len) || !r.Bytes(len, &name)) return bad("truncated category name");
    if (FindCategory(name) >= 0) return bad("duplicate category name");
    uint32_t new_id = CategoryId(name);
    int64_t first_bin;
    uint64_t bins;
    if (!r.Signed(&first_bin) || !r.Count(&bins) || first_bin < kMinBin ||
        first_bin + static_cast<int64_t>(bins) > kMaxBin + 1) {
      return bad("bad price histogram");
    }
    PriceHistogram& h = prices_[new_id];
    h.first_bin = static_cast<int32_t>(first_bin);
    h.counts.resize(bins);
    for (uint64_t b = 0; b < bins; ++b) {
      if (!r.Varint32(&h.counts[b])) return bad("truncated price histogram");
      h.total += h.counts[b];
    }
  }
  if (!r.done()) return bad("trailing bytes");
  return Status::OK();
}

size_t PopulationState::MemoryBytes() const {
  size_t bytes = sizeof(*this) + names_.capacity() * sizeof(std::string) +
                 prices_.capacity() * sizeof(PriceHistogram) +
                 ids_.size() * (sizeof(std::string) + sizeof(uint32_t) + 2 * sizeof(void*)) +
                 ids_.bucket_count() * sizeof(void*);
  for (const auto& name : names_) bytes += 2 * name.capacity();  // names_ and ids_ keys
  for (const auto& h : prices_) bytes += h.counts.capacity() * sizeof(uint32_t);
  return bytes;
}

}  // namespace shoal
