"""The auditor's report of the lab: its hosts read over SSH, opened whole in a browser (Art. 16).

`hopthu audit` runs as `make lab` and `make lab-test` run it, on a run of the
infra suite that proves mail1's managed files are what this checkout
renders (ART3-BUILD): the report names every lab host with its OS, says that
mail1 runs this checkout's code, and headless Chromium shows it whole
(`--screenshot`: not blank, every article with its heading and links that
land). Most controls have no evidence in this one small run, so the audit's
verdict is "fails" (exit 1); the report itself must be sound (never 2 or 3).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hopthu import ROOT, inventory
from hopthu.audit import browser, checkout

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("converged_lab")]

HOPTHU = Path(sys.executable).parent / "hopthu"


def hopthu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HOPTHU), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200, check=False, stdin=subprocess.DEVNULL)


@pytest.mark.control("ART16-AUDIT")
def test_the_lab_report_names_its_hosts_and_their_code_and_opens_whole_in_a_browser(
    tmp_path: Path,
) -> None:
    junit = tmp_path / "infra-junit.xml"
    verify = hopthu("verify", "--inventory", "lab", "--host", "mail1",
                    "-k", "test_managed_files_are_exactly_what_the_code_renders",
                    "--junit", str(junit))
    assert verify.returncode == 0, f"the infra suite failed on mail1:\n{verify.stdout[-4000:]}"
    out = tmp_path / "audit"
    done = hopthu("audit", "--inventory", "lab", "--junit", str(junit), "--out", str(out),
                  "--screenshot")
    said = done.stdout + done.stderr
    assert done.returncode == 1, f"expected the verdict 'fails' of a partial run:\n{said}"
    assert "in the browser:" not in said and f"wrote {out / 'report.png'}" in said, said
    assert browser.blank(out / "report.png") is None
    rows = {line.split("|")[1].strip(): line
            for line in (out / "report.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| **")}
    lab = inventory.load("lab")
    for name, host in lab.hosts.items():
        row = rows.get(f"**{name}** ({host.address})")
        assert row is not None, f"the report does not list {name}: {sorted(rows)}"
        assert "Debian GNU/Linux" in row and "not reached" not in row, row
    commit = checkout.commit()
    assert f"`{commit}`" in rows[f"**mail1** ({lab.hosts['mail1'].address})"], (
        f"the report does not say that mail1 runs the code of {commit}")
