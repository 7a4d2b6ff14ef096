#include "store/event_codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "common/coding.h"

namespace shoal {

namespace {

constexpr uint8_t kBlockVersion = 1;

// Presence bits for optional fields.
enum : uint32_t {
  kHasCustomer = 1u << 0, kHasEmail = 1u << 1, kHasAnon = 1u << 2, kHasPhone = 1u << 3,
  kHasOrderId = 1u << 4, kHasCurrency = 1u << 5, kHasProduct = 1u << 6, kHasCategory = 1u << 7,
  kHasCampaign = 1u << 8, kHasSession = 1u << 9, kHasQuery = 1u << 10, kHasReferee = 1u << 11,
  kHasTopic = 1u << 12, kHasTotal = 1u << 13, kHasDiscount = 1u << 14, kHasPrice = 1u << 15,
  kHasQuantity = 1u << 16, kHasDwell = 1u << 17, kHasLines = 1u << 18, kHasProps = 1u << 19,
};

}  // namespace

namespace {

// Writes fields into memory sized ahead (MaxEncodedSize): no capacity check per field.
class BlockWriter {
 public:
  explicit BlockWriter(char* p) : p_(p) {}
  char* end() const { return p_; }
  void Byte(uint8_t b) { *p_++ = static_cast<char>(b); }
  void Varint(uint64_t v) { p_ = EncodeVarint(p_, v); }
  void ZigZag(int64_t v) { Varint(ZigZagEncode(v)); }
  void Fixed64(uint64_t v) {
    std::memcpy(p_, &v, 8);
    p_ += 8;
  }
  void Double(double v) {
    std::memcpy(p_, &v, 8);
    p_ += 8;
  }
  void String(std::string_view s) {
    Varint(s.size());
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

 private:
  char* p_;
};

constexpr size_t kMaxVarint = kMaxVarintBytes;

// An upper bound of one event's encoded bytes.
size_t MaxEncodedSize(const EventBatch& batch, const Event& e) {
  size_t n = 3 * kMaxVarint + 8 + 3 + kMaxVarint + 5 * 8;  // mask, type, id hash, bytes, time, doubles
  for (std::string_view s : {e.event_id, e.customer_id, e.email, e.anonymous_id, e.phone, e.order_id,
                             e.currency, e.product_id, e.category, e.campaign_id, e.session_id, e.query,
                             e.referee, e.topic}) {
    n += kMaxVarint + s.size();
  }
  if (e.num_lines > 0) {
    n += kMaxVarint;
    for (const OrderLine& l : batch.Lines(e)) n += 2 * kMaxVarint + l.product_id.size() + l.category.size() + 3 * 8;
  }
  if (e.num_props > 0) {
    n += kMaxVarint;
    for (const EventProperty& p : batch.Props(e)) n += 2 * kMaxVarint + p.name.size() + 1 + 8 + p.text.size();
  }
  return n;
}

}  // namespace

void EncodeEvents(const EventBatch& batch, std::span<const uint32_t> event_indices, std::string* out) {
  size_t used = out->size();
  out->resize(used + 1 + kMaxVarint);
  {
    BlockWriter w(out->data() + used);
    w.Byte(kBlockVersion);
    w.Varint(event_indices.size());
    used = static_cast<size_t>(w.end() - out->data());
  }
  TimeMicros prev_ts = 0;
  // The events were written by another thread (the reader): each is requested a few events
  // ahead, all of its cache lines, or every first read of a field misses.
  constexpr size_t kAhead = 4;
  auto prefetch = [&](size_t k) {
    const char* p = reinterpret_cast<const char*>(&batch.events[event_indices[k]]);
    for (size_t offset = 0; offset < sizeof(Event); offset += 64) __builtin_prefetch(p + offset);
  };
  for (size_t k = 0; k < std::min(kAhead, event_indices.size()); ++k) prefetch(k);
  for (size_t k = 0; k < event_indices.size(); ++k) {
    if (k + kAhead < event_indices.size()) prefetch(k + kAhead);
    const Event& e = batch.events[event_indices[k]];
    // Grown by at least half each time it must grow (resize alone would grow to the exact
    // size, so appending event by event would copy the block over and over).
    const size_t need = used + MaxEncodedSize(batch, e);
    if (need > out->capacity()) out->reserve(std::max(need, out->capacity() + out->capacity() / 2));
    out->resize(need);
    BlockWriter w(out->data() + used);
    uint32_t mask = 0;
    auto flag = [&mask](bool present, uint32_t bit) { if (present) mask |= bit; };
    flag(!e.customer_id.empty(), kHasCustomer); flag(!e.email.empty(), kHasEmail);
    flag(!e.anonymous_id.empty(), kHasAnon); flag(!e.phone.empty(), kHasPhone);
    flag(!e.order_id.empty(), kHasOrderId); flag(!e.currency.empty(), kHasCurrency);
    flag(!e.product_id.empty(), kHasProduct); flag(!e.category.empty(), kHasCategory);
    flag(!e.campaign_id.empty(), kHasCampaign); flag(!e.session_id.empty(), kHasSession);
    flag(!e.query.empty(), kHasQuery); flag(!e.referee.empty(), kHasReferee);
    flag(!e.topic.empty(), kHasTopic); flag(!std::isnan(e.total), kHasTotal);
    flag(!std::isnan(e.discount), kHasDiscount); flag(!std::isnan(e.price), kHasPrice);
    flag(!std::isnan(e.quantity), kHasQuantity); flag(!std::isnan(e.dwell_seconds), kHasDwell);
    flag(e.num_lines > 0, kHasLines); flag(e.num_props > 0, kHasProps);
    w.Varint(mask);
    w.String(e.event_id);
    w.Fixed64(e.id_hash);
    w.Varint(e.type);
    w.Byte(static_cast<uint8_t>(e.channel));
    w.Byte(static_cast<uint8_t>(e.device));
    w.Byte(static_cast<uint8_t>(e.consent));
    w.ZigZag(e.timestamp - prev_ts);  // delta: events of a block are mostly near in time
    prev_ts = e.timestamp;
    if (mask & kHasCustomer) w.String(e.customer_id);
    if (mask & kHasEmail) w.String(e.email);
    if (mask & kHasAnon) w.String(e.anonymous_id);
    if (mask & kHasPhone) w.String(e.phone);
    if (mask & kHasOrderId) w.String(e.order_id);
    if (mask & kHasCurrency) w.String(e.currency);
    if (mask & kHasProduct) w.String(e.product_id);
    if (mask & kHasCategory) w.String(e.category);
    if (mask & kHasCampaign) w.String(e.campaign_id);
    if (mask & kHasSession) w.String(e.session_id);
    if (mask & kHasQuery) w.String(e.query);
    if (mask & kHasReferee) w.String(e.referee);
    if (mask & kHasTopic) w.String(e.topic);
    if (mask & kHasTotal) w.Double(e.total);
    if (mask & kHasDiscount) w.Double(e.discount);
    if (mask & kHasPrice) w.Double(e.price);
    if (mask & kHasQuantity) w.Double(e.quantity);
    if (mask & kHasDwell) w.Double(e.dwell_seconds);
    if (mask & kHasLines) {
      w.Varint(e.num_lines);
      for (const OrderLine& l : batch.Lines(e)) {
        w.String(l.product_id);
        w.String(l.category);
        w.Double(l.quantity);
        w.Double(l.unit_price);
        w.Double(l.discount);
      }
    }
    if (mask & kHasProps) {
      w.Varint(e.num_props);
      for (const EventProperty& p : batch.Props(e)) {
        w.String(p.name);
        w.Byte(p.is_number ? 1 : 0);
        if (p.is_number) w.Double(p.number);
        else w.String(p.text);
      }
    }
    used = static_cast<size_t>(w.end() - out->data());
  }
  out->resize(used);
}

namespace {

// DecodeEvents (filter false: every event) and DecodeEventsInRange (filter true).
Status DecodeBlock(std::string_view block, bool filter, TimeMicros from, TimeMicros to,
                   EventBatch* batch, TimeMicros* earliest, TimeMicros* latest) {
  Reader in(block);
  uint8_t version = in.Byte();
  if (!in.ok() || version != kBlockVersion) {
    return Status::Corruption("event block: unknown version " + std::to_string(version));
  }
  uint64_t count = in.Varint();
  TimeMicros prev_ts = 0;
  for (uint64_t i = 0; i < count && in.ok(); ++i) {
    Event e;
    uint32_t mask = static_cast<uint32_t>(in.Varint());
    const std::string_view event_id = in.String();
    e.id_hash = in.Fixed64();
    e.type = static_cast<uint16_t>(in.Varint());
    e.channel = static_cast<Channel>(in.Byte());
    e.device = static_cast<DeviceClass>(in.Byte());
    e.consent = static_cast<int8_t>(in.Byte());
    e.timestamp = prev_ts + in.ZigZag();
    prev_ts = e.timestamp;
    if (earliest != nullptr) *earliest = std::min(*earliest, e.timestamp);
    if (latest != nullptr) *latest = std::max(*latest, e.timestamp);
    // An event outside [from, to) is parsed past: nothing is copied into the batch.
    const bool keep = !filter || (e.timestamp >= from && e.timestamp < to);
    if (keep) e.event_id = batch->Intern(event_id);
    auto str = [&](uint32_t bit, std::string_view* field) {
      if (!(mask & bit)) return;
      const std::string_view text = in.String();
      if (keep) *field = batch->Intern(text);
    };
    str(kHasCustomer, &e.customer_id); str(kHasEmail, &e.email); str(kHasAnon, &e.anonymous_id);
    str(kHasPhone, &e.phone); str(kHasOrderId, &e.order_id); str(kHasCurrency, &e.currency);
    str(kHasProduct, &e.product_id); str(kHasCategory, &e.category);
    str(kHasCampaign, &e.campaign_id); str(kHasSession, &e.session_id); str(kHasQuery, &e.query);
    str(kHasReferee, &e.referee); str(kHasTopic, &e.topic);
    if (mask & kHasTotal) e.total = in.Double();
    if (mask & kHasDiscount) e.discount = in.Double();
    if (mask & kHasPrice) e.price = in.Double();
    if (mask & kHasQuantity) e.quantity = in.Double();
    if (mask & kHasDwell) e.dwell_seconds = in.Double();
    if (mask & kHasLines) {
      uint64_t n = in.Varint();
      if (n > in.Remaining()) return Status::Corruption("event block: bad line count");
      if (keep) {
        e.first_line = static_cast<uint32_t>(batch->lines.size());
        e.num_lines = static_cast<uint32_t>(n);
      }
      for (uint64_t l = 0; l < n && in.ok(); ++l) {
        OrderLine line;
        const std::string_view product_id = in.String();
        const std::string_view category = in.String();
        line.quantity = in.Double();
        line.unit_price = in.Double();
        line.discount = in.Double();
        if (!keep) continue;
        line.product_id = batch->Intern(product_id);
        line.category = batch->Intern(category);
        batch->lines.push_back(line);
      }
    }
    if (mask & kHasProps) {
      uint64_t n = in.Varint();
      if (n > in.Remaining()) return Status::Corruption("event block: bad property count");
      if (keep) {
        e.first_prop = static_cast<uint32_t>(batch->props.size());
        e.num_props = static_cast<uint32_t>(n);
      }
      for (uint64_t p = 0; p < n && in.ok(); ++p) {
        EventProperty prop;
        const std::string_view name = in.String();
        prop.is_number = in.Byte() != 0;
        std::string_view text;
        if (prop.is_number) prop.number = in.Double();
        else text = in.String();
        if (!keep) continue;
        prop.name = batch->Intern(name);
        if (!prop.is_number) prop.text = batch->Intern(text);
        batch->props.push_back(prop);
      }
    }
    if (!in.ok()) break;
    if (keep) batch->events.push_back(e);
  }
  if (!in.ok()) return Status::Corruption("event block truncated or malformed");
  return Status::OK();
}

}  // namespace

Status DecodeEvents(std::string_view block, EventBatch* batch) {
  return DecodeBlock(block, false, 0, 0, batch, nullptr, nullptr);
}

Status DecodeEventsInRange(std::string_view block, TimeMicros from, TimeMicros to, EventBatch* batch,
                           TimeMicros* earliest, TimeMicros* latest) {
  return DecodeBlock(block, true, from, to, batch, earliest, latest);
}

}  // namespace shoal
