#include "ingest/mapping.h"

#include <gtest/gtest.h>

#include <cmath>

namespace shoal {
namespace {

TEST(MappingHelpersTest, NormalizeIdAndNumbers) {
  EXPECT_EQ(NormalizeId("17850.0"), "17850");
  EXPECT_EQ(NormalizeId(" 17850.000 "), "17850");
  EXPECT_EQ(NormalizeId("-3.0"), "-3");
  EXPECT_EQ(NormalizeId("17850.5"), "17850.5");
  EXPECT_EQ(NormalizeId("A17.0"), "A17.0");
  EXPECT_EQ(NormalizeId("00001"), "00001");
  EXPECT_EQ(NormalizeId(".0"), ".0");
  EXPECT_EQ(*ParseNumber(" 12.5 "), 12.5);
  EXPECT_EQ(*ParseNumber("+3"), 3);
  EXPECT_FALSE(ParseNumber("nan").has_value());
  EXPECT_FALSE(ParseNumber("inf").has_value());
  EXPECT_FALSE(ParseNumber("12abc").has_value());
  EXPECT_FALSE(ParseNumber("").has_value());
}

TEST(MappingTomlTest, ParsesEveryKind) {
  auto m = Mapping::FromToml(R"(
name = "t"
[source]
delimiter = "tab"
header = false
columns = ["a", "b", "c", "d"]
skip_lines = 2
comment = "#"
[fields]
type = { value = "order" }
customer_id = 1
timestamp = { column = "b", format = "%Y%m%d" }
total = { column = "$3", cast = ["number", "abs"] }
email = { column = "d", cast = "lower" }
[properties]
note = "c"
[lines]
product_id = "d"
[[rules]]
when = "a starts_with 'X' and not c > 5"
then = ["set type = return", "flag cancelled"]
)", "t.toml");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->source().delimiter, "\t");
  EXPECT_FALSE(m->source().header);
  EXPECT_EQ(m->source().skip_lines, 2);
  EXPECT_EQ(m->source().comment, '#');
  EXPECT_EQ(m->field(Field::kCustomerId)->column_number, 1);
  EXPECT_EQ(m->field(Field::kTotal)->column_number, 3);
  EXPECT_EQ(m->field(Field::kTotal)->casts, uint32_t{kCastNumber | kCastAbs});
  EXPECT_TRUE(m->field(Field::kType)->is_constant);
  ASSERT_EQ(m->rules().size(), 1u);
  EXPECT_EQ(m->rules()[0].conditions.size(), 2u);
  EXPECT_TRUE(m->rules()[0].conditions[1].negate);
  EXPECT_EQ(m->rules()[0].actions.size(), 2u);
  auto c = m->Compile({"a", "b", "c", "d"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->fields[static_cast<size_t>(Field::kCustomerId)].column, 0);
  EXPECT_EQ(c->fields[static_cast<size_t>(Field::kCustomerId)].casts & kCastId, uint32_t{kCastId});
  EXPECT_EQ(c->columns_needed, 4);
}

TEST(MappingTomlTest, ErrorsNameTheKeyAndTheProblem) {
  auto expect_error = [](const char* toml, const char* needle) {
    auto m = Mapping::FromToml(toml, "cdnow.toml");
    ASSERT_FALSE(m.ok()) << toml;
    EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().message();
    EXPECT_NE(m.status().message().find("cdnow.toml"), std::string::npos) << m.status().message();
  };
  expect_error("[fields]\ncustomer = \"x\"", "[fields].customer: unknown field");
  expect_error("[fields]\ntotal = { column = \"x\", cast = \"float\" }", "unknown cast 'float'");
  expect_error("[source]\ndelimiter = \"::\"", "[source].delimiter");
  expect_error("[[rules]]\nwhen = \"a like 'b'\"\nthen = \"skip\"", "unknown operator 'like'");
  expect_error("[[rules]]\nwhen = \"a < b\"\nthen = \"skip\"", "needs a number");
  expect_error("[[rules]]\nwhen = \"a empty\"\nthen = \"explode\"", "unknown action");
  expect_error("[fields\n", "line 1");
  expect_error("[fields]\ntimestamp = { column = \"d\", value = \"x\" }", "both 'column' and 'value'");

  auto m = Mapping::FromToml("[fields]\ntype = { value = \"order\" }\ncustomer_id = \"id\"\n"
                             "timestamp = \"date2\"\n", "cdnow.toml");
  ASSERT_TRUE(m.ok());
  auto c = m->Compile({"id", "date", "cds"});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(),
            "mapping cdnow.toml: [fields].timestamp: unknown column 'date2'; the header has: id, "
            "date, cds");
  auto no_type = Mapping::FromToml("[fields]\ntimestamp = \"date\"\n", "x.toml");
  ASSERT_TRUE(no_type.ok());
  auto c2 = no_type->Compile({"date"});
  ASSERT_FALSE(c2.ok());
  EXPECT_NE(c2.status().message().find("[fields].type: missing"), std::string::npos);
  auto bad_format = Mapping::FromToml(
      "[fields]\ntype = { value = \"order\" }\ntimestamp = { column = \"date\", format = \"%Q\" }\n", "x.toml");
  ASSERT_TRUE(bad_format.ok());
  EXPECT_FALSE(bad_format->Compile({"date"}).ok());
  auto far = Mapping::FromToml("[fields]\ntype = { value = \"order\" }\ntimestamp = 9\n", "x.toml");
  ASSERT_TRUE(far.ok());
  auto c3 = far->Compile({"a", "b"});
  ASSERT_FALSE(c3.ok());
  EXPECT_NE(c3.status().message().find("column 9 does not exist"), std::string::npos);
}

TEST(MappingSpecTest, CommandLineString) {
  auto m = Mapping::FromSpec(
      "customer_id=CustomerID,timestamp=InvoiceDate:%m/%d/%Y %H:%M,type=order,"
      "lines.quantity=Quantity|abs,prop.country=Country,delimiter=semicolon,header=yes");
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->source().delimiter, ";");
  EXPECT_EQ(m->field(Field::kTimestamp)->time_format, "%m/%d/%Y %H:%M");
  EXPECT_EQ(m->field(Field::kTimestamp)->column_name, "InvoiceDate");
  EXPECT_TRUE(m->has_lines());
  auto c = m->Compile({"InvoiceNo", "CustomerID", "InvoiceDate", "Quantity", "Country"});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  // "order" names no column, so it is a constant.
  EXPECT_EQ(c->fields[static_cast<size_t>(Field::kType)].column, -1);
  EXPECT_EQ(c->fields[static_cast<size_t>(Field::kType)].constant, "order");
  EXPECT_EQ(c->lines[static_cast<size_t>(LineField::kQuantity)].column, 3);
  ASSERT_EQ(c->properties.size(), 1u);
  // A column name that does not exist is an error for ordinary fields.
  auto bad = Mapping::FromSpec("customer_id=Nope,type=order,timestamp=$1");
  ASSERT_TRUE(bad.ok());
  auto cb = bad->Compile({"a"});
  ASSERT_FALSE(cb.ok());
  EXPECT_NE(cb.status().message().find("--map customer_id: unknown column 'Nope'"), std::string::npos)
      << cb.status().message();
  auto quoted = Mapping::FromSpec("delimiter=',',type=order");
  ASSERT_TRUE(quoted.ok()) << quoted.status().ToString();
  EXPECT_EQ(quoted->source().delimiter, ",");
  EXPECT_FALSE(Mapping::FromSpec("customer_id").ok());
  EXPECT_FALSE(Mapping::FromSpec("colour=red").ok());
  EXPECT_FALSE(Mapping::FromSpec("total=x|weird").ok());
}

TEST(MappingSpecTest, MergeRefinesARecipe) {
  auto recipe = Mapping::FromToml("[source]\ndelimiter = \",\"\n[fields]\ntype = { value = \"order\" }\n"
                                  "timestamp = \"d\"\ncustomer_id = \"c\"\n", "r.toml");
  ASSERT_TRUE(recipe.ok());
  auto extra = Mapping::FromSpec("customer_id=other,delimiter=tab");
  ASSERT_TRUE(extra.ok());
  recipe->MergeFrom(*extra);
  EXPECT_EQ(recipe->source().delimiter, "\t");
  EXPECT_EQ(recipe->field(Field::kCustomerId)->column_name, "other");
  EXPECT_EQ(recipe->field(Field::kTimestamp)->column_name, "d");
}

TEST(ConditionTest, Operators) {
  auto rules = Mapping::FromToml(R"(
[[rules]]
when = "a starts_with 'C'"
then = "skip"
[[rules]]
when = "a ends_with 'x'"
then = "skip"
[[rules]]
when = "a contains 'mid'"
then = "skip"
[[rules]]
when = "a = 'v'"
then = "skip"
[[rules]]
when = "a != v"
then = "skip"
[[rules]]
when = "a in ['x', \"y\", z]"
then = "skip"
[[rules]]
when = "a empty"
then = "skip"
[[rules]]
when = "a not_empty"
then = "skip"
[[rules]]
when = "a < -1.5"
then = "skip"
[[rules]]
when = "a >= 10"
then = "skip"
[[rules]]
when = "`Lineitem name` matches '^ab+c$'"
then = "skip"
[[rules]]
when = "$2 <= 0"
then = "quarantine"
)", "ops.toml");
  ASSERT_TRUE(rules.ok()) << rules.status().ToString();
  const auto& r = rules->rules();
  ASSERT_EQ(r.size(), 12u);
  auto holds = [&](size_t i, const char* v) { return ConditionHolds(r[i].conditions[0], v); };
  EXPECT_TRUE(holds(0, "C536379"));
  EXPECT_FALSE(holds(0, "536379"));
  EXPECT_TRUE(holds(1, "box"));
  EXPECT_TRUE(holds(2, "a mid b"));
  EXPECT_TRUE(holds(3, " v "));  // values are trimmed
  EXPECT_FALSE(holds(4, "v"));
  EXPECT_TRUE(holds(5, "y"));
  EXPECT_TRUE(holds(5, "z"));
  EXPECT_FALSE(holds(5, "w"));
  EXPECT_TRUE(holds(6, "  "));
  EXPECT_FALSE(holds(7, ""));
  EXPECT_TRUE(holds(8, "-2"));
  EXPECT_FALSE(holds(8, "-1.5"));
  EXPECT_FALSE(holds(8, "abc"));  // not a number: false
  EXPECT_TRUE(holds(9, "10"));
  EXPECT_TRUE(holds(10, "abbbc"));
  EXPECT_FALSE(holds(10, "abd"));
  EXPECT_EQ(r[10].conditions[0].column_name, "Lineitem name");
  EXPECT_EQ(r[11].conditions[0].column_number, 2);
  EXPECT_EQ(r[11].actions[0].kind, RuleAction::Kind::kQuarantine);
  EXPECT_EQ(r[11].actions[0].value, "rule: $2 <= 0");
}

TEST(MappingCanonicalTest, AcceptsCanonicalHeaderOnly) {
  auto ok = Mapping::CompileCanonical({"event_id", "type", "timestamp", "customer_id", "quantity",
                                       "properties.rating"});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->canonical);
  EXPECT_EQ(ok->properties.size(), 1u);
  auto bad = Mapping::CompileCanonical({"type", "timestamp", "CustomerID"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown columns: CustomerID"), std::string::npos);
  EXPECT_FALSE(Mapping::CompileCanonical({"type", "customer_id"}).ok());
}

}  // namespace
}  // namespace shoal
