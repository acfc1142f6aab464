"""Three-tier model: two thread-per-connection Python tiers, then PostgreSQL.

`--tier front` serves the load generator and calls `--next` (the mid tier) over one keep-alive
HTTP connection per thread; `--tier mid` runs an UPDATE and a SELECT on PostgreSQL over one
connection per thread (PostgreSQL serves each connection with its own backend process).
Segments: each tier's handler thread from the request's head to its response, as the app logs
them (PostgreSQL's backends log nothing: its spans are checked as the backend hop).
"""
import argparse
import http.client
import socket
import struct
import threading

import truthlog

p = argparse.ArgumentParser()
p.add_argument("--tier", choices=["front", "mid"], required=True)
p.add_argument("--port", type=int, required=True)
p.add_argument("--next", type=int, help="front: the mid tier's port")
p.add_argument("--pg", type=int, help="mid: PostgreSQL's port")
p.add_argument("--truth", required=True)
p.add_argument("--spin", type=int, default=2000)
args = p.parse_args()
truthlog.install(args.truth)


class Pg:
    """A minimal PostgreSQL client: protocol 3 startup with trust authentication, then simple
    queries (`Q`), reading until ReadyForQuery. Enough for the testbed; no TLS, no auth."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        params = b"user\0postgres\0database\0postgres\0\0"
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        self.buf = b""
        self._until_ready()

    def _message(self):
        while len(self.buf) < 5:
            self.buf += self._recv()
        kind, n = self.buf[0:1], struct.unpack("!i", self.buf[1:5])[0]
        while len(self.buf) < 1 + n:
            self.buf += self._recv()
        body, self.buf = self.buf[5:1 + n], self.buf[1 + n:]
        return kind, body

    def _recv(self):
        b = self.sock.recv(65536)
        if not b:
            raise ConnectionError("PostgreSQL closed the connection")
        return b

    def _until_ready(self):
        rows = []
        while True:
            kind, body = self._message()
            if kind == b"E":
                raise RuntimeError(f"PostgreSQL error: {body!r}")
            if kind == b"D":
                ncol = struct.unpack("!h", body[:2])[0]
                off, row = 2, []
                for _ in range(ncol):
                    ln = struct.unpack("!i", body[off:off + 4])[0]
                    off += 4
                    row.append(None if ln < 0 else body[off:off + ln].decode())
                    off += max(ln, 0)
                rows.append(row)
            if kind == b"Z":
                return rows

    def query(self, sql):
        q = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", 4 + len(q)) + q)
        return self._until_ready()


local = threading.local()


def backend():
    """This thread's connection to the next tier (made on first use, kept alive)."""
    if not hasattr(local, "conn"):
        if args.tier == "front":
            local.conn = http.client.HTTPConnection("127.0.0.1", args.next)
        else:
            local.conn = Pg(args.pg)
    return local.conn


def work(rid):
    """The request's calls: the mid tier over HTTP (front), or PostgreSQL (mid)."""
    if args.tier == "front":
        c = backend()
        c.request("GET", "/", headers={"X-Request-ID": rid})
        return c.getresponse().read().decode().strip()
    pg = backend()
    pg.query("UPDATE hits SET n = n + 1 WHERE id = 1")
    return pg.query("SELECT n FROM hits WHERE id = 1")[0][0]


truthlog.serve_http(("127.0.0.1", args.port), args.tier, work, args.spin)
