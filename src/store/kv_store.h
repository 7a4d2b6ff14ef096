// KvStore: the workspace's embedded RocksDB, one column family per kind of data. The only code
// that includes RocksDB headers; the engine sees keys, values and batches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace shoal {

// Column families. Keys within each are documented in docs/storage.md.
enum class Column : int {
  kMeta = 0,     // schema version, counters, config fingerprint, checkpoint position
  kEvents,       // block seq (8 bytes big-endian) -> encoded event block
  kEventIds,     // block seq -> the block's event-id hashes (8 bytes each, little-endian)
  kProfiles,     // profile idx (4 bytes BE) -> serialized profile (identity + trait state)
  kIdentity,     // reserved: identifier index snapshots
  kMerges,       // merge seq (8 bytes BE) -> merge record
  kModels,       // named blobs: segments, models, rules built by `shoal build`
  kSuppressed,   // keyed hashes of forgotten identifiers -> empty
  kEventIndex,   // event-id hash (8 bytes BE) -> empty: the exact dedupe index (bloom-filtered)
  kNumColumns,
};

// RocksDB's memory is bounded by these options (docs/storage.md, "Memory"): memtables by
// write_buffer_mb per column family and memtable_budget_mb in all, index and filter blocks and
// data blocks by the one shared block cache.
struct StoreOptions {
  bool create_if_missing = true;      // create the folder and the database if absent
  // Memtable size of the events, event-id and profile families: a bulk load flushes every 64 MiB
  // while it runs, and only the last part is flushed after it.
  size_t write_buffer_mb = 64;
  size_t memtable_budget_mb = 512;    // all memtables together (a flush is forced beyond it)
  size_t block_cache_mb = 64;         // shared block cache: data, index and filter blocks
  bool read_only = false;             // open for reading only (exports while a server runs)
};

// RocksDB's own resident memory, from its properties (bytes).
struct StoreMemory {
  uint64_t memtables = 0;       // active and immutable memtables, all column families
  uint64_t block_cache = 0;     // block cache usage (data, and index/filter blocks if cached)
  uint64_t table_readers = 0;   // index and filter blocks held outside the block cache
  uint64_t Total() const { return memtables + block_cache + table_readers; }
};

// An atomic group of writes.
class WriteGroup {
 public:
  WriteGroup();
  ~WriteGroup();
  WriteGroup(WriteGroup&&) noexcept;
  void Put(Column column, std::string_view key, std::string_view value);
  // Put without copying `value`: it must stay alive and unchanged until Write (or Clear).
  void PutBorrowed(Column column, std::string_view key, std::string_view value);
  void Delete(Column column, std::string_view key);
  // Puts (empty values) / deletes one key per element, each the 8-byte big-endian KeyU64;
  // stored compactly (no string per key) until Write.
  void PutU64Keys(Column column, std::span<const uint64_t> keys);
  void DeleteU64Keys(Column column, std::span<const uint64_t> keys);
  size_t Count() const;
  size_t ByteSize() const;
  void Clear();

 private:
  friend class KvStore;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Thread-safe for concurrent reads and writes (RocksDB's guarantees).
class KvStore {
 public:
  // Opens or creates the database in `dir`. IOError names the folder and RocksDB's reason
  // (e.g. another process holds the lock).
  static Result<std::unique_ptr<KvStore>> Open(const std::string& dir, const StoreOptions& options);
  ~KvStore();

  // Applies `group` atomically. With sync, returns only once the group is on stable storage
  // (fsync of the write-ahead log): the meaning of "acknowledged".
  Status Write(WriteGroup& group, bool sync);
  // Makes every write so far durable (fsync of the write-ahead log): writes made with
  // sync = false survive a machine crash only after this.
  Status SyncWal();
  Status Put(Column column, std::string_view key, std::string_view value, bool sync = false);
  // NotFound when absent.
  Status Get(Column column, std::string_view key, std::string* value) const;
  // found[i] = 1 when KeyU64(keys[i]) is present in `column`, else 0 (found resized to
  // keys.size()). One batched lookup (bloom filters skip files without the key); keys in
  // ascending order are fastest.
  Status ContainsU64Keys(Column column, std::span<const uint64_t> keys, std::vector<uint8_t>* found) const;
  // Adds KeyU64(k) -> "" for every k of `sorted_keys` (strictly ascending) by writing one table
  // file and ingesting it (no memtable, no write-ahead log: cheap for millions of keys).
  // Durable on return. Not atomic with other writes: callers record separately what it covers.
  Status IngestSortedU64Keys(Column column, std::span<const uint64_t> sorted_keys);
  // Writes `records` as table files, one per column (uncompressed: a later compaction
  // compresses them), and adds them to the store in one atomic step that bypasses the
  // write-ahead log and the memtables: durable on return. Records of one column must be
  // contiguous, with strictly ascending keys. For large values written once (an ingest's event blocks): one
  // write of the bytes instead of the log's, the memtable's and the flush's. A key range that
  // overlaps a column's memtable makes RocksDB flush that memtable first.
  struct TableRecord {
    Column column;
    std::string_view key;
    std::string_view value;
    bool put = true;  // false: a deletion of `key` (value unused)
  };
  Status IngestTables(std::span<const TableRecord> records);
  // Applies `group` as IngestTables does (atomic, durable on return, no log, no memtable): for
  // large groups written once, like a checkpoint of every profile. Keys in any order; of a key
  // written twice the last write counts, as in Write.
  Status WriteAsTables(const WriteGroup& group);
  // The largest key of `column`, NotFound when it is empty.
  Status LastKey(Column column, std::string* key) const;
  // Calls fn(key, value) for every key >= start in order, until fn returns false or an error.
  Status Scan(Column column, std::string_view start,
              const std::function<Result<bool>(std::string_view key, std::string_view value)>& fn) const;
  // Flushes memtables and compacts every column family fully, then purges obsolete files and
  // write-ahead logs: after it, deleted data is gone from the folder (erasure).
  Status CompactAll();
  // Flushes memtables to SST files.
  Status Flush();
  const std::string& dir() const { return dir_; }
  // RocksDB's resident memory now.
  StoreMemory Memory() const;
  // Approximate bytes on disk.
  uint64_t DiskBytes() const;

 private:
  KvStore() = default;
  std::string NextIngestPath();  // a fresh name in dir_ for a table file to ingest
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string dir_;
};

// Big-endian fixed-width keys (sort in numeric order).
std::string KeyU64(uint64_t v);
std::string KeyU32(uint32_t v);
uint64_t DecodeKeyU64(std::string_view key);
uint32_t DecodeKeyU32(std::string_view key);

}  // namespace shoal
