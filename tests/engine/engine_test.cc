#include "engine/engine.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "common/time.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("shoal-engine-test-" + std::to_string(getpid()) + "-" +
                                         std::to_string(counter_++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

std::string Day(int day_offset) {
  return FormatIso8601(*ParseIso8601("2024-01-01") + day_offset * kMicrosPerDay + 3600 * kMicrosPerSecond);
}

// A deterministic random shop as JSONL: customers with orders, views, carts, emails; some
// browse anonymously first and are identified later; some use a second email.
std::string RandomShop(int customers, uint64_t seed, int* events_out = nullptr) {
  std::mt19937_64 rng(seed);
  std::ostringstream out;
  int events = 0;
  const char* cats[] = {"bedding", "cleaning", "toys", "garden", "books"};
  for (int c = 0; c < customers; ++c) {
    std::string cid = "C" + std::to_string(c);
    std::string anon = "dev-" + std::to_string(c);
    int n = 3 + static_cast<int>(rng() % 12);
    bool anon_first = rng() % 3 == 0;
    for (int k = 0; k < n; ++k) {
      int day = static_cast<int>(rng() % 400);
      std::string id = "e-" + std::to_string(c) + "-" + std::to_string(k);
      std::string who = (anon_first && k < n / 2) ? "\"anonymous_id\":\"" + anon + "\""
                                                   : "\"customer_id\":\"" + cid + "\"";
      int kind = static_cast<int>(rng() % 4);
      if (kind == 0) {
        double price = 5 + static_cast<double>(rng() % 100);
        out << "{\"event_id\":\"" << id << "\",\"type\":\"order\",\"timestamp\":\"" << Day(day) << "\"," << who
            << ",\"order_id\":\"o" << id << "\",\"lines\":[{\"product_id\":\"p" << rng() % 20
            << "\",\"category\":\"" << cats[rng() % 5] << "\",\"quantity\":" << 1 + rng() % 3
            << ",\"unit_price\":" << price << ",\"discount\":" << (rng() % 2 ? 1.5 : 0) << "}]}\n";
      } else if (kind == 1) {
        out << "{\"event_id\":\"" << id << "\",\"type\":\"product_view\",\"timestamp\":\"" << Day(day) << "\","
            << who << ",\"product_id\":\"p" << rng() % 20 << "\",\"category\":\"" << cats[rng() % 5]
            << "\",\"price\":12.5}\n";
      } else if (kind == 2) {
        out << "{\"event_id\":\"" << id << "\",\"type\":\"cart_add\",\"timestamp\":\"" << Day(day) << "\","
            << who << ",\"product_id\":\"p1\",\"category\":\"toys\",\"price\":9,\"quantity\":1}\n";
      } else {
        out << "{\"event_id\":\"" << id << "\",\"type\":\"email_open\",\"timestamp\":\"" << Day(day) << "\","
            << who << ",\"campaign_id\":\"cmp" << rng() % 3 << "\"}\n";
      }
      ++events;
    }
    if (anon_first) {
      out << "{\"event_id\":\"id-" << c << "\",\"type\":\"identify\",\"timestamp\":\"" << Day(401)
          << "\",\"customer_id\":\"" << cid << "\",\"anonymous_id\":\"" << anon << "\",\"email\":\"user" << c
          << "@example.com\"}\n";
      ++events;
    }
  }
  if (events_out) *events_out = events;
  return out.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}
std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Context FixedClock() {
  Context ctx;
  ctx.threads = 2;
  TimeMicros now = *ParseIso8601("2025-03-01");
  ctx.clock = [now] { return now; };
  return ctx;
}

std::unique_ptr<Engine> OpenAt(const std::string& db, size_t block_events = 65536) {
  EngineOptions o;
  o.db_dir = db;
  o.block_events = block_events;
  auto e = Engine::Open(o, FixedClock());
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

IngestSummary IngestFile(Engine& engine, const std::string& path) {
  SourceSpec s;
  s.path = path;
  auto r = engine.Ingest({s}, IngestOptions(), nullptr);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : IngestSummary();
}

// Ingesting `path` again stores nothing: every one of its `events` is a duplicate, and the
// engine still counts exactly them.
void ExpectReingestStoresNothing(Engine& engine, const std::string& path, int events) {
  IngestSummary again = IngestFile(engine, path);
  EXPECT_EQ(again.stored, 0u);
  EXPECT_EQ(again.duplicates, static_cast<uint64_t>(events));
  EXPECT_EQ(engine.num_events(), static_cast<uint64_t>(events));
}

std::string Export(Engine& engine, const std::string& path, std::optional<TimeMicros> as_of = std::nullopt) {
  Status st = engine.ExportCsv(path, as_of);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return ReadFile(path);
}

TEST(EngineTest, IngestIsIdempotentAndSurvivesReopen) {
  TempDir dir;
  int events = 0;
  std::string shop = RandomShop(300, 1, &events);
  WriteFile(dir.Sub("shop.jsonl"), shop);
  // An email that only an identify event carries, linking an anonymous history to a customer.
  size_t at = shop.find("\"email\":\"user") + 9;
  std::string email = shop.substr(at, shop.find('"', at) - at);
  std::string first_export;
  {
    auto engine = OpenAt(dir.Sub("db"));
    IngestSummary s = IngestFile(*engine, dir.Sub("shop.jsonl"));
    EXPECT_EQ(s.events, static_cast<uint64_t>(events));
    EXPECT_EQ(s.stored, static_cast<uint64_t>(events));
    EXPECT_EQ(s.bad, 0u);
    EXPECT_EQ(s.profiles, 300u);  // every anonymous profile merged into its customer
    EXPECT_GT(s.merges, 50u);
    first_export = Export(*engine, dir.Sub("a.csv"));
    IngestSummary again = IngestFile(*engine, dir.Sub("shop.jsonl"));
    EXPECT_EQ(again.stored, 0u);
    EXPECT_EQ(again.duplicates, static_cast<uint64_t>(events));
    EXPECT_EQ(Export(*engine, dir.Sub("b.csv")), first_export);
  }
  auto reopened = OpenAt(dir.Sub("db"));
  EXPECT_EQ(reopened->identity().num_alive(), 300u);
  EXPECT_EQ(Export(*reopened, dir.Sub("c.csv")), first_export);
  uint32_t by_email = reopened->FindProfile(email);
  ASSERT_NE(by_email, kNoProfile) << email;
  std::string cid = "C" + email.substr(4, email.find('@') - 4);
  EXPECT_EQ(reopened->FindProfile(cid), by_email);
  EXPECT_EQ(reopened->FindProfile("dev-" + cid.substr(1)), by_email);
}

// After an ingest the dedupe holds its filter and the ids not yet in event_index, nothing of
// the per-batch scratch (whose release once kept its capacity: 14 bytes an event of a batch).
TEST(EngineTest, IngestReleasesTheDedupeScratch) {
  TempDir dir;
  int events = 0;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(300, 3, &events));
  auto engine = OpenAt(dir.Sub("db"));
  IngestSummary s = IngestFile(*engine, dir.Sub("shop.jsonl"));
  ASSERT_EQ(s.stored, static_cast<uint64_t>(events));
  const size_t filter_bytes = (size_t{1} << 20) * 12 / 8;  // DedupeOptions' minimum filter
  EXPECT_GE(s.memory.dedupe, filter_bytes);
  EXPECT_LE(s.memory.dedupe, filter_bytes + static_cast<size_t>(events) * sizeof(uint64_t) + 4096);
}

// The child side of the kill -9 tests, a fresh process (exec'd, not only forked: RocksDB's
// background threads do not survive a fork, and a checkpoint written as table files waits for
// a flush). Ingests the file the parent names in the environment with small blocks and is
// SIGKILLed after its 7th stored block. Skipped in a normal run.
TEST(IngestChild, Run) {
  const char* db = std::getenv("SHOAL_TEST_CHILD_DB");
  const char* file = std::getenv("SHOAL_TEST_CHILD_FILE");
  const char* table_block_events = std::getenv("SHOAL_TEST_CHILD_TABLE_BLOCK_EVENTS");
  if (db == nullptr || file == nullptr || table_block_events == nullptr) {
    GTEST_SKIP() << "only run as the kill -9 tests' child";
  }
  EngineOptions o;
  o.db_dir = db;
  o.block_events = 500;
  o.table_block_events = static_cast<size_t>(std::atoll(table_block_events));
  o.checkpoint_blocks = 5;  // one checkpoint happens before the kill, then more blocks
  o.dedupe.flush_ids = 1200;  // ids move to event_index every 3 blocks: some did before the kill
  auto engine = Engine::Open(o, FixedClock());
  if (!engine.ok()) std::_Exit(10);
  int batches = 0;
  SourceSpec s;
  s.path = file;
  (void)(*engine)->Ingest({s}, IngestOptions(), [&](const Progress&) {
    if (++batches == 7) kill(getpid(), SIGKILL);
  });
  std::_Exit(11);  // not reached if the kill happened mid-ingest
}

// A child process ingests and is SIGKILLed mid-ingest; the same ingest again ends with every
// event counted once and the export of a clean ingest. `table_block_events` picks how blocks
// are stored: as ingested table files (1) or through the write-ahead log (above the block size).
void KillNineMidIngestThenReingest(size_t table_block_events) {
  TempDir dir;
  int events = 0;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(2000, 2, &events));
  // Reference: one clean ingest.
  std::string reference;
  {
    auto engine = OpenAt(dir.Sub("clean"), 500);
    IngestFile(*engine, dir.Sub("shop.jsonl"));
    reference = Export(*engine, dir.Sub("ref.csv"));
  }
  // Some blocks are durable when the child dies, one checkpoint was taken and none since,
  // nothing was closed.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    setenv("SHOAL_TEST_CHILD_DB", dir.Sub("crash").c_str(), 1);
    setenv("SHOAL_TEST_CHILD_FILE", dir.Sub("shop.jsonl").c_str(), 1);
    setenv("SHOAL_TEST_CHILD_TABLE_BLOCK_EVENTS", std::to_string(table_block_events).c_str(), 1);
    execl("/proc/self/exe", "engine_test", "--gtest_filter=IngestChild.Run", static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  auto engine = OpenAt(dir.Sub("crash"), 500);
  EXPECT_GT(engine->num_events(), 0u);
  EXPECT_LT(engine->num_events(), static_cast<uint64_t>(events));
  IngestSummary s = IngestFile(*engine, dir.Sub("shop.jsonl"));
  EXPECT_EQ(engine->num_events(), static_cast<uint64_t>(events));
  EXPECT_EQ(s.stored + s.duplicates, static_cast<uint64_t>(events));
  EXPECT_EQ(Export(*engine, dir.Sub("after.csv")), reference);
}

TEST(EngineTest, KillNineMidIngestThenReingestCountsEveryEventOnce) {
  KillNineMidIngestThenReingest(/*table_block_events=*/1);
}

TEST(EngineTest, KillNineMidIngestThroughTheLogThenReingestCountsEveryEventOnce) {
  KillNineMidIngestThenReingest(/*table_block_events=*/1000);
}

// With ids moved to event_index every few blocks, a reopened workspace still counts and
// skips every stored event: the counter and the dedupe layers come back from the store.
TEST(EngineTest, ReopenKeepsEventCountAndDedupeAcrossIndexFlushes) {
  TempDir dir;
  int events = 0;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(600, 5, &events));
  EngineOptions o;
  o.db_dir = dir.Sub("db");
  o.block_events = 300;
  o.dedupe.flush_ids = 700;
  {
    auto engine = Engine::Open(o, FixedClock());
    ASSERT_TRUE(engine.ok());
    IngestSummary s = IngestFile(**engine, dir.Sub("shop.jsonl"));
    EXPECT_EQ(s.stored, static_cast<uint64_t>(events));
    EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events));
  }
  auto engine = Engine::Open(o, FixedClock());
  ASSERT_TRUE(engine.ok());
  EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events));
  ExpectReingestStoresNothing(**engine, dir.Sub("shop.jsonl"), events);
  // A forgotten person's events leave the count.
  auto forgot = (*engine)->Forget("C1");
  ASSERT_TRUE(forgot.ok());
  EXPECT_GT(forgot->events_removed, 0u);
  EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events) - forgot->events_removed);
}

// Blocks ingested as table files have their event count written after them, unsynced: a
// process that died in between leaves a count that covers fewer blocks (simulated by writing
// back the count of an empty store). Opening adds the blocks the count does not cover, and
// the table files written for ingestion are not left in the folder.
TEST(EngineTest, OpeningCountsTableBlocksTheStoredCountMissed) {
  TempDir dir;
  int events = 0;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(500, 17, &events));
  EngineOptions o;
  o.db_dir = dir.Sub("db");
  o.block_events = 400;
  o.table_block_events = 1;
  {
    auto engine = Engine::Open(o, FixedClock());
    ASSERT_TRUE(engine.ok());
    EXPECT_EQ(IngestFile(**engine, dir.Sub("shop.jsonl")).stored, static_cast<uint64_t>(events));
  }
  for (const auto& entry : std::filesystem::directory_iterator(o.db_dir)) {
    EXPECT_FALSE(entry.path().filename().string().starts_with("ingest-")) << entry.path();
  }
  {
    auto engine = Engine::Open(o, FixedClock());
    ASSERT_TRUE(engine.ok());
    EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events));  // no block counted twice
  }
  {
    auto store = KvStore::Open(o.db_dir, StoreOptions());
    ASSERT_TRUE(store.ok());
    WriteGroup g;
    const std::string zero(1, '\0');  // the varint 0
    g.Put(Column::kMeta, "num_events", zero);
    g.Put(Column::kMeta, "num_events_through", zero);
    ASSERT_TRUE((*store)->Write(g, true).ok());
  }
  auto engine = Engine::Open(o, FixedClock());
  ASSERT_TRUE(engine.ok());
  EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events));
  ExpectReingestStoresNothing(**engine, dir.Sub("shop.jsonl"), events);
}

// A workspace written before the event counter and event_index existed (simulated by deleting
// their meta keys): opening it counts the stored events and indexes their ids, flushing as it
// goes; dedupe then holds exactly.
TEST(EngineTest, OpeningAnOlderWorkspaceCountsAndIndexesItsEvents) {
  TempDir dir;
  int events = 0;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(400, 11, &events));
  EngineOptions o;
  o.db_dir = dir.Sub("db");
  o.block_events = 250;
  o.dedupe.flush_ids = 1u << 20;  // nothing reaches event_index during the first ingest
  {
    auto engine = Engine::Open(o, FixedClock());
    ASSERT_TRUE(engine.ok());
    IngestFile(**engine, dir.Sub("shop.jsonl"));
  }
  {
    auto store = KvStore::Open(o.db_dir, StoreOptions());
    ASSERT_TRUE(store.ok());
    WriteGroup g;
    g.Delete(Column::kMeta, "num_events");
    g.Delete(Column::kMeta, "event_index_seq");
    ASSERT_TRUE((*store)->Write(g, true).ok());
  }
  o.dedupe.flush_ids = 500;  // the reopen moves ids to event_index every two blocks
  auto engine = Engine::Open(o, FixedClock());
  ASSERT_TRUE(engine.ok());
  EXPECT_EQ((*engine)->num_events(), static_cast<uint64_t>(events));
  ExpectReingestStoresNothing(**engine, dir.Sub("shop.jsonl"), events);
}

// Splits a CSV line on commas (the test's exports hold no quoted commas in these columns).
std::vector<std::string> Cells(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

// export --columns writes exactly the chosen columns of the full export, in the asked order,
// row for row; an unknown name is refused and says why.
TEST(EngineTest, ExportColumnsEqualsTheFullExportsColumns) {
  TempDir dir;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(9000, 9));
  auto engine = OpenAt(dir.Sub("db"), 4000);
  IngestFile(*engine, dir.Sub("shop.jsonl"));
  std::istringstream full(Export(*engine, dir.Sub("all.csv")));
  const std::vector<std::string> chosen = {"monetary_total", "recency_days", "frequency"};
  ASSERT_TRUE(engine->ExportCsv(dir.Sub("rfm.csv"), std::nullopt, chosen).ok());
  std::istringstream part(ReadFile(dir.Sub("rfm.csv")));
  std::string full_line, part_line;
  ASSERT_TRUE(std::getline(full, full_line));
  ASSERT_TRUE(std::getline(part, part_line));
  EXPECT_EQ(part_line, "customer_id,monetary_total,recency_days,frequency");
  std::vector<std::string> header = Cells(full_line);
  std::vector<size_t> at;
  for (const std::string& c : chosen) {
    at.push_back(static_cast<size_t>(std::find(header.begin(), header.end(), c) - header.begin()));
    ASSERT_LT(at.back(), header.size()) << c;
  }
  size_t rows = 0;
  while (std::getline(full, full_line)) {
    ASSERT_TRUE(std::getline(part, part_line));
    std::vector<std::string> f = Cells(full_line), p = Cells(part_line);
    ASSERT_EQ(p.size(), chosen.size() + 1);
    EXPECT_EQ(p[0], f[0]);
    for (size_t c = 0; c < chosen.size(); ++c) EXPECT_EQ(p[c + 1], f[at[c]]) << chosen[c];
    ++rows;
  }
  EXPECT_FALSE(std::getline(part, part_line));
  EXPECT_GT(rows, 8192u);  // three chunks of 4096 rows, formatted in parallel, written in order
  Status bad = engine->ExportCsv(dir.Sub("bad.csv"), std::nullopt, {"recency_days", "no_such_trait"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("no_such_trait"), std::string::npos);
}

TEST(EngineTest, AsOfSeesOnlyEarlierEvents) {
  TempDir dir;
  std::string shop = RandomShop(200, 3);
  WriteFile(dir.Sub("all.jsonl"), shop);
  // The same shop with only events before the cut-off.
  TimeMicros cut = *ParseIso8601("2024-07-01");
  std::istringstream in(shop);
  std::string line, early;
  while (std::getline(in, line)) {
    auto pos = line.find("\"timestamp\":\"") + 13;
    if (*ParseIso8601(line.substr(pos, 20)) < cut) early += line + "\n";
  }
  WriteFile(dir.Sub("early.jsonl"), early);
  auto all = OpenAt(dir.Sub("db-all"));
  IngestFile(*all, dir.Sub("all.jsonl"));
  auto part = OpenAt(dir.Sub("db-early"));
  IngestFile(*part, dir.Sub("early.jsonl"));
  std::string as_of = Export(*all, dir.Sub("asof.csv"), cut);
  std::string truth = Export(*part, dir.Sub("early.csv"), cut);
  EXPECT_EQ(as_of, truth);
  EXPECT_NE(as_of, Export(*all, dir.Sub("now.csv")));
}

// The as-of replay's pipeline (scan, decode and apply on separate threads, many small blocks)
// gives exactly the snapshots of the one-thread loop.
TEST(EngineTest, ReplayAsOfIsTheSameOnOneThreadAndOnThePipeline) {
  TempDir dir;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(300, 5));
  const std::vector<TimeMicros> cuts = {*ParseIso8601("2024-03-01"), *ParseIso8601("2024-06-01"),
                                        *ParseIso8601("2024-09-01")};
  std::vector<std::vector<std::string>> by_threads;
  for (int threads : {1, 2, 3}) {
    EngineOptions o;
    o.db_dir = dir.Sub("db-" + std::to_string(threads));
    o.block_events = 37;  // many blocks, so the pipeline's slots wrap around
    Context ctx = FixedClock();
    ctx.threads = threads;
    auto engine = Engine::Open(o, ctx);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    IngestFile(**engine, dir.Sub("shop.jsonl"));
    std::vector<std::string> snapshots;
    Status st = (*engine)->ReplayAsOf(cuts, [&](const AsOfSnapshot& snap) {
      std::ostringstream text;
      text.precision(17);
      const TraitMatrix& m = snap.table.matrix;
      for (size_t row = 0; row < m.num_customers; ++row) {
        text << snap.table.customer_ids[row] << ':' << snap.current_profiles[row];
        for (size_t t = 0; t < m.traits.size(); ++t) text << ',' << m.Column(t)[row];
        text << '\n';
      }
      snapshots.push_back(text.str());
      return Status::OK();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(snapshots.size(), cuts.size());
    by_threads.push_back(snapshots);
  }
  EXPECT_NE(by_threads[0][0], by_threads[0][2]);  // the cut-offs see different histories
  EXPECT_GT(by_threads[0][2].size(), by_threads[0][0].size());
  EXPECT_EQ(by_threads[0], by_threads[1]);
  EXPECT_EQ(by_threads[0], by_threads[2]);
}

// A shop where most events leave the population state alone (orders with a total and no
// categorized lines, emails, uncategorized views), mixed with some that write it (categorized
// lines and views) and with merges (anonymous browsing identified later, a second email).
std::string MostlyUncategorizedShop(int customers, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ostringstream out;
  const char* cats[] = {"bedding", "cleaning", "toys"};
  for (int c = 0; c < customers; ++c) {
    const std::string cid = "C" + std::to_string(c % (customers / 2 + 1));  // some customers return
    const std::string anon = "dev-" + std::to_string(c);
    const bool anon_first = rng() % 4 == 0;
    const int n = 2 + static_cast<int>(rng() % 14);
    for (int k = 0; k < n; ++k) {
      const int day = static_cast<int>(rng() % 400);
      const std::string id = "m-" + std::to_string(c) + "-" + std::to_string(k);
      const std::string who = (anon_first && k < n / 2) ? "\"anonymous_id\":\"" + anon + "\""
                                                         : "\"customer_id\":\"" + cid + "\"";
      const int kind = static_cast<int>(rng() % 10);
      out << "{\"event_id\":\"" << id << "\",\"timestamp\":\"" << Day(day) << "\"," << who;
      if (kind < 5) {
        out << ",\"type\":\"order\",\"total\":" << 5 + rng() % 200;
      } else if (kind == 5) {
        out << ",\"type\":\"order\",\"lines\":[{\"product_id\":\"p" << rng() % 20 << "\",\"category\":\""
            << cats[rng() % 3] << "\",\"quantity\":1,\"unit_price\":" << 3 + rng() % 90 << "}]";
      } else if (kind == 6) {
        out << ",\"type\":\"product_view\",\"product_id\":\"p" << rng() % 20 << "\"";
        if (rng() % 2) out << ",\"category\":\"" << cats[rng() % 3] << "\"";
      } else {
        out << ",\"type\":\"email_open\",\"campaign_id\":\"cmp" << rng() % 3 << "\"";
      }
      out << "}\n";
    }
    if (anon_first) {
      out << "{\"event_id\":\"mid-" << c << "\",\"type\":\"identify\",\"timestamp\":\"" << Day(401)
          << "\",\"customer_id\":\"" << cid << "\",\"anonymous_id\":\"" << anon << "\",\"email\":\"u" << c
          << "@example.com\"}\n";
    }
  }
  return out.str();
}

// Batches of 1,024 events or more are applied by EngineOptions::apply_threads workers: the
// profiles, the as-of replays and the population-dependent traits are the one-worker apply's.
TEST(EngineTest, ParallelApplyGivesTheSerialApplysProfiles) {
  TempDir dir;
  WriteFile(dir.Sub("shop.jsonl"), MostlyUncategorizedShop(4000, 21));
  const TimeMicros cut = *ParseIso8601("2024-08-01");
  std::vector<std::string> now, as_of;
  for (int threads : {1, 2, 3}) {
    EngineOptions o;
    o.db_dir = dir.Sub("db-" + std::to_string(threads));
    o.block_events = 1500;  // several blocks over the threshold, and a short last one
    o.apply_threads = threads;
    auto engine = Engine::Open(o, FixedClock());
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    IngestSummary summary = IngestFile(**engine, dir.Sub("shop.jsonl"));
    EXPECT_GT(summary.stored, 20000u);
    EXPECT_GT(summary.merges, 500u);
    now.push_back(Export(**engine, dir.Sub("now-" + std::to_string(threads) + ".csv")));
    as_of.push_back(Export(**engine, dir.Sub("asof-" + std::to_string(threads) + ".csv"), cut));
  }
  EXPECT_GT(std::count(now[0].begin(), now[0].end(), '\n'), 1000);
  EXPECT_NE(now[0], as_of[0]);
  EXPECT_EQ(now[1], now[0]);
  EXPECT_EQ(now[2], now[0]);
  EXPECT_EQ(as_of[1], as_of[0]);
  EXPECT_EQ(as_of[2], as_of[0]);
}

// Scans every file of a folder for a byte string.
bool FolderContains(const std::string& dir, const std::string& needle) {
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    if (ReadFile(entry.path().string()).find(needle) != std::string::npos) return true;
  }
  return false;
}

TEST(EngineTest, ForgetErasesEveryByteOfThePerson) {
  TempDir dir;
  std::string shop = RandomShop(100, 4);
  // A referral by someone else names the person's email.
  shop += "{\"event_id\":\"ref-1\",\"type\":\"referral\",\"timestamp\":\"" + Day(10) +
          "\",\"customer_id\":\"C3\",\"referee\":\"secret.person@example.org\"}\n";
  shop += "{\"event_id\":\"sp-1\",\"type\":\"identify\",\"timestamp\":\"" + Day(11) +
          "\",\"customer_id\":\"SECRET-CUSTOMER-77\",\"email\":\"secret.person@example.org\",\"anonymous_id\":\"secret-device-1\"}\n";
  shop += "{\"event_id\":\"sp-2\",\"type\":\"order\",\"timestamp\":\"" + Day(12) +
          "\",\"customer_id\":\"SECRET-CUSTOMER-77\",\"total\":99.5}\n";
  WriteFile(dir.Sub("shop.jsonl"), shop);
  auto engine = OpenAt(dir.Sub("db"));
  IngestFile(*engine, dir.Sub("shop.jsonl"));
  ASSERT_NE(engine->FindProfile("secret.person@example.org"), kNoProfile);
  size_t before = engine->identity().num_alive();
  auto summary = engine->Forget("secret-device-1");
  ASSERT_TRUE(summary.ok()) << summary.status().ToString();
  EXPECT_EQ(summary->events_removed, 2u);
  EXPECT_EQ(summary->references_scrubbed, 1u);
  EXPECT_EQ(engine->identity().num_alive(), before - 1);
  EXPECT_EQ(engine->FindProfile("SECRET-CUSTOMER-77"), kNoProfile);
  std::string exported = Export(*engine, dir.Sub("export.csv"));
  EXPECT_EQ(exported.find("SECRET-CUSTOMER-77"), std::string::npos);
  // Logical check: no stored event mentions them.
  Status st = engine->ForEachStoredBatch([](const EventBatch& b) {
    for (const Event& e : b.events) {
      EXPECT_NE(e.customer_id, "SECRET-CUSTOMER-77");
      EXPECT_NE(e.referee, "secret.person@example.org");
    }
    return Status::OK();
  });
  EXPECT_TRUE(st.ok());
  engine.reset();
  // Physical check: no byte of any of their identifiers remains in the workspace folder.
  for (const char* id : {"SECRET-CUSTOMER-77", "secret.person@example.org", "secret-device-1"}) {
    EXPECT_FALSE(FolderContains(dir.Sub("db"), id)) << id;
  }
  // Re-ingesting the same file does not bring them back.
  auto reopened = OpenAt(dir.Sub("db"));
  IngestSummary again = IngestFile(*reopened, dir.Sub("shop.jsonl"));
  EXPECT_EQ(again.suppressed, 2u);
  EXPECT_EQ(reopened->FindProfile("SECRET-CUSTOMER-77"), kNoProfile);
}

// Merging two profiles gives exactly the traits one profile with all events would have: the
// same random history, once split across an anonymous id and a customer id that an identify
// event links (in both orders), once under the customer id alone.
TEST(EngineTest, MergedProfileEqualsSingleProfileProperty) {
  for (uint64_t seed = 10; seed < 16; ++seed) {
    TempDir dir;
    std::mt19937_64 rng(seed);
    std::string split, single;
    int n = 20 + static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) {
      int day = static_cast<int>(rng() % 300);
      bool anon = rng() % 2;
      std::string body = "\"type\":\"order\",\"timestamp\":\"" + Day(day) + "\",\"order_id\":\"o" +
                         std::to_string(k) + "\",\"lines\":[{\"product_id\":\"p" + std::to_string(rng() % 9) +
                         "\",\"category\":\"c" + std::to_string(rng() % 4) + "\",\"quantity\":1,\"unit_price\":" +
                         std::to_string(5 + rng() % 50) + "}]";
      std::string id = "\"event_id\":\"e" + std::to_string(k) + "\",";
      split += "{" + id + (anon ? "\"anonymous_id\":\"D\"," : "\"customer_id\":\"C\",") + body + "}\n";
      single += "{" + id + "\"customer_id\":\"C\"," + body + "}\n";
    }
    std::string link = "{\"event_id\":\"link\",\"type\":\"identify\",\"timestamp\":\"" + Day(150) +
                       "\",\"customer_id\":\"C\",\"anonymous_id\":\"D\"}\n";
    WriteFile(dir.Sub("link-last.jsonl"), split + link);
    WriteFile(dir.Sub("link-first.jsonl"), link + split);
    WriteFile(dir.Sub("single.jsonl"), single + link);
    std::vector<std::string> outputs;
    for (const char* name : {"link-last", "link-first", "single"}) {
      auto engine = OpenAt(dir.Sub(std::string("db-") + name));
      IngestFile(*engine, dir.Sub(std::string(name) + ".jsonl"));
      EXPECT_EQ(engine->identity().num_alive(), 1u);
      auto json = engine->ProfileJson("C", std::nullopt);
      ASSERT_TRUE(json.ok());
      // Profile numbers differ (the anonymous profile may come first); traits must not.
      outputs.push_back(json->substr(json->find("\"traits\"")));
    }
    EXPECT_EQ(outputs[0], outputs[2]) << "seed " << seed;
    EXPECT_EQ(outputs[1], outputs[2]) << "seed " << seed;
  }
}

TEST(EngineTest, ProfileJsonNamesTraitsAndUnknownIdentifierIsNotFound) {
  TempDir dir;
  WriteFile(dir.Sub("shop.jsonl"), RandomShop(20, 5));
  auto engine = OpenAt(dir.Sub("db"));
  IngestFile(*engine, dir.Sub("shop.jsonl"));
  auto json = engine->ProfileJson("C1", std::nullopt);
  ASSERT_TRUE(json.ok());
  EXPECT_NE(json->find("\"recency_days\""), std::string::npos);
  EXPECT_NE(json->find("\"customer_id\":\"C1\""), std::string::npos);
  auto missing = engine->ProfileJson("nobody", std::nullopt);
  EXPECT_TRUE(missing.status().IsNotFound());
}

}  // namespace
}  // namespace shoal
