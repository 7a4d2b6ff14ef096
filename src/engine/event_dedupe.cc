#include "engine/event_dedupe.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <tuple>
#include <utility>

#include "common/coding.h"

namespace shoal {

namespace {

constexpr std::string_view kMetaIndexedSeq = "event_index_seq";  // last block in event_index
constexpr size_t kPrefetchAhead = 8;  // filter lines requested this many ids ahead

// Hash 0 is stored as 1 everywhere (FlatSetU64 reserves 0), so every layer sees the same key.
uint64_t Fix(uint64_t h) { return h == 0 ? 1 : h; }

// Sorts keys[0, n) ascending: least-significant-digit radix sort, 8 passes of 8 bits through a
// scratch copy (a block's ids and a flush's are tens to hundreds of thousands of random
// hashes; ~5x std::sort's speed). Eight passes: the sorted keys end back in `keys`.
void RadixSort(uint64_t* keys, size_t n) {
  if (n < 256) {
    std::sort(keys, keys + n);
    return;
  }
  std::vector<uint64_t> scratch(n);
  uint64_t* from = keys;
  uint64_t* to = scratch.data();
  for (int shift = 0; shift < 64; shift += 8) {
    size_t counts[257] = {};
    for (size_t i = 0; i < n; ++i) ++counts[((from[i] >> shift) & 0xff) + 1];
    for (int b = 0; b < 256; ++b) counts[b + 1] += counts[b];
    for (size_t i = 0; i < n; ++i) to[counts[(from[i] >> shift) & 0xff]++] = from[i];
    std::swap(from, to);
  }
}

// A second, independent mix of the id hash for the bit positions inside a line.
uint64_t Remix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

}  // namespace

IdBloomFilter::IdBloomFilter(size_t capacity_ids, double bits_per_id) : capacity_(capacity_ids) {
  size_t bits = static_cast<size_t>(std::ceil(static_cast<double>(capacity_ids) * bits_per_id));
  lines_.assign(std::max<size_t>(1, (bits + 511) / 512), Line{});
}

size_t IdBloomFilter::LineOf(uint64_t h) const {
  return static_cast<size_t>((static_cast<unsigned __int128>(h) * lines_.size()) >> 64);
}

void IdBloomFilter::Insert(uint64_t id_hash) {
  Line& line = lines_[LineOf(id_hash)];
  uint64_t bits = Remix(id_hash);
  for (int k = 0; k < 8; ++k) {  // 8 positions of 9 bits each: word (3 bits) and bit (6 bits)
    uint32_t pos = static_cast<uint32_t>(bits >> (k * 9)) & 511;
    line.words[pos >> 6] |= 1ull << (pos & 63);
  }
}

bool IdBloomFilter::MayContain(uint64_t id_hash) const {
  const Line& line = lines_[LineOf(id_hash)];
  uint64_t bits = Remix(id_hash);
  for (int k = 0; k < 8; ++k) {
    uint32_t pos = static_cast<uint32_t>(bits >> (k * 9)) & 511;
    if (!(line.words[pos >> 6] & (1ull << (pos & 63)))) return false;
  }
  return true;
}

EventDedupe::EventDedupe(KvStore* store, DedupeOptions options)
    : store_(store), options_(options) {}

Status EventDedupe::Load(uint64_t stored_ids, bool read_only) {
  std::string value;
  uint64_t indexed_seq = 0;
  if (store_->Get(Column::kMeta, kMetaIndexedSeq, &value).ok()) {
    Reader r(value);
    indexed_seq = r.Varint();
  }
  filter_ = IdBloomFilter(std::max<size_t>(options_.min_filter_ids, 2 * stored_ids), options_.bits_per_id);
  filter_ids_ = 0;
  recent_ids_.clear();
  recent_runs_.clear();
  recent_last_seq_ = indexed_seq;
  std::vector<uint64_t> load_ids;
  SHOAL_RETURN_IF_ERROR(store_->Scan(Column::kEventIds, "", [&](std::string_view key, std::string_view ids) -> Result<bool> {
    uint64_t seq = DecodeKeyU64(key);
    if (ids.size() % 8 != 0) return Status::Corruption("event ids of block " + std::to_string(seq));
    load_ids.resize(ids.size() / 8);
    for (size_t k = 0; k < load_ids.size(); ++k) {
      uint64_t h;
      std::memcpy(&h, ids.data() + k * 8, 8);
      h = Fix(h);
      load_ids[k] = h;
      filter_.Insert(h);
      ++filter_ids_;
    }
    if (seq > indexed_seq) {
      AddRecentRun(load_ids);
      recent_last_seq_ = std::max(recent_last_seq_, seq);
    }
    // A workspace older than event_index (or one with many unflushed blocks) is indexed as it
    // loads, so `recent` never outgrows flush_ids by more than a block.
    if (!read_only && RecentSize() >= options_.flush_ids) SHOAL_RETURN_IF_ERROR(Flush());
    return true;
  }));
  if (filter_ids_ > filter_.capacity()) {
    filter_ = IdBloomFilter();  // stored_ids was too low a hint: size by the real count
    SHOAL_RETURN_IF_ERROR(RebuildFilter(2 * filter_ids_));
  }
  if (!read_only && RecentSize() >= options_.flush_ids) return Flush();
  return Status::OK();
}

EventDedupe::~EventDedupe() {
  if (flush_thread_.joinable()) flush_thread_.join();
}

void EventDedupe::AddRecentRun(std::span<const uint64_t> ids) {
  if (ids.empty()) return;
  const size_t begin = recent_ids_.size();
  recent_ids_.insert(recent_ids_.end(), ids.begin(), ids.end());
  RadixSort(recent_ids_.data() + begin, ids.size());
  recent_runs_.push_back(recent_ids_.size());
}

Status EventDedupe::RebuildFilter(size_t capacity_ids) {
  IdBloomFilter filter(capacity_ids, options_.bits_per_id);
  size_t n = 0;
  SHOAL_RETURN_IF_ERROR(store_->Scan(Column::kEventIds, "", [&](std::string_view key, std::string_view ids) -> Result<bool> {
    if (ids.size() % 8 != 0) return Status::Corruption("event ids of block " + std::to_string(DecodeKeyU64(key)));
    for (size_t off = 0; off < ids.size(); off += 8) {
      uint64_t h;
      std::memcpy(&h, ids.data() + off, 8);
      filter.Insert(Fix(h));
      ++n;
    }
    return true;
  }));
  filter_ = std::move(filter);
  filter_ids_ = n;
  return Status::OK();
}

Status EventDedupe::Lookup(std::span<const uint64_t> ids, std::vector<uint8_t>* found) {
  found->assign(ids.size(), 0);
  candidates_.clear();
  candidate_pos_.clear();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i + kPrefetchAhead < ids.size()) filter_.Prefetch(Fix(ids[i + kPrefetchAhead]));
    uint64_t h = Fix(ids[i]);
    if (filter_.MayContain(h)) {  // every stored id, `recent` included, is in the filter
      candidates_.push_back(h);
      candidate_pos_.push_back(static_cast<uint32_t>(i));
    }
  }
  if (candidates_.empty()) return Status::OK();
  if (!std::is_sorted(candidates_.begin(), candidates_.end())) {
    // Ascending keys: one merge pass against each recent run and the fastest batched lookup.
    std::vector<std::pair<uint64_t, uint32_t>> order(candidates_.size());
    for (size_t c = 0; c < order.size(); ++c) order[c] = {candidates_[c], candidate_pos_[c]};
    std::sort(order.begin(), order.end());
    for (size_t c = 0; c < order.size(); ++c) std::tie(candidates_[c], candidate_pos_[c]) = order[c];
  }
  // `recent` and `flushing`: a merge of the sorted candidates with each sorted run.
  candidate_found_.assign(candidates_.size(), 0);
  auto merge_with = [&](std::span<const uint64_t> run) {
    size_t r = 0;
    for (size_t c = 0; c < candidates_.size() && r < run.size(); ++c) {
      while (r < run.size() && run[r] < candidates_[c]) ++r;
      if (r < run.size() && run[r] == candidates_[c]) candidate_found_[c] = 1;
    }
  };
  size_t run_begin = 0;
  for (size_t run_end : recent_runs_) {
    merge_with(std::span<const uint64_t>(recent_ids_).subspan(run_begin, run_end - run_begin));
    run_begin = run_end;
  }
  merge_with(flushing_ids_);
  // event_index: the candidates `recent` and `flushing` do not hold (few, except on a re-ingest).
  std::vector<uint64_t> index_keys;
  std::vector<uint32_t> index_pos;
  for (size_t c = 0; c < candidates_.size(); ++c) {
    if (candidate_found_[c]) {
      (*found)[candidate_pos_[c]] = 1;
    } else {
      index_keys.push_back(candidates_[c]);
      index_pos.push_back(candidate_pos_[c]);
    }
  }
  if (index_keys.empty()) return Status::OK();
  SHOAL_RETURN_IF_ERROR(store_->ContainsU64Keys(Column::kEventIndex, index_keys, &candidate_found_));
  for (size_t c = 0; c < index_keys.size(); ++c) {
    if (candidate_found_[c]) (*found)[index_pos[c]] = 1;
  }
  return Status::OK();
}

Status EventDedupe::Added(std::span<const uint64_t> ids, uint64_t block_seq) {
  if (filter_ids_ + ids.size() > filter_.capacity()) {
    // The block is already in event_ids, so the rebuild includes it.
    filter_ = IdBloomFilter();
    // Four times the ids: a growing store rescans event_ids rarely (1M, 4M, 16M, ... ids).
    SHOAL_RETURN_IF_ERROR(RebuildFilter(std::max(options_.min_filter_ids, 4 * (filter_ids_ + ids.size()))));
  } else {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i + kPrefetchAhead < ids.size()) filter_.Prefetch(Fix(ids[i + kPrefetchAhead]));
      filter_.Insert(Fix(ids[i]));
    }
    filter_ids_ += ids.size();
  }
  const size_t begin = recent_ids_.size();
  recent_ids_.resize(begin + ids.size());
  for (size_t i = 0; i < ids.size(); ++i) recent_ids_[begin + i] = Fix(ids[i]);
  RadixSort(recent_ids_.data() + begin, ids.size());
  recent_runs_.push_back(recent_ids_.size());
  recent_last_seq_ = std::max(recent_last_seq_, block_seq);
  if (RecentSize() < options_.flush_ids) return Status::OK();
  SHOAL_RETURN_IF_ERROR(WaitForFlush());
  MergeRecent();
  flushing_ids_.swap(recent_ids_);
  recent_ids_.clear();
  recent_runs_.clear();
  flush_thread_ = std::thread([this, last_seq = recent_last_seq_] {
    flush_status_ = WriteIndex(flushing_ids_, last_seq);
  });
  return Status::OK();
}

Status EventDedupe::WaitForFlush() {
  if (!flush_thread_.joinable()) return Status::OK();
  flush_thread_.join();
  if (!flush_status_.ok()) {
    // Not indexed: the ids go back into `recent` as one run, so the next flush retries them
    // and no answer changes meanwhile.
    recent_ids_.insert(recent_ids_.end(), flushing_ids_.begin(), flushing_ids_.end());
    recent_runs_.push_back(recent_ids_.size());
  }
  flushing_ids_.clear();
  return flush_status_;
}

Status EventDedupe::Reserve(size_t expected_ids) {
  expected_ids = std::max(expected_ids, options_.min_filter_ids);
  if (expected_ids <= filter_.capacity()) return Status::OK();
  filter_ = IdBloomFilter();
  return RebuildFilter(expected_ids);
}

void EventDedupe::MergeRecent() {
  // Merge the sorted runs pairwise (each round halves them) into one ascending, distinct run.
  std::vector<size_t> bounds = {0};
  bounds.insert(bounds.end(), recent_runs_.begin(), recent_runs_.end());
  while (bounds.size() > 2) {
    std::vector<size_t> merged = {0};
    for (size_t k = 0; k + 1 < bounds.size(); k += 2) {
      if (k + 2 < bounds.size()) {
        std::inplace_merge(recent_ids_.begin() + static_cast<std::ptrdiff_t>(bounds[k]),
                           recent_ids_.begin() + static_cast<std::ptrdiff_t>(bounds[k + 1]),
                           recent_ids_.begin() + static_cast<std::ptrdiff_t>(bounds[k + 2]));
        merged.push_back(bounds[k + 2]);
      } else {
        merged.push_back(bounds[k + 1]);
      }
    }
    bounds = std::move(merged);
  }
  // Runs of different blocks hold different ids (Lookup saw them all), but a reloaded store
  // may repeat one (a block written twice before a crash): table files need distinct keys.
  recent_ids_.erase(std::unique(recent_ids_.begin(), recent_ids_.end()), recent_ids_.end());
  recent_runs_.assign(1, recent_ids_.size());
}

Status EventDedupe::WriteIndex(std::span<const uint64_t> ids, uint64_t last_seq) {
  // The table file is durable at once, but the blocks holding these ids may have been written
  // without a sync (the server syncs a whole group of requests later): sync the log first, or a
  // machine crash could leave ids indexed whose events were lost, and a client's retry of those
  // unacknowledged events would be taken for duplicates and never stored.
  SHOAL_RETURN_IF_ERROR(store_->SyncWal());
  SHOAL_RETURN_IF_ERROR(store_->IngestSortedU64Keys(Column::kEventIndex, ids));
  std::string value;
  PutVarint(&value, last_seq);
  return store_->Put(Column::kMeta, kMetaIndexedSeq, value, /*sync=*/true);
}

Status EventDedupe::Flush() {
  SHOAL_RETURN_IF_ERROR(WaitForFlush());
  if (recent_ids_.empty()) return Status::OK();
  MergeRecent();
  SHOAL_RETURN_IF_ERROR(WriteIndex(recent_ids_, recent_last_seq_));
  recent_ids_.clear();
  recent_runs_.clear();
  return Status::OK();
}

void EventDedupe::ReleaseScratch() {
  // Fresh vectors, not `= {}` (the initializer-list assignment, which keeps the capacity).
  candidates_ = std::vector<uint64_t>();
  candidate_pos_ = std::vector<uint32_t>();
  candidate_found_ = std::vector<uint8_t>();
  recent_ids_.shrink_to_fit();
  recent_runs_.shrink_to_fit();
  if (!flush_thread_.joinable()) flushing_ids_.shrink_to_fit();
}

Status EventDedupe::FinishBulkLoad() {
  SHOAL_RETURN_IF_ERROR(WaitForFlush());
  if (RecentSize() >= options_.settle_flush_ids) SHOAL_RETURN_IF_ERROR(Flush());
  ReleaseScratch();
  return Status::OK();
}

size_t EventDedupe::MemoryBytes() const {
  return filter_.MemoryBytes() +
         (recent_ids_.capacity() + flushing_ids_.capacity() + candidates_.capacity()) * sizeof(uint64_t) +
         recent_runs_.capacity() * sizeof(size_t) +
         candidate_pos_.capacity() * sizeof(uint32_t) +
         candidate_found_.capacity();
}

}  // namespace shoal
