#!/usr/bin/python3
"""Segment quality: how well `shoal build` recovers planted segments, against plain k-means.

Two kinds of shop, each with a truth file:
  * `shoal generate` shops (events of every type, 6 planted segments), one per seed;
  * the peers' `gen_events.py` shop (order lines only, 6 planted segments, a different generator
    that shoal was not tuned on), loaded with the mapping beside this script.
For each, shoal ingests, builds (default features, automatic k) and exports; the adjusted Rand
index (ARI) of `segment_id` against the truth is printed beside the baseline a notebook would
run: scikit-learn KMeans (k = the true 6, n_init = 10) on z-scored features -- shoal's default
trait set from the same export for generator shops, and the peers' own feature recipe
(peer_kmeans.build_features) for gen_events.

With --build-time N it also times the whole `shoal build` on a generated shop of N customers
(generate and ingest are not timed).

Usage: bench/segment/quality.py [--shoal build/shoal] [--seeds 1,2,3,4,5] [--customers 4000]
                                [--gen-events 10k] [--build-time 1000000] [--markdown FILE]
Environment: SHOAL_PEERS_DIR (default ../shared/peers beside the repo), QUALITY_DATA (work
folder, default ~/.cache/shoal-bench/quality).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_FEATURES = ["frequency", "aov", "recency_days", "discount_share", "premium_index",
                    "distinct_categories", "new_categories_30d", "cart_abandonment_rate",
                    "cart_abandonment_count", "product_views", "sessions", "email_open_rate",
                    "ipi_std_days", "return_rate"]
LOGGED = {"frequency", "aov", "recency_days", "distinct_categories", "new_categories_30d",
          "cart_abandonment_count", "product_views", "sessions", "ipi_std_days"}


def run(cmd, quiet=True):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


def shoal_segments(shoal, workdir, sources, mapping=None):
    """Ingests `sources` into a fresh workspace, builds, exports; returns (export, k, seconds)."""
    db = os.path.join(workdir, "db")
    shutil.rmtree(db, ignore_errors=True)
    cmd = [shoal, "ingest", "--db", db] + (["--mapping", mapping] if mapping else []) + sources
    run(cmd)
    t0 = time.perf_counter()
    run([shoal, "build", "--db", db])
    build_s = time.perf_counter() - t0
    out = os.path.join(workdir, "export.csv")
    run([shoal, "export", "--db", db, "--out", out])
    report = json.loads(run([shoal, "segments", "--db", db, "--json"]))
    return pd.read_csv(out, dtype={"customer_id": str}), report["k"], build_s


def naive_kmeans_ari(frame, truth, k=6):
    """A notebook's k-means: NaN -> 0, log1p of counts and money, z-score, KMeans(k, n_init=10)."""
    cols = []
    for f in DEFAULT_FEATURES:
        v = frame[f].astype(float).fillna(0.0).to_numpy()
        cols.append(np.log1p(np.clip(v, 0, None)) if f in LOGGED else v)
    x = StandardScaler().fit_transform(np.column_stack(cols))
    labels = KMeans(k, n_init=10, random_state=0).fit_predict(x)
    return adjusted_rand_score(truth, labels)


def generator_rows(args, data):
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        shop = os.path.join(data, f"gen-{args.customers}-{seed}")
        if not os.path.exists(os.path.join(shop, "truth.csv")):
            run([args.shoal, "generate", "--customers", str(args.customers), "--seed", str(seed),
                 "--out", shop])
        export, k, _ = shoal_segments(args.shoal, shop, [os.path.join(shop, "events.jsonl")])
        truth = pd.read_csv(os.path.join(shop, "truth.csv"), dtype={"customer_id": str})
        merged = export.merge(truth, on="customer_id")
        rows.append((f"shoal generate, seed {seed}", len(merged), k,
                     adjusted_rand_score(merged["segment"], merged["segment_id"]),
                     naive_kmeans_ari(merged, merged["segment"]), "k-means on z-scored default traits"))
    return rows


def gen_events_rows(args, data):
    peers = os.environ.get("SHOAL_PEERS_DIR", os.path.join(os.path.dirname(ROOT), "shared", "peers"))
    if not os.path.exists(os.path.join(peers, "gen_events.py")):
        print(f"skipping gen_events: no {peers}/gen_events.py (set SHOAL_PEERS_DIR)", file=sys.stderr)
        return []
    tag = args.gen_events
    folder = os.path.join(data, "gen_events")
    orders = os.path.join(folder, f"orders_{tag}.csv")
    if not os.path.exists(orders):
        run(["/usr/bin/python3", os.path.join(peers, "gen_events.py"), "--customers", tag,
             "--out-dir", folder])
    export, k, _ = shoal_segments(args.shoal, folder, [orders],
                                  mapping=os.path.join(HERE, "gen-events.toml"))
    labels = pd.read_csv(os.path.join(folder, f"labels_{tag}.csv"), dtype={"customer_id": str})
    merged = export.merge(labels[["customer_id", "segment"]], on="customer_id")
    sys.path.insert(0, peers)
    import peer_kmeans  # the peers' own feature recipe (7 features, z-scored)
    ids, xraw, _ = peer_kmeans.build_features(orders)
    x = StandardScaler().fit_transform(xraw)
    base_labels = KMeans(6, n_init=10, random_state=0).fit_predict(x)
    truth = labels.set_index(labels["customer_id"].astype(str))["segment"]
    base_ari = adjusted_rand_score(truth.loc[[str(i) for i in ids]].to_numpy(), base_labels)
    return [(f"gen_events.py {tag}", len(merged), k,
             adjusted_rand_score(merged["segment"], merged["segment_id"]), base_ari,
             "peers' k-means recipe (7 z-scored features)")]


def build_time(args, data):
    n = args.build_time
    shop = os.path.join(data, f"gen-{n}-1")
    if not os.path.exists(os.path.join(shop, "events.jsonl")):
        run([args.shoal, "generate", "--customers", str(n), "--seed", "1", "--out", shop])
    db = os.path.join(shop, "db")
    if not os.path.exists(db):
        run([args.shoal, "ingest", "--db", db, os.path.join(shop, "events.jsonl")])
    t0 = time.perf_counter()
    out = run(["/usr/bin/time", "-v", args.shoal, "build", "--db", db])
    wall = time.perf_counter() - t0
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out)
    stages = [line for line in out.splitlines() if line.startswith("build:")]
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan")), stages


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shoal", default=os.path.join(ROOT, "build", "shoal"))
    ap.add_argument("--seeds", default="1,2,3,4,5")
    ap.add_argument("--customers", type=int, default=4000)
    ap.add_argument("--gen-events", default="10k")
    ap.add_argument("--build-time", type=int, default=0)
    ap.add_argument("--markdown")
    args = ap.parse_args()
    data = os.environ.get("QUALITY_DATA", os.path.expanduser("~/.cache/shoal-bench/quality"))
    os.makedirs(data, exist_ok=True)
    rows = generator_rows(args, data) + (gen_events_rows(args, data) if args.gen_events else [])
    lines = ["| shop | customers | k chosen | shoal ARI | baseline ARI (k = 6 given) | baseline |",
             "|---|---|---|---|---|---|"]
    for name, n, k, ari, base, how in rows:
        lines.append(f"| {name} | {n:,} | {k} | {ari:.3f} | {base:.3f} | {how} |")
    if args.build_time:
        wall, rss, stages = build_time(args, data)
        lines += ["", f"`shoal build` on {args.build_time:,} generated customers: {wall:.1f} s wall, "
                      f"peak RSS {rss:,.0f} MiB", ""] + [f"    {s}" for s in stages]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
