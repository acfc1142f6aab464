"""Loopback TCP workload for recording tests: waits, then sends N messages to an echo server
thread over one connection and reads each reply. Prints its pid first so a recorder can be
scoped to it. The wait is a number of seconds, or a path to wait for (at most 60 s).
Bounded: N round trips on 127.0.0.1, then exits."""
import socket
import sys
import threading
import time

wait, n = sys.argv[1], int(sys.argv[2])
print(f"pid {__import__('os').getpid()}", flush=True)

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]


def serve():
    conn, _ = srv.accept()
    while True:
        data = conn.recv(4096)
        if not data:
            break
        conn.sendall(data)
    conn.close()


threading.Thread(target=serve, daemon=True).start()
try:
    time.sleep(float(wait))
except ValueError:
    deadline = time.monotonic() + 60
    while not __import__("os").path.exists(wait) and time.monotonic() < deadline:
        time.sleep(0.02)
print(f"go {time.clock_gettime_ns(time.CLOCK_MONOTONIC)}", flush=True)
c = socket.create_connection(("127.0.0.1", port))
for i in range(n):
    msg = f"request {i} ".encode() * 4
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += c.recv(4096)
c.close()
time.sleep(0.2)
print("done", flush=True)
