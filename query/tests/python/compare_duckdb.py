"""Runs kreq's analysis views in DuckDB and compares with DataFusion's results.

Usage: compare_duckdb.py DATASET WORKDIR
WORKDIR holds spec.json ({"views": [[name, sql]], "queries": [sql]}) and N.csv, DataFusion's
result of query N. The view definitions are the very SQL DataFusion ran. Numbers compare exactly
(integers) or to 1e-9 relative (floats); exits non-zero on the first difference.
"""
import csv
import json
import math
import sys

import duckdb

ds, work = sys.argv[1], sys.argv[2]
spec = json.load(open(f"{work}/spec.json"))
con = duckdb.connect()
for table in ["events", "lost_events", "requests", "spans", "edges"]:
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{ds}/{table}/*.parquet')")
for name, sql in spec["views"]:
    con.execute(f"CREATE VIEW {name} AS {sql}")


def norm(v):
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    s = str(v)
    if s in ("True", "False", "true", "false"):
        return s.lower()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


for i, q in enumerate(spec["queries"]):
    got = [[norm(v) for v in row] for row in con.execute(q).fetchall()]
    with open(f"{work}/{i}.csv", newline="") as f:
        rows = list(csv.reader(f))
    header, df_rows = rows[0], [[norm(v) for v in r] for r in rows[1:]]
    if len(got) != len(df_rows):
        sys.exit(f"query {i} ({q}): DuckDB {len(got)} rows, DataFusion {len(df_rows)}")
    for r, (a, b) in enumerate(zip(got, df_rows)):
        if len(a) != len(b) or not all(same(x, y) for x, y in zip(a, b)):
            sys.exit(f"query {i} ({q}) row {r}: DuckDB {a} != DataFusion {b} ({header})")
    print(f"query {i}: {len(got)} rows agree: {q}")
print(f"{len(spec['queries'])} queries agree")
