"""Parquet contract check: read a kreq dataset with pyarrow and DuckDB.

Usage: check_dataset.py DATASET EXPECTED_JSON
EXPECTED_JSON holds {"events": N, "event_counts": {name: n}, "first": {column: value},
"requests": N} (the dataset has been through `kreq correlate`).
Prints one line per check; exits non-zero on the first mismatch.
"""
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ds, expected = sys.argv[1], json.loads(sys.argv[2])

# pyarrow: the events table opens as a directory with the declared types.
t = pq.read_table(f"{ds}/events")
assert t.num_rows == expected["events"], (t.num_rows, expected["events"])
s = t.schema
assert s.field("ts_ns").type == pa.int64()
assert s.field("tid").type == pa.int32()
assert pa.types.is_dictionary(s.field("comm").type)
assert pa.types.is_map(s.field("fields").type)
assert s.field("sk_addr").type == pa.uint64()
meta = pq.ParquetFile(pq.ParquetDataset(f"{ds}/events").files[0]).metadata.metadata
assert meta[b"kreq.schema_version"] == b"6", meta
assert s.field("op").type == pa.int64() and s.field("utime").type == pa.uint64()
assert s.field("request_id").type == pa.uint64() and s.field("span_id").type == pa.uint64()
first = t.slice(0, 1).to_pylist()[0]
for col, want in expected["first"].items():
    assert first[col] == want, (col, first[col], want)
print(f"pyarrow: {t.num_rows} rows, types and first row ok")

# DuckDB: same counts per event, typed columns usable in SQL, map lookup works.
con = duckdb.connect()
glob = f"{ds}/events/*.parquet"
n = con.execute(f"select count(*) from read_parquet('{glob}')").fetchone()[0]
assert n == expected["events"], n
rows = con.execute(
    f"select event, count(*) from read_parquet('{glob}') group by event"
).fetchall()
counts = {e: c for e, c in rows}
for name, want in expected["event_counts"].items():
    assert counts.get(name) == want, (name, counts.get(name), want)
bytes_sent = con.execute(
    f"select sum(length) from read_parquet('{glob}') where event = 'sock_send_length'"
).fetchone()[0]
assert bytes_sent and bytes_sent > 0, bytes_sent
comm = con.execute(
    f"select fields['next_comm'] from read_parquet('{glob}') where event = 'sched_switch' limit 1"
).fetchone()[0]
comm = comm[0] if isinstance(comm, list) else comm
assert isinstance(comm, str) and comm, comm
lost = con.execute(f"select count(*) from read_parquet('{ds}/lost_events/*.parquet')").fetchone()[0]
print(f"duckdb: {n} rows, {len(counts)} event types, {bytes_sent} bytes sent, lost rows {lost}")

# Correlation tables: declared types, and the joins notebook users make agree.
req = pq.read_table(f"{ds}/requests")
spans = pq.read_table(f"{ds}/spans")
edges = pq.read_table(f"{ds}/edges")
assert req.num_rows == expected["requests"], req.num_rows
assert req.schema.field("duration_ns").type == pa.int64()
assert pa.types.is_list(req.schema.field("services").type)
assert spans.schema.field("cpu_ns").type == pa.int64()
assert spans.schema.field("end_tid").type == pa.int32()
assert pa.types.is_dictionary(edges.schema.field("rule").type)
orphans = con.execute(
    f"select count(*) from read_parquet('{ds}/spans/*.parquet') s anti join "
    f"read_parquet('{ds}/requests/*.parquet') r using (request_id)"
).fetchone()[0]
assert orphans == 0, orphans
unknown = con.execute(
    f"select count(*) from read_parquet('{glob}') e where span_id is not null and span_id not in "
    f"(select span_id from read_parquet('{ds}/spans/*.parquet'))"
).fetchone()[0]
assert unknown == 0, unknown
split = con.execute(
    f"select count(*) from read_parquet('{ds}/spans/*.parquet') where "
    f"cpu_ns + runnable_ns + blocked_ns + unknown_ns <> duration_ns"
).fetchone()[0]
assert split == 0, split
non_root = con.execute(
    f"select count(*) from read_parquet('{ds}/spans/*.parquet') where parent_span_id is not null"
).fetchone()[0]
assert non_root == edges.num_rows, (non_root, edges.num_rows)
labelled = con.execute(f"select count(*) from read_parquet('{glob}') where request_id is not null").fetchone()[0]
print(f"correlation: {req.num_rows} requests, {spans.num_rows} spans, {edges.num_rows} edges, {labelled} labelled events")
