#include "traits/trait_config.h"

#include <algorithm>
#include <set>

#include "traits/catalogue.h"
#include "traits/user_trait_values.h"

namespace shoal {

namespace {

constexpr int kMaxWindowDays = 36500;

bool IsSnakeName(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool NeedsNumber(TraitAggregate a) {
  return a == TraitAggregate::kSum || a == TraitAggregate::kMean || a == TraitAggregate::kMin ||
         a == TraitAggregate::kMax || a == TraitAggregate::kLast;
}

std::optional<TraitAggregate> ParseAggregate(std::string_view name) {
  for (TraitAggregate a : {TraitAggregate::kCount, TraitAggregate::kSum, TraitAggregate::kMean,
                           TraitAggregate::kMin, TraitAggregate::kMax, TraitAggregate::kLast,
                           TraitAggregate::kDistinct, TraitAggregate::kTimeSince}) {
    if (TraitAggregateName(a) == name) return a;
  }
  return std::nullopt;
}

Status Error(const std::string& where, const std::string& problem) {
  return Status::InvalidArgument(where + ": " + problem);
}

// Rules of one spec that need no registry; `where` prefixes messages ("traits.custom[2]").
Status ValidateSpec(const UserTraitSpec& spec, const std::string& where) {
  if (!IsSnakeName(spec.name)) {
    return Error(where + ".name", "'" + spec.name + "' must be lower-case letters, digits and '_'");
  }
  if (IsBuiltinTraitName(spec.name)) {
    return Error(where + ".name", "'" + spec.name + "' is a built-in trait; choose another name");
  }
  const bool takes_property =
      spec.aggregate != TraitAggregate::kCount && spec.aggregate != TraitAggregate::kTimeSince;
  std::string aggregate(TraitAggregateName(spec.aggregate));
  if (takes_property && spec.property.empty()) {
    return Error(where + ".property", "required for aggregate '" + aggregate + "'");
  }
  if (!takes_property && !spec.property.empty()) {
    return Error(where + ".property", "not used by aggregate '" + aggregate +
                                          "' (it counts matching events); remove it or use "
                                          "where_property to filter");
  }
  if (NeedsNumber(spec.aggregate) && IsBuiltinTextField(spec.property)) {
    return Error(where + ".property", "'" + spec.property + "' is a text field; aggregate '" +
                                          aggregate + "' needs a number (use distinct or count)");
  }
  if (spec.window_days < 0 || spec.window_days > kMaxWindowDays) {
    return Error(where + ".window_days",
                 "must be between 0 (all time) and " + std::to_string(kMaxWindowDays));
  }
  if (spec.where_property.empty() != spec.where_equals.empty()) {
    return Error(where + ".where", "needs both a property and the text it equals");
  }
  if (!spec.where_property.empty() && IsBuiltinNumericField(spec.where_property)) {
    return Error(where + ".where", "'" + spec.where_property +
                                       "' is a numeric field; where compares text properties");
  }
  return Status::OK();
}

Status ValidateWeeks(const std::vector<int>& weeks) {
  for (int w : weeks) {
    if (w < 1 || w > 53) {
      return Error("traits.peak_iso_weeks", "week " + std::to_string(w) + " is not in 1..53");
    }
  }
  return Status::OK();
}

// Checks a property against the declarations of the custom types in the filter.
Status CheckDeclared(const UserTraitSpec& spec, const std::string& where, const std::string& key,
                     const std::string& property, bool needs_number,
                     const EventTypeRegistry& registry) {
  if (property.empty() || IsBuiltinNumericField(property) || IsBuiltinTextField(property)) {
    return Status::OK();
  }
  for (uint16_t code : spec.event_types) {
    const EventTypeRegistry::CustomType* custom = registry.Custom(code);
    if (!custom) return Status::OK();  // built-in types may carry any extra property
    auto has = [&](const std::vector<std::string>& names) {
      return std::find(names.begin(), names.end(), property) != names.end();
    };
    const bool numeric = has(custom->numeric_properties), text = has(custom->text_properties);
    if (!numeric && !text) {
      return Error(
          where + "." + key,
          "property '" + property + "' is not declared for event type '" + custom->name + "'");
    }
    if (needs_number && !numeric) {
      return Error(where + "." + key, "property '" + property + "' of event type '" + custom->name +
                                          "' is text; aggregate '" +
                                          std::string(TraitAggregateName(spec.aggregate)) +
                                          "' needs a number");
    }
    if (key == "where" && !text) {
      return Error(where + "." + key, "property '" + property + "' of event type '" + custom->name +
                                          "' is numeric; where compares text");
    }
  }
  return Status::OK();
}

Result<std::string> GetString(const toml::node& node, const std::string& where) {
  if (const auto* s = node.as_string()) return s->get();
  return Error(where, "must be a string");
}

Result<UserTraitSpec> ParseSpec(const toml::table& table, const std::string& where,
                                const EventTypeRegistry& registry) {
  UserTraitSpec spec;
  bool has_name = false;
  for (auto&& [key_node, node] : table) {
    const std::string key(key_node.str());
    const std::string at = where + "." + key;
    if (key == "name") {
      SHOAL_ASSIGN_OR_RETURN(spec.name, GetString(node, at));
      has_name = true;
    } else if (key == "event_types" || key == "event_type") {
      std::vector<std::string> names;
      if (const auto* array = node.as_array()) {
        for (size_t i = 0; i < array->size(); ++i) {
          SHOAL_ASSIGN_OR_RETURN(std::string name,
                                 GetString(*array->get(i), at + "[" + std::to_string(i) + "]"));
          names.push_back(std::move(name));
        }
      } else {
        SHOAL_ASSIGN_OR_RETURN(std::string name, GetString(node, at));
        names.push_back(std::move(name));
      }
      for (const std::string& name : names) {
        std::optional<uint16_t> code = registry.Find(name);
        if (!code) {
          return Error(at, "unknown event type '" + name +
                               "'; declare it in [[event_types]] or use a built-in type");
        }
        if (std::find(spec.event_types.begin(), spec.event_types.end(), *code) ==
            spec.event_types.end()) {
          spec.event_types.push_back(*code);
        }
      }
    } else if (key == "property") {
      SHOAL_ASSIGN_OR_RETURN(spec.property, GetString(node, at));
    } else if (key == "aggregate") {
      SHOAL_ASSIGN_OR_RETURN(std::string name, GetString(node, at));
      std::optional<TraitAggregate> aggregate = ParseAggregate(name);
      if (!aggregate) {
        return Error(at, "unknown '" + name +
                             "'; use count, sum, mean, min, max, last, distinct, time_since");
      }
      spec.aggregate = *aggregate;
    } else if (key == "window_days") {
      std::optional<int64_t> days = node.value<int64_t>();
      if (!days || !node.is_integer()) return Error(at, "must be an integer number of days");
      if (*days < 0 || *days > kMaxWindowDays) {
        return Error(at, "must be between 0 (all time) and " + std::to_string(kMaxWindowDays));
      }
      spec.window_days = static_cast<int>(*days);
    } else if (key == "where") {
      const auto* where_table = node.as_table();
      if (!where_table)
        return Error(at, "must be a table { property = \"...\", equals = \"...\" }");
      for (auto&& [where_key, where_node] : *where_table) {
        const std::string wk(where_key.str());
        if (wk == "property") {
          SHOAL_ASSIGN_OR_RETURN(spec.where_property, GetString(where_node, at + ".property"));
        } else if (wk == "equals") {
          SHOAL_ASSIGN_OR_RETURN(spec.where_equals, GetString(where_node, at + ".equals"));
        } else {
          return Error(at + "." + wk, "unknown key; use property and equals");
        }
      }
    } else if (key == "where_property") {
      SHOAL_ASSIGN_OR_RETURN(spec.where_property, GetString(node, at));
    } else if (key == "where_equals") {
      SHOAL_ASSIGN_OR_RETURN(spec.where_equals, GetString(node, at));
    } else {
      return Error(at,
                   "unknown key; use name, event_types, property, aggregate, window_days, "
                   "where");
    }
  }
  if (!has_name) return Error(where + ".name", "missing");
  SHOAL_RETURN_IF_ERROR(ValidateSpec(spec, where));
  SHOAL_RETURN_IF_ERROR(
      CheckDeclared(spec, where, "property", spec.property, NeedsNumber(spec.aggregate), registry));
  SHOAL_RETURN_IF_ERROR(CheckDeclared(spec, where, "where", spec.where_property, false, registry));
  return spec;
}

}  // namespace

std::string_view TraitAggregateName(TraitAggregate aggregate) {
  switch (aggregate) {
    case TraitAggregate::kCount:
      return "count";
    case TraitAggregate::kSum:
      return "sum";
    case TraitAggregate::kMean:
      return "mean";
    case TraitAggregate::kMin:
      return "min";
    case TraitAggregate::kMax:
      return "max";
    case TraitAggregate::kLast:
      return "last";
    case TraitAggregate::kDistinct:
      return "distinct";
    case TraitAggregate::kTimeSince:
      return "time_since";
  }
  return "?";
}

Status ValidateTraitConfig(const TraitConfig& config) {
  SHOAL_RETURN_IF_ERROR(ValidateWeeks(config.peak_iso_weeks));
  std::set<std::string> names;
  for (size_t i = 0; i < config.user_traits.size(); ++i) {
    const std::string where = "traits.custom[" + std::to_string(i) + "]";
    SHOAL_RETURN_IF_ERROR(ValidateSpec(config.user_traits[i], where));
    if (!names.insert(config.user_traits[i].name).second) {
      return Error(where + ".name", "'" + config.user_traits[i].name + "' is defined twice");
    }
  }
  return Status::OK();
}

Result<TraitConfig> ParseTraitConfig(const toml::table& workspace,
                                     const EventTypeRegistry& registry) {
  TraitConfig config;
  const toml::node* traits_node = workspace.get("traits");
  if (!traits_node) return config;
  const toml::table* traits = traits_node->as_table();
  if (!traits) return Error("traits", "must be a table");
  for (auto&& [key_node, node] : *traits) {
    const std::string key(key_node.str());
    const std::string at = "traits." + key;
    if (key == "peak_iso_weeks") {
      const auto* array = node.as_array();
      if (!array) return Error(at, "must be an array of ISO week numbers");
      config.peak_iso_weeks.clear();
      for (size_t i = 0; i < array->size(); ++i) {
        const toml::node& week = *array->get(i);
        if (!week.is_integer()) return Error(at, "must be an array of integers 1..53");
        int64_t w = *week.value<int64_t>();
        if (w < 1 || w > 53) return Error(at, "week " + std::to_string(w) + " is not in 1..53");
        config.peak_iso_weeks.push_back(static_cast<int>(w));
      }
    } else if (key == "custom") {
      const auto* array = node.as_array();
      if (!array) return Error(at, "must be an array of tables: write [[traits.custom]]");
      for (size_t i = 0; i < array->size(); ++i) {
        const std::string where = at + "[" + std::to_string(i) + "]";
        const auto* table = array->get(i)->as_table();
        if (!table) return Error(where, "must be a table");
        SHOAL_ASSIGN_OR_RETURN(UserTraitSpec spec, ParseSpec(*table, where, registry));
        config.user_traits.push_back(std::move(spec));
      }
    } else {
      return Error(at, "unknown key; use peak_iso_weeks and [[traits.custom]]");
    }
  }
  SHOAL_RETURN_IF_ERROR(ValidateTraitConfig(config));
  return config;
}

}  // namespace shoal
