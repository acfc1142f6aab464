#!/usr/bin/env python3
"""Capture overhead on the testbed, measured in one run: requests/s with no tracing, with
`kreq record` (default profile, default buffers), with a `cat trace_pipe` text capture of
the same events, and with the same events enabled in an instance nobody reads ("kernel":
what the tracepoints cost with no reader; the buffer then overwrites itself, which is not
free either, so a recorder can come out ahead of it). Rounds interleave the four modes; medians and ratios are reported,
plus the events kreq lost and the CPU time kreq used while the load ran. The recordings are
deleted at the end. Needs root, nginx and redis-server.

    python3 examples/testbed/overhead.py --rounds 5 --requests 3000 --connections 4
"""
import argparse
import json
import os
import random
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
p.add_argument("--modes", default="none,kreq,text,kernel",
               # kreq_old: kreq record with the profile of kreq 0.1's first recorder, without
               # sched_waking, futex and epoll_pwait, to price what the hand-off rules need.
               help="comma-separated subset (none is always run): fewer modes, more rounds per minute")
p.add_argument("--seed", type=int, default=1, help="seed of the bootstrap resampling")
args = p.parse_args()
MODES = ["none"] + [m for m in args.modes.split(",") if m in ("kreq", "kreq_old", "text", "kernel")]
OLD_PROFILE = ["sched:sched_switch", "sched:sched_wakeup", "sched:sched_wakeup_new", "sched:sched_process_fork",
               "sched:sched_process_exit", "sock:sock_send_length", "sock:sock_recv_length",
               "sock:inet_sock_set_state", "tcp:tcp_rcv_space_adjust", "tcp:tcp_probe", "tcp:tcp_destroy_sock"] + [
    f"syscalls:sys_{d}_{s}" for s in ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
                                      "accept", "accept4", "connect", "close", "epoll_wait"] for d in ("enter", "exit")]

tmp = tempfile.mkdtemp(prefix="kreq-overhead-")
rps = {m: [] for m in MODES}
lost, events, cpu = [], [], []
for r in range(args.rounds):
    for mode in MODES:
        cmd = [sys.executable, os.path.join(HERE, "testbed.py"), "--requests", str(args.requests),
               "--connections", str(args.connections), "--workdir", os.path.join(tmp, f"w{r}{mode}")]
        if args.kreq:
            cmd += ["--kreq", args.kreq]
        if mode in ("kreq", "kreq_old"):
            cmd += ["--record", os.path.join(tmp, f"ds{r}"), "--rotate-secs", str(args.rotate_secs)]
        if mode == "kreq_old":
            cmd += ["--record-arg=--no-default-events"] + [f"--record-arg=--event={e}" for e in OLD_PROFILE]
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
            cpu.append(out.get("recorder_cpu_s_in_load"))
shutil.rmtree(tmp, ignore_errors=True)
med = {k: statistics.median(v) for k, v in rps.items()}
# Rounds drift (other load, CPU frequency): the median of each round's own ratio is steadier.
paired = {k: statistics.median(x / n for x, n in zip(rps[k], rps["none"])) for k in MODES[1:]}


def interval(k, stat):
    """90% bootstrap interval of `stat` over rounds resampled with replacement."""
    rng = random.Random(args.seed)
    n = len(rps["none"])
    draws = sorted(stat([rps[k][i] for i in idx], [rps["none"][i] for i in idx])
                   for idx in ([rng.randrange(n) for _ in range(n)] for _ in range(2000)))
    return [round(draws[100], 3), round(draws[1899], 3)]


ratio_of_medians = lambda x, n: statistics.median(x) / statistics.median(n)
paired_median = lambda x, n: statistics.median(a / b for a, b in zip(x, n))
print(json.dumps({
    "rounds": args.rounds, "requests": args.requests, "connections": args.connections,
    "rotate_secs": args.rotate_secs,
    "median_rps": med,
    "over_none": {k: med[k] / med["none"] for k in MODES[1:]},
    "over_none_90pct": {k: interval(k, ratio_of_medians) for k in MODES[1:]},
    "paired_median_ratio": paired,
    "paired_median_ratio_90pct": {k: interval(k, paired_median) for k in MODES[1:]},
    "kreq_lost_events_per_round": lost, "kreq_events_per_round": events,
    "kreq_cpu_s_in_load_per_round": cpu,
    # None when kreq did not run (or its CPU time could not be read): never a made-up 0.
    "median_kreq_cpu_s_in_load": (statistics.median([c for c in cpu if c is not None])
                                  if any(c is not None for c in cpu) else None),
    "all_rps": rps,
}, indent=1))
