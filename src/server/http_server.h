// An HTTP/1.1 server on epoll: a few I/O threads, each with its own epoll set, serve every
// connection without a thread per connection. A general component: it knows routes, requests
// and responses, nothing of shoal's engine (docs/server.md, "Threads").
//
// Each I/O loop reads everything that is ready, parses, dispatches every complete request of
// the round, writes each connection's responses with one send, runs the after-round hook, and
// only then waits again. Handlers come in three kinds:
//   inline  -- run on the I/O thread (short: lookups, health, metrics);
//   worker  -- run on a small worker pool (anything that can take long);
//   async   -- get a one-shot HttpResponder that may be completed later from any thread; the
//              connection stays parked (its next pipelined request unparsed) until then;
//   inline unless busy -- run on the I/O thread when they can answer without waiting (a lock
//              free at once), else on the worker pool, so a loop never waits for them.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace shoal {

struct HttpServerOptions {
  std::string bind = "127.0.0.1";      // address to listen on: IPv4, IPv6 or "localhost"
  int port = 0;                        // 0 = any free port (see HttpServer::port())
  int io_threads = 2;                  // epoll loops; connections are spread over them in turn
  int worker_threads = 2;              // threads running the worker-kind handlers
  size_t max_header_bytes = 64 << 10;  // request line + headers; larger -> 431 and close
  size_t max_body_bytes = 8 << 20;     // larger bodies -> 413 and close
  double idle_timeout_seconds = 30;    // a keep-alive connection idle this long is closed, and
                                       // one whose client reads none of its response this long
  double read_timeout_seconds = 30;    // a request not fully received this long -> 408, close
  size_t max_connections = 10000;      // further connections are closed at once
  // A connection whose unsent responses exceed this (a client pipelining requests without
  // reading the answers) has no further request read or parsed until they drain below half.
  size_t max_pending_output_bytes = 4 << 20;
  // The body of every error the server itself answers (400, 404, 405, 408, 413, 431, 501,
  // 505, 500 for a dropped responder); content type application/json. Null: {"error": msg}.
  std::function<std::string(int status, const std::string& message)> error_body;
};

// A parsed request. Header names compare case-insensitively; the path is percent-decoded
// (not '+'); query keys and values are percent-decoded with '+' as a space.
struct HttpRequest {
  std::string method;
  std::string target;  // as received: path and query, undecoded
  std::string path;    // decoded path, without the query
  std::string body;    // Content-Length or de-chunked body
  std::vector<std::pair<std::string, std::string>> headers;  // in order received
  std::vector<std::pair<std::string, std::string>> query;    // in order received
  std::vector<std::string> path_params;                      // the route's {captures}, in order
  int minor_version = 1;                                     // HTTP/1.<minor>
  // When the request's first bytes reached the server: the kernel's receive time of the read
  // that began it (SO_TIMESTAMPNS), else when the loop read them. Latencies measured from it
  // include the time the request waited for its loop.
  std::chrono::steady_clock::time_point received{};

  // The first header named `name` (any case); "" when absent.
  std::string_view Header(std::string_view name) const;
  bool HasQuery(std::string_view key) const;
  // The first value of query key `key`; "" when absent.
  std::string QueryValue(std::string_view key) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers

  void Set(int status_code, std::string content, std::string type = "application/json") {
    status = status_code;
    body = std::move(content);
    content_type = std::move(type);
  }
};

namespace http_internal {
struct Connection;
struct ServerCore;
}  // namespace http_internal

// The one-shot answer of an async request. Move-only. Respond() may be called from any thread,
// once; it writes the response straight to the socket when nothing is queued before it (one
// send), else hands it to the connection's loop. Responding for a connection the peer has
// closed does nothing. Destroyed without Respond(): the client gets a 500.
class HttpResponder {
 public:
  HttpResponder() = default;
  HttpResponder(HttpResponder&& other) noexcept;
  HttpResponder& operator=(HttpResponder&& other) noexcept;
  HttpResponder(const HttpResponder&) = delete;
  HttpResponder& operator=(const HttpResponder&) = delete;
  ~HttpResponder();

  void Respond(HttpResponse response);
  explicit operator bool() const { return conn_ != nullptr; }

 private:
  friend struct http_internal::ServerCore;
  HttpResponder(std::shared_ptr<http_internal::Connection> conn, http_internal::ServerCore* core)
      : conn_(std::move(conn)), core_(core) {}
  std::shared_ptr<http_internal::Connection> conn_;
  http_internal::ServerCore* core_ = nullptr;
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse*)>;
// The request stays valid until the responder is completed.
using HttpAsyncHandler = std::function<void(const HttpRequest&, HttpResponder)>;
// may_wait = false (on the I/O thread): answer into *res and return true, or return false
// without answering when that would mean waiting (the request then goes to the worker pool).
// may_wait = true (on a worker): answer; the return value is ignored.
using HttpTryHandler = std::function<bool(const HttpRequest&, HttpResponse*, bool may_wait)>;

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes, registered before Start(). `pattern` is a path whose segments are literals or
  // "{name}" (one non-empty decoded segment, captured into path_params). A path that matches
  // a route of another method gets 405 with Allow; no match at all, 404. GET routes answer
  // HEAD too (without the body).
  void Inline(std::string method, std::string pattern, HttpHandler handler);
  void Worker(std::string method, std::string pattern, HttpHandler handler);
  void Async(std::string method, std::string pattern, HttpAsyncHandler handler);
  // Inline unless busy: the I/O thread runs `handler` with may_wait = false; when it declines,
  // a worker runs it again with may_wait = true (the connection waits, the loop does not).
  void InlineUnlessBusy(std::string method, std::string pattern, HttpTryHandler handler);
  // Runs on the I/O thread before routing, for every request; returns true when it answered
  // (e.g. 401), and the route is then not run.
  void SetBeforeRoute(std::function<bool(const HttpRequest&, HttpResponse*)> hook);
  // Runs on each I/O thread after it has dispatched a round of requests (and when woken by
  // Wake()), before it waits again. It may call PollOnce().
  void SetAfterRound(std::function<void()> hook);

  // Binds, listens and starts the threads. IOError when the address cannot be bound.
  Status Start();
  int port() const;
  // Stops accepting and reading new requests, lets the requests in flight finish and their
  // responses go out (at most ~5 s for slow readers), closes every connection, joins the
  // threads. Idempotent; thread-safe; not from an I/O or worker thread.
  void Stop();

  // On an I/O thread (inside the after-round hook): serve one round of this thread's loop
  // without waiting and without running the after-round hook. Returns false elsewhere.
  bool PollOnce();
  // True on an I/O thread of this server.
  bool OnIoThread() const;
  // Makes I/O loop 0 run its after-round hook soon. Thread-safe.
  void Wake();
  // Connections open now; requests dispatched and not yet answered.
  size_t connections() const;
  size_t in_flight() const;

 private:
  std::unique_ptr<http_internal::ServerCore> core_;
};

}  // namespace shoal
