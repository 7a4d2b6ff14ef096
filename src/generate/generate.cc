#include "generate/generate.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "common/parallel.h"
#include "generate/customer_synth.h"
#include "generate/shop_model.h"

namespace shoal {

using namespace generate_internal;  // NOLINT: this file is the module's implementation

namespace {

constexpr std::string_view kCsvHeader =
    "event_id,type,timestamp,customer_id,email,anonymous_id,phone,channel,device,order_id,"
    "currency,product_id,category,quantity,unit_price,discount,total,price,dwell_seconds,"
    "campaign_id,session_id,query,referee,topic,marketing\n";

// Deliberate corruptions (messy_share), each a reason docs/events.md quarantines a record for.
enum MessKind : int {
  kMessNone = -1,
  kMessTruncated = 0,     // JSONL: cut mid-object; CSV: too few fields
  kMessBadTimestamp,      // "31/31/2024 25:61"
  kMessNoTimestamp,       // timestamp missing
  kMessUnknownType,       // type "pageview_v2"
  kMessNoIdentifier,      // no customer_id, email nor anonymous_id (not used on orders)
  kMessNegativeQuantity,  // negative quantity on an order line
  kMessNonFinite,         // a number field is 1e999 (overflows to infinity)
  kNumMessKinds,
};

// Formats the events of one customer into JSONL and CSV buffers.
class EventWriter {
 public:
  EventWriter(const ShopModel& model) : model_(model) {}

  void Write(const CustomerSynth& synth, uint64_t customer_idx, TextBuffer* jsonl, TextBuffer* csv,
             GenerateStats* stats) {
    const Identity& self = synth.identity();
    uint64_t mess_seed = StreamSeed(model_.options.seed, customer_idx, 3);
    const auto& events = synth.events();
    for (size_t k = 0; k < events.size(); ++k) {
      const GenEvent& e = events[k];
      id_.clear();
      id_ += 'E';
      id_ += std::string_view(self.customer_id).substr(1);
      id_ += '-';
      char num[24];
      auto res = std::to_chars(num, num + sizeof num, k);
      id_.append(num, res.ptr);
      const Identity* subject = &self;
      if (e.about_other) {
        other_.Build(model_.options.seed, e.other);
        subject = &other_;
      }
      int mess = kMessNone;
      if (model_.options.messy_share > 0) {
        uint64_t h = Mix64(mess_seed + k);
        if (static_cast<double>(h >> 11) * 0x1.0p-53 < model_.options.messy_share) {
          mess = static_cast<int>(Mix64(h) % kNumMessKinds);
          mess = Applicable(e, mess);
          ++stats->messy_events;
        }
      }
      ++stats->events;
      ++stats->per_type[static_cast<size_t>(e.type)];
      if (e.type == EventType::kOrder) {
        ++stats->orders;
        stats->order_lines += e.num_lines;
      }
      if (jsonl != nullptr) WriteJson(e, synth, self, *subject, mess, jsonl);
      if (csv != nullptr) stats->csv_rows += WriteCsv(e, synth, self, *subject, mess, csv);
    }
  }

 private:
  // Falls back to a corruption that applies to this event.
  static int Applicable(const GenEvent& e, int mess) {
    bool has_quantity = e.type == EventType::kOrder;  // only order lines must be >= 0
    bool has_number = e.type == EventType::kOrder || e.type == EventType::kReturn ||
                      e.type == EventType::kCheckoutStart || e.type == EventType::kProductView ||
                      e.type == EventType::kCartAdd || e.type == EventType::kCartRemove ||
                      e.type == EventType::kPageView;
    if (mess == kMessNegativeQuantity && !has_quantity) return kMessBadTimestamp;
    if (mess == kMessNonFinite && !has_number) return kMessUnknownType;
    if (mess == kMessNoIdentifier && e.type == EventType::kOrder) return kMessNegativeQuantity;
    return mess;
  }

  void PutTimestamp(TextBuffer* out, int64_t t) {
    int64_t day = t / 86400, sod = t % 86400;
    out->Put(model_.day_text[static_cast<size_t>(day)]);
    out->Put('T');
    out->PutTwoDigits(static_cast<int>(sod / 3600));
    out->Put(':');
    out->PutTwoDigits(static_cast<int>(sod / 60 % 60));
    out->Put(':');
    out->PutTwoDigits(static_cast<int>(sod % 60));
    out->Put('Z');
  }

  std::string_view Email(const GenEvent& e, const Identity& who) const {
    return e.mixed_case_email ? std::string_view(who.email_mixed) : std::string_view(who.email);
  }

  // Numbered id "<prefix><customer number>-<n>" ("O12-3").
  void PutNumbered(TextBuffer* out, char prefix, const Identity& self, int64_t n) {
    out->Put(prefix);
    out->Put(std::string_view(self.customer_id).substr(1));
    out->Put('-');
    out->PutInt(n);
  }

  void PutPage(TextBuffer* out, const GenEvent& e) {
    switch (e.page_kind) {
      case kPageHome:
        out->Put('/');
        break;
      case kPageCategory:
        out->Put("/c/");
        out->Put(model_.categories[static_cast<size_t>(e.category)].slug);
        break;
      case kPageProduct:
        out->Put("/p/");
        out->Put(model_.products[static_cast<size_t>(e.product)].id);
        break;
      case kPageSearch:
        out->Put("/search");
        break;
      case kPageCart:
        out->Put("/cart");
        break;
      case kPageAccount:
        out->Put("/account");
        break;
      default:
        out->Put("/blog/");
        out->PutInt(e.product);
        break;
    }
  }

  void WriteJson(const GenEvent& e, const CustomerSynth& synth, const Identity& self,
                 const Identity& subject, int mess, TextBuffer* out) {
    size_t line_start = out->size();
    out->Put("{\"event_id\":\"");
    out->Put(id_);
    out->Put("\",\"type\":\"");
    out->Put(mess == kMessUnknownType ? std::string_view("pageview_v2") : EventTypeName(e.type));
    out->Put('"');
    if (mess == kMessBadTimestamp) {
      out->Put(",\"timestamp\":\"31/31/2024 25:61\"");
    } else if (mess != kMessNoTimestamp) {
      out->Put(",\"timestamp\":\"");
      PutTimestamp(out, e.time);
      out->Put('"');
    }
    if (mess != kMessNoIdentifier) {
      if (e.ids & kIdCustomer) {
        out->Put(",\"customer_id\":\"");
        out->Put(subject.customer_id);
        out->Put('"');
      }
      if (e.ids & kIdEmail) {
        out->Put(",\"email\":\"");
        out->Put(Email(e, subject));
        out->Put('"');
      }
      if (e.ids & kIdAnonymous) {
        out->Put(",\"anonymous_id\":\"");
        out->Put(subject.anonymous[e.anon]);
        out->Put('"');
      }
    }
    if ((e.ids & kIdPhone) && !subject.phone.empty()) {
      out->Put(",\"phone\":\"");
      out->Put(subject.phone);
      out->Put('"');
    }
    if (e.channel != Channel::kUnknown) {
      out->Put(",\"channel\":\"");
      out->Put(ChannelName(e.channel));
      out->Put('"');
    }
    if (e.device != DeviceClass::kUnknown) {
      out->Put(",\"device\":\"");
      out->Put(DeviceClassName(e.device));
      out->Put('"');
    }
    if (e.session >= 0) {
      out->Put(",\"session_id\":\"");
      PutNumbered(out, 'S', self, e.session);
      out->Put('"');
    }
    auto put_money = [&](std::string_view key, int64_t cents) {
      out->Put(key);
      if (mess == kMessNonFinite) {
        out->Put("1e999");
      } else {
        out->PutCents(cents);
      }
    };
    switch (e.type) {
      case EventType::kOrder:
      case EventType::kReturn: {
        out->Put(",\"order_id\":\"");
        PutNumbered(out, 'O', self, e.order);
        out->Put("\",\"currency\":\"");
        out->Put(model_.currency_json);
        out->Put('"');
        put_money(",\"total\":", e.money);
        out->Put(",\"lines\":[");
        for (uint32_t l = 0; l < e.num_lines; ++l) {
          const GenLine& line = synth.lines()[e.first_line + l];
          const Product& p = model_.products[line.product];
          out->Put(l == 0 ? "{\"product_id\":\"" : ",{\"product_id\":\"");
          out->Put(p.id);
          out->Put("\",\"category\":\"");
          out->Put(model_.categories[p.category].json_name);
          out->Put("\",\"quantity\":");
          out->PutInt(mess == kMessNegativeQuantity ? -line.quantity : line.quantity);
          out->Put(",\"unit_price\":");
          out->PutCents(line.unit_cents);
          out->Put(",\"discount\":");
          out->PutCents(line.discount_cents);
          out->Put('}');
        }
        out->Put(']');
        break;
      }
      case EventType::kPageView:
        out->Put(",\"page\":\"");
        PutPage(out, e);
        out->Put("\",\"dwell_seconds\":");
        if (mess == kMessNonFinite) {
          out->Put("1e999");
        } else {
          out->PutInt(e.dwell);
        }
        break;
      case EventType::kProductView:
      case EventType::kCartAdd:
      case EventType::kCartRemove: {
        const Product& p = model_.products[static_cast<size_t>(e.product)];
        out->Put(",\"product_id\":\"");
        out->Put(p.id);
        out->Put("\",\"category\":\"");
        out->Put(model_.categories[p.category].json_name);
        out->Put('"');
        put_money(",\"price\":", e.money);
        if (e.type == EventType::kProductView) {
          out->Put(",\"dwell_seconds\":");
          out->PutInt(e.dwell);
        } else {
          out->Put(",\"quantity\":");
          out->PutInt(mess == kMessNegativeQuantity ? -e.quantity : e.quantity);
        }
        break;
      }
      case EventType::kCheckoutStart:
        out->Put(",\"order_id\":\"");
        PutNumbered(out, 'O', self, e.order);
        out->Put("\",\"currency\":\"");
        out->Put(model_.currency_json);
        out->Put('"');
        put_money(",\"total\":", e.money);
        break;
      case EventType::kSearch:
        out->Put(",\"query\":\"");
        out->Put(model_.queries[static_cast<size_t>(e.query)].json);
        out->Put('"');
        break;
      case EventType::kEmailSend:
      case EventType::kEmailOpen:
      case EventType::kEmailClick:
        out->Put(",\"campaign_id\":\"");
        out->Put(model_.campaigns[static_cast<size_t>(e.campaign)].id);
        out->Put('"');
        break;
      case EventType::kSupportTicket:
        out->Put(",\"ticket_id\":\"");
        PutNumbered(out, 'T', self, e.ticket);
        out->Put("\",\"topic\":\"");
        out->Put(kTicketTopics[e.topic]);
        out->Put('"');
        break;
      case EventType::kReferral:
        out->Put(",\"referee\":\"");
        out->Put(self.email);
        out->Put('"');
        break;
      case EventType::kConsent:
        out->Put(e.marketing == 1 ? ",\"marketing\":true" : ",\"marketing\":false");
        out->Put(",\"topic\":\"newsletter\"");
        break;
      default:
        break;
    }
    out->Put('}');
    if (mess == kMessTruncated) out->Truncate(line_start + (out->size() - line_start) / 2);
    out->Put('\n');
  }

  // One row, or one row per line for orders and returns; returns the rows written.
  uint64_t WriteCsv(const GenEvent& e, const CustomerSynth& synth, const Identity& self,
                    const Identity& subject, int mess, TextBuffer* out) {
    bool has_lines = e.type == EventType::kOrder || e.type == EventType::kReturn;
    uint32_t rows = has_lines ? e.num_lines : 1;
    for (uint32_t r = 0; r < rows; ++r) {
      out->Put(id_);
      out->Put(',');
      out->Put(mess == kMessUnknownType ? std::string_view("pageview_v2") : EventTypeName(e.type));
      out->Put(',');
      if (mess == kMessBadTimestamp) {
        out->Put("31/31/2024 25:61");
      } else if (mess != kMessNoTimestamp) {
        PutTimestamp(out, e.time);
      }
      out->Put(',');
      if (mess == kMessTruncated) {  // a row with too few fields
        out->Put('\n');
        continue;
      }
      bool ids = mess != kMessNoIdentifier;
      if (ids && (e.ids & kIdCustomer)) out->Put(subject.customer_id);
      out->Put(',');
      if (ids && (e.ids & kIdEmail)) out->Put(Email(e, subject));
      out->Put(',');
      if (ids && (e.ids & kIdAnonymous)) out->Put(subject.anonymous[e.anon]);
      out->Put(',');
      if (e.ids & kIdPhone) out->Put(subject.phone);
      out->Put(',');
      if (e.channel != Channel::kUnknown) out->Put(ChannelName(e.channel));
      out->Put(',');
      if (e.device != DeviceClass::kUnknown) out->Put(DeviceClassName(e.device));
      out->Put(',');
      bool money_event = has_lines || e.type == EventType::kCheckoutStart;
      if (money_event) PutNumbered(out, 'O', self, e.order);  // order_id
      out->Put(',');
      if (money_event) out->Put(model_.currency_csv);
      out->Put(',');
      // product_id, category, quantity, unit_price, discount
      if (has_lines) {
        const GenLine& line = synth.lines()[e.first_line + r];
        const Product& p = model_.products[line.product];
        out->Put(p.id);
        out->Put(',');
        out->Put(model_.categories[p.category].csv_name);
        out->Put(',');
        out->PutInt(mess == kMessNegativeQuantity ? -line.quantity : line.quantity);
        out->Put(',');
        out->PutCents(line.unit_cents);
        out->Put(',');
        out->PutCents(line.discount_cents);
        out->Put(',');
      } else if (e.product >= 0 && e.type != EventType::kPageView) {
        const Product& p = model_.products[static_cast<size_t>(e.product)];
        out->Put(p.id);
        out->Put(',');
        out->Put(model_.categories[p.category].csv_name);
        out->Put(',');
        if (e.type != EventType::kProductView) {
          out->PutInt(mess == kMessNegativeQuantity ? -e.quantity : e.quantity);
        }
        out->Put(",,,");
      } else {
        out->Put(",,,,,");
      }
      // total, price, dwell_seconds
      if (money_event) {
        if (mess == kMessNonFinite) {
          out->Put("1e999");
        } else {
          out->PutCents(e.money);
        }
      }
      out->Put(',');
      if (e.type == EventType::kProductView || e.type == EventType::kCartAdd ||
          e.type == EventType::kCartRemove) {
        if (mess == kMessNonFinite) {
          out->Put("1e999");
        } else {
          out->PutCents(e.money);
        }
      }
      out->Put(',');
      if (e.dwell >= 0) {
        if (mess == kMessNonFinite && e.type == EventType::kPageView) {
          out->Put("1e999");
        } else {
          out->PutInt(e.dwell);
        }
      }
      out->Put(',');
      if (e.campaign >= 0) out->Put(model_.campaigns[static_cast<size_t>(e.campaign)].id);
      out->Put(',');
      if (e.session >= 0) PutNumbered(out, 'S', self, e.session);
      out->Put(',');
      if (e.query >= 0) out->Put(model_.queries[static_cast<size_t>(e.query)].csv);
      out->Put(',');
      if (e.type == EventType::kReferral) out->Put(self.email);
      out->Put(',');
      if (e.type == EventType::kSupportTicket) out->Put(kTicketTopics[e.topic]);
      if (e.type == EventType::kConsent) out->Put("newsletter");
      out->Put(',');
      if (e.marketing >= 0) out->Put(e.marketing == 1 ? "true" : "false");
      out->Put('\n');
    }
    return rows;
  }

  const ShopModel& model_;
  std::string id_;
  Identity other_;
};

// Output of one chunk of customers.
struct ChunkOutput {
  TextBuffer jsonl, csv, truth;
  GenerateStats stats;
  void Reset() {
    jsonl.Clear();
    csv.Clear();
    truth.Clear();
    stats = GenerateStats();
    stats.per_segment.assign(kNumShopSegments, 0);
    stats.per_type.assign(static_cast<size_t>(EventType::kNumBuiltin), 0);
  }
};

void Accumulate(const GenerateStats& part, GenerateStats* total) {
  total->customers += part.customers;
  total->events += part.events;
  total->orders += part.orders;
  total->order_lines += part.order_lines;
  total->messy_events += part.messy_events;
  total->csv_rows += part.csv_rows;
  for (size_t k = 0; k < part.per_segment.size(); ++k) total->per_segment[k] += part.per_segment[k];
  for (size_t k = 0; k < part.per_type.size(); ++k) total->per_type[k] += part.per_type[k];
}

// A FILE* owned for the run; Write/Close report IOError naming the path.
class OutFile {
 public:
  ~OutFile() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Status Open(const std::string& path) {
    path_ = path;
    file_ = std::fopen(path.c_str(), "wb");
    if (file_ == nullptr) {
      return Status::IOError("cannot create " + path + ": " + std::strerror(errno));
    }
    return Status::OK();
  }
  bool is_open() const { return file_ != nullptr; }
  Status Write(std::string_view bytes) {
    if (bytes.empty()) return Status::OK();
    if (std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) {
      return Status::IOError("cannot write " + path_ + ": " + std::strerror(errno));
    }
    bytes_ += bytes.size();
    return Status::OK();
  }
  Status Close() {
    FILE* f = file_;
    file_ = nullptr;
    if (f != nullptr && std::fclose(f) != 0) {
      return Status::IOError("cannot close " + path_ + ": " + std::strerror(errno));
    }
    return Status::OK();
  }
  uint64_t bytes() const { return bytes_; }

 private:
  FILE* file_ = nullptr;
  std::string path_;
  uint64_t bytes_ = 0;
};

std::string Readme(const ShopModel& model, const GenerateStats& stats) {
  const GenerateOptions& o = model.options;
  std::string s;
  char buf[256];
  s += "Synthetic shop written by `shoal generate` (docs/generate.md describes the model).\n\n";
  s += "Options\n";
  std::snprintf(buf, sizeof buf, "  customers        %llu\n  seed             %llu\n",
                static_cast<unsigned long long>(o.customers),
                static_cast<unsigned long long>(o.seed));
  s += buf;
  s += "  window           " + o.start_date + " .. " + o.end_date + " (end = the shop's today)\n";
  std::snprintf(buf, sizeof buf,
                "  anonymous_share  %.4g\n  messy_share      %.4g\n  referral_share   %.4g\n"
                "  opt_out_scale    %.4g\n  products         %d per category x %zu categories\n",
                o.anonymous_share, o.messy_share, o.referral_share, o.opt_out_scale,
                o.products_per_category, model.categories.size());
  s += buf;
  s += "  currency         " + o.currency + "\n  segment shares  ";
  for (double share : o.segment_shares) {
    std::snprintf(buf, sizeof buf, " %.4g", share);
    s += buf;
  }
  s += "\n\nCounts\n";
  std::snprintf(buf, sizeof buf,
                "  customers %llu, events %llu (%.1f per customer), orders %llu, order lines %llu,"
                " corrupted events %llu, CSV rows %llu\n",
                static_cast<unsigned long long>(stats.customers),
                static_cast<unsigned long long>(stats.events),
                stats.customers ? static_cast<double>(stats.events) / stats.customers : 0.0,
                static_cast<unsigned long long>(stats.orders),
                static_cast<unsigned long long>(stats.order_lines),
                static_cast<unsigned long long>(stats.messy_events),
                static_cast<unsigned long long>(stats.csv_rows));
  s += buf;
  s += "  per segment:\n";
  for (int k = 0; k < kNumShopSegments; ++k) {
    std::snprintf(buf, sizeof buf, "    %-32s %llu\n", std::string(ShopSegmentNames()[k]).c_str(),
                  static_cast<unsigned long long>(stats.per_segment[static_cast<size_t>(k)]));
    s += buf;
  }
  s += "  per event type:\n";
  for (size_t k = 0; k < stats.per_type.size(); ++k) {
    std::snprintf(buf, sizeof buf, "    %-32s %llu\n",
                  std::string(EventTypeName(static_cast<EventType>(k))).c_str(),
                  static_cast<unsigned long long>(stats.per_type[k]));
    s += buf;
  }
  s += "\nPlanted cross-sell rules (antecedent in a basket -> consequent added with probability "
       "p)\n";
  for (const PlantedAffinity& rule : PlantedAffinities()) {
    std::snprintf(buf, sizeof buf, "  %-20s -> %-20s p=%.2f\n",
                  std::string(rule.antecedent).c_str(), std::string(rule.consequent).c_str(),
                  rule.probability);
    s += buf;
  }
  s += "\nFiles\n"
       "  events.jsonl  one canonical JSON event per line (docs/events.md), grouped by customer\n"
       "  events.csv    the same events as canonical CSV, one row per order/return line\n"
       "  truth.csv     customer_id,segment: the planted segment of every customer\n";
  return s;
}

}  // namespace

Result<GenerateStats> GenerateShop(const GenerateOptions& options, const std::string& out_dir,
                                   const Context& ctx) {
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<ShopModel> model_ptr, BuildShopModel(options));
  const ShopModel& model = *model_ptr;
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Status::IOError("cannot create directory " + out_dir + ": " + ec.message());

  OutFile jsonl_file, csv_file, truth_file;
  if (options.write_jsonl) SHOAL_RETURN_IF_ERROR(jsonl_file.Open(out_dir + "/events.jsonl"));
  if (options.write_csv) {
    SHOAL_RETURN_IF_ERROR(csv_file.Open(out_dir + "/events.csv"));
    SHOAL_RETURN_IF_ERROR(csv_file.Write(kCsvHeader));
  }
  SHOAL_RETURN_IF_ERROR(truth_file.Open(out_dir + "/truth.csv"));
  SHOAL_RETURN_IF_ERROR(truth_file.Write("customer_id,segment\n"));

  GenerateStats total;
  total.per_segment.assign(kNumShopSegments, 0);
  total.per_type.assign(static_cast<size_t>(EventType::kNumBuiltin), 0);

  const int threads = std::max(1, ctx.Threads());
  const uint64_t chunk = options.chunk_customers;
  const uint64_t num_chunks = (options.customers + chunk - 1) / chunk;
  const size_t wave = static_cast<size_t>(2 * threads);
  // Two sets of chunk outputs: workers fill one while two writer threads (JSONL; CSV and
  // truth) drain the other, so file writes (mostly kernel copy time) overlap generation and
  // each other.
  std::vector<ChunkOutput> output_sets[2] = {std::vector<ChunkOutput>(wave),
                                             std::vector<ChunkOutput>(wave)};
  Status jsonl_status, csv_status;
  std::thread jsonl_writer, csv_writer;
  auto join_writers = [&] {
    if (jsonl_writer.joinable()) jsonl_writer.join();
    if (csv_writer.joinable()) csv_writer.join();
  };
  struct JoinOnExit {
    std::function<void()> join;
    ~JoinOnExit() { join(); }
  } join_on_exit{join_writers};
  auto write_jsonl = [&](const std::vector<ChunkOutput>& outputs, size_t count) -> Status {
    for (size_t slot = 0; slot < count; ++slot) {
      SHOAL_RETURN_IF_ERROR(jsonl_file.Write(outputs[slot].jsonl.view()));
    }
    return Status::OK();
  };
  auto write_csv = [&](const std::vector<ChunkOutput>& outputs, size_t count) -> Status {
    for (size_t slot = 0; slot < count; ++slot) {
      if (options.write_csv) SHOAL_RETURN_IF_ERROR(csv_file.Write(outputs[slot].csv.view()));
      SHOAL_RETURN_IF_ERROR(truth_file.Write(outputs[slot].truth.view()));
    }
    return Status::OK();
  };
  std::vector<std::unique_ptr<CustomerSynth>> synths;
  std::vector<std::unique_ptr<EventWriter>> writers;
  for (int t = 0; t < threads; ++t) {
    synths.push_back(std::make_unique<CustomerSynth>(model));
    writers.push_back(std::make_unique<EventWriter>(model));
  }

  size_t wave_idx = 0;
  for (uint64_t wave_start = 0; wave_start < num_chunks; wave_start += wave, ++wave_idx) {
    size_t in_wave = static_cast<size_t>(std::min<uint64_t>(wave, num_chunks - wave_start));
    std::vector<ChunkOutput>& outputs = output_sets[wave_idx % 2];
    ParallelFor(
        in_wave, threads,
        [&](size_t begin, size_t end, int worker) {
          CustomerSynth& synth = *synths[static_cast<size_t>(worker)];
          EventWriter& writer = *writers[static_cast<size_t>(worker)];
          for (size_t slot = begin; slot < end; ++slot) {
            ChunkOutput& out = outputs[slot];
            out.Reset();
            uint64_t first = (wave_start + slot) * chunk;
            uint64_t last = std::min(options.customers, first + chunk);
            for (uint64_t idx = first; idx < last; ++idx) {
              synth.Generate(idx);
              writer.Write(synth, idx, options.write_jsonl ? &out.jsonl : nullptr,
                           options.write_csv ? &out.csv : nullptr, &out.stats);
              ++out.stats.customers;
              ++out.stats.per_segment[static_cast<size_t>(synth.header().segment)];
              out.truth.Put(synth.identity().customer_id);
              out.truth.Put(',');
              out.truth.Put(ShopSegmentNames()[synth.header().segment]);
              out.truth.Put('\n');
            }
          }
        },
        1);
    join_writers();  // the previous wave is on disk: its set is free
    SHOAL_RETURN_IF_ERROR(jsonl_status);
    SHOAL_RETURN_IF_ERROR(csv_status);
    for (size_t slot = 0; slot < in_wave; ++slot) Accumulate(outputs[slot].stats, &total);
    if (options.write_jsonl) {
      jsonl_writer = std::thread([&jsonl_status, &write_jsonl, &outputs, in_wave] {
        jsonl_status = write_jsonl(outputs, in_wave);
      });
    }
    csv_writer = std::thread(
        [&csv_status, &write_csv, &outputs, in_wave] { csv_status = write_csv(outputs, in_wave); });
    if (options.progress) options.progress(total.customers, options.customers);
  }
  join_writers();
  SHOAL_RETURN_IF_ERROR(jsonl_status);
  SHOAL_RETURN_IF_ERROR(csv_status);
  total.jsonl_bytes = jsonl_file.bytes();
  total.csv_bytes = csv_file.bytes();
  SHOAL_RETURN_IF_ERROR(jsonl_file.Close());
  SHOAL_RETURN_IF_ERROR(csv_file.Close());
  SHOAL_RETURN_IF_ERROR(truth_file.Close());

  OutFile readme;
  SHOAL_RETURN_IF_ERROR(readme.Open(out_dir + "/README.txt"));
  SHOAL_RETURN_IF_ERROR(readme.Write(Readme(model, total)));
  SHOAL_RETURN_IF_ERROR(readme.Close());
  return total;
}

}  // namespace shoal
