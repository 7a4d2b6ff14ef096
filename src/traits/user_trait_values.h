// How a user trait reads a property of an event: built-in fields first, then the event's extra
// properties (EventBatch::props). Shared by CustomerState and the config validation.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "ingest/event.h"

namespace shoal {

// Built-in numeric fields a user trait may aggregate.
bool IsBuiltinNumericField(std::string_view name);
// Built-in text fields a user trait may count distinct values of or filter on.
bool IsBuiltinTextField(std::string_view name);

// Numeric value of `property` on `e`: a built-in numeric field, else a numeric extra property;
// NaN when absent or not numeric.
double UserTraitNumericValue(std::string_view property, const Event& e, const EventBatch& batch);
// Text value of `property`: a built-in text field (channel/device by canonical name, absent when
// unknown), else a text extra property; nullopt when absent, empty or numeric.
std::optional<std::string_view> UserTraitTextValue(std::string_view property, const Event& e,
                                                   const EventBatch& batch);
// Hash of the value of `property` for distinct counting: the text value if any, else the
// numeric value (so 5 and "5" are different values); nullopt when absent.
std::optional<uint64_t> UserTraitValueHash(std::string_view property, const Event& e,
                                           const EventBatch& batch);

}  // namespace shoal
