// Baskets for market-basket analysis: an item dictionary (label <-> dense id) and a store of
// baskets as item ids in one contiguous array with offsets (CSR). The loader reads
// one-basket-per-line files in the arules Groceries format; the engine fills the same store from
// stored orders (one basket per order, by product or by category).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal::affinity {

// Dense item identifier: 0 .. dictionary size - 1, in order of first appearance.
using ItemId = uint32_t;

// Maps item labels to dense ids and back. Labels are kept byte for byte (no trimming: Groceries'
// "cream cheese " keeps its trailing space). Not thread-safe for concurrent Intern; const
// methods may be called concurrently.
class ItemDictionary {
 public:
  // Returns the id of `label`, assigning the next id if it is new.
  ItemId Intern(std::string_view label);
  // Returns the id of `label`, or nullopt if it was never interned.
  std::optional<ItemId> Find(std::string_view label) const;
  // The label of `id`; id must be < size().
  const std::string& Label(ItemId id) const { return labels_[id]; }
  size_t size() const { return labels_.size(); }

 private:
  size_t SlotOf(std::string_view label, uint64_t hash) const;
  void Grow();

  std::vector<std::string> labels_;
  std::vector<uint64_t> hashes_;  // hash of labels_[id]
  // Open addressing, linear probing: slot holds id + 1, 0 = empty. Size is a power of two and
  // kept at most half full.
  std::vector<uint32_t> slots_ = std::vector<uint32_t>(64, 0);
};

// Baskets as item ids, CSR layout: basket b holds items()[offsets()[b] .. offsets()[b + 1]).
// Within a basket items keep their input order and appear once. Move-only in spirit (copying is
// allowed but copies every array).
class BasketStore {
 public:
  BasketStore() = default;

  // Appends a basket of already interned ids; every id must be < dictionary().size().
  // Repeated ids within the basket are kept once (first occurrence). An empty basket is stored
  // (it counts towards the number of baskets, i.e. towards support denominators).
  void AddBasket(std::span<const ItemId> items);
  // Interns each label and appends the basket (same duplicate rule as AddBasket).
  void AddBasketLabels(std::span<const std::string_view> labels);

  size_t num_baskets() const { return offsets_.size() - 1; }
  // Total item occurrences over all baskets.
  size_t num_occurrences() const { return items_.size(); }
  std::span<const ItemId> Basket(size_t basket_idx) const {
    return {items_.data() + offsets_[basket_idx], items_.data() + offsets_[basket_idx + 1]};
  }
  std::span<const uint64_t> offsets() const { return offsets_; }
  std::span<const ItemId> items() const { return items_; }
  const ItemDictionary& dictionary() const { return dictionary_; }
  ItemDictionary& mutable_dictionary() { return dictionary_; }
  // Number of baskets containing each item, indexed by ItemId (size = dictionary().size()).
  std::vector<uint64_t> ItemCounts() const;
  // Reserves room for `baskets` baskets and `occurrences` item occurrences.
  void Reserve(size_t baskets, size_t occurrences);
  // Appends every basket of `other`, interning its labels into this dictionary (new labels get
  // ids in the order of other's ids). Used to merge stores parsed in parallel.
  void AppendRemapped(const BasketStore& other);

 private:
  ItemDictionary dictionary_;
  std::vector<uint64_t> offsets_ = {0};
  std::vector<ItemId> items_;
  // seen_[id] == basket number + 1 while that basket is being appended (duplicate check).
  std::vector<uint64_t> seen_;
};

// How one-basket-per-line text is read.
struct BasketFileOptions {
  // Separator between items on a line (Groceries: ',').
  char separator = ',';
  // A line with no characters at all: skipped when true (the peers skip them too), stored as an
  // empty basket when false.
  bool skip_empty_lines = true;
};

// Parses one-basket-per-line text: items separated by `separator`, no quoting, no header, labels
// kept exactly (spaces included). A trailing "\r" (CRLF files) is removed from each line; a
// final line without "\n" is read. An empty label (",," or a trailing separator) is a ParseError
// naming the line. Repeated labels in one basket are kept once.
Result<BasketStore> ParseBaskets(std::string_view text, const BasketFileOptions& options = {});
// The same, split at line boundaries over ctx.Threads() workers (text of 1 MiB or more); chunk
// dictionaries are merged in chunk order, so ids, baskets and errors equal the one-thread parse.
Result<BasketStore> ParseBaskets(std::string_view text, const BasketFileOptions& options,
                                 const Context& ctx);

// Reads `path` whole and parses it with ParseBaskets. IOError if it cannot be read; ParseError
// messages are prefixed with the path.
Result<BasketStore> LoadBasketFile(const std::string& path, const BasketFileOptions& options = {});
// The same, parsing with ctx.Threads() workers.
Result<BasketStore> LoadBasketFile(const std::string& path, const BasketFileOptions& options,
                                   const Context& ctx);

}  // namespace shoal::affinity
