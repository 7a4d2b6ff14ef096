#include "segment/naming.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

namespace shoal::segment {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Read access to one profile's statistics by trait name; NaN when the trait is absent.
class ProfileView {
 public:
  explicit ProfileView(const ClusterProfile& profile) : profile_(profile) {}
  double Z(std::string_view trait) const {
    const TraitProfile* found = FindTrait(profile_, trait);
    return found == nullptr ? kNaN : DistinguishingScore(*found);
  }
  double Mean(std::string_view trait) const {
    const TraitProfile* found = FindTrait(profile_, trait);
    return found == nullptr ? kNaN : found->mean;
  }
  double Median(std::string_view trait) const {
    const TraitProfile* found = FindTrait(profile_, trait);
    return found == nullptr ? kNaN : found->median;
  }

 private:
  const ClusterProfile& profile_;
};

// NaN-safe comparisons: an undefined statistic never satisfies a condition.
bool AtLeast(double value, double threshold) { return !std::isnan(value) && value >= threshold; }
bool AtMost(double value, double threshold) { return !std::isnan(value) && value <= threshold; }
bool Below(double value, double threshold) { return !std::isnan(value) && value < threshold; }

struct NounRule {
  const char* noun;
  const char* fixed_adjective;        // "" = none
  std::vector<const char*> consumes;  // traits the noun explains (no adjectives from them)
  const char* condition;
  bool (*matches)(const ProfileView&);
};

const std::vector<NounRule>& NounRules() {
  static const std::vector<NounRule> kRules = {
      {"cart abandoners",
       "",
       {"cart_abandonment_rate", "cart_abandonment_count"},
       "cart_abandonment_count z >= 1 and, where defined, a mean cart_abandonment_rate >= 0.3 "
       "(many abandoned carts, not one abandoned cart of a browser); without the count, "
       "cart_abandonment_rate z >= 1 and its mean >= 0.3",
       [](const ProfileView& v) {
         const double rate = v.Mean("cart_abandonment_rate");
         const double count_z = v.Z("cart_abandonment_count");
         if (!std::isnan(count_z)) return count_z >= 1 && (std::isnan(rate) || rate >= 0.3);
         return AtLeast(v.Z("cart_abandonment_rate"), 1) && AtLeast(rate, 0.3);
       }},
      {"window shoppers",
       "",
       {"frequency", "monetary_total", "orders_365d", "spend_365d", "aov", "recency_days",
        "discount_share", "premium_index", "distinct_categories", "new_categories_30d",
        "category_entropy", "ipi_std_days", "ipi_mean_days", "trend_orders", "return_rate",
        "product_views", "sessions"},
       "mean frequency < 0.5 (most never ordered) and product_views or sessions z >= 0.2 "
       "(they browse more than the typical customer)",
       [](const ProfileView& v) {
         return Below(v.Mean("frequency"), 0.5) &&
                (AtLeast(v.Z("product_views"), 0.2) || AtLeast(v.Z("sessions"), 0.2));
       }},
      {"visitors",
       "non-buying",
       {"frequency", "monetary_total", "orders_365d", "spend_365d", "aov", "recency_days",
        "discount_share", "premium_index", "distinct_categories", "new_categories_30d",
        "category_entropy", "ipi_std_days", "ipi_mean_days", "trend_orders", "return_rate"},
       "mean frequency < 0.5 (most never ordered)",
       [](const ProfileView& v) { return Below(v.Mean("frequency"), 0.5); }},
      {"big spenders",
       "lapsed",
       {"monetary_total", "spend_365d", "recency_days"},
       "monetary_total z >= 0.8 and recency_days z >= 0.8",
       [](const ProfileView& v) {
         return AtLeast(v.Z("monetary_total"), 0.8) && AtLeast(v.Z("recency_days"), 0.8);
       }},
      {"explorers",
       "",
       {"distinct_categories", "category_entropy"},
       "the highest of the z of distinct_categories, category_entropy and new_categories_30d is "
       ">= 0.8 and at least the frequency z (breadth distinguishes them more than frequency)",
       [](const ProfileView& v) {
         double breadth = kNaN;
         for (const char* trait : {"distinct_categories", "category_entropy", "new_categories_30d"}) {
           double z = v.Z(trait);
           if (!std::isnan(z) && (std::isnan(breadth) || z > breadth)) breadth = z;
         }
         const double frequency = v.Z("frequency");
         return AtLeast(breadth, 0.8) && (std::isnan(frequency) || breadth >= frequency);
       }},
      {"champions",
       "loyal",
       {"frequency", "orders_365d", "monetary_total", "spend_365d", "recency_days"},
       "frequency z >= 0.8, monetary_total z >= 0.8 and recency_days z <= -0.3",
       [](const ProfileView& v) {
         return AtLeast(v.Z("frequency"), 0.8) && AtLeast(v.Z("monetary_total"), 0.8) &&
                AtMost(v.Z("recency_days"), -0.3);
       }},
      {"replenishment buyers",
       "",
       {"frequency", "orders_365d", "ipi_std_days", "ipi_mean_days"},
       "frequency z >= 0.5 and regular intervals: mean ipi_std_days <= 0.4 x mean ipi_mean_days",
       [](const ProfileView& v) {
         const double spread = v.Mean("ipi_std_days"), interval = v.Mean("ipi_mean_days");
         return AtLeast(v.Z("frequency"), 0.5) && AtLeast(interval, 0) &&
                AtMost(spread, 0.4 * interval);
       }},
      {"one-time buyers",
       "",
       {"frequency", "orders_365d", "ipi_std_days", "ipi_mean_days"},
       "median frequency <= 1 and mean frequency < 1.5",
       [](const ProfileView& v) {
         return AtMost(v.Median("frequency"), 1) && Below(v.Mean("frequency"), 1.5);
       }},
      {"big spenders",
       "",
       {"monetary_total", "spend_365d"},
       "monetary_total z >= 1",
       [](const ProfileView& v) { return AtLeast(v.Z("monetary_total"), 1); }},
      {"regulars",
       "",
       {"frequency", "orders_365d"},
       "frequency z >= 0.8",
       [](const ProfileView& v) { return AtLeast(v.Z("frequency"), 0.8); }},
      {"shoppers", "", {}, "otherwise", [](const ProfileView&) { return true; }},
  };
  return kRules;
}

struct AdjectiveRule {
  const char* trait;
  const char* high;  // "" = this direction lends no adjective
  const char* low;
};

// In the order adjectives appear in a name.
const std::vector<AdjectiveRule>& AdjectiveRules() {
  static const std::vector<AdjectiveRule> kRules = {
      {"recency_days", "lapsed", "recent"},
      {"trend_orders", "accelerating", "slowing"},
      {"frequency", "frequent", "infrequent"},
      {"orders_365d", "", ""},
      {"monetary_total", "high-value", "low-value"},
      {"spend_365d", "", ""},
      {"aov", "big-basket", "small-basket"},
      {"premium_index", "premium", "budget"},
      {"discount_share", "price-sensitive", "full-price"},
      {"new_categories_30d", "trend", ""},
      {"distinct_categories", "multi-category", "single-category"},
      {"category_entropy", "diverse", "focused"},
      {"ipi_std_days", "irregular", "regular"},
      {"ipi_mean_days", "slow-cycle", "fast-cycle"},
      {"cart_abandonment_rate", "cart-abandoning", ""},
      {"cart_abandonment_count", "cart-abandoning", ""},
      {"sessions", "engaged", "disengaged"},
      {"product_views", "browsing", ""},
      {"email_open_rate", "email-engaged", "email-unresponsive"},
      {"return_rate", "return-prone", "low-return"},
      {"tenure_days", "long-standing", "newer"},
      {"email_click_rate", "email-clicking", ""},
      {"view_to_order", "decisive", ""},
      {"searches", "searching", ""},
      {"referrals", "referring", ""},
      {"returns", "return-prone", ""},
      {"support_tickets", "support-heavy", ""},
  };
  return kRules;
}

struct Candidate {
  std::string adjective;
  std::string trait;
  double z = 0;
  size_t order = 0;  // position in the adjective table; unknown traits come last
};

std::string FormatZ(double z) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%+.2f", z);
  return buffer;
}

// Adjective candidates of a profile with |z| >= min_z, strongest first, one per adjective text.
std::vector<Candidate> Candidates(const ClusterProfile& profile, const NounRule& noun,
                                  double min_z) {
  std::vector<Candidate> out;
  const auto& table = AdjectiveRules();
  for (const TraitProfile& trait : profile.traits) {
    const double score = DistinguishingScore(trait);
    if (std::isnan(score) || std::abs(score) < min_z) continue;
    if (std::find_if(noun.consumes.begin(), noun.consumes.end(), [&](const char* consumed) {
          return trait.name == consumed;
        }) != noun.consumes.end()) {
      continue;
    }
    Candidate candidate;
    candidate.trait = trait.name;
    candidate.z = score;
    auto rule = std::find_if(table.begin(), table.end(),
                             [&](const AdjectiveRule& r) { return trait.name == r.trait; });
    if (rule != table.end()) {
      candidate.adjective = score > 0 ? rule->high : rule->low;
      candidate.order = static_cast<size_t>(rule - table.begin());
    } else {
      // A trait outside the table still describes itself: "high email clicks".
      std::string words = trait.name;
      std::replace(words.begin(), words.end(), '_', ' ');
      candidate.adjective = (score > 0 ? "high " : "low ") + words;
      candidate.order = table.size();
    }
    if (candidate.adjective.empty() || candidate.adjective == noun.fixed_adjective) continue;
    out.push_back(std::move(candidate));
  }
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) {
    return std::abs(a.z) > std::abs(b.z);
  });
  std::vector<Candidate> unique;
  for (Candidate& candidate : out) {
    if (std::none_of(unique.begin(), unique.end(),
                     [&](const Candidate& u) { return u.adjective == candidate.adjective; })) {
      unique.push_back(std::move(candidate));
    }
  }
  return unique;
}

struct Draft {
  const NounRule* noun = nullptr;
  std::vector<Candidate> chosen;
  std::vector<Candidate> remaining;  // for disambiguation, strongest first
};

std::string Assemble(const Draft& draft) {
  std::vector<Candidate> ordered = draft.chosen;
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const Candidate& a, const Candidate& b) { return a.order < b.order; });
  std::string name;
  for (const Candidate& candidate : ordered) name += candidate.adjective + " ";
  if (draft.noun->fixed_adjective[0] != '\0')
    name += std::string(draft.noun->fixed_adjective) + " ";
  return name + draft.noun->noun;
}

}  // namespace

std::vector<NounRuleDescription> DescribeNounRules() {
  std::vector<NounRuleDescription> out;
  for (const NounRule& rule : NounRules()) {
    std::string noun = rule.fixed_adjective[0] != '\0'
                           ? std::string(rule.fixed_adjective) + " " + rule.noun
                           : std::string(rule.noun);
    out.push_back(NounRuleDescription{noun, rule.condition});
  }
  return out;
}

std::vector<ClusterName> NameClusters(const std::vector<ClusterProfile>& profiles,
                                      const NamingOptions& options,
                                      std::span<const std::string> kept_names) {
  auto is_kept = [&](size_t c) { return c < kept_names.size() && !kept_names[c].empty(); };
  std::vector<Draft> drafts(profiles.size());
  for (size_t c = 0; c < profiles.size(); ++c) {
    const ProfileView view(profiles[c]);
    for (const NounRule& rule : NounRules()) {
      if (rule.matches(view)) {
        drafts[c].noun = &rule;
        break;
      }
    }
    Draft& draft = drafts[c];
    std::vector<Candidate> all = Candidates(profiles[c], *draft.noun, options.disambiguation_z);
    const int slots =
        std::max(0, options.max_adjectives - (draft.noun->fixed_adjective[0] != '\0' ? 1 : 0));
    for (Candidate& candidate : all) {
      if (static_cast<int>(draft.chosen.size()) < slots &&
          std::abs(candidate.z) >= options.adjective_z) {
        draft.chosen.push_back(std::move(candidate));
      } else {
        draft.remaining.push_back(std::move(candidate));
      }
    }
  }

  // Break collisions: every cluster sharing a name takes its next strongest adjective, until the
  // names differ or no cluster has adjectives left.
  std::vector<std::string> names(profiles.size());
  auto assemble_all = [&] {
    for (size_t c = 0; c < profiles.size(); ++c) {
      names[c] = is_kept(c) ? kept_names[c] : Assemble(drafts[c]);
    }
  };
  assemble_all();
  for (bool progress = true; progress;) {
    progress = false;
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t c = 0; c < profiles.size(); ++c) groups[names[c]].push_back(c);
    for (auto& [name, members] : groups) {
      if (members.size() < 2) continue;
      for (size_t c : members) {
        Draft& draft = drafts[c];
        if (is_kept(c) || draft.remaining.empty()) continue;
        draft.chosen.push_back(draft.remaining.front());
        draft.remaining.erase(draft.remaining.begin());
        progress = true;
      }
    }
    assemble_all();
  }
  // Last resort: number the later clusters of a group that is still tied (kept names first).
  std::map<std::string, int> seen;
  for (size_t c = 0; c < profiles.size(); ++c)
    if (is_kept(c)) ++seen[names[c]];
  std::vector<ClusterName> out(profiles.size());
  for (size_t c = 0; c < profiles.size(); ++c) {
    ClusterName& result = out[c];
    if (is_kept(c)) {
      result.name = names[c];
      result.kept = true;
    } else {
      const int occurrence = ++seen[names[c]];
      result.name = occurrence == 1 ? names[c] : names[c] + " " + std::to_string(occurrence);
    }
    result.noun = drafts[c].noun->noun;
    std::string evidence;
    for (const char* trait : drafts[c].noun->consumes) {
      const TraitProfile* found = FindTrait(profiles[c], trait);
      if (found == nullptr || std::isnan(DistinguishingScore(*found))) continue;
      evidence += (evidence.empty() ? "" : ", ") + std::string(trait) +
                  " z=" + FormatZ(DistinguishingScore(*found));
    }
    result.reasons.push_back("noun '" + std::string(drafts[c].noun->noun) +
                             "': " + drafts[c].noun->condition +
                             (evidence.empty() ? "" : " [" + evidence + "]"));
    std::vector<Candidate> ordered = drafts[c].chosen;
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const Candidate& a, const Candidate& b) { return a.order < b.order; });
    for (const Candidate& candidate : ordered) {
      result.adjectives.push_back(candidate.adjective);
      result.reasons.push_back(candidate.adjective + ": " + candidate.trait +
                               " z=" + FormatZ(candidate.z));
    }
    if (drafts[c].noun->fixed_adjective[0] != '\0') {
      result.adjectives.emplace_back(drafts[c].noun->fixed_adjective);
    }
  }
  return out;
}

}  // namespace shoal::segment
