// KvStore: the workspace's embedded RocksDB, one column family per kind of data. The only code
// that includes RocksDB headers; the engine sees keys, values and batches.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

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
  kNumColumns,
};

struct StoreOptions {
  bool create_if_missing = true;      // create the folder and the database if absent
  size_t write_buffer_mb = 128;       // memtable size for the events column family
  bool read_only = false;             // open for reading only (exports while a server runs)
};

// An atomic group of writes.
class WriteGroup {
 public:
  WriteGroup();
  ~WriteGroup();
  WriteGroup(WriteGroup&&) noexcept;
  void Put(Column column, std::string_view key, std::string_view value);
  void Delete(Column column, std::string_view key);
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
  Status Put(Column column, std::string_view key, std::string_view value, bool sync = false);
  // NotFound when absent.
  Status Get(Column column, std::string_view key, std::string* value) const;
  // Calls fn(key, value) for every key >= start in order, until fn returns false or an error.
  Status Scan(Column column, std::string_view start,
              const std::function<Result<bool>(std::string_view key, std::string_view value)>& fn) const;
  // Flushes memtables and compacts every column family fully, then purges obsolete files and
  // write-ahead logs: after it, deleted data is gone from the folder (erasure).
  Status CompactAll();
  // Flushes memtables to SST files.
  Status Flush();
  const std::string& dir() const { return dir_; }
  // Approximate bytes on disk.
  uint64_t DiskBytes() const;

 private:
  KvStore() = default;
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
