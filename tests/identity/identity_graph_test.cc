#include "identity/identity_graph.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace shoal {
namespace {

Event Ev(std::string_view cid, std::string_view email, std::string_view anon, uint64_t id = 1) {
  Event e;
  e.customer_id = cid;
  e.email = email;
  e.anonymous_id = anon;
  e.id_hash = id;
  return e;
}

TEST(IdentityGraphTest, AnonymousBrowsingJoinsCustomerOnIdentify) {
  IdentityGraph g;
  std::vector<MergeRecord> merges;
  uint32_t anon = g.Resolve(Ev("", "", "dev-1"), &merges);
  uint32_t cust = g.Resolve(Ev("C1", "a@x.com", ""), &merges);
  EXPECT_NE(anon, cust);
  EXPECT_EQ(g.num_alive(), 2u);
  uint32_t linked = g.Resolve(Ev("C1", "", "dev-1", 7), &merges);
  ASSERT_EQ(merges.size(), 1u);
  EXPECT_EQ(merges[0].survivor, cust);  // the profile with a customer id survives
  EXPECT_EQ(merges[0].absorbed, anon);
  EXPECT_EQ(merges[0].event_id_hash, 7u);
  EXPECT_EQ(linked, cust);
  EXPECT_EQ(g.num_alive(), 1u);
  EXPECT_FALSE(g.Alive(anon));
  EXPECT_EQ(g.Find(IdKind::kAnonymousId, "dev-1"), cust);
  EXPECT_EQ(g.FindAny(" A@X.com "), cust);
  EXPECT_EQ(g.CustomerIdOf(cust), "C1");
}

TEST(IdentityGraphTest, TwoCustomerIdsNeverMergeAndSharedEmailStopsLinking) {
  IdentityGraph g;  // threshold 2
  std::vector<MergeRecord> merges;
  uint32_t c1 = g.Resolve(Ev("C1", "family@x.com", ""), &merges);
  uint32_t c2 = g.Resolve(Ev("C2", "family@x.com", ""), &merges);
  EXPECT_NE(c1, c2);
  EXPECT_TRUE(merges.empty());
  EXPECT_EQ(g.stats().refused_merges, 1u);
  g.Resolve(Ev("C3", "family@x.com", ""), &merges);
  EXPECT_EQ(g.stats().shared_identifiers, 1u);
  // Now an anonymous device seen with the shared email is not pulled into C1.
  uint32_t dev = g.Resolve(Ev("", "family@x.com", "dev-9"), &merges);
  EXPECT_NE(dev, c1);
  EXPECT_TRUE(merges.empty());
  EXPECT_EQ(g.num_alive(), 4u);
}

TEST(IdentityGraphTest, IdentifierCapRefusesOvergrownProfiles) {
  IdentityOptions opts;
  opts.max_identifiers_per_profile = 3;
  IdentityGraph g(opts);
  std::vector<MergeRecord> merges;
  uint32_t c = g.Resolve(Ev("C1", "a@x", "d1"), &merges);
  std::string dev = "d2";
  g.Resolve(Ev("C1", "", dev), &merges);  // a 4th identifier is not attached
  EXPECT_EQ(g.IdentifiersOf(c).size(), 3u);
  EXPECT_EQ(g.stats().capped_identifiers, 1u);
  EXPECT_EQ(g.Find(IdKind::kAnonymousId, "d2"), kNoProfile);
}

TEST(IdentityGraphTest, ChainedMergesAndForget) {
  IdentityGraph g;
  std::vector<MergeRecord> merges;
  uint32_t a = g.Resolve(Ev("", "", "d1"), &merges);
  uint32_t b = g.Resolve(Ev("", "b@x", ""), &merges);
  uint32_t m = g.Resolve(Ev("", "b@x", "d1"), &merges);
  EXPECT_EQ(m, std::min(a, b));
  uint32_t c = g.Resolve(Ev("C9", "b@x", ""), &merges);  // attaches C9, no merge needed
  EXPECT_EQ(merges.size(), 1u);
  EXPECT_EQ(g.num_alive(), 1u);
  EXPECT_EQ(g.IdentifiersOf(c).size(), 3u);
  auto forgotten = g.Forget(c);
  EXPECT_EQ(forgotten.size(), 3u);
  EXPECT_EQ(g.FindAny("C9"), kNoProfile);
  EXPECT_EQ(g.FindAny("b@x"), kNoProfile);
  EXPECT_EQ(g.num_alive(), 0u);
  // The same identifiers later start a new person.
  uint32_t fresh = g.Resolve(Ev("C9", "", ""), &merges);
  EXPECT_TRUE(g.Alive(fresh));
}

TEST(IdentityGraphTest, SerializeRestoreRoundTrip) {
  IdentityGraph g;
  std::vector<MergeRecord> merges;
  g.Resolve(Ev("C1", "a@x", "d1"), &merges);
  uint32_t p2 = g.Resolve(Ev("C2", "b@x", ""), &merges);
  std::string blob;
  g.SerializeProfile(p2, &blob);
  IdentityGraph h;
  ASSERT_TRUE(h.RestoreProfile(5, blob).ok());
  EXPECT_EQ(h.FindAny("C2"), 5u);
  EXPECT_EQ(h.FindAny("b@x"), 5u);
  EXPECT_EQ(h.num_alive(), 1u);
  EXPECT_FALSE(h.RestoreProfile(6, blob.substr(0, blob.size() - 1)).ok());
}

TEST(IdentityGraphTest, ManyIdentifiersStayResolvable) {
  IdentityGraph g;
  std::vector<MergeRecord> merges;
  std::vector<std::string> ids;
  for (int i = 0; i < 200000; ++i) ids.push_back("cust-" + std::to_string(i));
  for (auto& id : ids) g.Resolve(Ev(id, "", ""), &merges);
  EXPECT_EQ(g.num_alive(), ids.size());
  for (size_t i = 0; i < ids.size(); i += 997) EXPECT_EQ(g.FindAny(ids[i]), i);
}

// ShrinkToFit after a bulk load releases memory; every lookup, identifier list and later
// resolution (merges included) behaves as before.
TEST(IdentityGraphTest, ShrinkToFitKeepsLookupsAndResolution) {
  IdentityGraph g, same;
  std::vector<MergeRecord> merges, same_merges;
  for (int i = 0; i < 5000; ++i) {
    // Event holds string views: the strings must outlive it.
    const std::string cid = "c" + std::to_string(i), email = "m" + std::to_string(i % 4000) + "@x.com",
                      device = "d" + std::to_string(i);
    Event e = Ev(cid, email, device);
    g.Resolve(e, &merges);
    same.Resolve(e, &same_merges);
  }
  size_t before = g.MemoryBytes();
  g.ShrinkToFit();
  EXPECT_LT(g.MemoryBytes(), before);
  for (int i = 0; i < 5000; i += 7) {
    std::string c = "c" + std::to_string(i), d = "d" + std::to_string(i);
    ASSERT_EQ(g.FindAny(c), same.FindAny(c));
    ASSERT_EQ(g.FindAny(d), same.FindAny(d));
    uint32_t p = g.FindAny(c);
    ASSERT_EQ(g.IdentifiersOf(p), same.IdentifiersOf(p));
    EXPECT_EQ(g.DisplayIdOf(p), same.DisplayIdOf(p));
  }
  // Later events link an anonymous device to an existing customer in both graphs alike.
  for (int i = 0; i < 300; ++i) {
    const std::string cid = "c" + std::to_string(i), device = "late-" + std::to_string(i);
    Event e = Ev(cid, "", device, 100 + i);
    EXPECT_EQ(g.Resolve(e, &merges), same.Resolve(e, &same_merges));
  }
  EXPECT_EQ(merges.size(), same_merges.size());
  EXPECT_EQ(g.num_alive(), same.num_alive());
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// The identifier index (fingerprinted 32-bit slots, backward-shift erase, rebuilds as it grows)
// against a brute-force reference: every identifier ever added resolves to the profile the
// reference holds, forgotten ones (erased from the middle of probe runs) to none, unknown
// ones to none, through several table rebuilds before and after the erasures.
TEST(IdentityGraphTest, IndexAgreesWithReferenceThroughGrowthAndErasure) {
  IdentityGraph g;
  std::vector<MergeRecord> merges;
  std::map<std::pair<IdKind, std::string>, uint32_t> reference;
  std::vector<std::string> cids, devices;
  auto add = [&](int i) {
    cids.push_back("cust-" + std::to_string(i));
    devices.push_back("dev-" + std::to_string(i * 7919));
    uint32_t p = g.Resolve(Ev(cids.back(), "", devices.back()), &merges);
    reference[{IdKind::kCustomerId, cids.back()}] = p;
    reference[{IdKind::kAnonymousId, devices.back()}] = p;
  };
  for (int i = 0; i < 40000; ++i) add(i);
  for (int i = 0; i < 40000; i += 3) {
    uint32_t p = g.Find(IdKind::kCustomerId, cids[static_cast<size_t>(i)]);
    ASSERT_NE(p, kNoProfile);
    EXPECT_EQ(g.Forget(p).size(), 2u);
    reference[{IdKind::kCustomerId, cids[static_cast<size_t>(i)]}] = kNoProfile;
    reference[{IdKind::kAnonymousId, devices[static_cast<size_t>(i)]}] = kNoProfile;
  }
  for (int i = 40000; i < 90000; ++i) add(i);
  EXPECT_EQ(merges.size(), 0u);
  for (const auto& [key, profile] : reference) {
    ASSERT_EQ(g.Find(key.first, key.second), profile) << key.second;
  }
  EXPECT_EQ(g.Find(IdKind::kEmail, "cust-5"), kNoProfile);  // same text, other kind
  EXPECT_EQ(g.Find(IdKind::kCustomerId, "cust-90000"), kNoProfile);
  EXPECT_EQ(g.num_alive(), 90000u - 13334u);
  // 4 bytes an index slot at most half full: 180k identifiers (20 B each, <= 12 B of text)
  // and 90k profiles (16 B) with 2^19 index slots (2 MiB; 6 MiB at the former 12 B a slot).
  g.ShrinkToFit();
  EXPECT_LE(g.MemoryBytes(), (size_t{1} << 19) * 4 + 180000 * (20 + 12) + 90000 * 16);
  for (const auto& [key, profile] : reference) {
    ASSERT_EQ(g.Find(key.first, key.second), profile) << key.second;
  }
}

}  // namespace
}  // namespace shoal
