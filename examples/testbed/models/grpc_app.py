"""gRPC model: an HTTP tier making one gRPC unary call per request over one shared channel
(HTTP/2 streams multiplexed on one connection) to a gRPC server with a pool of 4 workers, each
doing INCR then GET on redis (one connection per worker thread).

`--tier front`: a thread-per-connection HTTP server (`ThreadingHTTPServer`); segment: the
handler thread from the request's head to its response (it waits in the call). `--tier
worker`: `grpc.server(ThreadPoolExecutor(4))` with one generic method taking and returning raw
bytes (no protobuf); segment: the pool thread running the method.
"""
import argparse
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc

import truthlog

p = argparse.ArgumentParser()
p.add_argument("--tier", choices=["front", "worker"], required=True)
p.add_argument("--port", type=int, required=True)
p.add_argument("--next", type=int, help="front: the gRPC server's port")
p.add_argument("--redis", type=int, help="worker: redis's port")
p.add_argument("--truth", required=True)
p.add_argument("--spin", type=int, default=2000)
args = p.parse_args()
truthlog.install(args.truth)

METHOD = "/kreq.Model/Call"


if args.tier == "worker":
    local = threading.local()

    def call(request, context):
        rid = request.decode()
        t0 = truthlog.now()
        if not hasattr(local, "redis"):
            local.redis = truthlog.Redis(args.redis)
        n = local.redis.call("INCR", "hits")
        local.redis.call("GET", "hits")
        out = f"{n.decode()} {truthlog.spin(args.spin)}".encode()
        truthlog.segment(rid, "worker", t0, truthlog.now())
        return out

    handler = grpc.method_handlers_generic_handler(
        "kreq.Model", {"Call": grpc.unary_unary_rpc_method_handler(call)})
    server = grpc.server(ThreadPoolExecutor(max_workers=4), handlers=[handler])
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    server.wait_for_termination()
else:
    channel = grpc.insecure_channel(f"127.0.0.1:{args.next}")
    stub = channel.unary_unary(METHOD)

    truthlog.serve_http(("127.0.0.1", args.port), "front",
                        lambda rid: stub(rid.encode(), timeout=10).decode(), args.spin)
