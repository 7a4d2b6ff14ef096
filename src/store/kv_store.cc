#include "store/kv_store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <filesystem>
#include <vector>

namespace shoal {

namespace {
const char* const kColumnNames[] = {"default", "events", "event_ids", "profiles",
                                    "identity", "merges", "models", "suppressed"};
static_assert(std::size(kColumnNames) == static_cast<size_t>(Column::kNumColumns));

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  if (s.IsNotFound()) return Status::NotFound(std::string(what));
  if (s.IsCorruption()) return Status::Corruption(std::string(what) + ": " + s.ToString());
  return Status::IOError(std::string(what) + ": " + s.ToString());
}
rocksdb::Slice ToSlice(std::string_view v) { return rocksdb::Slice(v.data(), v.size()); }
}  // namespace

struct WriteGroup::Impl {
  struct Op { bool put; Column column; std::string key, value; };
  std::vector<Op> ops;  // applied at KvStore::Write (column handles live in the store)
};

WriteGroup::WriteGroup() : impl_(std::make_unique<Impl>()) {}
WriteGroup::~WriteGroup() = default;
WriteGroup::WriteGroup(WriteGroup&&) noexcept = default;
void WriteGroup::Put(Column column, std::string_view key, std::string_view value) {
  impl_->ops.push_back({true, column, std::string(key), std::string(value)});
}
void WriteGroup::Delete(Column column, std::string_view key) {
  impl_->ops.push_back({false, column, std::string(key), {}});
}
size_t WriteGroup::Count() const { return impl_->ops.size(); }
size_t WriteGroup::ByteSize() const {
  size_t n = 0;
  for (const auto& op : impl_->ops) n += op.key.size() + op.value.size();
  return n;
}
void WriteGroup::Clear() { impl_->ops.clear(); }

struct KvStore::Impl {
  std::unique_ptr<rocksdb::DB> db;
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
    }
    if (c == static_cast<size_t>(Column::kEventIds)) {
      cf.compression = rocksdb::kNoCompression;  // random 64-bit hashes do not compress
      cf.bottommost_compression = rocksdb::kNoCompression;
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
  return store;
}

KvStore::~KvStore() = default;

Status KvStore::Write(WriteGroup& group, bool sync) {
  rocksdb::WriteBatch batch;
  for (const auto& op : group.impl_->ops) {
    auto* h = impl_->handles[static_cast<size_t>(op.column)];
    rocksdb::Status s = op.put ? batch.Put(h, ToSlice(op.key), ToSlice(op.value))
                               : batch.Delete(h, ToSlice(op.key));
    if (!s.ok()) return FromRocks(s, "batch");
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
