"""The gthread model's app (see gthread_app.py)."""
import os

import redis
from flask import Flask, request

import truthlog

r = redis.Redis(connection_pool=redis.BlockingConnectionPool(
    host="127.0.0.1", port=int(os.environ["KREQ_MODEL_REDIS"]), max_connections=2))
flask_app = Flask(__name__)


@flask_app.get("/", defaults={"path": ""})
@flask_app.get("/<path:path>")
def index(path):
    rid = request.headers.get("X-Request-ID", "")
    n = r.incr("hits")
    r.get("hits")
    return f"ok {rid} {n} {truthlog.spin(2000)}\n", 200, {"Content-Type": "text/plain", "X-Request-ID": rid}


class Logged:
    """The app's response body; gunicorn closes it once the response is written, which ends
    the pool thread's segment (WSGI's `close`)."""

    def __init__(self, body, rid, t0):
        self.body, self.rid, self.t0 = body, rid, t0

    def __iter__(self):
        return iter(self.body)

    def close(self):
        if hasattr(self.body, "close"):
            self.body.close()
        truthlog.segment(self.rid, "app", self.t0, truthlog.now())


def app(environ, start_response):
    """The WSGI app with the pool thread's segment from the call to the response's end."""
    t0 = truthlog.now()
    return Logged(flask_app(environ, start_response), environ.get("HTTP_X_REQUEST_ID", ""), t0)
