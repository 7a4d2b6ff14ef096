// JsonEventParser: turns one parsed JSON object into a canonical Event (docs/events.md): the
// field extraction shared by the JSONL reader and the server's request bodies. Internal to the
// ingest module (include json_events.h or reader.h instead).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ingest/event.h"
#include "ingest/reader_support.h"

namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

namespace shoal::ingest_internal {

// Not thread-safe: one parser per thread. `registry` must outlive it.
class JsonEventParser {
 public:
  explicit JsonEventParser(const EventTypeRegistry& registry);
  ~JsonEventParser();

  // Fills *out from `doc` (the record's top-level value; anything but an object is an error).
  // Strings are interned into `batch`, order lines and properties appended to it; `line` is the
  // event's source_line and source_idx the batch's last source. Does not derive a missing
  // event_id nor set id_hash (the caller's source decides) and does not append *out to the batch.
  // Returns false with *problem filled (field, reason) for a bad record, the batch's lines and
  // properties then as they were.
  bool ParseObject(const simdjson::dom::element& doc, uint64_t line, EventBatch* batch, Event* out,
                   Problem* problem);

 private:
  struct Record;
  bool HandleMember(std::string_view key, const simdjson::dom::element& value, bool nested,
                    EventBatch* batch, Record* r, Problem* problem);
  bool ParseLines(const simdjson::dom::element& value, EventBatch* batch, Record* r,
                  Problem* problem);
  bool AddProperty(std::string_view key, const simdjson::dom::element& value, EventBatch* batch,
                   Record* r, Problem* problem);
  bool GetText(const simdjson::dom::element& v, std::string_view field, std::string_view* out,
               Problem* problem);
  bool GetNumber(const simdjson::dom::element& v, std::string_view field, double* out,
                 Problem* problem);

  const EventTypeRegistry& registry_;
  TypeResolver types_;
  CachedTimeParser time_parser_;
  std::string scratch_;
  char number_buf_[64] = {};
};

}  // namespace shoal::ingest_internal
