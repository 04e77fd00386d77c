"""`hopthu status`: is every host of an inventory well, and if not, what to do (Art. 11.1).

    hopthu status --inventory production
    hopthu status --inventory lab --host mail1 --format json
    hopthu status --inventory production --queue-max 500 --parallel 4

For each host, one line per check (hopthu/status_checks.py says what is
checked and the thresholds): ✓ fine, ⚠ a warning, ✗ a failure with what to
do, – not checked and why. A host that cannot be reached is a failure that
says how to reach it by hand; the other hosts are still checked.

The hosts are reached the way `hopthu audit` reads them and Ansible deploys
them (hopthu/audit/hosts.py: ssh with the inventory's ``ansible_*``
settings, host keys always checked, ``sudo -n`` where the login is not
root), several at a time (``--parallel``, 8 by default). On each host a
read-only program (hopthu/status_probe.py) gathers the facts; nothing is
changed.

Exit status: 0 when nothing failed (warnings allowed), 1 when a check
failed or a host could not be reached, 2 when the inventory or an option is
unusable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import shlex
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from hopthu import inventory as inventory_mod
from hopthu import status_checks
from hopthu.audit import hosts
from hopthu.status_checks import FAIL, WARN, Check, HostStatus, Plan

PREFIX = "hopthu status"
#: Seconds one host may take, SSH included; the probe bounds each of its own
#: steps well below this (hopthu/status_probe.py).
HOST_TIMEOUT = 90
PARALLEL = 8
PROBE_SOURCE = Path(__file__).with_name("status_probe.py")

Runner = Callable[[hosts.Target, str], hosts.RunResult]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", "-i", default="lab",
        help="environment name (lab, staging, production) or a hosts.yml; default: lab",
    )
    parser.add_argument("--host", action="append", default=[], metavar="HOST",
                        help="only this inventory host (repeatable)")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people (default), json for programs")
    parser.add_argument("--parallel", type=int, default=PARALLEL, metavar="N",
                        help=f"check at most N hosts at a time (default {PARALLEL})")
    parser.add_argument("--queue-max", type=int, default=status_checks.QUEUE_MAX, metavar="N",
                        help="fail when Postfix's queue holds more than N messages "
                        f"(default {status_checks.QUEUE_MAX})")


def probe_script(spec: object) -> str:
    """The shell script that runs the probe on a host with its spec."""
    source = PROBE_SOURCE.read_text(encoding="utf-8")
    return f"exec python3 -c {shlex.quote(source)} {shlex.quote(json.dumps(spec))}\n"


def plans(inv: inventory_mod.Inventory, names: list[str]) -> list[Plan]:
    """What to ask each host, from its settings; a host whose settings fail says so."""
    from hopthu import settings as settings_mod  # late: the model takes a moment to load

    found = []
    for name in names:
        try:
            loaded = settings_mod.load_host(inv.path, name)
        except Exception as exc:  # noqa: BLE001 - reported on the host's own line
            found.append(Plan(hosts.unloaded(inv, name, exc), inv.name))
            continue
        target = hosts.target_from(inv, name, loaded)
        found.append(status_checks.plan_for(target, inv.name, list(loaded.roles),
                                            loaded.values))
    return found


def check_hosts(found: list[Plan], runner: Runner | None = None, *,
                parallel: int = PARALLEL,
                queue_max: int = status_checks.QUEUE_MAX) -> list[HostStatus]:
    """Every host's status, at most `parallel` at a time, in the order given."""
    run = runner or functools.partial(hosts.ssh_run, timeout=HOST_TIMEOUT)

    def one(plan: Plan) -> HostStatus:
        try:
            if plan.target.error:
                return status_checks.judge(plan, hosts.RunResult(0, "", ""))
            result = run(plan.target, probe_script(plan.spec))
            return status_checks.judge(plan, result, queue_max=queue_max)
        except Exception as exc:  # noqa: BLE001 - one host's surprise must not hide the others
            target = plan.target
            return HostStatus(target.name, target.address, target.groups, reached=False,
                              checks=(Check("status", FAIL, f"{target.name} could not be "
                                            f"checked: {type(exc).__name__}: {exc}",
                                            "run `hopthu status` again for this host "
                                            f"(--host {target.name}); if it repeats, report "
                                            "it with this message"),))

    if not found:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(found)))) as pool:
        return list(pool.map(one, found))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(statuses: list[HostStatus]) -> str:
    bad = [s for s in statuses if not s.ok]
    warned = [s for s in statuses if s.ok and s.count(WARN)]
    parts = [f"{_plural(len(statuses) - len(bad), 'host')} without failures"
             + (f" ({len(warned)} with warnings)" if warned else "")]
    if bad:
        parts.append(f"{len(bad)} with failures: " + ", ".join(
            f"{s.name} ({'unreachable' if not s.reached else _plural(s.count(FAIL), 'failure')})"
            for s in bad))
    return "; ".join(parts)


def render_text(inventory: str, statuses: list[HostStatus]) -> str:
    lines = [f"{PREFIX}: {inventory}, {_plural(len(statuses), 'host')}"]
    for status in statuses:
        about = ", ".join(status.groups) or "no group"
        release = f", Debian {status.release}" if status.release else ""
        lines += ["", f"{status.name} ({status.address}; {about}{release})"]
        lines += [f"  {check.line()}" for check in status.checks]
    result = "OK" if all(s.ok for s in statuses) else "FAILED"
    lines += ["", f"{PREFIX}: {result}: {summary(statuses)}"]
    return "\n".join(lines)


def render_json(inventory: str, statuses: list[HostStatus]) -> str:
    return json.dumps({
        "inventory": inventory,
        "checked_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ok": all(s.ok for s in statuses),
        "summary": summary(statuses),
        "hosts": [asdict(s) | {"ok": s.ok} for s in statuses],
    }, ensure_ascii=False, indent=2)


def run(args: argparse.Namespace, runner: Runner | None = None) -> int:
    try:
        inv = inventory_mod.load_selecting(args.inventory, args.host)
    except inventory_mod.InventoryError as exc:
        print(f"{PREFIX}: {exc}", file=sys.stderr)
        return 2
    if args.parallel < 1 or args.queue_max < 0:
        print(f"{PREFIX}: --parallel must be 1 or more and --queue-max 0 or more "
              f"(got {args.parallel} and {args.queue_max})", file=sys.stderr)
        return 2
    names = [n for n in inv.hosts if not args.host or n in args.host]
    statuses = check_hosts(plans(inv, names), runner, parallel=args.parallel,
                           queue_max=args.queue_max)
    render = render_json if args.format == "json" else render_text
    print(render(inv.name, statuses))
    return 0 if all(s.ok for s in statuses) else 1
