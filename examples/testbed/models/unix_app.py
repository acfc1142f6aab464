"""Unix-socket model app: a thread-per-connection HTTP server on a unix domain socket (nginx
proxies to it), each request doing INCR then GET on redis over a unix socket (one connection
per thread). Segments: the handler thread from the request's head to its response.
"""
import argparse
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler

import truthlog

p = argparse.ArgumentParser()
p.add_argument("--sock", required=True, help="unix socket to serve on")
p.add_argument("--redis-sock", required=True)
p.add_argument("--truth", required=True)
p.add_argument("--spin", type=int, default=2000)
args = p.parse_args()
truthlog.install(args.truth)


class UnixRedis(truthlog.Redis):
    """truthlog's RESP client over a unix socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""


local = threading.local()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        t0 = truthlog.now()
        rid = self.headers.get("X-Request-ID", "")
        if not hasattr(local, "redis"):
            local.redis = UnixRedis(args.redis_sock)
        n = local.redis.call("INCR", "hits")
        local.redis.call("GET", "hits")
        x = 0
        for i in range(args.spin):
            x += i * i
        reply = truthlog.response(rid, f"ok {rid} {n!r} {x}\n")
        truthlog.segment(rid, "app", t0, truthlog.now())
        self.wfile.write(reply)

    def address_string(self):
        return "unix"

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


try:
    os.unlink(args.sock)
except FileNotFoundError:
    pass
srv = Server(args.sock, Handler)
os.chmod(args.sock, 0o777)
srv.serve_forever()
