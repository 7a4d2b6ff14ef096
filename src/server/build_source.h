// BuildMembershipSource: memberships from the last build's models, re-scored for one profile
// after every event, with the models fixed between rebuilds (docs/server.md "Memberships"):
//   "segment:<name>"  the behavioural segment: nearest centroid of the scaled clustering
//                     features, keeping the segment the build gave the profile unless the
//                     nearest centroid is closer by the build's hysteresis factor
//   "rfm:<name>"      the RFM cell from the build's cut points and segment table
//   "audience:<name>" every [[audiences]] rule of the workspace, in the full rule language, over
//                     the live traits, segment, RFM and BTYD scores (the build's columns)
// Right after a build, on the build's traits (now = its as_of), every profile's memberships are
// what the build stored (tests/server/build_source_test.cc checks it on a generated shop).
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/live_model.h"
#include "segment/rules.h"
#include "server/membership.h"
#include "traits/catalogue.h"
#include "traits/customer_state.h"

namespace shoal {

class BuildMembershipSource final : public MembershipSource {
 public:
  // Loads the last build (its LiveModel and the segment it gave each profile) and compiles the
  // workspace's [[audiences]] against the build's rule columns. NotFound before the first build;
  // ParseError naming the audience when a rule does not compile. Call with the engine still.
  static Result<std::unique_ptr<BuildMembershipSource>> Load(const Engine& engine);

  // Thread-safe (const; scratch is per call).
  std::vector<std::string> Memberships(const Engine& engine, uint32_t profile,
                                       TimeMicros now) const override;
  // Exact (at most 1 ms late) for: recency crossing an RFM recency cut; the nearest centroid
  // changing as the one clock feature of the clustering (recency_days by default) grows;
  // an audience comparison of a clock trait (recency_days, days_since_last_event, tenure_days,
  // first_order_days_ago) with a number. The next UTC midnight when the clustering features or
  // the audiences read day-windowed traits (orders_30d, new_categories_30d, ...) or the BTYD
  // scores (their calibration period ends the day before "now"). Every kFallbackMinutes for
  // what is not analysed exactly (arithmetic on a clock trait, time_since user traits, two or
  // more clock features in the clustering).
  std::optional<TimeMicros> NextChange(const Engine& engine, uint32_t profile,
                                       TimeMicros now) const override;
  std::vector<std::string> Definitions() const override;
  // Computes the profile's traits once for both.
  std::optional<TimeMicros> MembershipsAndNextChange(
      const Engine& engine, uint32_t profile, TimeMicros now,
      std::vector<std::string>* memberships) const override;
  // ,"build_as_of":..,"rfm":{r,f,m,segment},"segment":{id,name},"audiences":[..],
  // "scores":{p_alive,...},"recommendations":[..] -- the keys of `shoal profile`, live values
  // (recommendations are the build's).
  void AppendProfileJson(const Engine& engine, uint32_t profile, TimeMicros now,
                         std::string* out) const override;

  static constexpr int64_t kFallbackMinutes = 5;

  // One profile evaluated: scores and the audiences it matches (indices into audience_names()).
  struct Evaluation {
    LiveScores scores;
    std::vector<uint32_t> audiences;
  };
  Evaluation Evaluate(const Engine& engine, uint32_t profile, TimeMicros now, bool with_btyd) const;
  const LiveModel& model() const { return model_; }
  const std::vector<std::string>& audience_names() const { return audience_names_; }
  // The segment id the build gave `profile`, -1 if none.
  int64_t BuiltSegment(uint32_t profile) const {
    return profile < built_segment_.size() ? built_segment_[profile] : -1;
  }

 private:
  BuildMembershipSource() = default;
  // The clock traits: their value is (now - origin) / day.
  enum class Clock : uint8_t { kNone, kLastOrder, kFirstOrder, kLastEvent, kFirstEvent };
  static Clock ClockOf(std::string_view trait);
  static std::optional<TimeMicros> Origin(const CustomerState& state, Clock clock);
  // Per-thread evaluation scratch: the traits, the rule data over them and the audiences bound
  // to it once, so that evaluating a profile allocates nothing. Keyed by the source's unique
  // id_: a source built later (a rebuild) never meets the bindings of the one it replaced.
  struct Scratch;
  Scratch& ThreadScratch() const;
  // scratch.values = the profile's traits at `now` followed by room for the extra columns.
  void ComputeTraits(const Engine& engine, uint32_t profile, TimeMicros now, Scratch& scratch) const;
  // Scores and audiences from scratch.values (filled by ComputeTraits) into *out.
  void EvaluateTraits(const Engine& engine, uint32_t profile, TimeMicros now, bool with_btyd,
                      Scratch& scratch, Evaluation* out) const;
  // The memberships of `e`, sorted, into *out (its strings' buffers reused).
  void NamesInto(const Evaluation& e, std::vector<std::string>* out) const;
  std::optional<TimeMicros> NextChangeTraits(const Engine& engine, uint32_t profile, TimeMicros now,
                                             std::span<const double> traits) const;

  uint64_t id_ = 0;  // unique per source made in this process
  LiveModel model_;
  std::vector<int> feature_traits_;   // per model feature: catalogue index (-1 = absent)
  std::vector<int> support_traits_;   // per model feature: its support trait's index, or -1
  std::vector<Clock> feature_clock_;  // per model feature
  int recency_trait_ = -1, frequency_trait_ = -1, monetary_trait_ = -1;
  // The membership strings, made once: "audience:<name>" per audience, "rfm:<name>" per RFM
  // cell, "segment:<name>" per cluster.
  std::vector<std::string> audience_memberships_, rfm_memberships_, segment_memberships_;
  std::vector<int64_t> built_segment_;        // per profile slot
  // Per profile slot: the build's p_purchase_30d, p_churn_90d, p_upgrade, p_referral (fixed
  // until the next build; NaN for profiles the build did not score).
  std::vector<std::array<double, 4>> propensities_;
  std::vector<std::string> recommendations_;  // per profile slot, the build's "a;b;c"
  size_t num_traits_ = 0;
  // What this source reads of the traits (features, supports, RFM, audience columns): the
  // writer computes only these per touched profile.
  TraitSelection needed_traits_;
  segment::RuleSchema schema_;
  std::vector<std::string> segment_dictionary_;
  std::vector<segment::Audience> audiences_;
  std::vector<std::string> audience_names_;
  bool audiences_read_scores_ = false;
  // Time dependence of the audiences.
  struct ClockComparison {
    Clock clock;
    double days;
  };
  std::vector<ClockComparison> clock_comparisons_;
  bool midnight_ = false;  // something changes at UTC midnights
  bool fallback_ = false;  // something is re-checked every kFallbackMinutes

  // BTYD scores per profile, keyed by what they depend on (the orders and the day): a profile
  // looked up again costs no special functions (a degenerate fit makes them slow).
  void CachedBtyd(const Engine& engine, uint32_t profile, TimeMicros now, LiveScores* out) const;
  struct CachedScores {
    uint64_t key = 0;
    double p_alive = 0, expected_orders_90d = 0, expected_order_value = 0, clv = 0;
  };
  struct CacheStripe {
    std::mutex mu;
    std::unordered_map<uint32_t, CachedScores> scores;
  };
  mutable std::array<CacheStripe, 64> btyd_cache_;
};

}  // namespace shoal
