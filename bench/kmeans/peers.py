#!/usr/bin/python3
"""k-means peers on the matrices written by `kmeans_bench generate`, and the comparison table.

Reads DIR/<name>_X.npy (float32 n x d) and DIR/<name>_init.npy (k x d), runs

  sklearn_lloyd   sklearn.cluster.KMeans(k, init=C0, n_init=1, max_iter=300, tol=1e-4,
                  algorithm="lloyd")
  sklearn_elkan   the same with algorithm="elkan"
  faiss           faiss.Kmeans(d, k, niter=<sklearn_lloyd's n_iter_>, all points as training
                  set).train(X, init_centroids=C0); FAISS has no convergence test, so it runs the
                  iterations Lloyd needed from the same start; its time covers train() only (no
                  final labels), which favours it

then reads shoal's rows (the TSV printed by `kmeans_bench run`, centroids in
DIR/centroids_shoal-<algo>_<name>.npy) and prints one markdown table. Every final inertia is
recomputed here by one function (float64, squared distance of every point to its nearest final
centroid), so all rows are measured the same way. Times: wall and process CPU seconds of the fit.
The ratio column is shoal's time over the fastest peer's (wall and CPU), for shoal's default
algorithm (hamerly).

Run through bench/kmeans/run.sh, which sets OPENBLAS_NUM_THREADS=1 (FAISS's OpenMP threads and
OpenBLAS's pthreads otherwise oversubscribe the cores; sklearn limits BLAS itself).
"""
import argparse
import os
import time

import numpy as np


def inertia64(X, C):
    """Float64 sum of squared distances to the nearest centroid, in blocks."""
    C = np.asarray(C, dtype=np.float64)
    cc = (C * C).sum(1)
    total = 0.0
    for s in range(0, len(X), 200_000):
        x = np.asarray(X[s:s + 200_000], dtype=np.float64)
        d = (x * x).sum(1)[:, None] - 2 * x @ C.T + cc[None, :]
        j = d.argmin(1)
        # Recompute the winner's distance directly (no cancellation).
        diff = x - C[j]
        total += float((diff * diff).sum())
    return total


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def run_peers(X, C0, peers):
    from sklearn.cluster import KMeans
    n, d = X.shape
    k = C0.shape[0]
    rows = {}
    lloyd_iters = None
    for algo in ("lloyd", "elkan"):
        name = f"sklearn_{algo}"
        if name not in peers and not (algo == "lloyd" and "faiss" in peers):
            continue
        m, wall, cpu = timed(lambda: KMeans(n_clusters=k, init=C0, n_init=1, max_iter=300,
                                            tol=1e-4, algorithm=algo).fit(X))
        if algo == "lloyd":
            lloyd_iters = int(m.n_iter_)
        if name in peers:
            rows[name] = dict(wall=wall, cpu=cpu, iters=int(m.n_iter_),
                              centroids=m.cluster_centers_)
    if "faiss" in peers:
        import faiss
        # Just above n / k: FAISS then trains on every point (no subsampling).
        km = faiss.Kmeans(d, k, niter=lloyd_iters, seed=0,
                          max_points_per_centroid=n // k + 1, verbose=False)
        _, wall, cpu = timed(lambda: km.train(X, init_centroids=C0))
        rows["faiss"] = dict(wall=wall, cpu=cpu, iters=lloyd_iters,
                             centroids=np.array(km.centroids))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--shoal", required=True, help="TSV printed by kmeans_bench run")
    ap.add_argument("--only", default="")
    ap.add_argument("--peers", default="sklearn_lloyd,sklearn_elkan,faiss")
    ap.add_argument("--threads", default="")  # accepted for symmetry with kmeans_bench
    ap.add_argument("--algos", default="")
    args = ap.parse_args()
    peers = set(p for p in args.peers.split(",") if p)

    shoal = {}
    order = []
    with open(args.shoal) as fh:
        for line in fh:
            name, algo, wall, cpu, iters, conv, inertia = line.rstrip("\n").split("\t")
            if name not in shoal:
                order.append(name)
                shoal[name] = {}
            shoal[name][algo] = dict(wall=float(wall), cpu=float(cpu), iters=int(iters),
                                     converged=conv == "1")

    print("| workload | implementation | wall s | CPU s | iterations | final inertia (float64) "
          "| vs lowest inertia | shoal/fastest peer (wall, CPU) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in order:
        if args.only and args.only not in name:
            continue
        X = np.load(os.path.join(args.dir, f"{name}_X.npy"))
        C0 = np.load(os.path.join(args.dir, f"{name}_init.npy"))
        rows = run_peers(X, C0, peers)
        for algo, r in shoal[name].items():
            r["centroids"] = np.load(os.path.join(args.dir, f"centroids_{algo}_{name}.npy"))
            rows[algo] = r
        for r in rows.values():
            r["inertia"] = inertia64(X, r["centroids"])
        best_inertia = min(r["inertia"] for r in rows.values())
        peer_rows = [r for a, r in rows.items() if not a.startswith("shoal")]
        fastest_wall = min((r["wall"] for r in peer_rows), default=None)
        fastest_cpu = min((r["cpu"] for r in peer_rows), default=None)
        n, d = X.shape
        label = f"{name} ({n:,}x{d}, k={C0.shape[0]})"
        for algo, r in rows.items():
            ratio = ""
            if algo == "shoal-hamerly" and fastest_wall:
                ratio = f"**{r['wall'] / fastest_wall:.2f}, {r['cpu'] / fastest_cpu:.2f}**"
            print(f"| {label} | {algo} | {r['wall']:.3f} | {r['cpu']:.3f} | {r['iters']} | "
                  f"{r['inertia']:,.1f} | {r['inertia'] / best_inertia - 1:+.2e} | {ratio} |",
                  flush=True)


if __name__ == "__main__":
    main()
