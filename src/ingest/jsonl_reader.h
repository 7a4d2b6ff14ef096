// Internal: the JSONL implementation of EventReader (created by EventReader::Open).
#pragma once

#include <memory>
#include <string>

#include "ingest/reader.h"
#include "ingest/json_event_parser.h"
#include "ingest/reader_support.h"

namespace simdjson::dom {
class parser;
class element;
}  // namespace simdjson::dom

namespace shoal::ingest_internal {

class JsonlReader final : public EventReader {
 public:
  JsonlReader(std::unique_ptr<InputBuffer> input, const EventTypeRegistry& registry,
              Quarantine* quarantine);
  ~JsonlReader() override;
  Result<bool> Next(EventBatch* batch, size_t max_events) override;
  void set_max_record_bytes(size_t n) { max_record_bytes_ = n; }

 private:
  bool ParseRecord(std::string_view text, uint64_t line, EventBatch* batch, Problem* problem);
  void Reject(uint64_t line, std::string_view field, std::string_view reason, std::string_view raw);

  std::unique_ptr<InputBuffer> input_;
  const EventTypeRegistry& registry_;
  JsonEventParser event_parser_;
  Quarantine* quarantine_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  DuplicateCounter duplicates_;
  std::string scratch_;
  size_t max_record_bytes_ = 1 << 20;
};

}  // namespace shoal::ingest_internal
