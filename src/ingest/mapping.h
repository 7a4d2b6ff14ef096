// Mapping: how a delimited export (CSV, TSV, whitespace columns, basket lists) becomes canonical
// events (docs/events.md). Loaded from a TOML recipe or a command-line string; the language is
// documented in docs/mappings.md. A Mapping is only a description: Compile() checks it against a
// file's header and yields the CompiledMapping the delimited reader runs per row.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace shoal {

// The canonical fields of an event, in canonical CSV header order (docs/mappings.md).
enum class Field : uint8_t {
  kEventId, kType, kTimestamp, kCustomerId, kEmail, kAnonymousId, kPhone, kChannel, kDevice,
  kOrderId, kCurrency, kProductId, kCategory, kQuantity, kUnitPrice, kDiscount, kTotal, kPrice,
  kDwellSeconds, kCampaignId, kSessionId, kQuery, kReferee, kTopic, kMarketing, kNumFields
};
constexpr size_t kNumFields = static_cast<size_t>(Field::kNumFields);
// "event_id", "type", ... (the canonical CSV column names).
std::string_view FieldName(Field field);
std::optional<Field> ParseField(std::string_view name);
// True for quantity, unit_price, discount, total, price, dwell_seconds.
bool IsNumericField(Field field);

// The fields of one order line, as named in a mapping's [lines] table.
enum class LineField : uint8_t { kProductId, kCategory, kQuantity, kUnitPrice, kDiscount, kNumLineFields };
constexpr size_t kNumLineFields = static_cast<size_t>(LineField::kNumLineFields);
std::string_view LineFieldName(LineField field);

// Value casts, applied in this order: trim, id, lower, number, abs.
enum Cast : uint32_t {
  kCastTrim = 1,     // strip surrounding white space
  kCastId = 2,       // "17850.0" -> "17850" (also trims); default for customer_id and order_id
  kCastLower = 4,    // lower-case ASCII
  kCastNumber = 8,   // parse as a number (numeric property; numeric fields always are)
  kCastAbs = 16,     // absolute value of a number
  kCastText = 32,    // keep the text exactly (turns off the default id cast)
  kCastMoney = 64,   // a number with a currency symbol or code: "$1,234.50", "12,50 €", "(5.00)"
};

// Where a field's value comes from: a column (by name or 1-based number) or a constant.
struct FieldSource {
  std::string key;            // for messages: "[fields].timestamp", "--map customer_id"
  std::string column_name;    // by name (when column_number == 0 and !is_constant)
  int column_number = 0;      // 1-based column number, 0 = by name
  bool is_constant = false;
  std::string constant;
  // From a --map string: a value that names no column is read as a constant (type=order).
  bool column_or_constant = false;
  uint32_t casts = 0;         // Cast bits
  std::string time_format;    // timestamp only: TimeParser format ("" = "auto")
};

// A condition on raw column values (trimmed): `Quantity < 0 and not InvoiceNo starts_with 'C'`.
struct Condition {
  enum class Op { kStartsWith, kEndsWith, kContains, kEquals, kNotEquals, kIn, kEmpty, kNotEmpty,
                  kLess, kLessEq, kGreater, kGreaterEq, kMatches };
  std::string column_name;     // by name, or
  int column_number = 0;       // 1-based
  Op op = Op::kEquals;
  bool negate = false;
  std::vector<std::string> values;  // operand(s)
  double number = 0;                // operand of <, <=, >, >=
  std::optional<std::regex> regex;  // kMatches
};

// What a matching rule does. Actions of one rule run in order; skip/quarantine end the row.
struct RuleAction {
  enum class Kind { kSetField, kSkip, kQuarantine, kFlag };
  Kind kind = Kind::kSkip;
  Field field = Field::kType;  // kSetField
  std::string value;           // kSetField value, kQuarantine reason, kFlag property name
};

struct Rule {
  std::string key;   // "[[rules]] #2" for messages
  std::string when;  // the source text, for messages
  std::vector<Condition> conditions;  // all must hold
  std::vector<RuleAction> actions;
};

// Options of the source file a mapping reads.
struct SourceOptions {
  // "," ";" "\t" "|" (any single byte), or "whitespace" (runs of spaces/tabs separate, leading
  // and trailing ones ignored). Empty = detected from the first line (tab, semicolon, pipe or
  // comma, whichever is most frequent; comma when none).
  std::string delimiter;
  bool header = true;                // first (non-skipped) line names the columns
  std::vector<std::string> columns;  // column names when header = false (optional)
  int skip_lines = 0;                // lines skipped before the header / first row
  char comment = 0;                  // lines starting with this byte are skipped (0 = none)
  char quote = '"';                  // RFC-4180 quoting; 0 = none. Not used with whitespace.
  bool basket = false;               // mode = "basket": each line is an anonymous order of items
  // Text encoding of the file: kUtf8 (invalid bytes quarantine the row), or a single-byte
  // encoding decoded to UTF-8 as read: kLatin1 (ISO-8859-1), kCp1252 (Windows-1252).
  enum class Encoding { kUtf8, kLatin1, kCp1252 };
  Encoding encoding = Encoding::kUtf8;
  // How numbers are written: the decimal mark ('.' or ',') and an optional digit-group
  // separator removed before parsing (0 = none; '.', ',', ' ' or '\''), e.g. decimal ',' and
  // thousands '.' read "1.234,56" as 1234.56. Rule operands in a mapping are always written
  // with '.'.
  char decimal = '.';
  char thousands = 0;
};

// Decodes `raw` (Latin-1 or Windows-1252) to UTF-8 into *out; returns `raw` itself when it is
// pure ASCII or the encoding is UTF-8.
std::string_view DecodeToUtf8(std::string_view raw, SourceOptions::Encoding encoding,
                              std::string* out);

// The result of checking a Mapping against a header: every column resolved to a 0-based index.
struct CompiledMapping {
  struct Source {
    int column = -1;          // 0-based, -1 = constant or absent
    bool present = false;
    std::string constant;     // when column == -1 && present
    uint32_t casts = 0;
    std::optional<TimeParser> time;  // timestamp only
  };
  struct CompiledCondition {
    int column = -1;
    Condition condition;
  };
  struct CompiledRule {
    std::vector<CompiledCondition> conditions;
    std::vector<RuleAction> actions;
  };
  std::array<Source, kNumFields> fields;
  std::vector<std::pair<std::string, Source>> properties;
  bool has_lines = false;
  std::array<Source, kNumLineFields> lines;
  // Canonical CSV: lines only for rows of type order/return, grouped by event_id or order_id.
  bool canonical = false;
  std::vector<CompiledRule> rules;
  int columns_needed = 0;   // rows with fewer columns are quarantined
  std::vector<std::string> header;
};

class Mapping {
 public:
  // Parses a TOML recipe. `name` names it in messages (usually the file name). InvalidArgument
  // naming the key and the problem on any error.
  static Result<Mapping> FromToml(std::string_view toml_text, std::string_view name);
  // Reads and parses a TOML file (IOError if unreadable).
  static Result<Mapping> FromTomlFile(const std::string& path);
  // Parses a command-line spec "field=column[:time format][|cast|cast],...", e.g.
  // "customer_id=CustomerID|id,timestamp=InvoiceDate:%m/%d/%Y %H:%M,type=order". Keys may also
  // be lines.<field>, prop.<name>, delimiter, header (yes/no), skip_lines, comment, mode.
  static Result<Mapping> FromSpec(std::string_view spec);
  // Merges `other` into this mapping (its fields, lines, properties and source options that are
  // set override; rules are appended). Lets --map refine a recipe.
  void MergeFrom(const Mapping& other);

  // Checks the mapping against `header` (column names; for headerless files the configured
  // names or "1".."n") and resolves columns. InvalidArgument such as "mapping cdnow.toml:
  // [fields].timestamp: unknown column 'date2'; the header has: customer_id, date, ...".
  Result<CompiledMapping> Compile(const std::vector<std::string>& header) const;

  // The mapping a canonical CSV header implies (docs/mappings.md, "Canonical CSV"), or
  // InvalidArgument listing the non-canonical columns.
  static Result<CompiledMapping> CompileCanonical(const std::vector<std::string>& header);

  const std::string& name() const { return name_; }
  const SourceOptions& source() const { return source_; }
  SourceOptions& mutable_source() { return source_; }
  const std::optional<FieldSource>& field(Field f) const { return fields_[static_cast<size_t>(f)]; }
  bool has_lines() const { return has_lines_; }
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::string name_;
  SourceOptions source_;
  bool delimiter_set_ = false, header_set_ = false, encoding_set_ = false;
  bool decimal_set_ = false, thousands_set_ = false;
  std::array<std::optional<FieldSource>, kNumFields> fields_;
  std::vector<std::pair<std::string, FieldSource>> properties_;
  bool has_lines_ = false;
  std::array<std::optional<FieldSource>, kNumLineFields> lines_;
  std::vector<Rule> rules_;

  friend class MappingBuilder;
};

// True when `condition` holds for the raw column value `value` (trimmed before comparing; a
// number comparison on a value that is not a number is false).
// Numeric comparisons read `value` with the given decimal mark and group separator
// (SourceOptions::decimal / thousands).
bool ConditionHolds(const Condition& condition, std::string_view value, char decimal = '.',
                    char thousands = 0);

// Helpers shared by the readers.
// Parses a whole string as a finite double (surrounding spaces allowed). nullopt otherwise.
// With decimal ',' the comma is the decimal mark (and a '.' is not); every `thousands`
// character (if not 0) is dropped first.
std::optional<double> ParseNumber(std::string_view text, char decimal = '.', char thousands = 0);
// An amount as shops export it: ParseNumber after dropping a currency symbol or code of at most
// 4 bytes before or after the number ("$", "US$", "€", "EUR", "kr"; spaces around it allowed),
// with a sign before or after the symbol, and accounting parentheses meaning negative:
// "-$5.00", "$-5.00", "(5.00)", "12,50 €" (decimal ','). nullopt when no number remains.
std::optional<double> ParseMoney(std::string_view text, char decimal = '.', char thousands = 0);
// "17850.0" -> "17850", "-3.000" -> "-3"; other text unchanged. Trims white space.
std::string_view NormalizeId(std::string_view text);
std::string_view TrimSpaces(std::string_view text);

}  // namespace shoal
