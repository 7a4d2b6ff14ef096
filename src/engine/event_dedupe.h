// EventDedupe: exact event-id dedupe with memory bounded independently of the number of stored
// events' ids held exactly in RAM. Three layers, checked in order:
//   1. a blocked Bloom filter over every stored id (about bits_per_id bits each): an id it
//      rejects was never stored, which is the usual answer while ingesting new data (one cache
//      miss per id, and nothing else);
//   2. `recent`: the ids stored since the last index flush (at most DedupeOptions::flush_ids
//      of them), exact: one sorted run per block (8 bytes an id, appended and sorted
//      sequentially, where a hash set cost 16 bytes and a random cache miss per insert);
//   3. the store's event_index family (id hash -> "", Bloom-filtered table files): the exact
//      answer for the few ids the filter lets through (real duplicates and ~1% false alarms),
//      one batched lookup per block.
// The filter holds every id of `recent` too, so layers 2 and 3 see only the filter's positives.
// `recent` is moved into event_index as one sorted table file (no memtable, no write-ahead
// log) when it reaches flush_ids; kMeta records the last block it covers, so after a crash the
// ids of later blocks (stored atomically with their events in event_ids) are reloaded. That
// move runs on a thread of its own (Added returns at once): until the next flush starts, the
// moved ids stay in RAM as `flushing` and are checked like `recent`, so every answer is the
// same whether the file is in the store yet or not.
#pragma once

#include <cstdint>
#include <span>
#include <thread>
#include <vector>

#include "common/status.h"
#include "store/kv_store.h"

namespace shoal {

struct DedupeOptions {
  size_t flush_ids = 1 << 18;    // ids held exactly in RAM before they go to event_index
  double bits_per_id = 12;       // Bloom filter bits per stored id (~0.6% false alarms)
  size_t min_filter_ids = 1 << 20;  // the filter is sized for at least this many ids
  // FinishBulkLoad moves `recent` into event_index when it holds at least this many ids (its
  // 8 bytes an id are then released); fewer stay, so small ingests do not each write a file.
  size_t settle_flush_ids = 1 << 16;
};

// A blocked Bloom filter: each id sets 8 bits within one 64-byte line (one cache miss per
// probe). Not thread-safe.
class IdBloomFilter {
 public:
  explicit IdBloomFilter(size_t capacity_ids = 0, double bits_per_id = 12);
  void Insert(uint64_t id_hash);
  bool MayContain(uint64_t id_hash) const;
  // Starts loading id_hash's line into the cache (batched probes overlap their misses).
  void Prefetch(uint64_t id_hash) const { __builtin_prefetch(&lines_[LineOf(id_hash)]); }
  size_t capacity() const { return capacity_; }
  size_t MemoryBytes() const { return lines_.size() * sizeof(Line); }

 private:
  struct alignas(64) Line { uint64_t words[8]; };
  size_t LineOf(uint64_t h) const;
  std::vector<Line> lines_;
  size_t capacity_ = 0;
};

// Not thread-safe: one thread at a time calls its methods (the flush thread it starts touches
// only its own copy of the ids and the store).
class EventDedupe {
 public:
  EventDedupe(KvStore* store, DedupeOptions options = {});
  ~EventDedupe();  // waits for a flush in progress
  EventDedupe(const EventDedupe&) = delete;
  EventDedupe& operator=(const EventDedupe&) = delete;

  // Loads the filter from every stored block's ids (event_ids) and `recent` from the blocks
  // after the last flushed one; flushes `recent` when it is already full. `stored_ids` (a
  // hint) sizes the filter.
  Status Load(uint64_t stored_ids, bool read_only);

  // For each of `ids` (distinct, any order): found[i] = 1 when it was stored before.
  Status Lookup(std::span<const uint64_t> ids, std::vector<uint8_t>* found);

  // Records the ids of block `block_seq`, just stored durably; when `recent` is full, starts
  // moving it to event_index in the background (after waiting for the previous move, whose
  // failure it returns). The filter is rebuilt larger from event_ids when it is full.
  Status Added(std::span<const uint64_t> ids, uint64_t block_seq);

  // Makes the filter hold at least `expected_ids` ids (rebuilt from event_ids if it grows),
  // so a bulk load of a known size does not grow it step by step. Never shrinks it.
  Status Reserve(size_t expected_ids);

  // Moves `recent` into event_index now, after any move in progress (before erasure deletes
  // keys there): on return every id is in event_index.
  Status Flush();

  // Frees the lookup scratch (it grows again on the next Lookup) and the spare capacity of
  // `recent` (after a bulk load).
  void ReleaseScratch();

  // Ends a bulk load: Flush() when `recent` holds at least settle_flush_ids ids, then
  // ReleaseScratch(). Answers do not change; the RAM held becomes the filter (plus fewer than
  // settle_flush_ids recent ids).
  Status FinishBulkLoad();

  size_t MemoryBytes() const;

 private:
  Status RebuildFilter(size_t capacity_ids);
  // Merges the runs of `recent` into one ascending run of distinct ids (recent_ids_).
  void MergeRecent();
  // Syncs the log, ingests `ids` (ascending, distinct) into event_index and records last_seq.
  Status WriteIndex(std::span<const uint64_t> ids, uint64_t last_seq);
  // Waits for the background move, if any; on success drops `flushing` (now in event_index),
  // on failure keeps it (still checked) and returns the error.
  Status WaitForFlush();

  KvStore* store_;
  DedupeOptions options_;
  IdBloomFilter filter_;
  size_t filter_ids_ = 0;           // ids inserted into the filter
  // `recent`: sorted runs of ids, one per block (or per part of a reloaded block), back to
  // back in recent_ids_; recent_runs_ holds each run's end offset.
  std::vector<uint64_t> recent_ids_;
  std::vector<size_t> recent_runs_;
  // Appends `ids` (Fix()ed) as one sorted run.
  void AddRecentRun(std::span<const uint64_t> ids);
  size_t RecentSize() const { return recent_ids_.size(); }
  uint64_t recent_last_seq_ = 0;    // last block whose ids are in `recent`
  // `flushing`: the last `recent` moved to event_index (ascending, distinct), checked until the
  // next flush starts; flush_thread_ writes it (reading flushing_ids_ only) and sets
  // flush_status_, read after the join.
  std::vector<uint64_t> flushing_ids_;
  std::thread flush_thread_;
  Status flush_status_;
  std::vector<uint64_t> candidates_;      // filter positives of a lookup
  std::vector<uint32_t> candidate_pos_;
  std::vector<uint8_t> candidate_found_;
};

}  // namespace shoal
