"""Build and write the audit report: the entry point for `hopthu audit` and the lab.

    from hopthu.audit.report import write_report
    written = write_report(inventory="lab", junit_files=[...], out_dir=Path("reports/audit"))
    print("\n".join(summary_lines(written.audit)))
    sys.exit(written.audit.exit_code)

Every input is read and checked before anything is written: a malformed
JUnit file, a missing DECREE.md or a broken controls.yml raises `AuditError`
naming the file, and the output directory is left as it was. Both reports
are rendered in memory first and then each is replaced in one rename.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hopthu import ROOT
from hopthu import inventory as inventory_mod
from hopthu.audit import checkout, controls, decree, hosts, join, junit, render

DEFAULT_OUT = ROOT / "reports" / "audit"


class AuditError(ValueError):
    """An input of the audit cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class Written:
    audit: join.Audit
    html: Path
    markdown: Path


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(*, inventory: str | Path, junit_files: Sequence[Path], ask_hosts: bool = True,
          hosts_note: str = "", runner: hosts.Runner | None = None,
          host_targets: list[hosts.Target] | None = None,
          decree_path: Path = decree.DECREE_FILE, controls_path: Path = controls.CONTROLS_FILE,
          generated_at: str | None = None) -> join.Audit:
    """Read everything and join it; `AuditError` if an input is unusable.

    The hosts are the inventory's, reached over SSH with their settings
    (`hosts.targets`, `hosts.ssh_run`); `host_targets` and `runner` replace
    those, for tests."""
    try:
        rows = decree.load(decree_path)
        cmap = controls.load(controls_path)
        runs = junit.parse_all(list(junit_files))
        inv = inventory_mod.load(inventory)
    except (decree.DecreeError, controls.ControlsError, junit.JunitError,
            inventory_mod.InventoryError) as exc:
        raise AuditError(str(exc)) from exc
    facts = None
    if ask_hosts:
        found = hosts.targets(inv) if host_targets is None else host_targets
        facts = hosts.gather(found, runner or hosts.ssh_run)
    return join.build(
        rows, cmap, runs, inventory=inv.name, generated_at=generated_at or now(),
        checkout_commit=checkout.commit(), decree_path=decree_path, hosts=facts,
        hosts_note=hosts_note or ("" if ask_hosts else "the audit was told not to (--no-hosts)."),
    )


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(audit: join.Audit, out_dir: Path = DEFAULT_OUT) -> Written:
    out_dir = Path(out_dir)
    html = render.render_html(audit, out_dir)
    markdown = render.render_markdown(audit, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = Written(audit, out_dir / "report.html", out_dir / "report.md")
    _replace(written.html, html)
    _replace(written.markdown, markdown)
    return written


def write_report(*, inventory: str | Path, junit_files: Sequence[Path],
                 out_dir: Path = DEFAULT_OUT, **options: Any) -> Written:
    """`build` (`options` are its) then `write`: what the lab calls after its test runs."""
    return write(build(inventory=inventory, junit_files=junit_files, **options), out_dir)


def _names(evidence: list[join.Evidence], most: int = 3) -> str:
    names = [e.nodeid.rpartition("::")[2] for e in evidence]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most
                                      else "")


def summary_lines(audit: join.Audit) -> list[str]:
    """A short summary for the terminal: counts, and every control that is not proven."""
    by = audit.by_verdict()
    implemented = [c for c in audit.controls.values() if c.control.status == "implemented"]
    lines = [
        f"controls: {len(implemented)} implemented ("
        + ", ".join(f"{len(by[v])} {v}" for v in ("proven", "failed", "missing evidence",
                                                  "not proven"))
        + f"), {len(by['planned'])} planned, {len(by['not applicable'])} not applicable",
        "tests named in controls.yml: "
        + ", ".join(f"{n} {r}" for r, n in audit.test_counts().items()),
    ]
    for view in by["failed"]:
        lines.append(f"failed: {view.id}: {len(view.failing)} of {len(view.evidence)} tests: "
                     + _names(view.failing))
    if by["missing evidence"]:
        lines.append("missing evidence: " + ", ".join(
            f"{v.id} ({len(v.missing)} of {len(v.evidence)} tests)" for v in by["missing evidence"]))
        dirs = sorted({e.nodeid.split("/")[1] for v in by["missing evidence"] for e in v.missing
                       if e.nodeid.count("/") >= 2})
        lines.append("  no given JUnit file has them: give the runs of "
                     + ", ".join(f"tests/{d}" for d in dirs)
                     + " with --junit (repeatable), e.g. reports/lab/lab-junit.xml from "
                     "`make lab-test`")
    for view in by["not proven"]:
        lines.append(f"not proven: {view.id}: no test of it that runs on hosts passed "
                     "(skipped, or only unit tests ran)")
    lines += [f"completeness: {p}" for p in audit.problems]
    lines += [f"warning: {w}" for w in audit.warnings]
    if audit.hosts is None:
        lines.append(f"hosts: not asked: {audit.hosts_note}")
    else:
        unreached = [h for h in audit.hosts if not h.reached]
        lines.append(f"hosts: {len(audit.hosts) - len(unreached)} of {len(audit.hosts)} read"
                     + (f"; not reached: {', '.join(h.name for h in unreached)}"
                        if unreached else ""))
    lines.append("result: " + ("pass" if audit.exit_code == 0 else "FAIL"))
    return lines
