// Quarantine: where bad input records go instead of aborting a load (docs/mappings.md,
// "Quarantine"). Each record becomes one JSON line {"source","line","field","reason","raw"}.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace shoal {

class Quarantine {
 public:
  // Longest raw excerpt kept per record; longer records are cut (and marked "raw_truncated").
  static constexpr size_t kMaxRawBytes = 1024;

  // A quarantine that only counts (no file).
  Quarantine() = default;
  // Opens `path` for appending (created if absent). IOError naming the path if it cannot be
  // opened.
  static Result<std::unique_ptr<Quarantine>> Open(const std::string& path);
  ~Quarantine();
  Quarantine(const Quarantine&) = delete;
  Quarantine& operator=(const Quarantine&) = delete;

  // Records one bad record. `source` is the file name, `line` its 1-based line (0: unknown),
  // `field` the offending field ("" for the whole record), `reason` a human sentence, `raw` the
  // record's bytes (cut to kMaxRawBytes; invalid UTF-8 becomes U+FFFD so the file stays valid
  // JSON). Thread-safe. A write failure is remembered and returned by Flush().
  void Add(std::string_view source, uint64_t line, std::string_view field,
           std::string_view reason, std::string_view raw);

  // Writes buffered lines to the file. Returns the first write error seen, if any.
  Status Flush();

  // Total records quarantined so far. Thread-safe.
  uint64_t total() const;
  // Counts per reason kind (the reason up to its first quote, e.g. "unknown event type"), in
  // name order. Thread-safe.
  std::vector<std::pair<std::string, uint64_t>> CountsByReason() const;
  // "3 records quarantined: 2 unknown event type, 1 unparsable timestamp" or "" when none.
  std::string Summary() const;
  // The file path, or "" when counting only.
  const std::string& path() const { return path_; }

 private:
  mutable std::mutex mu_;
  std::string path_;
  std::FILE* file_ = nullptr;
  std::string buffer_;
  Status write_status_;
  uint64_t total_ = 0;
  std::map<std::string, uint64_t, std::less<>> counts_;
};

// Appends `s` to `out` as the body of a JSON string (no quotes): escapes quotes, backslashes and
// control characters, and replaces each invalid UTF-8 sequence with U+FFFD.
void AppendJsonEscaped(std::string_view s, std::string* out);

// True when `s` is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view s);

}  // namespace shoal
