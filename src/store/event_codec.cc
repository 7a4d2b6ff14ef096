#include "store/event_codec.h"

#include <algorithm>
#include <cmath>

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

void EncodeEvents(const EventBatch& batch, std::span<const uint32_t> event_indices, std::string* out) {
  out->push_back(static_cast<char>(kBlockVersion));
  PutVarint(out, event_indices.size());
  TimeMicros prev_ts = 0;
  for (uint32_t idx : event_indices) {
    const Event& e = batch.events[idx];
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
    PutVarint(out, mask);
    PutString(out, e.event_id);
    PutFixed64(out, e.id_hash);
    PutVarint(out, e.type);
    out->push_back(static_cast<char>(e.channel));
    out->push_back(static_cast<char>(e.device));
    out->push_back(static_cast<char>(e.consent));
    PutZigZag(out, e.timestamp - prev_ts);  // delta: events of a block are mostly near in time
    prev_ts = e.timestamp;
    if (mask & kHasCustomer) PutString(out, e.customer_id);
    if (mask & kHasEmail) PutString(out, e.email);
    if (mask & kHasAnon) PutString(out, e.anonymous_id);
    if (mask & kHasPhone) PutString(out, e.phone);
    if (mask & kHasOrderId) PutString(out, e.order_id);
    if (mask & kHasCurrency) PutString(out, e.currency);
    if (mask & kHasProduct) PutString(out, e.product_id);
    if (mask & kHasCategory) PutString(out, e.category);
    if (mask & kHasCampaign) PutString(out, e.campaign_id);
    if (mask & kHasSession) PutString(out, e.session_id);
    if (mask & kHasQuery) PutString(out, e.query);
    if (mask & kHasReferee) PutString(out, e.referee);
    if (mask & kHasTopic) PutString(out, e.topic);
    if (mask & kHasTotal) PutDouble(out, e.total);
    if (mask & kHasDiscount) PutDouble(out, e.discount);
    if (mask & kHasPrice) PutDouble(out, e.price);
    if (mask & kHasQuantity) PutDouble(out, e.quantity);
    if (mask & kHasDwell) PutDouble(out, e.dwell_seconds);
    if (mask & kHasLines) {
      PutVarint(out, e.num_lines);
      for (const OrderLine& l : batch.Lines(e)) {
        PutString(out, l.product_id);
        PutString(out, l.category);
        PutDouble(out, l.quantity);
        PutDouble(out, l.unit_price);
        PutDouble(out, l.discount);
      }
    }
    if (mask & kHasProps) {
      PutVarint(out, e.num_props);
      for (const EventProperty& p : batch.Props(e)) {
        PutString(out, p.name);
        out->push_back(p.is_number ? 1 : 0);
        if (p.is_number) PutDouble(out, p.number);
        else PutString(out, p.text);
      }
    }
  }
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
