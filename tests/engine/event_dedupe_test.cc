#include "engine/event_dedupe.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "common/coding.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

struct Workspace {
  Workspace() {
    path = fs::temp_directory_path() / ("shoal-dedupe-test-" + std::to_string(getpid()) + "-" +
                                        std::to_string(counter++));
    fs::remove_all(path);
  }
  ~Workspace() { fs::remove_all(path); }
  static inline int counter = 0;
  fs::path path;
};

// Stores block `seq`'s ids in event_ids as the engine does (the layer EventDedupe reloads from)
// and tells `dedupe`.
void StoreBlock(KvStore& store, EventDedupe& dedupe, uint64_t seq, std::vector<uint64_t> ids) {
  std::string value;
  for (uint64_t id : ids) PutFixed64(&value, id);
  WriteGroup g;
  g.Put(Column::kEventIds, KeyU64(seq), value);
  ASSERT_TRUE(store.Write(g, true).ok());
  std::sort(ids.begin(), ids.end());
  ASSERT_TRUE(dedupe.Added(ids, seq).ok());
}

std::vector<uint8_t> Found(EventDedupe& dedupe, std::vector<uint64_t> ids) {
  std::sort(ids.begin(), ids.end());
  std::vector<uint8_t> found;
  EXPECT_TRUE(dedupe.Lookup(ids, &found).ok());
  return found;
}

// Every stored id is found and no absent one is.
void ExpectExactAnswers(EventDedupe& dedupe, const std::vector<uint64_t>& stored,
                        const std::vector<uint64_t>& absent) {
  for (uint8_t f : Found(dedupe, stored)) ASSERT_EQ(f, 1);
  for (uint8_t f : Found(dedupe, absent)) ASSERT_EQ(f, 0);
}

// Options whose filter is tiny and saturated (~all ones): it lets almost every id through, so
// every answer comes from the exact layers (recent set, ids being flushed, event_index).
DedupeOptions ExactLayersOnly(size_t flush_ids) {
  DedupeOptions options;
  options.flush_ids = flush_ids;
  options.bits_per_id = 0.05;
  options.min_filter_ids = 16;
  return options;
}

// n random ids to store and n others, absent, from `seed`.
void RandomIds(uint64_t seed, int n, std::vector<uint64_t>* stored, std::vector<uint64_t>* absent) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < n; ++i) stored->push_back(rng());
  for (int i = 0; i < n; ++i) absent->push_back(rng());
}

// A tiny, saturated Bloom filter lets almost every id through, so every answer below comes
// from the exact layers (recent set, event_index), across flushes and a reopen.
TEST(EventDedupeTest, ExactAcrossFlushesAndReopenEvenWhenTheFilterSaysMaybe) {
  Workspace ws;
  const DedupeOptions options = ExactLayersOnly(/*flush_ids=*/250);  // several flushes to event_index
  std::vector<uint64_t> stored, absent;
  RandomIds(7, 3000, &stored, &absent);
  stored.push_back(0);  // the hash 0, remapped internally, still round-trips
  {
    auto store = KvStore::Open(ws.path.string(), StoreOptions());
    ASSERT_TRUE(store.ok());
    EventDedupe dedupe(store->get(), options);
    ASSERT_TRUE(dedupe.Load(0, false).ok());
    for (size_t b = 0; b * 100 < stored.size(); ++b) {
      std::vector<uint64_t> block(stored.begin() + static_cast<ptrdiff_t>(b * 100),
                                  stored.begin() + static_cast<ptrdiff_t>(std::min(stored.size(), b * 100 + 100)));
      StoreBlock(**store, dedupe, b + 1, block);
      // Exact after every block too, whichever layer holds each id then: `recent`, the ids a
      // background flush is moving to event_index, or event_index.
      const std::vector<uint64_t> so_far(stored.begin(), stored.begin() + static_cast<ptrdiff_t>(
                                                                             std::min(stored.size(), b * 100 + 100)));
      ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, so_far, absent));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
  }
  // Reopen without a clean shutdown step: the ids after the last flush come back from event_ids.
  auto store = KvStore::Open(ws.path.string(), StoreOptions());
  ASSERT_TRUE(store.ok());
  EventDedupe dedupe(store->get(), options);
  ASSERT_TRUE(dedupe.Load(stored.size(), false).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
  // Memory held is the filter plus at most flush_ids recent ids, not a set of every id.
  EXPECT_LT(dedupe.MemoryBytes(), 64u * 1024);
}

// FinishBulkLoad moves a large `recent` to event_index (its RAM goes, answers stay exact even
// through a saturated filter, also after a reopen) and leaves a small one in RAM.
// A background flush that fails (its table file cannot be created: a directory holds its
// name) loses no id: Lookup stays exact while it runs and after, the next Flush reports the
// failure and puts the ids back into the recent set, and a later flush indexes them.
TEST(EventDedupeTest, AFailedBackgroundFlushKeepsEveryIdAndIsRetried) {
  Workspace ws;
  const DedupeOptions options = ExactLayersOnly(/*flush_ids=*/250);
  std::vector<uint64_t> stored, absent;
  RandomIds(11, 300, &stored, &absent);
  {
    auto store = KvStore::Open(ws.path.string(), StoreOptions());
    ASSERT_TRUE(store.ok());
    // The store names its first table file ingest-1.sst: a non-empty directory there makes
    // writing it fail.
    fs::create_directories(ws.path / "ingest-1.sst" / "blocker");
    EventDedupe dedupe(store->get(), options);
    ASSERT_TRUE(dedupe.Load(0, false).ok());
    for (size_t b = 0; b < 3; ++b) {  // the third block fills `recent`: the flush starts
      StoreBlock(**store, dedupe, b + 1,
                 std::vector<uint64_t>(stored.begin() + static_cast<ptrdiff_t>(b * 100),
                                       stored.begin() + static_cast<ptrdiff_t>(b * 100 + 100)));
    }
    ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
    EXPECT_FALSE(dedupe.Flush().ok());  // the background flush's failure
    ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
    fs::remove_all(ws.path / "ingest-1.sst");
    ASSERT_TRUE(dedupe.Flush().ok());  // ingest-2.sst: the ids are indexed now
    ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
  }
  // Only event_index holds them now (the reopened recent set is empty: all blocks indexed).
  auto store = KvStore::Open(ws.path.string(), StoreOptions());
  ASSERT_TRUE(store.ok());
  std::vector<uint8_t> found;
  std::vector<uint64_t> sorted = stored;
  std::sort(sorted.begin(), sorted.end());
  ASSERT_TRUE((*store)->ContainsU64Keys(Column::kEventIndex, sorted, &found).ok());
  EXPECT_EQ(std::count(found.begin(), found.end(), 1), static_cast<ptrdiff_t>(stored.size()));
}

TEST(EventDedupeTest, FinishBulkLoadFlushesOnlyALargeRecentSet) {
  Workspace ws;
  DedupeOptions options = ExactLayersOnly(/*flush_ids=*/100000);  // no flush while adding
  options.settle_flush_ids = 1000;
  std::vector<uint64_t> stored, absent;
  RandomIds(17, 3000, &stored, &absent);
  {
    auto store = KvStore::Open(ws.path.string(), StoreOptions());
    ASSERT_TRUE(store.ok());
    EventDedupe dedupe(store->get(), options);
    ASSERT_TRUE(dedupe.Load(0, false).ok());
    StoreBlock(**store, dedupe, 1, std::vector<uint64_t>(stored.begin(), stored.begin() + 500));
    dedupe.ReleaseScratch();
    const size_t small = dedupe.MemoryBytes();
    ASSERT_TRUE(dedupe.FinishBulkLoad().ok());  // 500 < 1000: stays in RAM
    EXPECT_EQ(dedupe.MemoryBytes(), small);
    StoreBlock(**store, dedupe, 2, std::vector<uint64_t>(stored.begin() + 500, stored.end()));
    dedupe.ReleaseScratch();
    const size_t before = dedupe.MemoryBytes();
    ASSERT_TRUE(dedupe.FinishBulkLoad().ok());
    EXPECT_LE(dedupe.MemoryBytes() + stored.size() * sizeof(uint64_t), before);
    ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
  }
  auto store = KvStore::Open(ws.path.string(), StoreOptions());
  ASSERT_TRUE(store.ok());
  EventDedupe dedupe(store->get(), options);
  ASSERT_TRUE(dedupe.Load(stored.size(), false).ok());
  ASSERT_NO_FATAL_FAILURE(ExpectExactAnswers(dedupe, stored, absent));
}

TEST(EventDedupeTest, BloomFilterHasNoFalseNegativesAndFewFalseAlarms) {
  IdBloomFilter filter(100000, 12);
  std::mt19937_64 rng(3);
  std::vector<uint64_t> ids(100000);
  for (uint64_t& id : ids) { id = rng(); filter.Insert(id); }
  for (uint64_t id : ids) ASSERT_TRUE(filter.MayContain(id));
  int false_alarms = 0;
  for (int i = 0; i < 100000; ++i) false_alarms += filter.MayContain(rng());
  EXPECT_LT(false_alarms, 1500);  // ~0.6% expected for 12 bits per id, 8 probes in one line
}

}  // namespace
}  // namespace shoal
