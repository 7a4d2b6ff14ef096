// The [server] thread keys, and group commit led by the I/O threads (commit_thread = false):
// concurrent single events with racing repeats are stored exactly once, and a blocking job
// (forget, on a worker) queued among them is answered.
#include <toml++/toml.h>

#include "server/server_config.h"
#include "test_support.h"

namespace shoal {
namespace {

using testing::NowIso;
using testing::RawClient;
using testing::StartAt;
using testing::TempDir;

TEST(ServerThreadsConfigTest, OldHttpThreadsKeyIsRefusedNamingTheNewOnes) {
  auto old = ParseServerConfig(toml::parse("[server]\nhttp_threads = 64\n"));
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("io_threads"), std::string::npos) << old.status().message();
  EXPECT_NE(old.status().message().find("worker_threads"), std::string::npos);
  auto parsed = ParseServerConfig(toml::parse("[server]\nio_threads = 3\nworker_threads = 5\ncommit_thread = false\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->io_threads, 3);
  EXPECT_EQ(parsed->worker_threads, 5);
  EXPECT_FALSE(parsed->commit_thread);
  auto defaults = ParseServerConfig(toml::parse(""));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->io_threads, 0);  // one less than the cores
  EXPECT_EQ(EffectiveIoThreads(*defaults, 1), 1);
  EXPECT_EQ(EffectiveIoThreads(*defaults, 2), 1);
  EXPECT_EQ(EffectiveIoThreads(*defaults, 4), 3);
  EXPECT_EQ(EffectiveIoThreads(*defaults, 64), 8);
  EXPECT_EQ(EffectiveIoThreads(*parsed, 2), 3);
  EXPECT_TRUE(defaults->commit_thread);
  EXPECT_TRUE(ParseServerConfig(toml::parse("[server]\nio_threads = 0\n")).ok());
  EXPECT_FALSE(ParseServerConfig(toml::parse("[server]\nio_threads = -1\n")).ok());
  EXPECT_FALSE(ParseServerConfig(toml::parse("[server]\ncommit_thread = 1\n")).ok());
}

TEST(ServerLimitsConfigTest, TimeoutsConnectionsAndOutputLimitAreKeys) {
  auto defaults = ParseServerConfig(toml::parse(""));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->idle_timeout_seconds, 30);
  EXPECT_EQ(defaults->read_timeout_seconds, 30);
  EXPECT_EQ(defaults->max_connections, 10000u);
  EXPECT_EQ(defaults->max_pending_output_bytes, size_t{4} << 20);
  auto parsed = ParseServerConfig(toml::parse(
      "[server]\nidle_timeout_seconds = 120\nread_timeout_seconds = 2.5\nmax_connections = 50000\n"
      "max_pending_output_bytes = 1048576\n"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->idle_timeout_seconds, 120);
  EXPECT_EQ(parsed->read_timeout_seconds, 2.5);
  EXPECT_EQ(parsed->max_connections, 50000u);
  EXPECT_EQ(parsed->max_pending_output_bytes, 1048576u);
  auto zero = ParseServerConfig(toml::parse("[server]\nread_timeout_seconds = 0\n"));
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("read_timeout_seconds must be a number >= 0.01"), std::string::npos)
      << zero.status().message();
  EXPECT_FALSE(ParseServerConfig(toml::parse("[server]\nidle_timeout_seconds = \"long\"\n")).ok());
  EXPECT_FALSE(ParseServerConfig(toml::parse("[server]\nmax_pending_output_bytes = 10\n")).ok());
}

// read_timeout_seconds reaches the HTTP layer: a request left half-sent is answered 408 after
// it, not after the default 30 s.
TEST(ServerLimitsConfigTest, ReadTimeoutFromTheConfigAnswers408) {
  TempDir dir;
  std::unique_ptr<Server> server = StartAt(dir, "[server]\nread_timeout_seconds = 0.3\n");
  ASSERT_TRUE(server);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));  // no blank line
  const auto start = std::chrono::steady_clock::now();
  auto r = client.Read(std::chrono::milliseconds(3000));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_LT(waited, 2.5);
}

std::string Order(const std::string& id, int customer) {
  return R"({"event_id":")" + id + R"(","type":"order","timestamp":)" + NowIso(-60) +
         R"(,"customer_id":"Q)" + std::to_string(customer) + R"(","total":5})";
}

TEST(ServerCommitPolicyTest, IoThreadLeadersStoreEveryEventOnceAndAnswerBlockingJobs) {
  TempDir dir;
  std::unique_ptr<Server> server = StartAt(dir, "[server]\ncommit_thread = false\nio_threads = 2\n");
  ASSERT_TRUE(server);
  const int port = server->port();
  httplib::Client setup("127.0.0.1", port);
  ASSERT_EQ(setup.Post("/v1/events", Order("gone-1", 999), "application/json")->status, 200);

  // 8 threads post 150 orders each, one per request; thread t repeats thread t^1's orders, so
  // every order is posted twice, concurrently.
  constexpr int kThreads = 8, kOrders = 150;
  std::atomic<int> stored{0}, duplicates{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      const int owner = t / 2;
      for (int i = 0; i < kOrders; ++i) {
        auto r = c.Post("/v1/events", Order("o-" + std::to_string(owner) + "-" + std::to_string(i), owner * 1000 + i % 7),
                        "application/json");
        if (!r || r->status != 200) {
          ++bad;
          continue;
        }
        if (r->body.find("\"stored\":1") != std::string::npos) ++stored;
        if (r->body.find("\"duplicates\":1") != std::string::npos) ++duplicates;
      }
    });
  }
  // A forget on the worker pool, a blocking job among the asynchronous ones.
  httplib::Client forgetter("127.0.0.1", port);
  auto forgotten = forgetter.Post("/v1/forget", R"({"identifier":"Q999"})", "application/json");
  for (auto& t : threads) t.join();
  ASSERT_TRUE(forgotten);
  EXPECT_EQ(forgotten->status, 200) << forgotten->body;
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(stored.load(), kThreads / 2 * kOrders);
  EXPECT_EQ(duplicates.load(), kThreads / 2 * kOrders);
  auto health = setup.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_NE(health->body.find("\"events\":" + std::to_string(kThreads / 2 * kOrders)), std::string::npos)
      << health->body;
  // Every request answered: none left in flight (a completing thread counts its request done
  // just after its send, so allow it a moment).
  bool none_in_flight = false;
  for (int i = 0; i < 100 && !none_in_flight; ++i) {
    auto metrics = setup.Get("/metrics");
    ASSERT_TRUE(metrics);
    none_in_flight = metrics->body.find("shoal_http_requests_in_flight 0") != std::string::npos;
    if (!none_in_flight) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(none_in_flight);
  server->Stop();
}

}  // namespace
}  // namespace shoal
