#include "ingest/mapping.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

namespace shoal {

namespace {

constexpr std::array<std::string_view, kNumFields> kFieldNames = {
    "event_id", "type",     "timestamp",  "customer_id", "email",       "anonymous_id", "phone",
    "channel",  "device",   "order_id",   "currency",    "product_id",  "category",     "quantity",
    "unit_price", "discount", "total",    "price",       "dwell_seconds", "campaign_id", "session_id",
    "query",    "referee",  "topic",      "marketing"};

constexpr std::array<std::string_view, kNumLineFields> kLineFieldNames = {
    "product_id", "category", "quantity", "unit_price", "discount"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string JoinHeader(const std::vector<std::string>& header) {
  std::string out;
  for (size_t i = 0; i < header.size(); ++i) {
    if (i > 0) out += ", ";
    out += header[i].empty() ? "(empty)" : header[i];
  }
  return out;
}

Result<uint32_t> ParseCastName(std::string_view name, const std::string& key) {
  std::string n = Lower(TrimSpaces(name));
  if (n == "trim") return uint32_t{kCastTrim};
  if (n == "id") return uint32_t{kCastId};
  if (n == "lower") return uint32_t{kCastLower};
  if (n == "number") return uint32_t{kCastNumber};
  if (n == "abs") return uint32_t{kCastAbs | kCastNumber};
  if (n == "text") return uint32_t{kCastText};
  if (n == "money") return uint32_t{kCastMoney | kCastNumber};
  return Status::InvalidArgument(key + ": unknown cast '" + std::string(name) +
                                 "' (known: trim, id, lower, number, abs, money, text)");
}

// Parses "$3" as column number 3; 0 if `text` is not of that form.
int ColumnNumberOf(std::string_view text) {
  if (text.size() < 2 || text[0] != '$') return 0;
  int n = 0;
  auto [ptr, ec] = std::from_chars(text.data() + 1, text.data() + text.size(), n);
  if (ec != std::errc() || ptr != text.data() + text.size() || n <= 0) return 0;
  return n;
}

// ---- The condition language -------------------------------------------------------------------

class ConditionParser {
 public:
  ConditionParser(std::string_view text, std::string key) : text_(text), key_(std::move(key)) {}

  Result<std::vector<Condition>> Parse() {
    std::vector<Condition> out;
    while (true) {
      Condition c;
      SkipSpaces();
      if (PeekWord() == "not") {
        ConsumeWord();
        c.negate = true;
      }
      SHOAL_ASSIGN_OR_RETURN(std::string ref, ReadRef());
      if (int n = ColumnNumberOf(ref)) {
        c.column_number = n;
      } else {
        c.column_name = ref;
      }
      SHOAL_RETURN_IF_ERROR(ReadOp(&c));
      out.push_back(std::move(c));
      SkipSpaces();
      if (pos_ >= text_.size()) break;
      if (PeekWord() != "and") return Error("expected 'and' or the end after a condition");
      ConsumeWord();
    }
    return out;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::InvalidArgument(key_ + ": " + what + " at position " + std::to_string(pos_ + 1) +
                                   " of \"" + std::string(text_) + "\"");
  }
  void SkipSpaces() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  static bool IsWordChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
           c == '$';
  }
  std::string_view PeekWord() {
    SkipSpaces();
    size_t end = pos_;
    while (end < text_.size() && IsWordChar(text_[end])) ++end;
    return text_.substr(pos_, end - pos_);
  }
  void ConsumeWord() { pos_ += PeekWord().size(); }

  Result<std::string> ReadQuoted() {
    char q = text_[pos_++];
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != q) {
      if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
      out.push_back(text_[pos_++]);
    }
    if (pos_ >= text_.size()) return Error("unterminated quote");
    ++pos_;
    return out;
  }

  Result<std::string> ReadRef() {
    SkipSpaces();
    if (pos_ >= text_.size()) return Error("expected a column");
    if (text_[pos_] == '`' || text_[pos_] == '"') return ReadQuoted();
    std::string_view w = PeekWord();
    if (w.empty()) return Error("expected a column name, `quoted name` or $number");
    ConsumeWord();
    return std::string(w);
  }

  // An operand: 'quoted', "quoted" or a bare word/number.
  Result<std::string> ReadOperand() {
    SkipSpaces();
    if (pos_ >= text_.size()) return Error("expected a value");
    if (text_[pos_] == '\'' || text_[pos_] == '"') return ReadQuoted();
    std::string_view w = PeekWord();
    if (w.empty()) return Error("expected a value");
    ConsumeWord();
    return std::string(w);
  }

  Status ReadOp(Condition* c) {
    SkipSpaces();
    std::string op;
    if (pos_ < text_.size() && std::string_view("<>=!").find(text_[pos_]) != std::string_view::npos) {
      while (pos_ < text_.size() && std::string_view("<>=!").find(text_[pos_]) != std::string_view::npos) {
        op.push_back(text_[pos_++]);
      }
    } else {
      op = std::string(PeekWord());
      ConsumeWord();
    }
    using Op = Condition::Op;
    if (op == "empty") { c->op = Op::kEmpty; return Status::OK(); }
    if (op == "not_empty") { c->op = Op::kNotEmpty; return Status::OK(); }
    if (op == "in") {
      c->op = Op::kIn;
      SkipSpaces();
      if (pos_ >= text_.size() || text_[pos_] != '[') return Error("expected '[' after 'in'");
      ++pos_;
      while (true) {
        SkipSpaces();
        if (pos_ < text_.size() && text_[pos_] == ']') { ++pos_; break; }
        SHOAL_ASSIGN_OR_RETURN(std::string v, ReadOperand());
        c->values.push_back(std::move(v));
        SkipSpaces();
        if (pos_ < text_.size() && text_[pos_] == ',') { ++pos_; continue; }
        if (pos_ < text_.size() && text_[pos_] == ']') { ++pos_; break; }
        return Error("expected ',' or ']' in the list");
      }
      return Status::OK();
    }
    struct Named { std::string_view name; Op op; };
    static constexpr Named kOps[] = {
        {"starts_with", Op::kStartsWith}, {"ends_with", Op::kEndsWith}, {"contains", Op::kContains},
        {"equals", Op::kEquals}, {"=", Op::kEquals}, {"==", Op::kEquals},
        {"not_equals", Op::kNotEquals}, {"!=", Op::kNotEquals}, {"<", Op::kLess},
        {"<=", Op::kLessEq}, {">", Op::kGreater}, {">=", Op::kGreaterEq}, {"matches", Op::kMatches}};
    for (const Named& n : kOps) {
      if (op != n.name) continue;
      c->op = n.op;
      SHOAL_ASSIGN_OR_RETURN(std::string v, ReadOperand());
      if (n.op == Op::kLess || n.op == Op::kLessEq || n.op == Op::kGreater || n.op == Op::kGreaterEq) {
        auto num = ParseNumber(v);
        if (!num) return Error("'" + op + "' needs a number, got '" + v + "'");
        c->number = *num;
      }
      if (n.op == Op::kMatches) {
        try {
          c->regex.emplace(v, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          return Error("bad regular expression '" + v + "': " + e.what());
        }
      }
      c->values.push_back(std::move(v));
      return Status::OK();
    }
    return Error("unknown operator '" + op +
                 "' (known: starts_with, ends_with, contains, equals/=, not_equals/!=, in, empty, "
                 "not_empty, <, <=, >, >=, matches)");
  }

  std::string_view text_;
  std::string key_;
  size_t pos_ = 0;
};

// Actions: "skip", "quarantine 'reason'", "flag name", "set field = value" / "field = value".
Result<RuleAction> ParseAction(std::string_view raw, const std::string& key) {
  std::string_view text = TrimSpaces(raw);
  RuleAction a;
  auto unquote = [](std::string_view v) {
    v = TrimSpaces(v);
    if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"') && v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    return std::string(v);
  };
  if (text == "skip") {
    a.kind = RuleAction::Kind::kSkip;
    return a;
  }
  if (text.rfind("quarantine", 0) == 0) {
    a.kind = RuleAction::Kind::kQuarantine;
    a.value = unquote(text.substr(10));
    return a;
  }
  if (text.rfind("flag ", 0) == 0) {
    a.kind = RuleAction::Kind::kFlag;
    a.value = unquote(text.substr(5));
    if (a.value.empty()) return Status::InvalidArgument(key + ": 'flag' needs a property name");
    return a;
  }
  if (text.rfind("set ", 0) == 0) text = TrimSpaces(text.substr(4));
  size_t eq = text.find('=');
  if (eq != std::string_view::npos) {
    std::string_view name = TrimSpaces(text.substr(0, eq));
    auto field = ParseField(name);
    if (!field) {
      return Status::InvalidArgument(key + ": cannot set unknown field '" + std::string(name) + "'");
    }
    a.kind = RuleAction::Kind::kSetField;
    a.field = *field;
    a.value = unquote(text.substr(eq + 1));
    return a;
  }
  return Status::InvalidArgument(key + ": unknown action '" + std::string(raw) +
                                 "' (known: skip, quarantine 'reason', flag name, set field = value)");
}

}  // namespace

// ---- Small helpers ------------------------------------------------------------------------------

std::string_view FieldName(Field field) {
  auto idx = static_cast<size_t>(field);
  return idx < kFieldNames.size() ? kFieldNames[idx] : std::string_view("?");
}

std::optional<Field> ParseField(std::string_view name) {
  for (size_t i = 0; i < kFieldNames.size(); ++i) {
    if (kFieldNames[i] == name) return static_cast<Field>(i);
  }
  return std::nullopt;
}

bool IsNumericField(Field f) {
  return f == Field::kQuantity || f == Field::kUnitPrice || f == Field::kDiscount ||
         f == Field::kTotal || f == Field::kPrice || f == Field::kDwellSeconds;
}

std::string_view LineFieldName(LineField field) {
  auto idx = static_cast<size_t>(field);
  return idx < kLineFieldNames.size() ? kLineFieldNames[idx] : std::string_view("?");
}

std::string_view TrimSpaces(std::string_view text) {
  size_t b = 0, e = text.size();
  while (b < e && (text[b] == ' ' || text[b] == '\t' || text[b] == '\r' || text[b] == '\n')) ++b;
  while (e > b && (text[e - 1] == ' ' || text[e - 1] == '\t' || text[e - 1] == '\r' || text[e - 1] == '\n')) --e;
  return text.substr(b, e - b);
}

std::optional<double> ParseNumber(std::string_view text, char decimal, char thousands) {
  text = TrimSpaces(text);
  if (text.empty()) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  // A number in another notation is rewritten into a small buffer: group separators dropped,
  // the decimal comma turned into a point (and a point, which is then no decimal mark, refused).
  char buffer[128];
  if ((decimal != '.' || thousands != 0) &&
      text.find_first_of(std::string_view("., '", 4)) != std::string_view::npos) {
    if (text.size() > sizeof buffer) return std::nullopt;
    size_t size = 0;
    for (char c : text) {
      if (thousands != 0 && c == thousands) continue;
      if (c == decimal) {
        c = '.';
      } else if (c == '.') {
        return std::nullopt;
      }
      buffer[size++] = c;
    }
    text = std::string_view(buffer, size);
  }
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<double> ParseMoney(std::string_view text, char decimal, char thousands) {
  constexpr size_t kMaxSymbolBytes = 4;
  auto is_number_char = [&](char c) {
    return (c >= '0' && c <= '9') || c == decimal || (thousands != 0 && c == thousands);
  };
  text = TrimSpaces(text);
  bool negative = false;
  if (text.size() >= 2 && text.front() == '(' && text.back() == ')') {
    negative = true;
    text = TrimSpaces(text.substr(1, text.size() - 2));
  }
  auto take_sign = [&] {
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
      negative = negative != (text.front() == '-');
      text = TrimSpaces(text.substr(1));
    }
  };
  take_sign();
  size_t lead = 0;
  while (lead < text.size() && !is_number_char(text[lead]) && text[lead] != '-' &&
         text[lead] != '+' && text[lead] != ' ') {
    ++lead;
  }
  if (lead > kMaxSymbolBytes) return std::nullopt;
  text = TrimSpaces(text.substr(lead));
  if (lead > 0) take_sign();
  size_t keep = text.size();
  while (keep > 0 && !is_number_char(text[keep - 1]) && text[keep - 1] != ' ' &&
         text[keep - 1] != '-') {
    --keep;
  }
  if (text.size() - keep > kMaxSymbolBytes || (lead > 0 && keep < text.size())) {
    return std::nullopt;  // a symbol on both sides, or a long word: not an amount
  }
  text = TrimSpaces(text.substr(0, keep));
  if (!text.empty() && text.back() == '-') {  // "5.00-": a trailing minus (some ERP exports)
    negative = !negative;
    text = TrimSpaces(text.substr(0, text.size() - 1));
  }
  if (text.empty() || text.front() == '-' || text.front() == '+') return std::nullopt;
  auto value = ParseNumber(text, decimal, thousands);
  if (!value) return std::nullopt;
  return negative ? -*value : *value;
}

std::string_view NormalizeId(std::string_view text) {
  text = TrimSpaces(text);
  size_t dot = text.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == text.size()) return text;
  size_t start = text[0] == '-' ? 1 : 0;
  if (start == dot) return text;
  for (size_t i = start; i < dot; ++i) {
    if (text[i] < '0' || text[i] > '9') return text;
  }
  for (size_t i = dot + 1; i < text.size(); ++i) {
    if (text[i] != '0') return text;
  }
  return text.substr(0, dot);
}

std::string_view DecodeToUtf8(std::string_view raw, SourceOptions::Encoding encoding,
                              std::string* out) {
  if (encoding == SourceOptions::Encoding::kUtf8) return raw;
  bool ascii = true;
  for (char c : raw) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) return raw;
  // Windows-1252 0x80..0x9F (0 = undefined there: kept as the Latin-1 control character).
  static constexpr uint16_t kCp1252High[32] = {
      0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
      0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178};
  out->clear();
  out->reserve(raw.size() * 3);
  for (char ch : raw) {
    uint32_t c = static_cast<unsigned char>(ch);
    if (c >= 0x80 && c < 0xA0 && encoding == SourceOptions::Encoding::kCp1252 &&
        kCp1252High[c - 0x80] != 0) {
      c = kCp1252High[c - 0x80];
    }
    if (c < 0x80) {
      out->push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (c >> 6)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xE0 | (c >> 12)));
      out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return *out;
}

bool ConditionHolds(const Condition& c, std::string_view raw, char decimal, char thousands) {
  std::string_view v = TrimSpaces(raw);
  using Op = Condition::Op;
  bool holds = false;
  auto number_holds = [&](auto cmp) {
    auto n = ParseNumber(v, decimal, thousands);
    return n.has_value() && cmp(*n, c.number);
  };
  switch (c.op) {
    case Op::kStartsWith: holds = v.substr(0, c.values[0].size()) == c.values[0]; break;
    case Op::kEndsWith:
      holds = v.size() >= c.values[0].size() &&
              v.substr(v.size() - c.values[0].size()) == c.values[0];
      break;
    case Op::kContains: holds = v.find(c.values[0]) != std::string_view::npos; break;
    case Op::kEquals: holds = v == c.values[0]; break;
    case Op::kNotEquals: holds = v != c.values[0]; break;
    case Op::kIn:
      holds = std::find(c.values.begin(), c.values.end(), v) != c.values.end();
      break;
    case Op::kEmpty: holds = v.empty(); break;
    case Op::kNotEmpty: holds = !v.empty(); break;
    case Op::kLess: holds = number_holds([](double a, double b) { return a < b; }); break;
    case Op::kLessEq: holds = number_holds([](double a, double b) { return a <= b; }); break;
    case Op::kGreater: holds = number_holds([](double a, double b) { return a > b; }); break;
    case Op::kGreaterEq: holds = number_holds([](double a, double b) { return a >= b; }); break;
    case Op::kMatches: holds = std::regex_search(v.begin(), v.end(), *c.regex); break;
  }
  return holds != c.negate;
}

// ---- Building a Mapping -------------------------------------------------------------------------

class MappingBuilder {
 public:
  explicit MappingBuilder(std::string name) { m_.name_ = std::move(name); }

  Status Error(const std::string& key, const std::string& what) const {
    return Status::InvalidArgument("mapping " + m_.name_ + ": " + key + ": " + what);
  }

  // A field source from a TOML node: "Name", "$3", 3, or {column, value, cast, format}.
  Result<FieldSource> SourceFromToml(const toml::node& node, const std::string& key) {
    FieldSource s;
    s.key = key;
    if (auto str = node.as_string()) {
      std::string v = str->get();
      if (int n = ColumnNumberOf(v)) {
        s.column_number = n;
      } else {
        s.column_name = v;
      }
      return s;
    }
    if (auto i = node.as_integer()) {
      if (i->get() <= 0) return Error(key, "column numbers start at 1");
      s.column_number = static_cast<int>(i->get());
      return s;
    }
    const toml::table* t = node.as_table();
    if (t == nullptr) return Error(key, "expected a column name, a column number or a table");
    bool has_source = false;
    for (auto&& [k, v] : *t) {
      std::string_view name = k.str();
      std::string sub = key + "." + std::string(name);
      if (name == "column") {
        SHOAL_ASSIGN_OR_RETURN(FieldSource c, SourceFromToml(v, sub));
        if (!v.is_string() && !v.is_integer()) return Error(sub, "expected a name or a number");
        s.column_name = c.column_name;
        s.column_number = c.column_number;
        has_source = true;
      } else if (name == "value") {
        s.is_constant = true;
        if (auto str = v.as_string()) {
          s.constant = str->get();
        } else if (auto i = v.as_integer()) {
          s.constant = std::to_string(i->get());
        } else if (auto f = v.as_floating_point()) {
          std::ostringstream os;
          os << f->get();
          s.constant = os.str();
        } else if (auto b = v.as_boolean()) {
          s.constant = b->get() ? "true" : "false";
        } else {
          return Error(sub, "expected a string or a number");
        }
        has_source = true;
      } else if (name == "cast") {
        std::vector<std::string> names;
        if (auto str = v.as_string()) {
          names.push_back(str->get());
        } else if (auto arr = v.as_array()) {
          for (auto&& e : *arr) {
            if (!e.is_string()) return Error(sub, "expected cast names");
            names.push_back(e.as_string()->get());
          }
        } else {
          return Error(sub, "expected a cast name or a list of them");
        }
        for (const auto& n : names) {
          SHOAL_ASSIGN_OR_RETURN(uint32_t bits, ParseCastName(n, "mapping " + m_.name_ + ": " + sub));
          s.casts |= bits;
        }
      } else if (name == "format") {
        if (!v.is_string()) return Error(sub, "expected a time format string");
        s.time_format = v.as_string()->get();
      } else {
        return Error(sub, "unknown key (known: column, value, cast, format)");
      }
    }
    if (!has_source) return Error(key, "needs 'column' or 'value'");
    if (s.is_constant && (!s.column_name.empty() || s.column_number != 0)) {
      return Error(key, "has both 'column' and 'value'");
    }
    return s;
  }

  Status SourceOptionsFromToml(const toml::table& t) {
    SourceOptions& o = m_.source_;
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      std::string key = "[source]." + name;
      if (name == "format") {
        if (!v.is_string() || (v.as_string()->get() != "delimited" && v.as_string()->get() != "csv")) {
          return Error(key, "mappings read delimited files: expected \"delimited\"");
        }
      } else if (name == "delimiter") {
        if (!v.is_string()) return Error(key, "expected a string");
        SHOAL_RETURN_IF_ERROR(SetDelimiter(v.as_string()->get(), key));
      } else if (name == "header") {
        if (!v.is_boolean()) return Error(key, "expected true or false");
        o.header = v.as_boolean()->get();
        m_.header_set_ = true;
      } else if (name == "columns") {
        auto arr = v.as_array();
        if (arr == nullptr) return Error(key, "expected a list of column names");
        o.columns.clear();
        for (auto&& e : *arr) {
          if (!e.is_string()) return Error(key, "expected a list of column names");
          o.columns.push_back(e.as_string()->get());
        }
      } else if (name == "skip_lines") {
        if (!v.is_integer() || v.as_integer()->get() < 0) return Error(key, "expected a count >= 0");
        o.skip_lines = static_cast<int>(v.as_integer()->get());
      } else if (name == "comment") {
        if (!v.is_string() || v.as_string()->get().size() > 1) return Error(key, "expected one character or \"\"");
        const std::string& c = v.as_string()->get();
        o.comment = c.empty() ? 0 : c[0];
      } else if (name == "quote") {
        if (!v.is_string() || v.as_string()->get().size() > 1) return Error(key, "expected one character or \"\"");
        const std::string& c = v.as_string()->get();
        o.quote = c.empty() ? 0 : c[0];
      } else if (name == "mode") {
        if (!v.is_string()) return Error(key, "expected \"rows\" or \"basket\"");
        SHOAL_RETURN_IF_ERROR(SetMode(v.as_string()->get(), key));
      } else if (name == "encoding") {
        if (!v.is_string()) return Error(key, "expected \"utf-8\", \"latin1\" or \"cp1252\"");
        SHOAL_RETURN_IF_ERROR(SetEncoding(v.as_string()->get(), key));
      } else if (name == "decimal") {
        if (!v.is_string()) return Error(key, "expected \".\" or \",\"");
        SHOAL_RETURN_IF_ERROR(SetDecimal(v.as_string()->get(), key));
      } else if (name == "thousands") {
        if (!v.is_string()) return Error(key, "expected \"\", \".\", \",\", \" \" or \"'\"");
        SHOAL_RETURN_IF_ERROR(SetThousands(v.as_string()->get(), key));
      } else {
        return Error(key, "unknown key (known: format, delimiter, header, columns, skip_lines, "
                          "comment, quote, mode, encoding, decimal, thousands)");
      }
    }
    return CheckNumberFormat("[source]");
  }

  // "','" -> "," (a --map value quoted so that a comma does not end the entry).
  static std::string_view Unquote(std::string_view text) {
    if (text.size() == 3 && (text.front() == '\'' || text.front() == '"') &&
        text.back() == text.front()) {
      return text.substr(1, 1);
    }
    return text;
  }

  // decimal: "." / "dot" / "point" or "," / "comma".
  Status SetDecimal(std::string_view name, const std::string& key) {
    std::string v = Lower(TrimSpaces(Unquote(name)));
    if (v == "." || v == "dot" || v == "point") {
      m_.source_.decimal = '.';
    } else if (v == "," || v == "comma") {
      m_.source_.decimal = ',';
    } else {
      return Error(key, "unknown decimal mark '" + std::string(name) +
                            "' (known: \".\" or \"dot\", \",\" or \"comma\")");
    }
    m_.decimal_set_ = true;
    return Status::OK();
  }

  // thousands: "" / "none", "." / "dot", "," / "comma", " " / "space", "'" / "apostrophe".
  Status SetThousands(std::string_view name, const std::string& key) {
    std::string v = Lower(Unquote(name));
    if (v.empty() || v == "none") {
      m_.source_.thousands = 0;
    } else if (v == "." || v == "dot") {
      m_.source_.thousands = '.';
    } else if (v == "," || v == "comma") {
      m_.source_.thousands = ',';
    } else if (v == " " || v == "space") {
      m_.source_.thousands = ' ';
    } else if (v == "'" || v == "apostrophe") {
      m_.source_.thousands = '\'';
    } else {
      return Error(key, "unknown digit-group separator '" + std::string(name) +
                            "' (known: none, dot, comma, space, apostrophe)");
    }
    m_.thousands_set_ = true;
    return Status::OK();
  }

  Status CheckNumberFormat(const std::string& where) {
    if (m_.source_.thousands != 0 && m_.source_.thousands == m_.source_.decimal) {
      return Error(where, "decimal and thousands must differ (both '" +
                              std::string(1, m_.source_.decimal) + "')");
    }
    return Status::OK();
  }

  Status SetDelimiter(std::string_view d, const std::string& key) {
    std::string v = Lower(d);
    if (v == "whitespace" || v == "space" || v == "spaces") {
      m_.source_.delimiter = "whitespace";
    } else if (v == "tab" || v == "\\t" || d == "\t") {
      m_.source_.delimiter = "\t";
    } else if (v == "comma") {
      m_.source_.delimiter = ",";
    } else if (v == "semicolon") {
      m_.source_.delimiter = ";";
    } else if (v == "pipe") {
      m_.source_.delimiter = "|";
    } else if (d.size() == 1 && d[0] != '"' && d[0] != '\n' && d[0] != '\r') {
      m_.source_.delimiter = std::string(d);
    } else {
      return Error(key, "unknown delimiter '" + std::string(d) +
                            "' (one character, \"tab\" or \"whitespace\")");
    }
    m_.delimiter_set_ = true;
    return Status::OK();
  }

  Status SetEncoding(std::string_view name, const std::string& key) {
    std::string v = Lower(TrimSpaces(name));
    if (v == "utf-8" || v == "utf8") {
      m_.source_.encoding = SourceOptions::Encoding::kUtf8;
    } else if (v == "latin1" || v == "latin-1" || v == "iso-8859-1" || v == "iso8859-1") {
      m_.source_.encoding = SourceOptions::Encoding::kLatin1;
    } else if (v == "cp1252" || v == "windows-1252") {
      m_.source_.encoding = SourceOptions::Encoding::kCp1252;
    } else {
      return Error(key, "unknown encoding '" + std::string(name) + "' (utf-8, latin1, cp1252)");
    }
    m_.encoding_set_ = true;
    return Status::OK();
  }

  Status SetMode(std::string_view mode, const std::string& key) {
    if (mode == "basket") {
      m_.source_.basket = true;
    } else if (mode == "rows") {
      m_.source_.basket = false;
    } else {
      return Error(key, "unknown mode '" + std::string(mode) + "' (rows or basket)");
    }
    return Status::OK();
  }

  Status FieldsFromToml(const toml::table& t) {
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      std::string key = "[fields]." + name;
      auto field = ParseField(name);
      if (!field) {
        return Error(key, "unknown field (known: " + JoinFieldNames() +
                              "; extra columns go in [properties])");
      }
      SHOAL_ASSIGN_OR_RETURN(FieldSource s, SourceFromToml(v, key));
      if (!s.time_format.empty() && *field != Field::kTimestamp) {
        return Error(key, "'format' applies to timestamp only");
      }
      m_.fields_[static_cast<size_t>(*field)] = std::move(s);
    }
    return Status::OK();
  }

  Status LinesFromToml(const toml::table& t) {
    m_.has_lines_ = true;
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      std::string key = "[lines]." + name;
      size_t idx = kNumLineFields;
      for (size_t i = 0; i < kNumLineFields; ++i) {
        if (kLineFieldNames[i] == name) idx = i;
      }
      if (idx == kNumLineFields) {
        return Error(key, "unknown line field (known: product_id, category, quantity, "
                          "unit_price, discount)");
      }
      SHOAL_ASSIGN_OR_RETURN(FieldSource s, SourceFromToml(v, key));
      m_.lines_[idx] = std::move(s);
    }
    return Status::OK();
  }

  Status PropertiesFromToml(const toml::table& t) {
    for (auto&& [k, v] : t) {
      std::string name(k.str());
      SHOAL_ASSIGN_OR_RETURN(FieldSource s, SourceFromToml(v, "[properties]." + name));
      m_.properties_.emplace_back(name, std::move(s));
    }
    return Status::OK();
  }

  Status RulesFromToml(const toml::node& node) {
    const toml::array* arr = node.as_array();
    if (arr == nullptr) return Error("[[rules]]", "expected an array of tables ([[rules]])");
    size_t idx = 0;
    for (auto&& e : *arr) {
      ++idx;
      std::string key = "[[rules]] #" + std::to_string(idx);
      const toml::table* t = e.as_table();
      if (t == nullptr) return Error(key, "expected a table with 'when' and 'then'");
      Rule rule;
      rule.key = key;
      for (auto&& [k, v] : *t) {
        std::string_view name = k.str();
        if (name == "when") {
          if (!v.is_string()) return Error(key + ".when", "expected a condition string");
          rule.when = v.as_string()->get();
          ConditionParser parser(rule.when, "mapping " + m_.name_ + ": " + key + ".when");
          SHOAL_ASSIGN_OR_RETURN(rule.conditions, parser.Parse());
        } else if (name == "then") {
          std::vector<std::string> actions;
          if (auto s = v.as_string()) {
            actions.push_back(s->get());
          } else if (auto a = v.as_array()) {
            for (auto&& x : *a) {
              if (!x.is_string()) return Error(key + ".then", "expected action strings");
              actions.push_back(x.as_string()->get());
            }
          } else {
            return Error(key + ".then", "expected an action or a list of actions");
          }
          for (const auto& a : actions) {
            SHOAL_ASSIGN_OR_RETURN(RuleAction act, ParseAction(a, "mapping " + m_.name_ + ": " + key + ".then"));
            rule.actions.push_back(std::move(act));
          }
        } else {
          return Error(key + "." + std::string(name), "unknown key (known: when, then)");
        }
      }
      if (rule.conditions.empty()) return Error(key, "missing 'when'");
      for (RuleAction& act : rule.actions) {
        if (act.kind == RuleAction::Kind::kQuarantine && act.value.empty()) {
          act.value = "rule: " + rule.when;
        }
      }
      if (rule.actions.empty()) return Error(key, "missing 'then'");
      m_.rules_.push_back(std::move(rule));
    }
    return Status::OK();
  }

  static std::string JoinFieldNames() {
    std::string out;
    for (size_t i = 0; i < kFieldNames.size(); ++i) {
      if (i > 0) out += ", ";
      out += kFieldNames[i];
    }
    return out;
  }

  Result<Mapping> FromToml(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, m_.name_);
    } catch (const toml::parse_error& e) {
      std::ostringstream os;
      os << "mapping " << m_.name_ << ": line " << e.source().begin.line << ": " << e.description();
      return Status::InvalidArgument(os.str());
    }
    for (auto&& [k, v] : root) {
      std::string_view name = k.str();
      if (name == "name" || name == "description") {
        if (!v.is_string()) return Error(std::string(name), "expected a string");
      } else if (name == "source") {
        if (!v.is_table()) return Error("[source]", "expected a table");
        SHOAL_RETURN_IF_ERROR(SourceOptionsFromToml(*v.as_table()));
      } else if (name == "fields") {
        if (!v.is_table()) return Error("[fields]", "expected a table");
        SHOAL_RETURN_IF_ERROR(FieldsFromToml(*v.as_table()));
      } else if (name == "lines") {
        if (!v.is_table()) return Error("[lines]", "expected a table");
        SHOAL_RETURN_IF_ERROR(LinesFromToml(*v.as_table()));
      } else if (name == "properties") {
        if (!v.is_table()) return Error("[properties]", "expected a table");
        SHOAL_RETURN_IF_ERROR(PropertiesFromToml(*v.as_table()));
      } else if (name == "rules") {
        SHOAL_RETURN_IF_ERROR(RulesFromToml(v));
      } else {
        return Error(std::string(name), "unknown key (known: name, description, [source], "
                                        "[fields], [lines], [properties], [[rules]])");
      }
    }
    return std::move(m_);
  }

  // One "key=value" of a --map spec.
  Status SpecEntry(std::string_view key, std::string_view value) {
    std::string k(TrimSpaces(key));
    std::string label = "--map " + k;
    if (k == "delimiter") {
      return SetDelimiter(Unquote(value), label);  // delimiter=',' (quoted: a comma ends entries)
    }
    if (k == "header") {
      std::string v = Lower(TrimSpaces(value));
      if (v == "yes" || v == "true" || v == "1") {
        m_.source_.header = true;
      } else if (v == "no" || v == "false" || v == "0") {
        m_.source_.header = false;
      } else {
        return Error(label, "expected yes or no");
      }
      m_.header_set_ = true;
      return Status::OK();
    }
    if (k == "skip_lines") {
      int n = 0;
      auto v = TrimSpaces(value);
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || ptr != v.data() + v.size() || n < 0) return Error(label, "expected a count");
      m_.source_.skip_lines = n;
      return Status::OK();
    }
    if (k == "comment") {
      if (value.size() > 1) return Error(label, "expected one character");
      m_.source_.comment = value.empty() ? 0 : value[0];
      return Status::OK();
    }
    if (k == "mode") return SetMode(TrimSpaces(value), label);
    if (k == "encoding") return SetEncoding(value, label);
    if (k == "decimal" || k == "thousands") {
      SHOAL_RETURN_IF_ERROR(k == "decimal" ? SetDecimal(value, label)
                                           : SetThousands(value, label));
      // A spec giving one of the two may refine a recipe's other: Compile checks the result.
      if (m_.decimal_set_ && m_.thousands_set_) return CheckNumberFormat(label);
      return Status::OK();
    }

    // A field: column[:format][|cast|cast]
    FieldSource s;
    s.key = label;
    std::string_view rest = value;
    size_t bar = rest.find('|');
    std::string_view casts = bar == std::string_view::npos ? std::string_view() : rest.substr(bar + 1);
    rest = rest.substr(0, bar);
    while (!casts.empty()) {
      size_t next = casts.find('|');
      SHOAL_ASSIGN_OR_RETURN(uint32_t bits, ParseCastName(casts.substr(0, next), "mapping " + m_.name_ + ": " + label));
      s.casts |= bits;
      casts = next == std::string_view::npos ? std::string_view() : casts.substr(next + 1);
    }
    bool is_time = k == "timestamp";
    if (is_time) {
      size_t colon = rest.find(':');
      if (colon != std::string_view::npos) {
        s.time_format = std::string(rest.substr(colon + 1));
        rest = rest.substr(0, colon);
      }
    }
    rest = TrimSpaces(rest);
    if (rest.size() >= 2 && (rest.front() == '\'' || rest.front() == '"') && rest.back() == rest.front()) {
      s.is_constant = true;
      s.constant = std::string(rest.substr(1, rest.size() - 2));
    } else if (int n = ColumnNumberOf(rest)) {
      s.column_number = n;
    } else {
      if (rest.empty()) return Error(label, "missing column");
      s.column_name = std::string(rest);
    }
    if (k.rfind("lines.", 0) == 0) {
      std::string_view lf = std::string_view(k).substr(6);
      for (size_t i = 0; i < kNumLineFields; ++i) {
        if (kLineFieldNames[i] == lf) {
          m_.lines_[i] = std::move(s);
          m_.has_lines_ = true;
          return Status::OK();
        }
      }
      return Error(label, "unknown line field");
    }
    if (k.rfind("prop.", 0) == 0 || k.rfind("properties.", 0) == 0) {
      std::string name = k.substr(k.find('.') + 1);
      if (name.empty()) return Error(label, "missing property name");
      m_.properties_.emplace_back(name, std::move(s));
      return Status::OK();
    }
    auto field = ParseField(k);
    if (!field) return Error(label, "unknown field (known: " + JoinFieldNames() + ")");
    if (*field == Field::kType || *field == Field::kCurrency || *field == Field::kChannel ||
        *field == Field::kDevice) {
      s.column_or_constant = !s.is_constant && s.column_number == 0;
    }
    m_.fields_[static_cast<size_t>(*field)] = std::move(s);
    return Status::OK();
  }

  Result<Mapping> FromSpec(std::string_view spec) {
    // Split on commas outside quotes.
    size_t start = 0;
    char quote = 0;
    for (size_t i = 0; i <= spec.size(); ++i) {
      if (i < spec.size()) {
        char c = spec[i];
        if (quote != 0) {
          if (c == quote) quote = 0;
          continue;
        }
        if (c == '\'' || c == '"') {
          quote = c;
          continue;
        }
        if (c != ',') continue;
      }
      std::string_view entry = TrimSpaces(spec.substr(start, i - start));
      start = i + 1;
      if (entry.empty()) continue;
      size_t eq = entry.find('=');
      if (eq == std::string_view::npos) {
        return Status::InvalidArgument("mapping " + m_.name_ + ": '" + std::string(entry) +
                                       "' is not key=value");
      }
      // "delimiter=," would be split at the comma: accept "delimiter=comma" and friends.
      SHOAL_RETURN_IF_ERROR(SpecEntry(entry.substr(0, eq), entry.substr(eq + 1)));
    }
    return std::move(m_);
  }

 private:
  Mapping m_;
};

Result<Mapping> Mapping::FromToml(std::string_view toml_text, std::string_view name) {
  return MappingBuilder(std::string(name)).FromToml(toml_text);
}

Result<Mapping> Mapping::FromTomlFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read mapping file '" + path + "'");
  std::ostringstream os;
  os << in.rdbuf();
  std::string name = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  return FromToml(os.str(), name);
}

Result<Mapping> Mapping::FromSpec(std::string_view spec) {
  return MappingBuilder("--map").FromSpec(spec);
}

void Mapping::MergeFrom(const Mapping& other) {
  if (other.delimiter_set_) {
    source_.delimiter = other.source_.delimiter;
    delimiter_set_ = true;
  }
  if (other.header_set_) {
    source_.header = other.source_.header;
    header_set_ = true;
  }
  if (!other.source_.columns.empty()) source_.columns = other.source_.columns;
  if (other.source_.skip_lines != 0) source_.skip_lines = other.source_.skip_lines;
  if (other.source_.comment != 0) source_.comment = other.source_.comment;
  if (other.source_.basket) source_.basket = true;
  if (other.encoding_set_) {
    source_.encoding = other.source_.encoding;
    encoding_set_ = true;
  }
  if (other.decimal_set_) {
    source_.decimal = other.source_.decimal;
    decimal_set_ = true;
  }
  if (other.thousands_set_) {
    source_.thousands = other.source_.thousands;
    thousands_set_ = true;
  }
  for (size_t i = 0; i < kNumFields; ++i) {
    if (other.fields_[i]) fields_[i] = other.fields_[i];
  }
  for (const auto& p : other.properties_) properties_.push_back(p);
  if (other.has_lines_) {
    has_lines_ = true;
    for (size_t i = 0; i < kNumLineFields; ++i) {
      if (other.lines_[i]) lines_[i] = other.lines_[i];
    }
  }
  for (const auto& r : other.rules_) rules_.push_back(r);
}

// ---- Compiling against a header -----------------------------------------------------------------

namespace {

// Finds a column: exact name, else case-insensitive trimmed name. -1 when absent.
int FindColumn(const std::vector<std::string>& header, std::string_view name) {
  for (size_t i = 0; i < header.size(); ++i) {
    if (header[i] == name) return static_cast<int>(i);
  }
  std::string want = Lower(TrimSpaces(name));
  for (size_t i = 0; i < header.size(); ++i) {
    if (Lower(TrimSpaces(header[i])) == want) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

Result<CompiledMapping> Mapping::Compile(const std::vector<std::string>& header) const {
  CompiledMapping out;
  out.header = header;
  auto error = [&](const std::string& key, const std::string& what) {
    return Status::InvalidArgument("mapping " + name_ + ": " + key + ": " + what);
  };
  // A recipe refined by --map (MergeFrom) is checked as a whole here.
  if (source_.thousands != 0 && source_.thousands == source_.decimal) {
    return error("[source]", "decimal and thousands must differ (both '" +
                                 std::string(1, source_.decimal) + "')");
  }
  auto resolve_column = [&](const std::string& key, const std::string& column_name,
                            int column_number, int* column) -> Status {
    if (column_number > 0) {
      if (column_number > static_cast<int>(header.size())) {
        return error(key, "column " + std::to_string(column_number) + " does not exist; the file has " +
                              std::to_string(header.size()) + " columns");
      }
      *column = column_number - 1;
    } else {
      *column = FindColumn(header, column_name);
      if (*column < 0) {
        return error(key, "unknown column '" + column_name + "'; the header has: " + JoinHeader(header));
      }
    }
    out.columns_needed = std::max(out.columns_needed, *column + 1);
    return Status::OK();
  };
  auto resolve = [&](const FieldSource& s, CompiledMapping::Source* c) -> Status {
    c->present = true;
    c->casts = s.casts;
    if (s.is_constant) {
      c->constant = s.constant;
      return Status::OK();
    }
    if (s.column_or_constant && FindColumn(header, s.column_name) < 0) {
      c->constant = s.column_name;
      return Status::OK();
    }
    if (source_.basket) return error(s.key, "basket mode reads items only: give a constant value");
    return resolve_column(s.key, s.column_name, s.column_number, &c->column);
  };

  for (size_t i = 0; i < kNumFields; ++i) {
    if (!fields_[i]) continue;
    SHOAL_RETURN_IF_ERROR(resolve(*fields_[i], &out.fields[i]));
    if (static_cast<Field>(i) == Field::kTimestamp) {
      std::string fmt = fields_[i]->time_format.empty() ? "auto" : fields_[i]->time_format;
      auto parser = TimeParser::Make(fmt);
      if (!parser.ok()) return error(fields_[i]->key, parser.status().message());
      out.fields[i].time = *parser;
    }
  }
  // The id cast is the default for customer and order ids (docs/mappings.md).
  for (Field f : {Field::kCustomerId, Field::kOrderId}) {
    auto& s = out.fields[static_cast<size_t>(f)];
    if (s.present && !(s.casts & kCastText)) s.casts |= kCastId;
  }
  auto& type = out.fields[static_cast<size_t>(Field::kType)];
  if (!type.present && !source_.basket) {
    return error("[fields].type", "missing: every event needs a type (a column, or a constant "
                                  "such as type = { value = \"order\" })");
  }
  auto& ts = out.fields[static_cast<size_t>(Field::kTimestamp)];
  if (!ts.present && !source_.basket) {
    return error("[fields].timestamp", "missing: every event needs a timestamp column");
  }
  if (ts.present && ts.column < 0) {
    auto t = ts.time->Parse(ts.constant);
    if (!t.ok()) return error(fields_[static_cast<size_t>(Field::kTimestamp)]->key, t.status().message());
  }
  for (const auto& [name, s] : properties_) {
    CompiledMapping::Source c;
    SHOAL_RETURN_IF_ERROR(resolve(s, &c));
    out.properties.emplace_back(name, std::move(c));
  }
  if (has_lines_) {
    if (source_.basket) return error("[lines]", "basket mode makes the lines from the items");
    out.has_lines = true;
    bool any = false;
    for (size_t i = 0; i < kNumLineFields; ++i) {
      if (!lines_[i]) continue;
      SHOAL_RETURN_IF_ERROR(resolve(*lines_[i], &out.lines[i]));
      any = true;
    }
    if (!any) return error("[lines]", "maps no line field");
  }
  for (const Rule& rule : rules_) {
    CompiledMapping::CompiledRule cr;
    cr.actions = rule.actions;
    for (const Condition& c : rule.conditions) {
      CompiledMapping::CompiledCondition cc;
      cc.condition = c;
      SHOAL_RETURN_IF_ERROR(resolve_column(rule.key + ".when", c.column_name, c.column_number, &cc.column));
      cr.conditions.push_back(std::move(cc));
    }
    out.rules.push_back(std::move(cr));
  }
  return out;
}

Result<CompiledMapping> Mapping::CompileCanonical(const std::vector<std::string>& header) {
  CompiledMapping out;
  out.header = header;
  out.canonical = true;
  std::vector<std::string> unknown;
  for (size_t col = 0; col < header.size(); ++col) {
    std::string_view name = TrimSpaces(header[col]);
    if (auto f = ParseField(name)) {
      auto& s = out.fields[static_cast<size_t>(*f)];
      if (s.present) continue;  // first of duplicated columns wins
      s.present = true;
      s.column = static_cast<int>(col);
      if (*f == Field::kCustomerId || *f == Field::kOrderId) s.casts = kCastId;
      if (*f == Field::kTimestamp) s.time = *TimeParser::Make("auto");
      continue;
    }
    std::string_view prop;
    if (name.rfind("properties.", 0) == 0) prop = name.substr(11);
    if (name.rfind("prop.", 0) == 0) prop = name.substr(5);
    if (!prop.empty()) {
      CompiledMapping::Source s;
      s.present = true;
      s.column = static_cast<int>(col);
      out.properties.emplace_back(std::string(prop), std::move(s));
      continue;
    }
    unknown.push_back(std::string(name));
  }
  bool has_type = out.fields[static_cast<size_t>(Field::kType)].present;
  bool has_time = out.fields[static_cast<size_t>(Field::kTimestamp)].present;
  if (!unknown.empty() || !has_type || !has_time) {
    std::string msg = "the header is not canonical";
    if (!unknown.empty()) {
      msg += " (unknown columns: " + JoinHeader(unknown) + ")";
    } else {
      msg += std::string(" (missing column: ") + (has_type ? "timestamp" : "type") + ")";
    }
    msg += "; give a mapping (--map or a recipe, docs/mappings.md). The header has: " +
           JoinHeader(header);
    return Status::InvalidArgument(msg);
  }
  out.has_lines = true;
  static constexpr Field kLineSources[kNumLineFields] = {Field::kProductId, Field::kCategory,
                                                          Field::kQuantity, Field::kUnitPrice,
                                                          Field::kDiscount};
  for (size_t i = 0; i < kNumLineFields; ++i) out.lines[i] = out.fields[static_cast<size_t>(kLineSources[i])];
  // A canonical file is written by a tool: a row with fewer cells than the header is truncated.
  out.columns_needed = static_cast<int>(header.size());
  return out;
}

}  // namespace shoal
