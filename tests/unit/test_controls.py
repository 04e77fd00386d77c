"""compliance/controls.yml agrees with the decree and with the tests.

Both directions, so neither the map nor the tests can drift alone:

- every control ID of DECREE.md is in controls.yml, and nothing else is;
- every article has its Vietnamese title as the original text gives it;
- every implemented control has a test carrying its ID, lists at least one
  test that runs on hosts (tests/lab or tests/infra; the completeness rule of
  issue 7, hopthu/audit/completeness.py), and names files that exist; every
  planned or not-applicable control says why;
- every control ID a test carries is in controls.yml, and every test the map
  names exists and carries that control.

Control IDs are read from the test sources with `ast`, wherever pytest would
apply them: decorators, class decorators, ``pytestmark`` (module or class),
and ``pytest.param(..., marks=...)`` inside a parametrize.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from hopthu import ROOT
from hopthu.audit.completeness import HOST_TEST_DIRS

CONTROLS_FILE = ROOT / "compliance" / "controls.yml"
#: shared/ sits beside the checkout, for developers and in CI.
DECREE_FILE = ROOT / "compliance" / "decree" / "DECREE.md"
#: The decree as the project received it, beside the checkout (absent in a
#: bare clone); the project's copy above must match it.
SHARED_DIR = ROOT.parent / "shared"
#: The decree's original Vietnamese text, beside DECREE.md.
DECREE_VI_FILE = DECREE_FILE.with_name("decree-290-QD-BTP.vi.txt")
TESTS_DIR = ROOT / "tests"

ID_RE = re.compile(r"\bART\d+(?:-\d+)?(?:-[A-Z]+)+\b")
STATUSES = ("implemented", "planned", "not-applicable")


# --- reading the map --------------------------------------------------------------


def load_controls() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(CONTROLS_FILE.read_text(encoding="utf-8"))
    controls: dict[str, dict[str, Any]] = {}
    for article in data["articles"]:
        for control in article.get("controls") or []:
            assert control["id"] not in controls, (
                f"{CONTROLS_FILE}: {control['id']} is listed twice; list each control once, "
                "under the article that introduces it (also_articles for the others)"
            )
            controls[control["id"]] = control | {"_article": article["article"]}
    return controls


# --- reading the tests ------------------------------------------------------------


def _is_control_mark(node: ast.AST) -> bool:
    """`pytest.mark.control(...)` or `mark.control(...)`."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "control"
        and (
            (isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark")
            or (isinstance(node.func.value, ast.Name) and node.func.value.id == "mark")
        )
    )


def _ids_in(node: ast.AST, where: str) -> list[str]:
    ids = []
    for sub in ast.walk(node):
        if _is_control_mark(sub):
            assert isinstance(sub, ast.Call)
            arg = sub.args[0] if sub.args else None
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), (
                f"{where}, line {sub.lineno}: write the control ID as a string literal, "
                'pytest.mark.control("ART11-5-HARDEN"), so the compliance check can read it'
            )
            ids.append(arg.value)
    return ids


def _pytestmark(body: list[ast.stmt], where: str) -> list[str]:
    ids: list[str] = []
    for stmt in body:
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
                ids += _ids_in(stmt, where)
    return ids


@dataclass
class MarkedTest:
    nodeid: str
    controls: set[str] = field(default_factory=set)


def scan_source(source: str, relpath: str) -> Iterator[MarkedTest]:
    """Every test function of a module with the control IDs pytest would give it."""
    tree = ast.parse(source, filename=relpath)
    module_ids = set(_pytestmark(tree.body, relpath))

    def functions(body: list[ast.stmt], prefix: str, inherited: set[str]) -> Iterator[MarkedTest]:
        for stmt in body:
            # pytest's defaults: python_functions = test*, python_classes = Test*.
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                if not stmt.name.startswith("test"):
                    continue
                ids = set().union(*(_ids_in(d, relpath) for d in stmt.decorator_list))
                yield MarkedTest(f"{prefix}::{stmt.name}", inherited | ids)
            elif isinstance(stmt, ast.ClassDef) and stmt.name.startswith("Test"):
                ids = set().union(*(_ids_in(d, relpath) for d in stmt.decorator_list))
                ids |= set(_pytestmark(stmt.body, relpath))
                yield from functions(stmt.body, f"{prefix}::{stmt.name}", inherited | ids)

    yield from functions(tree.body, relpath, module_ids)


def scan_tests(tests_dir: Path = TESTS_DIR) -> dict[str, MarkedTest]:
    found: dict[str, MarkedTest] = {}
    for path in sorted(tests_dir.rglob("*.py")):
        relpath = path.relative_to(ROOT).as_posix()
        for fn in scan_source(path.read_text(encoding="utf-8"), relpath):
            found[fn.nodeid] = fn
    return found


def decree_ids() -> set[str]:
    return set(ID_RE.findall(DECREE_FILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def controls() -> dict[str, dict[str, Any]]:
    return load_controls()


@pytest.fixture(scope="module")
def tests() -> dict[str, MarkedTest]:
    return scan_tests()


def carried_ids(tests: dict[str, MarkedTest]) -> dict[str, list[str]]:
    """control ID -> node ids of the test functions carrying it."""
    by_id: dict[str, list[str]] = {}
    for fn in tests.values():
        for control in fn.controls:
            by_id.setdefault(control, []).append(fn.nodeid)
    return by_id


# --- the scanner itself -----------------------------------------------------------


def test_scanner_finds_controls_wherever_pytest_applies_them() -> None:
    source = '''
import pytest
from pytest import mark
pytestmark = [pytest.mark.control("X-MODULE")]

@pytest.mark.control("X-DECORATOR")
def test_decorated(): ...

@pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.control("X-PARAM"))])
def test_param(x): ...

@mark.control("X-CLASS")
class TestThing:
    pytestmark = pytest.mark.control("X-CLASSMARK")
    def test_method(self): ...

def helper(): ...
'''
    found = {fn.nodeid: fn.controls for fn in scan_source(source, "t.py")}
    assert found == {
        "t.py::test_decorated": {"X-MODULE", "X-DECORATOR"},
        "t.py::test_param": {"X-MODULE", "X-PARAM"},
        "t.py::TestThing::test_method": {"X-MODULE", "X-CLASS", "X-CLASSMARK"},
    }


# --- the map against the decree ---------------------------------------------------


@pytest.mark.parametrize("copy", [DECREE_FILE, DECREE_VI_FILE], ids=lambda p: p.name)
def test_the_projects_copy_of_the_decree_is_the_one_it_received(copy: Path) -> None:
    received = SHARED_DIR / copy.name
    if not received.is_file():
        pytest.skip(f"{received} is absent (a bare clone): nothing to compare the copy with")
    assert copy.read_bytes() == received.read_bytes(), (
        f"{copy.relative_to(ROOT)} differs from {received}: copy the decree again "
        f"(cp {received} {copy.relative_to(ROOT)}) and check compliance/controls.yml against it"
    )


def test_every_decree_control_is_in_the_map_and_nothing_else(
    controls: dict[str, dict[str, Any]],
) -> None:
    decree = decree_ids()
    missing, unknown = sorted(decree - set(controls)), sorted(set(controls) - decree)
    assert not missing, (
        f"{CONTROLS_FILE.name} lacks {missing} from DECREE.md: add each under its article "
        "with a status (planned with a reason, if nothing implements it yet)"
    )
    assert not unknown, (
        f"{CONTROLS_FILE.name} has {unknown}, which DECREE.md does not define: use the "
        "decree's control IDs exactly"
    )


def test_every_control_has_a_title_requirement_and_known_status(
    controls: dict[str, dict[str, Any]],
) -> None:
    bad = [
        f"{cid}: {problem}"
        for cid, c in controls.items()
        for problem in (
            [] if c.get("status") in STATUSES else [f"status {c.get('status')!r} not in {STATUSES}"]
        ) + [f"no {key}" for key in ("title", "requirement") if not c.get(key)]
    ]
    assert not bad, f"{CONTROLS_FILE.name}: " + "; ".join(bad)


def test_planned_and_not_applicable_controls_say_why(controls: dict[str, dict[str, Any]]) -> None:
    silent = [cid for cid, c in controls.items()
              if c["status"] != "implemented" and not str(c.get("reason") or "").strip()]
    assert not silent, (
        f"{CONTROLS_FILE.name}: {silent} are planned or not-applicable without a reason: "
        "say why, and which issue or work will deliver it"
    )


def test_every_article_has_its_vietnamese_title_from_the_original_text() -> None:
    original = DECREE_VI_FILE.read_text(encoding="utf-8")
    # The regulation's own articles; the decision before it has an Điều 1-3 too.
    regulation = original[original.index("(Ban hành kèm theo"):]
    articles = yaml.safe_load(CONTROLS_FILE.read_text(encoding="utf-8"))["articles"]
    wrong = []
    for article in articles:
        title = str(article.get("title_vi") or "")
        if not title or unicodedata.normalize("NFC", title) != title:
            wrong.append(f"article {article['article']}: title_vi {title!r} is empty or not NFC")
        elif not re.search(rf"Điều {article['article']}\. {re.escape(title)}\s", regulation):
            wrong.append(f"article {article['article']}: 'Điều {article['article']}. {title}' "
                         f"is not in {DECREE_VI_FILE.name}")
    assert not wrong, (
        f"{CONTROLS_FILE.name}: " + "; ".join(wrong)
        + ". Copy each article's title exactly from the original text (it is the "
        "report's Vietnamese heading)."
    )


def test_implemented_controls_name_files_that_exist(controls: dict[str, dict[str, Any]]) -> None:
    problems = []
    for cid, c in controls.items():
        if c["status"] != "implemented":
            continue
        places = c.get("implemented_in") or []
        if not places:
            problems.append(f"{cid}: implemented_in is empty")
        for place in places:
            path = place["path"] if isinstance(place, dict) else str(place)
            if not (ROOT / path).exists():
                problems.append(f"{cid}: {path} does not exist")
    assert not problems, (
        f"{CONTROLS_FILE.name}: " + "; ".join(problems)
        + ". Point implemented_in at the roles, templates and modules that enforce the control."
    )


def ansible_task_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "roles").glob("*/tasks/*.yml"):
        for task in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if isinstance(task, dict) and task.get("name"):
                names.add(str(task["name"]))
    return names


def test_implemented_controls_name_tasks_that_exist(controls: dict[str, dict[str, Any]]) -> None:
    known = ansible_task_names()
    missing = [f"{cid}: {name!r}" for cid, c in controls.items()
               for name in c.get("tasks") or [] if name not in known]
    assert not missing, (
        f"{CONTROLS_FILE.name} names tasks that no roles/*/tasks/*.yml has: "
        + "; ".join(missing) + ". Use the tasks' exact names (the same in both engines)."
    )


# --- the map against the tests ----------------------------------------------------


def test_every_implemented_control_has_a_test_carrying_its_id(
    controls: dict[str, dict[str, Any]], tests: dict[str, MarkedTest]
) -> None:
    by_id = carried_ids(tests)
    untested = [cid for cid, c in controls.items()
                if c["status"] == "implemented" and not by_id.get(cid)]
    assert not untested, (
        f"implemented controls without any test carrying their ID: {untested}. Mark the "
        'checks that prove them with @pytest.mark.control("ID"), or set them back to planned.'
    )


def test_every_implemented_control_lists_a_test_that_runs_on_hosts(
    controls: dict[str, dict[str, Any]],
) -> None:
    # Issue 7, completeness: an implemented control is proven where it runs, by
    # the lab or the infra suite; a unit test alone proves the code, not the hosts.
    unproven = [cid for cid, c in controls.items() if c["status"] == "implemented"
                and not any(str(t).startswith(HOST_TEST_DIRS) for t in c.get("tests") or [])]
    assert not unproven, (
        f"{CONTROLS_FILE.name}: implemented controls whose tests are all unit tests: "
        f"{unproven}. List a test under {' or '.join(HOST_TEST_DIRS)} that proves the control "
        "on a host, or set the control back to planned with a reason."
    )


def test_every_control_a_test_carries_is_in_the_map(
    controls: dict[str, dict[str, Any]], tests: dict[str, MarkedTest]
) -> None:
    unknown = {cid: nodes for cid, nodes in carried_ids(tests).items() if cid not in controls}
    assert not unknown, (
        f"tests carry control IDs that {CONTROLS_FILE.name} does not know: {unknown}. "
        "Use the decree's IDs (DECREE.md) exactly."
    )


def test_tests_named_in_the_map_exist_and_carry_the_control(
    controls: dict[str, dict[str, Any]], tests: dict[str, MarkedTest]
) -> None:
    problems = []
    for cid, c in controls.items():
        if c["status"] == "implemented" and not c.get("tests"):
            problems.append(f"{cid}: implemented but lists no tests")
        for nodeid in c.get("tests") or []:
            fn = tests.get(nodeid)
            if fn is None:
                problems.append(f"{cid}: {nodeid} does not exist")
            elif cid not in fn.controls:
                problems.append(f"{cid}: {nodeid} does not carry @pytest.mark.control({cid!r})")
    assert not problems, f"{CONTROLS_FILE.name}: " + "; ".join(problems)
