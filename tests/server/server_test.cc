// The HTTP API end to end on loopback: events, profiles, memberships, exports, auth, limits,
// webhooks with signatures and consent, a destination that is down for a while, the timer.
#include <simdjson.h>

#include "common/time.h"
#include "engine/engine.h"
#include "ingest/json_events.h"
#include "test_support.h"

namespace shoal {
namespace {

using testing::FreePort;
using testing::NowIso;
using testing::Receiver;
using testing::StartAt;
using testing::TempDir;
using testing::WriteFile;

std::string Order(const std::string& id, const std::string& customer, double total, const std::string& extra = "") {
  return R"({"event_id":")" + id + R"(","type":"order","timestamp":)" + NowIso() + R"(,"customer_id":")" +
         customer + R"(","total":)" + std::to_string(total) + extra + "}";
}

simdjson::dom::element Parse(simdjson::dom::parser& parser, const std::string& text) {
  simdjson::dom::element doc;
  EXPECT_FALSE(parser.parse(text).get(doc)) << text;
  return doc;
}

const char* kAudiences = R"(
[[audiences]]
name = "big"
rule = "monetary_total > 100"
[[audiences]]
name = "loyal"
rule = "frequency >= 2"
)";

TEST(ServerApiTest, EventsProfilesMembershipsAndErrors) {
  TempDir dir;
  auto server = StartAt(dir, kAudiences);
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  simdjson::dom::parser parser;

  auto r = c.Post("/v1/events", Order("o1", "C1", 80, R"(,"email":"Ann@Example.com","phone":"+44 20 7946 0958")"), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(int64_t(Parse(parser, r->body)["stored"]), 1);

  // A batch: one good order, one without timestamp, one malformed type; good one goes through.
  std::string batch = std::string("[") + Order("o2", "C1", 50) + R"(,{"type":"order","customer_id":"C9"},{"type":"order","timestamp":"yesterday-ish","customer_id":"C9"}])";
  r = c.Post("/v1/events", batch, "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 207) << r->body;
  auto doc = Parse(parser, r->body);
  EXPECT_EQ(int64_t(doc["accepted"]), 1);
  EXPECT_EQ(int64_t(doc["rejected"]), 2);
  EXPECT_EQ(std::string_view(doc["results"].at(1)["field"]), "timestamp");
  EXPECT_EQ(std::string_view(doc["results"].at(2)["field"]), "timestamp");

  // Re-sending is idempotent.
  r = c.Post("/v1/events", Order("o2", "C1", 50), "application/json");
  EXPECT_EQ(int64_t(Parse(parser, r->body)["duplicates"]), 1);

  // Malformed JSON and a bad single event: 4xx with a message naming the field.
  r = c.Post("/v1/events", "{\"type\": \"order\",", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("malformed JSON"), std::string::npos);
  r = c.Post("/v1/events", R"({"type":"page_view","timestamp":1709648000})", "application/json");
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("customer_id"), std::string::npos) << r->body;

  // The profile: traits and memberships, by any identifier.
  r = c.Get("/v1/profiles/ann@example.com");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  doc = Parse(parser, r->body);
  EXPECT_EQ(double(doc["traits"]["monetary_total"]), 130.0);
  EXPECT_EQ(double(doc["traits"]["frequency"]), 2.0);
  EXPECT_EQ(std::string_view(doc["memberships"].at(0)), "audience:big");
  EXPECT_EQ(std::string_view(doc["memberships"].at(1)), "audience:loyal");
  EXPECT_EQ(std::string_view(doc["by_kind"]["audience"].at(0)), "big");
  EXPECT_EQ(c.Get("/v1/profiles/nobody")->status, 404);

  // Segments and paged members.
  for (int i = 2; i <= 6; ++i) {
    std::string id = std::string("C") + std::to_string(i);
    c.Post("/v1/events", Order("big-" + id, id, 500), "application/json");
  }
  r = c.Get("/v1/segments");
  doc = Parse(parser, r->body);
  EXPECT_EQ(std::string_view(doc["segments"].at(0)["id"]), "audience:big");
  EXPECT_EQ(int64_t(doc["segments"].at(0)["members"]), 6);
  std::set<std::string> seen;
  std::string cursor = "0";
  for (int page = 0; page < 10; ++page) {
    r = c.Get("/v1/audiences/big/members?limit=4&cursor=" + cursor);
    doc = Parse(parser, r->body);
    for (auto m : doc["members"].get_array()) seen.insert(std::string(std::string_view(m["customer_id"])));
    if (doc["next_cursor"].is_null()) break;
    cursor = std::to_string(int64_t(doc["next_cursor"]));
  }
  EXPECT_EQ(seen.size(), 6u);
  r = c.Get("/v1/segments/audience:loyal/members");
  EXPECT_EQ(Parse(parser, r->body)["members"].get_array().size(), 1u);

  // Exports: CSV and the ad-platform customer list (hashed, normalised).
  r = c.Post("/v1/audiences/big/export?format=csv", "", "application/json");
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("C1,ann@example.com,+44 20 7946 0958"), std::string::npos) << r->body;
  r = c.Post("/v1/audiences/big/export?format=customer_list", "", "application/json");
  EXPECT_NE(r->body.find(Sha256Hex("ann@example.com") + "," + Sha256Hex("+442079460958")), std::string::npos);
  EXPECT_EQ(c.Post("/v1/audiences/big/export?format=xml", "", "text/plain")->status, 400);

  // The API description and the metrics.
  r = c.Get("/openapi.json");
  doc = Parse(parser, r->body);
  for (const char* path : {"/v1/events", "/v1/profiles/{identifier}", "/v1/segments", "/v1/segments/{id}/members",
                           "/v1/audiences/{name}/members", "/v1/forget", "/v1/rebuild", "/healthz", "/metrics"}) {
    EXPECT_FALSE(doc["paths"][path].error()) << path;
  }
  r = c.Get("/metrics");
  EXPECT_NE(r->body.find("shoal_events_stored_total 7"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("shoal_http_request_duration_seconds_bucket{route=\"events\""), std::string::npos);
  EXPECT_NE(r->body.find("shoal_membership_entered_total 7"), std::string::npos);
  EXPECT_EQ(c.Get("/nowhere")->status, 404);

  // Forget: the profile and its memberships go.
  r = c.Post("/v1/forget", R"({"identifier":"C1"})", "application/json");
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(c.Get("/v1/profiles/C1")->status, 404);
  EXPECT_EQ(c.Post("/v1/forget", R"({"who":"C1"})", "application/json")->status, 400);
  r = c.Get("/v1/segments");
  EXPECT_EQ(int64_t(Parse(parser, r->body)["segments"].at(0)["members"]), 5);
  EXPECT_EQ(c.Post("/v1/rebuild", "", "application/json")->status, 200);
}

TEST(ServerApiTest, TokensScopesAndLimits) {
  TempDir dir;
  auto server = StartAt(dir, R"(
[server]
max_body_bytes = 4096
max_batch_events = 3
[[server.tokens]]
token = "reader-0123456789abcdef"
scopes = ["read"]
[[server.tokens]]
token = "writer-0123456789abcdef"
scopes = ["read", "write"]
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  EXPECT_EQ(c.Get("/healthz")->status, 200);  // open
  EXPECT_EQ(c.Get("/v1/segments")->status, 401);
  EXPECT_EQ(c.Post("/v1/events", Order("e1", "C1", 1), "application/json")->status, 401);
  c.set_bearer_token_auth("wrong-0123456789abcdef");
  EXPECT_EQ(c.Get("/v1/segments")->status, 401);
  c.set_bearer_token_auth("reader-0123456789abcdef");
  EXPECT_EQ(c.Get("/v1/segments")->status, 200);
  EXPECT_EQ(c.Post("/v1/events", Order("e1", "C1", 1), "application/json")->status, 403);
  c.set_bearer_token_auth("writer-0123456789abcdef");
  EXPECT_EQ(c.Post("/v1/events", Order("e1", "C1", 1), "application/json")->status, 200);
  // Limits: a body over max_body_bytes and a batch over max_batch_events are refused whole.
  EXPECT_EQ(c.Post("/v1/events", std::string(5000, ' ') + "{}", "application/json")->status, 413);
  std::string four = std::string("[") + Order("a", "C", 1) + "," + Order("b", "C", 1) + "," + Order("c", "C", 1) + "," + Order("d", "C", 1) + "]";
  auto r = c.Post("/v1/events", four, "application/json");
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("limit is 3"), std::string::npos);

  // Without tokens a non-loopback bind is refused.
  TempDir other;
  WriteFile(other.Sub("db/shoal.toml"), "");
  ServerOptions o;
  o.db_dir = other.Sub("db");
  o.bind = "0.0.0.0";
  o.port = 0;
  auto refused = Server::Start(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("without API tokens"), std::string::npos);
}

TEST(ServerWebhookTest, SignedIdempotentDeliveriesHonourConsentAndFilters) {
  TempDir dir;
  int port = FreePort();
  Receiver receiver(port, "topsecret");
  receiver.Start();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  auto server = StartAt(dir, std::string(kAudiences) + R"(
[[destinations]]
name = "ads"
url = ")" + url + R"("
secret = "topsecret"
audiences = ["big"]
marketing = true
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  // C1 opts out first, then becomes big: never sent to the marketing destination.
  c.Post("/v1/events", R"({"event_id":"k1","type":"consent","timestamp":)" + NowIso(-10) + R"(,"customer_id":"C1","marketing":false})", "application/json");
  c.Post("/v1/events", Order("o1", "C1", 500), "application/json");
  // C2 becomes big and loyal: only 'big' passes the filter.
  c.Post("/v1/events", std::string("[") + Order("o2", "C2", 60) + "," + Order("o3", "C2", 60) + "]", "application/json");
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return d.size() >= 1; }, 5));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto d = receiver.deliveries();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].signature_ok);
  EXPECT_FALSE(d[0].key.empty());
  EXPECT_NE(d[0].body.find("\"membership\":\"audience:big\""), std::string::npos);
  EXPECT_NE(d[0].body.find("\"customer_id\":\"C2\""), std::string::npos);
  EXPECT_NE(d[0].body.find("\"type\":\"entered\""), std::string::npos);
  EXPECT_NE(d[0].body.find("\"before\":[]"), std::string::npos);
  EXPECT_NE(d[0].body.find("\"after\":[\"audience:big\",\"audience:loyal\"]"), std::string::npos);
  EXPECT_NE(d[0].body.find("\"cause\":{\"kind\":\"event\""), std::string::npos);
  auto m = c.Get("/metrics");
  EXPECT_NE(m->body.find("shoal_consent_suppressed_total 1"), std::string::npos);
  EXPECT_NE(m->body.find("shoal_webhook_deliveries_total{destination=\"ads\"} 1"), std::string::npos);
  // C2 opts out: exports marked marketing leave them out.
  c.Post("/v1/events", R"({"event_id":"k2","type":"consent","timestamp":)" + NowIso() + R"(,"customer_id":"C2","marketing":"opt_out"})", "application/json");
  auto e = c.Post("/v1/audiences/big/export?format=csv", "", "text/plain");
  EXPECT_EQ(e->body, "customer_id,email,phone\n");
  e = c.Post("/v1/audiences/big/export?format=csv&marketing=false", "", "text/plain");
  EXPECT_NE(e->body.find("C2"), std::string::npos);
}

TEST(ServerWebhookTest, DestinationDownForAWhileReceivesEverythingOnceBack) {
  TempDir dir;
  int port = FreePort();
  Receiver receiver(port);
  std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  auto server = StartAt(dir, std::string(kAudiences) + R"(
[[destinations]]
name = "crm"
url = ")" + url + R"("
marketing = false
backoff_initial_ms = 20
backoff_max_ms = 200
max_attempts = 1000
timeout_ms = 500
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  for (int i = 0; i < 40; ++i) {
    std::string id = std::string("C") + std::to_string(i);
    c.Post("/v1/events", std::string("[") + Order("a" + id, id, 60) + "," + Order("b" + id, id, 60) + "]", "application/json");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // nobody listening: failures pile up
  auto m = c.Get("/metrics");
  EXPECT_EQ(m->body.find("shoal_webhook_failures_total{destination=\"crm\"} 0"), std::string::npos);
  EXPECT_NE(m->body.find("shoal_outbox_depth{destination=\"crm\"} 80"), std::string::npos) << m->body;
  receiver.Start();
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return d.size() >= 80; }, 10));
  std::set<std::string> keys;
  for (const auto& d : receiver.deliveries()) keys.insert(d.key);
  EXPECT_EQ(keys.size(), 80u);  // 40 customers x (big, loyal)
  // A record leaves the outbox once its delivery is acknowledged, just after the receiver
  // counted it: poll for the empty outbox.
  bool drained = false;
  for (int i = 0; i < 100 && !drained; ++i) {
    m = c.Get("/metrics");
    drained = m->body.find("shoal_outbox_depth{destination=\"crm\"} 0") != std::string::npos;
    if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(drained) << m->body;
}

TEST(ServerWebhookTest, DeadLettersAfterMaxAttempts) {
  TempDir dir;
  int port = FreePort();
  Receiver receiver(port);
  receiver.failing = true;
  receiver.Start();
  auto server = StartAt(dir, std::string(kAudiences) + R"(
[[destinations]]
name = "flaky"
url = "http://127.0.0.1:)" + std::to_string(port) + R"(/hook"
marketing = false
audiences = ["big"]
backoff_initial_ms = 5
backoff_max_ms = 20
max_attempts = 3
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  c.Post("/v1/events", Order("o1", "C1", 500), "application/json");
  std::string body;
  // The record moves to the dead letters, then leaves the outbox: wait for both (a scrape in
  // between sees it in both, which is not the end state).
  for (int i = 0; i < 100; ++i) {
    body = c.Get("/metrics")->body;
    if (body.find("shoal_dead_letter_depth{destination=\"flaky\"} 1") != std::string::npos &&
        body.find("shoal_outbox_depth{destination=\"flaky\"} 0") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(body.find("shoal_webhook_dead_letters_total{destination=\"flaky\"} 1"), std::string::npos) << body;
  EXPECT_NE(body.find("shoal_webhook_failures_total{destination=\"flaky\"} 3"), std::string::npos);
  EXPECT_NE(body.find("shoal_outbox_depth{destination=\"flaky\"} 0"), std::string::npos);
}

TEST(ServerTimerTest, TimeDrivenMembershipChangeFiresAtItsMoment) {
  TempDir dir;
  int port = FreePort();
  Receiver receiver(port);
  receiver.Start();
  // Lapsed 1.5 s after the last event: days_since_last_event > 1.5 / 86400.
  auto server = StartAt(dir, R"(
[[audiences]]
name = "lapsed"
rule = "days_since_last_event > 0.000017361111"
[[destinations]]
name = "crm"
url = "http://127.0.0.1:)" + std::to_string(port) + R"(/hook"
marketing = false
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  auto sent_at = std::chrono::steady_clock::now();
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  auto r = c.Post("/v1/events", R"({"event_id":"v1","type":"page_view","timestamp":)" + std::to_string(now_ms) +
                                    R"(,"customer_id":"C1"})", "application/json");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(c.Get("/v1/profiles/C1")->body.find("audience:lapsed"), std::string::npos);
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return !d.empty(); }, 5));
  auto d = receiver.deliveries();
  double after = std::chrono::duration<double>(d[0].at - sent_at).count();
  EXPECT_GE(after, 1.3);  // not before its time (the event's ms timestamp precedes sent_at)
  EXPECT_LT(after, 2.0);  // and promptly at it: a timer, not a sweep
  EXPECT_NE(d[0].body.find("\"cause\":{\"kind\":\"time\"}"), std::string::npos);
  EXPECT_NE(c.Get("/v1/profiles/C1")->body.find("audience:lapsed"), std::string::npos);
  // A new event brings them back: exited, caused by the event.
  now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  c.Post("/v1/events", R"({"event_id":"v2","type":"page_view","timestamp":)" + std::to_string(now_ms) + R"(,"customer_id":"C1"})", "application/json");
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return d.size() >= 2; }, 5));
  EXPECT_NE(receiver.deliveries()[1].body.find("\"type\":\"exited\""), std::string::npos);
}

TEST(MembershipTest, NextChangeIsTheCrossingMoment) {
  TempDir dir;
  EngineOptions eo;
  eo.db_dir = dir.Sub("db");
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok());
  EventBatch batch;
  std::vector<ItemResult> items;
  ASSERT_TRUE(ParseJsonEvents(R"([{"type":"order","timestamp":"2024-01-01T00:00:00Z","customer_id":"C1","total":5},
                                  {"type":"page_view","timestamp":"2024-01-03T00:00:00Z","customer_id":"C1"}])",
                              (*engine)->config().registry, &batch, &items).ok());
  ASSERT_TRUE((*engine)->Apply(batch, true).ok());
  std::vector<std::string> names;
  for (const auto& t : (*engine)->catalogue().traits()) names.push_back(t.name);
  auto source = TraitThresholdSource::Make({{"lapsed", "recency_days", TraitThreshold::Op::kGreater, 30},
                                            {"quiet", "days_since_last_event", TraitThreshold::Op::kGreaterEqual, 10},
                                            {"big", "monetary_total", TraitThreshold::Op::kGreater, 100}},
                                           names);
  ASSERT_TRUE(source.ok());
  uint32_t p = (*engine)->FindProfile("C1");
  TimeMicros jan1 = *ParseIso8601("2024-01-01T00:00:00Z");
  TimeMicros jan5 = *ParseIso8601("2024-01-05T00:00:00Z");
  TimeMicros quiet_at = *ParseIso8601("2024-01-13T00:00:00Z");
  TimeMicros lapsed_at = jan1 + 30 * kMicrosPerDay;
  EXPECT_EQ((*source)->NextChange(**engine, p, jan5), quiet_at + 1);
  EXPECT_EQ((*source)->NextChange(**engine, p, quiet_at + 1), lapsed_at + 1);
  EXPECT_EQ((*source)->NextChange(**engine, p, lapsed_at + 1), std::nullopt);
  EXPECT_TRUE((*source)->Memberships(**engine, p, lapsed_at).size() == 1);      // quiet only
  EXPECT_TRUE((*source)->Memberships(**engine, p, lapsed_at + 1).size() == 2);  // + lapsed
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// The traits the built-in source reads straight from the state equal the catalogue's values.
TEST(MembershipTest, DirectTraitsAgreeWithTheCatalogue) {
  TempDir dir;
  EngineOptions eo;
  eo.db_dir = dir.Sub("db");
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok());
  std::mt19937 rng(7);
  std::string body = "[";
  for (int i = 0; i < 400; ++i) {
    const char* types[] = {"order", "page_view", "consent", "return"};
    std::string type = types[rng() % 4];
    body += std::string(i ? "," : "") + R"({"type":")" + type + R"(","timestamp":)" +
            std::to_string(1700000000 + static_cast<int>(rng() % 5000000)) + R"(,"customer_id":"C)" +
            std::to_string(rng() % 40) + R"(","total":)" + std::to_string(rng() % 300) + R"(.25,"marketing":)" +
            (rng() % 2 ? "true" : "false") + "}";
  }
  body += "]";
  EventBatch batch;
  std::vector<ItemResult> items;
  ASSERT_TRUE(ParseJsonEvents(body, (*engine)->config().registry, &batch, &items).ok());
  ASSERT_TRUE((*engine)->Apply(batch, true).ok());
  std::vector<std::string> names;
  for (const auto& t : (*engine)->catalogue().traits()) names.push_back(t.name);
  const char* direct[] = {"recency_days", "days_since_last_event", "tenure_days", "first_order_days_ago",
                          "frequency", "monetary_total", "events_total", "consent_marketing"};
  const double thresholds[] = {0, 0.5, 1, 3, 10, 40, 120, 600};
  TimeMicros now = 1706000000LL * 1000000;
  std::vector<double> values(names.size());
  int checked = 0;
  for (const char* trait : direct) {
    for (double threshold : thresholds) {
      for (auto op : {TraitThreshold::Op::kGreater, TraitThreshold::Op::kLessEqual}) {
        auto source = TraitThresholdSource::Make({{"a", trait, op, threshold}}, names);
        ASSERT_TRUE(source.ok());
        int idx = (*engine)->catalogue().Find(trait);
        for (uint32_t p = 0; p < (*engine)->identity().num_slots(); ++p) {
          if (!(*engine)->identity().Alive(p)) continue;
          (*engine)->catalogue().ComputeOne((*engine)->state(p), (*engine)->population(), now, values);
          double v = values[static_cast<size_t>(idx)];
          bool expected = !std::isnan(v) && (op == TraitThreshold::Op::kGreater ? v > threshold : v <= threshold);
          EXPECT_EQ((*source)->Memberships(**engine, p, now).size(), expected ? 1u : 0u)
              << trait << " " << threshold << " value " << v;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 3000);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// A merge: the absorbed profile exits what it was in (cause "merge"); the survivor, now holding
// both histories, enters.
TEST(ServerWebhookTest, MergedProfileExitsAndSurvivorEnters) {
  TempDir dir;
  int port = FreePort();
  Receiver receiver(port);
  receiver.Start();
  auto server = StartAt(dir, std::string(kAudiences) + R"(
[[destinations]]
name = "crm"
url = "http://127.0.0.1:)" + std::to_string(port) + R"(/hook"
marketing = false
audiences = ["big"]
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  c.Post("/v1/events", R"({"event_id":"a1","type":"order","timestamp":)" + NowIso(-5) + R"(,"anonymous_id":"dev-1","total":150})", "application/json");
  c.Post("/v1/events", R"({"event_id":"c1","type":"order","timestamp":)" + NowIso(-4) + R"(,"customer_id":"C1","total":150})", "application/json");
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return d.size() >= 2; }, 5));  // both entered big
  c.Post("/v1/events", R"({"event_id":"i1","type":"identify","timestamp":)" + NowIso(-3) + R"(,"anonymous_id":"dev-1","customer_id":"C1"})", "application/json");
  auto r = c.Get("/v1/profiles/dev-1");
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->body.find("\"monetary_total\":300"), std::string::npos) << r->body;
  ASSERT_TRUE(receiver.WaitFor([](const auto& d) { return d.size() >= 3; }, 5));
  std::string exit = receiver.deliveries()[2].body;
  EXPECT_NE(exit.find("\"type\":\"exited\""), std::string::npos) << exit;
  EXPECT_NE(exit.find("\"cause\":{\"kind\":\"merge\"}"), std::string::npos) << exit;
  EXPECT_NE(r->body.find("audience:big"), std::string::npos);
  // One profile now holds big; whichever slot was absorbed, no slot but the survivor is in it.
  auto members = c.Get("/v1/audiences/big/members");
  EXPECT_EQ(std::count(members->body.begin(), members->body.end(), '{'), 2) << members->body;  // outer + 1
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST(ServerExportTest, ScheduledExportsWriteFilesAndLeaveOutOptedOut) {
  TempDir dir;
  auto server = StartAt(dir, std::string(kAudiences) + R"(
[server]
default_country_code = "44"
[[exports]]
audience = "big"
format = "customer_list"
path = "exports/big_ads.csv"
every_minutes = 0.005
[[exports]]
audience = "big"
format = "jsonl"
path = "exports/big.jsonl"
every_minutes = 0.005
marketing = false
)");
  ASSERT_TRUE(server);
  httplib::Client c("127.0.0.1", server->port());
  c.Post("/v1/events", Order("o1", "C1", 500, R"(,"email":"ann@example.com","phone":"07946 095800")"), "application/json");
  c.Post("/v1/events", Order("o2", "C2", 500, R"(,"email":"bob@example.com")"), "application/json");
  c.Post("/v1/events", R"({"event_id":"k","type":"consent","timestamp":)" + NowIso() + R"(,"customer_id":"C2","marketing":false})", "application/json");
  std::string ads, jsonl;
  for (int i = 0; i < 100 && (ads.empty() || jsonl.empty()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream a(dir.Sub("db/exports/big_ads.csv")), j(dir.Sub("db/exports/big.jsonl"));
    ads.assign(std::istreambuf_iterator<char>(a), {});
    jsonl.assign(std::istreambuf_iterator<char>(j), {});
  }
  EXPECT_EQ(ads, "Email,Phone\n" + Sha256Hex("ann@example.com") + "," + Sha256Hex("+447946095800") + "\n");
  EXPECT_NE(jsonl.find("\"customer_id\":\"C2\""), std::string::npos);  // not a marketing export
  EXPECT_NE(jsonl.find("\"customer_id\":\"C1\""), std::string::npos);
  auto direct = server->ExportAudience("big", ExportOptions{ExportFormat::kCsv, ""}, true);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*direct, "customer_id,email,phone\nC1,ann@example.com,07946 095800\n");
}

}  // namespace
}  // namespace shoal
