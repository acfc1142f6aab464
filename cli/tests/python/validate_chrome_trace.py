"""Check a kreq Perfetto export against the Trace Event Format (the JSON format the Perfetto
UI and chrome://tracing import; docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU):

- a JSON object with a `traceEvents` array; `displayTimeUnit` is "ms" or "ns";
- every event has `ph`; `X` (complete) events have name, numeric ts and dur >= 0, pid, tid;
- `M` metadata events name every process and thread track used;
- complete events on one track nest (none partially overlaps another), as importers require;
- each flow id has exactly one `s` and one `f` (with `bp: "e"`), of the same cat and name,
  each inside a slice of its own track (flow events bind to the enclosing slice).

    python3 validate_chrome_trace.py EXPORT.json SLICES FLOWS

Prints a JSON summary; exits non-zero on any violation."""
import json
import sys
from collections import defaultdict

path, want_slices, want_flows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
doc = json.load(open(path))
problems = []
if not isinstance(doc, dict) or not isinstance(doc.get("traceEvents"), list):
    sys.exit("no traceEvents array")
if doc.get("displayTimeUnit", "ms") not in ("ms", "ns"):
    problems.append("bad displayTimeUnit")

num = (int, float)
slices = defaultdict(list)
named_proc, named_thread = set(), set()
flows = defaultdict(list)
for e in doc["traceEvents"]:
    ph = e.get("ph")
    if ph == "X":
        ok = (isinstance(e.get("name"), str) and isinstance(e.get("ts"), num)
              and isinstance(e.get("dur"), num) and e["dur"] >= 0
              and isinstance(e.get("pid"), int) and isinstance(e.get("tid"), int))
        if not ok:
            problems.append(f"bad X event {e}")
            continue
        if "request_id" not in e.get("args", {}):
            problems.append(f"slice without request_id {e['name']}")
        a = e["args"]
        parts = a["cpu_ns"] + a["runnable_ns"] + a["blocked_ns"] + a["unknown_ns"]
        if abs(parts / 1000.0 - e["dur"]) > 0.002:
            problems.append(f"slice {a['span_id']}: cpu+runnable+blocked+unknown != dur")
        slices[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"], e["name"]))
    elif ph == "M":
        if e.get("name") == "process_name":
            named_proc.add(e["pid"])
        elif e.get("name") == "thread_name":
            named_thread.add((e["pid"], e["tid"]))
    elif ph in ("s", "f"):
        if not all(k in e for k in ("id", "cat", "name", "pid", "tid", "ts")):
            problems.append(f"bad flow event {e}")
            continue
        flows[(e["cat"], e["id"])].append(e)
    else:
        problems.append(f"unexpected ph {ph!r}")

for track, ss in slices.items():
    if track[0] not in named_proc:
        problems.append(f"process {track[0]} has no process_name")
    if track not in named_thread:
        problems.append(f"track {track} has no thread_name")
    ss.sort(key=lambda s: (s[0], -s[1]))
    stack = []
    for start, end, name in ss:
        while stack and stack[-1] <= start:
            stack.pop()
        if stack and end > stack[-1] + 1e-9:
            problems.append(f"{name} on {track} partially overlaps an enclosing slice")
        stack.append(end)


def inside(e):
    return any(s <= e["ts"] <= t for s, t, _ in slices.get((e["pid"], e["tid"]), []))


for key, evs in flows.items():
    kinds = sorted(e["ph"] for e in evs)
    if kinds != ["f", "s"]:
        problems.append(f"flow {key} has events {kinds}")
        continue
    f = next(e for e in evs if e["ph"] == "f")
    if f.get("bp") != "e":
        problems.append(f"flow {key} end without bp=e")
    if len({e["name"] for e in evs}) != 1:
        problems.append(f"flow {key} changes name")
    for e in evs:
        if not inside(e):
            problems.append(f"flow {key} {e['ph']} at {e['ts']} is in no slice of its track")

n_slices = sum(len(v) for v in slices.values())
if n_slices != want_slices:
    problems.append(f"{n_slices} slices, expected {want_slices}")
if len(flows) != want_flows:
    problems.append(f"{len(flows)} flows, expected {want_flows}")
print(json.dumps({"slices": n_slices, "tracks": len(slices), "processes": len(named_proc),
                  "flows": len(flows), "problems": problems[:20]}))
sys.exit(1 if problems else 0)
