#include "engine/build.h"

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_map>

#include "common/time.h"
#include "generate/generate.h"
#include "segment/metrics.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("shoal-build-test-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(p);
  return p.string();
}

double Field(simdjson::dom::element doc, const char* model, const char* key) {
  double v = std::nan("");
  if (doc[model][key].get(v)) return std::nan("");
  return v;
}

void ExpectWithin(double got, double want, double rel, const char* what) {
  EXPECT_NEAR(got, want, std::fabs(want) * rel) << what;
}

// The CDNOW check of docs/predictions.md: ingest the 1/10th sample with the recipe, build with a
// 39-week calibration in weeks, and read the published parameters back from the stored models.
TEST(BuildTest, CdnowModelsMatchThePublishedFits) {
  std::string db = TempPath("cdnow");
  EngineOptions eo;
  eo.db_dir = db;
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  SourceSpec source;
  source.path = std::string(SHOAL_SHARED_DATA) + "/cdnow/cdnowElog.csv";
  auto mapping = Mapping::FromTomlFile(std::string(SHOAL_SOURCE_DIR) + "/recipes/cdnow-elog.toml");
  ASSERT_TRUE(mapping.ok()) << mapping.status().ToString();
  source.mapping = *mapping;
  auto ingested = (*engine)->Ingest({source}, IngestOptions(), nullptr);
  ASSERT_TRUE(ingested.ok());
  EXPECT_EQ(ingested->profiles, 2357u);
  BuildOptions options;
  options.calibration_end_day = DayOf(*ParseIso8601("1997-09-30"));
  options.time_unit = "week";
  options.quiet = true;
  auto built = RunBuild(**engine, options);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  auto stored = LoadBuild(**engine);
  ASSERT_TRUE(stored.ok());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(stored->models_json).get(doc)) << stored->models_json;
  ExpectWithin(Field(doc, "bgnbd", "r"), 0.243, 0.005, "BG/NBD r");
  ExpectWithin(Field(doc, "bgnbd", "alpha"), 4.414, 0.005, "BG/NBD alpha");
  ExpectWithin(Field(doc, "bgnbd", "a"), 0.793, 0.005, "BG/NBD a");
  ExpectWithin(Field(doc, "bgnbd", "b"), 2.426, 0.005, "BG/NBD b");
  ExpectWithin(Field(doc, "bgnbd", "loglik"), -9582.4, 1e-5, "BG/NBD LL");
  ExpectWithin(Field(doc, "pareto_nbd", "r"), 0.553, 0.005, "Pareto/NBD r");
  ExpectWithin(Field(doc, "pareto_nbd", "alpha"), 10.58, 0.005, "Pareto/NBD alpha");
  ExpectWithin(Field(doc, "pareto_nbd", "s"), 0.606, 0.005, "Pareto/NBD s");
  ExpectWithin(Field(doc, "pareto_nbd", "beta"), 11.66, 0.005, "Pareto/NBD beta");
  ExpectWithin(Field(doc, "gamma_gamma", "p"), 6.25, 0.005, "GG p");
  ExpectWithin(Field(doc, "gamma_gamma", "q"), 3.74, 0.005, "GG q");
  ExpectWithin(Field(doc, "gamma_gamma", "gamma"), 15.44, 0.005, "GG gamma");
  // Every customer with an order in the calibration period is scored.
  size_t scored = 0;
  for (double p : stored->p_alive) scored += std::isfinite(p) && p >= 0 && p <= 1;
  EXPECT_EQ(scored, 2357u);
  // The export carries the new columns.
  std::string out = TempPath("cdnow.csv");
  ASSERT_TRUE((*engine)->ExportCsv(out, std::nullopt).ok());
  std::ifstream in(out);
  std::string header;
  std::getline(in, header);
  for (const char* column : {"rfm_segment", "segment_name", "p_alive", "clv", "next_order_date", "recommendations"}) {
    EXPECT_NE(header.find(column), std::string::npos) << column;
  }
  engine->reset();
  fs::remove_all(db);
  fs::remove(out);
}

// Generates a shop, ingests it, builds; returns the build and the truth labels per row.
struct ShopBuild {
  BuildResult build;
  std::vector<int32_t> truth;  // planted segment per row (-1 unknown)
  std::vector<std::string> truth_names;
};

ShopBuild BuildShop(const std::string& dir, uint64_t customers, uint64_t seed, Engine** keep = nullptr,
                    std::unique_ptr<Engine>* owner = nullptr) {
  ShopBuild out;
  GenerateOptions gen;
  gen.customers = customers;
  gen.seed = seed;
  gen.write_csv = false;
  Context ctx;
  ctx.seed = seed;
  auto stats = GenerateShop(gen, dir + "/shop", ctx);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  EngineOptions eo;
  eo.db_dir = dir + "/db";
  auto engine = Engine::Open(eo, ctx);
  EXPECT_TRUE(engine.ok());
  SourceSpec source;
  source.path = dir + "/shop/events.jsonl";
  EXPECT_TRUE((*engine)->Ingest({source}, IngestOptions(), nullptr).ok());
  BuildOptions options;
  options.quiet = true;
  auto built = RunBuild(**engine, options);
  EXPECT_TRUE(built.ok()) << built.status().ToString();
  if (built.ok()) out.build = std::move(built).value();
  std::unordered_map<std::string, int32_t> truth;
  std::map<std::string, int32_t> names;
  std::ifstream in(dir + "/shop/truth.csv");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    auto comma = line.find(',');
    std::string seg = line.substr(comma + 1);
    auto it = names.emplace(seg, static_cast<int32_t>(names.size())).first;
    truth[line.substr(0, comma)] = it->second;
  }
  out.truth_names.resize(names.size());
  for (const auto& [name, idx] : names) out.truth_names[static_cast<size_t>(idx)] = name;
  for (const std::string& id : out.build.customer_ids) {
    auto it = truth.find(id);
    out.truth.push_back(it == truth.end() ? -1 : it->second);
  }
  if (owner) *owner = std::move(engine).value();
  (void)keep;
  return out;
}

// Issue acceptance: the behavioural clusters recover the planted segments (ARI >= 0.9) for each
// of 5 seeds, and each planted segment's cluster is named for its behaviour.
// Measured ARI 0.933-0.940 over the five seeds (default features, automatic k by
// Calinski-Harabasz).
TEST(BuildTest, ClustersRecoverPlantedSegmentsWithDescriptiveNames) {
  const std::map<std::string, std::vector<std::string>> kWords = {
      {"one_time_buyers", {"one-time"}},
      {"window_shoppers", {"window"}},
      {"cart_abandoners", {"abandon"}},
      {"lapsed_big_spenders", {"lapsed"}},
      {"price_sensitive_replenishment", {"price-sensitive", "replenish"}},
      {"premium_trend_explorers", {"premium", "explor"}},
  };
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    std::string dir = TempPath("shop-" + std::to_string(seed));
    ShopBuild shop = BuildShop(dir, 4000, seed);
    std::vector<int32_t> truth, found;
    std::map<int32_t, std::map<int64_t, int>> votes;
    for (size_t row = 0; row < shop.truth.size(); ++row) {
      if (shop.truth[row] < 0) continue;  // never-identified anonymous browsers
      truth.push_back(shop.truth[row]);
      found.push_back(static_cast<int32_t>(shop.build.segment_id[row]));
      votes[shop.truth[row]][shop.build.segment_id[row]]++;
    }
    double ari = AdjustedRandIndex(truth, found);
    EXPECT_GE(ari, 0.9) << "seed " << seed;
    for (const auto& [planted, by_segment] : votes) {
      int64_t best = std::max_element(by_segment.begin(), by_segment.end(),
                                      [](const auto& a, const auto& b) { return a.second < b.second; })->first;
      std::string name;
      for (const SegmentInfo& s : shop.build.segments) if (s.id == best) name = s.name;
      const std::string& planted_name = shop.truth_names[static_cast<size_t>(planted)];
      bool described = false;
      for (const std::string& word : kWords.at(planted_name)) described |= name.find(word) != std::string::npos;
      EXPECT_TRUE(described) << "seed " << seed << ": planted " << planted_name << " is named '" << name << "'";
    }
    fs::remove_all(dir);
  }
}

// A rebuild on the same data gives identical segments, ids and names.
TEST(BuildTest, RebuildOnTheSameDataIsIdentical) {
  std::string dir = TempPath("stable");
  std::unique_ptr<Engine> engine;
  ShopBuild first = BuildShop(dir, 4000, 11, nullptr, &engine);
  BuildOptions options;
  options.quiet = true;
  auto again = RunBuild(*engine, options);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->segment_id, first.build.segment_id);
  EXPECT_EQ(again->moved, 0);
  ASSERT_EQ(again->segments.size(), first.build.segments.size());
  for (size_t s = 0; s < again->segments.size(); ++s) {
    EXPECT_EQ(again->segments[s].id, first.build.segments[s].id);
    EXPECT_EQ(again->segments[s].name, first.build.segments[s].name);
  }
  engine.reset();
  fs::remove_all(dir);
}

// `shoal build --as-of T` on the whole history scores every customer exactly as a workspace
// holding only the events before T does, and reports each row under the customer's live profile.
TEST(BuildTest, AsOfBuildScoresEachCustomerFromTheirOwnEarlierOrders) {
  std::string dir = TempPath("asof");
  std::unique_ptr<Engine> full;
  BuildShop(dir, 1500, 21, nullptr, &full);
  const std::string cut = "2025-09-01T00:00:00Z";
  auto at = ParseIso8601(cut);
  ASSERT_TRUE(at.ok());
  {
    std::ifstream in(dir + "/shop/events.jsonl");
    std::ofstream out(dir + "/early.jsonl");
    std::string line;
    size_t kept = 0, dropped = 0;
    while (std::getline(in, line)) {
      size_t pos = line.find("\"timestamp\":\"");
      ASSERT_NE(pos, std::string::npos);
      if (line.compare(pos + 13, cut.size(), cut) < 0) {
        out << line << "\n";
        ++kept;
      } else {
        ++dropped;
      }
    }
    ASSERT_GT(kept, 1000u);
    ASSERT_GT(dropped, 1000u);
  }
  EngineOptions eo;
  eo.db_dir = dir + "/db-early";
  auto early = Engine::Open(eo, Context());
  ASSERT_TRUE(early.ok());
  SourceSpec source;
  source.path = dir + "/early.jsonl";
  ASSERT_TRUE((*early)->Ingest({source}, IngestOptions(), nullptr).ok());
  BuildOptions options;
  options.quiet = true;
  options.as_of = *at;
  options.k = 4;
  auto from_full = RunBuild(*full, options);
  auto from_early = RunBuild(**early, options);
  ASSERT_TRUE(from_full.ok()) << from_full.status().ToString();
  ASSERT_TRUE(from_early.ok()) << from_early.status().ToString();
  std::unordered_map<std::string, size_t> early_row;
  for (size_t row = 0; row < from_early->customer_ids.size(); ++row) early_row[from_early->customer_ids[row]] = row;
  size_t compared = 0, scored = 0;
  for (size_t row = 0; row < from_full->customer_ids.size(); ++row) {
    const std::string& id = from_full->customer_ids[row];
    EXPECT_EQ(from_full->profiles[row], full->FindProfile(id)) << id;
    auto it = early_row.find(id);
    if (it == early_row.end()) continue;
    ++compared;
    const double a = from_full->expected_orders_90d[row], b = from_early->expected_orders_90d[it->second];
    if (std::isnan(a) || std::isnan(b)) {
      EXPECT_EQ(std::isnan(a), std::isnan(b)) << id;
      continue;
    }
    ++scored;
    EXPECT_NEAR(a, b, 1e-9 * (1 + std::fabs(b))) << id;
    EXPECT_NEAR(from_full->p_alive[row], from_early->p_alive[it->second], 1e-9) << id;
  }
  EXPECT_EQ(compared, from_early->customer_ids.size());
  EXPECT_GT(scored, 500u);
  full.reset();
  early->reset();
  fs::remove_all(dir);
}

// 10% more customers from the same generator keep >= 95% of the existing customers in their
// segment.
TEST(BuildTest, GrowthKeepsSegments) {
  std::string dir = TempPath("growth");
  std::unique_ptr<Engine> engine;
  ShopBuild first = BuildShop(dir, 4000, 11, nullptr, &engine);
  BuildOptions options;
  options.quiet = true;
  // The same generator with 10% more customers: the first 4,000 are the same people.
  GenerateOptions gen;
  gen.customers = 4400;
  gen.seed = 11;
  gen.write_csv = false;
  Context ctx;
  ctx.seed = 11;
  ASSERT_TRUE(GenerateShop(gen, dir + "/shop2", ctx).ok());
  SourceSpec source;
  source.path = dir + "/shop2/events.jsonl";
  ASSERT_TRUE(engine->Ingest({source}, IngestOptions(), nullptr).ok());
  auto grown = RunBuild(*engine, options);
  ASSERT_TRUE(grown.ok());
  std::unordered_map<std::string, int64_t> before;
  for (size_t row = 0; row < first.build.customer_ids.size(); ++row) {
    before[first.build.customer_ids[row]] = first.build.segment_id[row];
  }
  size_t kept = 0, compared = 0;
  for (size_t row = 0; row < grown->customer_ids.size(); ++row) {
    auto it = before.find(grown->customer_ids[row]);
    if (it == before.end()) continue;
    ++compared;
    kept += it->second == grown->segment_id[row];
  }
  EXPECT_GT(compared, 3900u);
  EXPECT_GE(static_cast<double>(kept) / compared, 0.95) << kept << " of " << compared;
  std::printf("growth: %zu of %zu customers kept their segment\n", kept, compared);
  engine.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// Cross-sell end to end: the generator's planted category affinities come out of the stored
// baskets as rules with lift > 1, customers who bought an antecedent but not its consequent are
// recommended the consequent more often than others are, and segments report their own rules.
TEST(BuildTest, PlantedAffinitiesBecomeRulesAndRecommendations) {
  std::string dir = TempPath("affinity");
  std::unique_ptr<Engine> engine;
  ShopBuild shop = BuildShop(dir, 3000, 21, nullptr, &engine);
  AffinityOptions options;
  options.min_support = 0.002;
  options.min_confidence = 0.05;
  options.top = 0;
  options.json = true;
  auto report = AffinityReport(*engine, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  size_t found = 0;
  for (const PlantedAffinity& planted : PlantedAffinities()) {
    std::string needle = "{\"antecedent\":[\"" + std::string(planted.antecedent) + "\"],\"consequent\":[\"" +
                         std::string(planted.consequent) + "\"]";
    size_t at = report->find(needle);
    if (at == std::string::npos) continue;
    size_t lift_at = report->find("\"lift\":", at) + 7;
    EXPECT_GT(std::stod(report->substr(lift_at, 12)), 1.5) << needle;
    ++found;
  }
  EXPECT_GE(found, PlantedAffinities().size() - 1) << *report;
  // Recommendations follow the planted rules: among customers with recommendations, some are
  // recommended a planted consequent.
  size_t with_recs = 0, planted_recs = 0;
  for (const std::string& recs : shop.build.recommendations) {
    if (recs.empty()) continue;
    ++with_recs;
    for (const PlantedAffinity& planted : PlantedAffinities()) {
      if (recs.find(planted.consequent) != std::string::npos) { ++planted_recs; break; }
    }
  }
  EXPECT_GT(with_recs, 500u);
  EXPECT_GT(planted_recs, with_recs / 2);
  size_t segments_with_rules = 0;
  for (const SegmentInfo& s : shop.build.segments) segments_with_rules += !s.cross_sell_rules.empty();
  EXPECT_GE(segments_with_rules, 2u);
  engine.reset();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace shoal
