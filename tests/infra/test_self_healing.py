"""Self-healing mail daemons (Art. 11.1): systemd applies the restart policy hopthu wrote.

Read-only. For every mail daemon of the host's groups (hopthu/daemons.py:
Postfix, Rspamd, Redis and clamd on mail_mx; Dovecot, nginx and the portal on
mail_store), ``systemctl show`` reports what systemd applies after merging
Debian's unit, hopthu's drop-in and any other drop-in:

- Restart=, RestartSec= and the start limit are those of the template this
  checkout renders for the host (so a drop-in added by hand, or a stale
  one, shows here);
- the unit is running and systemd knows its main process, which is the
  daemon itself (Postfix's master, not a helper): a daemon whose death
  systemd cannot see is never restarted.

That a killed daemon really comes back, and how fast, is
tests/lab/test_self_healing.py.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from hopthu.daemons import Daemon, daemons, parse_timespan, parse_unit_file
from hopthu.render import render

MX_DAEMONS = daemons("mail_mx")
STORE_DAEMONS = daemons("mail_store")

PROPERTIES = ("LoadState", "ActiveState", "SubState", "Restart", "RestartUSec", "TimeoutStopUSec",
              "StartLimitBurst", "StartLimitIntervalUSec", "MainPID", "FragmentPath",
              "DropInPaths")


def release_of(host: Any) -> int:
    """The host's Debian major release, as both engines read it at deploy time."""
    release = host.check_output(". /etc/os-release && echo $VERSION_ID").strip()
    assert release.isdigit(), f"cannot tell the Debian release from /etc/os-release: {release!r}"
    return int(release)


def show(host: Any, unit: str) -> dict[str, str]:
    out = host.check_output(f"systemctl show -p {','.join(PROPERTIES)} {shlex.quote(unit)}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def configured(daemon: Daemon, host_settings: Any, release: int) -> dict[str, Any]:
    """The policy the template sets for this host: Restart, RestartSec, the start limit."""
    values = host_settings.template_vars()
    values["common__debian_major"] = release
    unit = parse_unit_file(render(daemon.template(release), values))
    return {
        "Restart": unit["Service"]["Restart"],
        "RestartSec": parse_timespan(unit["Service"]["RestartSec"]),
        "StartLimitBurst": int(unit["Unit"]["StartLimitBurst"]),
        "StartLimitIntervalSec": parse_timespan(unit["Unit"]["StartLimitIntervalSec"]),
        **({"TimeoutStopSec": parse_timespan(unit["Service"]["TimeoutStopSec"])}
           if "TimeoutStopSec" in unit["Service"] else {}),
    }


def check_policy(host: Any, hostname: str, host_settings: Any, daemon: Daemon) -> None:
    release = release_of(host)
    unit = daemon.unit(release)
    state = show(host, unit)
    assert state.get("LoadState") == "loaded", (
        f"{unit} is {state.get('LoadState')!r} on {hostname}: is {daemon.name} installed? "
        f"Deploy roles/{daemon.role}."
    )
    applied = {
        "Restart": state["Restart"],
        "RestartSec": parse_timespan(state["RestartUSec"]),
        "StartLimitBurst": int(state["StartLimitBurst"]),
        "StartLimitIntervalSec": parse_timespan(state["StartLimitIntervalUSec"]),
    }
    wanted = configured(daemon, host_settings, release)
    if "TimeoutStopSec" in wanted:
        applied["TimeoutStopSec"] = parse_timespan(state["TimeoutStopUSec"])
    assert applied == wanted, (
        f"systemd applies {applied} to {unit} on {hostname}, not the policy of "
        f"templates/{daemon.template(release)}: {wanted}. Its files: "
        f"{state.get('FragmentPath')} {state.get('DropInPaths')}. A drop-in that sorts after "
        f"hopthu.conf overrides it; otherwise redeploy roles/{daemon.role} "
        "(and `systemctl daemon-reload` if the file is right but systemd has not read it)."
    )


def check_main_process(host: Any, hostname: str, daemon: Daemon) -> None:
    release = release_of(host)
    unit = daemon.unit(release)
    state = show(host, unit)
    assert state.get("ActiveState") == "active", (
        f"{unit} is {state.get('ActiveState')}/{state.get('SubState')} on {hostname}: "
        f"{daemon.name} is down. See `systemctl status {unit}` and `journalctl -u {unit} -b`."
    )
    pid = int(state.get("MainPID") or 0)
    assert pid > 0, (
        f"systemd does not know the main process of {unit} on {hostname} (MainPID=0), so it "
        f"cannot see {daemon.name} die and will not restart it. "
        + ("Postfix's drop-in must set PIDFile=/var/spool/postfix/pid/master.pid and Postfix "
           "must have been restarted since: redeploy roles/postfix."
           if daemon.name == "postfix" else f"Redeploy roles/{daemon.role}.")
    )
    comm = host.check_output(f"cat /proc/{pid}/comm").strip()
    assert comm.startswith(daemon.comm), (
        f"the main process of {unit} on {hostname} is {comm!r} (PID {pid}), not "
        f"{daemon.comm!r}: systemd watches the wrong process"
    )


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize("daemon", MX_DAEMONS, ids=[d.name for d in MX_DAEMONS])
def test_systemd_restarts_each_mx_daemon_as_configured(
    mx_host: Any, hostname: str, host_settings: Any, daemon: Daemon
) -> None:
    check_policy(mx_host, hostname, host_settings, daemon)


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize("daemon", STORE_DAEMONS, ids=[d.name for d in STORE_DAEMONS])
def test_systemd_restarts_each_store_daemon_as_configured(
    store_host: Any, hostname: str, host_settings: Any, daemon: Daemon
) -> None:
    check_policy(store_host, hostname, host_settings, daemon)


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize("daemon", MX_DAEMONS, ids=[d.name for d in MX_DAEMONS])
def test_systemd_watches_the_main_process_of_each_mx_daemon(
    mx_host: Any, hostname: str, daemon: Daemon
) -> None:
    check_main_process(mx_host, hostname, daemon)


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize("daemon", STORE_DAEMONS, ids=[d.name for d in STORE_DAEMONS])
def test_systemd_watches_the_main_process_of_each_store_daemon(
    store_host: Any, hostname: str, daemon: Daemon
) -> None:
    check_main_process(store_host, hostname, daemon)
