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
