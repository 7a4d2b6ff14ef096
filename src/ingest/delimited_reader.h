// Internal: the delimited (CSV, TSV, whitespace, basket) implementation of EventReader.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ingest/mapping.h"
#include "ingest/reader.h"
#include "ingest/reader_support.h"

namespace shoal::ingest_internal {

class DelimitedReader final : public EventReader {
 public:
  // Reads the header (if any) and compiles the mapping (or the canonical header).
  static Result<std::unique_ptr<EventReader>> Make(std::unique_ptr<InputBuffer> input,
                                                   const SourceSpec& spec,
                                                   const EventTypeRegistry& registry,
                                                   Quarantine* quarantine);
  Result<bool> Next(EventBatch* batch, size_t max_events) override;

 private:
  DelimitedReader(std::unique_ptr<InputBuffer> input, const EventTypeRegistry& registry,
                  Quarantine* quarantine);
  Status Start(const SourceSpec& spec);
  // Splits a record into fields_; `may_have_quote` false skips the search for quotes.
  void SplitFields(std::string_view text, bool may_have_quote = true);
  void ProcessRecord(const InputBuffer::Record& rec, EventBatch* batch);
  void ProcessDecoded(const InputBuffer::Record& rec, EventBatch* batch);  // text is UTF-8 now
  void ProcessRow(std::string_view text, uint64_t line, bool may_have_quote, EventBatch* batch);
  void ProcessBasket(std::string_view text, uint64_t line, EventBatch* batch);
  // Reads the row's fields into *e (strings interned into *target). False on a bad value.
  bool BuildEvent(EventBatch* target, Event* e, bool fields_for_lines, Problem* problem);
  bool BuildLine(OrderLine* line, EventBatch* target, Problem* problem);
  // The value of a source for the current row, casts applied (may point into scratch_).
  std::string_view Value(const CompiledMapping::Source& source, Field field);
  std::string_view RawValue(const CompiledMapping::Source& source) const;
  std::string ColumnLabel(const CompiledMapping::Source& source, std::string_view fallback) const;
  bool NumberValue(const CompiledMapping::Source& source, std::string_view label, double* out,
                   Problem* problem);
  void CloseGroup(EventBatch* batch);
  // Finishes *e and appends it to *batch; false (the row quarantined, *failed set if given)
  // when the event is invalid.
  bool Emit(EventBatch* from, Event* e, std::string_view raw, EventBatch* batch,
            Problem* failed = nullptr);
  // The current row's order key (order id + '\x1f' + customer) into id_scratch_; returns
  // whether the row has an order id, and sets *continues when it continues the open order.
  bool OrderRowKey(bool* continues);
  // Quarantines a row; when the row is an order line (a mapping with [lines]), the rest of its
  // order goes too (PoisonGroup).
  void RejectRow(uint64_t line, std::string_view field, std::string_view reason,
                 std::string_view text, EventBatch* batch);
  // An order is stored whole or not at all: a bad row of the open order quarantines the rows
  // kept so far and, until the order ends, every later row of it, each with a reason naming the
  // bad row. (Stored partially, a corrected file could never complete it: the order's id would
  // be a duplicate.)
  // Quarantines every kept row of the open order but the one on `bad_line` (the bad row
  // itself, quarantined by the caller with its own reason).
  void PoisonGroup(uint64_t bad_line, std::string_view field, std::string_view reason);
  // Opens order `key` (order id + '\x1f' + customer) already poisoned by its bad row.
  void OpenPoisonedGroup(std::string key, uint64_t bad_line, std::string_view field,
                         std::string_view reason);
  // The open order's first row (for derived ids of unkeyed orders and the quarantine).
  std::string_view GroupFirstRow() const;
  void AddGroupRow(uint64_t line, std::string_view text);
  void ClearGroupRows();
  void Reject(uint64_t line, std::string_view field, std::string_view reason, std::string_view raw);

  std::unique_ptr<InputBuffer> input_;
  const EventTypeRegistry& registry_;
  TypeResolver types_;
  Quarantine* quarantine_;
  std::optional<Mapping> mapping_;
  SourceOptions options_;
  CompiledMapping plan_;
  bool compiled_ = false;
  char delimiter_ = ',';
  bool whitespace_ = false;
  char quote_ = '"';
  std::optional<CachedTimeParser> time_parser_;
  // The fields read per row (type and timestamp excluded), with what the loop needs to know.
  struct FieldSlot {
    Field field;
    bool numeric;
    bool line_field;  // canonical CSV: a line field of orders and returns
    const CompiledMapping::Source* source;
  };
  std::vector<FieldSlot> slots_;
  bool has_overrides_ = false;  // a rule set a field on this row
  size_t max_record_bytes_ = 1 << 20;

  // The first data row, read at Start() to learn the column count of a headerless file.
  bool has_first_ = false;
  std::string first_text_;
  uint64_t first_line_ = 0;
  InputBuffer::Record::Kind first_kind_ = InputBuffer::Record::Kind::kOk;
  size_t first_size_ = 0;

  // Per row.
  std::vector<std::string_view> fields_;
  std::string unquoted_;  // unescaped quoted fields (reserved per record, never reallocated)
  std::string scratch_;
  std::string id_scratch_;
  std::string decoded_;   // the record decoded to UTF-8 (latin1 / cp1252 sources)
  std::array<const std::string*, kNumFields> overrides_{};
  std::vector<const std::string*> flags_;
  DuplicateCounter duplicates_;

  // The order being grouped from consecutive rows.
  EventBatch group_;
  bool group_open_ = false;
  bool group_keyed_ = false;  // false: a single-row order, never continued
  std::string group_key_;     // order key + '\x1f' + customer
  // Its rows (line number, end offset of the text in group_rows_text_), for PoisonGroup; the
  // first is the order's own row.
  std::vector<std::pair<uint64_t, size_t>> group_rows_;
  std::string group_rows_text_;
  bool group_poisoned_ = false;  // a row was bad: the order's rows are quarantined
  std::string group_poison_field_, group_poison_reason_;
  DuplicateCounter closed_groups_;

  // Events that did not fit the caller's batch, returned first by the next Next().
  EventBatch carry_;
};

}  // namespace shoal::ingest_internal
