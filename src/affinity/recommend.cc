#include "affinity/recommend.h"

#include <algorithm>

#include "common/parallel.h"

namespace shoal::affinity {

RuleRecommender::RuleRecommender(const RuleSet& rules) : rules_(rules) {
  ItemId max_item = 0;
  for (ItemId id : rules.antecedent_items) max_item = std::max(max_item, id);
  bucket_offsets_.assign(static_cast<size_t>(max_item) + 2, 0);
  for (size_t rule = 0; rule < rules.size(); ++rule) {
    std::span<const ItemId> antecedent = rules.Antecedent(rule);
    if (antecedent.empty()) continue;
    ++bucket_offsets_[antecedent.front() + 1];  // antecedents are sorted: front() is smallest
  }
  for (size_t item = 1; item < bucket_offsets_.size(); ++item) {
    bucket_offsets_[item] += bucket_offsets_[item - 1];
  }
  bucket_rules_.resize(bucket_offsets_.back());
  std::vector<uint64_t> fill(bucket_offsets_.begin(), bucket_offsets_.end() - 1);
  for (size_t rule = 0; rule < rules.size(); ++rule) {
    std::span<const ItemId> antecedent = rules.Antecedent(rule);
    if (antecedent.empty()) {
      empty_antecedent_rules_.push_back(static_cast<uint32_t>(rule));
    } else {
      bucket_rules_[fill[antecedent.front()]++] = static_cast<uint32_t>(rule);
    }
  }
}

std::vector<Recommendation> RuleRecommender::Recommend(std::span<const ItemId> history,
                                                       std::span<const ItemId> replenishment,
                                                       const RecommendOptions& options) const {
  std::vector<ItemId> bought(history.begin(), history.end());
  std::sort(bought.begin(), bought.end());
  bought.erase(std::unique(bought.begin(), bought.end()), bought.end());
  std::vector<ItemId> again(replenishment.begin(), replenishment.end());
  std::sort(again.begin(), again.end());

  auto rule_score = [&](size_t rule) {
    switch (options.score) {
      case RecommendScore::kConfidence: return rules_.confidence[rule];
      case RecommendScore::kLift: return rules_.lift[rule];
      case RecommendScore::kConfidenceTimesLift: break;
    }
    return rules_.confidence[rule] * rules_.lift[rule];
  };
  // a before b when a is the better (item, rule) candidate.
  auto better = [&](const Recommendation& a, const Recommendation& b) {
    if (a.score != b.score) return a.score > b.score;
    if (rules_.confidence[a.rule] != rules_.confidence[b.rule]) {
      return rules_.confidence[a.rule] > rules_.confidence[b.rule];
    }
    if (rules_.counts[a.rule] != rules_.counts[b.rule]) {
      return rules_.counts[a.rule] > rules_.counts[b.rule];
    }
    if (a.item != b.item) return a.item < b.item;
    return a.rule < b.rule;
  };

  std::vector<Recommendation> candidates;
  auto fire = [&](size_t rule) {
    const double score = rule_score(rule);
    for (ItemId item : rules_.Consequent(rule)) {
      if (std::binary_search(bought.begin(), bought.end(), item) &&
          !std::binary_search(again.begin(), again.end(), item)) {
        continue;
      }
      candidates.push_back({item, score, rule});
    }
  };
  for (ItemId item : bought) {
    if (static_cast<size_t>(item) + 1 >= bucket_offsets_.size()) continue;
    for (uint64_t k = bucket_offsets_[item]; k < bucket_offsets_[item + 1]; ++k) {
      const uint32_t rule = bucket_rules_[k];
      std::span<const ItemId> antecedent = rules_.Antecedent(rule);
      if (std::includes(bought.begin(), bought.end(), antecedent.begin(), antecedent.end())) {
        fire(rule);
      }
    }
  }
  if (options.use_empty_antecedent) {
    for (uint32_t rule : empty_antecedent_rules_) fire(rule);
  }

  // Best candidate per item, then the items in ranking order.
  std::sort(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
    if (a.item != b.item) return a.item < b.item;
    return better(a, b);
  });
  candidates.erase(std::unique(candidates.begin(), candidates.end(),
                               [](const auto& a, const auto& b) { return a.item == b.item; }),
                   candidates.end());
  std::sort(candidates.begin(), candidates.end(), better);
  if (candidates.size() > options.top_n) candidates.resize(options.top_n);
  return candidates;
}

Result<std::vector<OverIndexedItem>> OverIndexedItems(const BasketStore& baskets,
                                                      std::span<const uint32_t> basket_segment,
                                                      uint32_t num_segments,
                                                      const OverIndexOptions& options,
                                                      const Context& ctx) {
  const size_t num_baskets = baskets.num_baskets();
  if (basket_segment.size() != num_baskets) {
    return Status::InvalidArgument("basket_segment has " + std::to_string(basket_segment.size()) +
                                   " labels for " + std::to_string(num_baskets) + " baskets");
  }
  for (size_t basket_idx = 0; basket_idx < num_baskets; ++basket_idx) {
    const uint32_t segment = basket_segment[basket_idx];
    if (segment != kNoSegment && segment >= num_segments) {
      return Status::InvalidArgument("basket " + std::to_string(basket_idx) + " has segment " +
                                     std::to_string(segment) + " >= " +
                                     std::to_string(num_segments));
    }
  }
  const size_t num_items = baskets.dictionary().size();
  // Row `num_segments` of each partial counts the whole population.
  const size_t rows = static_cast<size_t>(num_segments) + 1;
  const int workers = ParallelWorkers(num_baskets, ctx.Threads(), 65536);
  std::vector<std::vector<uint64_t>> partial_items(workers);
  std::vector<std::vector<uint64_t>> partial_baskets(workers);
  ParallelFor(
      num_baskets, workers,
      [&](size_t begin, size_t end, int worker) {
        std::vector<uint64_t>& item_counts = partial_items[worker];
        std::vector<uint64_t>& basket_counts = partial_baskets[worker];
        item_counts.assign(rows * num_items, 0);
        basket_counts.assign(rows, 0);
        for (size_t basket_idx = begin; basket_idx < end; ++basket_idx) {
          const uint32_t segment = basket_segment[basket_idx];
          ++basket_counts[num_segments];
          uint64_t* population_row = item_counts.data() + num_segments * num_items;
          for (ItemId item : baskets.Basket(basket_idx)) ++population_row[item];
          if (segment == kNoSegment) continue;
          ++basket_counts[segment];
          uint64_t* segment_row = item_counts.data() + segment * num_items;
          for (ItemId item : baskets.Basket(basket_idx)) ++segment_row[item];
        }
      },
      65536);
  std::vector<uint64_t> item_counts(rows * num_items, 0), basket_counts(rows, 0);
  for (int worker = 0; worker < workers; ++worker) {
    for (size_t k = 0; k < item_counts.size(); ++k) item_counts[k] += partial_items[worker][k];
    for (size_t k = 0; k < rows; ++k) basket_counts[k] += partial_baskets[worker][k];
  }

  std::vector<OverIndexedItem> result;
  const uint64_t* population_row = item_counts.data() + num_segments * num_items;
  const double total = static_cast<double>(num_baskets);
  std::vector<OverIndexedItem> segment_items;
  for (uint32_t segment = 0; segment < num_segments; ++segment) {
    segment_items.clear();
    const uint64_t segment_baskets = basket_counts[segment];
    const uint64_t* segment_row = item_counts.data() + segment * num_items;
    for (ItemId item = 0; item < num_items; ++item) {
      if (segment_row[item] < options.min_count || segment_row[item] == 0) continue;
      OverIndexedItem entry;
      entry.segment = segment;
      entry.item = item;
      entry.segment_count = segment_row[item];
      entry.segment_baskets = segment_baskets;
      entry.population_count = population_row[item];
      entry.segment_share = static_cast<double>(entry.segment_count) / segment_baskets;
      entry.population_share = entry.population_count / total;
      entry.lift = entry.segment_share / entry.population_share;
      segment_items.push_back(entry);
    }
    std::sort(segment_items.begin(), segment_items.end(), [](const auto& a, const auto& b) {
      if (a.lift != b.lift) return a.lift > b.lift;
      if (a.segment_count != b.segment_count) return a.segment_count > b.segment_count;
      return a.item < b.item;
    });
    if (segment_items.size() > options.top_n) segment_items.resize(options.top_n);
    result.insert(result.end(), segment_items.begin(), segment_items.end());
  }
  return result;
}

}  // namespace shoal::affinity
