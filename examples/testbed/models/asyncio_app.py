"""Asyncio model: one thread, `asyncio.start_server`, one task per connection; each request
takes a redis connection from a pool of 2 (an `asyncio.Queue`), does INCR then GET on it and
answers. Segments: every step of the request's task between two suspensions (from reading the
head to awaiting redis, from each reply to the next await, the last to the response's write).
"""
import asyncio
import threading

import truthlog

p = truthlog.model_args()
args = p.parse_args()
truthlog.install(args.truth)
TID = threading.get_native_id()


class Redis:
    """A minimal RESP client on one asyncio stream connection."""

    async def connect(self, port):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        return self

    def send(self, *parts):
        """Writes a command (the transport writes at once when its buffer is empty)."""
        self.w.write(f"*{len(parts)}\r\n".encode() + b"".join(
            f"${len(x)}\r\n{x}\r\n".encode() for x in map(str, parts)))

    async def reply(self):
        line = (await self.r.readline()).rstrip(b"\r\n")
        if line.startswith(b"$") and line != b"$-1":
            return (await self.r.readexactly(int(line[1:]) + 2))[:-2]
        return line


class Steps:
    """The intervals a task works on one request: `resume` after each await, `pause` before."""

    def __init__(self, rid):
        self.rid, self.t0 = rid, truthlog.now()

    def pause(self):
        truthlog.segment(self.rid, "app", self.t0, truthlog.now(), tid=TID)

    def resume(self):
        self.t0 = truthlog.now()


async def handle(reader, writer, pool):
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        rid = truthlog.request_id(head)
        steps = Steps(rid)
        if pool.empty():
            steps.pause()
            r = await pool.get()
            steps.resume()
        else:
            r = pool.get_nowait()
        try:
            r.send("INCR", "hits")
            steps.pause()
            n = await r.reply()
            steps.resume()
            r.send("GET", "hits")
            steps.pause()
            await r.reply()
            steps.resume()
        finally:
            pool.put_nowait(r)
        x = 0
        for i in range(args.spin):
            x += i * i
        reply = truthlog.response(rid, f"ok {rid} {n!r} {x}\n")
        steps.pause()
        writer.write(reply)
    writer.close()


async def main():
    pool = asyncio.Queue()
    for _ in range(args.redis_conns):
        pool.put_nowait(await Redis().connect(args.redis))
    server = await asyncio.start_server(lambda r, w: handle(r, w, pool), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
