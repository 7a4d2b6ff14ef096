// kmeans_bench: the shoal side of the k-means peer comparison (see bench/kmeans/README.md).
//
//   kmeans_bench generate --dir DIR        writes the workloads as .npy (float32, deterministic)
//   kmeans_bench run --dir DIR [--threads 2] [--algos lloyd,hamerly,elkan] [--only NAME]
//                    [--kernel best|avx512|avx2|generic]
//                                          clusters each workload from its init centroids, writes
//                                          DIR/centroids_shoal-<algo>_<name>.npy and prints one
//                                          tab-separated line per run: name algo wall_seconds
//                                          cpu_seconds iterations converged inertia
//
// Workloads (Gaussian blobs like sklearn's make_blobs: centres uniform in [-10, 10]^d, unit
// standard deviation; init = k distinct rows drawn at random, as /work/shared/peers does):
//   blobs1m_k8, blobs1m_k16, blobs1m_k64: 1,000,000 x 16 with k true centres, k clusters
//   blobs5m_k16:                           5,000,000 x 16, 16 centres, k = 16
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "segment/kmeans.h"
#include "segment/kmeans_kernels.h"

namespace {

struct Workload {
  const char* name;
  size_t n;
  size_t d;
  int k;
  uint64_t seed;
};

constexpr Workload kWorkloads[] = {
    {"blobs1m_k8", 1000000, 16, 8, 1},
    {"blobs1m_k16", 1000000, 16, 16, 2},
    {"blobs1m_k64", 1000000, 16, 64, 3},
    {"blobs5m_k16", 5000000, 16, 16, 4},
};

bool WriteNpy(const std::string& path, const std::vector<float>& values, size_t rows,
              size_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                       std::to_string(rows) + ", " + std::to_string(cols) + "), }";
  // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) return false;
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t length = static_cast<uint16_t>(header.size());
  char length_bytes[2] = {static_cast<char>(length & 0xff), static_cast<char>(length >> 8)};
  out.write(length_bytes, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
  return static_cast<bool>(out);
}

// Reads a C-order little-endian float32 2-D .npy file as written by WriteNpy or numpy.
bool ReadNpy(const std::string& path, std::vector<float>* values, size_t* rows, size_t* cols) {
  std::ifstream in(path, std::ios::binary);
  char prefix[10];
  if (!in.read(prefix, 10) || std::memcmp(prefix, "\x93NUMPY", 6) != 0 || prefix[6] != 1) {
    return false;
  }
  size_t length = static_cast<unsigned char>(prefix[8]) |
                  (static_cast<size_t>(static_cast<unsigned char>(prefix[9])) << 8);
  std::string header(length, ' ');
  if (!in.read(header.data(), static_cast<std::streamsize>(length))) return false;
  if (header.find("'<f4'") == std::string::npos ||
      header.find("'fortran_order': False") == std::string::npos) {
    return false;
  }
  size_t open = header.find("'shape': (");
  if (open == std::string::npos) return false;
  if (std::sscanf(header.c_str() + open, "'shape': (%zu, %zu)", rows, cols) != 2) return false;
  values->resize(*rows * *cols);
  return static_cast<bool>(
      in.read(reinterpret_cast<char*>(values->data()),
              static_cast<std::streamsize>(values->size() * sizeof(float))));
}

// CPU time of the whole process (all threads): the fair figure on a loaded machine.
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::string Arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

int Generate(const std::string& dir) {
  for (const Workload& w : kWorkloads) {
    std::mt19937_64 rng(w.seed);
    std::uniform_real_distribution<double> uniform(-10.0, 10.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> centres(static_cast<size_t>(w.k) * w.d);
    for (double& c : centres) c = uniform(rng);
    std::vector<float> data(w.n * w.d);
    for (size_t i = 0; i < w.n; ++i) {
      size_t blob = rng() % static_cast<uint64_t>(w.k);
      for (size_t j = 0; j < w.d; ++j) {
        data[i * w.d + j] = static_cast<float>(centres[blob * w.d + j] + normal(rng));
      }
    }
    // k distinct random rows.
    std::vector<size_t> chosen;
    while (chosen.size() < static_cast<size_t>(w.k)) {
      size_t row = rng() % w.n;
      if (std::find(chosen.begin(), chosen.end(), row) == chosen.end()) chosen.push_back(row);
    }
    std::vector<float> init;
    for (size_t row : chosen) {
      init.insert(init.end(), data.begin() + row * w.d, data.begin() + (row + 1) * w.d);
    }
    std::string base = dir + "/" + w.name;
    if (!WriteNpy(base + "_X.npy", data, w.n, w.d) ||
        !WriteNpy(base + "_init.npy", init, static_cast<size_t>(w.k), w.d)) {
      std::fprintf(stderr, "cannot write %s_*.npy\n", base.c_str());
      return 1;
    }
    std::fprintf(stderr, "wrote %s_X.npy (%zu x %zu) and %s_init.npy (k=%d)\n", base.c_str(), w.n,
                 w.d, base.c_str(), w.k);
  }
  return 0;
}

int Run(const std::string& dir, int threads, const std::string& algos, const std::string& only,
        const std::string& kernel) {
  using Algorithm = shoal::KMeansOptions::Algorithm;
  if (!shoal::kmeans_internal::UseKernelsForTesting(kernel.c_str())) {
    std::fprintf(stderr, "kernel set %s is not supported by this CPU\n", kernel.c_str());
    return 1;
  }
  std::fprintf(stderr, "shoal kernel: %s, threads %d\n", shoal::kmeans_internal::KernelName(),
               threads);
  for (const Workload& w : kWorkloads) {
    if (!only.empty() && std::string(w.name).find(only) == std::string::npos) continue;
    std::vector<float> data, init;
    size_t n = 0, d = 0, k = 0, d_init = 0;
    std::string base = dir + "/" + w.name;
    if (!ReadNpy(base + "_X.npy", &data, &n, &d) ||
        !ReadNpy(base + "_init.npy", &init, &k, &d_init) || d != d_init) {
      std::fprintf(stderr, "cannot read %s_*.npy (run `generate` first)\n", base.c_str());
      return 1;
    }
    std::stringstream list(algos);
    std::string algo;
    while (std::getline(list, algo, ',')) {
      shoal::KMeansOptions options;
      options.k = static_cast<int>(k);
      options.tolerance = 1e-4;
      options.max_iterations = 300;
      if (algo == "lloyd") {
        options.algorithm = Algorithm::kLloyd;
      } else if (algo == "hamerly") {
        options.algorithm = Algorithm::kHamerly;
      } else if (algo == "elkan") {
        options.algorithm = Algorithm::kElkan;
      } else if (algo == "auto") {
        options.algorithm = Algorithm::kAuto;
      } else if (algo == "minibatch") {
        options.algorithm = Algorithm::kMiniBatch;
      } else {
        std::fprintf(stderr, "unknown algorithm %s\n", algo.c_str());
        return 1;
      }
      shoal::Context ctx;
      ctx.threads = threads;
      ctx.seed = 0;
      double cpu_start = CpuSeconds();
      auto start = std::chrono::steady_clock::now();
      auto result = shoal::KMeansFrom(data, n, d, init, options, ctx);
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double cpu_seconds = CpuSeconds() - cpu_start;
      if (!result.ok()) {
        std::fprintf(stderr, "%s: %s\n", w.name, result.status().ToString().c_str());
        return 1;
      }
      WriteNpy(dir + "/centroids_shoal-" + algo + "_" + w.name + ".npy", result->centroids, k, d);
      std::printf("%s\tshoal-%s\t%.4f\t%.4f\t%d\t%d\t%.6f\n", w.name, algo.c_str(), seconds,
                  cpu_seconds, result->iterations, result->converged ? 1 : 0, result->inertia);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kmeans_bench generate|run --dir DIR [...]\n");
    return 2;
  }
  std::string command = argv[1];
  std::string dir = Arg(argc, argv, "--dir", ".");
  if (command == "generate") return Generate(dir);
  if (command == "run") {
    return Run(dir, std::stoi(Arg(argc, argv, "--threads", "2")),
               Arg(argc, argv, "--algos", "lloyd,hamerly,elkan"), Arg(argc, argv, "--only", ""),
               Arg(argc, argv, "--kernel", "best"));
  }
  std::fprintf(stderr, "unknown command %s\n", command.c_str());
  return 2;
}
