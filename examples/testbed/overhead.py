#!/usr/bin/env python3
"""Capture overhead on the testbed, measured in one run: requests/s with no tracing, with
`kreq record` (default profile, default buffers), with a `cat trace_pipe` text capture of
the same events, and with the same events enabled in an instance nobody reads ("kernel": what
the tracepoints themselves cost, the floor for any reader). Rounds interleave the four modes;
medians and ratios are reported, plus the events kreq lost. The recordings are deleted at the
end. Needs root, nginx and redis-server.

    python3 examples/testbed/overhead.py --rounds 5 --requests 3000 --connections 4
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--requests", type=int, default=3000)
p.add_argument("--connections", type=int, default=4)
p.add_argument("--kreq", default=None)
p.add_argument("--rotate-secs", type=float, default=0.5,
               help="kreq part rotation; short so decoding and Parquet writing happen during the load")
args = p.parse_args()

tmp = tempfile.mkdtemp(prefix="kreq-overhead-")
rps = {"none": [], "kreq": [], "text": [], "kernel": []}
lost, events = [], []
for r in range(args.rounds):
    for mode in ("none", "kreq", "text", "kernel"):
        cmd = [sys.executable, os.path.join(HERE, "testbed.py"), "--requests", str(args.requests),
               "--connections", str(args.connections), "--workdir", os.path.join(tmp, f"w{r}{mode}")]
        if args.kreq:
            cmd += ["--kreq", args.kreq]
        if mode == "kreq":
            cmd += ["--record", os.path.join(tmp, f"ds{r}"), "--rotate-secs", str(args.rotate_secs)]
        if mode == "text":
            cmd += ["--text-capture", os.path.join(tmp, f"text{r}.txt")]
        if mode == "kernel":
            cmd += ["--kernel-only"]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        rps[mode].append(out["rps"])
        if mode == "kreq":
            m = re.search(r"lost events: (\d+)", out["recorder"])
            lost.append(int(m.group(1)) if m else None)
            m = re.search(r"recorded (\d+) events", out["recorder"])
            events.append(int(m.group(1)) if m else None)
shutil.rmtree(tmp, ignore_errors=True)
med = {k: statistics.median(v) for k, v in rps.items()}
# Rounds drift (other load, CPU frequency): the median of each round's own ratio is steadier.
paired = {k: statistics.median(x / n for x, n in zip(rps[k], rps["none"])) for k in ("kreq", "text", "kernel")}
print(json.dumps({
    "rounds": args.rounds, "requests": args.requests, "connections": args.connections,
    "median_rps": med,
    "kreq_over_none": med["kreq"] / med["none"],
    "text_over_none": med["text"] / med["none"],
    "kernel_only_over_none": med["kernel"] / med["none"],
    "paired_median_ratio": paired,
    "kreq_lost_events_per_round": lost, "kreq_events_per_round": events,
    "all_rps": rps,
}, indent=1))
