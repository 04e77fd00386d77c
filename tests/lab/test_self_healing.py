"""A killed mail daemon is healed by systemd and serves again within a bound (Art. 11.1).

For each mail daemon on mail1 (hopthu/daemons.py: Postfix's master, Rspamd,
Redis, clamd, Dovecot, nginx and the portal's gunicorn), a program on mail1:

1. reads the daemon's main PID from systemd (``systemctl show -p MainPID``),
   checks that it is the daemon (its /proc comm) and that the daemon answers
   on its real protocol;
2. sends SIGKILL to that PID only, not to its children or its group (a
   crash, or the OOM killer);
3. waits until systemd reports a new main PID and the daemon answers again:
   the SMTP banner on port 25, the IMAPS greeting on 993 (TLS verified for
   the host's name), Rspamd's controller /ping, clamd's PING/PONG on its
   socket, Redis's PING, nginx's static autoconfig file over HTTPS on 443,
   and the portal's page through nginx.

**The bound** (hopthu.daemons.heal_bound): twice the daemon's stop timeout
(``hopthu__service_stop_timeout_sec``, 10 s; Redis keeps systemd's 90 s),
which is the most systemd waits for what is left of the old processes (after
SIGTERM, and again after SIGKILL), plus its restart delay
(``hopthu__service_restart_sec``, 5 s; clamd's ``clamav__restart_sec``,
30 s), plus 25 s for the daemon to start
(hopthu.daemons.STARTUP_ALLOWANCE_SEC): 50 s for Postfix, Rspamd, Dovecot,
nginx and the portal, 75 s for clamd, 210 s for Redis. On a real host
nothing is left of the old processes after a second; in the lab (below)
systemd waited the whole stop timeout for Postfix on Debian 13 and Rspamd on
Debian 12, and once for a process it could not kill at all. The restart must also be systemd's automatic restart
(NRestarts goes up by one), not something else starting the unit. The
roles' READMEs state the same bound.

The lab's hosts share one cgroup tree (systemd-nspawn ``--keep-unit``
without a systemd on the lab machine; see test_mail_core_integrity.py). While
mail2 runs the same unit, the unit's cgroup never empties, and systemd on
mail1 would wait its whole stop timeout (90 s) for it before restarting.
That is the lab, not the policy: on a real host the cgroup holds that host's
processes only. So while mail1's daemon is killed, the twin's unit is
stopped, and it is started again afterwards.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
from mailcore import HOST, lab_settings, mail_core, on_host  # noqa: F401
from vantage import run

from hopthu import inventory as inventory_mod
from hopthu.daemons import DAEMONS, STARTUP_ALLOWANCE_SEC, Daemon, heal_bound

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("mail_core")]

#: Units a twin must stop besides the daemon's own: clamd is socket-activated,
#: and its socket would start it again.
COMPANION_UNITS = {"clamd": ("clamav-daemon.socket",)}

#: Seconds between two looks at the unit and the protocol: often enough to
#: time the healing to a second, rarely enough for nginx's flood guard
#: (60 requests a minute per client) on the portal's page.
INTERVAL = 1.0

#: How long the program watches past the bound, so that a slow healing is
#: reported with its real duration instead of "never".
OBSERVE_PAST_BOUND = 120

#: Runs on mail1 (python3, standard library only). argv[1] is a JSON spec.
#: Prints one JSON line: what happened.
KILL_AND_WATCH = r'''
import json, os, signal, smtplib, socket, ssl, subprocess, sys, time, urllib.request

spec = json.loads(sys.argv[1])
unit = spec["unit"]


def show(prop):
    return subprocess.run(["systemctl", "show", "-p", prop, "--value", unit],
                          capture_output=True, text=True, check=True).stdout.strip()


def smtp():
    # smtplib reads the whole greeting and raises unless it is 220.
    smtplib.SMTP("127.0.0.1", spec["port"], timeout=5).close()


def tls(port):
    context = ssl.create_default_context()  # the host trusts its CA (roles/pki)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw, server_hostname=spec["name"])


def imaps():
    with tls(spec["port"]) as conn:
        greeting = conn.makefile("rb").readline()
    if not greeting.startswith(b"* OK"):
        raise ValueError(f"IMAP greeting {greeting!r}")


def https():
    with tls(spec["port"]) as conn:
        conn.sendall((f"GET {spec['path']} HTTP/1.1\r\nHost: {spec['name']}\r\n"
                      "Connection: close\r\n\r\n").encode())
        status = conn.makefile("rb").readline()
    if status.split()[1:2] != [b"200"]:
        raise ValueError(f"GET {spec['path']}: {status!r}")


def rspamd():
    with urllib.request.urlopen(spec["url"], timeout=5) as reply:
        body = reply.read()
    if body.strip() != b"pong":
        raise ValueError(f"/ping answered {body!r}")


def clamd():
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(spec["path"])
        conn.sendall(b"zPING\0")
        reply = conn.recv(64)
    if reply.rstrip(b"\0\n") != b"PONG":
        raise ValueError(f"PING answered {reply!r}")


def redis():
    with socket.create_connection(("127.0.0.1", spec["port"]), timeout=5) as conn:
        conn.sendall(b"PING\r\n")
        reply = conn.recv(64)
    if reply != b"+PONG\r\n":
        raise ValueError(f"PING answered {reply!r}")


PROBES = {"smtp": smtp, "imaps": imaps, "https": https, "rspamd": rspamd,
          "clamd": clamd, "redis": redis}


def answers():
    try:
        PROBES[spec["probe"]]()
        return ""
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def report(**fields):
    fields["state"] = show("ActiveState") + "/" + show("SubState")
    print(json.dumps(fields))
    sys.exit(0)


old = int(show("MainPID") or 0)
if old <= 0:
    report(error=f"systemd knows no main process of {unit} (MainPID={old})")
try:
    with open(f"/proc/{old}/comm") as f:
        comm = f.read().strip()
except OSError as error:
    report(error=f"cannot read the comm of MainPID {old}: {error}")
if not comm.startswith(spec["comm"]):
    report(error=f"MainPID {old} of {unit} is {comm!r}, not {spec['comm']!r}; nothing killed")
why = answers()
if why:
    report(error=f"{spec['probe']} does not answer before the kill: {why}")
restarts = int(show("NRestarts") or 0)

os.kill(old, signal.SIGKILL)
start = time.monotonic()
deadline = start + spec["observe"]
last = "not looked yet"
while time.monotonic() < deadline:
    time.sleep(spec["interval"])
    pid = int(show("MainPID") or 0)
    if pid in (0, old):
        last = f"MainPID is {pid}"
        continue
    why = answers()
    if not why:
        report(old=old, new=pid, healed_after=round(time.monotonic() - start, 1),
               restarts_before=restarts, restarts_after=int(show("NRestarts") or 0))
    last = f"MainPID {pid}; {spec['probe']}: {why}"
report(old=old, healed_after=None, last=last, restarts_before=restarts,
       restarts_after=int(show("NRestarts") or 0))
'''


def release() -> int:
    return int(on_host(HOST, ". /etc/os-release && echo $VERSION_ID").strip())


def probe_spec(daemon: Daemon, values: dict[str, Any]) -> dict[str, Any]:
    """How to ask `daemon` on mail1 whether it serves, on its own protocol."""
    name = values["portal__imap_host"]  # mail1's mail name, which its certificate names
    https = {"probe": "https", "port": values["portal__https_port"], "name": name}
    return {
        "postfix": {"probe": "smtp", "port": 25},
        "rspamd": {"probe": "rspamd", "url": f"http://{values['rspamd__controller_bind']}/ping"},
        "redis": {"probe": "redis", "port": values["redis__port"]},
        "clamd": {"probe": "clamd", "path": values["clamav__clamd_socket"]},
        "dovecot": {"probe": "imaps", "port": values["dovecot__imaps_port"], "name": name},
        # A static file nginx serves itself, and the portal's page it proxies.
        "nginx": {**https, "path": "/mail/config-v1.1.xml"},
        "portal": {**https, "path": "/"},
    }[daemon.name]


def bound(daemon: Daemon, values: dict[str, Any]) -> int:
    """The documented bound (hopthu.daemons.heal_bound): twice the stop timeout,
    the restart delay and STARTUP_ALLOWANCE_SEC."""
    return heal_bound(daemon, values)


def twins(daemon: Daemon) -> list[str]:
    """The other lab hosts that run `daemon`: mail2, in the default lab."""
    inv = inventory_mod.load("lab")
    return [h for h in inv.hosts_in(daemon.group) if h != HOST] if daemon.group in inv.groups \
        else []


#: (twin, units) stopped by a test, started again when the module ends.
_STOPPED_ON_TWINS: list[tuple[str, tuple[str, ...]]] = []


@pytest.fixture(scope="module", autouse=True)
def twins_restored() -> Iterator[None]:
    """Every twin unit a test stopped is running again when the module ends.

    The start waits behind the twin's own stop job, which in the lab's shared
    cgroup tree may take the unit's whole stop timeout.
    """
    yield
    problems = []
    for twin, units in _STOPPED_ON_TWINS:
        names = " ".join(units)
        result = run(twin, f"systemctl start {names}", timeout=300)
        if result.rc != 0:
            problems.append(f"{twin}: `systemctl start {names}` exited {result.rc}: "
                            f"{result.err.strip()}")
    _STOPPED_ON_TWINS.clear()
    assert not problems, "the twins' units did not start again:\n" + "\n".join(problems)


def stop_on_twins(daemon: Daemon, unit: str) -> None:
    """Stop the unit on every twin that runs it, and wait until none of the twin's
    processes is left in the unit's cgroup (a host's /proc shows only its own)."""
    units = (*COMPANION_UNITS.get(daemon.name, ()), unit)
    names = " ".join(shlex.quote(u) for u in units)
    gone = (f"for i in $(seq 120); do grep -qsF {shlex.quote('/' + unit)} /proc/[0-9]*/cgroup "
            "|| exit 0; sleep 0.5; done; exit 1")
    for twin in twins(daemon):
        if run(twin, f"systemctl is-active --quiet {shlex.quote(unit)}").rc != 0:
            continue
        _STOPPED_ON_TWINS.append((twin, units))
        # --no-block: the stop job itself may wait for the shared cgroup to empty.
        on_host(twin, f"systemctl stop --no-block {names}; {gone}", timeout=90)


def heal_report(daemon: Daemon, unit: str, values: dict[str, Any], limit: int) -> dict[str, Any]:
    spec = {
        "unit": unit, "comm": daemon.comm, "interval": INTERVAL,
        "observe": limit + OBSERVE_PAST_BOUND, **probe_spec(daemon, values),
    }
    out = on_host(HOST, f"python3 -c {shlex.quote(KILL_AND_WATCH)} "
                        f"{shlex.quote(json.dumps(spec))}",
                  timeout=limit + OBSERVE_PAST_BOUND + 60)
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize("daemon", DAEMONS, ids=[d.name for d in DAEMONS])
def test_a_killed_daemon_is_restarted_and_serves_again_within_the_bound(daemon: Daemon) -> None:
    values = lab_settings()
    unit = daemon.unit(release())
    limit = bound(daemon, values)
    stop_on_twins(daemon, unit)
    result = heal_report(daemon, unit, values, limit)
    where = (f"See `journalctl -u {unit}` on {HOST} (below, if the test failed) and "
             f"`systemctl show {unit}`; the policy is templates/{daemon.template(release())}.")
    assert "error" not in result, f"{daemon.name} on {HOST}: {result['error']}. {where}"
    healed = result["healed_after"]
    assert healed is not None, (
        f"{daemon.name} ({unit}) on {HOST} did not serve again within {limit + OBSERVE_PAST_BOUND}"
        f" s of SIGKILL to PID {result['old']}: {result['last']}; the unit is "
        f"{result['state']}. {where}"
    )
    assert result["restarts_after"] == result["restarts_before"] + 1, (
        f"{unit} came back with NRestarts {result['restarts_before']} -> "
        f"{result['restarts_after']}: not systemd's automatic restart (Restart=)"
    )
    assert healed <= limit, (
        f"{daemon.name} ({unit}) on {HOST} served again {healed} s after SIGKILL, beyond the "
        f"bound of {limit} s (2 x the stop timeout, {daemon.restart_setting} = "
        f"{values[daemon.restart_setting]} s and {STARTUP_ALLOWANCE_SEC} s to start). {where}"
    )
