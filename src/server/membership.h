// MembershipSource: what a profile belongs to right now -- segments, audiences, RFM cells,
// model-score bands -- as strings "<kind>:<name>" ("segment:premium trend explorers",
// "audience:winback", "rfm:Champions"). The server diffs them after every event and at the
// moments NextChange names, turning each difference into an entered/exited record.
//
// The built-in TraitThresholdSource reads single trait comparisons from the workspace TOML; the
// full rule language, segments, RFM and scores plug in through the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/context.h"
#include "common/status.h"

namespace toml { inline namespace v3 { class table; } }

namespace shoal {

class Engine;

class MembershipSource {
 public:
  virtual ~MembershipSource();
  // Every membership `profile` (an alive profile slot) holds at `now`, sorted, no duplicates.
  // Must not modify the engine. Every method may be called from several threads at once (the
  // apply leader and its workers with the lock released, lookups under the shared lock), never
  // while the engine is being modified: implementations are thread-safe for concurrent calls.
  virtual std::vector<std::string> Memberships(const Engine& engine, uint32_t profile,
                                               TimeMicros now) const = 0;
  // The earliest time > now at which this profile's memberships may change with no new event
  // (a trait crossing a threshold as time passes), or nullopt if they cannot. Earlier than the
  // real change is allowed (the server re-evaluates and finds nothing); later is a bug.
  virtual std::optional<TimeMicros> NextChange(const Engine& engine, uint32_t profile,
                                               TimeMicros now) const = 0;
  // Every membership name this source can produce whose members can be listed (for
  // GET /v1/segments), e.g. "audience:winback". May be empty.
  virtual std::vector<std::string> Definitions() const = 0;
  // Memberships(...) into *memberships and NextChange(...) of one profile in one call (what the
  // server does after every event); the default calls the two, a source that computes traits
  // overrides it to compute them once.
  virtual std::optional<TimeMicros> MembershipsAndNextChange(
      const Engine& engine, uint32_t profile, TimeMicros now,
      std::vector<std::string>* memberships) const;
  // Appends ,"key":value members describing the profile's live scores to a profile's JSON
  // object (GET /v1/profiles/{id}); nothing by default. Called with the engine locked (shared).
  virtual void AppendProfileJson(const Engine& engine, uint32_t profile, TimeMicros now,
                                 std::string* out) const;
};

// One audience of the built-in source: `trait op value`.
struct TraitThreshold {
  enum class Op { kLess, kLessEqual, kGreater, kGreaterEqual, kEqual, kNotEqual };
  std::string audience;  // membership "audience:<audience>"
  std::string trait;     // a trait of the engine's catalogue
  Op op = Op::kGreater;
  double value = 0;
};

// Audiences defined by one comparison of a trait with a number. NaN traits never match.
// NextChange is exact for the traits that grow with time alone (recency_days,
// days_since_last_event, tenure_days, first_order_days_ago: the crossing moment) and the next
// UTC midnight for day-windowed traits (orders_30d, cart_abandonment_count, user traits ...);
// count and sum traits never change without an event.
class TraitThresholdSource final : public MembershipSource {
 public:
  // InvalidArgument naming the audience when a trait is not in `catalogue_traits`.
  static Result<std::unique_ptr<TraitThresholdSource>> Make(
      std::vector<TraitThreshold> audiences, const std::vector<std::string>& catalogue_traits);

  std::vector<std::string> Memberships(const Engine& engine, uint32_t profile,
                                       TimeMicros now) const override;
  std::optional<TimeMicros> NextChange(const Engine& engine, uint32_t profile,
                                       TimeMicros now) const override;
  std::vector<std::string> Definitions() const override;

 private:
  struct Bound {
    TraitThreshold spec;
    int trait_idx = -1;
    std::string membership;
    enum class Clock { kNone, kSinceLastOrder, kSinceLastEvent, kSinceFirstEvent,
                       kSinceFirstOrder, kMidnight } clock = Clock::kNone;
    // Traits read straight from the state (the catalogue's definitions, tested equal), so the
    // writer does not compute every trait of every touched profile.
    enum class Direct { kNone, kRecencyDays, kDaysSinceLastEvent, kTenureDays,
                        kFirstOrderDaysAgo, kFrequency, kMonetaryTotal, kEventsTotal,
                        kConsentMarketing } direct = Direct::kNone;
  };
  std::vector<Bound> audiences_;
  bool all_direct_ = true;
};

// Reads [[audiences]] tables of the workspace TOML whose rule is one comparison:
//   [[audiences]]  name = "lapsed"  rule = "days_since_last_event > 30"
// (or the keys trait / op / value). ParseError naming the audience for any other rule shape.
Result<std::vector<TraitThreshold>> ParseTraitThresholds(const toml::table& root);

// Parses "trait op number" (op one of < <= > >= == !=).
Result<TraitThreshold> ParseThresholdRule(std::string_view rule);

}  // namespace shoal
