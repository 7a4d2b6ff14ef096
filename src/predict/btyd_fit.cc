#include "predict/btyd_fit.h"

#include <chrono>
#include <thread>

#include "common/time.h"

namespace shoal {

BtydModelFits FitBtydModels(const CompressedRfm& data, const BtydModelsOptions& options,
                            const Context& ctx) {
  BtydModelFits fits;
  const int threads = ctx.Threads();
  Context gamma_gamma_ctx = ctx, bgnbd_ctx = ctx;
  gamma_gamma_ctx.threads = std::max(1, threads / 2);
  bgnbd_ctx.threads = std::max(1, threads - gamma_gamma_ctx.threads);
  auto fit_gamma_gamma = [&] {
    const auto start = std::chrono::steady_clock::now();
    fits.gamma_gamma = FitGammaGamma(data, options.fit, gamma_gamma_ctx);
    fits.gamma_gamma_seconds = SecondsSince(start);
  };
  {
    std::jthread gamma_gamma_thread;
    if (threads >= 2) {
      gamma_gamma_thread = std::jthread(fit_gamma_gamma);
    } else {
      fit_gamma_gamma();
    }
    const auto start = std::chrono::steady_clock::now();
    fits.bgnbd = FitBgNbd(data, options.fit, bgnbd_ctx);
    fits.bgnbd_seconds = SecondsSince(start);
  }  // joins the Gamma-Gamma thread
  if (options.pareto_nbd) {
    const auto start = std::chrono::steady_clock::now();
    fits.pareto_nbd = FitParetoNbd(data, options.fit, ctx);
    fits.pareto_nbd_seconds = SecondsSince(start);
  }
  return fits;
}

}  // namespace shoal
