// Civil time <-> TimeMicros (microseconds since the Unix epoch, UTC), and timestamp parsing for
// the formats real exports use. No locale, no time-zone database: offsets are explicit.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/context.h"
#include "common/status.h"

namespace shoal {

constexpr TimeMicros kMicrosPerSecond = 1'000'000;
constexpr TimeMicros kMicrosPerDay = 86'400LL * kMicrosPerSecond;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);
// Inverse of DaysFromCivil.
void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day);

// Floor division of a time to whole days since the epoch (negative times round down).
inline int64_t DayOf(TimeMicros t) {
  return t >= 0 ? t / kMicrosPerDay : -((-t + kMicrosPerDay - 1) / kMicrosPerDay);
}

// Parses ISO-8601: "2024-03-05", "2024-03-05T14:23:11", with optional fraction, "Z" or
// "+HH:MM"/"+HHMM"/"+HH" offset, and ' ' allowed instead of 'T'. No offset means UTC.
Result<TimeMicros> ParseIso8601(std::string_view text);

// Parses an epoch number: seconds, or milliseconds when `millis`; fractions allowed.
Result<TimeMicros> ParseEpoch(std::string_view text, bool millis);

// Parses `text` against a strptime-like `format`. Supported: %Y %m %d %H %M %S (1 or 2 digits
// accepted where the field allows, so "12/1/2010 8:26" matches "%m/%d/%Y %H:%M"), %y (2-digit,
// 1969-2068), %f (fraction), %z (+HH:MM, +HHMM, Z), %b (Jan..Dec), %p (AM/PM with %I), %I, %j
// is not supported. Literal characters must match; trailing whitespace is ignored.
Result<TimeMicros> ParseTimeFormat(std::string_view text, std::string_view format);

// A timestamp parser chosen once from a format name and reused per value:
// "iso" (ISO-8601), "epoch_s", "epoch_ms", "auto" (ISO, else epoch seconds/milliseconds by
// magnitude), or a strptime-like pattern containing '%'.
class TimeParser {
 public:
  static Result<TimeParser> Make(std::string_view format);
  Result<TimeMicros> Parse(std::string_view text) const;
  const std::string& format() const { return format_; }

 private:
  enum class Kind { kIso, kEpochS, kEpochMs, kAuto, kPattern };
  Kind kind_ = Kind::kAuto;
  std::string format_;
};

// "2024-03-05T14:23:11Z" (fractions shown only when non-zero).
std::string FormatIso8601(TimeMicros t);
// "2024-03-05".
std::string FormatDate(TimeMicros t);

// Wall-clock seconds since `start` (steady clock), for stage timings.
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace shoal
