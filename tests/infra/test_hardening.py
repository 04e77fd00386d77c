"""Hardened hosts, measured by Lynis (Art. 11.5), and a healthy systemd (Art. 11.1).

Lynis audits the host as it runs (``lynis audit system --quick``, about a
minute). It counts as read-only here: its log and report go to a temporary
directory on the host that is removed afterwards (``--logfile``,
``--report-file``), so nothing under /var/log changes; it does load the CPU
for that minute, which is why the audits of all hosts run at once, not one
after the other.

The hardening index must reach the suite's threshold (tests/infra/suite.yml,
``--lynis-min-index``). Each host's index, warnings and suggestions are kept
as evidence for the audit report: ``reports/<inventory>/lynis/<host>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class LynisResult:
    host: str
    inventory: str
    hardening_index: int | None = None
    lynis_version: str = ""
    tests_performed: int | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    suggestions: list[dict[str, str]] = field(default_factory=list)
    finished: str = ""
    exit_code: int | None = None
    error: str = ""


def parse_report(text: str, result: LynisResult) -> LynisResult:
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "hardening_index" and value.strip().isdigit():
            result.hardening_index = int(value)
        elif key == "lynis_version":
            result.lynis_version = value
        elif key == "lynis_tests_done" and value.strip().isdigit():
            result.tests_performed = int(value)
        elif key in ("warning[]", "suggestion[]"):
            parts = (value.split("|") + ["", "", "", ""])[:4]
            entry = dict(zip(("id", "text", "details", "solution"), parts, strict=True))
            (result.warnings if key == "warning[]" else result.suggestions).append(entry)
    return result


def lynis_command(timeout: int) -> str:
    return (
        "d=$(mktemp -d /tmp/hopthu-lynis.XXXXXX) || exit 90; "
        f"timeout {timeout} lynis audit system --quick --no-colors "
        '--logfile "$d/lynis.log" --report-file "$d/report.dat" >/dev/null 2>&1; rc=$?; '
        'cat "$d/report.dat" 2>/dev/null; rm -rf "$d"; exit $rc'
    )


class LynisRuns:
    """Runs Lynis on every selected host at once, the first time one is asked for."""

    def __init__(self, suite: Any) -> None:
        self.suite = suite
        self.results: dict[str, LynisResult] = {}
        self._lock = threading.Lock()

    def _run(self, name: str) -> LynisResult:
        result = LynisResult(host=name, inventory=self.suite.env)
        try:
            host = self.suite.host(name)
        except BaseException as exc:  # noqa: BLE001 - pytest.fail for an unreachable host
            result.error = str(exc)
            self.save(result)
            return result
        if not host.exists("lynis"):
            result.error = "lynis is not installed (it is in common__packages)"
            self.save(result)
            return result
        out = host.run(lynis_command(self.suite.lynis_timeout))
        result.exit_code = out.rc
        parse_report(out.stdout, result)
        if result.hardening_index is None:
            result.error = (f"Lynis wrote no hardening_index (exit {out.rc}): "
                            f"{out.stderr.strip()[-500:]}")
        result.finished = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.save(result)
        return result

    def save(self, result: LynisResult) -> Path:
        directory = self.suite.reports_dir / "lynis"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{result.host}.json"
        record = asdict(result) | {
            "min_hardening_index": self.suite.lynis_min_index,
            "accepted_warnings": self.suite.suite_config["lynis"].get("accepted_warnings") or {},
        }
        path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    def get(self, name: str) -> LynisResult:
        with self._lock:
            if name not in self.results:
                names = [n for n in self.suite.names if n not in self.results]
                with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
                    for n, r in zip(names, pool.map(self._run, names), strict=True):
                        self.results[n] = r
            return self.results[name]


@pytest.fixture(scope="session")
def lynis_runs(suite: Any) -> LynisRuns:
    return LynisRuns(suite)


@pytest.mark.control("ART11-5-HARDEN")
def test_lynis_hardening_index_reaches_the_threshold(
    suite: Any, host: Any, hostname: str, lynis_runs: LynisRuns,
    request: pytest.FixtureRequest,
) -> None:
    result = lynis_runs.get(hostname)
    assert not result.error, f"Lynis did not run on {hostname}: {result.error}"
    minimum = suite.lynis_min_index
    request.node.user_properties.append(("lynis_hardening_index", result.hardening_index))
    request.node.user_properties.append(
        ("evidence", str(suite.reports_dir / "lynis" / f"{hostname}.json")))
    assert result.hardening_index is not None and result.hardening_index >= minimum, (
        f"Lynis rates {hostname} {result.hardening_index}, below the required {minimum} "
        f"(--lynis-min-index, tests/infra/suite.yml). Warnings: "
        + ("; ".join(f"{w['id']} {w['text']}" for w in result.warnings) or "none")
        + ". First suggestions: "
        + "; ".join(f"{s['id']} {s['text']}" for s in result.suggestions[:12])
        + f". All of them: {suite.reports_dir / 'lynis' / (hostname + '.json')}. "
        "Harden the common role (roles/common, 'Hardening' section of its defaults)."
    )


@pytest.mark.control("ART11-5-HARDEN")
def test_lynis_finds_no_warnings(suite: Any, hostname: str, lynis_runs: LynisRuns) -> None:
    result = lynis_runs.get(hostname)
    assert not result.error, f"Lynis did not run on {hostname}: {result.error}"
    accepted = suite.suite_config["lynis"].get("accepted_warnings") or {}
    warnings = [w for w in result.warnings if w["id"] not in accepted]
    assert not warnings, (
        f"Lynis warns about {hostname}: "
        + "; ".join(f"{w['id']}: {w['text']} {w['details']}".strip() for w in warnings)
        + ". Each warning is a finding an auditor will ask about: fix it in the role; if "
        "Lynis is wrong, add it to lynis.accepted_warnings in tests/infra/suite.yml with "
        "the reason and the check that proves the point."
    )


@pytest.mark.control("ART11-1-UPTIME")
def test_no_systemd_unit_has_failed(host: Any) -> None:
    failed = host.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert not failed, (
        f"failed systemd units:\n{failed}\nSee `systemctl status UNIT` and "
        "`journalctl -u UNIT -b` on the host; a failed unit is a service that is down."
    )
