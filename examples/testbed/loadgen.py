"""Load generator of the kreq testbed: N requests over C keep-alive connections, one thread
per connection (or, with --until, as many as it takes for a file to appear, then --then more).
Logs one JSON line per request: nginx's request id (X-Request-ID response
header), the client thread id, CLOCK_MONOTONIC start/end (ns) and status. Prints a summary
line with requests/s. Bounded in count; loopback only."""
import argparse
import os
import http.client
import json
import sys
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, default=18080)
p.add_argument("--requests", type=int, required=True)
p.add_argument("--connections", type=int, default=1)
p.add_argument("--log", required=True)
p.add_argument("--path", help="the path every request asks for (default /r/CONNECTION/N)")
p.add_argument("--id-prefix", default="c", help="prefix of the X-Request-ID the client sends")
p.add_argument("--until", metavar="PATH",
               help="keep sending (up to --requests in all) until PATH exists, then send "
                    "--then more: a recording started meanwhile starts under load")
p.add_argument("--then", type=int, default=0, help="requests sent after --until's PATH appears")
args = p.parse_args()

out = []
errors = []
lock = threading.Lock()


def worker(n, k, then):
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    mine = []
    left = None  # requests still to send once --until's path exists
    for i in range(n):
        if args.until:
            if left is None and os.path.exists(args.until):
                left = then
            if left is not None:
                if left == 0:
                    break
                left -= 1
        path = args.path or f"/r/{k}/{i}"
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            # Model apps without nginx echo this id; nginx replaces it with its own.
            conn.request("GET", path, headers={"X-Request-ID": f"{args.id_prefix}{k}-{i}"})
            # The connection's port finds the request where the client is not traced.
            port = conn.sock.getsockname()[1]
            resp = conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as e:
            # Counted and reported, never silently dropped; the next request reconnects.
            with lock:
                errors.append(f"{path}: {e!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
            continue
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        mine.append({"path": path, "request_id": resp.getheader("X-Request-ID", ""),
                     "client_tid": threading.get_native_id(), "client_port": port,
                     "client_t0": t0, "client_t1": t1,
                     "status": resp.status})
    conn.close()
    with lock:
        out.extend(mine)


def share(total, k):
    return total // args.connections + (1 if k < total % args.connections else 0)


threads = [threading.Thread(target=worker, args=(share(args.requests, k), k, share(args.then, k)))
           for k in range(args.connections)]
start = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
with open(args.log, "w") as f:
    for r in out:
        f.write(json.dumps(r) + "\n")
for e in errors[:5]:
    print(f"loadgen: request failed: {e}", file=sys.stderr)
if args.until and not os.path.exists(args.until):
    print(f"loadgen: sent all {args.requests} requests before {args.until} appeared",
          file=sys.stderr)
    sys.exit(3)
print(json.dumps({"requests": len(out), "errors": len(errors), "seconds": elapsed,
                  "rps": len(out) / elapsed}), flush=True)
