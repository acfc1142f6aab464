#!/usr/bin/env python3
"""kreq testbed: a real loopback chain, recorded, with ground truth from outside the trace.

    loadgen (C keep-alive connections) -> nginx (Debian, 2 workers, :18080, upstream keepalive)
      -> app.py (K instances, :18081..) -> redis-server (Debian, :16379)

Drives a fixed number of requests, optionally records them with `kreq record` (or, for
overhead comparison, with a plain `cat trace_pipe` text capture of the same events), and
writes truth.jsonl: one line per request with nginx's request id, client tid and
CLOCK_MONOTONIC start/end, nginx worker pid and connection serial, app pid/tid and handler
start/end. kreq never reads the truth while recording.

    python3 examples/testbed/testbed.py --requests 300 --connections 4 --record DATASET --truth truth.jsonl

Needs root for recording, and nginx + redis-server installed (apt-get install nginx-light
redis-server). Loopback only; every process it starts is stopped before it exits.
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
TRACEFS = "/sys/kernel/tracing"

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--requests", type=int, default=300)
p.add_argument("--connections", type=int, default=4)
p.add_argument("--apps", type=int, default=1)
p.add_argument("--spin", type=int, default=2000)
p.add_argument("--pool", type=int, default=0, help="app hands its redis calls to N worker threads")
p.add_argument("--record", help="record with `kreq record` into this dataset directory")
p.add_argument("--rotate-secs", type=float, default=10.0, help="kreq record --rotate-secs")
p.add_argument("--record-arg", action="append", default=[],
               help="extra argument for kreq record (repeatable), e.g. --record-arg=--buffer-kb=64")
p.add_argument("--record-scope", default="",
               help="record only these tiers, comma-separated among nginx, app, redis (kreq record --pid)")
p.add_argument("--record-after", type=float, default=0.0,
               help="start recording this many seconds after the load began (a running system: "
                    "connections are open and messages in flight when the recording starts); the "
                    "load then runs until the recorder has started, plus --requests-after requests")
p.add_argument("--requests-after", type=int, default=1000,
               help="with --record-after: requests sent once the recorder has started "
                    "(--requests caps the whole load)")
p.add_argument("--text-capture", help="instead, capture the same events as trace_pipe text into this file")
p.add_argument("--kernel-only", action="store_true",
               help="instead, enable the same events in an instance nobody reads (the tracepoints' own cost)")
p.add_argument("--truth", help="write ground truth here (jsonl)")
p.add_argument("--kreq", default=os.environ.get("KREQ_BIN", os.path.join(ROOT, "target", "debug", "kreq")))
p.add_argument("--workdir", help="keep logs and configs here (default: a temporary directory)")
p.add_argument("--port", type=int, default=18080)
args = p.parse_args()

work = args.workdir or tempfile.mkdtemp(prefix="kreq-testbed-")
os.makedirs(work, exist_ok=True)
def wait_port(port, timeout=10.0):
    procs.wait_port(port, timeout, work)


# kreq record's default profile (ingest/src/tracefs/profile.rs), as tracefs paths.
PROFILE = ["sched/sched_switch", "sched/sched_waking", "sched/sched_wakeup", "sched/sched_wakeup_new", "sched/sched_process_fork",
           "sched/sched_process_exit", "sock/sock_send_length", "sock/sock_recv_length", "sock/inet_sock_set_state",
           "tcp/tcp_rcv_space_adjust", "tcp/tcp_probe", "tcp/tcp_destroy_sock"] + [f"syscalls/sys_{d}_{s}" for s in
           ["read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "accept", "accept4",
            "connect", "close", "epoll_wait", "epoll_pwait", "futex"] for d in ("enter", "exit")]


class TextCapture:
    """The baseline capture: a kreq- instance with the same events, read by `cat trace_pipe`."""

    def __init__(self, out):
        """`out` None: no reader; the ring buffer overwrites itself (the tracepoints' own cost)."""
        self.dir = f"{TRACEFS}/instances/kreq-{os.getpid()}-textcap"
        os.mkdir(self.dir)
        self.w("tracing_on", "0")
        self.w("trace_clock", "mono")
        self.w("buffer_size_kb", "8192")
        for e in PROFILE:
            self.w(f"events/{e}/enable", "1")
        self.out, self.cat = None, None
        if out:
            self.out = open(out, "wb")
            self.cat = subprocess.Popen(["cat", f"{self.dir}/trace_pipe"], stdout=self.out)
            self.w("set_event_notrace_pid", str(self.cat.pid))
        self.w("tracing_on", "1")

    def w(self, rel, v):
        with open(f"{self.dir}/{rel}", "w") as f:
            f.write(v)

    def stop(self):
        self.w("tracing_on", "0")
        if self.cat:
            time.sleep(0.3)
            self.cat.terminate()
            self.cat.wait()
            self.out.close()
        self.w("events/enable", "0")
        os.rmdir(self.dir)


def nginx_conf():
    return procs.nginx_conf(work, args.port, [f"127.0.0.1:{args.port + 1 + i}" for i in range(args.apps)],
                            "$request_id", truth_log=True)


def merge_truth(path):
    client = [json.loads(l) for l in open(os.path.join(work, "loadgen.jsonl"))]
    nginx = procs.nginx_truth(work)
    app = {}
    for i in range(args.apps):
        for line in open(os.path.join(work, f"app{i}.jsonl")):
            r = json.loads(line)
            app[r["request_id"]] = r
    with open(path, "w") as f:
        for c in sorted(client, key=lambda r: r["client_t0"]):
            rid = c["request_id"]
            a = app.get(rid, {})
            pid, conn = nginx.get(rid, (None, None))
            f.write(json.dumps({"path": c["path"], "request_id": rid, "client_tid": c["client_tid"],
                                "client_t0": c["client_t0"], "client_t1": c["client_t1"],
                                "nginx_pid": pid, "nginx_conn": conn, "app_pid": a.get("app_pid"),
                                "app_tid": a.get("app_tid"), "app_t0": a.get("app_t0"),
                                "app_t1": a.get("app_t1"), "worker_tid": a.get("worker_tid"),
                                "status": c["status"]}) + "\n")
    return len(client)


def main():
    for tool in ("nginx", "redis-server"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"testbed: {tool} is not installed (apt-get install nginx-light redis-server)")
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    tiers = {}
    tiers["redis"] = [start([redis_bin, "--port", "16379", "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", work, "--daemonize", "no"],
                            stdout=subprocess.DEVNULL).pid]
    wait_port(16379)
    for i in range(args.apps):
        tiers.setdefault("app", []).append(start([sys.executable, os.path.join(HERE, "app.py"), "--port", str(args.port + 1 + i),
               "--log", os.path.join(work, f"app{i}.jsonl"), "--spin", str(args.spin),
               "--pool", str(args.pool)]).pid)
        wait_port(args.port + 1 + i)
    tiers["nginx"] = [start([nginx_bin, "-p", work, "-c", nginx_conf(), "-g", "daemon off;"]).pid]
    scope = [f"--pid={pid}" for t in filter(None, args.record_scope.split(",")) for pid in tiers[t]]
    wait_port(args.port)
    recorder, capture = None, None

    def start_recorder():
        return procs.start_recorder([args.kreq, "record", "-o", args.record, "--force",
                                     "--rotate-secs", str(args.rotate_secs)] + args.record_arg + scope,
                                    "testbed")

    if args.record and not args.record_after:
        recorder = start_recorder()
        time.sleep(0.5)
    elif args.text_capture or args.kernel_only:
        capture = TextCapture(args.text_capture)
    def cpu_s(proc):
        """User + system CPU seconds `proc` has used so far (None once it is gone)."""
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    cpu_before = cpu_s(recorder) if recorder else None
    load_cmd = [sys.executable, os.path.join(HERE, "loadgen.py"), "--port", str(args.port),
                "--requests", str(args.requests), "--connections", str(args.connections),
                "--log", os.path.join(work, "loadgen.jsonl")]
    recording = os.path.join(work, "recording-started")
    if args.record and args.record_after:
        # The load runs until the recorder has started, then sends --requests-after more, so
        # the recording starts mid-load however fast the machine is (--requests caps the total).
        if os.path.exists(recording):
            os.remove(recording)
        load_cmd += ["--until", recording, "--then", str(args.requests_after)]
    load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if args.record and args.record_after:
        time.sleep(args.record_after)
        recorder = start_recorder()
        cpu_before = cpu_s(recorder)
        open(recording, "w").close()
    out, err = load.communicate()
    cpu_after = cpu_s(recorder) if recorder else None
    if load.returncode != 0:
        raise SystemExit(f"testbed: the load generator failed ({load.returncode}):\n{out}{err}")
    summary = json.loads(out.strip().splitlines()[-1])
    if err.strip():
        summary["loadgen_stderr"] = err.strip()
    if recorder:
        if cpu_before is not None and cpu_after is not None:
            # What the recorder took from the CPUs while the load ran (its decoding after the
            # load is not in it).
            summary["recorder_cpu_s_in_load"] = round(cpu_after - cpu_before, 3)
        procs.stop_recorder(recorder, summary)
    if capture:
        capture.stop()
    stop_all()
    if args.truth:
        summary["truth_requests"] = merge_truth(args.truth)
    summary["workdir"] = work
    print(json.dumps(summary), flush=True)


try:
    main()
finally:
    stop_all()
