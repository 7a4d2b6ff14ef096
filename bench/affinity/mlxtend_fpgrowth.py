#!/usr/bin/python3
"""mlxtend peer for affinity_bench: frequent itemsets with mlxtend.frequent_patterns.fpgrowth.

  /usr/bin/python3 mlxtend_fpgrowth.py BASKETS.csv SUPPORT [SUPPORT ...]

mlxtend runs from a source checkout (not a Debian package): its directory (the one holding
the `mlxtend` package) comes from $SHOAL_MLXTEND_SRC, else $PEERS_SRC/mlxtend. Steps as in
the shared peer harness (shared/peers/peer_fpgrowth.py): read the file into lists (items kept
verbatim, repeats collapsed), one-hot encode with TransactionEncoder into a dense bool
DataFrame, then fpgrowth(min_support, use_colnames=True) once per support. Prints one JSON
line per support: itemsets, read_s, encode_s, fpgrowth_s (time.perf_counter).
"""
import json
import os
import sys
import time


def main():
    src = os.environ.get("SHOAL_MLXTEND_SRC") or os.path.join(
        os.environ.get("PEERS_SRC", os.path.expanduser("~/.cache/shoal-peers/src")), "mlxtend")
    if not os.path.isdir(os.path.join(src, "mlxtend")):
        print(json.dumps({"error": f"mlxtend source not found at {src}"}), flush=True)
        return 2
    sys.path.insert(0, src)
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth
    from mlxtend.preprocessing import TransactionEncoder

    path, supports = sys.argv[1], [float(s) for s in sys.argv[2:]]
    t0 = time.perf_counter()
    with open(path) as fh:
        tx = [list(dict.fromkeys(line.rstrip("\n").split(","))) for line in fh if line.strip()]
    t1 = time.perf_counter()
    te = TransactionEncoder()
    df = pd.DataFrame(te.fit(tx).transform(tx), columns=te.columns_)
    t2 = time.perf_counter()
    for support in supports:
        t3 = time.perf_counter()
        sets = fpgrowth(df, min_support=support, use_colnames=True)
        t4 = time.perf_counter()
        print(json.dumps({"support": support, "itemsets": len(sets), "read_s": t1 - t0,
                          "encode_s": t2 - t1, "fpgrowth_s": t4 - t3}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
