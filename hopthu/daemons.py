"""The mail daemons systemd restarts when they die (Art. 11.1, ART11-1-UPTIME).

One list, for the tests that prove the policy and the tools that report on
it: which unit runs each daemon on each Debian release, which role writes
its restart policy, and from which template. The policy itself (Restart=,
RestartSec=, the start limit) is in those templates and in the settings
(``hopthu__service_*`` in group_vars/all.yml, ``clamav__restart_sec``):

- ``tests/unit/test_self_healing.py`` renders each template and checks it
  against this list and the settings;
- ``tests/infra/test_self_healing.py`` compares what systemd applies on a
  host (``systemctl show``) with the rendered template;
- ``tests/lab/test_self_healing.py`` kills each daemon's main process and
  times its return.

Postfix is the one daemon whose unit differs by release: on Debian 12
``postfix.service`` is a oneshot wrapper and the master process runs in
``postfix@-.service``; on Debian 13 ``postfix.service`` runs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: The Debian releases hopthu supports (hopthu/schema/common.py).
RELEASES = (12, 13)

#: What the lab test allows a killed daemon, beyond its restart delay, to
#: answer again on its protocol: systemd's clean-up of the old processes and
#: the daemon's start (a second or two each in the lab; clamd loads the lab's
#: one signature in about a second, the official databases in about a minute).
STARTUP_ALLOWANCE_SEC = 25

#: systemd's TimeoutStopSec= where a unit does not set one (DefaultTimeoutStopSec).
SYSTEMD_STOP_TIMEOUT_SEC = 90


def heal_bound(daemon: Daemon, values: Mapping[str, object]) -> int:
    """The most a killed daemon may take to answer again, by its policy: systemd
    first clears what is left of its processes (at worst TimeoutStopSec after
    SIGTERM, and again after SIGKILL), waits RestartSec, then starts it
    (STARTUP_ALLOWANCE_SEC). On a real host nothing is left after a second; in
    the lab, whose hosts share one cgroup tree, systemd may wait the full stop
    timeouts (tests/lab/test_self_healing.py)."""
    stop = (int(str(values[daemon.stop_setting])) if daemon.stop_setting
            else SYSTEMD_STOP_TIMEOUT_SEC)
    return int(str(values[daemon.restart_setting])) + 2 * stop + STARTUP_ALLOWANCE_SEC


@dataclass(frozen=True)
class Daemon:
    #: A short name: the test ids and reports use it.
    name: str
    #: The role that installs the daemon and writes its restart policy.
    role: str
    #: The inventory group whose hosts run it (DESIGN.md §3).
    group: str
    #: Debian release -> the unit whose main process is the daemon.
    units: Mapping[int, str]
    #: The Restart= the policy sets: "on-failure", or "always" where Debian's
    #: own unit already says so.
    restart: str
    #: What the main process's name (/proc/PID/comm) starts with: Postfix's
    #: is its master. "Starts with", because a daemon that sets its process
    #: title may also change its comm ("rspamd: main pr", at most 15 bytes).
    comm: str
    #: The setting that holds its RestartSec=, in seconds.
    restart_setting: str = "hopthu__service_restart_sec"
    #: The setting that holds its TimeoutStopSec=, in seconds; None: systemd's
    #: default (SYSTEMD_STOP_TIMEOUT_SEC), kept for Redis, which saves its
    #: data when it stops.
    stop_setting: str | None = "hopthu__service_stop_timeout_sec"
    #: True when hopthu writes the whole unit (the portal), not a drop-in.
    own_unit: bool = False

    def unit(self, release: int) -> str:
        if release not in self.units:
            raise ValueError(f"{self.name}: no unit for Debian {release}; hopthu supports "
                             f"{', '.join(map(str, RELEASES))}")
        return self.units[release]

    def template(self, release: int) -> str:
        """The template (under templates/) that sets the daemon's restart policy."""
        unit = self.unit(release)
        if self.own_unit:
            return f"etc/systemd/system/{unit}.j2"
        return f"etc/systemd/system/{unit}.d/hopthu.conf.j2"

    def path(self, release: int) -> str:
        """Where that template is written on the host."""
        return "/" + self.template(release).removesuffix(".j2")


def _same(unit: str) -> dict[int, str]:
    return dict.fromkeys(RELEASES, unit)


DAEMONS: tuple[Daemon, ...] = (
    Daemon("postfix", "postfix", "mail_mx",
           {12: "postfix@-.service", 13: "postfix.service"}, "on-failure", "master"),
    Daemon("rspamd", "rspamd", "mail_mx", _same("rspamd.service"), "always", "rspamd"),
    Daemon("redis", "redis", "mail_mx", _same("redis-server.service"), "always",
           "redis-server", stop_setting=None),
    Daemon("clamd", "clamav", "mail_mx", _same("clamav-daemon.service"), "on-failure", "clamd",
           restart_setting="clamav__restart_sec"),
    Daemon("dovecot", "dovecot", "mail_store", _same("dovecot.service"), "on-failure",
           "dovecot"),
    Daemon("nginx", "portal", "mail_store", _same("nginx.service"), "on-failure", "nginx"),
    Daemon("portal", "portal", "mail_store", _same("hopthu-portal.service"), "on-failure",
           "gunicorn", own_unit=True),
)


def daemons(group: str | None = None) -> tuple[Daemon, ...]:
    """The daemons of `group` (every one when None)."""
    return tuple(d for d in DAEMONS if group is None or d.group == group)


def by_name(name: str) -> Daemon:
    for daemon in DAEMONS:
        if daemon.name == name:
            return daemon
    raise KeyError(f"no mail daemon {name!r}; known: {', '.join(d.name for d in DAEMONS)}")


def parse_unit_file(text: str) -> dict[str, dict[str, str]]:
    """section -> key -> the last value a systemd unit file or drop-in assigns.

    Enough for hopthu's own files: no line continuations, no quoting. An
    empty assignment (``ConditionPathExistsGlob=``) is kept as "".
    """
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        if not sep or current is None:
            raise ValueError(f"not a unit file line: {raw!r}")
        current[key.strip()] = value.strip()
    return sections


_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0,
    "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0, "w": 604800.0,
}


def parse_timespan(text: str) -> float:
    """Seconds in a systemd time span as `systemctl show` prints it: "5s", "1min 30s", "100ms".

    A bare number is seconds, as in unit files. "infinity" is float("inf").
    """
    value = text.strip()
    if value == "infinity":
        return float("inf")
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
        return float(value)
    total = 0.0
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)", value)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != value.replace(" ", ""):
        raise ValueError(f"not a systemd time span: {text!r}")
    for number, unit in parts:
        if unit not in _SPAN_UNITS:
            raise ValueError(f"unknown unit {unit!r} in the time span {text!r}")
        total += float(number) * _SPAN_UNITS[unit]
    return total
