"""Every mail daemon restarts by itself, with the ministry's delay and start limit (Art. 11.1).

hopthu/daemons.py lists the daemons, their units on Debian 12 and 13, and the
template that sets each one's restart policy. Offline, here:

- each template renders the policy from the settings: Restart= as listed,
  RestartSec= from its setting, the start limit in [Unit] (systemd.unit(5));
- Postfix's drop-in names the master's PID file, on both releases, so that
  systemd knows the process it must watch;
- every unit file a role writes under /etc/systemd/system is a listed
  daemon's (or clamd's socket), or a scheduled job's (a timer and the
  one-shot service it starts, which has no daemon to restart); each listed
  template is written by its role, and only on the release it is for;
- in both engines a changed unit file is followed by a daemon-reload before
  the unit is started, and only a change triggers it (a second run changes
  nothing).

What systemd makes of the files on a host is tests/infra/test_self_healing.py;
that a killed daemon comes back is tests/lab/test_self_healing.py.
"""

from __future__ import annotations

import ast
from functools import cache
from typing import Any

import jinja2
import pytest
import yaml

from hopthu import ROOT
from hopthu import inventory as inventory_mod
from hopthu.daemons import (
    DAEMONS,
    RELEASES,
    Daemon,
    heal_bound,
    parse_timespan,
    parse_unit_file,
)
from hopthu.render import render
from hopthu.settings import load_host

#: clamd's socket unit: its drop-in sets the socket's path, not a restart policy.
CLAMD_SOCKET_DROP_IN = "/etc/systemd/system/clamav-daemon.socket.d/hopthu.conf"
#: Where the Postfix master writes its PID (queue_directory/pid/master.pid).
POSTFIX_PID_FILE = "/var/spool/postfix/pid/master.pid"


@cache
def settings(inventory: str, host: str, release: int, **override: Any) -> dict[str, Any]:
    extra = {"common__debian_major": release, **override}
    return dict(load_host(inventory, host, extra_vars=extra).values)


def hosts_running(daemon: Daemon) -> list[tuple[str, str]]:
    """(inventory, host) of every lab and production host that runs `daemon`."""
    found = []
    for name in ("lab", "production"):
        inv = inventory_mod.load(name)
        found += [(name, host) for host in inv.hosts_in(daemon.group)]
    return found


def policy(daemon: Daemon, values: dict[str, Any], release: int) -> dict[str, dict[str, str]]:
    return parse_unit_file(render(daemon.template(release), values))


CASES = [
    pytest.param(daemon, release, inv, host, id=f"{daemon.name}-debian{release}-{inv}-{host}")
    for daemon in DAEMONS for release in RELEASES for inv, host in hosts_running(daemon)
]


# --- The rendered policy ----------------------------------------------------------------


@pytest.mark.control("ART11-1-UPTIME")
@pytest.mark.parametrize(("daemon", "release", "inventory", "host"), CASES)
def test_each_daemons_restart_policy_comes_from_the_settings(
    daemon: Daemon, release: int, inventory: str, host: str
) -> None:
    values = settings(inventory, host, release)
    unit = policy(daemon, values, release)
    service, unit_section = unit.get("Service", {}), unit.get("Unit", {})
    assert service.get("Restart") == daemon.restart, (
        f"{daemon.template(release)}: Restart={service.get('Restart')}, but hopthu/daemons.py "
        f"lists {daemon.restart} for {daemon.name}"
    )
    assert parse_timespan(service["RestartSec"]) == values[daemon.restart_setting], (
        f"{daemon.template(release)}: RestartSec={service['RestartSec']} is not "
        f"{daemon.restart_setting} = {values[daemon.restart_setting]}"
    )
    assert unit_section.get("StartLimitBurst") == str(values["hopthu__service_start_limit_burst"])
    assert parse_timespan(unit_section["StartLimitIntervalSec"]) == values[
        "hopthu__service_start_limit_interval_sec"]
    misplaced = sorted(k for k in service if k.startswith("StartLimit"))
    assert not misplaced, (
        f"{daemon.template(release)}: {misplaced} in [Service]; the start limit belongs in "
        "[Unit] (systemd.unit(5)), where systemd 230 and later read it"
    )


@pytest.mark.parametrize("daemon", DAEMONS, ids=[d.name for d in DAEMONS])
@pytest.mark.parametrize("release", RELEASES)
def test_a_changed_policy_reaches_every_daemon(daemon: Daemon, release: int) -> None:
    values = settings("lab", "mail1", release, hopthu__service_restart_sec=7,
                      hopthu__service_start_limit_burst=3,
                      hopthu__service_start_limit_interval_sec=120, clamav__restart_sec=9)
    unit = policy(daemon, values, release)
    expected = 9 if daemon.restart_setting == "clamav__restart_sec" else 7
    assert parse_timespan(unit["Service"]["RestartSec"]) == expected
    assert (unit["Unit"]["StartLimitBurst"], unit["Unit"]["StartLimitIntervalSec"]) == (
        "3", "120s")


@pytest.mark.parametrize("release", RELEASES)
def test_postfixs_drop_in_names_the_masters_pid_file(release: int) -> None:
    # Without it systemd does not know the master on Debian 12 (postfix@.service
    # has GuessMainPID=no) and only guesses it on Debian 13: a killed master must
    # be a dead main process for Restart= to act on.
    postfix = next(d for d in DAEMONS if d.name == "postfix")
    unit = policy(postfix, settings("lab", "mail1", release), release)
    assert unit["Service"].get("PIDFile") == POSTFIX_PID_FILE


def test_postfix_runs_in_a_different_unit_on_each_release() -> None:
    postfix = next(d for d in DAEMONS if d.name == "postfix")
    assert postfix.unit(12) == "postfix@-.service"
    assert postfix.unit(13) == "postfix.service"
    with pytest.raises(ValueError, match="no unit for Debian 11"):
        postfix.unit(11)


# --- The roles write exactly these files, each on its release ------------------------------


def role_tasks(role: str) -> list[dict[str, Any]]:
    path = ROOT / "roles" / role / "tasks" / "main.yml"
    return [t for t in yaml.safe_load(path.read_text(encoding="utf-8")) or []
            if isinstance(t, dict)]


def unit_file_tasks() -> list[tuple[str, dict[str, Any]]]:
    """(role, task) of every template task that writes under /etc/systemd/system."""
    found = []
    for path in sorted((ROOT / "roles").glob("*/tasks/main.yml")):
        role = path.parent.parent.name
        for task in role_tasks(role):
            args = task.get("ansible.builtin.template")
            if isinstance(args, dict) and str(args.get("dest", "")).startswith(
                    "/etc/systemd/system/"):
                found.append((role, task))
    return found


def applies_on(task: dict[str, Any], release: int) -> bool:
    """Whether the task's `when:` holds on a host of `release` (outside check mode)."""
    conditions = task.get("when")
    if conditions is None:
        return True
    env = jinja2.Environment()
    for condition in conditions if isinstance(conditions, list) else [conditions]:
        if not env.compile_expression(str(condition))(common__debian_major=release,
                                                      ansible_check_mode=False):
            return False
    return True


#: Unit files a role writes that are no daemon's restart policy, besides the
#: scheduled jobs below: clamd's socket drop-in.
NOT_A_DAEMON = {
    ("clamav", CLAMD_SOCKET_DROP_IN),
}


def is_scheduled_job(task: dict[str, Any]) -> bool:
    """A timer, or the one-shot service a timer starts (roles/backup, and the rspamd
    role's filter health collector, roles/rspamd/README.md "Metrics"): no daemon runs
    there to restart; a failed run stays failed, where the infra suite sees it."""
    args = task["ansible.builtin.template"]
    if str(args["dest"]).endswith(".timer"):
        return True
    source = (ROOT / "templates" / str(args["src"])).read_text(encoding="utf-8")
    return "\nType=oneshot\n" in source


def test_every_scheduled_job_is_a_one_shot_service_with_its_timer() -> None:
    jobs = {task["ansible.builtin.template"]["dest"] for _role, task in unit_file_tasks()
            if is_scheduled_job(task)}
    services = {d for d in jobs if d.endswith(".service")}
    assert services, "no scheduled job found (roles/backup writes three)"
    assert {d.removesuffix(".service") + ".timer" for d in services} == jobs - services


def test_every_unit_file_a_role_writes_is_a_listed_daemons_policy() -> None:
    written = {(role, task["ansible.builtin.template"]["dest"]) for role, task in unit_file_tasks()
               if not is_scheduled_job(task)}
    listed = {(d.role, d.path(r)) for d in DAEMONS for r in RELEASES}
    assert written - NOT_A_DAEMON == listed, (
        "the unit files the roles write and hopthu/daemons.py differ: "
        f"only in roles: {sorted(written - listed)}; only in the list: {sorted(listed - written)}"
    )


@pytest.mark.parametrize("daemon", DAEMONS, ids=[d.name for d in DAEMONS])
@pytest.mark.parametrize("release", RELEASES)
def test_each_policy_is_written_on_the_release_it_is_for_and_only_there(
    daemon: Daemon, release: int
) -> None:
    tasks = [task for role, task in unit_file_tasks() if role == daemon.role]
    on_release = [t["ansible.builtin.template"]["dest"] for t in tasks if applies_on(t, release)]
    assert daemon.path(release) in on_release, (
        f"roles/{daemon.role} does not write {daemon.path(release)} on Debian {release}")
    others = {daemon.path(r) for r in RELEASES} - {daemon.path(release)}
    assert not others & set(on_release), (
        f"roles/{daemon.role} also writes {sorted(others & set(on_release))} on Debian "
        f"{release}, the other release's unit")


# --- A changed unit file is reloaded before the unit starts, and only then ---------------------


def _is_reload(task: dict[str, Any]) -> bool:
    args = task.get("ansible.builtin.systemd_service")
    return isinstance(args, dict) and args.get("daemon_reload") is True


def _starts_a_unit(task: dict[str, Any]) -> bool:
    args = task.get("ansible.builtin.systemd_service")
    return isinstance(args, dict) and args.get("state") == "started"


@pytest.mark.parametrize("role", sorted({role for role, _ in unit_file_tasks()}))
def test_ansible_reloads_systemd_after_a_unit_file_change_before_starting_units(role: str) -> None:
    tasks = role_tasks(role)
    for index, task in enumerate(tasks):
        args = task.get("ansible.builtin.template")
        if not (isinstance(args, dict) and str(args["dest"]).startswith("/etc/systemd/system/")):
            continue
        register = task.get("register")
        assert register, f"roles/{role}: {task['name']!r} must register its result for the reload"
        later = tasks[index + 1:]
        reload = next((t for t in later if _is_reload(t)), None)
        assert reload is not None, f"roles/{role}: no daemon-reload after {task['name']!r}"
        when = str(reload.get("when", ""))
        assert f"{register} is changed" in when, (
            f"roles/{role}: {reload['name']!r} must run only when {register} changed, so a "
            f"second run reloads nothing; its when: {when!r}"
        )
        first_start = next((t for t in later if _starts_a_unit(t)), None)
        assert first_start is None or later.index(reload) < later.index(first_start), (
            f"roles/{role}: {first_start and first_start['name']!r} starts a unit before "
            f"{reload['name']!r} has loaded the new unit file"
        )


def _deploy_apply(role: str) -> ast.FunctionDef:
    path = ROOT / "hopthu" / "deploys" / f"{role}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "apply")


def _call_name(call: ast.Call) -> str:
    return ast.unparse(call.func)


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


@pytest.mark.parametrize("role", sorted({role for role, _ in unit_file_tasks()}))
def test_pyinfra_reloads_systemd_after_a_unit_file_change_before_starting_units(
    role: str,
) -> None:
    apply = _deploy_apply(role)
    written: dict[str, int] = {}  # variable -> line of the put_template that sets it
    for node in ast.walk(apply):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and _call_name(node.value) == "put_template"):
            dest = _keyword(node.value, "dest")
            if isinstance(dest, ast.Constant) and str(dest.value).startswith(
                    "/etc/systemd/system/"):
                written[ast.unparse(node.targets[0])] = node.lineno
    assert written, f"hopthu/deploys/{role}.py writes no unit file, but roles/{role} does"
    calls = sorted((n for n in ast.walk(apply) if isinstance(n, ast.Call)),
                   key=lambda n: (n.lineno, n.col_offset))
    reloads = [c for c in calls if _call_name(c) == "systemd.daemon_reload"]
    starts = [c for c in calls if _call_name(c) == "systemd.service"
              and isinstance(_keyword(c, "name"), ast.Constant)
              and str(_keyword(c, "name").value).startswith("Enable and start")]  # type: ignore[union-attr]
    for variable, line in written.items():
        reload = next((c for c in reloads if c.lineno > line), None)
        assert reload is not None, f"hopthu/deploys/{role}.py: no daemon_reload after {variable}"
        condition = _keyword(reload, "_if")
        assert condition is not None and variable in {
            n.id for n in ast.walk(condition) if isinstance(n, ast.Name)}, (
            f"hopthu/deploys/{role}.py:{reload.lineno}: the daemon_reload must run only when "
            f"{variable} changed (_if=...), so a second run reloads nothing"
        )
        first_start = next((c for c in starts if c.lineno > line), None)
        assert first_start is None or reload.lineno < first_start.lineno, (
            f"hopthu/deploys/{role}.py:{first_start and first_start.lineno}: a unit is started "
            "before the daemon_reload has loaded the new unit file"
        )


def test_a_changed_postfix_drop_in_restarts_postfix_in_both_engines() -> None:
    # systemd reads PIDFile= only when the unit starts.
    for _role, task in unit_file_tasks():
        if "postfix" in task["ansible.builtin.template"]["dest"]:
            assert task.get("notify") == "Restart Postfix", task["name"]
    apply = _deploy_apply("postfix")
    restart = next(c for c in ast.walk(apply) if isinstance(c, ast.Call)
                   and isinstance(_keyword(c, "name"), ast.Constant)
                   and _keyword(c, "name").value == "Restart Postfix")  # type: ignore[union-attr]
    assert ast.unparse(_keyword(restart, "_if")) == "dropin.did_change"  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "expected"), [("postfix", 50), ("rspamd", 50), ("clamd", 75),
                                                ("redis", 210), ("portal", 50)])
def test_the_healing_bound_follows_the_stop_timeout_and_the_restart_delay(
        name: str, expected: int) -> None:
    """Twice the stop timeout (after SIGTERM, again after SIGKILL), the restart
    delay and the start allowance; Redis keeps systemd's 90 s stop timeout."""
    values = settings("lab", "mail1", 13)
    daemon = next(d for d in DAEMONS if d.name == name)
    assert heal_bound(daemon, values) == expected
    stop = "TimeoutStopSec" in policy(daemon, values, 13).get("Service", {})
    assert stop == (daemon.stop_setting is not None), (
        f"{daemon.template(13)} and hopthu.daemons disagree on whether {name} has its own "
        "stop timeout")
