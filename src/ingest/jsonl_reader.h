// Internal: the JSONL implementation of EventReader (created by EventReader::Open).
#pragma once

#include <memory>
#include <string>

#include "ingest/reader.h"
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
  struct Record;
  bool ParseRecord(std::string_view text, uint64_t line, EventBatch* batch, Problem* problem);
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
  void Reject(uint64_t line, std::string_view field, std::string_view reason, std::string_view raw);

  std::unique_ptr<InputBuffer> input_;
  const EventTypeRegistry& registry_;
  TypeResolver types_;
  CachedTimeParser time_parser_;
  Quarantine* quarantine_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  DuplicateCounter duplicates_;
  std::string scratch_;
  char number_buf_[64] = {};
  size_t max_record_bytes_ = 1 << 20;
};

}  // namespace shoal::ingest_internal
