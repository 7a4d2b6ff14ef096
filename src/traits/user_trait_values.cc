#include "traits/user_trait_values.h"

#include <cmath>
#include <cstring>

namespace shoal {

namespace {
const double* NumericField(std::string_view name, const Event& e) {
  if (name == "total") return &e.total;
  if (name == "price") return &e.price;
  if (name == "quantity") return &e.quantity;
  if (name == "dwell_seconds") return &e.dwell_seconds;
  if (name == "discount") return &e.discount;
  return nullptr;
}

// Returns true when `name` is a built-in text field, with its value in *out (may be empty).
bool TextField(std::string_view name, const Event& e, std::string_view* out) {
  if (name == "category") { *out = e.category; return true; }
  if (name == "product_id") { *out = e.product_id; return true; }
  if (name == "campaign_id") { *out = e.campaign_id; return true; }
  if (name == "order_id") { *out = e.order_id; return true; }
  if (name == "session_id") { *out = e.session_id; return true; }
  if (name == "query") { *out = e.query; return true; }
  if (name == "topic") { *out = e.topic; return true; }
  if (name == "referee") { *out = e.referee; return true; }
  if (name == "currency") { *out = e.currency; return true; }
  if (name == "channel") {
    *out = e.channel == Channel::kUnknown ? std::string_view() : ChannelName(e.channel);
    return true;
  }
  if (name == "device") {
    *out = e.device == DeviceClass::kUnknown ? std::string_view() : DeviceClassName(e.device);
    return true;
  }
  return false;
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
