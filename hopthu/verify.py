"""`hopthu verify`: run the infra suite (tests/infra) against an inventory.

The suite is a product (DESIGN.md §6): operators run it against production
as well as the lab. It is read-only unless ``--allow-intrusive`` is given.
It writes JUnit XML in which every test carries its decree controls as
``<property name="control" value="ART…"/>``, plus ``host`` and
``inventory``, so `hopthu audit` can join the run with
compliance/controls.yml. Evidence files (Lynis results) go beside it.

The exit code is pytest's: 0 all passed, 1 some failed, 2 interrupted or a
usage error, 5 no test selected.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from hopthu import ROOT
from hopthu import inventory as inventory_mod

SUITE = ROOT / "tests" / "infra"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", "-i", default="lab",
        help="environment name (lab, staging, production) or a hosts.yml; default: lab",
    )
    parser.add_argument(
        "--allow-intrusive", action="store_true",
        help="also run the checks that change state on the hosts (skipped by default)",
    )
    parser.add_argument(
        "--junit", metavar="FILE", type=Path,
        help="where to write the JUnit XML; default: reports/<inventory>/infra-junit.xml",
    )
    parser.add_argument("-k", metavar="EXPR", dest="keyword",
                        help="only the tests matching EXPR (pytest -k)")
    parser.add_argument("--host", action="append", default=[], metavar="HOST",
                        help="only this inventory host (repeatable)")
    parser.add_argument("--lynis-min-index", type=int, metavar="N",
                        help="the lowest Lynis hardening index allowed "
                        "(default from tests/infra/suite.yml)")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="after --: more arguments for pytest")


def pytest_command(args: argparse.Namespace, env_name: str) -> tuple[list[str], Path]:
    reports = ROOT / "reports" / env_name
    junit = (args.junit or reports / "infra-junit.xml").resolve()
    cmd = [
        sys.executable, "-m", "pytest", str(SUITE),
        "--inventory", str(args.inventory),
        "--reports-dir", str(reports),
        f"--junitxml={junit}",
        # xunit1 keeps <properties> inside each <testcase>, where the
        # control IDs must be (xunit2 drops per-test properties).
        "-o", "junit_family=xunit1",
        "-o", f"junit_suite_name=hopthu-infra-{env_name}",
        "-p", "no:cacheprovider",
        "-rfEs",
        # The assertion messages say what is wrong and what to do; locals add noise.
        "--tb=short",
    ]
    if args.allow_intrusive:
        cmd.append("--allow-intrusive")
    for host in args.host:
        cmd += ["--host", host]
    if args.keyword:
        cmd += ["-k", args.keyword]
    if args.lynis_min_index is not None:
        cmd += ["--lynis-min-index", str(args.lynis_min_index)]
    if args.verbose:
        cmd.append("-" + "v" * args.verbose)
    extra = list(args.pytest_args or [])
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return cmd + extra, junit


def run(args: argparse.Namespace) -> int:
    try:
        inv = inventory_mod.load_selecting(args.inventory, args.host)
    except inventory_mod.InventoryError as exc:
        print(f"hopthu verify: {exc}", file=sys.stderr)
        return 2
    cmd, junit = pytest_command(args, inv.name)
    junit.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Run from the checkout, so `hopthu`, filter_plugins/ and templates/ are
    # this checkout's, whatever the current directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"hopthu verify: checking {inv.name} ({', '.join(args.host or inv.hosts)})"
          + (" including intrusive checks" if args.allow_intrusive else ", read-only"),
          flush=True)
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    print(f"hopthu verify: JUnit XML with control IDs: {junit}"
          + (f"; evidence in {junit.parent}" if junit.exists() else ""))
    return code
