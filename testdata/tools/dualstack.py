"""The dual-stack probe behind testdata/v6-dualstack (capture_dualstack.sh records it).

One process: a thread-per-connection echo server on [::]:29601 with IPV6_V6ONLY off, and,
after argv[1] seconds, two clients in the main thread, one over IPv4 (127.0.0.1: the server
sees it as ::ffff:127.0.0.1) and one over IPv6 (::1), each sending ping0..ping4 and reading
each "pong:" reply. The exchange is fixed, so it is its own ground truth: 10 requests, 5 per
client, each read by a server thread and answered to the main thread.
"""
import socket, sys, threading, time
fam = socket.AF_INET6
def serve(port, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((addr, port)); s.listen(8)
    while True:
        c, _ = s.accept()
        def h(c):
            while True:
                d = c.recv(100)
                if not d: break
                c.sendall(b"pong:" + d)
        threading.Thread(target=h, args=(c,), daemon=True).start()
threading.Thread(target=serve, args=(29601, "::"), daemon=True).start()
time.sleep(0.3)
def client(host):
    c = socket.create_connection((host, 29601))
    for i in range(5):
        c.sendall(b"ping%d" % i); c.recv(100); time.sleep(0.01)
    c.close()
time.sleep(float(sys.argv[1]))
client("127.0.0.1"); client("::1")
time.sleep(0.5)
