// Minimal JSON text building: escaping and number formatting shared by the CLI, exports and
// the server. Numbers use the shortest round-trip form; NaN and infinities become null.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>

namespace shoal {

inline void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  size_t plain = 0;  // start of the run of characters that need no escape, appended at once
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out->append(buf);
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

// Shortest representation that reads back to the same double; "null" for NaN/inf.
inline void AppendJsonNumber(std::string* out, double v) {
  if (!std::isfinite(v)) { out->append("null"); return; }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, end);
}

// For CSV cells: shortest form, empty for NaN.
inline void AppendCsvNumber(std::string* out, double v) {
  if (std::isnan(v)) return;
  if (std::isinf(v)) { out->append(v > 0 ? "inf" : "-inf"); return; }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, end);
}

// A CSV cell, quoted when it holds a comma, quote or line break (RFC 4180).
inline void AppendCsvText(std::string* out, std::string_view s) {
  if (s.find_first_of(",\"\r\n") == std::string_view::npos) { out->append(s); return; }
  out->push_back('"');
  for (char c : s) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

}  // namespace shoal
