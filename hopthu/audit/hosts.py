"""Facts about the inventory's hosts, read over SSH, for the report's header.

For each host: whether it could be reached, its OS and kernel, the installed
version of every package its roles install (the ``<role>__packages``
settings, so the list is the deploy's own), the managed files hopthu wrote
(found by their fingerprint, hopthu/manifest.py) with one digest over them,
and the last record of the accounts audit log.

What the hosts do not record is said as such. The deploys stamp no commit
on a host: managed files carry their role and template only, so a second
deploy changes nothing (STYLE.md habit 5). Which code a host runs is proven
instead by the infra suite's test_managed_files_are_exactly_what_the_code_renders
in a run whose JUnit names its commit (`join` puts the two together).

The hosts are reached the way Ansible reaches them: ``ssh`` with the
inventory's ``ansible_*`` connection settings (hopthu/accounts/command.py
`ssh_argv`; host key checking is never turned off) and ``sudo -n`` when the
login is not root (``ansible_become``). Everything is read-only. `gather`
takes the runner as an argument, so tests give it a fake.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from hopthu import manifest
from hopthu.inventory import Inventory

MARK = "@@hopthu-audit "
SSH_TIMEOUT = 180
#: The accounts audit log the user database tool appends to (roles/userdb).
ACCOUNTS_LOG = "/var/log/hopthu/accounts.log"


class RunResult(NamedTuple):
    rc: int
    out: str
    err: str


@dataclass(frozen=True)
class Target:
    """A host to read, and how to reach it."""

    name: str
    address: str
    groups: tuple[str, ...]
    #: ssh and its options up to the host, without a remote command.
    ssh_argv: tuple[str, ...] = ()
    #: run the script through sudo -n (a non-root login with ansible_become).
    become: bool = False
    packages: tuple[str, ...] = ()
    #: why the host cannot be read (its settings did not load)
    error: str = ""


@dataclass(frozen=True)
class HostFacts:
    name: str
    address: str
    groups: tuple[str, ...]
    reached: bool
    #: why the host was not reached, or why nothing was read
    error: str = ""
    os: str = ""
    debian_version: str = ""
    kernel: str = ""
    #: (package, version); version "not installed" when dpkg does not have it
    packages: tuple[tuple[str, str], ...] = ()
    managed_files: int | None = None
    managed_digest: str = ""
    last_accounts_change: str = ""
    notes: tuple[str, ...] = field(default=())


Runner = Callable[[Target, str], RunResult]


def targets(inventory: Inventory) -> list[Target]:
    """Every host of the inventory, with its SSH command from its settings."""
    from hopthu import settings as settings_mod  # late: the model takes a moment to load

    found = []
    for name in inventory.hosts:
        try:
            loaded = settings_mod.load_host(inventory.path, name)
        except Exception as exc:  # noqa: BLE001 - reported in the report, per host
            found.append(unloaded(inventory, name, exc))
            continue
        found.append(target_from(inventory, name, loaded))
    return found


def unloaded(inventory: Inventory, name: str, exc: Exception) -> Target:
    """A host whose settings did not load: it cannot be reached, and says why."""
    return Target(name, inventory.hosts[name].address, tuple(inventory.host_groups(name)),
                  error=f"its settings did not load ({exc}); run "
                  f"`hopthu settings check --inventory {inventory.name}`")


def target_from(inventory: Inventory, name: str, loaded: Any) -> Target:
    """How to reach `name`, from its loaded settings (hopthu.settings.Settings)."""
    from hopthu.accounts.command import ssh_argv

    values: dict[str, Any] = loaded.values
    packages: list[str] = []
    for role in loaded.roles:
        packages += [str(p) for p in values.get(f"{role}__packages") or []]
    packages += [str(p) for p in values.get("common__packages_extra") or []]
    user = str(values.get("ansible_user") or "root")
    return Target(
        name=name, groups=tuple(inventory.host_groups(name)),
        address=str(values.get("ansible_host", inventory.hosts[name].address)),
        ssh_argv=tuple(ssh_argv(loaded)),
        become=user != "root" and bool(values.get("ansible_become")),
        packages=tuple(sorted(set(packages))),
    )


def ssh_run(target: Target, script: str, timeout: int = SSH_TIMEOUT) -> RunResult:
    """Run `script` with sh on the host; ssh's own failures give rc 255."""
    remote = "sudo -n sh -s" if target.become else "sh -s"
    try:
        done = subprocess.run([*target.ssh_argv, remote], input=script, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return RunResult(255, "", f"no answer within {timeout} s")
    except OSError as exc:
        return RunResult(255, "", f"cannot run ssh: {exc}")
    return RunResult(done.returncode, done.stdout, done.stderr)


def script(packages: tuple[str, ...]) -> str:
    """The read-only POSIX shell script that prints the facts, section by section."""
    query = ("dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' "
             + " ".join(shlex.quote(p) for p in packages) + " 2>/dev/null") if packages else ":"
    return "\n".join([
        f"echo '{MARK}os'", "cat /etc/os-release 2>/dev/null",
        f"echo '{MARK}debian_version'", "cat /etc/debian_version 2>/dev/null",
        f"echo '{MARK}kernel'", "uname -r",
        f"echo '{MARK}packages'", query,
        f"echo '{MARK}accounts_log'", f"tail -n 1 {ACCOUNTS_LOG} 2>/dev/null",
        f"echo '{MARK}manifest'", manifest.remote_script(),
        f"echo '{MARK}end'",
        "",
    ])


def _sections(out: str) -> dict[str, str]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith(MARK):
            current = line[len(MARK):].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def _os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            try:
                values[key.strip()] = " ".join(shlex.split(value))
            except ValueError:
                values[key.strip()] = value.strip().strip('"')
    return values


def _accounts_change(line: str) -> str:
    if not line:
        return ""
    try:
        record = json.loads(line)
    except ValueError:
        return f"unreadable record: {line[:120]}"
    if not isinstance(record, dict):
        return f"unreadable record: {line[:120]}"
    return (f"{record.get('time', '?')}: {record.get('operation', '?')} "
            f"{record.get('address', '')} by {record.get('operator') or '?'}, registry commit "
            f"{record.get('commit') or '?'}").replace("  ", " ")


def parse(target: Target, result: RunResult) -> HostFacts:
    sections = _sections(result.out)
    if result.rc == 255 or "os" not in sections:
        reason = (result.err.strip().splitlines() or [f"exit status {result.rc}"])[-1]
        return HostFacts(target.name, target.address, target.groups, reached=False,
                         error=reason)
    notes = []
    if result.rc != 0 or "end" not in sections:
        notes.append(f"the fact script stopped early (exit status {result.rc}): "
                     + (result.err.strip().splitlines() or ["no message"])[-1])
    release = _os_release(sections.get("os", ""))
    installed: dict[str, str] = {}
    for line in sections.get("packages", "").splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[2].startswith("ii"):
            installed[fields[0]] = fields[1]
    packages = tuple((p, installed.get(p, "not installed")) for p in target.packages)
    try:
        entries = manifest.parse(sections["manifest"]) if "manifest" in sections else []
    except ValueError:
        entries = []
        notes.append("the list of managed files could not be read")
    digest = ""
    if entries:
        digest = hashlib.sha256("".join(
            f"{e.path}\t{e.owner}\t{e.group}\t{e.mode}\t{e.sha256}\n" for e in entries
        ).encode()).hexdigest()
    return HostFacts(
        target.name, target.address, target.groups, reached=True,
        os=release.get("PRETTY_NAME", ""),
        debian_version=sections.get("debian_version", ""),
        kernel=sections.get("kernel", ""),
        packages=packages,
        managed_files=len(entries) if "manifest" in sections else None,
        managed_digest=digest,
        last_accounts_change=_accounts_change(sections.get("accounts_log", "")),
        notes=tuple(notes),
    )


def gather(found: list[Target], runner: Runner = ssh_run, workers: int = 8) -> list[HostFacts]:
    """Read every target (in parallel), in the inventory's order."""
    def one(target: Target) -> HostFacts:
        if target.error:
            return HostFacts(target.name, target.address, target.groups, reached=False,
                             error=target.error)
        return parse(target, runner(target, script(target.packages)))

    if not found:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(found))) as pool:
        return list(pool.map(one, found))
