#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace shoal {

std::string HumanCount(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

ProgressPrinter::ProgressPrinter(std::string label, bool quiet)
    : label_(std::move(label)), quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1),
      last_(std::chrono::steady_clock::now()) {}

void ProgressPrinter::Update(const Progress& p) {
  if (quiet_) return;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.1 : 5.0)) return;
  last_ = now;
  double rate = p.seconds > 0 ? p.events / p.seconds : 0;
  if (tty_) {
    constexpr int kWidth = 30;
    double frac = p.bytes_total ? std::min(1.0, static_cast<double>(p.bytes) / p.bytes_total) : 0;
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(stderr, "\r%s [%s] %3.0f%%  %s events  %s/s  %s bad   ", label_.c_str(), bar.c_str(),
                 frac * 100, HumanCount(p.events).c_str(), HumanCount(rate).c_str(),
                 HumanCount(p.bad).c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "%s: %s: %s events, %s/s, %s bad, %.1f s\n", label_.c_str(), p.source.c_str(),
                 HumanCount(p.events).c_str(), HumanCount(rate).c_str(), HumanCount(p.bad).c_str(),
                 p.seconds);
  }
  std::fflush(stderr);
}

void ProgressPrinter::Finish() {
  if (drawn_) std::fprintf(stderr, "\n");
  drawn_ = false;
}

}  // namespace shoal
