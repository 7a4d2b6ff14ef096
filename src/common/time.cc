#include "common/time.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace shoal {

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* year, unsigned* month, unsigned* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  *year = y + (m <= 2);
  *month = m;
  *day = d;
}

namespace {

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }
unsigned DaysInMonth(int64_t y, unsigned m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

// Reads between min_digits and max_digits digits at text[*pos].
bool ReadInt(std::string_view text, size_t* pos, int min_digits, int max_digits, int64_t* out) {
  int64_t v = 0;
  int n = 0;
  while (*pos < text.size() && n < max_digits && std::isdigit(static_cast<unsigned char>(text[*pos]))) {
    v = v * 10 + (text[*pos] - '0');
    ++*pos;
    ++n;
  }
  if (n < min_digits) return false;
  *out = v;
  return true;
}

// Reads ".123456" (any number of digits, first 6 kept) as microseconds.
bool ReadFraction(std::string_view text, size_t* pos, int64_t* micros) {
  int64_t v = 0;
  int n = 0;
  while (*pos < text.size() && std::isdigit(static_cast<unsigned char>(text[*pos]))) {
    if (n < 6) v = v * 10 + (text[*pos] - '0');
    ++n;
    ++*pos;
  }
  if (n == 0) return false;
  for (int k = n; k < 6; ++k) v *= 10;
  *micros = v;
  return true;
}

// Reads "Z", "+HH:MM", "+HHMM" or "+HH" into seconds east of UTC.
bool ReadOffset(std::string_view text, size_t* pos, int64_t* offset_seconds) {
  if (*pos >= text.size()) return false;
  char c = text[*pos];
  if (c == 'Z' || c == 'z') {
    ++*pos;
    *offset_seconds = 0;
    return true;
  }
  if (c != '+' && c != '-') return false;
  ++*pos;
  int64_t hh = 0, mm = 0;
  if (!ReadInt(text, pos, 2, 2, &hh)) return false;
  if (*pos < text.size() && text[*pos] == ':') ++*pos;
  if (*pos < text.size() && std::isdigit(static_cast<unsigned char>(text[*pos]))) {
    if (!ReadInt(text, pos, 2, 2, &mm)) return false;
  }
  if (hh > 23 || mm > 59) return false;
  *offset_seconds = (c == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

Status BadTime(std::string_view text, std::string_view expected) {
  std::string shown(text.substr(0, 64));
  return Status::ParseError("cannot parse timestamp '" + shown + "' as " + std::string(expected));
}

Result<TimeMicros> Compose(std::string_view text, std::string_view what, int64_t y, int64_t mo,
                           int64_t d, int64_t h, int64_t mi, int64_t s, int64_t frac,
                           int64_t offset_seconds) {
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, static_cast<unsigned>(mo)) || h > 24 ||
      mi > 59 || s > 60 || (h == 24 && (mi || s || frac))) {
    return BadTime(text, std::string(what) + " (field out of range)");
  }
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  int64_t secs = days * 86400 + h * 3600 + mi * 60 + s - offset_seconds;
  return secs * kMicrosPerSecond + frac;
}

}  // namespace

Result<TimeMicros> ParseIso8601(std::string_view raw) {
  std::string_view text = Trim(raw);
  size_t pos = 0;
  int64_t y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, frac = 0, off = 0;
  if (!ReadInt(text, &pos, 4, 4, &y) || pos >= text.size() || text[pos] != '-') {
    return BadTime(raw, "ISO-8601");
  }
  ++pos;
  if (!ReadInt(text, &pos, 2, 2, &mo) || pos >= text.size() || text[pos] != '-') {
    return BadTime(raw, "ISO-8601");
  }
  ++pos;
  if (!ReadInt(text, &pos, 2, 2, &d)) return BadTime(raw, "ISO-8601");
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == 't' || text[pos] == ' ')) {
    ++pos;
    if (!ReadInt(text, &pos, 2, 2, &h) || pos >= text.size() || text[pos] != ':') {
      return BadTime(raw, "ISO-8601");
    }
    ++pos;
    if (!ReadInt(text, &pos, 2, 2, &mi)) return BadTime(raw, "ISO-8601");
    if (pos < text.size() && text[pos] == ':') {
      ++pos;
      if (!ReadInt(text, &pos, 2, 2, &s)) return BadTime(raw, "ISO-8601");
      if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
        ++pos;
        if (!ReadFraction(text, &pos, &frac)) return BadTime(raw, "ISO-8601");
      }
    }
    if (pos < text.size() && !ReadOffset(text, &pos, &off)) return BadTime(raw, "ISO-8601");
  }
  if (pos != text.size()) return BadTime(raw, "ISO-8601");
  return Compose(raw, "ISO-8601", y, mo, d, h, mi, s, frac, off);
}

Result<TimeMicros> ParseEpoch(std::string_view raw, bool millis) {
  std::string_view text = Trim(raw);
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || !std::isfinite(v)) {
    return BadTime(raw, millis ? "epoch milliseconds" : "epoch seconds");
  }
  double micros = millis ? v * 1e3 : v * 1e6;
  if (std::fabs(micros) > 9.0e18) return BadTime(raw, "epoch (out of range)");
  return static_cast<TimeMicros>(std::llround(micros));
}

Result<TimeMicros> ParseTimeFormat(std::string_view raw, std::string_view format) {
  std::string_view text = Trim(raw);
  size_t pos = 0;
  int64_t y = 1970, mo = 1, d = 1, h = 0, mi = 0, s = 0, frac = 0, off = 0;
  int pm = -1;  // -1 unset, 0 AM, 1 PM
  for (size_t fi = 0; fi < format.size(); ++fi) {
    char fc = format[fi];
    if (fc != '%') {
      if (fc == ' ') {  // a space in the format matches any run of spaces (or none at the end)
        while (pos < text.size() && text[pos] == ' ') ++pos;
        continue;
      }
      if (pos >= text.size() || text[pos] != fc) return BadTime(raw, format);
      ++pos;
      continue;
    }
    if (++fi >= format.size()) return Status::InvalidArgument("time format ends with '%'");
    bool ok = true;
    switch (format[fi]) {
      case 'Y': ok = ReadInt(text, &pos, 4, 4, &y); break;
      case 'y': {
        ok = ReadInt(text, &pos, 2, 2, &y);
        y += y < 69 ? 2000 : 1900;
        break;
      }
      case 'm': ok = ReadInt(text, &pos, 1, 2, &mo); break;
      case 'd': ok = ReadInt(text, &pos, 1, 2, &d); break;
      case 'H': ok = ReadInt(text, &pos, 1, 2, &h); break;
      case 'I': ok = ReadInt(text, &pos, 1, 2, &h) && h >= 1 && h <= 12; break;
      case 'M': ok = ReadInt(text, &pos, 1, 2, &mi); break;
      case 'S': ok = ReadInt(text, &pos, 1, 2, &s); break;
      case 'f': ok = ReadFraction(text, &pos, &frac); break;
      case 'z': ok = ReadOffset(text, &pos, &off); break;
      case 'p': {
        if (pos + 2 > text.size()) { ok = false; break; }
        char a = static_cast<char>(std::toupper(static_cast<unsigned char>(text[pos])));
        char b = static_cast<char>(std::toupper(static_cast<unsigned char>(text[pos + 1])));
        ok = b == 'M' && (a == 'A' || a == 'P');
        pm = a == 'P';
        pos += 2;
        break;
      }
      case 'b': {
        static const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                        "jul", "aug", "sep", "oct", "nov", "dec"};
        ok = false;
        if (pos + 3 <= text.size()) {
          for (int k = 0; k < 12; ++k) {
            bool match = true;
            for (int c = 0; c < 3; ++c) {
              if (std::tolower(static_cast<unsigned char>(text[pos + c])) != kMonths[k][c]) match = false;
            }
            if (match) { mo = k + 1; ok = true; pos += 3; break; }
          }
        }
        break;
      }
      case '%': ok = pos < text.size() && text[pos++] == '%'; break;
      default:
        return Status::InvalidArgument("unsupported time format directive %" +
                                       std::string(1, format[fi]) + " in '" + std::string(format) + "'");
    }
    if (!ok) return BadTime(raw, format);
  }
  if (pos != text.size()) return BadTime(raw, format);
  if (pm == 1 && h < 12) h += 12;
  if (pm == 0 && h == 12) h = 0;
  return Compose(raw, format, y, mo, d, h, mi, s, frac, off);
}

Result<TimeParser> TimeParser::Make(std::string_view format) {
  TimeParser p;
  p.format_ = std::string(format);
  if (format.empty() || format == "auto") p.kind_ = Kind::kAuto;
  else if (format == "iso" || format == "iso8601") p.kind_ = Kind::kIso;
  else if (format == "epoch_s" || format == "epoch" || format == "unix") p.kind_ = Kind::kEpochS;
  else if (format == "epoch_ms" || format == "unix_ms") p.kind_ = Kind::kEpochMs;
  else if (format.find('%') != std::string_view::npos) {
    p.kind_ = Kind::kPattern;
    auto probe = ParseTimeFormat("", format);  // surfaces unsupported directives now
    if (!probe.ok() && probe.status().code() == Status::Code::kInvalidArgument) return probe.status();
  } else {
    return Status::InvalidArgument("unknown timestamp format '" + std::string(format) +
                                   "': use iso, epoch_s, epoch_ms, auto or a %-pattern like %Y%m%d");
  }
  return p;
}

Result<TimeMicros> TimeParser::Parse(std::string_view text) const {
  switch (kind_) {
    case Kind::kIso: return ParseIso8601(text);
    case Kind::kEpochS: return ParseEpoch(text, false);
    case Kind::kEpochMs: return ParseEpoch(text, true);
    case Kind::kPattern: return ParseTimeFormat(text, format_);
    case Kind::kAuto: {
      std::string_view t = Trim(text);
      if (t.size() >= 10 && t[4] == '-') return ParseIso8601(t);
      bool numeric = !t.empty();
      for (char c : t) {
        if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != '-') numeric = false;
      }
      if (!numeric) return BadTime(text, "a timestamp (ISO-8601 or epoch)");
      if (t.size() == 8 && t.find('.') == std::string_view::npos) {
        return ParseTimeFormat(t, "%Y%m%d");  // 19970101: a date, not an epoch
      }
      auto v = ParseEpoch(t, false);
      if (!v.ok()) return v;
      // Above year ~2286 in seconds means the number is in milliseconds.
      if (*v > 10'000'000'000LL * kMicrosPerSecond) return ParseEpoch(t, true);
      return v;
    }
  }
  return BadTime(text, "a timestamp");
}

std::string FormatIso8601(TimeMicros t) {
  int64_t days = DayOf(t);
  int64_t rem = t - days * kMicrosPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  int64_t secs = rem / kMicrosPerSecond, frac = rem % kMicrosPerSecond;
  char buf[64];
  if (frac) {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ",
                  static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60),
                  static_cast<long long>(frac));
  } else {
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                  static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                  static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  }
  return buf;
}

std::string FormatDate(TimeMicros t) {
  int64_t y;
  unsigned m, d;
  CivilFromDays(DayOf(t), &y, &m, &d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return buf;
}

}  // namespace shoal
