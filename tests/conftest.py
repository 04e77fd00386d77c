"""The `control` marker's plumbing, for every test directory (unit, infra, lab).

A check that proves a decree control carries its ID:
``@pytest.mark.control("ART11-5-HARDEN")`` (several marks for several
controls). Each ID is copied into the test's JUnit ``<properties>`` as
``control``, for skipped and failed tests too, so `hopthu audit` can join a
run with compliance/controls.yml. tests/unit/test_controls.py checks that the
IDs exist in controls.yml.

Every JUnit file also names the code it tested: the testsuite property
``commit`` (the checkout's commit, "+changes" when it has uncommitted
changes), which the audit report shows beside each run.
"""

from __future__ import annotations

from typing import Any

import pytest

from hopthu.audit.checkout import commit


def control_ids(item: pytest.Item) -> list[str]:
    """The control IDs of a test, in marker order, without duplicates."""
    ids: list[str] = []
    for mark in item.iter_markers(name="control"):
        if len(mark.args) != 1 or not isinstance(mark.args[0], str) or mark.kwargs:
            raise pytest.UsageError(
                f"{item.nodeid}: write the control marker as "
                f'@pytest.mark.control("ART11-5-HARDEN"), one ID per marker; got {mark!r}'
            )
        if mark.args[0] not in ids:
            ids.append(mark.args[0])
    return ids


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # user_properties set here (not by a fixture) reach the JUnit XML even for
    # tests that are skipped before their fixtures run.
    for item in items:
        for control in control_ids(item):
            item.user_properties.append(("control", control))


@pytest.fixture(scope="session", autouse=True)
def _commit_property(record_testsuite_property: Any) -> None:
    record_testsuite_property("commit", commit())
