// The BTYD models of one calibration fitted together: BG/NBD and Gamma-Gamma at the same time on
// separate threads (their likelihood sums do not depend on the thread count, so the fits are
// identical to fitting them one after the other), then Pareto/NBD if asked.
#pragma once

#include "common/context.h"
#include "common/status.h"
#include "predict/bgnbd.h"
#include "predict/btyd_data.h"
#include "predict/gamma_gamma.h"
#include "predict/pareto_nbd.h"

namespace shoal {

struct BtydModelsOptions {
  // Options of every fit (bounds, budgets, tolerances); `initial` must be empty (each model
  // has its own parameter count).
  BtydFitOptions fit;
  // Fit Pareto/NBD too (slower than the other two together; its status says when skipped).
  bool pareto_nbd = true;
};

// Each model's fit or the reason it failed, and its wall-clock seconds (BG/NBD and Gamma-Gamma
// overlap, so their seconds are not additive).
struct BtydModelFits {
  Result<BgNbdFit> bgnbd = Status::FailedPrecondition("BG/NBD not fitted");
  Result<GammaGammaFit> gamma_gamma = Status::FailedPrecondition("Gamma-Gamma not fitted");
  Result<ParetoNbdFit> pareto_nbd = Status::FailedPrecondition("disabled (pareto_nbd = false)");
  double bgnbd_seconds = 0;
  double gamma_gamma_seconds = 0;
  double pareto_nbd_seconds = 0;
};

// Fits the models on `data`. With ctx.Threads() >= 2, Gamma-Gamma runs on its own thread with
// half the threads while BG/NBD uses the rest; Pareto/NBD then uses all of them. With one
// thread the fits run in turn. Every result equals the corresponding FitBgNbd / FitGammaGamma /
// FitParetoNbd call's.
BtydModelFits FitBtydModels(const CompressedRfm& data, const BtydModelsOptions& options,
                            const Context& ctx = {});

}  // namespace shoal
