// affinity_bench: frequent itemsets with shoal's FP-growth against mlxtend's fpgrowth (Python)
// and Christian Borgelt's fpgrowth (C), on the same basket files in one run.
//
//   affinity_bench [--groceries PATH] [--synthetic PATH] [--threads N] [--repeat N]
//
// Workloads: Groceries at supports 0.01, 0.001, 0.0005; the synthetic 1M-basket file
// (shared/peers/gen_baskets.py --transactions 1M) at 0.01 and 0.001. Itemset counts of all
// three must agree (exit code 1 otherwise).
// Peers, located by environment variables and skipped with a message when absent:
//   SHOAL_MLXTEND_SRC      directory holding the mlxtend package (else $PEERS_SRC/mlxtend)
//   SHOAL_BORGELT_FPGROWTH Borgelt's fpgrowth program (else $PEERS_SRC/borgelt/fpgrowth/src/fpgrowth)
//   SHOAL_PYTHON           interpreter for mlxtend (default /usr/bin/python3)
// Times: shoal and Borgelt best of --repeat runs (default 3), mlxtend one run.
//   shoal e2e   = read + parse the file, mine, write the itemsets to a file
//   borgelt e2e = wall time of the whole fpgrowth process (it reads, mines and writes too)
//   mlxtend fpg = the fpgrowth call alone; mlxtend e2e adds reading and one-hot encoding.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "affinity/baskets.h"
#include "affinity/fpgrowth.h"
#include "affinity/rules.h"

extern char** environ;

namespace {

using shoal::Context;
using namespace shoal::affinity;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

bool IsFile(const std::string& path) { return !path.empty() && access(path.c_str(), R_OK) == 0; }

std::string PeersSrc() {
  std::string src = Env("PEERS_SRC");
  if (src.empty()) src = Env("HOME") + "/.cache/shoal-peers/src";
  return src;
}

struct ShoalRun {
  double load_s = 0, mine_s = 0, write_s = 0, rules_s = 0;
  size_t itemsets = 0, rules = 0;
};

// Writes one itemset per line, "label label ... (count)", as Borgelt's program does.
double WriteItemsets(const FrequentItemsets& sets, const ItemDictionary& dictionary,
                     const std::string& path) {
  const Clock::time_point start = Clock::now();
  std::string buffer;
  buffer.reserve(1 << 20);
  std::FILE* out = std::fopen(path.c_str(), "wb");
  if (out == nullptr) return 0.0;
  char count[32];
  for (size_t k = 0; k < sets.size(); ++k) {
    for (ItemId id : sets.Itemset(k)) {
      buffer += dictionary.Label(id);
      buffer += ' ';
    }
    std::snprintf(count, sizeof(count), "(%llu)\n", static_cast<unsigned long long>(sets.counts[k]));
    buffer += count;
    if (buffer.size() > (1 << 20) - 4096) {
      std::fwrite(buffer.data(), 1, buffer.size(), out);
      buffer.clear();
    }
  }
  std::fwrite(buffer.data(), 1, buffer.size(), out);
  std::fclose(out);
  return Seconds(start);
}

ShoalRun RunShoal(const std::string& path, double support, int threads,
                  const std::string& out_path) {
  ShoalRun run;
  Context ctx;
  ctx.threads = threads;
  Clock::time_point start = Clock::now();
  shoal::Result<BasketStore> baskets = LoadBasketFile(path, {}, ctx);
  run.load_s = Seconds(start);
  if (!baskets.ok()) {
    std::fprintf(stderr, "shoal: %s\n", baskets.status().ToString().c_str());
    std::exit(2);
  }
  FpGrowthOptions options;
  options.min_support = support;
  start = Clock::now();
  shoal::Result<FrequentItemsets> sets = MineFrequentItemsets(*baskets, options, ctx);
  run.mine_s = Seconds(start);
  if (!sets.ok()) {
    std::fprintf(stderr, "shoal: %s\n", sets.status().ToString().c_str());
    std::exit(2);
  }
  run.itemsets = sets->size();
  run.write_s = WriteItemsets(*sets, baskets->dictionary(), out_path);
  RuleOptions rule_options;
  rule_options.min_confidence = 0.5;
  start = Clock::now();
  shoal::Result<RuleSet> rules = GenerateRules(*sets, rule_options, ctx);
  run.rules_s = Seconds(start);
  run.rules = rules.ok() ? rules->size() : 0;
  return run;
}

// Runs argv with stdout and stderr into `log`; returns wall seconds, or -1 on failure.
double RunProcess(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  const Clock::time_point start = Clock::now();
  pid_t pid = 0;
  int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  const double seconds = Seconds(start);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? seconds : -1;
}

size_t CountLines(const std::string& path) {
  std::ifstream in(path);
  size_t lines = 0;
  std::string line;
  while (std::getline(in, line)) ++lines;
  return lines;
}

struct BorgeltRun {
  double e2e_s = -1;
  size_t itemsets = 0;
};

BorgeltRun RunBorgelt(const std::string& program, const std::string& path, double support,
                      const std::string& dir) {
  char percent[64];
  std::snprintf(percent, sizeof(percent), "-s%g", support * 100.0);
  const std::string out = dir + "/borgelt_sets.txt";
  BorgeltRun run;
  run.e2e_s = RunProcess({program, "-ts", percent, "-f,", "-Z", path, out}, dir + "/borgelt.log");
  if (run.e2e_s >= 0) run.itemsets = CountLines(out);
  return run;
}

struct MlxtendRun {
  bool ok = false;
  double read_s = 0, encode_s = 0, fpgrowth_s = 0;
  size_t itemsets = 0;
};

double JsonNumber(const std::string& line, const std::string& key) {
  size_t at = line.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtod(line.c_str() + at + key.size() + 3, nullptr);
}

// One Python process per file: it reads and encodes once, then runs every support.
std::map<double, MlxtendRun> RunMlxtend(const std::string& python, const std::string& script,
                                        const std::string& path,
                                        const std::vector<double>& supports) {
  std::string command = "'" + python + "' '" + script + "' '" + path + "'";
  for (double support : supports) {
    char text[64];
    std::snprintf(text, sizeof(text), " %.17g", support);
    command += text;
  }
  std::map<double, MlxtendRun> runs;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return runs;
  char buffer[4096];
  size_t index = 0;
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
    std::string line(buffer);
    if (line.find("\"error\"") != std::string::npos) {
      std::printf("mlxtend: %s", line.c_str());
      break;
    }
    if (index >= supports.size()) break;
    MlxtendRun run;
    run.ok = true;
    run.itemsets = static_cast<size_t>(JsonNumber(line, "itemsets"));
    run.read_s = JsonNumber(line, "read_s");
    run.encode_s = JsonNumber(line, "encode_s");
    run.fpgrowth_s = JsonNumber(line, "fpgrowth_s");
    runs[supports[index++]] = run;
  }
  pclose(pipe);
  return runs;
}

// The 1-minute load average (Linux), or "?": the figures mean little on a busy machine.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string first;
  if (!(in >> first)) return "?";
  return first;
}

std::string Ratio(double numerator, double denominator) {
  if (numerator <= 0 || denominator <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.1fx", numerator / denominator);
  return text;
}

std::string Secs(double seconds) {
  if (seconds < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", seconds);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::string groceries = std::string(SHOAL_SHARED_DATA) + "/groceries/groceries.csv";
  std::string peers_data = Env("PEERS_DATA");
  if (peers_data.empty()) peers_data = Env("HOME") + "/.cache/shoal-peers/data";
  std::string synthetic = peers_data + "/baskets_1M.csv";
  int threads = 2, repeat = 3;
  for (int k = 1; k + 1 < argc; k += 2) {
    const std::string flag = argv[k];
    if (flag == "--groceries") groceries = argv[k + 1];
    else if (flag == "--synthetic") synthetic = argv[k + 1];
    else if (flag == "--threads") threads = std::atoi(argv[k + 1]);
    else if (flag == "--repeat") repeat = std::max(1, std::atoi(argv[k + 1]));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }

  std::string borgelt = Env("SHOAL_BORGELT_FPGROWTH");
  if (borgelt.empty()) borgelt = PeersSrc() + "/borgelt/fpgrowth/src/fpgrowth";
  const bool have_borgelt = access(borgelt.c_str(), X_OK) == 0;
  std::string mlxtend = Env("SHOAL_MLXTEND_SRC");
  if (mlxtend.empty()) mlxtend = PeersSrc() + "/mlxtend";
  const bool have_mlxtend = IsFile(mlxtend + "/mlxtend/__init__.py");
  std::string python = Env("SHOAL_PYTHON");
  if (python.empty()) python = "/usr/bin/python3";
  const std::string script = std::string(SHOAL_SOURCE_DIR) + "/bench/affinity/mlxtend_fpgrowth.py";
  if (!have_borgelt) {
    std::printf("Borgelt fpgrowth: skipped (no program at %s; set SHOAL_BORGELT_FPGROWTH)\n",
                borgelt.c_str());
  }
  if (!have_mlxtend) {
    std::printf("mlxtend: skipped (no source tree at %s; set SHOAL_MLXTEND_SRC)\n",
                mlxtend.c_str());
  }

  char dir_template[] = "/tmp/affinity_bench.XXXXXX";
  const char* dir_made = mkdtemp(dir_template);
  if (dir_made == nullptr) {
    std::perror("mkdtemp");
    return 2;
  }
  const std::string dir = dir_made;

  struct Workload {
    std::string name, path;
    std::vector<double> supports;
  };
  std::vector<Workload> workloads = {{"groceries", groceries, {0.01, 0.001, 0.0005}},
                                     {"synthetic_1M", synthetic, {0.01, 0.001}}};
  std::printf("threads %d, shoal/Borgelt best of %d, mlxtend 1 run, load average %s at start\n\n",
              threads, repeat, LoadAverage().c_str());
  std::printf("| data | support | itemsets shoal | Borgelt | mlxtend | shoal load s | shoal mine s "
              "| shoal write s | shoal e2e s | Borgelt e2e s | mlxtend fpg s | mlxtend e2e s "
              "| mlxtend fpg / shoal mine | mlxtend e2e / shoal e2e | shoal e2e / Borgelt e2e "
              "| shoal rules@0.5 (s) |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  bool all_match = true;
  for (const Workload& workload : workloads) {
    if (!IsFile(workload.path)) {
      std::printf("| %s | - | skipped: no file %s |\n", workload.name.c_str(),
                  workload.path.c_str());
      continue;
    }
    std::map<double, MlxtendRun> mlx;
    if (have_mlxtend) mlx = RunMlxtend(python, script, workload.path, workload.supports);
    for (double support : workload.supports) {
      ShoalRun best;
      double best_e2e = 1e300;
      for (int r = 0; r < repeat; ++r) {
        ShoalRun run = RunShoal(workload.path, support, threads, dir + "/shoal_sets.txt");
        const double e2e = run.load_s + run.mine_s + run.write_s;
        if (e2e < best_e2e) {
          best_e2e = e2e;
          best = run;
        }
      }
      BorgeltRun borgelt_best;
      if (have_borgelt) {
        for (int r = 0; r < repeat; ++r) {
          BorgeltRun run = RunBorgelt(borgelt, workload.path, support, dir);
          if (run.e2e_s >= 0 && (borgelt_best.e2e_s < 0 || run.e2e_s < borgelt_best.e2e_s)) {
            borgelt_best = run;
          }
        }
      }
      const MlxtendRun mlx_run = mlx.count(support) ? mlx[support] : MlxtendRun{};
      const double mlx_e2e = mlx_run.ok ? mlx_run.read_s + mlx_run.encode_s + mlx_run.fpgrowth_s
                                        : -1;
      if ((borgelt_best.e2e_s >= 0 && borgelt_best.itemsets != best.itemsets) ||
          (mlx_run.ok && mlx_run.itemsets != best.itemsets)) {
        all_match = false;
      }
      std::printf("| %s | %g | %zu | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %zu "
                  "(%s) |\n",
                  workload.name.c_str(), support, best.itemsets,
                  borgelt_best.e2e_s >= 0 ? std::to_string(borgelt_best.itemsets).c_str() : "-",
                  mlx_run.ok ? std::to_string(mlx_run.itemsets).c_str() : "-",
                  Secs(best.load_s).c_str(), Secs(best.mine_s).c_str(), Secs(best.write_s).c_str(),
                  Secs(best_e2e).c_str(), Secs(borgelt_best.e2e_s).c_str(),
                  Secs(mlx_run.ok ? mlx_run.fpgrowth_s : -1).c_str(), Secs(mlx_e2e).c_str(),
                  Ratio(mlx_run.ok ? mlx_run.fpgrowth_s : -1, best.mine_s).c_str(),
                  Ratio(mlx_e2e, best_e2e).c_str(),
                  Ratio(best_e2e, borgelt_best.e2e_s).c_str(), best.rules,
                  Secs(best.rules_s).c_str());
      std::fflush(stdout);
    }
  }
  std::remove((dir + "/shoal_sets.txt").c_str());
  std::remove((dir + "/borgelt_sets.txt").c_str());
  std::remove((dir + "/borgelt.log").c_str());
  rmdir(dir.c_str());
  std::printf("\nload average %s at end\n", LoadAverage().c_str());
  std::printf("itemset counts %s\n", all_match ? "identical across the peers that ran"
                                                 : "DIFFER between peers");
  return all_match ? 0 : 1;
}
