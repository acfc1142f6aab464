"""The gthread model's app (see gthread_app.py)."""
import os

import truthlog
from flask_redis import make_app

flask_app = make_app(int(os.environ["KREQ_MODEL_REDIS"]))


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
