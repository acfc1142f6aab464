#!/usr/bin/env python3
"""kreq testbed for concurrency models: a load generator -> one model app -> redis, on
loopback, recorded with `kreq record`, with ground truth written by the app itself.

    python3 examples/testbed/models.py --model handoff --requests 300 --connections 4 \
        --record DATASET --truth truth.jsonl

Models (examples/testbed/models/):
  handoff    acceptor thread + ThreadPoolExecutor(4), redis over a pool of 3 connections
  asyncio    one asyncio thread, a task per connection, redis over a pool of 2 connections
  eventloop  Node.js `http`, one shared redis connection with pipelined commands
  pgchain    two thread-per-connection Python tiers, then PostgreSQL (a backend process per
             connection; needs Debian's postgresql, run as the postgres user)
  go         Go net/http, redis over a pool of 4 connections in a buffered channel (needs
             Debian's golang-go; built into the work directory first)
  grpc       an HTTP tier calling a gRPC server (pool of 4 workers, then redis) over one shared
             channel (needs grpcio from PyPI)
  grpcnode   the same HTTP tier calling a Node.js gRPC server (@grpc/grpc-js from npm, one event
             loop, one pipelined redis connection); the package is installed on first use into
             $KREQ_NPM_CACHE (default /var/tmp/kreq-npm)
  unix       nginx -> a thread-per-connection app over a unix socket -> redis over a unix socket
  java       Java HttpServer on a dual-stack socket + newFixedThreadPool(8), 4 redis sockets in
             an ArrayBlockingQueue (needs a JDK: Debian's openjdk-17-jdk-headless)

The truth file has one line per request: the client's id, thread and CLOCK_MONOTONIC start/end
(from the load generator) and `segments`, every interval a thread of the app worked on it
({tier, pid, tid, t0, t1}), as the app logged them in memory and wrote after the recording.
`kreq eval --truth` scores segment truth (see correlate/src/eval.rs). Needs root for recording
and redis-server; every process it starts is stopped before it exits.
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
from procs import start, stop, stop_all

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
def _app(cmd):
    return lambda a: cmd + ["--port", str(a.port), "--redis", str(a.port + 1), "--truth", a.app_truth]


MODELS = {
    "handoff": _app([sys.executable, os.path.join(HERE, "models", "handoff.py")]),
    "asyncio": _app([sys.executable, os.path.join(HERE, "models", "asyncio_app.py")]),
    "eventloop": _app([shutil.which("node") or "node", os.path.join(HERE, "models", "eventloop.js")]),
    # The single-file source launcher compiles JavaPool.java in memory at start.
    # Not redis: models.py starts PostgreSQL and the mid tier for it (see main).
    "pgchain": lambda a: [sys.executable, os.path.join(HERE, "models", "pgchain.py"), "--tier", "front",
                          "--port", str(a.port), "--next", str(a.port + 2), "--truth", a.app_truth],
    # nginx serves the port; the app listens on a unix socket (models.py starts both).
    "unix": lambda a: [sys.executable, os.path.join(HERE, "models", "unix_app.py"),
                       "--sock", os.path.join(work, "app.sock"), "--redis-sock", os.path.join(work, "redis.sock"),
                       "--truth", a.app_truth],
    # The gRPC server (and redis behind it) is started with the backend (see start_backend).
    "grpc": lambda a: [sys.executable, os.path.join(HERE, "models", "grpc_app.py"), "--tier", "front",
                       "--port", str(a.port), "--next", str(a.port + 2), "--truth", a.app_truth],
    # The Node.js gRPC server (and redis behind it) is started with the backend.
    "grpcnode": lambda a: [sys.executable, os.path.join(HERE, "models", "grpc_app.py"), "--tier", "front",
                           "--port", str(a.port), "--next", str(a.port + 2), "--truth", a.app_truth],
    "go": lambda a: _app([os.path.join(work, "gopool")])(a),
    "java": _app([shutil.which("java") or "java", os.path.join(HERE, "models", "JavaPool.java")]),
    # Apps built on common libraries rather than the testbed's own servers and clients.
    "waitress": _app([sys.executable, os.path.join(HERE, "models", "waitress_app.py")]),
    "aiohttp": _app([sys.executable, os.path.join(HERE, "models", "aiohttp_app.py")]),
    "express": _app([shutil.which("node") or "node", os.path.join(HERE, "models", "express_app.js")]),
    "fastapi": _app([sys.executable, os.path.join(HERE, "models", "fastapi_app.py")]),
    "uvloop": _app([sys.executable, os.path.join(HERE, "models", "fastapi_app.py"), "--uvloop"]),
    "goredigo": lambda a: _app([os.path.join(work, "goredigo")])(a),
    "gthread": _app([sys.executable, os.path.join(HERE, "models", "gthread_app.py")]),
    "fastify": _app([shutil.which("node") or "node", os.path.join(HERE, "models", "fastify_app.js")]),
}

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--model", required=True, choices=sorted(MODELS))
p.add_argument("--requests", type=int, default=300)
p.add_argument("--connections", type=int, default=4)
p.add_argument("--record", help="record with `kreq record` into this dataset directory")
p.add_argument("--record-arg", action="append", default=[], help="extra argument for kreq record")
p.add_argument("--truth", help="write ground truth here (jsonl)")
p.add_argument("--kreq", default=os.environ.get("KREQ_BIN", os.path.join(ROOT, "target", "debug", "kreq")))
p.add_argument("--workdir", help="keep logs here (default: a temporary directory)")
p.add_argument("--port", type=int, default=19080, help="the app's port; redis listens on the next")
args = p.parse_args()

work = args.workdir or tempfile.mkdtemp(prefix="kreq-models-")
os.makedirs(work, exist_ok=True)
args.app_truth = os.path.join(work, "segments.jsonl")
extra_truth = []  # truth files of further tiers
def wait_port(port, timeout=15.0):
    procs.wait_port(port, timeout, work)


def merge_truth(path):
    segs = {}
    for truth in [args.app_truth] + extra_truth:
        for line in open(truth):
            s = json.loads(line)
            segs.setdefault(s.pop("request_id"), []).append(s)
    return procs.write_segment_truth(path, work, segs)[0]


def start_postgres(port):
    """A throwaway PostgreSQL cluster in the work directory, run as the postgres user, with
    trust authentication on 127.0.0.1 and a table `hits`."""
    import glob
    import pwd
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        raise SystemExit("models: PostgreSQL is not installed (apt-get install postgresql)")
    bindir = os.path.dirname(bins[-1])
    pg = pwd.getpwnam("postgres")
    data = os.path.join(work, "pgdata")
    os.chmod(work, 0o755)
    os.makedirs(data, exist_ok=True)
    os.chown(data, pg.pw_uid, pg.pw_gid)
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_pg + [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start(as_pg + [os.path.join(bindir, "postgres"), "-D", data, "-p", str(port), "-k", data,
                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"],
          stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "postgres.log"), "w"))
    wait_port(port, timeout=30)
    psql = os.path.join(bindir, "psql")
    subprocess.run(as_pg + [psql, "-h", "127.0.0.1", "-p", str(port), "-q", "-c",
                            "CREATE TABLE hits (id int PRIMARY KEY, n bigint); INSERT INTO hits VALUES (1, 0);"],
                   check=True, stdout=subprocess.DEVNULL)


def wait_file(path, timeout=15.0):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise SystemExit(f"models: {path} did not appear after {timeout}s (see {work})")
        time.sleep(0.05)


def start_nginx_unix():
    """nginx on the model's port, proxying over keep-alive connections to the app's unix
    socket and passing the load generator's X-Request-ID through."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx_bin):
        raise SystemExit("models: nginx is not installed (apt-get install nginx-light)")
    conf = procs.nginx_conf(work, args.port, [f"unix:{work}/app.sock"], "$http_x_request_id",
                            truth_log=False)
    start([nginx_bin, "-p", work, "-c", conf, "-g", "daemon off;"])
    wait_port(args.port)


def start_redis(listen):
    """redis-server with no persistence, listening as `listen` says (`--port P --bind ADDR`,
    or `--port 0 --unixsocket PATH`)."""
    redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(redis_bin):
        raise SystemExit("models: redis-server is not installed (apt-get install redis-server)")
    start([redis_bin] + listen + ["--save", "", "--appendonly", "no", "--dir", work, "--daemonize", "no"],
          stdout=subprocess.DEVNULL)


def start_tier(script, truth_name, tier_args):
    """A further tier of the model on the port two after the app's, writing its own truth."""
    truth = os.path.join(work, truth_name)
    extra_truth.append(truth)
    start([sys.executable, os.path.join(HERE, "models", script), "--port", str(args.port + 2),
           "--truth", truth] + tier_args)
    wait_port(args.port + 2)


def start_backend():
    """redis on the port after the app's, or for `pgchain` PostgreSQL there and the mid tier
    on the port after it, for `grpc` redis and the gRPC server after it, or for `unix` redis
    on a unix socket."""
    if args.model == "pgchain":
        start_postgres(args.port + 1)
        start_tier("pgchain.py", "segments-mid.jsonl", ["--tier", "mid", "--pg", str(args.port + 1)])
        return
    if args.model == "unix":
        sock = os.path.join(work, "redis.sock")
        start_redis(["--port", "0", "--unixsocket", sock, "--unixsocketperm", "777"])
        wait_file(sock)
        return
    start_redis(["--port", str(args.port + 1), "--bind", "127.0.0.1"])
    wait_port(args.port + 1)
    if args.model == "grpc":
        start_tier("grpc_app.py", "segments-worker.jsonl", ["--tier", "worker", "--redis", str(args.port + 1)])
    if args.model == "grpcnode":
        truth = os.path.join(work, "segments-worker.jsonl")
        extra_truth.append(truth)
        start([shutil.which("node") or "node", os.path.join(HERE, "models", "grpc_node.js"),
               "--port", str(args.port + 2), "--redis", str(args.port + 1), "--truth", truth],
              env=dict(os.environ, NODE_PATH=node_modules()))
        wait_port(args.port + 2)


# The npm packages of the Node.js models, pinned.
NPM = {"@grpc/grpc-js": "1.14.7", "express": "5.3.0", "ioredis": "6.1.0", "fastify": "5.12.8", "redis": "6.4.0"}


def node_modules():
    """The directory holding node_modules with the packages of `NPM`, installed from npm on
    first use."""
    cache = os.environ.get("KREQ_NPM_CACHE", "/var/tmp/kreq-npm")
    missing = [f"{name}@{version}" for name, version in NPM.items()
               if not os.path.isfile(os.path.join(cache, "node_modules", name, "package.json"))]
    if missing:
        npm = shutil.which("npm")
        if not npm:
            raise SystemExit(f"models: the {args.model} model needs npm (apt-get install npm)")
        os.makedirs(cache, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", cache, "--no-audit", "--no-fund", "--silent"] + missing,
                       check=True, stdout=subprocess.DEVNULL)
    return os.path.join(cache, "node_modules")


def build_go(name):
    """Builds the Go model `name` (models/NAME.go with what the Go models share, goshared.go) into
    the work directory: with the standard library, and for `goredigo` Debian's redigo source
    package (GOPATH /usr/share/gocode)."""
    go = shutil.which("go")
    if not go:
        raise SystemExit(f"models: the {args.model} model needs Go (apt-get install golang-go)")
    env = dict(os.environ, GOCACHE=os.path.join(work, "gocache"), GO111MODULE="off")
    if name == "goredigo":
        if not os.path.isdir("/usr/share/gocode/src/github.com/gomodule/redigo"):
            raise SystemExit("models: the goredigo model needs apt-get install golang-github-gomodule-redigo-dev")
        env["GOPATH"] = "/usr/share/gocode"
    subprocess.run([go, "build", "-o", os.path.join(work, name), os.path.join(HERE, "models", f"{name}.go"),
                    os.path.join(HERE, "models", "goshared.go")], check=True, env=env)


def main():
    if args.model in ("go", "goredigo"):
        build_go({"go": "gopool"}.get(args.model, args.model))
    start_backend()
    env = dict(os.environ, NODE_PATH=node_modules()) if args.model in ("express", "fastify") else None
    app = start(MODELS[args.model](args), env=env)
    if args.model == "unix":
        wait_file(os.path.join(work, "app.sock"))
        start_nginx_unix()
    wait_port(args.port)
    record = args.record and [args.kreq, "record", "-o", args.record, "--force"] + args.record_arg
    summary = procs.recorded_load("models", work, record, [
        "--port", str(args.port), "--requests", str(args.requests), "--connections", str(args.connections),
        "--id-prefix", f"{args.model}-"])
    stop(app)  # the app writes its truth now, after the recording
    for pr in procs.procs:
        if pr is not app and any(m in " ".join(map(str, pr.args)) for m in ("pgchain.py", "grpc_app.py", "grpc_node.js")):
            stop(pr)  # the other tier writes its truth
    if args.truth:
        summary["truth_requests"] = merge_truth(args.truth)
    summary["model"] = args.model
    summary["workdir"] = work
    print(json.dumps(summary), flush=True)


try:
    main()
finally:
    stop_all()
