#include "server/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common/json_writer.h"

namespace shoal {
namespace http_internal {

using SteadyClock = std::chrono::steady_clock;

namespace {

enum class HandlerKind { kInline, kWorker, kAsync, kInlineUnlessBusy };

constexpr size_t kReadChunk = 64 << 10;
constexpr int kMaxEvents = 256;
constexpr auto kLingerTime = std::chrono::seconds(2);    // draining a closed connection's input
// Responses answered on a loop go out together at the end of its round, or once the round has
// run this long. A send wakes the client, and a woken client on the same core preempts the
// loop: sent one by one, the round's other requests waited behind the clients it woke (the
// profile-lookup p99 beside an event stream halved, docs/benchmarks/server-lookup.md).
constexpr auto kFlushDelayLimit = std::chrono::microseconds(200);
constexpr auto kStopFlushTime = std::chrono::seconds(5);  // Stop(): slow readers get this long

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters (header names, methods).
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding as cpp-httplib did: invalid escapes stay as they are; plus_as_space for
// query components.
std::string PercentDecode(std::string_view in, bool plus_as_space) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_as_space && c == '+' ? ' ' : c);
  }
  return out;
}

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 207: return "Multi-Status";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

// Status line and headers of `res` (Content-Length always; the body follows separately).
void AppendHead(std::string* out, const HttpResponse& res, bool keep_alive, int minor_version) {
  char line[96];
  int n = std::snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", res.status, Reason(res.status));
  out->append(line, static_cast<size_t>(n));
  if (!res.content_type.empty()) {
    out->append("Content-Type: ");
    out->append(res.content_type);
    out->append("\r\n");
  }
  n = std::snprintf(line, sizeof line, "Content-Length: %zu\r\n", res.body.size());
  out->append(line, static_cast<size_t>(n));
  for (const auto& [name, value] : res.headers) {
    out->append(name);
    out->append(": ");
    out->append(value);
    out->append("\r\n");
  }
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (minor_version == 0) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
}

}  // namespace

struct RouteEntry {
  std::string method;
  std::vector<std::string> segments;  // "{}" = a capture
  HandlerKind kind = HandlerKind::kInline;
  HttpHandler handler;
  HttpAsyncHandler async;
  HttpTryHandler try_handler;  // kInlineUnlessBusy
};

struct Loop;

// One client connection. The owning loop's thread alone touches the input side; the output
// side and the flags under `mu` are shared with whichever thread completes a request.
struct Connection {
  int fd = -1;
  Loop* loop = nullptr;

  // --- owning loop only ---
  size_t index = 0;            // in loop->conns
  std::string in;              // received bytes; the next request starts at `pos`
  size_t pos = 0;
  enum class Stage { kHead, kBody, kChunkSize, kChunkData, kChunkEnd, kTrailer } stage = Stage::kHead;
  size_t head_scanned = 0;     // bytes after pos already searched for the end of the head
  size_t body_left = 0;        // kBody / kChunkData: bytes still to come
  bool expect_continue = false;
  bool sent_continue = false;
  HttpRequest request;         // being parsed, or in flight (then left alone until answered)
  bool is_head = false;
  bool peer_closed = false;    // read() returned 0
  bool draining = false;       // answered with close: reading and dropping until EOF
  bool read_paused = false;    // input over the buffer cap: read again after parsing
  bool flush_scheduled = false;  // in loop->to_flush
  bool output_blocked = false;   // unsent output over max_pending_output_bytes: input waits
  SteadyClock::time_point last_active;
  SteadyClock::time_point request_started{};  // first byte of a partial request; {} = none
  SteadyClock::time_point drain_deadline{};
  SteadyClock::time_point received_at{};  // the request being parsed began to arrive

  // --- shared, under mu ---
  std::mutex mu;
  std::string out;             // bytes not yet sent, from out_pos
  size_t out_pos = 0;
  bool closed = false;         // fd closed (by the owning loop only): completions are dropped
  bool in_flight = false;      // a worker / async request awaits its response
  bool keep_alive = true;      // of the request in flight / last parsed
  int minor_version = 1;
  bool close_after_write = false;
  bool input_waiting = false;  // the loop has unparsed input or EOF for when in_flight ends
  bool write_failed = false;
  SteadyClock::time_point last_write{};  // last time bytes of `out` went out
};

struct Loop {
  ServerCore* core = nullptr;
  int index = 0;
  int epfd = -1;
  int wakefd = -1;
  std::thread thread;
  std::vector<std::shared_ptr<Connection>> conns;
  std::vector<std::shared_ptr<Connection>> graveyard;      // closed this round
  std::vector<std::shared_ptr<Connection>> local_resume;   // completed on this thread
  std::vector<std::shared_ptr<Connection>> to_flush;       // answered this round, not yet sent
  std::vector<std::shared_ptr<Connection>> flushing;       // being flushed (FlushScheduled)
  bool in_flush = false;
  SteadyClock::time_point round_start{};
  std::mutex remote_mu;
  std::vector<std::shared_ptr<Connection>> remote_resume;  // completed on other threads
  std::vector<std::shared_ptr<Connection>> incoming;       // accepted by another loop
  std::atomic<bool> has_remote{false};
  std::atomic<bool> wake_hook{false};
  SteadyClock::time_point last_scan{};
  // Out of file descriptors: the listening socket leaves this loop's set until then (it is
  // level-triggered: left in, it would wake the loop over and over).
  SteadyClock::time_point accept_paused_until{};
  std::vector<char> read_buffer = std::vector<char>(kReadChunk);
};

thread_local Loop* tls_loop = nullptr;
thread_local Connection* tls_dispatching = nullptr;  // the connection whose request runs inline

struct ServerCore {
  HttpServerOptions options;
  std::vector<RouteEntry> routes;
  std::function<bool(const HttpRequest&, HttpResponse*)> before_route;
  std::function<void()> after_round;
  int listen_fd = -1;
  int port = 0;
  std::vector<std::unique_ptr<Loop>> loops;
  std::atomic<uint64_t> next_loop{0};
  std::atomic<size_t> connections{0};
  std::atomic<size_t> in_flight{0};
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
  std::mutex stop_mu;
  int listen_marker = 0;  // addresses used as epoll tags
  int wake_marker = 0;

  // Worker pool.
  std::mutex work_mu;
  std::condition_variable work_cv;
  std::deque<std::function<void()>> work;
  bool work_stop = false;
  std::vector<std::thread> workers;

  std::string ErrorBody(int status, const std::string& message) const {
    if (options.error_body) return options.error_body(status, message);
    std::string out = "{\"error\":";
    AppendJsonString(&out, message);
    out += "}";
    return out;
  }
  HttpResponse ErrorResponse(int status, const std::string& message) const {
    HttpResponse res;
    res.Set(status, ErrorBody(status, message));
    return res;
  }

  // --- loop ---
  void RunLoop(Loop* loop);
  void RunRound(Loop* loop, int timeout_ms, bool run_hook);
  void Accept(Loop* loop);
  void Register(Loop* loop, std::shared_ptr<Connection> conn);
  void OnReadable(Loop* loop, const std::shared_ptr<Connection>& conn, uint32_t events);
  // events: the epoll flags that reported it readable (0: read until EAGAIN).
  bool ReadAvailable(Loop* loop, Connection* conn, uint32_t events);  // false: error, close
  void ProcessInput(Loop* loop, const std::shared_ptr<Connection>& conn);
  void Resume(Loop* loop, const std::shared_ptr<Connection>& conn);
  void DrainResumes(Loop* loop);
  void ScanTimers(Loop* loop, SteadyClock::time_point now);
  void Close(Loop* loop, Connection* conn);
  // Sends what is queued (mu held); on completion with close_after_write starts draining.
  void FlushLocked(Connection* conn);
  void AfterFlush(Loop* loop, Connection* conn);
  // Sends what `conn` was answered this round at the round's end (kFlushDelayLimit).
  void ScheduleFlush(Loop* loop, const std::shared_ptr<Connection>& conn);
  void FlushScheduled(Loop* loop);
  // Bytes queued for `conn` and not yet sent (takes conn->mu).
  size_t PendingOutput(Connection* conn);
  // After a flush: a connection blocked on its output that has drained below half the limit
  // reads and parses again.
  void MaybeUnblock(Loop* loop, const std::shared_ptr<Connection>& conn);
  // --- parsing ---
  enum class Parse { kNeedMore, kRequest, kError };
  Parse TryParse(Connection* conn, int* status, std::string* message);
  Parse ParseHead(Connection* conn, int* status, std::string* message);
  Parse ParseChunked(Connection* conn, int* status, std::string* message);
  void FinishTarget(Connection* conn);
  // --- dispatch ---
  void Dispatch(Loop* loop, const std::shared_ptr<Connection>& conn);
  void QueueOnLoop(Connection* conn, const HttpResponse& res, bool close);
  void Complete(const std::shared_ptr<Connection>& conn, HttpResponse res);
  void PostResume(const std::shared_ptr<Connection>& conn);
  void WorkerLoop();
};

// ---------------------------------------------------------------------------------------------
// Parsing

void ServerCore::FinishTarget(Connection* conn) {
  HttpRequest& req = conn->request;
  std::string_view target = req.target;
  size_t q = target.find('?');
  req.path = PercentDecode(target.substr(0, q), /*plus_as_space=*/false);
  req.query.clear();
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  size_t hash = query.find('#');
  if (hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = PercentDecode(item.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? std::string() : PercentDecode(item.substr(eq + 1), true);
    req.query.emplace_back(std::move(key), std::move(value));
  }
}

ServerCore::Parse ServerCore::ParseHead(Connection* conn, int* status, std::string* message) {
  // Empty lines before a request line are ignored (RFC 9112 2.2).
  while (conn->pos < conn->in.size() && (conn->in[conn->pos] == '\r' || conn->in[conn->pos] == '\n') &&
         conn->head_scanned == 0) {
    ++conn->pos;
  }
  const std::string& in = conn->in;
  const size_t begin = conn->pos;
  size_t end = std::string::npos;  // one past the blank line ending the head
  size_t scan = begin + (conn->head_scanned > 3 ? conn->head_scanned - 3 : 0);
  for (;;) {
    size_t nl = in.find('\n', scan);
    if (nl == std::string::npos) break;
    if (nl + 1 < in.size() && in[nl + 1] == '\n') {
      end = nl + 2;
      break;
    }
    if (nl + 2 < in.size() && in[nl + 1] == '\r' && in[nl + 2] == '\n') {
      end = nl + 3;
      break;
    }
    scan = nl + 1;
  }
  if (end == std::string::npos) {
    conn->head_scanned = in.size() - begin;
    if (conn->head_scanned > options.max_header_bytes) {
      *status = 431;
      *message = "request header too large";
      return Parse::kError;
    }
    return Parse::kNeedMore;
  }
  if (end - begin > options.max_header_bytes) {
    *status = 431;
    *message = "request header too large";
    return Parse::kError;
  }
  conn->head_scanned = 0;
  HttpRequest& req = conn->request;
  req.headers.clear();
  req.body.clear();
  req.path_params.clear();
  std::string_view head(in.data() + begin, end - begin);
  auto next_line = [&head]() {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    head.remove_prefix(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  };
  auto bad = [&](const char* what) {
    *status = 400;
    *message = what;
    return Parse::kError;
  };
  std::string_view line = next_line();
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return bad("malformed request line");
  }
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (method.empty() || !std::all_of(method.begin(), method.end(), IsTokenChar)) return bad("malformed method");
  if (target.empty() || target.front() != '/') return bad("malformed request target");
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return bad("malformed request target");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(version[5])) || !std::isdigit(static_cast<unsigned char>(version[7]))) {
    return bad("malformed HTTP version");
  }
  if (version[5] != '1') {
    *status = 505;
    *message = "only HTTP/1.0 and HTTP/1.1 are supported";
    return Parse::kError;
  }
  req.method.assign(method);
  req.target.assign(target);
  req.minor_version = version[7] == '0' ? 0 : 1;
  bool keep_alive = req.minor_version >= 1;
  bool chunked = false;
  bool has_length = false;
  uint64_t length = 0;
  conn->expect_continue = false;
  for (;;) {
    line = next_line();
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') return bad("folded header line");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return bad("malformed header line");
    std::string_view name = line.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar)) return bad("malformed header name");
    std::string_view value = Trim(line.substr(colon + 1));
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return bad("malformed header value");
    }
    if (EqualsIgnoreCase(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return bad("malformed Content-Length");
      }
      uint64_t v = std::stoull(std::string(value));
      if (has_length && v != length) return bad("conflicting Content-Length headers");
      has_length = true;
      length = v;
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      if (!EqualsIgnoreCase(value, "chunked")) {
        *status = 501;
        *message = "only the chunked transfer coding is supported";
        return Parse::kError;
      }
      chunked = true;
    } else if (EqualsIgnoreCase(name, "Connection")) {
      std::string_view tokens = value;
      while (!tokens.empty()) {
        size_t comma = tokens.find(',');
        std::string_view token = Trim(tokens.substr(0, comma));
        tokens = comma == std::string_view::npos ? std::string_view() : tokens.substr(comma + 1);
        if (EqualsIgnoreCase(token, "close")) keep_alive = false;
        else if (EqualsIgnoreCase(token, "keep-alive") && req.minor_version == 0) keep_alive = true;
      }
    } else if (EqualsIgnoreCase(name, "Expect")) {
      if (!EqualsIgnoreCase(value, "100-continue")) {
        *status = 417;
        *message = "unsupported expectation";
        return Parse::kError;
      }
      conn->expect_continue = req.minor_version >= 1;
    }
    req.headers.emplace_back(std::string(name), std::string(value));
  }
  if (chunked && has_length) return bad("both Content-Length and Transfer-Encoding");
  if (has_length && length > options.max_body_bytes) {
    *status = 413;
    *message = "request body too large";
    return Parse::kError;
  }
  {
    std::lock_guard lock(conn->mu);
    conn->keep_alive = keep_alive;
    conn->minor_version = req.minor_version;
  }
  FinishTarget(conn);
  conn->pos = end;
  conn->sent_continue = false;
  if (chunked) {
    conn->stage = Connection::Stage::kChunkSize;
  } else {
    conn->stage = Connection::Stage::kBody;
    conn->body_left = has_length ? static_cast<size_t>(length) : 0;
  }
  return Parse::kNeedMore;  // the caller goes on with the body
}

ServerCore::Parse ServerCore::ParseChunked(Connection* conn, int* status, std::string* message) {
  const std::string& in = conn->in;
  HttpRequest& req = conn->request;
  auto bad = [&](const char* what) {
    *status = 400;
    *message = what;
    return Parse::kError;
  };
  for (;;) {
    switch (conn->stage) {
      case Connection::Stage::kChunkSize: {
        size_t nl = in.find('\n', conn->pos);
        if (nl == std::string::npos) {
          if (in.size() - conn->pos > 1024) return bad("malformed chunk size");
          return Parse::kNeedMore;
        }
        std::string_view line(in.data() + conn->pos, nl - conn->pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        size_t semi = line.find(';');
        std::string_view digits = Trim(line.substr(0, semi));
        if (digits.empty() || digits.size() > 15) return bad("malformed chunk size");
        uint64_t size = 0;
        for (char c : digits) {
          int v = HexValue(c);
          if (v < 0) return bad("malformed chunk size");
          size = size * 16 + static_cast<uint64_t>(v);
        }
        conn->pos = nl + 1;
        if (size == 0) {
          conn->stage = Connection::Stage::kTrailer;
          break;
        }
        if (req.body.size() + size > options.max_body_bytes) {
          *status = 413;
          *message = "request body too large";
          return Parse::kError;
        }
        conn->body_left = static_cast<size_t>(size);
        conn->stage = Connection::Stage::kChunkData;
        break;
      }
      case Connection::Stage::kChunkData: {
        size_t take = std::min(conn->body_left, in.size() - conn->pos);
        req.body.append(in, conn->pos, take);
        conn->pos += take;
        conn->body_left -= take;
        if (conn->body_left > 0) return Parse::kNeedMore;
        conn->stage = Connection::Stage::kChunkEnd;
        break;
      }
      case Connection::Stage::kChunkEnd: {
        if (conn->pos >= in.size()) return Parse::kNeedMore;
        if (in[conn->pos] == '\n') {
          conn->pos += 1;
        } else if (in[conn->pos] == '\r') {
          if (conn->pos + 1 >= in.size()) return Parse::kNeedMore;
          if (in[conn->pos + 1] != '\n') return bad("malformed chunk end");
          conn->pos += 2;
        } else {
          return bad("malformed chunk end");
        }
        conn->stage = Connection::Stage::kChunkSize;
        break;
      }
      case Connection::Stage::kTrailer: {
        size_t nl = in.find('\n', conn->pos);
        if (nl == std::string::npos) {
          if (in.size() - conn->pos > options.max_header_bytes) {
            *status = 431;
            *message = "request trailer too large";
            return Parse::kError;
          }
          return Parse::kNeedMore;
        }
        const bool empty = nl == conn->pos || (nl == conn->pos + 1 && in[conn->pos] == '\r');
        conn->pos = nl + 1;  // trailer fields are read and ignored
        if (empty) {
          conn->stage = Connection::Stage::kHead;
          return Parse::kRequest;
        }
        break;
      }
      default: return bad("parser state");
    }
  }
}

ServerCore::Parse ServerCore::TryParse(Connection* conn, int* status, std::string* message) {
  if (conn->stage == Connection::Stage::kHead) {
    Parse p = ParseHead(conn, status, message);
    if (p == Parse::kError || conn->stage == Connection::Stage::kHead) return p;
  }
  const bool body_missing = conn->stage == Connection::Stage::kBody
                                ? conn->in.size() - conn->pos < conn->body_left
                                : conn->in.size() == conn->pos;
  if (conn->expect_continue && !conn->sent_continue && body_missing &&
      (conn->stage != Connection::Stage::kBody || conn->body_left > 0)) {
    conn->sent_continue = true;
    std::lock_guard lock(conn->mu);
    conn->out.append("HTTP/1.1 100 Continue\r\n\r\n");
  }
  if (conn->stage == Connection::Stage::kBody) {
    if (conn->in.size() - conn->pos < conn->body_left) return Parse::kNeedMore;
    conn->request.body.assign(conn->in, conn->pos, conn->body_left);
    conn->pos += conn->body_left;
    conn->body_left = 0;
    conn->stage = Connection::Stage::kHead;
    return Parse::kRequest;
  }
  return ParseChunked(conn, status, message);
}

// ---------------------------------------------------------------------------------------------
// Responses

void ServerCore::QueueOnLoop(Connection* conn, const HttpResponse& res, bool close) {
  std::lock_guard lock(conn->mu);
  if (close) conn->keep_alive = false;
  const bool keep = conn->keep_alive && !stopping.load(std::memory_order_relaxed);
  AppendHead(&conn->out, res, keep, conn->minor_version);
  if (!conn->is_head) conn->out.append(res.body);
  if (!keep) conn->close_after_write = true;
}

void ServerCore::FlushLocked(Connection* conn) {
  while (conn->out_pos < conn->out.size() && !conn->closed && !conn->write_failed) {
    ssize_t n = ::send(conn->fd, conn->out.data() + conn->out_pos, conn->out.size() - conn->out_pos,
                       MSG_NOSIGNAL);
    if (n > 0) {
      conn->out_pos += static_cast<size_t>(n);
      conn->last_write = SteadyClock::now();
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;  // EPOLLOUT (edge-triggered) tells the loop when to go on
    } else {
      conn->write_failed = true;
      return;
    }
  }
  if (conn->out_pos == conn->out.size()) {
    conn->out.clear();
    conn->out_pos = 0;
  }
}

void ServerCore::Complete(const std::shared_ptr<Connection>& conn, HttpResponse res) {
  bool post = false;
  {
    std::unique_lock lock(conn->mu);
    if (conn->closed || !conn->in_flight) {
      lock.unlock();
      in_flight.fetch_sub(1);
      return;
    }
    conn->in_flight = false;
    const bool keep = conn->keep_alive && !stopping.load(std::memory_order_relaxed);
    if (!keep) conn->close_after_write = true;
    std::string head;
    AppendHead(&head, res, keep, conn->minor_version);
    if (conn->is_head) res.body.clear();
    if (tls_dispatching == conn.get()) {
      // Answered during its own dispatch: the loop sends it with whatever follows.
      conn->out.append(head);
      conn->out.append(res.body);
    } else if (conn->out_pos == conn->out.size() && !conn->write_failed) {
      // Nothing queued before it: one sendmsg of head and body, straight from this thread.
      iovec parts[2] = {{head.data(), head.size()}, {res.body.data(), res.body.size()}};
      msghdr msg{};
      msg.msg_iov = parts;
      msg.msg_iovlen = res.body.empty() ? 1 : 2;
      ssize_t n;
      do {
        n = ::sendmsg(conn->fd, &msg, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) conn->write_failed = true;
      conn->out.clear();
      conn->out_pos = 0;
      if (sent < head.size()) {
        conn->out.append(head, sent, std::string::npos);
        conn->out.append(res.body);
      } else if (sent < head.size() + res.body.size()) {
        conn->out.append(res.body, sent - head.size(), std::string::npos);
      }
    } else {
      conn->out.append(head);
      conn->out.append(res.body);
    }
    post = tls_dispatching != conn.get() &&
           (!conn->out.empty() || conn->close_after_write || conn->input_waiting || conn->write_failed);
    conn->input_waiting = false;
  }
  if (post) PostResume(conn);
  in_flight.fetch_sub(1);
}

void ServerCore::PostResume(const std::shared_ptr<Connection>& conn) {
  Loop* loop = conn->loop;
  if (tls_loop == loop) {
    loop->local_resume.push_back(conn);
    return;
  }
  bool wake;
  {
    std::lock_guard lock(loop->remote_mu);
    wake = loop->remote_resume.empty();
    loop->remote_resume.push_back(conn);
    loop->has_remote.store(true, std::memory_order_release);
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t ignored = ::write(loop->wakefd, &one, sizeof one);
    (void)ignored;
  }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

void ServerCore::Dispatch(Loop* loop, const std::shared_ptr<Connection>& conn) {
  HttpRequest& req = conn->request;
  HttpResponse res;
  conn->is_head = req.method == "HEAD";
  if (before_route && before_route(req, &res)) {
    QueueOnLoop(conn.get(), res, false);
    return;
  }
  // Route: split the decoded path into segments once.
  std::string_view path = req.path;
  std::vector<std::string_view> segments;
  {
    size_t at = 1;
    while (at <= path.size()) {
      size_t slash = path.find('/', at);
      if (slash == std::string_view::npos) slash = path.size();
      segments.push_back(path.substr(at, slash - at));
      at = slash + 1;
    }
  }
  const std::string_view method = conn->is_head ? std::string_view("GET") : std::string_view(req.method);
  const RouteEntry* found = nullptr;
  std::string allow;
  for (const RouteEntry& route : routes) {
    if (route.segments.size() != segments.size()) continue;
    bool match = true;
    for (size_t i = 0; i < segments.size() && match; ++i) {
      match = route.segments[i] == "{}" ? !segments[i].empty() : route.segments[i] == segments[i];
    }
    if (!match) continue;
    if (route.method == method) {
      found = &route;
      break;
    }
    if (allow.find(route.method) == std::string::npos) {
      if (!allow.empty()) allow += ", ";
      allow += route.method;
      if (route.method == "GET") allow += ", HEAD";
    }
  }
  if (found == nullptr) {
    if (allow.empty()) {
      QueueOnLoop(conn.get(), ErrorResponse(404, "no such endpoint"), false);
    } else {
      HttpResponse err = ErrorResponse(405, "method not allowed");
      err.headers.emplace_back("Allow", allow);
      QueueOnLoop(conn.get(), err, false);
    }
    return;
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    if (found->segments[i] == "{}") req.path_params.emplace_back(segments[i]);
  }
  if (found->kind == HandlerKind::kInline) {
    try {
      found->handler(req, &res);
    } catch (const std::exception& e) {
      res = ErrorResponse(500, std::string("internal error: ") + e.what());
    }
    QueueOnLoop(conn.get(), res, false);
    return;
  }
  if (found->kind == HandlerKind::kInlineUnlessBusy) {
    bool answered = true;
    try {
      answered = found->try_handler(req, &res, /*may_wait=*/false);
    } catch (const std::exception& e) {
      res = ErrorResponse(500, std::string("internal error: ") + e.what());
    }
    if (answered) {
      QueueOnLoop(conn.get(), res, false);
      return;
    }
  }
  {
    std::lock_guard lock(conn->mu);
    conn->in_flight = true;
  }
  in_flight.fetch_add(1);
  if (found->kind == HandlerKind::kWorker || found->kind == HandlerKind::kInlineUnlessBusy) {
    std::lock_guard lock(work_mu);
    work.emplace_back([this, conn, found] {
      HttpResponse out;
      try {
        if (found->kind == HandlerKind::kWorker) found->handler(conn->request, &out);
        else (void)found->try_handler(conn->request, &out, /*may_wait=*/true);
      } catch (const std::exception& e) {
        out = ErrorResponse(500, std::string("internal error: ") + e.what());
      }
      Complete(conn, std::move(out));
    });
    work_cv.notify_one();
    return;
  }
  try {
    found->async(req, HttpResponder(conn, this));
  } catch (const std::exception&) {
    // The responder, if still unanswered, answered 500 when it was destroyed.
  }
}

void ServerCore::WorkerLoop() {
  std::unique_lock lock(work_mu);
  for (;;) {
    work_cv.wait(lock, [&] { return work_stop || !work.empty(); });
    if (work.empty()) return;  // stopping, nothing left
    auto task = std::move(work.front());
    work.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

// ---------------------------------------------------------------------------------------------
// Loops

void ServerCore::Register(Loop* loop, std::shared_ptr<Connection> conn) {
  conn->index = loop->conns.size();
  conn->last_active = SteadyClock::now();
  loop->conns.push_back(std::move(conn));
}

void ServerCore::Accept(Loop* loop) {
  for (int accepted = 0; accepted < 64; ++accepted) {
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        ::epoll_ctl(loop->epfd, EPOLL_CTL_DEL, listen_fd, nullptr);
        loop->accept_paused_until = SteadyClock::now() + std::chrono::milliseconds(100);
      }
      return;  // EAGAIN: another loop took it, or none left
    }
    if (connections.load() >= options.max_connections || stopping.load()) {
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);  // receive times (ReadAvailable)
    connections.fetch_add(1);
    auto conn = std::make_shared<Connection>();
    conn->fd = fd;
    Loop* target = loops[next_loop.fetch_add(1) % loops.size()].get();
    conn->loop = target;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = conn.get();
    if (target == loop) {
      Register(loop, conn);
    } else {
      std::lock_guard lock(target->remote_mu);
      target->incoming.push_back(conn);
      target->has_remote.store(true, std::memory_order_release);
    }
    // Events can arrive only after this; the target takes `incoming` first in every round.
    ::epoll_ctl(target->epfd, EPOLL_CTL_ADD, fd, &ev);
  }
}

// The kernel's receive time of what `msg` read, on the steady clock; now if it has none.
SteadyClock::time_point ReceiveTime(const msghdr& msg) {
  const SteadyClock::time_point now = SteadyClock::now();
  auto* m = const_cast<msghdr*>(&msg);
  for (cmsghdr* c = CMSG_FIRSTHDR(m); c != nullptr; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SO_TIMESTAMPNS) continue;
    timespec at;
    std::memcpy(&at, CMSG_DATA(c), sizeof at);
    timespec wall;
    ::clock_gettime(CLOCK_REALTIME, &wall);
    const int64_t ago_ns =
        (static_cast<int64_t>(wall.tv_sec) - at.tv_sec) * 1000000000 + (wall.tv_nsec - at.tv_nsec);
    // A wall clock stepped meanwhile (or no stamp) gives a negative or absurd age: ignored.
    if (ago_ns < 0 || ago_ns > int64_t{60} * 1000000000) return now;
    return now -
           std::chrono::duration_cast<SteadyClock::duration>(std::chrono::nanoseconds(ago_ns));
  }
  return now;
}

bool ServerCore::ReadAvailable(Loop* loop, Connection* conn, uint32_t events) {
  const size_t cap = options.max_header_bytes + options.max_body_bytes + kReadChunk;
  for (;;) {
    if (conn->output_blocked || conn->in.size() - conn->pos > cap) {
      conn->read_paused = true;
      return true;
    }
    // With the kernel's receive time (SO_TIMESTAMPNS) of the first bytes read.
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    iovec iov{loop->read_buffer.data(), loop->read_buffer.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = ::recvmsg(conn->fd, &msg, 0);
    if (n > 0) {
      if (conn->in.size() == conn->pos) conn->received_at = ReceiveTime(msg);  // a request begins
      conn->in.append(loop->read_buffer.data(), static_cast<size_t>(n));
      conn->last_active = SteadyClock::now();
      if (static_cast<size_t>(n) < loop->read_buffer.size() && (events & EPOLLIN)) {
        // A short read drained the socket: new data raises a new edge, and a FIN already
        // queued behind the data was reported with this event (EPOLLRDHUP). Saves the recv
        // that would return EAGAIN.
        if (events & (EPOLLRDHUP | EPOLLHUP)) conn->peer_closed = true;
        conn->read_paused = false;
        return true;
      }
      continue;
    }
    if (n == 0) {
      conn->peer_closed = true;
      conn->read_paused = false;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      conn->read_paused = false;
      return true;
    }
    return false;
  }
}

void ServerCore::Close(Loop* loop, Connection* conn) {
  {
    std::lock_guard lock(conn->mu);
    if (conn->closed) return;
    conn->closed = true;
    ::close(conn->fd);
  }
  connections.fetch_sub(1);
  size_t at = conn->index;
  if (at < loop->conns.size() && loop->conns[at].get() == conn) {
    loop->graveyard.push_back(std::move(loop->conns[at]));
    if (at + 1 != loop->conns.size()) {
      loop->conns[at] = std::move(loop->conns.back());
      loop->conns[at]->index = at;
    }
    loop->conns.pop_back();
  }
}

void ServerCore::AfterFlush(Loop* loop, Connection* conn) {
  bool failed, done_closing, idle;
  {
    std::lock_guard lock(conn->mu);
    if (conn->closed) return;
    FlushLocked(conn);
    failed = conn->write_failed;
    idle = !conn->in_flight && conn->out.empty();
    done_closing = idle && conn->close_after_write;
  }
  if (failed) return Close(loop, conn);
  if (done_closing && !conn->draining) {
    // Lingering close: stop writing, read and drop what the client still sends (a body we
    // refused), so that our answer is not lost to a reset.
    ::shutdown(conn->fd, SHUT_WR);
    conn->draining = true;
    conn->drain_deadline = SteadyClock::now() + kLingerTime;
    conn->in.clear();
    conn->pos = 0;
    if (conn->peer_closed) Close(loop, conn);
    return;
  }
  if (idle && conn->peer_closed && !conn->draining) Close(loop, conn);
}

size_t ServerCore::PendingOutput(Connection* conn) {
  std::lock_guard lock(conn->mu);
  return conn->out.size() - conn->out_pos;
}

void ServerCore::MaybeUnblock(Loop* loop, const std::shared_ptr<Connection>& conn) {
  if (!conn->output_blocked || conn->closed) return;
  if (PendingOutput(conn.get()) > options.max_pending_output_bytes / 2) return;
  conn->output_blocked = false;
  ProcessInput(loop, conn);  // what is buffered, then (read_paused) what waits in the socket
}

void ServerCore::ScheduleFlush(Loop* loop, const std::shared_ptr<Connection>& conn) {
  if (!conn->flush_scheduled) {
    conn->flush_scheduled = true;
    loop->to_flush.push_back(conn);
  }
  if (!loop->in_flush && SteadyClock::now() - loop->round_start > kFlushDelayLimit) {
    FlushScheduled(loop);
  }
}

void ServerCore::FlushScheduled(Loop* loop) {
  // AfterFlush may close a connection (moving it to the graveyard, which keeps it alive), and
  // MaybeUnblock may answer more requests, scheduling them: flushed by the next pass.
  loop->in_flush = true;
  while (!loop->to_flush.empty()) {
    loop->flushing.swap(loop->to_flush);
    for (const std::shared_ptr<Connection>& conn : loop->flushing) {
      conn->flush_scheduled = false;
      if (conn->closed) continue;
      AfterFlush(loop, conn.get());
      MaybeUnblock(loop, conn);
    }
    loop->flushing.clear();
  }
  loop->in_flush = false;
}

void ServerCore::OnReadable(Loop* loop, const std::shared_ptr<Connection>& conn, uint32_t events) {
  if (conn->draining) {
    for (;;) {
      ssize_t n = ::recv(conn->fd, loop->read_buffer.data(), loop->read_buffer.size(), 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return Close(loop, conn.get());
    }
  }
  if (!ReadAvailable(loop, conn.get(), events)) return Close(loop, conn.get());
  ProcessInput(loop, conn);
}

void ServerCore::ProcessInput(Loop* loop, const std::shared_ptr<Connection>& conn) {
  Connection* c = conn.get();
  bool parked = false;
  for (;;) {
    {
      std::lock_guard lock(c->mu);
      if (c->closed) return;
      if (c->in_flight) {
        // Parked until its answer; what follows is parsed then. Responses queued before it
        // (pipelined inline ones) still go out now.
        if (c->pos < c->in.size() || c->peer_closed) c->input_waiting = true;
        parked = true;
        break;
      }
      if (c->close_after_write) break;
      if (c->out.size() - c->out_pos > options.max_pending_output_bytes) {
        FlushLocked(c);
        if (c->out.size() - c->out_pos > options.max_pending_output_bytes) {
          c->output_blocked = true;  // a flush that drains it resumes (MaybeUnblock)
          c->read_paused = true;     // the socket's unread bytes raise no new edge
          break;
        }
      }
    }
    if (stopping.load(std::memory_order_relaxed) || c->draining) break;
    int status = 0;
    std::string message;
    Parse p = TryParse(c, &status, &message);
    if (p == Parse::kNeedMore) break;
    if (p == Parse::kError) {
      c->stage = Connection::Stage::kHead;
      c->is_head = false;
      QueueOnLoop(c, ErrorResponse(status, message), /*close=*/true);
      break;
    }
    c->request_started = {};
    c->request.received = c->received_at;
    tls_dispatching = c;
    Dispatch(loop, conn);
    tls_dispatching = nullptr;
  }
  // Drop the consumed input (and the room a large body took, once it is gone).
  if (c->pos > 0) {
    c->in.erase(0, c->pos);
    c->pos = 0;
  }
  if (c->in.empty() && c->in.capacity() > kReadChunk * 4) std::string().swap(c->in);
  const bool partial = !c->in.empty() || c->stage != Connection::Stage::kHead;
  if (!partial || parked) {
    c->request_started = {};
  } else if (c->request_started == SteadyClock::time_point{}) {
    c->request_started = SteadyClock::now();
  }
  ScheduleFlush(loop, conn);
  if (c->read_paused && !c->closed && !parked && !c->output_blocked) {
    OnReadable(loop, conn, 0);  // the buffer was over its cap: what was parsed made room
  }
}

void ServerCore::Resume(Loop* loop, const std::shared_ptr<Connection>& conn) {
  if (conn->closed) return;  // (read without the lock: only this loop closes)
  conn->last_active = SteadyClock::now();
  if (conn->draining) return AfterFlush(loop, conn.get());
  ProcessInput(loop, conn);
}

void ServerCore::DrainResumes(Loop* loop) {
  if (loop->has_remote.load(std::memory_order_acquire)) {
    std::vector<std::shared_ptr<Connection>> remote, incoming;
    {
      std::lock_guard lock(loop->remote_mu);
      remote.swap(loop->remote_resume);
      incoming.swap(loop->incoming);
      loop->has_remote.store(false, std::memory_order_relaxed);
    }
    for (auto& conn : incoming) Register(loop, std::move(conn));
    for (auto& conn : remote) Resume(loop, conn);
  }
  while (!loop->local_resume.empty()) {
    std::vector<std::shared_ptr<Connection>> local;
    local.swap(loop->local_resume);
    for (auto& conn : local) Resume(loop, conn);
  }
}

void ServerCore::ScanTimers(Loop* loop, SteadyClock::time_point now) {
  if (loop->accept_paused_until != SteadyClock::time_point{} && now > loop->accept_paused_until &&
      !stopping.load()) {
    loop->accept_paused_until = {};
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = &listen_marker;
    ::epoll_ctl(loop->epfd, EPOLL_CTL_ADD, listen_fd, &ev);
  }
  const auto idle_limit = std::chrono::duration<double>(options.idle_timeout_seconds);
  const auto read_limit = std::chrono::duration<double>(options.read_timeout_seconds);
  for (size_t i = loop->conns.size(); i-- > 0;) {
    if (i >= loop->conns.size()) continue;
    std::shared_ptr<Connection> conn = loop->conns[i];
    Connection* c = conn.get();
    if (c->draining) {
      if (now > c->drain_deadline) Close(loop, c);
      continue;
    }
    bool busy, stalled;
    {
      std::lock_guard lock(c->mu);
      busy = c->in_flight || !c->out.empty();
      // A client that stopped reading its response: nothing written for the idle timeout.
      stalled = !c->in_flight && !c->out.empty() && now - std::max(c->last_write, c->last_active) > idle_limit;
    }
    if (stalled) {
      Close(loop, c);
      continue;
    }
    if (busy) continue;
    if (c->request_started != SteadyClock::time_point{}) {
      if (now - c->request_started > read_limit) {
        c->stage = Connection::Stage::kHead;
        c->in.clear();
        c->pos = 0;
        c->is_head = false;
        QueueOnLoop(c, ErrorResponse(408, "request not received in time"), /*close=*/true);
        AfterFlush(loop, c);
      }
    } else if (now - c->last_active > idle_limit || stopping.load()) {
      Close(loop, c);
    }
  }
}

void ServerCore::RunRound(Loop* loop, int timeout_ms, bool run_hook) {
  epoll_event events[kMaxEvents];
  if (!loop->local_resume.empty() || loop->wake_hook.load(std::memory_order_relaxed)) timeout_ms = 0;
  int n = ::epoll_wait(loop->epfd, events, kMaxEvents, timeout_ms);
  loop->round_start = SteadyClock::now();
  DrainResumes(loop);  // also registers connections other loops accepted for this one
  for (int i = 0; i < n; ++i) {
    void* tag = events[i].data.ptr;
    if (tag == &listen_marker) {
      if (!stopping.load()) Accept(loop);
      continue;
    }
    if (tag == &wake_marker) {
      uint64_t count;
      ssize_t ignored = ::read(loop->wakefd, &count, sizeof count);
      (void)ignored;
      continue;
    }
    auto* c = static_cast<Connection*>(tag);
    if (c->closed || c->loop != loop) continue;
    std::shared_ptr<Connection> conn = loop->conns[c->index];
    const uint32_t what = events[i].events;
    if (what & EPOLLOUT) {
      AfterFlush(loop, c);
      MaybeUnblock(loop, conn);
    }
    if (!c->closed && (what & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) OnReadable(loop, conn, what);
  }
  DrainResumes(loop);
  FlushScheduled(loop);  // before the hook, which may lead a group commit
  const auto now = SteadyClock::now();
  const double scan_seconds = std::clamp(
      std::min(options.read_timeout_seconds, options.idle_timeout_seconds) / 4, 0.005, 0.1);
  if (now - loop->last_scan > std::chrono::duration<double>(scan_seconds)) {
    loop->last_scan = now;
    ScanTimers(loop, now);
  }
  if (run_hook && after_round) {
    // Completions the hook makes for this loop's connections wait in local_resume: the next
    // round takes them without waiting (and runs the hook again for what they dispatch).
    loop->wake_hook.store(false, std::memory_order_relaxed);
    after_round();
  }
  loop->graveyard.clear();
}

void ServerCore::RunLoop(Loop* loop) {
  tls_loop = loop;
  const int scan_ms = static_cast<int>(std::clamp(
      std::min(options.read_timeout_seconds, options.idle_timeout_seconds) * 250, 5.0, 100.0));
  SteadyClock::time_point stop_deadline{};
  for (;;) {
    RunRound(loop, scan_ms, /*run_hook=*/true);
    if (!stopping.load()) continue;
    // Stopping: no new requests are read; the ones in flight finish (their connections, and
    // the after-round hook that may be completing them, need this loop), then what is queued
    // is sent, for at most kStopFlushTime.
    if (in_flight.load() > 0) continue;
    if (stop_deadline == SteadyClock::time_point{}) stop_deadline = SteadyClock::now() + kStopFlushTime;
    bool pending = false;
    for (size_t i = 0; i < loop->conns.size() && !pending; ++i) {
      std::lock_guard lock(loop->conns[i]->mu);
      pending = !loop->conns[i]->out.empty();
    }
    if (!pending || SteadyClock::now() > stop_deadline) break;
  }
  DrainResumes(loop);
  FlushScheduled(loop);
  while (!loop->conns.empty()) Close(loop, loop->conns.back().get());
  loop->graveyard.clear();
  tls_loop = nullptr;
}

}  // namespace http_internal

// ---------------------------------------------------------------------------------------------

using http_internal::Connection;
using http_internal::HandlerKind;
using http_internal::Loop;
using http_internal::ServerCore;

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (http_internal::EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

bool HttpRequest::HasQuery(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return true;
  }
  return false;
}

std::string HttpRequest::QueryValue(std::string_view key) const {
  for (const auto& [k, v] : query) {
    if (k == key) return v;
  }
  return {};
}

HttpResponder::HttpResponder(HttpResponder&& other) noexcept
    : conn_(std::move(other.conn_)), core_(other.core_) {
  other.conn_ = nullptr;
}

HttpResponder& HttpResponder::operator=(HttpResponder&& other) noexcept {
  if (this != &other) {
    if (conn_) Respond(core_->ErrorResponse(500, "internal error: no response"));
    conn_ = std::move(other.conn_);
    core_ = other.core_;
    other.conn_ = nullptr;
  }
  return *this;
}

HttpResponder::~HttpResponder() {
  if (conn_) Respond(core_->ErrorResponse(500, "internal error: no response"));
}

void HttpResponder::Respond(HttpResponse response) {
  if (!conn_) return;
  std::shared_ptr<Connection> conn = std::move(conn_);
  conn_ = nullptr;
  core_->Complete(conn, std::move(response));
}

HttpServer::HttpServer(HttpServerOptions options) : core_(std::make_unique<ServerCore>()) {
  core_->options = std::move(options);
  core_->options.io_threads = std::max(1, core_->options.io_threads);
  core_->options.worker_threads = std::max(1, core_->options.worker_threads);
}

HttpServer::~HttpServer() { Stop(); }

namespace {

void AddRoute(ServerCore* core, std::string method, const std::string& pattern, HandlerKind kind,
              HttpHandler handler, HttpAsyncHandler async, HttpTryHandler try_handler = nullptr) {
  http_internal::RouteEntry route;
  route.method = std::move(method);
  route.kind = kind;
  route.handler = std::move(handler);
  route.async = std::move(async);
  route.try_handler = std::move(try_handler);
  size_t at = 1;
  while (at <= pattern.size()) {
    size_t slash = pattern.find('/', at);
    if (slash == std::string::npos) slash = pattern.size();
    std::string segment = pattern.substr(at, slash - at);
    if (segment.size() >= 2 && segment.front() == '{' && segment.back() == '}') segment = "{}";
    route.segments.push_back(std::move(segment));
    at = slash + 1;
  }
  core->routes.push_back(std::move(route));
}

}  // namespace

void HttpServer::Inline(std::string method, std::string pattern, HttpHandler handler) {
  AddRoute(core_.get(), std::move(method), pattern, HandlerKind::kInline, std::move(handler), nullptr);
}
void HttpServer::Worker(std::string method, std::string pattern, HttpHandler handler) {
  AddRoute(core_.get(), std::move(method), pattern, HandlerKind::kWorker, std::move(handler), nullptr);
}
void HttpServer::Async(std::string method, std::string pattern, HttpAsyncHandler handler) {
  AddRoute(core_.get(), std::move(method), pattern, HandlerKind::kAsync, nullptr, std::move(handler));
}
void HttpServer::InlineUnlessBusy(std::string method, std::string pattern, HttpTryHandler handler) {
  AddRoute(core_.get(), std::move(method), pattern, HandlerKind::kInlineUnlessBusy, nullptr, nullptr,
           std::move(handler));
}
void HttpServer::SetBeforeRoute(std::function<bool(const HttpRequest&, HttpResponse*)> hook) {
  core_->before_route = std::move(hook);
}
void HttpServer::SetAfterRound(std::function<void()> hook) { core_->after_round = std::move(hook); }

Status HttpServer::Start() {
  ServerCore& core = *core_;
  const HttpServerOptions& o = core.options;
  std::string address = o.bind == "localhost" ? "127.0.0.1" : o.bind;
  sockaddr_storage storage{};
  socklen_t addr_len;
  const bool v6 = address.find(':') != std::string::npos;
  if (v6) {
    auto* addr = reinterpret_cast<sockaddr_in6*>(&storage);
    addr->sin6_family = AF_INET6;
    addr->sin6_port = htons(static_cast<uint16_t>(o.port));
    if (::inet_pton(AF_INET6, address.c_str(), &addr->sin6_addr) != 1) {
      return Status::IOError("cannot bind " + o.bind + ": not an IP address");
    }
    addr_len = sizeof(sockaddr_in6);
  } else {
    auto* addr = reinterpret_cast<sockaddr_in*>(&storage);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(static_cast<uint16_t>(o.port));
    if (::inet_pton(AF_INET, address.c_str(), &addr->sin_addr) != 1) {
      return Status::IOError("cannot bind " + o.bind + ": not an IP address");
    }
    addr_len = sizeof(sockaddr_in);
  }
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), addr_len) != 0 || ::listen(fd, 1024) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Status::IOError("cannot bind " + o.bind + ":" + std::to_string(o.port) + ": " + why);
  }
  socklen_t len = sizeof storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &len);
  core.port = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port)
                 : ntohs(reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  core.listen_fd = fd;
  for (int i = 0; i < o.io_threads; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->core = &core;
    loop->index = i;
    loop->epfd = ::epoll_create1(EPOLL_CLOEXEC);
    loop->wakefd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || loop->wakefd < 0) return Status::IOError("epoll_create1 / eventfd failed");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;  // one loop wakes per new connection
    ev.data.ptr = &core.listen_marker;
    ::epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
    ev.events = EPOLLIN;
    ev.data.ptr = &core.wake_marker;
    ::epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev);
    core.loops.push_back(std::move(loop));
  }
  for (int i = 0; i < o.worker_threads; ++i) core.workers.emplace_back([&core] { core.WorkerLoop(); });
  for (auto& loop : core.loops) {
    Loop* l = loop.get();
    l->thread = std::thread([&core, l] { core.RunLoop(l); });
  }
  core.started = true;
  return Status::OK();
}

int HttpServer::port() const { return core_->port; }

void HttpServer::Stop() {
  ServerCore& core = *core_;
  std::lock_guard stop_lock(core.stop_mu);
  if (core.stopped) return;
  core.stopped = true;
  core.stopping.store(true);
  if (core.listen_fd >= 0) {
    for (auto& loop : core.loops) ::epoll_ctl(loop->epfd, EPOLL_CTL_DEL, core.listen_fd, nullptr);
  }
  for (auto& loop : core.loops) {
    uint64_t one = 1;
    ssize_t ignored = ::write(loop->wakefd, &one, sizeof one);
    (void)ignored;
  }
  for (auto& loop : core.loops) {
    if (loop->thread.joinable()) loop->thread.join();
  }
  for (auto& loop : core.loops) {  // accepted for a loop just as it exited
    for (auto& conn : loop->incoming) ::close(conn->fd);
    loop->incoming.clear();
  }
  {
    std::lock_guard lock(core.work_mu);
    core.work_stop = true;
  }
  core.work_cv.notify_all();
  for (auto& t : core.workers) t.join();
  core.workers.clear();
  for (auto& loop : core.loops) {
    if (loop->epfd >= 0) ::close(loop->epfd);
    if (loop->wakefd >= 0) ::close(loop->wakefd);
    loop->epfd = loop->wakefd = -1;
  }
  if (core.listen_fd >= 0) ::close(core.listen_fd);
  core.listen_fd = -1;
}

bool HttpServer::PollOnce() {
  Loop* loop = http_internal::tls_loop;
  if (loop == nullptr || loop->core != core_.get()) return false;
  core_->RunRound(loop, 0, /*run_hook=*/false);
  return true;
}

bool HttpServer::OnIoThread() const {
  return http_internal::tls_loop != nullptr && http_internal::tls_loop->core == core_.get();
}

void HttpServer::Wake() {
  if (core_->loops.empty()) return;
  Loop* loop = core_->loops.front().get();
  loop->wake_hook.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(loop->wakefd, &one, sizeof one);
  (void)ignored;
}

size_t HttpServer::connections() const { return core_->connections.load(); }
size_t HttpServer::in_flight() const { return core_->in_flight.load(); }

}  // namespace shoal
