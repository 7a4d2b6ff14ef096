#include "traits/user_trait_values.h"

#include <cmath>
#include <cstring>

namespace shoal {

namespace {
// Dispatches on length first: these run per event per user trait.
const double* NumericField(std::string_view name, const Event& e) {
  switch (name.size()) {
    case 5:
      if (name == "total") return &e.total;
      if (name == "price") return &e.price;
      return nullptr;
    case 8:
      if (name == "quantity") return &e.quantity;
      if (name == "discount") return &e.discount;
      return nullptr;
    case 13:
      return name == "dwell_seconds" ? &e.dwell_seconds : nullptr;
    default:
      return nullptr;
  }
}

// Returns true when `name` is a built-in text field, with its value in *out (may be empty).
bool TextField(std::string_view name, const Event& e, std::string_view* out) {
  const std::string_view* field = nullptr;
  switch (name.size()) {
    case 5:
      if (name == "query")
        field = &e.query;
      else if (name == "topic")
        field = &e.topic;
      break;
    case 6:
      if (name == "device") {
        *out = e.device == DeviceClass::kUnknown ? std::string_view() : DeviceClassName(e.device);
        return true;
      }
      break;
    case 7:
      if (name == "referee") {
        field = &e.referee;
      } else if (name == "channel") {
        *out = e.channel == Channel::kUnknown ? std::string_view() : ChannelName(e.channel);
        return true;
      }
      break;
    case 8:
      if (name == "category")
        field = &e.category;
      else if (name == "order_id")
        field = &e.order_id;
      else if (name == "currency")
        field = &e.currency;
      break;
    case 10:
      if (name == "product_id")
        field = &e.product_id;
      else if (name == "session_id")
        field = &e.session_id;
      break;
    case 11:
      if (name == "campaign_id") field = &e.campaign_id;
      break;
    default:
      break;
  }
  if (!field) return false;
  *out = *field;
  return true;
}
}  // namespace

bool IsBuiltinNumericField(std::string_view name) {
  Event e;
  return NumericField(name, e) != nullptr;
}

bool IsBuiltinTextField(std::string_view name) {
  Event e;
  std::string_view v;
  return TextField(name, e, &v);
}

double UserTraitNumericValue(std::string_view property, const Event& e, const EventBatch& batch) {
  if (const double* field = NumericField(property, e)) return *field;
  const EventProperty* p = batch.FindProp(e, property);
  return p && p->is_number ? p->number : Event::kNaN;
}

std::optional<std::string_view> UserTraitTextValue(std::string_view property, const Event& e,
                                                   const EventBatch& batch) {
  std::string_view value;
  if (!TextField(property, e, &value)) {
    const EventProperty* p = batch.FindProp(e, property);
    if (!p || p->is_number) return std::nullopt;
    value = p->text;
  }
  if (value.empty()) return std::nullopt;
  return value;
}

std::optional<uint64_t> UserTraitValueHash(std::string_view property, const Event& e,
                                           const EventBatch& batch) {
  if (std::optional<std::string_view> text = UserTraitTextValue(property, e, batch)) {
    return EventIdHash(*text);
  }
  double number = UserTraitNumericValue(property, e, batch);
  if (!std::isfinite(number)) return std::nullopt;
  if (number == 0) number = 0;  // -0 and 0 are one value
  char bytes[9] = {'#'};
  std::memcpy(bytes + 1, &number, sizeof(double));
  return EventIdHash(std::string_view(bytes, sizeof(bytes)));
}

}  // namespace shoal
