"""The processes a testbed driver starts on loopback, and stopping every one of them."""
import signal
import socket
import subprocess
import time

procs = []


def start(cmd, **kw):
    pr = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
    procs.append(pr)
    return pr


def wait_port(port, timeout, work):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"testbed: nothing listens on 127.0.0.1:{port} after {timeout}s (see {work})")


def nginx_head(work):
    """The start of an nginx config whose files all live in `work`: 2 workers, its pid and
    error log, and an open `http {` block with every temporary path set."""
    import os
    t = os.path.join(work, "nginx-tmp")
    os.makedirs(t, exist_ok=True)
    return f"""
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fcgi;
  uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;"""


def nginx_conf(work, port, upstreams, request_id, truth_log):
    """Writes an nginx config into `work` and returns its path: 2 workers on 127.0.0.1:`port`
    proxying over keep-alive connections to `upstreams` (`server` targets: `127.0.0.1:P` or
    `unix:PATH`), sending the request id `request_id` (an nginx variable) upstream. With
    `truth_log`, nginx also returns it and logs `$request_id $pid $connection $msec` per
    request to `work`/nginx-access.log."""
    import os
    ups = "\n".join(f"    server {u};" for u in upstreams)
    log = (f"log_format truth '$request_id $pid $connection $msec';\n"
           f"  access_log {work}/nginx-access.log truth;" if truth_log else "access_log off;")
    echo = f"\n      add_header X-Request-ID {request_id};" if truth_log else ""
    conf = f"""{nginx_head(work)}
  {log}
  upstream app {{
{ups}
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    keepalive_requests 100000;
    location / {{
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-ID {request_id};{echo}
      proxy_pass http://app;
    }}
  }}
}}
"""
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return path


def nginx_truth(work):
    """The truth log of `nginx_conf(..., truth_log=True)`: request id -> (worker pid, connection
    number)."""
    import os
    out = {}
    for line in open(os.path.join(work, "nginx-access.log")):
        rid, pid, conn, _ = line.split()
        out[rid] = (int(pid), int(conn))
    return out


def start_recorder(cmd, who):
    """Starts `kreq record` (`cmd`) and returns once it says it records; `who` names the
    driver in the error when it does not start."""
    rec = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = rec.stderr.readline()  # "recording N events into ..." once set up
    if not line.startswith("recording"):
        raise SystemExit(f"{who}: kreq record did not start: {line}{rec.stderr.read()}")
    return rec


def stop_recorder(rec, summary):
    """SIGINT to `kreq record`; its report and exit status go into `summary`."""
    rec.send_signal(signal.SIGINT)
    _, err = rec.communicate(timeout=120)
    summary["recorder"] = err.strip()
    summary["recorder_exit"] = rec.returncode


def _wait(pr, timeout):
    try:
        pr.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pr.kill()
        pr.wait()


def stop(pr, timeout=10):
    """SIGTERM to one process (a model app writes its truth then), killed after `timeout` s."""
    if pr.poll() is None:
        pr.send_signal(signal.SIGTERM)
    _wait(pr, timeout)


def stop_all(timeout=5):
    """SIGTERM to every process started, newest first, then waits for each."""
    for pr in reversed(procs):
        if pr.poll() is None:
            pr.send_signal(signal.SIGTERM)
    for pr in reversed(procs):
        _wait(pr, timeout)
