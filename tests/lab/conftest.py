"""Fixtures for the lab tests: a running lab, brought up if it is not.

The lab tests need root and systemd-nspawn; without them they are skipped,
not failed, so `pytest -m lab` on a laptop says why nothing ran.
"""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def lab_hosts() -> dict[str, str]:
    """The lab's hosts and their addresses, with every host up.

    `hopthu lab up` is idempotent: on a running lab this only checks SSH to
    each host (about a second).
    """
    if os.geteuid() != 0:
        pytest.skip("the lab needs root (it creates a bridge and containers)")
    if shutil.which("systemd-nspawn") is None:
        pytest.skip("the lab needs systemd-nspawn: apt-get install systemd-container")
    from hopthu import lab

    lab.up()
    return lab.inventory_hosts()


#: The order the lab modules run in. The lifecycle module comes first: its
#: opt-in teardown tests (HOPTHU_LAB_TEARDOWN=1) replace hosts, which would
#: wipe what later modules deployed. The engines module comes next: it
#: converges every host, which the mail tests after it need.
MODULE_ORDER = ("test_lab_lifecycle.py", "test_engines.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: the order inside each module is kept


@pytest.fixture(scope="session")
def ansible_converge(lab_hosts: dict[str, str]):
    """One Ansible converge of the whole lab per session (the first run of
    test_engines.py, and the precondition of every mail test)."""
    from hopthu.engines import run_engine

    return run_engine("ansible", "lab")


@pytest.fixture(scope="session")
def converged_lab(ansible_converge, lab_hosts: dict[str, str]) -> dict[str, str]:
    """The lab's hosts, converged by Ansible; fails loudly if the deploy did."""
    if not ansible_converge.ok:
        pytest.fail("the Ansible converge of the lab failed; see test_engines.py's output:\n"
                    + ansible_converge.explain())
    return lab_hosts


#: The hosts whose journal a failing lab test carries in its report.
EVIDENCE_HOSTS = ("mail1", "mail2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failing lab test, attach the mail hosts' journal for the test's
    time window: CI keeps only the console, and a lab failure without the
    daemons' own words (Postfix's dsn=, Dovecot's errors) cannot be read."""
    outcome = yield
    report = outcome.get_result()
    if report.passed or report.skipped or call.when == "teardown":
        return
    if os.geteuid() != 0:
        return
    from hopthu.lab import ssh_run
    from hopthu.lab.machines import running_pid

    since = int(call.start) - 5
    for host in EVIDENCE_HOSTS:
        if running_pid(host) is None:
            continue
        try:
            rc, out, err = ssh_run(host, f"journalctl --no-pager -o short-precise --since=@{since} "
                                         "| grep -v ' sshd\\[' | tail -n 150", timeout=30)
        except Exception as exc:  # noqa: BLE001 - evidence is best effort
            out, rc, err = "", 1, repr(exc)
        report.sections.append((f"journal of {host} since the test began ({call.when})",
                                out if rc == 0 else f"(could not read it: {err.strip()})"))
