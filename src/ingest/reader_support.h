// Internal pieces shared by the JSONL and delimited readers: chunked input with record
// splitting, derived-id counting, type lookup and the checks every event passes. Not a public
// API of the module (include reader.h instead).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "ingest/event.h"

namespace shoal::ingest_internal {

// Reads a file (or stdin) in large chunks and hands out records: lines, or with `quote` set,
// RFC-4180 records whose quoted fields may hold newlines. Keeps SIMDJSON-sized padding after the
// data so records can be parsed in place. A UTF-8 BOM at the start is skipped.
class InputBuffer {
 public:
  static constexpr size_t kPadding = 64;  // >= SIMDJSON_PADDING
  static constexpr size_t kRawPrefix = 1024;
  static constexpr size_t kReadChunk = size_t{256} << 10;  // bytes asked of one read()
  // A regular file is asked ahead: the kernel reads the next kReadAhead bytes from disk (once
  // every kReadAhead / 2 consumed) while the parser works on what it has, so a file that is
  // not in the page cache costs the disk's time beside the parse, not after it.
  static constexpr uint64_t kReadAhead = uint64_t{16} << 20;

  struct Record {
    enum class Kind { kOk, kTooLong, kUnterminatedQuote };
    std::string_view text;  // without the line terminator; for kTooLong only the first 1 KiB
    uint64_t line = 0;      // 1-based line where the record starts
    Kind kind = Kind::kOk;
    size_t full_size = 0;   // bytes of the record (kTooLong: its real length)
    bool has_quote = true;  // false when the record surely holds no quote byte
  };

  // IOError naming the path if it cannot be opened.
  static Result<std::unique_ptr<InputBuffer>> Open(const std::string& path, size_t max_record_bytes);
  ~InputBuffer();

  // Next record; false at the end. text stays valid until the next call. Padding bytes after
  // text are readable (the text lies inside the buffer). `quote` 0 = plain lines.
  Result<bool> NextRecord(Record* rec, char quote, char delimiter);

  // The bytes read ahead and not yet handed out (at least the first chunk after Open), for
  // sniffing the delimiter before reading records.
  std::string_view Buffered() const { return std::string_view(buf_.get() + pos_, end_ - pos_); }

  uint64_t bytes_total() const { return bytes_total_; }
  uint64_t bytes_consumed() const { return bytes_consumed_; }
  const std::string& path() const { return path_; }

 private:
  Status Refill();
  // Finds the end ('\n') of a record starting at pos_ with quoting; returns the offset of the
  // newline or npos; *open_quote tells whether the scan ended inside quotes.
  size_t FindQuotedEnd(char quote, char delimiter, bool* open_quote) const;

  std::string path_;
  int fd_ = -1;
  bool own_fd_ = false;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  bool started_ = false;
  uint64_t line_ = 1;
  size_t max_record_ = 0;
  uint64_t bytes_total_ = 0;
  uint64_t bytes_read_ = 0;       // from the file so far
  uint64_t next_read_ahead_ = 0;  // regular files: where the next read-ahead is asked
  bool read_ahead_ = false;       // a regular file (not stdin or a pipe)
  uint64_t bytes_consumed_ = 0;
  std::string long_prefix_;
};

// Counts earlier identical records (by XXH3-64 of their bytes) for derived event ids. Open
// addressing over contiguous slots: no allocation per record.
class DuplicateCounter {
 public:
  // Returns how many times `hash` was seen before, and counts this one.
  uint32_t Count(uint64_t hash);

 private:
  void Grow();
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> counts_;
  size_t size_ = 0;
};

// Writes "<tag>:<16 hex digits>:<k>" into `out` (reused).
void FormatDerivedId(std::string_view tag, uint64_t hash, uint32_t k, std::string* out);

// Resolves type names through the registry with a small cache of recent names.
class TypeResolver {
 public:
  explicit TypeResolver(const EventTypeRegistry& registry) : registry_(registry) {}
  std::optional<uint16_t> Find(std::string_view name);

 private:
  const EventTypeRegistry& registry_;
  struct Entry { std::string name; uint16_t code; };
  std::vector<Entry> cache_;
  size_t next_ = 0;
  size_t last_hit_ = 0;
};

// A timestamp parser that remembers the last text it parsed (exports repeat dates).
class CachedTimeParser {
 public:
  explicit CachedTimeParser(TimeParser parser) : parser_(std::move(parser)) {}
  Result<TimeMicros> Parse(std::string_view text);

 private:
  TimeParser parser_;
  std::string last_text_;
  TimeMicros last_value_ = 0;
  bool has_last_ = false;
};

// Why a record is quarantined.
struct Problem {
  std::string field;
  std::string reason;
};

// The checks every event passes once filled (docs/events.md, "Validation"): an identifier
// unless it is an order, non-negative finite line quantities, declared numeric properties of
// custom types, consent value; computes an order/return total from its lines when absent.
// Returns false and fills *problem for a bad event.
bool FinishEvent(const EventTypeRegistry& registry, EventBatch* batch, Event* event,
                 Problem* problem);

// The email normal form: trimmed, ASCII lower-cased. Uses *scratch.
std::string_view NormalizeEmail(std::string_view email, std::string* scratch);

// Number -> id text: integral values without a fraction ("17850"), others shortest form.
std::string_view NumberToText(double value, char (&buf)[64]);

}  // namespace shoal::ingest_internal
