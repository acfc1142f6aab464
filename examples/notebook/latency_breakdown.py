#!/usr/bin/env python3
"""Per-request latency breakdown of a kreq dataset, for notebook users.

Loads a correlated dataset with DuckDB (straight from the Parquet files; kreq is not needed),
computes where each request's time went per service -- each server span's self time (its
duration minus its outgoing calls) and each call's time on the wire -- and plots the slowest
requests as stacked bars to a PNG. The same steps work cell by cell in Jupyter.

    python3 examples/notebook/latency_breakdown.py target/demo --png breakdown.png [--top 30]

Needs duckdb, pandas and matplotlib (pip install -r requirements-test.txt).
"""
import argparse

import duckdb
import matplotlib

matplotlib.use("Agg")  # headless: no display needed
import matplotlib.pyplot as plt  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("dataset")
p.add_argument("--png", required=True)
p.add_argument("--top", type=int, default=30)
args = p.parse_args()

con = duckdb.connect()
for table in ["requests", "spans"]:
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{args.dataset}/{table}/*.parquet')")

# Self time of each server/internal span, and wire time of each call, per request and service.
hops = con.execute("""
    WITH calls AS (SELECT parent_span_id, sum(duration_ns) AS ns FROM spans
                   WHERE kind = 'client' GROUP BY parent_span_id),
         callee AS (SELECT parent_span_id, sum(duration_ns) AS ns FROM spans
                    WHERE kind = 'server' GROUP BY parent_span_id)
    SELECT s.request_id, s.comm AS service, s.duration_ns - coalesce(c.ns, 0) AS self_ns
    FROM spans s LEFT JOIN calls c ON c.parent_span_id = s.span_id WHERE s.kind <> 'client'
    UNION ALL
    SELECT s.request_id, '(network)' AS service, s.duration_ns - coalesce(v.ns, 0) AS self_ns
    FROM spans s LEFT JOIN callee v ON v.parent_span_id = s.span_id WHERE s.kind = 'client'
""").df()
slow = con.execute(
    f"SELECT request_id, duration_ns FROM requests ORDER BY duration_ns DESC, request_id LIMIT {args.top}"
).df()

table = (hops[hops.request_id.isin(slow.request_id)]
         .pivot_table(index="request_id", columns="service", values="self_ns", aggfunc="sum", fill_value=0)
         .reindex(slow.request_id) / 1e6)
ax = table.plot.bar(stacked=True, figsize=(12, 5), width=0.85)
ax.set_xlabel("request (slowest first)")
ax.set_ylabel("ms")
ax.set_title(f"Where the {len(table)} slowest requests spent their time")
ax.legend(title="service", loc="upper left", bbox_to_anchor=(1.01, 1))
plt.tight_layout()
plt.savefig(args.png, dpi=100)
total = table.sum()
print(f"wrote {args.png}: {len(table)} requests; ms by service: "
      + ", ".join(f"{k} {v:.1f}" for k, v in total.sort_values(ascending=False).items()))
