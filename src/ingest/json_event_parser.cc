// Field extraction of canonical JSON events, moved out of the JSONL reader unchanged so the
// server parses request bodies with exactly the same rules.
#include "ingest/json_event_parser.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>

#include "ingest/mapping.h"

namespace shoal::ingest_internal {

namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

enum class Key : uint8_t {
  kOther, kEventId, kType, kTimestamp, kCustomerId, kEmail, kAnonymousId, kPhone, kChannel,
  kDevice, kOrderId, kCartId, kCurrency, kProductId, kCategory, kQuantity, kUnitPrice, kDiscount,
  kTotal, kPrice, kDwellSeconds, kCampaignId, kSessionId, kQuery, kReferee, kTopic, kMarketing,
  kLines, kProperties
};

Key KeyOf(std::string_view k) {
  switch (k.size()) {
    case 4:
      if (k == "type") return Key::kType;
      break;
    case 5:
      if (k == "email") return Key::kEmail;
      if (k == "phone") return Key::kPhone;
      if (k == "total") return Key::kTotal;
      if (k == "price") return Key::kPrice;
      if (k == "query") return Key::kQuery;
      if (k == "topic") return Key::kTopic;
      if (k == "lines") return Key::kLines;
      break;
    case 6:
      if (k == "device") return Key::kDevice;
      break;
    case 7:
      if (k == "channel") return Key::kChannel;
      if (k == "cart_id") return Key::kCartId;
      if (k == "referee") return Key::kReferee;
      break;
    case 8:
      if (k == "event_id") return Key::kEventId;
      if (k == "order_id") return Key::kOrderId;
      if (k == "currency") return Key::kCurrency;
      if (k == "category") return Key::kCategory;
      if (k == "quantity") return Key::kQuantity;
      if (k == "discount") return Key::kDiscount;
      break;
    case 9:
      if (k == "timestamp") return Key::kTimestamp;
      if (k == "marketing") return Key::kMarketing;
      break;
    case 10:
      if (k == "product_id") return Key::kProductId;
      if (k == "unit_price") return Key::kUnitPrice;
      if (k == "session_id") return Key::kSessionId;
      if (k == "properties") return Key::kProperties;
      break;
    case 11:
      if (k == "customer_id") return Key::kCustomerId;
      if (k == "campaign_id") return Key::kCampaignId;
      break;
    case 12:
      if (k == "anonymous_id") return Key::kAnonymousId;
      break;
    case 13:
      if (k == "dwell_seconds") return Key::kDwellSeconds;
      break;
    default:
      break;
  }
  return Key::kOther;
}

const char* TypeWord(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
    case element_type::STRING: return "a string";
    default: return "a number";
  }
}

}  // namespace

struct JsonEventParser::Record {
  Event event;
  std::string_view type_text;
  bool has_type = false;
  element timestamp;
  bool has_timestamp = false;
  double unit_price = Event::kNaN;
  bool has_lines = false;
};

JsonEventParser::JsonEventParser(const EventTypeRegistry& registry)
    : registry_(registry), types_(registry), time_parser_(*TimeParser::Make("auto")) {}

JsonEventParser::~JsonEventParser() = default;

bool JsonEventParser::GetText(const element& v, std::string_view field, std::string_view* out,
                          Problem* problem) {
  switch (v.type()) {
    case element_type::STRING:
      *out = v.get_string().value_unsafe();
      return true;
    case element_type::INT64:
      *out = NumberToText(static_cast<double>(v.get_int64().value_unsafe()), number_buf_);
      if (std::fabs(static_cast<double>(v.get_int64().value_unsafe())) >= 9.0e15) {
        auto [ptr, ec] = std::to_chars(number_buf_, number_buf_ + 64, v.get_int64().value_unsafe());
        *out = std::string_view(number_buf_, static_cast<size_t>(ptr - number_buf_));
      }
      return true;
    case element_type::UINT64: {
      auto [ptr, ec] = std::to_chars(number_buf_, number_buf_ + 64, v.get_uint64().value_unsafe());
      *out = std::string_view(number_buf_, static_cast<size_t>(ptr - number_buf_));
      return true;
    }
    case element_type::DOUBLE:
      *out = NumberToText(v.get_double().value_unsafe(), number_buf_);
      return true;
    case element_type::BOOL:
      *out = v.get_bool().value_unsafe() ? "true" : "false";
      return true;
    case element_type::NULL_VALUE:
      *out = {};
      return true;
    default:
      problem->field = std::string(field);
      problem->reason = std::string("expected text, found ") + TypeWord(v.type());
      return false;
  }
}

bool JsonEventParser::GetNumber(const element& v, std::string_view field, double* out,
                            Problem* problem) {
  switch (v.type()) {
    case element_type::INT64: *out = static_cast<double>(v.get_int64().value_unsafe()); return true;
    case element_type::UINT64: *out = static_cast<double>(v.get_uint64().value_unsafe()); return true;
    case element_type::DOUBLE: *out = v.get_double().value_unsafe(); return true;
    case element_type::NULL_VALUE: *out = Event::kNaN; return true;
    case element_type::STRING: {
      std::string_view s = v.get_string().value_unsafe();
      if (TrimSpaces(s).empty()) {
        *out = Event::kNaN;
        return true;
      }
      if (auto n = ParseNumber(s)) {
        *out = *n;
        return true;
      }
      problem->field = std::string(field);
      problem->reason = "not a finite number: '" + std::string(s.substr(0, 64)) + "'";
      return false;
    }
    default:
      problem->field = std::string(field);
      problem->reason = std::string("expected a number, found ") + TypeWord(v.type());
      return false;
  }
}

bool JsonEventParser::ParseLines(const element& v, EventBatch* batch, Record* r, Problem* problem) {
  if (v.type() == element_type::NULL_VALUE) return true;
  if (v.type() != element_type::ARRAY) {
    problem->field = "lines";
    problem->reason = std::string("expected an array of lines, found ") + TypeWord(v.type());
    return false;
  }
  r->has_lines = true;
  size_t idx = 0;
  simdjson::dom::array items = v.get_array().value_unsafe();
  for (element item : items) {
    std::string field = "lines[" + std::to_string(idx) + "]";
    if (item.type() != element_type::OBJECT) {
      problem->field = field;
      problem->reason = std::string("expected an object, found ") + TypeWord(item.type());
      return false;
    }
    OrderLine line;
    line.unit_price = Event::kNaN;
    double price = Event::kNaN;
    simdjson::dom::object fields = item.get_object().value_unsafe();
    for (auto [key, value] : fields) {
      std::string_view text;
      switch (KeyOf(key)) {
        case Key::kProductId:
          if (!GetText(value, "product_id", &text, problem)) return false;
          line.product_id = batch->Intern(text);
          break;
        case Key::kCategory:
          if (!GetText(value, "category", &text, problem)) return false;
          line.category = batch->Intern(text);
          break;
        case Key::kQuantity:
          if (!GetNumber(value, field + ".quantity", &line.quantity, problem)) return false;
          if (std::isnan(line.quantity)) line.quantity = 1;
          break;
        case Key::kUnitPrice:
          if (!GetNumber(value, field + ".unit_price", &line.unit_price, problem)) return false;
          break;
        case Key::kPrice:
          if (!GetNumber(value, field + ".price", &price, problem)) return false;
          break;
        case Key::kDiscount:
          if (!GetNumber(value, field + ".discount", &line.discount, problem)) return false;
          if (std::isnan(line.discount)) line.discount = 0;
          break;
        default:
          break;  // lines carry only the five documented fields
      }
    }
    if (std::isnan(line.unit_price)) line.unit_price = price;
    batch->lines.push_back(line);
    ++r->event.num_lines;
    ++idx;
  }
  return true;
}

bool JsonEventParser::AddProperty(std::string_view key, const element& value, EventBatch* batch,
                              Record* r, Problem* problem) {
  EventProperty p;
  switch (value.type()) {
    case element_type::NULL_VALUE:
      return true;
    case element_type::STRING:
      p.text = batch->Intern(value.get_string().value_unsafe());
      break;
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      if (!GetNumber(value, key, &p.number, problem)) return false;
      p.is_number = true;
      break;
    case element_type::BOOL:
      p.number = value.get_bool().value_unsafe() ? 1 : 0;
      p.is_number = true;
      break;
    default:
      p.text = batch->Intern(simdjson::minify(value));
      break;
  }
  p.name = batch->Intern(key);
  batch->props.push_back(p);
  ++r->event.num_props;
  return true;
}

bool JsonEventParser::HandleMember(std::string_view key, const element& value, bool nested,
                               EventBatch* batch, Record* r, Problem* problem) {
  Event& e = r->event;
  std::string_view text;
  auto text_field = [&](std::string_view* dst) {
    if (!GetText(value, key, &text, problem)) return false;
    *dst = batch->Intern(text);
    return true;
  };
  auto id_field = [&](std::string_view* dst) {
    if (!GetText(value, key, &text, problem)) return false;
    *dst = batch->Intern(NormalizeId(text));
    return true;
  };
  switch (KeyOf(key)) {
    case Key::kEventId: return text_field(&e.event_id);
    case Key::kType:
      if (!GetText(value, key, &text, problem)) return false;
      r->type_text = text;  // resolved after the walk (valid until the next parse)
      r->has_type = !text.empty();
      return true;
    case Key::kTimestamp:
      if (value.type() == element_type::NULL_VALUE) return true;
      r->timestamp = value;
      r->has_timestamp = true;
      return true;
    case Key::kCustomerId: return id_field(&e.customer_id);
    case Key::kEmail:
      if (!GetText(value, key, &text, problem)) return false;
      e.email = batch->Intern(NormalizeEmail(text, &scratch_));
      return true;
    case Key::kAnonymousId: return text_field(&e.anonymous_id);
    case Key::kPhone: return text_field(&e.phone);
    case Key::kChannel:
      if (!GetText(value, key, &text, problem)) return false;
      e.channel = ParseChannel(text);
      return true;
    case Key::kDevice:
      if (!GetText(value, key, &text, problem)) return false;
      e.device = ParseDeviceClass(text);
      return true;
    case Key::kOrderId: return id_field(&e.order_id);
    case Key::kCartId:
      if (!e.order_id.empty()) return AddProperty(key, value, batch, r, problem);
      return id_field(&e.order_id);
    case Key::kCurrency: return text_field(&e.currency);
    case Key::kProductId: return text_field(&e.product_id);
    case Key::kCategory: return text_field(&e.category);
    case Key::kQuantity: return GetNumber(value, key, &e.quantity, problem);
    case Key::kUnitPrice: return GetNumber(value, key, &r->unit_price, problem);
    case Key::kDiscount: return GetNumber(value, key, &e.discount, problem);
    case Key::kTotal: return GetNumber(value, key, &e.total, problem);
    case Key::kPrice: return GetNumber(value, key, &e.price, problem);
    case Key::kDwellSeconds: return GetNumber(value, key, &e.dwell_seconds, problem);
    case Key::kCampaignId: return text_field(&e.campaign_id);
    case Key::kSessionId: return text_field(&e.session_id);
    case Key::kQuery: return text_field(&e.query);
    case Key::kReferee: return text_field(&e.referee);
    case Key::kTopic: return text_field(&e.topic);
    case Key::kMarketing:
      switch (value.type()) {
        case element_type::BOOL: e.consent = value.get_bool().value_unsafe() ? 1 : 0; return true;
        case element_type::INT64:
        case element_type::UINT64:
        case element_type::DOUBLE: {
          double v = 0;
          if (!GetNumber(value, key, &v, problem)) return false;
          e.consent = v != 0 ? 1 : 0;
          return true;
        }
        case element_type::STRING: {
          std::string_view s = value.get_string().value_unsafe();
          if (s == "opt_in" || s == "true" || s == "yes" || s == "subscribed") {
            e.consent = 1;
            return true;
          }
          if (s == "opt_out" || s == "false" || s == "no" || s == "unsubscribed") {
            e.consent = 0;
            return true;
          }
          break;
        }
        default:
          break;
      }
      problem->field = "marketing";
      problem->reason = "marketing must be true/\"opt_in\" or false/\"opt_out\"";
      return false;
    case Key::kLines: return ParseLines(value, batch, r, problem);
    case Key::kProperties: {
      if (nested || value.type() != element_type::OBJECT) {
        return AddProperty(key, value, batch, r, problem);
      }
      simdjson::dom::object nested_object = value.get_object().value_unsafe();
      for (auto [k, v] : nested_object) {
        if (!HandleMember(k, v, true, batch, r, problem)) return false;
      }
      return true;
    }
    case Key::kOther: return AddProperty(key, value, batch, r, problem);
  }
  return true;
}

bool JsonEventParser::ParseObject(const element& doc, uint64_t line, EventBatch* batch,
                                  Event* out, Problem* problem) {
  if (doc.type() != element_type::OBJECT) {
    problem->field.clear();
    problem->reason = std::string("expected a JSON object, found ") + TypeWord(doc.type());
    return false;
  }
  size_t lines_mark = batch->lines.size();
  size_t props_mark = batch->props.size();
  Record r;
  r.event.first_line = static_cast<uint32_t>(lines_mark);
  r.event.first_prop = static_cast<uint32_t>(props_mark);
  r.event.source_line = line;
  r.event.source_idx = static_cast<uint32_t>(batch->sources.size() - 1);
  auto fail = [&]() {
    batch->lines.resize(lines_mark);
    batch->props.resize(props_mark);
    return false;
  };
  simdjson::dom::object object = doc.get_object().value_unsafe();
  for (auto [key, value] : object) {
    if (!HandleMember(key, value, false, batch, &r, problem)) return fail();
  }
  Event& e = r.event;
  if (!r.has_type) {
    problem->field = "type";
    problem->reason = "missing type";
    return fail();
  }
  auto code = types_.Find(r.type_text);
  if (!code) {
    problem->field = "type";
    problem->reason = "unknown event type '" + std::string(r.type_text.substr(0, 64)) + "'";
    return fail();
  }
  e.type = *code;
  if (!r.has_timestamp) {
    problem->field = "timestamp";
    problem->reason = "missing timestamp";
    return fail();
  }
  if (r.timestamp.type() == element_type::STRING) {
    std::string_view ts = r.timestamp.get_string().value_unsafe();
    auto t = time_parser_.Parse(ts);
    if (!t.ok()) {
      problem->field = "timestamp";
      problem->reason = "unparsable timestamp '" + std::string(ts.substr(0, 64)) + "'";
      return fail();
    }
    e.timestamp = *t;
  } else {
    double v = 0;
    if (!GetNumber(r.timestamp, "timestamp", &v, problem)) return fail();
    double micros = std::fabs(v) > 1e10 ? v * 1e3 : v * 1e6;
    if (!(std::fabs(micros) < 9.0e18)) {
      problem->field = "timestamp";
      problem->reason = "timestamp out of range";
      return fail();
    }
    e.timestamp = static_cast<TimeMicros>(std::llround(micros));
  }
  bool order_like = e.Is(EventType::kOrder) || e.Is(EventType::kReturn);
  if (order_like) {
    if (!r.has_lines && !e.product_id.empty()) {
      // A one-product order given flat: make it a line.
      OrderLine l;
      l.product_id = e.product_id;
      l.category = e.category;
      l.quantity = std::isnan(e.quantity) ? 1 : e.quantity;
      l.unit_price = !std::isnan(r.unit_price) ? r.unit_price : e.price;
      batch->lines.push_back(l);
      e.num_lines = 1;
    }
  } else if (std::isnan(e.price)) {
    e.price = r.unit_price;
  }
  if (!FinishEvent(registry_, batch, &e, problem)) return fail();
  *out = e;
  return true;
}

}  // namespace shoal::ingest_internal
