// The shoal command: one engine, driven from the command line (docs/cli.md).
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string_view>

#include "cli/demo.h"
#include "cli/progress.h"
#include "common/time.h"
#include "engine/build.h"
#include "engine/engine.h"
#include "generate/generate.h"
#include "server/server.h"

namespace shoal {
namespace {

// Ends a command whose output is written and closed and whose store is read-only or closed
// (Engine::CloseStoreForExit): freeing every profile's state and the identity graph one
// allocation at a time would take about a tenth of a short export. The process ends, the OS
// reclaims it all.
[[noreturn]] void ExitWithoutTeardown(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

int Fail(const Status& st, std::string_view hint = {}) {
  std::fprintf(stderr, "shoal: error: %s\n", st.message().c_str());
  if (!hint.empty()) std::fprintf(stderr, "  %s\n", std::string(hint).c_str());
  return 2;
}

// --as-of DATE: events strictly before the end of that day count (docs/cli.md).
Result<std::optional<TimeMicros>> ParseAsOf(const std::string& text) {
  if (text.empty()) return std::optional<TimeMicros>();
  auto t = ParseIso8601(text);
  if (!t.ok()) {
    return Status::InvalidArgument("--as-of '" + text + "' is not a date: use YYYY-MM-DD or an ISO-8601 time");
  }
  // A bare date means the end of that day; a full timestamp is taken as given.
  if (text.size() == 10) return std::optional<TimeMicros>(*t + kMicrosPerDay);
  return std::optional<TimeMicros>(*t);
}

// Every command but `ingest` (and `serve`, which may start empty) needs an existing workspace:
// a mistyped --db is an error, not a new empty folder.
Result<std::unique_ptr<Engine>> OpenEngine(const std::string& db, const std::string& config,
                                           bool read_only, bool must_exist = true) {
  EngineOptions options;
  options.db_dir = db;
  options.config_path = config;
  options.read_only = read_only;
  options.must_exist = must_exist;
  Context ctx;
  return Engine::Open(options, ctx);
}

void PrintIngestSummary(const IngestSummary& s, bool memory_detail) {
  std::printf("records read     %llu\n", static_cast<unsigned long long>(s.records));
  std::printf("events parsed    %llu\n", static_cast<unsigned long long>(s.events));
  std::printf("bad (quarantined) %llu%s%s\n", static_cast<unsigned long long>(s.bad),
              s.bad ? "  -> " : "", s.bad ? s.quarantine_path.c_str() : "");
  for (const auto& [reason, count] : s.bad_by_reason) {
    std::printf("    %-28s %llu\n", reason.c_str(), static_cast<unsigned long long>(count));
  }
  std::printf("duplicates       %llu (already stored, skipped)\n", static_cast<unsigned long long>(s.duplicates));
  if (s.suppressed) std::printf("suppressed       %llu (forgotten people)\n", static_cast<unsigned long long>(s.suppressed));
  std::printf("events stored    %llu\n", static_cast<unsigned long long>(s.stored));
  if (s.anonymous_baskets) std::printf("anonymous baskets %llu\n", static_cast<unsigned long long>(s.anonymous_baskets));
  std::printf("profiles         %llu\n", static_cast<unsigned long long>(s.profiles));
  std::printf("merges           %llu\n", static_cast<unsigned long long>(s.merges));
  std::printf("seconds          %.2f  (%s events/s)\n", s.seconds,
              HumanCount(s.seconds > 0 ? s.events / s.seconds : 0).c_str());
  std::printf("state memory     %.1f MiB (%.0f bytes per profile)\n", s.state_bytes / 1048576.0,
              s.profiles ? static_cast<double>(s.state_bytes) / s.profiles : 0.0);
  if (memory_detail) {
    const MemoryBreakdown& m = s.memory;
    double per = s.profiles ? 1.0 / static_cast<double>(s.profiles) : 0.0;
    auto line = [&](const char* name, size_t bytes) {
      std::printf("    %-22s %9.1f MiB %7.0f B/profile\n", name, bytes / 1048576.0, bytes * per);
    };
    line("event-id dedupe", m.dedupe);
    line("identity graph", m.identity);
    line("trait states (slots)", m.states_inline);
    line("trait states (heap)", m.states_heap);
    line("other", m.other);
    line("store memtables", m.store.memtables);
    line("store block cache", m.store.block_cache);
    line("store table readers", m.store.table_readers);
  }
  for (const auto& u : s.unreadable_sources) std::printf("UNREADABLE: %s\n", u.c_str());
}

}  // namespace

}  // namespace shoal

// XGBoost's OpenMP threads (libgomp) spin while idle unless OMP_WAIT_POLICY says otherwise,
// and libgomp reads it when it is loaded, before main. On a busy or shared machine the spinning
// costs far more than it gives (a propensity model took 152 s instead of 33 s), and in `serve`
// it would take cores from the requests during a rebuild. So the commands that train or
// predict with XGBoost run again with OMP_WAIT_POLICY=PASSIVE when it is not set; set it
// yourself (e.g. ACTIVE) to choose otherwise.
static void RunWithPassiveOpenMpWait(int argc, char** argv) {
  if (argc < 2 || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  const std::string_view command = argv[1];
  if (command != "build" && command != "serve" && command != "demo") return;
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
}

int main(int argc, char** argv) {
  using namespace shoal;
  RunWithPassiveOpenMpWait(argc, argv);
  CLI::App app{"shoal: customer profiles, traits and segments from e-commerce events.\n"
               "Docs: docs/cli.md. Start with `shoal demo`."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "shoal 0.1.0");

  // ingest
  std::string db = "./shoal-data", config, format, mapping_file, map_spec, quarantine;
  std::vector<std::string> files;
  bool strict = false, quiet = false, memory_detail = false;
  auto* ingest = app.add_subcommand("ingest", "Load event files (JSONL or delimited) into a workspace");
  ingest->add_option("--db", db, "workspace folder")->capture_default_str();
  ingest->add_option("--config", config, "workspace TOML (custom event types, identity, traits); copied into the workspace");
  ingest->add_option("--format", format, "jsonl or csv (default: by file extension)")->check(CLI::IsMember({"jsonl", "csv", "tsv", "delimited"}));
  ingest->add_option("--mapping", mapping_file, "mapping TOML for delimited files (see recipes/)");
  ingest->add_option("--map", map_spec, "inline mapping: field=column[:format],... e.g. customer_id=CustomerID,timestamp=InvoiceDate:%m/%d/%Y %H:%M");
  ingest->add_option("--quarantine", quarantine, "where bad records go (default: <db>/quarantine.jsonl)");
  ingest->add_flag("--strict", strict, "exit non-zero if any record was quarantined");
  ingest->add_flag("--quiet", quiet, "no progress output");
  ingest->add_flag("--memory", memory_detail, "print where resident memory goes, structure by structure");
  ingest->add_option("files", files, "files to load ('-' = standard input)")->required();

  // profile
  std::string identifier, as_of_text;
  auto* profile = app.add_subcommand("profile", "Print one customer's profile as JSON");
  profile->add_option("--db", db, "workspace folder")->capture_default_str();
  profile->add_option("--as-of", as_of_text, "compute traits as of this date (YYYY-MM-DD)");
  profile->add_option("identifier", identifier, "customer id, email or anonymous id")->required();

  // export
  std::string out_path;
  auto* exp = app.add_subcommand("export", "Write a CSV with one row per customer and every trait");
  exp->add_option("--db", db, "workspace folder")->capture_default_str();
  exp->add_option("--out", out_path, "output CSV path")->required();
  exp->add_option("--as-of", as_of_text, "traits as of this date: only events before its end count (YYYY-MM-DD)");
  std::vector<std::string> export_columns;
  exp->add_option("--columns", export_columns, "only these columns, in this order (trait or build column names, comma-separated), e.g. recency_days,frequency,monetary_total")->delimiter(',');

  // generate
  GenerateOptions gen;
  std::string gen_out;
  auto* generate = app.add_subcommand("generate", "Write a synthetic shop (events of every type, 6 planted segments)");
  generate->add_option("--customers", gen.customers, "number of customers")->capture_default_str();
  generate->add_option("--seed", gen.seed, "random seed")->capture_default_str();
  generate->add_option("--out", gen_out, "output folder")->required();

  // forget
  auto* forget = app.add_subcommand("forget", "Erase a person: events, identifiers, profile (GDPR art. 17)");
  forget->add_option("--db", db, "workspace folder")->capture_default_str();
  forget->add_option("identifier", identifier, "any identifier of the person")->required();

  // compact
  auto* compact = app.add_subcommand(
      "compact", "Compact the workspace's store: compress the event blocks ingests wrote uncompressed, drop deleted data");
  compact->add_option("--db", db, "workspace folder")->capture_default_str();

  // build
  std::string calibration_end, time_unit;
  int k_override = -1;
  auto* build = app.add_subcommand("build", "Compute RFM segments, behavioural clusters, audiences, predictions, cross-sell");
  build->add_option("--db", db, "workspace folder")->capture_default_str();
  build->add_option("--as-of", as_of_text, "traits as of this date (YYYY-MM-DD); default: the latest event's day");
  build->add_option("--calibration-end", calibration_end, "last day of the BTYD calibration period (YYYY-MM-DD); default: the day before --as-of");
  build->add_option("--time-unit", time_unit, "BTYD time unit: day or week (default: config, else week)")->check(CLI::IsMember({"day", "week"}));
  build->add_option("--k", k_override, "number of behavioural clusters (0 = automatic; default: config)");
  build->add_flag("--quiet", quiet, "no progress lines");

  // segments
  bool json_out = false;
  auto* segments = app.add_subcommand("segments", "Print the segments of the last build");
  segments->add_option("--db", db, "workspace folder")->capture_default_str();
  segments->add_flag("--json", json_out, "the full report as JSON");

  // models
  auto* models = app.add_subcommand("models", "Print the fitted models' parameters and diagnostics");
  models->add_option("--db", db, "workspace folder")->capture_default_str();
  models->add_flag("--json", json_out, "as JSON");

  // serve
  std::string bind_address;
  int port = -1;
  auto* serve = app.add_subcommand("serve", "Run the real-time HTTP/JSON API and activation (docs/server.md)");
  serve->add_option("--db", db, "workspace folder")->capture_default_str();
  serve->add_option("--config", config, "workspace TOML (copied into the workspace)");
  serve->add_option("--port", port, "port (default: [server].port, else 8080; 0 = any free port)");
  serve->add_option("--bind", bind_address, "address (default 127.0.0.1; others need [[server.tokens]])");

  // explain
  auto* explain = app.add_subcommand("explain", "Say why a customer is in each of their segments and audiences");
  explain->add_option("--db", db, "workspace folder")->capture_default_str();
  explain->add_option("identifier", identifier, "customer id, email or anonymous id")->required();

  // affinities
  AffinityOptions affinity_options;
  auto* affinities = app.add_subcommand("affinities", "Print cross-sell association rules over the stored orders");
  affinities->add_option("--db", db, "workspace folder")->capture_default_str();
  affinities->add_option("--level", affinity_options.level, "category or product")->capture_default_str()->check(CLI::IsMember({"category", "product"}));
  affinities->add_option("--min-support", affinity_options.min_support, "fraction of baskets, or a count if >= 1")->capture_default_str();
  affinities->add_option("--min-confidence", affinity_options.min_confidence, "minimum confidence")->capture_default_str();
  affinities->add_option("--top", affinity_options.top, "rules to print, by lift (0 = all)")->capture_default_str();
  affinities->add_flag("--json", affinity_options.json, "one JSON object per rule and line");

  // demo
  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Generate a shop, ingest it, build and summarise (the embedded default)");
  demo_cmd->add_option("--dir", demo.dir, "working folder")->capture_default_str();
  demo_cmd->add_option("--customers", demo.customers, "customers to generate")->capture_default_str();
  demo_cmd->add_option("--seed", demo.seed, "random seed")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*serve) {
      ServerOptions options;
      options.db_dir = db;
      options.config_path = config;
      if (!bind_address.empty()) options.bind = bind_address;
      if (port >= 0) options.port = port;
      return ServeUntilSignal(options);
    }
    if (*ingest) {
      auto engine = OpenEngine(db, config, false, /*must_exist=*/false);
      if (!engine.ok()) return Fail(engine.status());
      std::optional<Mapping> mapping;
      if (!mapping_file.empty()) {
        auto m = Mapping::FromTomlFile(mapping_file);
        if (!m.ok()) return Fail(m.status(), "see docs/mappings.md and the recipes/ folder");
        mapping = std::move(m).value();
      } else if (!map_spec.empty()) {
        auto m = Mapping::FromSpec(map_spec);
        if (!m.ok()) return Fail(m.status(), "see docs/mappings.md");
        mapping = std::move(m).value();
      }
      std::vector<SourceSpec> sources;
      for (const auto& f : files) {
        SourceSpec s;
        s.path = f;
        if (format == "jsonl") s.format = SourceFormat::kJsonl;
        else if (!format.empty()) s.format = SourceFormat::kDelimited;
        s.mapping = mapping;
        sources.push_back(std::move(s));
      }
      IngestOptions options;
      options.quarantine_path = quarantine;
      ProgressPrinter printer("ingest", quiet);
      auto summary = (*engine)->Ingest(sources, options, [&](const Progress& p) { printer.Update(p); });
      printer.Finish();
      if (!summary.ok()) return Fail(summary.status());
      PrintIngestSummary(*summary, memory_detail);
      // Freeing every profile's state one allocation at a time would add ~0.1 s to a
      // 10M-event ingest: the store is closed properly and the OS reclaims the rest.
      (*engine)->CloseStoreForExit();
      if (!summary->unreadable_sources.empty()) ExitWithoutTeardown(1);
      if (strict && summary->bad > 0) ExitWithoutTeardown(3);
      ExitWithoutTeardown(0);
    }
    if (*profile) {
      auto as_of = ParseAsOf(as_of_text);
      if (!as_of.ok()) return Fail(as_of.status());
      auto engine = OpenEngine(db, "", true);
      if (!engine.ok()) return Fail(engine.status());
      auto json = (*engine)->ProfileJson(identifier, *as_of);
      if (!json.ok()) return Fail(json.status());
      std::printf("%s\n", json->c_str());
      ExitWithoutTeardown(0);
    }
    if (*exp) {
      auto as_of = ParseAsOf(as_of_text);
      if (!as_of.ok()) return Fail(as_of.status());
      auto engine = OpenEngine(db, "", true);
      if (!engine.ok()) return Fail(engine.status());
      Status st = (*engine)->ExportCsv(out_path, *as_of, export_columns);
      if (!st.ok()) return Fail(st);
      std::printf("wrote %s (%zu profiles)\n", out_path.c_str(), (*engine)->identity().num_alive());
      ExitWithoutTeardown(0);
    }
    if (*generate) {
      Context ctx;
      ctx.seed = gen.seed;
      auto stats = GenerateShop(gen, gen_out, ctx);
      if (!stats.ok()) return Fail(stats.status());
      std::printf("wrote %s: %llu customers, %llu events, %llu orders\n", gen_out.c_str(),
                  static_cast<unsigned long long>(stats->customers), static_cast<unsigned long long>(stats->events),
                  static_cast<unsigned long long>(stats->orders));
      return 0;
    }
    if (*forget) {
      auto engine = OpenEngine(db, "", false);
      if (!engine.ok()) return Fail(engine.status());
      auto summary = (*engine)->Forget(identifier);
      if (!summary.ok()) return Fail(summary.status());
      std::printf("forgot %zu identifiers, removed %llu events, scrubbed %llu references; store compacted\n",
                  summary->identifiers.size(), static_cast<unsigned long long>(summary->events_removed),
                  static_cast<unsigned long long>(summary->references_scrubbed));
      return 0;
    }
    if (*compact) {
      auto engine = OpenEngine(db, "", false);
      if (!engine.ok()) return Fail(engine.status());
      const uint64_t before = (*engine)->store().DiskBytes();
      auto start = std::chrono::steady_clock::now();
      Status st = (*engine)->store().CompactAll();
      if (!st.ok()) return Fail(st);
      std::printf("compacted %s: %.1f MiB -> %.1f MiB on disk in %.1f s\n", db.c_str(),
                  static_cast<double>(before) / (1 << 20),
                  static_cast<double>((*engine)->store().DiskBytes()) / (1 << 20),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return 0;
    }
    if (*build) {
      auto as_of = ParseAsOf(as_of_text);
      if (!as_of.ok()) return Fail(as_of.status());
      auto engine = OpenEngine(db, "", false);
      if (!engine.ok()) return Fail(engine.status());
      BuildOptions options;
      options.as_of = *as_of;
      options.time_unit = time_unit;
      options.k = k_override;
      options.quiet = quiet;
      if (!calibration_end.empty()) {
        auto day = ParseIso8601(calibration_end);
        if (!day.ok() || calibration_end.size() != 10) {
          return Fail(Status::InvalidArgument("--calibration-end '" + calibration_end + "' is not a date (YYYY-MM-DD)"));
        }
        options.calibration_end_day = DayOf(*day);
      }
      auto result = RunBuild(**engine, options);
      if (!result.ok()) return Fail(result.status());
      PrintSegments(*result);
      std::printf("\n");
      PrintModels(*result);
      std::printf("\ncross-sell: %s\nbuild took %.2f s\n", result->affinity_summary.c_str(), result->seconds);
      return 0;
    }
    if (*segments || *models) {
      auto engine = OpenEngine(db, "", true);
      if (!engine.ok()) return Fail(engine.status());
      auto result = LoadBuild(**engine);
      if (!result.ok()) return Fail(result.status());
      if (*models) {
        if (json_out) {
          std::printf("%s\n", result->models_json.c_str());
        } else {
          PrintModels(*result);
        }
      } else if (json_out) {
        std::printf("%s\n", result->segments_json.c_str());
      } else {
        PrintSegments(*result);
      }
      return 0;
    }
    if (*explain || *affinities) {
      auto engine = OpenEngine(db, "", true);
      if (!engine.ok()) return Fail(engine.status());
      auto text = *explain ? ExplainProfile(**engine, identifier) : AffinityReport(**engine, affinity_options);
      if (!text.ok()) return Fail(text.status());
      std::fputs(text->c_str(), stdout);
      return 0;
    }
    if (*demo_cmd) {
      Status st = RunDemo(demo);
      if (!st.ok()) return Fail(st);
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal: internal error: %s\n", e.what());
    return 4;
  }
  return 0;
}
