// segment_bench: shoal's side of the RFM-scoring and audience-rule comparison with pandas
// (bench/segment/run.sh drives it and bench/segment/peers.py runs pandas on the same files).
//
//   segment_bench generate --dir DIR --customers N     writes the columns (deterministic)
//   segment_bench run --dir DIR [--threads T]            prints one TSV line per task
//
// Columns (raw little-endian float64, one value per customer; segment codes int32):
// days_since_last_order (NaN for 8% who never ordered), frequency (geometric, ~55% one order),
// monetary_total, orders_365d, discount_share, segment (6 names, code -1 for 5%).
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/context.h"
#include "segment/rfm.h"
#include "segment/rules.h"

namespace shoal::segment {
namespace {

const std::vector<std::string> kSegments = {"premium trend explorers", "loyal champions",
                                            "one-time buyers",         "window shoppers",
                                            "cart abandoners",         "lapsed big spenders"};

const char* kRules[] = {
    "days_since_last_order > 60 and orders_365d >= 3 and segment == \"premium trend explorers\"",
    "(monetary_total / max(frequency, 1) > 80 or discount_share in [0, 0.5]) and "
    "not is_null(days_since_last_order) and days_since_last_order < 26w",
};

// SplitMix64: a tiny portable generator so the data are identical everywhere.
struct Rng {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
};

template <typename T>
void Write(const std::string& path, const std::vector<T>& values) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(T)));
}

template <typename T>
std::vector<T> Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    std::fprintf(stderr, "missing %s (run generate first)\n", path.c_str());
    std::exit(1);
  }
  std::vector<T> values(static_cast<size_t>(in.tellg()) / sizeof(T));
  in.seekg(0);
  in.read(reinterpret_cast<char*>(values.data()),
          static_cast<std::streamsize>(values.size() * sizeof(T)));
  return values;
}

void Generate(const std::string& dir, size_t n) {
  Rng rng{20261123};
  std::vector<double> recency(n), frequency(n), monetary(n), orders_365d(n), discount(n);
  std::vector<int32_t> segment(n);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (size_t idx = 0; idx < n; ++idx) {
    const bool never = rng.Uniform() < 0.08;
    double orders = 1;
    while (rng.Uniform() < 0.45 && orders < 200) orders += 1;  // geometric: 55% one order
    frequency[idx] = never ? 0 : orders;
    recency[idx] = never ? nan : std::floor(-std::log(1 - rng.Uniform()) * 90);
    monetary[idx] = never ? 0 : std::round(orders * 20 * std::exp(rng.Uniform() * 2) * 100) / 100;
    orders_365d[idx] = never ? 0 : std::floor(orders * rng.Uniform() + 0.5);
    discount[idx] = never ? nan : std::floor(rng.Uniform() * 11) / 10;  // 0, 0.1, ..., 1
    segment[idx] = rng.Uniform() < 0.05 ? -1 : static_cast<int32_t>(rng.Next() % kSegments.size());
  }
  Write(dir + "/days_since_last_order.f64", recency);
  Write(dir + "/frequency.f64", frequency);
  Write(dir + "/monetary_total.f64", monetary);
  Write(dir + "/orders_365d.f64", orders_365d);
  Write(dir + "/discount_share.f64", discount);
  Write(dir + "/segment.i32", segment);
  std::ofstream names(dir + "/segment_names.txt");
  for (const std::string& name : kSegments) names << name << "\n";
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Best of `repeats` wall times of fn().
template <typename Fn>
double BestOf(int repeats, Fn fn) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, Seconds(start));
  }
  return best;
}

int Run(const std::string& dir, int threads) {
  const auto recency = Read<double>(dir + "/days_since_last_order.f64");
  const auto frequency = Read<double>(dir + "/frequency.f64");
  const auto monetary = Read<double>(dir + "/monetary_total.f64");
  const auto orders_365d = Read<double>(dir + "/orders_365d.f64");
  const auto discount = Read<double>(dir + "/discount_share.f64");
  const auto segment = Read<int32_t>(dir + "/segment.i32");
  const size_t n = frequency.size();
  Context context;
  context.threads = threads;

  // RFM: derived tie-aware cuts + scores + named segments.
  Result<RfmResult> rfm = Status::Internal("not run");
  const double rfm_s =
      BestOf(3, [&] { rfm = ComputeRfm(recency, frequency, monetary, RfmOptions{}, context); });
  if (!rfm.ok()) {
    std::fprintf(stderr, "rfm: %s\n", rfm.status().ToString().c_str());
    return 1;
  }
  int64_t champions = 0;
  for (int32_t s : rfm->segment) champions += rfm->segment_names[s] == "Champions";
  std::printf("rfm\t%zu\t%d\t%.6f\tchampions=%lld\n", n, threads, rfm_s,
              static_cast<long long>(champions));

  RuleSchema schema = {
      {"days_since_last_order", RuleType::kNumber}, {"frequency", RuleType::kNumber},
      {"monetary_total", RuleType::kNumber},        {"orders_365d", RuleType::kNumber},
      {"discount_share", RuleType::kNumber},        {"segment", RuleType::kString}};
  RuleData data;
  data.rows = n;
  data.columns.resize(schema.size());
  data.columns[0].numbers = recency;
  data.columns[1].numbers = frequency;
  data.columns[2].numbers = monetary;
  data.columns[3].numbers = orders_365d;
  data.columns[4].numbers = discount;
  data.columns[5].codes = segment;
  data.columns[5].dictionary = kSegments;
  for (size_t rule_idx = 0; rule_idx < std::size(kRules); ++rule_idx) {
    Result<CompiledRule> compiled = Status::Internal("not run");
    const double compile_s = BestOf(5, [&] { compiled = CompileRule(kRules[rule_idx], schema); });
    if (!compiled.ok()) {
      std::fprintf(stderr, "rule: %s\n", compiled.status().ToString().c_str());
      return 1;
    }
    Result<BoundRule> bound = BoundRule::Bind(*compiled, data);
    if (!bound.ok()) return 1;
    std::vector<uint8_t> matches;
    const double batch_s = BestOf(5, [&] { matches = bound->MatchAll(context); });
    int64_t matched = 0;
    for (uint8_t m : matches) matched += m;
    int64_t matched_rows = 0;
    const double row_s = BestOf(3, [&] {
      matched_rows = 0;
      for (size_t row = 0; row < n; ++row) matched_rows += bound->Matches(row);
    });
    if (matched_rows != matched) {
      std::fprintf(stderr, "per-row and batched evaluation disagree\n");
      return 1;
    }
    std::printf("rule%zu\t%zu\t%d\t%.6f\tmatched=%lld\n", rule_idx + 1, n, threads, batch_s,
                static_cast<long long>(matched));
    std::printf("rule%zu_per_row\t%zu\t1\t%.6f\tmatched=%lld\n", rule_idx + 1, n, row_s,
                static_cast<long long>(matched_rows));
    std::printf("rule%zu_compile\t%zu\t1\t%.6f\t-\n", rule_idx + 1, n, compile_s);
  }
  return 0;
}

}  // namespace
}  // namespace shoal::segment

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  std::string dir;
  size_t customers = 1000000;
  int threads = 2;
  for (int arg = 2; arg + 1 < argc; arg += 2) {
    const std::string key = argv[arg];
    if (key == "--dir")
      dir = argv[arg + 1];
    else if (key == "--customers")
      customers = std::strtoull(argv[arg + 1], nullptr, 10);
    else if (key == "--threads")
      threads = std::atoi(argv[arg + 1]);
  }
  if (dir.empty() || (mode != "generate" && mode != "run")) {
    std::fprintf(stderr,
                 "usage: segment_bench generate --dir DIR --customers N\n"
                 "       segment_bench run --dir DIR [--threads T]\n");
    return 2;
  }
  if (mode == "generate") {
    shoal::segment::Generate(dir, customers);
    return 0;
  }
  return shoal::segment::Run(dir, threads);
}
