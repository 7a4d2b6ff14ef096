#include "ingest/json_events.h"

#include <simdjson.h>
#include <xxhash.h>

#include "ingest/json_event_parser.h"
#include "ingest/reader_support.h"

namespace shoal {

using ingest_internal::DuplicateCounter;
using ingest_internal::FormatDerivedId;
using ingest_internal::JsonEventParser;
using ingest_internal::Problem;

Status ParseJsonEvents(std::string_view body, const EventTypeRegistry& registry, EventBatch* batch,
                       std::vector<ItemResult>* per_item, const JsonEventsOptions& options) {
  batch->Clear();
  per_item->clear();
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element doc;
  auto error = parser.parse(body.data(), body.size(), true).get(doc);
  if (error) {
    if (error == simdjson::UTF8_ERROR) return Status::InvalidArgument("body is not valid UTF-8");
    return Status::InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(error));
  }
  const bool is_array = doc.type() == simdjson::dom::element_type::ARRAY;
  if (!is_array && doc.type() != simdjson::dom::element_type::OBJECT) {
    return Status::InvalidArgument("body must be one event object or an array of event objects");
  }
  simdjson::dom::array items;
  if (is_array) {
    items = doc.get_array().value_unsafe();
    size_t n = items.size();
    if (n > options.max_events) {
      return Status::InvalidArgument("batch has " + std::to_string(n) + " events; the limit is " +
                                     std::to_string(options.max_events));
    }
  }
  batch->sources.push_back(options.source_tag);
  JsonEventParser event_parser(registry);
  DuplicateCounter duplicates;
  Problem problem;
  std::string id_scratch;
  auto parse_one = [&](const simdjson::dom::element& item, uint64_t index) {
    ItemResult result;
    Event e;
    if (!event_parser.ParseObject(item, index + 1, batch, &e, &problem)) {
      result.field = problem.field;
      result.reason = problem.reason;
      per_item->push_back(std::move(result));
      return;
    }
    if (e.event_id.empty()) {
      std::string minified = simdjson::minify(item);
      uint64_t hash = XXH3_64bits(minified.data(), minified.size());
      FormatDerivedId(options.source_tag, hash, duplicates.Count(hash), &id_scratch);
      e.event_id = batch->Intern(id_scratch);
    }
    e.id_hash = EventIdHash(e.event_id);
    result.ok = true;
    result.event_id = std::string(e.event_id);
    batch->events.push_back(e);
    per_item->push_back(std::move(result));
  };
  if (is_array) {
    uint64_t index = 0;
    for (simdjson::dom::element item : items) parse_one(item, index++);
  } else {
    parse_one(doc, 0);
  }
  return Status::OK();
}

}  // namespace shoal
