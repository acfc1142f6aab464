"""The Flask app of the WSGI models (waitress_app.py, gthread_wsgi.py): every GET does INCR then
GET through redis-py on a `BlockingConnectionPool` shared by the server's threads, spins and
answers `ok ID N X` with the request's X-Request-ID."""
import redis
from flask import Flask, request

import truthlog


def make_app(redis_port, conns=2, spin=2000):
    r = redis.Redis(connection_pool=redis.BlockingConnectionPool(
        host="127.0.0.1", port=redis_port, max_connections=conns))
    app = Flask(__name__)

    @app.get("/", defaults={"path": ""})
    @app.get("/<path:path>")
    def index(path):
        rid = request.headers.get("X-Request-ID", "")
        n = r.incr("hits")
        r.get("hits")
        body = f"ok {rid} {n} {truthlog.spin(spin)}\n"
        return body, 200, {"Content-Type": "text/plain", "X-Request-ID": rid}

    return app
