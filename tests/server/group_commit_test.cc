// Group commit under concurrency: many clients posting single events (merged into one applied
// batch per group) and batches at once, with repeats racing each other; every event is stored
// exactly once, answered with its own fate, durable, and its membership changes emitted once.
#include <simdjson.h>

#include <map>

#include "test_support.h"

namespace shoal {
namespace {

using testing::FreePort;
using testing::NowIso;
using testing::Receiver;
using testing::StartAt;
using testing::TempDir;

std::string OrderJson(const std::string& id, int customer, int total) {
  return R"({"event_id":")" + id + R"(","type":"order","timestamp":)" + NowIso(-3600) +
         R"(,"customer_id":"K)" + std::to_string(customer) + R"(","total":)" + std::to_string(total) + "}";
}

int64_t Field(simdjson::dom::element doc, const char* name) {
  int64_t v = -1;
  EXPECT_FALSE(doc[name].get(v)) << name;
  return v;
}

TEST(ServerGroupCommitTest, ConcurrentSingleEventsAndBatchesAreStoredExactlyOnce) {
  TempDir dir;
  const int hook_port = FreePort();
  Receiver receiver(hook_port);
  receiver.Start();
  const std::string config = R"(
[[audiences]]
name = "big"
rule = "monetary_total > 150"
[[destinations]]
name = "crm"
url = "http://127.0.0.1:)" + std::to_string(hook_port) + R"(/hook"
marketing = false
)";
  std::unique_ptr<Server> server = StartAt(dir, config);
  ASSERT_TRUE(server);
  const int port = server->port();

  // 40 customers x 20 orders of 10 (each ends at 200, entering "big" on its 16th order).
  // Orders are posted one per request by 12 threads, except every fifth customer's, which go
  // as batches of 5; every order is posted twice, by two different threads, so repeats race.
  constexpr int kCustomers = 40, kOrders = 20, kThreads = 12;
  struct Post {
    std::string body;
    std::vector<std::string> ids;
  };
  std::vector<Post> posts;
  for (int c = 0; c < kCustomers; ++c) {
    if (c % 5 == 0) {
      for (int o = 0; o < kOrders; o += 5) {
        Post p;
        p.body = "[";
        for (int k = o; k < o + 5; ++k) {
          p.ids.push_back("g" + std::to_string(c) + "-" + std::to_string(k));
          p.body += (k > o ? "," : "") + OrderJson(p.ids.back(), c, 10);
        }
        p.body += "]";
        posts.push_back(p);
      }
    } else {
      for (int o = 0; o < kOrders; ++o) {
        Post p;
        p.ids.push_back("g" + std::to_string(c) + "-" + std::to_string(o));
        p.body = OrderJson(p.ids.back(), c, 10);
        posts.push_back(p);
      }
    }
  }
  std::mt19937 rng(7);
  std::vector<size_t> order(2 * posts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i % posts.size();
  std::shuffle(order.begin(), order.end(), rng);

  std::mutex mu;
  std::map<std::string, int> stored_by_id;  // answers saying the id was stored
  std::atomic<int> failures{0};
  std::atomic<size_t> next{0};
  auto client = [&] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(std::chrono::seconds(20));
    simdjson::dom::parser parser;
    for (size_t i = next++; i < order.size(); i = next++) {
      const Post& p = posts[order[i]];
      auto r = c.Post("/v1/events", p.body, "application/json");
      if (!r || r->status != 200) {
        ++failures;
        continue;
      }
      simdjson::dom::element doc;
      if (parser.parse(r->body).get(doc)) {
        ++failures;
        continue;
      }
      const int64_t stored = Field(doc, "stored"), duplicates = Field(doc, "duplicates");
      // A batch's events are stored together or were all stored before (by its twin post).
      if (stored + duplicates != static_cast<int64_t>(p.ids.size()) ||
          (stored != 0 && stored != static_cast<int64_t>(p.ids.size()))) {
        ++failures;
      }
      if (stored > 0) {
        std::lock_guard lock(mu);
        for (const auto& id : p.ids) ++stored_by_id[id];
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(client);
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(stored_by_id.size(), static_cast<size_t>(kCustomers * kOrders));  // every id stored
  for (const auto& [id, times] : stored_by_id) EXPECT_EQ(times, 1) << id;      // and once only

  // Every profile counts each order once; each customer entered "big" exactly once.
  httplib::Client c("127.0.0.1", port);
  auto check_profiles = [&](httplib::Client& cl) {
    simdjson::dom::parser parser;
    for (int k = 0; k < kCustomers; ++k) {
      auto r = cl.Get("/v1/profiles/K" + std::to_string(k));
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      simdjson::dom::element doc;
      ASSERT_FALSE(parser.parse(r->body).get(doc));
      double frequency = 0, monetary = 0;
      ASSERT_FALSE(doc["traits"]["frequency"].get(frequency)) << r->body;
      ASSERT_FALSE(doc["traits"]["monetary_total"].get(monetary)) << r->body;
      EXPECT_EQ(frequency, kOrders) << "K" << k;
      EXPECT_DOUBLE_EQ(monetary, 10.0 * kOrders) << "K" << k;
      EXPECT_NE(r->body.find("\"audience:big\""), std::string::npos) << r->body;
    }
  };
  check_profiles(c);
  EXPECT_TRUE(receiver.WaitFor([&](const auto& d) { return d.size() >= static_cast<size_t>(kCustomers); }, 20));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more may follow
  std::map<std::string, int> entered;
  for (const auto& d : receiver.deliveries()) {
    EXPECT_NE(d.body.find("\"type\":\"entered\""), std::string::npos) << d.body;
    size_t at = d.body.find("\"customer_id\":\"");
    ASSERT_NE(at, std::string::npos);
    ++entered[d.body.substr(at + 15, d.body.find('"', at + 15) - at - 15)];
  }
  EXPECT_EQ(entered.size(), static_cast<size_t>(kCustomers));
  for (const auto& [customer, times] : entered) EXPECT_EQ(times, 1) << customer;

  // Durable: a restart on the same workspace shows the same profiles.
  server->Stop();
  server.reset();
  server = StartAt(dir, config);
  ASSERT_TRUE(server);
  httplib::Client again("127.0.0.1", server->port());
  check_profiles(again);
}

}  // namespace
}  // namespace shoal
