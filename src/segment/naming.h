// Explainable cluster names: a noun from the cluster's buying pattern (a first-match rule table
// over trait means and z-scores) and adjectives from its most distinguishing remaining traits,
// e.g. "premium trend explorers", "price-sensitive replenishment buyers". Names are unique within
// one call; collisions are broken by the next distinguishing trait, numbers only as a last resort.
// docs/segments.md "Cluster names" holds both rule tables.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "segment/profile.h"

namespace shoal::segment {

struct NamingOptions {
  // |z| from which a trait may lend an adjective to a name.
  double adjective_z = 0.75;
  // At most this many adjectives (including a noun rule's fixed one, like "lapsed") before
  // disambiguation adds more.
  int max_adjectives = 2;
  // |z| from which a trait may break a tie between two clusters that got the same name.
  double disambiguation_z = 0.2;
};

struct ClusterName {
  std::string name;                     // the full phrase, lower case
  std::string noun;                     // e.g. "explorers"
  std::vector<std::string> adjectives;  // in the order they appear
  // Why: the noun rule that matched and each adjective's trait with its z, e.g.
  // "noun 'explorers': distinct_categories z=+1.9", "premium: premium_index z=+2.3".
  std::vector<std::string> reasons;
  // Whether `name` is a kept name (see kept_names) rather than generated now.
  bool kept = false;
};

// One row of the noun table, for docs and tests: the noun, its condition in words.
struct NounRuleDescription {
  std::string noun;
  std::string condition;
};
std::vector<NounRuleDescription> DescribeNounRules();

// Names every profile (same order). Traits missing from a profile simply do not match rules that
// need them. `kept_names`, when not empty, has one entry per profile: a non-empty entry is a name
// the cluster keeps (a segment matched to the previous build by StabiliseClusters); the other
// clusters get fresh names that are unique against the kept ones too. A kept cluster's noun,
// adjectives and reasons still describe its current profile. Deterministic: depends only on the
// inputs.
std::vector<ClusterName> NameClusters(const std::vector<ClusterProfile>& profiles,
                                      const NamingOptions& options = {},
                                      std::span<const std::string> kept_names = {});

}  // namespace shoal::segment
