// btyd_bench: BG/NBD + Gamma-Gamma maximum-likelihood fits, shoal vs lifetimes, in one run.
//
//   PEERS_SRC=~/.cache/shoal-peers/src build/bench/btyd/btyd_bench [--sizes cdnow,1M,10M]
//       [--lifetimes-max 10M] [--work-dir DIR] [--threads N]
//
// Data sets: "cdnow" = the CDNOW 1/10th sample summary (2,357 customers, weeks); "<N>" or "1M"
// etc. = N customers simulated from the published CDNOW BG/NBD + Gamma-Gamma parameters
// (deterministic: per-customer random streams from a fixed seed, so the data do not depend on
// the thread count). Times are recorded in whole days, as real order logs are: T is uniform on
// 189..273 days (27..39 weeks), purchases on the same day count once (the literature's
// "distinct purchase days"), spend is rounded to cents.
// For each data set the summary is written as CSV (frequency,recency,T,monetary_value) and
// bench/btyd/lifetimes_fit.py fits lifetimes on it, when PEERS_SRC holds lifetimes/ and
// autograd/ (else lifetimes is skipped with a message). Printed: fit times, log-likelihoods (both
// parameter sets evaluated with the same likelihood function) and the ratios.
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/parallel.h"
#include "predict/bgnbd.h"
#include "predict/btyd_data.h"
#include "predict/btyd_fit.h"
#include "predict/gamma_gamma.h"

namespace shoal {
namespace {

constexpr BgNbdParams kCdnowBgNbd{0.243, 4.414, 0.793, 2.426};
constexpr GammaGammaParams kCdnowGammaGamma{6.25, 3.74, 15.44};
constexpr uint64_t kSeed = 7;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// CPU time of the whole process (all threads): robust to other load on a shared machine.
double ProcessCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// xoshiro256** seeded by SplitMix64: a small, portable generator so the data are the same on
// every platform (std:: distributions are implementation-defined).
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& word : state_) word = SplitMix(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(state_[1] * 5, 7) * 9;
    const uint64_t shifted = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= shifted;
    state_[3] = Rotl(state_[3], 45);
    return result;
  }
  // Uniform on (0, 1).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) * 0x1.0p-53; }
  double Exponential() { return -std::log(Uniform()); }
  double Normal() {  // Box-Muller (one of the pair)
    return std::sqrt(-2 * std::log(Uniform())) * std::cos(2 * M_PI * Uniform());
  }
  // Gamma(shape, scale) by Marsaglia & Tsang (2000); shape < 1 via the U^(1/shape) boost.
  double Gamma(double shape, double scale) {
    if (shape < 1) return Gamma(shape + 1, scale) * std::pow(Uniform(), 1 / shape);
    const double d = shape - 1.0 / 3, c = 1 / std::sqrt(9 * d);
    for (;;) {
      double z, v;
      do {
        z = Normal();
        v = 1 + c * z;
      } while (v <= 0);
      v = v * v * v;
      const double u = Uniform();
      if (std::log(u) < 0.5 * z * z + d - d * v + d * std::log(v)) return d * v * scale;
    }
  }
  double Beta(double a, double b) {
    const double x = Gamma(a, 1), y = Gamma(b, 1);
    return x / (x + y);
  }

 private:
  static uint64_t SplitMix(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> state_{};
};

struct Summary {
  std::vector<double> x, t_x, T, mean_value;
};

Summary Simulate(size_t customers, int threads) {
  Summary s;
  s.x.resize(customers);
  s.t_x.resize(customers);
  s.T.resize(customers);
  s.mean_value.resize(customers);
  const BgNbdParams bg = kCdnowBgNbd;
  const GammaGammaParams gg = kCdnowGammaGamma;
  ParallelFor(customers, threads, [&](size_t begin, size_t end, int) {
    for (size_t customer_idx = begin; customer_idx < end; ++customer_idx) {
      Rng rng(kSeed * 0x100000001b3ULL + customer_idx);
      const int T_days = 189 + static_cast<int>(rng.Next() % 85);
      const double rate = rng.Gamma(bg.r, 1 / bg.alpha);  // per week
      const double dropout = rng.Beta(bg.a, bg.b);
      double t = 0;
      int x = 0, last_day = 0;
      for (;;) {
        t += rng.Exponential() / rate;
        const double day = std::floor(t * 7);
        if (day > T_days) break;
        if (static_cast<int>(day) != last_day) {  // a new purchase day
          ++x;
          last_day = static_cast<int>(day);
        }
        if (rng.Uniform() < dropout) break;  // drops out after this purchase
      }
      double mean_value = 0;
      if (x > 0) {
        const double nu = rng.Gamma(gg.q, 1 / gg.gamma);
        // The sum of x Gamma(p, 1/nu) values is Gamma(p x, 1/nu); round the mean to cents.
        mean_value = std::round(rng.Gamma(gg.p * x, 1 / nu) / x * 100) / 100;
        if (mean_value <= 0) mean_value = 0.01;
      }
      s.x[customer_idx] = x;
      s.t_x[customer_idx] = last_day / 7.0;
      s.T[customer_idx] = T_days / 7.0;
      s.mean_value[customer_idx] = mean_value;
    }
  });
  return s;
}

Summary ReadCdnow() {
  Summary s;
  std::ifstream in(std::string(SHOAL_SHARED_DATA) +
                   "/cdnow/cdnow_customers_summary_with_transactions.csv");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    double id, x, t_x, T, value;
    if (std::sscanf(line.c_str(), "%lf,%lf,%lf,%lf,%lf", &id, &x, &t_x, &T, &value) != 5) continue;
    s.x.push_back(x);
    s.t_x.push_back(t_x);
    s.T.push_back(T);
    s.mean_value.push_back(value);
  }
  return s;
}

void WriteCsv(const Summary& s, const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "w"), &std::fclose);
  if (!file) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::fprintf(file.get(), "frequency,recency,T,monetary_value\n");
  for (size_t idx = 0; idx < s.x.size(); ++idx) {
    std::fprintf(file.get(), "%.0f,%.17g,%.17g,%.17g\n", s.x[idx], s.t_x[idx], s.T[idx],
                 s.mean_value[idx]);
  }
}

// Minimal extraction from the peer's one-line JSON.
double JsonNumber(const std::string& json, const std::string& key, size_t index = 0) {
  size_t pos = json.find("\"" + key + "\"");
  if (pos == std::string::npos) return NAN;
  pos = json.find(':', pos) + 1;
  if (json[json.find_first_not_of(' ', pos)] == '[') {
    pos = json.find('[', pos) + 1;
    for (size_t skip = 0; skip < index; ++skip) pos = json.find(',', pos) + 1;
  }
  return std::strtod(json.c_str() + pos, nullptr);
}

struct PeerResult {
  bool ran = false;
  std::string message;
  double bg_fit_s = NAN, gg_fit_s = NAN, read_s = NAN, bg_ll = NAN, gg_ll = NAN;
  double weighted_bg_fit_s = NAN;  // groupby + weighted BG/NBD fit
  double bg_fit_cpu_s = NAN, gg_fit_cpu_s = NAN, weighted_bg_fit_cpu_s = NAN;
  BgNbdParams bg{}, weighted_bg{};
  GammaGammaParams gg{};
};

// The folder holding lifetimes/ and autograd/ checkouts, or "" when PEERS_SRC does not name one.
std::string LifetimesLocation() {
  const char* peers = std::getenv("PEERS_SRC");
  struct stat info {};
  if (peers == nullptr || stat((std::string(peers) + "/lifetimes").c_str(), &info) != 0 ||
      stat((std::string(peers) + "/autograd").c_str(), &info) != 0) {
    return "";
  }
  return peers;
}

PeerResult RunLifetimes(const std::string& peers, const std::string& csv_path) {
  PeerResult result;
  const std::string command = "PEERS_SRC='" + std::string(peers) + "' /usr/bin/python3 '" +
                              std::string(SHOAL_SOURCE_DIR) + "/bench/btyd/lifetimes_fit.py' '" +
                              csv_path + "'";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  while (pipe != nullptr && std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
    output += buffer.data();
  }
  const int status = pipe != nullptr ? pclose(pipe) : -1;
  if (status != 0 || output.find("bg_fit_s") == std::string::npos) {
    result.message = "lifetimes failed (exit " + std::to_string(status) + "): " + output;
    return result;
  }
  result.ran = true;
  result.read_s = JsonNumber(output, "read_s");
  result.bg_fit_s = JsonNumber(output, "bg_fit_s");
  result.gg_fit_s = JsonNumber(output, "gg_fit_s");
  result.bg_ll = JsonNumber(output, "bg_ll");
  result.gg_ll = JsonNumber(output, "gg_ll");
  result.bg = {JsonNumber(output, "bg_params", 0), JsonNumber(output, "bg_params", 1),
               JsonNumber(output, "bg_params", 2), JsonNumber(output, "bg_params", 3)};
  result.weighted_bg_fit_s = JsonNumber(output, "bgw_fit_s");
  result.bg_fit_cpu_s = JsonNumber(output, "bg_fit_cpu_s");
  result.gg_fit_cpu_s = JsonNumber(output, "gg_fit_cpu_s");
  result.weighted_bg_fit_cpu_s = JsonNumber(output, "bgw_fit_cpu_s");
  result.weighted_bg = {JsonNumber(output, "bgw_params", 0), JsonNumber(output, "bgw_params", 1),
                        JsonNumber(output, "bgw_params", 2), JsonNumber(output, "bgw_params", 3)};
  result.gg = {JsonNumber(output, "gg_params", 0), JsonNumber(output, "gg_params", 1),
               JsonNumber(output, "gg_params", 2)};
  return result;
}

size_t ParseSize(const std::string& text) {
  double value = std::strtod(text.c_str(), nullptr);
  if (!text.empty() && (text.back() == 'M' || text.back() == 'm')) value *= 1e6;
  if (!text.empty() && (text.back() == 'k' || text.back() == 'K')) value *= 1e3;
  return static_cast<size_t>(value);
}

int Run(int argc, char** argv) {
  std::string sizes = "cdnow,1M,10M";
  size_t lifetimes_max = 10'000'000;
  std::string work_dir =
      std::string(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") + "/.cache/shoal-bench/btyd";
  Context ctx;
  for (int arg = 1; arg + 1 < argc; arg += 2) {
    const std::string key = argv[arg], value = argv[arg + 1];
    if (key == "--sizes")
      sizes = value;
    else if (key == "--lifetimes-max")
      lifetimes_max = ParseSize(value);
    else if (key == "--work-dir")
      work_dir = value;
    else if (key == "--threads")
      ctx.threads = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", key.c_str());
      return 2;
    }
  }
  std::system(("mkdir -p '" + work_dir + "'").c_str());
  std::printf("btyd_bench: threads=%d, work dir %s\n\n", ctx.Threads(), work_dir.c_str());
  std::vector<std::string> table;
  std::stringstream list(sizes);
  std::string name;
  while (std::getline(list, name, ',')) {
    auto start = std::chrono::steady_clock::now();
    Summary data = name == "cdnow" ? ReadCdnow() : Simulate(ParseSize(name), ctx.Threads());
    const double make_s = Seconds(start);
    const size_t customers = data.x.size();
    std::printf("[%s] %zu customers (%s %.2f s)\n", name.c_str(), customers,
                name == "cdnow" ? "read" : "simulated in", make_s);

    // One run of shoal's path: compress, then BG/NBD and Gamma-Gamma as shoal build fits them
    // (at the same time, on separate threads).
    struct ShoalRun {
      CompressedRfm rfm;
      BtydModelFits fits;
      double compress_s = 0, fits_s = 0, compress_cpu = 0, cpu = 0;
      double total() const { return compress_s + fits_s; }
    };
    auto run_shoal = [&](ShoalRun* out) -> bool {
      const double cpu_start = ProcessCpuSeconds();
      auto run_start = std::chrono::steady_clock::now();
      Result<CompressedRfm> compressed =
          CompressRfm(data.x, data.t_x, data.T, data.mean_value, ctx);
      if (!compressed.ok()) {
        std::fprintf(stderr, "%s\n", compressed.status().ToString().c_str());
        return false;
      }
      out->rfm = std::move(compressed).value();
      out->compress_s = Seconds(run_start);
      out->compress_cpu = ProcessCpuSeconds() - cpu_start;
      run_start = std::chrono::steady_clock::now();
      BtydModelsOptions models_options;
      models_options.pareto_nbd = false;
      out->fits = FitBtydModels(out->rfm, models_options, ctx);
      out->fits_s = Seconds(run_start);
      out->cpu = ProcessCpuSeconds() - cpu_start;
      return true;
    };
    // A path that takes under 50 ms is run 5 times and the run with the median total is kept:
    // one millisecond-long run is mostly thread starts and first-touch page faults.
    std::vector<ShoalRun> runs(1);
    if (!run_shoal(&runs[0])) return 1;
    if (runs[0].total() < 0.05) {
      runs.resize(5);
      for (size_t rep = 1; rep < runs.size(); ++rep) {
        if (!run_shoal(&runs[rep])) return 1;
      }
      std::sort(runs.begin(), runs.end(),
                [](const ShoalRun& a, const ShoalRun& b) { return a.total() < b.total(); });
    }
    ShoalRun& kept = runs[runs.size() / 2];
    const CompressedRfm* rfm = &kept.rfm;
    const double compress_s = kept.compress_s, fits_s = kept.fits_s;
    const double compress_cpu = kept.compress_cpu;
    const double bg_s = kept.fits.bgnbd_seconds, gg_s = kept.fits.gamma_gamma_seconds;
    Result<BgNbdFit>& bg = kept.fits.bgnbd;
    Result<GammaGammaFit>& gg = kept.fits.gamma_gamma;
    if (!bg.ok() || !gg.ok()) {
      std::fprintf(stderr, "fit failed: %s %s\n", bg.status().ToString().c_str(),
                   gg.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "  shoal: compress %.3f s (%zu rows, %zu distinct (x,t_x,T)); fits %.3f s: BG/NBD %.3f s "
        "(%d evals, converged %d, %s) alongside Gamma-Gamma %.3f s (%d evals, converged %d, "
        "%s)\n",
        compress_s, rfm->rows.size(), bg->input.distinct_rows, fits_s, bg_s, bg->iterations,
        bg->converged, bg->optimizer_message.c_str(), gg_s, gg->iterations, gg->converged,
        gg->optimizer_message.c_str());
    std::printf(
        "  shoal BG/NBD r=%.6f alpha=%.6f a=%.6f b=%.6f LL=%.6f | GG p=%.5f q=%.5f "
        "gamma=%.5f LL=%.6f\n",
        bg->params.r, bg->params.alpha, bg->params.a, bg->params.b, bg->log_likelihood,
        gg->params.p, gg->params.q, gg->params.gamma, gg->log_likelihood);
    const double shoal_total = kept.total();
    const double shoal_cpu = kept.cpu;
    std::printf(
        "  shoal total: %.4f s wall, %.4f s CPU (all threads; compress %.4f, BG/NBD and "
        "Gamma-Gamma fits %.4f)%s\n",
        shoal_total, shoal_cpu, compress_cpu, shoal_cpu - compress_cpu,
        runs.size() > 1 ? " -- median of 5 runs" : "");

    PeerResult peer;
    const std::string peers = LifetimesLocation();
    if (peers.empty()) {
      peer.message =
          "lifetimes skipped: set PEERS_SRC to a folder holding lifetimes/ and "
          "autograd/ source checkouts (see /work/shared/peers/README.md)";
    } else if (customers > lifetimes_max) {
      peer.message = "lifetimes skipped above --lifetimes-max";
    } else {
      const std::string csv = work_dir + "/summary_" + name + ".csv";
      start = std::chrono::steady_clock::now();
      WriteCsv(data, csv);
      std::printf("  wrote %s (%.2f s); running lifetimes...\n", csv.c_str(), Seconds(start));
      std::fflush(stdout);
      peer = RunLifetimes(peers, csv);
    }
    char row[1024];
    if (!peer.ran) {
      std::printf("  %s\n", peer.message.c_str());
      std::snprintf(row, sizeof row,
                    "| %s | %zu | %zu | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f "
                    "| - | - | - | %.4f | - | - | - | - | - |",
                    name.c_str(), customers, bg->input.distinct_rows, compress_s, fits_s, bg_s,
                    gg_s, shoal_total, bg->log_likelihood, gg->log_likelihood, shoal_cpu);
    } else {
      // Both parameter sets through the same likelihood code, so the comparison is of optima.
      const double peer_bg_ll = BgNbdLogLikelihood(peer.bg, rfm->rows, nullptr, ctx.Threads());
      const double peer_gg_ll =
          GammaGammaLogLikelihood(peer.gg, rfm->spend, nullptr, ctx.Threads());
      const double bg_rel = (bg->log_likelihood - peer_bg_ll) / std::fabs(peer_bg_ll);
      const double gg_rel = (gg->log_likelihood - peer_gg_ll) / std::fabs(peer_gg_ll);
      std::printf(
          "  lifetimes: read %.2f s, BG/NBD %.3f s, GG %.3f s; BG r=%.6f alpha=%.6f "
          "a=%.6f b=%.6f LL=%.6f (own formula %.6f) | GG p=%.5f q=%.5f v=%.5f LL=%.6f "
          "(own %.6f)\n",
          peer.read_s, peer.bg_fit_s, peer.gg_fit_s, peer.bg.r, peer.bg.alpha, peer.bg.a, peer.bg.b,
          peer_bg_ll, peer.bg_ll, peer.gg.p, peer.gg.q, peer.gg.gamma, peer_gg_ll, peer.gg_ll);
      const double peer_weighted_ll =
          BgNbdLogLikelihood(peer.weighted_bg, rfm->rows, nullptr, ctx.Threads());
      std::printf(
          "  lifetimes with weights (groupby + fit): %.3f s, LL=%.6f (rel. diff of shoal: "
          "%+.2e); speed-up of shoal BG/NBD (compress + fit) over it: %.1fx\n",
          peer.weighted_bg_fit_s, peer_weighted_ll,
          (bg->log_likelihood - peer_weighted_ll) / std::fabs(peer_weighted_ll),
          peer.weighted_bg_fit_s / (compress_s + bg_s));
      const double peer_total = peer.bg_fit_s + peer.gg_fit_s;
      const double peer_cpu = peer.bg_fit_cpu_s + peer.gg_fit_cpu_s;
      std::printf(
          "  lifetimes fits: %.3f s wall, %.3f s CPU; speed-up wall %.1fx, CPU %.1fx; "
          "weighted BG/NBD CPU %.3f s\n",
          peer_total, peer_cpu, peer_total / shoal_total, peer_cpu / shoal_cpu,
          peer.weighted_bg_fit_cpu_s);
      std::snprintf(row, sizeof row,
                    "| %s | %zu | %zu | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f "
                    "| %.3f | %.3f | %.1fx | %.4f | %.3f | %.1fx | %+.2e | %+.2e | %.3f |",
                    name.c_str(), customers, bg->input.distinct_rows, compress_s, fits_s, bg_s,
                    gg_s, shoal_total, bg->log_likelihood, gg->log_likelihood, peer.bg_fit_s,
                    peer.gg_fit_s, peer_total / shoal_total, shoal_cpu, peer_cpu,
                    peer_cpu / shoal_cpu, bg_rel, gg_rel, peer.weighted_bg_fit_s);
    }
    table.push_back(row);
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf(
      "| data | customers | distinct (x,t_x,T) | shoal compress s | shoal fits s | "
      "shoal BG/NBD s (alongside GG) | shoal GG s | shoal total s | shoal BG/NBD LL | shoal GG LL | lifetimes BG/NBD s | "
      "lifetimes GG s | speed-up wall (lifetimes fits / shoal total) | shoal CPU s | "
      "lifetimes CPU s | speed-up CPU | BG LL rel. diff (shoal - lifetimes) | "
      "GG LL rel. diff | lifetimes weighted BG/NBD s (groupby + fit) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const std::string& line : table) std::printf("%s\n", line.c_str());
  return 0;
}

}  // namespace
}  // namespace shoal

int main(int argc, char** argv) { return shoal::Run(argc, argv); }
