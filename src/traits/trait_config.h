// Trait configuration: the shop's peak weeks and the user-defined traits declared in the
// workspace TOML ([traits] and [[traits.custom]]), so users add traits without recompiling.
// docs/traits.md documents the TOML syntax.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "ingest/event.h"

namespace shoal {

// How a user trait folds the matching events' property values.
enum class TraitAggregate { kCount, kSum, kMean, kMin, kMax, kLast, kDistinct, kTimeSince };

// "count", "sum", ... (the TOML spelling).
std::string_view TraitAggregateName(TraitAggregate aggregate);

// A trait users define in the workspace TOML.
struct UserTraitSpec {
  // [a-z0-9_]+, unique, not a built-in trait name.
  std::string name;
  // Event type codes that match (any of them); empty = every type.
  std::vector<uint16_t> event_types;
  // Built-in field ("total", "price", "quantity", "dwell_seconds", "discount", "category",
  // "product_id", "campaign_id", "order_id", "session_id", "query", "topic", "referee",
  // "currency", "channel", "device") or the name of an extra property. Empty for count and
  // time_since.
  std::string property;
  TraitAggregate aggregate = TraitAggregate::kCount;
  // 0 = all time; else only events whose UTC day is one of the last `window_days` days ending
  // with the day of as_of.
  int window_days = 0;
  // Optional filter: only events whose text property `where_property` equals `where_equals`.
  std::string where_property;
  std::string where_equals;
};

struct TraitConfig {
  // ISO-8601 week numbers (1..53) of the shop's peak season, for peak_week_share.
  std::vector<int> peak_iso_weeks = {47, 48, 49, 50, 51};
  // User traits, computed after the built-ins in this order.
  std::vector<UserTraitSpec> user_traits;
};

// Parses the [traits] table (key peak_iso_weeks) and the [[traits.custom]] array of the
// workspace TOML. Both are optional: a workspace without them gives the default config.
// Errors are InvalidArgument naming the table, key and problem, e.g.
// "traits.custom[2].aggregate: unknown 'avg'; use count, sum, mean, min, max, last, distinct,
// time_since" (array indices are 0-based). Unknown keys are errors (they are usually typos).
Result<TraitConfig> ParseTraitConfig(const toml::table& workspace,
                                     const EventTypeRegistry& registry);

// Checks a config built in code (the rules ParseTraitConfig applies, minus TOML syntax).
Status ValidateTraitConfig(const TraitConfig& config);

}  // namespace shoal
