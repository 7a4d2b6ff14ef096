#!/usr/bin/env bash
# One command for the k-means comparison: builds kmeans_bench if needed, writes the matrices once
# (deterministic), runs shoal, then the Python peers on the same files, and prints the table.
#
#   bench/kmeans/run.sh [--only blobs1m_k16] [--algos lloyd,hamerly,elkan]
#
# Environment: KMEANS_BENCH_DIR (matrices and centroids; default ~/.cache/shoal-bench/kmeans,
# about 0.5 GB), SHOAL_BUILD (a build folder; default build-kmeans, a "common;segment" module
# build, in which case kmeans_bench is compiled against its libraries since bench/ is part of
# full builds only).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${KMEANS_BENCH_DIR:-$HOME/.cache/shoal-bench/kmeans}
build=${SHOAL_BUILD:-$root/build-kmeans}
bin=$build/bench/kmeans/kmeans_bench

if [ -f "$build/build.ninja" ] && grep -q "kmeans_bench" "$build/build.ninja"; then
  cmake --build "$build" --target kmeans_bench >&2
else
  cmake -S "$root" -B "$build" -G Ninja -DSHOAL_MODULES="common;segment" >/dev/null
  cmake --build "$build" --target shoal_segment >&2
  mkdir -p "$build/bench/kmeans"
  c++ -O3 -DNDEBUG -std=c++20 -msse4.2 -mpopcnt -I"$root/src" "$root/bench/kmeans/kmeans_bench.cc" \
    "$build/src/segment/libshoal_segment.a" "$build/src/common/libshoal_common.a" -pthread -o "$bin"
fi

mkdir -p "$dir"
[ -f "$dir/blobs5m_k16_init.npy" ] || "$bin" generate --dir "$dir"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$bin" run --dir "$dir" --threads 2 "$@" | tee "$dir/shoal_results.tsv" >&2
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=2 /usr/bin/python3 "$root/bench/kmeans/peers.py" \
  --dir "$dir" --shoal "$dir/shoal_results.tsv" "$@"
