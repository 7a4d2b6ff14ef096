#!/usr/bin/env bash
# One command for the segment comparison (RFM scoring and audience rules, shoal vs pandas): builds
# segment_bench if needed, writes the columns once per size (deterministic), runs shoal, then
# pandas on the same files, and prints one markdown table per size.
#
#   bench/segment/run.sh [SIZES...]          (default: 1000000 5000000)
#
# Environment: SEGMENT_BENCH_DIR (columns; default ~/.cache/shoal-bench/segment, about 45 bytes
# per customer), SHOAL_BUILD (a build folder; default build-segment, a "common;segment" module
# build, against whose libraries segment_bench is compiled since bench/ is part of full builds
# only), THREADS (default 2).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${SEGMENT_BENCH_DIR:-$HOME/.cache/shoal-bench/segment}
build=${SHOAL_BUILD:-$root/build-segment}
threads=${THREADS:-2}
bin=$build/bench/segment/segment_bench
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 5000000)

if [ -f "$build/build.ninja" ] && grep -q "segment_bench" "$build/build.ninja"; then
  cmake --build "$build" --target segment_bench >&2
else
  [ -f "$build/build.ninja" ] || cmake -S "$root" -B "$build" -G Ninja -DSHOAL_MODULES="common;segment" >/dev/null
  cmake --build "$build" --target shoal_segment >&2
  mkdir -p "$build/bench/segment"
  c++ -O3 -DNDEBUG -std=c++20 -msse4.2 -mpopcnt -I"$root/src" "$root/bench/segment/segment_bench.cc" \
    "$build/src/segment/libshoal_segment.a" "$build/src/common/libshoal_common.a" -ltomlplusplus \
    -pthread -o "$bin"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for size in "${sizes[@]}"; do
  data=$dir/$size
  mkdir -p "$data"
  [ -f "$data/segment.i32" ] || "$bin" generate --dir "$data" --customers "$size"
  "$bin" run --dir "$data" --threads "$threads" > "$data/shoal_results.tsv"
  echo
  echo "### $size customers"
  /usr/bin/python3 "$root/bench/segment/peers.py" --dir "$data" --shoal "$data/shoal_results.tsv"
done
