#include "ingest/reader_support.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>

namespace shoal::ingest_internal {

// ---- InputBuffer --------------------------------------------------------------------------------

Result<std::unique_ptr<InputBuffer>> InputBuffer::Open(const std::string& path,
                                                       size_t max_record_bytes) {
  auto in = std::unique_ptr<InputBuffer>(new InputBuffer());
  in->path_ = path;
  if (path == "-") {
    in->fd_ = STDIN_FILENO;
  } else {
    in->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (in->fd_ < 0) {
      return Status::IOError("cannot open '" + path + "': " + std::strerror(errno));
    }
    in->own_fd_ = true;
    struct stat st;
    if (::fstat(in->fd_, &st) == 0) {
      if (S_ISDIR(st.st_mode)) return Status::IOError("cannot read '" + path + "': is a directory");
      if (S_ISREG(st.st_mode)) {
        in->bytes_total_ = static_cast<uint64_t>(st.st_size);
        in->read_ahead_ = true;
        ::posix_fadvise(in->fd_, 0, 0, POSIX_FADV_SEQUENTIAL);  // advice only: failure is harmless
      }
    }
  }
  in->max_record_ = std::max<size_t>(max_record_bytes, 16);
  in->cap_ = std::max<size_t>(size_t{4} << 20, 2 * in->max_record_ + (64 << 10));
  in->buf_.reset(new char[in->cap_ + kPadding]);
  std::memset(in->buf_.get() + in->cap_, ' ', kPadding);
  // Read the first chunk now so an unreadable source fails at Open.
  SHOAL_RETURN_IF_ERROR(in->Refill());
  return in;
}

InputBuffer::~InputBuffer() {
  if (own_fd_ && fd_ >= 0) ::close(fd_);
}

Status InputBuffer::Refill() {
  if (pos_ > 0) {
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (read_ahead_ && bytes_read_ >= next_read_ahead_) {
    ::posix_fadvise(fd_, static_cast<off_t>(bytes_read_), static_cast<off_t>(kReadAhead), POSIX_FADV_WILLNEED);
    next_read_ahead_ = bytes_read_ + kReadAhead / 2;
  }
  while (!eof_ && end_ < cap_) {
    // At most 256 KiB a read: the front of the buffer is refilled again and again and stays
    // in the cache, where 4 MiB reads made the kernel's copy and the parse miss on every line.
    ssize_t n = ::read(fd_, buf_.get() + end_, std::min(cap_ - end_, kReadChunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("cannot read '" + path_ + "': " + std::strerror(errno));
    }
    if (n == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<size_t>(n);
    bytes_read_ += static_cast<uint64_t>(n);
    break;  // one read per refill is enough; the caller asks again when it needs more
  }
  if (!started_ && (end_ >= 3 || eof_)) {
    started_ = true;
    if (end_ >= 3 && std::memcmp(buf_.get(), "\xEF\xBB\xBF", 3) == 0) {
      pos_ = 3;
      bytes_consumed_ += 3;
    }
  }
  // Keep the bytes after the data readable and harmless for in-place parsing.
  std::memset(buf_.get() + end_, ' ', std::min(kPadding, cap_ + kPadding - end_));
  return Status::OK();
}

size_t InputBuffer::FindQuotedEnd(char quote, char delimiter, bool* open_quote) const {
  const char* data = buf_.get();
  bool in_quotes = false;
  bool field_start = true;
  for (size_t i = pos_; i < end_; ++i) {
    char c = data[i];
    if (in_quotes) {
      if (c == quote) {
        if (i + 1 >= end_) {
          if (!eof_) {
            *open_quote = true;  // cannot tell "" from a closing quote yet
            return std::string::npos;
          }
          in_quotes = false;
        } else if (data[i + 1] == quote) {
          ++i;
        } else {
          in_quotes = false;
        }
      }
      continue;
    }
    if (c == '\n') {
      *open_quote = false;
      return i;
    }
    if (c == quote && field_start) {
      in_quotes = true;
      field_start = false;
      continue;
    }
    field_start = c == delimiter;
  }
  *open_quote = in_quotes;
  return std::string::npos;
}

Result<bool> InputBuffer::NextRecord(Record* rec, char quote, char delimiter) {
  while (true) {
    const char* data = buf_.get();
    size_t avail = end_ - pos_;
    const char* nl_ptr = avail == 0 ? nullptr
                                    : static_cast<const char*>(std::memchr(data + pos_, '\n', avail));
    size_t nl = nl_ptr == nullptr ? std::string::npos : static_cast<size_t>(nl_ptr - data);
    size_t end = nl;
    bool open_quote = false;
    bool quoted_scan = false;
    size_t scan_limit = nl == std::string::npos ? end_ : nl;  // bytes checked for quotes
    if (quote != 0) {
      size_t scan_end = scan_limit;
      if (std::memchr(data + pos_, quote, scan_end - pos_) != nullptr) {
        quoted_scan = true;
        end = FindQuotedEnd(quote, delimiter, &open_quote);
      }
    }
    auto emit = [&](size_t stop, Record::Kind kind) {
      size_t len = stop - pos_;
      std::string_view text(data + pos_, len);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      rec->line = line_;
      rec->full_size = len;
      rec->kind = kind;
      rec->has_quote = quote == 0 || quoted_scan || stop > scan_limit;
      if (kind == Record::Kind::kOk && len > max_record_) {
        rec->kind = Record::Kind::kTooLong;
        text = text.substr(0, kRawPrefix);
      }
      rec->text = text;
      // Count the newlines inside quoted records so line numbers stay right.
      if (quoted_scan && kind == Record::Kind::kOk) {
        line_ += static_cast<uint64_t>(std::count(data + pos_, data + stop, '\n'));
      }
      size_t consumed = stop < end_ ? len + 1 : len;
      if (stop < end_) ++line_;
      pos_ += consumed;
      bytes_consumed_ += consumed;
    };
    if (end != std::string::npos) {
      emit(end, Record::Kind::kOk);
      return true;
    }
    if (open_quote && nl != std::string::npos && (eof_ || avail > max_record_)) {
      // A quote that never closes: give up on this physical line only.
      emit(nl, Record::Kind::kUnterminatedQuote);
      return true;
    }
    if (eof_) {
      if (avail == 0) return false;
      emit(end_, open_quote ? Record::Kind::kUnterminatedQuote : Record::Kind::kOk);
      return true;
    }
    if (avail > max_record_) {
      // Too long: keep its first KiB, then skip to the next newline without buffering it.
      long_prefix_.assign(data + pos_, std::min(avail, kRawPrefix));
      uint64_t start_line = line_;
      size_t length = 0;
      while (true) {
        const char* p = end_ > pos_ ? static_cast<const char*>(
                                          std::memchr(buf_.get() + pos_, '\n', end_ - pos_))
                                    : nullptr;
        if (p != nullptr) {
          size_t stop = static_cast<size_t>(p - buf_.get());
          length += stop - pos_;
          bytes_consumed_ += stop - pos_ + 1;
          pos_ = stop + 1;
          ++line_;
          break;
        }
        length += end_ - pos_;
        bytes_consumed_ += end_ - pos_;
        pos_ = end_;
        if (eof_) break;
        SHOAL_RETURN_IF_ERROR(Refill());
      }
      rec->text = long_prefix_;
      rec->line = start_line;
      rec->kind = Record::Kind::kTooLong;
      rec->full_size = length;
      return true;
    }
    SHOAL_RETURN_IF_ERROR(Refill());
  }
}

// ---- DuplicateCounter ---------------------------------------------------------------------------

uint32_t DuplicateCounter::Count(uint64_t hash) {
  if (hash == 0) hash = 1;  // 0 marks an empty slot
  if ((size_ + 1) * 2 > keys_.size()) Grow();
  size_t mask = keys_.size() - 1;
  size_t slot = static_cast<size_t>(hash * 0x9E3779B97F4A7C15ULL >> 20) & mask;
  while (true) {
    if (keys_[slot] == hash) return counts_[slot]++;
    if (keys_[slot] == 0) {
      keys_[slot] = hash;
      counts_[slot] = 1;
      ++size_;
      return 0;
    }
    slot = (slot + 1) & mask;
  }
}

void DuplicateCounter::Grow() {
  size_t new_size = keys_.empty() ? 1024 : keys_.size() * 2;
  std::vector<uint64_t> old_keys(new_size, 0);
  std::vector<uint32_t> old_counts(new_size, 0);
  old_keys.swap(keys_);
  old_counts.swap(counts_);
  size_t mask = new_size - 1;
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (old_keys[i] == 0) continue;
    size_t slot = static_cast<size_t>(old_keys[i] * 0x9E3779B97F4A7C15ULL >> 20) & mask;
    while (keys_[slot] != 0) slot = (slot + 1) & mask;
    keys_[slot] = old_keys[i];
    counts_[slot] = old_counts[i];
  }
}

void FormatDerivedId(std::string_view tag, uint64_t hash, uint32_t k, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->assign(tag);
  out->push_back(':');
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kHex[(hash >> shift) & 15]);
  out->push_back(':');
  char buf[16];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), k);
  out->append(buf, ptr);
}

// ---- TypeResolver, CachedTimeParser -------------------------------------------------------------

std::optional<uint16_t> TypeResolver::Find(std::string_view name) {
  if (last_hit_ < cache_.size() && cache_[last_hit_].name == name) return cache_[last_hit_].code;
  for (size_t i = 0; i < cache_.size(); ++i) {
    if (cache_[i].name == name) {
      last_hit_ = i;
      return cache_[i].code;
    }
  }
  std::optional<uint16_t> code = registry_.Find(name);
  if (!code) {
    std::string lower(name);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view trimmed = lower;
    while (!trimmed.empty() && trimmed.back() == ' ') trimmed.remove_suffix(1);
    while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
    code = registry_.Find(trimmed);
  }
  if (!code) return std::nullopt;
  constexpr size_t kCacheSize = 16;
  if (cache_.size() < kCacheSize) {
    cache_.push_back({std::string(name), *code});
  } else {
    cache_[next_] = {std::string(name), *code};
    next_ = (next_ + 1) % kCacheSize;
  }
  return code;
}

Result<TimeMicros> CachedTimeParser::Parse(std::string_view text) {
  if (has_last_ && text == last_text_) return last_value_;
  auto t = parser_.Parse(text);
  if (t.ok()) {
    last_text_.assign(text);
    last_value_ = *t;
    has_last_ = true;
  }
  return t;
}

// ---- Event checks -------------------------------------------------------------------------------

std::string_view NormalizeEmail(std::string_view email, std::string* scratch) {
  size_t b = 0, e = email.size();
  while (b < e && std::isspace(static_cast<unsigned char>(email[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(email[e - 1]))) --e;
  email = email.substr(b, e - b);
  bool has_upper = false;
  for (char c : email) has_upper |= (c >= 'A' && c <= 'Z');
  if (!has_upper) return email;
  scratch->assign(email);
  for (char& c : *scratch) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return *scratch;
}

std::string_view NumberToText(double value, char (&buf)[64]) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 9.0e15) {
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(value));
    return std::string_view(buf, static_cast<size_t>(ptr - buf));
  }
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string_view(buf, static_cast<size_t>(ptr - buf));
}

bool FinishEvent(const EventTypeRegistry& registry, EventBatch* batch, Event* e, Problem* problem) {
  bool is_order = e->Is(EventType::kOrder);
  bool is_return = e->Is(EventType::kReturn);
  if (e->customer_id.empty() && e->email.empty() && e->anonymous_id.empty() && !is_order) {
    problem->field = "customer_id";
    problem->reason = "no identifier (customer_id, email or anonymous_id)";
    return false;
  }
  if ((e->Is(EventType::kCartAdd) || e->Is(EventType::kCartRemove)) && e->quantity < 0) {
    problem->field = "quantity";
    char buf[64];
    problem->reason = "negative quantity " + std::string(NumberToText(e->quantity, buf)) +
                      " on a cart event";
    return false;
  }
  if (e->Is(EventType::kConsent) && e->consent < 0) {
    problem->field = "marketing";
    problem->reason = "consent without a 'marketing' value (true/opt_in or false/opt_out)";
    return false;
  }
  if (is_order || is_return) {
    double sum = 0;
    bool priced = e->num_lines > 0;
    for (uint32_t i = 0; i < e->num_lines; ++i) {
      const OrderLine& l = batch->lines[e->first_line + i];
      if (!(l.quantity >= 0)) {
        problem->field = "lines[" + std::to_string(i) + "].quantity";
        char buf[64];
        problem->reason = "negative quantity " + std::string(NumberToText(l.quantity, buf)) +
                          " on an order line";
        return false;
      }
      if (std::isnan(l.unit_price)) {
        priced = false;
      } else {
        sum += l.quantity * l.unit_price - (std::isnan(l.discount) ? 0.0 : l.discount);
      }
    }
    if (std::isnan(e->total) && priced) {
      e->total = sum - (std::isnan(e->discount) ? 0.0 : e->discount);
    }
  }
  if (!e->IsBuiltin()) {
    if (const auto* custom = registry.Custom(e->type)) {
      for (const std::string& name : custom->numeric_properties) {
        for (uint32_t i = 0; i < e->num_props; ++i) {
          EventProperty& p = batch->props[e->first_prop + i];
          if (p.name != name || p.is_number) continue;
          double v = 0;
          std::string_view t = p.text;
          while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
          while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
          auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
          if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || !std::isfinite(v)) {
            problem->field = name;
            problem->reason = "property '" + name + "' of '" + custom->name +
                              "' must be a number, got '" + std::string(p.text.substr(0, 64)) + "'";
            return false;
          }
          p.number = v;
          p.is_number = true;
          p.text = {};
        }
      }
    }
  }
  return true;
}

}  // namespace shoal::ingest_internal
