// The generator's files (src/generate) load with no mapping: every event of events.jsonl and
// events.csv comes through, the two formats agree, and the generator's deliberate corruptions
// are all quarantined. Built only when the generate module is part of the build.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <unordered_map>

#include "generate/generate.h"
#include "ingest/reader.h"
#include "test_util.h"

namespace shoal {
namespace {

using testing_util::ReadAll;

std::string GenerateInto(const std::string& name, const GenerateOptions& options,
                         GenerateStats* stats) {
  std::string dir = testing_util::WriteTemp("marker", "");
  dir = dir.substr(0, dir.find_last_of('/')) + "/" + name;
  Context ctx;
  ctx.threads = 2;
  auto s = GenerateShop(options, dir, ctx);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (s.ok()) *stats = *s;
  return dir;
}

TEST(GeneratedFilesTest, CleanJsonlAndCsvLoadWithoutMappingAndAgree) {
  GenerateOptions options;
  options.customers = 1500;
  GenerateStats gen;
  std::string dir = GenerateInto("clean", options, &gen);
  EventTypeRegistry registry;
  Quarantine qj, qc;
  SourceSpec jsonl;
  jsonl.path = dir + "/events.jsonl";
  SourceSpec csv;
  csv.path = dir + "/events.csv";
  auto rj = ReadAll(jsonl, registry, &qj, 4096);
  auto rc = ReadAll(csv, registry, &qc, 4096);
  ASSERT_TRUE(rj.status.ok()) << rj.status.ToString();
  ASSERT_TRUE(rc.status.ok()) << rc.status.ToString();
  EXPECT_EQ(qj.total(), 0u) << qj.Summary();
  EXPECT_EQ(qc.total(), 0u) << qc.Summary();
  EXPECT_EQ(rj.events.size(), gen.events);
  EXPECT_EQ(rc.events.size(), gen.events);
  EXPECT_EQ(rc.stats.records, gen.csv_rows);
  std::map<uint16_t, uint64_t> per_type;
  for (const Event& e : rj.events.events) ++per_type[e.type];
  for (size_t t = 0; t < gen.per_type.size(); ++t) {
    EXPECT_EQ(per_type[static_cast<uint16_t>(t)], gen.per_type[t]) << t;
  }
  // Same events, same fields, whichever format.
  std::unordered_map<std::string_view, const Event*> by_id;
  for (const Event& e : rc.events.events) by_id[e.event_id] = &e;
  ASSERT_EQ(by_id.size(), rc.events.size());
  uint64_t lines = 0;
  for (const Event& j : rj.events.events) {
    auto it = by_id.find(j.event_id);
    ASSERT_NE(it, by_id.end()) << j.event_id;
    const Event& c = *it->second;
    EXPECT_EQ(c.type, j.type);
    EXPECT_EQ(c.timestamp, j.timestamp) << j.event_id;
    EXPECT_EQ(c.customer_id, j.customer_id);
    EXPECT_EQ(c.email, j.email);
    EXPECT_EQ(c.anonymous_id, j.anonymous_id);
    EXPECT_EQ(c.order_id, j.order_id);
    EXPECT_EQ(c.num_lines, j.num_lines) << j.event_id;
    EXPECT_EQ(c.consent, j.consent);
    if (!std::isnan(j.total)) {
      EXPECT_NEAR(c.total, j.total, 1e-6) << j.event_id;
    }
    lines += j.Is(EventType::kOrder) ? j.num_lines : 0;
  }
  EXPECT_EQ(lines, gen.order_lines);
}

TEST(GeneratedFilesTest, MessyFilesQuarantineTheCorruptedEventsOnly) {
  GenerateOptions options;
  options.customers = 800;
  options.messy_share = 0.03;
  GenerateStats gen;
  std::string dir = GenerateInto("messy", options, &gen);
  ASSERT_GT(gen.messy_events, 0u);
  EventTypeRegistry registry;
  Quarantine qj;
  SourceSpec jsonl;
  jsonl.path = dir + "/events.jsonl";
  auto rj = ReadAll(jsonl, registry, &qj, 4096);
  ASSERT_TRUE(rj.status.ok());
  EXPECT_EQ(qj.total(), gen.messy_events) << qj.Summary();
  EXPECT_EQ(rj.events.size(), gen.events - gen.messy_events);
  Quarantine qc;
  SourceSpec csv;
  csv.path = dir + "/events.csv";
  auto rc = ReadAll(csv, registry, &qc, 4096);
  ASSERT_TRUE(rc.status.ok());
  // CSV: a corrupted order line quarantines that row; the rest of its order still loads.
  EXPECT_GT(qc.total(), 0u);
  EXPECT_GE(rc.events.size(), gen.events - gen.messy_events);
  EXPECT_LE(rc.events.size(), gen.events);
}

}  // namespace
}  // namespace shoal
