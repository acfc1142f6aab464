"""Waitress model: a Flask app served by waitress (PyPI), whose main thread reads and parses
every request and hands it to a pool of 4 task threads through a condition variable; the task
thread runs the app, which does INCR then GET through redis-py (PyPI) on a
`BlockingConnectionPool` of 2 connections shared by the task threads, and hands the response
back to the main thread, which writes it. Segments: the task thread from the app's call to its
return (waitress's own parsing and writing on the main thread are not logged).
"""

from waitress import serve

import truthlog
from flask_redis import make_app

p = truthlog.model_args()
p.add_argument("--threads", type=int, default=4)
args = p.parse_args()
truthlog.install(args.truth)
app = make_app(args.redis, args.redis_conns, args.spin)


def logged(environ, start_response):
    """The WSGI app with its task thread's segment around the call."""
    t0 = truthlog.now()
    out = app(environ, start_response)
    truthlog.segment(environ.get("HTTP_X_REQUEST_ID", ""), "app", t0, truthlog.now())
    return out


serve(logged, host="127.0.0.1", port=args.port, threads=args.threads, _quiet=True)
