#!/usr/bin/python3
"""Ingest throughput, memory and RFM against pandas, on the same generated shop, in one run.

For each size: `shoal generate` writes a shop; shoal ingests its JSONL and (into a second
workspace) its CSV end to end (parse, identity, traits, durable RocksDB store), reporting
wall and CPU seconds, peak RSS and where resident memory goes (`ingest --memory`); pandas
(Debian python3-pandas) computes the RFM table from the same CSV; shoal's RFM comes from the
profiles it keeps current (`shoal export --columns recency_days,frequency,monetary_total`).
Both RFM tables are checked to agree (sum of monetary, sum of frequency) before any ratio is
printed. Three comparisons: end to end (pandas read_csv + RFM against shoal ingest + export),
at rest (each tool from its own data at rest: pandas read_csv + RFM against shoal export of
the RFM columns from the ingested workspace), and pandas' RFM step alone on a DataFrame
already in memory against the same shoal export. pandas also ranks the values into quintile
scores (qcut), which the shoal export does not (its `shoal build` does, with everything else).

Usage: bench/ingest/run_ingest_bench.py [--sizes 1M,10M] [--shoal build/shoal] [--data DIR]
Before each timed ingest and before pandas, the input file is read once and dirty pages are
written back (`settle`): every tool starts from the page cache and no step's fsyncs wait
behind the writes of the one before.

Writes the table to stdout and, with --markdown FILE, as Markdown.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (wall seconds, peak RSS MiB, stdout, CPU seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    return wall, (int(rss.group(1)) / 1024 if rss else float("nan")), proc.stdout, cpu


def settle(path):
    """Before a timed step: the input file read once (so each tool starts from the page cache,
    not from whatever an earlier step evicted) and every dirty page written back (so the step's
    own fsyncs do not wait behind an earlier step's writes or a removed workspace)."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass
    os.sync()


def parse_size(text):
    text = text.strip().upper()
    mult = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1], 1)
    return int(float(text.rstrip("KMG")) * mult)


PANDAS_RFM = r'''
import sys, time, json
import pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(sys.argv[1], usecols=["event_id", "type", "timestamp", "customer_id", "total"],
                 dtype={"event_id": str, "type": str, "customer_id": str, "total": float})
t_read = time.perf_counter() - t0
t1 = time.perf_counter()
orders = df[(df["type"] == "order") & df["customer_id"].notna()].drop_duplicates("event_id")
orders = orders.assign(ts=pd.to_datetime(orders["timestamp"], utc=True))
now = pd.to_datetime(df["timestamp"], utc=True).max().normalize() + pd.Timedelta(days=1)
rfm = orders.groupby("customer_id").agg(last=("ts", "max"), frequency=("event_id", "nunique"),
                                        monetary=("total", "sum"))
rfm["recency_days"] = (now - rfm["last"]).dt.total_seconds() / 86400
for col, name in (("recency_days", "R"), ("frequency", "F"), ("monetary", "M")):
    ranks = rfm[col].rank(method="first", ascending=(col != "recency_days"))
    rfm[name] = pd.qcut(ranks, 5, labels=[1, 2, 3, 4, 5]).astype(int)
t_compute = time.perf_counter() - t1
print(json.dumps({"read_s": t_read, "compute_s": t_compute, "customers": int(len(rfm)),
                  "sum_monetary": float(rfm["monetary"].sum()), "sum_frequency": int(rfm["frequency"].sum()),
                  "mean_recency": float(rfm["recency_days"].mean())}))
'''


RFM_COLUMNS = "recency_days,frequency,monetary_total"
MEMORY_ITEMS = ("event-id dedupe", "identity graph", "trait states (slots)", "trait states (heap)", "other",
                "store memtables", "store block cache", "store table readers")


def shoal_rfm_check(export_csv):
    """Sums over customers with orders from a shoal export (frequency > 0)."""
    import csv
    s_m = 0.0
    s_f = 0
    s_r = 0.0
    n = 0
    with open(export_csv, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            freq = row.get("frequency", "")
            if not freq or float(freq) <= 0:
                continue
            s_f += int(float(freq))
            s_m += float(row["monetary_total"] or 0)
            s_r += float(row["recency_days"])
            n += 1
    return {"customers": n, "sum_monetary": s_m, "sum_frequency": s_f, "mean_recency": s_r / max(n, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1M,10M", help="events per shop, comma-separated")
    ap.add_argument("--shoal", default=os.path.join(ROOT, "build", "shoal"))
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/shoal-bench/ingest"))
    ap.add_argument("--events-per-customer", type=float, default=0,
                    help="customers = events / this (0: measured from a small pilot shop)")
    ap.add_argument("--markdown", help="also write the table as Markdown to this file")
    ap.add_argument("--repeat", type=int, default=3,
                    help="ingests per file and format; the median wall time is reported (default 3)")
    args = ap.parse_args()
    os.makedirs(args.data, exist_ok=True)

    per_customer = args.events_per_customer
    if per_customer <= 0:
        pilot = os.path.join(args.data, "pilot")
        out = subprocess.run([args.shoal, "generate", "--customers", "2000", "--seed", "1", "--out", pilot],
                             capture_output=True, text=True, check=True).stdout
        m = re.search(r"(\d+) customers, (\d+) events", out)
        per_customer = int(m.group(2)) / int(m.group(1))
    rows = []
    for size_text in args.sizes.split(","):
        events_target = parse_size(size_text)
        customers = max(1000, int(events_target / per_customer))
        shop = os.path.join(args.data, f"shop-{size_text}")
        if not os.path.exists(os.path.join(shop, "events.csv")):
            subprocess.run([args.shoal, "generate", "--customers", str(customers), "--seed", "1", "--out", shop],
                           check=True, capture_output=True)
        result = {"size": size_text, "customers": customers}
        for fmt, name in (("jsonl", "events.jsonl"), ("csv", "events.csv")):
            db = os.path.join(args.data, f"db-{size_text}-{fmt}")
            # --repeat fresh ingests; the run with the median wall time is reported, the others'
            # wall times are listed beside it (a 2-core machine's runs vary by several percent).
            runs = []
            for _ in range(args.repeat):
                shutil.rmtree(db, ignore_errors=True)
                settle(os.path.join(shop, name))
                runs.append(run_timed([args.shoal, "ingest", "--quiet", "--memory", "--db", db,
                                       os.path.join(shop, name)]))
            walls = sorted(r[0] for r in runs)
            wall, rss, out, cpu = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
            events = int(re.search(r"events parsed\s+(\d+)", out).group(1))
            stored = int(re.search(r"events stored\s+(\d+)", out).group(1))
            profiles = int(re.search(r"profiles\s+(\d+)", out).group(1))
            state = re.search(r"state memory\s+([\d.]+) MiB", out)
            memory = {item: float(re.search(re.escape(item) + r"\s+([\d.]+) MiB", out).group(1))
                      for item in MEMORY_ITEMS if re.search(re.escape(item) + r"\s+([\d.]+) MiB", out)}
            result[fmt] = {"wall_s": wall, "walls_s": walls, "cpu_s": cpu, "rss_mib": rss, "events": events,
                           "stored": stored,
                           "memory_mib": memory,
                           "profiles": profiles, "events_per_s": events / wall,
                           "state_mib": float(state.group(1)) if state else float("nan"),
                           "store_mib": sum(os.path.getsize(os.path.join(db, f)) for f in os.listdir(db)) / 2**20}
        db = os.path.join(args.data, f"db-{size_text}-csv")
        export = os.path.join(args.data, f"export-{size_text}.csv")
        wall, rss, _, cpu = run_timed([args.shoal, "export", "--db", db, "--out", export])
        result["shoal_export_s"] = wall
        rfm_export = os.path.join(args.data, f"export-rfm-{size_text}.csv")
        wall, rss, _, cpu = run_timed([args.shoal, "export", "--db", db, "--out", rfm_export, "--columns", RFM_COLUMNS])
        result["shoal_export_rfm_s"] = wall
        result["shoal_export_rfm_cpu_s"] = cpu
        result["shoal_rfm"] = shoal_rfm_check(rfm_export)
        settle(os.path.join(shop, "events.csv"))
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/python3", "-c", PANDAS_RFM, os.path.join(shop, "events.csv")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit("pandas failed: " + proc.stderr)
        result["pandas"] = json.loads(proc.stdout)
        result["pandas"]["process_s"] = time.perf_counter() - t0
        rows.append(result)
        print(json.dumps(result), flush=True)

    lines = ["| events | customers | format | shoal ingest s (median) | events/s | all runs s | CPU s | events per CPU-s | "
             "peak RSS MiB | state bytes/profile (beyond the store) | store memory MiB at end | store MiB on disk |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for fmt in ("jsonl", "csv"):
            x = r[fmt]
            store_mem = sum(v for k, v in x["memory_mib"].items() if k.startswith("store"))
            lines.append(f"| {x['events']:,} | {x['profiles']:,} | {fmt} | {x['wall_s']:.2f} | "
                         f"{x['events_per_s']:,.0f} | {' / '.join(f'{w:.2f}' for w in x['walls_s'])} | {x['cpu_s']:.2f} | {x['events'] / max(x['cpu_s'], 1e-9):,.0f} | "
                         f"{x['rss_mib']:,.0f} | {x['state_mib'] * 2**20 / max(x['profiles'], 1):,.0f} | "
                         f"{store_mem:,.0f} | {x['store_mib']:,.0f} |")
    lines += ["", "Resident memory after the CSV ingest, bytes per profile:", "",
              "| events | " + " | ".join(MEMORY_ITEMS) + " |", "|---|" + "---|" * len(MEMORY_ITEMS)]
    for r in rows:
        x = r["csv"]
        cells = [f"{x['memory_mib'].get(item, float('nan')) * 2**20 / max(x['profiles'], 1):,.0f}" for item in MEMORY_ITEMS]
        lines.append(f"| {x['events']:,} | " + " | ".join(cells) + " |")
    lines += ["", "| events | pandas read_csv s | pandas RFM s (loaded DataFrame) | pandas total s | shoal CSV ingest s | "
              "shoal export, all traits s | shoal export, RFM columns s | end to end: pandas total / (shoal ingest + RFM export) | "
              "at rest: pandas total / shoal RFM export | pandas RFM alone / shoal RFM export | check |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["pandas"]
        s = r["shoal_rfm"]
        ok = (abs(p["sum_monetary"] - s["sum_monetary"]) <= 1e-6 * max(1, p["sum_monetary"])
              and p["sum_frequency"] == s["sum_frequency"])
        total_p = p["read_s"] + p["compute_s"]
        rfm_s = r["shoal_export_rfm_s"]
        lines.append(f"| {r['csv']['events']:,} | {p['read_s']:.2f} | {p['compute_s']:.2f} | {total_p:.2f} | "
                     f"{r['csv']['wall_s']:.2f} | {r['shoal_export_s']:.2f} | {rfm_s:.2f} | "
                     f"{total_p / (r['csv']['wall_s'] + rfm_s):.1f}x | {total_p / rfm_s:.1f}x | {p['compute_s'] / rfm_s:.1f}x | "
                     f"{'sums agree' if ok else 'MISMATCH'}: M {p['sum_monetary']:,.2f} vs {s['sum_monetary']:,.2f}, "
                     f"F {p['sum_frequency']:,} vs {s['sum_frequency']:,} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
