// ParseTraitConfig: accepted syntax and the error messages users see.
#include "traits/trait_config.h"

#include <gtest/gtest.h>

#include "traits/catalogue.h"

namespace shoal {
namespace {

EventTypeRegistry Registry() {
  EventTypeRegistry registry;
  EXPECT_TRUE(registry.Declare({"review_posted", {"rating"}, {"tier"}}).ok());
  EXPECT_TRUE(registry.Declare({"loyalty_tier_change", {}, {"tier"}}).ok());
  return registry;
}

Result<TraitConfig> Parse(std::string_view text) {
  toml::table table = toml::parse(text);
  return ParseTraitConfig(table, Registry());
}

// Expects an InvalidArgument whose message contains `fragment`.
void ExpectError(std::string_view text, const std::string& fragment) {
  Result<TraitConfig> config = Parse(text);
  ASSERT_FALSE(config.ok()) << "accepted:\n" << text;
  EXPECT_EQ(config.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(config.status().message().find(fragment), std::string::npos)
      << config.status().message() << "\n  does not contain: " << fragment;
}

TEST(TraitConfigTest, EmptyWorkspaceGivesDefaults) {
  Result<TraitConfig> config = Parse("[other]\nx = 1\n");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->peak_iso_weeks, (std::vector<int>{47, 48, 49, 50, 51}));
  EXPECT_TRUE(config->user_traits.empty());
}

TEST(TraitConfigTest, ParsesEveryKey) {
  Result<TraitConfig> config = Parse(R"(
[traits]
peak_iso_weeks = [1, 52]

[[traits.custom]]
name = "gold_reviews_30d"
event_types = ["review_posted", "product_view"]
property = "rating"
aggregate = "mean"
window_days = 30
where = { property = "tier", equals = "gold" }

[[traits.custom]]
name = "tier_changes"
event_type = "loyalty_tier_change"
aggregate = "count"

[[traits.custom]]
name = "last_purchase_any"
event_types = ["purchase"]
aggregate = "time_since"
where_property = "channel"
where_equals = "web"
)");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->peak_iso_weeks, (std::vector<int>{1, 52}));
  ASSERT_EQ(config->user_traits.size(), 3u);
  const UserTraitSpec& a = config->user_traits[0];
  EXPECT_EQ(a.name, "gold_reviews_30d");
  EXPECT_EQ(a.event_types, (std::vector<uint16_t>{kFirstCustomType,
                                                  static_cast<uint16_t>(EventType::kProductView)}));
  EXPECT_EQ(a.property, "rating");
  EXPECT_EQ(a.aggregate, TraitAggregate::kMean);
  EXPECT_EQ(a.window_days, 30);
  EXPECT_EQ(a.where_property, "tier");
  EXPECT_EQ(a.where_equals, "gold");
  EXPECT_EQ(config->user_traits[1].event_types, (std::vector<uint16_t>{kFirstCustomType + 1}));
  EXPECT_EQ(config->user_traits[2].event_types,
            (std::vector<uint16_t>{static_cast<uint16_t>(EventType::kOrder)}));  // alias
  EXPECT_EQ(config->user_traits[2].where_property, "channel");
  TraitCatalogue catalogue(*config);
  EXPECT_EQ(catalogue.traits().size(), BuiltinTraits().size() + 3);
  EXPECT_EQ(catalogue.traits().back().name, "last_purchase_any");
  EXPECT_EQ(catalogue.traits().back().unit, "days");
}

TEST(TraitConfigTest, ErrorsNameTableKeyAndProblem) {
  ExpectError(R"(
[[traits.custom]]
name = "a"
aggregate = "count"
[[traits.custom]]
name = "b"
aggregate = "count"
[[traits.custom]]
name = "c"
property = "rating"
aggregate = "avg"
)",
              "traits.custom[2].aggregate: unknown 'avg'; use count, sum, mean, min, max, last, "
              "distinct, time_since");
  ExpectError("[[traits.custom]]\nname = \"Bad-Name\"\n", "traits.custom[0].name: 'Bad-Name'");
  ExpectError("[[traits.custom]]\nname = \"frequency\"\n", "is a built-in trait");
  ExpectError("[[traits.custom]]\naggregate = \"count\"\n", "traits.custom[0].name: missing");
  ExpectError("[[traits.custom]]\nname = \"x\"\n[[traits.custom]]\nname = \"x\"\n",
              "traits.custom[1].name: 'x' is defined twice");
  ExpectError("[[traits.custom]]\nname = \"x\"\nevent_types = [\"nope\"]\n",
              "traits.custom[0].event_types: unknown event type 'nope'");
  ExpectError("[[traits.custom]]\nname = \"x\"\naggregate = \"sum\"\n",
              "traits.custom[0].property: required for aggregate 'sum'");
  ExpectError("[[traits.custom]]\nname = \"x\"\nproperty = \"total\"\n",
              "traits.custom[0].property: not used by aggregate 'count'");
  ExpectError("[[traits.custom]]\nname = \"x\"\nproperty = \"category\"\naggregate = \"max\"\n",
              "'category' is a text field");
  ExpectError("[[traits.custom]]\nname = \"x\"\nwindow_days = -3\n",
              "traits.custom[0].window_days: must be between 0");
  ExpectError("[[traits.custom]]\nname = \"x\"\nwindow_days = 2.5\n",
              "traits.custom[0].window_days: must be an integer");
  ExpectError("[[traits.custom]]\nname = \"x\"\nwhere_property = \"tier\"\n",
              "traits.custom[0].where: needs both");
  ExpectError("[[traits.custom]]\nname = \"x\"\nwhere = { property = \"tier\", is = \"a\" }\n",
              "traits.custom[0].where.is: unknown key");
  ExpectError("[[traits.custom]]\nname = \"x\"\nwindow = 30\n",
              "traits.custom[0].window: unknown key");
  ExpectError("[[traits.custom]]\nname = 5\n", "traits.custom[0].name: must be a string");
  ExpectError(
      "[[traits.custom]]\nname = \"x\"\nevent_types = [\"review_posted\"]\nproperty = "
      "\"stars\"\naggregate = \"sum\"\n",
      "traits.custom[0].property: property 'stars' is not declared for event type "
      "'review_posted'");
  ExpectError(
      "[[traits.custom]]\nname = \"x\"\nevent_types = [\"review_posted\"]\nproperty = "
      "\"tier\"\naggregate = \"mean\"\n",
      "property 'tier' of event type 'review_posted' is text");
  ExpectError(
      "[[traits.custom]]\nname = \"x\"\nevent_types = [\"review_posted\"]\n"
      "where = { property = \"rating\", equals = \"5\" }\n",
      "traits.custom[0].where: property 'rating' of event type 'review_posted' is numeric");
  ExpectError("[traits]\npeak_iso_weeks = [47, 54]\n",
              "traits.peak_iso_weeks: week 54 is not in 1..53");
  ExpectError("[traits]\npeak_weeks = [47]\n", "traits.peak_weeks: unknown key");
  ExpectError("traits = 3\n", "traits: must be a table");
}

TEST(TraitConfigTest, ValidateCatchesHandBuiltConfigs) {
  TraitConfig config;
  EXPECT_TRUE(ValidateTraitConfig(config).ok());
  config.user_traits.push_back({"ok_trait", {}, "", TraitAggregate::kCount, 0, "", ""});
  EXPECT_TRUE(ValidateTraitConfig(config).ok());
  config.user_traits.push_back({"recency_days", {}, "", TraitAggregate::kCount, 0, "", ""});
  EXPECT_FALSE(ValidateTraitConfig(config).ok());
  config.user_traits.pop_back();
  config.peak_iso_weeks = {0};
  EXPECT_FALSE(ValidateTraitConfig(config).ok());
}

}  // namespace
}  // namespace shoal
