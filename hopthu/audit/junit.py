"""Read pytest's JUnit XML: each test's result, time and control IDs.

pytest writes one ``<testcase>`` per test item, so a parametrized test (one
item per host, per port...) gives several cases with one node id without
parameters, which is how compliance/controls.yml names tests. `key` maps
both spellings to one form: ``tests/infra/test_ssh.py::test_x`` and
``classname="tests.infra.test_ssh" name="test_x[mail1]"`` are both
``tests.infra.test_ssh.test_x``.

Both JUnit families are read. ``xunit1`` (what `hopthu verify` writes) keeps
each case's ``<properties>``: its control IDs (tests/conftest.py) and host;
``xunit2`` (pytest's default) drops them, so such a file is joined by node id
alone. A file that is not JUnit stops the audit with its name and the
reason, before anything is written.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

#: A case's result, from its child element; "passed" when it has none.
RESULTS = ("passed", "failed", "error", "skipped")
#: The detail of a failure kept for the report: enough to see what is wrong.
MAX_DETAIL_LINES = 40


class JunitError(ValueError):
    """A JUnit file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Case:
    #: The JUnit file the case comes from.
    source: Path
    classname: str
    name: str
    result: str
    time: float | None = None
    message: str = ""
    detail: str = ""
    #: The test's file and line as pytest's xunit1 records them.
    file: str = ""
    line: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.classname}.{base_name(self.name)}"

    @property
    def params(self) -> str:
        """The parameter id: "mail1-internet-ipv4" for test_x[mail1-internet-ipv4]."""
        _, sep, rest = self.name.partition("[")
        return rest[:-1] if sep and rest.endswith("]") else ""

    @property
    def controls(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(v for k, v in self.properties if k == "control"))

    @property
    def host(self) -> str:
        return next((v for k, v in self.properties if k == "host"), "")

    @property
    def nodeid(self) -> str:
        """The node id without parameters, as well as the file lets us spell it."""
        module = self.file.removesuffix(".py").replace("/", ".") if self.file else ""
        if module and (self.classname == module or self.classname.startswith(module + ".")):
            inner = self.classname[len(module):].lstrip(".")
            return "::".join(p for p in (self.file, *inner.split("."), base_name(self.name)) if p)
        # No file (xunit2): pytest's own convention, classes are named Test*.
        parts = self.classname.split(".")
        split = next((i for i, p in enumerate(parts) if p.startswith("Test")), len(parts))
        path = "/".join(parts[:split]) + ".py"
        return "::".join([path, *parts[split:], base_name(self.name)])


@dataclass(frozen=True)
class Suite:
    """A ``<testsuite>``'s own metadata: where and when the run happened."""

    name: str
    hostname: str
    timestamp: str
    tests: int
    failures: int
    errors: int
    skipped: int
    time: float | None
    properties: tuple[tuple[str, str], ...] = ()

    def property(self, name: str) -> str:
        return next((v for k, v in self.properties if k == name), "")


@dataclass(frozen=True)
class JunitFile:
    path: Path
    suites: tuple[Suite, ...]
    cases: tuple[Case, ...] = field(default=())

    def property(self, name: str) -> str:
        """A testsuite property (the first suite that has it)."""
        return next((s.property(name) for s in self.suites if s.property(name)), "")


def base_name(name: str) -> str:
    """The test's name without its parameters."""
    return name.partition("[")[0]


def key(nodeid: str) -> str:
    """A pytest node id (parameters dropped) in the form `Case.key` uses."""
    path, _, rest = nodeid.partition("::")
    parts = [path.removesuffix(".py").replace("/", "."), *rest.split("::")] if rest else [path]
    parts[-1] = base_name(parts[-1])
    return ".".join(p for p in parts if p)


def _nfc(text: str | None) -> str:
    return unicodedata.normalize("NFC", text or "")


def _float(value: str | None, where: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise JunitError(f"{where}: time {value!r} is not a number of seconds") from None


def _int(value: str | None, where: str, attr: str) -> int:
    if value in (None, ""):
        return 0
    try:
        return int(value)
    except ValueError:
        raise JunitError(f"{where}: {attr} {value!r} is not a number") from None


def _properties(element: ET.Element) -> tuple[tuple[str, str], ...]:
    found = []
    for props in element.findall("properties"):
        for prop in props.findall("property"):
            found.append((_nfc(prop.get("name")), _nfc(prop.get("value"))))
    return tuple(found)


def _detail(text: str | None) -> str:
    lines = _nfc(text).strip().splitlines()
    if len(lines) > MAX_DETAIL_LINES:
        more = len(lines) - MAX_DETAIL_LINES
        lines = [*lines[:MAX_DETAIL_LINES], f"... ({more} more lines in the JUnit file)"]
    return "\n".join(lines)


def _case(element: ET.Element, source: Path, where: str) -> Case:
    classname, name = element.get("classname"), element.get("name")
    if not name or classname is None:
        raise JunitError(f"{where}: a <testcase> without classname or name; "
                         "give a JUnit file written by pytest --junitxml")
    result, message, detail = "passed", "", ""
    # A failed call followed by a teardown error carries both: the failure wins.
    for tag, outcome in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        child = element.find(tag)
        if child is not None:
            result, message, detail = outcome, _nfc(child.get("message")), _detail(child.text)
            break
    return Case(
        source=source, classname=_nfc(classname), name=_nfc(name), result=result,
        time=_float(element.get("time"), f"{where} ({name})"),
        message=message, detail=detail,
        file=_nfc(element.get("file")), line=element.get("line") or "",
        properties=_properties(element),
    )


def parse(path: Path) -> JunitFile:
    """Read one JUnit XML file; `JunitError` names the file when it cannot."""
    try:
        tree = ET.parse(path)
    except OSError as exc:
        raise JunitError(f"{path}: cannot read it: {exc.strerror}") from exc
    except ET.ParseError as exc:
        line, column = exc.position
        raise JunitError(f"{path}: not well-formed XML (line {line}, column {column}): "
                         "give a JUnit file written by pytest --junitxml") from exc
    root = tree.getroot()
    if root.tag == "testsuite":
        suites_el = [root]
    elif root.tag == "testsuites":
        suites_el = root.findall("testsuite")
    else:
        raise JunitError(f"{path}: the root element is <{root.tag}>, not <testsuites> or "
                         "<testsuite>: this is not a JUnit XML file")
    if not suites_el:
        raise JunitError(f"{path}: no <testsuite> in it: the run wrote no results")
    suites, cases = [], []
    for s_index, suite in enumerate(suites_el):
        where = f"{path}: testsuite {s_index + 1}"
        suites.append(Suite(
            name=_nfc(suite.get("name")), hostname=_nfc(suite.get("hostname")),
            timestamp=_nfc(suite.get("timestamp")),
            tests=_int(suite.get("tests"), where, "tests"),
            failures=_int(suite.get("failures"), where, "failures"),
            errors=_int(suite.get("errors"), where, "errors"),
            skipped=_int(suite.get("skipped"), where, "skipped"),
            time=_float(suite.get("time"), where),
            properties=_properties(suite),
        ))
        for c_index, element in enumerate(suite.iter("testcase")):
            cases.append(_case(element, path, f"{where}, testcase {c_index + 1}"))
    return JunitFile(path=path, suites=tuple(suites), cases=tuple(cases))


def parse_all(paths: list[Path]) -> list[JunitFile]:
    """Read every file first, so one bad file stops the audit before any output."""
    seen: set[Path] = set()
    files = []
    for path in paths:
        resolved = path.resolve()
        if resolved in seen:
            raise JunitError(f"{path}: given twice; each run's file counts once")
        seen.add(resolved)
        files.append(parse(path))
    return files

