"""`hopthu audit`: JUnit in, the auditor's report out (hopthu/audit/, issue 7).

Most tests use a small decree and map of their own, so each one shows the
behaviour it names; the Art. 11.6 test uses the real DECREE.md and
compliance/controls.yml, since that is the path an auditor follows.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
import yaml
from markupsafe import escape

from hopthu import ROOT, cli
from hopthu.audit import command, completeness, controls, hosts, join, junit, report

pytestmark = pytest.mark.control("ART16-AUDIT")

GENERATED = "2026-01-12T08:00:00Z"

DECREE_MD = """\
# A decree

| Art. | What the text says | What the mail hosts must do | Control IDs |
|---|---|---|---|
| 1 | Applies to **everyone**. | Accounts for all. | — |
| 3 | Set up at the Data Integration Centre. | Hosts are built by code. | ART3-BUILD |
| 11.6 | Anti-**virus** measures; filter **spam**. | Antivirus (ClamAV), spam filtering (Rspamd). | ART11-6-AV, ART11-6-SPAM |
| 14 | Protect the password. | Mailboxes are isolated. | ART3-BUILD |
| 15–16 | Inspection. | The audit report. | ART16-AUDIT |
"""


def control(cid: str, tests: list[str], status: str = "implemented", **extra: Any) -> dict:
    body: dict[str, Any] = {"id": cid, "title": f"title of {cid}",
                            "requirement": f"what {cid} requires", "status": status,
                            "tests": tests}
    if status == "implemented":
        body |= {"implemented_in": [{"path": "templates/etc/clamav/clamd.conf.j2",
                                     "what": "clamd's limits"}],
                 "tasks": ["Render clamd configuration"]}
    return body | extra


def controls_map(**overrides: dict) -> dict:
    found = {
        "ART3-BUILD": control("ART3-BUILD", ["tests/infra/test_build.py::test_host_is_built",
                                             "tests/unit/test_render.py::test_renders"]),
        "ART11-6-AV": control("ART11-6-AV", ["tests/lab/test_filtering.py::test_eicar_is_refused"]),
        "ART11-6-SPAM": control("ART11-6-SPAM", ["tests/lab/test_filtering.py::test_gtube_is_refused"]),
        "ART16-AUDIT": control("ART16-AUDIT", [], status="planned", reason="issue 7"),
    }
    found |= overrides
    return {"articles": [
        {"article": "1", "title": "Scope", "title_vi": "Phạm vi điều chỉnh",
         "controls": [], "note": "No control of its own."},
        {"article": "3", "title": "Where", "title_vi": "Thiết lập", "controls": [found["ART3-BUILD"]]},
        {"article": "11", "title": "Duties", "title_vi": "Trách nhiệm của Cục Công nghệ thông tin",
         "controls": [found["ART11-6-AV"], found["ART11-6-SPAM"]]},
        {"article": "14", "title": "Holders", "title_vi": "Cá nhân", "controls": []},
        {"article": "15", "title": "Rewards", "title_vi": "Khen thưởng", "controls": []},
        {"article": "16", "title": "Inspection", "title_vi": "Tổ chức thực hiện",
         "controls": [found["ART16-AUDIT"]]},
    ]}


def case(nodeid: str, result: str = "passed", message: str = "", *, controls: tuple = (),
         host: str = "", time: str = "0.250") -> str:
    """One <testcase> as pytest's xunit1 writes it, from a node id with parameters."""
    path, _, rest = nodeid.partition("::")
    *classes, name = rest.split("::")
    classname = ".".join([path.removesuffix(".py").replace("/", "."), *classes])
    props = [("control", c) for c in controls] + ([("host", host)] if host else [])
    body = ""
    if props:
        body += "<properties>" + "".join(
            f"<property name={quoteattr(k)} value={quoteattr(v)} />" for k, v in props
        ) + "</properties>"
    if result == "failed":
        body += f"<failure message={quoteattr(message)}>{html.escape(message)}\ntraceback</failure>"
    elif result == "error":
        body += f"<error message={quoteattr(message)}>setup went wrong</error>"
    elif result == "skipped":
        body += f"<skipped type=\"pytest.skip\" message={quoteattr(message)}>{html.escape(message)}</skipped>"
    return (f"<testcase classname={quoteattr(classname)} name={quoteattr(name)} "
            f"file={quoteattr(path)} line=\"10\" time=\"{time}\">{body}</testcase>")


def junit_file(path: Path, *cases: str, commit: str = "", inventory: str = "lab",
               hostname: str = "ci-runner") -> Path:
    props = [("inventory", inventory)] + ([("commit", commit)] if commit else [])
    properties = "".join(f"<property name={quoteattr(k)} value={quoteattr(v)} />"
                         for k, v in props)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="hopthu-infra-lab" errors="0" failures="0" skipped="0" '
        f'tests="{len(cases)}" time="1.5" timestamp="2026-01-12T07:00:00+00:00" '
        f'hostname={quoteattr(hostname)}><properties>{properties}</properties>'
        + "".join(cases) + "</testsuite></testsuites>",
        encoding="utf-8",
    )
    return path


ALL_PASS = (
    case("tests/infra/test_build.py::test_host_is_built[mail1]", controls=("ART3-BUILD",),
         host="mail1"),
    case("tests/infra/test_build.py::test_host_is_built[mail2]", controls=("ART3-BUILD",),
         host="mail2"),
    case("tests/unit/test_render.py::test_renders"),
    case("tests/lab/test_filtering.py::test_eicar_is_refused", controls=("ART11-6-AV",)),
    case("tests/lab/test_filtering.py::test_gtube_is_refused", controls=("ART11-6-SPAM",)),
)


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "DECREE.md").write_text(DECREE_MD, encoding="utf-8")
    (tmp_path / "controls.yml").write_text(
        yaml.safe_dump(controls_map(), allow_unicode=True), encoding="utf-8")
    inv = tmp_path / "inventories" / "lab"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text(
        "all:\n  hosts:\n    mail1:\n      ansible_host: 198.18.0.10\n"
        "    mail2:\n      ansible_host: 198.18.0.11\n", encoding="utf-8")
    return {"decree": tmp_path / "DECREE.md", "controls": tmp_path / "controls.yml",
            "inventory": inv / "hosts.yml", "dir": tmp_path}


def build(inputs: dict[str, Path], *junit_paths: Path, **options: Any) -> join.Audit:
    options.setdefault("ask_hosts", False)
    return report.build(inventory=inputs["inventory"], junit_files=list(junit_paths),
                        decree_path=inputs["decree"], controls_path=inputs["controls"],
                        generated_at=GENERATED, **options)


def options(inputs: dict[str, Path]) -> list[str]:
    """The command's options for the test's own decree, map and inventory, hosts not asked."""
    return ["--inventory", str(inputs["inventory"]), "--decree", str(inputs["decree"]),
            "--controls", str(inputs["controls"]), "--no-hosts"]


def write_map(inputs: dict[str, Path], **overrides: dict) -> None:
    inputs["controls"].write_text(yaml.safe_dump(controls_map(**overrides), allow_unicode=True),
                                  encoding="utf-8")


# --- reading JUnit ----------------------------------------------------------------


def test_junit_reads_passed_failed_skipped_and_error_cases(tmp_path: Path) -> None:
    path = junit_file(
        tmp_path / "run.xml",
        case("tests/infra/test_a.py::test_ok[mail1]", controls=("ART3-BUILD", "ART11-5-HARDEN"),
             host="mail1"),
        case("tests/infra/test_a.py::test_broken", "failed", "assert 1 == 2"),
        case("tests/infra/test_a.py::test_later", "skipped", "intrusive: run with --allow-intrusive"),
        case("tests/infra/test_a.py::test_fixture", "error", "no SSH"),
        commit="abc123def456", hostname="controller1",
    )
    run = junit.parse(path)
    assert [(c.name, c.result) for c in run.cases] == [
        ("test_ok[mail1]", "passed"), ("test_broken", "failed"),
        ("test_later", "skipped"), ("test_fixture", "error"),
    ]
    ok, broken, later, _ = run.cases
    assert ok.controls == ("ART3-BUILD", "ART11-5-HARDEN")
    assert (ok.host, ok.params, ok.time) == ("mail1", "mail1", 0.25)
    assert broken.message == "assert 1 == 2" and "traceback" in broken.detail
    assert later.message == "intrusive: run with --allow-intrusive"
    assert run.property("commit") == "abc123def456"
    assert (run.suites[0].hostname, run.suites[0].timestamp) == (
        "controller1", "2026-01-12T07:00:00+00:00")


@pytest.mark.parametrize(("nodeid", "classname", "name", "file"), [
    ("tests/infra/test_ssh.py::test_sshd_forwards_nothing", "tests.infra.test_ssh",
     "test_sshd_forwards_nothing[mail1]", "tests/infra/test_ssh.py"),
    ("tests/infra/test_firewall.py::test_zone", "tests.infra.test_firewall",
     "test_zone[mail1-internet-ipv4]", ""),
    ("tests/lab/test_x.py::TestThing::test_y", "tests.lab.test_x.TestThing", "test_y[a-b[c]]",
     "tests/lab/test_x.py"),
])
def test_a_parametrized_case_maps_to_the_node_id_without_parameters(
    nodeid: str, classname: str, name: str, file: str,
) -> None:
    found = junit.Case(source=Path("x.xml"), classname=classname, name=name, result="passed",
                       file=file)
    assert found.key == junit.key(nodeid)
    assert found.nodeid == nodeid


MALFORMED = {
    "truncated": '<?xml version="1.0"?><testsuites><testsuite name="x"><testcase',
    "not junit": "<html><body>a web page</body></html>",
    "no suite": "<testsuites></testsuites>",
    "nameless case": '<testsuite name="x"><testcase classname="a" /></testsuite>',
    "bad time": '<testsuite name="x"><testcase classname="a" name="t" time="soon" /></testsuite>',
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_junit_file_stops_the_audit_naming_the_file_and_writes_nothing(
    inputs: dict[str, Path], content: str, capsys: pytest.CaptureFixture[str],
) -> None:
    good = junit_file(inputs["dir"] / "good.xml", *ALL_PASS)
    bad = inputs["dir"] / "bad-run.xml"
    bad.write_text(content, encoding="utf-8")
    out = inputs["dir"] / "out"
    code = cli.main(["audit", *options(inputs), "--junit", str(good), "--junit", str(bad),
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(bad) in err and "nothing was written" in err
    assert not out.exists(), "a bad input must leave no report behind"


def test_a_malformed_junit_file_leaves_an_earlier_report_untouched(inputs: dict[str, Path]) -> None:
    out = inputs["dir"] / "out"
    report.write(build(inputs, junit_file(inputs["dir"] / "good.xml", *ALL_PASS)), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = inputs["dir"] / "bad.xml"
    bad.write_text("<testsuite", encoding="utf-8")
    with pytest.raises(report.AuditError, match=re.escape(str(bad))):
        report.write_report(inventory=inputs["inventory"], junit_files=[bad], out_dir=out,
                            decree_path=inputs["decree"], controls_path=inputs["controls"],
                            ask_hosts=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- the join and the verdicts ----------------------------------------------------


def test_every_implemented_control_proven_on_hosts_passes(inputs: dict[str, Path]) -> None:
    audit = build(inputs, junit_file(inputs["dir"] / "run.xml", *ALL_PASS))
    assert {cid: v.verdict for cid, v in audit.controls.items()} == {
        "ART3-BUILD": "proven", "ART11-6-AV": "proven", "ART11-6-SPAM": "proven",
        "ART16-AUDIT": "planned",
    }
    assert audit.problems == [] and audit.exit_code == 0


def test_cases_of_several_files_are_joined_and_a_failure_in_any_fails_the_test(
    inputs: dict[str, Path],
) -> None:
    trixie = junit_file(inputs["dir"] / "lab.xml", *ALL_PASS)
    bookworm = junit_file(
        inputs["dir"] / "lab-bookworm.xml",
        case("tests/lab/test_filtering.py::test_eicar_is_refused", "failed",
             "EICAR was delivered", controls=("ART11-6-AV",)),
        case("tests/lab/test_filtering.py::test_gtube_is_refused", "skipped", "no Rspamd here"),
    )
    audit = build(inputs, trixie, bookworm)
    eicar = audit.controls["ART11-6-AV"].evidence[0]
    assert eicar.result == "failed" and eicar.counts == {"failed": 1, "passed": 1}
    assert {c.source.name for c in eicar.cases} == {"lab.xml", "lab-bookworm.xml"}
    assert eicar.time == pytest.approx(0.5)
    gtube = audit.controls["ART11-6-SPAM"].evidence[0]
    assert gtube.result == "passed" and gtube.counts == {"passed": 1, "skipped": 1}
    assert audit.controls["ART11-6-AV"].verdict == "failed"
    assert audit.exit_code == 1


def test_a_test_named_in_the_map_but_in_no_junit_file_is_missing(inputs: dict[str, Path]) -> None:
    audit = build(inputs, junit_file(inputs["dir"] / "run.xml", *ALL_PASS[:3]))
    for cid in ("ART11-6-AV", "ART11-6-SPAM"):
        assert [e.result for e in audit.controls[cid].evidence] == ["missing"]
        assert audit.controls[cid].verdict == "missing evidence"
    assert audit.test_counts()["missing"] == 2
    assert audit.exit_code == 1


def test_a_control_whose_host_tests_were_all_skipped_is_not_proven(
    inputs: dict[str, Path],
) -> None:
    run = junit_file(
        inputs["dir"] / "run.xml", *ALL_PASS[2:],
        case("tests/infra/test_build.py::test_host_is_built[mail1]", "skipped", "intrusive"),
    )
    audit = build(inputs, run)
    assert audit.controls["ART3-BUILD"].verdict == "not proven", (
        "a passing unit test proves the code, not the hosts")
    assert audit.exit_code == 1


def test_a_test_carrying_a_control_the_map_does_not_name_is_shown_and_counts(
    inputs: dict[str, Path],
) -> None:
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS,
                     case("tests/infra/test_extra.py::test_also_av[mail1]", "failed", "boom",
                          controls=("ART11-6-AV",), host="mail1"))
    view = build(inputs, run).controls["ART11-6-AV"]
    extra = [e for e in view.evidence if not e.listed]
    assert [(e.nodeid, e.result) for e in extra] == [
        ("tests/infra/test_extra.py::test_also_av", "failed")]
    assert view.verdict == "failed"


def test_failing_tests_of_a_planned_control_warn_but_do_not_fail_the_audit(
    inputs: dict[str, Path],
) -> None:
    write_map(inputs, **{"ART16-AUDIT": control(
        "ART16-AUDIT", ["tests/unit/test_audit.py::test_x"], status="planned", reason="issue 7")})
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS,
                     case("tests/unit/test_audit.py::test_x", "failed", "no"))
    audit = build(inputs, run)
    assert audit.controls["ART16-AUDIT"].verdict == "planned"
    assert any("ART16-AUDIT" in w and "test_x" in w for w in audit.warnings)
    assert audit.exit_code == 0


def test_a_control_listed_under_several_articles_has_its_details_under_the_first(
    inputs: dict[str, Path],
) -> None:
    audit = build(inputs, junit_file(inputs["dir"] / "run.xml", *ALL_PASS))
    by_article = {a.article: a for a in audit.articles}
    assert [c.id for c in by_article["14"].controls] == ["ART3-BUILD"]
    assert by_article["14"].home_controls == []
    assert [c.id for c in by_article["3"].home_controls] == ["ART3-BUILD"]
    assert audit.controls["ART3-BUILD"].rows == ["3", "14"]


# --- the completeness rule --------------------------------------------------------


def test_completeness_names_every_way_the_map_can_break_the_rule() -> None:
    def made(cid: str, status: str, tests: tuple[str, ...] = (), reason: str = "") -> Any:
        return controls.Control(id=cid, title="t", requirement="r", status=status, article="1",
                                tests=tests, reason=reason)

    cmap = {
        "ART1-OK": made("ART1-OK", "implemented", ("tests/lab/test_a.py::test_a",)),
        "ART1-UNTESTED": made("ART1-UNTESTED", "implemented"),
        "ART1-UNIT-ONLY": made("ART1-UNIT-ONLY", "implemented", ("tests/unit/test_a.py::test_a",)),
        "ART1-SILENT": made("ART1-SILENT", "planned"),
        "ART1-NA": made("ART1-NA", "not-applicable", reason="no such host here"),
        "ART1-EXTRA": made("ART1-EXTRA", "planned", reason="why"),
    }
    decree_ids = ["ART1-OK", "ART1-UNTESTED", "ART1-UNIT-ONLY", "ART1-SILENT", "ART1-NA",
                  "ART1-ABSENT"]
    problems = completeness.map_problems(decree_ids, cmap)
    assert [p.split(":")[0] for p in problems] == [
        "ART1-ABSENT", "ART1-EXTRA", "ART1-SILENT", "ART1-UNIT-ONLY", "ART1-UNTESTED"]


def test_a_broken_completeness_rule_fails_the_audit_even_when_every_test_passed(
    inputs: dict[str, Path],
) -> None:
    write_map(inputs, **{"ART16-AUDIT": control("ART16-AUDIT", [], status="planned", reason="")})
    audit = build(inputs, junit_file(inputs["dir"] / "run.xml", *ALL_PASS))
    assert audit.failing_controls == []
    assert audit.problems == ["ART16-AUDIT: planned without a reason"]
    assert audit.exit_code == 1


# --- the command: exit status and summary -----------------------------------------


def test_the_command_exits_1_names_the_failing_control_and_prints_the_reports(
    inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS[:4],
                     case("tests/lab/test_filtering.py::test_gtube_is_refused", "failed",
                          "GTUBE was delivered", controls=("ART11-6-SPAM",)))
    out = inputs["dir"] / "out"
    code = cli.main(["audit", *options(inputs), "--junit", str(run), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "failed: ART11-6-SPAM: 1 of 1 tests: test_gtube_is_refused" in printed
    assert "3 implemented (2 proven, 1 failed, 0 missing evidence, 0 not proven)" in printed
    assert f"wrote {out / 'report.html'}" in printed and f"wrote {out / 'report.md'}" in printed
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_the_command_exits_0_when_everything_is_proven(
    inputs: dict[str, Path], capsys: pytest.CaptureFixture[str],
) -> None:
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS)
    code = cli.main(["audit", *options(inputs), "--junit", str(run),
                     "--out", str(inputs["dir"] / "out")])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "result: pass" in printed


def test_without_junit_the_command_runs_the_infra_suite_as_verify_does_and_reads_its_file(
    inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hopthu import verify

    seen: dict[str, Any] = {}

    def fake_verify(args: Any) -> int:
        seen.update(vars(args))
        Path(args.junit).parent.mkdir(parents=True)
        junit_file(Path(args.junit), *ALL_PASS[:4])  # GTUBE's lab test is not in this run
        return 1

    monkeypatch.setattr(verify, "run", fake_verify)
    monkeypatch.setattr(command, "REPORTS", inputs["dir"] / "reports")
    out = inputs["dir"] / "out"
    code = cli.main(["audit", *options(inputs), "--out", str(out)])
    assert seen["inventory"] == str(inputs["inventory"]) and not seen["allow_intrusive"]
    assert seen["junit"] == (inputs["dir"] / "reports" / "lab" / "infra-junit.xml").resolve()
    assert code == 1
    assert "test_eicar_is_refused" in (out / "report.md").read_text(encoding="utf-8")


def test_without_junit_an_infra_suite_that_did_not_finish_writes_nothing(
    inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from hopthu import verify

    monkeypatch.setattr(verify, "run", lambda args: 2)
    monkeypatch.setattr(command, "REPORTS", inputs["dir"] / "reports")
    out = inputs["dir"] / "out"
    code = cli.main(["audit", *options(inputs), "--out", str(out)])
    assert code == 2
    assert "did not run to the end" in capsys.readouterr().err
    assert not out.exists()


# --- the report -------------------------------------------------------------------


class Links(HTMLParser):
    """Every id and every href of a page, and whether it loads anything or runs a script."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag in ("script", "link", "img", "iframe", "object", "embed") or "src" in values \
                or any(k.startswith("on") for k in values):
            self.loads.append(tag)


def parsed(text: str) -> Links:
    links = Links()
    links.feed(text)
    return links


def element(page: str, anchor: str, tag: str) -> str:
    """The element with id `anchor`, up to its own closing tag (nested ones counted)."""
    start = page.index(f'<{tag} id="{anchor}">')
    depth = 0
    for match in re.finditer(rf"<(/?){tag}[\s>]", page[start:]):
        depth += -1 if match.group(1) else 1
        if depth == 0:
            return page[start:start + match.end()]
    raise AssertionError(f"<{tag} id={anchor!r}> is not closed")


def section(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}">')
    return page[start:page.index("</section>", start)]


def test_art_11_6_leads_to_the_rspamd_and_clamav_templates_and_the_eicar_gtube_results(
    tmp_path: Path,
) -> None:
    run = junit_file(
        tmp_path / "lab-junit.xml",
        case("tests/lab/test_filtering.py::test_eicar_from_the_internet_is_refused_with_5xx",
             controls=("ART11-6-AV",)),
        case("tests/lab/test_filtering.py::test_gtube_is_refused", controls=("ART11-6-SPAM",)),
    )
    out = tmp_path / "reports" / "audit"
    written = report.write_report(inventory="lab", junit_files=[run], out_dir=out,
                                  ask_hosts=False, generated_at=GENERATED)
    page = written.html.read_text(encoding="utf-8")
    links = parsed(page)
    # Click 1: the contents link to Art. 11.6's section.
    assert "#art-11-6" in links.hrefs and "art-11-6" in links.ids
    here = section(page, "art-11-6")
    targets = parsed(here).hrefs
    # Click 2: the templates that enforce it, as links that open from the report...
    for template in ("templates/etc/rspamd/local.d/antivirus.conf.j2",
                     "templates/etc/clamav/clamd.conf.j2",
                     "templates/etc/rspamd/local.d/actions.conf.j2"):
        href = next((h for h in targets if h.endswith(template)), None)
        assert href is not None, f"Art. 11.6 does not link {template}"
        assert not href.startswith(("/", "file:")), "links must be relative to the report"
        assert (out / href).resolve() == (ROOT / template).resolve()
    # ... and the EICAR and GTUBE results, rows of this page that say "passed".
    for test in ("test_eicar_from_the_internet_is_refused_with_5xx", "test_gtube_is_refused"):
        anchor = next(h[1:] for h in targets if h.startswith("#") and h.endswith(test))
        assert anchor in links.ids
        row = element(page, anchor, "tr")
        result_cell = re.findall(r"<td>(.*?)</td>", re.sub(r"<details>.*?</details>", "", row,
                                                          flags=re.DOTALL), re.DOTALL)[1]
        assert "b-passed" in result_cell, f"{test}'s row does not show its result"
    assert 'lang="vi"' in here and "Điều 11. Trách nhiệm của Cục Công nghệ thông tin" in here


def test_the_html_escapes_what_it_shows_and_loads_nothing(inputs: dict[str, Path]) -> None:
    hostile = '<script>alert("x")</script> & <b>'
    write_map(inputs, **{"ART16-AUDIT": control(
        "ART16-AUDIT", [], status="planned", reason=f"reason {hostile} at https://<store>/")})
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS,
                     case("tests/infra/test_build.py::test_host_is_built[<img src=x>]", "failed",
                          hostile, controls=("ART3-BUILD",), host="mail1"),
                     hostname=hostile)
    page = report.write(build(inputs, run), inputs["dir"] / "out").html.read_text(encoding="utf-8")
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert str(escape(hostile)) in page
    assert "https://&lt;store&gt;/" in page
    assert parsed(page).loads == [], "the report must be self-contained and run no script"


def test_the_markdown_keeps_names_and_messages_from_turning_into_markup(
    inputs: dict[str, Path],
) -> None:
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS,
                     case("tests/infra/test_build.py::test_host_is_built[a|b`c]", "failed",
                          "```\n<script>x</script> | [link](http://evil)", controls=("ART3-BUILD",)))
    text = report.write(build(inputs, run), inputs["dir"] / "out").markdown.read_text(
        encoding="utf-8")
    assert "``test_host_is_built[a\\|b`c]``" in text, "a name goes in a code span, pipes escaped"
    block = re.search(r"^( *)(`{4,})text\n(.*?)^\1\2$", text, re.DOTALL | re.MULTILINE)
    assert block and "[link](http://evil)" in block.group(3), (
        "a message goes in a fence longer than any run of backticks in it")


def test_the_report_is_the_same_for_the_same_inputs(inputs: dict[str, Path]) -> None:
    run = junit_file(inputs["dir"] / "run.xml", *ALL_PASS)
    first = report.write(build(inputs, run), inputs["dir"] / "a")
    html_a, md_a = first.html.read_bytes(), first.markdown.read_bytes()
    second = report.write(build(inputs, run), inputs["dir"] / "a")
    assert (second.html.read_bytes(), second.markdown.read_bytes()) == (html_a, md_a)
    audit = build(inputs, run)
    audit.generated_at = "2027-01-01T00:00:00Z"
    later = report.write(audit, inputs["dir"] / "a")
    assert later.html.read_text(encoding="utf-8").replace("2027-01-01T00:00:00Z", GENERATED) \
        == html_a.decode("utf-8"), "only the generated-at stamp may differ"


def test_the_report_is_utf8_nfc_with_the_vietnamese_titles(inputs: dict[str, Path]) -> None:
    decomposed = unicodedata.normalize("NFD", "Trách nhiệm của Cục Công nghệ thông tin")
    data = controls_map()
    data["articles"][2]["title_vi"] = decomposed
    inputs["controls"].write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    written = report.write(build(inputs, junit_file(inputs["dir"] / "r.xml", *ALL_PASS)),
                           inputs["dir"] / "out")
    for path in (written.html, written.markdown):
        text = path.read_bytes().decode("utf-8")
        assert unicodedata.is_normalized("NFC", text)
        assert "Điều 11. Trách nhiệm của Cục Công nghệ thông tin (khoản 6)" in text
    assert '<meta charset="utf-8">' in written.html.read_text(encoding="utf-8")


def test_planned_controls_show_their_reason_plainly(inputs: dict[str, Path]) -> None:
    write_map(inputs, **{"ART16-AUDIT": control(
        "ART16-AUDIT", [], status="planned", reason="The report comes with issue 7.")})
    written = report.write(build(inputs, junit_file(inputs["dir"] / "r.xml", *ALL_PASS)),
                           inputs["dir"] / "out")
    page = written.html.read_text(encoding="utf-8")
    assert "<strong>Planned.</strong> The report comes with issue 7." in section(page, "art-15-16")
    assert "**Planned.** The report comes with issue 7." in written.markdown.read_text(
        encoding="utf-8")


# --- the hosts --------------------------------------------------------------------

FACTS = """\
@@hopthu-audit os
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
VERSION_ID="13"
@@hopthu-audit debian_version
13.1
@@hopthu-audit kernel
6.12.41+deb13-amd64
@@hopthu-audit packages
postfix\t3.10.4-1\tii 
clamav-daemon\t1.4.3+dfsg-1\trc 
@@hopthu-audit accounts_log
{"time": "2026-01-10T09:00:00Z", "operation": "create", "address": "an@moj.gov.vn", "commit": "0123456789ab", "operator": "ops"}
@@hopthu-audit manifest
/etc/postfix/main.cf\troot\troot\t644\t""" + "a" * 64 + """
/etc/nftables.conf\troot\troot\t755\t""" + "b" * 64 + """
@@hopthu-audit end
"""

TARGETS = [
    hosts.Target("mail1", "198.18.0.10", ("mail_mx",), ("ssh", "mail1"),
                 packages=("clamav-daemon", "postfix")),
    hosts.Target("mail2", "198.18.0.11", ("mail_mx",), ("ssh", "mail2"),
                 packages=("postfix",)),
    hosts.Target("backup1", "198.18.0.20", ("mail_backup",),
                 error="its settings did not load (bad key)"),
]


def fake_runner(target: hosts.Target, script: str) -> hosts.RunResult:
    assert "dpkg-query" in script and hosts.ACCOUNTS_LOG in script
    if target.name == "mail2":
        return hosts.RunResult(255, "", "ssh: connect to host 198.18.0.11 port 22: "
                                        "Connection refused\n")
    return hosts.RunResult(0, FACTS, "")


def test_host_facts_come_from_the_hosts_and_say_plainly_what_could_not_be_read() -> None:
    mail1, mail2, backup1 = hosts.gather(TARGETS, fake_runner)
    assert mail1.reached and mail1.os == "Debian GNU/Linux 13 (trixie)"
    assert (mail1.debian_version, mail1.kernel) == ("13.1", "6.12.41+deb13-amd64")
    assert mail1.packages == (("clamav-daemon", "not installed"), ("postfix", "3.10.4-1"))
    assert mail1.managed_files == 2 and len(mail1.managed_digest) == 64
    assert "create an@moj.gov.vn by ops, registry commit 0123456789ab" in \
        mail1.last_accounts_change
    assert not mail2.reached and mail2.os == "" and "Connection refused" in mail2.error
    assert not backup1.reached and "settings did not load" in backup1.error


def test_the_report_shows_host_facts_and_never_invents_them_for_unreached_hosts(
    inputs: dict[str, Path],
) -> None:
    run = junit_file(
        inputs["dir"] / "run.xml", *ALL_PASS,
        case("tests/infra/test_managed_files.py::test_managed_files_are_exactly_what_the_code_"
             "renders[mail1]", host="mail1", controls=("ART3-BUILD",)),
        commit="feedfacecafe",
    )
    audit = build(inputs, run, ask_hosts=True, host_targets=TARGETS[:2], runner=fake_runner)
    assert audit.deployed["mail1"][0].commit == "feedfacecafe"
    text = report.write(audit, inputs["dir"] / "out").markdown.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| **mail")}
    assert "Debian GNU/Linux 13 (trixie)" in rows["**mail1** (198.18.0.10)"]
    assert "`feedfacecafe`" in rows["**mail1** (198.18.0.10)"]
    assert "**not reached**: ssh: connect to host 198.18.0.11" in rows["**mail2** (198.18.0.11)"]
    assert "Debian" not in rows["**mail2** (198.18.0.11)"]
    assert "1 of 2 hosts could not be read" in text


def test_a_report_made_without_the_hosts_says_so(inputs: dict[str, Path]) -> None:
    written = report.write(build(inputs, junit_file(inputs["dir"] / "r.xml", *ALL_PASS)),
                           inputs["dir"] / "out")
    assert "The hosts were not asked:" in written.markdown.read_text(encoding="utf-8")
    assert "(--no-hosts)" in written.html.read_text(encoding="utf-8")


def test_hosts_are_reached_with_the_inventorys_own_ssh_settings() -> None:
    from hopthu import inventory

    found = {t.name: t for t in hosts.targets(inventory.load("lab"))}
    mail1 = found["mail1"]
    assert mail1.error == "" and mail1.ssh_argv[0] == "ssh"
    assert mail1.ssh_argv[-1] == "198.18.0.10"
    assert "StrictHostKeyChecking=yes" in mail1.ssh_argv, "host keys are always checked"
    assert "/var/lib/hopthu/lab/ssh/id_ed25519" in mail1.ssh_argv
    assert "postfix" in mail1.packages and "postfix" not in found["backup1"].packages
    assert not mail1.become, "the lab logs in as root"
