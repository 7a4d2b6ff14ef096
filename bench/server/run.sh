#!/bin/sh
# The server benchmark (docs/benchmarks/server.md): wrk on loopback against `shoal serve`.
#   bench/server/run.sh [DURATION_SECONDS]
# SHOAL_BIN names the shoal binary (default: build/shoal). Needs wrk (apt-get install wrk) and
# /usr/bin/python3 (the webhook receiver of the latency phase). After the batch phase creates
# the customers, POST /v1/rebuild builds segments, RFM, audiences and scores, so the later phases
# run with the build's membership source (every event re-scores RFM, cluster, audiences);
# SHOAL_BENCH_BUILD=0 keeps the pre-build threshold source throughout.
# SHOAL_BENCH_ONLY=mixed runs only the batch phase (it creates the customers), the rebuild,
# the idle lookups from 8 connections and the lookups (8 connections) beside single events (8
# connections), then stops: the phase of issue #7, for quicker A/B runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shoal=${SHOAL_BIN:-$root/build/shoal}
duration=${1:-10}
threads=${WRK_THREADS:-2}
connections=${WRK_CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "wrk is missing: sudo apt-get install wrk"; exit 1; }
[ -x "$shoal" ] || { echo "no shoal binary at $shoal (build it, or set SHOAL_BIN)"; exit 1; }

work=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hook=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/db"
cat > "$work/db/shoal.toml" <<TOML
[[audiences]]
name = "vip"
rule = "monetary_total > 100000"

[[destinations]]
name = "bench"
url = "http://127.0.0.1:$hook/hook"
secret = "bench-secret"
marketing = false
audiences = ["vip"]
TOML
"$shoal" serve --db "$work/db" --port "$port" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port"
# Event ids are "<nonce>-<wrk thread>-<counter>" and every wrk run counts from 1: each phase
# gets its own nonce, or a later phase would resend earlier ids (all duplicates: not applied).
run_id=$(date +%s)
phase() { export SHOAL_BENCH_NONCE="$run_id$1"; }
phase a

rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
reqs() { awk '/requests in/ {print $1}' "$1"; }
# The server's CPU time (user + system, clock ticks) from /proc: read around each wrk phase,
# divided by the phase's requests, it gives CPU per request, steadier than wall figures on a
# shared machine.
ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
hz=$(getconf CLK_TCK)
cpu_per() {  # cpu_per NAME FILE: microseconds of server CPU per request of the phase
  awk -v a="$(cat "$work/$1.t0")" -v b="$(cat "$work/$1.t1")" -v n="$(reqs "$2")" -v hz="$hz" \
    'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / n}'
}
pct() { awk -v q="$2" '$1 == q {print $2}' "$1"; }
errors() { awk '/Non-2xx/ {print $5} END {}' "$1"; }
# share_over M0 M1 LE SERIES: the share of the observations of histogram SERIES (its bucket
# lines' prefix, e.g. 'shoal_engine_exclusive_hold_seconds_bucket{') between two /metrics
# snapshots that were over LE seconds; n/a when the binary has no such series or none was seen.
share_over() {
  awk -v le="$3" -v f0="$1" -v series="$4" '
    index($0, series) == 1 {
      if (FILENAME == f0) { if (index($0, "le=\"" le "\"")) a0 = $2; if (index($0, "+Inf")) n0 = $2 }
      else { if (index($0, "le=\"" le "\"")) a1 = $2; if (index($0, "+Inf")) n1 = $2 } }
    END { if (a1 == "" || n1 == "" || n1 == n0) print "n/a"; else printf "%.2f%%", 100 * (1 - (a1 - a0) / (n1 - n0)) }
  ' "$1" "$2"
}
# over M0 M1 LE [ROUTE]: the share of the ROUTE requests (default: profile lookups) between two
# snapshots that the server took longer than LE seconds over, from their receipt
# (SO_TIMESTAMPNS) to their response.
over() { share_over "$1" "$2" "$3" "shoal_http_request_duration_seconds_bucket{route=\"${4:-profile}\""; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== batches of 100 events (also creates the 10,000 customers)"
ticks > "$work/batch.t0"
wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/post_batch.lua" "$url" | tee "$work/batch.txt"
ticks > "$work/batch.t1"
if [ "${SHOAL_BENCH_BUILD:-1}" != 0 ]; then
  echo "== POST /v1/rebuild (the build's segments, RFM, audiences and scores from here on)"
  curl -sf -X POST -d "" "$url/v1/rebuild" | tee "$work/rebuild.txt"
  echo
  phase b
  echo "== batches of 100 events with the build's source"
  ticks > "$work/batch_built.t0"
  wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/post_batch.lua" "$url" | tee "$work/batch_built.txt"
  ticks > "$work/batch_built.t1"
fi
only=${SHOAL_BENCH_ONLY:-}
lookup_conns=${WRK_LOOKUP_CONNECTIONS:-8}
if [ "$only" = mixed ]; then
  phase d
  echo "== profile lookups (idle), $lookup_conns connections"
  curl -s "$url/metrics" > "$work/few.m0"
  wrk -t"$threads" -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_few.txt"
  curl -s "$url/metrics" > "$work/few.m1"
  phase f
  echo "== profile lookups ($lookup_conns connections) while single events stream in ($lookup_conns connections)"
  ticks > "$work/mixed.t0"
  curl -s "$url/metrics" > "$work/mixed.m0"
  wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/post_single.lua" "$url" > "$work/single_bg_few.txt" &
  bg=$!
  wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_mixed_few.txt"
  wait $bg
  ticks > "$work/mixed.t1"
  curl -s "$url/metrics" > "$work/mixed.m1"
  echo
  echo "| workload | figure |"
  echo "|---|---|"
  echo "| events/s in batches of 100, threshold source | $(awk -v r="$(rps "$work/batch.txt")" 'BEGIN {printf "%.0f", r * 100}') |"
  [ -f "$work/batch_built.txt" ] && echo "| events/s in batches of 100, build source | $(awk -v r="$(rps "$work/batch_built.txt")" 'BEGIN {printf "%.0f", r * 100}') |"
  echo "| profile lookups/s, p50 / p99 (idle, c=$lookup_conns) | $(rps "$work/lookup_few.txt"), $(pct "$work/lookup_few.txt" 50%) / $(pct "$work/lookup_few.txt" 99%) |"
  echo "| idle lookups the server took over 1 / 2 ms (receipt -> response) | $(over "$work/few.m0" "$work/few.m1" 0.001) / $(over "$work/few.m0" "$work/few.m1" 0.002) |"
  echo "| single events/s beside the lookups | $(rps "$work/single_bg_few.txt") |"
  echo "| single event p50 / p99 beside the lookups | $(pct "$work/single_bg_few.txt" 50%) / $(pct "$work/single_bg_few.txt" 99%) |"
  echo "| profile lookups/s beside the events | $(rps "$work/lookup_mixed_few.txt") |"
  echo "| profile lookup p50 / p99 / max beside the events | $(pct "$work/lookup_mixed_few.txt" 50%) / $(pct "$work/lookup_mixed_few.txt" 99%) / $(awk '/Latency/ && !/Distribution/ {print $4; exit}' "$work/lookup_mixed_few.txt") |"
  echo "| server CPU per request (lookups + events) | $(awk -v a="$(cat "$work/mixed.t0")" -v b="$(cat "$work/mixed.t1")" -v n="$(( $(reqs "$work/single_bg_few.txt") + $(reqs "$work/lookup_mixed_few.txt") ))" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) * 1e6 / hz / n}') us |"
  # The apply leader's exclusive holds of the engine lock during the phase (what a lookup can
  # wait for), from the server's histogram; binaries without it say n/a.
  holds() {  # holds LE: share of the phase's holds longer than LE seconds
    share_over "$work/mixed.m0" "$work/mixed.m1" "$1" 'shoal_engine_exclusive_hold_seconds_bucket{'
  }
  echo "| exclusive engine-lock holds longer than 0.25 / 1 / 2.5 ms | $(holds 0.00025) / $(holds 0.001) / $(holds 0.0025) |"
  echo "| lookups the server took over 1 / 2 ms, receipt -> response, beside the events | $(over "$work/mixed.m0" "$work/mixed.m1" 0.001) / $(over "$work/mixed.m0" "$work/mixed.m1" 0.002) |"
  echo "| lookups deferred to a worker (lock taken), since start | $(awk '/^shoal_lookups_deferred_total/ {print $2}' "$work/mixed.m1") |"
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi
phase c
echo "== single events, keep-alive"
ticks > "$work/single.t0"
curl -s "$url/metrics" > "$work/single.m0"
wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/post_single.lua" "$url" | tee "$work/single.txt"
curl -s "$url/metrics" > "$work/single.m1"
ticks > "$work/single.t1"
echo "== profile lookups (idle)"
ticks > "$work/lookup.t0"
curl -s "$url/metrics" > "$work/lookup.m0"
wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup.txt"
curl -s "$url/metrics" > "$work/lookup.m1"
ticks > "$work/lookup.t1"
phase d
# The same lookups from fewer connections: with wrk on the same 2 cores, 32 busy connections
# keep 4 threads runnable on 2 cores and a lookup's p99 becomes the scheduler's time slice;
# from 8 the server answers more lookups per second and the latency is the server's own.
echo "== profile lookups (idle), $lookup_conns connections"
curl -s "$url/metrics" > "$work/few.m0"
wrk -t"$threads" -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_few.txt"
curl -s "$url/metrics" > "$work/few.m1"
phase f
echo "== profile lookups ($lookup_conns connections, $threads wrk threads as idle) while single events stream in ($lookup_conns connections)"
curl -s "$url/metrics" > "$work/same.m0"
wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/post_single.lua" "$url" > "$work/single_bg_same.txt" &
bg=$!
wrk -t"$threads" -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_mixed_same.txt"
wait $bg
curl -s "$url/metrics" > "$work/same.m1"
# The same with one wrk thread for the lookups (two in all, as many as cores). A control: one
# wrk thread is itself saturated by 8 busy connections, and its own delays are in its figures,
# so it is also measured idle.
echo "== profile lookups (idle), $lookup_conns connections, one wrk thread"
wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_few_t1.txt"
phase i
echo "== profile lookups ($lookup_conns connections, one wrk thread) while single events stream in ($lookup_conns connections)"
wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/post_single.lua" "$url" > "$work/single_bg_few.txt" &
bg=$!
wrk -t1 -c"$lookup_conns" -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_mixed_few.txt"
wait $bg
phase g
echo "== profile lookups while single events stream in"
curl -s "$url/metrics" > "$work/mixed16.m0"
wrk -t1 -c16 -d"${duration}s" --latency -s "$here/post_single.lua" "$url" > "$work/single_bg.txt" &
bg=$!
wrk -t1 -c16 -d"${duration}s" --latency -s "$here/get_profile.lua" "$url" | tee "$work/lookup_mixed.txt"
wait $bg
curl -s "$url/metrics" > "$work/mixed16.m1"
phase e
echo "== POST -> webhook latency (200 membership changes at 100/s while single events stream in)"
wrk -t1 -c16 -d4s -s "$here/post_single.lua" "$url" > /dev/null &
bg=$!
/usr/bin/python3 "$here/latency.py" "$port" "$hook" 200 100 | tee "$work/latency.txt"
wait $bg

if [ -f "$work/batch_built.txt" ]; then
  # Last, so the phases above keep their figures: orders stamped now extend every history at
  # its newest end (post_batch.lua stamps one fixed 2024 time).
  phase h
  echo "== batches of 100 events with the build's source, timestamped now"
  ticks > "$work/batch_now.t0"
  SHOAL_BENCH_STAMP=now wrk -t"$threads" -c"$connections" -d"${duration}s" --latency -s "$here/post_batch.lua" "$url" | tee "$work/batch_now.txt"
  ticks > "$work/batch_now.t1"
fi

batch_rps=$(rps "$work/batch.txt")
echo
echo "| workload | figure | target |"
echo "|---|---|---|"
echo "| single events/s (keep-alive, c=$connections) | $(rps "$work/single.txt") | >= 20,000 |"
echo "| events/s in batches of 100 | $(awk -v r="$batch_rps" 'BEGIN {printf "%.0f", r * 100}') | >= 300,000 |"
[ -f "$work/batch_built.txt" ] && echo "| events/s in batches of 100, build source | $(awk -v r="$(rps "$work/batch_built.txt")" 'BEGIN {printf "%.0f", r * 100}') | >= 300,000 |"
[ -f "$work/batch_now.txt" ] && echo "| events/s in batches of 100, build source, timestamped now | $(awk -v r="$(rps "$work/batch_now.txt")" 'BEGIN {printf "%.0f", r * 100}') | |"
echo "| server CPU per single event | $(cpu_per single "$work/single.txt") us | |"
echo "| server CPU per batch of 100 (threshold source) | $(cpu_per batch "$work/batch.txt") us | |"
[ -f "$work/batch_built.txt" ] && echo "| server CPU per batch of 100 (build source) | $(cpu_per batch_built "$work/batch_built.txt") us | |"
[ -f "$work/batch_now.txt" ] && echo "| server CPU per batch of 100 (build source, timestamped now) | $(cpu_per batch_now "$work/batch_now.txt") us | |"
echo "| server CPU per profile lookup (idle) | $(cpu_per lookup "$work/lookup.txt") us | |"
echo "| single event p50 / p99 latency | $(pct "$work/single.txt" 50%) / $(pct "$work/single.txt" 99%) | |"
# wrk's own figure above has disagreed with its counts (a mean over 32 / requests-per-second, which
# a closed loop cannot have): the server's histogram, receipt -> durable answer, beside it.
echo "| single events the server took over 2.5 / 25 / 100 ms (receipt -> durable answer) | $(over "$work/single.m0" "$work/single.m1" 0.0025 events) / $(over "$work/single.m0" "$work/single.m1" 0.025 events) / $(over "$work/single.m0" "$work/single.m1" 0.1 events) | |"
echo "| batch of 100 p50 / p99 latency | $(pct "$work/batch.txt" 50%) / $(pct "$work/batch.txt" 99%) | |"
echo "| profile lookups/s (idle) | $(rps "$work/lookup.txt") | |"
# With $connections (and 16) connections kept busy by wrk on the same 2 cores, the client is
# saturated and queues its own responses: these rows' p99 is mostly its wait, so the server's
# share (receipt -> response, from /metrics) is printed beside them.
echo "| profile lookup p50 / p99 (idle, c=$connections, client-saturated) | $(pct "$work/lookup.txt" 50%) / $(pct "$work/lookup.txt" 99%) | |"
echo "| lookups of that phase the server took over 1 / 2 ms (receipt -> response) | $(over "$work/lookup.m0" "$work/lookup.m1" 0.001) / $(over "$work/lookup.m0" "$work/lookup.m1" 0.002) | |"
echo "| profile lookups/s while $(rps "$work/single_bg.txt") events/s stream in | $(rps "$work/lookup_mixed.txt") | |"
echo "| profile lookup p50 / p99 (streaming, c=16, one wrk thread each, client-saturated) | $(pct "$work/lookup_mixed.txt" 50%) / $(pct "$work/lookup_mixed.txt" 99%) | |"
echo "| lookups of that phase the server took over 1 / 2 ms (receipt -> response) | $(over "$work/mixed16.m0" "$work/mixed16.m1" 0.001) / $(over "$work/mixed16.m0" "$work/mixed16.m1" 0.002) | |"
echo "| profile lookups/s (idle, c=$lookup_conns) | $(rps "$work/lookup_few.txt") | |"
echo "| profile lookup p50 / p99 (idle, c=$lookup_conns) | $(pct "$work/lookup_few.txt" 50%) / $(pct "$work/lookup_few.txt" 99%) | p99 < 2 ms |"
echo "| lookups of that phase the server took over 1 / 2 ms (receipt -> response) | $(over "$work/few.m0" "$work/few.m1" 0.001) / $(over "$work/few.m0" "$work/few.m1" 0.002) | under 1% |"
echo "| profile lookups/s while $(rps "$work/single_bg_same.txt") events/s stream in (c=$lookup_conns each, lookups from $threads wrk threads as idle) | $(rps "$work/lookup_mixed_same.txt") | |"
echo "| profile lookup p50 / p99 (streaming, c=$lookup_conns, $threads wrk threads) | $(pct "$work/lookup_mixed_same.txt" 50%) / $(pct "$work/lookup_mixed_same.txt" 99%) | p99 < 2 ms |"
echo "| lookups of that phase the server took over 1 / 2 ms (receipt -> response) | $(over "$work/same.m0" "$work/same.m1" 0.001) / $(over "$work/same.m0" "$work/same.m1" 0.002) | under 1% |"
echo "| control: profile lookup p50 / p99 (idle, c=$lookup_conns, one wrk thread) | $(pct "$work/lookup_few_t1.txt" 50%) / $(pct "$work/lookup_few_t1.txt" 99%) | |"
echo "| profile lookups/s while $(rps "$work/single_bg_few.txt") events/s stream in (c=$lookup_conns each, one wrk thread each) | $(rps "$work/lookup_mixed_few.txt") | |"
echo "| profile lookup p50 / p99 (streaming, c=$lookup_conns, one wrk thread) | $(pct "$work/lookup_mixed_few.txt" 50%) / $(pct "$work/lookup_mixed_few.txt" 99%) | compare with the control |"
echo "| POST -> webhook | $(sed 's/webhook_latency_ms //' "$work/latency.txt") ms | p99 < 50 ms |"
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -f "$work/rebuild.txt" ] && echo "rebuild: $(cat "$work/rebuild.txt")"
curl -s "$url/metrics" | grep -E '^shoal_(events_stored_total|group_commits_total|webhook_deliveries_total|outbox_depth)'
