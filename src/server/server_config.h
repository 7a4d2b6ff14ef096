// The server's part of the workspace TOML (docs/server.md): [server] (bind, port, limits),
// [[server.tokens]], [[destinations]] (webhooks) and [[exports]] (scheduled audience files).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common/status.h"
#include "server/activation.h"

namespace toml { inline namespace v3 { class table; } }

namespace shoal {

struct ApiToken {
  std::string token;       // the bearer token (or read from token_env)
  bool read = false;       // GET endpoints
  bool write = false;      // POST endpoints
};

// A webhook: every entered/exited record that passes the filters is POSTed as JSON.
struct WebhookDestination {
  std::string name;                     // [a-zA-Z0-9_-]+, unique; part of outbox keys
  std::string url;                      // http://host[:port]/path (https is not supported)
  std::string secret;                   // HMAC-SHA256 key of X-Shoal-Signature ("" = unsigned)
  bool marketing = true;                // never receives customers who opted out
  std::vector<std::string> memberships; // filter: "audience:x", "segment:y"; empty = all
  int max_attempts = 10;                // failures of one record before it is dead-lettered
  int backoff_initial_ms = 200;         // first retry delay; doubles per failure, +-50% jitter
  int backoff_max_ms = 60000;           // cap of the retry delay
  int timeout_ms = 5000;                // connect and read timeout of one POST
};

// An audience export written on a schedule (and by POST /v1/audiences/{name}/export).
struct ScheduledExport {
  std::string audience;              // membership "audience:<audience>" (or a full "kind:name")
  ExportFormat format = ExportFormat::kCsv;
  std::string path;                  // output file; relative paths are inside the workspace
  double every_minutes = 0;          // 0 = only on command
  bool marketing = true;             // leave out customers who opted out
};

struct ServerConfig {
  std::string bind = "127.0.0.1";    // address to listen on
  int port = 8080;                   // 0 = any free port
  std::vector<ApiToken> tokens;      // none: only loopback binds are allowed, no auth
  size_t max_body_bytes = 8 << 20;   // larger request bodies get 413
  size_t max_batch_events = 10000;   // larger event arrays get 413
  size_t max_connections = 10000;    // further connections are closed at once
  double idle_timeout_seconds = 30;  // a keep-alive connection idle this long is closed, and one
                                     // whose client reads none of its answers this long
  double read_timeout_seconds = 30;  // a request not fully received this long -> 408, close
  // While a connection's unread answers exceed this, its further requests wait unread.
  size_t max_pending_output_bytes = 4 << 20;
  // Epoll loops serving every connection (and leading commits); 0 = one less than the cores
  // (at least 1), EffectiveIoThreads: the committer needs a core of its own. On 2 cores, a
  // second loop raised idle lookups/s by ~20% but tripled the lookup p99 beside an event
  // stream (docs/benchmarks/server.md, session 6).
  int io_threads = 0;
  int worker_threads = 4;            // threads for slow requests: exports, member lists, forget, rebuild
  bool commit_thread = true;         // a committer thread leads every group commit; false = the
                                     // I/O thread that queues into an idle queue leads it
  size_t max_group_events = 2048;    // events per group commit at most (bounds reader waits)
  double checkpoint_seconds = 30;    // profile-state checkpoint period
  std::string default_country_code;  // for phone numbers without one (customer lists)
  std::vector<WebhookDestination> destinations;
  std::vector<ScheduledExport> exports;
};

// The epoll loops to run for `config` on `cores` cores: io_threads, or when it is 0 (the
// default) cores - 1, at least 1 and at most 8.
int EffectiveIoThreads(const ServerConfig& config, int cores);

// Reads the sections from `root` (absent sections keep the defaults). ParseError naming the key.
Result<ServerConfig> ParseServerConfig(const toml::table& root);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackAddress(std::string_view address);

}  // namespace shoal
