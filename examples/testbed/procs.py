"""The processes a testbed driver starts on loopback, and stopping every one of them."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

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


def recorded_load(who, work, record, load_args):
    """Runs the load generator (loadgen.py `load_args`, logging to `work`/loadgen.jsonl) under
    `record` (a `kreq record` command, or None for no recording) and returns the load
    generator's summary with the recorder's report; `who` names the driver in errors."""
    recorder = None
    if record:
        recorder = start_recorder(record, who)
        time.sleep(0.5)
    load = subprocess.run([sys.executable, os.path.join(HERE, "loadgen.py"),
                           "--log", os.path.join(work, "loadgen.jsonl")] + load_args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if load.returncode != 0:
        raise SystemExit(f"{who}: the load generator failed ({load.returncode}):\n{load.stdout}{load.stderr}")
    summary = json.loads(load.stdout.strip().splitlines()[-1])
    if recorder:
        stop_recorder(recorder, summary)
    return summary


def write_segment_truth(path, work, segments):
    """Writes segment truth to `path`: a line per request of the load generator's log
    (`work`/loadgen.jsonl), by client start, with its segments from `segments` (request id ->
    list of `{tier, pid, tid, t0, t1}`) by start. Returns (requests, requests with segments)."""
    client = [json.loads(line) for line in open(os.path.join(work, "loadgen.jsonl"))]
    with open(path, "w") as f:
        for c in sorted(client, key=lambda r: r["client_t0"]):
            rid = c["request_id"]
            f.write(json.dumps({"request_id": rid, "client_tid": c["client_tid"],
                                "client_t0": c["client_t0"], "client_t1": c["client_t1"],
                                "segments": sorted(segments.get(rid, []), key=lambda s: s["t0"]),
                                "status": c["status"]}) + "\n")
    return len(client), sum(1 for c in client if segments.get(c["request_id"]))


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
