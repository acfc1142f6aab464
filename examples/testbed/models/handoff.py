"""Hand-off model: one acceptor thread reads and parses every request, then hands it to a
`ThreadPoolExecutor(4)` through its queue; a worker takes a redis connection from a pool of 3
(a `queue.Queue`), does INCR and GET, answers on the client's connection and returns the
redis connection. Segments: the acceptor from the read to the submit, the worker from taking
the task to the last byte of the reply.
"""
import queue
import selectors
import socket
from concurrent.futures import ThreadPoolExecutor

import truthlog

p = truthlog.model_args(redis_conns=3)
p.add_argument("--workers", type=int, default=4)
args = p.parse_args()
truthlog.install(args.truth)

conns = queue.Queue()
for _ in range(args.redis_conns):
    conns.put(truthlog.Redis(args.redis))
pool = ThreadPoolExecutor(max_workers=args.workers)


def work(conn, rid):
    t0 = truthlog.now()
    r = conns.get()
    try:
        n = r.call("INCR", "hits")
        r.call("GET", "hits")
    finally:
        conns.put(r)
    x = 0
    for i in range(args.spin):
        x += i * i
    reply = truthlog.response(rid, f"ok {rid} {n!r} {x}\n")
    # The segment ends as the reply is sent: after sendall, CPython may wait milliseconds for
    # the GIL, which is not work on the request.
    truthlog.segment(rid, "app", t0, truthlog.now())
    conn.sendall(reply)


sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", args.port))
srv.listen(128)
sel.register(srv, selectors.EVENT_READ)
bufs = {}
while True:
    for key, _ in sel.select():
        s = key.fileobj
        if s is srv:
            c, _ = srv.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            bufs[c] = b""
            sel.register(c, selectors.EVENT_READ)
            continue
        t0 = truthlog.now()
        data = s.recv(65536)
        if not data:
            sel.unregister(s)
            del bufs[s]
            s.close()
            continue
        bufs[s] += data
        while b"\r\n\r\n" in bufs[s]:
            head, bufs[s] = bufs[s].split(b"\r\n\r\n", 1)
            rid = truthlog.request_id(head)
            pool.submit(work, s, rid)
            truthlog.segment(rid, "acceptor", t0, truthlog.now())
            t0 = truthlog.now()
