"""Ground truth kept by a testbed model app: every interval a thread worked on a request.

Segments are kept in memory and written only when the app is told to stop (SIGTERM), after the
recording ended, so writing the truth is not in the trace. Each line of the output is one
segment: {"request_id", "tier", "pid", "tid", "t0", "t1"} with CLOCK_MONOTONIC ns.
"""
import argparse
import json
import os
import signal
import threading
import time

_segments = []


def model_args(redis_conns=2):
    """The arguments every model app of the form load -> app -> redis takes: `--port`,
    `--redis` (its port), `--truth` (where to write the segments), `--redis-conns` (the
    app's pool) and `--spin` (its CPU work per request); add more before parsing."""
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis", type=int, required=True)
    p.add_argument("--truth", required=True)
    p.add_argument("--redis-conns", type=int, default=redis_conns)
    p.add_argument("--spin", type=int, default=2000)
    return p


def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def segment(request_id, tier, t0, t1, tid=None):
    """Records that this thread (or `tid`) worked on `request_id` from t0 to t1."""
    # list.append is atomic under the GIL; no lock (a lock would add futex traffic).
    _segments.append((request_id, tier, os.getpid(), tid or threading.get_native_id(), t0, t1))


def write(path):
    """Writes the segments kept so far to `path`."""
    with open(path, "w") as f:
        for rid, tier, pid, tid, t0, t1 in _segments:
            f.write(json.dumps({"request_id": rid, "tier": tier, "pid": pid, "tid": tid,
                                "t0": t0, "t1": t1}) + "\n")


def install(path):
    """Writes the segments to `path` and exits on SIGTERM."""
    def dump(*_):
        write(path)
        os._exit(0)
    signal.signal(signal.SIGTERM, dump)


def request_id(head):
    """The X-Request-ID header of a raw HTTP request head (bytes), as text."""
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"x-request-id":
            return v.strip().decode()
    return ""


def response(rid, body):
    body = body.encode()
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"X-Request-ID: {rid}\r\n\r\n").encode() + body


class Redis:
    """A minimal RESP client on one connection (blocking)."""

    def __init__(self, port):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def call(self, *parts):
        cmd = f"*{len(parts)}\r\n".encode() + b"".join(
            f"${len(x)}\r\n{x}\r\n".encode() for x in map(str, parts))
        self.sock.sendall(cmd)
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        line, self.buf = self.buf.split(b"\r\n", 1)
        if line.startswith(b"$") and line != b"$-1":
            n = int(line[1:])
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(4096)
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value
        return line


def spin(n):
    """The CPU work a model app does for each request."""
    x = 0
    for i in range(n):
        x += i * i
    return x


def serve_http(address, tier, work, spin_n, unix=False):
    """A thread-per-connection HTTP/1.1 server at `address` (host, port), or at the unix socket
    path `address`: each GET runs `work(request_id)` (its calls to the next tier), spins, and
    answers `ok ID INNER X` in one write (two would wait for the caller's delayed ACK). The
    handler's thread logs one segment, from the request's head to the answer."""
    import socketserver
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            t0 = now()
            rid = self.headers.get("X-Request-ID", "")
            inner = work(rid)
            reply = response(rid, f"ok {rid} {inner} {spin(spin_n)}\n")
            segment(rid, tier, t0, now())
            self.wfile.write(reply)

        def address_string(self):
            return "peer"  # a unix socket's peer has no address; nothing is logged anyway

        def log_message(self, *a):
            pass

    if unix:
        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True
            request_queue_size = 128

        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        srv = Server(address, Handler)
        os.chmod(address, 0o777)
    else:
        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        srv = Server(address, Handler)
    srv.serve_forever()


class AsyncioSteps:
    """Segment truth of an asyncio app whose requests' work runs in library code: every step of
    every task (one resumption, from the loop's call to its suspension) is logged for the
    request the task's context names. `begin(rid)` names the request from where it is called;
    a step in which a task moves to another request (a connection's task reading the next one)
    is cut there, as at `end()`. Tasks a request's code creates (`asyncio.wait_for`, `gather`) copy its
    context, so their steps are its too. Steps of tasks with no request and the loop's own
    callbacks (protocols parsing what they read) are not logged."""

    def __init__(self, tier):
        import asyncio
        import contextvars
        self.tier, self.tid = tier, threading.get_native_id()
        self.rid = contextvars.ContextVar("kreq_truth_rid", default=None)
        self.piece = None  # (rid, t0) of the step running now
        steps = self

        class Task(asyncio.tasks._PyTask):
            def _Task__step(self, exc=None):
                steps.piece = (steps.rid.get(), now())
                try:
                    super()._Task__step(exc)
                finally:
                    steps.close()
                    steps.piece = None

        def factory(loop, coro, **kw):
            return Task(coro, loop=loop, **kw)

        self.factory = factory

    def install(self, loop):
        loop.set_task_factory(self.factory)

    def close(self):
        if self.piece and self.piece[0]:
            segment(self.piece[0], self.tier, self.piece[1], now(), tid=self.tid)

    def begin(self, rid):
        """This task works on `rid` from here (None: on no request)."""
        if self.piece:
            self.close()
            self.piece = (rid, now())
        self.rid.set(rid)

    def end(self):
        """This task's request is answered."""
        self.begin(None)
