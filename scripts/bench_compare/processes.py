"""The processes bench-compare starts and watches: each in its own process group (stopped with
its workers on exit), waiting until one listens and serves, and its CPU time from /proc."""

import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .common import die, log


class Children:
    """Every process this script starts, each in its own process group, so that stopping one
    also stops the workers it forked (nginx). Stopped in reverse order on exit."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, cpu, log_path, env=None):
        libc = ctypes.CDLL(None, use_errno=True)

        def child_setup():
            # PR_SET_PDEATHSIG: the child gets SIGTERM if this script dies without cleaning up.
            libc.prctl(1, signal.SIGTERM)

        full = ["taskset", "-c", cpu, *map(str, cmd)] if cpu is not None else list(map(str, cmd))
        with open(log_path, "ab") as out:
            p = subprocess.Popen(
                full,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=child_setup,
                env={**os.environ, **(env or {})},
            )
        p.bench_name = name
        p.bench_log = log_path
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"{p.bench_name} (pid {p.pid}) did not stop on SIGTERM; killing it")
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        # Workers left behind in the group (the leader is gone but a child is not).
        if group_members(p.pid):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


def proc_stats():
    """(pid, the fields of /proc/PID/stat after the command name) of every process now."""
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                s = (d / "stat").read_text()
            except OSError:
                continue
            yield int(d.name), s[s.rfind(")") + 2:].split()


def group_members(pgid):
    """Processes still in process group `pgid`."""
    return [pid for pid, f in proc_stats() if int(f[2]) == pgid]


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_listening(p, port, timeout=60.0):
    """Seconds from now until `port` accepts connections; fatal if `p` exits first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            tail = Path(p.bench_log).read_text(errors="replace")[-3000:]
            die(f"{p.bench_name} exited with code {p.returncode} before listening:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    die(f"{p.bench_name} is not listening on {port} after {timeout} s")


def wait_serving(p, px, pki, timeout=20.0):
    """Waits until a good client's request through `px` is answered 200: a proxy may accept
    connections before its TLS and routes are loaded (Traefik applies its file provider's
    configuration after opening the entry point). Fatal if that does not happen in time."""
    cmd = ["curl", "-s", "--max-time", "2", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", pki / "root-ca.pem",
           "--resolve", f"localhost:{px.port}:127.0.0.1", "--cert", pki / "good-client.pem", "--key",
           pki / "good-client.key", f"https://localhost:{px.port}/"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            die(f"{px.label} exited with code {p.returncode} while starting; see {p.bench_log}")
        r = subprocess.run(list(map(str, cmd)), text=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if r.stdout.strip() == "200":
            return
        time.sleep(0.05)
    die(f"{px.label} accepts connections on {px.port} but answers no request after {timeout:g} s; see {p.bench_log}")


# ---------------------------------------------------------------- /proc


def cpu_busy(cpu):
    """(busy, total) jiffies of one CPU from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        f = line.split()
        if f[0] == f"cpu{cpu}":
            v = list(map(int, f[1:]))
            idle = v[3] + v[4]
            return sum(v) - idle, sum(v)
    return 0, 0


def tree_cpu_ticks(pid):
    """utime+stime (jiffies) of `pid` and its descendants."""
    parent = {pid: (int(f[1]), int(f[11]) + int(f[12])) for pid, f in proc_stats()}
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen or p not in parent:
            continue
        seen.add(p)
        total += parent[p][1]
        todo.extend(c for c, (pp, _) in parent.items() if pp == p)
    return total
