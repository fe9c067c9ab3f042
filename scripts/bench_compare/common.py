"""What every part of scripts/bench-compare shares: the CPUs and ports it uses, logging, and
running commands whose failure ends the run."""

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PROXY_CPU = "0"
LOAD_CPU = "1"
BACKEND_PORT = 18080


def log(msg):
    print(f"bench-compare: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def run(cmd, **kw):
    """Runs a command to completion; its output is returned, a failure is fatal."""
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    kw.setdefault("stdout", subprocess.PIPE)
    try:
        return subprocess.run(cmd, **kw).stdout
    except subprocess.CalledProcessError as e:
        die(f"{' '.join(map(str, cmd))} failed with exit code {e.returncode}:\n{e.stderr or ''}")


def output(cmd):
    """stdout+stderr of a version command, or '' when it cannot run."""
    try:
        r = subprocess.run(list(map(str, cmd)), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.stdout.strip()
    except OSError:
        return ""


def find_tool(name):
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name) if p.exists()), None
    )


def fd_limit():
    """The open-file limit this script raised itself to; the proxies inherit it."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def apt_install(packages):
    """apt-get install of Debian packages, keeping their own services from starting (they would
    take port 80; our processes are started with their own configs)."""
    log(f"installing {' '.join(packages)} with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if os.geteuid() == 0 and not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run([*sudo, "apt-get", "update", "-qq"], env=env, stdout=subprocess.DEVNULL)
        run([*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env, stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            policy.unlink()
