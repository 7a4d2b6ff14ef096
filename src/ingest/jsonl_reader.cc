// The JSONL reader: one JSON object per line, parsed in place with simdjson's DOM parser (one
// parser reused; lines lie inside a padded chunk buffer, so nothing is copied or allocated per
// event in steady state).
#include <simdjson.h>
#include <xxhash.h>

#include <charconv>
#include <cmath>

#include "ingest/jsonl_reader.h"
#include "ingest/reader_support.h"

namespace shoal::ingest_internal {

using simdjson::dom::element;

JsonlReader::JsonlReader(std::unique_ptr<InputBuffer> input, const EventTypeRegistry& registry,
                         Quarantine* quarantine)
    : input_(std::move(input)),
      registry_(registry),
      event_parser_(registry),
      quarantine_(quarantine),
      parser_(std::make_unique<simdjson::dom::parser>()) {
  bytes_total_ = input_->bytes_total();
}

JsonlReader::~JsonlReader() = default;

void JsonlReader::Reject(uint64_t line, std::string_view field, std::string_view reason,
                         std::string_view raw) {
  ++stats_.quarantined;
  if (quarantine_ != nullptr) quarantine_->Add(input_->path(), line, field, reason, raw);
}

Result<bool> JsonlReader::Next(EventBatch* batch, size_t max_events) {
  batch->Clear();
  batch->sources.push_back(input_->path());
  if (max_events == 0) max_events = 1;
  InputBuffer::Record rec;
  Problem problem;
  while (batch->events.size() < max_events) {
    SHOAL_ASSIGN_OR_RETURN(bool more, input_->NextRecord(&rec, 0, 0));
    if (!more) break;
    stats_.bytes = input_->bytes_consumed();
    if (rec.kind == InputBuffer::Record::Kind::kTooLong) {
      ++stats_.records;
      Reject(rec.line, "", "record too long (" + std::to_string(rec.full_size) +
                               " bytes; the maximum is " + std::to_string(max_record_bytes_) + ")",
             rec.text);
      continue;
    }
    std::string_view text = rec.text;
    size_t first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) continue;  // blank line
    ++stats_.records;
    if (ParseRecord(text, rec.line, batch, &problem)) {
      ++stats_.events;
    } else {
      Reject(rec.line, problem.field, problem.reason, text);
    }
  }
  stats_.bytes = input_->bytes_consumed();
  return !batch->events.empty();
}

bool JsonlReader::ParseRecord(std::string_view text, uint64_t line, EventBatch* batch,
                              Problem* problem) {
  element doc;
  auto error = parser_->parse(text.data(), text.size(), false).get(doc);
  if (error) {
    problem->field.clear();
    if (error == simdjson::UTF8_ERROR) {
      problem->reason = "not valid UTF-8";
    } else {
      problem->reason = std::string("malformed JSON: ") + simdjson::error_message(error);
    }
    return false;
  }
  Event e;
  if (!event_parser_.ParseObject(doc, line, batch, &e, problem)) return false;
  if (e.event_id.empty()) {
    uint64_t hash = XXH3_64bits(text.data(), text.size());
    FormatDerivedId("jsonl", hash, duplicates_.Count(hash), &scratch_);
    e.event_id = batch->Intern(scratch_);
  }
  e.id_hash = EventIdHash(e.event_id);
  batch->events.push_back(e);
  return true;
}

}  // namespace shoal::ingest_internal
