"""The completeness rule (issue 7, item 5).

Every control ID of the decree is in the compliance map, and each one is
either

- implemented, with at least one test listed, of which at least one runs on
  hosts (tests/lab or tests/infra): a unit test proves the code, not the
  hosts; or
- planned or not-applicable, with a reason the report shows.

`map_problems` checks the map alone (tests/unit/test_controls.py enforces the
same in CI). The audit adds the run's half in `join`: at least one of an
implemented control's host tests passed in the given JUnit files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hopthu.audit.controls import Control

#: Where the tests live that prove a control on real hosts.
HOST_TEST_DIRS = ("tests/lab/", "tests/infra/")


def is_host_test(nodeid: str) -> bool:
    return nodeid.startswith(HOST_TEST_DIRS)


def map_problems(decree_ids: Iterable[str], controls: Mapping[str, Control]) -> list[str]:
    """What breaks the rule in the decree and the map, one sentence each."""
    decree = set(decree_ids)
    problems = [f"{cid}: in DECREE.md but not in controls.yml; add it under its article "
                "(planned, with a reason, if nothing implements it yet)"
                for cid in sorted(decree - set(controls))]
    problems += [f"{cid}: in controls.yml but not a control of DECREE.md; use the decree's IDs"
                 for cid in sorted(set(controls) - decree)]
    for cid in sorted(controls):
        control = controls[cid]
        if control.status == "implemented":
            if not control.tests:
                problems.append(f"{cid}: implemented but lists no test")
            elif not any(is_host_test(t) for t in control.tests):
                problems.append(f"{cid}: implemented but no listed test runs on hosts "
                                f"({' or '.join(HOST_TEST_DIRS)})")
        elif not control.reason.strip():
            problems.append(f"{cid}: {control.status} without a reason")
    return problems
