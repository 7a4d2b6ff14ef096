#include "server/server.h"

#include <httplib.h>  // the webhook client; the server side is server/http_server.h
#include <signal.h>
#include <simdjson.h>
#include <toml++/toml.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <queue>
#include <random>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "common/coding.h"
#include "common/json_writer.h"
#include "common/parallel.h"
#include "common/time.h"
#include "engine/build.h"
#include "engine/engine.h"
#include "ingest/json_events.h"
#include "server/build_source.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/rw_lock.h"
#include "store/kv_store.h"

namespace shoal {

namespace {

using Clock = std::chrono::steady_clock;
constexpr TimeMicros kNever = std::numeric_limits<TimeMicros>::max();

// Keys of the server's records in the models column family (docs/server.md).
constexpr std::string_view kMembershipPrefix = "m/";  // m/<profile BE32> -> memberships
constexpr std::string_view kPhonePrefix = "p/";       // p/<profile BE32> -> latest phone
constexpr std::string_view kOutboxPrefix = "o/";      // o/<dest>/<seq BE64> -> profile, body
constexpr std::string_view kDeadPrefix = "d/";        // d/<dest>/<seq BE64> -> profile, body
constexpr std::string_view kChangeSeqKey = "s/change_seq";

std::string MembershipKey(uint32_t profile) { return std::string(kMembershipPrefix) + KeyU32(profile); }
std::string PhoneKey(uint32_t profile) { return std::string(kPhonePrefix) + KeyU32(profile); }
std::string OutboxKey(std::string_view prefix, const std::string& dest, uint64_t seq) {
  return std::string(prefix) + dest + "/" + KeyU64(seq);
}

std::string EncodeMemberships(const std::vector<std::string>& m) {
  std::string out;
  PutVarint(&out, m.size());
  for (const auto& s : m) PutString(&out, s);
  return out;
}

bool DecodeMemberships(std::string_view in, std::vector<std::string>* out) {
  Reader r(in);
  uint64_t n = r.Varint();
  out->clear();
  for (uint64_t i = 0; i < n && r.ok(); ++i) out->emplace_back(r.String());
  return r.ok();
}

std::string Iso(TimeMicros t) { return FormatIso8601(t); }

void JsonStringArray(std::string* out, const std::vector<std::string>& items) {
  out->push_back('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out->push_back(',');
    AppendJsonString(out, items[i]);
  }
  out->push_back(']');
}

std::string ErrorJson(std::string_view message, std::string_view field = {}) {
  std::string out = "{\"error\":";
  AppendJsonString(&out, message);
  if (!field.empty()) {
    out += ",\"field\":";
    AppendJsonString(&out, field);
  }
  out += "}";
  return out;
}

int HttpStatusOf(const Status& st) {
  switch (st.code()) {
    case Status::Code::kNotFound: return 404;
    case Status::Code::kInvalidArgument:
    case Status::Code::kParseError: return 400;
    case Status::Code::kUnavailable: return 503;
    case Status::Code::kFailedPrecondition: return 409;  // e.g. a rebuild with no profiles yet
    default: return 500;
  }
}

struct ParsedUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
};

bool ParseHttpUrl(const std::string& url, ParsedUrl* out) {
  std::string_view rest(url);
  if (rest.substr(0, 7) != "http://") return false;
  rest.remove_prefix(7);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out->path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    out->host = std::string(authority.substr(0, colon));
    out->port = std::atoi(std::string(authority.substr(colon + 1)).c_str());
  } else {
    out->host = std::string(authority);
  }
  return !out->host.empty() && out->port > 0 && out->port < 65536;
}

// One unit of work for the apply leader (Server::Impl::SubmitAsync / Submit).
struct Job {
  enum class Kind { kEvents, kForget, kRebuild, kTick };
  Kind kind = Kind::kEvents;
  EventBatch batch;
  std::string identifier;
  Status status;
  IngestSummary summary;
  std::string reply;  // forget / rebuild: the JSON answer
  std::unique_ptr<MembershipSource> new_source;  // rebuild: swapped in by the leader
  uint64_t changes = 0;                          // rebuild: membership records it caused
  bool checkpoint = false;                       // tick: checkpoint the profile state too
  // Asynchronous jobs (POST /v1/events): answered by the leader after the group's fsync
  // through the responder; the per-item results and counts go into that answer.
  HttpResponder responder;
  std::vector<ItemResult> items;
  size_t accepted = 0;
  size_t rejected = 0;
  Clock::time_point start;
  // Blocking jobs (Submit): guarded by mu (its own, so that waking a group's waiters does not
  // convoy them on the queue's mutex): answered, durable or failed.
  std::mutex mu;
  bool done = false;
  std::condition_variable cv;
};

// Why a profile is re-evaluated; rendered as a record's "cause" only when one is emitted, so
// a group builds no text for the (many) events that change no membership.
struct Cause {
  enum class Kind : uint8_t { kEvent, kRebuild, kMerge, kTime, kRecovery };
  Kind kind = Kind::kRecovery;
  const Event* event = nullptr;  // kEvent: the profile's last event in the group (alive with it)
};

struct OutboxEntry {
  uint64_t seq = 0;
  uint32_t profile = 0;
  std::string body;
};

// How long an I/O thread spins for the engine's shared lock before handing a lookup to a
// worker: most exclusive holds are shorter (an apply of a few events, an installation), and a
// worker costs two or three thread wake-ups. 0 (hand over at once) deferred ~6-10% of the
// lookups beside a stream of single events; 150 us, ~0.4%, with a lower lookup p99 and more
// events/s (docs/benchmarks/server-lookup.md).
constexpr std::chrono::microseconds kLookupSpin{150};

// When a request's latency starts: its receipt by the server (HttpRequest::received), so the
// histograms include the time it waited for its loop; now for a request without one.
Clock::time_point ReceivedOr(const HttpRequest& req) {
  return req.received != Clock::time_point{} ? req.received : Clock::now();
}

// Takes `lock` (shared) if it becomes free within `budget`, spinning (no sleep); false if not.
bool TryLockSharedSpinning(std::shared_lock<WriterPreferringSharedMutex>& lock,
                           std::chrono::microseconds budget) {
  if (lock.try_lock()) return true;
  const auto deadline = Clock::now() + budget;
  while (Clock::now() < deadline) {
    for (int i = 0; i < 32; ++i) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (lock.try_lock()) return true;
  }
  return false;
}

// The engine lock held exclusively (the apply leader's mutations), each hold's duration
// observed into `held` once released (shoal_engine_exclusive_hold_seconds).
class ExclusiveHold {
 public:
  ExclusiveHold(WriterPreferringSharedMutex& mu, LatencyHistogram& held)
      : lock_(mu), held_(held), since_(Clock::now()) {}
  ~ExclusiveHold() {
    if (lock_.owns_lock()) unlock();
  }
  ExclusiveHold(const ExclusiveHold&) = delete;
  ExclusiveHold& operator=(const ExclusiveHold&) = delete;
  void unlock() {
    lock_.unlock();
    held_.Observe(std::chrono::duration<double>(Clock::now() - since_).count());
  }
  void lock() {
    lock_.lock();
    since_ = Clock::now();
  }

 private:
  std::unique_lock<WriterPreferringSharedMutex> lock_;
  LatencyHistogram& held_;
  Clock::time_point since_;
};

}  // namespace

// A webhook destination's queue and its delivery thread.
struct DestinationWorker {
  WebhookDestination spec;
  ParsedUrl url;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<OutboxEntry> queue;
  bool stop = false;
  std::thread thread;
  std::atomic<uint64_t> delivered{0}, failures{0}, dead_letters{0}, consent_suppressed{0};
  std::atomic<int64_t> dead_depth{0};
};

struct Server::Impl {
  ServerOptions options;
  ServerConfig config;
  Context ctx;
  std::unique_ptr<Engine> engine;
  // Swapped by the apply leader (rebuild) under engine_mu held exclusively; read under it.
  std::unique_ptr<MembershipSource> source;
  int consent_trait = -1;
  std::atomic<bool> rebuilding{false};  // one POST /v1/rebuild at a time

  // Engine and membership state. The apply leader is the only thread that mutates them, and
  // does so under engine_mu held exclusively; other threads read under it shared, and the
  // leader itself reads with no lock (nobody else writes). Writer-preferring: a stream of
  // lookups cannot keep the leader out.
  mutable WriterPreferringSharedMutex engine_mu;
  std::vector<std::vector<std::string>> current;  // per profile slot, sorted
  // Per profile slot: 1 while the group being applied has touched the profile and its new
  // memberships are not installed in `current` yet (the leader computes them with the lock
  // released); a lookup then evaluates them itself from the state it reads the traits from.
  std::vector<uint8_t> awaiting_evaluation;
  std::vector<std::string> phones;                // per profile slot
  uint64_t change_seq = 0;
  bool silent = false;  // Evaluate stores memberships without emitting records (baseline start)

  // Timer (apply leader only): min-heap of (time, profile); scheduled[p] is the live entry.
  std::priority_queue<std::pair<TimeMicros, uint32_t>, std::vector<std::pair<TimeMicros, uint32_t>>,
                      std::greater<>> timer;
  std::vector<TimeMicros> scheduled;

  // Group commit without a writer thread: a job is queued under commit_mu; whoever finds no
  // apply leader becomes it. An I/O thread that queued jobs in a round and found no leader
  // leads after the round (so a group gathers everything its epoll round returned), takes the
  // queued jobs as a group, applies them, makes them durable with one fsync and answers them
  // (writing each response straight to its socket), serves one round of its own connections
  // without waiting, and goes on until the queue is empty. No I/O thread ever waits for
  // another thread's group. The ticker, forget and rebuild submit blocking jobs on the same
  // queue; a blocking submitter that leads passes the role on to an I/O thread (lead_wanted)
  // once its own job is answered.
  std::mutex commit_mu;
  std::deque<std::shared_ptr<Job>> queue;
  bool applying = false;  // an apply leader is at work or appointed (false => queue empty)
  bool stopping = false;
  bool io_running = false;  // the HTTP loops run (they take the role over from lead_wanted)
  std::atomic<bool> lead_wanted{false};
  // [server] commit_thread (the default): one committer thread leads every group instead; a
  // job queued while it sleeps wakes it (one wake per group, not per request), and the I/O
  // threads never block on an apply or an fsync, so lookups are not held behind them.
  std::thread committer;
  std::condition_variable commit_cv;
  bool committer_stop = false;
  void CommitterLoop();
  // Event jobs, reused: an EventBatch's first string allocates a 1 MiB arena block, which
  // would otherwise be mapped and unmapped on every request.
  std::mutex pool_mu;
  std::vector<std::shared_ptr<Job>> job_pool;
  static constexpr size_t kJobPoolSize = 64;
  // Earliest scheduled re-evaluation (kNever: none), for the ticker; set by apply leaders.
  std::atomic<TimeMicros> next_timer{kNever};
  // The ticker thread submits a job when a timed re-evaluation or the checkpoint is due.
  std::thread ticker;
  std::mutex ticker_mu;
  std::condition_variable ticker_cv;
  bool ticker_stop = false;
  Clock::time_point last_checkpoint = Clock::now();
  EventBatch merged;                     // apply leader only: small jobs applied as one batch
  // Apply leader only: the profiles a group touches with their causes, and per profile slot
  // 1 + its index there (0: not touched), reused from group to group.
  std::vector<std::pair<uint32_t, Cause>> touched;
  std::vector<uint32_t> touched_at;
  std::vector<ApplyOutcome> outcomes;    // apply leader only: per event of `merged`
  std::vector<uint32_t> applied_profiles;  // apply leader only: Engine::Apply's profiles

  std::vector<std::unique_ptr<DestinationWorker>> destinations;
  std::thread exporter;
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopped = false;

  std::unique_ptr<HttpServer> http;
  int port = 0;
  ServerMetrics metrics;

  // --- startup ---
  Status Load();
  // --- group commit ---
  // Blocking (ticker, forget, rebuild; never an I/O thread): queues `job` and returns once it
  // is answered (job->status says how); the calling thread may lead groups meanwhile.
  // Unavailable when stopping.
  Status Submit(const std::shared_ptr<Job>& job);
  // On an I/O thread: queues an event job whose responder the leader completes after the
  // group's fsync (503 at once when stopping). Returns at once; when no leader is at work,
  // this thread leads after its round (AfterRound).
  void SubmitAsync(std::shared_ptr<Job> job);
  // The HTTP loops' after-round hook: leads when this thread owes it or it was handed over.
  void AfterRound();
  // Leads groups until the queue is empty; io = serve a round of the calling I/O thread's
  // connections between groups. commit_mu not held; applying is true on entry.
  void LeadUntilEmpty(bool io);
  // The apply leader's turn for one group: commit_mu held on entry and on return, the queue
  // not empty on entry.
  void LeadGroup(std::unique_lock<std::mutex>& lock);
  // Answers an asynchronous event job (after its group is durable) and returns it to the pool.
  void CompleteEventsJob(std::shared_ptr<Job> job);
  std::shared_ptr<Job> AcquireEventsJob();
  void ReleaseEventsJob(std::shared_ptr<Job> job);  // back to the pool (unanswered, unreferenced)
  void CountRequest(Route route, int status, Clock::time_point start);
  // Applies a group of event / rebuild / tick jobs, re-evaluates the memberships they touch,
  // makes everything durable; pending gets the outbox records to publish.
  Status ApplyGroup(std::vector<std::shared_ptr<Job>>& jobs,
                    std::vector<std::pair<size_t, OutboxEntry>>* pending);
  void TickerLoop();
  void ProcessForget(Job& job);
  uint32_t ProfileOf(const Event& e) const;
  void AppendCause(std::string* out, const Cause& cause) const;
  // Marks `profile` for re-evaluation in this group; replace = an earlier cause gives way.
  void Touch(uint32_t profile, Cause cause, bool replace);
  // What the source says of one profile, computed before it is installed.
  struct Computed {
    bool changed = false;                  // memberships differ from current[profile]
    std::vector<std::string> memberships;  // only when changed
    std::optional<TimeMicros> next;
  };
  std::vector<Computed> computed;  // apply leader only: per touched profile, reused
  // The source's part of the evaluation of each profile of `ordered` into (*out)[i], on
  // ctx.Threads() workers when there are many (start-up, rebuild, midnight). Apply leader only;
  // reads the engine and `current` without a lock (no other thread mutates them), so lookups
  // go on meanwhile.
  void ComputeMany(const std::vector<std::pair<uint32_t, Cause>>& ordered, TimeMicros now,
                   std::vector<Computed>* out);
  // Installs one profile's computed memberships: emits the differences as records, stores
  // them, schedules its next change. A mutation: engine_mu held exclusively (or no reader yet).
  void Evaluate(uint32_t profile, TimeMicros now, const Cause& cause, WriteGroup* group,
                std::vector<std::pair<size_t, OutboxEntry>>* pending, Computed& computed);
  void Schedule(uint32_t profile, std::optional<TimeMicros> next);
  void EnsureSlots(size_t n);
  void Publish(std::vector<std::pair<size_t, OutboxEntry>>& pending);
  // --- delivery ---
  void DeliveryLoop(DestinationWorker* d);
  // --- exports ---
  void ExportLoop();
  // --- http ---
  void SetUpRoutes();
  std::string MetricsText() const;
  Result<std::string> Export(const std::string& membership, const ExportOptions& options,
                             bool marketing);
  bool OptedOut(uint32_t profile) const {
    return engine->identity().Alive(profile) && engine->state(profile).consent() == 0;
  }
  void StopAll();
};

// ---------------------------------------------------------------------------------------------
// Startup

Status Server::Impl::Load() {
  KvStore& kv = engine->store();
  std::string value;
  if (kv.Get(Column::kModels, kChangeSeqKey, &value).ok()) {
    Reader r(value);
    change_seq = r.Varint();
  }
  EnsureSlots(engine->identity().num_slots());
  std::vector<std::string> stored;
  bool any_stored = false;
  SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kModels, kMembershipPrefix, [&](std::string_view key, std::string_view v) -> Result<bool> {
    if (key.substr(0, 2) != kMembershipPrefix) return false;
    any_stored = true;
    uint32_t p = DecodeKeyU32(key.substr(2));
    EnsureSlots(p + 1);
    if (!DecodeMemberships(v, &current[p])) return Status::Corruption("memberships of profile " + std::to_string(p));
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kModels, kPhonePrefix, [&](std::string_view key, std::string_view v) -> Result<bool> {
    if (key.substr(0, 2) != kPhonePrefix) return false;
    uint32_t p = DecodeKeyU32(key.substr(2));
    EnsureSlots(p + 1);
    phones[p] = std::string(v);
    return true;
  }));
  // Reconcile: whatever differs from the stored memberships was not emitted before the last
  // stop (a crash between an event's write and its memberships' write): emit it now.
  WriteGroup group;
  std::vector<std::pair<size_t, OutboxEntry>> pending;
  TimeMicros now = ctx.Now();
  const Cause cause{Cause::Kind::kRecovery, nullptr};
  silent = !any_stored && change_seq == 0 && !options.announce_initial_memberships;
  std::vector<std::pair<uint32_t, Cause>> everyone;
  for (uint32_t p = 0; p < current.size(); ++p) {
    if (engine->identity().Alive(p) || !current[p].empty()) everyone.emplace_back(p, cause);
  }
  ComputeMany(everyone, now, &computed);
  for (size_t i = 0; i < everyone.size(); ++i) {
    Evaluate(everyone[i].first, now, everyone[i].second, &group, &pending, computed[i]);
  }
  silent = false;
  std::string seq;
  PutVarint(&seq, change_seq);
  group.Put(Column::kModels, kChangeSeqKey, seq);
  SHOAL_RETURN_IF_ERROR(kv.Write(group, true));
  // The outbox, in sequence order per destination.
  for (auto& d : destinations) {
    std::string prefix = std::string(kOutboxPrefix) + d->spec.name + "/";
    SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kModels, prefix, [&](std::string_view key, std::string_view v) -> Result<bool> {
      if (key.substr(0, prefix.size()) != prefix) return false;
      OutboxEntry e;
      e.seq = DecodeKeyU64(key.substr(prefix.size()));
      Reader r(v);
      e.profile = static_cast<uint32_t>(r.Varint());
      if (!r.ok()) return Status::Corruption("outbox record " + std::string(key));
      e.body = std::string(v.substr(v.size() - r.Remaining()));
      d->queue.push_back(std::move(e));
      return true;
    }));
    std::string dead = std::string(kDeadPrefix) + d->spec.name + "/";
    SHOAL_RETURN_IF_ERROR(kv.Scan(Column::kModels, dead, [&](std::string_view key, std::string_view) -> Result<bool> {
      if (key.substr(0, dead.size()) != dead) return false;
      d->dead_depth.fetch_add(1);
      return true;
    }));
  }
  return Status::OK();
}

void Server::Impl::EnsureSlots(size_t n) {
  if (current.size() < n) {
    current.resize(n);
    awaiting_evaluation.resize(n, 0);
    phones.resize(n);
    touched_at.resize(n, 0);
    scheduled.resize(n, kNever);
  }
}

// ---------------------------------------------------------------------------------------------
// Writer

uint32_t Server::Impl::ProfileOf(const Event& e) const {
  const IdentityGraph& id = engine->identity();
  uint32_t p = kNoProfile;
  if (!e.customer_id.empty()) p = id.Find(IdKind::kCustomerId, e.customer_id);
  if (p == kNoProfile && !e.email.empty()) p = id.Find(IdKind::kEmail, e.email);
  if (p == kNoProfile && !e.anonymous_id.empty()) p = id.Find(IdKind::kAnonymousId, e.anonymous_id);
  return p;
}

void Server::Impl::AppendCause(std::string* out, const Cause& cause) const {
  switch (cause.kind) {
    case Cause::Kind::kEvent:
      out->append("{\"kind\":\"event\",\"event_id\":");
      AppendJsonString(out, cause.event->event_id);
      out->append(",\"type\":");
      AppendJsonString(out, engine->config().registry.Name(cause.event->type));
      out->push_back('}');
      return;
    case Cause::Kind::kRebuild: out->append("{\"kind\":\"rebuild\"}"); return;
    case Cause::Kind::kMerge: out->append("{\"kind\":\"merge\"}"); return;
    case Cause::Kind::kTime: out->append("{\"kind\":\"time\"}"); return;
    case Cause::Kind::kRecovery: out->append("{\"kind\":\"recovery\"}"); return;
  }
}

void Server::Impl::Touch(uint32_t profile, Cause cause, bool replace) {
  uint32_t& at = touched_at[profile];
  if (at == 0) {
    touched.emplace_back(profile, cause);
    at = static_cast<uint32_t>(touched.size());
    awaiting_evaluation[profile] = 1;
  } else if (replace) {
    touched[at - 1].second = cause;
  }
}

void Server::Impl::Schedule(uint32_t profile, std::optional<TimeMicros> next) {
  TimeMicros t = next.value_or(kNever);
  if (t == scheduled[profile]) return;
  scheduled[profile] = t;
  if (t != kNever) timer.emplace(t, profile);
}

void Server::Impl::ComputeMany(const std::vector<std::pair<uint32_t, Cause>>& ordered,
                               TimeMicros now, std::vector<Computed>* out) {
  if (out->size() < ordered.size()) out->resize(ordered.size());
  auto compute = [&](size_t i) {
    Computed& c = (*out)[i];
    const uint32_t p = ordered[i].first;
    c.changed = false;
    c.next.reset();
    if (!engine->identity().Alive(p)) return;  // Evaluate sees it dead too
    // Into a reused vector (its strings keep their buffers), kept only when it differs from the
    // current memberships: most evaluations change nothing and then allocate nothing.
    thread_local std::vector<std::string> after;
    c.next = source->MembershipsAndNextChange(*engine, p, now, &after);
    if (p >= current.size() || after != current[p]) {
      c.changed = true;
      c.memberships = after;
    }
  };
  constexpr size_t kPerWorker = 256;
  // The profiles of a group are scattered over memory and mostly not in cache (the apply
  // touched them, on another core or long enough ago): their states are fetched a few
  // profiles ahead, in two stages (the state, then what it points to), so the evaluation does
  // not wait for memory once per read.
  constexpr size_t kAhead = 4;
  // The current memberships, compared with the new ones, likewise: their array, then the
  // strings' own buffers (names longer than the inline 15 characters).
  auto prefetch = [&](size_t i, size_t end) {
    if (i + 2 * kAhead < end) {
      const uint32_t p = ordered[i + 2 * kAhead].first;
      engine->state(p).Prefetch(0);
      if (p < current.size()) __builtin_prefetch(current[p].data());
    }
    if (i + kAhead < end) {
      const uint32_t p = ordered[i + kAhead].first;
      engine->state(p).Prefetch(1);
      if (p < current.size()) {
        for (const std::string& membership : current[p]) __builtin_prefetch(membership.data());
      }
    }
  };
  if (ParallelWorkers(ordered.size(), ctx.Threads(), kPerWorker) <= 1) {
    for (size_t i = 0; i < ordered.size(); ++i) {
      prefetch(i, ordered.size());
      compute(i);
    }
    return;
  }
  ParallelFor(
      ordered.size(), ctx.Threads(),
      [&](size_t begin, size_t end, int) {
        for (size_t i = begin; i < end; ++i) {
          prefetch(i, end);
          compute(i);
        }
      },
      kPerWorker);
}

void Server::Impl::Evaluate(uint32_t profile, TimeMicros now, const Cause& cause,
                            WriteGroup* group, std::vector<std::pair<size_t, OutboxEntry>>* pending,
                            Computed& computed) {
  EnsureSlots(profile + 1);
  awaiting_evaluation[profile] = 0;
  const bool alive = engine->identity().Alive(profile);
  std::vector<std::string>& before = current[profile];
  std::optional<TimeMicros> next;
  bool changed;
  if (!alive) {
    changed = !before.empty();  // a dead profile is in nothing
  } else {
    next = computed.next;
    changed = computed.changed;
  }
  Schedule(profile, next);
  if (!changed) return;
  std::vector<std::string> after;
  if (alive) after = std::move(computed.memberships);
  std::vector<std::string> entered, exited;
  std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(entered));
  std::set_difference(before.begin(), before.end(), after.begin(), after.end(), std::back_inserter(exited));
  std::string customer_id(engine->identity().DisplayIdOf(profile));
  const bool opted_out = OptedOut(profile);
  auto emit = [&](const std::string& membership, bool is_entry) {
    uint64_t seq = ++change_seq;
    std::string body = "{\"id\":\"shoal-" + std::to_string(seq) + "\",\"type\":\"";
    body += is_entry ? "entered" : "exited";
    body += "\",\"membership\":";
    AppendJsonString(&body, membership);
    body += ",\"profile\":" + std::to_string(profile) + ",\"customer_id\":";
    AppendJsonString(&body, customer_id);
    body += ",\"at\":";
    AppendJsonString(&body, Iso(now));
    body += ",\"before\":";
    JsonStringArray(&body, before);
    body += ",\"after\":";
    JsonStringArray(&body, after);
    body += ",\"cause\":";
    AppendCause(&body, cause);
    body += "}";
    (is_entry ? metrics.membership_entered : metrics.membership_exited).fetch_add(1);
    for (size_t d = 0; d < destinations.size(); ++d) {
      const WebhookDestination& spec = destinations[d]->spec;
      if (!spec.memberships.empty() &&
          std::find(spec.memberships.begin(), spec.memberships.end(), membership) == spec.memberships.end()) {
        continue;
      }
      if (spec.marketing && opted_out) {
        destinations[d]->consent_suppressed.fetch_add(1);
        metrics.consent_suppressed.fetch_add(1);
        continue;
      }
      std::string value;
      PutVarint(&value, profile);
      value += body;
      group->Put(Column::kModels, OutboxKey(kOutboxPrefix, spec.name, seq), value);
      pending->emplace_back(d, OutboxEntry{seq, profile, body});
    }
  };
  if (!silent) {
    for (const auto& m : exited) emit(m, false);
    for (const auto& m : entered) emit(m, true);
  }
  if (after.empty()) group->Delete(Column::kModels, MembershipKey(profile));
  else group->Put(Column::kModels, MembershipKey(profile), EncodeMemberships(after));
  before = std::move(after);
}

void Server::Impl::Publish(std::vector<std::pair<size_t, OutboxEntry>>& pending) {
  for (auto& [d, entry] : pending) {
    DestinationWorker& w = *destinations[d];
    std::lock_guard lock(w.mu);
    w.queue.push_back(std::move(entry));
    w.cv.notify_one();
  }
  pending.clear();
}

Status Server::Impl::ApplyGroup(std::vector<std::shared_ptr<Job>>& jobs,
                               std::vector<std::pair<size_t, OutboxEntry>>* pending) {
  WriteGroup group;
  bool checkpoint = false;
  {
    // Held exclusively for the mutations only: the apply (released for an instant between
    // batches) and the installation of the new memberships. The source's computation between
    // them runs with the lock released (this thread is the only one that mutates, so the state
    // stays put), and lookups of the touched profiles evaluate them themselves meanwhile
    // (awaiting_evaluation), so they never see new traits beside old memberships. The lock
    // prefers this writer: with glibc's reader-preferring std::shared_mutex a stream of lookups
    // kept it out (docs/benchmarks/server-lookup.md). No other thread fsyncs while it is held,
    // so the log write under it waits for none.
    ExclusiveHold lock(engine_mu, metrics.engine_exclusive_hold);
    const TimeMicros now = ctx.Now();
    touched.clear();
    bool merged_any = false;
    const uint64_t seq_before = change_seq;
    // Remembers the touched profiles (and new phones) of the applied events of jobs[begin, end)
    // (their own batches: a merged batch's copies are gone with the next merge).
    // applied_profiles holds, per event of those jobs in order, the profile the engine applied
    // it to: the identifiers are looked up again only for the events not stored (duplicates)
    // and for those whose profile a later merge of the batch absorbed.
    auto touch = [&](size_t begin, size_t end) {
      EnsureSlots(engine->identity().num_slots());
      size_t at = 0;
      for (size_t k = begin; k < end; ++k) {
        for (const Event& e : jobs[k]->batch.events) {
          uint32_t p = at < applied_profiles.size() ? applied_profiles[at] : kNoProfile;
          ++at;
          if (p == kNoProfile || !engine->identity().Alive(p)) p = ProfileOf(e);
          if (p == kNoProfile) continue;
          Touch(p, Cause{Cause::Kind::kEvent, &e}, /*replace=*/true);
          if (!e.phone.empty() && phones[p] != e.phone) {
            phones[p] = std::string(e.phone);
            group.Put(Column::kModels, PhoneKey(p), e.phone);
          }
        }
      }
    };
    // Consecutive event jobs of up to kMergeMaxEvents (single events and batches of a few
    // hundred, the common cases under many clients) are applied as one batch: one dedupe
    // lookup and one stored block for all of them, and from 1,024 events the engine's
    // parallel apply (EngineOptions::apply_threads). Applying them in order as one batch
    // gives each event the fate it would have had job by job. (At 16, batches of 100 were
    // applied one by one, serially: 3-17% fewer events/s, docs/benchmarks/server-batch.md.)
    constexpr size_t kMergeMaxEvents = 512;
    auto small = [&](size_t j) {
      return jobs[j]->kind == Job::Kind::kEvents && jobs[j]->batch.size() <= kMergeMaxEvents;
    };
    for (size_t j = 0; j < jobs.size();) {
      if (j > 0) {  // lookups already waiting get in between batches, as they did before
        lock.unlock();
        lock.lock();
      }
      Job& job = *jobs[j];
      if (job.kind == Job::Kind::kTick) {  // due timers are taken below, for every group
        checkpoint |= job.checkpoint;
        ++j;
        continue;
      }
      if (job.kind == Job::Kind::kRebuild) {
        // The new models replace the old at once: every profile is re-evaluated below, in this
        // group, and each difference becomes a record with cause "rebuild".
        if (job.new_source) source = std::move(job.new_source);
        EnsureSlots(engine->identity().num_slots());
        for (uint32_t p = 0; p < current.size(); ++p) {
          if (engine->identity().Alive(p) || !current[p].empty()) Touch(p, Cause{Cause::Kind::kRebuild, nullptr}, true);
        }
        checkpoint = true;  // after the group, without holding lookups off during its sync
        ++j;
        continue;
      }
      size_t end = j + 1;
      while (small(j) && end < jobs.size() && small(end)) ++end;
      if (end - j == 1) {
        auto applied = engine->Apply(job.batch, /*sync=*/false, nullptr, &applied_profiles);
        if (!applied.ok()) {
          job.status = applied.status();
        } else {
          job.summary = *applied;
          merged_any |= applied->merges > 0;
          touch(j, j + 1);
        }
        ++j;
        continue;
      }
      merged.Clear();
      for (size_t k = j; k < end; ++k) {
        for (const Event& e : jobs[k]->batch.events) merged.AppendCopy(jobs[k]->batch, e);
      }
      auto applied = engine->Apply(merged, /*sync=*/false, &outcomes, &applied_profiles);
      size_t at = 0;
      for (size_t k = j; k < end; ++k) {
        Job& part = *jobs[k];
        const size_t n = part.batch.size();
        if (!applied.ok()) {
          part.status = applied.status();
        } else {
          part.summary = IngestSummary();
          part.summary.events = n;
          for (size_t i = at; i < at + n; ++i) {
            switch (outcomes[i]) {
              case ApplyOutcome::kStored: ++part.summary.stored; break;
              case ApplyOutcome::kDuplicate: ++part.summary.duplicates; break;
              case ApplyOutcome::kSuppressed: ++part.summary.suppressed; break;
            }
          }
        }
        at += n;
      }
      if (applied.ok()) {
        merged_any |= applied->merges > 0;
        touch(j, end);
      }
      j = end;
    }
    if (merged_any) {  // absorbed profiles leave everything they were in
      for (uint32_t p = 0; p < current.size(); ++p) {
        if (!current[p].empty() && !engine->identity().Alive(p)) Touch(p, Cause{Cause::Kind::kMerge, nullptr}, false);
      }
    }
    // At most kTimerBatch timed re-evaluations per group, so a moment many profiles share (a
    // UTC midnight, a cut point) is installed in slices; the rest follow in the next groups at
    // once.
    constexpr size_t kTimerBatch = 1024;
    size_t timer_budget = kTimerBatch;
    while (!timer.empty() && timer.top().first <= now && timer_budget > 0) {
      auto [t, p] = timer.top();
      timer.pop();
      if (scheduled[p] != t) continue;  // superseded
      --timer_budget;
      scheduled[p] = kNever;
      metrics.timer_evaluations.fetch_add(1);
      Touch(p, Cause{Cause::Kind::kTime, nullptr}, false);
    }
    // Deterministic order of change records: by profile.
    for (const auto& [p, c] : touched) touched_at[p] = 0;
    std::sort(touched.begin(), touched.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    lock.unlock();
    ComputeMany(touched, now, &computed);
    lock.lock();
    for (size_t i = 0; i < touched.size(); ++i) {
      Evaluate(touched[i].first, now, touched[i].second, &group, pending, computed[i]);
    }
    for (auto& job : jobs) {
      if (job->kind == Job::Kind::kRebuild) job->changes = change_seq - seq_before;
    }
    std::string seq;
    PutVarint(&seq, change_seq);
    group.Put(Column::kModels, kChangeSeqKey, seq);
    metrics.timer_pending.store(static_cast<int64_t>(timer.size()));
    next_timer.store(timer.empty() ? kNever : timer.top().first);
  }
  // One fsync makes the events (written unsynced by StoreNew, earlier in the same write-ahead
  // log), the memberships and the outbox records durable together.
  SHOAL_RETURN_IF_ERROR(engine->store().Write(group, /*sync=*/true));
  if (checkpoint) {
    // The apply role keeps every other mutation out, so the snapshot of the dirty profiles is
    // serialized under the shared lock and synced under none: lookups go on meanwhile; the
    // exclusive lock is held only to mark the profiles clean.
    Engine::PendingCheckpoint pending_checkpoint;
    {
      std::shared_lock lock(engine_mu);
      engine->PrepareCheckpoint(&pending_checkpoint);
    }
    Status st = engine->store().Write(pending_checkpoint.group, /*sync=*/true);
    if (st.ok()) {
      ExclusiveHold lock(engine_mu, metrics.engine_exclusive_hold);
      engine->FinishCheckpoint(pending_checkpoint);
    } else {
      std::fprintf(stderr, "shoal serve: checkpoint failed: %s\n", st.message().c_str());
      for (auto& job : jobs) {
        if (job->kind == Job::Kind::kRebuild) job->status = st;
      }
    }
  }
  return Status::OK();
}

void Server::Impl::ProcessForget(Job& job) {
  ExclusiveHold lock(engine_mu, metrics.engine_exclusive_hold);
  uint32_t p = engine->FindProfile(job.identifier);
  if (p == kNoProfile) {
    job.status = Status::NotFound("no profile has the identifier '" + job.identifier + "'");
    return;
  }
  EnsureSlots(p + 1);
  // Their memberships, phone and undelivered records go first (erasure, not an 'exited').
  WriteGroup group;
  group.Delete(Column::kModels, MembershipKey(p));
  group.Delete(Column::kModels, PhoneKey(p));
  current[p].clear();
  phones[p].clear();
  scheduled[p] = kNever;
  for (auto& d : destinations) {
    std::lock_guard qlock(d->mu);
    std::deque<OutboxEntry> kept;
    for (auto& e : d->queue) {
      if (e.profile == p) group.Delete(Column::kModels, OutboxKey(kOutboxPrefix, d->spec.name, e.seq));
      else kept.push_back(std::move(e));
    }
    d->queue.swap(kept);
    std::string dead = std::string(kDeadPrefix) + d->spec.name + "/";
    (void)engine->store().Scan(Column::kModels, dead, [&](std::string_view key, std::string_view v) -> Result<bool> {
      if (key.substr(0, dead.size()) != dead) return false;
      Reader r(v);
      if (r.Varint() == p) {
        group.Delete(Column::kModels, key);
        d->dead_depth.fetch_sub(1);
      }
      return true;
    });
  }
  job.status = engine->store().Write(group, true);
  if (!job.status.ok()) return;
  auto forgotten = engine->Forget(job.identifier);  // compacts: the deleted records go too
  if (!forgotten.ok()) {
    job.status = forgotten.status();
    return;
  }
  job.reply = "{\"forgotten\":true,\"events_removed\":" + std::to_string(forgotten->events_removed) +
              ",\"references_scrubbed\":" + std::to_string(forgotten->references_scrubbed) +
              ",\"identifiers\":" + std::to_string(forgotten->identifiers.size()) + "}";
}

namespace {
// Set on an I/O thread that queued a job and found no apply leader: it leads after its round.
thread_local bool tls_owes_lead = false;
}  // namespace

Status Server::Impl::Submit(const std::shared_ptr<Job>& job) {
  bool lead = false;
  bool wake_committer = false;
  {
    std::lock_guard lock(commit_mu);
    if (stopping) return Status::Unavailable("server is stopping");
    job->done = false;  // not yet visible to any other thread
    queue.push_back(job);
    metrics.writer_queue_depth.store(static_cast<int64_t>(queue.size()));
    if (!applying) {  // the queue was empty: this thread leads (or wakes the committer)
      applying = true;
      lead = !config.commit_thread;
      wake_committer = config.commit_thread;
    }
  }
  if (wake_committer) commit_cv.notify_one();
  if (!lead) {
    std::unique_lock job_lock(job->mu);
    job->cv.wait(job_lock, [&] { return job->done; });
    return Status::OK();
  }
  std::unique_lock lock(commit_mu);
  // This job is at the queue's front, so in the first group.
  LeadGroup(lock);
  if (queue.empty()) {
    applying = false;
  } else if (io_running) {
    // Requests queued meanwhile: an I/O thread takes the role over (applying stays true, so
    // nobody else takes it in between), and this thread's answer is not held back.
    lead_wanted.store(true);
    lock.unlock();
    http->Wake();
    return Status::OK();
  } else {
    lock.unlock();
    LeadUntilEmpty(/*io=*/false);
  }
  return Status::OK();
}

void Server::Impl::SubmitAsync(std::shared_ptr<Job> job) {
  bool wake_committer = false;
  {
    std::unique_lock lock(commit_mu);
    if (!stopping) {
      queue.push_back(std::move(job));
      metrics.writer_queue_depth.store(static_cast<int64_t>(queue.size()));
      if (!applying) {
        applying = true;
        if (config.commit_thread) wake_committer = true;
        else tls_owes_lead = true;
      }
      lock.unlock();
      if (wake_committer) commit_cv.notify_one();
      return;
    }
  }
  HttpResponse res;
  res.Set(503, ErrorJson("server is stopping"));
  CountRequest(Route::kEvents, 503, job->start);
  job->responder.Respond(std::move(res));
}

void Server::Impl::AfterRound() {
  bool lead = false;
  if (tls_owes_lead) {
    tls_owes_lead = false;
    lead = true;
  } else if (lead_wanted.load(std::memory_order_relaxed)) {
    lead = lead_wanted.exchange(false);
  }
  if (lead) LeadUntilEmpty(/*io=*/true);
}

void Server::Impl::CommitterLoop() {
  std::unique_lock lock(commit_mu);
  for (;;) {
    commit_cv.wait(lock, [&] { return applying || committer_stop; });
    if (!applying) return;  // stopping, and nothing queued
    while (!queue.empty()) LeadGroup(lock);
    applying = false;
  }
}

void Server::Impl::LeadUntilEmpty(bool io) {
  std::unique_lock lock(commit_mu);
  while (!queue.empty()) {
    LeadGroup(lock);
    if (io) {
      // The next group is what queued up during this one's fsync; meanwhile this thread's own
      // connections wait, so serve them one round (without waiting) before the next group.
      lock.unlock();
      http->PollOnce();
      lock.lock();
    }
  }
  applying = false;
}

void Server::Impl::LeadGroup(std::unique_lock<std::mutex>& lock) {
  std::vector<std::shared_ptr<Job>> jobs;
  size_t events = 0;
  while (!queue.empty()) {
    std::shared_ptr<Job>& next = queue.front();
    const bool alone = next->kind == Job::Kind::kForget;
    if (!jobs.empty() && (alone || events + next->batch.size() > config.max_group_events)) break;
    events += next->batch.size();
    jobs.push_back(std::move(next));
    queue.pop_front();
    if (alone) break;
  }
  metrics.writer_queue_depth.store(static_cast<int64_t>(queue.size()));
  lock.unlock();
  std::vector<std::pair<size_t, OutboxEntry>> pending;
  Status st;  // a failure of the whole group: its write
  if (jobs.front()->kind == Job::Kind::kForget) {
    ProcessForget(*jobs.front());  // synced by itself
  } else {
    st = ApplyGroup(jobs, &pending);
  }
  metrics.group_commits.fetch_add(1, std::memory_order_relaxed);
  // (Applying the next group during this one's fsync was tried: the groups shrank to a few
  // events, and throughput and tail latency got worse in A/B runs; docs/benchmarks/server.md.)
  if (st.ok() && !pending.empty()) {
    lock.lock();  // records reach the delivery queues in the order of their groups
    Publish(pending);
    lock.unlock();
  }
  for (auto& job : jobs) {
    if (job->status.ok() && !st.ok()) job->status = st;
    if (job->responder) {
      CompleteEventsJob(std::move(job));
      continue;
    }
    {
      std::lock_guard job_lock(job->mu);
      job->done = true;
    }
    job->cv.notify_one();
  }
  jobs.clear();
  lock.lock();
}

void Server::Impl::TickerLoop() {
  auto tick = std::make_shared<Job>();
  tick->kind = Job::Kind::kTick;
  std::unique_lock lock(ticker_mu);
  while (!ticker_stop) {
    const TimeMicros due = next_timer.load();
    const TimeMicros now = ctx.Now();
    if (due > now) {
      const TimeMicros wait = due == kNever ? 1'000'000 : std::min<TimeMicros>(due - now, 1'000'000);
      ticker_cv.wait_for(lock, std::chrono::microseconds(wait), [&] { return ticker_stop; });
      if (ticker_stop) break;
    }
    const bool checkpoint_due =
        config.checkpoint_seconds > 0 &&
        Clock::now() - last_checkpoint > std::chrono::duration<double>(config.checkpoint_seconds);
    if (next_timer.load() > ctx.Now() && !checkpoint_due) continue;
    lock.unlock();
    tick->checkpoint = checkpoint_due;
    tick->status = Status::OK();
    Status st = Submit(tick);
    if (checkpoint_due) last_checkpoint = Clock::now();
    lock.lock();
    if (!st.ok()) break;  // stopping
  }
}

// ---------------------------------------------------------------------------------------------
// Delivery

void Server::Impl::DeliveryLoop(DestinationWorker* d) {
  std::mt19937_64 rng(ctx.seed ^ std::hash<std::string>()(d->spec.name));
  std::unique_ptr<httplib::Client> client;
  int attempts = 0;
  for (;;) {
    OutboxEntry entry;
    {
      std::unique_lock lock(d->mu);
      d->cv.wait(lock, [&] { return d->stop || !d->queue.empty(); });
      if (d->stop) return;
      entry = d->queue.front();  // copied: the queue may be edited (forget) while we send
    }
    bool drop = false;
    if (d->spec.marketing) {
      std::shared_lock lock(engine_mu);
      drop = OptedOut(entry.profile);  // opted out after the record was queued
    }
    bool delivered = false;
    if (!drop) {
      if (!client) {
        client = std::make_unique<httplib::Client>(d->url.host, d->url.port);
        client->set_keep_alive(true);
        client->set_tcp_nodelay(true);  // headers and body go in separate writes: no Nagle wait
        client->set_connection_timeout(std::chrono::milliseconds(d->spec.timeout_ms));
        client->set_read_timeout(std::chrono::milliseconds(d->spec.timeout_ms));
        client->set_write_timeout(std::chrono::milliseconds(d->spec.timeout_ms));
      }
      httplib::Headers headers = {
          {"X-Shoal-Idempotency-Key", "shoal-" + std::to_string(entry.seq)},
          {"X-Shoal-Delivery-Attempt", std::to_string(attempts + 1)}};
      if (!d->spec.secret.empty()) {
        headers.emplace("X-Shoal-Signature", "sha256=" + HmacSha256Hex(d->spec.secret, entry.body));
      }
      auto res = client->Post(d->url.path, headers, entry.body, "application/json");
      delivered = res && res->status >= 200 && res->status < 300;
      if (!res) client.reset();  // reconnect next time
    }
    WriteGroup group;
    std::string key = OutboxKey(kOutboxPrefix, d->spec.name, entry.seq);
    bool pop = false;
    if (drop) {
      d->consent_suppressed.fetch_add(1);
      metrics.consent_suppressed.fetch_add(1);
      group.Delete(Column::kModels, key);
      pop = true;
    } else if (delivered) {
      d->delivered.fetch_add(1);
      group.Delete(Column::kModels, key);
      pop = true;
    } else {
      d->failures.fetch_add(1);
      ++attempts;
      if (attempts >= d->spec.max_attempts) {
        std::string value;
        PutVarint(&value, entry.profile);
        value += entry.body;
        group.Put(Column::kModels, OutboxKey(kDeadPrefix, d->spec.name, entry.seq), value);
        group.Delete(Column::kModels, key);
        d->dead_letters.fetch_add(1);
        d->dead_depth.fetch_add(1);
        pop = true;
      }
    }
    if (pop) {
      attempts = 0;
      // Losing this write in a crash only means delivering the record again (at least once).
      Status st = engine->store().Write(group, /*sync=*/false);
      if (!st.ok()) std::fprintf(stderr, "shoal serve: outbox update failed: %s\n", st.message().c_str());
      std::lock_guard lock(d->mu);
      if (!d->queue.empty() && d->queue.front().seq == entry.seq) d->queue.pop_front();
      continue;
    }
    // Exponential backoff with +-50% jitter, cut short by Stop().
    double delay = std::min<double>(d->spec.backoff_max_ms,
                                    d->spec.backoff_initial_ms * std::pow(2.0, attempts - 1));
    delay *= std::uniform_real_distribution<double>(0.5, 1.5)(rng);
    std::unique_lock lock(d->mu);
    d->cv.wait_for(lock, std::chrono::microseconds(static_cast<int64_t>(delay * 1000)),
                   [&] { return d->stop; });
  }
}

// ---------------------------------------------------------------------------------------------
// Exports

Result<std::string> Server::Impl::Export(const std::string& membership_in,
                                         const ExportOptions& options, bool marketing) {
  std::string membership = membership_in.find(':') == std::string::npos
                               ? "audience:" + membership_in : membership_in;
  std::vector<ExportRow> rows;
  {
    std::shared_lock lock(engine_mu);
    for (uint32_t p = 0; p < current.size(); ++p) {
      const auto& m = current[p];
      if (!std::binary_search(m.begin(), m.end(), membership)) continue;
      if (!engine->identity().Alive(p)) continue;
      if (marketing && OptedOut(p)) continue;
      ExportRow row;
      row.customer_id = std::string(engine->identity().DisplayIdOf(p));
      for (const auto& [kind, value] : engine->identity().IdentifiersOf(p)) {
        if (kind == IdKind::kEmail && row.email.empty()) row.email = std::string(value);
      }
      row.phone = phones[p];
      rows.push_back(std::move(row));
    }
  }
  ExportOptions o = options;
  if (o.default_country_code.empty()) o.default_country_code = config.default_country_code;
  return FormatAudienceExport(rows, o);
}

void Server::Impl::ExportLoop() {
  std::vector<Clock::time_point> due(config.exports.size());
  for (size_t i = 0; i < due.size(); ++i) {
    due[i] = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(config.exports[i].every_minutes * 60));
  }
  std::unique_lock lock(stop_mu);
  while (!stopped) {
    stop_cv.wait_for(lock, std::chrono::milliseconds(200));
    for (size_t i = 0; i < due.size() && !stopped; ++i) {
      const ScheduledExport& e = config.exports[i];
      if (e.every_minutes <= 0 || Clock::now() < due[i]) continue;
      due[i] = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(e.every_minutes * 60));
      ExportOptions o;
      o.format = e.format;
      auto text = Export(e.audience, o, e.marketing);
      if (!text.ok()) continue;
      namespace fs = std::filesystem;
      fs::path path = fs::path(e.path).is_absolute() ? fs::path(e.path) : fs::path(options.db_dir) / e.path;
      std::error_code ec;
      fs::create_directories(path.parent_path(), ec);
      fs::path tmp = path;
      tmp += ".tmp";
      {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << *text;
      }
      fs::rename(tmp, path, ec);
      if (ec) std::fprintf(stderr, "shoal serve: export to %s failed: %s\n", path.c_str(), ec.message().c_str());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP

std::string Server::Impl::MetricsText() const {
  std::string out;
  char line[320];
  out += "# HELP shoal_http_requests_total HTTP requests by route and status class.\n"
         "# TYPE shoal_http_requests_total counter\n";
  static const char* kClasses[] = {"2xx", "4xx", "5xx"};
  for (int r = 0; r < static_cast<int>(Route::kNumRoutes); ++r) {
    for (int c = 0; c < 3; ++c) {
      uint64_t n = metrics.requests[r][c].load();
      if (n == 0) continue;
      std::snprintf(line, sizeof line, "shoal_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
                    RouteName(static_cast<Route>(r)), kClasses[c], static_cast<unsigned long long>(n));
      out += line;
    }
  }
  out += "# HELP shoal_http_request_duration_seconds Time from the request's receipt to its response.\n"
         "# TYPE shoal_http_request_duration_seconds histogram\n";
  for (int r = 0; r < static_cast<int>(Route::kNumRoutes); ++r) {
    metrics.latency[r].Render(&out, "shoal_http_request_duration_seconds",
                              std::string("route=\"") + RouteName(static_cast<Route>(r)) + "\"");
  }
  out += "# HELP shoal_engine_exclusive_hold_seconds How long the apply leader held the engine "
         "lock exclusively, per hold (lookups wait at most this long).\n"
         "# TYPE shoal_engine_exclusive_hold_seconds histogram\n";
  metrics.engine_exclusive_hold.Render(&out, "shoal_engine_exclusive_hold_seconds", "");
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name,
                  name, static_cast<unsigned long long>(v));
    out += line;
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name,
                  name, static_cast<long long>(v));
    out += line;
  };
  counter("shoal_events_accepted_total", "Events that passed validation.", metrics.events_accepted);
  counter("shoal_events_rejected_total", "Events refused with a per-item error.", metrics.events_rejected);
  counter("shoal_events_stored_total", "New events stored durably.", metrics.events_stored);
  counter("shoal_events_duplicate_total", "Events whose id was already stored.", metrics.events_duplicate);
  counter("shoal_group_commits_total", "Groups of requests made durable with one fsync.", metrics.group_commits);
  counter("shoal_membership_entered_total", "Membership entries emitted.", metrics.membership_entered);
  counter("shoal_membership_exited_total", "Membership exits emitted.", metrics.membership_exited);
  counter("shoal_timer_evaluations_total", "Profiles re-evaluated by the timer.", metrics.timer_evaluations);
  counter("shoal_lookups_deferred_total",
          "Lookups that found the engine lock taken and ran on a worker instead of the I/O loop.",
          metrics.lookups_deferred);
  counter("shoal_consent_suppressed_total", "Records not sent to marketing destinations (opt-out).",
          metrics.consent_suppressed);
  gauge("shoal_writer_queue_depth", "Requests waiting for the apply leader.", metrics.writer_queue_depth);
  gauge("shoal_timer_pending", "Scheduled time-driven re-evaluations.", metrics.timer_pending);
  gauge("shoal_http_connections", "Open client connections.",
        http ? static_cast<int64_t>(http->connections()) : 0);
  gauge("shoal_http_requests_in_flight", "Requests dispatched to a worker or the commit queue, not yet answered.",
        http ? static_cast<int64_t>(http->in_flight()) : 0);
  out += "# HELP shoal_outbox_depth Records waiting for delivery.\n# TYPE shoal_outbox_depth gauge\n";
  std::string deliveries =
      "# HELP shoal_webhook_deliveries_total Records delivered (2xx).\n"
      "# TYPE shoal_webhook_deliveries_total counter\n";
  std::string failures =
      "# HELP shoal_webhook_failures_total Failed delivery attempts.\n"
      "# TYPE shoal_webhook_failures_total counter\n";
  std::string dead =
      "# HELP shoal_webhook_dead_letters_total Records dead-lettered after max_attempts failures.\n"
      "# TYPE shoal_webhook_dead_letters_total counter\n";
  std::string dead_depth =
      "# HELP shoal_dead_letter_depth Records held in the dead-letter store.\n"
      "# TYPE shoal_dead_letter_depth gauge\n";
  for (const auto& d : destinations) {
    size_t depth;
    {
      std::lock_guard lock(d->mu);
      depth = d->queue.size();
    }
    const char* n = d->spec.name.c_str();
    std::snprintf(line, sizeof line, "shoal_outbox_depth{destination=\"%s\"} %zu\n", n, depth);
    out += line;
    std::snprintf(line, sizeof line, "shoal_webhook_deliveries_total{destination=\"%s\"} %llu\n", n,
                  static_cast<unsigned long long>(d->delivered.load()));
    deliveries += line;
    std::snprintf(line, sizeof line, "shoal_webhook_failures_total{destination=\"%s\"} %llu\n", n,
                  static_cast<unsigned long long>(d->failures.load()));
    failures += line;
    std::snprintf(line, sizeof line, "shoal_webhook_dead_letters_total{destination=\"%s\"} %llu\n", n,
                  static_cast<unsigned long long>(d->dead_letters.load()));
    dead += line;
    std::snprintf(line, sizeof line, "shoal_dead_letter_depth{destination=\"%s\"} %lld\n", n,
                  static_cast<long long>(d->dead_depth.load()));
    dead_depth += line;
  }
  out += deliveries + failures + dead + dead_depth;
  return out;
}

static std::string EventsReply(const Job& job) {
  std::string out = "{\"accepted\":" + std::to_string(job.accepted) + ",\"rejected\":" +
                    std::to_string(job.rejected) + ",\"stored\":" + std::to_string(job.summary.stored) +
                    ",\"duplicates\":" + std::to_string(job.summary.duplicates) +
                    ",\"suppressed\":" + std::to_string(job.summary.suppressed) + ",\"results\":[";
  for (size_t i = 0; i < job.items.size(); ++i) {
    const ItemResult& item = job.items[i];
    if (i) out.push_back(',');
    out += "{\"index\":" + std::to_string(i) + ",\"ok\":" + (item.ok ? "true" : "false");
    if (item.ok) {
      out += ",\"event_id\":";
      AppendJsonString(&out, item.event_id);
    } else {
      out += ",\"field\":";
      AppendJsonString(&out, item.field);
      out += ",\"error\":";
      AppendJsonString(&out, item.reason);
    }
    out += "}";
  }
  out += "]}";
  return out;
}

void Server::Impl::CountRequest(Route route, int status, Clock::time_point start) {
  int cls = status >= 500 ? 2 : status >= 400 ? 1 : 0;
  metrics.requests[static_cast<int>(route)][cls].fetch_add(1, std::memory_order_relaxed);
  metrics.latency[static_cast<int>(route)].Observe(std::chrono::duration<double>(Clock::now() - start).count());
}

std::shared_ptr<Job> Server::Impl::AcquireEventsJob() {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(pool_mu);
    if (!job_pool.empty()) {
      job = std::move(job_pool.back());
      job_pool.pop_back();
    }
  }
  if (!job) job = std::make_shared<Job>();
  job->status = Status::OK();
  job->summary = IngestSummary();
  job->accepted = job->rejected = 0;
  return job;
}

void Server::Impl::CompleteEventsJob(std::shared_ptr<Job> job) {
  HttpResponse res;
  if (!job->status.ok()) {
    res.Set(500, ErrorJson("events not stored: " + job->status.message()));
  } else {
    metrics.events_stored.fetch_add(job->summary.stored, std::memory_order_relaxed);
    metrics.events_duplicate.fetch_add(job->summary.duplicates, std::memory_order_relaxed);
    res.Set(job->rejected > 0 ? 207 : 200, EventsReply(*job));
  }
  CountRequest(Route::kEvents, res.status, job->start);
  job->responder.Respond(std::move(res));
  ReleaseEventsJob(std::move(job));
}

void Server::Impl::ReleaseEventsJob(std::shared_ptr<Job> job) {
  std::lock_guard lock(pool_mu);
  if (job_pool.size() < kJobPoolSize && job.use_count() == 1) job_pool.push_back(std::move(job));
}

void Server::Impl::SetUpRoutes() {
  HttpServerOptions http_options;
  http_options.bind = config.bind;
  http_options.port = config.port;
  http_options.io_threads = EffectiveIoThreads(config, ctx.Threads());
  http_options.worker_threads = config.worker_threads;
  http_options.max_body_bytes = config.max_body_bytes;
  http_options.idle_timeout_seconds = config.idle_timeout_seconds;
  http_options.read_timeout_seconds = config.read_timeout_seconds;
  http_options.max_connections = config.max_connections;
  http_options.max_pending_output_bytes = config.max_pending_output_bytes;
  http_options.error_body = [](int status, const std::string& message) {
    return ErrorJson(status == 404 ? "no such endpoint (see /openapi.json)" : message);
  };
  http = std::make_unique<HttpServer>(std::move(http_options));
  http->SetAfterRound([this] { AfterRound(); });

  // Authentication: read scope for GET, write scope for POST; health and the API description
  // are open. Without configured tokens the server only binds loopback and admits every call.
  http->SetBeforeRoute([this](const HttpRequest& req, HttpResponse* res) {
    if (config.tokens.empty() || req.path == "/healthz" || req.path == "/openapi.json") return false;
    std::string_view auth = req.Header("Authorization");
    const ApiToken* token = nullptr;
    if (auth.substr(0, 7) == "Bearer ") {
      std::string_view given = auth.substr(7);
      for (const ApiToken& t : config.tokens) {
        if (t.token.size() == given.size() &&
            CRYPTO_memcmp(t.token.data(), given.data(), given.size()) == 0) {
          token = &t;
        }
      }
    }
    bool write = req.method == "POST";
    if (token == nullptr) {
      res->Set(401, ErrorJson("missing or unknown bearer token (Authorization: Bearer TOKEN)"));
      res->headers.emplace_back("WWW-Authenticate", "Bearer");
    } else if (write ? !token->write : !token->read) {
      res->Set(403, ErrorJson(std::string("this token lacks the ") + (write ? "write" : "read") + " scope"));
    } else {
      return false;
    }
    metrics.requests[static_cast<int>(Route::kOther)][1].fetch_add(1);
    return true;
  });

  auto timed = [this](Route route, std::function<void(const HttpRequest&, HttpResponse*)> fn) {
    return [this, route, fn = std::move(fn)](const HttpRequest& req, HttpResponse* res) {
      const auto start = ReceivedOr(req);
      try {
        fn(req, res);
      } catch (const std::exception& e) {  // library exceptions stop at the boundary
        res->Set(500, ErrorJson(std::string("internal error: ") + e.what()));
      }
      CountRequest(route, res->status, start);
    };
  };
  auto json = [](HttpResponse* res, int status, std::string body) { res->Set(status, std::move(body)); };

  // Events: parsed on the I/O thread, queued for the apply leader with the responder, which
  // the leader completes once the group is durable; the I/O thread goes back to its loop.
  http->Async("POST", "/v1/events", [this](const HttpRequest& req, HttpResponder responder) {
    const auto start = ReceivedOr(req);
    auto answer = [&](int status, std::string body) {
      HttpResponse res;
      res.Set(status, std::move(body));
      CountRequest(Route::kEvents, status, start);
      responder.Respond(std::move(res));
    };
    if (req.body.empty()) return answer(400, ErrorJson("empty body: send one event object or an array"));
    std::shared_ptr<Job> job = AcquireEventsJob();
    job->start = start;
    JsonEventsOptions parse_options;
    parse_options.max_events = config.max_batch_events;
    Status st;
    try {
      st = ParseJsonEvents(req.body, engine->config().registry, &job->batch, &job->items, parse_options);
    } catch (const std::exception& e) {  // library exceptions stop at the boundary
      ReleaseEventsJob(std::move(job));
      return answer(500, ErrorJson(std::string("internal error: ") + e.what()));
    }
    if (!st.ok()) {
      ReleaseEventsJob(std::move(job));
      bool too_many = st.message().rfind("batch has", 0) == 0;
      return answer(too_many ? 413 : 400, ErrorJson(st.message()));
    }
    job->accepted = job->batch.size();
    job->rejected = job->items.size() - job->accepted;
    metrics.events_accepted.fetch_add(job->accepted, std::memory_order_relaxed);
    metrics.events_rejected.fetch_add(job->rejected, std::memory_order_relaxed);
    if (job->accepted == 0) {
      answer(400, EventsReply(*job));
      return ReleaseEventsJob(std::move(job));
    }
    job->responder = std::move(responder);
    SubmitAsync(std::move(job));
  });

  // Lookups run on the I/O thread when the engine lock is free within kLookupSpin; while the
  // apply leader holds it longer or waits for it (writer preference), the request goes to a
  // worker that waits, so the loop goes on serving its other connections. The lock is held for what reads the engine
  // (traits, live scores, the memberships copied); the memberships are rendered after it.
  auto lookup = [this](const HttpRequest& req, HttpResponse* res, bool may_wait) {
    const auto start = ReceivedOr(req);
    std::shared_lock lock(engine_mu, std::defer_lock);
    if (may_wait) {
      lock.lock();
    } else if (!TryLockSharedSpinning(lock, kLookupSpin)) {
      metrics.lookups_deferred.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    try {
      const std::string& identifier = req.path_params[0];
      const TimeMicros now = ctx.Now();
      auto profile_json = engine->ProfileJson(identifier, now, /*with_build=*/false);
      if (!profile_json.ok()) {
        lock.unlock();
        res->Set(HttpStatusOf(profile_json.status()), ErrorJson(profile_json.status().message()));
      } else {
        const uint32_t p = engine->FindProfile(identifier);
        std::vector<std::string> m;
        std::string live;
        if (p != kNoProfile) {
          if (p < awaiting_evaluation.size() && awaiting_evaluation[p]) {
            // Applied in the group being committed, its new memberships not installed yet:
            // what the leader is computing, from the same state as the traits above.
            (void)source->MembershipsAndNextChange(*engine, p, now, &m);
          } else if (p < current.size()) {
            m = current[p];
          }
          source->AppendProfileJson(*engine, p, now, &live);
        }
        lock.unlock();
        std::string out = std::move(*profile_json);
        out.pop_back();  // the closing brace: memberships follow the traits
        out += ",\"memberships\":";
        JsonStringArray(&out, m);
        // Grouped by kind: "segment:x" under "segments", "audience:y" under "audiences", ...
        out += ",\"by_kind\":{";
        std::string kind;
        bool first_kind = true;
        for (size_t i = 0; i < m.size(); ++i) {
          size_t colon = m[i].find(':');
          std::string k = colon == std::string::npos ? "other" : m[i].substr(0, colon);
          std::string name = colon == std::string::npos ? m[i] : m[i].substr(colon + 1);
          if (k != kind) {
            if (!first_kind) out += "],";
            first_kind = false;
            AppendJsonString(&out, k);
            out += ":[";
            kind = k;
          } else {
            out += ",";
          }
          AppendJsonString(&out, name);
        }
        if (!first_kind) out += "]";
        out += "}";
        out += live;
        out += "}";
        res->Set(200, std::move(out));
      }
    } catch (const std::exception& e) {  // library exceptions stop at the boundary
      res->Set(500, ErrorJson(std::string("internal error: ") + e.what()));
    }
    CountRequest(Route::kProfile, res->status, start);
    return true;
  };
  http->InlineUnlessBusy("GET", "/v1/profiles/{identifier}", lookup);

  auto members = [this, json](const std::string& membership, const HttpRequest& req, HttpResponse* res) {
    uint32_t cursor = 0;
    size_t limit = 100;
    if (req.HasQuery("cursor")) cursor = static_cast<uint32_t>(std::strtoul(req.QueryValue("cursor").c_str(), nullptr, 10));
    if (req.HasQuery("limit")) limit = std::clamp<size_t>(std::strtoul(req.QueryValue("limit").c_str(), nullptr, 10), 1, 10000);
    std::string out = "{\"membership\":";
    AppendJsonString(&out, membership);
    out += ",\"members\":[";
    std::shared_lock lock(engine_mu);
    uint32_t p = cursor;
    size_t n = 0;
    for (; p < current.size() && n < limit; ++p) {
      const auto& m = current[p];
      if (!std::binary_search(m.begin(), m.end(), membership)) continue;
      if (n++) out.push_back(',');
      out += "{\"profile\":" + std::to_string(p) + ",\"customer_id\":";
      AppendJsonString(&out, engine->identity().DisplayIdOf(p));
      out += "}";
    }
    // Is there anything after p?
    bool more = false;
    for (uint32_t q = p; q < current.size() && !more; ++q) {
      more = std::binary_search(current[q].begin(), current[q].end(), membership);
    }
    out += "],\"next_cursor\":";
    out += more ? std::to_string(p) : "null";
    out += "}";
    json(res, 200, std::move(out));
  };

  // Counting every profile's memberships can take a while: on the worker pool.
  http->Worker("GET", "/v1/segments", timed(Route::kSegments, [this, json](const HttpRequest&, HttpResponse* res) {
    std::vector<std::string> defs;
    std::vector<uint64_t> counts;
    {
      std::shared_lock lock(engine_mu);
      defs = source->Definitions();
      counts.assign(defs.size(), 0);
      for (const auto& m : current) {
        for (size_t i = 0; i < defs.size(); ++i) counts[i] += std::binary_search(m.begin(), m.end(), defs[i]);
      }
    }
    std::string out = "{\"segments\":[";
    for (size_t i = 0; i < defs.size(); ++i) {
      if (i) out.push_back(',');
      out += "{\"id\":";
      AppendJsonString(&out, defs[i]);
      out += ",\"members\":" + std::to_string(counts[i]) + "}";
    }
    out += "]}";
    json(res, 200, std::move(out));
  }));
  http->Worker("GET", "/v1/segments/{id}/members", timed(Route::kMembers, [members](const HttpRequest& req, HttpResponse* res) {
    const std::string& id = req.path_params[0];
    members(id.find(':') == std::string::npos ? "segment:" + id : id, req, res);
  }));
  http->Worker("GET", "/v1/audiences/{name}/members", timed(Route::kAudienceMembers, [members](const HttpRequest& req, HttpResponse* res) {
    members("audience:" + req.path_params[0], req, res);
  }));
  http->Worker("POST", "/v1/audiences/{name}/export", timed(Route::kExport, [this, json](const HttpRequest& req, HttpResponse* res) {
    std::string format_name = req.HasQuery("format") ? req.QueryValue("format") : "csv";
    auto format = ParseExportFormat(format_name);
    if (!format.ok()) return json(res, 400, ErrorJson(format.status().message(), "format"));
    bool marketing = *format == ExportFormat::kCustomerList ||
                     !(req.HasQuery("marketing") && req.QueryValue("marketing") == "false");
    ExportOptions o;
    o.format = *format;
    auto text = Export("audience:" + req.path_params[0], o, marketing);
    if (!text.ok()) return json(res, HttpStatusOf(text.status()), ErrorJson(text.status().message()));
    res->Set(200, std::move(*text), *format == ExportFormat::kJsonl ? "application/x-ndjson" : "text/csv");
  }));

  auto run_job = [this, json](std::shared_ptr<Job> job, HttpResponse* res) {
    if (!Submit(job).ok()) return json(res, 503, ErrorJson("server is stopping"));
    if (!job->status.ok()) return json(res, HttpStatusOf(job->status), ErrorJson(job->status.message()));
    json(res, 200, job->reply.empty() ? "{\"ok\":true}" : job->reply);
  };
  http->Worker("POST", "/v1/forget", timed(Route::kForget, [json, run_job](const HttpRequest& req, HttpResponse* res) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string_view identifier;
    if (parser.parse(req.body).get(doc) || doc.type() != simdjson::dom::element_type::OBJECT) {
      return json(res, 400, ErrorJson("body must be a JSON object {\"identifier\": \"...\"}"));
    }
    if (doc["identifier"].get(identifier) || identifier.empty()) {
      return json(res, 400, ErrorJson("missing or empty string 'identifier'", "identifier"));
    }
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::kForget;
    job->identifier = std::string(identifier);
    run_job(job, res);
  }));
  // Rebuild without downtime: RunBuild reads a copy of the profiles (taken under the shared
  // lock, so ingestion pauses only for the copy) while ingestion and lookups go on; an apply leader
  // then swaps the new models in and re-evaluates every profile in one group.
  http->Worker("POST", "/v1/rebuild", timed(Route::kRebuild, [this, json](const HttpRequest&, HttpResponse* res) {
    if (rebuilding.exchange(true)) return json(res, 409, ErrorJson("a rebuild is already running"));
    struct Done {
      std::atomic<bool>* flag;
      ~Done() { flag->store(false); }
    } done{&rebuilding};
    const auto start = Clock::now();
    std::unique_ptr<Engine> snapshot;
    {
      std::shared_lock lock(engine_mu);
      Context build_ctx = ctx;
      const TimeMicros as_of = ctx.Now();
      build_ctx.clock = [as_of] { return as_of; };
      snapshot = engine->SnapshotForRead(build_ctx);
    }
    const double copy_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    BuildOptions build_options;
    build_options.quiet = true;
    auto built = RunBuild(*snapshot, build_options);
    snapshot.reset();
    if (!built.ok()) return json(res, HttpStatusOf(built.status()), ErrorJson("rebuild failed: " + built.status().message()));
    // Reads only the store and the engine's fixed catalogue and config: no lock needed.
    auto loaded = BuildMembershipSource::Load(*engine);
    if (!loaded.ok()) return json(res, HttpStatusOf(loaded.status()), ErrorJson("rebuild: " + loaded.status().message()));
    auto job = std::make_shared<Job>();
    job->kind = Job::Kind::kRebuild;
    job->new_source = std::move(*loaded);
    const size_t segments = built->segments.size();
    const double build_seconds = built->seconds;
    if (!Submit(job).ok()) return json(res, 503, ErrorJson("server is stopping"));
    if (!job->status.ok()) return json(res, HttpStatusOf(job->status), ErrorJson(job->status.message()));
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "{\"rebuilt\":true,\"segments\":%zu,\"membership_changes\":%llu,"
                  "\"copy_seconds\":%.4f,\"build_seconds\":%.3f,\"seconds\":%.3f}",
                  segments, static_cast<unsigned long long>(job->changes), copy_seconds, build_seconds,
                  std::chrono::duration<double>(Clock::now() - start).count());
    json(res, 200, buf);
  }));
  http->InlineUnlessBusy("GET", "/healthz", [this](const HttpRequest& req, HttpResponse* res, bool may_wait) {
    const auto start = ReceivedOr(req);
    std::shared_lock lock(engine_mu, std::defer_lock);
    if (may_wait) {
      lock.lock();
    } else if (!TryLockSharedSpinning(lock, kLookupSpin)) {
      return false;  // as lookups: a worker waits for the lock, not the loop
    }
    const uint64_t events = engine->num_events();
    const size_t profiles = engine->identity().num_alive();
    lock.unlock();
    res->Set(200, "{\"status\":\"ok\",\"events\":" + std::to_string(events) +
                      ",\"profiles\":" + std::to_string(profiles) + "}");
    CountRequest(Route::kHealth, res->status, start);
    return true;
  });
  http->Inline("GET", "/metrics", timed(Route::kMetrics, [this](const HttpRequest&, HttpResponse* res) {
    res->Set(200, MetricsText(), "text/plain; version=0.0.4");
  }));
  http->Inline("GET", "/openapi.json", timed(Route::kOpenApi, [json](const HttpRequest&, HttpResponse* res) {
    json(res, 200, OpenApiJson());
  }));
}

void Server::Impl::StopAll() {
  {
    std::lock_guard lock(stop_mu);
    if (stopped) return;
    stopped = true;
  }
  stop_cv.notify_all();
  // Every request in flight is answered (the loops lead what is queued) before this returns.
  if (http) http->Stop();
  {
    std::lock_guard lock(commit_mu);
    stopping = true;
    io_running = false;  // a blocking submitter that leads from now on leads to the end
  }
  {
    std::lock_guard lock(ticker_mu);
    ticker_stop = true;
  }
  ticker_cv.notify_all();
  if (ticker.joinable()) ticker.join();
  {
    std::lock_guard lock(commit_mu);
    committer_stop = true;
  }
  commit_cv.notify_all();
  if (committer.joinable()) committer.join();
  {
    // No thread applies anything any more.
    std::unique_lock lock(engine_mu);
    Status st = engine ? engine->Checkpoint() : Status::OK();
    if (!st.ok()) std::fprintf(stderr, "shoal serve: checkpoint failed: %s\n", st.message().c_str());
  }
  for (auto& d : destinations) {
    {
      std::lock_guard lock(d->mu);
      d->stop = true;
    }
    d->cv.notify_all();
    if (d->thread.joinable()) d->thread.join();
  }
  if (exporter.joinable()) exporter.join();
}

// ---------------------------------------------------------------------------------------------

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              std::unique_ptr<MembershipSource> source,
                                              std::unique_ptr<Engine> engine) {
  auto server = std::unique_ptr<Server>(new Server());
  server->impl_ = std::make_unique<Impl>();
  Impl& s = *server->impl_;
  s.options = options;
  s.ctx = options.context;
  EngineOptions engine_options;
  engine_options.db_dir = options.db_dir;
  engine_options.config_path = options.config_path;
  engine_options.checkpoint_blocks = size_t{1} << 40;  // the ticker asks for checkpoints
  // The committer applies a large group with both cores (the loops mostly wait meanwhile).
  engine_options.apply_threads = std::max(1, s.ctx.Threads());
  if (engine) {
    s.engine = std::move(engine);
  } else {
    SHOAL_ASSIGN_OR_RETURN(s.engine, Engine::Open(engine_options, s.ctx));
  }
  static const toml::table kEmpty;
  const toml::table& root = s.engine->config().table ? *s.engine->config().table : kEmpty;
  SHOAL_ASSIGN_OR_RETURN(s.config, ParseServerConfig(root));
  if (options.bind) s.config.bind = *options.bind;
  if (options.port) s.config.port = *options.port;
  if (s.config.tokens.empty() && !IsLoopbackAddress(s.config.bind)) {
    return Status::InvalidArgument("refusing to listen on " + s.config.bind +
                                   " without API tokens: add [[server.tokens]] to the workspace "
                                   "config, or bind 127.0.0.1");
  }
  if (source) {
    s.source = std::move(source);
  } else if (auto built = BuildMembershipSource::Load(*s.engine); built.ok()) {
    s.source = std::move(*built);  // the last build's segments, RFM, audiences and scores
  } else if (!built.status().IsNotFound()) {
    return built.status().WithContext("the last build's models");
  } else {
    // No build yet: [[audiences]] that are one trait comparison; the full rule language, the
    // segments and RFM come with the first build (`shoal build` or POST /v1/rebuild).
    auto thresholds = ParseTraitThresholds(root);
    if (!thresholds.ok()) {
      std::fprintf(stderr, "shoal serve: no build yet, so no audiences until the first build: %s\n",
                   thresholds.status().message().c_str());
      thresholds = std::vector<TraitThreshold>();
    }
    std::vector<std::string> names;
    for (const TraitInfo& t : s.engine->catalogue().traits()) names.push_back(t.name);
    SHOAL_ASSIGN_OR_RETURN(s.source, TraitThresholdSource::Make(std::move(*thresholds), names));
  }
  s.consent_trait = s.engine->catalogue().Find("consent_marketing");
  for (const WebhookDestination& spec : s.config.destinations) {
    auto d = std::make_unique<DestinationWorker>();
    d->spec = spec;
    if (!ParseHttpUrl(spec.url, &d->url)) {
      return Status::InvalidArgument("destination '" + spec.name + "': cannot parse url " + spec.url);
    }
    s.destinations.push_back(std::move(d));
  }
  SHOAL_RETURN_IF_ERROR(s.Load());
  s.SetUpRoutes();
  {
    std::lock_guard lock(s.commit_mu);
    s.io_running = true;
  }
  if (s.config.commit_thread) s.committer = std::thread([&s] { s.CommitterLoop(); });
  if (Status st = s.http->Start(); !st.ok()) {
    return Status::IOError(st.message() + " (in use, or not an address of this machine)");
  }
  s.port = s.http->port();
  s.ticker = std::thread([&s] { s.TickerLoop(); });
  for (auto& d : s.destinations) {
    DestinationWorker* w = d.get();
    w->thread = std::thread([&s, w] { s.DeliveryLoop(w); });
  }
  s.exporter = std::thread([&s] { s.ExportLoop(); });
  return server;
}

Server::~Server() { Stop(); }

int Server::port() const { return impl_->port; }
const ServerConfig& Server::config() const { return impl_->config; }

void Server::Stop() {
  if (impl_) impl_->StopAll();
}

void Server::Wait() {
  std::unique_lock lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

Result<std::string> Server::ExportAudience(const std::string& membership, const ExportOptions& options,
                                           bool marketing) {
  return impl_->Export(membership, options, marketing);
}

int ServeUntilSignal(const ServerOptions& options) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);  // every thread started below inherits it
  auto server = Server::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "shoal: error: %s\n", server.status().message().c_str());
    return 2;
  }
  std::printf("shoal serve: listening on http://%s:%d (workspace %s)\n",
              (*server)->config().bind.c_str(), (*server)->port(), options.db_dir.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&signals, &sig);
  std::printf("shoal serve: stopping\n");
  (*server)->Stop();
  return 0;
}

}  // namespace shoal
