#include "affinity/baskets.h"

#include <fstream>
#include <functional>
#include <sstream>

namespace shoal::affinity {

namespace {

uint64_t HashLabel(std::string_view label) { return std::hash<std::string_view>{}(label); }

}  // namespace

size_t ItemDictionary::SlotOf(std::string_view label, uint64_t hash) const {
  const size_t mask = slots_.size() - 1;
  size_t slot = hash & mask;
  while (true) {
    uint32_t entry = slots_[slot];
    if (entry == 0) return slot;
    ItemId id = entry - 1;
    if (hashes_[id] == hash && labels_[id] == label) return slot;
    slot = (slot + 1) & mask;
  }
}

void ItemDictionary::Grow() {
  std::vector<uint32_t> grown(slots_.size() * 2, 0);
  const size_t mask = grown.size() - 1;
  for (ItemId id = 0; id < labels_.size(); ++id) {
    size_t slot = hashes_[id] & mask;
    while (grown[slot] != 0) slot = (slot + 1) & mask;
    grown[slot] = id + 1;
  }
  slots_ = std::move(grown);
}

ItemId ItemDictionary::Intern(std::string_view label) {
  const uint64_t hash = HashLabel(label);
  size_t slot = SlotOf(label, hash);
  if (slots_[slot] != 0) return slots_[slot] - 1;
  const ItemId id = static_cast<ItemId>(labels_.size());
  labels_.emplace_back(label);
  hashes_.push_back(hash);
  slots_[slot] = id + 1;
  if (labels_.size() * 2 > slots_.size()) Grow();
  return id;
}

std::optional<ItemId> ItemDictionary::Find(std::string_view label) const {
  size_t slot = SlotOf(label, HashLabel(label));
  if (slots_[slot] == 0) return std::nullopt;
  return slots_[slot] - 1;
}

void BasketStore::Reserve(size_t baskets, size_t occurrences) {
  offsets_.reserve(baskets + 1);
  items_.reserve(occurrences);
}

void BasketStore::AddBasket(std::span<const ItemId> items) {
  if (seen_.size() < dictionary_.size()) seen_.resize(dictionary_.size(), 0);
  const uint64_t mark = offsets_.size();  // basket number + 1
  for (ItemId id : items) {
    if (seen_[id] == mark) continue;
    seen_[id] = mark;
    items_.push_back(id);
  }
  offsets_.push_back(items_.size());
}

void BasketStore::AddBasketLabels(std::span<const std::string_view> labels) {
  const uint64_t mark = offsets_.size();
  for (std::string_view label : labels) {
    ItemId id = dictionary_.Intern(label);
    if (seen_.size() <= id) seen_.resize(dictionary_.size(), 0);
    if (seen_[id] == mark) continue;
    seen_[id] = mark;
    items_.push_back(id);
  }
  offsets_.push_back(items_.size());
}

std::vector<uint64_t> BasketStore::ItemCounts() const {
  std::vector<uint64_t> counts(dictionary_.size(), 0);
  for (ItemId id : items_) ++counts[id];
  return counts;
}

Result<BasketStore> ParseBaskets(std::string_view text, const BasketFileOptions& options) {
  BasketStore store;
  // A rough guess (Groceries: ~11 bytes per item) avoids most regrowth on big files.
  store.Reserve(text.size() / 48 + 1, text.size() / 10 + 1);
  std::vector<std::string_view> labels;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++line_number;
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      if (!options.skip_empty_lines) store.AddBasket({});
      continue;
    }
    labels.clear();
    size_t start = 0;
    while (true) {
      size_t sep = line.find(options.separator, start);
      std::string_view label =
          line.substr(start, sep == std::string_view::npos ? std::string_view::npos : sep - start);
      if (label.empty()) {
        return Status::ParseError("line " + std::to_string(line_number) +
                                  ": empty item label");
      }
      labels.push_back(label);
      if (sep == std::string_view::npos) break;
      start = sep + 1;
    }
    store.AddBasketLabels(labels);
  }
  return store;
}

Result<BasketStore> LoadBasketFile(const std::string& path, const BasketFileOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot open " + path);
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return Status::IOError("cannot size " + path);
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(text.data(), size)) return Status::IOError("cannot read " + path);
  Result<BasketStore> store = ParseBaskets(text, options);
  if (!store.ok()) return store.status().WithContext(path);
  return store;
}

}  // namespace shoal::affinity
