"""What `hopthu status` checks on a host, and what it tells the operator (Art. 11.1).

In the spirit of Mail-in-a-Box's status checks: one line per check, and
every line that is not fine says what to do next. The checks follow from the
host's settings (its roles and their ``<role>__*`` values), so a host is
asked only about what its deploy put there:

- each service of its roles runs (systemd) and answers on its ports (a TCP
  connect from the host itself, to the address the socket listens on);
- Rspamd answers on its controller (/ping) and clamd answers PING on its
  socket: the two filters Postfix waits for;
- Postfix's queue holds at most ``queue_max`` messages;
- the host certificate has more than CERT_WARN_DAYS days left;
- no filesystem that holds mail, queues, logs or backups is fuller than
  DISK_MAX_PERCENT;
- the last backup, where the backup tool keeps its state, succeeded and is
  younger than ``backup__max_age_hours``, by the infra suite's own rule
  (hopthu/backup/freshness.py); a host without that state is not checked,
  and says so.

The thresholds are those of the infra suite and the alert rules of issue 7:
a certificate under 21 days (pki.WARN_DAYS), a disk over 85 %, a backup
older than backup__max_age_hours (26 h by default).

hopthu/status_probe.py gathers the facts on the host; `plan_for` says what it
must gather, and `judge` turns its answer into `Check` lines. Both are pure,
so the unit tests give them fake answers.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from hopthu import daemons, pki
from hopthu.audit.hosts import RunResult, Target
from hopthu.backup import freshness

#: A certificate with this many days left or fewer is a warning (the infra
#: suite fails from here, and the alert rules fire).
CERT_WARN_DAYS = pki.WARN_DAYS
#: Percent of a filesystem in use above which the host fails: Postfix stops
#: accepting mail when the queue's filesystem runs out, and Dovecot's
#: deliveries fail.
DISK_MAX_PERCENT = 85
#: Messages in Postfix's queue above which the host fails (`--queue-max`):
#: a healthy queue drains within minutes; a growing one means mail waits
#: for a next hop, DNS, or Dovecot's LMTP.
QUEUE_MAX = 100
#: backup__max_age_hours' default, for a host whose settings do not have it.
BACKUP_MAX_AGE_HOURS = freshness.MAX_AGE_HOURS

#: Where the pki role puts the host certificate and its chain.
CERTIFICATE = "/etc/hopthu/tls/host.fullchain.pem"
#: Where the backup tool (roles/backup) records its last run, and when the
#: deploy enabled backups on the host.
BACKUP_STATE = freshness.STATE
BACKUP_ENABLED_SINCE = freshness.ENABLED_SINCE
#: Filesystems worth watching: the root, the mail store, Postfix's queue,
#: the logs (kept a year, Art. 11.5) and the borg repositories. Each
#: filesystem is reported once, under its mount point.
DISK_PATHS = ("/", "/var", "/var/log", "/var/spool/postfix", "/var/vmail", "/srv/borg")

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
SYMBOLS = {OK: "✓", WARN: "⚠", FAIL: "✗", SKIP: "–"}


@dataclass(frozen=True)
class Check:
    """One line of the status: what was checked, how it went, and what to do."""

    id: str
    state: str
    message: str
    #: What the operator does next; empty when the check is fine.
    fix: str = ""

    def line(self) -> str:
        text = f"{SYMBOLS[self.state]} {self.message}"
        return f"{text} — what to do: {self.fix}" if self.fix else text


@dataclass(frozen=True)
class HostStatus:
    name: str
    address: str
    groups: tuple[str, ...]
    reached: bool
    release: str = ""
    checks: tuple[Check, ...] = ()

    def count(self, state: str) -> int:
        return sum(1 for c in self.checks if c.state == state)

    @property
    def ok(self) -> bool:
        return self.count(FAIL) == 0


@dataclass(frozen=True)
class Service:
    """A service a role runs: its systemd unit and the ports it serves."""

    key: str
    label: str
    role: str
    #: Debian release -> unit
    units: Mapping[int, str]
    ports: tuple[int, ...] = ()
    #: The daemon's own configuration check, for the advice.
    config_check: str = ""
    #: systemd skips the unit by a Condition in a container (chrony): not a failure.
    may_be_skipped: bool = False

    def unit(self, release: int) -> str:
        return self.units.get(release) or self.units[max(self.units)]


@dataclass(frozen=True)
class Plan:
    """What to ask one host, from its settings."""

    target: Target
    inventory: str
    services: tuple[Service, ...] = ()
    spec: Mapping[str, Any] = field(default_factory=dict)
    pki_mode: str = "internal"
    backup_max_age_hours: float = BACKUP_MAX_AGE_HOURS


def _same(unit: str) -> dict[int, str]:
    return dict.fromkeys(daemons.RELEASES, unit)


def _port(bind: object) -> int | None:
    """The port of a "host:port" (or bare port) setting; None for a socket path."""
    text = str(bind or "").strip()
    if not text or text.startswith("/"):
        return None
    tail = text.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def _ports(*values: object) -> tuple[int, ...]:
    found = []
    for value in values:
        port = value if isinstance(value, int) else _port(value)
        if port and port not in found:
            found.append(port)
    return tuple(sorted(found))


def services(roles: list[str], values: Mapping[str, Any]) -> list[Service]:
    """The services the host's roles run, in the order mail flows through them."""
    def daemon(name: str, label: str, role: str, ports: tuple[int, ...] = (),
               check: str = "") -> Service:
        return Service(name, label, role, daemons.by_name(name).units, ports, check)

    found: list[Service] = []
    if "common" in roles:
        found += [
            Service("ssh", "SSH", "common", _same("ssh.service"),
                    _ports(values.get("common__sshd_port", 22)), "sshd -t"),
            Service("unbound", "The local DNS resolver (unbound)", "common",
                    _same("unbound.service"), (), "unbound-checkconf"),
            Service("chrony", "Time synchronisation (chrony)", "common",
                    _same("chrony.service"), may_be_skipped=True),
            Service("updates", "Daily security updates", "common",
                    _same("apt-daily-upgrade.timer")),
        ]
    if "redis" in roles:
        found.append(daemon("redis", "Redis", "redis", _ports(values.get("redis__port"))))
    if "clamav" in roles:
        found.append(daemon("clamd", "ClamAV's clamd", "clamav"))
    if "rspamd" in roles:
        found.append(daemon("rspamd", "Rspamd", "rspamd",
                            _ports(values.get("rspamd__milter_bind"),
                                   values.get("rspamd__controller_bind")),
                            "rspamadm configtest"))
    if "postfix" in roles:
        # master.cf: smtp (postscreen), submission and submissions, always.
        found.append(daemon("postfix", "Postfix", "postfix", (25, 465, 587), "postfix check"))
    if "dovecot" in roles:
        found.append(daemon("dovecot", "Dovecot", "dovecot", _ports(*(
            int(values.get(f"dovecot__{name}_port") or 0)
            for name in ("imaps", "pop3s", "managesieve", "lmtp", "auth", "quota_status"))),
            "doveconf -n >/dev/null"))
    if "portal" in roles:
        found.append(daemon("nginx", "nginx (the password portal, directory and autoconfig)",
                            "portal", _ports(values.get("portal__https_port")), "nginx -t"))
        found.append(daemon("portal", "The password portal's application", "portal",
                            _ports(values.get("portal__app_port"))))
    if "lab_peer" in roles:
        found.append(Service("peer-postfix", "Postfix (the lab's foreign MTA)", "lab_peer",
                             daemons.by_name("postfix").units, (25,), "postfix check"))
        found.append(Service("nsd", "NSD (the lab's DNS)", "lab_peer", _same("nsd.service"),
                             (53,), "nsd-checkconf /etc/nsd/nsd.conf"))
    return found


def plan_for(target: Target, inventory: str, roles: list[str],
             values: Mapping[str, Any]) -> Plan:
    """What to ask `target`, from its roles and settings."""
    found = services(roles, values)
    units = sorted({u for s in found for u in s.units.values()})
    spec: dict[str, Any] = {
        "units": units,
        "ports": sorted({p for s in found for p in s.ports}),
        "disks": list(DISK_PATHS),
        "backup": {"last": BACKUP_STATE, "enabled_since": BACKUP_ENABLED_SINCE},
    }
    if "postfix" in roles or "lab_peer" in roles:
        spec["queue"] = True
    if values.get("pki__host_cert_enabled") and "pki" in roles:
        spec["certificate"] = CERTIFICATE
    if "rspamd" in roles and values.get("rspamd__controller_bind"):
        spec["rspamd_url"] = f"http://{values['rspamd__controller_bind']}/ping"
    if "clamav" in roles and values.get("clamav__clamd_socket"):
        spec["clamd_socket"] = str(values["clamav__clamd_socket"])
    return Plan(target=target, inventory=inventory, services=tuple(found), spec=spec,
                pki_mode=str(values.get("pki__mode") or "internal"),
                backup_max_age_hours=float(values.get("backup__max_age_hours")
                                           or BACKUP_MAX_AGE_HOURS))


# --- judging the facts ---------------------------------------------------------------


def _on(plan: Plan, command: str) -> str:
    return f"`{command}` on {plan.target.name}"


def _deploy(plan: Plan) -> str:
    return (f"`hopthu deploy --engine ansible --inventory {plan.inventory} "
            f"--limit {plan.target.name}`")


def _ssh_by_hand(plan: Plan) -> str:
    return " ".join(shlex.quote(a) for a in plan.target.ssh_argv) + " true"


def unreachable(plan: Plan, result: RunResult) -> Check:
    reason = (result.err.strip().splitlines() or [f"ssh exited {result.rc}"])[-1]
    where = ("is the lab up? `hopthu lab status`, then `hopthu lab up`"
             if plan.inventory == "lab" else
             "check that the host is up and on the network, and that the inventory's "
             "ansible_host, ansible_user and ansible_ssh_private_key_file are right and its "
             "host key is in the known_hosts file")
    return Check("ssh", FAIL, f"{plan.target.name} cannot be reached over SSH ({reason})",
                 f"{where}; try it by hand: {_ssh_by_hand(plan)}")


def _service(plan: Plan, service: Service, release: int, facts: Mapping[str, Any]) -> Check:
    unit = service.unit(release)
    props = (facts.get("units") or {}).get(unit)
    check_id = f"service:{service.key}"
    journal = _on(plan, f"journalctl -u {unit} -n 50")
    if props is None:
        error = facts.get("units_error") or "systemctl gave no answer"
        return Check(check_id, FAIL, f"{service.label}: systemd's state of {unit} could not "
                     f"be read ({error})", f"look at {_on(plan, f'systemctl status {unit}')}")
    load, active = props.get("LoadState", ""), props.get("ActiveState", "")
    sub, result = props.get("SubState", ""), props.get("Result", "")
    if load == "not-found":
        return Check(check_id, FAIL, f"{service.label} is not installed on {plan.target.name} "
                     f"(systemd has no {unit})",
                     f"deploy the {service.role} role: {_deploy(plan)}")
    if active != "active":
        if service.may_be_skipped and props.get("ConditionResult") == "no":
            return Check(check_id, SKIP, f"{service.label} is not started here: a condition "
                         f"of {unit} is not met (it does not run in a container, whose host "
                         "keeps the clock)")
        check = f" (check the configuration with `{service.config_check}`)" \
            if service.config_check else ""
        if result == "start-limit-hit":
            return Check(check_id, FAIL, f"{service.label} is not running: systemd gave up "
                         f"restarting {unit} after too many failures (start limit)",
                         f"read why in {journal}, fix it{check}, then "
                         f"{_on(plan, f'systemctl reset-failed {unit} && systemctl start {unit}')}")
        return Check(check_id, FAIL, f"{service.label} is not running ({unit} is {active}"
                     + (f"/{sub}" if sub else "") + (f", result {result}"
                                                      if result not in ("", "success") else "")
                     + ")",
                     f"read why in {journal}, fix it{check}, then "
                     f"{_on(plan, f'systemctl restart {unit}')}")
    answers = facts.get("ports") or {}
    silent = {p: (answers.get(str(p)) or {"listening": [], "error": "not asked"})
              for p in service.ports}
    silent = {p: a for p, a in silent.items() if a.get("error")}
    if silent:
        none = [p for p, a in silent.items() if not a.get("listening")]
        refused = [p for p, a in silent.items() if a.get("listening")]
        parts = []
        if none:
            parts.append("nothing listens on port" + ("s " if len(none) > 1 else " ")
                         + ", ".join(map(str, none)))
        if refused:
            parts.append("a connection from the host itself fails ("
                         + "; ".join(str(silent[p]["error"]) for p in refused) + ")")
        check = f"check the configuration with {_on(plan, service.config_check)}, " \
            if service.config_check else ""
        return Check(check_id, FAIL, f"{service.label} is running ({unit}) but "
                     + " and ".join(parts),
                     f"{check}read {journal}, then {_on(plan, f'systemctl restart {unit}')}; "
                     f"if the configuration is not hopthu's, deploy again: {_deploy(plan)}")
    on_ports = ""
    if service.ports:
        on_ports = (" and answers on port" + ("s " if len(service.ports) > 1 else " ")
                    + ", ".join(map(str, service.ports)))
    what = "are on" if unit.endswith(".timer") else "is running"
    return Check(check_id, OK, f"{service.label} {what} ({unit}){on_ports}")


def _rspamd(plan: Plan, facts: Mapping[str, Any]) -> Check:
    url = plan.spec["rspamd_url"]
    error = facts.get("rspamd", "not asked")
    if not error:
        return Check("rspamd", OK, f"Rspamd answers on its controller ({url}: pong)")
    return Check("rspamd", FAIL, f"Rspamd does not answer on its controller ({error})",
                 "while Rspamd does not answer, Postfix refuses mail with 451 4.7.1 "
                 "(milter_default_action = tempfail) and senders retry: read "
                 f"{_on(plan, 'journalctl -u rspamd.service -n 50')}, check "
                 f"{_on(plan, 'rspamadm configtest')}, then "
                 f"{_on(plan, 'systemctl restart rspamd.service')}")


def _clamd(plan: Plan, facts: Mapping[str, Any]) -> Check:
    path = plan.spec["clamd_socket"]
    error = facts.get("clamd", "not asked")
    if not error:
        return Check("clamd", OK, f"ClamAV's clamd answers PING on {path}")
    return Check("clamd", FAIL, f"ClamAV's clamd does not answer on {path} ({error})",
                 "while clamd does not answer, Rspamd refuses mail with attachments with "
                 "451 4.7.1 (CLAM_VIRUS_FAIL) and senders retry: read "
                 f"{_on(plan, 'journalctl -u clamav-daemon.service -n 50')}; clamd needs a "
                 "signature database (clamav__custom_signatures, or a private mirror in "
                 "clamav__freshclam_private_mirrors); then "
                 f"{_on(plan, 'systemctl restart clamav-daemon.service')}")


def _queue(plan: Plan, facts: Mapping[str, Any], queue_max: int) -> Check:
    queue = facts.get("queue") or {"error": "not asked"}
    if "error" in queue:
        return Check("queue", FAIL, f"Postfix's mail queue could not be read ({queue['error']})",
                     f"is Postfix running? see {_on(plan, 'systemctl status postfix.service')}")
    total, deferred = int(queue.get("total", 0)), int(queue.get("deferred", 0))
    held = f"{total} message{'' if total == 1 else 's'} ({deferred} deferred)"
    if total > queue_max:
        return Check("queue", FAIL, f"Postfix's mail queue holds {held}, more than {queue_max}",
                     f"see why they wait with {_on(plan, 'postqueue -p')} (the reason is in "
                     "parentheses after each recipient) and fix it: the next hop or DNS, "
                     "or Dovecot's LMTP; then "
                     f"{_on(plan, 'postqueue -f')} sends them again")
    return Check("queue", OK, f"Postfix's mail queue holds {held}; the limit is {queue_max}")


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _certificate(plan: Plan, facts: Mapping[str, Any], now: dt.datetime) -> Check:
    answer = facts.get("certificate") or {"error": "not asked"}
    if plan.pki_mode == "provided":
        renew = ("put the renewed certificate at pki__cert_file (and its key at "
                 f"pki__key_file), then deploy: {_deploy(plan)}")
    else:
        renew = ("hopthu's internal CA issues a new one at the next deploy: "
                 f"{_deploy(plan)}")
    if answer.get("error") == "missing":
        return Check("certificate", FAIL, f"The host certificate {CERTIFICATE} is missing",
                     f"deploy the pki role: {_deploy(plan)}")
    if "error" in answer:
        return Check("certificate", FAIL, f"The host certificate {CERTIFICATE} could not be "
                     f"read ({answer['error']})", f"deploy the pki role again: {_deploy(plan)}")
    try:
        cert = x509.load_pem_x509_certificate(str(answer["pem"]).encode())
    except ValueError as exc:
        return Check("certificate", FAIL, f"The host certificate {CERTIFICATE} is not a "
                     f"certificate ({exc})", f"deploy the pki role again: {_deploy(plan)}")
    until = cert.not_valid_after_utc
    left = (until - now) // dt.timedelta(days=1)
    on = until.strftime("%Y-%m-%d")
    if until <= now:
        return Check("certificate", FAIL, f"The TLS certificate {CERTIFICATE} expired on {on}: "
                     "clients and other servers refuse it", f"renew it now: {renew}")
    if left <= CERT_WARN_DAYS:
        return Check("certificate", WARN, f"The TLS certificate {CERTIFICATE} expires in "
                     f"{_days(left)} (on {on}), within {CERT_WARN_DAYS} days",
                     f"renew it: {renew}")
    return Check("certificate", OK, f"The TLS certificate {CERTIFICATE} has {_days(left)} "
                 f"left (until {on})")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _disks(plan: Plan, facts: Mapping[str, Any]) -> list[Check]:
    checks = []
    for disk in facts.get("disks") or []:
        mount, used = str(disk["mount"]), float(disk["used_percent"])
        free = _size(float(disk.get("free_bytes", 0)))
        check_id = f"disk:{mount}"
        if used > DISK_MAX_PERCENT:
            checks.append(Check(
                check_id, FAIL, f"The disk of {mount} is {used:.0f}% full ({free} free), "
                f"over {DISK_MAX_PERCENT}%",
                f"see what grows with {_on(plan, f'du -xh -d 2 {mount} | sort -h | tail')}; "
                "a full disk stops Postfix accepting mail and Dovecot delivering it. The "
                "journal is kept a year (Art. 11.5) and mailboxes have quotas: give the "
                "filesystem more space rather than deleting them"))
        else:
            checks.append(Check(check_id, OK, f"The disk of {mount} is {used:.0f}% full "
                                f"({free} free)"))
    return checks


def _backup(plan: Plan, facts: Mapping[str, Any], now: dt.datetime) -> Check:
    """The infra suite's rule (hopthu/backup/freshness.py), on what the probe read."""
    found = facts.get("backup") or {}
    state, since = found.get("last"), found.get("enabled_since")
    if state is None and since is None:
        return Check("backup", SKIP, f"No backups are set up on this host (no {BACKUP_STATE}): "
                     "not checked")
    for name, value in ((BACKUP_STATE, state), (BACKUP_ENABLED_SINCE, since)):
        if isinstance(value, dict) and set(value) == {"error"}:
            logs = _on(plan, "journalctl -u hopthu-backup.service -n 50")
            run = _on(plan, "systemctl start hopthu-backup.service")
            return Check("backup", FAIL, f"The backup state {name} could not be read "
                         f"({value['error']})", f"read {logs} and run a backup: {run}")
    verdict = freshness.judge(state if isinstance(state, dict) else None,
                              None if since is None else str(since), now,
                              plan.backup_max_age_hours, plan.target.name)
    level = {freshness.OK: OK, freshness.WARN: WARN, freshness.FAIL: FAIL}[verdict.state]
    return Check("backup", level, verdict.message, verdict.fix)


def judge(plan: Plan, result: RunResult, *, queue_max: int = QUEUE_MAX) -> HostStatus:
    """The host's status lines from the probe's answer (or from why there is none)."""
    target = plan.target
    base = {"name": target.name, "address": target.address, "groups": target.groups}
    if target.error:
        return HostStatus(**base, reached=False, checks=(Check(
            "settings", FAIL, f"{target.name} was not checked: {target.error}"),))
    if result.rc == 255:
        return HostStatus(**base, reached=False, checks=(unreachable(plan, result),))
    try:
        facts = json.loads(result.out.strip().splitlines()[-1]) if result.out.strip() else None
    except ValueError:
        facts = None
    if result.rc != 0 or not isinstance(facts, dict):
        reason = (result.err.strip().splitlines() or [f"exit status {result.rc}"])[-1]
        return HostStatus(**base, reached=True, checks=(Check(
            "probe", FAIL, f"The status program did not run on {target.name} ({reason})",
            "`hopthu status` needs python3 on the host (the common role installs it) and "
            "root: ansible_user root, or ansible_become with sudo that asks no password"),))
    now = dt.datetime.fromtimestamp(float(facts.get("now") or 0), tz=dt.UTC) \
        if facts.get("now") else dt.datetime.now(dt.UTC)
    checks: list[Check] = []
    version = str(facts.get("release") or "")
    release = int(version) if version.isdigit() else max(daemons.RELEASES)
    if release not in daemons.RELEASES:
        checks.append(Check("release", WARN, f"Debian {version or '(unknown)'} is not a "
                            "release hopthu supports; the units are looked up as on Debian "
                            f"{max(daemons.RELEASES)}",
                            "run the hosts on Debian "
                            + " or ".join(map(str, daemons.RELEASES))))
        release = max(daemons.RELEASES)
    checks += [_service(plan, s, release, facts) for s in plan.services]
    if plan.spec.get("rspamd_url"):
        checks.append(_rspamd(plan, facts))
    if plan.spec.get("clamd_socket"):
        checks.append(_clamd(plan, facts))
    if plan.spec.get("queue"):
        checks.append(_queue(plan, facts, queue_max))
    if plan.spec.get("certificate"):
        checks.append(_certificate(plan, facts, now))
    checks += _disks(plan, facts)
    if plan.spec.get("backup"):
        checks.append(_backup(plan, facts, now))
    return HostStatus(**base, reached=True, release=version, checks=tuple(checks))
