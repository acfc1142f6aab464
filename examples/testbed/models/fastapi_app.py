"""FastAPI model: a FastAPI app on uvicorn's asyncio loop, or with `--uvloop` on uvloop's
libuv-based loop (PyPI); each request does INCR then
GET through redis-py's asyncio client on a `BlockingConnectionPool` of 2 connections, spins
and answers. Segments: every step of a task working on a request (`truthlog.AsyncioSteps`),
from the ASGI call to the response body's last send (uvicorn's parsing in its protocol's
callback is not logged). uvicorn handles SIGTERM itself, then raises it again with the
handler it found, `truthlog.install`'s, which writes the truth.
"""
import asyncio
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

import truthlog

p = truthlog.model_args()
p.add_argument("--uvloop", action="store_true", help="run on uvloop's loop")
args = p.parse_args()
truthlog.install(args.truth)
STEPS = truthlog.AsyncioSteps("app")
pool = {}


@asynccontextmanager
async def lifespan(_):
    STEPS.install(asyncio.get_running_loop())
    pool["redis"] = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool(
        host="127.0.0.1", port=args.redis, max_connections=args.redis_conns))
    yield


api = FastAPI(lifespan=lifespan)


@api.get("/{path:path}")
async def index(path: str, request: Request):
    rid = request.headers.get("x-request-id", "")
    r = pool["redis"]
    n = await r.incr("hits")
    await r.get("hits")
    return PlainTextResponse(f"ok {rid} {n} {truthlog.spin(args.spin)}\n", headers={"X-Request-ID": rid})


async def app(scope, receive, send):
    """The ASGI app with the request's steps named from its call to its last send."""
    if scope["type"] != "http":
        return await api(scope, receive, send)
    STEPS.begin(dict(scope["headers"]).get(b"x-request-id", b"").decode())

    async def sending(message):
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            STEPS.end()

    await api(scope, receive, sending)


uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop" if args.uvloop else "asyncio",
            log_level="warning",
            access_log=False, lifespan="on")
