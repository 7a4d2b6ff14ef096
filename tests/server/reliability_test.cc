// Reliability: kill -9 the server mid-stream and restart it (every membership change is
// delivered at least once, none lost); 10,000 concurrent random bad requests neither crash the
// server nor corrupt a profile.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>

#include "test_support.h"

namespace shoal {
namespace {

using testing::FreePort;
using testing::NowIso;
using testing::Receiver;
using testing::StartAt;
using testing::TempDir;
using testing::WriteFile;

// The child side of the kill -9 test: runs a server on the workspace and port the parent names
// in the environment until it is killed. Skipped in a normal run.
TEST(ServerChild, Run) {
  const char* db = std::getenv("SHOAL_TEST_CHILD_DB");
  const char* port = std::getenv("SHOAL_TEST_CHILD_PORT");
  if (db == nullptr || port == nullptr) GTEST_SKIP() << "only run as the kill -9 test's child";
  ServerOptions o;
  o.db_dir = db;
  o.port = std::atoi(port);
  auto server = Server::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "child: %s\n", server.status().ToString().c_str());
    std::_Exit(3);
  }
  (*server)->Wait();
}

pid_t SpawnServer(const std::string& db, int port) {
  pid_t pid = fork();
  if (pid == 0) {
    setenv("SHOAL_TEST_CHILD_DB", db.c_str(), 1);
    setenv("SHOAL_TEST_CHILD_PORT", std::to_string(port).c_str(), 1);
    execl("/proc/self/exe", "server_test", "--gtest_filter=ServerChild.Run", static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

bool WaitHealthy(int port, double seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(std::chrono::milliseconds(200));
    auto r = c.Get("/healthz");
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST(ServerReliabilityTest, KillNineMidStreamLosesNoMembershipChange) {
  TempDir dir;
  int hook_port = FreePort();
  int port = FreePort();
  Receiver receiver(hook_port);
  receiver.Start();
  WriteFile(dir.Sub("db/shoal.toml"), R"(
[[audiences]]
name = "spender"
rule = "monetary_total > 50"
[[audiences]]
name = "loyal"
rule = "frequency >= 3"
[[destinations]]
name = "crm"
url = "http://127.0.0.1:)" + std::to_string(hook_port) + R"(/hook"
marketing = false
backoff_initial_ms = 20
backoff_max_ms = 200
max_attempts = 1000
)");
  // 300 customers x 5 orders of 20: each ends in both audiences; batches of 10 events, shuffled.
  constexpr int kCustomers = 300, kOrders = 5;
  std::vector<std::string> events;
  for (int o = 0; o < kOrders; ++o) {
    for (int c = 0; c < kCustomers; ++c) {
      events.push_back(R"({"event_id":"o)" + std::to_string(c) + "-" + std::to_string(o) +
                       R"(","type":"order","timestamp":)" + NowIso(o - 100) + R"(,"customer_id":"C)" +
                       std::to_string(c) + R"(","total":20})");
    }
  }
  std::vector<std::string> batches;
  for (size_t i = 0; i < events.size(); i += 10) {
    std::string b = "[";
    for (size_t j = i; j < std::min(events.size(), i + 10); ++j) b += (j > i ? "," : "") + events[j];
    batches.push_back(b + "]");
  }
  pid_t child = SpawnServer(dir.Sub("db"), port);
  ASSERT_TRUE(WaitHealthy(port, 20));
  // Stream from two client threads; kill -9 once about a third has been acknowledged.
  std::atomic<size_t> next{0}, acked{0};
  auto stream = [&] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(2));
    for (size_t i = next++; i < batches.size(); i = next++) {
      auto r = c.Post("/v1/events", batches[i], "application/json");
      if (!r || r->status != 200) return;
      ++acked;
    }
  };
  std::thread a(stream), b(stream);
  while (acked.load() < batches.size() / 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  a.join();
  b.join();
  EXPECT_LT(acked.load(), batches.size());  // really killed mid-stream
  // Restart and re-send everything (acknowledged events dedupe).
  child = SpawnServer(dir.Sub("db"), port);
  ASSERT_TRUE(WaitHealthy(port, 20));
  httplib::Client c("127.0.0.1", port);
  for (const auto& batch : batches) {
    auto r = c.Post("/v1/events", batch, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  auto distinct_entries = [](const std::vector<Receiver::Delivery>& d) {
    std::set<std::pair<std::string, std::string>> s;
    for (const auto& x : d) {
      size_t cid = x.body.find("\"customer_id\":\"");
      size_t mem = x.body.find("\"membership\":\"");
      std::string customer = x.body.substr(cid + 15, x.body.find('"', cid + 15) - cid - 15);
      std::string membership = x.body.substr(mem + 14, x.body.find('"', mem + 14) - mem - 14);
      s.emplace(customer, membership);
    }
    return s;
  };
  EXPECT_TRUE(receiver.WaitFor([&](const auto& d) { return distinct_entries(d).size() >= 2 * kCustomers; }, 30));
  auto deliveries = receiver.deliveries();
  auto entries = distinct_entries(deliveries);
  EXPECT_EQ(entries.size(), static_cast<size_t>(2 * kCustomers));
  for (const auto& d : deliveries) {
    EXPECT_NE(d.body.find("\"type\":\"entered\""), std::string::npos) << d.body;  // nothing spurious
  }
  // Every customer's profile counts each order exactly once.
  auto r = c.Get("/v1/profiles/C7");
  EXPECT_NE(r->body.find("\"frequency\":5"), std::string::npos) << r->body;
  kill(child, SIGTERM);
  waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) || WIFSIGNALED(status));
}

// Single events from 8 clients at once are applied as merged batches by whichever request
// thread leads the group: every event acknowledged before a kill -9 is stored after the restart.
TEST(ServerReliabilityTest, KillNineLosesNoAcknowledgedSingleEvent) {
  TempDir dir;
  int port = FreePort();
  WriteFile(dir.Sub("db/shoal.toml"), "[[audiences]]\nname = \"big\"\nrule = \"monetary_total > 50\"\n");
  pid_t child = SpawnServer(dir.Sub("db"), port);
  ASSERT_TRUE(WaitHealthy(port, 20));
  constexpr int kClients = 8;
  std::mutex mu;
  std::vector<std::string> acked;  // bodies of acknowledged single-event posts
  std::atomic<bool> killed{false};
  auto stream = [&](int client) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(2));
    for (int i = 0; !killed.load(); ++i) {
      std::string body = R"({"event_id":"k)" + std::to_string(client) + "-" + std::to_string(i) +
                         R"(","type":"order","timestamp":)" + NowIso(-60) + R"(,"customer_id":"C)" +
                         std::to_string(i % 50) + R"(","total":3})";
      auto r = c.Post("/v1/events", body, "application/json");
      if (!r || r->status != 200) return;
      std::lock_guard lock(mu);
      acked.push_back(std::move(body));
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) threads.emplace_back(stream, t);
  for (;;) {
    {
      std::lock_guard lock(mu);
      if (acked.size() >= 1500) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(child, SIGKILL);
  killed = true;
  int status = 0;
  waitpid(child, &status, 0);
  for (auto& t : threads) t.join();
  child = SpawnServer(dir.Sub("db"), port);
  ASSERT_TRUE(WaitHealthy(port, 20));
  // Re-sent, every acknowledged event is a duplicate: it was stored before the kill.
  httplib::Client c("127.0.0.1", port);
  size_t lost = 0;
  for (const auto& body : acked) {
    auto r = c.Post("/v1/events", body, "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    lost += r->body.find("\"duplicates\":1") == std::string::npos;
  }
  EXPECT_EQ(lost, 0u) << "of " << acked.size() << " acknowledged events";
  kill(child, SIGTERM);
  waitpid(child, &status, 0);
}

TEST(ServerReliabilityTest, TenThousandConcurrentBadRequestsCorruptNothing) {
  TempDir dir;
  std::unique_ptr<Server> server = StartAt(dir, "[[audiences]]\nname = \"big\"\nrule = \"monetary_total > 10\"\n");
  ASSERT_TRUE(server);
  int port = server->port();
  httplib::Client setup("127.0.0.1", port);
  ASSERT_EQ(setup.Post("/v1/events", R"({"event_id":"g1","type":"order","timestamp":1709648000,"customer_id":"C1","total":42})",
                       "application/json")->status, 200);
  std::string before = setup.Get("/v1/profiles/C1")->body;

  const std::vector<std::string> shapes = {
      "", "{", "[", "]", "null", "42", "\"order\"", "[1,2,3]", "{\"type\":1}", "{\"type\":\"order\"}",
      R"({"type":"order","timestamp":"not a time","customer_id":"C1","total":1e999})",
      R"({"type":"order","timestamp":1709648000,"customer_id":{"a":1},"total":5})",
      R"({"type":"order","timestamp":1709648000,"customer_id":"C1","lines":[{"quantity":-3}]})",
      R"({"type":"order","timestamp":1709648000,"customer_id":"C1","total":"NaN"})",
      R"([{"type":"nope","timestamp":1,"customer_id":"C1"},{"timestamp":1}])",
      std::string("{\"type\":\"order\",\"customer_id\":\"\xff\xfe\"}"), std::string(300, '['),
      R"({"identifier":42})"};
  const std::vector<std::string> paths = {"/v1/events", "/v1/forget", "/v1/profiles/%ZZ", "/v1/audiences//members",
                                          "/v1/segments/x/members?cursor=-5&limit=abc", "/v1/../../etc/passwd",
                                          "/v1/audiences/big/export?format=%00"};
  std::atomic<int> done{0}, server_errors{0};
  auto attack = [&](int seed) {
    std::mt19937 rng(seed);
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(10));
    for (int i = 0; i < 1250; ++i) {
      std::string body = shapes[rng() % shapes.size()];
      if (rng() % 4 == 0) {  // random bytes
        body.resize(rng() % 200);
        for (char& ch : body) ch = static_cast<char>(rng());
      }
      const std::string& path = paths[rng() % paths.size()];
      httplib::Result r = (rng() % 3 == 0) ? c.Get(path) : c.Post(path, body, "application/json");
      if (r && r->status >= 500) ++server_errors;
      ++done;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(attack, t + 1);
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), 10000);
  EXPECT_EQ(server_errors.load(), 0);
  auto health = setup.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  std::string after = setup.Get("/v1/profiles/C1")->body;
  // Same identifiers, traits and memberships (as_of moves with the clock: compare the rest).
  auto strip = [](std::string s) {
    size_t a = s.find("\"as_of\":");
    size_t e = s.find(',', a);
    return s.erase(a, e - a);
  };
  auto without_time = [](std::string s) {
    // Time-relative traits change as the clock runs; drop the "traits" numbers that depend on it.
    for (const char* key : {"\"days_since_last_event\":", "\"tenure_days\":", "\"recency_days\":",
                            "\"first_order_days_ago\":"}) {
      size_t a = s.find(key);
      if (a == std::string::npos) continue;
      size_t e = s.find_first_of(",}", a);
      s.erase(a, e - a);
    }
    return s;
  };
  EXPECT_EQ(without_time(strip(after)), without_time(strip(before)));
  EXPECT_NE(after.find("\"frequency\":1"), std::string::npos);
}

}  // namespace
}  // namespace shoal
