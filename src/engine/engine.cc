#include "engine/engine.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "common/coding.h"
#include "common/json_writer.h"
#include "common/parallel.h"
#include "common/time.h"
#include "engine/build.h"
#include "store/event_codec.h"

namespace shoal {

namespace {

constexpr std::string_view kMetaVersion = "version";
constexpr std::string_view kMetaCheckpointSeq = "checkpoint_seq";
constexpr std::string_view kMetaProfileSlots = "profile_slots";
constexpr std::string_view kMetaFingerprint = "config_fingerprint";
constexpr std::string_view kMetaSalt = "suppression_salt";
constexpr std::string_view kMetaIdentity = "identity_counters";
constexpr std::string_view kMetaPopulation = "population";
constexpr std::string_view kMetaLatestEvent = "latest_event";
constexpr std::string_view kMetaMergeSeq = "merge_seq";
// Stored events, counted through block kMetaNumEventsThrough: blocks after it (a block ingested
// as a table file, whose count is written after it) are added when the workspace opens. A
// workspace without the second key counted every block with the block itself.
constexpr std::string_view kMetaNumEvents = "num_events";
constexpr std::string_view kMetaNumEventsThrough = "num_events_through";

constexpr std::string_view kStoreVersion = "1";

std::string U64Value(uint64_t v) {
  std::string s;
  PutVarint(&s, v);
  return s;
}
uint64_t ParseU64Value(std::string_view s) {
  Reader r(s);
  return r.Varint();
}

// Folds the states of the profiles merged by one event (merges[from, end)) into their
// survivors, in order, telling `touched` of both sides.
template <typename Touch>
void AbsorbMerges(StateSlots& states, const std::vector<MergeRecord>& merges, size_t from,
                  Touch&& touched) {
  for (size_t m = from; m < merges.size(); ++m) {
    states.Absorb(merges[m].survivor, merges[m].absorbed);
    touched(merges[m].survivor);
    touched(merges[m].absorbed);
  }
}

// Whether applying `e` writes the population state shared by all profiles (category ids and
// unit prices, CustomerState::Update): such an event is never applied beside another.
bool WritesPopulation(const Event& e, const EventBatch& batch) {
  if (!e.category.empty()) return true;
  for (const OrderLine& line : batch.Lines(e)) {
    if (!line.category.empty()) return true;
  }
  return false;
}

// A batch of at least this many events is applied by `threads` workers (ApplyEvents).
constexpr size_t kParallelApplyMinEvents = 1024;

// The parallel apply of ApplyEvents: each event is resolved to its profile in order (the
// identity graph is serial), and the state updates of a run of events that neither merge
// profiles nor write the population state are spread over the workers by profile. Every
// state sees its events in their order and nothing else is shared, so the states are the
// serial apply's, bit for bit, for any number of workers. A merge, or an event that writes the
// population, ends the run: the run is applied, then that event alone, in order.
template <typename Touch>
void ApplyEventsParallel(IdentityGraph& identity, StateSlots& states,
                         PopulationState& population, const TraitConfig& traits,
                         const EventBatch& batch, std::span<const uint32_t> indices,
                         std::vector<MergeRecord>* merges, TimeMicros* latest,
                         uint32_t* profile_of, Touch&& touched, int threads) {
  std::vector<uint32_t> run_events, run_profiles;  // the run: event index and its profile
  std::vector<CustomerState*> run_states;
  std::vector<std::vector<uint32_t>> lanes(static_cast<size_t>(threads));  // run positions per worker
  run_events.reserve(indices.size());
  run_profiles.reserve(indices.size());
  auto apply_run = [&]() {
    if (run_events.empty()) return;
    // Every state of the run exists (Mutable at resolve time), so none moves from here on.
    run_states.resize(run_events.size());
    for (size_t k = 0; k < run_events.size(); ++k) run_states[k] = &states.Mutable(run_profiles[k]);
    const int workers = run_events.size() >= kParallelApplyMinEvents ? threads : 1;
    for (auto& lane : lanes) lane.clear();
    for (size_t k = 0; k < run_events.size(); ++k) {
      lanes[run_profiles[k] % static_cast<uint32_t>(workers)].push_back(static_cast<uint32_t>(k));
    }
    ParallelFor(
        static_cast<size_t>(workers), workers,
        [&](size_t begin, size_t end, int) {
          constexpr size_t kAhead = 4;  // states fetched ahead, as in the serial apply
          for (size_t w = begin; w < end; ++w) {
            const std::vector<uint32_t>& lane = lanes[w];
            for (size_t i = 0; i < lane.size(); ++i) {
              if (i + 2 * kAhead < lane.size()) run_states[lane[i + 2 * kAhead]]->Prefetch(0);
              if (i + kAhead < lane.size()) run_states[lane[i + kAhead]]->Prefetch(1);
              if (i + kAhead / 2 < lane.size()) {
                const uint32_t later = lane[i + kAhead / 2];
                const Event& e = batch.events[run_events[later]];
                if (e.Is(EventType::kOrder)) run_states[later]->PrefetchOrderAt(e.timestamp);
              }
              const uint32_t k = lane[i];
              run_states[k]->Update(batch.events[run_events[k]], batch, population, traits);
            }
          }
        },
        /*min_per_worker=*/1);
    run_events.clear();
    run_profiles.clear();
  };
  for (const uint32_t idx : indices) {
    const Event& e = batch.events[idx];
    const size_t merges_before = merges->size();
    const uint32_t profile = identity.Resolve(e, merges);
    if (profile_of != nullptr) profile_of[idx] = profile;
    if (identity.num_slots() > states.size()) states.resize(identity.num_slots());
    if (e.timestamp > *latest) *latest = e.timestamp;
    if (merges->size() > merges_before || WritesPopulation(e, batch)) {
      apply_run();  // the states absorbed and the population see every earlier event first
      AbsorbMerges(states, *merges, merges_before, touched);
      if (profile == kNoProfile) continue;
      states.Mutable(profile).Update(e, batch, population, traits);
      touched(profile);
      continue;
    }
    if (profile == kNoProfile) continue;  // an anonymous basket: stored, no profile
    states.Mutable(profile);  // placed now: the state array may grow only before the run's apply
    run_events.push_back(idx);
    run_profiles.push_back(profile);
    touched(profile);
  }
  apply_run();
}

// Applies stored events to identity and traits; merges combine states exactly. `touched` is
// called for every profile slot whose state changed (absorbed ones included). A batch of at
// least kParallelApplyMinEvents is applied by `threads` workers (ApplyEventsParallel), with
// the same result.
template <typename Touch>
void ApplyEvents(IdentityGraph& identity, StateSlots& states,
                 PopulationState& population, const TraitConfig& traits, const EventBatch& batch,
                 std::span<const uint32_t> indices, std::vector<MergeRecord>* merges,
                 TimeMicros* latest, uint32_t* profile_of, Touch&& touched, int threads = 1) {
  if (threads > 1 && indices.size() >= kParallelApplyMinEvents) {
    ApplyEventsParallel(identity, states, population, traits, batch, indices, merges, latest,
                        profile_of, touched, threads);
    return;
  }
  // The states of a batch's customers are scattered over memory and mostly not in cache: the
  // profile of the event kAhead * 2 positions on is looked up (read-only; merges on the way
  // only make the guess stale, never the result wrong) and its state fetched, then, kAhead on,
  // what that state points to (CustomerState::Prefetch), and kAhead / 2 on, for an order, the
  // lines where it may land, so an update seldom waits for memory.
  constexpr size_t kAhead = 4;
  uint32_t ahead[2 * kAhead];
  auto guess = [&](size_t pos) {
    const Event& e = batch.events[indices[pos]];
    uint32_t p = kNoProfile;
    if (!e.customer_id.empty()) p = identity.Find(IdKind::kCustomerId, e.customer_id);
    if (p == kNoProfile && !e.email.empty()) p = identity.Find(IdKind::kEmail, e.email);
    return p < states.size() ? p : kNoProfile;
  };
  for (size_t pos = 0; pos < indices.size(); ++pos) {
    if (pos + 2 * kAhead < indices.size()) {
      const uint32_t p = guess(pos + 2 * kAhead);
      ahead[(pos + 2 * kAhead) % (2 * kAhead)] = p;
      if (p != kNoProfile) states[p].Prefetch(0);
    }
    if (pos >= kAhead && pos + kAhead < indices.size()) {
      const uint32_t p = ahead[(pos + kAhead) % (2 * kAhead)];
      if (p != kNoProfile && p < states.size()) states[p].Prefetch(1);
    }
    if (pos >= kAhead + kAhead / 2 && pos + kAhead / 2 < indices.size()) {
      const Event& later = batch.events[indices[pos + kAhead / 2]];
      const uint32_t p = ahead[(pos + kAhead / 2) % (2 * kAhead)];
      if (later.Is(EventType::kOrder) && p != kNoProfile && p < states.size()) {
        states[p].PrefetchOrderAt(later.timestamp);
      }
    }
    const uint32_t idx = indices[pos];
    const Event& e = batch.events[idx];
    size_t merges_before = merges->size();
    uint32_t profile = identity.Resolve(e, merges);
    if (profile_of != nullptr) profile_of[idx] = profile;
    if (identity.num_slots() > states.size()) states.resize(identity.num_slots());
    AbsorbMerges(states, *merges, merges_before, touched);
    if (e.timestamp > *latest) *latest = e.timestamp;
    if (profile == kNoProfile) continue;  // an anonymous basket: stored, no profile
    states.Mutable(profile).Update(e, batch, population, traits);
    touched(profile);
  }
}

// The k-th cell (0-based) of `cells`, a run of ",cell" items as AppendBuildCells writes them
// (cells may be quoted and hold commas); returned as written, quotes included.
std::string_view CsvField(std::string_view cells, size_t k) {
  if (cells.empty()) return {};
  std::string_view body = cells.substr(1);  // drop the leading comma
  size_t index = 0, start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= body.size(); ++i) {
    if (i < body.size() && body[i] == '"') { quoted = !quoted; continue; }
    if (i == body.size() || (body[i] == ',' && !quoted)) {
      if (index == k) return body.substr(start, i - start);
      ++index;
      start = i + 1;
    }
  }
  return {};
}

bool MentionsAny(const Event& e, const std::vector<std::pair<IdKind, std::string>>& ids) {
  for (const auto& [kind, value] : ids) {
    switch (kind) {
      case IdKind::kCustomerId: if (e.customer_id == value) return true; break;
      case IdKind::kEmail: if (e.email == value) return true; break;
      case IdKind::kAnonymousId: if (e.anonymous_id == value) return true; break;
    }
  }
  return false;
}

// A stored event block decoded for a replay: its events of the pass's interval and the time
// range of all its events.
struct DecodedBlock {
  EventBatch batch;
  TimeMicros earliest = INT64_MAX;
  TimeMicros latest = INT64_MIN;
};

// Scans the event blocks in key order and hands each decoded block to `apply` in that order, on
// the calling thread. With `threads` >= 2 the scan (RocksDB reads and decompression) runs on one
// thread and the decoding on another and on the calling thread whenever it would otherwise
// wait: the result is the one-thread loop's, with both cores busy. `skip` is called for every
// block in scan order (true: not decoded, not applied). A decode or scan error stops it and is
// returned.
Status ScanDecodeApplyInOrder(
    const KvStore& store, int threads, const std::function<bool()>& skip,
    const std::function<Status(std::string_view, std::string_view, DecodedBlock*)>& decode,
    const std::function<void(const DecodedBlock&)>& apply) {
  if (threads < 2) {
    DecodedBlock block;
    return store.Scan(Column::kEvents, "", [&](std::string_view key, std::string_view raw) -> Result<bool> {
      if (skip()) return true;
      SHOAL_RETURN_IF_ERROR(decode(key, raw, &block));
      apply(block);
      return true;
    });
  }
  enum class State { kFree, kRaw, kDecoding, kDecoded };
  struct Slot {
    State state = State::kFree;
    std::string key, raw;
    DecodedBlock block;
    Status status;
  };
  constexpr uint64_t kSlots = 4;
  std::array<Slot, kSlots> slots;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t scanned = 0;      // blocks put into slots, in scan order
  uint64_t next_decode = 0;  // the first block nobody has claimed to decode yet
  bool scan_done = false, abort = false;
  Status scan_status;
  auto slot_of = [&](uint64_t seq) -> Slot& { return slots[seq % kSlots]; };
  // Claims the next block to decode (lock held); nullptr when none is waiting.
  auto claim = [&]() -> Slot* {
    if (next_decode >= scanned) return nullptr;
    Slot& slot = slot_of(next_decode++);
    slot.state = State::kDecoding;
    return &slot;
  };
  auto decode_slot = [&](Slot* slot, std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    slot->status = decode(slot->key, slot->raw, &slot->block);
    lock.lock();
    slot->state = State::kDecoded;
    cv.notify_all();
  };
  std::thread scanner([&] {
    Status st = store.Scan(Column::kEvents, "", [&](std::string_view key, std::string_view raw) -> Result<bool> {
      if (skip()) return true;
      std::unique_lock lock(mu);
      Slot& slot = slot_of(scanned);
      cv.wait(lock, [&] { return abort || slot.state == State::kFree; });
      if (abort) return false;
      lock.unlock();  // a free slot is touched by nobody else
      slot.key.assign(key);
      slot.raw.assign(raw);
      lock.lock();
      slot.state = State::kRaw;
      ++scanned;
      cv.notify_all();
      return true;
    });
    std::lock_guard lock(mu);
    scan_status = st;
    scan_done = true;
    cv.notify_all();
  });
  std::thread decoder([&] {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return abort || next_decode < scanned || scan_done; });
      if (abort) return;
      Slot* slot = claim();
      if (slot == nullptr) return;  // the scan is done and every block claimed
      decode_slot(slot, lock);
    }
  });
  Status status;
  for (uint64_t next = 0;; ++next) {
    Slot* slot = nullptr;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return next < scanned || scan_done; });
      if (next >= scanned) break;
      slot = &slot_of(next);
      if (next_decode == next) decode_slot(claim(), lock);  // nobody took it: decode it here
      cv.wait(lock, [&] { return slot->state == State::kDecoded; });
    }
    if (!slot->status.ok()) {
      status = slot->status;
      break;
    }
    apply(slot->block);
    std::lock_guard lock(mu);
    slot->state = State::kFree;
    cv.notify_all();
  }
  {
    std::lock_guard lock(mu);
    abort = true;
    cv.notify_all();
  }
  scanner.join();
  decoder.join();
  if (!status.ok()) return status;
  return scan_status;
}

}  // namespace

// One background thread running one task at a time: Start hands it a task, Wait blocks until
// that task has returned and gives its status.
class BackgroundTask {
 public:
  BackgroundTask() : thread_([this] { Loop(); }) {}
  ~BackgroundTask() {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !task_; });
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  // Requires: no task running (Wait returned since the last Start).
  void Start(std::function<Status()> task) {
    {
      std::lock_guard lock(mu_);
      task_ = std::move(task);
    }
    cv_.notify_all();
  }
  Status Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !task_; });
    return status_;
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || task_; });
      if (!task_) return;  // stop_ with nothing left to run
      lock.unlock();
      Status status = task_();
      lock.lock();
      status_ = std::move(status);
      task_ = nullptr;
      cv_.notify_all();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::function<Status()> task_;
  Status status_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the members above exist
};

Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::SnapshotForRead(const Context& ctx) const {
  auto copy = std::unique_ptr<Engine>(new Engine());
  copy->options_ = options_;
  copy->ctx_ = ctx;
  copy->config_ = config_;
  copy->store_ = store_;
  copy->catalogue_ = std::make_unique<TraitCatalogue>(*catalogue_);
  copy->identity_ = identity_;
  copy->states_ = states_;
  copy->population_ = population_;
  copy->next_seq_ = next_seq_;
  copy->checkpoint_seq_ = checkpoint_seq_;
  copy->latest_event_ = latest_event_;
  return copy;
}

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options, const Context& ctx) {
  auto engine = std::unique_ptr<Engine>(new Engine());
  engine->options_ = options;
  engine->ctx_ = ctx;
  namespace fs = std::filesystem;
  bool existed = fs::exists(fs::path(options.db_dir) / "CURRENT");
  if ((options.read_only || options.must_exist) && !existed) {
    return Status::NotFound("no workspace at " + options.db_dir +
                            " (run `shoal ingest --db " + options.db_dir + " FILE` first)");
  }
  StoreOptions store_options;
  store_options.read_only = options.read_only;
  SHOAL_ASSIGN_OR_RETURN(engine->store_, KvStore::Open(options.db_dir, store_options));
  engine->dedupe_ = std::make_unique<EventDedupe>(engine->store_.get(), options.dedupe);

  // Configuration: an explicit file is copied into the workspace so later commands use it.
  std::string workspace_config = (fs::path(options.db_dir) / "shoal.toml").string();
  if (!options.config_path.empty()) {
    SHOAL_ASSIGN_OR_RETURN(engine->config_, LoadWorkspaceConfig(options.config_path));
    if (!options.read_only && fs::absolute(options.config_path) != fs::absolute(workspace_config)) {
      std::ofstream out(workspace_config, std::ios::binary | std::ios::trunc);
      out << engine->config_.text;
      if (!out) return Status::IOError("cannot write " + workspace_config);
    }
  } else if (fs::exists(workspace_config)) {
    SHOAL_ASSIGN_OR_RETURN(engine->config_, LoadWorkspaceConfig(workspace_config));
  } else {
    engine->config_ = WorkspaceConfig::Defaults();
  }
  engine->identity_ = IdentityGraph(engine->config_.identity);
  engine->catalogue_ = std::make_unique<TraitCatalogue>(engine->config_.traits);
  SHOAL_RETURN_IF_ERROR(engine->LoadState());
  return engine;
}

Status Engine::LoadState() {
  KvStore& kv = *store_;
  std::string value;
  Status st = kv.Get(Column::kMeta, kMetaVersion, &value);
  bool fresh = st.IsNotFound();
  if (!fresh && !st.ok()) return st;
  if (!fresh && value != kStoreVersion) {
    return Status::FailedPrecondition("workspace " + options_.db_dir + " has store version " + value +
                                      ", this shoal reads version " + std::string(kStoreVersion));
  }
  if (fresh && !options_.read_only) {
    std::random_device rd;
    suppression_salt_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    WriteGroup g;
    g.Put(Column::kMeta, kMetaVersion, kStoreVersion);
    g.Put(Column::kMeta, kMetaSalt, U64Value(suppression_salt_));
    g.Put(Column::kMeta, kMetaFingerprint, U64Value(config_.fingerprint));
    g.Put(Column::kMeta, kMetaNumEvents, U64Value(0));
    g.Put(Column::kMeta, kMetaNumEventsThrough, U64Value(0));
    SHOAL_RETURN_IF_ERROR(kv.Write(g, true));
    return dedupe_->Load(0, false);
  }
  if (kv.Get(Column::kMeta, kMetaSalt, &value).ok()) suppression_salt_ = ParseU64Value(value);
  SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kSuppressed, "", [&](std::string_view key, std::string_view) -> Result<bool> {
    suppressed_.Insert(DecodeKeyU64(key));
    return true;
  }));
  // The next block number: after the last stored block and after the checkpointed position
  // (a forget may have deleted the last blocks; their numbers are not reused).
  if (kv.Get(Column::kMeta, kMetaCheckpointSeq, &value).ok()) next_seq_ = ParseU64Value(value) + 1;
  for (Column c : {Column::kEvents, Column::kEventIds}) {
    st = kv.LastKey(c, &value);
    if (st.ok()) next_seq_ = std::max(next_seq_, DecodeKeyU64(value) + 1);
    else if (!st.IsNotFound()) return st;
  }
  SHOAL_RETURN_IF_ERROR(LoadEventIndex());
  uint64_t fingerprint = 0;
  if (kv.Get(Column::kMeta, kMetaFingerprint, &value).ok()) fingerprint = ParseU64Value(value);
  if (kv.Get(Column::kMeta, kMetaLatestEvent, &value).ok()) {
    latest_event_ = static_cast<TimeMicros>(ParseU64Value(value));
  }
  if (fingerprint != config_.fingerprint) {
    // Types, identity guards or traits changed: state is rebuilt from the stored events.
    return RebuildAll();
  }
  if (kv.Get(Column::kMeta, kMetaCheckpointSeq, &value).ok()) checkpoint_seq_ = ParseU64Value(value);
  if (kv.Get(Column::kMeta, kMetaPopulation, &value).ok()) {
    SHOAL_RETURN_IF_ERROR(population_.Deserialize(value).WithContext("population state"));
  }
  if (kv.Get(Column::kMeta, kMetaIdentity, &value).ok()) {
    SHOAL_RETURN_IF_ERROR(identity_.RestoreFlags(value));
  }
  uint32_t slots = 0;
  if (kv.Get(Column::kMeta, kMetaProfileSlots, &value).ok()) slots = static_cast<uint32_t>(ParseU64Value(value));
  states_.resize(slots);
  // At most one state per slot (the merged-away slots' share is released after the scan).
  states_.ReserveStates(slots);
  SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kProfiles, "", [&](std::string_view key, std::string_view rec) -> Result<bool> {
    uint32_t profile = DecodeKeyU32(key);
    Reader r(rec);
    std::string_view identity_part = r.String();
    if (!r.ok()) return Status::Corruption("profile record " + std::to_string(profile));
    std::string_view state_part = rec.substr(rec.size() - r.Remaining());
    SHOAL_RETURN_IF_ERROR(identity_.RestoreProfile(profile, identity_part));
    if (profile >= states_.size()) states_.resize(profile + 1);
    SHOAL_RETURN_IF_ERROR(states_.Mutable(profile).Deserialize(state_part).WithContext("profile " + std::to_string(profile)));
    return true;
  }));
  // The room reserved for the merged-away slots is released for an engine that lives on (the
  // server); a read-only one (an export, a lookup) ends soon, and the shrink would cost it more
  // than the reservation saved.
  if (!options_.read_only) states_.ShrinkToFit();
  identity_.EnsureSlots(states_.size());  // trailing dead slots
  dirty_.assign(states_.size(), 0);
  return ReplayFrom(checkpoint_seq_ + 1);
}

Status Engine::LoadEventIndex() {
  KvStore& kv = *store_;
  std::string value;
  if (kv.Get(Column::kMeta, kMetaNumEvents, &value).ok()) {
    num_events_ = ParseU64Value(value);
    if (kv.Get(Column::kMeta, kMetaNumEventsThrough, &value).ok()) {
      SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kEventIds, KeyU64(ParseU64Value(value) + 1),
                                    [&](std::string_view, std::string_view ids) -> Result<bool> {
                                      num_events_ += ids.size() / 8;
                                      return true;
                                    }));
    }
  } else {
    // A workspace written before the counter existed: count the stored ids once.
    num_events_ = 0;
    SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kEventIds, "", [&](std::string_view, std::string_view ids) -> Result<bool> {
      num_events_ += ids.size() / 8;
      return true;
    }));
    if (!options_.read_only) SHOAL_RETURN_IF_ERROR(kv.Put(Column::kMeta, kMetaNumEvents, U64Value(num_events_), true));
  }
  // Blocks not yet in event_index (all of them in a workspace older than it) are indexed here.
  // A read-only engine never stores events, so it needs no dedupe state.
  if (options_.read_only) return Status::OK();
  return dedupe_->Load(num_events_, false);
}

Status Engine::ReplayFrom(uint64_t first_seq) {
  if (first_seq >= next_seq_) return Status::OK();
  EventBatch batch;
  std::vector<uint32_t> all;
  SHOAL_RETURN_IF_ERROR(store_->Scan(Column::kEvents, KeyU64(first_seq), [&](std::string_view key, std::string_view block) -> Result<bool> {
    batch.Clear();
    SHOAL_RETURN_IF_ERROR(DecodeEvents(block, &batch).WithContext("block " + std::to_string(DecodeKeyU64(key))));
    all.resize(batch.size());
    for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
    ApplyStored(batch, all);
    return true;
  }));
  if (!options_.read_only) return Checkpoint(/*as_tables=*/true);
  return Status::OK();
}

Status Engine::RebuildAll() {
  identity_ = IdentityGraph(config_.identity);
  states_.clear();
  population_ = PopulationState();
  dirty_.clear();
  dirty_list_.clear();
  checkpoint_seq_ = 0;
  if (!options_.read_only) {
    // Old profile records go; the checkpoint after the replay writes the new ones.
    WriteGroup g;
    SHOAL_RETURN_IF_ERROR(store_->Scan(Column::kProfiles, "", [&](std::string_view key, std::string_view) -> Result<bool> {
      g.Delete(Column::kProfiles, key);
      return true;
    }));
    g.Put(Column::kMeta, kMetaFingerprint, U64Value(config_.fingerprint));
    SHOAL_RETURN_IF_ERROR(store_->Write(g, true));
  }
  return ReplayFrom(1);
}

void Engine::ApplyStored(const EventBatch& batch, std::span<const uint32_t> indices,
                         uint32_t* profile_of) {
  // Merges stay buffered in merges_scratch_ until the next checkpoint writes the merge log.
  ApplyEvents(identity_, states_, population_, config_.traits, batch, indices, &merges_scratch_,
              &latest_event_, profile_of, [this](uint32_t profile) {
                if (profile >= dirty_.size()) dirty_.resize(identity_.num_slots(), 0);
                if (!dirty_[profile]) {
                  dirty_[profile] = 1;
                  dirty_list_.push_back(profile);
                }
              }, options_.apply_threads);
}

Status Engine::StoreBlock(const EventBatch& batch, std::span<const uint32_t> indices, bool sync) {
  block_scratch_.clear();
  EncodeEvents(batch, indices, &block_scratch_);
  std::string ids;
  ids.reserve(indices.size() * 8);
  dedupe_keys_.clear();
  for (uint32_t idx : indices) {
    PutFixed64(&ids, batch.events[idx].id_hash);
    dedupe_keys_.push_back(batch.events[idx].id_hash);
  }
  // One atomic write of the block and its ids; the dedupe layers learn the ids once they are
  // durable. A large durable block (an ingest's) goes in as table files, and the event count
  // after it in an unsynced write (opening counts any block it does not cover); a small one
  // (the server's, synced with its group) goes through the log with the count.
  WriteGroup g;
  std::string key = KeyU64(next_seq_);
  if (sync && indices.size() >= options_.table_block_events) {
    const KvStore::TableRecord records[] = {{Column::kEvents, key, block_scratch_},
                                            {Column::kEventIds, key, ids}};
    SHOAL_RETURN_IF_ERROR(store_->IngestTables(records));
    sync = false;
  } else {
    g.PutBorrowed(Column::kEvents, key, block_scratch_);
    g.PutBorrowed(Column::kEventIds, key, ids);
  }
  g.Put(Column::kMeta, kMetaNumEvents, U64Value(num_events_ + indices.size()));
  g.Put(Column::kMeta, kMetaNumEventsThrough, U64Value(next_seq_));
  SHOAL_RETURN_IF_ERROR(store_->Write(g, sync));
  num_events_ += indices.size();
  SHOAL_RETURN_IF_ERROR(dedupe_->Added(dedupe_keys_, next_seq_));
  ++next_seq_;
  return Status::OK();
}

uint64_t Engine::SuppressionKey(IdKind kind, std::string_view value) const {
  return XXH3_64bits_withSeed(value.data(), value.size(), suppression_salt_ ^ static_cast<uint64_t>(kind));
}

bool Engine::IsSuppressed(const Event& e) const {
  if (suppressed_.size() == 0) return false;
  return (!e.customer_id.empty() && suppressed_.Contains(SuppressionKey(IdKind::kCustomerId, e.customer_id))) ||
         (!e.email.empty() && suppressed_.Contains(SuppressionKey(IdKind::kEmail, e.email))) ||
         (!e.anonymous_id.empty() && suppressed_.Contains(SuppressionKey(IdKind::kAnonymousId, e.anonymous_id)));
}

Status Engine::SelectNew(const EventBatch& batch, IngestSummary* summary) {
  // Dedupe: a repeat within the batch keeps its first occurrence (batch_ids_), then one lookup
  // of the batch's distinct ids in the dedupe layers (event_dedupe.h).
  batch_ids_.Clear();
  batch_ids_.Reserve(batch.size());
  dedupe_keys_.clear();
  dedupe_first_.clear();
  // One pass over the events (each is 320 bytes, written by the reader thread: the reads
  // miss), their lines and the batch set's slots requested ahead. dedupe_keep_ bit 1 marks an
  // anonymous event (no identifier), so the passes below touch no event.
  constexpr uint32_t kEventAhead = 16, kSlotAhead = 8;
  const uint32_t n = static_cast<uint32_t>(batch.size());
  const Event* events = batch.events.data();
  dedupe_keep_.assign(n, 0);
  for (uint32_t i = 0; i < n; ++i) {
    if (i + kEventAhead < n) {
      __builtin_prefetch(&events[i + kEventAhead]);
      __builtin_prefetch(reinterpret_cast<const char*>(&events[i + kEventAhead]) + 64);
    }
    if (i + kSlotAhead < n) batch_ids_.Prefetch(events[i + kSlotAhead].id_hash);
    const Event& e = events[i];
    if (e.customer_id.empty() && e.email.empty() && e.anonymous_id.empty()) dedupe_keep_[i] = 2;
    if (IsSuppressed(e)) { ++summary->suppressed; continue; }
    if (!batch_ids_.Insert(e.id_hash)) { ++summary->duplicates; continue; }
    dedupe_keys_.push_back(e.id_hash);
    dedupe_first_.push_back(i);
  }
  SHOAL_RETURN_IF_ERROR(dedupe_->Lookup(dedupe_keys_, &dedupe_found_));
  for (size_t k = 0; k < dedupe_keys_.size(); ++k) {
    if (dedupe_found_[k]) ++summary->duplicates;
    else dedupe_keep_[dedupe_first_[k]] |= 1;
  }
  kept_scratch_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    if (!(dedupe_keep_[i] & 1)) continue;
    if (dedupe_keep_[i] & 2) ++summary->anonymous_baskets;
    kept_scratch_.push_back(i);
  }
  summary->events = batch.size();
  return Status::OK();
}

Result<IngestSummary> Engine::Apply(EventBatch& batch, bool sync,
                                    std::vector<ApplyOutcome>* outcomes,
                                    std::vector<uint32_t>* profiles) {
  if (options_.read_only) return Status::FailedPrecondition("workspace opened read-only");
  SHOAL_RETURN_IF_ERROR(broken_);
  IngestSummary summary;
  SHOAL_RETURN_IF_ERROR(SelectNew(batch, &summary));
  if (outcomes != nullptr) {
    outcomes->assign(batch.size(), ApplyOutcome::kDuplicate);
    for (uint32_t i : kept_scratch_) (*outcomes)[i] = ApplyOutcome::kStored;
    for (uint32_t i = 0; i < batch.size(); ++i) {
      if (!(dedupe_keep_[i] & 1) && IsSuppressed(batch.events[i])) {
        (*outcomes)[i] = ApplyOutcome::kSuppressed;
      }
    }
  }
  if (profiles != nullptr) profiles->assign(batch.size(), kNoProfile);
  if (kept_scratch_.empty()) return summary;
  SHOAL_RETURN_IF_ERROR(StoreBlock(batch, kept_scratch_, sync));
  uint64_t merges_before = identity_.stats().merges;
  ApplyStored(batch, kept_scratch_, profiles != nullptr ? profiles->data() : nullptr);
  summary.stored = kept_scratch_.size();
  summary.merges = identity_.stats().merges - merges_before;
  if (++blocks_since_checkpoint_ >= options_.checkpoint_blocks) SHOAL_RETURN_IF_ERROR(Checkpoint());
  summary.profiles = identity_.num_alive();
  return summary;
}

Status Engine::ApplyPipelined(EventBatch& batch, BackgroundTask* store_worker, IngestSummary* total) {
  IngestSummary summary;
  SHOAL_RETURN_IF_ERROR(SelectNew(batch, &summary));
  total->duplicates += summary.duplicates;
  total->suppressed += summary.suppressed;
  total->anonymous_baskets += summary.anonymous_baskets;
  if (kept_scratch_.empty()) return Status::OK();
  // The block is encoded and written (fsynced) on store_worker while this thread folds the same
  // events into identity and traits; both only read the batch and kept_scratch_. The block is
  // durable before this returns, so before any checkpoint covers it and before the next
  // SelectNew asks the dedupe layers (which StoreBlock updates) about the next batch.
  store_worker->Start([this, &batch] { return StoreBlock(batch, kept_scratch_, /*sync=*/true); });
  ApplyStored(batch, kept_scratch_);
  Status stored = store_worker->Wait();
  if (!stored.ok()) {
    // Identity and traits now hold events that are not stored: refuse further changes (a
    // checkpoint would persist them); reopening the workspace recovers the stored state.
    broken_ = Status::IOError("an earlier store write failed (" + stored.message() +
                              "): reopen the workspace");
    return stored;
  }
  total->stored += kept_scratch_.size();
  if (++blocks_since_checkpoint_ >= options_.checkpoint_blocks) SHOAL_RETURN_IF_ERROR(Checkpoint(/*as_tables=*/true));
  return Status::OK();
}

Status Engine::Checkpoint(bool as_tables) {
  if (options_.read_only) return Status::OK();
  SHOAL_RETURN_IF_ERROR(broken_);
  PendingCheckpoint pending;
  PrepareCheckpoint(&pending);
  SHOAL_RETURN_IF_ERROR(as_tables ? store_->WriteAsTables(pending.group) : store_->Write(pending.group, true));
  FinishCheckpoint(pending);
  return Status::OK();
}

void Engine::PrepareCheckpoint(PendingCheckpoint* out) const {
  if (options_.read_only) return;
  WriteGroup& g = out->group;
  std::string rec;
  for (uint32_t profile : dirty_list_) {
    std::string key = KeyU32(profile);
    if (identity_.Alive(profile)) {
      rec.clear();
      std::string identity_part;
      identity_.SerializeProfile(profile, &identity_part);
      PutString(&rec, identity_part);
      states_[profile].Serialize(&rec);
      g.Put(Column::kProfiles, key, rec);
    } else {
      g.Delete(Column::kProfiles, key);
    }
  }
  out->dirty_profiles = dirty_list_.size();
  // The merge log: every merge since the last checkpoint, numbered on from the stored counter.
  std::string value;
  uint64_t merge_seq = 0;
  if (store_->Get(Column::kMeta, kMetaMergeSeq, &value).ok()) merge_seq = ParseU64Value(value);
  for (const MergeRecord& m : merges_scratch_) {
    std::string r;
    PutVarint(&r, m.survivor);
    PutVarint(&r, m.absorbed);
    r.push_back(static_cast<char>(m.via_kind));
    PutFixed64(&r, m.event_id_hash);
    PutZigZag(&r, m.at);
    g.Put(Column::kMerges, KeyU64(++merge_seq), r);
  }
  out->merges = merges_scratch_.size();
  g.Put(Column::kMeta, kMetaMergeSeq, U64Value(merge_seq));
  std::string population;
  population_.Serialize(&population);
  g.Put(Column::kMeta, kMetaPopulation, population);
  std::string counters;
  identity_.SerializeFlags(&counters);
  g.Put(Column::kMeta, kMetaIdentity, counters);
  g.Put(Column::kMeta, kMetaProfileSlots, U64Value(identity_.num_slots()));
  out->seq = next_seq_ - 1;
  g.Put(Column::kMeta, kMetaCheckpointSeq, U64Value(out->seq));
  g.Put(Column::kMeta, kMetaLatestEvent, U64Value(static_cast<uint64_t>(latest_event_)));
  g.Put(Column::kMeta, kMetaFingerprint, U64Value(config_.fingerprint));
}

void Engine::FinishCheckpoint(const PendingCheckpoint& done) {
  if (options_.read_only) return;
  for (size_t i = 0; i < done.dirty_profiles; ++i) dirty_[dirty_list_[i]] = 0;
  dirty_list_.erase(dirty_list_.begin(),
                    dirty_list_.begin() + static_cast<std::ptrdiff_t>(done.dirty_profiles));
  merges_scratch_.erase(merges_scratch_.begin(),
                        merges_scratch_.begin() + static_cast<std::ptrdiff_t>(done.merges));
  checkpoint_seq_ = done.seq;
  blocks_since_checkpoint_ = 0;
}

size_t Engine::NextBatchEvents(size_t last, const ReadStats& read, uint64_t bytes_total) const {
  // Doubling from kFirstBatchEvents: the apply and store threads start after a short parse.
  size_t next = std::min(options_.block_events, 2 * last);
  // Halving toward the end of a file of known size: the last batch, applied and stored after
  // the parse has ended, is short too.
  if (bytes_total > read.bytes && read.bytes > 0 && read.events > 0) {
    const double remaining_events = static_cast<double>(bytes_total - read.bytes) *
                                    static_cast<double>(read.events) / static_cast<double>(read.bytes);
    next = std::min(next, std::max(kFirstBatchEvents, static_cast<size_t>(remaining_events / 2)));
  }
  return std::max<size_t>(1, std::min(next, options_.block_events));
}

Result<IngestSummary> Engine::Ingest(const std::vector<SourceSpec>& sources, const IngestOptions& options,
                                     const ProgressFn& progress) {
  if (options_.read_only) return Status::FailedPrecondition("workspace opened read-only");
  auto start = std::chrono::steady_clock::now();
  IngestSummary total;
  total.quarantine_path = options.quarantine_path.empty()
                              ? (std::filesystem::path(options_.db_dir) / "quarantine.jsonl").string()
                              : options.quarantine_path;
  SHOAL_ASSIGN_OR_RETURN(auto quarantine, Quarantine::Open(total.quarantine_path));
  SHOAL_RETURN_IF_ERROR(broken_);
  uint64_t merges_before = identity_.stats().merges;
  BackgroundTask store_worker;
  for (const SourceSpec& spec : sources) {
    auto reader_or = EventReader::Open(spec, config_.registry, quarantine.get());
    if (!reader_or.ok()) {
      total.unreadable_sources.push_back(reader_or.status().message());
      continue;
    }
    std::unique_ptr<EventReader> reader = std::move(reader_or).value();
    // Two batches in flight: the reader thread parses one while this thread applies the other
    // to identity and traits and store_worker encodes and durably stores it (ApplyPipelined).
    // (A third slot was measured: the reader still stalls when a block takes the store long --
    // the dedupe syncing and writing its index -- and the peak memory grew by a batch.)
    constexpr uint64_t kSlots = 2;
    EventBatch buffers[kSlots];
    ReadStats published[kSlots];   // the reader's stats as of each published batch
    std::mutex mu;
    std::condition_variable cv;
    uint64_t produced = 0;         // batches the reader has published
    uint64_t consumed = 0;         // batches applied (a slot is free once its batch is)
    bool reader_done = false;
    bool filter_sized = false;
    Status reader_status;
    std::thread parse([&] {
      size_t batch_events = std::min(kFirstBatchEvents, options_.block_events);
      for (;;) {
        uint64_t n;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return produced - consumed < kSlots; });
          n = produced;
        }
        Result<bool> more = reader->Next(&buffers[n % kSlots], batch_events);
        const ReadStats stats = reader->stats();
        batch_events = NextBatchEvents(batch_events, stats, reader->bytes_total());
        std::unique_lock lock(mu);
        if (!more.ok()) { reader_status = more.status(); reader_done = true; cv.notify_all(); return; }
        if (!*more) { reader_done = true; cv.notify_all(); return; }
        published[n % kSlots] = stats;
        ++produced;
        cv.notify_all();
      }
    });
    Status apply_status;
    for (;;) {
      uint64_t n;
      ReadStats parsed_so_far;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return consumed < produced || reader_done; });
        if (consumed == produced) break;
        n = consumed;
        parsed_so_far = published[n % kSlots];
      }
      if (!filter_sized && apply_status.ok() && parsed_so_far.bytes > 0 && reader->bytes_total() > 0) {
        // Size the dedupe filter once per source for the events the whole file will bring
        // (extrapolated from the first batch, +10%), instead of growing it 4x at a time with a
        // rescan of every stored id: less memory (24 -> 16 MiB at 10M events) and no rescans.
        // A wrong guess only means the usual growth later.
        filter_sized = true;
        const double events_per_byte =
            static_cast<double>(parsed_so_far.events) / static_cast<double>(parsed_so_far.bytes);
        const auto expected = static_cast<uint64_t>(
            1.1 * events_per_byte * static_cast<double>(reader->bytes_total()));
        apply_status = dedupe_->Reserve(num_events_ + expected);
      }
      if (apply_status.ok()) apply_status = ApplyPipelined(buffers[n % kSlots], &store_worker, &total);
      {
        std::unique_lock lock(mu);
        ++consumed;
        cv.notify_all();
      }
      if (progress) {
        Progress p;
        p.records = total.records + parsed_so_far.records;
        p.events = total.events + parsed_so_far.events;
        p.bad = quarantine->total();
        p.bytes = parsed_so_far.bytes;
        p.bytes_total = reader->bytes_total();
        p.seconds = SecondsSince(start);
        p.source = spec.path;
        progress(p);
      }
    }
    parse.join();
    total.records += reader->stats().records;
    total.events += reader->stats().events;
    if (!apply_status.ok()) return apply_status;
    if (!reader_status.ok()) total.unreadable_sources.push_back(spec.path + ": " + reader_status.message());
  }
  // The end of a bulk load: the last checkpoint, written as table files (durable on return,
  // and the next open reads them instead of replaying a log), and on a second thread the
  // dedupe's last ids to event_index, while this thread releases the spare capacity growth
  // left in every state. The memtables hold little (the event counts, blocks of small
  // batches): they are flushed too, so the log stays short and the next open replays little.
  SHOAL_RETURN_IF_ERROR(broken_);
  SHOAL_RETURN_IF_ERROR(Checkpoint(/*as_tables=*/true));
  Status settled;
  std::thread settler([&] {
    settled = dedupe_->FinishBulkLoad();
    if (settled.ok()) settled = store_->Flush();
  });
  states_.ForEachState([](CustomerState& state) { state.ShrinkToFit(); });
  states_.ShrinkToFit();
  identity_.ShrinkToFit();
  settler.join();
  SHOAL_RETURN_IF_ERROR(settled);
  // And the per-batch scratch (~2 MiB of dedupe tables and lists, the encoded block): the next
  // batch allocates it again. (Assigning `{}` would keep the capacity: it is the
  // initializer-list assignment, which only clears.)
  batch_ids_ = FlatSetU64();
  dedupe_keys_ = std::vector<uint64_t>();
  dedupe_first_ = std::vector<uint32_t>();
  dedupe_found_ = std::vector<uint8_t>();
  dedupe_keep_ = std::vector<uint8_t>();
  kept_scratch_ = std::vector<uint32_t>();
  block_scratch_ = std::string();
  SHOAL_RETURN_IF_ERROR(quarantine->Flush());
  total.bad = quarantine->total();
  total.bad_by_reason = quarantine->CountsByReason();
  total.profiles = identity_.num_alive();
  total.merges = identity_.stats().merges - merges_before;
  total.seconds = SecondsSince(start);
  total.memory = Memory();
  total.state_bytes = total.memory.Total();
  return total;
}

uint32_t Engine::FindProfile(std::string_view identifier) const { return identity_.FindAny(identifier); }

TimeMicros Engine::DefaultAsOf() const {
  if (ctx_.clock) return ctx_.Now();
  if (latest_event_ > 0) return (DayOf(latest_event_) + 1) * kMicrosPerDay;  // end of that day
  return ctx_.Now();
}

Result<std::string> Engine::ProfileJson(std::string_view identifier, std::optional<TimeMicros> as_of,
                                        bool with_build) const {
  uint32_t profile = FindProfile(identifier);
  if (profile == kNoProfile) {
    return Status::NotFound("no profile has the identifier '" + std::string(identifier) +
                            "' (customer id, email or anonymous id)");
  }
  TimeMicros at = as_of.value_or(DefaultAsOf());
  std::vector<double> values(catalogue_->traits().size());
  catalogue_->ComputeOne(states_[profile], population_, at, values);
  std::string out = "{\"profile\":" + std::to_string(profile) + ",\"customer_id\":";
  AppendJsonString(&out, identity_.DisplayIdOf(profile));
  out += ",\"as_of\":";
  AppendJsonString(&out, FormatIso8601(at));
  out += ",\"identifiers\":[";
  bool first = true;
  for (const auto& [kind, value] : identity_.IdentifiersOf(profile)) {
    if (!first) out += ',';
    first = false;
    out += "{\"kind\":";
    AppendJsonString(&out, IdKindName(kind));
    out += ",\"value\":";
    AppendJsonString(&out, value);
    out += '}';
  }
  out += "],\"traits\":{";
  for (size_t t = 0; t < values.size(); ++t) {
    if (t) out += ',';
    AppendJsonString(&out, catalogue_->traits()[t].name);
    out += ':';
    AppendJsonNumber(&out, values[t]);
  }
  out += "}";
  // Segments, scores and recommendations from the last build, when it saw this profile.
  auto build = with_build ? LoadBuild(*this) : Result<BuildResult>(Status::NotFound("not asked"));
  if (build.ok()) {
    auto it = std::find(build->profiles.begin(), build->profiles.end(), profile);
    if (it != build->profiles.end()) {
      size_t row = static_cast<size_t>(it - build->profiles.begin());
      const BuildResult& b = *build;
      out += ",\"rfm\":{\"r\":" + std::to_string(b.rfm.r[row]) + ",\"f\":" + std::to_string(b.rfm.f[row]) +
             ",\"m\":" + std::to_string(b.rfm.m[row]) + ",\"segment\":";
      AppendJsonString(&out, b.rfm.segment_names[static_cast<size_t>(b.rfm.segment[row])]);
      out += "},\"segment\":";
      std::string name;
      for (const SegmentInfo& seg : b.segments) if (seg.id == b.segment_id[row]) name = seg.name;
      if (b.segment_id[row] >= 0) {
        out += "{\"id\":" + std::to_string(b.segment_id[row]) + ",\"name\":";
        AppendJsonString(&out, name);
        out += "}";
      } else {
        out += "null";
      }
      out += ",\"audiences\":[";
      for (size_t a = 0; a < b.audiences[row].size(); ++a) {
        if (a) out += ',';
        AppendJsonString(&out, b.audience_names[b.audiences[row][a]]);
      }
      out += "],\"scores\":{\"p_alive\":";
      AppendJsonNumber(&out, b.p_alive[row]);
      out += ",\"expected_orders_90d\":";
      AppendJsonNumber(&out, b.expected_orders_90d[row]);
      out += ",\"expected_order_value\":";
      AppendJsonNumber(&out, b.expected_order_value[row]);
      out += ",\"clv\":";
      AppendJsonNumber(&out, b.clv[row]);
      out += ",\"next_order_date\":";
      if (std::isnan(b.next_order_time[row])) out += "null";
      else AppendJsonString(&out, FormatDate(static_cast<TimeMicros>(b.next_order_time[row])));
      for (const auto& [name, col] : {std::pair{"p_purchase_30d", &b.p_purchase_30d}, std::pair{"p_churn_90d", &b.p_churn_90d},
                                      std::pair{"p_upgrade", &b.p_upgrade}, std::pair{"p_referral", &b.p_referral}}) {
        out += ",\"";
        out += name;
        out += "\":";
        AppendJsonNumber(&out, (*col)[row]);
      }
      out += "},\"recommendations\":[";
      std::string_view recs = b.recommendations[row];
      bool first_rec = true;
      while (!recs.empty()) {
        size_t semi = recs.find(';');
        if (!first_rec) out += ',';
        first_rec = false;
        AppendJsonString(&out, recs.substr(0, semi));
        recs = semi == std::string_view::npos ? std::string_view() : recs.substr(semi + 1);
      }
      out += "]";
    }
  }
  out += "}";
  return out;
}

TraitTable Engine::TableOf(const IdentityGraph& identity, const StateSlots& states,
                           const PopulationState& population, TimeMicros as_of,
                           const TraitSelection* selection) const {
  TraitTable table;
  std::vector<const CustomerState*> rows;
  for (uint32_t p = 0; p < states.size(); ++p) {
    if (!identity.Alive(p)) continue;
    table.profiles.push_back(p);
    table.customer_ids.emplace_back(identity.DisplayIdOf(p));
    rows.push_back(&states[p]);
  }
  catalogue_->Compute(rows, population, as_of, ctx_, &table.matrix, selection);
  return table;
}

Status Engine::ReplayInto(Derived* derived, std::optional<TimeMicros> as_of) const {
  EventBatch batch;
  std::vector<uint32_t> kept;
  std::vector<MergeRecord> merges;
  TimeMicros latest = 0;
  return store_->Scan(Column::kEvents, "", [&](std::string_view key, std::string_view block) -> Result<bool> {
    batch.Clear();
    // Events at or after as_of are parsed past, not decoded.
    SHOAL_RETURN_IF_ERROR(
        (as_of ? DecodeEventsInRange(block, INT64_MIN, *as_of, &batch) : DecodeEvents(block, &batch))
            .WithContext("block " + std::to_string(DecodeKeyU64(key))));
    kept.resize(batch.size());
    for (uint32_t i = 0; i < batch.size(); ++i) kept[i] = i;
    ApplyEvents(derived->identity, derived->states, derived->population, config_.traits, batch, kept,
                &merges, &latest, nullptr, [](uint32_t) {}, options_.apply_threads);
    merges.clear();
    return true;
  });
}

Result<TraitTable> Engine::ComputeTraits(std::optional<TimeMicros> as_of,
                                         const TraitSelection* selection) const {
  if (!as_of) return TableOf(identity_, states_, population_, DefaultAsOf(), selection);
  Derived derived{IdentityGraph(config_.identity), {}, PopulationState()};
  SHOAL_RETURN_IF_ERROR(ReplayInto(&derived, as_of));
  return TableOf(derived.identity, derived.states, derived.population, *as_of, selection);
}

Status Engine::ReplayAsOf(std::span<const TimeMicros> as_ofs,
                          const std::function<Status(const AsOfSnapshot&)>& fn) const {
  for (size_t k = 1; k < as_ofs.size(); ++k) {
    if (as_ofs[k] <= as_ofs[k - 1]) return Status::InvalidArgument("ReplayAsOf: times must be strictly ascending");
  }
  Derived derived{IdentityGraph(config_.identity), {}, PopulationState()};
  // Per stored block (in scan order): the earliest and latest event time, from the first pass.
  std::vector<std::pair<TimeMicros, TimeMicros>> block_range;
  std::vector<uint32_t> kept;
  std::vector<MergeRecord> merges;
  TimeMicros latest = 0;
  TimeMicros from = INT64_MIN;  // events in [from, to) are applied by this pass
  for (size_t k = 0; k < as_ofs.size(); ++k) {
    const TimeMicros to = as_ofs[k];
    const bool first_pass = k == 0;
    // Applies one decoded block (only its events of [from, to) were decoded), in scan order;
    // the first pass also notes each block's time range.
    auto apply = [&](const DecodedBlock& block) {
      if (first_pass) block_range.emplace_back(block.earliest, block.latest);
      kept.resize(block.batch.size());
      for (uint32_t i = 0; i < block.batch.size(); ++i) kept[i] = i;
      ApplyEvents(derived.identity, derived.states, derived.population, config_.traits,
                  block.batch, kept, &merges, &latest, nullptr, [](uint32_t) {}, options_.apply_threads);
      merges.clear();
    };
    // Later passes skip blocks that hold no event of their interval (read-only after pass 0).
    size_t block_idx = 0;
    auto skip = [&]() {
      const size_t this_block = block_idx++;
      return !first_pass && this_block < block_range.size() &&
             (block_range[this_block].second < from || block_range[this_block].first >= to);
    };
    // Decodes the block's events of [from, to) only (thread-safe: reads from/to, writes *out).
    auto decode = [from, to](std::string_view key, std::string_view raw, DecodedBlock* out) {
      out->batch.Clear();
      out->earliest = INT64_MAX;
      out->latest = INT64_MIN;
      return DecodeEventsInRange(raw, from, to, &out->batch, &out->earliest, &out->latest)
          .WithContext("block " + std::to_string(DecodeKeyU64(key)));
    };
    SHOAL_RETURN_IF_ERROR(ScanDecodeApplyInOrder(*store_, ctx_.Threads(), skip, decode, apply));
    AsOfSnapshot snapshot;
    snapshot.as_of = to;
    snapshot.table = TableOf(derived.identity, derived.states, derived.population, to);
    const size_t n = snapshot.table.profiles.size();
    snapshot.states.resize(n);
    snapshot.current_profiles.resize(n, kNoProfile);
    for (size_t row = 0; row < n; ++row) {
      const uint32_t p = snapshot.table.profiles[row];
      snapshot.states[row] = &derived.states[p];
      // Identity only grows by merges, so any one identifier names the profile holding all now.
      for (const auto& [kind, value] : derived.identity.IdentifiersOf(p)) {
        snapshot.current_profiles[row] = identity_.Find(kind, value);
        if (snapshot.current_profiles[row] != kNoProfile) break;
      }
    }
    SHOAL_RETURN_IF_ERROR(fn(snapshot));
    from = to;
  }
  return Status::OK();
}

Status Engine::ExportCsv(const std::string& path, std::optional<TimeMicros> as_of,
                         const std::vector<std::string>& columns) const {
  if (!columns.empty()) return ExportColumnsCsv(path, as_of, columns);
  SHOAL_ASSIGN_OR_RETURN(TraitTable table, ComputeTraits(as_of));
  // The last build's segments and scores, joined by profile (rows it did not see stay empty).
  auto build = LoadBuild(*this);
  if (!build.ok() && !build.status().IsNotFound()) return build.status();
  std::vector<uint32_t> build_row;
  if (build.ok()) {
    build_row.assign(identity_.num_slots(), UINT32_MAX);
    for (size_t r = 0; r < build->profiles.size(); ++r) {
      if (build->profiles[r] < build_row.size()) build_row[build->profiles[r]] = static_cast<uint32_t>(r);
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IOError("cannot write export " + path);
  std::string line = "customer_id";
  for (const TraitInfo& t : table.matrix.traits) line += "," + t.name;
  if (build.ok()) for (const std::string& c : BuildExportColumns()) line += "," + c;
  line += '\n';
  out << line;
  const size_t n = table.profiles.size();
  const size_t num_traits = table.matrix.traits.size();
  const std::string empty_build(BuildExportColumns().size(), ',');
  for (size_t row = 0; row < n; ++row) {
    line.clear();
    AppendCsvText(&line, table.customer_ids[row]);
    for (size_t t = 0; t < num_traits; ++t) {
      line.push_back(',');
      AppendCsvNumber(&line, table.matrix.values[t * n + row]);
    }
    if (build.ok()) {
      uint32_t profile = table.profiles[row];
      uint32_t br = profile < build_row.size() ? build_row[profile] : UINT32_MAX;
      if (br != UINT32_MAX && !as_of) AppendBuildCells(*build, br, &line);
      else line += empty_build;
    }
    line.push_back('\n');
    out << line;
  }
  out.flush();
  if (!out) return Status::IOError("write failed for export " + path);
  return Status::OK();
}

Status Engine::ExportColumnsCsv(const std::string& path, std::optional<TimeMicros> as_of,
                                const std::vector<std::string>& columns) const {
  // Resolve every name first: a trait, or a column of the last build.
  const std::vector<std::string>& build_columns = BuildExportColumns();
  std::vector<int> trait_of(columns.size(), -1), build_of(columns.size(), -1);
  bool need_build = false;
  for (size_t c = 0; c < columns.size(); ++c) {
    trait_of[c] = catalogue_->Find(columns[c]);
    if (trait_of[c] >= 0) continue;
    auto it = std::find(build_columns.begin(), build_columns.end(), columns[c]);
    if (it == build_columns.end()) {
      return Status::InvalidArgument("unknown export column '" + columns[c] +
                                     "' (a trait name of docs/traits.md, or a build column: `shoal export` "
                                     "without --columns writes them all in its header)");
    }
    build_of[c] = static_cast<int>(it - build_columns.begin());
    need_build = true;
  }
  // Only the traits asked for are computed (an RFM export skips the seasonality, the category
  // statistics, the user traits, ...).
  const TraitSelection selection = catalogue_->Select(trait_of);
  SHOAL_ASSIGN_OR_RETURN(TraitTable table, ComputeTraits(as_of, &selection));
  std::optional<BuildResult> build;
  std::vector<uint32_t> build_row;
  if (need_build && !as_of) {
    auto loaded = LoadBuild(*this);
    if (!loaded.ok() && !loaded.status().IsNotFound()) return loaded.status();
    if (loaded.ok()) {
      build = std::move(loaded).value();
      build_row.assign(identity_.num_slots(), UINT32_MAX);
      for (size_t r = 0; r < build->profiles.size(); ++r) {
        if (build->profiles[r] < build_row.size()) build_row[build->profiles[r]] = static_cast<uint32_t>(r);
      }
    }
  }
  // The rows are formatted in parallel into one string per chunk, written in order.
  const size_t n = table.profiles.size();
  constexpr size_t kRowsPerChunk = 4096;
  const size_t num_chunks = (n + kRowsPerChunk - 1) / kRowsPerChunk;
  std::vector<std::string> chunks(num_chunks);
  ParallelFor(num_chunks, ctx_.Threads(), [&](size_t begin, size_t end, int) {
    std::string cells;
    for (size_t chunk = begin; chunk < end; ++chunk) {
      std::string& out = chunks[chunk];
      for (size_t row = chunk * kRowsPerChunk; row < std::min(n, (chunk + 1) * kRowsPerChunk); ++row) {
        AppendCsvText(&out, table.customer_ids[row]);
        uint32_t br = UINT32_MAX;
        if (build) {
          uint32_t profile = table.profiles[row];
          if (profile < build_row.size()) br = build_row[profile];
          cells.clear();
          if (br != UINT32_MAX) AppendBuildCells(*build, br, &cells);
        }
        for (size_t c = 0; c < columns.size(); ++c) {
          out.push_back(',');
          if (trait_of[c] >= 0) {
            AppendCsvNumber(&out, table.matrix.values[static_cast<size_t>(trait_of[c]) * n + row]);
          } else if (br != UINT32_MAX) {
            out += CsvField(cells, static_cast<size_t>(build_of[c]));
          }
        }
        out.push_back('\n');
      }
    }
  }, 1);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return Status::IOError("cannot write export " + path);
  std::string header = "customer_id";
  for (const std::string& c : columns) header += "," + c;
  out << header << '\n';
  for (const std::string& chunk : chunks) out << chunk;
  out.flush();
  if (!out) return Status::IOError("write failed for export " + path);
  return Status::OK();
}

Status Engine::ForEachStoredBatch(const std::function<Status(const EventBatch&)>& fn) const {
  EventBatch batch;
  return store_->Scan(Column::kEvents, "", [&](std::string_view key, std::string_view block) -> Result<bool> {
    batch.Clear();
    SHOAL_RETURN_IF_ERROR(DecodeEvents(block, &batch).WithContext("block " + std::to_string(DecodeKeyU64(key))));
    SHOAL_RETURN_IF_ERROR(fn(batch));
    return true;
  });
}

Result<ForgetSummary> Engine::Forget(std::string_view identifier) {
  if (options_.read_only) return Status::FailedPrecondition("workspace opened read-only");
  uint32_t profile = FindProfile(identifier);
  if (profile == kNoProfile) {
    return Status::NotFound("no profile has the identifier '" + std::string(identifier) + "'");
  }
  ForgetSummary summary;
  summary.identifiers = identity_.Forget(profile);
  states_.Release(profile);
  if (profile >= dirty_.size()) dirty_.resize(profile + 1, 0);
  if (!dirty_[profile]) { dirty_[profile] = 1; dirty_list_.push_back(profile); }

  WriteGroup g;
  for (const auto& [kind, value] : summary.identifiers) {
    uint64_t key = SuppressionKey(kind, value);
    suppressed_.Insert(key);
    g.Put(Column::kSuppressed, KeyU64(key), "");
  }
  SHOAL_RETURN_IF_ERROR(store_->Write(g, true));

  // Rewrite every block that holds their events or names them in someone else's event.
  EventBatch batch;
  std::vector<uint32_t> kept;
  std::vector<std::pair<std::string, std::string>> rewrites;  // key -> new block ("" = delete)
  std::vector<std::string> new_ids;
  std::vector<uint64_t> removed_ids;
  SHOAL_RETURN_IF_ERROR(store_->Scan(Column::kEvents, "", [&](std::string_view key, std::string_view block) -> Result<bool> {
    batch.Clear();
    SHOAL_RETURN_IF_ERROR(DecodeEvents(block, &batch));
    kept.clear();
    bool changed = false;
    for (uint32_t i = 0; i < batch.size(); ++i) {
      Event& e = batch.events[i];
      if (MentionsAny(e, summary.identifiers)) {
        ++summary.events_removed;
        removed_ids.push_back(e.id_hash);
        changed = true;
        continue;
      }
      for (const auto& [kind, value] : summary.identifiers) {
        if (!e.referee.empty() && e.referee == value) {
          e.referee = {};
          ++summary.references_scrubbed;
          changed = true;
        }
      }
      kept.push_back(i);
    }
    if (changed) {
      std::string encoded, ids;
      if (!kept.empty()) {
        EncodeEvents(batch, kept, &encoded);
        for (uint32_t i : kept) PutFixed64(&ids, batch.events[i].id_hash);
      }
      rewrites.emplace_back(std::string(key), std::move(encoded));
      new_ids.push_back(std::move(ids));
    }
    return true;
  }));
  WriteGroup rw;
  for (size_t i = 0; i < rewrites.size(); ++i) {
    if (rewrites[i].second.empty()) {
      rw.Delete(Column::kEvents, rewrites[i].first);
      rw.Delete(Column::kEventIds, rewrites[i].first);
    } else {
      rw.Put(Column::kEvents, rewrites[i].first, rewrites[i].second);
      rw.Put(Column::kEventIds, rewrites[i].first, new_ids[i]);
    }
  }
  std::sort(removed_ids.begin(), removed_ids.end());
  SHOAL_RETURN_IF_ERROR(dedupe_->Flush());  // every id in event_index, where the deletes apply
  rw.DeleteU64Keys(Column::kEventIndex, removed_ids);
  rw.Put(Column::kMeta, kMetaNumEvents, U64Value(num_events_ - summary.events_removed));
  rw.Put(Column::kMeta, kMetaNumEventsThrough, U64Value(next_seq_ - 1));
  SHOAL_RETURN_IF_ERROR(store_->Write(rw, true));
  num_events_ -= summary.events_removed;
  SHOAL_RETURN_IF_ERROR(Checkpoint());

  // The workspace's quarantine file may hold their raw records: drop those lines.
  std::string quarantine = (std::filesystem::path(options_.db_dir) / "quarantine.jsonl").string();
  if (std::filesystem::exists(quarantine)) {
    std::ifstream in(quarantine, std::ios::binary);
    std::string text, line;
    while (std::getline(in, line)) {
      bool mentions = false;
      for (const auto& id : summary.identifiers) mentions |= line.find(id.second) != std::string::npos;
      if (!mentions) text += line + "\n";
    }
    in.close();
    std::ofstream out(quarantine, std::ios::binary | std::ios::trunc);
    out << text;
  }
  SHOAL_RETURN_IF_ERROR(store_->CompactAll());
  return summary;
}

size_t Engine::MemoryBytes() const { return Memory().Total(); }

MemoryBreakdown Engine::Memory() const {
  MemoryBreakdown m;
  m.dedupe = dedupe_->MemoryBytes() + batch_ids_.MemoryBytes() +
             dedupe_keys_.capacity() * sizeof(uint64_t) + dedupe_first_.capacity() * sizeof(uint32_t) +
             dedupe_found_.capacity() + dedupe_keep_.capacity();
  m.identity = identity_.MemoryBytes();
  m.states_inline = states_.InlineBytes();
  m.states_heap = states_.HeapBytes();
  m.other = suppressed_.MemoryBytes() + dirty_.capacity() + dirty_list_.capacity() * sizeof(uint32_t);
  m.store = store_->Memory();
  return m;
}

}  // namespace shoal
