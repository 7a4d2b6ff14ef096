// The real-time server (docs/server.md): an HTTP/JSON API over one workspace, with durable
// group-committed ingest, memberships kept current event by event and by a timer, and
// activation of every membership change through a durable outbox to webhooks.
//
// Threads: `io_threads` epoll loops (server/http_server.h) serve every connection: they parse
// requests, answer lookups, health and metrics inline (lookups and health only when the shared
// lock on the engine is free within 150 us, else on a worker) and queue event batches with their
// one-shot responders; `worker_threads` run the slow requests (exports, member lists, forget,
// rebuild). Mutations go through one queue and group commit:
// the apply leader (the committer thread, or with commit_thread = false the I/O thread that
// found the queue idle) takes what is queued, applies it, re-evaluates the memberships of the
// profiles it touched (and of those whose NextChange time has come), makes the events, the new
// memberships and their outbox records durable with one fsync, then answers every request of
// the group, writing each response straight to its socket. No I/O thread waits for a group.
// A ticker thread submits timed re-evaluations and checkpoints; one delivery thread per webhook
// destination; one export scheduler thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/status.h"
#include "engine/engine.h"
#include "server/activation.h"
#include "server/membership.h"
#include "server/server_config.h"

namespace shoal {

struct ServerOptions {
  std::string db_dir = "./shoal-data";  // the workspace
  std::string config_path;              // workspace TOML; "" = <db_dir>/shoal.toml if present
  std::optional<std::string> bind;      // overrides [server].bind
  std::optional<int> port;              // overrides [server].port (0 = any free port)
  Context context;                      // clock: the "now" memberships are evaluated at
  // On a start that finds no stored memberships at all (a new workspace, or the first start
  // after the server was added to one), emit every profile's memberships as entered records
  // (cause "recovery"); false = store them silently as the baseline and send only changes.
  bool announce_initial_memberships = true;
};

class Server {
 public:
  // Opens the workspace, reconciles every profile's memberships with the last stored ones
  // (re-emitting any change a crash kept from the outbox, cause "recovery"), loads the outbox,
  // then starts the writer, the delivery workers, the export scheduler and the listener.
  // `source` null = the last build's BuildMembershipSource, or before any build a
  // TraitThresholdSource from the workspace's [[audiences]]. `engine` non-null = serve this
  // already open engine (over options.db_dir, its config the workspace's: [server] and
  // [[destinations]] are read from it) instead of opening the workspace -- a program that has
  // just ingested and built saves the reload.
  // InvalidArgument when no [[server.tokens]] are configured and the bind address is not
  // loopback; IOError when the port cannot be bound.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               std::unique_ptr<MembershipSource> source = nullptr,
                                               std::unique_ptr<Engine> engine = nullptr);
  ~Server();  // Stop()

  // The bound port (the real one when 0 was asked).
  int port() const;
  const ServerConfig& config() const;
  // Stops accepting, answers the requests already queued, checkpoints, stops the workers.
  // Undelivered outbox records stay stored for the next start. Idempotent; thread-safe.
  void Stop();
  // Blocks until Stop() has been called (from another thread or a signal).
  void Wait();

  // The members of `membership` ("audience:x", "segment:y"; a bare name means "audience:x")
  // as an export. marketing = leave out customers who opted out. Thread-safe.
  Result<std::string> ExportAudience(const std::string& membership, const ExportOptions& options,
                                     bool marketing);

  struct Impl;

 private:
  Server() = default;
  std::unique_ptr<Impl> impl_;
};

// `shoal serve`: starts a server and runs it until SIGINT or SIGTERM; prints where it listens.
// Returns the process exit code (2 on a start error, printed to stderr).
int ServeUntilSignal(const ServerOptions& options);

// The OpenAPI 3 description of the API, served at /openapi.json.
const std::string& OpenApiJson();

}  // namespace shoal
