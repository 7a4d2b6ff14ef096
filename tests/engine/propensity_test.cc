#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "common/time.h"
#include "engine/build.h"
#include "engine/propensity_stage.h"
#include "generate/generate.h"

namespace shoal {
namespace {

namespace fs = std::filesystem;

std::string TempPath(const std::string& name) {
  fs::path p = fs::temp_directory_path() /
               ("shoal-propensity-test-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(p);
  return p.string();
}

double Number(simdjson::dom::element doc, std::initializer_list<const char*> path) {
  simdjson::dom::element e = doc;
  for (const char* key : path) {
    if (e[key].get(e)) return std::nan("");
  }
  double v = std::nan("");
  if (e.get(v)) return std::nan("");
  return v;
}

std::string Text(simdjson::dom::element doc, std::initializer_list<const char*> path) {
  simdjson::dom::element e = doc;
  for (const char* key : path) {
    if (e[key].get(e)) return "";
  }
  std::string_view v;
  if (e.get(v)) return "";
  return std::string(v);
}

// Issue 5 acceptance on CDNOW: features as of week 39 (cut-off 1997-10-01), label = a purchase in
// weeks 40-52 (91 days); the purchase model's held-out AUC is at least BG/NBD's P(>= 1 purchase).
TEST(PropensityStageTest, CdnowPurchaseModelRanksAtLeastAsWellAsBgNbd) {
  std::string dir = TempPath("cdnow");
  fs::create_directories(dir);
  {
    std::ofstream cfg(dir + "/shoal.toml");
    cfg << "[predictions]\nholdout_cutoff = \"1997-10-01\"\npurchase_horizon_days = 91\n";
  }
  EngineOptions eo;
  eo.db_dir = dir + "/db";
  eo.config_path = dir + "/shoal.toml";
  auto engine = Engine::Open(eo, Context());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  SourceSpec source;
  source.path = std::string(SHOAL_SHARED_DATA) + "/cdnow/cdnowElog.csv";
  auto mapping = Mapping::FromTomlFile(std::string(SHOAL_SOURCE_DIR) + "/recipes/cdnow-elog.toml");
  ASSERT_TRUE(mapping.ok()) << mapping.status().ToString();
  source.mapping = *mapping;
  ASSERT_TRUE((*engine)->Ingest({source}, IngestOptions(), nullptr).ok());
  BuildOptions options;
  options.calibration_end_day = DayOf(*ParseIso8601("1997-09-30"));
  options.time_unit = "week";
  options.quiet = true;
  auto built = RunBuild(**engine, options);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(built->models_json).get(doc));
  simdjson::dom::element purchase;
  ASSERT_FALSE(doc["propensity"]["models"]["purchase"].get(purchase)) << built->models_json;
  EXPECT_EQ(Text(purchase, {"holdout_cutoff"}), "1997-10-01");
  // The held-out labels, counted straight from the file: customers with an order in weeks 40-52.
  std::set<std::string> buyers;
  {
    std::ifstream in(source.path);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      size_t c1 = line.find(','), c2 = line.find(',', c1 + 1), c3 = line.find(',', c2 + 1);
      std::string date = line.substr(c2 + 1, c3 - c2 - 1);
      if (date >= "19971001" && date <= "19971230") buyers.insert(line.substr(0, c1));
    }
  }
  EXPECT_EQ(Number(purchase, {"evaluation", "model", "rows"}), 2357);
  EXPECT_EQ(Number(purchase, {"evaluation", "model", "positives"}),
            static_cast<double>(buyers.size()));
  const double model_auc = Number(purchase, {"evaluation", "model", "auc"});
  const double bgnbd_auc = Number(purchase, {"evaluation", "bgnbd", "auc"});
  const double recency_auc = Number(purchase, {"evaluation", "recency", "auc"});
  EXPECT_GT(bgnbd_auc, 0.75);  // BG/NBD fitted on weeks 1-39 ranks the quarter well
  EXPECT_GE(model_auc, bgnbd_auc);
  EXPECT_GE(model_auc, recency_auc);
  EXPECT_EQ(Text(purchase, {"scorer"}), "model");
  // Churn is evaluated the same way; upgrade has no unit prices and referral no events here.
  EXPECT_EQ(Text(doc, {"propensity", "models", "churn", "status"}), "ok");
  EXPECT_EQ(Text(doc, {"propensity", "models", "upgrade", "status"}), "skipped");
  EXPECT_EQ(Text(doc, {"propensity", "models", "referral", "message"}),
            "no referral events in the data");
  // Every customer gets purchase and churn scores; the skipped models leave empty cells.
  size_t scored = 0;
  for (size_t row = 0; row < built->customer_ids.size(); ++row) {
    double p = built->p_purchase_30d[row], c = built->p_churn_90d[row];
    scored += p >= 0 && p <= 1 && c >= 0 && c <= 1;
    EXPECT_TRUE(std::isnan(built->p_upgrade[row]));
    EXPECT_TRUE(std::isnan(built->p_referral[row]));
  }
  EXPECT_EQ(scored, 2357u);
  // Stored and read back, with the models and the readable report.
  auto stored = LoadBuild(**engine);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->p_purchase_30d.size(), built->p_purchase_30d.size());
  EXPECT_EQ(stored->p_churn_90d[7], built->p_churn_90d[7]);
  EXPECT_NE(stored->propensity_report.find("purchase (91-day window)"), std::string::npos);
  std::string bytes;
  ASSERT_TRUE(
      (*engine)->const_store().Get(Column::kModels, "build/propensity/purchase", &bytes).ok());
  auto model = PropensityModel::Deserialize(bytes);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_FALSE(
      (*engine)->const_store().Get(Column::kModels, "build/propensity/upgrade", &bytes).ok());
  engine->reset();
  fs::remove_all(dir);
}

struct Shop {
  std::string dir;
  std::unique_ptr<Engine> engine;
};

Shop IngestShop(const std::string& name, uint64_t customers, uint64_t seed) {
  Shop shop;
  shop.dir = TempPath(name);
  GenerateOptions gen;
  gen.customers = customers;
  gen.seed = seed;
  gen.write_csv = false;
  Context ctx;
  ctx.seed = seed;
  auto stats = GenerateShop(gen, shop.dir + "/shop", ctx);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  EngineOptions eo;
  eo.db_dir = shop.dir + "/db";
  auto engine = Engine::Open(eo, ctx);
  EXPECT_TRUE(engine.ok());
  SourceSpec source;
  source.path = shop.dir + "/shop/events.jsonl";
  EXPECT_TRUE((*engine)->Ingest({source}, IngestOptions(), nullptr).ok());
  shop.engine = std::move(engine).value();
  return shop;
}

// A generated shop: the four scores exist and are probabilities, and the purchase model ranks the
// held-out month better than recency alone (and than BG/NBD).
TEST(PropensityStageTest, GeneratedShopHasFourScoresAndThePurchaseModelBeatsRecency) {
  Shop shop = IngestShop("shop", 3000, 7);
  BuildOptions options;
  options.quiet = true;
  auto built = RunBuild(*shop.engine, options);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(built->models_json).get(doc));
  for (const char* model : {"purchase", "churn", "upgrade", "referral"}) {
    EXPECT_EQ(Text(doc, {"propensity", "models", model, "status"}), "ok")
        << model << ": " << built->propensity_report;
  }
  const double model_auc =
      Number(doc, {"propensity", "models", "purchase", "evaluation", "model", "auc"});
  const double recency_auc =
      Number(doc, {"propensity", "models", "purchase", "evaluation", "recency", "auc"});
  const double bgnbd_auc =
      Number(doc, {"propensity", "models", "purchase", "evaluation", "bgnbd", "auc"});
  EXPECT_GT(model_auc, recency_auc + 0.05);
  EXPECT_GE(model_auc, bgnbd_auc);
  const std::vector<double>* columns[] = {&built->p_purchase_30d, &built->p_churn_90d,
                                          &built->p_upgrade, &built->p_referral};
  for (const std::vector<double>* column : columns) {
    size_t scored = 0;
    for (double p : *column) {
      if (std::isnan(p)) continue;
      ++scored;
      EXPECT_GE(p, 0.0);
      EXPECT_LE(p, 1.0);
    }
    EXPECT_GT(scored, 1000u);
  }
  // Customers with orders get purchase and churn scores; referral scores everyone.
  for (size_t row = 0; row < built->customer_ids.size(); ++row) {
    EXPECT_EQ(std::isnan(built->p_purchase_30d[row]), std::isnan(built->p_alive[row]))
        << built->customer_ids[row];
    EXPECT_FALSE(std::isnan(built->p_referral[row]));
  }
  // The export carries the four columns; the profile JSON the four scores.
  std::string out = shop.dir + "/export.csv";
  ASSERT_TRUE(shop.engine->ExportCsv(out, std::nullopt).ok());
  std::ifstream in(out);
  std::string header;
  std::getline(in, header);
  EXPECT_NE(header.find(",p_purchase_30d,p_churn_90d,p_upgrade,p_referral"), std::string::npos)
      << header;
  auto profile = shop.engine->ProfileJson(built->customer_ids[0], std::nullopt);
  ASSERT_TRUE(profile.ok());
  EXPECT_NE(profile->find("\"p_referral\":"), std::string::npos);
  shop.engine.reset();
  fs::remove_all(shop.dir);
}

// Features at a cut-off are the traits as of it (ComputeTraits), and nothing after the last label
// window reaches the training rows: a workspace with every later event removed gives the same
// features and labels, byte for byte.
TEST(PropensityStageTest, TrainingRowsDoNotSeeEventsAfterTheirWindows) {
  Shop full = IngestShop("leak-full", 1500, 5);
  const TimeMicros as_of = full.engine->DefaultAsOf();
  PropensitySettings settings;
  settings.cutoffs = 3;
  settings.holdout_day = DayOf(as_of) - 200;  // every window ends 110+ days before the data do
  auto a = BuildPropensityData(*full.engine, as_of, settings, 7.0);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  ASSERT_EQ(a->cutoffs.size(), 3u);  // every model's cut-offs: the held-out day, -30, -60
  // Features equal the as-of traits of the same customers, at every cut-off of the one replay.
  const size_t d = a->feature_names.size();
  for (const PropensityCutoffRows& last : a->cutoffs) {
    auto traits = full.engine->ComputeTraits(last.cutoff);
    ASSERT_TRUE(traits.ok());
    EXPECT_EQ(traits->customer_ids.size(), last.rows());
    std::map<std::string, size_t> row_of;
    for (size_t r = 0; r < traits->customer_ids.size(); ++r) row_of[traits->customer_ids[r]] = r;
    const size_t num_traits = traits->matrix.traits.size();
    size_t compared = 0;
    for (size_t r = 0; r < last.rows(); ++r) {
      auto it = row_of.find(last.customer_ids[r]);
      ASSERT_NE(it, row_of.end()) << last.customer_ids[r];
      for (size_t t = 0; t < num_traits; ++t) {
        double want = traits->matrix.values[t * traits->customer_ids.size() + it->second];
        float got = last.features[r * d + t];
        if (std::isfinite(want)) {
          ASSERT_EQ(got, static_cast<float>(want))
              << a->feature_names[t] << " of " << last.customer_ids[r];
        } else {
          ASSERT_TRUE(std::isnan(got));
        }
      }
      ++compared;
    }
    EXPECT_GT(compared, 300u);
  }

  // The same shop without the events from the end of the latest window on.
  const TimeMicros window_end = (*settings.holdout_day + 90) * kMicrosPerDay;
  std::string cut_dir = full.dir + "/cut";
  fs::create_directories(cut_dir);
  {
    std::ifstream in(full.dir + "/shop/events.jsonl");
    std::ofstream out(cut_dir + "/events.jsonl");
    std::string line;
    size_t dropped = 0;
    while (std::getline(in, line)) {
      size_t at = line.find("\"timestamp\":\"") + 13;
      auto t = ParseIso8601(line.substr(at, line.find('"', at) - at));
      ASSERT_TRUE(t.ok());
      if (*t >= window_end) {
        ++dropped;
        continue;
      }
      out << line << '\n';
    }
    EXPECT_GT(dropped, 1000u);
  }
  EngineOptions eo;
  eo.db_dir = cut_dir + "/db";
  Context ctx;
  ctx.seed = 5;
  auto cut = Engine::Open(eo, ctx);
  ASSERT_TRUE(cut.ok());
  SourceSpec source;
  source.path = cut_dir + "/events.jsonl";
  ASSERT_TRUE((*cut)->Ingest({source}, IngestOptions(), nullptr).ok());
  auto b = BuildPropensityData(**cut, as_of, settings, 7.0);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_EQ(a->cutoffs.size(), b->cutoffs.size());
  for (size_t c = 0; c < a->cutoffs.size(); ++c) {
    const PropensityCutoffRows& x = a->cutoffs[c];
    const PropensityCutoffRows& y = b->cutoffs[c];
    EXPECT_EQ(x.cutoff, y.cutoff);
    ASSERT_EQ(x.customer_ids, y.customer_ids) << "cut-off " << c;
    EXPECT_EQ(0,
              std::memcmp(x.features.data(), y.features.data(), x.features.size() * sizeof(float)))
        << "features of cut-off " << FormatDate(x.cutoff);
    for (size_t m = 0; m < kNumPropensityModels; ++m) {
      ASSERT_EQ(x.labels[m].size(), y.labels[m].size());
      size_t labelled = 0;
      for (size_t r = 0; r < x.labels[m].size(); ++r) {
        ASSERT_TRUE(x.labels[m][r] == y.labels[m][r] ||
                    (std::isnan(x.labels[m][r]) && std::isnan(y.labels[m][r])))
            << PropensityModelName(m) << " label of " << x.customer_ids[r] << " at "
            << FormatDate(x.cutoff);
        labelled += !std::isnan(x.labels[m][r]);
      }
      if (!x.labels[m].empty()) {
        EXPECT_GT(labelled, 20u) << PropensityModelName(m);
      }
    }
  }
  // The build-time rows do see the later events (the full workspace has more customers).
  EXPECT_GT(a->scoring.rows(), b->scoring.rows());
  cut->reset();
  full.engine.reset();
  fs::remove_all(full.dir);
}

}  // namespace
}  // namespace shoal
