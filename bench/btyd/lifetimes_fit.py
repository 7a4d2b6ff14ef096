#!/usr/bin/python3
"""Peer side of bench/btyd: fit lifetimes' BetaGeoFitter and GammaGammaFitter on one summary CSV
(columns frequency,recency,T,monetary_value; time in weeks) and print one JSON line.

lifetimes and autograd run from source checkouts (not Debian packages): PEERS_SRC must name the
folder holding lifetimes/ and autograd/ (see /work/shared/peers/README.md, "Fetched sources").
Fits use penalizer_coef=0 and lifetimes' defaults, like shared/peers/peer_lifetimes.py. The
BG/NBD fit runs twice: on one row per customer (what a typical notebook does) and on rows
grouped by (frequency, recency, T) with lifetimes' `weights` argument (the same compression
shoal uses; the groupby is timed with it). The BG/NBD log-likelihood is recomputed in the data's own time unit (lifetimes rescales time
internally, so its own value is not the literature's). Times: wall (perf_counter) and CPU of
the process, all threads (process_time), since the machine may be shared.
"""
import json
import os
import sys
import time

src = os.environ.get("PEERS_SRC", "")
for sub in ("autograd", "lifetimes"):
    path = os.path.join(src, sub)
    if not os.path.isdir(path):
        print(json.dumps({"error": f"missing {path}"}))
        sys.exit(2)
    sys.path.insert(0, path)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.special import betaln, gammaln  # noqa: E402
from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402


def bgnbd_ll(r, al, a, b, x, tx, T):
    A = gammaln(r + x) - gammaln(r) + r * np.log(al)
    t1 = betaln(a, b + x) - betaln(a, b) - (r + x) * np.log(al + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        t2 = np.where(x > 0, betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b)
                      - (r + x) * np.log(al + tx), -np.inf)
    return float((A + np.logaddexp(t1, t2)).sum())


def main():
    path = sys.argv[1]
    t0 = time.perf_counter()
    d = pd.read_csv(path)
    read_s = time.perf_counter() - t0
    out = {"rows": len(d), "read_s": read_s}
    bg = BetaGeoFitter(penalizer_coef=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    bg.fit(d["frequency"], d["recency"], d["T"])
    out["bg_fit_s"] = time.perf_counter() - t0
    out["bg_fit_cpu_s"] = time.process_time() - c0
    p = bg.params_
    out["bg_params"] = [float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"])]
    out["bg_ll"] = bgnbd_ll(*out["bg_params"], d["frequency"].values.astype(float),
                            d["recency"].values, d["T"].values)
    # lifetimes also accepts weights ("Fader and Hardie condense the individual RFM matrix into
    # all observed combinations"): the same compression shoal does, done with a pandas groupby.
    t0, c0 = time.perf_counter(), time.process_time()
    g = d.groupby(["frequency", "recency", "T"]).size().reset_index(name="weight")
    bgw = BetaGeoFitter(penalizer_coef=0.0)
    bgw.fit(g["frequency"], g["recency"], g["T"], weights=g["weight"])
    out["bgw_fit_s"] = time.perf_counter() - t0
    out["bgw_fit_cpu_s"] = time.process_time() - c0
    out["bgw_rows"] = len(g)
    p = bgw.params_
    out["bgw_params"] = [float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"])]
    rep = d[d["frequency"] > 0]
    gg = GammaGammaFitter(penalizer_coef=0.0)
    t0, c0 = time.perf_counter(), time.process_time()
    gg.fit(rep["frequency"], rep["monetary_value"])
    out["gg_fit_s"] = time.perf_counter() - t0
    out["gg_fit_cpu_s"] = time.process_time() - c0
    q = gg.params_
    out["gg_params"] = [float(q["p"]), float(q["q"]), float(q["v"])]
    out["gg_ll"] = float(-gg._negative_log_likelihood_ * len(rep))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
