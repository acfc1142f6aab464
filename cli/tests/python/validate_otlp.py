"""Validate a kreq OTLP JSON export against the official OpenTelemetry protobuf definitions
(PyPI `opentelemetry-proto`). OTLP/JSON writes trace and span ids as hex where the plain
protobuf JSON mapping expects base64, so ids are converted as the OTLP spec tells receivers
to, then the document is parsed strictly (unknown fields are errors) into TracesData.

    python3 validate_otlp.py EXPORT.json REQUESTS

Prints a JSON summary; exits non-zero on any violation."""
import base64
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.trace.v1 import trace_pb2

path, want_requests = sys.argv[1], int(sys.argv[2])
doc = json.load(open(path))
problems = []


def unhex(span, key, size):
    v = span.get(key)
    if v is None:
        return
    if len(v) != 2 * size or any(c not in "0123456789abcdef" for c in v):
        problems.append(f"{key} {v!r} is not {size} bytes of lowercase hex")
        return
    span[key] = base64.b64encode(bytes.fromhex(v)).decode()


for rs in doc.get("resourceSpans", []):
    for ss in rs.get("scopeSpans", []):
        for sp in ss.get("spans", []):
            unhex(sp, "traceId", 16)
            unhex(sp, "spanId", 8)
            unhex(sp, "parentSpanId", 8)

data = trace_pb2.TracesData()
json_format.Parse(json.dumps(doc), data, ignore_unknown_fields=False)

traces = {}
services = set()
for rs in data.resource_spans:
    attrs = {a.key: a.value for a in rs.resource.attributes}
    if "service.name" not in attrs or not attrs["service.name"].string_value:
        problems.append("resource without service.name")
    services.add(attrs["service.name"].string_value)
    if "process.pid" not in attrs:
        problems.append("resource without process.pid")
    for ss in rs.scope_spans:
        if ss.scope.name != "kreq":
            problems.append(f"scope {ss.scope.name!r}")
        for sp in ss.spans:
            traces.setdefault(sp.trace_id, []).append(sp)
            if sp.end_time_unix_nano < sp.start_time_unix_nano:
                problems.append(f"span {sp.span_id.hex()} ends before it starts")
            if sp.kind not in (1, 2, 3):
                problems.append(f"span kind {sp.kind}")
            a = {x.key: x.value for x in sp.attributes}
            for k in ("kreq.request_id", "thread.id", "kreq.cpu_ns", "kreq.runnable_ns",
                      "kreq.blocked_ns", "kreq.bytes_in", "kreq.bytes_out"):
                if k not in a:
                    problems.append(f"span {sp.span_id.hex()} lacks {k}")
            parts = sum(a[k].int_value for k in ("kreq.cpu_ns", "kreq.runnable_ns",
                                                 "kreq.blocked_ns", "kreq.unknown_ns"))
            if parts != sp.end_time_unix_nano - sp.start_time_unix_nano:
                problems.append(f"span {sp.span_id.hex()}: time parts {parts} != duration")
            if a["kreq.blocked_ns"].int_value > 0 and "kreq.blocked_reason" not in a:
                problems.append(f"span {sp.span_id.hex()} blocked without a reason")

roots = 0
for tid, spans in traces.items():
    ids = {s.span_id for s in spans}
    req = {s.attributes[0].value.int_value for s in spans}
    if len(req) != 1:
        problems.append(f"trace {tid.hex()} mixes requests {req}")
    r = [s for s in spans if not s.parent_span_id]
    roots += len(r)
    if len(r) != 1:
        problems.append(f"trace {tid.hex()} has {len(r)} root spans")
    for s in spans:
        if s.parent_span_id and s.parent_span_id not in ids:
            problems.append(f"span {s.span_id.hex()} has a parent outside its trace")
        if s.parent_span_id:
            a = {x.key for x in s.attributes}
            if "kreq.link.rule" not in a:
                problems.append(f"span {s.span_id.hex()} has a parent but no link rule")
if len(traces) != want_requests:
    problems.append(f"{len(traces)} traces, expected {want_requests}")

print(json.dumps({"traces": len(traces), "spans": sum(len(v) for v in traces.values()),
                  "roots": roots, "services": sorted(services), "problems": problems[:20]}))
sys.exit(1 if problems else 0)
