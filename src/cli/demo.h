// `shoal demo`: the embedded default job -- generate a shop, ingest it, compute everything and
// print a summary -- so a new user sees the whole pipeline with one command.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace shoal {

struct DemoOptions {
  std::string dir = "./shoal-demo";  // shop/, db/ and export.csv go here (replaced on each run)
  uint64_t customers = 50000;        // customers in the generated shop
  uint64_t seed = 7;                 // generator seed
};

Status RunDemo(const DemoOptions& options);

struct BuildResult;
// Prints the segments table, RFM segment sizes and audience sizes of a build to stdout.
void PrintSegments(const BuildResult& build);
// Prints the last build's models readably: the BTYD parameters with standard errors,
// log-likelihoods and convergence, then the propensity evaluation (`shoal models`, `shoal build`).
void PrintModels(const BuildResult& build);

}  // namespace shoal
