#include "affinity/baskets.h"

#include <algorithm>
#include <cassert>
#include <fstream>
#include <functional>
#include <thread>

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
    assert(id < seen_.size() && "AddBasket: id not in the dictionary");
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

namespace {

// Parses `text`; line numbers in errors start after `first_line - 1` lines.
Result<BasketStore> ParseChunk(std::string_view text, const BasketFileOptions& options,
                               size_t first_line) {
  BasketStore store;
  // A rough guess (Groceries: ~11 bytes per item) avoids most regrowth on big files.
  store.Reserve(text.size() / 48 + 1, text.size() / 10 + 1);
  std::vector<std::string_view> labels;
  size_t line_number = first_line - 1;
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

}  // namespace

void BasketStore::AppendRemapped(const BasketStore& other) {
  std::vector<ItemId> remap(other.dictionary_.size());
  for (ItemId id = 0; id < remap.size(); ++id) {
    remap[id] = dictionary_.Intern(other.dictionary_.Label(id));
  }
  const uint64_t base = items_.size();
  items_.reserve(items_.size() + other.items_.size());
  for (ItemId id : other.items_) items_.push_back(remap[id]);
  offsets_.reserve(offsets_.size() + other.num_baskets());
  for (size_t b = 1; b < other.offsets_.size(); ++b) offsets_.push_back(base + other.offsets_[b]);
}

Result<BasketStore> ParseBaskets(std::string_view text, const BasketFileOptions& options) {
  return ParseChunk(text, options, 1);
}

Result<BasketStore> ParseBaskets(std::string_view text, const BasketFileOptions& options,
                                 const Context& ctx) {
  constexpr size_t kMinParallelBytes = size_t{1} << 20;
  const size_t workers = std::max(1, ctx.Threads());
  if (workers == 1 || text.size() < kMinParallelBytes) return ParseChunk(text, options, 1);
  // Chunk boundaries just after a '\n', so every chunk holds whole lines.
  std::vector<size_t> bounds = {0};
  for (size_t w = 1; w < workers; ++w) {
    size_t at = std::max(bounds.back(), text.size() * w / workers);
    size_t newline = text.find('\n', at);
    bounds.push_back(newline == std::string_view::npos ? text.size() : newline + 1);
  }
  bounds.push_back(text.size());
  const size_t chunks = bounds.size() - 1;
  std::vector<size_t> first_lines(chunks, 1);
  for (size_t c = 1; c < chunks; ++c) {
    first_lines[c] = first_lines[c - 1] + static_cast<size_t>(std::count(
                         text.begin() + bounds[c - 1], text.begin() + bounds[c], '\n'));
  }
  std::vector<Result<BasketStore>> parts(chunks, Status::Internal("not parsed"));
  std::vector<std::thread> pool;
  for (size_t c = 1; c < chunks; ++c) {
    pool.emplace_back([&, c] {
      parts[c] = ParseChunk(text.substr(bounds[c], bounds[c + 1] - bounds[c]), options,
                            first_lines[c]);
    });
  }
  parts[0] = ParseChunk(text.substr(0, bounds[1]), options, 1);
  for (std::thread& thread : pool) thread.join();
  for (const Result<BasketStore>& part : parts) {
    if (!part.ok()) return part.status();
  }
  BasketStore store = std::move(parts[0]).value();
  for (size_t c = 1; c < chunks; ++c) store.AppendRemapped(parts[c].value());
  return store;
}

Result<BasketStore> LoadBasketFile(const std::string& path, const BasketFileOptions& options) {
  Context one_thread;
  one_thread.threads = 1;
  return LoadBasketFile(path, options, one_thread);
}

Result<BasketStore> LoadBasketFile(const std::string& path, const BasketFileOptions& options,
                                   const Context& ctx) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot open " + path);
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) return Status::IOError("cannot size " + path);
  in.seekg(0, std::ios::beg);
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(text.data(), size)) return Status::IOError("cannot read " + path);
  Result<BasketStore> store = ParseBaskets(text, options, ctx);
  if (!store.ok()) return store.status().WithContext(path);
  return store;
}

}  // namespace shoal::affinity
