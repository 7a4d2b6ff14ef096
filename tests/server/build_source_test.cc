// The build's models live in the server: BuildMembershipSource against the build it loads, the
// NextChange contract on a generated shop, an event moving a customer to a webhook, a
// time-driven audience from the timer, and a rebuild while events stream.
#include "server/build_source.h"

#include <simdjson.h>

#include <map>

#include "common/time.h"
#include "engine/build.h"
#include "engine/engine.h"
#include "generate/generate.h"
#include "test_support.h"

namespace shoal {
namespace {

using testing::FreePort;
using testing::Receiver;
using testing::TempDir;
using testing::WriteFile;

const char* kShopConfig = R"(
[segments]
k = 5
[models]
pareto_nbd = false
[[audiences]]
name = "winback"
rule = "rfm_segment in [\"At Risk\", \"Hibernating\", \"Can't Lose Them\"]"
[[audiences]]
name = "lapsed_60"
rule = "recency_days > 60d"
[[audiences]]
name = "valuable"
rule = "clv > 100 and p_alive > 0.5"
[[audiences]]
name = "mixed"
rule = "segment_id == 0 or (distinct_categories >= 5 and orders_90d >= 1) or rfm_r >= 4"
[[audiences]]
name = "churn_risk"
rule = "p_churn_90d > 0.5 and p_purchase_30d < 0.5"
)";

// A generated shop, ingested and built once for the whole binary; tests copy its workspace.
const std::string& BuiltShopTemplate() {
  static TempDir* dir = new TempDir();  // lives as long as the process
  static std::string db = [] {
    Context ctx;
    ctx.threads = 2;
    GenerateOptions gen;
    gen.customers = 1200;
    gen.seed = 11;
    gen.write_csv = false;
    auto stats = GenerateShop(gen, dir->Sub("shop"), ctx);
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    const std::string path = dir->Sub("db");
    WriteFile(path + "/shoal.toml", kShopConfig);
    EngineOptions eo;
    eo.db_dir = path;
    auto engine = Engine::Open(eo, ctx);
    EXPECT_TRUE(engine.ok()) << engine.status().ToString();
    SourceSpec source;
    source.path = dir->Sub("shop") + "/events.jsonl";
    auto ingested = (*engine)->Ingest({source}, IngestOptions(), nullptr);
    EXPECT_TRUE(ingested.ok()) << ingested.status().ToString();
    BuildOptions bo;
    bo.quiet = true;
    auto built = RunBuild(**engine, bo);
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    return path;
  }();
  return db;
}

std::string CopyShop(const TempDir& dir) {
  std::filesystem::copy(BuiltShopTemplate(), dir.Sub("db"),
                        std::filesystem::copy_options::recursive);
  return dir.Sub("db");
}

bool SameNumber(double a, double b) {
  if (a == b) return true;  // infinities too
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::fabs(a - b) <= 1e-9 * std::max(1.0, std::fabs(a));
}

// Every profile's live memberships, at the build's time, are what the build stored.
void ExpectAgreesWithBuild(const Engine& engine) {
  auto build = LoadBuild(engine);
  ASSERT_TRUE(build.ok()) << build.status().ToString();
  auto source = BuildMembershipSource::Load(engine);
  ASSERT_TRUE(source.ok()) << source.status().ToString();
  const LiveModel& model = (*source)->model();
  ASSERT_EQ((*source)->audience_names(), build->audience_names);
  size_t rfm_diff = 0, segment_diff = 0, audience_diff = 0, score_diff = 0;
  std::map<std::string, size_t> sizes;
  for (size_t row = 0; row < build->profiles.size(); ++row) {
    auto e = (*source)->Evaluate(engine, build->profiles[row], model.as_of, /*with_btyd=*/true);
    rfm_diff += e.scores.rfm_r != build->rfm.r[row] || e.scores.rfm_f != build->rfm.f[row] ||
                e.scores.rfm_m != build->rfm.m[row] ||
                e.scores.rfm_segment != build->rfm.segment[row];
    const int64_t live_id =
        e.scores.cluster < 0 ? -1 : model.segment_ids[static_cast<size_t>(e.scores.cluster)];
    segment_diff += live_id != build->segment_id[row];
    audience_diff += e.audiences != build->audiences[row];
    const bool scores_differ =
        !SameNumber(e.scores.p_alive, build->p_alive[row]) ||
        !SameNumber(e.scores.expected_orders_90d, build->expected_orders_90d[row]) ||
        !SameNumber(e.scores.expected_order_value, build->expected_order_value[row]) ||
        !SameNumber(e.scores.clv, build->clv[row]);
    if (scores_differ && score_diff == 0) {
      ADD_FAILURE() << "row " << row << ": p_alive " << e.scores.p_alive << " vs "
                    << build->p_alive[row] << ", expected_orders_90d "
                    << e.scores.expected_orders_90d << " vs " << build->expected_orders_90d[row]
                    << ", value " << e.scores.expected_order_value << " vs "
                    << build->expected_order_value[row] << ", clv " << e.scores.clv << " vs "
                    << build->clv[row];
    }
    score_diff += scores_differ;
    for (uint32_t a : e.audiences) sizes[build->audience_names[a]]++;
  }
  EXPECT_GT(build->profiles.size(), 1000u);
  EXPECT_EQ(rfm_diff, 0u);
  EXPECT_EQ(segment_diff, 0u);
  EXPECT_EQ(audience_diff, 0u);
  EXPECT_EQ(score_diff, 0u);
  // Each audience is neither empty nor everyone: the comparison means something.
  for (const std::string& name : build->audience_names) {
    EXPECT_GT(sizes[name], 0u) << name;
    EXPECT_LT(sizes[name], build->profiles.size()) << name;
  }
}

TEST(BuildSourceTest, LiveMembershipsEqualTheBuildsBeforeAndAfterARebuildWithHysteresis) {
  TempDir dir;
  EngineOptions eo;
  eo.db_dir = CopyShop(dir);
  Context ctx;
  ctx.threads = 2;
  auto engine = Engine::Open(eo, ctx);
  ASSERT_TRUE(engine.ok());
  ExpectAgreesWithBuild(**engine);
  // A second build keeps previous segments by hysteresis: the live source anchors on them too.
  BuildOptions bo;
  bo.quiet = true;
  bo.k = 6;
  auto again = RunBuild(**engine, bo);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ExpectAgreesWithBuild(**engine);

  // Per-event cost of the live source: memberships + next change of one profile.
  auto source = BuildMembershipSource::Load(**engine);
  ASSERT_TRUE(source.ok());
  const TimeMicros now = (*source)->model().as_of;
  const auto start = std::chrono::steady_clock::now();
  size_t n = 0, memberships = 0;
  for (uint32_t p = 0; p < (*engine)->identity().num_slots(); ++p) {
    if (!(*engine)->identity().Alive(p)) continue;
    std::vector<std::string> m;
    (void)(*source)->MembershipsAndNextChange(**engine, p, now, &m);  // the server's call
    memberships += m.size();
    ++n;
  }
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
      n;
  const auto start_scores = std::chrono::steady_clock::now();
  for (uint32_t p = 0; p < (*engine)->identity().num_slots(); ++p) {
    if ((*engine)->identity().Alive(p))
      (void)(*source)->Evaluate(**engine, p, now, /*with_btyd=*/true);
  }
  const double us_scores =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start_scores)
          .count() /
      n;
  std::printf(
      "live source: %.1f us per profile (memberships + next change), %.2f memberships each; "
      "%.1f us with the BTYD scores (profile lookups)\n",
      us, static_cast<double>(memberships) / n, us_scores);
  EXPECT_GE(memberships, n);  // every profile has an RFM cell
  RecordProperty("us_per_profile", std::to_string(us));
}

// Exact-or-early: between now and NextChange no membership changes (checked at many moments),
// and at NextChange some do (the schedule is not only early).
TEST(BuildSourceTest, NoMembershipChangesBeforeNextChange) {
  TempDir dir;
  EngineOptions eo;
  eo.db_dir = CopyShop(dir);
  Context ctx;
  auto engine = Engine::Open(eo, ctx);
  ASSERT_TRUE(engine.ok());
  auto source = BuildMembershipSource::Load(**engine);
  ASSERT_TRUE(source.ok());
  const BuildMembershipSource& s = **source;
  TimeMicros now = s.model().as_of + 3 * 3600 * int64_t{1'000'000};  // 03:00: midnight is far
  size_t checked = 0, changed_at = 0, violations = 0;
  for (uint32_t p = 0; p < (*engine)->identity().num_slots(); ++p) {
    if (!(*engine)->identity().Alive(p) || (*engine)->state(p).orders().empty()) continue;
    auto before = s.Memberships(**engine, p, now);
    auto next = s.NextChange(**engine, p, now);
    std::vector<std::string> combined;
    ASSERT_EQ(s.MembershipsAndNextChange(**engine, p, now, &combined), next);
    ASSERT_EQ(combined, before);
    ASSERT_TRUE(next.has_value());  // recency moves the RFM cell sooner or later
    ASSERT_GT(*next, now);
    for (double q : {0.1, 0.3, 0.5, 0.7, 0.9, 0.99}) {
      TimeMicros t = now + static_cast<TimeMicros>(q * static_cast<double>(*next - now - 1001));
      violations += s.Memberships(**engine, p, t) != before;
    }
    changed_at += s.Memberships(**engine, p, *next) != before;
    ++checked;
  }
  EXPECT_GT(checked, 500u);
  EXPECT_EQ(violations, 0u);
  // Some scheduled moments are real changes (most are midnight re-checks of windowed traits, or
  // an R score moving inside one RFM cell: early, allowed).
  EXPECT_GT(changed_at, 0u);
  std::printf("next change: %zu of %zu profiles change at the scheduled moment\n", changed_at,
              checked);
}

// Walking 200 days forward from change to change: nothing changes between scheduled moments,
// so every change (RFM cells as recency grows, segment flips, "recency_days > 60d") is found by
// the timer, not by a sweep.
struct WalkCounts {
  size_t walked = 0, steps = 0, violations = 0, changes = 0, segment_changes_off_midnight = 0;
};
WalkCounts WalkForward(const Engine& engine, const BuildMembershipSource& s, size_t profiles) {
  WalkCounts c;
  const TimeMicros start = s.model().as_of + 5 * 3600 * int64_t{1'000'000};
  const TimeMicros end = start + 200 * kMicrosPerDay;
  auto segment_of = [](const std::vector<std::string>& m) {
    for (const auto& x : m) {
      if (x.rfind("segment:", 0) == 0) return x;
    }
    return std::string();
  };
  for (uint32_t p = 0; p < engine.identity().num_slots() && c.walked < profiles; p += 7) {
    if (!engine.identity().Alive(p) || engine.state(p).orders().empty()) continue;
    ++c.walked;
    TimeMicros t = start;
    auto held = s.Memberships(engine, p, t);
    while (t < end) {
      auto next = s.NextChange(engine, p, t);
      if (!next) {
        // Nothing scheduled: nothing may change for the rest of the walk either (a coordinate
        // clipped by the scaler stops moving, the last RFM cut point is behind).
        for (double q : {0.1, 0.5, 1.0}) {
          const TimeMicros later = t + static_cast<TimeMicros>(q * static_cast<double>(end - t));
          c.violations += s.Memberships(engine, p, later) != held;
        }
        break;
      }
      if (*next <= t) {
        ++c.violations;
        break;
      }
      for (double q : {0.25, 0.5, 0.75, 0.999}) {
        const TimeMicros mid =
            t + static_cast<TimeMicros>(q * static_cast<double>(*next - t - 1001));
        c.violations += s.Memberships(engine, p, mid) != held;
      }
      auto after = s.Memberships(engine, p, *next);
      if (after != held) {
        ++c.changes;
        if (segment_of(after) != segment_of(held) && *next % kMicrosPerDay != 0)
          ++c.segment_changes_off_midnight;
      }
      held = std::move(after);
      t = *next;
      ++c.steps;
    }
  }
  return c;
}

TEST(BuildSourceTest, WalkingForwardEveryChangeIsAtAScheduledMoment) {
  TempDir dir;
  EngineOptions eo;
  eo.db_dir = CopyShop(dir);
  {
    auto engine = Engine::Open(eo, Context());
    ASSERT_TRUE(engine.ok());
    auto source = BuildMembershipSource::Load(**engine);
    ASSERT_TRUE(source.ok());
    WalkCounts c = WalkForward(**engine, **source, 60);
    EXPECT_EQ(c.walked, 60u);
    EXPECT_EQ(c.violations, 0u);
    EXPECT_GT(c.changes, 60u);  // lapsing customers move through RFM cells and audiences
    std::printf("walk (default features): %zu steps, %zu changes\n", c.steps, c.changes);
  }
  // Clustering on recency, frequency and spend only, no windowed traits and no score rules: no
  // midnights, so segment flips as recency grows come from the closed form alone.
  WriteFile(eo.db_dir + "/shoal.toml", R"(
[segments]
k = 6
features = ["recency_days", "frequency", "monetary_total"]
[[audiences]]
name = "lapsed_60"
rule = "recency_days > 60d"
)");
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok());
  BuildOptions bo;
  bo.quiet = true;
  ASSERT_TRUE(RunBuild(**engine, bo).ok());
  ExpectAgreesWithBuild(**engine);
  auto source = BuildMembershipSource::Load(**engine);
  ASSERT_TRUE(source.ok());
  WalkCounts c = WalkForward(**engine, **source, 60);
  EXPECT_EQ(c.violations, 0u);
  EXPECT_GT(c.segment_changes_off_midnight, 0u);
  std::printf(
      "walk (RFM features): %zu steps, %zu changes, %zu segment flips found by the closed form\n",
      c.steps, c.changes, c.segment_changes_off_midnight);
}

// A server over the shop with a clock that starts at the build's as_of and runs in real time.
struct LiveServer {
  std::unique_ptr<Server> server;
  std::function<TimeMicros()> clock;
};

LiveServer StartServer(const std::string& db, const std::string& extra_toml, TimeMicros base) {
  WriteFile(db + "/shoal.toml", std::string(kShopConfig) + extra_toml);
  LiveServer out;
  auto t0 = std::chrono::steady_clock::now();
  out.clock = [base, t0] {
    return base + std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
  };
  ServerOptions o;
  o.db_dir = db;
  o.port = 0;
  o.context.clock = out.clock;
  o.context.threads = 2;
  auto s = Server::Start(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (s.ok()) out.server = std::move(s).value();
  return out;
}

// Up to `count` customer ids of the workspace's last build, every `stride`-th row.
void BuiltCustomers(const std::string& db, size_t count, size_t stride, std::vector<std::string>* customers) {
  EngineOptions eo;
  eo.db_dir = db;
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok());
  auto build = LoadBuild(**engine);
  ASSERT_TRUE(build.ok());
  for (size_t row = 0; row < build->customer_ids.size() && customers->size() < count; row += stride) {
    customers->push_back(build->customer_ids[row]);
  }
}

// Starts once without destinations, so the first memberships are stored (a first start emits
// every profile's memberships as entered records) and later starts send only changes.
TimeMicros PrimeMemberships(const std::string& db) {
  EngineOptions eo;
  eo.db_dir = db;
  TimeMicros as_of = 0;
  {
    auto engine = Engine::Open(eo, Context());
    EXPECT_TRUE(engine.ok());
    auto model = LoadLiveModel(**engine);
    EXPECT_TRUE(model.ok());
    as_of = model->as_of;
  }
  LiveServer s = StartServer(db, "", as_of);
  return as_of;
}

std::string Destination(int port) {
  return "\n[[destinations]]\nname = \"crm\"\nurl = \"http://127.0.0.1:" + std::to_string(port) +
         "/hook\"\nmarketing = false\n";
}

std::string Field(const std::string& body, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return "";
  std::string_view v;
  if (doc[key].get(v)) return "";
  return std::string(v);
}

TEST(BuildSourceServerTest, AnOrderMovesAnAtRiskCustomerAndTheWebhookReceivesIt) {
  TempDir dir;
  const std::string db = CopyShop(dir);
  TimeMicros as_of = PrimeMemberships(db);
  // An "At Risk" (or otherwise lapsed) customer of the build.
  std::string customer, old_rfm;
  {
    EngineOptions eo;
    eo.db_dir = db;
    auto engine = Engine::Open(eo, Context());
    ASSERT_TRUE(engine.ok());
    auto build = LoadBuild(**engine);
    ASSERT_TRUE(build.ok());
    for (const char* wanted : {"At Risk", "Hibernating", "Lost"}) {
      for (size_t row = 0; row < build->profiles.size() && customer.empty(); ++row) {
        if (build->rfm.segment_names[static_cast<size_t>(build->rfm.segment[row])] == wanted) {
          customer = build->customer_ids[row];
          old_rfm = wanted;
        }
      }
    }
  }
  ASSERT_FALSE(customer.empty());
  int port = FreePort();
  Receiver receiver(port);
  receiver.Start();
  LiveServer s = StartServer(db, Destination(port), as_of);
  ASSERT_TRUE(s.server);
  httplib::Client c("127.0.0.1", s.server->port());
  const int64_t ms = s.clock() / 1000;
  auto sent = std::chrono::steady_clock::now();
  auto r = c.Post("/v1/events",
                  R"({"event_id":"big-1","type":"order","timestamp":)" + std::to_string(ms) +
                      R"(,"customer_id":")" + customer + R"(","total":5000})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto mine = [&](const std::vector<Receiver::Delivery>& all) {
    std::vector<std::string> out;
    for (const auto& d : all) {
      if (Field(d.body, "customer_id") == customer) out.push_back(d.body);
    }
    return out;
  };
  const std::string exited = "rfm:" + old_rfm;
  // Both records: each is its own webhook, and a retried delivery may arrive after the other.
  ASSERT_TRUE(receiver.WaitFor(
      [&](const auto& all) {
        bool saw_exit = false, saw_entry = false;
        for (const auto& b : mine(all)) {
          if (Field(b, "membership") == exited && Field(b, "type") == "exited") saw_exit = true;
          if (Field(b, "type") == "entered" && Field(b, "membership").rfind("rfm:", 0) == 0) {
            saw_entry = true;
          }
        }
        return saw_exit && saw_entry;
      },
      5));
  double latency_ms =
      std::chrono::duration<double, std::milli>(receiver.deliveries().back().at - sent).count();
  bool entered_rfm = false;
  for (const auto& b : mine(receiver.deliveries())) {
    EXPECT_NE(b.find(R"("cause":{"kind":"event","event_id":"big-1")"), std::string::npos) << b;
    if (Field(b, "type") == "entered" && Field(b, "membership").rfind("rfm:", 0) == 0)
      entered_rfm = true;
  }
  EXPECT_TRUE(entered_rfm);
  EXPECT_LT(latency_ms, 2000);
  // The profile shows the live RFM cell, segment, audiences and scores.
  auto profile = c.Get("/v1/profiles/" + customer);
  ASSERT_EQ(profile->status, 200);
  EXPECT_NE(profile->body.find("\"build_as_of\":"), std::string::npos);
  EXPECT_NE(profile->body.find("\"recommendations\":["), std::string::npos);
  EXPECT_NE(profile->body.find("\"r\":5"), std::string::npos) << profile->body;
  EXPECT_NE(profile->body.find("\"p_alive\":"), std::string::npos);
  EXPECT_EQ(profile->body.find("\"rfm:" + old_rfm + "\""), std::string::npos);
  // The segments list covers the build's segments, RFM cells and audiences, with members.
  auto segments = c.Get("/v1/segments");
  ASSERT_EQ(segments->status, 200);
  EXPECT_NE(segments->body.find("\"segment:"), std::string::npos);
  EXPECT_NE(segments->body.find("\"rfm:Champions\""), std::string::npos);
  EXPECT_NE(segments->body.find("\"audience:winback\""), std::string::npos);
  auto members = c.Get("/v1/segments/rfm:Champions/members?limit=5");
  ASSERT_EQ(members->status, 200);
  EXPECT_NE(members->body.find("\"customer_id\""), std::string::npos);
}

TEST(BuildSourceServerTest, NoOrderFor60DaysFiresFromTheTimerAtItsMoment) {
  TempDir dir;
  const std::string db = CopyShop(dir);
  TimeMicros as_of = PrimeMemberships(db);
  int port = FreePort();
  Receiver receiver(port);
  receiver.Start();
  LiveServer s =
      StartServer(db, Destination(port) + "memberships = [\"audience:lapsed_60\"]\n", as_of);
  ASSERT_TRUE(s.server);
  httplib::Client c("127.0.0.1", s.server->port());
  // A new customer whose only order is 60 days minus 1.5 s old: "recency_days > 60d" becomes
  // true 1.5 s from now, with no event.
  const TimeMicros order_at = s.clock() - 60 * kMicrosPerDay + 1'500'000;
  const TimeMicros crossing = order_at + 60 * kMicrosPerDay;
  auto r = c.Post("/v1/events",
                  R"({"event_id":"old-order","type":"order","timestamp":)" +
                      std::to_string(order_at / 1000) + R"(,"customer_id":"LAPSING","total":40})",
                  "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/v1/profiles/LAPSING")->body.find("audience:lapsed_60"), std::string::npos);
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return !d.empty(); }, 5));
  auto d = receiver.deliveries()[0];
  const TimeMicros arrived = s.clock();
  EXPECT_EQ(Field(d.body, "customer_id"), "LAPSING");
  EXPECT_EQ(Field(d.body, "type"), "entered");
  EXPECT_NE(d.body.find(R"("cause":{"kind":"time"})"), std::string::npos) << d.body;
  // Not before its moment (the record's time is the evaluation's) and within a timer tick.
  auto at = ParseIso8601(Field(d.body, "at"));
  ASSERT_TRUE(at.ok());
  EXPECT_GE(*at, crossing - 1000);  // ms-precision timestamps of the order
  EXPECT_LT(arrived - crossing, 500'000) << "late by " << (arrived - crossing) << " us";
}

TEST(BuildSourceServerTest, RebuildSwapsWhileEventsStreamAndEveryChangeIsDelivered) {
  TempDir dir;
  const std::string db = CopyShop(dir);
  TimeMicros as_of = PrimeMemberships(db);
  std::vector<std::string> customers;
  ASSERT_NO_FATAL_FAILURE(BuiltCustomers(db, 200, 5, &customers));
  int port = FreePort();
  Receiver receiver(port);
  receiver.Start();
  LiveServer s = StartServer(db, Destination(port), as_of);
  ASSERT_TRUE(s.server);
  std::atomic<bool> streaming{true};
  std::atomic<int> stored{0}, failed{0};
  std::thread producer([&] {
    httplib::Client c("127.0.0.1", s.server->port());
    int i = 0;
    while (streaming.load() || i < 100) {
      const std::string& who = customers[static_cast<size_t>(i) % customers.size()];
      std::string body = R"({"event_id":"stream-)" + std::to_string(i) +
                         R"(","type":"order","timestamp":)" + std::to_string(s.clock() / 1000) +
                         R"(,"customer_id":")" + who + R"(","total":)" +
                         std::to_string(20 + (i * 37) % 900) + "}";
      auto r = c.Post("/v1/events", body, "application/json");
      (r && r->status == 200 ? stored : failed).fetch_add(1);
      ++i;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  httplib::Client admin("127.0.0.1", s.server->port());
  admin.set_read_timeout(std::chrono::seconds(60));
  auto r = admin.Post("/v1/rebuild", "", "application/json");
  streaming = false;
  producer.join();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_NE(r->body.find("\"rebuilt\":true"), std::string::npos);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(stored.load(), 100);
  // Quiet: wait until every record has arrived (the outbox drains).
  size_t last = 0;
  for (int i = 0; i < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    size_t now_count = receiver.count();
    if (now_count == last && i > 5) break;
    last = now_count;
  }
  // Fold every (customer, membership)'s records in sequence order: the last one must agree with
  // the profile's current memberships -- nothing lost, nothing out of order.
  struct Last {
    uint64_t seq = 0;
    bool entered = false;
  };
  std::map<std::pair<std::string, std::string>, Last> last_record;
  size_t rebuild_records = 0;
  for (const auto& d : receiver.deliveries()) {
    const std::string id = Field(d.body, "id");
    const uint64_t seq = std::stoull(id.substr(id.find('-') + 1));
    Last& l = last_record[{Field(d.body, "customer_id"), Field(d.body, "membership")}];
    if (seq > l.seq) l = {seq, Field(d.body, "type") == "entered"};
    rebuild_records += d.body.find(R"("cause":{"kind":"rebuild"})") != std::string::npos;
  }
  EXPECT_GT(last_record.size(), 0u);
  httplib::Client c("127.0.0.1", s.server->port());
  std::map<std::string, std::string> profiles;
  size_t disagreements = 0;
  for (const auto& [key, l] : last_record) {
    auto it = profiles.find(key.first);
    if (it == profiles.end())
      it = profiles.emplace(key.first, c.Get("/v1/profiles/" + key.first)->body).first;
    const bool member = it->second.find("\"" + key.second + "\"") != std::string::npos;
    disagreements += member != l.entered;
  }
  EXPECT_EQ(disagreements, 0u);
  std::printf("rebuild while streaming: %d events, %zu records (%zu caused by the rebuild): %s\n",
              stored.load(), receiver.count(), rebuild_records, r->body.c_str());
}

TEST(BuildSourceServerTest, BuildBesideARunningServerSaysToUsePostRebuild) {
  TempDir dir;
  const std::string db = CopyShop(dir);
  LiveServer s = StartServer(db, "", PrimeMemberships(db));
  ASSERT_TRUE(s.server);
  EngineOptions eo;
  eo.db_dir = db;
  auto engine = Engine::Open(eo, Context());  // what `shoal build` does first
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("POST /v1/rebuild"), std::string::npos)
      << engine.status().message();
}

TEST(BuildSourceServerTest, FirstRebuildReplacesTheThresholdSource) {
  TempDir dir;
  WriteFile(dir.Sub("db/shoal.toml"),
            "[[audiences]]\nname = \"big\"\nrule = \"monetary_total > 100\"\n");
  ServerOptions o;
  o.db_dir = dir.Sub("db");
  o.port = 0;
  auto s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  httplib::Client c("127.0.0.1", (*s)->port());
  auto empty = c.Post("/v1/rebuild", "", "application/json");
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 409) << empty->body;  // no profiles to build from yet
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  for (int i = 1; i <= 40; ++i) {
    auto r = c.Post("/v1/events",
                    R"({"event_id":"e)" + std::to_string(i) + R"(","type":"order","timestamp":)" +
                        std::to_string(ms - i * 86'400'000LL) + R"(,"customer_id":"C)" +
                        std::to_string(i) + R"(","total":)" + std::to_string(i * 7) + "}",
                    "application/json");
    ASSERT_EQ(r->status, 200);
  }
  EXPECT_EQ(c.Get("/v1/segments")->body.find("rfm:"), std::string::npos);  // thresholds only
  EXPECT_NE(c.Get("/v1/profiles/C20")->body.find("\"audience:big\""), std::string::npos);
  auto r = c.Post("/v1/rebuild", "", "application/json");
  ASSERT_EQ(r->status, 200) << r->body;
  auto segments = c.Get("/v1/segments")->body;
  EXPECT_NE(segments.find("\"rfm:"), std::string::npos) << segments;
  EXPECT_NE(segments.find("\"segment:"), std::string::npos) << segments;
  auto profile = c.Get("/v1/profiles/C20")->body;
  EXPECT_NE(profile.find("\"audience:big\""), std::string::npos) << profile;
  EXPECT_NE(profile.find("\"rfm:"), std::string::npos) << profile;
  EXPECT_NE(profile.find("\"build_as_of\":"), std::string::npos) << profile;
}

// Lookups beside everything that mutates: batches and single events (a group then holds several
// batches, and the apply leader lets readers in between them and while it computes), forgets
// and a rebuild. Every answer must show the memberships of the state its traits come from:
// exactly the ones its own live scores name (audiences, RFM cell, segment); a lookup right after
// a 2xx POST must count that order; a forgotten customer is gone; nothing deadlocks.
TEST(BuildSourceServerTest, LookupsStayConsistentBesideEventsForgetsAndARebuild) {
  TempDir dir;
  const std::string db = CopyShop(dir);
  const TimeMicros as_of = PrimeMemberships(db);
  std::vector<std::string> customers;
  ASSERT_NO_FATAL_FAILURE(BuiltCustomers(db, 64, 7, &customers));
  ASSERT_EQ(customers.size(), 64u);
  // [0, 48): streamed to and looked up; [48, 56): looked up, then forgotten; [56, 64): each
  // written and read back by the read-your-writes thread alone.
  constexpr size_t kStreamed = 48, kForgotten = 56;
  LiveServer s = StartServer(db, "", as_of);
  ASSERT_TRUE(s.server);
  const int port = s.server->port();
  std::atomic<bool> running{true};
  std::atomic<int> lookups{0}, inconsistent{0}, unexpected{0}, posts{0},
      post_failures{0}, read_your_writes{0}, stale_reads{0};
  std::mutex first_mu;
  std::string first_problem;
  auto note = [&](std::atomic<int>& counter, const std::string& what) {
    if (counter.fetch_add(1) == 0) {
      std::lock_guard lock(first_mu);
      if (first_problem.empty()) first_problem = what;
    }
  };
  auto order = [&](const std::string& id, const std::string& who, int total) {
    return R"({"event_id":")" + id + R"(","type":"order","timestamp":)" +
           std::to_string(s.clock() / 1000) + R"(,"customer_id":")" + who + R"(","total":)" +
           std::to_string(total) + "}";
  };
  // The memberships the answer's own live scores name, against its "memberships".
  auto consistent = [](simdjson::dom::element doc) {
    std::vector<std::string> named, shown;
    for (auto a : doc["audiences"].get_array()) named.push_back("audience:" + std::string(std::string_view(a)));
    named.push_back("rfm:" + std::string(std::string_view(doc["rfm"]["segment"])));
    if (!doc["segment"].is_null()) named.push_back("segment:" + std::string(std::string_view(doc["segment"]["name"])));
    for (auto m : doc["memberships"].get_array()) shown.emplace_back(std::string_view(m));
    std::sort(named.begin(), named.end());
    return named == shown;
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {  // producers: batches of 20 and single events
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      std::mt19937 rng(static_cast<uint32_t>(t + 1));
      for (int n = 0; running.load(); ++n) {
        const int size = n % 4 == 3 ? 1 : 20;
        std::string body = size > 1 ? "[" : "";
        for (int k = 0; k < size; ++k) {
          if (k) body += ",";
          body += order("p" + std::to_string(t) + "-" + std::to_string(n) + "-" + std::to_string(k),
                        customers[rng() % kStreamed], 5 + static_cast<int>(rng() % 2000));
        }
        if (size > 1) body += "]";
        auto r = c.Post("/v1/events", body, "application/json");
        if (r && r->status == 200) posts.fetch_add(1);
        else note(post_failures, r ? r->body : "no answer to a POST");
      }
    });
  }
  for (int t = 0; t < 4; ++t) {  // readers
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      simdjson::dom::parser parser;
      std::mt19937 rng(static_cast<uint32_t>(100 + t));
      while (running.load()) {
        const size_t i = rng() % kForgotten;
        auto r = c.Get("/v1/profiles/" + customers[i]);
        lookups.fetch_add(1);
        if (r && r->status == 404 && i >= kStreamed) continue;  // forgotten by now
        simdjson::dom::element doc;
        if (!r || r->status != 200 || parser.parse(r->body).get(doc)) {
          note(unexpected, r ? std::to_string(r->status) + " " + r->body : "no answer to a GET");
        } else if (!consistent(doc)) {
          note(inconsistent, r->body);
        }
      }
    });
  }
  threads.emplace_back([&] {  // read your writes
    httplib::Client c("127.0.0.1", port);
    simdjson::dom::parser parser;
    std::vector<double> orders(customers.size(), -1);
    for (int n = 0; running.load(); ++n) {
      const size_t i = kForgotten + static_cast<size_t>(n) % (customers.size() - kForgotten);
      if (orders[i] < 0) {
        auto r = c.Get("/v1/profiles/" + customers[i]);
        simdjson::dom::element doc;
        if (!r || r->status != 200 || parser.parse(r->body).get(doc)) return note(unexpected, "first read");
        orders[i] = double(doc["traits"]["frequency"]);
      }
      auto w = c.Post("/v1/events", order("ryw-" + std::to_string(n), customers[i], 50), "application/json");
      if (!w || w->status != 200) return note(post_failures, w ? w->body : "no answer");
      orders[i] += 1;
      auto r = c.Get("/v1/profiles/" + customers[i]);
      simdjson::dom::element doc;
      if (!r || r->status != 200 || parser.parse(r->body).get(doc)) return note(unexpected, "read back");
      read_your_writes.fetch_add(1);
      if (double(doc["traits"]["frequency"]) != orders[i]) note(stale_reads, r->body);
    }
  });
  httplib::Client admin("127.0.0.1", port);
  admin.set_read_timeout(std::chrono::seconds(60));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (size_t i = kStreamed; i < kForgotten; ++i) {
    auto r = admin.Post("/v1/forget", R"({"identifier":")" + customers[i] + R"("})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto rebuilt = admin.Post("/v1/rebuild", "", "application/json");
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // lookups go on after the swap
  running = false;
  for (auto& t : threads) t.join();
  ASSERT_TRUE(rebuilt);
  EXPECT_EQ(rebuilt->status, 200) << rebuilt->body;
  for (size_t i = kStreamed; i < kForgotten; ++i) {
    EXPECT_EQ(admin.Get("/v1/profiles/" + customers[i])->status, 404) << customers[i];
  }
  EXPECT_EQ(inconsistent.load(), 0) << first_problem;
  EXPECT_EQ(unexpected.load(), 0) << first_problem;
  EXPECT_EQ(post_failures.load(), 0) << first_problem;
  EXPECT_EQ(stale_reads.load(), 0) << first_problem;
  EXPECT_GT(posts.load(), 20);
  EXPECT_GT(lookups.load(), 200);
  EXPECT_GT(read_your_writes.load(), 10);
  std::printf("lookups %d, event posts %d, read-your-writes checks %d\n", lookups.load(),
              posts.load(), read_your_writes.load());
}

}  // namespace
}  // namespace shoal
