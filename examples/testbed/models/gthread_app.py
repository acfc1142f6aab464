"""gthread model: a Flask app under gunicorn's `gthread` worker (PyPI): an arbiter process and
one worker whose main thread polls the connections and hands each readable one to a pool of 4
threads, which read the request, run the app and write the response. The app does INCR then
GET through redis-py's `BlockingConnectionPool` of 2 connections. Segments: the pool
thread's, from its call of the app to the response's end (gunicorn closes the body once it
wrote it). gunicorn's worker
handles SIGTERM itself; its `worker_exit` hook writes the truth (gthread_hooks.py).
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--redis", type=int, required=True)
p.add_argument("--truth", required=True)
p.add_argument("--threads", type=int, default=4)
args = p.parse_args()
os.environ.update(KREQ_MODEL_REDIS=str(args.redis), KREQ_MODEL_TRUTH=args.truth)
os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread",
                          "--threads", str(args.threads), "--bind", f"127.0.0.1:{args.port}",
                          "--chdir", HERE, "--config", os.path.join(HERE, "gthread_hooks.py"),
                          "gthread_wsgi:app"])
