// HttpServer alone, over raw sockets: framing (split requests, pipelining, chunked bodies,
// 100-continue), limits, malformed input, routing errors, connection rules, timeouts, async
// responders completed from other threads, disconnects, concurrency and Stop().
#include "server/http_server.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using shoal::testing::RawClient;

// A server with one route of each kind and a few probes.
class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions options = {}) {
    options.port = 0;
    options.max_header_bytes = options.max_header_bytes == (64 << 10) ? 4096 : options.max_header_bytes;
    options.max_body_bytes = options.max_body_bytes == (8 << 20) ? 100000 : options.max_body_bytes;
    server_ = std::make_unique<HttpServer>(options);
    server_->Inline("GET", "/echo/{id}/x", [](const HttpRequest& req, HttpResponse* res) {
      res->Set(200, "id=" + req.path_params[0] + ";q=" + req.QueryValue("q") +
                        ";has_r=" + (req.HasQuery("r") ? "1" : "0") +
                        ";h=" + std::string(req.Header("x-test")), "text/plain");
    });
    server_->Inline("POST", "/body", [](const HttpRequest& req, HttpResponse* res) {
      res->Set(200, req.body, "application/octet-stream");
    });
    server_->Inline("PUT", "/body", [](const HttpRequest& req, HttpResponse* res) {
      res->Set(201, "put", "text/plain");
    });
    server_->Inline("GET", "/big", [](const HttpRequest&, HttpResponse* res) {
      res->Set(200, std::string(32 << 20, 'b'), "text/plain");
    });
    server_->Worker("GET", "/slow", [](const HttpRequest&, HttpResponse* res) {
      std::this_thread::sleep_for(30ms);
      res->Set(200, "slow", "text/plain");
    });
    // Microseconds since the request was received (HttpRequest::received), -1 when unset.
    server_->Inline("GET", "/age", [](const HttpRequest& req, HttpResponse* res) {
      const long long us = req.received == std::chrono::steady_clock::time_point{}
          ? -1
          : std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - req.received).count();
      res->Set(200, std::to_string(us), "text/plain");
    });
    server_->Inline("GET", "/throw", [](const HttpRequest&, HttpResponse*) {
      throw std::runtime_error("boom");
    });
    // Completed by another thread after ?ms= milliseconds.
    server_->Async("POST", "/async", [this](const HttpRequest& req, HttpResponder responder) {
      int ms = std::atoi(req.QueryValue("ms").c_str());
      std::string body = "late:" + req.body;
      std::lock_guard lock(mu_);
      helpers_.emplace_back([ms, body, r = std::move(responder)]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        HttpResponse res;
        res.Set(200, body, "text/plain");
        r.Respond(std::move(res));
      });
    });
    // Answered at once, on the I/O thread.
    server_->Async("GET", "/now", [](const HttpRequest&, HttpResponder responder) {
      HttpResponse res;
      res.Set(202, "now", "text/plain");
      responder.Respond(std::move(res));
    });
    // Parked until the test completes it.
    server_->Async("GET", "/park", [this](const HttpRequest&, HttpResponder responder) {
      std::lock_guard lock(mu_);
      parked_.push_back(std::move(responder));
      parked_cv_.notify_all();
    });
    // Dropped without an answer: the responder's destructor answers 500.
    server_->Async("GET", "/drop", [](const HttpRequest&, HttpResponder) {});
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void TearDown() override {
    {
      std::lock_guard lock(mu_);
      for (auto& r : parked_) r.Respond(HttpResponse());
      parked_.clear();
    }
    if (server_) server_->Stop();
    for (auto& t : helpers_) t.join();
  }
  std::vector<HttpResponder> WaitParked(size_t n) {
    std::unique_lock lock(mu_);
    parked_cv_.wait_for(lock, 5s, [&] { return parked_.size() >= n; });
    return std::move(parked_);
  }

  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable parked_cv_;
  std::vector<std::thread> helpers_;
  std::vector<HttpResponder> parked_;
};

TEST_F(HttpServerTest, EveryRequestSplitAtEveryByteIsAnsweredTheSame) {
  StartServer();
  struct Case {
    std::string request;
    int status;
    std::string body;
  };
  const std::vector<Case> cases = {
      {"GET /echo/alice%40example.com/x?q=a+b%2Bc&r HTTP/1.1\r\nHost: h\r\nX-Test: v 1\r\n\r\n", 200,
       "id=alice@example.com;q=a b+c;has_r=1;h=v 1"},
      {"POST /body HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", 200, "hello world"},
      {"POST /body HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nT: x\r\n\r\n",
       200, "Wikipedia"},
      {"POST /async?ms=0 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", 200, "late:ab"},
  };
  for (const Case& c : cases) {
    for (size_t split = 1; split < c.request.size(); ++split) {
      RawClient client(port_);
      ASSERT_TRUE(client.connected());
      ASSERT_TRUE(client.Send(c.request.substr(0, split)));
      std::this_thread::sleep_for(200us);  // two segments, two reads on the server
      ASSERT_TRUE(client.Send(c.request.substr(split)));
      auto r = client.Read();
      ASSERT_TRUE(r) << "split at " << split << " of " << c.request;
      EXPECT_EQ(r->status, c.status) << split;
      EXPECT_EQ(r->body, c.body) << "split at " << split;
    }
  }
}

TEST_F(HttpServerTest, PipelinedRequestsInOneWriteAreAnsweredInOrder) {
  StartServer();
  RawClient client(port_);
  // The async one answers last in time but first in order; the worker one in between.
  ASSERT_TRUE(client.Send(
      "POST /async?ms=50 HTTP/1.1\r\nContent-Length: 1\r\n\r\n1"
      "GET /slow HTTP/1.1\r\n\r\n"
      "POST /body HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
      "GET /now HTTP/1.1\r\n\r\n"
      "GET /echo/e/x HTTP/1.1\r\n\r\n"));
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) {
    auto r = client.Read();
    ASSERT_TRUE(r) << i;
    bodies.push_back(r->body);
  }
  EXPECT_EQ(bodies, (std::vector<std::string>{"late:1", "slow", "xyz", "now", "id=e;q=;has_r=0;h="}));
}

TEST_F(HttpServerTest, ARequestIsTimedFromTheArrivalOfItsFirstBytes) {
  StartServer();
  RawClient client(port_);
  auto age_us = [&]() -> long long {
    auto r = client.Read();
    EXPECT_TRUE(r);
    if (!r) return -2;
    EXPECT_EQ(r->status, 200);
    return std::atoll(r->body.c_str());
  };
  // Whole: received just now.
  ASSERT_TRUE(client.Send("GET /age HTTP/1.1\r\n\r\n"));
  long long whole = age_us();
  EXPECT_GE(whole, 0);
  EXPECT_LT(whole, 1000000);
  // In two parts 60 ms apart: timed from the first.
  ASSERT_TRUE(client.Send("GET /age HTTP/1.1\r\n"));
  std::this_thread::sleep_for(60ms);
  ASSERT_TRUE(client.Send("\r\n"));
  EXPECT_GE(age_us(), 55000);
  // Pipelined behind a 30 ms request: its wait on the connection counts.
  ASSERT_TRUE(client.Send("GET /slow HTTP/1.1\r\n\r\nGET /age HTTP/1.1\r\n\r\n"));
  auto slow = client.Read();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->body, "slow");
  EXPECT_GE(age_us(), 25000);
  // After an idle gap on the same connection: a new request is timed afresh.
  std::this_thread::sleep_for(60ms);
  ASSERT_TRUE(client.Send("GET /age HTTP/1.1\r\n\r\n"));
  long long fresh = age_us();
  EXPECT_GE(fresh, 0);
  EXPECT_LT(fresh, 50000);
}

TEST_F(HttpServerTest, ChunkedBodiesDecodedAndBadChunksRefused) {
  StartServer();
  {
    RawClient client(port_);
    std::string body(30000, 'z');
    std::string request = "POST /body HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n";
    for (size_t at = 0; at < body.size(); at += 7000) {
      std::string part = body.substr(at, 7000);
      char size[16];
      std::snprintf(size, sizeof size, "%zX\r\n", part.size());
      request += size + part + "\r\n";
    }
    request += "0\r\n\r\n";
    ASSERT_TRUE(client.Send(request));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, body);
  }
  for (const char* bad : {"zz\r\nabc\r\n0\r\n\r\n", "3\r\nabcX\r\n0\r\n\r\n"}) {
    RawClient client(port_);
    ASSERT_TRUE(client.Send(std::string("POST /body HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") + bad));
    auto r = client.Read();
    ASSERT_TRUE(r) << bad;
    EXPECT_EQ(r->status, 400) << bad;
    EXPECT_EQ(r->Header("Connection"), "close");
    EXPECT_TRUE(client.ClosedByServer());
  }
  RawClient client(port_);
  ASSERT_TRUE(client.Send("POST /body HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"));
  auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 501);
}

TEST_F(HttpServerTest, ExpectContinueGetsContinueOr413AtOnce) {
  StartServer();
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("POST /body HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
    auto interim = client.Read();
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->status, 100);
    ASSERT_TRUE(client.Send("data"));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "data");
  }
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("POST /body HTTP/1.1\r\nContent-Length: 100001\r\nExpect: 100-continue\r\n\r\n"));
    auto r = client.Read();  // without sending the body
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    EXPECT_NE(r->body.find("\"error\""), std::string::npos);
    EXPECT_TRUE(client.ClosedByServer());
  }
}

TEST_F(HttpServerTest, HeaderAndBodyLimits) {
  StartServer();
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("GET /echo/a/x HTTP/1.1\r\nX-Big: " + std::string(5000, 'b') + "\r\n\r\n"));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 431);
  }
  {
    // A body over the limit, sent whole: the 413 is read, not lost to a reset.
    RawClient client(port_);
    ASSERT_TRUE(client.Send("POST /body HTTP/1.1\r\nContent-Length: 200000\r\n\r\n"));
    client.Send(std::string(200000, 'x'));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  {
    RawClient client(port_);
    std::string request = "POST /body HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 3; ++i) request += "C350\r\n" + std::string(50000, 'c') + "\r\n";
    client.Send(request);
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
  }
  // Exactly at the limit passes.
  RawClient client(port_);
  ASSERT_TRUE(client.Send("POST /body HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'k')));
  auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), 100000u);
}

TEST_F(HttpServerTest, MalformedRequestsGet400AndTheServerGoesOn) {
  StartServer();
  const std::vector<std::pair<std::string, int>> cases = {
      {"GARBAGE\r\n\r\n", 400},
      {"GET /echo/a/x\r\n\r\n", 400},
      {"GET  /echo/a/x HTTP/1.1\r\n\r\n", 400},
      {"GET echo HTTP/1.1\r\n\r\n", 400},
      {"GET /echo/a/x HTTP/1.1\r\nNo colon here\r\n\r\n", 400},
      {"GET /echo/a/x HTTP/1.1\r\nBad Name: v\r\n\r\n", 400},
      {"GET /echo/a/x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
      {"POST /body HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400},
      {"POST /body HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST /body HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET /echo/a/x HTTP/2.0\r\n\r\n", 505},
      {"GET /echo/a/x HTTP/1.1\r\nExpect: magic\r\n\r\n", 417},
      {"GET /throw HTTP/1.1\r\n\r\n", 500},
      {"GET /drop HTTP/1.1\r\n\r\n", 500},
  };
  for (const auto& [request, status] : cases) {
    RawClient client(port_);
    ASSERT_TRUE(client.Send(request));
    auto r = client.Read();
    ASSERT_TRUE(r) << request;
    EXPECT_EQ(r->status, status) << request;
    EXPECT_EQ(r->Header("Content-Type"), "application/json") << request;
  }
  RawClient client(port_);
  ASSERT_TRUE(client.Send("GET /echo/ok/x HTTP/1.1\r\n\r\n"));
  auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  HttpServerOptions options;
  options.error_body = [](int status, const std::string& message) {
    return "{\"status\":" + std::to_string(status) + ",\"why\":\"" + message + "\"}";
  };
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send("GET /nowhere HTTP/1.1\r\n\r\nGET /echo//x HTTP/1.1\r\n\r\nDELETE /body HTTP/1.1\r\n\r\n"
                          "HEAD /echo/h/x HTTP/1.1\r\n\r\n"));
  auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "{\"status\":404,\"why\":\"no such endpoint\"}");
  r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);  // an empty segment is no {id}
  r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("Allow"), "POST, PUT");
  // HEAD: the GET route's headers, no body (the next response would be garbled otherwise).
  ASSERT_TRUE(client.Send("GET /echo/after/x HTTP/1.1\r\n\r\n"));
  r = client.Read(5000ms, /*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Length"), "18");
  r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "id=after;q=;has_r=0;h=");
}

TEST_F(HttpServerTest, KeepAliveCloseAndHttp10) {
  StartServer();
  {
    RawClient client(port_);
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(client.Send("GET /echo/k/x HTTP/1.1\r\n\r\n"));
      auto r = client.Read();
      ASSERT_TRUE(r);
      EXPECT_EQ(r->Header("Connection"), "");
    }
    ASSERT_TRUE(client.Send("GET /echo/k/x HTTP/1.1\r\nConnection: close\r\n\r\n"));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->Header("Connection"), "close");
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("GET /echo/old/x HTTP/1.0\r\n\r\n"));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("Connection"), "close");
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    RawClient client(port_);
    ASSERT_TRUE(client.Send("GET /echo/old/x HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    auto r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->Header("Connection"), "keep-alive");
    ASSERT_TRUE(client.Send("POST /async?ms=5 HTTP/1.0\r\nContent-Length: 1\r\n\r\nq"));
    r = client.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "late:q");
    EXPECT_EQ(r->Header("Connection"), "close");
    EXPECT_TRUE(client.ClosedByServer());
  }
}

TEST_F(HttpServerTest, ReadTimeoutAnswers408AndIdleConnectionsClose) {
  HttpServerOptions options;
  options.read_timeout_seconds = 0.2;
  options.idle_timeout_seconds = 0.4;
  StartServer(options);
  RawClient partial(port_);
  RawClient idle(port_);
  ASSERT_TRUE(partial.Send("POST /body HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"));
  auto start = std::chrono::steady_clock::now();
  auto r = partial.Read(3000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_TRUE(partial.ClosedByServer(3000ms));
  EXPECT_TRUE(idle.ClosedByServer(3000ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 350ms);
}

TEST_F(HttpServerTest, AsyncResponderCompletedLaterFromAnotherThread) {
  StartServer();
  RawClient client(port_);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(client.Send("POST /async?ms=120 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
  auto r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 110ms);
  EXPECT_EQ(r->body, "late:hello");
  // The connection is alive and in order afterwards.
  ASSERT_TRUE(client.Send("GET /echo/next/x HTTP/1.1\r\n\r\n"));
  r = client.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // (The completing thread counts its request done just after its send.)
  for (int i = 0; i < 1000 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(server_->in_flight(), 0u);
}

// An inline-unless-busy route answers on the I/O thread while it can; when it declines, a
// worker runs it (and may wait) while the one I/O loop goes on answering other connections.
TEST(HttpServerInlineUnlessBusyTest, DeclinedRequestsRunOnAWorkerWithoutStallingTheLoop) {
  HttpServerOptions options;
  options.io_threads = 1;
  options.worker_threads = 1;
  HttpServer server(options);
  std::atomic<bool> busy{false}, release{false};
  std::atomic<int> waited{0};
  server.InlineUnlessBusy("GET", "/lookup", [&](const HttpRequest&, HttpResponse* res, bool may_wait) {
    if (!may_wait) {
      if (busy.load()) return false;
      res->Set(200, "inline", "text/plain");
      return true;
    }
    waited.fetch_add(1);
    while (!release.load()) std::this_thread::sleep_for(1ms);
    res->Set(200, "worker", "text/plain");
    return false;  // ignored on a worker: the answer stands
  });
  server.Inline("GET", "/ping", [](const HttpRequest&, HttpResponse* res) {
    res->Set(200, "pong", "text/plain");
  });
  ASSERT_TRUE(server.Start().ok());
  RawClient first(server.port()), second(server.port());
  ASSERT_TRUE(first.Send("GET /lookup HTTP/1.1\r\n\r\n"));
  auto r = first.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "inline");
  EXPECT_EQ(waited.load(), 0);

  busy = true;
  ASSERT_TRUE(first.Send("GET /lookup HTTP/1.1\r\n\r\n"));
  for (int i = 0; i < 5000 && waited.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(waited.load(), 1);
  // The worker is waiting; the loop still serves another connection.
  ASSERT_TRUE(second.Send("GET /ping HTTP/1.1\r\n\r\n"));
  r = second.Read(2000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "pong");
  EXPECT_FALSE(first.Read(50ms));  // not answered while the worker waits
  release = true;
  r = first.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "worker");
  // The connection goes on in order afterwards (HEAD too), inline again once not busy.
  busy = false;
  ASSERT_TRUE(first.Send("HEAD /lookup HTTP/1.1\r\n\r\nGET /lookup HTTP/1.1\r\n\r\n"));
  r = first.Read(5000ms, /*head_request=*/true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Length"), "6");
  r = first.Read();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "inline");
  EXPECT_EQ(waited.load(), 1);
  server.Stop();
}

TEST_F(HttpServerTest, PeerGoneBeforeItsAsyncResponseIsHarmless) {
  StartServer();
  {
    RawClient a(port_), b(port_);
    ASSERT_TRUE(a.Send("GET /park HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(b.Send("GET /park HTTP/1.1\r\n\r\n"));
    auto parked = WaitParked(2);
    ASSERT_EQ(parked.size(), 2u);
    EXPECT_EQ(server_->in_flight(), 2u);
    a.Close();
    b.Close();
    std::this_thread::sleep_for(50ms);  // the loop sees the closes and frees the sockets
    RawClient c(port_);                 // may reuse a's descriptor number
    ASSERT_TRUE(c.Send("GET /echo/c/x HTTP/1.1\r\n\r\n"));
    // Completing the gone connections writes nothing anywhere (not to c).
    std::thread other([&] { parked[0].Respond(HttpResponse()); });
    other.join();
    parked[1].Respond(HttpResponse());
    auto r = c.Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "id=c;q=;has_r=0;h=");
    EXPECT_FALSE(c.Read(200ms));  // nothing else arrives on c
  }
  for (int i = 0; i < 1000 && server_->in_flight() > 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(server_->in_flight(), 0u);
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->connections(), 0u);
}

TEST_F(HttpServerTest, ManyConcurrentKeepAliveClients) {
  HttpServerOptions options;
  options.io_threads = 2;
  StartServer(options);
  constexpr int kClients = 48;
  constexpr int kRequests = 60;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      RawClient client(port_);
      for (int i = 0; i < kRequests; ++i) {
        std::string tag = std::to_string(t) + "-" + std::to_string(i);
        std::string request;
        std::string want;
        switch (i % 3) {
          case 0:
            request = "GET /echo/" + tag + "/x HTTP/1.1\r\n\r\n";
            want = "id=" + tag + ";q=;has_r=0;h=";
            break;
          case 1:
            request = "POST /async?ms=0 HTTP/1.1\r\nContent-Length: " + std::to_string(tag.size()) + "\r\n\r\n" + tag;
            want = "late:" + tag;
            break;
          default:
            request = "POST /body HTTP/1.1\r\nContent-Length: " + std::to_string(tag.size()) + "\r\n\r\n" + tag;
            want = tag;
        }
        if (!client.Send(request)) return;
        auto r = client.Read();
        if (r && r->body == want) ++good;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.load(), kClients * kRequests);
}

TEST_F(HttpServerTest, OutOfDescriptorsPausesAcceptingWithoutSpinning) {
#ifdef __SANITIZE_ADDRESS__
  // The sanitizer build (ASan with UBSan) checks every vptr by probing memory through a pipe:
  // with no descriptor left that probe fails and reports a false "invalid vptr".
  GTEST_SKIP() << "needs the process's last descriptors, which the sanitizers' checks use";
#endif
  StartServer();
  size_t open_fds = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++open_fds;
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  rlimit low = old;
  low.rlim_cur = open_fds - 1 + 4;  // (the count saw its own iterator) 3 clients, 1 server side
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(std::make_unique<RawClient>(port_));
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  std::this_thread::sleep_for(300ms);  // the third connection waits in the backlog
  getrusage(RUSAGE_SELF, &after);
  auto cpu = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  EXPECT_LT(cpu(after) - cpu(before), 100000) << "microseconds of CPU while accept fails";
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  for (auto& client : clients) {
    ASSERT_TRUE(client->connected());
    ASSERT_TRUE(client->Send("GET /echo/fd/x HTTP/1.1\r\n\r\n"));
    auto r = client->Read();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
}

TEST_F(HttpServerTest, AClientThatStopsReadingIsClosedAfterTheIdleTimeout) {
  HttpServerOptions options;
  options.idle_timeout_seconds = 0.3;
  StartServer(options);
  RawClient client(port_);
  ASSERT_TRUE(client.Send("GET /big HTTP/1.1\r\n\r\n"));  // 32 MiB, never read
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(server_->connections(), 1u);
  for (int i = 0; i < 300 && server_->connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server_->connections(), 0u);
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// A client pipelining requests without reading the answers: the server stops parsing its
// requests while over max_pending_output_bytes of answers wait, instead of queueing them all,
// and answers every one, in order, once the client reads.
TEST_F(HttpServerTest, AClientThatDoesNotReadItsAnswersHoldsBackOnlyItsOwnRequests) {
  StartServer();
  RawClient client(port_);
  RawClient other(port_);
  const size_t before = ResidentBytes();
  std::string pipelined;
  for (int i = 0; i < 12; ++i) pipelined += "GET /big HTTP/1.1\r\n\r\n";  // 32 MiB answers
  pipelined += "GET /echo/last/x HTTP/1.1\r\n\r\n";
  ASSERT_TRUE(client.Send(pipelined));
  std::this_thread::sleep_for(300ms);
  // One answer waits (32 MiB); queued all at once, the twelve would hold 384 MiB (over 200 MiB
  // were resident after these 300 ms without the limit).
  EXPECT_LT(ResidentBytes(), before + (96u << 20)) << "grew " << (ResidentBytes() - before) / 1048576 << " MiB";
  // Another connection is served meanwhile.
  ASSERT_TRUE(other.Send("GET /echo/other/x HTTP/1.1\r\n\r\n"));
  auto answer = other.Read();
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->body, "id=other;q=;has_r=0;h=");
  for (int i = 0; i < 12; ++i) {
    auto r = client.Read(20000ms);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body.size(), size_t{32} << 20) << i;
  }
  auto last = client.Read();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->body, "id=last;q=;has_r=0;h=");
}

TEST_F(HttpServerTest, StopLetsRequestsInFlightFinish) {
  StartServer();
  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<RawClient>(port_));
    ASSERT_TRUE(clients.back()->Send("POST /async?ms=200 HTTP/1.1\r\nContent-Length: 1\r\n\r\n" + std::to_string(i)));
  }
  RawClient worker(port_);
  ASSERT_TRUE(worker.Send("GET /slow HTTP/1.1\r\n\r\n"));
  while (server_->in_flight() < 5) std::this_thread::sleep_for(1ms);
  auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);  // waited for the responders
  for (int i = 0; i < 4; ++i) {
    auto r = clients[i]->Read(1000ms);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "late:" + std::to_string(i));
    EXPECT_EQ(r->Header("Connection"), "close");
    EXPECT_TRUE(clients[i]->ClosedByServer(1000ms));
  }
  auto r = worker.Read(1000ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "slow");
  RawClient late(port_);
  EXPECT_FALSE(late.connected());  // not listening any more
}

}  // namespace
}  // namespace shoal
