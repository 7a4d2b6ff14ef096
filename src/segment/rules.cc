#include "segment/rules.h"

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "common/parallel.h"

namespace shoal::segment {

namespace {

constexpr int kMaxStack = 64;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

enum class TokenKind {
  kEnd,
  kNumber,
  kString,
  kIdentifier,
  kAnd,
  kOr,
  kNot,
  kIn,
  kTrue,
  kFalse,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kPlus,
  kMinus,
  kStar,
  kSlash,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  size_t begin = 0, end = 0;  // byte offsets in the rule text
  double number = 0;
  std::string text;  // identifier or decoded string literal
};

const char* TokenName(TokenKind kind) {
  switch (kind) {
    case TokenKind::kEnd:
      return "end of rule";
    case TokenKind::kNumber:
      return "number";
    case TokenKind::kString:
      return "string";
    case TokenKind::kIdentifier:
      return "name";
    case TokenKind::kAnd:
      return "'and'";
    case TokenKind::kOr:
      return "'or'";
    case TokenKind::kNot:
      return "'not'";
    case TokenKind::kIn:
      return "'in'";
    case TokenKind::kTrue:
      return "'true'";
    case TokenKind::kFalse:
      return "'false'";
    case TokenKind::kLParen:
      return "'('";
    case TokenKind::kRParen:
      return "')'";
    case TokenKind::kLBracket:
      return "'['";
    case TokenKind::kRBracket:
      return "']'";
    case TokenKind::kComma:
      return "','";
    case TokenKind::kPlus:
      return "'+'";
    case TokenKind::kMinus:
      return "'-'";
    case TokenKind::kStar:
      return "'*'";
    case TokenKind::kSlash:
      return "'/'";
    case TokenKind::kEq:
      return "'=='";
    case TokenKind::kNe:
      return "'!='";
    case TokenKind::kLt:
      return "'<'";
    case TokenKind::kLe:
      return "'<='";
    case TokenKind::kGt:
      return "'>'";
    case TokenKind::kGe:
      return "'>='";
  }
  return "?";
}

// A compile error at a byte offset; converted to line:column once, at the top.
struct CompileError {
  size_t offset = 0;
  std::string message;
};

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string FormatNumber(double value) {
  if (std::isnan(value)) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.10g", value);
  return buffer;
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : text_(text) {}

  // Tokenises the whole text; the first error stops it.
  std::optional<CompileError> Run(std::vector<Token>* tokens) {
    while (true) {
      SkipSpace();
      Token token;
      token.begin = pos_;
      if (pos_ >= text_.size()) {
        token.end = pos_;
        tokens->push_back(token);
        return std::nullopt;
      }
      const char c = text_[pos_];
      if (std::isdigit(static_cast<unsigned char>(c)) ||
          (c == '.' && pos_ + 1 < text_.size() &&
           std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])))) {
        if (auto error = LexNumber(&token)) return error;
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        LexWord(&token);
      } else if (c == '"' || c == '\'') {
        if (auto error = LexString(&token)) return error;
      } else if (auto error = LexOperator(&token)) {
        return error;
      }
      token.end = pos_;
      tokens->push_back(std::move(token));
    }
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  std::optional<CompileError> LexNumber(Token* token) {
    const size_t start = pos_;
    auto digits = [&] {
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    };
    digits();
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      digits();
    }
    if (pos_ + 1 < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E') &&
        (std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])) ||
         ((text_[pos_ + 1] == '+' || text_[pos_ + 1] == '-') && pos_ + 2 < text_.size() &&
          std::isdigit(static_cast<unsigned char>(text_[pos_ + 2]))))) {
      pos_ += 2;
      digits();
    }
    token->kind = TokenKind::kNumber;
    token->number = std::strtod(std::string(text_.substr(start, pos_ - start)).c_str(), nullptr);
    // A duration suffix: d = days, w = weeks (7 days), h = hours (1/24 day).
    if (pos_ < text_.size() &&
        (std::isalpha(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      const size_t unit_start = pos_;
      while (pos_ < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
        ++pos_;
      }
      const std::string_view unit = text_.substr(unit_start, pos_ - unit_start);
      if (unit == "d") {
      } else if (unit == "w") {
        token->number *= 7;
      } else if (unit == "h") {
        token->number /= 24;
      } else {
        return CompileError{unit_start, "unknown duration unit '" + std::string(unit) +
                                            "'; use d (days), w (weeks) or h (hours)"};
      }
    }
    return std::nullopt;
  }

  void LexWord(Token* token) {
    const size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    token->text = std::string(text_.substr(start, pos_ - start));
    const std::string lower = Lower(token->text);
    if (lower == "and")
      token->kind = TokenKind::kAnd;
    else if (lower == "or")
      token->kind = TokenKind::kOr;
    else if (lower == "not")
      token->kind = TokenKind::kNot;
    else if (lower == "in")
      token->kind = TokenKind::kIn;
    else if (lower == "true")
      token->kind = TokenKind::kTrue;
    else if (lower == "false")
      token->kind = TokenKind::kFalse;
    else
      token->kind = TokenKind::kIdentifier;
  }

  std::optional<CompileError> LexString(Token* token) {
    const size_t start = pos_;
    const char quote = text_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= text_.size()) return CompileError{start, "unterminated string"};
      const char c = text_[pos_++];
      if (c == quote) break;
      if (c == '\\' && pos_ < text_.size()) {
        value.push_back(text_[pos_++]);
        continue;
      }
      value.push_back(c);
    }
    token->kind = TokenKind::kString;
    token->text = std::move(value);
    return std::nullopt;
  }

  std::optional<CompileError> LexOperator(Token* token) {
    const char c = text_[pos_];
    const char next = pos_ + 1 < text_.size() ? text_[pos_ + 1] : '\0';
    auto two = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 2;
    };
    auto one = [&](TokenKind kind) {
      token->kind = kind;
      pos_ += 1;
    };
    switch (c) {
      case '(':
        one(TokenKind::kLParen);
        return std::nullopt;
      case ')':
        one(TokenKind::kRParen);
        return std::nullopt;
      case '[':
        one(TokenKind::kLBracket);
        return std::nullopt;
      case ']':
        one(TokenKind::kRBracket);
        return std::nullopt;
      case ',':
        one(TokenKind::kComma);
        return std::nullopt;
      case '+':
        one(TokenKind::kPlus);
        return std::nullopt;
      case '-':
        one(TokenKind::kMinus);
        return std::nullopt;
      case '*':
        one(TokenKind::kStar);
        return std::nullopt;
      case '/':
        one(TokenKind::kSlash);
        return std::nullopt;
      case '=':
        if (next == '=') {
          two(TokenKind::kEq);
          return std::nullopt;
        }
        return CompileError{pos_, "use '==' to test equality"};
      case '!':
        if (next == '=') {
          two(TokenKind::kNe);
          return std::nullopt;
        }
        one(TokenKind::kNot);
        return std::nullopt;
      case '<':
        if (next == '=')
          two(TokenKind::kLe);
        else
          one(TokenKind::kLt);
        return std::nullopt;
      case '>':
        if (next == '=')
          two(TokenKind::kGe);
        else
          one(TokenKind::kGt);
        return std::nullopt;
      case '&':
        if (next == '&') {
          two(TokenKind::kAnd);
          return std::nullopt;
        }
        break;
      case '|':
        if (next == '|') {
          two(TokenKind::kOr);
          return std::nullopt;
        }
        break;
      default:
        break;
    }
    return CompileError{pos_, std::string("unexpected character '") + c + "'"};
  }

  std::string_view text_;
  size_t pos_ = 0;
};

enum class NodeKind { kNumber, kString, kBool, kColumn, kUnary, kBinary, kIn, kCall };

struct Node {
  NodeKind kind = NodeKind::kNumber;
  RuleType type = RuleType::kNumber;
  RuleOp op = RuleOp::kPushConst;
  double number = 0;
  std::string text;  // string literal or column name
  int32_t column = -1;
  std::vector<int> children;
  bool negated = false;  // kIn: "not in"
  std::vector<double> list_numbers;
  std::vector<std::string> list_strings;
  size_t begin = 0, end = 0;
};

const char* kFunctions[] = {"abs", "min", "max", "is_null"};

}  // namespace

int EditDistance(std::string_view a, std::string_view b) {
  const size_t rows = a.size() + 1, cols = b.size() + 1;
  std::vector<int> d(rows * cols);
  for (size_t i = 0; i < rows; ++i) d[i * cols] = static_cast<int>(i);
  for (size_t j = 0; j < cols; ++j) d[j] = static_cast<int>(j);
  for (size_t i = 1; i < rows; ++i) {
    for (size_t j = 1; j < cols; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      int best = std::min(
          {d[(i - 1) * cols + j] + 1, d[i * cols + j - 1] + 1, d[(i - 1) * cols + j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        best = std::min(best, d[(i - 2) * cols + j - 2] + 1);
      }
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1];
}

// Parser, type checker and code generator in one: builds typed nodes, then emits postfix code.
class RuleCompiler {
 public:
  RuleCompiler(std::string_view text, const RuleSchema& schema) : text_(text), schema_(schema) {}

  std::optional<CompileError> Compile(CompiledRule* out) {
    if (auto error = Lexer(text_).Run(&tokens_)) return error;
    int root = -1;
    if (auto error = ParseOr(&root)) return error;
    if (Peek().kind != TokenKind::kEnd) {
      if (Peek().kind == TokenKind::kEq || Peek().kind == TokenKind::kLt ||
          Peek().kind == TokenKind::kLe || Peek().kind == TokenKind::kGt ||
          Peek().kind == TokenKind::kGe || Peek().kind == TokenKind::kNe) {
        return CompileError{Peek().begin, "comparisons cannot be chained; join them with 'and'"};
      }
      return CompileError{Peek().begin, std::string("unexpected ") + TokenName(Peek().kind)};
    }
    if (nodes_[root].type != RuleType::kBool) {
      return CompileError{nodes_[root].begin,
                          "a rule must be a condition (true or false), got " + Describe(root)};
    }
    out_ = out;
    out->text_ = std::string(text_);
    out->schema_ = schema_;
    int depth = 0;
    Emit(root, &depth);
    if (out->max_stack_ > kMaxStack) {
      return CompileError{
          0, "rule too complex: it needs a stack deeper than " + std::to_string(kMaxStack)};
    }
    std::set<int32_t> used;
    for (const RuleInstruction& ins : out->program_) {
      if (ins.column >= 0) used.insert(ins.column);
      if (ins.column2 >= 0) used.insert(ins.column2);
    }
    out->columns_used_.assign(used.begin(), used.end());
    return std::nullopt;
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  const Token& Next() { return tokens_[pos_ < tokens_.size() - 1 ? pos_++ : pos_]; }

  int Add(Node node) {
    nodes_.push_back(std::move(node));
    return static_cast<int>(nodes_.size()) - 1;
  }

  std::string Describe(int idx) const {
    const Node& node = nodes_[idx];
    switch (node.kind) {
      case NodeKind::kColumn:
        return std::string(node.type == RuleType::kString ? "string" : "number") + " '" +
               node.text + "'";
      case NodeKind::kNumber:
        return "number " + FormatNumber(node.number);
      case NodeKind::kString:
        return "string \"" + node.text + "\"";
      default:
        break;
    }
    switch (node.type) {
      case RuleType::kNumber:
        return "number expression '" + SourceOf(idx) + "'";
      case RuleType::kString:
        return "string";
      case RuleType::kBool:
        return "condition '" + SourceOf(idx) + "'";
    }
    return "?";
  }
  std::string SourceOf(int idx) const {
    return std::string(text_.substr(nodes_[idx].begin, nodes_[idx].end - nodes_[idx].begin));
  }

  std::optional<CompileError> Expect(TokenKind kind, const char* what) {
    if (Peek().kind != kind) {
      return CompileError{Peek().begin,
                          std::string("expected ") + what + ", found " + TokenName(Peek().kind)};
    }
    Next();
    return std::nullopt;
  }

  std::optional<CompileError> RequireBool(int idx, const char* op) const {
    if (nodes_[idx].type == RuleType::kBool) return std::nullopt;
    return CompileError{nodes_[idx].begin,
                        std::string("'") + op + "' needs conditions, got " + Describe(idx)};
  }
  std::optional<CompileError> RequireNumber(int idx, const char* op) const {
    if (nodes_[idx].type == RuleType::kNumber) return std::nullopt;
    return CompileError{nodes_[idx].begin,
                        std::string("'") + op + "' needs numbers, got " + Describe(idx)};
  }

  std::optional<CompileError> ParseOr(int* out) {
    if (auto error = ParseAnd(out)) return error;
    while (Peek().kind == TokenKind::kOr) {
      Next();
      int rhs = -1;
      if (auto error = ParseAnd(&rhs)) return error;
      if (auto error = RequireBool(*out, "or")) return error;
      if (auto error = RequireBool(rhs, "or")) return error;
      *out = Binary(RuleOp::kOr, RuleType::kBool, *out, rhs);
    }
    return std::nullopt;
  }

  std::optional<CompileError> ParseAnd(int* out) {
    if (auto error = ParseNot(out)) return error;
    while (Peek().kind == TokenKind::kAnd) {
      Next();
      int rhs = -1;
      if (auto error = ParseNot(&rhs)) return error;
      if (auto error = RequireBool(*out, "and")) return error;
      if (auto error = RequireBool(rhs, "and")) return error;
      *out = Binary(RuleOp::kAnd, RuleType::kBool, *out, rhs);
    }
    return std::nullopt;
  }

  std::optional<CompileError> ParseNot(int* out) {
    if (Peek().kind == TokenKind::kNot) {
      const size_t begin = Next().begin;
      int operand = -1;
      if (auto error = ParseNot(&operand)) return error;
      if (auto error = RequireBool(operand, "not")) return error;
      Node node;
      node.kind = NodeKind::kUnary;
      node.type = RuleType::kBool;
      node.op = RuleOp::kNot;
      node.children = {operand};
      node.begin = begin;
      node.end = nodes_[operand].end;
      *out = Add(std::move(node));
      return std::nullopt;
    }
    return ParseComparison(out);
  }

  int Binary(RuleOp op, RuleType type, int lhs, int rhs) {
    Node node;
    node.kind = NodeKind::kBinary;
    node.type = type;
    node.op = op;
    node.children = {lhs, rhs};
    node.begin = nodes_[lhs].begin;
    node.end = nodes_[rhs].end;
    return Add(std::move(node));
  }

  static std::optional<RuleOp> ComparisonOp(TokenKind kind) {
    switch (kind) {
      case TokenKind::kEq:
        return RuleOp::kEq;
      case TokenKind::kNe:
        return RuleOp::kNe;
      case TokenKind::kLt:
        return RuleOp::kLt;
      case TokenKind::kLe:
        return RuleOp::kLe;
      case TokenKind::kGt:
        return RuleOp::kGt;
      case TokenKind::kGe:
        return RuleOp::kGe;
      default:
        return std::nullopt;
    }
  }

  std::optional<CompileError> ParseComparison(int* out) {
    if (auto error = ParseAdditive(out)) return error;
    const Token& token = Peek();
    if (std::optional<RuleOp> op = ComparisonOp(token.kind)) {
      const TokenKind op_token = token.kind;
      Next();
      int rhs = -1;
      if (auto error = ParseAdditive(&rhs)) return error;
      const RuleType lt = nodes_[*out].type, rt = nodes_[rhs].type;
      if (lt != rt) {
        return CompileError{nodes_[*out].begin,
                            "cannot compare " + Describe(*out) + " with " + Describe(rhs)};
      }
      const bool ordering = *op != RuleOp::kEq && *op != RuleOp::kNe;
      if (ordering && lt != RuleType::kNumber) {
        return CompileError{nodes_[*out].begin, std::string(TokenName(op_token)) +
                                                    " orders numbers only; got " + Describe(*out)};
      }
      *out = Binary(*op, RuleType::kBool, *out, rhs);
      return std::nullopt;
    }
    bool negated = false;
    if (token.kind == TokenKind::kNot && pos_ + 1 < tokens_.size() &&
        tokens_[pos_ + 1].kind == TokenKind::kIn) {
      negated = true;
      Next();
    }
    if (Peek().kind == TokenKind::kIn) {
      Next();
      return ParseInList(out, negated);
    }
    return std::nullopt;
  }

  std::optional<CompileError> ParseInList(int* out, bool negated) {
    const int lhs = *out;
    const RuleType type = nodes_[lhs].type;
    if (type == RuleType::kBool) {
      return CompileError{nodes_[lhs].begin, "'in' needs a number or string, got " + Describe(lhs)};
    }
    if (auto error = Expect(TokenKind::kLBracket, "'[' to start the list")) return error;
    Node node;
    node.kind = NodeKind::kIn;
    node.type = RuleType::kBool;
    node.negated = negated;
    node.children = {lhs};
    node.begin = nodes_[lhs].begin;
    while (Peek().kind != TokenKind::kRBracket) {
      if (!node.list_numbers.empty() || !node.list_strings.empty()) {
        if (auto error = Expect(TokenKind::kComma, "',' or ']'")) return error;
      }
      double sign = 1;
      const Token& item = Peek();
      if (item.kind == TokenKind::kMinus) {
        sign = -1;
        Next();
      }
      const Token& value = Next();
      if (value.kind == TokenKind::kNumber && type == RuleType::kNumber) {
        node.list_numbers.push_back(sign * value.number);
      } else if (value.kind == TokenKind::kString && type == RuleType::kString && sign > 0) {
        node.list_strings.push_back(value.text);
      } else if (value.kind == TokenKind::kNumber || value.kind == TokenKind::kString) {
        return CompileError{value.begin,
                            "cannot compare " + Describe(lhs) + " with " +
                                (value.kind == TokenKind::kNumber ? "number" : "string") +
                                " list element"};
      } else {
        return CompileError{value.begin, std::string("a list holds numbers or strings, found ") +
                                             TokenName(value.kind)};
      }
    }
    node.end = Next().end;
    std::sort(node.list_numbers.begin(), node.list_numbers.end());
    *out = Add(std::move(node));
    return std::nullopt;
  }

  std::optional<CompileError> ParseAdditive(int* out) {
    if (auto error = ParseMultiplicative(out)) return error;
    while (Peek().kind == TokenKind::kPlus || Peek().kind == TokenKind::kMinus) {
      const bool plus = Next().kind == TokenKind::kPlus;
      int rhs = -1;
      if (auto error = ParseMultiplicative(&rhs)) return error;
      if (auto error = RequireNumber(*out, plus ? "+" : "-")) return error;
      if (auto error = RequireNumber(rhs, plus ? "+" : "-")) return error;
      *out = Binary(plus ? RuleOp::kAdd : RuleOp::kSub, RuleType::kNumber, *out, rhs);
    }
    return std::nullopt;
  }

  std::optional<CompileError> ParseMultiplicative(int* out) {
    if (auto error = ParseUnary(out)) return error;
    while (Peek().kind == TokenKind::kStar || Peek().kind == TokenKind::kSlash) {
      const bool times = Next().kind == TokenKind::kStar;
      int rhs = -1;
      if (auto error = ParseUnary(&rhs)) return error;
      if (auto error = RequireNumber(*out, times ? "*" : "/")) return error;
      if (auto error = RequireNumber(rhs, times ? "*" : "/")) return error;
      *out = Binary(times ? RuleOp::kMul : RuleOp::kDiv, RuleType::kNumber, *out, rhs);
    }
    return std::nullopt;
  }

  std::optional<CompileError> ParseUnary(int* out) {
    if (Peek().kind == TokenKind::kMinus) {
      const size_t begin = Next().begin;
      int operand = -1;
      if (auto error = ParseUnary(&operand)) return error;
      if (auto error = RequireNumber(operand, "-")) return error;
      Node node;
      node.kind = NodeKind::kUnary;
      node.type = RuleType::kNumber;
      node.op = RuleOp::kNeg;
      node.children = {operand};
      node.begin = begin;
      node.end = nodes_[operand].end;
      *out = Add(std::move(node));
      return std::nullopt;
    }
    return ParsePrimary(out);
  }

  std::string Suggest(std::string_view name, bool functions) const {
    // A near miss by edit distance (at most max(2, length / 3) edits), or a name the typed word
    // is part of ("monetary" -> "monetary_total"); the smallest edit distance wins.
    std::string best;
    int best_distance = std::numeric_limits<int>::max();
    const std::string lower_name = Lower(name);
    const int max_edits = std::max<int>(2, static_cast<int>(name.size()) / 3);
    auto consider = [&](std::string_view candidate) {
      const std::string lower_candidate = Lower(candidate);
      const int distance = EditDistance(lower_name, lower_candidate);
      const bool contained =
          lower_name.size() >= 3 && lower_candidate.find(lower_name) != std::string::npos;
      if ((distance <= max_edits || contained) && distance < best_distance) {
        best_distance = distance;
        best = std::string(candidate);
      }
    };
    if (functions) {
      for (const char* fn : kFunctions) consider(fn);
    } else {
      for (const RuleColumn& column : schema_) consider(column.name);
    }
    return best.empty() ? "" : "; did you mean '" + best + "'?";
  }

  std::optional<CompileError> ParsePrimary(int* out) {
    const Token& token = Next();
    Node node;
    node.begin = token.begin;
    node.end = token.end;
    switch (token.kind) {
      case TokenKind::kNumber:
        node.kind = NodeKind::kNumber;
        node.number = token.number;
        *out = Add(std::move(node));
        return std::nullopt;
      case TokenKind::kString:
        node.kind = NodeKind::kString;
        node.type = RuleType::kString;
        node.text = token.text;
        *out = Add(std::move(node));
        return std::nullopt;
      case TokenKind::kTrue:
      case TokenKind::kFalse:
        node.kind = NodeKind::kBool;
        node.type = RuleType::kBool;
        node.number = token.kind == TokenKind::kTrue ? 1 : 0;
        *out = Add(std::move(node));
        return std::nullopt;
      case TokenKind::kLParen: {
        if (auto error = ParseOr(out)) return error;
        const size_t end = Peek().end;
        if (auto error = Expect(TokenKind::kRParen, "')'")) return error;
        // Widen the node to include the parentheses, so clause texts read naturally.
        nodes_[*out].begin = std::min(nodes_[*out].begin, token.begin);
        nodes_[*out].end = std::max(nodes_[*out].end, end);
        return std::nullopt;
      }
      case TokenKind::kIdentifier:
        if (Peek().kind == TokenKind::kLParen) return ParseCall(token, out);
        for (size_t idx = 0; idx < schema_.size(); ++idx) {
          if (schema_[idx].name == token.text) {
            node.kind = NodeKind::kColumn;
            node.type =
                schema_[idx].type == RuleType::kString ? RuleType::kString : RuleType::kNumber;
            node.column = static_cast<int32_t>(idx);
            node.text = token.text;
            *out = Add(std::move(node));
            return std::nullopt;
          }
        }
        return CompileError{token.begin,
                            "unknown trait '" + token.text + "'" + Suggest(token.text, false)};
      default:
        return CompileError{token.begin,
                            std::string("expected a value, found ") + TokenName(token.kind)};
    }
  }

  std::optional<CompileError> ParseCall(const Token& name, int* out) {
    const std::string function = Lower(name.text);
    if (std::find(std::begin(kFunctions), std::end(kFunctions), function) == std::end(kFunctions)) {
      return CompileError{name.begin,
                          "unknown function '" + name.text + "'" + Suggest(name.text, true)};
    }
    Next();  // (
    std::vector<int> args;
    while (Peek().kind != TokenKind::kRParen) {
      if (!args.empty()) {
        if (auto error = Expect(TokenKind::kComma, "',' or ')'")) return error;
      }
      int arg = -1;
      if (auto error = ParseOr(&arg)) return error;
      args.push_back(arg);
    }
    const size_t end = Next().end;
    const size_t want_min = function == "min" || function == "max" ? 2 : 1;
    const size_t want_max = function == "min" || function == "max" ? 64 : 1;
    if (args.size() < want_min || args.size() > want_max) {
      return CompileError{name.begin,
                          function + "() takes " +
                              (want_min == want_max ? "one argument" : "two or more arguments")};
    }
    if (function == "is_null") {
      if (nodes_[args[0]].type == RuleType::kBool) {
        return CompileError{nodes_[args[0]].begin,
                            "is_null() needs a trait or number, got " + Describe(args[0])};
      }
      if (nodes_[args[0]].type == RuleType::kString && nodes_[args[0]].kind != NodeKind::kColumn) {
        return CompileError{nodes_[args[0]].begin, "is_null() of a string literal is always false"};
      }
    } else {
      for (int arg : args) {
        if (auto error = RequireNumber(arg, function.c_str())) return error;
      }
    }
    Node node;
    node.kind = NodeKind::kCall;
    node.type = function == "is_null" ? RuleType::kBool : RuleType::kNumber;
    node.op = function == "abs"   ? RuleOp::kAbs
              : function == "min" ? RuleOp::kMin
              : function == "max" ? RuleOp::kMax
                                  : RuleOp::kIsNull;
    node.children = std::move(args);
    node.begin = name.begin;
    node.end = end;
    *out = Add(std::move(node));
    return std::nullopt;
  }

  // ---- code generation ----
  void Push(RuleInstruction ins, int* depth, int delta) {
    out_->program_.push_back(ins);
    *depth += delta;
    out_->max_stack_ = std::max(out_->max_stack_, *depth);
  }

  int32_t AddStringSet(std::vector<std::string> values) {
    out_->string_sets_.push_back(std::move(values));
    return static_cast<int32_t>(out_->string_sets_.size()) - 1;
  }

  void CollectColumns(int idx, std::vector<int32_t>* columns) const {
    const Node& node = nodes_[idx];
    if (node.kind == NodeKind::kColumn &&
        std::find(columns->begin(), columns->end(), node.column) == columns->end()) {
      columns->push_back(node.column);
    }
    for (int child : node.children) CollectColumns(child, columns);
  }

  void Emit(int idx, int* depth) {
    const Node& node = nodes_[idx];
    const size_t program_begin = out_->program_.size();
    bool clause = false;
    switch (node.kind) {
      case NodeKind::kNumber:
      case NodeKind::kBool: {
        RuleInstruction ins;
        ins.value = node.number;
        Push(ins, depth, 1);
        break;
      }
      case NodeKind::kString:
        // Only reachable through string comparisons, which are emitted whole below.
        break;
      case NodeKind::kColumn: {
        RuleInstruction ins;
        ins.op = RuleOp::kLoadNumber;
        ins.column = node.column;
        Push(ins, depth, 1);
        break;
      }
      case NodeKind::kUnary:
        Emit(node.children[0], depth);
        Push(RuleInstruction{node.op}, depth, 0);
        break;
      case NodeKind::kBinary: {
        const Node& lhs = nodes_[node.children[0]];
        clause = node.op != RuleOp::kAnd && node.op != RuleOp::kOr && node.type == RuleType::kBool;
        if (clause && lhs.type == RuleType::kString) {
          EmitStringComparison(node, depth);
          break;
        }
        const Node& rhs = nodes_[node.children[1]];
        if (rhs.kind == NodeKind::kNumber && node.op != RuleOp::kAnd && node.op != RuleOp::kOr) {
          RuleInstruction ins;
          ins.op = node.op;
          ins.value = rhs.number;
          if (lhs.kind == NodeKind::kColumn) {  // trait <op> constant: one instruction
            ins.operands = RuleOperands::kColumnConst;
            ins.column = lhs.column;
            Push(ins, depth, 1);
          } else {  // expression <op> constant
            Emit(node.children[0], depth);
            ins.operands = RuleOperands::kStackConst;
            Push(ins, depth, 0);
          }
          break;
        }
        Emit(node.children[0], depth);
        Emit(node.children[1], depth);
        Push(RuleInstruction{node.op}, depth, -1);
        break;
      }
      case NodeKind::kIn: {
        clause = true;
        const Node& lhs = nodes_[node.children[0]];
        RuleInstruction ins;
        if (lhs.type == RuleType::kString) {
          if (lhs.kind == NodeKind::kString) {  // literal in literal list: a constant
            const bool member = std::find(node.list_strings.begin(), node.list_strings.end(),
                                          lhs.text) != node.list_strings.end();
            ins.value = member != node.negated ? 1 : 0;
            Push(ins, depth, 1);
            break;
          }
          ins.op = node.negated ? RuleOp::kStringNotIn : RuleOp::kStringIn;
          ins.column = lhs.column;
          ins.slot = AddStringSet(node.list_strings);
          Push(ins, depth, 1);
          break;
        }
        Emit(node.children[0], depth);
        ins.op = node.negated ? RuleOp::kNumberNotIn : RuleOp::kNumberIn;
        out_->number_sets_.push_back(node.list_numbers);
        ins.slot = static_cast<int32_t>(out_->number_sets_.size()) - 1;
        Push(ins, depth, 0);
        break;
      }
      case NodeKind::kCall: {
        if (node.op == RuleOp::kIsNull) {
          clause = true;
          const Node& arg = nodes_[node.children[0]];
          if (arg.type == RuleType::kString) {
            RuleInstruction ins;
            ins.op = RuleOp::kStringIsNull;
            ins.column = arg.column;
            Push(ins, depth, 1);
            break;
          }
        }
        Emit(node.children[0], depth);
        if (node.op == RuleOp::kMin || node.op == RuleOp::kMax) {
          for (size_t arg = 1; arg < node.children.size(); ++arg) {
            Emit(node.children[arg], depth);
            Push(RuleInstruction{node.op}, depth, -1);
          }
        } else {
          Push(RuleInstruction{node.op}, depth, 0);
        }
        break;
      }
    }
    if (clause) {
      CompiledRule::ClauseInfo info;
      info.program_begin = program_begin;
      info.program_end = out_->program_.size();
      info.text_begin = node.begin;
      info.text_end = node.end;
      CollectColumns(idx, &info.columns);
      out_->clauses_.push_back(std::move(info));
    }
  }

  void EmitStringComparison(const Node& node, int* depth) {
    const Node* lhs = &nodes_[node.children[0]];
    const Node* rhs = &nodes_[node.children[1]];
    if (lhs->kind == NodeKind::kString && rhs->kind == NodeKind::kColumn) std::swap(lhs, rhs);
    const bool equal = node.op == RuleOp::kEq;
    RuleInstruction ins;
    if (lhs->kind == NodeKind::kString) {  // two literals: a constant
      ins.value = (lhs->text == rhs->text) == equal ? 1 : 0;
    } else if (rhs->kind == NodeKind::kString) {
      ins.op = equal ? RuleOp::kStringEqLiteral : RuleOp::kStringNeLiteral;
      ins.column = lhs->column;
      ins.slot = AddStringSet({rhs->text});
    } else {
      ins.op = equal ? RuleOp::kStringEqColumn : RuleOp::kStringNeColumn;
      ins.column = lhs->column;
      ins.column2 = rhs->column;
    }
    Push(ins, depth, 1);
  }

  std::string_view text_;
  const RuleSchema& schema_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  std::vector<Node> nodes_;
  CompiledRule* out_ = nullptr;
};

Result<CompiledRule> CompileRule(std::string_view text, const RuleSchema& schema,
                                 RuleDiagnostic* diagnostic) {
  CompiledRule rule;
  RuleCompiler compiler(text, schema);
  if (std::optional<CompileError> error = compiler.Compile(&rule)) {
    int line = 1, column = 1;
    for (size_t idx = 0; idx < error->offset && idx < text.size(); ++idx) {
      if (text[idx] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    if (diagnostic != nullptr) *diagnostic = RuleDiagnostic{line, column, error->message};
    return Status::ParseError(std::to_string(line) + ":" + std::to_string(column) + ": " +
                              error->message);
  }
  return rule;
}

Status RuleTable::Check(const std::string& name, size_t size) const {
  for (const RuleColumn& column : schema_) {
    if (column.name == name) return Status::InvalidArgument("rule column '" + name + "' twice");
  }
  if (size != data_.rows) {
    return Status::InvalidArgument("rule column '" + name + "' has " + std::to_string(size) +
                                   " values for " + std::to_string(data_.rows) + " rows");
  }
  return Status::OK();
}

Status RuleTable::AddNumber(std::string name, std::span<const double> values) {
  SHOAL_RETURN_IF_ERROR(Check(name, values.size()));
  schema_.push_back(RuleColumn{std::move(name), RuleType::kNumber});
  RuleColumnData column;
  column.numbers = values;
  data_.columns.push_back(column);
  return Status::OK();
}

Status RuleTable::AddString(std::string name, std::span<const int32_t> codes,
                            std::span<const std::string> dictionary) {
  SHOAL_RETURN_IF_ERROR(Check(name, codes.size()));
  schema_.push_back(RuleColumn{std::move(name), RuleType::kString});
  RuleColumnData column;
  column.codes = codes;
  column.dictionary = dictionary;
  data_.columns.push_back(column);
  return Status::OK();
}

Result<BoundRule> BoundRule::Bind(const CompiledRule& rule, const RuleData& data) {
  if (data.columns.size() != rule.schema_.size()) {
    return Status::InvalidArgument("rule data has " + std::to_string(data.columns.size()) +
                                   " columns, the schema " + std::to_string(rule.schema_.size()));
  }
  for (int32_t column : rule.columns_used_) {
    const RuleColumnData& col = data.columns[column];
    const std::string& name = rule.schema_[column].name;
    if (rule.schema_[column].type == RuleType::kString) {
      if (col.codes.size() != data.rows) {
        return Status::InvalidArgument("string column '" + name + "' has " +
                                       std::to_string(col.codes.size()) + " codes for " +
                                       std::to_string(data.rows) + " rows");
      }
      for (int32_t code : col.codes) {
        if (code >= static_cast<int32_t>(col.dictionary.size())) {
          return Status::InvalidArgument("string column '" + name + "' has a code beyond its " +
                                         "dictionary");
        }
      }
    } else if (col.numbers.size() != data.rows) {
      return Status::InvalidArgument("number column '" + name + "' has " +
                                     std::to_string(col.numbers.size()) + " values for " +
                                     std::to_string(data.rows) + " rows");
    }
  }
  BoundRule bound;
  bound.rule_ = &rule;
  bound.data_ = &data;
  bound.set_members_.resize(rule.string_sets_.size());
  bound.same_dictionary_.assign(rule.program_.size(), 0);
  for (size_t ins_idx = 0; ins_idx < rule.program_.size(); ++ins_idx) {
    const RuleInstruction& ins = rule.program_[ins_idx];
    switch (ins.op) {
      case RuleOp::kStringEqLiteral:
      case RuleOp::kStringNeLiteral:
      case RuleOp::kStringIn:
      case RuleOp::kStringNotIn: {
        const std::span<const std::string> dictionary = data.columns[ins.column].dictionary;
        const std::vector<std::string>& wanted = rule.string_sets_[ins.slot];
        std::vector<uint8_t>& members = bound.set_members_[ins.slot];
        members.assign(dictionary.size(), 0);
        for (size_t code = 0; code < dictionary.size(); ++code) {
          members[code] =
              std::find(wanted.begin(), wanted.end(), dictionary[code]) != wanted.end() ? 1 : 0;
        }
        break;
      }
      case RuleOp::kStringEqColumn:
      case RuleOp::kStringNeColumn: {
        const auto& a = data.columns[ins.column].dictionary;
        const auto& b = data.columns[ins.column2].dictionary;
        bound.same_dictionary_[ins_idx] = a.data() == b.data() && a.size() == b.size() ? 1 : 0;
        break;
      }
      default:
        break;
    }
  }
  return bound;
}

namespace {

// The binary operators, shared by the row and the block interpreter.
inline double ApplyBinary(RuleOp op, double x, double y) {
  switch (op) {
    case RuleOp::kAdd:
      return x + y;
    case RuleOp::kSub:
      return x - y;
    case RuleOp::kMul:
      return x * y;
    case RuleOp::kDiv:
      return y == 0 ? kNaN : x / y;
    case RuleOp::kLt:
      return x < y ? 1.0 : 0.0;
    case RuleOp::kLe:
      return x <= y ? 1.0 : 0.0;
    case RuleOp::kGt:
      return x > y ? 1.0 : 0.0;
    case RuleOp::kGe:
      return x >= y ? 1.0 : 0.0;
    case RuleOp::kEq:
      return x == y ? 1.0 : 0.0;
    // x < y || x > y is x != y for numbers and false when either is NaN.
    case RuleOp::kNe:
      return (x < y || x > y) ? 1.0 : 0.0;
    case RuleOp::kAnd:
      return (x != 0) & (y != 0) ? 1.0 : 0.0;
    case RuleOp::kOr:
      return (x != 0) | (y != 0) ? 1.0 : 0.0;
    case RuleOp::kMin:
      return std::isnan(y) ? kNaN : std::min(x, y);
    case RuleOp::kMax:
      return std::isnan(y) ? kNaN : std::max(x, y);
    default:
      return kNaN;
  }
}

bool IsBinary(RuleOp op) {
  switch (op) {
    case RuleOp::kAdd:
    case RuleOp::kSub:
    case RuleOp::kMul:
    case RuleOp::kDiv:
    case RuleOp::kLt:
    case RuleOp::kLe:
    case RuleOp::kGt:
    case RuleOp::kGe:
    case RuleOp::kEq:
    case RuleOp::kNe:
    case RuleOp::kAnd:
    case RuleOp::kOr:
    case RuleOp::kMin:
    case RuleOp::kMax:
      return true;
    default:
      return false;
  }
}

bool SetContains(const std::vector<double>& set, double value) {
  // Lists in rules are short: a linear scan beats a binary search below a few dozen entries.
  if (set.size() <= 16) {
    bool found = false;
    for (double member : set) found |= member == value;
    return found;
  }
  return std::binary_search(set.begin(), set.end(), value);
}

}  // namespace

double BoundRule::Run(size_t program_begin, size_t program_end, size_t row) const {
  std::array<double, kMaxStack> stack;
  int top = -1;
  const RuleInstruction* program = rule_->program_.data();
  const RuleColumnData* columns = data_->columns.data();
  auto truth = [](bool held) { return held ? 1.0 : 0.0; };
  for (size_t ins_idx = program_begin; ins_idx < program_end; ++ins_idx) {
    const RuleInstruction& ins = program[ins_idx];
    if (IsBinary(ins.op)) {
      switch (ins.operands) {
        case RuleOperands::kStackStack:
          --top;
          stack[top] = ApplyBinary(ins.op, stack[top], stack[top + 1]);
          break;
        case RuleOperands::kColumnConst:
          ++top;
          stack[top] = ApplyBinary(ins.op, columns[ins.column].numbers[row], ins.value);
          break;
        case RuleOperands::kStackConst:
          stack[top] = ApplyBinary(ins.op, stack[top], ins.value);
          break;
      }
      continue;
    }
    switch (ins.op) {
      case RuleOp::kPushConst:
        stack[++top] = ins.value;
        break;
      case RuleOp::kLoadNumber:
        stack[++top] = columns[ins.column].numbers[row];
        break;
      case RuleOp::kNeg:
        stack[top] = -stack[top];
        break;
      case RuleOp::kNot:
        stack[top] = truth(stack[top] == 0);
        break;
      case RuleOp::kAbs:
        stack[top] = std::fabs(stack[top]);
        break;
      case RuleOp::kIsNull:
        stack[top] = truth(std::isnan(stack[top]));
        break;
      case RuleOp::kNumberIn:
      case RuleOp::kNumberNotIn: {
        const double value = stack[top];
        if (std::isnan(value)) {
          stack[top] = 0;
          break;
        }
        const bool member = SetContains(rule_->number_sets_[ins.slot], value);
        stack[top] = truth(member == (ins.op == RuleOp::kNumberIn));
        break;
      }
      case RuleOp::kStringEqLiteral:
      case RuleOp::kStringIn:
      case RuleOp::kStringNeLiteral:
      case RuleOp::kStringNotIn: {
        const int32_t code = columns[ins.column].codes[row];
        const bool positive = ins.op == RuleOp::kStringEqLiteral || ins.op == RuleOp::kStringIn;
        stack[++top] = code < 0 ? 0.0 : truth((set_members_[ins.slot][code] != 0) == positive);
        break;
      }
      case RuleOp::kStringEqColumn:
      case RuleOp::kStringNeColumn: {
        const RuleColumnData& a = columns[ins.column];
        const RuleColumnData& b = columns[ins.column2];
        const int32_t code_a = a.codes[row], code_b = b.codes[row];
        bool equal = false;
        if (same_dictionary_[ins_idx] != 0) {
          equal = code_a == code_b;
        } else if (code_a >= 0 && code_b >= 0) {
          equal = a.dictionary[code_a] == b.dictionary[code_b];
        }
        const bool positive = ins.op == RuleOp::kStringEqColumn;
        stack[++top] = code_a < 0 || code_b < 0 ? 0.0 : truth(equal == positive);
        break;
      }
      case RuleOp::kStringIsNull:
        stack[++top] = truth(columns[ins.column].codes[row] < 0);
        break;
      default:
        break;
    }
  }
  return stack[0];
}

bool BoundRule::Matches(size_t row) const { return Run(0, rule_->program_.size(), row) != 0; }

namespace {

// One binary operator over a block, for each operand shape; `Op` is a stateless functor so each
// instantiation is a tight, vectorisable loop.
template <typename Op>
void BlockBinary(RuleOperands operands, size_t count, double* __restrict x,
                 const double* __restrict y, const double* __restrict column, double value,
                 double* __restrict dst) {
  Op op;
  switch (operands) {
    case RuleOperands::kStackStack:
      for (size_t i = 0; i < count; ++i) x[i] = op(x[i], y[i]);
      break;
    case RuleOperands::kColumnConst:
      for (size_t i = 0; i < count; ++i) dst[i] = op(column[i], value);
      break;
    case RuleOperands::kStackConst:
      for (size_t i = 0; i < count; ++i) x[i] = op(x[i], value);
      break;
  }
}

#define SHOAL_RULE_OP(Name, expr)                                  \
  struct Name {                                                    \
    double operator()(double x, double y) const { return (expr); } \
  };
SHOAL_RULE_OP(AddOp, x + y)
SHOAL_RULE_OP(SubOp, x - y)
SHOAL_RULE_OP(MulOp, x* y)
SHOAL_RULE_OP(DivOp, y == 0 ? kNaN : x / y)
SHOAL_RULE_OP(LtOp, x < y ? 1.0 : 0.0)
SHOAL_RULE_OP(LeOp, x <= y ? 1.0 : 0.0)
SHOAL_RULE_OP(GtOp, x > y ? 1.0 : 0.0)
SHOAL_RULE_OP(GeOp, x >= y ? 1.0 : 0.0)
SHOAL_RULE_OP(EqOp, x == y ? 1.0 : 0.0)
SHOAL_RULE_OP(NeOp, (x < y || x > y) ? 1.0 : 0.0)
SHOAL_RULE_OP(AndOp, (x != 0) & (y != 0) ? 1.0 : 0.0)
SHOAL_RULE_OP(OrOp, (x != 0) | (y != 0) ? 1.0 : 0.0)
SHOAL_RULE_OP(MinOp, std::isnan(y) ? kNaN : std::min(x, y))
SHOAL_RULE_OP(MaxOp, std::isnan(y) ? kNaN : std::max(x, y))
#undef SHOAL_RULE_OP

}  // namespace

void BoundRule::RunBlock(size_t row_begin, size_t count, double* stack, uint8_t* out) const {
  int top = -1;
  const RuleColumnData* columns = data_->columns.data();
  auto slot = [&](int idx) { return stack + static_cast<size_t>(idx) * kRuleBlock; };
  for (size_t ins_idx = 0; ins_idx < rule_->program_.size(); ++ins_idx) {
    const RuleInstruction& ins = rule_->program_[ins_idx];
    if (IsBinary(ins.op)) {
      double* x = nullptr;
      const double* y = nullptr;
      const double* column = nullptr;
      double* dst = nullptr;
      switch (ins.operands) {
        case RuleOperands::kStackStack:
          x = slot(top - 1);
          y = slot(top);
          --top;
          break;
        case RuleOperands::kColumnConst:
          column = columns[ins.column].numbers.data() + row_begin;
          dst = slot(++top);
          break;
        case RuleOperands::kStackConst:
          x = slot(top);
          break;
      }
      switch (ins.op) {
        case RuleOp::kAdd:
          BlockBinary<AddOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kSub:
          BlockBinary<SubOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kMul:
          BlockBinary<MulOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kDiv:
          BlockBinary<DivOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kLt:
          BlockBinary<LtOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kLe:
          BlockBinary<LeOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kGt:
          BlockBinary<GtOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kGe:
          BlockBinary<GeOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kEq:
          BlockBinary<EqOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kNe:
          BlockBinary<NeOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kAnd:
          BlockBinary<AndOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kOr:
          BlockBinary<OrOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kMin:
          BlockBinary<MinOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        case RuleOp::kMax:
          BlockBinary<MaxOp>(ins.operands, count, x, y, column, ins.value, dst);
          break;
        default:
          break;
      }
      continue;
    }
    double* b = top >= 0 ? slot(top) : nullptr;
    switch (ins.op) {
      case RuleOp::kPushConst: {
        double* dst = slot(++top);
        for (size_t i = 0; i < count; ++i) dst[i] = ins.value;
        break;
      }
      case RuleOp::kLoadNumber: {
        double* dst = slot(++top);
        const double* src = columns[ins.column].numbers.data() + row_begin;
        for (size_t i = 0; i < count; ++i) dst[i] = src[i];
        break;
      }
      case RuleOp::kNeg:
        for (size_t i = 0; i < count; ++i) b[i] = -b[i];
        break;
      case RuleOp::kNot:
        for (size_t i = 0; i < count; ++i) b[i] = b[i] == 0 ? 1.0 : 0.0;
        break;
      case RuleOp::kAbs:
        for (size_t i = 0; i < count; ++i) b[i] = std::fabs(b[i]);
        break;
      case RuleOp::kIsNull:
        for (size_t i = 0; i < count; ++i) b[i] = std::isnan(b[i]) ? 1.0 : 0.0;
        break;
      case RuleOp::kNumberIn:
      case RuleOp::kNumberNotIn: {
        const std::vector<double>& set = rule_->number_sets_[ins.slot];
        const double want = ins.op == RuleOp::kNumberIn ? 1.0 : 0.0;
        for (size_t i = 0; i < count; ++i) {
          const double value = b[i];
          const double member = SetContains(set, value) ? 1.0 : 0.0;
          b[i] = !std::isnan(value) && member == want ? 1.0 : 0.0;
        }
        break;
      }
      case RuleOp::kStringEqLiteral:
      case RuleOp::kStringIn:
      case RuleOp::kStringNeLiteral:
      case RuleOp::kStringNotIn: {
        double* dst = slot(++top);
        const int32_t* codes = columns[ins.column].codes.data() + row_begin;
        const uint8_t* members = set_members_[ins.slot].data();
        const bool want = ins.op == RuleOp::kStringEqLiteral || ins.op == RuleOp::kStringIn;
        for (size_t i = 0; i < count; ++i) {
          const int32_t code = codes[i];
          dst[i] = code < 0 ? 0.0 : ((members[code] != 0) == want ? 1.0 : 0.0);
        }
        break;
      }
      case RuleOp::kStringEqColumn:
      case RuleOp::kStringNeColumn:
      case RuleOp::kStringIsNull: {
        double* dst = slot(++top);
        // Rare: the row interpreter runs this one instruction.
        for (size_t i = 0; i < count; ++i) dst[i] = Run(ins_idx, ins_idx + 1, row_begin + i);
        break;
      }
      default:
        break;
    }
  }
  const double* result = slot(0);
  for (size_t i = 0; i < count; ++i) out[i] = result[i] != 0 ? 1 : 0;
}

std::vector<uint8_t> BoundRule::MatchAll(const Context& context) const {
  std::vector<uint8_t> matches(data_->rows);
  const size_t stack_doubles = static_cast<size_t>(std::max(1, rule_->max_stack_)) * kRuleBlock;
  ParallelFor(data_->rows, context.Threads(), [&](size_t begin, size_t end, int) {
    std::vector<double> stack(stack_doubles);  // one per worker, reused for every block
    for (size_t block = begin; block < end; block += kRuleBlock) {
      const size_t count = std::min(kRuleBlock, end - block);
      RunBlock(block, count, stack.data(), matches.data() + block);
    }
  });
  return matches;
}

RuleExplanation BoundRule::Explain(size_t row) const {
  RuleExplanation explanation;
  explanation.matched = Matches(row);
  for (const CompiledRule::ClauseInfo& info : rule_->clauses_) {
    ClauseExplanation clause;
    clause.text = rule_->text_.substr(info.text_begin, info.text_end - info.text_begin);
    clause.held = Run(info.program_begin, info.program_end, row) != 0;
    for (int32_t column : info.columns) {
      const RuleColumnData& data = data_->columns[column];
      std::string value;
      if (rule_->schema_[column].type == RuleType::kString) {
        const int32_t code = data.codes[row];
        value = code < 0 ? "null" : "\"" + data.dictionary[code] + "\"";
      } else {
        value = FormatNumber(data.numbers[row]);
      }
      clause.values.emplace_back(rule_->schema_[column].name, std::move(value));
    }
    explanation.clauses.push_back(std::move(clause));
  }
  return explanation;
}

std::string FormatExplanation(const RuleExplanation& explanation) {
  size_t width = 0;
  for (const ClauseExplanation& clause : explanation.clauses) {
    width = std::max(width, clause.text.size());
  }
  std::string out = explanation.matched ? "matched: true\n" : "matched: false\n";
  for (const ClauseExplanation& clause : explanation.clauses) {
    out += clause.held ? "  held    " : "  failed  ";
    out += clause.text;
    std::string values;
    for (const auto& [name, value] : clause.values) {
      values += (values.empty() ? "" : ", ") + name + " = " + value;
    }
    if (!values.empty())
      out += std::string(width - clause.text.size() + 3, ' ') + "(" + values + ")";
    out += "\n";
  }
  return out;
}

Result<std::vector<AudienceSpec>> ParseAudiences(std::string_view toml_text) {
  toml::table document;
  try {
    document = toml::parse(toml_text);
  } catch (const toml::parse_error& error) {
    return Status::ParseError("TOML " + std::to_string(error.source().begin.line) + ":" +
                              std::to_string(error.source().begin.column) + ": " +
                              std::string(error.description()));
  }
  std::vector<AudienceSpec> specs;
  const toml::node* node = document.get("audiences");
  if (node == nullptr) return specs;
  const toml::array* array = node->as_array();
  if (array == nullptr) return Status::ParseError("audiences must be [[audiences]] tables");
  std::set<std::string> names;
  for (const toml::node& element : *array) {
    const toml::table* table = element.as_table();
    if (table == nullptr) return Status::ParseError("audiences must be [[audiences]] tables");
    std::optional<std::string> name = (*table)["name"].value<std::string>();
    std::optional<std::string> rule = (*table)["rule"].value<std::string>();
    if (!name || name->empty()) {
      return Status::ParseError("[[audiences]] entry " + std::to_string(specs.size() + 1) +
                                " has no name");
    }
    if (!rule) return Status::ParseError("audience '" + *name + "' has no rule");
    if (!names.insert(*name).second) {
      return Status::ParseError("audience '" + *name + "' is defined twice");
    }
    specs.push_back(AudienceSpec{*name, *rule});
  }
  return specs;
}

Result<std::vector<Audience>> CompileAudiences(const std::vector<AudienceSpec>& specs,
                                               const RuleSchema& schema) {
  std::vector<Audience> audiences;
  audiences.reserve(specs.size());
  for (const AudienceSpec& spec : specs) {
    Result<CompiledRule> rule = CompileRule(spec.rule, schema);
    if (!rule.ok()) return rule.status().WithContext("audience '" + spec.name + "'");
    audiences.push_back(Audience{spec.name, std::move(rule).value()});
  }
  return audiences;
}

}  // namespace shoal::segment
