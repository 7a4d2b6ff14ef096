#include "ingest/delimited_reader.h"

#include <xxhash.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

namespace shoal::ingest_internal {

namespace {

char DetectDelimiter(std::string_view line) {
  size_t comma = 0, tab = 0, semi = 0, pipe = 0;
  for (char c : line) {
    comma += c == ',';
    tab += c == '\t';
    semi += c == ';';
    pipe += c == '|';
  }
  char best = ',';
  size_t best_count = comma;
  if (tab > best_count) { best = '\t'; best_count = tab; }
  if (semi > best_count) { best = ';'; best_count = semi; }
  if (pipe > best_count) { best = '|'; }
  return best;
}

bool IsBlank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

}  // namespace

DelimitedReader::DelimitedReader(std::unique_ptr<InputBuffer> input,
                                 const EventTypeRegistry& registry, Quarantine* quarantine)
    : input_(std::move(input)), registry_(registry), types_(registry), quarantine_(quarantine) {
  bytes_total_ = input_->bytes_total();
}

Result<std::unique_ptr<EventReader>> DelimitedReader::Make(std::unique_ptr<InputBuffer> input,
                                                           const SourceSpec& spec,
                                                           const EventTypeRegistry& registry,
                                                           Quarantine* quarantine) {
  std::unique_ptr<DelimitedReader> reader(new DelimitedReader(std::move(input), registry, quarantine));
  SHOAL_RETURN_IF_ERROR(reader->Start(spec));
  return std::unique_ptr<EventReader>(std::move(reader));
}

Status DelimitedReader::Start(const SourceSpec& spec) {
  mapping_ = spec.mapping;
  max_record_bytes_ = spec.max_record_bytes;
  if (mapping_) options_ = mapping_->source();
  quote_ = options_.quote;
  whitespace_ = options_.delimiter == "whitespace";
  if (whitespace_) quote_ = 0;
  if (!whitespace_ && !options_.delimiter.empty()) delimiter_ = options_.delimiter[0];
  bool detect = !whitespace_ && options_.delimiter.empty();

  // Skipped lines (physical lines), then comments and blank lines before the header / first row.
  InputBuffer::Record rec;
  for (int skipped = 0; skipped < options_.skip_lines; ++skipped) {
    SHOAL_ASSIGN_OR_RETURN(bool more, input_->NextRecord(&rec, 0, 0));
    if (!more) break;
  }
  if (detect) {
    // Sniff the delimiter from the first meaningful line of what is buffered.
    std::string_view rest = input_->Buffered();
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      if (!IsBlank(line) && !(options_.comment != 0 && line.front() == options_.comment)) {
        delimiter_ = DetectDelimiter(line);
        break;
      }
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  bool found = false;
  while (true) {
    SHOAL_ASSIGN_OR_RETURN(bool more, input_->NextRecord(&rec, quote_, delimiter_));
    if (!more) break;
    if (rec.kind == InputBuffer::Record::Kind::kOk &&
        (IsBlank(rec.text) || (options_.comment != 0 && rec.text.front() == options_.comment))) {
      continue;
    }
    found = true;
    break;
  }
  stats_.bytes = input_->bytes_consumed();
  if (!found) return Status::OK();  // empty source: nothing to read, nothing to check
  if (rec.kind != InputBuffer::Record::Kind::kOk && options_.header) {
    return Status::InvalidArgument(
        "'" + input_->path() + "': the header line is unreadable (" +
        (rec.kind == InputBuffer::Record::Kind::kTooLong ? "too long" : "unterminated quote") + ")");
  }
  std::vector<std::string> header;
  if (options_.header) {
    SplitFields(DecodeToUtf8(rec.text, options_.encoding, &decoded_));
    for (std::string_view f : fields_) header.emplace_back(TrimSpaces(f));
  } else {
    has_first_ = true;
    first_text_.assign(rec.text);
    first_line_ = rec.line;
    first_kind_ = rec.kind;
    first_size_ = rec.full_size;
    if (!options_.columns.empty()) {
      header = options_.columns;
    } else {
      SplitFields(first_text_);
      if (options_.basket) fields_.clear();
      for (size_t i = 0; i < fields_.size(); ++i) header.push_back(std::to_string(i + 1));
    }
  }
  if (mapping_) {
    auto compiled = mapping_->Compile(header);
    if (!compiled.ok()) return compiled.status().WithContext("'" + input_->path() + "'");
    plan_ = std::move(compiled).value();
  } else {
    auto compiled = Mapping::CompileCanonical(header);
    if (!compiled.ok()) return compiled.status().WithContext("'" + input_->path() + "'");
    plan_ = std::move(compiled).value();
  }
  compiled_ = true;
  const auto& ts = plan_.fields[static_cast<size_t>(Field::kTimestamp)];
  if (ts.present) time_parser_.emplace(*ts.time);
  for (size_t i = 0; i < kNumFields; ++i) {
    Field f = static_cast<Field>(i);
    if (f == Field::kType || f == Field::kTimestamp || !plan_.fields[i].present) continue;
    bool line_field = plan_.canonical &&
                      (f == Field::kProductId || f == Field::kCategory || f == Field::kQuantity ||
                       f == Field::kUnitPrice || f == Field::kDiscount);
    slots_.push_back({f, IsNumericField(f), line_field, &plan_.fields[i]});
  }
  group_.sources.push_back(input_->path());
  return Status::OK();
}

void DelimitedReader::Reject(uint64_t line, std::string_view field, std::string_view reason,
                             std::string_view raw) {
  ++stats_.quarantined;
  if (quarantine_ != nullptr) quarantine_->Add(input_->path(), line, field, reason, raw);
}

void DelimitedReader::SplitFields(std::string_view text, bool may_have_quote) {
  fields_.clear();
  const char* p = text.data();
  const char* end = p + text.size();
  if (whitespace_) {
    while (p < end) {
      while (p < end && (*p == ' ' || *p == '\t')) ++p;
      if (p >= end) break;
      const char* start = p;
      while (p < end && *p != ' ' && *p != '\t') ++p;
      fields_.emplace_back(start, static_cast<size_t>(p - start));
    }
    return;
  }
  if (quote_ == 0 || !may_have_quote || std::memchr(p, quote_, text.size()) == nullptr) {
    // No quotes: every delimiter ends a field. Exports have many short or empty fields, so
    // find delimiters 16 bytes at a time rather than one memchr call per field.
    const char* field_start = p;
    const char* q = p;
#if defined(__SSE2__)
    const __m128i delim = _mm_set1_epi8(delimiter_);
    for (; q + 16 <= end; q += 16) {
      __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
      unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(chunk, delim)));
      while (mask != 0) {
        const char* at = q + __builtin_ctz(mask);
        fields_.emplace_back(field_start, static_cast<size_t>(at - field_start));
        field_start = at + 1;
        mask &= mask - 1;
      }
    }
#endif
    for (; q < end; ++q) {
      if (*q == delimiter_) {
        fields_.emplace_back(field_start, static_cast<size_t>(q - field_start));
        field_start = q + 1;
      }
    }
    fields_.emplace_back(field_start, static_cast<size_t>(end - field_start));
    return;
  }
  // RFC-4180: a field starting with a quote runs to the matching quote; "" is a quote.
  unquoted_.clear();
  unquoted_.reserve(text.size());  // views into unquoted_ stay valid: it never grows past this
  while (true) {
    if (p < end && *p == quote_) {
      size_t start = unquoted_.size();
      ++p;
      while (p < end) {
        if (*p == quote_) {
          if (p + 1 < end && p[1] == quote_) {
            unquoted_.push_back(quote_);
            p += 2;
            continue;
          }
          ++p;
          break;
        }
        unquoted_.push_back(*p++);
      }
      while (p < end && *p != delimiter_) unquoted_.push_back(*p++);  // lenient: "ab"c -> abc
      fields_.emplace_back(unquoted_.data() + start, unquoted_.size() - start);
    } else {
      const char* d = static_cast<const char*>(std::memchr(p, delimiter_, static_cast<size_t>(end - p)));
      const char* stop = d == nullptr ? end : d;
      fields_.emplace_back(p, static_cast<size_t>(stop - p));
      p = stop;
    }
    if (p >= end) return;
    ++p;  // the delimiter
    if (p == end) {
      fields_.emplace_back();  // a trailing delimiter ends with an empty field
      return;
    }
  }
}

std::string_view DelimitedReader::RawValue(const CompiledMapping::Source& s) const {
  if (s.column < 0) return s.constant;
  return static_cast<size_t>(s.column) < fields_.size() ? fields_[static_cast<size_t>(s.column)]
                                                        : std::string_view();
}

std::string DelimitedReader::ColumnLabel(const CompiledMapping::Source& s,
                                         std::string_view fallback) const {
  if (s.column >= 0 && static_cast<size_t>(s.column) < plan_.header.size()) {
    return plan_.header[static_cast<size_t>(s.column)];
  }
  return std::string(fallback);
}

std::string_view DelimitedReader::Value(const CompiledMapping::Source& s, Field field) {
  if (has_overrides_) {
    const std::string* override_value = overrides_[static_cast<size_t>(field)];
    if (override_value != nullptr) return *override_value;
  }
  std::string_view v = RawValue(s);
  uint32_t casts = s.casts;
  if (casts & (kCastTrim | kCastId)) v = TrimSpaces(v);
  if (casts & kCastId) v = NormalizeId(v);
  if (casts & kCastLower) {
    scratch_.assign(v);
    for (char& c : scratch_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    v = scratch_;
  }
  return v;
}

bool DelimitedReader::NumberValue(const CompiledMapping::Source& s, std::string_view label,
                                  double* out, Problem* problem) {
  std::string_view v = RawValue(s);
  if (TrimSpaces(v).empty()) {
    *out = Event::kNaN;
    return true;
  }
  auto n = (s.casts & kCastMoney) ? ParseMoney(v, options_.decimal, options_.thousands)
                                  : ParseNumber(v, options_.decimal, options_.thousands);
  if (!n) {
    problem->field = ColumnLabel(s, label);
    problem->reason = "not a finite number: '" + std::string(v.substr(0, 64)) + "'";
    if (!(s.casts & kCastMoney) && ParseMoney(v, options_.decimal, options_.thousands)) {
      problem->reason += " (an amount with a currency? add cast = \"money\")";
    } else if (options_.decimal == '.' && options_.thousands != ',' &&
               v.find(',') != std::string_view::npos) {
      problem->reason +=
          " (a decimal comma or a thousands separator? set decimal = \",\" or thousands = "
          "\",\" in [source])";
    }
    return false;
  }
  *out = (s.casts & kCastAbs) ? std::fabs(*n) : *n;
  return true;
}

bool DelimitedReader::BuildEvent(EventBatch* target, Event* e, bool fields_for_lines,
                                 Problem* problem) {
  for (const FieldSlot& slot : slots_) {
    if (fields_for_lines && slot.line_field) continue;
    const Field f = slot.field;
    const auto& s = *slot.source;
    const std::string* ov = has_overrides_ ? overrides_[static_cast<size_t>(f)] : nullptr;
    // Most cells of a wide export are empty: skip them before any parsing.
    if (ov == nullptr && RawValue(s).empty()) continue;
    if (slot.numeric) {
      double v = Event::kNaN;
      if (ov != nullptr) {
        auto n = ParseNumber(*ov);
        if (n) v = *n;
      } else if (!NumberValue(s, FieldName(f), &v, problem)) {
        return false;
      }
      switch (f) {
        case Field::kQuantity: e->quantity = v; break;
        case Field::kUnitPrice: if (std::isnan(e->price)) e->price = v; break;
        case Field::kDiscount: e->discount = v; break;
        case Field::kTotal: e->total = v; break;
        case Field::kPrice: if (!std::isnan(v)) e->price = v; break;
        case Field::kDwellSeconds: e->dwell_seconds = v; break;
        default: break;
      }
      continue;
    }
    std::string_view v = Value(s, f);
    if (v.empty()) continue;
    switch (f) {
      case Field::kEventId: e->event_id = target->Intern(v); break;
      case Field::kCustomerId: e->customer_id = target->Intern(v); break;
      case Field::kEmail: e->email = target->Intern(NormalizeEmail(v, &id_scratch_)); break;
      case Field::kAnonymousId: e->anonymous_id = target->Intern(v); break;
      case Field::kPhone: e->phone = target->Intern(v); break;
      case Field::kChannel: e->channel = ParseChannel(TrimSpaces(v)); break;
      case Field::kDevice: e->device = ParseDeviceClass(TrimSpaces(v)); break;
      case Field::kOrderId: e->order_id = target->Intern(v); break;
      case Field::kCurrency: e->currency = target->Intern(v); break;
      case Field::kProductId: e->product_id = target->Intern(v); break;
      case Field::kCategory: e->category = target->Intern(v); break;
      case Field::kCampaignId: e->campaign_id = target->Intern(v); break;
      case Field::kSessionId: e->session_id = target->Intern(v); break;
      case Field::kQuery: e->query = target->Intern(v); break;
      case Field::kReferee: e->referee = target->Intern(v); break;
      case Field::kTopic: e->topic = target->Intern(v); break;
      case Field::kMarketing: {
        std::string_view m = TrimSpaces(v);
        if (m == "true" || m == "opt_in" || m == "1" || m == "yes" || m == "subscribed") {
          e->consent = 1;
        } else if (m == "false" || m == "opt_out" || m == "0" || m == "no" || m == "unsubscribed") {
          e->consent = 0;
        } else {
          problem->field = ColumnLabel(s, "marketing");
          problem->reason = "marketing must be true/opt_in or false/opt_out, got '" +
                            std::string(m.substr(0, 64)) + "'";
          return false;
        }
        break;
      }
      default: break;
    }
  }
  e->first_prop = static_cast<uint32_t>(target->props.size());
  for (const auto& [name, s] : plan_.properties) {
    EventProperty p;
    if (s.casts & kCastNumber) {
      double v = Event::kNaN;
      if (!NumberValue(s, name, &v, problem)) return false;
      if (std::isnan(v)) continue;
      p.number = v;
      p.is_number = true;
    } else {
      std::string_view v = RawValue(s);
      if (s.casts & (kCastTrim | kCastId)) v = TrimSpaces(v);
      if (s.casts & kCastId) v = NormalizeId(v);
      if (v.empty()) continue;
      if (s.casts & kCastLower) {
        scratch_.assign(v);
        for (char& c : scratch_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        v = scratch_;
      }
      p.text = target->Intern(v);
    }
    p.name = target->Intern(name);
    target->props.push_back(p);
    ++e->num_props;
  }
  for (const std::string* flag : flags_) {
    EventProperty p;
    p.name = target->Intern(*flag);
    p.number = 1;
    p.is_number = true;
    target->props.push_back(p);
    ++e->num_props;
  }
  return true;
}

bool DelimitedReader::BuildLine(OrderLine* line, EventBatch* target, Problem* problem) {
  const auto& src = plan_.lines;
  auto text = [&](LineField f) -> std::string_view {
    const auto& s = src[static_cast<size_t>(f)];
    if (!s.present) return {};
    std::string_view v = RawValue(s);
    if (s.casts & (kCastTrim | kCastId)) v = TrimSpaces(v);
    if (s.casts & kCastId) v = NormalizeId(v);
    return v;
  };
  line->product_id = target->Intern(text(LineField::kProductId));
  line->category = target->Intern(text(LineField::kCategory));
  double q = Event::kNaN, price = Event::kNaN, discount = Event::kNaN;
  const auto& qs = src[static_cast<size_t>(LineField::kQuantity)];
  const auto& ps = src[static_cast<size_t>(LineField::kUnitPrice)];
  const auto& ds = src[static_cast<size_t>(LineField::kDiscount)];
  if (qs.present && !NumberValue(qs, "quantity", &q, problem)) return false;
  if (ps.present && !NumberValue(ps, "unit_price", &price, problem)) return false;
  if (ds.present && !NumberValue(ds, "discount", &discount, problem)) return false;
  if (plan_.canonical && std::isnan(price)) {
    // Canonical CSV orders may give the line price in the price column.
    const auto& pr = plan_.fields[static_cast<size_t>(Field::kPrice)];
    if (pr.present && !NumberValue(pr, "price", &price, problem)) return false;
  }
  line->quantity = std::isnan(q) ? 1 : q;
  line->unit_price = price;
  line->discount = std::isnan(discount) ? 0 : discount;
  if (line->quantity < 0) {
    problem->field = ColumnLabel(qs, "quantity");
    char buf[64];
    problem->reason = "negative quantity " + std::string(NumberToText(line->quantity, buf)) +
                      " on an order line";
    return false;
  }
  return true;
}

bool DelimitedReader::Emit(EventBatch* from, Event* e, std::string_view raw, EventBatch* batch,
                           Problem* failed) {
  Problem problem;
  if (!FinishEvent(registry_, from, e, &problem)) {
    Reject(e->source_line, problem.field, problem.reason, raw);
    if (failed != nullptr) *failed = problem;
    return false;
  }
  if (e->id_hash == 0) e->id_hash = EventIdHash(e->event_id);
  if (from == batch) {
    batch->events.push_back(*e);
  } else {
    batch->AppendCopy(*from, *e);
  }
  ++stats_.events;
  return true;
}

void DelimitedReader::CloseGroup(EventBatch* batch) {
  if (!group_open_) return;
  group_open_ = false;
  if (group_poisoned_) {  // its rows are in the quarantine already
    group_poisoned_ = false;
    ClearGroupRows();
    return;
  }
  Event& e = group_.events.front();
  e.num_lines = static_cast<uint32_t>(group_.lines.size());
  if (e.event_id.empty()) {
    if (group_keyed_) {
      std::string_view customer = !e.customer_id.empty() ? e.customer_id
                                  : !e.email.empty()     ? e.email
                                                         : e.anonymous_id;
      scratch_.assign("order:");
      scratch_.append(e.order_id);
      scratch_.push_back(':');
      scratch_.append(customer);
    } else {
      const std::string_view first_row = GroupFirstRow();
      uint64_t hash = XXH3_64bits(first_row.data(), first_row.size());
      FormatDerivedId("csv", hash, duplicates_.Count(hash), &scratch_);
    }
    e.event_id = group_.Intern(scratch_);
  }
  e.id_hash = EventIdHash(e.event_id);
  Problem problem;
  if (!Emit(&group_, &e, GroupFirstRow(), batch, &problem)) {
    // The order itself is bad (Emit quarantined its first row): its other rows go with it.
    PoisonGroup(e.source_line, problem.field, problem.reason);
    group_poisoned_ = false;
  }
  ClearGroupRows();
}

void DelimitedReader::ProcessRecord(const InputBuffer::Record& rec, EventBatch* batch) {
  if (rec.kind == InputBuffer::Record::Kind::kOk &&
      (IsBlank(rec.text) || (options_.comment != 0 && rec.text.front() == options_.comment))) {
    return;
  }
  ++stats_.records;
  if (rec.kind == InputBuffer::Record::Kind::kTooLong) {
    Reject(rec.line, "", "record too long (" + std::to_string(rec.full_size) +
                             " bytes; the maximum is " + std::to_string(max_record_bytes_) + ")",
           rec.text);
    return;
  }
  if (rec.kind == InputBuffer::Record::Kind::kUnterminatedQuote) {
    Reject(rec.line, "", "unterminated quote", rec.text);
    return;
  }
  if (options_.encoding != SourceOptions::Encoding::kUtf8) {
    InputBuffer::Record decoded_rec = rec;
    decoded_rec.text = DecodeToUtf8(rec.text, options_.encoding, &decoded_);
    ProcessDecoded(decoded_rec, batch);
    return;
  }
  ProcessDecoded(rec, batch);
}

void DelimitedReader::ProcessDecoded(const InputBuffer::Record& rec, EventBatch* batch) {
  if (!IsValidUtf8(rec.text)) {
    SplitFields(rec.text);
    std::string field;
    for (size_t i = 0; i < fields_.size(); ++i) {
      if (!IsValidUtf8(fields_[i])) {
        field = i < plan_.header.size() ? plan_.header[i] : std::to_string(i + 1);
        break;
      }
    }
    Reject(rec.line, field, "not valid UTF-8", rec.text);
    return;
  }
  if (options_.basket) {
    ProcessBasket(rec.text, rec.line, batch);
  } else {
    ProcessRow(rec.text, rec.line, rec.has_quote, batch);
  }
}

void DelimitedReader::ProcessBasket(std::string_view text, uint64_t line, EventBatch* batch) {
  SplitFields(text);
  flags_.clear();
  Problem problem;
  Event e;
  e.type = static_cast<uint16_t>(EventType::kOrder);
  const auto& type = plan_.fields[static_cast<size_t>(Field::kType)];
  if (type.present) {
    auto code = types_.Find(type.constant);
    if (!code) {
      Reject(line, "type", "unknown event type '" + type.constant + "'", text);
      return;
    }
    e.type = *code;
  }
  if (time_parser_) {
    auto t = time_parser_->Parse(plan_.fields[static_cast<size_t>(Field::kTimestamp)].constant);
    e.timestamp = t.ok() ? *t : 0;
  }
  e.source_line = line;
  e.source_idx = static_cast<uint32_t>(batch->sources.size() - 1);
  size_t lines_mark = batch->lines.size(), props_mark = batch->props.size();
  if (!BuildEvent(batch, &e, false, &problem)) {
    batch->lines.resize(lines_mark);
    batch->props.resize(props_mark);
    Reject(line, problem.field, problem.reason, text);
    return;
  }
  e.first_line = static_cast<uint32_t>(batch->lines.size());
  for (std::string_view item : fields_) {
    if (item.empty()) continue;
    OrderLine l;
    l.product_id = batch->Intern(item);
    l.category = l.product_id;
    l.quantity = 1;
    l.unit_price = Event::kNaN;
    batch->lines.push_back(l);
    ++e.num_lines;
  }
  if (e.num_lines == 0) {
    Reject(line, "", "empty basket", text);
    return;
  }
  if (e.event_id.empty()) {
    uint64_t hash = XXH3_64bits(text.data(), text.size());
    FormatDerivedId("csv", hash, duplicates_.Count(hash), &scratch_);
    e.event_id = batch->Intern(scratch_);
  }
  e.id_hash = EventIdHash(e.event_id);
  Emit(batch, &e, text, batch);
}

void DelimitedReader::ProcessRow(std::string_view text, uint64_t line, bool may_have_quote,
                                 EventBatch* batch) {
  SplitFields(text, may_have_quote);
  if (static_cast<int>(fields_.size()) < plan_.columns_needed) {
    int col = plan_.columns_needed;
    Reject(line, plan_.header[static_cast<size_t>(col - 1)],
           "row has " + std::to_string(fields_.size()) + " columns; " +
               (plan_.canonical ? "the header has " + std::to_string(col)
                                : "the mapping reads column " + std::to_string(col) + " ('" +
                                      plan_.header[static_cast<size_t>(col - 1)] + "')"),
           text);
    return;
  }
  if (has_overrides_) overrides_.fill(nullptr);
  has_overrides_ = false;
  flags_.clear();
  for (const auto& rule : plan_.rules) {
    bool holds = true;
    for (const auto& c : rule.conditions) {
      std::string_view v = static_cast<size_t>(c.column) < fields_.size()
                               ? fields_[static_cast<size_t>(c.column)]
                               : std::string_view();
      if (!ConditionHolds(c.condition, v, options_.decimal, options_.thousands)) {
        holds = false;
        break;
      }
    }
    if (!holds) continue;
    for (const RuleAction& a : rule.actions) {
      switch (a.kind) {
        case RuleAction::Kind::kSkip:
          ++stats_.skipped;
          return;
        case RuleAction::Kind::kQuarantine: {
          int col = rule.conditions.front().column;
          RejectRow(line, plan_.header[static_cast<size_t>(col)], a.value, text, batch);
          return;
        }
        case RuleAction::Kind::kFlag:
          flags_.push_back(&a.value);
          break;
        case RuleAction::Kind::kSetField:
          overrides_[static_cast<size_t>(a.field)] = &a.value;
          has_overrides_ = true;
          break;
      }
    }
  }
  Problem problem;
  // Type.
  const auto& type_src = plan_.fields[static_cast<size_t>(Field::kType)];
  std::string_view type_text = TrimSpaces(Value(type_src, Field::kType));
  if (type_text.empty()) {
    RejectRow(line, ColumnLabel(type_src, "type"), "missing type", text, batch);
    return;
  }
  auto code = types_.Find(type_text);
  if (!code) {
    RejectRow(line, ColumnLabel(type_src, "type"),
              "unknown event type '" + std::string(type_text.substr(0, 64)) + "'", text, batch);
    return;
  }
  bool order_like = *code == static_cast<uint16_t>(EventType::kOrder) ||
                    *code == static_cast<uint16_t>(EventType::kReturn);
  bool as_line = plan_.has_lines && (!plan_.canonical || order_like);

  // Timestamp (not needed on the continuation rows of an order).
  auto parse_time = [&](TimeMicros* out, Problem* time_problem) {
    const auto& ts_src = plan_.fields[static_cast<size_t>(Field::kTimestamp)];
    std::string_view ts_text = TrimSpaces(Value(ts_src, Field::kTimestamp));
    if (ts_text.empty()) {
      time_problem->field = ColumnLabel(ts_src, "timestamp");
      time_problem->reason = "missing timestamp";
      return false;
    }
    auto ts = time_parser_->Parse(ts_text);
    if (!ts.ok()) {
      time_problem->field = ColumnLabel(ts_src, "timestamp");
      time_problem->reason = "unparsable timestamp '" + std::string(ts_text.substr(0, 64)) + "'";
      return false;
    }
    *out = *ts;
    return true;
  };
  TimeMicros timestamp = 0;

  if (!as_line) {
    CloseGroup(batch);
    if (!parse_time(&timestamp, &problem)) {
      Reject(line, problem.field, problem.reason, text);
      return;
    }
    // Built in place (an Event is ~260 bytes): dropped again if the row turns out bad.
    Event& e = batch->events.emplace_back();
    e.type = *code;
    e.timestamp = timestamp;
    e.source_line = line;
    e.source_idx = static_cast<uint32_t>(batch->sources.size() - 1);
    size_t lines_mark = batch->lines.size(), props_mark = batch->props.size();
    auto fail = [&](const Problem& p) {
      batch->events.pop_back();
      batch->lines.resize(lines_mark);
      batch->props.resize(props_mark);
      Reject(line, p.field, p.reason, text);
    };
    if (!BuildEvent(batch, &e, false, &problem)) return fail(problem);
    e.first_line = static_cast<uint32_t>(batch->lines.size());
    if (order_like && !e.product_id.empty()) {
      OrderLine l;
      l.product_id = e.product_id;
      l.category = e.category;
      l.quantity = std::isnan(e.quantity) ? 1 : e.quantity;
      l.unit_price = e.price;
      batch->lines.push_back(l);
      e.num_lines = 1;
    }
    if (!FinishEvent(registry_, batch, &e, &problem)) return fail(problem);
    if (e.event_id.empty()) {
      uint64_t hash = XXH3_64bits(text.data(), text.size());
      FormatDerivedId("csv", hash, duplicates_.Count(hash), &scratch_);
      e.event_id = batch->Intern(scratch_);
    }
    e.id_hash = EventIdHash(e.event_id);
    ++stats_.events;
    return;
  }

  // An order line: continue the open order or start a new one.
  bool continues = false;
  const bool keyed = OrderRowKey(&continues);
  OrderLine order_line;
  if (continues) {
    if (group_poisoned_) {
      Reject(line, group_poison_field_, group_poison_reason_, text);
      return;
    }
    if (!BuildLine(&order_line, &group_, &problem)) {
      Reject(line, problem.field, problem.reason, text);
      PoisonGroup(line, problem.field, problem.reason);
      return;
    }
    group_.lines.push_back(order_line);
    AddGroupRow(line, text);
    return;
  }
  std::string key_copy = id_scratch_;
  CloseGroup(batch);
  const auto& oid_src = plan_.fields[static_cast<size_t>(Field::kOrderId)];
  if (keyed) {
    uint64_t h = XXH3_64bits(key_copy.data(), key_copy.size());
    if (closed_groups_.Count(h) > 0) {
      Reject(line, ColumnLabel(oid_src, "order_id"),
             "order '" + std::string(key_copy.substr(0, key_copy.find('\x1f'))) +
                 "' continues after rows of other orders; rows of one order must be adjacent",
             text);
      return;
    }
  }
  group_.Clear();
  group_.sources.push_back(input_->path());
  ClearGroupRows();
  // A bad first row quarantines the order's later rows too (they follow it: PoisonGroup).
  auto reject_first = [&](const Problem& p) {
    group_.Clear();
    Reject(line, p.field, p.reason, text);
    if (keyed) OpenPoisonedGroup(std::move(key_copy), line, p.field, p.reason);
  };
  if (!parse_time(&timestamp, &problem)) return reject_first(problem);
  Event e;
  e.type = *code;
  e.timestamp = timestamp;
  e.source_line = line;
  e.source_idx = 0;
  if (!BuildEvent(&group_, &e, true, &problem) || !BuildLine(&order_line, &group_, &problem)) {
    return reject_first(problem);
  }
  e.first_line = 0;
  group_.lines.push_back(order_line);
  group_.events.push_back(e);
  group_open_ = true;
  group_keyed_ = keyed;
  group_key_ = std::move(key_copy);
  AddGroupRow(line, text);
}

bool DelimitedReader::OrderRowKey(bool* continues) {
  const auto& oid_src = plan_.fields[static_cast<size_t>(Field::kOrderId)];
  const auto& eid_src = plan_.fields[static_cast<size_t>(Field::kEventId)];
  std::string_view key;
  if (plan_.canonical && eid_src.present) key = TrimSpaces(Value(eid_src, Field::kEventId));
  if (key.empty() && oid_src.present) key = Value(oid_src, Field::kOrderId);
  // The key joins order id and customer: copy it before Value() reuses scratch_.
  id_scratch_.assign(key);
  id_scratch_.push_back('\x1f');
  size_t order_part = id_scratch_.size();
  for (Field f : {Field::kCustomerId, Field::kEmail, Field::kAnonymousId}) {
    const auto& s = plan_.fields[static_cast<size_t>(f)];
    if (!s.present) continue;
    std::string_view v = Value(s, f);
    if (!v.empty()) {
      id_scratch_.append(v);
      break;
    }
  }
  const bool keyed = !key.empty();
  // A row continues the open order when the order id matches and its customer matches or is
  // blank (Shopify repeats only some order columns on the later line rows).
  *continues = keyed && group_open_ && group_keyed_ &&
               (id_scratch_ == group_key_ ||
                (id_scratch_.size() == order_part &&
                 group_key_.compare(0, order_part, id_scratch_) == 0));
  return keyed;
}

void DelimitedReader::RejectRow(uint64_t line, std::string_view field, std::string_view reason,
                                std::string_view text, EventBatch* batch) {
  Reject(line, field, reason, text);
  // Only a mapping with [lines] makes every row an order line; elsewhere the type decides, and
  // a row rejected before its type is known belongs to no order.
  if (!plan_.has_lines || plan_.canonical) return;
  bool continues = false;
  if (!OrderRowKey(&continues)) return;  // a single-row order: nothing else belongs to it
  if (continues) {
    if (!group_poisoned_) PoisonGroup(line, field, reason);
    return;
  }
  std::string key_copy = id_scratch_;
  CloseGroup(batch);
  // An order seen before is not adjacent: its later rows are quarantined as such anyway.
  if (closed_groups_.Count(XXH3_64bits(key_copy.data(), key_copy.size())) > 0) return;
  group_.Clear();
  ClearGroupRows();
  OpenPoisonedGroup(std::move(key_copy), line, field, reason);
}

void DelimitedReader::OpenPoisonedGroup(std::string key, uint64_t bad_line,
                                        std::string_view field, std::string_view reason) {
  group_open_ = true;
  group_keyed_ = true;
  group_key_ = std::move(key);
  PoisonGroup(bad_line, field, reason);
}

std::string_view DelimitedReader::GroupFirstRow() const {
  if (group_rows_.empty()) return {};
  return std::string_view(group_rows_text_).substr(0, group_rows_.front().second);
}

void DelimitedReader::AddGroupRow(uint64_t line, std::string_view text) {
  group_rows_text_.append(text);
  group_rows_.emplace_back(line, group_rows_text_.size());
}

void DelimitedReader::ClearGroupRows() {
  group_rows_.clear();
  group_rows_text_.clear();
}

void DelimitedReader::PoisonGroup(uint64_t bad_line, std::string_view field,
                                  std::string_view reason) {
  const std::string_view order = std::string_view(group_key_).substr(0, group_key_.find('\x1f'));
  group_poison_field_ =
      ColumnLabel(plan_.fields[static_cast<size_t>(Field::kOrderId)], "order_id");
  // The kind (the text before the first quote) is the same for every order.
  group_poison_reason_ = "another row of its order is bad: '" +
                         std::string(order.substr(0, 64)) + "' line " +
                         std::to_string(bad_line) + " (" + std::string(field) + ": " +
                         std::string(reason.substr(0, 160)) + ")";
  size_t begin = 0;
  for (const auto& [row_line, end] : group_rows_) {
    // The bad row itself is quarantined by the caller, with its own reason.
    if (row_line != bad_line) {
      Reject(row_line, group_poison_field_, group_poison_reason_,
             std::string_view(group_rows_text_).substr(begin, end - begin));
    }
    begin = end;
  }
  ClearGroupRows();
  group_.Clear();
  group_poisoned_ = true;
}

Result<bool> DelimitedReader::Next(EventBatch* batch, size_t max_events) {
  batch->Clear();
  batch->sources.push_back(input_->path());
  if (max_events == 0) max_events = 1;
  for (const Event& e : carry_.events) batch->AppendCopy(carry_, e);
  carry_.Clear();
  if (!compiled_) return !batch->events.empty();
  InputBuffer::Record rec;
  while (batch->events.size() < max_events) {
    if (has_first_) {
      has_first_ = false;
      rec.text = first_text_;
      rec.line = first_line_;
      rec.kind = first_kind_;
      rec.has_quote = true;
      rec.full_size = first_size_;
      ProcessRecord(rec, batch);
      continue;
    }
    SHOAL_ASSIGN_OR_RETURN(bool more, input_->NextRecord(&rec, quote_, delimiter_));
    if (!more) {
      CloseGroup(batch);
      break;
    }
    ProcessRecord(rec, batch);
  }
  stats_.bytes = input_->bytes_consumed();
  // A row may close an order and emit its own event: keep what exceeds max_events for later.
  while (batch->events.size() > max_events) {
    const Event& last = batch->events.back();
    carry_.AppendCopy(*batch, last);
    // The overflowing event is the last one built, so its lines and properties are the tail.
    if (last.num_lines > 0) batch->lines.resize(last.first_line);
    if (last.num_props > 0) batch->props.resize(last.first_prop);
    batch->events.pop_back();
  }
  return !batch->events.empty();
}

}  // namespace shoal::ingest_internal
