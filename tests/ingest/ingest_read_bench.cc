// Parse-speed check of the readers on the generator's typical events (not a ctest test):
//   build-x/tests/ingest/ingest_read_bench [customers=5000] [repeats=3] [events.csv|events.jsonl]
// Generates a shop into a temporary folder, then reads events.jsonl and events.csv with the
// canonical readers (one thread, batches of 8192 events reused) and prints events/s and MB/s.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "generate/generate.h"
#include "ingest/reader.h"

using namespace shoal;

namespace {

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Figures {
  double seconds = 0;      // wall clock
  double cpu_seconds = 0;  // this thread's CPU time (the machine may be shared)
  uint64_t events = 0, records = 0, bytes = 0, quarantined = 0;
};

Figures ReadOnce(const std::string& path) {
  EventTypeRegistry registry;
  Quarantine quarantine;
  SourceSpec spec;
  spec.path = path;
  auto start = std::chrono::steady_clock::now();
  double cpu_start = ThreadCpuSeconds();
  auto reader = EventReader::Open(spec, registry, &quarantine);
  if (!reader.ok()) {
    std::fprintf(stderr, "%s\n", reader.status().ToString().c_str());
    std::exit(1);
  }
  EventBatch batch;
  while (true) {
    auto more = (*reader)->Next(&batch, 8192);
    if (!more.ok()) {
      std::fprintf(stderr, "%s\n", more.status().ToString().c_str());
      std::exit(1);
    }
    if (!*more) break;
  }
  Figures f;
  f.cpu_seconds = ThreadCpuSeconds() - cpu_start;
  f.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  f.events = (*reader)->stats().events;
  f.records = (*reader)->stats().records;
  f.bytes = (*reader)->stats().bytes;
  f.quarantined = (*reader)->stats().quarantined;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  GenerateOptions options;
  options.customers = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 5000;
  int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  std::string dir = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                    "/shoal_ingest_read_bench";
  Context ctx;
  auto gen = GenerateShop(options, dir, ctx);
  if (!gen.ok()) {
    std::fprintf(stderr, "%s\n", gen.status().ToString().c_str());
    return 1;
  }
  std::printf("generated %llu customers, %llu events (%llu CSV rows) in %s\n",
              static_cast<unsigned long long>(gen->customers),
              static_cast<unsigned long long>(gen->events),
              static_cast<unsigned long long>(gen->csv_rows), dir.c_str());
  std::printf("%-12s %10s %10s %12s %12s %8s %14s %14s\n", "file", "records", "events",
              "records/s", "events/s", "MB/s", "records/cpu-s", "events/cpu-s");
  std::string only = argc > 3 ? argv[3] : "";  // "events.csv" or "events.jsonl": read just that
  for (const char* name : {"events.jsonl", "events.csv"}) {
    if (!only.empty() && only != name) continue;
    Figures best;
    for (int r = 0; r < repeats; ++r) {
      Figures f = ReadOnce(dir + "/" + name);
      if (r == 0 || f.cpu_seconds < best.cpu_seconds) best = f;
    }
    std::printf("%-12s %10llu %10llu %12.0f %12.0f %8.1f %14.0f %14.0f\n", name,
                static_cast<unsigned long long>(best.records),
                static_cast<unsigned long long>(best.events), best.records / best.seconds,
                best.events / best.seconds, best.bytes / best.seconds / 1e6,
                best.records / best.cpu_seconds, best.events / best.cpu_seconds);
    if (best.quarantined != 0) {
      std::printf("  (%llu records quarantined)\n", static_cast<unsigned long long>(best.quarantined));
    }
  }
  return 0;
}
