"""The lab's apt proxy: apt-cacher-ng on the bridge address.

It stands in for a data centre's internal mirror (DESIGN.md §5): the hosts
have no route out, and get every package through http://198.18.0.1:3142.
Image builds (debootstrap, then the image's apt upgrade) go through it too, so
the packages they fetch are cached for the hosts' first deploy, and a second
image build reads from the cache.

The proxy runs with a config directory of its own (`-c`), so whatever the
Debian package left in /etc/apt-cacher-ng does not matter. Two settings are
essential (LAB.md "Packages inside the hosts"):

- ``backends_debian`` names the mirror; without it apt-cacher-ng answers
  ``503 Host not found`` for Debian requests;
- ``Remap-secdeb`` maps the security archive (deb.debian.org/debian-security,
  and security.debian.org for hosts configured that way) to one backend,
  deb.debian.org/debian-security, so updates are cached under one name.

The cache (/var/cache/hopthu/apt-cacher-ng) survives `down`; only the config,
the logs and the process go.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from hopthu.lab import state
from hopthu.lab.errors import LabError
from hopthu.lab.processes import (
    is_alive,
    spawn,
    tail,
    terminate,
    tracked_pid,
    write_pid,
)

#: apt-cacher-ng drops root: it listens on a network the lab hosts share.
PROXY_USER = "apt-cacher-ng"

CONF_DIR = state.PROXY_DIR / "conf"
LOG_DIR = state.PROXY_DIR / "log"
PID_FILE = state.RUN_DIR / "apt-cacher-ng.pid"
CONSOLE_LOG = state.RUN_DIR / "apt-cacher-ng.console.log"


def _config() -> str:
    return f"""\
# Written by `hopthu lab up` (hopthu/lab/proxy.py); rewritten on every start.
CacheDir: {state.APT_CACHE}
LogDir: {LOG_DIR}
SupportDir: /usr/lib/apt-cacher-ng
SocketPath: {state.PROXY_DIR / 'run' / 'socket'}
BindAddress: {state.BRIDGE_ADDRESS}
Port: {state.PROXY_PORT}
ForeGround: 1
ReportPage: acng-report.html

# Debian: any known mirror name (and the /debian shortcut) is served from the
# one backend in backends_debian (LAB.md: without it, 503 Host not found).
Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian
# Debian security updates, by any of their usual names, from deb.debian.org.
Remap-secdeb: security.debian.org security.debian.org/debian-security deb.debian.org/debian-security /debian-security ; deb.debian.org/debian-security

# Expire files no index names any more after 4 days.
ExThreshold: 4
"""


def _is_ours(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "apt-cacher-ng" and str(CONF_DIR) in argv


def running_pid() -> int | None:
    return tracked_pid(PID_FILE, _is_ours)


def answers(timeout: float = 3.0) -> bool:
    """Whether the proxy answers HTTP on the bridge address."""
    # An explicit empty ProxyHandler: an http_proxy in the environment must
    # not route this probe elsewhere.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{state.proxy_url()}/acng-report.html", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def status() -> dict[str, Any]:
    pid = running_pid()
    return {
        "url": state.proxy_url(),
        "running": pid is not None,
        "pid": pid,
        "answers": pid is not None and answers(),
        "cache": str(state.APT_CACHE),
    }


def _port_holder() -> str | None:
    """Who already listens on the proxy port (e.g. the Debian package's own
    apt-cacher-ng on 0.0.0.0:3142, which would make our bind fail)."""
    result = subprocess.run(
        ["ss", "-Hltnp", f"sport = :{state.PROXY_PORT}"],
        check=False, capture_output=True, text=True, timeout=10,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return "; ".join(" ".join(line.split()) for line in lines) or None


def _prepare_dirs() -> tuple[int, int] | None:
    for directory in (CONF_DIR, LOG_DIR, state.PROXY_DIR / "run", state.APT_CACHE):
        directory.mkdir(parents=True, exist_ok=True)
    (CONF_DIR / "acng.conf").write_text(_config())
    (CONF_DIR / "backends_debian").write_text(f"{state.DEBIAN_MIRROR}/\n")
    try:
        user = pwd.getpwnam(PROXY_USER)
    except KeyError:
        return None  # no such user: run as root rather than not at all
    ids = (user.pw_uid, user.pw_gid)
    for directory in (LOG_DIR, state.PROXY_DIR / "run"):
        os.chown(directory, *ids)
    if state.APT_CACHE.stat().st_uid != user.pw_uid:
        # A cache written by a root-run proxy (or by hand): hand it over.
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(state.APT_CACHE)],
                       check=True, timeout=300)
    return ids


def ensure_proxy(timeout: float = 20.0) -> str:
    """Start the proxy unless it runs; return what was done."""
    pid = running_pid()
    if pid is not None:
        if answers():
            return f"running, pid {pid}"
        terminate(pid, grace=5)
    holder = _port_holder()
    if holder:
        raise LabError(
            f"port {state.PROXY_PORT} is already taken: {holder}. Stop that program "
            f"(for the Debian package's own proxy: `service apt-cacher-ng stop` and "
            f"`update-rc.d apt-cacher-ng disable`), then run `hopthu lab up` again"
        )
    ids = _prepare_dirs()
    argv = ["apt-cacher-ng", "-c", str(CONF_DIR), "ForeGround=1"]
    if ids is not None:
        argv = ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--init-groups",
                "--inh-caps=-all", "--", *argv]
    pid = spawn(argv, log=CONSOLE_LOG)
    write_pid(PID_FILE, pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Our own child: its PID cannot be reused before we exit, so liveness
        # is enough (its command line is still Python's until it execs).
        if not is_alive(pid):
            PID_FILE.unlink(missing_ok=True)
            raise LabError(
                f"apt-cacher-ng exited at once. Its output ({CONSOLE_LOG}):\n"
                f"{tail(CONSOLE_LOG)}\nand its error log ({LOG_DIR / 'apt-cacher.err'}):\n"
                f"{tail(LOG_DIR / 'apt-cacher.err')}"
            )
        if answers(timeout=1.0):
            return f"started, pid {pid}"
        time.sleep(0.2)
    raise LabError(
        f"apt-cacher-ng (pid {pid}) did not answer on {state.proxy_url()} within "
        f"{timeout:.0f} s. Its output ({CONSOLE_LOG}):\n{tail(CONSOLE_LOG)}\n"
        f"and its error log ({LOG_DIR / 'apt-cacher.err'}):\n{tail(LOG_DIR / 'apt-cacher.err')}"
    )


def stop_proxy() -> str:
    pid = running_pid()
    text = "not running" if pid is None else terminate(pid, grace=10)
    PID_FILE.unlink(missing_ok=True)
    return text


def remove_state() -> None:
    """Remove the proxy's config and logs (the package cache stays)."""
    shutil.rmtree(state.PROXY_DIR, ignore_errors=True)

