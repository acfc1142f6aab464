"""Waitress model: a Flask app served by waitress (PyPI), whose main thread reads and parses
every request and hands it to a pool of 4 task threads through a condition variable; the task
thread runs the app, which does INCR then GET through redis-py (PyPI) on a
`BlockingConnectionPool` of 2 connections shared by the task threads, and hands the response
back to the main thread, which writes it. Segments: the task thread from the app's call to its
return (waitress's own parsing and writing on the main thread are not logged).
"""
import argparse

import redis
from flask import Flask, request
from waitress import serve

import truthlog

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--redis", type=int, required=True)
p.add_argument("--truth", required=True)
p.add_argument("--threads", type=int, default=4)
p.add_argument("--redis-conns", type=int, default=2)
p.add_argument("--spin", type=int, default=2000)
args = p.parse_args()
truthlog.install(args.truth)

r = redis.Redis(connection_pool=redis.BlockingConnectionPool(
    host="127.0.0.1", port=args.redis, max_connections=args.redis_conns))
app = Flask(__name__)


@app.get("/", defaults={"path": ""})
@app.get("/<path:path>")
def index(path):
    rid = request.headers.get("X-Request-ID", "")
    n = r.incr("hits")
    r.get("hits")
    body = f"ok {rid} {n} {truthlog.spin(args.spin)}\n"
    return body, 200, {"Content-Type": "text/plain", "X-Request-ID": rid}


def logged(environ, start_response):
    """The WSGI app with its task thread's segment around the call."""
    t0 = truthlog.now()
    out = app(environ, start_response)
    truthlog.segment(environ.get("HTTP_X_REQUEST_ID", ""), "app", t0, truthlog.now())
    return out


serve(logged, host="127.0.0.1", port=args.port, threads=args.threads, _quiet=True)
