#!/usr/bin/python3
"""pandas side of the segment benchmark (RFM scoring, audience rules) on segment_bench's files.

Usage: /usr/bin/python3 peers.py --dir DIR --shoal shoal_results.tsv

Loads the same raw columns shoal used (numpy.fromfile, not timed), times what an analyst writes
in pandas, checks that the audiences match the same number of customers as shoal, and prints a
markdown table with shoal's figures and the ratios.
  rfm:   customers with orders; R and F = qcut of rank(method="first") (pandas' usual way around
         duplicate edges), M = qcut of the value, 5 = best; (R, FM) grid -> named segment.
  rule1: days > 60 & orders_365d >= 3 & segment == "premium trend explorers" (Categorical)
  rule2: (monetary / max(frequency, 1) > 80 | discount in [0, .5]) & days notna & days < 182
  Each as a boolean mask expression and as DataFrame.query (numexpr engine where it applies).
"""
import argparse
import time

import numpy as np
import pandas as pd

GRID = np.array([  # rows R = 1..5, columns FM = 1..5 (docs/segments.md)
    ["Lost", "Hibernating", "At Risk", "Can't Lose Them", "Can't Lose Them"],
    ["Hibernating", "Hibernating", "At Risk", "At Risk", "At Risk"],
    ["About to Sleep", "About to Sleep", "Need Attention", "Loyal", "Loyal"],
    ["Promising", "Potential Loyalist", "Loyal", "Champions", "Champions"],
    ["New", "Potential Loyalist", "Loyal", "Champions", "Champions"],
], dtype=object)


def best_of(repeats, fn):
    best, out = 1e300, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def load(d):
    names = [line.rstrip("\n") for line in open(f"{d}/segment_names.txt")]
    codes = np.fromfile(f"{d}/segment.i32", dtype=np.int32)
    return pd.DataFrame({
        "days_since_last_order": np.fromfile(f"{d}/days_since_last_order.f64"),
        "frequency": np.fromfile(f"{d}/frequency.f64"),
        "monetary_total": np.fromfile(f"{d}/monetary_total.f64"),
        "orders_365d": np.fromfile(f"{d}/orders_365d.f64"),
        "discount_share": np.fromfile(f"{d}/discount_share.f64"),
        "segment": pd.Categorical.from_codes(codes, categories=names),
    })


def rfm(df):
    sub = df[df["frequency"] > 0]
    r = pd.qcut(sub["days_since_last_order"].rank(method="first"), 5,
                labels=[5, 4, 3, 2, 1]).astype(int)
    f = pd.qcut(sub["frequency"].rank(method="first"), 5, labels=[1, 2, 3, 4, 5]).astype(int)
    m = pd.qcut(sub["monetary_total"], 5, labels=[1, 2, 3, 4, 5]).astype(int)
    fm = (f.to_numpy() + m.to_numpy() + 1) // 2
    seg = GRID[r.to_numpy() - 1, fm - 1]
    return int((seg == "Champions").sum())


def rule1_mask(df):
    return int(((df["days_since_last_order"] > 60) & (df["orders_365d"] >= 3)
                & (df["segment"] == "premium trend explorers")).sum())


def rule1_query(df):
    return len(df.query('days_since_last_order > 60 and orders_365d >= 3 and '
                        'segment == "premium trend explorers"'))


def rule2_mask(df):
    d = df["days_since_last_order"]
    return int((((df["monetary_total"] / np.maximum(df["frequency"], 1) > 80)
                 | df["discount_share"].isin([0, 0.5])) & d.notna() & (d < 182)).sum())


def rule2_query(df):
    return len(df.query('(monetary_total / frequency.clip(lower=1) > 80 or '
                        'discount_share in [0, 0.5]) and days_since_last_order == '
                        'days_since_last_order and days_since_last_order < 182'))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--shoal", required=True)
    args = ap.parse_args()
    shoal = {}
    for line in open(args.shoal):
        task, n, threads, seconds, check = line.rstrip("\n").split("\t")
        shoal[task] = (int(n), int(threads), float(seconds), check)
    df = load(args.dir)
    n = len(df)
    rows = []

    def add(task, label, seconds, check, compare=True):
        n_s, threads, s, shoal_check = shoal[task]
        ok = "" if not compare or shoal_check.split("=")[1] == str(check) else " MISMATCH"
        rows.append(f"| {task} | {n:,} | {label} | {s:.4f} ({threads} thr) | {seconds:.4f} | "
                    f"{seconds / s:.1f}x | {shoal_check} vs {check}{ok} |")

    t, champions = best_of(3, lambda: rfm(df))
    # Scores differ by design (pandas splits ties by row order), so the counts are not compared.
    add("rfm", "rank/qcut + grid", t, f"champions={champions}", compare=False)
    for task, mask, query in (("rule1", rule1_mask, rule1_query), ("rule2", rule2_mask, rule2_query)):
        t, count = best_of(5, lambda: mask(df))
        add(task, "boolean mask", t, count)
        t, count = best_of(5, lambda: query(df))
        add(task, "DataFrame.query", t, count)
    print("| task | customers | pandas form | shoal s | pandas s | pandas/shoal | check (shoal vs pandas) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    for task in sorted(shoal):
        if task.endswith("_per_row") or task.endswith("_compile"):
            n_s, threads, s, check = shoal[task]
            print(f"| {task} (shoal only) | {n_s:,} | - | {s:.6f} ({threads} thr) | | | {check} |")


if __name__ == "__main__":
    main()
