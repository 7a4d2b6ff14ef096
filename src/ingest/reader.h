// EventReader: reads a JSONL or delimited source into EventBatches of canonical events
// (docs/events.md), sending every bad record to a Quarantine instead of failing
// (docs/mappings.md). One reader reads one source, from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "ingest/event.h"
#include "ingest/mapping.h"
#include "ingest/quarantine.h"

namespace shoal {

enum class SourceFormat { kAuto, kJsonl, kDelimited };

struct ReadStats {
  uint64_t records = 0;      // records read (JSON lines, data rows), blank lines not counted
  uint64_t events = 0;       // good events returned (an order of several rows is one event)
  uint64_t quarantined = 0;  // records sent to the quarantine
  uint64_t bytes = 0;        // bytes of the source consumed so far
  uint64_t skipped = 0;      // records dropped on purpose by a mapping rule ("skip")
};

struct SourceSpec {
  std::string path;                            // file path; "-" = stdin
  SourceFormat format = SourceFormat::kAuto;   // auto: .jsonl/.ndjson/.json -> jsonl, else delimited
  std::optional<Mapping> mapping;              // required for delimited files whose header is not canonical
  size_t max_record_bytes = 1 << 20;           // longer records are quarantined (reader keeps going)
};

// Reads events from one source. Not thread-safe: one caller at a time.
class EventReader {
 public:
  // Opens the source; fails (IOError naming the path) only if it cannot be read at all, or
  // (InvalidArgument) if the mapping does not fit the file's header (or a delimited file has no
  // mapping and a non-canonical header). `registry` and `quarantine` must outlive the reader;
  // `quarantine` may be null (bad records are then only counted in stats().quarantined).
  static Result<std::unique_ptr<EventReader>> Open(const SourceSpec& spec,
                                                   const EventTypeRegistry& registry,
                                                   Quarantine* quarantine);

  // Clears `batch` and fills it with up to max_events (>= 1) good events. Returns true whenever
  // `batch` is non-empty, false only when the source is exhausted and `batch` is empty. Bad
  // records go to the quarantine and never abort; an error Status means the source could not be
  // read further (I/O error). Reusing one batch allocates nothing per event in steady state.
  virtual Result<bool> Next(EventBatch* batch, size_t max_events) = 0;

  const ReadStats& stats() const { return stats_; }
  // The file size when known (for progress bars), else 0 (stdin, pipes).
  uint64_t bytes_total() const { return bytes_total_; }
  virtual ~EventReader();

 protected:
  EventReader() = default;
  ReadStats stats_;
  uint64_t bytes_total_ = 0;
};

// The format `spec` resolves to (kAuto decided by the file extension and the mapping).
SourceFormat ResolveFormat(const SourceSpec& spec);

}  // namespace shoal
