#!/usr/bin/env bash
# Installs shoal's build and test dependencies from Debian 12 packages; idempotent: only what is
# missing is installed, and nothing is done when everything is present.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds the peers the benchmarks compare against)
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config git
  libsimdjson-dev librocksdb-dev libtomlplusplus-dev libcli11-dev libfmt-dev libxxhash-dev
  libeigen3-dev libboost-math-dev libnlopt-dev libxgboost-dev libcpp-httplib-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev curl)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-numpy python3-pandas python3-sklearn python3-faiss python3-scipy python3-dill
    libopenblas0-pthread time wrk)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then exit 0; fi
echo "installing: ${missing[*]}" >&2
SUDO=""; if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
