"""aiohttp model: an aiohttp (PyPI) server on one asyncio loop; each request does INCR then GET
through redis-py's asyncio client (PyPI `redis`) on a `BlockingConnectionPool` of 2
connections, spins and answers. Segments: every step of a task working on a request
(`truthlog.AsyncioSteps`), from the handler's start to the response's last write (aiohttp's
parsing in the protocol's callback is not logged).
"""
import asyncio

import redis.asyncio as aioredis
from aiohttp import web

import truthlog

p = truthlog.model_args()
args = p.parse_args()
truthlog.install(args.truth)


STEPS = truthlog.AsyncioSteps("app")


@web.middleware
async def truth(request, handler):
    """The request's steps from the handler's start to the response's last write (done here,
    so the steps end with it; aiohttp writes nothing more for a response written to its end)."""
    STEPS.begin(request.headers.get("X-Request-ID", ""))
    resp = await handler(request)
    await resp.prepare(request)
    await resp.write_eof()
    STEPS.end()
    return resp


async def index(request):
    rid = request.headers.get("X-Request-ID", "")
    r = request.app["redis"]
    n = await r.incr("hits")
    await r.get("hits")
    return web.Response(text=f"ok {rid} {n} {truthlog.spin(args.spin)}\n",
                        headers={"X-Request-ID": rid})


async def make_app():
    STEPS.install(asyncio.get_running_loop())
    app = web.Application(middlewares=[truth])
    app["redis"] = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool(
        host="127.0.0.1", port=args.redis, max_connections=args.redis_conns))
    app.router.add_get("/{path:.*}", index)
    return app


# No signal handling by aiohttp: truthlog's SIGTERM handler writes the truth and exits.
web.run_app(make_app(), host="127.0.0.1", port=args.port, handle_signals=False, print=None,
            access_log=None)
