#include "affinity/fpgrowth.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <thread>

#include "common/parallel.h"

namespace shoal::affinity {

std::vector<uint64_t> FrequentItemsets::CountByLength() const {
  std::vector<uint64_t> by_length(1, 0);
  for (size_t k = 0; k < size(); ++k) {
    size_t length = offsets[k + 1] - offsets[k];
    if (by_length.size() <= length) by_length.resize(length + 1, 0);
    ++by_length[length];
  }
  return by_length;
}

void FrequentItemsets::SortCanonical() {
  std::vector<uint32_t> order(size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [this](uint32_t a, uint32_t b) {
    std::span<const ItemId> sa = Itemset(a), sb = Itemset(b);
    if (sa.size() != sb.size()) return sa.size() < sb.size();
    return std::lexicographical_compare(sa.begin(), sa.end(), sb.begin(), sb.end());
  });
  std::vector<uint64_t> new_offsets = {0};
  std::vector<ItemId> new_items;
  std::vector<uint64_t> new_counts;
  new_offsets.reserve(offsets.size());
  new_items.reserve(items.size());
  new_counts.reserve(counts.size());
  for (uint32_t k : order) {
    std::span<const ItemId> set = Itemset(k);
    new_items.insert(new_items.end(), set.begin(), set.end());
    new_offsets.push_back(new_items.size());
    new_counts.push_back(counts[k]);
  }
  offsets = std::move(new_offsets);
  items = std::move(new_items);
  counts = std::move(new_counts);
}

uint64_t MinSupportCount(double fraction, uint64_t num_baskets) {
  const double exact = fraction * static_cast<double>(num_baskets);
  const double count = std::ceil(exact - 1e-9 * std::max(1.0, exact));
  return count < 1.0 ? 1 : static_cast<uint64_t>(count);
}

namespace {

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

// One FP-tree node. Node 0 is the root; its item is kNone.
struct Node {
  uint32_t item;          // local item index in the tree
  uint32_t parent;        // node index, 0 = root
  uint32_t count;         // baskets (weights) through this node
  uint32_t first_child;   // kNone = leaf
  uint32_t next_sibling;  // next child of the same parent, kNone = last
  uint32_t next_same;     // next node holding the same item, kNone = last
};

// An FP-tree over local items 0 .. num_items - 1, where a smaller index is a more frequent item
// (the global descending-support order restricted to the tree's items). Cleared and refilled
// in place, so a workspace tree keeps its capacity across uses.
struct FpTree {
  uint32_t num_items = 0;
  std::vector<Node> nodes;
  std::vector<uint32_t> head;          // per item: first node of its chain
  std::vector<uint32_t> item_support;  // per item: sum of its node counts
  std::vector<uint32_t> root_child;    // per item: root's child holding it (direct lookup)
  std::vector<uint32_t> local_to_rank;  // per item: its global rank
  bool single_path = true;

  void Reset(uint32_t items) {
    num_items = items;
    nodes.clear();
    nodes.push_back({kNone, 0, 0, kNone, kNone, kNone});
    head.assign(items, kNone);
    item_support.assign(items, 0);
    root_child.assign(items, kNone);
    local_to_rank.resize(items);
    single_path = true;
  }

  uint32_t AddChild(uint32_t parent, uint32_t item, uint32_t weight) {
    const uint32_t node = static_cast<uint32_t>(nodes.size());
    Node& p = nodes[parent];
    if (p.first_child != kNone) single_path = false;
    const uint32_t sibling = p.first_child;
    p.first_child = node;  // newest child first: the next path usually continues it
    nodes.push_back({item, parent, weight, kNone, sibling, head[item]});
    head[item] = node;
    return node;
  }

  // Inserts a path of local items in strictly ascending order with the given weight.
  void Insert(const uint32_t* path, size_t length, uint32_t weight) {
    if (length == 0) return;
    uint32_t item = path[0];
    uint32_t node = root_child[item];
    if (node == kNone) {
      node = AddChild(0, item, weight);
      root_child[item] = node;
    } else {
      nodes[node].count += weight;
    }
    item_support[item] += weight;
    for (size_t pos = 1; pos < length; ++pos) {
      item = path[pos];
      uint32_t child = nodes[node].first_child;
      while (child != kNone && nodes[child].item != item) child = nodes[child].next_sibling;
      if (child == kNone) {
        child = AddChild(node, item, weight);
      } else {
        nodes[child].count += weight;
      }
      item_support[item] += weight;
      node = child;
    }
  }
};

// Itemsets found under one top-level item, in emission order.
struct Chunk {
  std::vector<ItemId> items;
  std::vector<uint32_t> lengths;
  std::vector<uint64_t> counts;
};

// Mines conditional trees depth-first for one worker. Not thread-safe; one per worker.
class Miner {
 public:
  Miner(const std::vector<ItemId>& rank_to_item, uint32_t min_count, uint32_t max_length,
        uint32_t num_ranks)
      : rank_to_item_(rank_to_item), min_count_(min_count), max_length_(max_length) {
    item_counts_.resize(num_ranks);
    new_local_.resize(num_ranks);
  }

  // Emits prefix + {item} and everything that extends it in `tree`, into *out.
  void MineItem(const FpTree& tree, uint32_t item, size_t depth, Chunk* out) {
    out_ = out;
    prefix_.push_back(tree.local_to_rank[item]);
    Emit(tree.item_support[item]);
    if (max_length_ == 0 || prefix_.size() < max_length_) {
      FpTree& conditional = Workspace(depth + 1);
      if (BuildConditional(tree, item, &conditional)) MineTree(conditional, depth + 1);
    }
    prefix_.pop_back();
  }

  // A top-level item: its conditional pattern base is read straight from the rank-sorted baskets
  // (`prefixes` lists, for each basket holding `rank` at position p >= 1, the basket's start in
  // `flat` and p), so the global tree is never built or walked.
  void MineTopLevel(uint32_t rank, uint64_t support, const std::vector<uint32_t>& flat,
                    std::span<const uint64_t> starts, std::span<const uint32_t> lengths,
                    Chunk* out) {
    out_ = out;
    prefix_.push_back(rank);
    Emit(support);
    if (max_length_ == 0 || prefix_.size() < max_length_) {
      for (size_t k = 0; k < starts.size(); ++k) {
        const uint32_t* basket = flat.data() + starts[k];
        for (uint32_t pos = 0; pos < lengths[k]; ++pos) CountItem(basket[pos], 1);
      }
      FpTree& conditional = Workspace(1);
      if (AssignFrequent(rank, nullptr, &conditional) > 0) {
        for (size_t k = 0; k < starts.size(); ++k) {
          const uint32_t* basket = flat.data() + starts[k];
          path_.clear();
          for (uint32_t pos = 0; pos < lengths[k]; ++pos) {
            const uint32_t mapped = new_local_[basket[pos]];
            if (mapped != kNone) path_.push_back(mapped);
          }
          conditional.Insert(path_.data(), path_.size(), 1);
        }
        MineTree(conditional, 1);
      }
    }
    prefix_.pop_back();
  }

  // Emits every frequent extension of the current prefix found in `tree`.
  void MineTree(const FpTree& tree, size_t depth) {
    if (tree.single_path) {
      EmitPathSubsets(tree, 1);
      return;
    }
    for (uint32_t item = tree.num_items; item-- > 0;) MineItem(tree, item, depth, out_);
  }

 private:
  FpTree& Workspace(size_t depth) {
    while (trees_.size() <= depth) trees_.push_back(std::make_unique<FpTree>());
    return *trees_[depth];
  }

  // Adds `weight` to a local item's count; item_counts_ is all zero between uses, so a zero
  // count marks an item not yet touched.
  void CountItem(uint32_t local, uint32_t weight) {
    if (item_counts_[local] == 0) touched_.push_back(local);
    item_counts_[local] += weight;
  }

  // After counting items below `range`: numbers those reaching min_count in ascending order
  // (new_local_; kNone for the others counted), and if any, resets *conditional to them with
  // local_to_rank taken through `rank_of` (nullptr: identity). Leaves item_counts_ zero and
  // touched_ empty. Costs O(range) when most of the range was touched, else O(t log t) for the
  // t touched items, so sparse bases over many items are not quadratic in the item count.
  uint32_t AssignFrequent(uint32_t range, const uint32_t* rank_of, FpTree* conditional) {
    uint32_t num_frequent = 0;
    const bool dense = touched_.size() * 8 >= range;
    auto number = [&](uint32_t local) {
      new_local_[local] = item_counts_[local] >= min_count_ ? num_frequent++ : kNone;
      item_counts_[local] = 0;
    };
    if (dense) {
      for (uint32_t local = 0; local < range; ++local) number(local);
    } else {
      std::sort(touched_.begin(), touched_.end());
      for (uint32_t local : touched_) number(local);
    }
    if (num_frequent > 0) {
      conditional->Reset(num_frequent);
      auto map = [&](uint32_t local) {
        if (new_local_[local] != kNone) {
          conditional->local_to_rank[new_local_[local]] = rank_of ? rank_of[local] : local;
        }
      };
      if (dense) {
        for (uint32_t local = 0; local < range; ++local) map(local);
      } else {
        for (uint32_t local : touched_) map(local);
      }
    }
    touched_.clear();
    return num_frequent;
  }

  // Builds the conditional tree of `item` (its prefix paths, infrequent items dropped) into
  // *conditional. Returns false when no item of the prefix paths is frequent.
  bool BuildConditional(const FpTree& tree, uint32_t item, FpTree* conditional) {
    const std::vector<Node>& nodes = tree.nodes;
    for (uint32_t node = tree.head[item]; node != kNone; node = nodes[node].next_same) {
      const uint32_t weight = nodes[node].count;
      for (uint32_t up = nodes[node].parent; up != 0; up = nodes[up].parent) {
        CountItem(nodes[up].item, weight);
      }
    }
    if (AssignFrequent(item, tree.local_to_rank.data(), conditional) == 0) return false;
    for (uint32_t node = tree.head[item]; node != kNone; node = nodes[node].next_same) {
      path_.clear();
      for (uint32_t up = nodes[node].parent; up != 0; up = nodes[up].parent) {
        const uint32_t mapped = new_local_[nodes[up].item];
        if (mapped != kNone) path_.push_back(mapped);
      }
      std::reverse(path_.begin(), path_.end());
      conditional->Insert(path_.data(), path_.size(), nodes[node].count);
    }
    return true;
  }

  // A single-path tree: every subset of the path nodes from `first_node` on is frequent, with
  // the count of its deepest node. Nodes of a single path are numbered top-down from 1.
  void EmitPathSubsets(const FpTree& tree, uint32_t first_node) {
    for (uint32_t node = first_node; node < tree.nodes.size(); ++node) {
      const Node& n = tree.nodes[node];
      if (n.count < min_count_) return;  // counts only fall further down the path
      prefix_.push_back(tree.local_to_rank[n.item]);
      Emit(n.count);
      if (max_length_ == 0 || prefix_.size() < max_length_) EmitPathSubsets(tree, node + 1);
      prefix_.pop_back();
    }
  }

  void Emit(uint64_t count) {
    const size_t start = out_->items.size();
    for (uint32_t rank : prefix_) out_->items.push_back(rank_to_item_[rank]);
    std::sort(out_->items.begin() + static_cast<std::ptrdiff_t>(start), out_->items.end());
    out_->lengths.push_back(static_cast<uint32_t>(prefix_.size()));
    out_->counts.push_back(count);
  }

  const std::vector<ItemId>& rank_to_item_;
  const uint32_t min_count_;
  const uint32_t max_length_;
  std::vector<std::unique_ptr<FpTree>> trees_;  // trees_[d]: workspace at depth d
  std::vector<uint32_t> prefix_;                // global ranks of the current prefix
  std::vector<uint32_t> item_counts_;           // scratch: per local item support, kept zero
  std::vector<uint32_t> touched_;               // scratch: items with a non-zero count
  std::vector<uint32_t> new_local_;             // scratch: local -> conditional local
  std::vector<uint32_t> path_;                  // scratch: one prefix path
  Chunk* out_ = nullptr;
};

}  // namespace

Result<FrequentItemsets> MineFrequentItemsets(const BasketStore& baskets,
                                              const FpGrowthOptions& options, const Context& ctx) {
  const uint64_t num_baskets = baskets.num_baskets();
  if (options.min_support_count == 0 &&
      !(options.min_support > 0.0 && options.min_support <= 1.0)) {
    return Status::InvalidArgument("min_support must be in (0, 1] or min_support_count > 0");
  }
  if (num_baskets >= kNone) {
    return Status::InvalidArgument("more than 2^32 - 2 baskets are not supported");
  }
  FrequentItemsets result;
  result.num_baskets = num_baskets;
  result.min_count = options.min_support_count > 0
                         ? options.min_support_count
                         : MinSupportCount(options.min_support, num_baskets);
  if (result.min_count > num_baskets) return result;
  const uint32_t min_count = static_cast<uint32_t>(result.min_count);

  // Relabel: frequent items by descending count, ties by ascending id.
  const std::vector<uint64_t> item_counts = baskets.ItemCounts();
  std::vector<ItemId> rank_to_item;
  for (ItemId id = 0; id < item_counts.size(); ++id) {
    if (item_counts[id] >= min_count) rank_to_item.push_back(id);
  }
  std::sort(rank_to_item.begin(), rank_to_item.end(), [&](ItemId a, ItemId b) {
    return item_counts[a] != item_counts[b] ? item_counts[a] > item_counts[b] : a < b;
  });
  const uint32_t num_ranks = static_cast<uint32_t>(rank_to_item.size());
  if (num_ranks == 0) return result;
  std::vector<uint32_t> item_to_rank(item_counts.size(), kNone);
  for (uint32_t rank = 0; rank < num_ranks; ++rank) item_to_rank[rank_to_item[rank]] = rank;

  // Each basket's frequent items as ranks, ascending, in one flat array (baskets with fewer
  // than two frequent items add nothing beyond the item counts and are left out). Then, per
  // rank, where it occurs at a position >= 1: the basket start and that position. Built by
  // contiguous basket ranges per worker and laid out in range order, so the arrays equal the
  // one-thread ones.
  const int prep_workers = ParallelWorkers(num_baskets, ctx.Threads(), 1 << 16);
  struct RangePart {
    std::vector<uint32_t> flat;
    std::vector<uint64_t> starts;        // basket starts within this part's flat
    std::vector<uint64_t> occurrences;   // per rank: positions >= 1 in this part
    uint64_t flat_base = 0;              // where this part's flat begins globally
  };
  std::vector<RangePart> parts(prep_workers);
  ParallelFor(
      num_baskets, prep_workers,
      [&](size_t begin, size_t end, int worker) {
        RangePart& part = parts[worker];
        part.occurrences.assign(num_ranks, 0);
        part.flat.reserve(baskets.offsets()[end] - baskets.offsets()[begin]);
        for (size_t basket_idx = begin; basket_idx < end; ++basket_idx) {
          const size_t start = part.flat.size();
          for (ItemId id : baskets.Basket(basket_idx)) {
            if (item_to_rank[id] != kNone) part.flat.push_back(item_to_rank[id]);
          }
          if (part.flat.size() - start < 2) {
            part.flat.resize(start);
            continue;
          }
          std::sort(part.flat.begin() + static_cast<std::ptrdiff_t>(start), part.flat.end());
          part.starts.push_back(start);
          for (size_t pos = start + 1; pos < part.flat.size(); ++pos) {
            ++part.occurrences[part.flat[pos]];
          }
        }
      },
      1 << 16);
  std::vector<uint64_t> occurrences(num_ranks + 1, 0);
  // fill_from[worker][rank]: the first slot of rank `rank` that worker writes.
  std::vector<std::vector<uint64_t>> fill_from(prep_workers, std::vector<uint64_t>(num_ranks));
  {
    uint64_t slot = 0;
    for (uint32_t rank = 0; rank < num_ranks; ++rank) {
      occurrences[rank] = slot;
      for (int worker = 0; worker < prep_workers; ++worker) {
        fill_from[worker][rank] = slot;
        slot += parts[worker].occurrences[rank];
      }
    }
    occurrences[num_ranks] = slot;
  }
  std::vector<uint32_t> flat;
  {
    size_t total = 0;
    for (RangePart& part : parts) {
      part.flat_base = total;
      total += part.flat.size();
    }
    flat.resize(total);
  }
  std::vector<uint64_t> prefix_starts(occurrences.back());
  std::vector<uint32_t> prefix_lengths(occurrences.back());
  ParallelFor(
      static_cast<size_t>(prep_workers), prep_workers,
      [&](size_t begin, size_t end, int) {
        for (size_t worker = begin; worker < end; ++worker) {
          RangePart& part = parts[worker];
          std::copy(part.flat.begin(), part.flat.end(),
                    flat.begin() + static_cast<std::ptrdiff_t>(part.flat_base));
          std::vector<uint64_t>& fill = fill_from[worker];
          for (size_t k = 0; k < part.starts.size(); ++k) {
            const uint64_t start = part.starts[k];
            const uint64_t end_pos = k + 1 < part.starts.size() ? part.starts[k + 1]
                                                                : part.flat.size();
            for (uint64_t pos = start + 1; pos < end_pos; ++pos) {
              const uint64_t slot = fill[part.flat[pos]]++;
              prefix_starts[slot] = part.flat_base + start;
              prefix_lengths[slot] = static_cast<uint32_t>(pos - start);
            }
          }
          std::vector<uint32_t>().swap(part.flat);
        }
      },
      1);

  // Top-level items are independent tasks; each writes its own chunk.
  std::vector<Chunk> chunks(num_ranks);
  const int workers = std::max(1, std::min<int>(ctx.Threads(), static_cast<int>(num_ranks)));
  std::atomic<uint32_t> next_task{0};
  auto work = [&]() {
    Miner miner(rank_to_item, min_count, options.max_length, num_ranks);
    while (true) {
      const uint32_t task = next_task.fetch_add(1, std::memory_order_relaxed);
      if (task >= num_ranks) break;
      const uint32_t rank = num_ranks - 1 - task;  // least frequent (largest base) first
      const size_t begin = occurrences[rank], end = occurrences[rank + 1];
      miner.MineTopLevel(rank, item_counts[rank_to_item[rank]], flat,
                         std::span<const uint64_t>(prefix_starts).subspan(begin, end - begin),
                         std::span<const uint32_t>(prefix_lengths).subspan(begin, end - begin),
                         &chunks[rank]);
    }
  };
  if (workers == 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (std::thread& thread : pool) thread.join();
  }

  // Merge in a fixed order (least frequent top-level item first), independent of scheduling.
  size_t total_sets = 0, total_items = 0;
  for (const Chunk& chunk : chunks) {
    total_sets += chunk.counts.size();
    total_items += chunk.items.size();
  }
  result.offsets.reserve(total_sets + 1);
  result.items.reserve(total_items);
  result.counts.reserve(total_sets);
  for (uint32_t item = num_ranks; item-- > 0;) {
    const Chunk& chunk = chunks[item];
    result.items.insert(result.items.end(), chunk.items.begin(), chunk.items.end());
    for (size_t k = 0; k < chunk.counts.size(); ++k) {
      result.offsets.push_back(result.offsets.back() + chunk.lengths[k]);
      result.counts.push_back(chunk.counts[k]);
    }
  }
  return result;
}

}  // namespace shoal::affinity
