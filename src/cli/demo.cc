#include "cli/demo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "cli/progress.h"
#include "engine/build.h"
#include "engine/engine.h"
#include "generate/generate.h"

namespace shoal {

namespace {

// customer_id -> planted segment, from the generator's truth file.
std::unordered_map<std::string, std::string> ReadTruth(const std::string& path) {
  std::unordered_map<std::string, std::string> truth;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    auto comma = line.find(',');
    if (comma != std::string::npos) truth[line.substr(0, comma)] = line.substr(comma + 1);
  }
  return truth;
}

}  // namespace

Status RunDemo(const DemoOptions& options) {
  namespace fs = std::filesystem;
  const fs::path dir(options.dir);
  const fs::path shop = dir / "shop", db = dir / "db", export_path = dir / "export.csv";
  std::error_code ec;
  fs::remove_all(db, ec);
  fs::remove_all(shop, ec);
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("cannot create " + dir.string() + ": " + ec.message());

  std::printf("shoal demo: a synthetic shop of %llu customers in %s\n\n",
              static_cast<unsigned long long>(options.customers), dir.string().c_str());
  Context ctx;
  ctx.seed = options.seed;
  GenerateOptions gen;
  gen.customers = options.customers;
  gen.seed = options.seed;
  std::printf("1. generate  ");
  std::fflush(stdout);
  SHOAL_ASSIGN_OR_RETURN(GenerateStats stats, GenerateShop(gen, shop.string(), ctx));
  std::printf("%llu events, %llu orders -> %s\n", static_cast<unsigned long long>(stats.events),
              static_cast<unsigned long long>(stats.orders), shop.string().c_str());

  EngineOptions eo;
  eo.db_dir = db.string();
  SHOAL_ASSIGN_OR_RETURN(auto engine, Engine::Open(eo, ctx));
  std::printf("2. ingest    ");
  std::fflush(stdout);
  SourceSpec source;
  source.path = (shop / "events.jsonl").string();
  ProgressPrinter printer("   ingest");
  SHOAL_ASSIGN_OR_RETURN(IngestSummary summary,
                         engine->Ingest({source}, IngestOptions(), [&](const Progress& p) { printer.Update(p); }));
  printer.Finish();
  std::printf("%llu events stored in %.1f s (%s events/s), %llu profiles, %llu identity merges, %llu bad\n",
              static_cast<unsigned long long>(summary.stored), summary.seconds,
              HumanCount(summary.seconds > 0 ? summary.events / summary.seconds : 0).c_str(),
              static_cast<unsigned long long>(summary.profiles), static_cast<unsigned long long>(summary.merges),
              static_cast<unsigned long long>(summary.bad));

  std::printf("3. traits    ");
  SHOAL_ASSIGN_OR_RETURN(TraitTable table, engine->ComputeTraits(std::nullopt));
  std::printf("%zu traits for %zu profiles\n", table.matrix.traits.size(), table.profiles.size());
  SHOAL_RETURN_IF_ERROR(engine->ExportCsv(export_path.string(), std::nullopt));
  std::printf("4. export    %s\n\n", export_path.string().c_str());

  // Mean traits per planted segment: what the traits see of each behaviour.
  auto truth = ReadTruth((shop / "truth.csv").string());
  const char* shown[] = {"frequency", "monetary_total", "aov", "recency_days", "discount_share",
                         "premium_index", "cart_abandonment_rate", "product_views", "email_open_rate"};
  std::vector<int> cols;
  std::printf("%-32s %8s", "planted segment", "profiles");
  for (const char* name : shown) {
    int c = table.matrix.Find(name);
    cols.push_back(c);
    if (c >= 0) std::printf(" %14s", name);
  }
  std::printf("\n");
  std::map<std::string, std::pair<size_t, std::vector<double>>> agg;
  const size_t n = table.profiles.size();
  for (size_t row = 0; row < n; ++row) {
    auto it = truth.find(table.customer_ids[row]);
    std::string seg = it == truth.end() ? "(anonymous, never identified)" : it->second;
    auto& [count, sums] = agg[seg];
    sums.resize(cols.size() * 2, 0.0);
    ++count;
    for (size_t k = 0; k < cols.size(); ++k) {
      if (cols[k] < 0) continue;
      double v = table.matrix.values[static_cast<size_t>(cols[k]) * n + row];
      if (!std::isnan(v)) { sums[2 * k] += v; sums[2 * k + 1] += 1; }
    }
  }
  for (const auto& [seg, entry] : agg) {
    std::printf("%-32s %8zu", seg.c_str(), entry.first);
    for (size_t k = 0; k < cols.size(); ++k) {
      if (cols[k] < 0) continue;
      double cnt = entry.second[2 * k + 1];
      if (cnt > 0) std::printf(" %14.3f", entry.second[2 * k] / cnt);
      else std::printf(" %14s", "-");
    }
    std::printf("\n");
  }
  std::printf("\n5. build     segments, RFM, audiences, BTYD predictions, cross-sell\n");
  BuildOptions build_options;
  build_options.quiet = true;
  SHOAL_ASSIGN_OR_RETURN(BuildResult build, RunBuild(*engine, build_options));
  SHOAL_RETURN_IF_ERROR(engine->ExportCsv(export_path.string(), std::nullopt));
  std::printf("   %.1f s; %s\n\n", build.seconds, build.affinity_summary.c_str());
  PrintSegments(build);
  // How the found segments line up with the planted ones.
  std::map<std::string, std::map<std::string, size_t>> crosstab;
  for (size_t row = 0; row < build.profiles.size(); ++row) {
    auto it = truth.find(build.customer_ids[row]);
    if (it == truth.end()) continue;
    std::string found;
    for (const SegmentInfo& s : build.segments) if (s.id == build.segment_id[row]) found = s.name;
    crosstab[it->second][found]++;
  }
  std::printf("\nplanted segment -> the segment shoal found for most of its customers\n");
  for (const auto& [planted, found] : crosstab) {
    auto best = std::max_element(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    size_t total = 0;
    for (const auto& [name, count] : found) total += count;
    std::printf("  %-32s -> %-40s %5.1f%%\n", planted.c_str(), best->first.c_str(), 100.0 * best->second / total);
  }
  std::printf("\nexport with segments and scores: %s\n", export_path.string().c_str());
  std::printf("Try: shoal profile --db %s <customer_id>   shoal explain --db %s <customer_id>\n"
              "     shoal segments --db %s               shoal affinities --db %s\n"
              "     (customer ids are in %s)\n", db.string().c_str(), db.string().c_str(), db.string().c_str(),
              db.string().c_str(), (shop / "truth.csv").string().c_str());
  return Status::OK();
}

void PrintSegments(const BuildResult& b) {
  int width = 7;
  for (const SegmentInfo& s : b.segments) width = std::max(width, static_cast<int>(s.name.size()));
  std::printf("%-4s %-*s %9s %8s %8s  %s\n", "id", width, "segment", "customers", "share", "revenue",
              "key traits (robust z)");
  for (const SegmentInfo& s : b.segments) {
    std::string traits;
    for (const auto& [name, z] : s.key_traits) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "%s%s %+.1f", traits.empty() ? "" : ", ", name.c_str(), z);
      traits += buf;
    }
    std::printf("%-4lld %-*s %9lld %7.1f%% %7.1f%%  %s\n", static_cast<long long>(s.id), width, s.name.c_str(),
                static_cast<long long>(s.size), 100 * s.share_customers, 100 * s.share_revenue, traits.c_str());
  }
  // RFM segment sizes.
  std::vector<size_t> counts(b.rfm.segment_names.size(), 0);
  for (int32_t seg : b.rfm.segment) counts[static_cast<size_t>(seg)]++;
  std::printf("\nRFM segments:");
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i]) std::printf("  %s %zu", b.rfm.segment_names[i].c_str(), counts[i]);
  }
  std::printf("\n");
  if (!b.audience_names.empty()) {
    std::vector<size_t> sizes(b.audience_names.size(), 0);
    for (const auto& row : b.audiences) for (uint32_t a : row) sizes[a]++;
    std::printf("audiences:");
    for (size_t i = 0; i < sizes.size(); ++i) std::printf("  %s %zu", b.audience_names[i].c_str(), sizes[i]);
    std::printf("\n");
  }
}

}  // namespace shoal
