#include "segment/rules.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

namespace shoal::segment {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A small data set: 4 number columns and 2 string columns.
class RulesTest : public ::testing::Test {
 protected:
  RulesTest() {
    schema_ = {{"days_since_last_order", RuleType::kNumber},
               {"orders_365d", RuleType::kNumber},
               {"monetary_total", RuleType::kNumber},
               {"discount_share", RuleType::kNumber},
               {"segment", RuleType::kString},
               {"country", RuleType::kString}};
    days_ = {75, 10, 200, kNaN, 61};
    orders_ = {3, 8, 1, 0, 2};
    monetary_ = {300, 1200, 40, kNaN, 90};
    discount_ = {0.5, 0.1, 0.9, kNaN, 0.0};
    segment_codes_ = {0, 1, 2, -1, 0};
    segment_dictionary_ = {"premium trend explorers", "loyal champions", "one-time buyers"};
    country_codes_ = {0, 1, 0, 1, -1};
    country_dictionary_ = {"DE", "FR"};
    data_.rows = 5;
    data_.columns.resize(6);
    data_.columns[0].numbers = days_;
    data_.columns[1].numbers = orders_;
    data_.columns[2].numbers = monetary_;
    data_.columns[3].numbers = discount_;
    data_.columns[4].codes = segment_codes_;
    data_.columns[4].dictionary = segment_dictionary_;
    data_.columns[5].codes = country_codes_;
    data_.columns[5].dictionary = country_dictionary_;
  }

  // The rows matching `text`, as a string of 0/1 (row 0 first); fails the test on errors.
  std::string Rows(std::string_view text) {
    auto rule = CompileRule(text, schema_);
    EXPECT_TRUE(rule.ok()) << text << ": " << rule.status().ToString();
    if (!rule.ok()) return "error";
    auto bound = BoundRule::Bind(*rule, data_);
    EXPECT_TRUE(bound.ok()) << bound.status().ToString();
    std::string out;
    for (size_t row = 0; row < data_.rows; ++row) out += bound->Matches(row) ? '1' : '0';
    // The batched path agrees with the per-row path.
    std::vector<uint8_t> all = bound->MatchAll(Context{});
    for (size_t row = 0; row < data_.rows; ++row) EXPECT_EQ(all[row] != 0, out[row] == '1');
    return out;
  }

  std::string Error(std::string_view text, RuleDiagnostic* diagnostic = nullptr) {
    auto rule = CompileRule(text, schema_, diagnostic);
    EXPECT_FALSE(rule.ok()) << text;
    return rule.ok() ? "" : rule.status().message();
  }

  RuleSchema schema_;
  std::vector<double> days_, orders_, monetary_, discount_;
  std::vector<int32_t> segment_codes_, country_codes_;
  std::vector<std::string> segment_dictionary_, country_dictionary_;
  RuleData data_;
};

TEST_F(RulesTest, TheBriefExample) {
  EXPECT_EQ(Rows("days_since_last_order > 60 and orders_365d >= 3 and "
                 "segment == \"premium trend explorers\""),
            "10000");
}

TEST_F(RulesTest, ComparisonOperators) {
  EXPECT_EQ(Rows("orders_365d == 3"), "10000");
  EXPECT_EQ(Rows("orders_365d != 3"), "01111");
  EXPECT_EQ(Rows("orders_365d < 2"), "00110");
  EXPECT_EQ(Rows("orders_365d <= 2"), "00111");
  EXPECT_EQ(Rows("orders_365d > 2"), "11000");
  EXPECT_EQ(Rows("orders_365d >= 2"), "11001");
}

TEST_F(RulesTest, BooleanOperatorsAndPrecedence) {
  // and binds tighter than or.
  EXPECT_EQ(Rows("orders_365d == 8 or orders_365d == 1 and monetary_total > 1000"), "01000");
  EXPECT_EQ(Rows("(orders_365d == 8 or orders_365d == 1) and monetary_total < 1000"), "00100");
  EXPECT_EQ(Rows("not orders_365d > 2"), "00111");
  EXPECT_EQ(Rows("not (orders_365d > 2 or orders_365d == 0)"), "00101");
  EXPECT_EQ(Rows("orders_365d > 2 && !(monetary_total > 1000) || orders_365d == 0"), "10010");
  EXPECT_EQ(Rows("orders_365d > 2 AND monetary_total > 500"), "01000");
  EXPECT_EQ(Rows("true"), "11111");
  EXPECT_EQ(Rows("false or orders_365d == 2"), "00001");
  EXPECT_EQ(Rows("(orders_365d > 2) == true"), "11000");
}

TEST_F(RulesTest, ArithmeticAndPrecedence) {
  EXPECT_EQ(Rows("monetary_total / orders_365d >= 100"), "11000");
  EXPECT_EQ(Rows("orders_365d + 2 * 3 == 9"), "10000");  // * before +
  EXPECT_EQ(Rows("(orders_365d + 2) * 3 == 15"), "10000");
  EXPECT_EQ(Rows("orders_365d - 1 - 1 == 1"), "10000");  // left associative
  EXPECT_EQ(Rows("-orders_365d < -5"), "01000");
  EXPECT_EQ(Rows("orders_365d * 2 >= 16"), "01000");
  EXPECT_EQ(Rows("1.5e1 < orders_365d * 5"), "01000");
}

TEST_F(RulesTest, InAndNotIn) {
  EXPECT_EQ(Rows("orders_365d in [1, 2, 3]"), "10101");
  EXPECT_EQ(Rows("orders_365d not in [1, 2, 3]"), "01010");
  EXPECT_EQ(Rows("orders_365d in [-1, 8]"), "01000");
  EXPECT_EQ(Rows("segment in [\"loyal champions\", \"one-time buyers\"]"), "01100");
  EXPECT_EQ(Rows("segment not in ['loyal champions']"), "10101");  // null row 3: false
  EXPECT_EQ(Rows("orders_365d in []"), "00000");
}

TEST_F(RulesTest, Strings) {
  EXPECT_EQ(Rows("segment == 'one-time buyers'"), "00100");
  EXPECT_EQ(Rows("'one-time buyers' == segment"), "00100");
  EXPECT_EQ(Rows("segment != 'one-time buyers'"), "11001");  // null compares false
  EXPECT_EQ(Rows("segment == 'no such segment'"), "00000");
  EXPECT_EQ(Rows("country == country"), "11110");
  EXPECT_EQ(Rows("segment == country"), "00000");
  EXPECT_EQ(Rows("is_null(segment)"), "00010");
  EXPECT_EQ(Rows("'a' == 'a' and country == \"DE\""), "10100");
}

TEST_F(RulesTest, DurationsAreDays) {
  EXPECT_EQ(Rows("days_since_last_order > 60d"), "10101");
  EXPECT_EQ(Rows("days_since_last_order > 8w"), "10101");     // 56 days
  EXPECT_EQ(Rows("days_since_last_order > 9w"), "10100");     // 63 days
  EXPECT_EQ(Rows("days_since_last_order > 1464h"), "10100");  // 61 days
  EXPECT_EQ(Rows("days_since_last_order == 1464h"), "00001");
}

TEST_F(RulesTest, NaNSemantics) {
  // Row 3 has NaN everywhere numeric: every comparison is false, including != and not in.
  EXPECT_EQ(Rows("days_since_last_order > 0 or days_since_last_order <= 0"), "11101");
  EXPECT_EQ(Rows("days_since_last_order != 1"), "11101");
  EXPECT_EQ(Rows("not (days_since_last_order > 100)"), "11011");  // not of false is true
  EXPECT_EQ(Rows("is_null(days_since_last_order)"), "00010");
  EXPECT_EQ(Rows("is_null(monetary_total / orders_365d)"), "00010");
  EXPECT_EQ(Rows("is_null(orders_365d / 0)"), "11111");  // division by zero is undefined
  EXPECT_EQ(Rows("discount_share not in [0.5]"), "01101");
}

TEST_F(RulesTest, Functions) {
  EXPECT_EQ(Rows("abs(days_since_last_order - 70) < 10"), "10001");
  EXPECT_EQ(Rows("min(orders_365d, 2) == 2"), "11001");
  EXPECT_EQ(Rows("max(orders_365d, 2, discount_share * 10) > 5"), "01100");
  EXPECT_EQ(Rows("is_null(min(orders_365d, discount_share))"), "00010");
}

TEST_F(RulesTest, ErrorsHavePositionsAndSuggestions) {
  RuleDiagnostic diagnostic;
  std::string message = Error("orders_365d > 1 and\n  recency_day > 3", &diagnostic);
  EXPECT_EQ(diagnostic.line, 2);
  EXPECT_EQ(diagnostic.column, 3);
  EXPECT_NE(message.find("2:3: unknown trait 'recency_day'"), std::string::npos) << message;
  EXPECT_EQ(Error("days_since_last_ordr > 1"),
            "1:1: unknown trait 'days_since_last_ordr'; did you mean 'days_since_last_order'?");
  EXPECT_EQ(Error("orders_365d > 1 and segment > \"x\"").substr(0, 6), "1:21: ");
  EXPECT_EQ(Error("orders_365d == \"three\""),
            "1:1: cannot compare number 'orders_365d' with string \"three\"");
  EXPECT_EQ(Error("segment == 3"), "1:1: cannot compare string 'segment' with number 3");
  EXPECT_NE(Error("orders_365d and true").find("'and' needs conditions"), std::string::npos);
  EXPECT_NE(Error("segment + 1").find("'+' needs numbers, got string 'segment'"),
            std::string::npos);
  EXPECT_NE(Error("orders_365d").find("must be a condition"), std::string::npos);
  EXPECT_NE(Error("1 < orders_365d < 3").find("cannot be chained"), std::string::npos);
  EXPECT_EQ(Error("orders_365d = 3"), "1:13: use '==' to test equality");
  EXPECT_EQ(Error("orders_365d > 3m"),
            "1:16: unknown duration unit 'm'; use d (days), w (weeks) "
            "or h (hours)");
  EXPECT_NE(Error("(orders_365d > 3").find("expected ')'"), std::string::npos);
  EXPECT_NE(Error("segment == 'open").find("unterminated string"), std::string::npos);
  EXPECT_NE(Error("abss(orders_365d) > 1").find("did you mean 'abs'"), std::string::npos);
  EXPECT_NE(Error("min(orders_365d) > 1").find("two or more"), std::string::npos);
  EXPECT_NE(Error("orders_365d in [1, 'a']").find("cannot compare"), std::string::npos);
  EXPECT_NE(Error("orders_365d > ").find("expected a value"), std::string::npos);
  EXPECT_NE(Error("orders_365d > 1 orders_365d").find("unexpected name"), std::string::npos);
}

TEST_F(RulesTest, ExplainReportsClausesAndValues) {
  auto rule =
      CompileRule("days_since_last_order > 60 and (orders_365d >= 3 or is_null(segment))", schema_);
  ASSERT_TRUE(rule.ok());
  auto bound = BoundRule::Bind(*rule, data_);
  ASSERT_TRUE(bound.ok());
  RuleExplanation explanation = bound->Explain(4);
  EXPECT_FALSE(explanation.matched);
  ASSERT_EQ(explanation.clauses.size(), 3u);
  EXPECT_EQ(explanation.clauses[0].text, "days_since_last_order > 60");
  EXPECT_TRUE(explanation.clauses[0].held);
  ASSERT_EQ(explanation.clauses[0].values.size(), 1u);
  EXPECT_EQ(explanation.clauses[0].values[0].first, "days_since_last_order");
  EXPECT_EQ(explanation.clauses[0].values[0].second, "61");
  EXPECT_EQ(explanation.clauses[1].text, "orders_365d >= 3");
  EXPECT_FALSE(explanation.clauses[1].held);
  EXPECT_EQ(explanation.clauses[2].values[0].second, "\"premium trend explorers\"");
  EXPECT_EQ(FormatExplanation(explanation),
            "matched: false\n"
            "  held    days_since_last_order > 60   (days_since_last_order = 61)\n"
            "  failed  orders_365d >= 3             (orders_365d = 2)\n"
            "  failed  is_null(segment)             (segment = \"premium trend explorers\")\n");
  EXPECT_TRUE(bound->Explain(0).matched);
  EXPECT_EQ(bound->Explain(3).clauses[0].values[0].second, "null");
}

TEST_F(RulesTest, BindChecksData) {
  auto rule = CompileRule("orders_365d > 1", schema_);
  ASSERT_TRUE(rule.ok());
  RuleData short_data = data_;
  std::vector<double> two = {1, 2};
  short_data.columns[1].numbers = two;
  EXPECT_FALSE(BoundRule::Bind(*rule, short_data).ok());
  RuleData few_columns;
  few_columns.rows = 5;
  EXPECT_FALSE(BoundRule::Bind(*rule, few_columns).ok());
  // Columns the rule does not read are not checked.
  RuleData partial = data_;
  partial.columns[0].numbers = {};
  EXPECT_TRUE(BoundRule::Bind(*rule, partial).ok());
}

TEST(RulesBatch, MatchAllEqualsPerRowOnRandomData) {
  RuleSchema schema = {
      {"a", RuleType::kNumber}, {"b", RuleType::kNumber}, {"s", RuleType::kString}};
  const size_t n = 200000;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> uniform(0, 100);
  std::vector<double> a(n), b(n);
  std::vector<int32_t> s(n);
  std::vector<std::string> dictionary = {"x", "y", "z"};
  for (size_t idx = 0; idx < n; ++idx) {
    a[idx] = idx % 17 == 0 ? kNaN : uniform(rng);
    b[idx] = uniform(rng);
    s[idx] = static_cast<int32_t>(idx % 4) - 1;
  }
  RuleData data;
  data.rows = n;
  data.columns.resize(3);
  data.columns[0].numbers = a;
  data.columns[1].numbers = b;
  data.columns[2].codes = s;
  data.columns[2].dictionary = dictionary;
  auto rule =
      CompileRule("(a + b > 100 and s in ['x', 'z']) or not (a < 20) and b / 2 > 40", schema);
  ASSERT_TRUE(rule.ok()) << rule.status().ToString();
  auto bound = BoundRule::Bind(*rule, data);
  ASSERT_TRUE(bound.ok());
  Context two_threads;
  two_threads.threads = 2;
  std::vector<uint8_t> all = bound->MatchAll(two_threads);
  size_t matched = 0;
  for (size_t row = 0; row < n; ++row) {
    const bool s_ok = s[row] == 0 || s[row] == 2;
    const bool expected = (a[row] + b[row] > 100 && s_ok) || (!(a[row] < 20) && b[row] / 2 > 40);
    ASSERT_EQ(all[row] != 0, expected) << row;
    ASSERT_EQ(bound->Matches(row), expected) << row;
    matched += expected;
  }
  EXPECT_GT(matched, n / 10);
  EXPECT_LT(matched, n);
}

// Random well-typed rules over random data (with NaN and null strings): the block evaluator, the
// row interpreter and a direct recursive evaluation of the same tree agree on every row; random
// token soup never crashes the compiler.
class RandomRules {
 public:
  explicit RandomRules(uint64_t seed) : rng_(seed) {}

  // A condition of depth <= depth and its reference evaluator.
  std::string Condition(int depth, std::function<bool(size_t)>* eval) {
    const int choice = Pick(depth > 0 ? 7 : 3);
    if (choice == 0) {  // number comparison
      std::function<double(size_t)> a, b;
      std::string left = Number(depth - 1, &a), right = Number(depth - 1, &b);
      static const char* kOps[] = {"<", "<=", ">", ">=", "==", "!="};
      const int op = Pick(6);
      *eval = [a, b, op](size_t row) {
        const double x = a(row), y = b(row);
        if (std::isnan(x) || std::isnan(y)) return false;
        switch (op) {
          case 0:
            return x < y;
          case 1:
            return x <= y;
          case 2:
            return x > y;
          case 3:
            return x >= y;
          case 4:
            return x == y;
          default:
            return x != y;
        }
      };
      return "(" + left + " " + kOps[op] + " " + right + ")";
    }
    if (choice == 1) {  // string test
      const int which = Pick(3);
      const int literal = Pick(3);
      const std::string names[] = {"x", "y", "q"};
      *eval = [this, which, literal](size_t row) {
        const int32_t code = codes_[row];
        if (which == 2) return code < 0;
        if (code < 0) return false;
        const bool equal = dictionary_[code] == std::string(1, "xyq"[literal]);
        return which == 0 ? equal : !equal;
      };
      if (which == 2) return "is_null(s)";
      return std::string("s ") + (which == 0 ? "==" : "!=") + " '" + names[literal] + "'";
    }
    if (choice == 2) {  // in list
      std::function<double(size_t)> a;
      std::string operand = Number(0, &a);
      const bool negated = Pick(2) == 1;
      *eval = [a, negated](size_t row) {
        const double x = a(row);
        if (std::isnan(x)) return false;
        const bool member = x == 1 || x == 2 || x == 3;
        return member != negated;
      };
      return operand + (negated ? " not in [1, 2, 3]" : " in [3, 1, 2]");
    }
    std::function<bool(size_t)> left, right;
    if (choice == 3) {
      std::string inner = Condition(depth - 1, &left);
      *eval = [left](size_t row) { return !left(row); };
      return "not " + inner;
    }
    std::string l = Condition(depth - 1, &left), r = Condition(depth - 1, &right);
    if (choice <= 4) {
      *eval = [left, right](size_t row) { return left(row) && right(row); };
      return "(" + l + " and " + r + ")";
    }
    *eval = [left, right](size_t row) { return left(row) || right(row); };
    return "(" + l + " or " + r + ")";
  }

  std::string Number(int depth, std::function<double(size_t)>* eval) {
    const int choice = Pick(depth > 0 ? 8 : 2);
    if (choice == 0) {
      const int column = Pick(2);
      *eval = [this, column](size_t row) { return column == 0 ? a_[row] : b_[row]; };
      return column == 0 ? "a" : "b";
    }
    if (choice == 1) {
      const double value = Pick(7) - 2;
      *eval = [value](size_t) { return value; };
      return std::to_string(static_cast<int>(value));
    }
    std::function<double(size_t)> x, y;
    std::string left = Number(depth - 1, &x);
    if (choice == 2) {
      *eval = [x](size_t row) { return -x(row); };
      return "-" + left;
    }
    if (choice == 3) {
      *eval = [x](size_t row) { return std::fabs(x(row)); };
      return "abs(" + left + ")";
    }
    std::string right = Number(depth - 1, &y);
    switch (choice) {
      case 4:
        *eval = [x, y](size_t row) { return x(row) + y(row); };
        return "(" + left + " + " + right + ")";
      case 5:
        *eval = [x, y](size_t row) { return x(row) * y(row); };
        return "(" + left + " * " + right + ")";
      case 6:
        *eval = [x, y](size_t row) {
          const double d = y(row);
          return d == 0 ? std::numeric_limits<double>::quiet_NaN() : x(row) / d;
        };
        return "(" + left + " / " + right + ")";
      default:
        *eval = [x, y](size_t row) {
          const double p = x(row), q = y(row);
          return std::isnan(p) || std::isnan(q) ? std::numeric_limits<double>::quiet_NaN()
                                                : std::max(p, q);
        };
        return "max(" + left + ", " + right + ")";
    }
  }

  void FillData(size_t n) {
    a_.resize(n);
    b_.resize(n);
    codes_.resize(n);
    for (size_t row = 0; row < n; ++row) {
      a_[row] = Pick(10) == 0 ? kNaN : Pick(7) - 2;
      b_[row] = Pick(10) == 0 ? kNaN : Pick(5);
      codes_[row] = Pick(4) - 1;
    }
    data_.rows = n;
    data_.columns.resize(3);
    data_.columns[0].numbers = a_;
    data_.columns[1].numbers = b_;
    data_.columns[2].codes = codes_;
    data_.columns[2].dictionary = dictionary_;
  }

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  const RuleData& data() const { return data_; }

 private:
  std::mt19937_64 rng_;
  std::vector<double> a_, b_;
  std::vector<int32_t> codes_;
  std::vector<std::string> dictionary_ = {"x", "y", "z"};
  RuleData data_;
};

TEST(RulesRandom, BlockRowAndReferenceEvaluationAgree) {
  RandomRules random(99);
  random.FillData(1500);  // three blocks, the last one partial
  RuleSchema schema = {
      {"a", RuleType::kNumber}, {"b", RuleType::kNumber}, {"s", RuleType::kString}};
  Context two_threads;
  two_threads.threads = 2;
  for (int trial = 0; trial < 300; ++trial) {
    std::function<bool(size_t)> reference;
    const std::string text = random.Condition(1 + trial % 4, &reference);
    auto rule = CompileRule(text, schema);
    ASSERT_TRUE(rule.ok()) << text << ": " << rule.status().ToString();
    auto bound = BoundRule::Bind(*rule, random.data());
    ASSERT_TRUE(bound.ok());
    std::vector<uint8_t> all = bound->MatchAll(two_threads);
    for (size_t row = 0; row < random.data().rows; ++row) {
      const bool expected = reference(row);
      ASSERT_EQ(bound->Matches(row), expected) << text << " row " << row;
      ASSERT_EQ(all[row] != 0, expected) << text << " row " << row;
    }
  }
}

TEST(RulesRandom, TokenSoupNeverCrashes) {
  const char* pieces[] = {
      "a",   "b",  "s",    "1",    "2.5",      "3d",   "'x'", "(",  ")",  "[",   "]",
      ",",   "+",  "-",    "*",    "/",        "<",    "<=",  "==", "!=", "and", "or",
      "not", "in", "abs(", "min(", "is_null(", "true", "\"",  "=",  "!",  "&&",  "zz"};
  RuleSchema schema = {
      {"a", RuleType::kNumber}, {"b", RuleType::kNumber}, {"s", RuleType::kString}};
  std::mt19937_64 rng(5);
  int compiled = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int length = 1 + static_cast<int>(rng() % 9);
    for (int piece = 0; piece < length; ++piece) {
      text += pieces[rng() % std::size(pieces)];
      text += ' ';
    }
    RuleDiagnostic diagnostic;
    auto rule = CompileRule(text, schema, &diagnostic);
    if (rule.ok()) {
      ++compiled;
    } else {
      EXPECT_GE(diagnostic.column, 1) << text;
      EXPECT_LE(diagnostic.column, static_cast<int>(text.size()) + 1) << text;
      EXPECT_FALSE(diagnostic.message.empty());
    }
  }
  EXPECT_GT(compiled, 0);
}

TEST(RuleTable, BuildsSchemaAndData) {
  std::vector<double> recency = {10, 90, 400};
  std::vector<int32_t> segment = {1, 0, -1};
  std::vector<std::string> names = {"lapsed big spenders", "loyal champions"};
  RuleTable table(3);
  ASSERT_TRUE(table.AddNumber("recency_days", recency).ok());
  ASSERT_TRUE(table.AddString("segment", segment, names).ok());
  EXPECT_FALSE(table.AddNumber("recency_days", recency).ok());  // duplicate
  std::vector<double> short_column = {1};
  EXPECT_FALSE(table.AddNumber("x", short_column).ok());
  auto rule = CompileRule("recency_days < 100 and segment == 'loyal champions'", table.schema());
  ASSERT_TRUE(rule.ok());
  auto bound = BoundRule::Bind(*rule, table.data());
  ASSERT_TRUE(bound.ok());
  EXPECT_TRUE(bound->Matches(0));
  EXPECT_FALSE(bound->Matches(1));
  EXPECT_FALSE(bound->Matches(2));
}

TEST(RulesEditDistance, Basics) {
  EXPECT_EQ(EditDistance("recency", "recency"), 0);
  EXPECT_EQ(EditDistance("recnecy", "recency"), 1);  // transposition
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
  EXPECT_EQ(EditDistance("", "abc"), 3);
}

TEST(Audiences, FromToml) {
  auto specs = ParseAudiences(R"(
[[audiences]]
name = "win back"
rule = "days_since_last_order > 60d and orders_365d >= 3"

[[audiences]]
name = "big"
rule = "monetary > 1000"
)");
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].name, "win back");
  RuleSchema schema = {{"days_since_last_order", RuleType::kNumber},
                       {"orders_365d", RuleType::kNumber},
                       {"monetary_total", RuleType::kNumber}};
  auto compiled = CompileAudiences(*specs, schema);
  ASSERT_FALSE(compiled.ok());
  EXPECT_EQ(compiled.status().message(),
            "audience 'big': 1:1: unknown trait 'monetary'; did you mean 'monetary_total'?");
  specs->pop_back();
  compiled = CompileAudiences(*specs, schema);
  ASSERT_TRUE(compiled.ok());
  EXPECT_EQ((*compiled)[0].name, "win back");
  EXPECT_FALSE(ParseAudiences("[[audiences]]\nname = \"a\"\nrule = \"x > 1\"\n"
                              "[[audiences]]\nname = \"a\"\nrule = \"x > 2\"\n")
                   .ok());
  EXPECT_FALSE(ParseAudiences("[[audiences]]\nrule = \"x > 1\"\n").ok());
}

}  // namespace
}  // namespace shoal::segment
