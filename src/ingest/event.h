// The canonical event model (docs/events.md). Readers fill EventBatch; identity, traits and the
// store consume it. An EventBatch is columnar enough for the hot path: events, order lines and
// extra properties live in three contiguous vectors, strings in one arena, and Clear() keeps all
// capacity, so a reader that reuses one batch allocates nothing per event in steady state.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

// Built-in event types. Custom types declared in the workspace TOML get codes from
// kFirstCustomType on, in declaration order (EventTypeRegistry).
enum class EventType : uint16_t {
  kOrder = 0,
  kReturn,          // return / refund of a previous order (or of some lines of it)
  kSessionStart,
  kPageView,
  kProductView,
  kSearch,
  kCartAdd,
  kCartRemove,
  kCheckoutStart,
  kEmailSend,
  kEmailOpen,
  kEmailClick,
  kSupportTicket,
  kReferral,
  kIdentify,        // links identifiers, nothing else
  kConsent,         // marketing opt-in / opt-out
  kNumBuiltin,
};
constexpr uint16_t kFirstCustomType = 32;
constexpr uint16_t kMaxEventTypes = 256;

// Canonical names: "order", "return", "session_start", ... (docs/events.md).
std::string_view EventTypeName(EventType type);
// Parses a built-in name; also accepts the aliases "refund" (return), "purchase" (order),
// "view_item"/"product_viewed" (product_view). Returns nullopt for an unknown name.
std::optional<EventType> ParseBuiltinEventType(std::string_view name);

enum class Channel : uint8_t { kUnknown = 0, kWeb, kApp, kEmail, kPos, kSupport, kNumChannels };
std::string_view ChannelName(Channel channel);
// Case-insensitive; "store"/"retail" -> pos, "mobile"/"ios"/"android" -> app. Unknown -> kUnknown.
Channel ParseChannel(std::string_view name);

enum class DeviceClass : uint8_t { kUnknown = 0, kDesktop, kMobile, kTablet, kOther, kNumDevices };
std::string_view DeviceClassName(DeviceClass device);
DeviceClass ParseDeviceClass(std::string_view name);

// One line of an order or a return.
struct OrderLine {
  std::string_view product_id;
  std::string_view category;
  double quantity = 1;
  double unit_price = 0;
  double discount = 0;  // total discount on this line, in currency units (not per unit)
};

// A property not covered by a fixed field (custom event types, extra fields of built-in ones).
struct EventProperty {
  std::string_view name;
  std::string_view text;     // string value (empty when numeric)
  double number = 0;         // numeric value (when is_number)
  bool is_number = false;
};

// One event. String fields are views into the owning EventBatch's arena; numeric fields are NaN
// when absent. Which fields a type uses is listed in docs/events.md.
struct Event {
  uint64_t id_hash = 0;            // XXH3-64 of event_id: the idempotency key
  std::string_view event_id;
  uint16_t type = 0;               // EventType or a custom code >= kFirstCustomType
  Channel channel = Channel::kUnknown;
  DeviceClass device = DeviceClass::kUnknown;
  int8_t consent = -1;             // consent events: 1 opt-in, 0 opt-out; -1 otherwise
  TimeMicros timestamp = 0;

  // Identifiers (normalised by the reader: emails trimmed and lower-cased).
  std::string_view customer_id;
  std::string_view email;
  std::string_view anonymous_id;
  std::string_view phone;

  // Type-specific fields.
  std::string_view order_id;       // order, return, checkout_start
  std::string_view currency;
  std::string_view product_id;     // product_view, cart_add, cart_remove
  std::string_view category;
  std::string_view campaign_id;    // email_*
  std::string_view session_id;
  std::string_view query;          // search
  std::string_view referee;        // referral: identifier of the referred person
  std::string_view topic;          // support_ticket, consent
  double total = kNaN;             // order/return/checkout total (computed from lines if absent)
  double discount = kNaN;          // order-level discount
  double price = kNaN;             // product_view, cart_*
  double quantity = kNaN;          // cart_*
  double dwell_seconds = kNaN;     // product_view, page_view

  uint32_t first_line = 0, num_lines = 0;  // into EventBatch::lines
  uint32_t first_prop = 0, num_props = 0;  // into EventBatch::props
  uint32_t source_idx = 0;         // into EventBatch::sources
  uint64_t source_line = 0;        // 1-based line number in that source (0: none)

  static constexpr double kNaN = __builtin_nan("");
  bool IsBuiltin() const { return type < static_cast<uint16_t>(EventType::kNumBuiltin); }
  bool Is(EventType t) const { return type == static_cast<uint16_t>(t); }
};

// A batch of events that owns their strings. Not thread-safe; one writer.
class EventBatch {
 public:
  std::vector<Event> events;
  std::vector<OrderLine> lines;
  std::vector<EventProperty> props;
  std::vector<std::string> sources;  // source names (file paths, "http", ...)

  // Copies `s` into the arena and returns a view valid until Clear() or destruction.
  std::string_view Intern(std::string_view s);
  // Lines and properties of one event.
  std::span<const OrderLine> Lines(const Event& e) const {
    return {lines.data() + e.first_line, e.num_lines};
  }
  std::span<const EventProperty> Props(const Event& e) const {
    return {props.data() + e.first_prop, e.num_props};
  }
  // Looks up an extra property by name (linear in the event's properties).
  const EventProperty* FindProp(const Event& e, std::string_view name) const;

  size_t size() const { return events.size(); }
  bool empty() const { return events.empty(); }
  // Forgets all events, keeping capacity (arena blocks are reused).
  void Clear();
  // Appends a deep copy of `e` (with its lines and properties) from another batch.
  void AppendCopy(const EventBatch& from, const Event& e);
  // Bytes held by the arena (for memory accounting).
  size_t ArenaBytes() const;

 private:
  static constexpr size_t kBlockSize = 1 << 20;
  std::deque<std::string> blocks_;  // each reserved to kBlockSize (or larger for huge strings)
  size_t block_idx_ = 0;            // current block
};

// Hash of an event_id string, the stored idempotency key.
uint64_t EventIdHash(std::string_view event_id);

}  // namespace shoal

namespace shoal {

// Names <-> codes of event types: the built-ins plus the custom types a workspace declares.
// Not thread-safe for Declare; const methods may be called concurrently.
class EventTypeRegistry {
 public:
  struct CustomType {
    std::string name;
    std::vector<std::string> numeric_properties;  // declared numeric properties
    std::vector<std::string> text_properties;     // declared string properties
  };

  EventTypeRegistry() = default;
  // Declares a custom type. Fails if the name is a built-in, already declared, not
  // [a-z0-9_]+, or the custom-type space is full.
  Result<uint16_t> Declare(CustomType type);
  // Built-in name, alias or declared custom name -> code.
  std::optional<uint16_t> Find(std::string_view name) const;
  // Code -> canonical name ("?" for an unknown code).
  std::string_view Name(uint16_t code) const;
  const std::vector<CustomType>& custom_types() const { return custom_; }
  // The declared custom type of `code`, or nullptr.
  const CustomType* Custom(uint16_t code) const;

 private:
  std::vector<CustomType> custom_;
};

}  // namespace shoal
