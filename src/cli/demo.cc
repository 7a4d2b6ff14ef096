#include "cli/demo.h"

#include <httplib.h>

#include <algorithm>
#include <simdjson.h>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "cli/progress.h"
#include "engine/build.h"
#include "common/time.h"
#include "engine/engine.h"
#include "engine/live_model.h"
#include "generate/generate.h"
#include "server/server.h"

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

// The webhook receiver of step 6: an endpoint on loopback that notes what arrives and when.
struct DemoReceiver {
  httplib::Server http;
  std::thread thread;
  int port = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> records;

  Status Start() {
    http.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mu);
        records.emplace_back(req.body, std::chrono::steady_clock::now());
      }
      cv.notify_all();
      res.status = 200;
    });
    port = http.bind_to_any_port("127.0.0.1");
    if (port <= 0) return Status::IOError("demo: cannot bind a loopback port for the webhook receiver");
    thread = std::thread([this] { http.listen_after_bind(); });
    return Status::OK();
  }
  ~DemoReceiver() {
    http.stop();
    if (thread.joinable()) thread.join();
  }
};

// Step 6: the server re-segments a customer the moment they order and pushes the change to the
// receiver (the workspace config names it as a destination). The server takes over `engine`.
Status ShowLiveChange(std::unique_ptr<Engine> engine, const BuildResult& build, const std::string& db,
                      DemoReceiver& receiver) {
  SHOAL_ASSIGN_OR_RETURN(LiveModel model, LoadLiveModel(*engine));
  // A customer the build found lapsing, with the highest value among them.
  size_t chosen = build.profiles.size();
  for (const char* wanted : {"Can't Lose Them", "At Risk", "Hibernating", "About to Sleep"}) {
    double best = -1;
    for (size_t row = 0; row < build.profiles.size(); ++row) {
      if (build.rfm.segment_names[static_cast<size_t>(build.rfm.segment[row])] != wanted) continue;
      if (build.rfm.m[row] > best) {
        best = build.rfm.m[row];
        chosen = row;
      }
    }
    if (chosen < build.profiles.size()) break;
  }
  if (chosen == build.profiles.size()) return Status::OK();
  const std::string customer = build.customer_ids[chosen];
  // The server's clock starts at the build's as_of (the shop's "today") and runs in real time.
  const auto t0 = std::chrono::steady_clock::now();
  const TimeMicros base = model.as_of;
  ServerOptions so;
  so.db_dir = db;
  so.port = 0;
  so.announce_initial_memberships = false;  // a baseline: only changes from here on
  so.context.clock = [base, t0] {
    return base + std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  };
  auto started = std::chrono::steady_clock::now();
  SHOAL_ASSIGN_OR_RETURN(std::unique_ptr<Server> server, Server::Start(so, nullptr, std::move(engine)));
  const double start_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string before_segment;
  for (const SegmentInfo& seg : build.segments) {
    if (seg.id == build.segment_id[chosen]) before_segment = seg.name;
  }
  std::printf("\n6. serve     the server (started in %.2f s on 127.0.0.1:%d) with a webhook on 127.0.0.1:%d\n",
              start_seconds, server->port(), receiver.port);
  std::printf("   customer %s: RFM %s, segment \"%s\"; they place an order of 2,500.00 now\n",
              customer.c_str(), build.rfm.segment_names[static_cast<size_t>(build.rfm.segment[chosen])].c_str(),
              before_segment.c_str());
  httplib::Client client("127.0.0.1", server->port());
  const std::string event = R"({"event_id":"demo-live-order","type":"order","timestamp":)" +
                            std::to_string(so.context.clock() / 1000) + R"(,"customer_id":")" + customer +
                            R"(","total":2500})";
  const auto sent = std::chrono::steady_clock::now();
  auto res = client.Post("/v1/events", event, "application/json");
  const auto answered = std::chrono::steady_clock::now();
  if (!res || res->status != 200) {
    return Status::Internal("demo: the server refused the event: " + (res ? res->body : std::string("no answer")));
  }
  // Wait for the records to stop arriving (all of one event's changes come in one group).
  {
    std::unique_lock lock(receiver.mu);
    receiver.cv.wait_for(lock, std::chrono::seconds(3), [&] { return !receiver.records.empty(); });
    while (receiver.cv.wait_for(lock, std::chrono::milliseconds(100)) != std::cv_status::timeout) {
    }
  }
  server->Stop();
  {  // the receiver goes with the demo: later `shoal serve` runs on this workspace do not send
    std::ofstream out(std::filesystem::path(db) / "shoal.toml", std::ios::binary | std::ios::trunc);
    out << "# shoal demo workspace (step 6's webhook destination removed)\n";
  }
  std::lock_guard lock(receiver.mu);
  const auto& records = receiver.records;
  if (records.empty()) {
    std::printf("   no membership changed\n");
    return Status::OK();
  }
  for (const auto& [body, at] : records) {
    auto field = [&](const char* key) {
      std::string k = std::string("\"") + key + "\":\"";
      size_t pos = body.find(k);
      if (pos == std::string::npos) return std::string();
      pos += k.size();
      return body.substr(pos, body.find('"', pos) - pos);
    };
    std::printf("   webhook <- %-7s %-45s after %.1f ms\n", field("type").c_str(), field("membership").c_str(),
                std::chrono::duration<double, std::milli>(at - sent).count());
  }
  std::printf("   event -> webhook: %.1f ms for all %zu records (the POST was answered, durable, in %.1f ms)\n",
              std::chrono::duration<double, std::milli>(records.back().second - sent).count(), records.size(),
              std::chrono::duration<double, std::milli>(answered - sent).count());
  std::printf("   first record: %s\n", records.front().first.c_str());
  return Status::OK();
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
  // Step 6's webhook receiver, named in the workspace config as a destination.
  DemoReceiver receiver;
  SHOAL_RETURN_IF_ERROR(receiver.Start());
  fs::create_directories(db, ec);
  {
    std::ofstream out(db / "shoal.toml", std::ios::binary | std::ios::trunc);
    out << "# shoal demo: the webhook receiver of step 6\n[[destinations]]\nname = \"demo\"\n"
        << "url = \"http://127.0.0.1:" << receiver.port << "/hook\"\nmarketing = false\n";
    if (!out) return Status::IOError("cannot write " + (db / "shoal.toml").string());
  }

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
  std::printf("\n5. build     segments, RFM, audiences, BTYD predictions, propensities, cross-sell\n");
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
  SHOAL_RETURN_IF_ERROR(ShowLiveChange(std::move(engine), build, db.string(), receiver));
  std::printf("\nexport with segments and scores: %s\n", export_path.string().c_str());
  std::printf("Try: shoal profile --db %s <customer_id>   shoal explain --db %s <customer_id>\n"
              "     shoal segments --db %s               shoal affinities --db %s\n"
              "     (customer ids are in %s)\n", db.string().c_str(), db.string().c_str(), db.string().c_str(),
              db.string().c_str(), (shop / "truth.csv").string().c_str());
  return Status::OK();
}

void PrintModels(const BuildResult& b) {
  simdjson::dom::parser parser;
  simdjson::dom::element m;
  if (b.models_json.empty() || parser.parse(b.models_json).get(m)) {
    std::printf("models: none stored\n");
    return;
  }
  std::string_view unit = "", end = "";
  int64_t customers = 0;
  if (m["time_unit"].get(unit)) unit = "?";
  if (m["calibration_end"].get(end)) end = "?";
  if (m["customers"].get(customers)) customers = 0;
  std::printf("BTYD models (calibration to %.*s, time in %.*ss, %lld customers with orders)\n",
              static_cast<int>(end.size()), end.data(), static_cast<int>(unit.size()), unit.data(),
              static_cast<long long>(customers));
  auto model = [&](const char* key, const char* label, std::initializer_list<const char*> params) {
    simdjson::dom::element e;
    if (m[key].get(e)) return;
    std::string line = std::string("  ") + label;
    line.resize(std::max<size_t>(line.size(), 15), ' ');
    for (const char* p : params) {
      double v = 0, se = 0;
      if (e[p].get(v)) continue;
      char buf[96];
      if (!e[std::string(p) + "_se"].get(se)) {
        std::snprintf(buf, sizeof buf, "%s %.4g (se %.2g)  ", p, v, se);
      } else {
        std::snprintf(buf, sizeof buf, "%s %.4g  ", p, v);
      }
      line += buf;
    }
    double ll = 0;
    if (!e["loglik"].get(ll)) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "log-lik %.2f", ll);
      line += buf;
    }
    bool converged = true;
    if (!e["converged"].get(converged) && !converged) {
      std::string_view why;
      line += "  NOT converged";
      if (!e["message"].get(why)) line += ": " + std::string(why);
    }
    int64_t repeat = 0;
    if (!e["repeat_customers"].get(repeat)) line += "  (" + std::to_string(repeat) + " repeat customers)";
    std::printf("%s\n", line.c_str());
  };
  model("bgnbd", "BG/NBD", {"r", "alpha", "a", "b"});
  model("pareto_nbd", "Pareto/NBD", {"r", "alpha", "s", "beta"});
  model("gamma_gamma", "Gamma-Gamma", {"p", "q", "gamma"});
  if (!b.propensity_report.empty()) std::printf("\n%s", b.propensity_report.c_str());
  std::printf("(shoal models --json: every figure, calibration tables and feature importance)\n");
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
