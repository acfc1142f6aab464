"""Unix-socket model app: a thread-per-connection HTTP server on a unix domain socket (nginx
proxies to it), each request doing INCR then GET on redis over a unix socket (one connection
per thread). Segments: the handler thread from the request's head to its response.
"""
import argparse
import socket
import threading

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


def work(rid):
    """INCR then GET on this thread's redis connection (made on first use)."""
    if not hasattr(local, "redis"):
        local.redis = UnixRedis(args.redis_sock)
    n = local.redis.call("INCR", "hits")
    local.redis.call("GET", "hits")
    return repr(n)


truthlog.serve_http(args.sock, "app", work, args.spin, unix=True)
