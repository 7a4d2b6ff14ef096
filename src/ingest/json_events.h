// Canonical JSON events from a string (the server's request bodies): one event object or an
// array of them, parsed with the same field rules as the JSONL reader (docs/events.md), with a
// result per item so the good events of a batch go through while the bad ones are named.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ingest/event.h"

namespace shoal {

struct JsonEventsOptions {
  std::string source_tag = "http";  // tag of derived ids: "<tag>:<xxh3 hex of the item>:<k>"
  size_t max_events = 10000;        // an array with more items is refused as a whole
};

// The outcome of one item of the body, in body order.
struct ItemResult {
  bool ok = false;
  std::string event_id;  // the given or derived id (ok items)
  std::string field;     // the offending field ("" when the item as a whole is bad)
  std::string reason;    // why the item was refused
};

// Clears `batch` and appends every good event of `body` (one JSON object, or an array of
// objects); `per_item` gets one entry per item. An event without event_id gets the deterministic
// id of docs/events.md computed over the item's minified JSON text, k counting identical items
// earlier in the same body -- so a retried request dedupes. Returns InvalidArgument (message
// names the problem, batch empty) when the body is not JSON, is neither an object nor an array,
// or has more than options.max_events items. Thread-safe (one parser per thread).
Status ParseJsonEvents(std::string_view body, const EventTypeRegistry& registry, EventBatch* batch,
                       std::vector<ItemResult>* per_item, const JsonEventsOptions& options = {});

}  // namespace shoal
