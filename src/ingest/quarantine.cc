#include "ingest/quarantine.h"

#include <cerrno>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace shoal {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2; cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3; cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4; cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

// The kind of a reason: its text before the first quote, without trailing spaces/colons, and
// with each number written as N ("negative quantity -3 on an order line" and "... -2 ..." are
// one kind), so the summary has a line per kind, not per value.
std::string ReasonKind(std::string_view reason) {
  size_t q = reason.find('\'');
  std::string_view text = reason.substr(0, q);
  while (!text.empty() && (text.back() == ' ' || text.back() == ':')) text.remove_suffix(1);
  if (text.empty()) text = reason;
  std::string kind;
  kind.reserve(text.size());
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t pos = 0; pos < text.size();) {
    const bool sign = (text[pos] == '-' || text[pos] == '+') && pos + 1 < text.size() &&
                      is_digit(text[pos + 1]) && (pos == 0 || text[pos - 1] == ' ');
    if (sign || is_digit(text[pos])) {
      pos += sign ? 2 : 1;
      while (pos < text.size() && (is_digit(text[pos]) || text[pos] == '.')) ++pos;
      kind.push_back('N');
      continue;
    }
    kind.push_back(text[pos++]);
  }
  return kind;
}

constexpr size_t kFlushBytes = 64 * 1024;

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Fast path over ASCII, 16 then 8 bytes at a time.
#if defined(__SSE2__)
    while (i + 16 <= s.size()) {
      __m128i block = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
      if (_mm_movemask_epi8(block) != 0) break;
      i += 16;
    }
#endif
    while (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void AppendJsonEscaped(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = Utf8SequenceLength(s, i);
      if (n == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
}

Result<std::unique_ptr<Quarantine>> Quarantine::Open(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (f == nullptr) {
    return Status::IOError("cannot open quarantine file '" + path + "': " + std::strerror(errno));
  }
  auto q = std::make_unique<Quarantine>();
  q->path_ = path;
  q->file_ = f;
  return q;
}

Quarantine::~Quarantine() {
  if (file_ != nullptr) {
    (void)Flush();
    std::fclose(file_);
  }
}

void Quarantine::Add(std::string_view source, uint64_t line, std::string_view field,
                     std::string_view reason, std::string_view raw) {
  std::lock_guard<std::mutex> lock(mu_);
  ++total_;
  std::string kind = ReasonKind(reason);
  auto it = counts_.find(kind);
  if (it == counts_.end()) it = counts_.emplace(std::move(kind), 0).first;
  ++it->second;
  if (file_ == nullptr) return;
  bool truncated = raw.size() > kMaxRawBytes;
  if (truncated) raw = raw.substr(0, kMaxRawBytes);
  buffer_.append("{\"source\":\"");
  AppendJsonEscaped(source, &buffer_);
  buffer_.append("\",\"line\":");
  buffer_.append(std::to_string(line));
  buffer_.append(",\"field\":\"");
  AppendJsonEscaped(field, &buffer_);
  buffer_.append("\",\"reason\":\"");
  AppendJsonEscaped(reason, &buffer_);
  buffer_.append("\",\"raw\":\"");
  AppendJsonEscaped(raw, &buffer_);
  buffer_.append(truncated ? "\",\"raw_truncated\":true}\n" : "\"}\n");
  if (buffer_.size() >= kFlushBytes) {
    if (std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size() &&
        write_status_.ok()) {
      write_status_ = Status::IOError("cannot write quarantine file '" + path_ + "'");
    }
    buffer_.clear();
  }
}

Status Quarantine::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_ != nullptr) {
    if (!buffer_.empty() &&
        std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size() &&
        write_status_.ok()) {
      write_status_ = Status::IOError("cannot write quarantine file '" + path_ + "'");
    }
    buffer_.clear();
    if (std::fflush(file_) != 0 && write_status_.ok()) {
      write_status_ = Status::IOError("cannot write quarantine file '" + path_ + "'");
    }
  }
  return write_status_;
}

uint64_t Quarantine::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

std::vector<std::pair<std::string, uint64_t>> Quarantine::CountsByReason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {counts_.begin(), counts_.end()};
}

std::string Quarantine::Summary() const {
  auto counts = CountsByReason();
  uint64_t n = total();
  if (n == 0) return "";
  std::string out = std::to_string(n) + (n == 1 ? " record" : " records") + " quarantined";
  if (!path_.empty()) out += " (" + path_ + ")";
  out += ":";
  bool first = true;
  for (const auto& [kind, count] : counts) {
    out += first ? " " : ", ";
    out += std::to_string(count) + " " + kind;
    first = false;
  }
  return out;
}

}  // namespace shoal
