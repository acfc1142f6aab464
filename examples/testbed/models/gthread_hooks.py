"""gunicorn settings of the gthread model: the worker writes its truth as it exits."""
import os

loglevel = "warning"


def worker_exit(server, worker):
    import truthlog
    truthlog.write(os.environ["KREQ_MODEL_TRUTH"])
