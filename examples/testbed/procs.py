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
