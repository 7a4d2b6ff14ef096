#include "affinity/rules.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <numeric>

#include "common/parallel.h"

namespace shoal::affinity {

double RuleSet::Measure(RuleMeasure measure, size_t rule) const {
  switch (measure) {
    case RuleMeasure::kSupport: return support[rule];
    case RuleMeasure::kConfidence: return confidence[rule];
    case RuleMeasure::kLift: return lift[rule];
    case RuleMeasure::kLeverage: return leverage[rule];
    case RuleMeasure::kConviction: return conviction[rule];
  }
  return 0.0;
}

std::vector<uint64_t> RuleSet::CountByLength() const {
  std::vector<uint64_t> by_length(1, 0);
  for (size_t rule = 0; rule < size(); ++rule) {
    size_t length = Length(rule);
    if (by_length.size() <= length) by_length.resize(length + 1, 0);
    ++by_length[length];
  }
  return by_length;
}

void RuleSet::AppendFrom(const RuleSet& other, size_t rule) {
  std::span<const ItemId> antecedent = other.Antecedent(rule);
  std::span<const ItemId> consequent = other.Consequent(rule);
  antecedent_items.insert(antecedent_items.end(), antecedent.begin(), antecedent.end());
  antecedent_offsets.push_back(antecedent_items.size());
  consequent_items.insert(consequent_items.end(), consequent.begin(), consequent.end());
  consequent_offsets.push_back(consequent_items.size());
  counts.push_back(other.counts[rule]);
  antecedent_counts.push_back(other.antecedent_counts[rule]);
  consequent_counts.push_back(other.consequent_counts[rule]);
  support.push_back(other.support[rule]);
  confidence.push_back(other.confidence[rule]);
  lift.push_back(other.lift[rule]);
  leverage.push_back(other.leverage[rule]);
  conviction.push_back(other.conviction[rule]);
}

namespace {

constexpr uint32_t kEmptySlot = std::numeric_limits<uint32_t>::max();

uint64_t HashItems(std::span<const ItemId> items) {
  uint64_t hash = 0x9e3779b97f4a7c15ULL ^ items.size();
  for (ItemId id : items) {
    hash ^= id + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2);
    hash *= 0xff51afd7ed558ccdULL;
  }
  return hash ^ (hash >> 33);
}

// Itemset -> count lookup over a FrequentItemsets (open addressing on itemset indices).
class ItemsetIndex {
 public:
  explicit ItemsetIndex(const FrequentItemsets& itemsets) : itemsets_(itemsets) {
    size_t capacity = 16;
    while (capacity < itemsets.size() * 2) capacity <<= 1;
    slots_.assign(capacity, kEmptySlot);
    mask_ = capacity - 1;
    for (uint32_t k = 0; k < itemsets.size(); ++k) {
      size_t slot = HashItems(itemsets.Itemset(k)) & mask_;
      while (slots_[slot] != kEmptySlot) slot = (slot + 1) & mask_;
      slots_[slot] = k;
    }
  }
  // Count of `items` (sorted ascending), or 0 when absent.
  uint64_t Count(std::span<const ItemId> items) const {
    size_t slot = HashItems(items) & mask_;
    while (slots_[slot] != kEmptySlot) {
      std::span<const ItemId> candidate = itemsets_.Itemset(slots_[slot]);
      if (std::equal(candidate.begin(), candidate.end(), items.begin(), items.end())) {
        return itemsets_.counts[slots_[slot]];
      }
      slot = (slot + 1) & mask_;
    }
    return 0;
  }

 private:
  const FrequentItemsets& itemsets_;
  std::vector<uint32_t> slots_;
  size_t mask_ = 0;
};

// Appends one rule (already filtered) with its measures.
void PushRule(RuleSet* out, std::span<const ItemId> antecedent, std::span<const ItemId> consequent,
              uint64_t count, uint64_t antecedent_count, uint64_t consequent_count,
              double confidence, double lift) {
  const double n = static_cast<double>(out->num_baskets);
  const double support = count / n;
  const double consequent_support = consequent_count / n;
  out->antecedent_items.insert(out->antecedent_items.end(), antecedent.begin(), antecedent.end());
  out->antecedent_offsets.push_back(out->antecedent_items.size());
  out->consequent_items.insert(out->consequent_items.end(), consequent.begin(), consequent.end());
  out->consequent_offsets.push_back(out->consequent_items.size());
  out->counts.push_back(count);
  out->antecedent_counts.push_back(antecedent_count);
  out->consequent_counts.push_back(consequent_count);
  out->support.push_back(support);
  out->confidence.push_back(confidence);
  out->lift.push_back(lift);
  out->leverage.push_back(support - (antecedent_count / n) * consequent_support);
  out->conviction.push_back(count == antecedent_count
                                ? std::numeric_limits<double>::infinity()
                                : (1.0 - consequent_support) / (1.0 - confidence));
}

// Generates the rules of itemsets [begin, end) into *out.
Status RulesForRange(const FrequentItemsets& itemsets, const ItemsetIndex& index,
                     const RuleOptions& options, size_t begin, size_t end, RuleSet* out) {
  const uint64_t n = itemsets.num_baskets;
  const double confidence_floor = options.min_confidence * (1.0 - 1e-12);
  std::vector<ItemId> antecedent, consequent;
  std::vector<uint32_t> chosen;  // positions of the consequent within the itemset
  for (size_t k = begin; k < end; ++k) {
    std::span<const ItemId> set = itemsets.Itemset(k);
    const size_t length = set.size();
    if (length < options.min_length || length > options.max_length || length == 0) continue;
    const uint64_t count = itemsets.counts[k];
    if (length == 1) {  // {} => {y}
      const double confidence = static_cast<double>(count) / n;
      if (confidence >= confidence_floor && 1.0 >= options.min_lift) {
        PushRule(out, {}, set, count, n, count, confidence, 1.0);
      }
      continue;
    }
    const size_t max_consequent = std::min<size_t>(options.max_consequent_length, length - 1);
    for (size_t consequent_size = 1; consequent_size <= max_consequent; ++consequent_size) {
      chosen.resize(consequent_size);
      std::iota(chosen.begin(), chosen.end(), 0u);
      while (true) {
        antecedent.clear();
        consequent.clear();
        size_t next_chosen = 0;
        for (uint32_t pos = 0; pos < length; ++pos) {
          if (next_chosen < consequent_size && chosen[next_chosen] == pos) {
            consequent.push_back(set[pos]);
            ++next_chosen;
          } else {
            antecedent.push_back(set[pos]);
          }
        }
        const uint64_t antecedent_count = index.Count(antecedent);
        const uint64_t consequent_count = index.Count(consequent);
        if (antecedent_count == 0 || consequent_count == 0) {
          return Status::InvalidArgument("itemsets are not closed under subsets: a subset of "
                                         "itemset " + std::to_string(k) + " is missing");
        }
        const double confidence = static_cast<double>(count) / antecedent_count;
        if (confidence >= confidence_floor) {
          const double lift = confidence * n / consequent_count;
          if (lift >= options.min_lift) {
            PushRule(out, antecedent, consequent, count, antecedent_count, consequent_count,
                     confidence, lift);
          }
        }
        // Next combination of consequent positions in lexicographic order.
        size_t slot = consequent_size;
        while (slot > 0 && chosen[slot - 1] == length - consequent_size + slot - 1) --slot;
        if (slot == 0) break;
        ++chosen[slot - 1];
        for (size_t later = slot; later < consequent_size; ++later) {
          chosen[later] = chosen[later - 1] + 1;
        }
      }
    }
  }
  return Status::OK();
}

}  // namespace

Result<RuleSet> GenerateRules(const FrequentItemsets& itemsets, const RuleOptions& options,
                              const Context& ctx) {
  if (!(options.min_confidence >= 0.0 && options.min_confidence <= 1.0)) {
    return Status::InvalidArgument("min_confidence must be in [0, 1]");
  }
  if (!(options.min_lift >= 0.0)) return Status::InvalidArgument("min_lift must be >= 0");
  if (options.max_consequent_length < 1) {
    return Status::InvalidArgument("max_consequent_length must be >= 1");
  }
  RuleSet result;
  result.num_baskets = itemsets.num_baskets;
  if (itemsets.num_baskets == 0 || itemsets.size() == 0) return result;
  const ItemsetIndex index(itemsets);
  const int workers = ParallelWorkers(itemsets.size(), ctx.Threads(), 2048);
  std::vector<RuleSet> parts(workers);
  std::vector<Status> statuses(workers);
  ParallelFor(
      itemsets.size(), workers,
      [&](size_t begin, size_t end, int worker) {
        parts[worker].num_baskets = itemsets.num_baskets;
        statuses[worker] = RulesForRange(itemsets, index, options, begin, end, &parts[worker]);
      },
      2048);
  for (const Status& status : statuses) SHOAL_RETURN_IF_ERROR(status);
  if (workers == 1) return std::move(parts[0]);
  for (const RuleSet& part : parts) {
    for (size_t rule = 0; rule < part.size(); ++rule) result.AppendFrom(part, rule);
  }
  return result;
}

void SortRules(RuleSet* rules, RuleMeasure measure) {
  std::vector<uint32_t> order(rules->size());
  std::iota(order.begin(), order.end(), 0u);
  const RuleSet& r = *rules;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const double ma = r.Measure(measure, a), mb = r.Measure(measure, b);
    if (ma != mb) return ma > mb;
    if (r.counts[a] != r.counts[b]) return r.counts[a] > r.counts[b];
    if (r.confidence[a] != r.confidence[b]) return r.confidence[a] > r.confidence[b];
    if (r.Length(a) != r.Length(b)) return r.Length(a) < r.Length(b);
    std::span<const ItemId> xa = r.Antecedent(a), xb = r.Antecedent(b);
    if (!std::equal(xa.begin(), xa.end(), xb.begin(), xb.end())) {
      return std::lexicographical_compare(xa.begin(), xa.end(), xb.begin(), xb.end());
    }
    std::span<const ItemId> ya = r.Consequent(a), yb = r.Consequent(b);
    return std::lexicographical_compare(ya.begin(), ya.end(), yb.begin(), yb.end());
  });
  RuleSet sorted;
  sorted.num_baskets = r.num_baskets;
  for (uint32_t rule : order) sorted.AppendFrom(r, rule);
  *rules = std::move(sorted);
}

std::string FormatItemset(std::span<const ItemId> items, const ItemDictionary& dictionary) {
  std::vector<const std::string*> labels;
  labels.reserve(items.size());
  for (ItemId id : items) labels.push_back(&dictionary.Label(id));
  std::sort(labels.begin(), labels.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  std::string text = "{";
  for (size_t k = 0; k < labels.size(); ++k) {
    if (k > 0) text += ", ";
    text += *labels[k];
  }
  text += "}";
  return text;
}

std::string FormatRule(const RuleSet& rules, size_t rule, const ItemDictionary& dictionary) {
  return FormatItemset(rules.Antecedent(rule), dictionary) + " => " +
         FormatItemset(rules.Consequent(rule), dictionary);
}

std::string FormatMeasure(double value, int digits) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (std::isnan(value)) return "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*g", digits, value);
  return buffer;
}

}  // namespace shoal::affinity
