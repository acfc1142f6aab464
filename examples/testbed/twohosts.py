#!/usr/bin/env python3
"""kreq testbed on two hosts: the loopback chain split over two network namespaces joined by a
veth pair, each recorded by its own `kreq record --pid ... --warehouse W --host H`.

    front (netns, 10.213.0.1): loadgen -> nginx (:18080)  --veth-->
    back  (netns, 10.213.0.2): app.py (:18081) -> redis-server (127.0.0.1:16379 in back)

Both recorders trace the same kernel with the same clock; `--shift-back-ns N` has the back
host's recorder add N to its times (`kreq record --test-shift-ns`), so that the hosts' clock
offset is a known N, which the warehouse views must find within their stated uncertainty. Ground truth as in
testbed.py (loadgen, nginx's access log, the app's own log, written after the load).

    python3 examples/testbed/twohosts.py --requests 200 --warehouse W --truth truth.jsonl

Needs root (network namespaces, tracefs), iproute2, nginx and redis-server. The namespaces and
every process are removed before it exits.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import procs
from procs import start, stop_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--requests", type=int, default=200)
p.add_argument("--connections", type=int, default=4)
p.add_argument("--warehouse", required=True, help="warehouse both hosts' recordings go to")
p.add_argument("--date", default="2026-12-05", help="their date partition")
p.add_argument("--shift-back-ns", type=int, default=0, help="the back host's clock reads this far ahead")
p.add_argument("--truth", help="write ground truth here (jsonl)")
p.add_argument("--kreq", default=os.environ.get("KREQ_BIN", os.path.join(ROOT, "target", "debug", "kreq")))
p.add_argument("--workdir", help="keep logs and configs here (default: a temporary directory)")
args = p.parse_args()

work = args.workdir or tempfile.mkdtemp(prefix="kreq-twohosts-")
os.makedirs(work, exist_ok=True)
tag = str(os.getpid())
NS = {"front": f"kreqf{tag}", "back": f"kreqb{tag}"}
ADDR = {"front": "10.213.0.1", "back": "10.213.0.2"}


def ip(*a):
    subprocess.run(["ip", *a], check=True)


def netns_up():
    for h, ns in NS.items():
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    ip("link", "add", f"vf{tag}", "netns", NS["front"], "type", "veth", "peer", "name", f"vb{tag}",
       "netns", NS["back"])
    for h, dev in (("front", f"vf{tag}"), ("back", f"vb{tag}")):
        ip("-n", NS[h], "addr", "add", f"{ADDR[h]}/24", "dev", dev)
        ip("-n", NS[h], "link", "set", dev, "up")


def netns_down():
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def in_ns(host, cmd):
    return ["ip", "netns", "exec", NS[host], *cmd]


def wait_port(host, addr, port, timeout=15.0):
    probe = ("import socket,sys,time\nend=time.monotonic()+%f\n"
             "while time.monotonic()<end:\n"
             " try: socket.create_connection((%r,%d),timeout=0.2).close(); sys.exit(0)\n"
             " except OSError: time.sleep(0.05)\nsys.exit(1)") % (timeout, addr, port)
    if subprocess.run(in_ns(host, [sys.executable, "-c", probe])).returncode != 0:
        raise SystemExit(f"twohosts: nothing listens on {addr}:{port} in {host} (see {work})")


def merge_truth(path):
    client = [json.loads(l) for l in open(os.path.join(work, "loadgen.jsonl"))]
    nginx = procs.nginx_truth(work)
    app = {}
    for line in open(os.path.join(work, "app.jsonl")):
        r = json.loads(line)
        app[r["request_id"]] = r
    with open(path, "w") as f:
        for c in sorted(client, key=lambda r: r["client_t0"]):
            a = app.get(c["request_id"], {})
            pid, conn = nginx.get(c["request_id"], (None, None))
            f.write(json.dumps({"request_id": c["request_id"], "client_tid": c["client_tid"],
                                "client_port": c["client_port"],
                                "client_t0": c["client_t0"], "client_t1": c["client_t1"],
                                "nginx_pid": pid, "nginx_conn": conn,
                                "app_pid": a.get("app_pid"), "app_tid": a.get("app_tid"),
                                "app_t0": a.get("app_t0"), "app_t1": a.get("app_t1"),
                                "status": c["status"]}) + "\n")
    return len(client)


def main():
    for tool in ("nginx", "redis-server", "ip"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"twohosts: {tool} is not installed")
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    netns_up()
    redis = start(in_ns("back", [redis_bin, "--port", "16379", "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", work, "--daemonize", "no"]),
                  stdout=subprocess.DEVNULL)
    wait_port("back", "127.0.0.1", 16379)
    app = start(in_ns("back", [sys.executable, os.path.join(HERE, "app.py"), "--port", "18081",
                               "--bind", ADDR["back"], "--log", os.path.join(work, "app.jsonl")]))
    wait_port("back", ADDR["back"], 18081)
    conf = procs.nginx_conf(work, 18080, [f"{ADDR['back']}:18081"], "$request_id", truth_log=True)
    nginx = start(in_ns("front", [nginx_bin, "-p", work, "-c", conf, "-g", "daemon off;"]))
    wait_port("front", "127.0.0.1", 18080)
    # `ip netns exec` execs the command: the pids are the servers' own.
    scope = {"front": [nginx.pid], "back": [app.pid, redis.pid]}
    shift = {"front": 0, "back": args.shift_back_ns}
    recorders = {
        h: procs.start_recorder([args.kreq, "record", "--warehouse", args.warehouse, "--host", h,
                                 "--date", args.date, f"--test-shift-ns={shift[h]}"]
                                + [f"--pid={p}" for p in pids], f"twohosts {h}")
        for h, pids in scope.items()
    }
    time.sleep(0.5)
    load = subprocess.run(in_ns("front", [sys.executable, os.path.join(HERE, "loadgen.py"), "--port", "18080",
                                          "--requests", str(args.requests), "--connections",
                                          str(args.connections), "--log", os.path.join(work, "loadgen.jsonl")]),
                          capture_output=True, text=True)
    if load.returncode != 0:
        raise SystemExit(f"twohosts: the load generator failed ({load.returncode}):\n{load.stdout}{load.stderr}")
    summary = json.loads(load.stdout.strip().splitlines()[-1])
    for h, rec in recorders.items():
        s = {}
        procs.stop_recorder(rec, s)
        summary[f"recorder_{h}"] = s
    stop_all()
    if args.truth:
        summary["truth_requests"] = merge_truth(args.truth)
    summary["workdir"] = work
    print(json.dumps(summary), flush=True)


try:
    main()
finally:
    stop_all()
    netns_down()
