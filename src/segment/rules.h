// The audience rule language: `days_since_last_order > 60 and orders_365d >= 3 and
// segment == "premium trend explorers"`. A rule is compiled ONCE against a schema into a flat
// postfix program with resolved column indices, bound once to a data set (string literals become
// dictionary codes), then evaluated per row with no parsing and no allocation, or over all rows in
// parallel. docs/segments.md is the prose contract (grammar, operators, durations, NaN, errors).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal::segment {

// The type of a column or expression. Columns are kNumber or kString; kBool is what conditions
// produce (and what a rule must produce).
enum class RuleType : uint8_t { kNumber, kString, kBool };

struct RuleColumn {
  std::string name;
  RuleType type = RuleType::kNumber;
};

// Columns a rule may name, in the order RuleData supplies them.
using RuleSchema = std::vector<RuleColumn>;

// Where a compile error is: 1-based line and column in the rule text, and the message.
struct RuleDiagnostic {
  int line = 0;
  int column = 0;
  std::string message;
};

// One column's data. A number column fills `numbers` (NaN = undefined); a string column fills
// `codes` (dictionary indices, negative = undefined) and `dictionary`. Spans are borrowed.
struct RuleColumnData {
  std::span<const double> numbers;
  std::span<const int32_t> codes;
  std::span<const std::string> dictionary;
};

// A data set for rules: `columns` aligned with the RuleSchema, each of `rows` entries.
struct RuleData {
  size_t rows = 0;
  std::vector<RuleColumnData> columns;
};

// Builds a RuleSchema and its RuleData together, column by column, e.g. from the trait matrix
// plus the segment labels. Spans are borrowed: the data must outlive the table and every
// BoundRule bound to data(); a BoundRule keeps a pointer to data(), so the table must not move.
class RuleTable {
 public:
  explicit RuleTable(size_t rows) { data_.rows = rows; }
  // InvalidArgument on a duplicate name or a length other than rows.
  Status AddNumber(std::string name, std::span<const double> values);
  // Codes index `dictionary`; negative = undefined. Same failures as AddNumber.
  Status AddString(std::string name, std::span<const int32_t> codes,
                   std::span<const std::string> dictionary);
  const RuleSchema& schema() const { return schema_; }
  const RuleData& data() const { return data_; }

 private:
  Status Check(const std::string& name, size_t size) const;
  RuleSchema schema_;
  RuleData data_;
};

// One instruction of the postfix program (internal to the compiler and interpreter; public so the
// program can be inspected in tests and docs).
enum class RuleOp : uint8_t {
  kPushConst,
  kLoadNumber,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kNeg,
  kLt,
  kLe,
  kGt,
  kGe,
  kEq,
  kNe,
  kAnd,
  kOr,
  kNot,
  kAbs,
  kMin,
  kMax,
  kIsNull,
  kNumberIn,
  kNumberNotIn,
  kStringEqLiteral,
  kStringNeLiteral,
  kStringIn,
  kStringNotIn,
  kStringEqColumn,
  kStringNeColumn,
  kStringIsNull,
};
// Where a binary operator takes its operands: both from the stack, or (fused, the commonest
// shapes of a rule) a column and a constant, or the stack top and a constant.
enum class RuleOperands : uint8_t { kStackStack, kColumnConst, kStackConst };
struct RuleInstruction {
  RuleOp op = RuleOp::kPushConst;
  RuleOperands operands = RuleOperands::kStackStack;
  int32_t column = -1;   // column index for loads, fused operands and string ops
  int32_t column2 = -1;  // second column for kString{Eq,Ne}Column
  int32_t slot = -1;     // index of a number set or of a string set (a literal is a 1-element set)
  double value = 0;      // constant for kPushConst and fused operands
};

// A compiled rule: immutable, cheap to share across threads. Built by CompileRule.
class CompiledRule {
 public:
  const std::string& text() const { return text_; }
  const RuleSchema& schema() const { return schema_; }
  std::span<const RuleInstruction> program() const { return program_; }
  // Column indices the rule reads, ascending, without duplicates.
  const std::vector<int32_t>& columns_used() const { return columns_used_; }

 private:
  friend class RuleCompiler;
  friend class BoundRule;
  struct ClauseInfo {                           // an atomic condition, for Explain
    size_t program_begin = 0, program_end = 0;  // its instructions (postfix is contiguous)
    size_t text_begin = 0, text_end = 0;        // its source text
    std::vector<int32_t> columns;               // columns it reads
  };
  std::string text_;
  RuleSchema schema_;
  std::vector<RuleInstruction> program_;
  std::vector<std::vector<double>> number_sets_;  // sorted
  std::vector<std::vector<std::string>>
      string_sets_;  // for kString{Eq,Ne}Literal, kString{In,NotIn}
  std::vector<ClauseInfo> clauses_;
  std::vector<int32_t> columns_used_;
  int max_stack_ = 0;
};

// Compiles `text` against `schema`. ParseError with "line:column: message" on a syntax error, an
// unknown trait (with a did-you-mean suggestion), a type clash, or a rule that is not a condition;
// `diagnostic`, when given, receives the same position and message. Thread-safe.
Result<CompiledRule> CompileRule(std::string_view text, const RuleSchema& schema,
                                 RuleDiagnostic* diagnostic = nullptr);

// The explanation of one row: each atomic clause, whether it held and the values it read.
struct ClauseExplanation {
  std::string text;
  bool held = false;
  std::vector<std::pair<std::string, std::string>> values;  // column name -> value ("null")
};
struct RuleExplanation {
  bool matched = false;
  std::vector<ClauseExplanation> clauses;
};

// Rows per block of the batched evaluator.
inline constexpr size_t kRuleBlock = 512;

// Renders an explanation as text, one clause a line:
//   matched: false
//     held    days_since_last_order > 60   (days_since_last_order = 61)
//     failed  orders_365d >= 3             (orders_365d = 2)
std::string FormatExplanation(const RuleExplanation& explanation);

// A compiled rule bound to one data set. Holds pointers to the rule and the data: both must
// outlive it. Matches/MatchAll are thread-safe and never allocate per row.
class BoundRule {
 public:
  // InvalidArgument when a column is missing or of the wrong kind, or lengths differ from rows.
  static Result<BoundRule> Bind(const CompiledRule& rule, const RuleData& data);

  size_t rows() const { return data_->rows; }
  // Whether row `row` (< rows()) satisfies the rule.
  bool Matches(size_t row) const;
  // Matches for every row, as 0/1 bytes; parallel over rows with context.Threads() workers, the
  // result does not depend on the thread count. Runs the program column-wise over blocks of rows
  // (each instruction is one tight loop over the block), which the compiler vectorises.
  std::vector<uint8_t> MatchAll(const Context& context) const;
  // Which clauses held for `row` and the values they read (allocates; for `shoal explain`).
  RuleExplanation Explain(size_t row) const;

 private:
  BoundRule() = default;
  double Run(size_t program_begin, size_t program_end, size_t row) const;
  // Evaluates rows [row_begin, row_begin + count), count <= kRuleBlock, into out; `stack` holds
  // max_stack * kRuleBlock doubles.
  void RunBlock(size_t row_begin, size_t count, double* stack, uint8_t* out) const;
  const CompiledRule* rule_ = nullptr;
  const RuleData* data_ = nullptr;
  std::vector<std::vector<uint8_t>> set_members_;  // per string set: membership by code
  std::vector<uint8_t> same_dictionary_;           // per instruction: *Column ops may compare codes
};

// An audience as written in TOML: [[audiences]] name = "...", rule = "...".
struct AudienceSpec {
  std::string name;
  std::string rule;
};
struct Audience {
  std::string name;
  CompiledRule rule;
};

// Reads every [[audiences]] table. ParseError on malformed TOML, a missing name/rule or a
// duplicate name.
Result<std::vector<AudienceSpec>> ParseAudiences(std::string_view toml_text);

// Compiles each audience; the first failure is returned prefixed with "audience '<name>': ".
Result<std::vector<Audience>> CompileAudiences(const std::vector<AudienceSpec>& specs,
                                               const RuleSchema& schema);

// Optimal-string-alignment edit distance (insertions, deletions, substitutions, transpositions).
int EditDistance(std::string_view a, std::string_view b);

}  // namespace shoal::segment
