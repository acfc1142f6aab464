"""Load generator of the kreq testbed: N requests over C keep-alive connections, one thread
per connection. Logs one JSON line per request: nginx's request id (X-Request-ID response
header), the client thread id, CLOCK_MONOTONIC start/end (ns) and status. Prints a summary
line with requests/s. Bounded in count; loopback only."""
import argparse
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
p.add_argument("--id-prefix", default="c", help="prefix of the X-Request-ID the client sends")
args = p.parse_args()

out = []
errors = []
lock = threading.Lock()


def worker(n, k):
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
    mine = []
    for i in range(n):
        path = f"/r/{k}/{i}"
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        try:
            # Model apps without nginx echo this id; nginx replaces it with its own.
            conn.request("GET", path, headers={"X-Request-ID": f"{args.id_prefix}{k}-{i}"})
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
                     "client_tid": threading.get_native_id(), "client_t0": t0, "client_t1": t1,
                     "status": resp.status})
    conn.close()
    with lock:
        out.extend(mine)


per = [args.requests // args.connections + (1 if k < args.requests % args.connections else 0)
       for k in range(args.connections)]
threads = [threading.Thread(target=worker, args=(n, k)) for k, n in enumerate(per)]
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
print(json.dumps({"requests": len(out), "errors": len(errors), "seconds": elapsed,
                  "rps": len(out) / elapsed}), flush=True)
