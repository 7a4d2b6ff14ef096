// Encoding of event blocks as stored in the events column family: a compact, versioned binary
// form of a sequence of events (varints; only present fields written, flagged by a bitmask).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ingest/event.h"

namespace shoal {

// Appends the encoding of `events` (indices into `batch`) to *out. Source names and line numbers
// are not stored (they belong to the load, not the event).
void EncodeEvents(const EventBatch& batch, std::span<const uint32_t> event_indices, std::string* out);
// Appends all events of an encoded block to *batch (strings copied into its arena).
// Corruption on a malformed block.
Status DecodeEvents(std::string_view block, EventBatch* batch);
// Appends the events of an encoded block whose timestamp is in [from, to), in block order; the
// others are parsed past without copying anything (so a replay of one time interval pays little
// for the rest). If given, *earliest / *latest are lowered / raised to every event's timestamp,
// kept or not. Corruption on a malformed block.
Status DecodeEventsInRange(std::string_view block, TimeMicros from, TimeMicros to, EventBatch* batch,
                           TimeMicros* earliest = nullptr, TimeMicros* latest = nullptr);

}  // namespace shoal
