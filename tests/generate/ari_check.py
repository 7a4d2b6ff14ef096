#!/usr/bin/python3
# Scores how recoverable the planted segments of a generated shop are: per-customer traits from
# events.csv (pandas), standardised, clustered with k-means and a Gaussian mixture (k = 6);
# prints per-segment trait medians, the adjusted Rand index against truth.csv, and the
# confusion tables. Usage: /usr/bin/python3 tests/generate/ari_check.py DIR
# (DIR written by shoal generate). Not run by ctest: pandas/sklearn are benchmark peers.
import sys, pandas as pd, numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler
from sklearn.metrics import adjusted_rand_score
d = sys.argv[1]
ev = pd.read_csv(d + "/events.csv", dtype={"customer_id": str, "email": str, "anonymous_id": str}, keep_default_na=False, na_values=[""])
truth = pd.read_csv(d + "/truth.csv")
idf = ev[ev.customer_id.notna()]
e2c = dict(zip(idf.email.dropna().str.lower(), idf.customer_id[idf.email.notna()]))
a2c = dict(zip(idf.anonymous_id.dropna(), idf.customer_id[idf.anonymous_id.notna()]))
cid = ev.customer_id.copy()
m = cid.isna(); cid[m] = ev.email[m].str.lower().map(e2c)
m = cid.isna(); cid[m] = ev.anonymous_id[m].map(a2c)
ev["cid"] = cid
ev = ev[ev.type != "referral"]
ev["ts"] = pd.to_datetime(ev.timestamp)
today = ev.ts.max()
lines = ev[ev.type == "order"].copy()
cat_med = lines.groupby("category").unit_price.median()
lines["prem"] = lines.unit_price / lines.category.map(cat_med)
lines["disc"] = (lines.discount > 0).astype(float)
orders = lines.drop_duplicates("event_id")
first = ev.drop_duplicates("event_id")
g = orders.groupby("cid")
f = pd.DataFrame(index=truth.customer_id)
f["freq"] = g.size()
f["monetary"] = g.total.sum()
f["aov"] = g.total.mean()
f["recency"] = (today - g.ts.max()).dt.days
def cv(x):
    x = np.sort(x.values.astype("datetime64[s]").astype(np.int64)); 
    if len(x) < 3: return np.nan
    d = np.diff(x); return d.std() / max(d.mean(), 1)
f["ipt_cv"] = g.ts.agg(cv)
lg = lines.groupby("cid")
f["disc_share"] = lg.disc.mean()
f["prem"] = lg.prem.mean()
f["ncat"] = lg.category.nunique()
cnt = first.groupby(["cid", "type"]).size().unstack(fill_value=0)
for t in ["session_start", "product_view", "page_view", "search", "cart_add", "checkout_start", "email_send", "email_open", "return"]:
    f[t] = cnt[t] if t in cnt else 0
f = f.fillna({"freq": 0, "monetary": 0, "aov": 0, "disc_share": 0, "prem": 0, "ncat": 0}).fillna(0)
f["recency"] = f.recency.where(f.freq > 0, 1500)
f["ipt_cv"] = f.ipt_cv.where(f.freq >= 3, 2)
f["abandon"] = 1 - f.freq / f.checkout_start.clip(lower=1)
f["open_rate"] = f.email_open / f.email_send.clip(lower=1)
tr = truth.set_index("customer_id").segment
print(f.groupby(tr).median().round(2).T.to_string())
X = f.copy()
for c in ["freq", "monetary", "aov", "session_start", "product_view", "page_view", "search", "cart_add", "checkout_start", "email_send", "email_open", "return", "ncat", "recency"]:
    X[c] = np.log1p(X[c])
X = StandardScaler().fit_transform(X.values)
for name, model in [("kmeans", KMeans(6, n_init=20, random_state=0)), ("gmm", GaussianMixture(6, n_init=5, random_state=0))]:
    lab = model.fit_predict(X)
    print(name, "ARI", round(adjusted_rand_score(tr.values, lab), 3))
lab = GaussianMixture(6, n_init=5, random_state=0).fit_predict(X)
print(pd.crosstab(tr.values, lab))
lab = KMeans(6, n_init=20, random_state=0).fit_predict(X)
print(pd.crosstab(tr.values, lab))
