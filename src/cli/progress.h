// Progress output for long commands: a bar with rows/s on a terminal, plain lines otherwise.
#pragma once

#include <chrono>
#include <string>

#include "engine/engine.h"

namespace shoal {

class ProgressPrinter {
 public:
  // Writes to stderr. `quiet` prints nothing.
  explicit ProgressPrinter(std::string label, bool quiet = false);
  void Update(const Progress& p);
  // Ends the bar line.
  void Finish();

 private:
  std::string label_;
  bool quiet_;
  bool tty_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
};

// "1.23M", "45.6k", "789".
std::string HumanCount(double v);

}  // namespace shoal
