"""Application tier of the kreq testbed: a thread-per-request HTTP server.

Per request it does INCR and GET on redis (one keep-alive connection per thread; with --pool N
the handler hands the redis calls to a pool of N worker threads and waits), reads a small
file, spins the CPU, and answers. It logs one JSON line per request to --log with the request
id nginx passed in X-Request-ID, its pid, native thread id and CLOCK_MONOTONIC start/end (ns),
so ground truth never comes from the trace.
"""
import argparse
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
p.add_argument("--redis", type=int, default=16379)
p.add_argument("--log", required=True)
p.add_argument("--spin", type=int, default=2000, help="CPU spin iterations per request")
p.add_argument("--pool", type=int, default=0, help="hand the redis calls to N worker threads")
args = p.parse_args()

DATA = os.path.join(os.path.dirname(os.path.abspath(args.log)), "app-data.txt")
with open(DATA, "w") as f:
    f.write("x" * 2048)
local = threading.local()
log_lock = threading.Lock()
log = open(args.log, "a", buffering=1)


def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def redis(*parts):
    conn = getattr(local, "redis", None)
    if conn is None:
        conn = socket.create_connection(("127.0.0.1", args.redis))
        local.redis = conn
        local.buf = b""
    cmd = f"*{len(parts)}\r\n".encode() + b"".join(
        f"${len(x)}\r\n{x}\r\n".encode() for x in map(str, parts)
    )
    conn.sendall(cmd)
    while b"\r\n" not in local.buf:
        local.buf += conn.recv(4096)
    line, local.buf = local.buf.split(b"\r\n", 1)
    if line.startswith(b"$") and line != b"$-1":
        n = int(line[1:])
        while len(local.buf) < n + 2:
            local.buf += conn.recv(4096)
        value, local.buf = local.buf[:n], local.buf[n + 2 :]
        return value
    return line


def backend_calls():
    count = redis("INCR", "hits")
    redis("GET", "hits")
    return count, threading.get_native_id()


pool = ThreadPoolExecutor(max_workers=args.pool) if args.pool else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus nginx's delayed
    # ACK stall every response by 40 ms.
    disable_nagle_algorithm = True

    def do_GET(self):
        t0 = now()
        rid = self.headers.get("X-Request-ID", "")
        if pool:
            count, worker = pool.submit(backend_calls).result()
        else:
            count, worker = backend_calls()
        with open(DATA) as f:
            f.read()
        x = 0
        for i in range(args.spin):
            x += i * i
        body = f"ok {rid} {count!r} {x}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        t1 = now()
        rec = {"request_id": rid, "app_pid": os.getpid(), "app_tid": threading.get_native_id(),
               "app_t0": t0, "app_t1": t1, "path": self.path}
        if pool:
            rec["worker_tid"] = worker
        with log_lock:
            log.write(json.dumps(rec) + "\n")

    def log_message(self, *a):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()
