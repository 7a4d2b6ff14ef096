#include "ingest/event.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace shoal {

namespace {

constexpr std::array<std::string_view, static_cast<size_t>(EventType::kNumBuiltin)> kTypeNames = {
    "order",         "return",      "session_start", "page_view",   "product_view",
    "search",        "cart_add",    "cart_remove",   "checkout_start", "email_send",
    "email_open",    "email_click", "support_ticket", "referral",   "identify",
    "consent"};

// ASCII case-insensitive equality; `lower` is already lower-case.
bool EqualsIgnoreCase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

}  // namespace

std::string_view EventTypeName(EventType type) {
  auto idx = static_cast<size_t>(type);
  return idx < kTypeNames.size() ? kTypeNames[idx] : std::string_view("?");
}

std::optional<EventType> ParseBuiltinEventType(std::string_view name) {
  for (size_t i = 0; i < kTypeNames.size(); ++i) {
    if (kTypeNames[i] == name) return static_cast<EventType>(i);
  }
  if (name == "refund") return EventType::kReturn;
  if (name == "purchase" || name == "order_completed") return EventType::kOrder;
  if (name == "view_item" || name == "product_viewed") return EventType::kProductView;
  if (name == "add_to_cart") return EventType::kCartAdd;
  if (name == "remove_from_cart") return EventType::kCartRemove;
  if (name == "begin_checkout") return EventType::kCheckoutStart;
  return std::nullopt;
}

std::string_view ChannelName(Channel channel) {
  static constexpr std::string_view kNames[] = {"unknown", "web", "app", "email", "pos", "support"};
  auto idx = static_cast<size_t>(channel);
  return idx < std::size(kNames) ? kNames[idx] : "unknown";
}

Channel ParseChannel(std::string_view name) {
  // Case-insensitive comparisons without allocating: readers call this once per event.
  auto is = [&](std::string_view word) { return EqualsIgnoreCase(name, word); };
  if (is("web") || is("website") || is("online")) return Channel::kWeb;
  if (is("app") || is("mobile") || is("ios") || is("android")) return Channel::kApp;
  if (is("email")) return Channel::kEmail;
  if (is("pos") || is("store") || is("retail") || is("offline")) return Channel::kPos;
  if (is("support") || is("call_center")) return Channel::kSupport;
  return Channel::kUnknown;
}

std::string_view DeviceClassName(DeviceClass device) {
  static constexpr std::string_view kNames[] = {"unknown", "desktop", "mobile", "tablet", "other"};
  auto idx = static_cast<size_t>(device);
  return idx < std::size(kNames) ? kNames[idx] : "unknown";
}

DeviceClass ParseDeviceClass(std::string_view name) {
  if (name.empty()) return DeviceClass::kUnknown;
  auto is = [&](std::string_view word) { return EqualsIgnoreCase(name, word); };
  if (is("desktop") || is("pc") || is("laptop")) return DeviceClass::kDesktop;
  if (is("mobile") || is("phone") || is("smartphone")) return DeviceClass::kMobile;
  if (is("tablet")) return DeviceClass::kTablet;
  return DeviceClass::kOther;
}

std::string_view EventBatch::Intern(std::string_view s) {
  if (s.empty()) return {};
  if (blocks_.empty()) {
    blocks_.emplace_back();
    blocks_.back().reserve(kBlockSize);
    block_idx_ = 0;
  }
  std::string* block = &blocks_[block_idx_];
  if (block->size() + s.size() > block->capacity()) {
    // Move to the next block (reusing one kept from before a Clear), sized for s if huge.
    ++block_idx_;
    if (block_idx_ >= blocks_.size()) {
      blocks_.emplace_back();
      blocks_.back().reserve(std::max(kBlockSize, s.size()));
    } else if (blocks_[block_idx_].capacity() < s.size()) {
      blocks_[block_idx_].reserve(s.size());
    }
    block = &blocks_[block_idx_];
  }
  size_t offset = block->size();
  block->append(s);  // never reallocates: capacity checked above
  return std::string_view(block->data() + offset, s.size());
}

const EventProperty* EventBatch::FindProp(const Event& e, std::string_view name) const {
  for (const EventProperty& p : Props(e)) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

void EventBatch::Clear() {
  events.clear();
  lines.clear();
  props.clear();
  sources.clear();
  for (auto& b : blocks_) b.clear();
  block_idx_ = 0;
}

void EventBatch::AppendCopy(const EventBatch& from, const Event& src) {
  Event e = src;
  auto copy = [this](std::string_view& v) { v = Intern(v); };
  copy(e.event_id); copy(e.customer_id); copy(e.email); copy(e.anonymous_id); copy(e.phone);
  copy(e.order_id); copy(e.currency); copy(e.product_id); copy(e.category);
  copy(e.campaign_id); copy(e.session_id); copy(e.query); copy(e.referee); copy(e.topic);
  e.first_line = static_cast<uint32_t>(lines.size());
  for (const OrderLine& l : from.Lines(src)) {
    OrderLine c = l;
    c.product_id = Intern(l.product_id);
    c.category = Intern(l.category);
    lines.push_back(c);
  }
  e.first_prop = static_cast<uint32_t>(props.size());
  for (const EventProperty& p : from.Props(src)) {
    EventProperty c = p;
    c.name = Intern(p.name);
    c.text = Intern(p.text);
    props.push_back(c);
  }
  if (src.source_idx < from.sources.size()) {
    const std::string& name = from.sources[src.source_idx];
    auto it = std::find(sources.begin(), sources.end(), name);
    e.source_idx = static_cast<uint32_t>(it - sources.begin());
    if (it == sources.end()) sources.push_back(name);
  }
  events.push_back(e);
}

size_t EventBatch::ArenaBytes() const {
  size_t n = 0;
  for (const auto& b : blocks_) n += b.capacity();
  return n;
}

uint64_t EventIdHash(std::string_view event_id) {
  return XXH3_64bits(event_id.data(), event_id.size());
}

Result<uint16_t> EventTypeRegistry::Declare(CustomType type) {
  if (type.name.empty() ||
      !std::all_of(type.name.begin(), type.name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      })) {
    return Status::InvalidArgument("custom event type name '" + type.name +
                                   "' must be lower-case letters, digits and '_'");
  }
  if (ParseBuiltinEventType(type.name)) {
    return Status::InvalidArgument("custom event type '" + type.name + "' is a built-in type");
  }
  for (const auto& c : custom_) {
    if (c.name == type.name) {
      return Status::AlreadyExists("custom event type '" + type.name + "' is declared twice");
    }
  }
  if (kFirstCustomType + custom_.size() >= kMaxEventTypes) {
    return Status::InvalidArgument("too many custom event types (at most " +
                                   std::to_string(kMaxEventTypes - kFirstCustomType) + ")");
  }
  custom_.push_back(std::move(type));
  return static_cast<uint16_t>(kFirstCustomType + custom_.size() - 1);
}

std::optional<uint16_t> EventTypeRegistry::Find(std::string_view name) const {
  if (auto t = ParseBuiltinEventType(name)) return static_cast<uint16_t>(*t);
  for (size_t i = 0; i < custom_.size(); ++i) {
    if (custom_[i].name == name) return static_cast<uint16_t>(kFirstCustomType + i);
  }
  return std::nullopt;
}

std::string_view EventTypeRegistry::Name(uint16_t code) const {
  if (code < static_cast<uint16_t>(EventType::kNumBuiltin)) {
    return EventTypeName(static_cast<EventType>(code));
  }
  if (const CustomType* c = Custom(code)) return c->name;
  return "?";
}

const EventTypeRegistry::CustomType* EventTypeRegistry::Custom(uint16_t code) const {
  if (code < kFirstCustomType) return nullptr;
  size_t idx = code - kFirstCustomType;
  return idx < custom_.size() ? &custom_[idx] : nullptr;
}

}  // namespace shoal
