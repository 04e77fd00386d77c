"""Join the decree, the compliance map, the test runs and the hosts: the report's model.

For every control the evidence is each test controls.yml names for it, with
the results of all its cases in all the given JUnit files (a parametrized
test has a case per host or per parameter; the lab runs on Debian 13 and 12
give a case each), plus any test whose JUnit properties carry the control
without the map naming it. A named test in no file is *missing*.

An implemented control's verdict:

- ``failed``: a test of it failed or errored;
- ``missing evidence``: a test the map names is in no given JUnit file;
- ``not proven``: nothing failed or is missing, but no test that runs on
  hosts passed (all skipped, say): the completeness rule's run half;
- ``proven`` otherwise.

Planned and not-applicable controls show their reason and whatever their
tests gave; they do not change the exit status, but their failing tests are
named as warnings.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hopthu.audit import completeness, junit
from hopthu.audit.controls import Control, ControlsMap
from hopthu.audit.decree import Row
from hopthu.audit.hosts import HostFacts

#: A case's result -> the node id's result when its cases differ: any
#: failure fails the test; a pass with some skipped cases is a pass.
PRECEDENCE = ("failed", "error", "passed", "skipped")
FAILING = ("failed", "error")
VERDICTS = ("proven", "failed", "missing evidence", "not proven", "planned", "not applicable")
#: The infra test whose pass proves a host runs exactly what a commit renders.
RENDERS_TEST = junit.key(
    "tests/infra/test_managed_files.py::test_managed_files_are_exactly_what_the_code_renders")


@dataclass
class Evidence:
    nodeid: str
    #: named for the control in controls.yml (else it only carries the control's ID)
    listed: bool
    cases: list[junit.Case]
    anchor: str

    @property
    def result(self) -> str:
        if not self.cases:
            return "missing"
        found = {c.result for c in self.cases}
        return next(r for r in PRECEDENCE if r in found)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(c.result for c in self.cases)
        return {r: counted[r] for r in PRECEDENCE if counted[r]}

    @property
    def time(self) -> float | None:
        times = [c.time for c in self.cases if c.time is not None]
        return sum(times) if times else None

    @property
    def on_hosts(self) -> bool:
        return completeness.is_host_test(self.nodeid)

    def not_passed(self) -> list[Outcome]:
        """The cases that did not pass, grouped by result and message, failures first."""
        groups: dict[tuple[str, str], list[junit.Case]] = {}
        for case in self.cases:
            if case.result != "passed":
                groups.setdefault((case.result, case.message or case.detail), []).append(case)
        return sorted((Outcome(result, text, cases) for (result, text), cases in groups.items()),
                      key=lambda o: PRECEDENCE.index(o.result))


@dataclass(frozen=True)
class Outcome:
    """Cases of one test that ended the same way (a skip reason, a failure message)."""

    result: str
    message: str
    cases: list[junit.Case]

    @property
    def detail(self) -> str:
        """The test's own report of the first case, when it says more than the message."""
        first = self.cases[0].detail
        return first if first and first != self.message else ""


@dataclass
class ControlView:
    control: Control
    #: the DECREE.md row whose section holds the control's details
    home: str
    #: every DECREE.md row that lists the control
    rows: list[str]
    evidence: list[Evidence]

    @property
    def id(self) -> str:
        return self.control.id

    @property
    def anchor(self) -> str:
        return self.control.id

    @property
    def failing(self) -> list[Evidence]:
        return [e for e in self.evidence if e.result in FAILING]

    @property
    def missing(self) -> list[Evidence]:
        return [e for e in self.evidence if e.result == "missing"]

    @property
    def verdict(self) -> str:
        if self.control.status == "planned":
            return "planned"
        if self.control.status == "not-applicable":
            return "not applicable"
        if self.failing:
            return "failed"
        if self.missing:
            return "missing evidence"
        if not any(e.on_hosts and e.result == "passed" for e in self.evidence):
            return "not proven"
        return "proven"


@dataclass
class ArticleView:
    row: Row
    title: str
    title_vi: str
    #: the map's note for an article without controls of its own
    note: str
    controls: list[ControlView]

    @property
    def anchor(self) -> str:
        return self.row.anchor

    @property
    def article(self) -> str:
        return self.row.article

    @property
    def home_controls(self) -> list[ControlView]:
        return [c for c in self.controls if c.home == self.row.article]


@dataclass(frozen=True)
class Deployed:
    """One run's word on one host: does it hold what that run's commit renders?"""

    run: Path
    commit: str
    result: str


@dataclass
class Audit:
    inventory: str
    generated_at: str
    checkout_commit: str
    decree_path: Path
    controls_path: Path
    articles: list[ArticleView]
    controls: dict[str, ControlView]
    runs: list[junit.JunitFile]
    #: None when the hosts were not asked (hosts_note says why)
    hosts: list[HostFacts] | None
    hosts_note: str = ""
    deployed: dict[str, list[Deployed]] = field(default_factory=dict)
    #: completeness problems of the decree and the map
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def by_verdict(self) -> dict[str, list[ControlView]]:
        return {v: [c for c in self.controls.values() if c.verdict == v] for v in VERDICTS}

    def test_counts(self) -> dict[str, int]:
        """Results of the tests controls.yml names (each node id once)."""
        seen: dict[str, str] = {}
        for view in self.controls.values():
            for e in view.evidence:
                if e.listed:
                    seen[e.nodeid] = e.result
        counted = Counter(seen.values())
        return {r: counted[r] for r in ("passed", "failed", "error", "skipped", "missing")}

    @property
    def failing_controls(self) -> list[ControlView]:
        return [c for c in self.controls.values()
                if c.control.status == "implemented" and c.verdict != "proven"]

    @property
    def exit_code(self) -> int:
        return 1 if self.problems or self.failing_controls else 0


def _anchor(control_id: str, nodeid: str) -> str:
    return f"{control_id}--" + re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid).strip("-")


def _evidence(control: Control, by_key: dict[str, list[junit.Case]],
              by_control: dict[str, list[junit.Case]]) -> list[Evidence]:
    found = [Evidence(nodeid, True, by_key.get(junit.key(nodeid), []), _anchor(control.id, nodeid))
             for nodeid in control.tests]
    listed = {junit.key(n) for n in control.tests}
    extra: dict[str, list[junit.Case]] = {}
    for case in by_control.get(control.id, []):
        if case.key not in listed:
            extra.setdefault(case.key, []).append(case)
    for cases in sorted(extra.values(), key=lambda cs: cs[0].nodeid):
        nodeid = cases[0].nodeid
        found.append(Evidence(nodeid, False, cases, _anchor(control.id, nodeid)))
    return found


def build(rows: list[Row], cmap: ControlsMap, runs: list[junit.JunitFile], *,
          inventory: str, generated_at: str, checkout_commit: str, decree_path: Path,
          hosts: list[HostFacts] | None, hosts_note: str = "") -> Audit:
    by_key: dict[str, list[junit.Case]] = {}
    by_control: dict[str, list[junit.Case]] = {}
    for run in runs:
        for case in run.cases:
            by_key.setdefault(case.key, []).append(case)
            for cid in case.controls:
                by_control.setdefault(cid, []).append(case)

    rows_of: dict[str, list[str]] = {}
    for row in rows:
        for cid in row.control_ids:
            rows_of.setdefault(cid, []).append(row.article)
    views = {
        cid: ControlView(cmap.controls[cid], rows_of[cid][0], rows_of[cid],
                         _evidence(cmap.controls[cid], by_key, by_control))
        for cid in rows_of if cid in cmap.controls
    }

    titles = {n: a.title for n, a in cmap.articles.items()}
    titles_vi = {n: a.title_vi for n, a in cmap.articles.items()}
    articles = []
    for row in rows:
        bases = list(dict.fromkeys(base for base, _ in row.parts()))
        note = " ".join(cmap.articles[b].note for b in bases if b in cmap.articles and
                        cmap.articles[b].note and not row.control_ids)
        articles.append(ArticleView(
            row=row,
            title=row.heading(titles, "clause"),
            title_vi=row.heading(titles_vi, "khoản", "Điều"),
            note=note,
            controls=[views[cid] for cid in row.control_ids if cid in views],
        ))

    warnings = []
    for cid in sorted(set(by_control) - set(cmap.controls)):
        names = sorted({c.nodeid for c in by_control[cid]})
        warnings.append(f"tests carry {cid}, which controls.yml does not know: "
                        + ", ".join(names))
    for run in runs:
        ran = run.property("inventory")
        if ran and ran != inventory:
            warnings.append(f"{run.path} checked inventory {ran!r}, not {inventory!r}: its "
                            "host results are about that inventory's hosts")
    for view in views.values():
        if view.control.status != "implemented" and view.failing:
            warnings.append(f"{view.id} ({view.control.status}): failing tests of its delivered "
                            "part: " + ", ".join(e.nodeid for e in view.failing))

    deployed: dict[str, list[Deployed]] = {}
    for case in by_key.get(RENDERS_TEST, []):
        host = case.host or case.params
        run = next(r for r in runs if r.path == case.source)
        deployed.setdefault(host, []).append(
            Deployed(case.source, run.property("commit"), case.result))

    decree_ids = [cid for row in rows for cid in row.control_ids]
    return Audit(
        inventory=inventory, generated_at=generated_at, checkout_commit=checkout_commit,
        decree_path=decree_path, controls_path=cmap.path,
        articles=articles,
        controls={cid: views[cid] for cid in dict.fromkeys(decree_ids) if cid in views},
        runs=runs, hosts=hosts, hosts_note=hosts_note, deployed=deployed,
        problems=completeness.map_problems(decree_ids, cmap.controls),
        warnings=warnings,
    )
