#include "store/kv_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/write_buffer_manager.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <vector>

namespace shoal {

namespace {
const char* const kColumnNames[] = {"default", "events", "event_ids", "profiles",
                                    "identity", "merges", "models", "suppressed", "event_index"};
static_assert(std::size(kColumnNames) == static_cast<size_t>(Column::kNumColumns));

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(std::string(what));
  if (s.IsCorruption()) return Status::Corruption(std::string(what) + ": " + s.ToString());
  return Status::IOError(std::string(what) + ": " + s.ToString());
}
// Table files written for ingestion, moved into the store once ingested: any left in the
// folder (a process killed in between) are removed when the store is next opened.
constexpr std::string_view kIngestFilePrefix = "ingest-";

rocksdb::Slice ToSlice(std::string_view v) { return rocksdb::Slice(v.data(), v.size()); }

// Writes the table file `path` for family `cf`: fill(writer) adds its keys in ascending order.
template <typename Fill>
rocksdb::Status WriteTableFile(const rocksdb::Options& options, rocksdb::ColumnFamilyHandle* cf,
                               const std::string& path, Fill&& fill) {
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), options, cf);
  rocksdb::Status s = writer.Open(path);
  if (s.ok()) s = fill(writer);
  if (s.ok()) s = writer.Finish();
  return s;
}
}  // namespace

struct WriteGroup::Impl {
  struct Op {
    bool put;
    Column column;
    std::string key, value;
    std::string_view borrowed;  // the value when `borrowed_value` (PutBorrowed)
    bool borrowed_value = false;
    std::string_view Value() const { return borrowed_value ? borrowed : std::string_view(value); }
  };
  struct KeysOp { bool put; Column column; std::vector<uint64_t> keys; };
  std::vector<Op> ops;  // applied at KvStore::Write (column handles live in the store)
  std::vector<KeysOp> key_ops;  // applied after ops
};

void EncodeKeyU64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) { out[i] = static_cast<char>(v & 0xff); v >>= 8; }
}

WriteGroup::WriteGroup() : impl_(std::make_unique<Impl>()) {}
WriteGroup::~WriteGroup() = default;
WriteGroup::WriteGroup(WriteGroup&&) noexcept = default;
void WriteGroup::Put(Column column, std::string_view key, std::string_view value) {
  impl_->ops.push_back({true, column, std::string(key), std::string(value), {}, false});
}
void WriteGroup::PutBorrowed(Column column, std::string_view key, std::string_view value) {
  impl_->ops.push_back({true, column, std::string(key), {}, value, true});
}
void WriteGroup::Delete(Column column, std::string_view key) {
  impl_->ops.push_back({false, column, std::string(key), {}, {}, false});
}
void WriteGroup::PutU64Keys(Column column, std::span<const uint64_t> keys) {
  impl_->key_ops.push_back({true, column, std::vector<uint64_t>(keys.begin(), keys.end())});
}
void WriteGroup::DeleteU64Keys(Column column, std::span<const uint64_t> keys) {
  impl_->key_ops.push_back({false, column, std::vector<uint64_t>(keys.begin(), keys.end())});
}
size_t WriteGroup::Count() const {
  size_t n = impl_->ops.size();
  for (const auto& op : impl_->key_ops) n += op.keys.size();
  return n;
}
size_t WriteGroup::ByteSize() const {
  size_t n = 0;
  for (const auto& op : impl_->ops) n += op.key.size() + op.Value().size();
  for (const auto& op : impl_->key_ops) n += op.keys.size() * 8;
  return n;
}
void WriteGroup::Clear() {
  impl_->ops.clear();
  impl_->key_ops.clear();
}

struct KvStore::Impl {
  std::unique_ptr<rocksdb::DB> db;
  std::shared_ptr<rocksdb::Cache> cache;
  rocksdb::DBOptions db_options;
  std::vector<rocksdb::ColumnFamilyOptions> cf_options;  // per Column, for table files we write
  std::atomic<uint64_t> ingest_files{0};  // names the table files written for ingestion
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  ~Impl() {
    for (auto* h : handles) {
      if (db && h) db->DestroyColumnFamilyHandle(h);
    }
    if (db) db->Close();
  }
};

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& dir, const StoreOptions& options) {
  std::error_code ec;
  if (options.create_if_missing && !options.read_only) {
    std::filesystem::create_directories(dir, ec);
    if (ec) return Status::IOError("cannot create workspace folder " + dir + ": " + ec.message());
  }
  rocksdb::Options db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  db_options.max_background_jobs = 2;
  db_options.WAL_ttl_seconds = 0;     // obsolete logs are deleted at once (erasure relies on it)
  db_options.WAL_size_limit_MB = 0;
  db_options.keep_log_file_num = 3;
  db_options.max_total_wal_size = 512ull << 20;
  db_options.recycle_log_file_num = 0;  // recycled logs could keep erased bytes
  // Bounded memory: one block cache for every family (index and filter blocks charged to it,
  // so table readers do not grow with the store) and one budget for all memtables.
  std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(options.block_cache_mb << 20);
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(options.memtable_budget_mb << 20);
  rocksdb::BlockBasedTableOptions table_options;
  table_options.block_cache = cache;
  table_options.cache_index_and_filter_blocks = true;
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (size_t c = 0; c < static_cast<size_t>(Column::kNumColumns); ++c) {
    rocksdb::ColumnFamilyOptions cf;
    cf.compression = rocksdb::kLZ4Compression;
    cf.bottommost_compression = rocksdb::kZSTD;
    if (c == static_cast<size_t>(Column::kEvents) || c == static_cast<size_t>(Column::kEventIds) ||
        c == static_cast<size_t>(Column::kProfiles)) {
      cf.write_buffer_size = options.write_buffer_mb << 20;
      cf.max_write_buffer_number = 3;
      cf.target_file_size_base = 128ull << 20;
      // Level 0 is compacted once it holds ~2 GiB (kLevel0Bytes) of flushes, by file count and by
      // size alike: a bulk load does not spend its CPU on ZSTD while it runs. (Level 0's score
      // is also its size over max_bytes_for_level_base, 256 MiB by default, which made every
      // second 128 MiB flush of a 10M-event ingest start a compaction.)
      constexpr uint64_t kLevel0Bytes = 2ull << 30;
      const auto level0_files = static_cast<int>(std::max<uint64_t>(4, kLevel0Bytes / cf.write_buffer_size));
      cf.level0_file_num_compaction_trigger = level0_files;
      cf.max_bytes_for_level_base = kLevel0Bytes;
      // Flushes write level 0 uncompressed: a flush is on the ingest's path (the last one ends
      // every ingest) and LZ4 was 60% of its CPU; compactions compress (LZ4, ZSTD at the bottom)
      // and no longer decompress their level-0 inputs.
      cf.compression_per_level.assign(static_cast<size_t>(cf.num_levels), rocksdb::kLZ4Compression);
      cf.compression_per_level[0] = rocksdb::kNoCompression;
      cf.level0_slowdown_writes_trigger = level0_files + level0_files / 2;
      cf.level0_stop_writes_trigger = 2 * level0_files + 8;
    }
    if (c == static_cast<size_t>(Column::kEventIds)) {
      // Random 64-bit hashes do not compress. (compression_per_level, set above, overrides
      // `compression`: it must say so for every level.)
      cf.compression = rocksdb::kNoCompression;
      cf.compression_per_level.assign(static_cast<size_t>(cf.num_levels), rocksdb::kNoCompression);
      cf.bottommost_compression = rocksdb::kNoCompression;
    }
    if (c == static_cast<size_t>(Column::kEventIndex)) {
      // Point lookups of mostly absent keys: a bloom filter per file (in the block cache) and
      // one over the memtable answer "absent" without reading a data block.
      rocksdb::BlockBasedTableOptions index_table = table_options;
      index_table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      index_table.whole_key_filtering = true;
      cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(index_table));
      // Keys arrive as ingested table files (EventDedupe), rarely through the memtable (erasure
      // deletes). Lookups are rare (only ids its in-memory filter lets through), so many level-0
      // files are cheap to keep, while merging random keys costs RocksDB ~0.5 us per key
      // (measured: 2.5 CPU-s for 16 files of 256k ids): merge only every 64 files (16M ids).
      cf.memtable_prefix_bloom_size_ratio = 0.02;
      cf.memtable_whole_key_filtering = true;
      cf.write_buffer_size = 4ull << 20;
      cf.level0_file_num_compaction_trigger = 64;
      cf.level0_slowdown_writes_trigger = 160;
      cf.level0_stop_writes_trigger = 200;
      cf.compression = rocksdb::kNoCompression;
      cf.bottommost_compression = rocksdb::kNoCompression;
    } else {
      cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
    }
    descriptors.emplace_back(kColumnNames[c], cf);
  }
  auto store = std::unique_ptr<KvStore>(new KvStore());
  store->impl_ = std::make_unique<Impl>();
  store->dir_ = dir;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options.read_only) {
    s = rocksdb::DB::OpenForReadOnly(db_options, dir, descriptors, &store->impl_->handles, &raw);
  } else if (!std::filesystem::exists(std::filesystem::path(dir) / "CURRENT")) {
    // A new database: its families are created in one step (one options file written, where
    // create_missing_column_families writes one per family: ~40 ms on this machine's disk).
    std::vector<rocksdb::ColumnFamilyDescriptor> first(descriptors.begin(), descriptors.begin() + 1);
    s = rocksdb::DB::Open(db_options, dir, first, &store->impl_->handles, &raw);
    if (s.ok()) {
      std::vector<rocksdb::ColumnFamilyDescriptor> rest(descriptors.begin() + 1, descriptors.end());
      std::vector<rocksdb::ColumnFamilyHandle*> created;
      s = raw->CreateColumnFamilies(rest, &created);
      store->impl_->handles.insert(store->impl_->handles.end(), created.begin(), created.end());
      if (!s.ok()) {
        for (auto* h : store->impl_->handles) raw->DestroyColumnFamilyHandle(h);
        store->impl_->handles.clear();
        delete raw;
        raw = nullptr;
      }
    }
  } else {
    s = rocksdb::DB::Open(db_options, dir, descriptors, &store->impl_->handles, &raw);
  }
  if (!s.ok()) {
    std::string hint = s.IsIOError() && s.ToString().find("lock") != std::string::npos
                           ? " (another shoal process is using this workspace -- a running "
                             "`shoal serve` holds it: rebuild through the server with POST "
                             "/v1/rebuild, see docs/server.md)"
                           : "";
    return Status::IOError("cannot open workspace " + dir + ": " + s.ToString() + hint);
  }
  store->impl_->db.reset(raw);
  if (!options.read_only) {
    // Left by a process killed between writing a table file and ingesting it (the store's lock,
    // held now, keeps another process's files out of reach).
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.starts_with(kIngestFilePrefix) && name.ends_with(".sst")) std::filesystem::remove(entry.path(), ec);
    }
  }
  store->impl_->cache = std::move(cache);
  store->impl_->db_options = db_options;
  for (const auto& d : descriptors) store->impl_->cf_options.push_back(d.options);
  return store;
}

KvStore::~KvStore() = default;

Status KvStore::Write(WriteGroup& group, bool sync) {
  // Reserved at its final size (RocksDB's record headers: at most 32 bytes an entry), so a
  // block of megabytes is copied in once instead of through repeated doublings.
  rocksdb::WriteBatch batch(group.ByteSize() + 32 * (group.Count() + 1));
  for (const auto& op : group.impl_->ops) {
    auto* h = impl_->handles[static_cast<size_t>(op.column)];
    rocksdb::Status s = op.put ? batch.Put(h, ToSlice(op.key), ToSlice(op.Value()))
                               : batch.Delete(h, ToSlice(op.key));
    if (!s.ok()) return FromRocks(s, "batch");
  }
  char key[8];
  for (const auto& op : group.impl_->key_ops) {
    auto* h = impl_->handles[static_cast<size_t>(op.column)];
    for (uint64_t k : op.keys) {
      EncodeKeyU64(k, key);
      rocksdb::Status s = op.put ? batch.Put(h, rocksdb::Slice(key, 8), rocksdb::Slice())
                                 : batch.Delete(h, rocksdb::Slice(key, 8));
      if (!s.ok()) return FromRocks(s, "batch");
    }
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(impl_->db->Write(wo, &batch), "write to " + dir_);
}

Status KvStore::Put(Column column, std::string_view key, std::string_view value, bool sync) {
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return FromRocks(impl_->db->Put(wo, impl_->handles[static_cast<size_t>(column)], ToSlice(key),
                                  ToSlice(value)),
                   "write to " + dir_);
}

Status KvStore::Get(Column column, std::string_view key, std::string* value) const {
  return FromRocks(impl_->db->Get(rocksdb::ReadOptions(), impl_->handles[static_cast<size_t>(column)],
                                  ToSlice(key), value),
                   "key not found");
}

Status KvStore::ContainsU64Keys(Column column, std::span<const uint64_t> keys,
                                std::vector<uint8_t>* found) const {
  const size_t n = keys.size();
  found->assign(n, 0);
  if (n == 0) return Status::OK();
  std::vector<char> key_bytes(n * 8);
  std::vector<rocksdb::Slice> key_slices(n);
  for (size_t i = 0; i < n; ++i) {
    EncodeKeyU64(keys[i], key_bytes.data() + i * 8);
    key_slices[i] = rocksdb::Slice(key_bytes.data() + i * 8, 8);
  }
  std::vector<rocksdb::PinnableSlice> values(n);
  std::vector<rocksdb::Status> statuses(n);
  bool sorted = std::is_sorted(keys.begin(), keys.end());
  impl_->db->MultiGet(rocksdb::ReadOptions(), impl_->handles[static_cast<size_t>(column)], n,
                      key_slices.data(), values.data(), statuses.data(), sorted);
  for (size_t i = 0; i < n; ++i) {
    if (statuses[i].ok()) {
      (*found)[i] = 1;
    } else if (!statuses[i].IsNotFound()) {
      return FromRocks(statuses[i], "lookup in " + dir_);
    }
  }
  return Status::OK();
}

std::string KvStore::NextIngestPath() {
  return (std::filesystem::path(dir_) / (std::string(kIngestFilePrefix) + std::to_string(++impl_->ingest_files) + ".sst")).string();
}

Status KvStore::IngestSortedU64Keys(Column column, std::span<const uint64_t> sorted_keys) {
  if (sorted_keys.empty()) return Status::OK();
  const size_t c = static_cast<size_t>(column);
  const std::string path = NextIngestPath();
  rocksdb::Status s = WriteTableFile(rocksdb::Options(impl_->db_options, impl_->cf_options[c]), impl_->handles[c],
                                     path, [&](rocksdb::SstFileWriter& writer) {
                                       char key[8];
                                       rocksdb::Status put;
                                       for (size_t i = 0; i < sorted_keys.size() && put.ok(); ++i) {
                                         EncodeKeyU64(sorted_keys[i], key);
                                         put = writer.Put(rocksdb::Slice(key, 8), rocksdb::Slice());
                                       }
                                       return put;
                                     });
  if (s.ok()) {
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;
    s = impl_->db->IngestExternalFile(impl_->handles[c], {path}, io);
  }
  std::error_code ec;
  std::filesystem::remove(path, ec);  // moved (hard-linked) into the store, or failed
  return FromRocks(s, "ingest of " + path);
}

Status KvStore::IngestTables(std::span<const TableRecord> records) {
  if (records.empty()) return Status::OK();
  std::vector<rocksdb::IngestExternalFileArg> args;
  rocksdb::Status s;
  for (size_t begin = 0; begin < records.size() && s.ok();) {
    const Column column = records[begin].column;
    size_t end = begin + 1;
    while (end < records.size() && records[end].column == column) ++end;
    const size_t c = static_cast<size_t>(column);
    rocksdb::Options options(impl_->db_options, impl_->cf_options[c]);
    // Written as level 0 flushes are (the writer would otherwise use the bottommost ZSTD: the
    // file is meant for the last level).
    options.compression = rocksdb::kNoCompression;
    options.bottommost_compression = rocksdb::kDisableCompressionOption;
    options.compression_per_level.clear();
    rocksdb::IngestExternalFileArg arg;
    arg.column_family = impl_->handles[c];
    arg.external_files = {NextIngestPath()};
    arg.options.move_files = true;
    s = WriteTableFile(options, arg.column_family, arg.external_files[0], [&](rocksdb::SstFileWriter& writer) {
      rocksdb::Status put;
      for (size_t i = begin; i < end && put.ok(); ++i) {
        put = records[i].put ? writer.Put(ToSlice(records[i].key), ToSlice(records[i].value))
                             : writer.Delete(ToSlice(records[i].key));
      }
      return put;
    });
    args.push_back(std::move(arg));
    begin = end;
  }
  if (s.ok()) s = impl_->db->IngestExternalFiles(args);
  std::error_code ec;
  for (const auto& arg : args) std::filesystem::remove(arg.external_files[0], ec);  // moved into the store, or failed
  return FromRocks(s, "ingest of table files in " + dir_);
}

Status KvStore::WriteAsTables(const WriteGroup& group) {
  std::vector<TableRecord> records;
  records.reserve(group.Count());
  for (const auto& op : group.impl_->ops) records.push_back({op.column, op.key, op.Value(), op.put});
  std::vector<char> u64_keys(8 * (group.Count() - group.impl_->ops.size()));
  size_t at = 0;
  for (const auto& op : group.impl_->key_ops) {
    for (uint64_t k : op.keys) {
      EncodeKeyU64(k, u64_keys.data() + at);
      records.push_back({op.column, std::string_view(u64_keys.data() + at, 8), {}, op.put});
      at += 8;
    }
  }
  // By column and key, the writes of one key in their order; then only the last of each key.
  std::stable_sort(records.begin(), records.end(), [](const TableRecord& a, const TableRecord& b) {
    return a.column != b.column ? a.column < b.column : a.key < b.key;
  });
  size_t kept = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (i + 1 < records.size() && records[i + 1].column == records[i].column && records[i + 1].key == records[i].key) {
      continue;
    }
    records[kept++] = records[i];
  }
  records.resize(kept);
  return IngestTables(records);
}

Status KvStore::LastKey(Column column, std::string* key) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->handles[static_cast<size_t>(column)]));
  it->SeekToLast();
  if (!it->Valid()) {
    SHOAL_RETURN_IF_ERROR(FromRocks(it->status(), "scan of " + dir_));
    return Status::NotFound("empty column");
  }
  key->assign(it->key().data(), it->key().size());
  return Status::OK();
}

Status KvStore::Scan(Column column, std::string_view start,
                     const std::function<Result<bool>(std::string_view, std::string_view)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(ro, impl_->handles[static_cast<size_t>(column)]));
  for (it->Seek(ToSlice(start)); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    Result<bool> more = fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  return FromRocks(it->status(), "scan of " + dir_);
}

Status KvStore::SyncWal() {
  return FromRocks(impl_->db->SyncWAL(), "sync of the write-ahead log of " + dir_);
}

Status KvStore::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(impl_->db->Flush(fo, impl_->handles), "flush of " + dir_);
}

Status KvStore::CompactAll() {
  SHOAL_RETURN_IF_ERROR(Flush());
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* h : impl_->handles) {
    SHOAL_RETURN_IF_ERROR(FromRocks(impl_->db->CompactRange(co, h, nullptr, nullptr), "compaction"));
  }
  SHOAL_RETURN_IF_ERROR(FromRocks(impl_->db->FlushWAL(true), "WAL flush"));
  // A fresh memtable switch after the flush lets RocksDB drop every older WAL file.
  SHOAL_RETURN_IF_ERROR(Flush());
  SHOAL_RETURN_IF_ERROR(FromRocks(impl_->db->EnableFileDeletions(/*force=*/true), "file deletions"));
  return Status::OK();
}

StoreMemory KvStore::Memory() const {
  StoreMemory m;
  uint64_t v = 0;
  for (auto* h : impl_->handles) {
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kCurSizeAllMemTables, &v)) m.memtables += v;
    if (impl_->db->GetIntProperty(h, rocksdb::DB::Properties::kEstimateTableReadersMem, &v)) m.table_readers += v;
  }
  m.block_cache = impl_->cache ? impl_->cache->GetUsage() : 0;
  return m;
}

uint64_t KvStore::DiskBytes() const {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (entry.is_regular_file(ec)) total += entry.file_size(ec);
  }
  return total;
}

std::string KeyU64(uint64_t v) {
  std::string k(8, '\0');
  for (int i = 7; i >= 0; --i) { k[i] = static_cast<char>(v & 0xff); v >>= 8; }
  return k;
}
std::string KeyU32(uint32_t v) {
  std::string k(4, '\0');
  for (int i = 3; i >= 0; --i) { k[i] = static_cast<char>(v & 0xff); v >>= 8; }
  return k;
}
uint64_t DecodeKeyU64(std::string_view key) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) v = (v << 8) | static_cast<unsigned char>(key[i]);
  return v;
}
uint32_t DecodeKeyU32(std::string_view key) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4 && i < key.size(); ++i) v = (v << 8) | static_cast<unsigned char>(key[i]);
  return v;
}

}  // namespace shoal
