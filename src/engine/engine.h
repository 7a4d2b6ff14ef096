// Engine: the one facade the CLI, the server and the tests drive. It owns a workspace: the
// RocksDB store, the identity graph, every profile's trait state and the shop-wide state.
//
// Durability: an ingest batch is acknowledged (Ingest/Apply return, the server answers 2xx) only
// once its events are in the write-ahead log, fsynced. Profile state is derived from the stored
// events and checkpointed; after a crash, Open() replays the blocks written after the last
// checkpoint, and event-id dedupe makes a repeated ingest count every event exactly once.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/flat_hash.h"
#include "common/status.h"
#include "engine/event_dedupe.h"
#include "engine/workspace.h"
#include "identity/identity_graph.h"
#include "ingest/quarantine.h"
#include "ingest/reader.h"
#include "store/kv_store.h"
#include "traits/catalogue.h"
#include "traits/customer_state.h"
#include "traits/population_state.h"
#include "traits/state_slots.h"

namespace shoal {

class BackgroundTask;  // engine.cc: one worker thread for Ingest's store writes

struct EngineOptions {
  std::string db_dir = "./shoal-data";  // the workspace folder
  std::string config_path;              // workspace TOML; "" = <db_dir>/shoal.toml if present
  size_t block_events = 65536;          // events per stored block (and per fsync on ingest)
  size_t checkpoint_blocks = 64;        // checkpoint profile state every this many blocks
  // A block stored durably with at least this many events (an ingest's) is written as table
  // files ingested into the store, bypassing the write-ahead log and the memtables; smaller
  // ones (the server's) go through the log.
  size_t table_block_events = 4096;
  // Workers that apply a batch of at least 1,024 events to the profile states (the identity
  // graph stays serial): the states are the same for any number. 1 suits an ingest, whose
  // parse and store threads keep the other core busy; the server's committer uses 2.
  int apply_threads = 1;
  bool read_only = false;               // open without writing (exports beside a server)
  bool must_exist = false;              // NotFound instead of creating an empty workspace
  DedupeOptions dedupe;                 // event-id dedupe memory (event_dedupe.h)
};

// Progress of a long operation, reported from the working thread.
struct Progress {
  uint64_t records = 0, events = 0, bad = 0, bytes = 0, bytes_total = 0;
  double seconds = 0;
  std::string source;
};
using ProgressFn = std::function<void(const Progress&)>;

struct IngestOptions {
  std::string quarantine_path;   // "" = <db_dir>/quarantine.jsonl
};

// Where the engine's resident memory goes (bytes). The store's own memory (memtables, block
// cache, table readers) is reported apart: RocksDB bounds it by StoreOptions.
struct MemoryBreakdown {
  size_t dedupe = 0;            // event-id dedupe structure
  size_t identity = 0;          // identity graph: identifiers, arena, index, profile lists
  size_t states_inline = 0;     // StateSlots: slot index and the states' sizeof * capacity
  size_t states_heap = 0;       // the states' own vectors (orders, windows, categories, ...)
  size_t other = 0;             // dirty flags and lists, suppression set
  StoreMemory store;            // RocksDB: memtables, block cache, table readers
  size_t Total() const { return dedupe + identity + states_inline + states_heap + other; }
};

struct IngestSummary {
  uint64_t records = 0;          // records read (lines / rows / baskets)
  uint64_t events = 0;           // good events parsed
  uint64_t bad = 0;              // quarantined records
  uint64_t duplicates = 0;       // events whose id was already stored (skipped)
  uint64_t suppressed = 0;       // events of forgotten people (skipped)
  uint64_t stored = 0;           // new events stored
  uint64_t anonymous_baskets = 0;  // stored events with no identifier (baskets)
  uint64_t profiles = 0;         // alive profiles after the ingest
  uint64_t merges = 0;           // profile merges during the ingest
  double seconds = 0;
  size_t state_bytes = 0;        // resident bytes of identity, traits and dedupe state after it
  MemoryBreakdown memory;        // the same, item by item, and the store's own memory
  std::vector<std::pair<std::string, uint64_t>> bad_by_reason;
  std::string quarantine_path;
  std::vector<std::string> unreadable_sources;  // sources that could not be opened at all
};

// What Apply did with each event of a batch.
enum class ApplyOutcome : uint8_t { kStored, kDuplicate, kSuppressed };

struct ForgetSummary {
  uint64_t events_removed = 0;
  uint64_t references_scrubbed = 0;  // other people's events that named them (e.g. referee)
  std::vector<std::pair<IdKind, std::string>> identifiers;
};

// Traits of all alive profiles as of a time, with their display ids.
struct TraitTable {
  std::vector<uint32_t> profiles;        // profile idx per row
  std::vector<std::string> customer_ids; // display id per row
  TraitMatrix matrix;                    // rows = profiles
};

// One snapshot of Engine::ReplayAsOf: the alive profiles as of a time, from the events stored
// with a timestamp before it (identity too), as ComputeTraits(as_of) computes them.
struct AsOfSnapshot {
  TimeMicros as_of = 0;
  TraitTable table;                          // traits as of as_of; profiles are the replay's slots
  std::vector<const CustomerState*> states;  // per row: its state (events before as_of only)
  std::vector<uint32_t> current_profiles;    // per row: the profile holding its identifiers now
                                             // (kNoProfile when they were forgotten)
};

class Engine {
 public:
  // Opens (creating if needed) the workspace; replays blocks written after the last checkpoint;
  // if the workspace config changed the shape of traits, rebuilds all state from the events.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options, const Context& ctx);
  ~Engine();

  // Reads the sources, quarantining bad records, and stores and applies the good events.
  // A source that cannot be read is listed in unreadable_sources and the others go on.
  Result<IngestSummary> Ingest(const std::vector<SourceSpec>& sources, const IngestOptions& options,
                               const ProgressFn& progress);
  // Stores (durably when sync) and applies one batch of parsed events (the server's path).
  // Duplicates and events of forgotten people are skipped and counted. `outcomes` non-null:
  // resized to the batch and given each event's fate (the server answers several requests
  // applied as one batch from it); unspecified on error. `profiles` non-null: resized to the
  // batch and given, per stored event, the profile slot it was applied to (kNoProfile for the
  // events not stored and for anonymous baskets); a later merge in the batch may have absorbed
  // that profile since.
  Result<IngestSummary> Apply(EventBatch& batch, bool sync,
                              std::vector<ApplyOutcome>* outcomes = nullptr,
                              std::vector<uint32_t>* profiles = nullptr);
  // Writes dirty profiles, identity and shop-wide state atomically and durably. as_tables: as
  // table files the store ingests (KvStore::WriteAsTables), not through the log and a memtable
  // that a flush writes again: for a checkpoint of many profiles (an ingest's, a replay's).
  Status Checkpoint(bool as_tables = false);
  // For a process about to end without freeing its memory (std::_Exit after an ingest): closes
  // the store the RocksDB way (background work finished, files closed) when no snapshot shares
  // it. Everything the engine acknowledged is already durable; after this call the engine may
  // only be destroyed.
  void CloseStoreForExit() { store_.reset(); }

  // Checkpoint() in steps, for a caller whose thread is the only one that mutates this engine
  // (the server's writer), so that readers are not held off while the snapshot is serialized
  // and synced: PrepareCheckpoint only reads (other threads may read the engine meanwhile),
  // the caller writes `group` with store().Write(group, /*sync=*/true), and on success
  // FinishCheckpoint (a mutation: exclusive access) marks the profiles clean. No event may be
  // applied between the two calls. Does nothing useful read-only (group stays empty).
  struct PendingCheckpoint {
    WriteGroup group;
    uint64_t seq = 0;           // blocks <= seq are in the group
    size_t dirty_profiles = 0;  // leading entries of the dirty list written
    size_t merges = 0;          // leading buffered merge records written
  };
  void PrepareCheckpoint(PendingCheckpoint* out) const;
  void FinishCheckpoint(const PendingCheckpoint& done);

  // Profile of any identifier, or kNoProfile.
  uint32_t FindProfile(std::string_view identifier) const;
  // The profile as JSON: identifiers, every trait (as of `as_of`, default now).
  // with_build: also the last build's stored rfm, segment, audiences, scores and recommendations
  // for the profile (loads the whole build: O(profiles); the server adds its live ones instead).
  Result<std::string> ProfileJson(std::string_view identifier, std::optional<TimeMicros> as_of,
                                  bool with_build = true) const;
  // Traits of every alive profile. With as_of, state is rebuilt from the events at or before it
  // (identity too), so nothing later leaks in.
  Result<TraitTable> ComputeTraits(std::optional<TimeMicros> as_of,
                                   const TraitSelection* selection = nullptr) const;
  // Calls fn with a snapshot as of each time in `as_ofs` (strictly ascending), in order, from ONE
  // growing replay: each stored event is applied once, before the first snapshot it precedes.
  // The first pass decodes every block and records its time range; later passes decode only
  // blocks holding events of their interval, so time-ordered stores are decoded about once.
  // With ctx.Threads() > 1 a second thread decodes one block ahead (results are the same).
  // The snapshot (and the states it points to) is valid only during the call. Equivalent to
  // ComputeTraits(as_of) per time except for the numbering of profile slots. InvalidArgument
  // for times not strictly ascending; store errors and fn's errors are returned.
  Status ReplayAsOf(std::span<const TimeMicros> as_ofs,
                    const std::function<Status(const AsOfSnapshot&)>& fn) const;
  // Writes a CSV: customer_id and every trait, one row per profile, then the last build's
  // segment and score columns (BuildExportColumns) when a build exists; empty with as_of.
  // With `columns` (trait names and/or build column names), only those, in that order
  // (InvalidArgument names an unknown one); rows are formatted on ctx.threads.
  Status ExportCsv(const std::string& path, std::optional<TimeMicros> as_of,
                   const std::vector<std::string>& columns = {}) const;

  // Erases a person: their events, identifiers, profile, and references to them in others'
  // events; their identifiers are suppressed (keyed hash) so a re-ingest does not bring them
  // back; the store is compacted so no byte of their identifiers remains in the folder.
  Result<ForgetSummary> Forget(std::string_view identifier);

  // A copy of the in-memory state (identity, profiles, shop-wide state, config) over the same
  // store, for a long read beside a live writer (the server's rebuild runs RunBuild on it): the
  // caller holds whatever keeps this engine still while it copies, O(profiles). The copy shares
  // the store (and keeps it open), has no event-id dedupe set (it must not ingest), never
  // checkpoints, and runs with `ctx` (a fixed clock fixes its DefaultAsOf).
  std::unique_ptr<Engine> SnapshotForRead(const Context& ctx) const;

  // Calls fn for every stored event batch (one block at a time), in storage order.
  Status ForEachStoredBatch(const std::function<Status(const EventBatch&)>& fn) const;

  const WorkspaceConfig& config() const { return config_; }
  const IdentityGraph& identity() const { return identity_; }
  const TraitCatalogue& catalogue() const { return *catalogue_; }
  const PopulationState& population() const { return population_; }
  const CustomerState& state(uint32_t profile) const { return states_[profile]; }
  KvStore& store() { return *store_; }
  const KvStore& const_store() const { return *store_; }
  bool read_only() const { return options_.read_only; }
  const Context& context() const { return ctx_; }
  // Events stored (a counter kept with every block, so exact after a crash or reopen).
  uint64_t num_events() const { return num_events_; }
  // The time traits are computed at by default: ctx.clock if set, else the latest event time
  // stored (so a historical export like CDNOW reads sensibly), else the wall clock.
  TimeMicros DefaultAsOf() const;
  // Resident bytes of the in-memory state (identity, traits, dedupe set); the store apart.
  size_t MemoryBytes() const;
  MemoryBreakdown Memory() const;

 private:
  Engine() = default;
  // In-memory derived state, rebuilt by replay.
  struct Derived {
    IdentityGraph identity;
    StateSlots states;
    PopulationState population;
  };
  Status LoadState();
  Status ExportColumnsCsv(const std::string& path, std::optional<TimeMicros> as_of,
                          const std::vector<std::string>& columns) const;
  // Reads the stored event count and loads the dedupe layers.
  Status LoadEventIndex();
  Status ReplayFrom(uint64_t first_seq);
  Status RebuildAll();
  // Applies already-stored events to identity and traits.
  // `profile_of` non-null: profile_of[idx] = the profile event idx was applied to.
  void ApplyStored(const EventBatch& batch, std::span<const uint32_t> indices,
                   uint32_t* profile_of = nullptr);
  Status StoreBlock(const EventBatch& batch, std::span<const uint32_t> indices, bool sync);
  // Suppression and event-id dedupe of a batch: the events to store go to kept_scratch_;
  // counts (events, duplicates, suppressed, anonymous baskets) are added to *summary.
  Status SelectNew(const EventBatch& batch, IngestSummary* summary);
  // The pipeline of an ingest fills and drains with short batches: the first has
  // kFirstBatchEvents events, each next one twice as many up to block_events, and near the end
  // of a file of known size at most half the events still to come (never below the first).
  static constexpr size_t kFirstBatchEvents = 8192;
  size_t NextBatchEvents(size_t last, const ReadStats& read, uint64_t bytes_total) const;
  // Apply() for Ingest: StoreBlock runs on store_worker while this thread applies the events;
  // returns once the block is durable. Adds stored/duplicates/suppressed/baskets to *total.
  Status ApplyPipelined(EventBatch& batch, BackgroundTask* store_worker, IngestSummary* total);
  bool IsSuppressed(const Event& e) const;
  uint64_t SuppressionKey(IdKind kind, std::string_view value) const;
  // Replays stored events up to as_of into a fresh Derived.
  Status ReplayInto(Derived* derived, std::optional<TimeMicros> as_of) const;
  // The alive profiles' traits; with a `selection`, only those traits (the others NaN).
  TraitTable TableOf(const IdentityGraph& identity, const StateSlots& states,
                     const PopulationState& population, TimeMicros as_of,
                     const TraitSelection* selection = nullptr) const;

  EngineOptions options_;
  Context ctx_;
  WorkspaceConfig config_;
  std::shared_ptr<KvStore> store_;      // shared with SnapshotForRead copies
  std::unique_ptr<TraitCatalogue> catalogue_;
  IdentityGraph identity_;
  StateSlots states_;  // per profile slot (dead slots hold no state)
  PopulationState population_;
  std::vector<uint8_t> dirty_;          // per profile slot: changed since the last checkpoint
  std::vector<uint32_t> dirty_list_;
  uint64_t num_events_ = 0;             // stored events (kMeta num_events)
  std::unique_ptr<EventDedupe> dedupe_;  // which event ids are stored (bounded memory)
  // Dedupe scratch, reused per batch.
  FlatSetU64 batch_ids_;                 // id hashes seen in the batch being applied
  std::vector<uint64_t> dedupe_keys_;    // distinct id hashes of the batch
  std::vector<uint32_t> dedupe_first_;   // event idx of each distinct id's first occurrence
  std::vector<uint8_t> dedupe_found_;    // per distinct id: already stored
  std::vector<uint8_t> dedupe_keep_;     // per event of the batch: store it
  FlatSetU64 suppressed_;               // keyed hashes of forgotten identifiers
  uint64_t suppression_salt_ = 0;
  uint64_t next_seq_ = 1;               // next block sequence number
  uint64_t checkpoint_seq_ = 0;         // blocks <= this are reflected in stored profiles
  uint64_t blocks_since_checkpoint_ = 0;
  TimeMicros latest_event_ = 0;
  std::vector<MergeRecord> merges_scratch_;
  std::vector<uint32_t> kept_scratch_;
  std::string block_scratch_;
  Status broken_;  // not OK once memory holds events a failed store write left out
};

}  // namespace shoal
